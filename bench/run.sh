#!/usr/bin/env bash
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
make -s -C "$root/guests"
# The Debian guest figures: its images, and QEMU (TCG) as the peer that boots the same kernel and initramfs.
bash "$root/scripts/guest-images.sh"
if ! command -v qemu-system-x86_64 >/dev/null && [ "$(id -u)" -eq 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null || echo "bench: qemu-system-x86 not installed; the QEMU peer is skipped"
fi
# The PV device figures run a real xld and xl against the PV test kernel.
dotnet build "$root/src/XenSharp.Daemon" -c Release -nologo -v quiet -clp:ErrorsOnly
dotnet build "$root/src/XenSharp.Cli" -c Release -nologo -v quiet -clp:ErrorsOnly
dotnet build "$root/bench/XenSharp.Bench" -c Release -nologo -v quiet -clp:ErrorsOnly
exec dotnet "$root/bench/XenSharp.Bench/bin/Release/net10.0/xensharp-bench.dll" "$@"
