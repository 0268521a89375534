#!/usr/bin/env bash
# regress.sh - for make check and CI: build the fuzz harnesses and replay the saved regression
# inputs and the seed corpora once (no fuzzing; ~15 s). Exit 0 pass, 1 an input crashes,
# 77 skip (no clang/libFuzzer), 99 a harness does not build.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=$(mktemp -d "${TMPDIR:-/tmp}/ipfsfs-fuzz-regress.XXXXXX") || exit 99
trap 'rm -rf "$out"' EXIT
FUZZ_OUT=$out "$here/run-fuzzers.sh" --regress-only "$@"
