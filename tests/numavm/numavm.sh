#!/usr/bin/env bash
# numavm.sh — run commands from the host's own files inside a qemu/TCG guest with 4 NUMA nodes:
#   node 0,1 = one CPU + 1 GiB DRAM each; node 2,3 = memory-only 1 GiB, slower per HMAT (CXL-like).
# Host / is visible read-only (throw-away overlay); $PWD and $NUMAVM_RW (space-separated dirs)
# are shared read-write. The guest environment is reset: pass variables with `env VAR=x cmd`.
#
#   numavm.sh --check                 is the VM usable here? prints "ok" or the reason; rc 0 / 3
#   numavm.sh CMD [ARGS...]           one command: prints its output (stdout+stderr), exits with
#                                     its rc (125 = the VM failed)
#   numavm.sh --steps DIR             several commands in ONE boot: each DIR/NAME.sh runs in order
#                                     (bash, cwd $PWD); writes DIR/NAME.out, DIR/NAME.rc and
#                                     DIR/NAME.ms (guest wall time) plus DIR/console.log; prints a
#                                     summary; rc 0 when the guest ran every step, 125 otherwise.
#
# Settings: NUMAVM_KVER (default: newest kernel with /boot/vmlinuz-* and /lib/modules/*),
# NUMAVM_CACHE (initramfs cache dir), NUMAVM_TIMEOUT (whole boot, s, default 900),
# NUMAVM_STEP_TIMEOUT (each step, s, default none), NUMAVM_CONSOLE=FILE (keep the serial log),
# NUMAVM_APPEND (kernel args), NUMAVM_NODE_MEM (default 1G), NUMAVM_MEM (default 4G),
# NUMAVM_CPU (qemu CPU model, default Nehalem: an old x86-64-v2 CPU without AVX, so a library built
# for the host's CPU fails here on every host), NUMAVM_SLOTS (guests at once on this host, default 2).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
MIN_KERNEL=6.9   # MPOL_WEIGHTED_INTERLEAVE and /sys/kernel/mm/mempolicy/ appeared in 6.9

numavm_log() { printf 'numavm: %s\n' "$*" >&2; }

# Newest kernel version that has both an image and a module tree.
pick_kver() {
  local k best=""
  for k in $(ls /lib/modules 2>/dev/null | sort -V); do
    [ -r "/boot/vmlinuz-$k" ] && [ -f "/lib/modules/$k/modules.dep" ] && best=$k
  done
  printf '%s' "$best"
}

version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

# Prints "ok" or the first reason the VM cannot run here; returns 0 / 3.
check() {
  local kver=${NUMAVM_KVER:-$(pick_kver)} tool
  command -v qemu-system-x86_64 >/dev/null ||
    { echo "qemu-system-x86_64 not found (apt-get install qemu-system-x86)"; return 3; }
  for tool in modprobe cpio gzip xz; do
    command -v "$tool" >/dev/null || { echo "$tool not found (scripts/install-deps.sh installs it)"; return 3; }
  done
  [ -x /bin/busybox ] && file_is_static /bin/busybox ||
    { echo "static /bin/busybox not found (apt-get install busybox-static)"; return 3; }
  [ -n "$kver" ] || { echo "no kernel with both /boot/vmlinuz-* and /lib/modules/*/modules.dep"; return 3; }
  [ -e "/boot/vmlinuz-$kver" ] || { echo "no kernel image /boot/vmlinuz-$kver"; return 3; }
  [ -r "/boot/vmlinuz-$kver" ] || { echo "/boot/vmlinuz-$kver not readable (run as root?)"; return 3; }
  [ -f "/lib/modules/$kver/modules.dep" ] || { echo "/lib/modules/$kver has no modules.dep"; return 3; }
  version_ge "${kver%%[-+]*}" "$MIN_KERNEL" ||
    { echo "kernel $kver < $MIN_KERNEL (install linux-image-amd64 from bookworm-backports)"; return 3; }
  echo ok
}

# busybox-static vs the dynamic busybox package: the initramfs has no libc.
file_is_static() { ! LC_ALL=C readelf -l "$1" 2>/dev/null | grep -q 'INTERP'; }

if [ "${1:-}" = --check ]; then check; exit $?; fi
if [ $# = 0 ]; then sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; fi

STEPS=""
if [ "$1" = --steps ]; then
  [ $# = 2 ] && [ -d "$2" ] || { numavm_log "--steps takes one directory of NAME.sh files"; exit 2; }
  STEPS=$(cd "$2" && pwd)
  ls "$STEPS"/*.sh >/dev/null 2>&1 || { numavm_log "no *.sh step in $STEPS"; exit 2; }
fi
reason=$(check) || { numavm_log "unavailable: $reason"; exit 125; }

KVER=${NUMAVM_KVER:-$(pick_kver)}
# The cache key includes the builder's own hash: editing build-initramfs.sh rebuilds.
BUILDER_HASH=$(sha256sum "$HERE/build-initramfs.sh" | cut -c1-12)
CACHE=${NUMAVM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tiermem-numavm}
mkdir -p "$CACHE"
INITRD=$CACHE/initramfs-$KVER-$BUILDER_HASH.cpio.gz
if [ ! -s "$INITRD" ]; then
  numavm_log "building initramfs for $KVER into $CACHE"
  tmp=$(mktemp "$INITRD.XXXXXX")
  bash "$HERE/build-initramfs.sh" "$KVER" "$tmp"
  mv -f "$tmp" "$INITRD"   # atomic: concurrent runs never see half a file
fi

CTL=$(mktemp -d /tmp/numavm.XXXXXX)
trap 'rm -rf "$CTL"' EXIT
RW="$PWD ${NUMAVM_RW:-}"
[ "$PWD" = / ] && RW=${NUMAVM_RW:-}   # never share / read-write
printf 'CTL=%q\nRW=%q\n' "$CTL" "$RW" > "$CTL/env"

step_timeout=()
[ -n "${NUMAVM_STEP_TIMEOUT:-}" ] && step_timeout=(timeout -k 5 "$NUMAVM_STEP_TIMEOUT")
{
  echo "cd $(printf %q "$PWD") || exit 126"
  if [ -z "$STEPS" ]; then
    printf '%q ' exec "$@"
    echo
  else
    mkdir "$CTL/steps"
    for f in "$STEPS"/*.sh; do
      name=$(basename "$f" .sh)
      cp "$f" "$CTL/steps/$name.sh"
      s=$(printf %q "$CTL/steps/$name")
      echo "t0=\$(date +%s%N)"
      echo "echo \"numavm: step $name\""
      echo "${step_timeout[*]} bash $s.sh > $s.out 2>&1 < /dev/null; rc=\$?"
      echo "echo \$rc > $s.rc; echo \$(( (\$(date +%s%N) - t0) / 1000000 )) > $s.ms"
      echo "echo \"numavm: step $name rc=\$rc\""
    done
    echo "exit 0"
  fi
} > "$CTL/cmd.sh"

A=()
i=0
for d in $RW; do
  A+=(-virtfs "local,path=$d,mount_tag=rw$i,security_model=none,multidevs=remap")
  i=$((i + 1))
done
for n in 0 1 2 3; do A+=(-object "memory-backend-ram,id=m$n,size=${NUMAVM_NODE_MEM:-1G}"); done
A+=(-numa node,nodeid=0,cpus=0,memdev=m0,initiator=0 -numa node,nodeid=1,cpus=1,memdev=m1,initiator=1
  -numa node,nodeid=2,memdev=m2,initiator=0 -numa node,nodeid=3,memdev=m3,initiator=1)
for s in 0 1 2 3; do for d in 0 1 2 3; do # SLIT: 10 local, 21 pair 0-1/2-3, 30 near CXL, 40 far CXL
  [ "$s" -lt "$d" ] && A+=(-numa "dist,src=$s,dst=$d,val=$(((s ^ d) == 1 ? 21 : (s % 2 == d % 2) ? 30 : 40))")
done; done
for i in 0 1; do for t in 0 1 2 3; do # HMAT: puts nodes 2,3 in a lower memory tier
  if [ "$t" = "$i" ]; then l=100 b=20G; elif [ "$t" -lt 2 ]; then l=150 b=10G; else l=300 b=5G; fi
  A+=(-numa "hmat-lb,initiator=$i,target=$t,hierarchy=memory,data-type=access-latency,latency=$l"
    -numa "hmat-lb,initiator=$i,target=$t,hierarchy=memory,data-type=access-bandwidth,bandwidth=$b")
done; done

# At most NUMAVM_SLOTS guests at once on this host (each takes 4 GiB and a core): wait for a slot.
slots=${NUMAVM_SLOTS:-2}
exec {slot_fd}> /dev/null
while :; do
  for ((s = 0; s < slots; s++)); do
    exec {slot_fd}> "/tmp/tiermem-numavm.slot$s.lock"
    flock -n "$slot_fd" && break 2
  done
  sleep 1
done

set +e
timeout "${NUMAVM_TIMEOUT:-900}" qemu-system-x86_64 -machine q35,hmat=on -accel tcg -cpu "${NUMAVM_CPU:-Nehalem}" \
  -smp 2,sockets=2,cores=1,threads=1 -m "${NUMAVM_MEM:-4G}" "${A[@]}" \
  -kernel "/boot/vmlinuz-$KVER" -initrd "$INITRD" \
  -append "console=ttyS0 quiet panic=-1 ${NUMAVM_APPEND:-}" \
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
  -virtfs "local,path=$CTL,mount_tag=ctl,security_model=none" \
  -nodefaults -display none -monitor none -serial file:"$CTL/console.log" -no-reboot < /dev/null
qrc=$?
set -e
[ -n "${NUMAVM_CONSOLE:-}" ] && cp "$CTL/console.log" "$NUMAVM_CONSOLE"

vm_failed() {
  numavm_log "VM failed (qemu/timeout rc=$qrc, kernel $KVER); console tail:"
  tail -n 40 "$CTL/console.log" >&2
  exit 125
}

if [ -z "$STEPS" ]; then
  cat "$CTL/output" 2> /dev/null || true
  [ -s "$CTL/rc" ] && exit "$(cat "$CTL/rc")"
  vm_failed
fi

cp "$CTL/console.log" "$STEPS/console.log"
missing=0
for f in "$STEPS"/*.sh; do
  name=$(basename "$f" .sh)
  for ext in out rc ms; do
    rm -f "$STEPS/$name.$ext"
    [ -f "$CTL/steps/$name.$ext" ] && cp "$CTL/steps/$name.$ext" "$STEPS/$name.$ext"
  done
  if [ -s "$STEPS/$name.rc" ]; then
    echo "== step $name: rc=$(cat "$STEPS/$name.rc") ($(cat "$STEPS/$name.ms" 2> /dev/null || echo '?') ms)"
  else
    echo "== step $name: did not finish"
    missing=1
  fi
done
[ "$missing" = 0 ] || vm_failed
