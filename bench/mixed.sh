#!/usr/bin/env bash
# bench/mixed.sh — the first allocator benchmark, now two rows of the suite (bench/run.ts):
# mixed sizes 8 B..32 KiB, 1 and 2 threads, every peer, ns/op and ratio to the fastest peer.
# Arguments go to bench/run.ts (e.g. --peers glibc,jemalloc,hmalloc --reps 3 --instructions).
set -euo pipefail
exec bash "$(dirname "$0")/../scripts/bench.sh" --rows mixed "$@"
