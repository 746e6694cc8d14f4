# Source this file (bash): it provides the one thing bash must do before TypeScript takes over —
# the pinned Deno — and defines TIERMEM_ROOT, DENO and tiermem_log. Everything else (Debian
# packages, Zig, builds, tests) is scripts/*.ts, run by that Deno with dax.
#   TIERMEM_PROFILES  which lines of scripts/debian-packages.txt a non-root user is told to install
#                     when npm is missing (default: every profile)
# Deno comes from the npm registry into .tools/ (project-local, git-ignored), its version from
# deno.json ("toolchains"). On a bare Debian/Ubuntu machine npm itself comes from apt-get as root;
# without root, one `sudo apt-get install …` line is printed and nothing is changed.
TIERMEM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DENO_VERSION=$(sed -n -E 's/^ *"deno": *"([0-9]+\.[0-9]+\.[0-9]+)".*/\1/p' "$TIERMEM_ROOT/deno.json" | head -n1)
DENO="$TIERMEM_ROOT/.tools/node_modules/.bin/deno"

tiermem_log() { printf 'tiermem: %s\n' "$*" >&2; }

tiermem_ensure_npm() {
  command -v npm > /dev/null && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
    tiermem_log "installing npm with apt-get (it installs Deno $DENO_VERSION)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -q -o Dpkg::Use-Pty=0 update > /dev/null &&
      apt-get -y -q -o Dpkg::Use-Pty=0 install --no-install-recommends npm ca-certificates > /dev/null ||
      { tiermem_log "apt-get install npm failed"; return 1; }
    return 0
  fi
  local profiles=${TIERMEM_PROFILES:-bootstrap build demo test vm} pkgs
  pkgs=$(awk -v want=" $profiles " '!/^#/ && NF >= 2 && index(want, " " $1 " ") { print $2 }' \
    "$TIERMEM_ROOT/scripts/debian-packages.txt" | tr '\n' ' ')
  tiermem_log "npm is needed to install Deno $DENO_VERSION; as root, run:"
  printf '  sudo apt-get install -y %s\n' "$pkgs" >&2
  return 1
}

tiermem_ensure_deno() {
  [ -n "$DENO_VERSION" ] || { tiermem_log "no \"deno\" version in deno.json's toolchains"; return 1; }
  if [ -x "$DENO" ] && [ "$("$DENO" --version 2> /dev/null | head -n1 | awk '{print $2}')" = "$DENO_VERSION" ]; then
    return 0
  fi
  tiermem_ensure_npm || return 1
  tiermem_log "installing deno $DENO_VERSION from npm into .tools/"
  mkdir -p "$TIERMEM_ROOT/.tools"
  [ -f "$TIERMEM_ROOT/.tools/package.json" ] || echo '{"private":true}' > "$TIERMEM_ROOT/.tools/package.json"
  (cd "$TIERMEM_ROOT/.tools" && npm install --save-exact --no-audit --no-fund --loglevel=error "deno@$DENO_VERSION" >&2) ||
    { tiermem_log "npm install deno@$DENO_VERSION failed"; return 1; }
  [ -x "$DENO" ] || { tiermem_log "deno was not installed at $DENO"; return 1; }
}

tiermem_ensure_deno

# Zig (for the bash scripts that call it: tests/fuzz, tests/stress): the venv that
# scripts/support/toolchain.ts makes; `tiermem_ensure_zig` makes it when missing.
tiermem_ensure_zig() {
  [ -x "$TIERMEM_ROOT/.tools/venv/bin/python3" ] && "$TIERMEM_ROOT/.tools/venv/bin/python3" -m ziglang version > /dev/null 2>&1 ||
    "$DENO" run -A "$TIERMEM_ROOT/scripts/support/toolchain.ts" zig > /dev/null
}
zig() { "$TIERMEM_ROOT/.tools/venv/bin/python3" -m ziglang "$@"; }
