#!/usr/bin/env bash
# Builds the libFuzzer binaries of the parser fuzz targets into tests/out/fuzz/:
#   fuzz_tier_spec  fuzz_node_list  fuzz_policy  fuzz_policy_env
# The targets sit beside their parsers (zig-src/src/<folder>/<parser>_fuzz.zig); `zig build fuzz`
# (zig-src/build.zig) compiles each with -ffuzz (edge counters) -OReleaseSafe (bounds and
# overflow checks stay on) into an object and links it with harness.c by
# `clang -fsanitize=fuzzer`. Needs clang and libclang-rt-14-dev (Debian).
# Arguments: target names to build (default: all). Zig's cache rebuilds only what changed.
set -euo pipefail
. "$(dirname "$0")/../../scripts/tools.sh"
cd "$TIERMEM_ROOT"
command -v clang > /dev/null || { echo "fuzz/build.sh: clang is missing (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }
tiermem_ensure_zig
only=()
for t in "$@"; do only+=("-Dfuzz-target=$t"); done
# Installed into tests/out/fuzz/ by rename: another run may be executing the old binary.
(cd zig-src && zig build fuzz ${only[@]+"${only[@]}"} --prefix "$TIERMEM_ROOT/tests/out")
