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
# Then each target runs its saved regression inputs (tests/fuzz/regressions/<target>-*).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bash "$here/build.sh"
cd "$root"
out=tests/out/fuzz
read -r -a targets <<< "${TARGETS:-tier_spec node_list policy policy_env}"
if [ -n "${RUNS:-}" ]; then limit=(-runs="$RUNS"); else limit=(-max_total_time="${SECONDS_PER_TARGET:-5}"); fi
total=0 crashes=0
for t in "${targets[@]}"; do
  mkdir -p "$out/new_$t"
  log=$out/run_$t.log
  rc=0
  # -timeout: 10 s on one input is a hang. -rss_limit_mb: the parsers allocate nothing.
  # -max_len: 1 KiB holds any real value (17 tiers, long paths, ranges up to node 1023); longer
  # inputs only slow node lists down (a range costs up to 1024 steps per element).
  "$out/fuzz_$t" "${limit[@]}" -dict="$here/$t.dict" -timeout=10 -rss_limit_mb=512 -max_len=1024 \
    -print_final_stats=1 -artifact_prefix="$out/$t-" "$out/new_$t" "$here/corpus/$t" > "$log" 2>&1 || rc=$?
  for input in "$here"/regressions/"$t"-*; do
    [ -e "$input" ] || continue
    "$out/fuzz_$t" "$input" >> "$log" 2>&1 || rc=$?
  done
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
