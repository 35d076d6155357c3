#!/usr/bin/env bash
# Installs what XenSharp needs on a fresh Debian machine of this kind. Idempotent: installs only what is missing.
set -euo pipefail

APT_PACKAGES=(
  gcc make binutils        # test guests
  libxen-dev               # Xen's public headers, for the ABI layout tests
  xenstore-utils           # Xen's xenstore clients, to check our xenstored against them
  lz4 xz-utils zstd        # kernel payload formats
  qemu-utils               # qemu-img and qemu-io: the qcow2 tests make, check and read images with them
  busybox-static cpio e2fsprogs  # guest initramfs and root filesystem images
  chromium                 # the panel's browser tests (driven headless; nothing downloads a browser)
  postgresql               # the panel's PostgreSQL tests: they initdb a throwaway server of their own on a free
                           # loopback port, so the package's own cluster (5432), running or not, is never used
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then echo "setup: need root to install packages" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v dotnet >/dev/null; then
  echo "setup: the .NET 10 SDK (dotnet) is required and is not on PATH" >&2
  exit 1
fi
