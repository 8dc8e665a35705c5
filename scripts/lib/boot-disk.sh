# boot-disk.sh - sourced by build-test-image.sh and build-cloud-image.sh: one disk that boots with SeaBIOS and OVMF.
# write_boot_disk WORKDIR VMLINUZ INITRD CMDLINE TITLE BOOT_MIB ROOT_EXT4 ROOT_MIB OUT
#   an MBR (syslinux's mbr.bin) with an active 0xEF FAT partition of BOOT_MIB (the kernel, the initrd, syslinux.cfg
#   for BIOS, systemd-boot as EFI/BOOT/BOOTX64.EFI for UEFI: Debian's GRUB EFI loader runs out of memory at small
#   -m under OVMF) from 1 MiB, then ROOT_EXT4 as the last partition (ROOT_MIB); written to OUT as compressed qcow2
#   through a temporary file in OUT's directory (replaced atomically). No mounts or loop devices: mtools and dd.
MBR_BIN=/usr/lib/syslinux/mbr/mbr.bin
SD_BOOT=/usr/lib/systemd/boot/efi/systemd-bootx64.efi

boot_disk_tools() { # boot_disk_tools SCRIPT_NAME: fail with a hint when a tool or file is missing
  local tool f
  for tool in mkfs.fat mcopy mmd syslinux sfdisk qemu-img; do
    command -v "$tool" >/dev/null || { echo "$1: $tool missing, run scripts/setup-system.sh" >&2; return 1; }
  done
  for f in "$MBR_BIN" "$SD_BOOT"; do [ -f "$f" ] || { echo "$1: $f missing, run scripts/setup-system.sh" >&2; return 1; }; done
}

write_boot_disk() {
  local w=$1 vmlinuz=$2 initrd=$3 cmdline=$4 title=$5 boot_mib=$6 root_ext4=$7 root_mib=$8 out=$9
  local boot_start=1 root_start=$((1 + boot_mib)) tmp
  cat > "$w/syslinux.cfg" <<S
SERIAL 0 115200
DEFAULT dbc
PROMPT 0
TIMEOUT 0
LABEL dbc
  LINUX /vmlinuz
  INITRD /initrd
  APPEND $cmdline
S
  printf 'timeout 0\ndefault dbc.conf\nconsole-mode keep\n' > "$w/loader.conf"
  printf 'title %s\nlinux /vmlinuz\ninitrd /initrd\noptions %s\n' "$title" "$cmdline" > "$w/dbc.conf"
  rm -f "$w/boot.fat"
  truncate -s "${boot_mib}M" "$w/boot.fat"
  mkfs.fat -F 16 -s 16 -n DBCBOOT "$w/boot.fat" >/dev/null
  export MTOOLS_SKIP_CHECK=1
  mcopy -i "$w/boot.fat" "$vmlinuz" ::/vmlinuz
  mcopy -i "$w/boot.fat" "$initrd" ::/initrd
  mcopy -i "$w/boot.fat" "$w/syslinux.cfg" ::/syslinux.cfg
  mmd -i "$w/boot.fat" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries
  mcopy -i "$w/boot.fat" "$SD_BOOT" ::/EFI/BOOT/BOOTX64.EFI
  mcopy -i "$w/boot.fat" "$w/loader.conf" ::/loader/loader.conf
  mcopy -i "$w/boot.fat" "$w/dbc.conf" ::/loader/entries/dbc.conf
  syslinux --install "$w/boot.fat"

  rm -f "$w/disk.raw"
  truncate -s "$((root_start + root_mib))M" "$w/disk.raw"
  sfdisk -q "$w/disk.raw" <<D
label: dos
start=$((boot_start * 2048)), size=$((boot_mib * 2048)), type=ef, bootable
start=$((root_start * 2048)), size=$((root_mib * 2048)), type=83
D
  dd if="$MBR_BIN" of="$w/disk.raw" bs=440 count=1 conv=notrunc status=none
  dd if="$w/boot.fat" of="$w/disk.raw" bs=1M seek="$boot_start" conv=notrunc,sparse status=none
  dd if="$root_ext4" of="$w/disk.raw" bs=1M seek="$root_start" conv=notrunc,sparse status=none

  mkdir -p "$(dirname "$out")"
  tmp=$(mktemp "$(dirname "$out")/.$(basename "$out").XXXXXX")
  if ! qemu-img convert -f raw -O qcow2 -c "$w/disk.raw" "$tmp"; then rm -f "$tmp"; return 1; fi
  chmod 644 "$tmp"
  mv -f "$tmp" "$out"
}
