#!/usr/bin/env bash
# Installs tiermem (bin/tiermem, bin/hmctl, bin/memtier, libhmalloc.so.1, libmemtier.so, hmalloc.h,
# hmalloc.pc, man pages) under a prefix, or removes exactly that installation:
#   bash scripts/install.sh [--prefix DIR] [--uninstall]
# (default DIR: /usr/local as root, ~/.local otherwise). The logic is scripts/install.ts.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/tools.sh"
export DENO ZIG
exec "$DENO" run -A "$here/install.ts" "$@"
