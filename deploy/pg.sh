#!/usr/bin/env bash
# pg.sh - a private PostgreSQL cluster for mailferry.
#
# usage: deploy/pg.sh [--dir DIR] [--tcp PORT] start|stop|status|url
#
# DIR defaults to the repository's var/.  The cluster lives in DIR/pg, its
# unix socket in DIR/run (no TCP unless --tcp), its log in DIR/pg.log.
# initdb and postgres refuse to run as root, so as root they run as the
# 'postgres' system user (created by the postgresql package), and the
# directories are made accessible to it.  start creates the cluster and
# the 'mailferry' database when missing, and prints the connection URL.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
dir=$here/var
tcp=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=$2; shift 2 ;;
    --tcp) tcp=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) break ;;
  esac
done
cmd=${1:-}
[ -n "$cmd" ] || { echo "usage: $0 [--dir DIR] [--tcp PORT] start|stop|status|url" >&2; exit 2; }
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
data=$dir/pg
sock=$dir/run
log=$dir/pg.log
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$pgbin/initdb" ] || { echo "pg.sh: PostgreSQL server binaries not found (run deploy/bootstrap.sh)" >&2; exit 1; }

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# As root, let the postgres user reach DIR: give every ancestor o+x.
make_accessible() {
  [ "$(id -u)" -eq 0 ] || return 0
  local p=$dir
  while [ "$p" != "/" ]; do
    if ! runuser -u postgres -- test -x "$p" 2>/dev/null; then chmod o+x "$p"; fi
    p=$(dirname "$p")
  done
  chown postgres:postgres "$dir"
}

url() { echo "postgresql://postgres@/mailferry?host=$sock${tcp:+&port=$tcp}"; }

case "$cmd" in
  start)
    make_accessible
    if [ ! -f "$data/PG_VERSION" ]; then
      mkdir -p "$data"
      [ "$(id -u)" -ne 0 ] || chown postgres:postgres "$data"
      chmod 700 "$data"
      as_pg "$pgbin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    mkdir -p "$sock"
    [ "$(id -u)" -ne 0 ] || chown postgres:postgres "$sock"
    touch "$log"; [ "$(id -u)" -ne 0 ] || chown postgres:postgres "$log"
    if ! as_pg "$pgbin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
      listen="''"; port=5432
      if [ -n "$tcp" ]; then listen=127.0.0.1; port=$tcp; fi
      as_pg "$pgbin/pg_ctl" -D "$data" -l "$log" -w -t 60 \
        -o "-c listen_addresses=$listen -p $port -k $sock -c max_connections=300 -c shared_buffers=256MB" start >/dev/null \
        || { tail -n 20 "$log" >&2; exit 1; }
    fi
    port=${tcp:-5432}
    if ! as_pg "$pgbin/psql" -h "$sock" -p "$port" -U postgres -d postgres -Atc \
         "SELECT 1 FROM pg_database WHERE datname = 'mailferry'" | grep -q 1; then
      as_pg "$pgbin/createdb" -h "$sock" -p "$port" -U postgres mailferry
    fi
    url
    ;;
  stop)
    if [ -f "$data/PG_VERSION" ] && as_pg "$pgbin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
      as_pg "$pgbin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
    fi
    ;;
  status)
    as_pg "$pgbin/pg_ctl" -D "$data" status
    ;;
  url)
    url
    ;;
  *)
    echo "usage: $0 [--dir DIR] [--tcp PORT] start|stop|status|url" >&2; exit 2 ;;
esac
