#!/usr/bin/env bash
# The benchmark suite (`deno task bench`, see bench/README.md): installs what it needs, builds,
# and runs bench/run.ts with these arguments.
. "$(dirname "$0")/tools.sh" || exit 1
exec "$DENO" run -A "$TIERMEM_ROOT/scripts/bench.ts" "$@"
