#!/usr/bin/env bash
# run.sh - what "make run" does after building: check that the API and
# capture sink ports are free, start the private PostgreSQL under var/,
# migrate, create a development API key on the first run (printed once,
# kept in var/dev-api-key for the README's examples), then run
# "mailferry serve" in the foreground until Ctrl-C.  "make stop" stops
# the private PostgreSQL.
#
# Variables (environment, or make run VAR=value):
#   VAR_DIR                 state directory (default: the repository's var/)
#   MAILFERRY_HTTP_LISTEN   API address (default 127.0.0.1:8025)
#   SINK_LISTEN             capture sink address (default 127.0.0.1:2526)
#   MAILFERRY_SUBMISSION_LISTEN  SMTP submission address (default 127.0.0.1:2587)
#   MAILFERRY_BIN           the mailferry binary (default bin/mailferry)
# Development settings: webhook_allow_private = yes (webhooks may go to
# receivers on this machine) unless MAILFERRY_WEBHOOK_ALLOW_PRIVATE is set;
# SMTP submission on 127.0.0.1:2587 with submission_allow_plaintext_auth =
# yes (AUTH without TLS, loopback clients only; no certificate needed)
# unless mailferry.conf sets submission_listen.
# master_key_file = var/master.key (32 random bytes, mode 0600, made on the
# first run; it encrypts sending domains' DKIM keys, docs/domains.md) unless
# MAILFERRY_MASTER_KEY_FILE or mailferry.conf sets one.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bin=${MAILFERRY_BIN:-$here/bin/mailferry}
var=${VAR_DIR:-$here/var}
listen=${MAILFERRY_HTTP_LISTEN:-127.0.0.1:8025}
sink_listen=${SINK_LISTEN:-127.0.0.1:2526}
submission_listen=""
if ! grep -qsE '^\s*submission_listen\s*=' mailferry.conf; then
  submission_listen=${MAILFERRY_SUBMISSION_LISTEN:-127.0.0.1:2587}
fi

die() { echo "run.sh: $*" >&2; exit 1; }

# True when something accepts TCP connections on host:port.
port_taken() {
  local host=${1%:*} port=${1##*:}
  host=${host#[}; host=${host%]}
  case "$host" in 0.0.0.0|'') host=127.0.0.1 ;; ::) host=::1 ;; esac
  (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

use_sink=0
if [ -z "${MAILFERRY_SMARTHOST:-}" ] && [ -z "${MAILFERRY_ROUTES:-}" ] && ! grep -qsE '^\s*(smarthost|routes)\s*=' mailferry.conf; then
  use_sink=1
fi
# Another relay (or anything else) on our ports: say so and stop, rather
# than start one that cannot listen and report another's readiness.
port_taken "$listen" && die "$listen is already in use (another mailferry, or make run elsewhere?): stop it, or choose another address with MAILFERRY_HTTP_LISTEN=127.0.0.1:PORT"
if [ $use_sink = 1 ] && port_taken "$sink_listen"; then
  die "$sink_listen (the capture sink) is already in use: stop what listens there, or choose another address with SINK_LISTEN=127.0.0.1:PORT"
fi

if [ -n "$submission_listen" ] && port_taken "$submission_listen"; then
  die "$submission_listen (SMTP submission) is already in use: stop what listens there, or choose another address with MAILFERRY_SUBMISSION_LISTEN=127.0.0.1:PORT"
fi

if [ -n "$submission_listen" ]; then
  export MAILFERRY_SUBMISSION_LISTEN=$submission_listen
  export MAILFERRY_SUBMISSION_ALLOW_PLAINTEXT_AUTH=${MAILFERRY_SUBMISSION_ALLOW_PLAINTEXT_AUTH:-yes}
  echo "==> SMTP submission on $submission_listen: user any name, password the API key, no TLS (loopback only; README \"Sending over SMTP\")"
fi

url=$(deploy/pg.sh --dir "$var" start)
export MAILFERRY_DATABASE_URL=${MAILFERRY_DATABASE_URL:-$url}
export MAILFERRY_HTTP_LISTEN=$listen
export MAILFERRY_LOG_FORMAT=${MAILFERRY_LOG_FORMAT:-text}
"$bin" migrate >/dev/null

if [ -z "${MAILFERRY_MASTER_KEY_FILE:-}" ] && ! grep -qsE '^\s*master_key_file\s*=' mailferry.conf; then
  if [ ! -s "$var/master.key" ]; then
    (umask 077 && head -c 32 /dev/urandom > "$var/master.key.tmp" && mv "$var/master.key.tmp" "$var/master.key")
    echo "==> made $var/master.key (master_key_file: encrypts the sending domains' DKIM keys; keep it with the database's backups)"
  fi
  export MAILFERRY_MASTER_KEY_FILE=$var/master.key
fi

if [ ! -s "$var/dev-api-key" ]; then
  key=$("$bin" keys create --name development --scopes send,read,admin --json | sed -n 's/.*"key":"\([^"]*\)".*/\1/p')
  (umask 077 && printf '%s\n' "$key" > "$var/dev-api-key")
  echo "==> development API key (shown once; also saved in $var/dev-api-key):"
  echo "    $key"
fi

if [ -z "${MAILFERRY_WEBHOOK_ALLOW_PRIVATE:-}" ]; then
  export MAILFERRY_WEBHOOK_ALLOW_PRIVATE=yes
  echo "==> development: webhook_allow_private = yes (webhook URLs may point at this machine, e.g. http://127.0.0.1:9000/hooks)"
fi

sink_pid=""
# Without a configured route, deliver to a local capture sink.
if [ $use_sink = 1 ]; then
  mkdir -p "$var/sink"
  "$bin" sink --listen "$sink_listen" --dir "$var/sink" &
  sink_pid=$!
  export MAILFERRY_ROUTES="*=$sink_listen"
  export MAILFERRY_TLS_POLICY=${MAILFERRY_TLS_POLICY:-opportunistic}
  echo "==> no route configured: delivering to the capture sink on $sink_listen (messages in $var/sink/)"
fi

"$bin" serve &
pid=$!
trap 'kill -TERM $pid $sink_pid 2>/dev/null; wait $pid' INT TERM
ready=0
for _ in $(seq 1 600); do
  # Only our own process counts: it must still run, and the sink too.
  kill -0 $pid 2>/dev/null || break
  [ -z "$sink_pid" ] || kill -0 "$sink_pid" 2>/dev/null || break
  if curl -fsS "http://$listen/readyz" >/dev/null 2>&1; then
    ready=1
    break
  fi
  sleep 0.1
done
if [ $ready = 0 ] || ! kill -0 $pid 2>/dev/null || { [ -n "$sink_pid" ] && ! kill -0 "$sink_pid" 2>/dev/null; }; then
  kill -TERM $pid $sink_pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
  die "mailferry serve did not become ready on $listen (see the messages above); the private PostgreSQL still runs: make stop"
fi
echo "==> mailferry is ready: http://$listen  (readiness: curl http://$listen/readyz)"
echo "==> try: curl -H \"Authorization: Bearer \$(cat $var/dev-api-key)\" http://$listen/v1/messages"
echo "==> stop: Ctrl-C stops the relay; make stop stops the private PostgreSQL"
wait $pid
