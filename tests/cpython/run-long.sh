#!/usr/bin/env bash
# CPython's regression suite under libmemtier (`deno task cpython:long`, issue 12): the 127 modules
# of tests/cpython/modules.txt with `-j2`, three times — without the interposer, under memtier with
# DRAM only, and with DRAM:1 + FS_DAX:4 (an FS_DAX tier on tmpfs) — then one line of pass counts per
# configuration. Needs /usr/bin/python3.11 and Debian's libpython3.11-testsuite (Lib/test).
# Logs: tests/out/cpython/<config>.log. About 15-25 minutes per configuration on a busy 2-core
# machine. CONFIGS="bare dram" runs a subset; MEMTIER_LIB points at another build of the library.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${PYTHON:-/usr/bin/python3.11}
lib=${MEMTIER_LIB:-$root/zig-src/zig-out/lib/libmemtier.so}
out=$root/tests/out/cpython
mkdir -p "$out"

[ -x "$python" ] || { echo "cpython:long: $python not found (apt-get install python3.11)"; exit 1; }
"$python" -c 'import test.libregrtest' 2> /dev/null ||
  { echo "cpython:long: CPython's test suite is missing (apt-get install libpython3.11-testsuite)"; exit 1; }
[ -f "$lib" ] || { echo "cpython:long: $lib not built (bash scripts/build.sh)"; exit 1; }

mapfile -t modules < <(grep -v '^#' "$here/modules.txt" | grep -v '^$')
fsdax=$(mktemp -d /dev/shm/cpython_long.XXXXXX)
# Open to every user like /dev/shm itself: test_subprocess runs children as another user (user=,
# group=), and a child that cannot create its FS_DAX file in PATH exits with that error.
chmod 1777 "$fsdax"
trap 'rm -rf "$fsdax"' EXIT

env_of() {
  case $1 in
    bare) ;;
    dram) echo "LD_PRELOAD=$lib MEMKIND_MEM_TIERS=KIND:DRAM,RATIO:1;POLICY:STATIC_RATIO" ;;
    dram+fsdax) echo "LD_PRELOAD=$lib MEMKIND_MEM_TIERS=KIND:DRAM,RATIO:1;KIND:FS_DAX,PATH:$fsdax,RATIO:4;POLICY:STATIC_RATIO" ;;
    *) echo "cpython:long: unknown configuration $1" >&2; exit 2 ;;
  esac
}

# "N tests OK." / "All N tests OK." and "N tests failed:" / "N test failed:" from regrtest's summary.
count() {
  local n
  n=$(grep -Eo "^(All )?[0-9]+ tests? $2" "$1" | grep -Eo '[0-9]+' | tail -n1)
  echo "${n:-0}"
}

results=()
for config in ${CONFIGS:-bare dram dram+fsdax}; do
  log=$out/$config.log
  echo "== $config: ${#modules[@]} modules, -j2 (log: $log)"
  start=$(date +%s)
  # shellcheck disable=SC2046
  (cd "$out" && env $(env_of "$config") "$python" -m test -j2 --timeout 900 "${modules[@]}") > "$log" 2>&1
  rc=$?
  secs=$(($(date +%s) - start))
  ok=$(count "$log" OK)
  failed=$(count "$log" failed)
  skipped=$(count "$log" skipped)
  failing=$(sed -n '/tests\? failed:/,/^$/p' "$log" | tail -n +2 | tr -s ' \n' ' ')
  tail -n 25 "$log"
  results+=("$config: $ok of ${#modules[@]} files passed, $failed failed, $skipped skipped (exit $rc, ${secs}s) failed: ${failing:-none}")
done
echo "== CPython regression suite (${#modules[@]} modules of tests/cpython/modules.txt)"
printf '%s\n' "${results[@]}"
