#!/usr/bin/env bash
# submission.sh - the SMTP submission bench of make bench (issue 19):
# messages per second accepted over SMTP at 32 concurrent sessions, mailferry's
# submission listener (docs/submission.md) side by side with Postfix's own
# smtpd accepting the same messages into its queue, on this machine in the
# same run.  Target: mailferry >= 3x Postfix.  Run by tests/bench/run.sh
# (BENCH_ONLY=submission: only this), or on its own.
#
# Both sides get the same load from tests/bench/smtpload.c (one thread,
# epoll; Postfix's smtp-source cannot AUTH): 32 sessions, each carrying up to
# 100 messages (then QUIT and a new session), no pipelining, one recipient,
# ~2 KB messages (From, To, Subject, Date, a Message-ID unique per message).
#   - mailferry: `mailferry serve` with the api role only (the submission
#     listener runs there; no delivery, so only acceptance is measured) on its
#     own PostgreSQL, submission_listen on a free loopback port with
#     submission_allow_plaintext_auth = yes (no TLS, as `make run` sets it
#     up), AUTH PLAIN with a send-scoped API key once per session.  A 250
#     after the dot means the message is committed (fsync) in the queue.
#   - Postfix: a throwaway instance (own config and queue directories,
#     smtpd on a free loopback port, mynetworks = 127.0.0.0/8, no AUTH);
#     every message goes to the hold queue (smtpd_client_restrictions =
#     check_client_access static:HOLD), so qmgr never schedules a delivery
#     and only acceptance is measured; cleanup fsyncs the queue file before
#     smtpd answers 250.
# The two are taken in BENCH_SUBMISSION_ROUNDS alternating rounds (Postfix,
# then mailferry) after a warm-up of each, and the round with the median
# ratio is reported; each round checks that every 250 is a message in the
# store (rows in messages; files in Postfix's hold queue).  Alongside each
# rate: the cores used by the relay (mailferry's process; every process of
# the Postfix instance), PostgreSQL, smtpload, idle time and everything
# else, and the relay's and PostgreSQL's CPU per accepted message.
#
# Environment (defaults in brackets):
#   BENCH_SUBMISSION_MSGS      messages per side and round [5000]
#   BENCH_SUBMISSION_SESSIONS  concurrent sessions [32]
#   BENCH_SUBMISSION_SIZE      message size in octets [2048]
#   BENCH_SUBMISSION_ROUNDS    alternating rounds [3]
#   MAILFERRY_BIN              the binary [bin/mailferry]
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"
N=${BENCH_SUBMISSION_MSGS:-5000}
C=${BENCH_SUBMISSION_SESSIONS:-32}
SIZE=${BENCH_SUBMISSION_SIZE:-2048}
ROUNDS=${BENCH_SUBMISSION_ROUNDS:-3}
bin=${MAILFERRY_BIN:-$here/bin/mailferry}
ncores=$(nproc); hz=$(getconf CLK_TCK)

tmp=$(mktemp -d /tmp/mailferry-submission.XXXXXX); chmod 755 "$tmp"
mf_pid=; pf_up=
cleanup() {
  if [ -n "$mf_pid" ]; then kill -TERM "$mf_pid" 2>/dev/null || true; wait "$mf_pid" 2>/dev/null || true; fi
  [ -z "$pf_up" ] || postfix -c "$tmp/pf/conf" stop >/dev/null 2>&1 || true
  deploy/pg.sh --dir "$tmp" stop >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
free_port() { # a port nothing listens on (the machine may be shared)
  local p
  while :; do p=$((30000 + RANDOM % 10000)); ss -ltnH "sport = :$p" | grep -q . || { echo "$p"; return; }; done
}

cc -O2 -o "$tmp/smtpload" tests/bench/smtpload.c

# mailferry: its own PostgreSQL, an API key with the send scope, the api role only.
url=$(deploy/pg.sh --dir "$tmp" start)
PSQL() { PGOPTIONS='-c client_min_messages=warning' runuser -u postgres -- psql -h "$tmp/run" -U postgres -d mailferry -Atq "$@"; }
export MAILFERRY_DATABASE_URL=$url
"$bin" migrate >/dev/null
key=$("$bin" keys create --name bench-submission --scopes send --json | sed -n 's/.*"key":"\([^"]*\)".*/\1/p')
# A port found free may be taken by the time serve binds it (CI runs
# beside the bench): up to three tries with new ports.
start_mf() {
  http_port=$(free_port); mf_port=$(free_port)
  [ "$mf_port" != "$http_port" ] || return 1
  MAILFERRY_ROLES=api MAILFERRY_HTTP_LISTEN=127.0.0.1:$http_port MAILFERRY_LOG_LEVEL=warn \
    MAILFERRY_SUBMISSION_LISTEN=127.0.0.1:$mf_port MAILFERRY_SUBMISSION_ALLOW_PLAINTEXT_AUTH=yes \
    "$bin" serve >>"$tmp/serve.log" 2>&1 &
  mf_pid=$!
  for _ in $(seq 100); do
    kill -0 "$mf_pid" 2>/dev/null || break   # not another process's /readyz
    curl -fs "http://127.0.0.1:$http_port/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  kill -TERM "$mf_pid" 2>/dev/null || true; wait "$mf_pid" 2>/dev/null || true; mf_pid=
  return 1
}
start_mf || start_mf || start_mf || { echo "submission: serve did not start"; cat "$tmp/serve.log"; exit 1; }

# Postfix: a throwaway instance as tests/bench/postfix_relay.sh makes one,
# every message held.
pf=$tmp/pf; pf_port=$(free_port)
mkdir -p "$pf/conf" "$pf/queue" "$pf/data"; chown postfix "$pf/data"
cp /etc/postfix/master.cf "$pf/conf/"
sed -i -e 's/^\(\S*\s\+\S\+\s\+\S\+\s\+\S\+\s\+\)y/\1n/' \
       -e "s/^smtp      inet.*/127.0.0.1:$pf_port inet n - n - - smtpd/" "$pf/conf/master.cf"
cat > "$pf/conf/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $pf/queue
data_directory = $pf/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = bench.localhost
mydestination =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_client_restrictions = check_client_access static:HOLD
# No local delivery here: without these every new smtpd tries
# /etc/aliases.db and NIS, and logs an error and a warning.
alias_maps =
alias_database =
maillog_file = /var/log/mailferry-bench-submission-postfix.log
default_process_limit = 100
CF
: > /var/log/mailferry-bench-submission-postfix.log
postfix -c "$pf/conf" start >/dev/null 2>&1; pf_up=1
for _ in $(seq 50); do ss -ltnH "sport = :$pf_port" | grep -q . && break; sleep 0.1; done
ss -ltnH "sport = :$pf_port" | grep -q . || { echo "submission: Postfix did not start"; exit 1; }

# What a run used of the cores (as tests/bench/latency.sh counts it):
# tree_ticks PID... is the CPU ticks of each process, its reaped children
# and its live children; the relay is mailferry's process or the Postfix
# instance's master (smtpd, cleanup, ... are its children), PostgreSQL the
# postmaster of mailferry's cluster, "other" whatever else kept the
# machine busy (on a shared machine, other people's work).
tree_ticks() {
  local t=0 p c
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] || continue
    t=$((t + $(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
    for c in $(pgrep -P "$p" || true); do
      t=$((t + $(awk '{ print $14 + $15 }' "/proc/$c/stat" 2>/dev/null || echo 0)))
    done
  done
  echo "$t"
}
idle_ticks() { awk '/^cpu / { print $5 + $6 }' /proc/stat; }
pg_pid() { head -n 1 "$tmp/pg/postmaster.pid"; }
pf_pid() { tr -d ' ' < "$pf/queue/pid/master.pid"; }
cpu_mark() { echo "$(tree_ticks "$1") $(tree_ticks "$(pg_pid)") $(idle_ticks) $(date +%s.%N)"; }
# load SIDE MESSAGES: runs smtpload against SIDE (mailferry or postfix) and
# prints its line, then the cores each part used during it and the CPU
# (relay and PostgreSQL) per accepted message.
load() {
  local relay m0 m1 out
  if [ "$1" = mailferry ]; then relay=$mf_pid; else relay=$(pf_pid); fi
  m0=$(cpu_mark "$relay")
  if [ "$1" = mailferry ]; then
    out=$("$tmp/smtpload" "127.0.0.1:$mf_port" "$C" "$2" "$SIZE" --auth "bench:$key")
  else
    out=$("$tmp/smtpload" "127.0.0.1:$pf_port" "$C" "$2" "$SIZE")
  fi
  m1=$(cpu_mark "$relay")
  echo "$m0 $m1" | awk -v l="$out" -v hz="$hz" -v c="$ncores" '{
    s = $8 - $4; r = ($5 - $1) / hz / s; p = ($6 - $2) / hz / s; i = ($7 - $3) / hz / s
    match(l, /smtpload_cpu_s=[0-9.]+/); j = substr(l, RSTART + 15, RLENGTH - 15) / s
    match(l, / ok=[0-9]+/); ok = substr(l, RSTART + 4, RLENGTH - 4)
    printf "%s cores relay=%.2f postgres=%.2f smtpload=%.2f idle=%.2f other=%.2f cpu_us_per_msg=%.0f\n",
      l, r, p, j, i, c - r - p - j - i, ok ? (r + p) * s * 1e6 / ok : 0 }'
}
rate() { echo "$1" | sed -n 's/.* msgs_per_sec=\([0-9.]*\).*/\1/p'; }
okc() { echo "$1" | sed -n 's/.* ok=\([0-9]*\).*/\1/p'; }
stored_mf() { PSQL -c "SELECT count(*) FROM messages"; }
stored_pf() { find "$pf/queue/hold" -type f | wc -l; }
# Each round starts from an empty store on both sides.
reset() {
  PSQL -c "TRUNCATE messages, recipients, events CASCADE" -c "CHECKPOINT"
  postsuper -c "$pf/conf" -d ALL hold >/dev/null 2>&1
}
check() { # SIDE OK STORED
  [ "$3" -ge "$2" ] || { echo "submission: $1 answered 250 to $2 messages but stored $3" >&2; exit 1; }
}

echo "== submission: $N messages of ~$SIZE octets per side and round, $C sessions (smtpload), mailferry (AUTH PLAIN, api role) vs Postfix $(postconf -d -h mail_version) smtpd (hold queue)"
load postfix 500 >/dev/null; load mailferry 500 >/dev/null   # warm-up
for round in $(seq "$ROUNDS"); do
  reset
  p=$(load postfix "$N"); check postfix "$(okc "$p")" "$(stored_pf)"
  m=$(load mailferry "$N"); check mailferry "$(okc "$m")" "$(stored_mf)"
  echo "round $round: postfix_smtpd $p"
  echo "round $round: mailferry_submission $m"
  awk -v a="$(rate "$m")" -v b="$(rate "$p")" 'BEGIN { printf "%.4f %s %s\n", a / b, a, b }' >> "$tmp/rounds"
done
read -r _ mf_rate pf_rate < <(sort -n "$tmp/rounds" | sed -n "$(( (ROUNDS + 1) / 2 ))p")
ratios=$(awk '{ printf "%s%.2f", (NR > 1 ? ", " : ""), $1 }' "$tmp/rounds")
echo "submission_msgs_per_sec $mf_rate"
echo "postfix_smtpd_msgs_per_sec $pf_rate"
awk -v a="$mf_rate" -v b="$pf_rate" -v n="$ROUNDS" -v r="$ratios" -v c="$C" 'BEGIN { x = a / b
  printf "%s submission: mailferry %.0f msg/s vs Postfix smtpd %.0f msg/s accepted at %d sessions = %.2fx (target >= 3x; the median of %d rounds: %s)\n",
    (x >= 3 ? "PASS" : "FAIL"), a, b, c, x, n, r }'
