#!/usr/bin/env bash
# bench/mixed.sh — the first allocator benchmark (issue: foundation).
# Mixed sizes 8 B..32 KiB, 1 and 2 threads: hmalloc API vs glibc malloc,
# jemalloc and mimalloc (Debian's libjemalloc2 / libmimalloc2.0 via LD_PRELOAD),
# all in one run; prints ns/op and the ratio to the fastest peer.
# OPS (default 5000000) sets operations per thread.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
lib="$root/zig-src/zig-out/lib"
out="$root/bench/out"; mkdir -p "$out"
[ -f "$lib/libhmalloc.so" ] || bash "$root/scripts/build.sh"
gcc -O2 -pthread -I "$root/zig-src/zig-out/include" "$here/mixed.c" -L "$lib" -lhmalloc -Wl,-rpath,"$lib" -o "$out/mixed"
ops=${OPS:-5000000}
peer_lib() { ls /usr/lib/x86_64-linux-gnu/$1 2>/dev/null | head -n1; }
declare -A peers=([glibc]="" [jemalloc]="$(peer_lib 'libjemalloc.so.2')" [mimalloc]="$(peer_lib 'libmimalloc.so.2*')")
printf '%-8s %-10s %10s %14s\n' threads allocator ns/op "vs fastest peer"
for threads in 1 2; do
  declare -A ns=()
  ns[hmalloc]=$("$out/mixed" hmalloc "$threads" "$ops" | sed 's/ns_per_op=//')
  for p in glibc jemalloc mimalloc; do
    if [ "$p" != glibc ] && [ -z "${peers[$p]}" ]; then continue; fi
    ns[$p]=$(LD_PRELOAD="${peers[$p]}" "$out/mixed" malloc "$threads" "$ops" | sed 's/ns_per_op=//')
  done
  best=$(for p in glibc jemalloc mimalloc; do [ -n "${ns[$p]:-}" ] && echo "${ns[$p]}"; done | sort -g | head -n1)
  for a in hmalloc glibc jemalloc mimalloc; do
    [ -n "${ns[$a]:-}" ] || continue
    printf '%-8s %-10s %10s %14s\n' "$threads" "$a" "${ns[$a]}" "$(awk -v x="${ns[$a]}" -v b="$best" 'BEGIN{printf "%.2fx", x/b}')"
  done
  unset ns
done
