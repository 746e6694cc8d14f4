#!/usr/bin/env bash
# The quick-start demo: builds libhmalloc, compiles the example program (tests/c/placement.c:
# 512 MiB through hmalloc, 256 MiB through malloc, every page written) and runs it under hmctl
# (`deno run -A cli.ts`), printing how many MiB of the hmalloc pool and of the rest of the
# program landed on each NUMA node, counted page by page with move_pages(2).
#   1. on this machine: `cli.ts -m N` with N its first node with memory;
#   2. if the 4-node test VM can run here (tests/numavm/): the issue's example,
#      `numactl -p 1 deno run -A cli.ts -m 2 ./placement` — hmalloc pages on node 2, the rest on 1.
# DEMO_HM_MIB / DEMO_MALLOC_MIB change the sizes; DEMO_VM=0 skips the VM.
set -euo pipefail
. "$(dirname "$0")/tools.sh"
cd "$TIERMEM_ROOT"
hm_mib=${DEMO_HM_MIB:-512}
malloc_mib=${DEMO_MALLOC_MIB:-256}
out=$TIERMEM_ROOT/build/demo
lib=$TIERMEM_ROOT/zig-src/zig-out/lib

echo "== building libhmalloc.so"
bash scripts/build.sh
mkdir -p "$out"
echo "== compiling the example program (tests/c/placement.c)"
gcc -O2 -std=gnu11 -I zig-src/zig-out/include -o "$out/placement" tests/c/placement.c \
  -L "$lib" -lhmalloc -Wl,-rpath,"$lib"

show() { grep -v -e '^placement: main reached$' -e '^{'; }

node=$(sed -E 's/^([0-9]+).*/\1/' /sys/devices/system/node/has_memory 2> /dev/null || echo 0)
echo
echo "== this machine ($(cat /sys/devices/system/node/online 2> /dev/null || echo '?') online):"
echo "   deno run -A cli.ts -m $node ./placement $hm_mib $malloc_mib"
"$DENO" run -A cli.ts -m "$node" "$out/placement" --table "$hm_mib" "$malloc_mib" | show

if [ "${DEMO_VM:-1}" = 0 ]; then exit 0; fi
echo
if reason=$(bash tests/numavm/numavm.sh --check); then
  echo "== the 4-node VM (nodes 0,1: CPU + DRAM; 2,3: memory-only, lower tier), ~1 min:"
  echo "   numactl -p 1 deno run -A cli.ts -m 2 ./placement $hm_mib $malloc_mib"
  bash tests/numavm/numavm.sh numactl -p 1 "$DENO" run -A cli.ts -m 2 \
    "$out/placement" --table "$hm_mib" "$malloc_mib" | show
else
  echo "== the 4-node VM is not available here: $reason"
fi
