#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages of scripts/debian-packages.txt (as root; see
# scripts/support/debian.ts): `bash scripts/install-deps.sh [PROFILE…]`, default every profile.
. "$(dirname "$0")/tools.sh" || exit 1
exec "$DENO" run -A "$TIERMEM_ROOT/scripts/support/debian.ts" "$@"
