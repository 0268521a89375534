#!/usr/bin/env bash
# realworld-store.sh - realworld.sh against the embedded block store (--store=DIR) instead of the
# node's RPC API: the same workloads and twins, run by automake as a test of its own. See
# realworld.sh.
#
# Runs from automake (exit 0 pass, 1 fail, 77 skip, 99 hard error) or by hand:
#   IPFSFS_BIN=build/src/ipfsfs tests/integration/realworld-store.sh
IPFSFS_BACKEND=store exec bash "$(dirname "${BASH_SOURCE[0]}")/realworld.sh" "$@"
