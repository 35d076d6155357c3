#!/usr/bin/env bash
# Builds and starts the XenSharp control panel.
#   scripts/panel.sh [--urls http://127.0.0.1:8080] [--ConnectionStrings:Panel="Data Source=/var/lib/xensharp/panel.db"]
#   scripts/panel.sh create-admin NAME        (password on stdin)
#   scripts/panel.sh create-token USER NAME [read|write|admin]
#   scripts/panel.sh backup FILE              (online backup of the SQLite database)
# The database defaults to panel.db in the current directory (PANEL_DB overrides).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
config="${CONFIGURATION:-Release}"
dll="$repo/src/XenSharp.Panel/bin/$config/net10.0/XenSharp.Panel.dll"
if [[ ! -f "$dll" || -n "${PANEL_REBUILD:-}" ]]; then
  dotnet build "$repo/src/XenSharp.Panel" -c "$config" -v quiet -nologo >&2
fi
db="${PANEL_DB:-$PWD/panel.db}"
cmd=()
if [[ $# -gt 0 && "$1" != --* ]]; then cmd=("$1"); shift; fi
if [[ ${#cmd[@]} -eq 0 && " $* " != *" --urls "* ]]; then set -- --urls "${PANEL_URLS:-http://127.0.0.1:8080}" "$@"; fi
exec dotnet "$dll" "${cmd[@]}" "$@" "--ConnectionStrings:Panel=Data Source=$db"
