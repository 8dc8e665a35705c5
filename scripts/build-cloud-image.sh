#!/usr/bin/env bash
# build-cloud-image.sh [OUT_FILE] - builds a Debian 12 cloud image as a renter would bring one: debootstrap from the
# Debian archive with the stock kernel, systemd, cloud-init (its stock config, NoCloud among the datasources),
# qemu-guest-agent, openssh-server, sudo, ifupdown + isc-dhcp-client and growpart. No users, passwords or SSH host
# keys are baked in (cloud-init makes them on first boot); en_US.UTF-8 is generated (cloud-init's locale step needs it).
# One disk boots both ways: an MBR with syslinux for SeaBIOS and systemd-boot as EFI/BOOT/BOOTX64.EFI for OVMF, both
# on a FAT partition that holds the kernel and the initrd; the root is ext4 labelled dbc-root. No mounts or loop
# devices: mke2fs -d and mtools, dd'ed into the partitioned disk (as build-test-image.sh).
# Default OUT_FILE: <repo>/.cache/images/debian-12-cloud.qcow2. Packages are cached in <repo>/.cache/debootstrap.
# Root only (debootstrap). Env: DEBIAN_MIRROR (default http://deb.debian.org/debian). Docs: docs/cloud-image.md
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:-$REPO/.cache/images/debian-12-cloud.qcow2}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PKG_CACHE=$REPO/.cache/debootstrap

# shellcheck source=lib/boot-disk.sh
. "$REPO/scripts/lib/boot-disk.sh"
BOOT_MIB=127
ROOT_MIB=2944   # 3 GiB in all
CMDLINE="root=LABEL=dbc-root ro console=tty0 console=ttyS0,115200"
# what a Debian cloud image carries, less what a VM on a DBC node cannot use
# (python3-cffi-backend by name: debootstrap does not resolve the virtual package python3-cryptography depends on)
PACKAGES=linux-image-amd64,systemd-sysv,udev,dbus,cloud-init,qemu-guest-agent,openssh-server,sudo,ifupdown,isc-dhcp-client,cloud-guest-utils,fdisk,locales,iproute2,iputils-ping,netbase,procps,less,ca-certificates,python3-cffi-backend

[ "$(id -u)" -eq 0 ] || { echo "build-cloud-image: debootstrap needs root" >&2; exit 1; }
export PATH=$PATH:/usr/sbin:/sbin
for tool in debootstrap mke2fs; do
  command -v "$tool" >/dev/null || { echo "build-cloud-image: $tool missing, run scripts/setup-system.sh" >&2; exit 1; }
done
boot_disk_tools build-cloud-image || exit 1

W=$(mktemp -d "${TMPDIR:-/var/tmp}/dbc-cloud-image.XXXXXX")
cleanup() {
  # debootstrap mounts proc/sys inside the target while it runs; never leave them behind
  for m in proc sys dev/pts dev; do mountpoint -q "$W/root/$m" 2>/dev/null && umount -l "$W/root/$m" || true; done
  rm -rf --one-file-system "$W"
}
trap cleanup EXIT
R=$W/root
t0=$(date +%s)

# --- the root file system, from the Debian archive ---
mkdir -p "$PKG_CACHE"
debootstrap --variant=minbase --cache-dir="$PKG_CACHE" --include="$PACKAGES" bookworm "$R" "$MIRROR" > "$W/debootstrap.log" 2>&1 ||
  { tail -n 30 "$W/debootstrap.log" "$R/debootstrap/debootstrap.log" >&2; echo "build-cloud-image: debootstrap failed" >&2; exit 1; }
echo "build-cloud-image: debootstrap took $(( $(date +%s) - t0 )) s" >&2

echo 'en_US.UTF-8 UTF-8' > "$R/etc/locale.gen"
chroot "$R" /usr/sbin/locale-gen >/dev/null
echo 'LANG=en_US.UTF-8' > "$R/etc/default/locale"

cat > "$R/etc/fstab" <<'F'
LABEL=dbc-root / ext4 defaults,errors=remount-ro 0 1
F
cat > "$R/etc/network/interfaces" <<'N'
# cloud-init writes the VM's interfaces (DHCP on the first NIC) to interfaces.d/50-cloud-init
auto lo
iface lo inet loopback
source /etc/network/interfaces.d/*
N
mkdir -p "$R/etc/network/interfaces.d"
echo localhost > "$R/etc/hostname"
printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n' > "$R/etc/hosts"
: > "$R/etc/resolv.conf"
# first boot makes these: the machine id (systemd), the SSH host keys (cloud-init's ssh module)
: > "$R/etc/machine-id"; rm -f "$R/var/lib/dbus/machine-id"
rm -f "$R"/etc/ssh/ssh_host_*
rm -rf "$R"/var/lib/cloud/* "$R"/var/cache/apt/archives/*.deb "$R"/var/lib/apt/lists/* "$R"/var/log/*.log
# the kernel's own copy stays in /boot for the package manager; the boot loaders read the FAT partition
VMLINUZ=$(ls "$R"/boot/vmlinuz-* | sort -V | tail -n 1)
INITRD=$(ls "$R"/boot/initrd.img-* | sort -V | tail -n 1)
KV=${VMLINUZ##*/vmlinuz-}

truncate -s "${ROOT_MIB}M" "$W/root.ext4"
mke2fs -q -F -t ext4 -L dbc-root -d "$R" "$W/root.ext4" "${ROOT_MIB}M"

# --- the disk: FAT boot partition (syslinux + systemd-boot) and the ext4 root, last so growpart can grow it ---
write_boot_disk "$W" "$VMLINUZ" "$INITRD" "$CMDLINE" "Debian 12 ($KV)" "$BOOT_MIB" "$W/root.ext4" "$ROOT_MIB" "$OUT"
echo "build-cloud-image: $(du -m "$OUT" | cut -f1) MiB, kernel $KV, $(( $(date +%s) - t0 )) s" >&2
echo "$OUT"
