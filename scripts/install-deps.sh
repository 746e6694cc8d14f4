#!/usr/bin/env bash
# Installs the Debian 12 (bookworm) packages that tiermem's build, tests, benchmarks and the
# 4-node test VM need, skipping what is already installed (no apt-get at all when nothing is
# missing). Run as root (or with sudo available). Used by .ci/run; users may run it too.
#
#   build and tests     gcc (build-essential), binutils, git, sqlite3, python3.11 with CPython's
#                       regression suite (libpython3.11-testsuite: tests/cpython_test.ts)
#   comparisons         libjemalloc2, libjemalloc-dev, libmimalloc2.0, libtcmalloc-minimal4,
#                       libmemkind-dev, numactl, valgrind, strace
#   the 4-node VM       qemu-system-x86, busybox-static, kmod, cpio, xz-utils, and a Linux >= 6.9
#                       kernel image with modules (linux-image-amd64 from bookworm-backports:
#                       weighted interleave needs 6.9)
#   toolchains          npm (installs Deno) and python3 with pip (installs Zig), when missing
#
# TIERMEM_NO_KERNEL=1 skips the backports kernel (the VM tests then skip, or fail under CI).
set -euo pipefail

PACKAGES=(
  build-essential binutils git sqlite3 ca-certificates python3.11 libpython3.11-testsuite
  libjemalloc2 libjemalloc-dev libmimalloc2.0 libtcmalloc-minimal4 libmemkind-dev
  numactl valgrind strace
  qemu-system-x86 busybox-static kmod cpio xz-utils gzip
  clang libclang-rt-14-dev
)
MIN_KERNEL=6.9
BACKPORTS=/etc/apt/sources.list.d/backports.sources

log() { printf 'install-deps: %s\n' "$*" >&2; }

SUDO=()
if [ "$(id -u)" != 0 ]; then
  command -v sudo > /dev/null || { log "run as root (or install sudo)"; exit 1; }
  SUDO=(sudo)
fi
command -v apt-get > /dev/null || {
  log "no apt-get: install the equivalents of these yourself: ${PACKAGES[*]} and a Linux >= $MIN_KERNEL kernel image"
  exit 1
}

installed() { dpkg-query -W -f '${Status}' "$1" 2> /dev/null | grep -q 'install ok installed'; }

version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

# A kernel the VM can boot: image in /boot, module tree, version >= 6.9.
have_vm_kernel() {
  local k
  for k in $(ls /lib/modules 2> /dev/null); do
    [ -e "/boot/vmlinuz-$k" ] && [ -f "/lib/modules/$k/modules.dep" ] &&
      version_ge "${k%%[-+]*}" "$MIN_KERNEL" && return 0
  done
  return 1
}

have_backports_source() {
  grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/
}

missing=()
for p in "${PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
command -v npm > /dev/null || missing+=(npm)
python3 -m pip --version > /dev/null 2>&1 || missing+=(python3 python3-pip)

kernel=0
if [ "${TIERMEM_NO_KERNEL:-0}" != 1 ] && ! have_vm_kernel; then kernel=1; fi

if [ ${#missing[@]} = 0 ] && [ "$kernel" = 0 ]; then
  log "all packages present"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
APT=("${SUDO[@]}" apt-get -y -q -o Dpkg::Use-Pty=0)
if [ "$kernel" = 1 ] && ! have_backports_source; then
  log "adding the bookworm-backports source ($BACKPORTS)"
  printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' 'Suites: bookworm-backports' \
    'Components: main' 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' |
    "${SUDO[@]}" tee "$BACKPORTS" > /dev/null
fi
log "apt-get update"
"${APT[@]}" update
if [ ${#missing[@]} != 0 ]; then
  log "installing ${missing[*]}"
  "${APT[@]}" install --no-install-recommends "${missing[@]}"
fi
if [ "$kernel" = 1 ]; then
  log "installing a Linux >= $MIN_KERNEL kernel for the test VM (linux-image-amd64, bookworm-backports)"
  "${APT[@]}" install --no-install-recommends -t bookworm-backports linux-image-amd64
  have_vm_kernel || { log "no Linux >= $MIN_KERNEL image after installing linux-image-amd64"; exit 1; }
fi
log "done"
