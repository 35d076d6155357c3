#!/usr/bin/env bash
# Builds and starts the XenSharp control panel.
#   scripts/panel.sh [--urls http://127.0.0.1:8080] [--Panel:SampleSeconds=10] ...   serve (default)
#   scripts/panel.sh create-admin NAME            password on stdin (or use the one-time /setup page)
#   scripts/panel.sh create-token USER NAME [read|write|admin]
#   scripts/panel.sh backup FILE                  online backup (SQLite copy, or pg_dump for PostgreSQL)
#   scripts/panel.sh demo                         private xld with its HTTP API + the panel wired to it
# The database is panel.db in the current directory unless PANEL_DB names another file. For PostgreSQL set
# PANEL_CONNECTION="Host=…;Database=…;Username=…;Password=…" or pass --ConnectionStrings:Panel=… (src/XenSharp.Panel/README.md).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
config="${CONFIGURATION:-Release}"
dll="$repo/src/XenSharp.Panel/bin/$config/net10.0/XenSharp.Panel.dll"
if [[ ! -f "$dll" || -n "${PANEL_REBUILD:-}" ]]; then
  dotnet build "$repo/src/XenSharp.Panel" -c "$config" -nologo -v quiet -clp:ErrorsOnly >&2
fi

if [[ "${1:-}" == demo ]]; then
  # A private xld (never the system one) with the HTTP API, a token made by xl, and a panel that knows it as a host.
  work=$(mktemp -d /tmp/xensharp-panel-demo.XXXXXX)
  export XENSHARP_XLD_SOCKET="$work/xld.sock"
  export PANEL_DB="$work/panel.db"
  xld_port="${XLD_PORT:-8750}"; panel_url="${PANEL_URLS:-http://127.0.0.1:8080}"
  xld_pid=; panel_pid=
  cleanup() {
    for p in $panel_pid $xld_pid; do kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
  }
  trap cleanup EXIT
  make -C "$repo/guests" -s >/dev/null
  "$repo/bin/xld" --socket "$XENSHARP_XLD_SOCKET" --state-dir "$work/state" --log-dir "$work/log" --http "127.0.0.1:$xld_port" --xenstored-socket "$work/xenstored.sock" 2>"$work/xld.stderr" &
  xld_pid=$!
  for _ in $(seq 1 300); do [ -S "$XENSHARP_XLD_SOCKET" ] && break; sleep 0.1; done
  xld_token=$("$repo/bin/xl" token-create panel)
  password="${PANEL_ADMIN_PASSWORD:-demo-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
  pdb=("--ConnectionStrings:Panel=Data Source=$PANEL_DB")
  echo "$password" | dotnet "$dll" create-admin admin "${pdb[@]}" >/dev/null
  api_token=$(dotnet "$dll" create-token admin demo admin "${pdb[@]}")
  dotnet "$dll" --urls "$panel_url" "${pdb[@]}" --Panel:SampleSeconds=2 &
  panel_pid=$!
  for _ in $(seq 1 300); do curl -fs "$panel_url/login" >/dev/null 2>&1 && break; sleep 0.2; done
  api() { curl -fsS -H "Authorization: Bearer $api_token" -H 'Content-Type: application/json' -d "$2" "$panel_url/api/v1/$1" >/dev/null; }
  api admin/hosts "{\"name\":\"local\",\"url\":\"http://127.0.0.1:$xld_port\",\"token\":\"$xld_token\"}"
  api admin/plans '{"name":"tiny","memoryMiB":16,"vcpus":1,"diskGiB":1,"trafficGiB":100,"rateMbps":100}'
  api admin/templates "{\"name\":\"hvm-hello\",\"type\":\"hvm\",\"kernel\":\"$repo/guests/build/hvm-hello.elf\"}"
  api admin/pools '{"name":"demo-net","cidr":"192.0.2.0/24","gateway":"192.0.2.1","rangeStart":"192.0.2.10","rangeEnd":"192.0.2.200"}'
  printf '\n\033[1mPanel at %s — log in as admin / %s (xld HTTP API on 127.0.0.1:%s). Ctrl-C stops both.\033[0m\n' "$panel_url" "$password" "$xld_port"
  wait "$panel_pid"
  exit 0
fi

conn="${PANEL_CONNECTION:-Data Source=${PANEL_DB:-$PWD/panel.db}}"
cmd=()
if [[ $# -gt 0 && "$1" != --* ]]; then cmd=("$1"); shift; fi
if [[ ${#cmd[@]} -eq 0 && " $* " != *" --urls "* ]]; then set -- --urls "${PANEL_URLS:-http://127.0.0.1:8080}" "$@"; fi
# A connection string given on the command line wins (the last --ConnectionStrings:Panel would).
if [[ " $* " == *" --ConnectionStrings:Panel="* ]]; then exec dotnet "$dll" "${cmd[@]}" "$@"; fi
exec dotnet "$dll" "${cmd[@]}" "$@" "--ConnectionStrings:Panel=$conn"
