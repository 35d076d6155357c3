#!/usr/bin/env bash
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
make -s -C "$root/guests"
# The PV device figures run a real xld and xl against the PV test kernel.
dotnet build "$root/src/XenSharp.Daemon" -c Release -nologo -v quiet -clp:ErrorsOnly
dotnet build "$root/src/XenSharp.Cli" -c Release -nologo -v quiet -clp:ErrorsOnly
dotnet build "$root/bench/XenSharp.Bench" -c Release -nologo -v quiet -clp:ErrorsOnly
exec dotnet "$root/bench/XenSharp.Bench/bin/Release/net10.0/xensharp-bench.dll" "$@"
