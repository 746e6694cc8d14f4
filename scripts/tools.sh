# Source this file: it installs the pinned toolchains when missing and defines
#   DENO  path of the pinned deno binary
#   ZIG   command that runs the pinned zig ("python3 -m ziglang")
#   zig   a shell function running $ZIG
# Both go into .tools/ (project-local, git-ignored): Deno from npm, Zig from PyPI into a virtual
# environment (.tools/venv: Debian 12's pip refuses the system Python, PEP 668).
TIERMEM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$TIERMEM_ROOT/scripts/versions.sh"

tiermem_log() { printf 'tiermem: %s\n' "$*" >&2; }

tiermem_ensure_deno() {
  DENO="$TIERMEM_ROOT/.tools/node_modules/.bin/deno"
  if [ -x "$DENO" ] && [ "$("$DENO" --version 2>/dev/null | head -n1 | awk '{print $2}')" = "$DENO_VERSION" ]; then
    return 0
  fi
  command -v npm >/dev/null || { tiermem_log "npm is needed to install deno $DENO_VERSION"; return 1; }
  tiermem_log "installing deno $DENO_VERSION from npm into .tools/"
  mkdir -p "$TIERMEM_ROOT/.tools"
  (cd "$TIERMEM_ROOT/.tools" && [ -f package.json ] || echo '{"private":true}' > package.json)
  (cd "$TIERMEM_ROOT/.tools" && npm install --save-exact --no-audit --no-fund --loglevel=error "deno@$DENO_VERSION" >&2) || return 1
  [ -x "$DENO" ] || { tiermem_log "deno was not installed at $DENO"; return 1; }
}

tiermem_ensure_zig() {
  local py="$TIERMEM_ROOT/.tools/venv/bin/python3"
  ZIG="$py -m ziglang"
  if [ "$("$py" -m ziglang version 2>/dev/null)" = "$ZIG_VERSION" ]; then return 0; fi
  tiermem_log "installing zig $ZIG_VERSION from PyPI into .tools/venv"
  [ -x "$py" ] || python3 -m venv "$TIERMEM_ROOT/.tools/venv" >&2 || return 1
  "$py" -m pip install --quiet --disable-pip-version-check "ziglang==$ZIG_VERSION" >&2 || return 1
  [ "$("$py" -m ziglang version 2>/dev/null)" = "$ZIG_VERSION" ] || { tiermem_log "zig $ZIG_VERSION did not install"; return 1; }
}

zig() { "$TIERMEM_ROOT/.tools/venv/bin/python3" -m ziglang "$@"; }

tiermem_ensure_deno && tiermem_ensure_zig && export PATH="$TIERMEM_ROOT/.tools/venv/bin:$PATH"
