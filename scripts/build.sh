#!/usr/bin/env bash
# Builds the libraries into zig-src/zig-out/ (see scripts/build.ts for the options).
. "$(dirname "$0")/tools.sh" || exit 1
exec "$DENO" run -A "$TIERMEM_ROOT/scripts/build.ts" "$@"
