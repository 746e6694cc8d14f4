#!/usr/bin/env bash
# Builds the libFuzzer binaries of the parser fuzz targets into tests/out/fuzz/:
#   fuzz_tier_spec  fuzz_node_list  fuzz_policy  fuzz_policy_env
# Each Zig target (tests/fuzz/fuzz_<name>.zig) is compiled with -ffuzz (edge counters)
# -OReleaseSafe (bounds and overflow checks stay on) into an object, then linked with
# harness.c by `clang -fsanitize=fuzzer`. Needs clang and libclang-rt-14-dev (Debian).
# Arguments: target names to build (default: all four). Rebuilds only what changed.
set -euo pipefail
. "$(dirname "$0")/../../scripts/tools.sh"
cd "$TIERMEM_ROOT"
command -v clang > /dev/null || { echo "fuzz/build.sh: clang is missing (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }
out=tests/out/fuzz
mkdir -p "$out"
src=zig-src/src
# target -> the parser module it fuzzes (the module root is the parser file, so its
# relative imports resolve in zig-src/src/)
declare -A module=([tier_spec]=tier_spec [node_list]=node_list [policy]=policy [policy_env]=policy_env)
targets=("$@")
[ ${#targets[@]} = 0 ] && targets=(tier_spec node_list policy policy_env)
for t in "${targets[@]}"; do
  m=${module[$t]:?unknown fuzz target $t}
  bin=$out/fuzz_$t
  newest=$(ls -t tests/fuzz/fuzz_"$t".zig tests/fuzz/check.zig tests/fuzz/harness.c "$src"/*.zig | head -n1)
  if [ -x "$bin" ] && [ "$bin" -nt "$newest" ]; then continue; fi
  echo "fuzz/build.sh: building fuzz_$t" >&2
  # Built under a temporary name, then renamed: another run may be executing the old binary.
  # -fno-stack-check: stack probes would need compiler-rt's __zig_probe_stack, not linked here.
  tmp=$out/.build_$t.$$
  zig build-obj -fPIC -OReleaseSafe -ffuzz -fno-stack-check -lc -femit-bin="$tmp.o" \
    --dep "$m" -Mroot=tests/fuzz/fuzz_"$t".zig -M"$m"="$src/$m.zig"
  clang -O1 -c -DFUZZ_TARGET="fuzz_$t" tests/fuzz/harness.c -o "$tmp.harness.o"
  clang -fsanitize=fuzzer "$tmp.harness.o" "$tmp.o" -o "$tmp"
  mv -f "$tmp" "$bin"
  rm -f "$tmp.o" "$tmp.harness.o"
done
