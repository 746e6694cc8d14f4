#!/usr/bin/env bash
# The long hardening runs of issue 6 (the short versions are tests/native/stress_test.ts and
# tests/native/memtier_test.ts). Each part prints PASS/FAIL lines; the last line is `N passed, M failed`.
#
#   bash tests/stress/run-long.sh              everything (~30-60 min on a busy 2-core machine)
#   PARTS="stress fork" bash tests/stress/run-long.sh
#
# Parts:
#   stress    tests/c/stress.c `threads` for CONFIGS (THREADSxOPS per thread, default
#             "2x1000000 8x1000000 64x250000") via the hmalloc API and via malloc under
#             libmemtier (DRAM, DRAM+FS_DAX): checksums intact, RSS back near baseline
#             (the rule of tests/native/stress_test.ts: +16 MiB + 5% of the peak's growth)
#   fork      fork 8 threads x 1000 forks (hmalloc), spawn 8 x 500 (hmalloc, memtier)
#   valgrind  memcheck of the hmalloc build: threads 8 x 20000, fork 4 x 50, spawn 4 x 50
#   programs  real programs, same output and status without and with libmemtier (DRAM only,
#             DRAM + FS_DAX): python3 -m test slice, node building 10M objects, git on a real
#             repository (GIT_REPO, default: a clone of this one), sqlite3 with 1M rows (ROWS),
#             `deno test` of this project's pure-TypeScript tests
# Output and logs: tests/out/long/.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/scripts/tools.sh"
cd "$root"
out=$root/tests/out/long
mkdir -p "$out"
lib=$root/zig-src/zig-out/lib
memtier=$lib/libmemtier.so
read -r -a parts <<< "${PARTS:-stress fork valgrind programs}"
read -r -a configs <<< "${CONFIGS:-2x1000000 8x1000000 64x250000}"
dax=$(mktemp -d "${TMPDIR:-/tmp}/tiermem-long-fsdax.XXXXXX")
trap 'rm -rf "$dax"' EXIT
DRAM_FSDAX="KIND:DRAM,RATIO:1;KIND:FS_DAX,PATH:$dax,RATIO:4;POLICY:STATIC_RATIO"
passed=0 failed=0

pass() { passed=$((passed + 1)); echo "PASS $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }

[ -f "$lib/libhmalloc.so" ] && [ -f "$memtier" ] || bash scripts/build.sh
cflags=(-O2 -g -Wall -Wextra -Werror -std=gnu11 -pthread)
gcc "${cflags[@]}" -DSTRESS_HMALLOC -I zig-src/include tests/c/stress.c -o "$out/stress_hmalloc" \
  -L "$lib" -lhmalloc -Wl,-rpath,"$lib"
gcc "${cflags[@]}" tests/c/stress.c -o "$out/stress_malloc"

# run_as API CMD...: runs CMD through API (hmalloc = as is; memtier / memtier+fsdax = preloaded).
run_as() {
  local api=$1; shift
  case $api in
    hmalloc | none) "$@" ;;
    memtier) env LD_PRELOAD="$memtier" "$@" ;;
    memtier+fsdax) env LD_PRELOAD="$memtier" MEMKIND_MEM_TIERS="$DRAM_FSDAX" "$@" ;;
  esac
}

# rss_ok JSON: the "near baseline" rule of tests/native/stress_test.ts.
rss_ok() {
  python3 -c '
import json, sys
r = json.loads(sys.argv[1])
before, peak, after = r["rss_before_kib"], r["rss_peak_kib"], r["rss_after_kib"]
checked = r["checked_blocks"]
grown = after - before
slack = 16 * 1024 + 0.05 * max(0, peak - before)
print(f"RSS {before} -> peak {peak} -> {after} KiB (+{grown}, limit +{slack:.0f}), {checked} blocks checked")
sys.exit(0 if grown <= slack else 1)' "$1"
}

part_stress() {
  local c t n api exe line note
  for c in "${configs[@]}"; do
    t=${c%x*} n=${c#*x}
    for api in hmalloc memtier memtier+fsdax; do
      exe=$out/stress_malloc
      [ "$api" = hmalloc ] && exe=$out/stress_hmalloc
      local t0=$SECONDS
      if line=$(run_as "$api" "$exe" threads "$t" "$n" 2> "$out/stress.err" | tail -n 1) &&
        note=$(rss_ok "$line"); then
        pass "stress $api ${t}x$n: $note, $((SECONDS - t0)) s"
      else
        fail "stress $api ${t}x$n: ${line:-no output} $(head -c 400 "$out/stress.err")"
      fi
    done
  done
}

part_fork() {
  local api exe r
  r=$("$out/stress_hmalloc" fork 8 1000 2>&1 | tail -n 1) && [ "$r" = "ok fork 1000" ] &&
    pass "fork hmalloc 8 threads x 1000 forks" || fail "fork hmalloc: $r"
  for api in hmalloc memtier memtier+fsdax; do
    exe=$out/stress_malloc
    [ "$api" = hmalloc ] && exe=$out/stress_hmalloc
    r=$(run_as "$api" "$exe" spawn 8 500 2>&1 | tail -n 1) && [ "$r" = "ok spawn 500" ] &&
      pass "spawn $api 8 threads x 500 posix_spawn + 500 vfork/exec" || fail "spawn $api: $r"
  done
}

part_valgrind() {
  command -v valgrind > /dev/null || { fail "valgrind: not installed"; return; }
  local args log
  for args in "threads 8 20000" "fork 4 50" "spawn 4 50"; do
    log=$out/valgrind-${args// /-}.log
    # shellcheck disable=SC2086
    if valgrind --error-exitcode=99 --child-silent-after-fork=yes "$out/stress_hmalloc" $args > "$log" 2>&1 &&
      grep -q 'ERROR SUMMARY: 0 errors from 0 contexts (suppressed: 0 from 0)' "$log"; then
      pass "valgrind stress $args: 0 errors"
    else
      fail "valgrind stress $args: $(grep 'ERROR SUMMARY' "$log" | tail -n 1) (see $log)"
    fi
  done
}

# same NAME FILTER CMD...: CMD's status and filtered output without the interposer must equal
# those under memtier (DRAM) and memtier (DRAM + FS_DAX). FILTER is a command reading stdin.
same() {
  local name=$1 filter=$2; shift 2
  local api rc base rc0 t0
  base=$out/prog-${name// /_}
  t0=$SECONDS
  rc0=0; run_as none "$@" > "$base.none.raw" 2>&1 || rc0=$?
  bash -c "$filter" < "$base.none.raw" > "$base.none" || true
  for api in memtier memtier+fsdax; do
    t0=$SECONDS
    rc=0; run_as "$api" "$@" > "$base.$api.raw" 2>&1 || rc=$?
    bash -c "$filter" < "$base.$api.raw" > "$base.$api" || true
    if [ "$rc" = "$rc0" ] && cmp -s "$base.none" "$base.$api"; then
      pass "$name under $api: same output ($(wc -l < "$base.none") lines), status $rc, $((SECONDS - t0)) s"
    else
      fail "$name under $api: status $rc (without: $rc0); diff:"
      diff "$base.none" "$base.$api" | head -n 10 || true
    fi
  done
}

part_programs() {
  local tmp
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/tiermem-long-programs.XXXXXX")
  # python3's own test suite: the verdict lines, not the timings.
  same "python3 -m test (list dict set json re)" \
    "grep -E '(All [0-9]+ tests OK|Tests result: |tests? failed)'" \
    python3 -m test test_list test_dict test_set test_json test_re
  # node: 10M objects live at once, then a checksum over them.
  same "node 10M objects" cat node --max-old-space-size=4096 -e '
    const a = new Array(10_000_000);
    for (let i = 0; i < a.length; i++) a[i] = { i, s: "k" + (i % 1000), v: [i & 7] };
    let h = 0;
    for (const o of a) h = (h * 31 + o.i + o.s.length + o.v[0]) % 1000000007;
    const m = new Map(a.slice(0, 1_000_000).map((o) => [o.s + o.i, o]));
    console.log(a.length, m.size, h);'
  # git: a real repository's history, objects and blame.
  local repo=${GIT_REPO:-}
  if [ -z "$repo" ]; then repo=$tmp/repo; git clone -q --no-local "$root" "$repo"; fi
  same "git log -p" "sha256sum" git -C "$repo" log -p --no-color
  same "git fsck --full" cat git -C "$repo" fsck --full --no-progress
  same "git rev-list --objects --all" "sha256sum" git -C "$repo" rev-list --objects --all
  same "git grep" "sha256sum" git -C "$repo" grep -n -e malloc -e free
  # sqlite3: ROWS rows inserted, indexed, aggregated (each run its own database file).
  local rows=${ROWS:-1000000}
  same "sqlite3 $rows rows" cat bash -c "rm -f '$tmp/t.db'; sqlite3 '$tmp/t.db' \"
    CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT, v INTEGER);
    WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $rows)
    INSERT INTO t SELECT x, printf('key%07d', (x * 7919) % $rows), x % 977 FROM c;
    CREATE INDEX tk ON t(k);
    SELECT count(*), sum(v), min(k), max(k) FROM t;
    SELECT k, v FROM t WHERE k BETWEEN 'key0001000' AND 'key0001010' ORDER BY k;
    SELECT v % 10, count(*) FROM t GROUP BY 1 ORDER BY 1;\""
  # deno test of this project (its pure-TypeScript tests: no C builds, VM or nested preload).
  same "deno test (TS units)" "grep -E '^(ok|FAILED) \\|' | sed -E 's/ \\([0-9.]+m?s\\)\$//'" \
    env NO_COLOR=1 "$DENO" test -A --no-check=remote tests/unit/node_list_test.ts tests/unit/tier_spec_test.ts \
    tests/unit/hmctl_options_test.ts tests/unit/numa_maps_test.ts tests/unit/topology_test.ts tests/native/memtier_cli_test.ts
  rm -rf "$tmp"
}

for p in "${parts[@]}"; do
  echo "== $p"
  "part_$p"
done 2>&1 | tee "$out/run-long.log"
passed=$(grep -c '^PASS ' "$out/run-long.log" || true)
failed=$(grep -c '^FAIL ' "$out/run-long.log" || true)
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
