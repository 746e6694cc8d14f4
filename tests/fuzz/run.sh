#!/usr/bin/env bash
# Runs the parser fuzz targets one after the other and reports, per target, the inputs
# libFuzzer executed and whether it crashed; exits non-zero on any crash.
#   bash tests/fuzz/run.sh                 20 s in all (5 s per target): the CI run
#   RUNS=1000000 bash tests/fuzz/run.sh    at least that many inputs per target
#   SECONDS_PER_TARGET=60 bash tests/fuzz/run.sh
#   TARGETS="policy node_list" ...         a subset
# Seeds come from tests/fuzz/corpus/<target>/ (committed); what libFuzzer adds goes to
# tests/out/fuzz/new_<target>/ (scratch), crashing inputs to tests/out/fuzz/<target>-crash-*.
# The last line is `fuzz: N inputs, M crashes`.
#
# TIERMEM_FUZZ_KNOWN_RAW_ECHO (default 1 here): tolerate the known bug of node-list and
# policy messages echoing the input's control bytes raw (see tests/fuzz/check.zig and
# tests/fuzz/regressions/); 0 makes those targets fail on it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bash "$here/build.sh"
cd "$root"
export TIERMEM_FUZZ_KNOWN_RAW_ECHO=${TIERMEM_FUZZ_KNOWN_RAW_ECHO:-1}
out=tests/out/fuzz
read -r -a targets <<< "${TARGETS:-tier_spec node_list policy policy_env}"
if [ -n "${RUNS:-}" ]; then limit=(-runs="$RUNS"); else limit=(-max_total_time="${SECONDS_PER_TARGET:-5}"); fi
total=0 crashes=0
for t in "${targets[@]}"; do
  mkdir -p "$out/new_$t"
  log=$out/run_$t.log
  rc=0
  # -timeout: a parser is linear; 10 s on one input is a hang. -rss_limit_mb: they allocate nothing.
  "$out/fuzz_$t" "${limit[@]}" -dict="$here/$t.dict" -timeout=10 -rss_limit_mb=512 \
    -print_final_stats=1 -artifact_prefix="$out/$t-" "$out/new_$t" "$here/corpus/$t" > "$log" 2>&1 || rc=$?
  runs=$(grep -aEo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -n1)
  runs=${runs:-0}
  total=$((total + runs))
  if [ "$rc" = 0 ]; then
    echo "fuzz_$t: $runs inputs, 0 crashes"
  else
    crashes=$((crashes + 1))
    echo "fuzz_$t: $runs inputs, CRASH (exit $rc):"
    grep -aE '^fuzz:|panic|ERROR: libFuzzer|Test unit written' "$log" | head -n 5 | cat -v
  fi
done
echo "fuzz: $total inputs, $crashes crashes"
[ "$crashes" = 0 ]
