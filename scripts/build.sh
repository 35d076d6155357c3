#!/usr/bin/env bash
# Builds the solution (Release: the software CPU is an interpreter and wants an optimised build) and the test guests.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
make -s -C "$root/guests"
dotnet build "$root/XenSharp.slnx" -c Release -nologo -v quiet -clp:ErrorsOnly "$@"
