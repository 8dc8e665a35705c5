#!/usr/bin/env bash
# build-test-image.sh [OUT_FILE] - builds the dbc test guest: a small qcow2 that boots from its own disk with
# SeaBIOS (syslinux) and with OVMF (systemd-boot as EFI/BOOT/BOOTX64.EFI). Debian's stock kernel + a busybox initramfs, an
# ext4 busybox root with dropbear sshd, NoCloud seed credentials, udhcpc, acpid and a minimal guest agent.
# No mounts or loop devices: FAT via mkfs.fat+mtools, ext4 via mke2fs -d, both dd'ed into the partitioned disk.
# Default OUT_FILE: <repo>/.cache/images/dbc-test.qcow2. Needs scripts/setup-system.sh's packages. Docs: docs/test-image.md
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GUEST=$REPO/scripts/guest
OUT=${1:-$REPO/.cache/images/dbc-test.qcow2}
KCACHE=$REPO/.cache/kernel

# shellcheck source=lib/boot-disk.sh
. "$REPO/scripts/lib/boot-disk.sh"
BOOT_MIB=48
ROOT_MIB=207   # 256 MiB in all
CMDLINE="console=tty0 console=ttyS0,115200 quiet panic=10 dbc.root=LABEL=dbc-root"

for tool in busybox dropbear dropbearkey mke2fs dpkg-deb; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || [ -x "/sbin/$tool" ] ||
    { echo "build-test-image: $tool missing, run scripts/setup-system.sh" >&2; exit 1; }
done
export PATH=$PATH:/usr/sbin:/sbin
boot_disk_tools build-test-image || exit 1

# --- kernel: Debian's stock kernel unpacked from its .deb (no postinst, no initramfs-tools), cached ---
mkdir -p "$KCACHE"
KDEB=$(ls -t "$KCACHE"/linux-image-[0-9]*-amd64_*.deb 2>/dev/null | head -n 1 || true)
if [ -z "$KDEB" ]; then
  KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  if [ -z "$KPKG" ]; then apt-get update -qq; KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}'); fi
  [ -n "$KPKG" ] || { echo "build-test-image: cannot resolve linux-image-amd64" >&2; exit 1; }
  (cd "$KCACHE" && apt-get download -qq -o APT::Sandbox::User=root "$KPKG")
  KDEB=$(ls -t "$KCACHE"/"$KPKG"_*.deb | head -n 1)
fi
KPKG=$(basename "$KDEB"); KPKG=${KPKG%%_*}
KV=${KPKG#linux-image-}
KTREE=$KCACHE/$KV
if [ ! -f "$KTREE/.complete" ]; then
  rm -rf "$KTREE"; mkdir -p "$KTREE"
  # only the kernel image and the module directories the guest can use
  dpkg-deb --fsys-tarfile "$KDEB" | tar -x -C "$KTREE" --wildcards "./boot/vmlinuz-$KV" \
    "./lib/modules/$KV/kernel/drivers/virtio/*" "./lib/modules/$KV/kernel/drivers/block/*" \
    "./lib/modules/$KV/kernel/drivers/net/*" "./lib/modules/$KV/kernel/drivers/char/*" \
    "./lib/modules/$KV/kernel/drivers/ata/*" "./lib/modules/$KV/kernel/drivers/scsi/*" \
    "./lib/modules/$KV/kernel/drivers/cdrom/*" "./lib/modules/$KV/kernel/drivers/acpi/*" \
    "./lib/modules/$KV/kernel/drivers/input/*" "./lib/modules/$KV/kernel/fs/*" \
    "./lib/modules/$KV/kernel/lib/*" "./lib/modules/$KV/kernel/crypto/*" "./lib/modules/$KV/kernel/net/core/*" \
    "./lib/modules/$KV/modules.*"
  busybox depmod -b "$KTREE" "$KV"
  touch "$KTREE/.complete"
fi
VMLINUZ=$KTREE/boot/vmlinuz-$KV
MODDIR=$KTREE/lib/modules/$KV

W=$(mktemp -d "${TMPDIR:-/tmp}/dbc-image.XXXXXX")
trap 'rm -rf "$W"' EXIT

# --- initramfs: static busybox, the wanted modules with their dependencies (from modules.dep), /init ---
INITRD=$W/initrd
mkdir -p "$INITRD"/{bin,etc,proc,sys,dev,tmp,newroot,lib/modules/"$KV"}
cp /bin/busybox "$INITRD/bin/busybox"
cp "$GUEST/initramfs-init" "$INITRD/init"; chmod 755 "$INITRD/init"
cp "$GUEST/modules" "$INITRD/etc/modules"
declare -A WANT=()
add_module() { # add_module NAME: the .ko path of NAME and of its dependencies
  local name=$1 rel dep
  rel=$(awk -F: -v n="$name" '{ f = $1; sub(/.*\//, "", f); sub(/\.ko.*$/, "", f); gsub(/-/, "_", f); if (f == n) { print $1; exit } }' "$MODDIR/modules.dep")
  [ -n "$rel" ] || { echo "build-test-image: module $name not in $KV" >&2; exit 1; }
  [ -n "${WANT[$rel]:-}" ] && return 0
  WANT[$rel]=1
  for dep in $(awk -F: -v r="$rel" '$1 == r { print $2; exit }' "$MODDIR/modules.dep"); do
    dep=${dep##*/}; dep=${dep%%.ko*}; add_module "${dep//-/_}"
  done
}
# modules: loaded by the initramfs; modules.extra: on disk for modprobe later (e.g. ata_piix for a -cdrom seed)
for m in $(cat "$GUEST/modules" "$GUEST/modules.extra"); do add_module "$m"; done
for rel in "${!WANT[@]}"; do
  mkdir -p "$INITRD/lib/modules/$KV/$(dirname "$rel")"
  cp "$MODDIR/$rel" "$INITRD/lib/modules/$KV/$rel"
done
busybox depmod -b "$INITRD" "$KV"
(cd "$INITRD" && find . | LC_ALL=C sort | busybox cpio -o -H newc 2>/dev/null | gzip -6 > "$W/initrd.gz")

# --- root filesystem: merged-/usr layout, busybox applets, dropbear + blkid + mke2fs with their libraries ---
R=$W/root
mkdir -p "$R"/{bin,lib,lib64,etc/init.d,etc/acpi/PWRF,etc/udhcpc,etc/dropbear,dev,proc,sys,run,tmp,root,home,data,mnt,usr,var}
ln -s bin "$R/sbin"; ln -s ../bin "$R/usr/bin"; ln -s ../bin "$R/usr/sbin"; ln -s ../lib "$R/usr/lib"
ln -s ../run "$R/var/run"; mkdir -p "$R/var/log"
cp /bin/busybox "$R/bin/busybox"
for a in $(busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$R/bin/$a"; done
ln -sf busybox "$R/bin/bash"  # cloud-config users often ask for /bin/bash; busybox ash answers
# ping for non-root users: busybox 1.35's ping insists on a raw socket (root only); dbc-ping uses an ICMP datagram
# socket, allowed by net.ipv4.ping_group_range (rcS opens it). Without a C compiler busybox ping stays (root only).
if command -v cc >/dev/null && cc -static -Os -s -o "$W/ping" "$GUEST/dbc-ping.c" -lm 2>"$W/cc.log"; then
  rm -f "$R/bin/ping"; install -m 755 "$W/ping" "$R/bin/ping"
else
  [ ! -s "$W/cc.log" ] || cat "$W/cc.log" >&2
  echo "build-test-image: cannot build dbc-ping (needs gcc and libc6-dev): guest ping works for root only" >&2
fi
# a UDP echo server for the forwarded-UDP tests (busybox has no UDP listener)
if command -v cc >/dev/null && cc -static -Os -s -o "$W/dbc-udp-echo" "$GUEST/dbc-udp-echo.c" 2>"$W/cc.log"; then
  install -m 755 "$W/dbc-udp-echo" "$R/bin/dbc-udp-echo"
else
  [ ! -s "$W/cc.log" ] || cat "$W/cc.log" >&2
  echo "build-test-image: cannot build dbc-udp-echo (needs gcc and libc6-dev)" >&2
fi
for b in /usr/sbin/dropbear /usr/bin/dropbearkey /sbin/mke2fs /sbin/blkid; do
  rm -f "$R/bin/${b##*/}"; cp "$b" "$R/bin/${b##*/}"
  for lib in $(ldd "$b" | awk '/=>/ { print $3 } /^[ \t]*\/lib64\// { print $1 }'); do
    [ -f "$lib" ] || continue
    case "$lib" in
      /lib64/*) cp -L "$lib" "$R/lib64/" ;;
      *) mkdir -p "$R/lib/x86_64-linux-gnu"; cp -L "$lib" "$R/lib/x86_64-linux-gnu/" ;;
    esac
  done
done
install -m 644 "$GUEST/inittab" "$R/etc/inittab"
install -m 755 "$GUEST/rcS" "$R/etc/init.d/rcS"
install -m 755 "$GUEST/rcK" "$R/etc/init.d/rcK"
install -m 755 "$GUEST/acpi-power-button" "$R/etc/acpi/PWRF/00000080"
install -m 755 "$GUEST/udhcpc.script" "$R/etc/udhcpc/default.script"
for s in dbc-seed dbc-set-password dbc-data-disk dbc-agent; do install -m 755 "$GUEST/$s" "$R/bin/$s"; done
install -m 644 "$GUEST/profile" "$R/etc/profile"
cat > "$R/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat > "$R/etc/group" <<'P'
root:x:0:
tty:x:5:
nogroup:x:65534:
P
printf 'root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n' > "$R/etc/shadow"; chmod 600 "$R/etc/shadow"
printf '/bin/sh\n/bin/ash\n/bin/bash\n' > "$R/etc/shells"
printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n' > "$R/etc/nsswitch.conf"
echo dbc-guest > "$R/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 dbc-guest\n' > "$R/etc/hosts"
: > "$R/etc/resolv.conf"
echo "dbc test guest (busybox, kernel $KV)" > "$R/etc/issue"
chmod 700 "$R/root"; chmod 1777 "$R/tmp"

cp -a "$INITRD/lib/modules" "$R/lib/"

truncate -s "${ROOT_MIB}M" "$W/root.ext4"
mke2fs -q -F -t ext4 -b 4096 -I 256 -L dbc-root -d "$R" "$W/root.ext4" "${ROOT_MIB}M"

# --- the disk: FAT boot partition (syslinux + systemd-boot) and the ext4 root (scripts/lib/boot-disk.sh) ---
write_boot_disk "$W" "$VMLINUZ" "$W/initrd.gz" "$CMDLINE" "dbc test guest" "$BOOT_MIB" "$W/root.ext4" "$ROOT_MIB" "$OUT"
echo "$OUT"
