#!/usr/bin/env bash
# latency.sh - the delivery-at-latency scenarios of make bench (issue 17,
# point 6; BENCHMARKS.md "Delivery where the receivers are far away").  Run
# by tests/bench/run.sh after its own sections (BENCH_ONLY=latency: only
# these), or on its own.  Every destination is one `mailferry sink` (docs/sink.md)
# listening on 127.0.1.1 .. 127.0.1.D (Linux routes all of 127/8 to lo), one
# address per recipient domain d1.example.net .. dD.example.net:
#   1. D = 40 domains, every reply 100 ms after its command (pipelined
#      commands share one round trip), the end-of-data reply 300 ms after the
#      dot; N messages of ~2.2 KB, one recipient each, spread evenly over the
#      domains, relayed by mailferry (posted to /v1/messages/batch, 40 to a
#      request, as the delivery bench of run.sh does) and by Postfix 3.7
#      (injected with smtp-source, 2 connections per domain;
#      tests/bench/postfix_latency.sh routes each domain to its address with a
#      transport map), one after the other to the same kind of sink:
#        default: both out of the box - mailferry's workers and
#                 destination_concurrency are not set (their defaults are read
#                 from `mailferry config check`); Postfix's
#                 default_process_limit 100, default_destination_concurrency_limit 20
#        500:     500 concurrent deliveries each - mailferry workers=500,
#                 Postfix default_process_limit=500, and both the same
#                 per-destination limit, max(20, 2 x 500 / D) = 26
#      Targets: default >= 2x Postfix; 500 >= 4x Postfix and >= 90% of the
#      latency limit (sessions / time per message on a reused session with
#      PIPELINING: 0.1 s for MAIL, RCPT and DATA, 0.3 s for the dot =
#      0.4 s; 1,250 msg/s for 500 sessions).
#   2. 5k: mailferry alone, workers=5000 (destination_concurrency 2 x 5000 / D),
#      every reply (the dot's too) 200 ms: latency limit 5000 / 0.4 s =
#      12,500 msg/s; and its zero-latency rate in this run: the same messages
#      to a sink without delays, at the workers of run.sh's delivery bench
#      (64), mailferry's fastest known setting there.  (At 5,000 workers the
#      zero-latency rate would carry the engine's own cost per session, and
#      the target would get easier the higher that cost.)  Target >= 80% of
#      the smaller of the two.
#   3. rss: the resident memory of a delivery-only mailferry process with
#      1k, 5k and 10k SMTP sessions open and waiting (workers = sessions; the
#      sink holds every end-of-data reply for an hour), minus its RSS idle
#      before the messages were posted (by a separate API-only process);
#      sampled once the sink counts that many sessions open.  Printed in
#      total and per session, with the sink's RSS.
#      rss_tls: the same with every session over STARTTLS (the sink offers
#      it, mailferry's default opportunistic TLS takes it; TLS 1.3, sessions
#      resumed from the sink's tickets), with the sink's count of
#      handshakes.
# Each relay run is bounded by BENCH_LATENCY_TIMEOUT: a run that has not
# delivered everything by then is reported with what it delivered (marked
# "TIMEOUT"), and the bench moves on.  PASS/FAIL lines never stop the bench.
# Alongside each rate: what the run used of the machine's cores (from /proc),
# the relay (mailferry's process, or every process of the Postfix instance),
# PostgreSQL (mailferry's runs), the injector (loadgen or smtp-source), the
# sink, the idle time, and "other" (everything else busy on the machine:
# on a shared machine, other people's work), and from the sink's counters the
# sessions opened and the most open at once.
#
# Environment (defaults in brackets):
#   BENCH_LATENCY_ONLY       scenarios to run, comma-separated [default,500,5k,rss,rss_tls]
#   BENCH_LATENCY_MSGS       messages per run of scenario 1, out of the box [6000]
#   BENCH_LATENCY_MSGS_500   messages per run of scenario 1 at 500 sessions
#                            [30000]: at the limit, 24 s for mailferry, so that
#                            the start (connections, greetings, the windows'
#                            slow start from 5, the first posts: ~1.5 s) is a
#                            few percent of the run (at 15,000 it was 11%)
#   BENCH_LATENCY_MSGS_5K    messages per run of scenario 2 [40000]
#   BENCH_LATENCY_SESSIONS   concurrent deliveries of scenario 1's "500" [500]
#   BENCH_LATENCY_SESSIONS_5K  workers of scenario 2 [5000]
#   BENCH_LATENCY_ZERO_WORKERS workers of scenario 2's zero-latency run [64]
#   BENCH_LATENCY_RSS        session counts of scenario 3, both variants ["1000 5000 10000"]
#   BENCH_LATENCY_TIMEOUT    seconds a relay run (or the sessions of an RSS
#                            step) may take before it is cut off [240]
#   BENCH_LATENCY_DOMAINS    recipient domains, each its own address [40]
#   MAILFERRY_BIN            the binary [bin/mailferry]
# The message counts are multiples of the domain count (rounded up).  With
# the defaults the whole section took ~10 minutes on 2 shared vCPU, every run ending
# before its timeout.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"
D=${BENCH_LATENCY_DOMAINS:-40}
ONLY=,${BENCH_LATENCY_ONLY:-default,500,5k,rss,rss_tls},
round_up() { echo $(( ($1 + D - 1) / D * D )); }
N1=$(round_up "${BENCH_LATENCY_MSGS:-6000}")
N500=$(round_up "${BENCH_LATENCY_MSGS_500:-30000}")
N5K=$(round_up "${BENCH_LATENCY_MSGS_5K:-40000}")
S500=${BENCH_LATENCY_SESSIONS:-500}
S5K=${BENCH_LATENCY_SESSIONS_5K:-5000}
S0=${BENCH_LATENCY_ZERO_WORKERS:-64}
RSS_SIZES=${BENCH_LATENCY_RSS:-1000 5000 10000}
TIMEOUT=${BENCH_LATENCY_TIMEOUT:-240}
bin=${MAILFERRY_BIN:-$here/bin/mailferry}
ncores=$(nproc); hz=$(getconf CLK_TCK)
want() { case "$ONLY" in *,"$1",*) return 0 ;; *) return 1 ;; esac; }
per_dest() { local p=$(( 2 * ( ($1 + D - 1) / D ) )); [ "$p" -ge 20 ] || p=20; echo "$p"; }

# Out of the box means out of the box: no MAILFERRY_ setting inherited from
# the caller (run.sh exports some) reaches the relays below.
for v in $(compgen -e); do
  case "$v" in MAILFERRY_BIN) ;; MAILFERRY_*) unset "$v" ;; esac
done
# 10k sessions need 10k descriptors in mailferry and in the sink: both
# inherit this shell's soft limit, raised to the hard one.
ulimit -n "$(ulimit -Hn)"
nofile=$(ulimit -n)

tmp=$(mktemp -d /tmp/mailferry-latency.XXXXXX); chmod 755 "$tmp"
mf_pid=; api_pid=; sink_pid=; lg_pid=; inj_pid=; pf_dir=
stop_pid() { # PID [SECONDS]: TERM, then KILL after SECONDS (5)
  local p=$1 i
  [ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 0
  kill -TERM "$p" 2>/dev/null || true
  for i in $(seq $(( ${2:-5} * 10 ))); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}
cleanup() {
  local p
  for p in "$lg_pid" "$inj_pid" "$mf_pid" "$api_pid" "$sink_pid"; do [ -z "$p" ] || stop_pid "$p" 1; done
  [ -z "$pf_dir" ] || tests/bench/postfix_latency.sh stop "$pf_dir" || true
  deploy/pg.sh --dir "$tmp" stop >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

cc -O2 -o "$tmp/loadgen" tests/bench/loadgen.c -lcurl
python3 tests/bench/payload.py "$tmp" "$D"
url=$(deploy/pg.sh --dir "$tmp" start)
PSQL() { PGOPTIONS='-c client_min_messages=warning' runuser -u postgres -- psql -h "$tmp/run" -U postgres -d mailferry -Atq "$@"; }
MAILFERRY_DATABASE_URL=$url "$bin" migrate >/dev/null
key=$(MAILFERRY_DATABASE_URL=$url "$bin" keys create --name bench --scopes send,read,admin --json |
      sed -n 's/.*"key":"\([^"]*\)".*/\1/p')
# Each run starts from fresh destinations too: their windows start at 5
# and grow (queue/destination.h), as on a new install.
reset_db() { PSQL -c "TRUNCATE messages, recipients, events, destinations CASCADE" -c "CHECKPOINT"; }
# mailferry's defaults, read and never set (scenario 1, "default").
defaults=$(cd "$tmp" && MAILFERRY_DATABASE_URL=$url "$bin" config check)
def_workers=$(echo "$defaults" | sed -n 's/^workers = //p')
def_dc=$(echo "$defaults" | sed -n 's/^destination_concurrency = //p')
pf_def_procs=$(postconf -d -h default_process_limit)
pf_def_dc=$(postconf -d -h default_destination_concurrency_limit)
# Ports nothing listens on: the machine may be shared.
free_port() {
  local p
  while :; do p=$(($1 + RANDOM % 9000)); ss -ltnH "sport = :$p" | grep -q . || { echo "$p"; return; }; done
}
http_port=$(free_port 30000); api_port=$(free_port 30000)

# ---- the sink ---------------------------------------------------------------
# start_sink REPLY_DELAY DATA_DELAY [OPTION...]: a fresh sink on a new
# port (so its peak and sessions counters are this run's), with those
# further options, and the routes for it: $routes for mailferry,
# $tmp/transport for Postfix.
start_sink() {
  local rd=$1 dd=$2; shift 2
  [ -z "$sink_pid" ] || stop_pid "$sink_pid"
  sink_port=$(free_port 20000)
  local i addrs=
  routes=; : > "$tmp/transport"
  for i in $(seq "$D"); do
    addrs+="${addrs:+,}127.0.1.$i:$sink_port"
    routes+="${routes:+,}d$i.example.net=127.0.1.$i:$sink_port"
    echo "d$i.example.net smtp:[127.0.1.$i]:$sink_port" >> "$tmp/transport"
  done
  "$bin" sink --listen "$addrs" --reply-delay "$rd" --data-delay "$dd" "$@" > "$tmp/sink.out" 2>> "$tmp/sink.log" &
  sink_pid=$!
  for i in $(seq 50); do ss -ltn | grep -q "127.0.1.$D:$sink_port " && return 0; sleep 0.1; done
  echo "latency: the sink did not start"; cat "$tmp/sink.log"; exit 1
}
# sink_counter NAME: the sink's counter NAME (messages, open, peak, sessions)
# from the line it printed last (SIGUSR1 asks for one).
sink_counter() {
  grep '^sessions=' "$tmp/sink.out" | tail -n 1 | tr ' ' '\n' | sed -n "s/^$1=//p"
}
sink_poll() { kill -USR1 "$sink_pid"; sleep 0.1; }

# wait_sink COUNTER TARGET T0 TIMEOUT: polls the sink (10 times a second)
# until COUNTER reaches TARGET; sets w_value (the last reading) and w_at (when
# the signal behind it was sent).  Returns 1 when TIMEOUT seconds since T0 pass
# first.
wait_sink() {
  local ts
  while :; do
    ts=$(date +%s.%N)
    sink_poll
    w_value=$(sink_counter "$1"); w_value=${w_value:-0}; w_at=$ts
    [ "$w_value" -lt "$2" ] || return 0
    awk -v a="$3" -v b="$ts" -v t="$4" 'BEGIN { exit !(b - a >= t) }' && return 1
  done
}

# ---- CPU accounting ---------------------------------------------------------
# tree_ticks PID...: CPU ticks of each process and of its children, the
# waited-for ones included (fields 14-17 of the parent, 14-15 of each live
# child: a child that exits between two readings moves into its parent's
# cutime, so differences stay exact).
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
pg_pid() { head -n 1 "$tmp/pg/postmaster.pid"; }
idle_ticks() { awk '/^cpu / { print $5 + $6 }' /proc/stat; }
# cpu_mark RELAY_PIDS...: "relay postgres sink idle" in ticks.
cpu_mark() { echo "$(tree_ticks "$@") $(tree_ticks "$(pg_pid)") $(tree_ticks "$sink_pid") $(idle_ticks)"; }
# cpu_line MARK0 MARK1 SECONDS INJECTOR_CPU_SECONDS: the cores each used.
cpu_line() {
  echo "$1 $2" | awk -v s="$3" -v inj="$4" -v hz="$hz" -v c="$ncores" '{
    r = ($5 - $1) / hz / s; p = ($6 - $2) / hz / s; k = ($7 - $3) / hz / s; i = ($8 - $4) / hz / s; j = inj / s
    printf "cores relay=%.2f postgres=%.2f injector=%.2f sink=%.2f idle=%.2f other=%.2f", r, p, j, k, i, c - r - p - j - k - i }'
}

now() { date +%s.%N; }
# report NAME RELAY N T0 OK LATENCY_LIMIT CPU: one result line (a limit of 0:
# none, the sink has no delays); sets
# rate[NAME] (messages per second; on a timeout, what was delivered by then)
declare -A rate
report() {
  local name=$1 relay=$2 n=$3 t0=$4 ok=$5 limit=$6 cpu=$7 done secs sessions peak
  done=$(( w_value - base ))
  secs=$(awk -v a="$t0" -v b="$w_at" 'BEGIN { printf "%.2f", b - a }')
  rate[$name]=$(awk -v n="$done" -v s="$secs" 'BEGIN { printf "%.1f", n / s }')
  sessions=$(sink_counter sessions); peak=$(sink_counter peak)
  printf "latency_%s %s messages=%d/%d seconds=%s msgs_per_sec=%s latency_limit=%s share=%s sink_sessions=%s messages_per_session=%s peak_open=%s %s%s\n" \
    "$name" "$relay" "$done" "$n" "$secs" "${rate[$name]}" "$([ "$limit" != 0 ] && echo "$limit" || echo none)" \
    "$(awk -v r="${rate[$name]}" -v l="$limit" 'BEGIN { if (l > 0) printf "%.0f%%", 100 * r / l; else printf "-" }')" \
    "$sessions" "$(awk -v n="$done" -v s="$sessions" 'BEGIN { printf "%.1f", s ? n / s : 0 }')" "$peak" "$cpu" \
    "$([ "$ok" = 1 ] || echo " TIMEOUT after ${TIMEOUT}s")"
}

# ---- the relays -------------------------------------------------------------
# start_mf ROLES PORT [VAR=VALUE...]: mailferry serve with the routes of the
# current sink and only the given settings; sets mf_pid (or api_pid for an
# API-only process).
start_mf() {
  local roles=$1 p=$2 pid i; shift 2
  env MAILFERRY_DATABASE_URL="$url" MAILFERRY_HTTP_LISTEN="127.0.0.1:$p" MAILFERRY_ROLES="$roles" \
      MAILFERRY_ROUTES="$routes" MAILFERRY_LOG_LEVEL=warn "$@" "$bin" serve >>"$tmp/serve.log" 2>&1 &
  pid=$!
  if [ "$roles" = api ]; then api_pid=$pid; else mf_pid=$pid; fi
  for i in $(seq 300); do
    curl -fs "http://127.0.0.1:$p/readyz" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "latency: mailferry serve did not start"; tail -n 20 "$tmp/serve.log"; exit 1
}

# mf_run NAME N SESSIONS_LIMIT [VAR=VALUE...]: N messages posted to a
# mailferry with those settings, delivered to the current sink.
mf_run() {
  local name=$1 n=$2 limit=$3 t0 m0 m1 ok=1 lg_cpu; shift 3
  reset_db
  start_mf api,delivery "$http_port" "$@"
  sink_poll; base=$(sink_counter messages)
  m0=$(cpu_mark "$mf_pid"); t0=$(now)
  "$tmp/loadgen" "http://127.0.0.1:$http_port/v1/messages/batch" "$tmp/latency_batch.json" "$key" 8 $((n / D)) \
    > "$tmp/loadgen.out" 2>&1 &
  lg_pid=$!
  wait_sink messages $((base + n)) "$t0" "$TIMEOUT" || ok=0
  m1=$(cpu_mark "$mf_pid")
  stop_pid "$lg_pid"; lg_pid=
  lg_cpu=$(sed -n 's/.*loadgen_cpu_s=\([0-9.]*\).*/\1/p' "$tmp/loadgen.out"); lg_cpu=${lg_cpu:-0}
  grep -q ' errors=0 ' "$tmp/loadgen.out" || { echo "latency: posting was cut off or failed:"; cat "$tmp/loadgen.out"; }
  report "$name" mailferry "$n" "$t0" "$ok" "$limit" \
    "$(cpu_line "$m0" "$m1" "$(awk -v a="$t0" -v b="$w_at" 'BEGIN { print b - a }')" "$lg_cpu")"
  stop_pid "$mf_pid" 15; mf_pid=
}

# pf_run NAME N SESSIONS_LIMIT PROCESS_LIMIT PER_DESTINATION: the same N
# messages relayed by a fresh Postfix instance.
pf_run() {
  local name=$1 n=$2 limit=$3 t0 m0 m1 ok=1 inport master inj_cpu sent; shift 3
  pf_dir=$tmp/postfix-$name
  inport=$(tests/bench/postfix_latency.sh start "$pf_dir" "$1" "$2" "$tmp/transport")
  master=$(tr -d ' ' < "$pf_dir/queue/pid/master.pid")
  sink_poll; base=$(sink_counter messages)
  m0=$(cpu_mark "$master"); t0=$(now)
  # One smtp-source per domain, 2 connections each (a new one per message,
  # smtp-source's default), all in one process group timed together.
  /usr/bin/time -o "$tmp/inject.time" -f "%U %S" bash -c '
    for i in $(seq "$1"); do
      /usr/sbin/smtp-source -s 2 -m "$2" -l 2048 -f bench@example.com -t "customer@d$i.example.net" "$3" &
    done
    wait' _ "$D" $((n / D)) "$inport" > "$tmp/inject.out" 2>&1 &
  inj_pid=$!
  wait_sink messages $((base + n)) "$t0" "$TIMEOUT" || ok=0
  m1=$(cpu_mark "$master")
  if kill -0 "$inj_pid" 2>/dev/null; then pkill -P "$inj_pid" 2>/dev/null || true; fi
  wait "$inj_pid" 2>/dev/null || true; inj_pid=
  inj_cpu=$(awk '{ print $1 + $2 }' "$tmp/inject.time" 2>/dev/null || echo 0)
  report "$name" postfix "$n" "$t0" "$ok" "$limit" \
    "$(cpu_line "$m0" "$m1" "$(awk -v a="$t0" -v b="$w_at" 'BEGIN { print b - a }')" "${inj_cpu:-0}")"
  read -r sent deferred < <(tests/bench/postfix_latency.sh sent "$pf_dir")
  [ "$deferred" = 0 ] || echo "latency_${name} postfix: $deferred deliveries deferred (sent $sent)"
  tests/bench/postfix_latency.sh stop "$pf_dir"; pf_dir=
}

verdict() { # TEXT CONDITION(awk): prints PASS or FAIL before TEXT
  if awk "BEGIN { exit !($2) }"; then echo "PASS $1"; else echo "FAIL $1"; fi
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
summary=()

echo "== delivery at latency: $D domains, each its own address (127.0.1.1-$D), Postfix $(postconf -d -h mail_version), ulimit -n $nofile"
t_msg=0.4   # seconds per message on a reused session: one round trip for MAIL, RCPT and DATA, then the dot's

if want default; then
  echo "== 1. default: $N1 messages, replies after 100 ms, the dot's after 300 ms; out of the box (mailferry workers=$def_workers destination_concurrency=$def_dc; Postfix default_process_limit=$pf_def_procs default_destination_concurrency_limit=$pf_def_dc)"
  mf_s=$(( def_workers < D * def_dc ? def_workers : D * def_dc ))
  pf_s=$(( pf_def_procs < D * pf_def_dc ? pf_def_procs : D * pf_def_dc ))
  mf_lim=$(awk -v s="$mf_s" -v t="$t_msg" 'BEGIN { printf "%.0f", s / t }')
  pf_lim=$(awk -v s="$pf_s" -v t="$t_msg" 'BEGIN { printf "%.0f", s / t }')
  start_sink 100ms 300ms
  mf_run default_mailferry "$N1" "$mf_lim"
  start_sink 100ms 300ms
  pf_run default_postfix "$N1" "$pf_lim" "$pf_def_procs" "$pf_def_dc"
  r=$(ratio "${rate[default_mailferry]}" "${rate[default_postfix]}")
  summary+=("$(verdict "latency out of the box: mailferry ${rate[default_mailferry]} msg/s ($mf_s sessions: ${mf_lim} msg/s latency limit) vs Postfix ${rate[default_postfix]} msg/s ($pf_s sessions: ${pf_lim} msg/s) = ${r}x (target >= 2x)" "$r >= 2")")
fi

if want 500; then
  dc=$(per_dest "$S500")
  lim=$(awk -v s="$S500" -v t="$t_msg" 'BEGIN { printf "%.0f", s / t }')
  echo "== 1. $S500: $N500 messages, replies after 100 ms, the dot's after 300 ms; $S500 concurrent deliveries each (mailferry workers=$S500 destination_concurrency=$dc; Postfix default_process_limit=$S500 default_destination_concurrency_limit=$dc)"
  start_sink 100ms 300ms
  mf_run ${S500}_mailferry "$N500" "$lim" MAILFERRY_WORKERS="$S500" MAILFERRY_DESTINATION_CONCURRENCY="$dc"
  start_sink 100ms 300ms
  pf_run ${S500}_postfix "$N500" "$lim" "$S500" "$dc"
  a=${rate[${S500}_mailferry]}; b=${rate[${S500}_postfix]}
  r=$(ratio "$a" "$b"); share=$(awk -v a="$a" -v l="$lim" 'BEGIN { printf "%.0f", 100 * a / l }')
  summary+=("$(verdict "latency at $S500 sessions: mailferry $a msg/s vs Postfix $b msg/s = ${r}x (target >= 4x)" "$r >= 4")")
  summary+=("$(verdict "latency at $S500 sessions: mailferry $a msg/s = ${share}% of the latency limit $lim msg/s (target >= 90%)" "$share >= 90")")
fi

if want 5k; then
  dc=$(per_dest "$S5K")
  lim=$(awk -v s="$S5K" 'BEGIN { printf "%.0f", s / 0.4 }')
  echo "== 2. 5k: $N5K messages to a sink without delays (mailferry workers=$S0 destination_concurrency=$S0), then to one with every reply after 200 ms (workers=$S5K destination_concurrency=$dc)"
  start_sink 0 0
  mf_run 5k_zero_latency "$N5K" 0 MAILFERRY_WORKERS="$S0" MAILFERRY_DESTINATION_CONCURRENCY="$S0"
  start_sink 200ms 200ms
  mf_run 5k_200ms "$N5K" "$lim" MAILFERRY_WORKERS="$S5K" MAILFERRY_DESTINATION_CONCURRENCY="$dc"
  a=${rate[5k_200ms]}; z=${rate[5k_zero_latency]}
  m=$(awk -v l="$lim" -v z="$z" 'BEGIN { print (l < z ? l : z) }')
  share=$(awk -v a="$a" -v m="$m" 'BEGIN { printf "%.0f", (m > 0 ? 100 * a / m : 0) }')
  summary+=("$(verdict "latency at $S5K sessions, 200 ms replies: mailferry $a msg/s = ${share}% of min(latency limit $lim, its zero-latency rate $z at $S0 workers) msg/s (target >= 80%)" "$share >= 80")")
fi

# rss_runs LABEL SINK_OPTIONS...: scenario 3 against a sink started with
# those options (LABEL "" plaintext, "_tls" STARTTLS).
rss_runs() {
  local label=$1 s n ok t0 rss0 rss1 threads0 threads open stacks sink_rss secs line tls; shift
  start_sink 0 1h "$@"
  for s in $RSS_SIZES; do
    if [ $((s + 256)) -gt "$nofile" ]; then
      echo "latency_rss${label}_$s skipped: ulimit -n is $nofile (hard limit), $s sessions need more"
      summary+=("rss at $s sessions${label:+ with STARTTLS}: skipped, ulimit -Hn $nofile")
      continue
    fi
    n=$(round_up "$s")
    reset_db
    # The delivery process first, idle (the queue is empty), then the
    # messages through a separate API-only process so that the HTTP side's
    # memory is not in the figure.
    start_mf delivery "$http_port" MAILFERRY_WORKERS="$s" MAILFERRY_DESTINATION_CONCURRENCY="$(per_dest "$s")" \
      MAILFERRY_SHUTDOWN_GRACE=1s
    # No end of data is ever answered here, so no destination's window
    # could grow from its start of 5 (queue/destination.h): the
    # destinations start warmed, at the per-destination limit, as after a
    # while of traffic.  Worker threads start on demand, so idle is the
    # process before any mail, and the figure includes the threads.
    PSQL -c "INSERT INTO destinations (domain, lim) SELECT 'd' || i || '.example.net', $(per_dest "$s")
             FROM generate_series(1, $D) AS i ON CONFLICT (domain) DO UPDATE SET lim = excluded.lim"
    sleep 1
    rss0=$(awk '/^VmRSS:/ { print $2 }' "/proc/$mf_pid/status")
    threads0=$(awk '/^Threads:/ { print $2 }' "/proc/$mf_pid/status")
    start_mf api "$api_port"
    t0=$(now)
    "$tmp/loadgen" "http://127.0.0.1:$api_port/v1/messages/batch" "$tmp/latency_batch.json" "$key" 8 $((n / D)) \
      > "$tmp/loadgen.out" 2>&1 || { echo "latency: posting failed:"; cat "$tmp/loadgen.out"; }
    ok=1; wait_sink open "$s" "$t0" "$TIMEOUT" || ok=0
    # Over TLS, open is not yet up: each handshake has to be done.
    [ -z "$label" ] || [ "$ok" = 0 ] || wait_sink tls "$s" "$t0" "$TIMEOUT" || ok=0
    sleep 1; sink_poll
    open=$(sink_counter open)
    rss1=$(awk '/^VmRSS:/ { print $2 }' "/proc/$mf_pid/status")
    threads=$(awk '/^Threads:/ { print $2 }' "/proc/$mf_pid/status")
    # Of that, what the threads' stacks hold: the resident part of the
    # mappings of a worker's stack (QUEUE_WORKER_STACK, 256 KiB: one
    # mapping of 252 KiB after glibc's guard page).
    stacks=$(awk '/^Size:/ { s = $2 } /^Rss:/ { if (s == 252 || s == 256) t += $2 } END { print t + 0 }' "/proc/$mf_pid/smaps")
    sink_rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$sink_pid/status")
    tls=$(sink_counter tls)
    secs=$(awk -v a="$t0" -v b="$w_at" 'BEGIN { printf "%.1f", b - a }')
    line=$(awk -v s="$open" -v a="$rss0" -v b="$rss1" -v k="$sink_rss" -v t="$threads" -v x="$secs" -v st="$stacks" -v t0="$threads0" -v tls="$tls" 'BEGIN {
      printf "sessions_open=%d seconds_to_open=%s rss_idle_kb=%d rss_open_kb=%d delta_kb=%d kb_per_session=%.1f threads_idle=%d threads=%d rss_in_thread_stacks_kb=%d sink_rss_kb=%d sink_tls_handshakes=%d",
        s, x, a, b, b - a, s ? (b - a) / s : 0, t0, t, st, k, tls }')
    echo "latency_rss${label}_$s $line$([ "$ok" = 1 ] || echo " TIMEOUT: $open of $s open after ${TIMEOUT}s")"
    summary+=("$(echo "$line" | awk -v n="$s" -v ok="$ok" -v tls="${label:+ with STARTTLS}" '{ for (f = 1; f <= NF; f++) { split($f, kv, "="); v[kv[1]] = kv[2] }
      printf "rss at %d sessions%s: %d open, mailferry +%.1f MB (%.1f KB per session; %d threads, their stacks %.1f MB), sink %.1f MB%s",
        n, tls, v["sessions_open"], v["delta_kb"] / 1024, v["kb_per_session"], v["threads"], v["rss_in_thread_stacks_kb"] / 1024,
        v["sink_rss_kb"] / 1024, ok ? "" : " (TIMEOUT)" }')")
    stop_pid "$api_pid"; api_pid=
    stop_pid "$mf_pid" 15; mf_pid=
    # The sessions close with the process; the next step starts from none.
    t0=$(now)
    while sink_poll; [ "$(sink_counter open)" -gt 0 ]; do
      if awk -v a="$t0" -v b="$(now)" 'BEGIN { exit !(b - a > 30) }'; then
        echo "latency: the sink still has $(sink_counter open) sessions open"; break
      fi
    done
  done
}

if want rss; then
  echo "== 3. rss: a delivery-only mailferry with N sessions open, each waiting for its end-of-data reply"
  rss_runs ""
fi
if want rss_tls; then
  # The same over STARTTLS: the sink offers it with a self-signed P-256
  # certificate, mailferry takes it (tls_policy opportunistic, its
  # default); its TLS sessions resume from the sink's tickets.
  echo "== 3. rss_tls: the same, every session over STARTTLS (TLS 1.3)"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/sink.key" \
    -out "$tmp/sink.pem" -subj /CN=sink.example.net -days 2 2>/dev/null
  rss_runs _tls --tls-cert "$tmp/sink.pem" --tls-key "$tmp/sink.key"
fi

echo "== delivery at latency: summary (ratios measured in this run)"
for l in "${summary[@]}"; do echo "$l"; done
