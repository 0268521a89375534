#!/usr/bin/env bash
# realworld-local.sh - realworld.sh on a local-first mount (the default with a node: names and blocks kept
# locally, pushed to the node in the background). Where realworld.sh looks at the node's names it
# first fsyncs the mount's root, which returns once the node has every change. See realworld.sh.
#
# Runs from automake (exit 0 pass, 1 fail, 77 skip, 99 hard error) or by hand:
#   IPFSFS_BIN=build/src/ipfsfs tests/integration/realworld-local.sh
IPFSFS_BACKEND=local exec bash "$(dirname "${BASH_SOURCE[0]}")/realworld.sh" "$@"
