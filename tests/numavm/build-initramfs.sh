#!/usr/bin/env bash
# build-initramfs.sh KVER OUT — the numavm guest's initramfs: busybox-static, the 9p/virtio/overlay
# modules of kernel KVER (uncompressed: busybox insmod can't read .ko.xz), and an init that mounts
# the host / over 9p (read-only) under a tmpfs overlay (the guest may write anywhere; discarded),
# chroots into it, runs $CTL/cmd.sh, saves its output and rc into the ctl share and powers off.
# Automatic NUMA balancing is switched off in the guest: it would move pages between the
# allocation and the count, and placement tests measure where the policy put them.
set -euo pipefail
KVER=$1 OUT=$2
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
mkdir -p "$W"/{bin,mods,proc,sys,dev,ctl,newroot,lower,upper}
cp /bin/busybox "$W/bin/"                                  # apt-get install busybox-static
modprobe -S "$KVER" -a --show-depends 9p 9pnet_virtio virtio_pci overlay | awk '$1=="insmod"{print $2}' |
while read -r ko; do                                       # ordered, deps first; builtins skipped
  b=$(basename "$ko"); b=${b%%.ko*}; grep -qx "$b" "$W/mods/order" 2>/dev/null && continue
  case $ko in *.xz) xz -dc "$ko";; *.zst) zstd -qdc "$ko";; *.gz) gzip -dc "$ko";; *) cat "$ko";; esac > "$W/mods/$b.ko"
  echo "$b" >> "$W/mods/order"                             # busybox insmod can't read compressed .ko
done
cat > "$W/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin; export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs dev /dev
echo 0 > /proc/sys/kernel/numa_balancing 2>/dev/null
for m in $(cat /mods/order); do insmod /mods/$m.ko || echo "numavm: insmod $m failed"; done
O=trans=virtio,version=9p2000.L,msize=512000
mount -t 9p -o $O ctl /ctl || { echo "numavm: cannot mount ctl share"; poweroff -f; }
. /ctl/env                                     # CTL = host path of ctl dir, RW = rw dirs
R=/newroot
mount -t 9p -o $O,ro,cache=loose hostroot /lower || { echo "numavm: cannot mount hostroot"; poweroff -f; }
mount -t tmpfs upper /upper; mkdir /upper/u /upper/w   # writable overlay, changes discarded
mount -t overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w root $R
mount -t proc proc $R/proc; mount -t sysfs sysfs $R/sys; mount -t devtmpfs dev $R/dev
mkdir -p $R/dev/pts $R/dev/shm; mount -t devpts devpts $R/dev/pts; mount -t tmpfs shm $R/dev/shm
mount -t tmpfs run $R/run
mkdir -p $R$CTL; mount --bind /ctl $R$CTL
i=0; for d in $RW; do mkdir -p $R$d 2>/dev/null; mount -t 9p -o $O rw$i $R$d || echo "numavm: rw$i failed"; i=$((i+1)); done
set -o pipefail
chroot $R /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin \
    HOME=/root LANG=C.UTF-8 TERM=dumb /bin/bash $CTL/cmd.sh </dev/null 2>&1 | tee /ctl/output
echo $? > /ctl/rc
sync; poweroff -f
INIT
chmod +x "$W/init"
(cd "$W" && find . | cpio -o -H newc --quiet | gzip -1) > "$OUT"
