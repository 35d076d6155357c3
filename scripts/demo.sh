#!/usr/bin/env bash
# The demo: builds everything, starts a private xld, boots the demo guests, shows `xl list` and what the
# guests print, shuts them down and cleans up. Safe to run again; it never touches a running system xld.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bash scripts/setup.sh
bash scripts/build.sh
bash scripts/guest-images.sh   # Debian cloud kernel, its xen-blkfront/netfront modules, busybox initramfs, ext4 root

work=$(mktemp -d /tmp/xensharp-demo.XXXXXX)
export XENSHARP_XLD_SOCKET="$work/xld.sock"
xld_pid=
cleanup() {
  if [ -n "$xld_pid" ] && kill -0 "$xld_pid" 2>/dev/null; then
    kill -TERM "$xld_pid"; wait "$xld_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "starting xld (state and logs in $work)"
bin/xld --socket "$XENSHARP_XLD_SOCKET" --state-dir "$work/state" --log-dir "$work/log" --shutdown-timeout 10 2>"$work/xld.stderr" &
xld_pid=$!
for _ in $(seq 1 300); do [ -S "$XENSHARP_XLD_SOCKET" ] && break; kill -0 "$xld_pid" 2>/dev/null || { cat "$work/xld.stderr"; exit 1; }; sleep 0.1; done
bin/xl info | grep -E '^(host|nr_cpus|total_memory|free_memory|xen_version|accelerator) '

wait_console() { # name text
  for _ in $(seq 1 600); do grep -q "$2" "$work/log/console/guest-$1.log" 2>/dev/null && return 0; sleep 0.1; done
  echo "demo: $1 did not print '$2'" >&2; return 1
}

say "xl create: two HVM test guests"
sed "s/^name = .*/name = \"hvm-1\"/" examples/hvm-hello.cfg > "$work/hvm-1.cfg"
bin/xl create "$work/hvm-1.cfg"
bin/xl create examples/hvm-hello.cfg 'name="hvm-2"' 'memory=32'
wait_console hvm-1 ready
wait_console hvm-2 ready

say "xl create: the PV test kernel (a Xen PV guest written against Xen's public ABI), 2 vCPUs"
bin/xl create examples/pv-test.cfg 'on_poweroff="preserve"'
wait_console pv-test "PVTEST done"

say "xl list"
bin/xl list

say "talking to hvm-1 on its console"
printf 'hello\rfib\r' | bin/xl console hvm-1 >/dev/null &
console_pid=$!
wait_console hvm-1 "fib(20)"
kill "$console_pid" 2>/dev/null || true
cat "$work/log/console/guest-hvm-1.log" | tr -d '\r'

say "what the PV test kernel printed on its console ring"
cat "$work/log/console/guest-pv-test.log"

say "its xenstore nodes (xl xenstore-ls)"
pv_id=$(bin/xl list pv-test | awk 'NR==2 {print $2}')
bin/xl xenstore-ls "/local/domain/$pv_id" | head -n 20
bin/xl destroy pv-test

say "xl create: Debian's stock cloud kernel as a PV guest (2 vCPUs, its root on xen-blkfront); ~30 s on the software CPU"
cp .cache/guest-images/rootfs.ext4 "$work/debian-root.ext4"
cat > "$work/debian.cfg" <<EOF
name = "debian"
type = "pv"
kernel = "$root/.cache/guest-images/vmlinuz-cloud"
ramdisk = "$root/.cache/guest-images/initrd.cpio.gz"
extra = "console=hvc0 cryptomgr.notests xs.root=/dev/xvda xs.write=1 xs.mem=1"
memory = 256
vcpus = 2
disk = [ "$work/debian-root.ext4,raw,xvda,rw" ]
EOF
bin/xl create "$work/debian.cfg"
for _ in $(seq 1 1800); do grep -q "XENSHARP-INIT done" "$work/log/console/guest-debian.log" 2>/dev/null && break; sleep 0.1; done
grep -E "Linux version|Booting kernel on Xen|xen:balloon|blkfront|EXT4-fs|Run /init|XENSHARP" "$work/log/console/guest-debian.log"
bin/xl list debian

say "talking to Debian's busybox shell on xl console"
printf 'uname -a; grep -c ^processor /proc/cpuinfo; cat /xensharp-guest-wrote\r\035' | bin/xl console debian >/dev/null || true
sleep 2; tail -n 5 "$work/log/console/guest-debian.log"; echo

say "xl shutdown -w debian (control/shutdown, then the kernel's orderly poweroff)"
bin/xl shutdown -w debian

say "xl pause / unpause hvm-2"
bin/xl pause hvm-2; bin/xl list hvm-2; bin/xl unpause hvm-2

say "xl shutdown -w (the guests see the power button and power off)"
bin/xl shutdown -w hvm-1
bin/xl shutdown -w hvm-2
bin/xl list

say "xl dmesg (last lines)"
bin/xl dmesg | tail -n 8
say "done"
