#!/usr/bin/env bash
# hostile-store.sh - hostile.sh against the embedded block store (--store=DIR): the same crafted
# blocks, copied into the store, and the same checks, run by automake as a test of its own.
#
# Runs from automake (exit 0 pass, 1 fail, 77 skip, 99 hard error) or by hand:
#   IPFSFS_BIN=build/src/ipfsfs tests/integration/hostile-store.sh
IPFSFS_BACKEND=store exec bash "$(dirname "${BASH_SOURCE[0]}")/hostile.sh" "$@"
