#!/usr/bin/env bash
# lint.sh - checks STYLE.md's banned functions, test habits, which files
# may include JSON and OpenSSL headers, that named source paths exist, and lints
# docs/openapi.yaml with redocly and swagger-cli (pinned in tests/node/,
# installed there by "deploy/bootstrap.sh test"); run by make test.
set -euo pipefail
cd "$(dirname "$0")/.."
rc=0
# The module folders, from the Makefile's MODULES.
src=$(sed -n 's/^MODULES *:= *//p' Makefile)
banned='\b(strcpy|strcat|sprintf|vsprintf|gets|strtok|atoi|atol)[[:space:]]*\('
if grep -nE "$banned" --include='*.c' --include='*.h' -r $src | grep -v '^\S*:\s*\*'; then
  echo "lint: banned function (STYLE.md: use snprintf, buf_*, strtol, strtok_r)" >&2; rc=1
fi
if grep -nE '^Test\(.*\.timeout' -r tests; then
  echo "lint: Criterion .timeout leaks under ASan when timed tests overlap; bound waits in the test instead" >&2; rc=1
fi
if grep -lE 'microhttpd\.h' -r $src | grep -v '^api/server\.c$'; then
  echo "lint: only api/server.c includes microhttpd.h" >&2; rc=1
fi
if grep -lE 'libpq-fe\.h' -r $(printf '%s\n' $src | grep -vx db); then
  echo "lint: only db/ includes libpq-fe.h" >&2; rc=1
fi
# SQL functions are defined once, in db/functions.sql, which migrate applies
# after the migrations; a migration defines one only when its own DDL or
# data step needs it at that point in history.  The allow-list, as
# file:function:
#   trigger placeholders (CREATE TRIGGER needs the function to exist):
#     0001 mf_notify_queue, 0005 mf_webhook_fanout, mf_webhook_cancel_pending
#   0019 mf_uuidv7: its data step and the events.public_id default call it.
fn_allowed='^db/migrations/(0001_init\.sql:mf_notify_queue|0005_webhooks\.sql:mf_webhook_(fanout|cancel_pending)|0019_event_public_ids\.sql:mf_uuidv7)$'
if grep -iHoE 'CREATE[[:space:]]+(OR[[:space:]]+REPLACE[[:space:]]+)?FUNCTION[[:space:]]+[a-z_0-9]+' db/migrations/*.sql |
   sed -E 's/:.*[[:space:]]([a-z_0-9]+)$/:\1/' | grep -vE "$fn_allowed"; then
  echo "lint: SQL functions are defined in db/functions.sql, not in migrations" >&2; rc=1
fi
# The layers of docs/architecture.md: a folder includes only from lower
# layers or from itself; folders on one layer do not include each other;
# and queue/ includes neither relay/, hooks/ nor bounce/.
declare -A layer=([util]=1 [db]=2 [mail]=2 [dns]=2 [domains]=3 [relay]=3 [smtpd]=4 [hooks]=4 [bounce]=5 [sink]=6 [queue]=6 [submit]=6 [api]=7 [cli]=8)
up=$(for d in $src; do
       [ -n "${layer[$d]:-}" ] || { echo "$d/: a folder with no layer in tests/lint.sh"; continue; }
       grep -noE '^#[[:space:]]*include[[:space:]]*"[a-z_]+/' -r "$d" --include='*.c' --include='*.h' |
         while IFS= read -r hit; do
           to=${hit##*\"}; to=${to%/}
           [ "$to" = "$d" ] && continue
           [ -n "${layer[$to]:-}" ] || continue
           [ "${layer[$to]}" -lt "${layer[$d]}" ] || echo "${hit%%:#*}: $d/ (layer ${layer[$d]}) includes $to/ (layer ${layer[$to]})"
           case "$d>$to" in
             # queue/ is handed its delivery function (cli/cmd_serve.c wires it)
             "queue>relay"|"queue>hooks"|"queue>bounce") echo "${hit%%:#*}: $d/ never includes $to/" ;;
           esac
         done
     done)
if [ -n "$up" ]; then
  printf '%s\n' "$up"
  echo "lint: an include runs up or sideways between folders (docs/architecture.md draws the layers)" >&2; rc=1
fi
# JSON libraries stay at the API boundary (STYLE.md): JSON is turned into
# our own structs in api/.  Outside api/, only these files, each for a reason:
json_ok=(
  cli/cmd_send.c  # the send command reads the API's JSON answer with cJSON
  cli/cmd_domains.c  # so does the domains command
  cli/api_call.h  # their shared call: cli_json_member() reads a cJSON answer
)
if grep -lE '#[[:space:]]*include[[:space:]]*[<"](jansson|cJSON|cjson/cJSON)\.h' -r $(printf '%s\n' $src | grep -vx api) \
     | grep -vxF -f <(printf '%s\n' "${json_ok[@]}"); then
  echo "lint: jansson.h / cJSON.h only in api/ and the files listed in tests/lint.sh" >&2; rc=1
fi
# OpenSSL stays in the files that own crypto or TLS (STYLE.md: OpenSSL in
# as few files as possible); anything else asks one of them.
ssl_ok=(
  relay/tls.c           # TLS contexts and connections, client and server side
  mail/dkim.c           # DKIM signing keys and signatures (RFC 6376)
  mail/dkim_keys.c      # sending domains' DKIM key pairs and their AES-256-GCM sealing
  mail/verp.c           # the HMAC in VERP tokens, compared in constant time
  hooks/webhook_sign.c  # webhook signatures (HMAC-SHA256) and secrets
  util/rand.c           # unpredictable bytes for identifiers
  util/ssl_err.c        # OpenSSL's error queue as text, for the files above
  api/auth.c            # API keys: random secrets, hashing, constant-time compare
  api/webhooks.c        # webhook endpoint secrets come from RAND_bytes (util/rand.h is not for secrets)
  api/messages.c        # SHA-256 of idempotent request bodies, base64 of attachments (EVP)
)
if grep -lE '#[[:space:]]*include[[:space:]]*<openssl/' -r $src \
     | grep -vxF -f <(printf '%s\n' "${ssl_ok[@]}"); then
  echo "lint: OpenSSL headers only in the crypto/TLS files listed in tests/lint.sh" >&2; rc=1
fi
# A path folder/file.c or folder/file.h named in production code (its
# comments), README.md or docs/*.md must exist: files move between folders.
folders='util|db|mail|dns|domains|relay|smtpd|bounce|hooks|sink|queue|submit|api|cli|tests|deploy|docs'
named='(^|[^A-Za-z0-9_./-])(\.\./)*('$folders')/[A-Za-z0-9_./-]*[A-Za-z0-9_]\.[ch]\b'
stale=$({ grep -noE "$named" --include='*.c' --include='*.h' -r $src || true
          grep -noE "$named" README.md docs/*.md || true; } \
        | while IFS= read -r hit; do
            f=${hit%%:*}; rest=${hit#*:}; line=${rest%%:*}; path=${rest#*:}
            path=$(printf '%s' "$path" | sed -E 's/^[^A-Za-z.]//; s#^(\.\./)+##')
            [ -e "$path" ] || echo "$f:$line: $path"
          done)
if [ -n "$stale" ]; then
  printf '%s\n' "$stale"
  echo "lint: these files are named but do not exist (moved? fix the reference)" >&2; rc=1
fi
# util/log.h: the logger escapes every value itself, so a value passed
# through log_quote() would be escaped twice; a conversion outside key=VALUE
# could invent keys; a recipient address goes through LOG_RCPT_FMT/LOG_RCPT.
logcall='log_(debug|info|warn|error|msg)(_limited|_suppressed)?\('
if grep -nE 'log_quote\(' --include='*.c' -r $src | grep -v '^util/log\.c:'; then
  echo "lint: log lines escape their own values; pass the raw string, not log_quote() (util/log.h)" >&2; rc=1
fi
if grep -nE "$logcall"'[^"]*"([^"]*[ ])?%[^%]' --include='*.c' -r $src; then
  echo "lint: a log conversion must be a value, key=%s (util/log.h)" >&2; rc=1
fi
if grep -nE '\b(rcpt|email|recipient|to_addr)=\\?"?%s' --include='*.c' -r $src; then
  echo "lint: log recipient addresses with LOG_RCPT_FMT/LOG_RCPT (docs/operations.md, util/log.h)" >&2; rc=1
fi
# The OpenAPI description: redocly's recommended rules (every operation has
# an operationId, ...; tests/node/.redocly.lint-ignore.yaml says what is
# ignored and why) and swagger-parser's schema validation.
if [ ! -x tests/node/node_modules/.bin/redocly ] || [ ! -x tests/node/node_modules/.bin/swagger-cli ]; then
  echo "lint: tests/node/node_modules is missing: run deploy/bootstrap.sh test" >&2; rc=1
else
  (cd tests/node && NO_UPDATE_NOTIFIER=1 REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
     node_modules/.bin/redocly lint --format=stylish ../../docs/openapi.yaml) >&2 || {
    echo "lint: docs/openapi.yaml fails redocly lint" >&2; rc=1; }
  tests/node/node_modules/.bin/swagger-cli validate docs/openapi.yaml >/dev/null || {
    echo "lint: docs/openapi.yaml fails swagger-cli validate" >&2; rc=1; }
fi
exit $rc
