#!/usr/bin/env bash
# Builds everything and runs every test project. Ends with one line: "N passed, N failed, N skipped".
# Without a usable /dev/kvm it stops with the reason, unless XENSHARP_ALLOW_NO_KVM=1: then the tests that
# need KVM report as skipped (with the reason) and the rest run, guests included, on the software CPU.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bash scripts/setup.sh
bash scripts/build.sh
bash scripts/guest-images.sh

if ! kvm_status=$(bash scripts/kvm-check.sh 2>&1); then
  if [ "${XENSHARP_ALLOW_NO_KVM:-0}" != 1 ]; then
    echo "test: KVM is not usable here: $kvm_status" >&2
    echo "test: run on a host with /dev/kvm, or set XENSHARP_ALLOW_NO_KVM=1 to run without it (KVM tests then report as skipped)" >&2
    exit 1
  fi
  echo "test: KVM is not usable ($kvm_status); XENSHARP_ALLOW_NO_KVM=1: KVM tests will be skipped"
  kvm_unusable=1
fi

results="$root/out/test-results"
rm -rf "$results"
mkdir -p "$results"
set +e
# One test project at a time: several of them boot guests on the software CPU, and running them side by side on a
# 2-core machine turns timing into flakiness.
dotnet test XenSharp.slnx -c Release --no-build -nologo -maxcpucount:1 --logger "trx" --results-directory "$results" -- RunConfiguration.TreatNoTestsAsError=false
status=$?
# Where KVM is usable the run above put every xl-driven guest on it; the software CPU is what a host without KVM
# falls back to, so the end-to-end tests run once more on it.
if [ -z "${kvm_unusable:-}" ]; then
  echo "test: the end-to-end tests again, on the software CPU (xld --accel emu)"
  XENSHARP_TEST_ACCEL=emu dotnet test tests/XenSharp.Integration.Tests -c Release --no-build -nologo --logger "trx;LogFileName=integration-on-emu.trx" --results-directory "$results" -- RunConfiguration.TreatNoTestsAsError=false
  emu_status=$?
  if [ "$status" -eq 0 ]; then status=$emu_status; fi
fi
set -e

passed=0; failed=0; skipped=0
shopt -s nullglob
for trx in "$results"/*.trx; do
  counters=$(grep -o '<Counters [^>]*>' "$trx" | head -1)
  get() { echo "$counters" | grep -o " $1=\"[0-9]*\"" | grep -o '[0-9]*' || echo 0; }
  passed=$((passed + $(get passed)))
  failed=$((failed + $(get failed) + $(get error) + $(get timeout) + $(get aborted)))
  skipped=$((skipped + $(get total) - $(get executed)))
done
trx_count=$(ls "$results"/*.trx 2>/dev/null | wc -l)
if [ "$trx_count" -eq 0 ]; then echo "test: no test results were written" >&2; status=1; fi
echo "$passed passed, $failed failed, $skipped skipped"
if [ "$failed" -gt 0 ]; then exit 1; fi
exit $status
