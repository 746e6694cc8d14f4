#!/usr/bin/env bash
# The README's test command: every suite, ending with one line `N passed, N failed`
# (scripts/test.ts). Bash only brings the pinned Deno; a failure to do so is counted too.
if ! . "$(dirname "$0")/tools.sh"; then
  echo "set-up failed: the pinned Deno could not be installed (see above)"
  echo "0 passed, 1 failed"
  exit 1
fi
exec "$DENO" run -A "$TIERMEM_ROOT/scripts/test.ts" "$@"
