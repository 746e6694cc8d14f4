#!/usr/bin/env bash
# The project's whole test run (README quick start, CI): builds the libraries,
# runs every suite, and ends with one line `N passed, N failed` over all of them.
#   suite 1  zig unit tests (every `test` block in zig-src/src/, debug build: assertions on)
#   suite 2  deno tests in tests/ (TS units, C programs against the built libraries,
#            the CLI, and the 4-node VM placement tests: always in CI, skipped with a
#            message elsewhere when qemu or a >= 6.9 kernel image is missing)
# Extra arguments go to `deno test` (e.g. a file or --filter).
set -uo pipefail
. "$(dirname "$0")/tools.sh" || exit 1
cd "$TIERMEM_ROOT"
mkdir -p tests/out
passed=0 failed=0

echo "== build (fast)"
if ! bash scripts/build.sh; then echo "build failed"; echo "0 passed, 1 failed"; exit 1; fi

echo "== suite 1: zig unit tests"
(cd zig-src && zig build test -Doptimize=debug --summary all) > tests/out/zig-test.log 2>&1
zrc=$?
tail -n 40 tests/out/zig-test.log
zline=$(grep -Eo '[0-9]+/[0-9]+ tests passed' tests/out/zig-test.log | tail -n1)
if [ -n "$zline" ]; then
  zp=${zline%%/*}; zt=${zline#*/}; zt=${zt%% *}
  passed=$((passed + zp)); failed=$((failed + zt - zp))
fi
zf=$(grep -Eo '[0-9]+ failed' tests/out/zig-test.log | tail -n1 | awk '{print $1}')
[ -z "$zline" ] && [ "$zrc" != 0 ] && failed=$((failed + ${zf:-1}))

echo "== suite 2: deno tests"
NO_COLOR=1 "$DENO" test -A --no-check=remote "$@" 2>&1 | tee tests/out/deno-test.log
drc=${PIPESTATUS[0]}
dline=$(grep -E '^(ok|FAILED) \| [0-9]+ passed' tests/out/deno-test.log | tail -n1)
if [ -n "$dline" ]; then
  dp=$(echo "$dline" | sed -E 's/.*\| ([0-9]+) passed.*/\1/')
  df=$(echo "$dline" | sed -E 's/.*\| ([0-9]+) failed.*/\1/')
  passed=$((passed + dp)); failed=$((failed + df))
elif [ "$drc" != 0 ]; then
  failed=$((failed + 1))
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$zrc" = 0 ] && [ "$drc" = 0 ]
