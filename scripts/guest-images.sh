#!/usr/bin/env bash
# Fetches the guest images the integration tests boot. Idempotent: re-downloads only when the
# Debian package version changes.
#   scripts/guest-images.sh [outdir]      (default: <repo>/.cache/guest-images)
# Produces:
#   outdir/vmlinuz-cloud   Debian's stock linux-image-*-cloud-amd64 bzImage (a Xen PV-capable kernel)
#   outdir/VERSION         package=<name> version=<version> kernel=<uname -r of that kernel>
# Needs apt (Debian). Does NOT install the Xen headers for the ABI test: test set-up does that
# (apt-get install -y libxen-dev gcc).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$repo/.cache/guest-images}
meta=linux-image-cloud-amd64
mkdir -p "$out"
out=$(cd "$out" && pwd)

say() { echo "guest-images: $*"; }

# The metapackage depends on the versioned image package (linux-image-6.1.0-NN-cloud-amd64).
resolve() {
    apt-cache depends "$meta" 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}

pkg=$(resolve || true)
if [ -z "$pkg" ]; then
    say "$meta not known to apt; running apt-get update"
    apt-get update -qq
    pkg=$(resolve || true)
fi
if [ -z "$pkg" ]; then
    echo "guest-images: cannot resolve $meta to a kernel image package" >&2
    exit 1
fi
version=$(apt-cache show --no-all-versions "$pkg" | awk '$1 == "Version:" { print $2; exit }')
kernel=${pkg#linux-image-}
stamp="package=$pkg version=$version kernel=$kernel"
say "$meta -> $pkg $version"

if [ -f "$out/vmlinuz-cloud" ] && [ -f "$out/VERSION" ] && [ "$(cat "$out/VERSION")" = "$stamp" ]; then
    say "up to date: $out/vmlinuz-cloud ($kernel)"
else
    work="$out/.pkg"
    rm -rf "$work"
    mkdir -p "$work/root"
    say "downloading $pkg $version"
    if ! (cd "$work" && apt-get download "$pkg=$version" 2>&1 | sed 's/^/  apt: /'); then
        # Stale package lists name a version the archive no longer has: refresh once and retry.
        say "download failed; running apt-get update and retrying"
        apt-get update -qq
        version=$(apt-cache show --no-all-versions "$pkg" | awk '$1 == "Version:" { print $2; exit }')
        stamp="package=$pkg version=$version kernel=$kernel"
        (cd "$work" && apt-get download "$pkg=$version" 2>&1 | sed 's/^/  apt: /')
    fi
    deb=$(ls "$work"/*.deb | head -n1)
    say "extracting $(basename "$deb")"
    dpkg -x "$deb" "$work/root"
    src="$work/root/boot/vmlinuz-$kernel"
    [ -f "$src" ] || { echo "guest-images: $src not in the package" >&2; exit 1; }
    cp "$src" "$out/vmlinuz-cloud.tmp"
    mv "$out/vmlinuz-cloud.tmp" "$out/vmlinuz-cloud"
    printf '%s\n' "$stamp" > "$out/VERSION"
    rm -rf "$work"
    say "wrote $out/vmlinuz-cloud ($(stat -c %s "$out/vmlinuz-cloud") bytes) and $out/VERSION"
fi

# ---------------------------------------------------------------------------------------------
# TODO(initramfs/rootfs): the busybox initramfs and root filesystem images go here (owned by the
# guest-image work, not the domain builder). Keep them idempotent like the kernel above.
# ---------------------------------------------------------------------------------------------
