#!/usr/bin/env bash
# setup-system.sh - installs the Debian packages dbc-node needs at run and test time (idempotent, root).
# Skips apt entirely when every package is already installed, so re-runs take well under a second.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

PACKAGES=(
  # VMs and disks
  qemu-system-x86 qemu-utils ovmf genisoimage
  # networking on the host
  rsync nftables iproute2 dnsmasq-base
  # guest image build (scripts/build-test-image.sh)
  busybox-static dropbear-bin syslinux syslinux-common mtools dosfstools systemd-boot-efi
  e2fsprogs fdisk
  # the Debian 12 cloud image (scripts/build-cloud-image.sh, the real-guest e2e test)
  debootstrap
  # the web page's browser tests (puppeteer-core drives Debian's chromium; no browser download)
  chromium fonts-dejavu-core
  # the test guest's unprivileged ping (scripts/guest/dbc-ping.c, built static)
  gcc libc6-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup-system: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-system: must run as root to install: ${missing[*]}" >&2
  exit 1
fi

echo "setup-system: installing ${missing[*]}"
# apt-get update only when the package lists are missing or cannot resolve a package
if ! apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
  apt-get update -qq -o DPkg::Lock::Timeout=300
  apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends "${missing[@]}"
fi
echo "setup-system: done"
