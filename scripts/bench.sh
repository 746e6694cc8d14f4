#!/usr/bin/env bash
# The benchmark suite (`deno task bench`): builds the libraries (fast), compiles the C workloads
# of bench/ into bench/out/, runs every row for every peer (glibc, jemalloc, mimalloc, tcmalloc,
# hmalloc API, our memtier; memkind's memtier for python) and prints the table; writes
# bench/out/results.json, table.txt and bench.svg. Arguments go to bench/run.ts:
#   --quick (CI sanity: tiny sizes, 1 repetition), --instructions (callgrind counts for the
#   mixed rows), --rows mixed,larson, --peers glibc,hmalloc, --reps N, --out DIR, --no-build.
set -euo pipefail
. "$(dirname "$0")/tools.sh"
cd "$TIERMEM_ROOT"
for tool in gcc python3 strace /usr/bin/time; do
  command -v "$tool" >/dev/null || { tiermem_log "bench needs $tool (apt-get install gcc python3 strace time)"; exit 1; }
done
exec "$DENO" run -A bench/run.ts "$@"
