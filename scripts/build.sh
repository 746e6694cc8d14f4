#!/usr/bin/env bash
# Builds libhmalloc.so, libmemtier.so and hmalloc.h into zig-src/zig-out/.
# OPTIMIZE=debug|safe|fast|small (default fast: the build users run and we benchmark).
set -euo pipefail
. "$(dirname "$0")/tools.sh"
cd "$TIERMEM_ROOT/zig-src"
zig build -Doptimize="${OPTIMIZE:-fast}" "$@"
