#!/usr/bin/env bash
# Prints whether /dev/kvm is usable and why not; exit status 0 when usable.
root=$(cd "$(dirname "$0")/.." && pwd)
exec "$root/bin/xld" --probe-kvm
