#!/usr/bin/env bash
# Fetches the guest images the integration tests boot. Idempotent: re-downloads only when the
# Debian package version changes.
#   scripts/guest-images.sh [outdir]      (default: <repo>/.cache/guest-images)
# Produces:
#   outdir/vmlinuz-cloud   Debian's stock linux-image-*-cloud-amd64 bzImage (a Xen PV-capable kernel)
#   outdir/VERSION         package=<name> version=<version> kernel=<uname -r of that kernel>
#   outdir/modules/        xen-blkfront.ko and xen-netfront.ko from the same package (modules in Debian's build)
#   outdir/initrd.cpio.gz  a busybox-static initramfs whose /init is guests/linux/init, with those modules
#   outdir/rootfs.ext4     a 64 MiB ext4 root filesystem (busybox + the same init), made without root by mke2fs -d
# Tests copy rootfs.ext4 before booting it read-write; this script rebuilds the images when the kernel package,
# busybox or guests/linux/init change.
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

modules=(kernel/drivers/block/xen-blkfront.ko kernel/drivers/net/xen-netfront.ko)
have_modules() { for m in "${modules[@]}"; do [ -f "$out/modules/$(basename "$m")" ] || return 1; done; }
if [ -f "$out/vmlinuz-cloud" ] && [ -f "$out/VERSION" ] && [ "$(cat "$out/VERSION")" = "$stamp" ] && have_modules; then
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
    rm -rf "$out/modules" && mkdir -p "$out/modules"
    for m in "${modules[@]}"; do
        [ -f "$work/root/lib/modules/$kernel/$m" ] || { echo "guest-images: $m not in the package" >&2; exit 1; }
        cp "$work/root/lib/modules/$kernel/$m" "$out/modules/"
    done
    printf '%s\n' "$stamp" > "$out/VERSION"
    rm -rf "$work"
    say "wrote $out/vmlinuz-cloud ($(stat -c %s "$out/vmlinuz-cloud") bytes) and $out/VERSION"
fi

# ---------------------------------------------------------------------------------------------
# The initramfs and the root filesystem: busybox-static (the installed Debian package) and our init.
# ---------------------------------------------------------------------------------------------
busybox=/bin/busybox
init="$repo/guests/linux/init"
for tool in "$busybox" cpio mke2fs gzip; do
    command -v "$tool" >/dev/null || { echo "guest-images: $tool missing (scripts/setup.sh installs busybox-static cpio e2fsprogs)" >&2; exit 1; }
done
file "$busybox" 2>/dev/null | grep -q "statically linked" || ldd "$busybox" 2>&1 | grep -q "not a dynamic" \
    || { echo "guest-images: $busybox is not the static busybox (install busybox-static)" >&2; exit 1; }
bb_version=$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || echo unknown)
images_stamp="$stamp busybox=$bb_version init=$(sha256sum "$init" | cut -c1-16) script=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)"
if [ -f "$out/initrd.cpio.gz" ] && [ -f "$out/rootfs.ext4" ] && [ "$(cat "$out/IMAGES" 2>/dev/null)" = "$images_stamp" ]; then
    say "up to date: initrd.cpio.gz, rootfs.ext4"
    exit 0
fi

tree() { # tree DIR: a minimal busybox system in DIR
    mkdir -p "$1"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,mnt,root,etc,lib/modules}
    cp "$busybox" "$1/bin/busybox"
    cp "$init" "$1/init" && chmod 755 "$1/init"
    ln -sf /init "$1/sbin/init"
    cp "$out"/modules/*.ko "$1/lib/modules/"
    echo xensharp-guest > "$1/etc/hostname"
    printf 'root:x:0:0:root:/root:/bin/sh\n' > "$1/etc/passwd"
}
stage=$(mktemp -d "$out/.stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
tree "$stage/initrd"
# /dev/console must exist before devtmpfs is mounted, or init starts without stdin/stdout. cpio records the
# node from a list line, so no root privilege is needed (the kernel's initramfs unpacker creates it).
(cd "$stage/initrd" && { find . -mindepth 1 | sort; } | cpio -o -H newc --quiet -R 0:0 > "$stage/initrd.cpio")
python3 - "$stage/initrd.cpio" <<'PY'
import sys, os
# Append a /dev/console character-device entry to the newc archive (before its trailer) without root.
p = sys.argv[1]
data = open(p, 'rb').read()
trailer = data.rfind(b'070701')  # the last header is TRAILER!!!
def entry(name, mode, rmaj, rmin, ino):
    n = name.encode() + b'\0'
    h = b'070701' + b''.join(b'%08X' % v for v in (ino, mode, 0, 0, 1, 0, 0, 0, 0, rmaj, rmin, len(n), 0))
    e = h + n
    e += b'\0' * (-len(e) % 4)
    return e
body = data[:trailer] + entry('dev/console', 0o020600, 5, 1, 900001) + data[trailer:]
open(p, 'wb').write(body)
PY
gzip -9n < "$stage/initrd.cpio" > "$out/initrd.cpio.gz.tmp" && mv "$out/initrd.cpio.gz.tmp" "$out/initrd.cpio.gz"

tree "$stage/rootfs"
echo "made by scripts/guest-images.sh" > "$stage/rootfs/xensharp-image"
rm -f "$out/rootfs.ext4.tmp"
mke2fs -q -F -t ext4 -L xensharp-root -E root_owner=0:0 -d "$stage/rootfs" "$out/rootfs.ext4.tmp" 64M >/dev/null
mv "$out/rootfs.ext4.tmp" "$out/rootfs.ext4"
printf '%s\n' "$images_stamp" > "$out/IMAGES"
say "wrote $out/initrd.cpio.gz ($(stat -c %s "$out/initrd.cpio.gz") bytes) and $out/rootfs.ext4"
