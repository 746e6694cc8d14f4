#!/usr/bin/env bash
# The README's demo command (scripts/demo.ts): bash only brings the pinned Deno.
. "$(dirname "$0")/tools.sh" || exit 1
exec "$DENO" run -A "$TIERMEM_ROOT/scripts/demo.ts" "$@"
