#!/usr/bin/env bash
# postfix_latency.sh - the Postfix 3.7 side of the delivery-at-latency
# scenarios of tests/bench/latency.sh: a throwaway Postfix instance (its own
# config and queue directories, smtpd on a loopback port, nothing chrooted)
# that routes every test domain to its own sink address.
#
#   postfix_latency.sh start DIR PROCESS_LIMIT PER_DESTINATION TRANSPORT_FILE
#       creates the instance in DIR (empty or missing), starts it and prints
#       the port its smtpd listens on (127.0.0.1:PORT).  PROCESS_LIMIT is
#       default_process_limit (Postfix's default: 100), PER_DESTINATION
#       default_destination_concurrency_limit (default: 20).
#       TRANSPORT_FILE lines are "domain smtp:[127.0.1.7]:PORT" (transport(5)),
#       read as a texthash: table, so no postmap is needed.
#   postfix_latency.sh sent DIR      prints how many deliveries its log
#                                    counts as status=sent, and deferred
#   postfix_latency.sh stop DIR      stops it and removes DIR and its log
#
# Everything else is Postfix's default: slow start (initial destination
# concurrency 5), connection caching on demand, PIPELINING.  The log goes to
# /var/log/mailferry-bench-latency-<dir name>.log (maillog_file must live
# under maillog_file_prefixes, /var by default).
set -euo pipefail
cmd=${1:-}; d=${2:-}
[ -n "$cmd" ] && [ -n "$d" ] || { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
log=/var/log/mailferry-bench-latency-$(basename "$d").log

case "$cmd" in
  start)
    procs=$3; per_dest=$4; transport=$5
    mkdir -p "$d/conf" "$d/queue" "$d/data"; chmod 755 "$d"; chown postfix "$d/data"
    while :; do   # a port nothing listens on (the machine may be shared)
      port=$((26000 + RANDOM % 4000)); ss -ltnH "sport = :$port" | grep -q . || break
    done
    cp /etc/postfix/master.cf "$d/conf/"
    sed -i -e 's/^\(\S*\s\+\S\+\s\+\S\+\s\+\S\+\s\+\)y/\1n/' \
           -e "s/^smtp      inet.*/127.0.0.1:$port inet n - n - - smtpd/" "$d/conf/master.cf"
    cp "$transport" "$d/conf/transport"
    cat > "$d/conf/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $d/queue
data_directory = $d/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = bench.localhost
mydestination =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
transport_maps = texthash:$d/conf/transport
maillog_file = $log
smtp_tls_security_level = none
default_process_limit = $procs
default_destination_concurrency_limit = $per_dest
CF
    : > "$log"
    postfix -c "$d/conf" start >/dev/null 2>&1 || { postfix -c "$d/conf" check >&2 || true; exit 1; }
    for _ in $(seq 100); do ss -ltn | grep -q "127.0.0.1:$port " && break; sleep 0.1; done
    ss -ltn | grep -q "127.0.0.1:$port " || { echo "postfix_latency: smtpd did not listen on $port" >&2; tail "$log" >&2; exit 1; }
    echo "127.0.0.1:$port"
    ;;
  sent)
    echo "$(grep -c ' status=sent' "$log" || true) $(grep -c ' status=deferred' "$log" || true)"
    ;;
  stop)
    if [ -f "$d/conf/main.cf" ]; then
      postfix -c "$d/conf" abort >/dev/null 2>&1 || postfix -c "$d/conf" stop >/dev/null 2>&1 || true
      # abort returns at once; the master and its children leave within a
      # second or two, and the queue directory must outlive them.
      for _ in $(seq 50); do [ -f "$d/queue/pid/master.pid" ] && kill -0 "$(tr -d ' ' < "$d/queue/pid/master.pid")" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -rf "$d" "$log"
    ;;
  *) echo "postfix_latency: unknown command $cmd" >&2; exit 2 ;;
esac
