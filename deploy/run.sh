#!/usr/bin/env bash
# run.sh - what "make run" does after building: start the private
# PostgreSQL under var/, migrate, create a development API key on the first
# run (printed once, kept in var/dev-api-key for the README's examples),
# then run "mailferry serve" in the foreground until Ctrl-C.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bin=$here/bin/mailferry

url=$(deploy/pg.sh start)
export MAILFERRY_DATABASE_URL=${MAILFERRY_DATABASE_URL:-$url}
export MAILFERRY_LOG_FORMAT=${MAILFERRY_LOG_FORMAT:-text}
"$bin" migrate >/dev/null

if [ ! -s var/dev-api-key ]; then
  key=$("$bin" keys create --name development --scopes send,read,admin --json | sed -n 's/.*"key":"\([^"]*\)".*/\1/p')
  umask 077
  printf '%s\n' "$key" > var/dev-api-key
  echo "==> development API key (shown once; also saved in var/dev-api-key):"
  echo "    $key"
fi

# Without a configured route, deliver to a local capture sink (var/sink/).
if [ -z "${MAILFERRY_SMARTHOST:-}" ] && [ -z "${MAILFERRY_ROUTES:-}" ] && ! grep -qsE '^\s*(smarthost|routes)\s*=' mailferry.conf; then
  if "$bin" sink --help >/dev/null 2>&1; then
    mkdir -p var/sink
    "$bin" sink --listen 127.0.0.1:2526 --dir var/sink &
    sink_pid=$!
    export MAILFERRY_ROUTES='*=127.0.0.1:2526'
    export MAILFERRY_TLS_POLICY=${MAILFERRY_TLS_POLICY:-opportunistic}
    echo "==> no route configured: delivering to the capture sink on 127.0.0.1:2526 (messages in var/sink/)"
  fi
fi

"$bin" serve &
pid=$!
trap 'kill -TERM $pid ${sink_pid:-} 2>/dev/null; wait $pid' INT TERM
listen=${MAILFERRY_HTTP_LISTEN:-127.0.0.1:8025}
for _ in $(seq 1 100); do
  if curl -fsS "http://$listen/readyz" >/dev/null 2>&1; then
    echo "==> mailferry is ready: http://$listen  (readiness: curl http://$listen/readyz)"
    echo "==> try: curl -H \"Authorization: Bearer \$(cat var/dev-api-key)\" http://$listen/v1/messages"
    break
  fi
  kill -0 $pid 2>/dev/null || break
  sleep 0.1
done
wait $pid
