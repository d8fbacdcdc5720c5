#!/usr/bin/env bash
# postfix_relay.sh N SIZE - the Postfix baseline of BENCHMARKS.md: a throwaway
# Postfix instance (own config_directory, loopback ports) relays N messages of
# SIZE bytes, injected with smtp-source -s 20, to smtp-sink.  Prints
# "postfix_relay_msgs_per_sec <rate>" (end to end: first injection to the
# last message accepted by the sink).
set -euo pipefail
n=${1:-20000}; size=${2:-2048}
d=$(mktemp -d /tmp/mf-bench-postfix.XXXXXX); chmod 755 "$d"
free_port() { # a port nothing listens on (the machine may be shared)
  local p
  while :; do p=$((26000 + RANDOM % 4000)); ss -ltnH "sport = :$p" | grep -q . || { echo "$p"; return; }; done
}
in_port=$(free_port); sink_port=$(free_port)
log=/var/log/mailferry-bench-postfix.log
mkdir -p "$d/conf" "$d/queue" "$d/data"; chown postfix "$d/data"
cp /etc/postfix/master.cf "$d/conf/"
# Run every service unchrooted; smtpd on loopback only.
sed -i -e 's/^\(\S*\s\+\S\+\s\+\S\+\s\+\S\+\s\+\)y/\1n/' \
       -e "s/^smtp      inet.*/127.0.0.1:$in_port inet n - n - - smtpd/" "$d/conf/master.cf"
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
relayhost = [127.0.0.1]:$sink_port
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
maillog_file = $log
smtp_tls_security_level = none
default_process_limit = 100
default_destination_concurrency_limit = 64
CF
cleanup() {
  postfix -c "$d/conf" stop >/dev/null 2>&1 || true
  kill "${sink_pid:-0}" 2>/dev/null || true
  rm -rf "$d"
}
trap cleanup EXIT
: > "$log"
/usr/sbin/smtp-sink -u nobody -c 127.0.0.1:$sink_port 256 > "$d/sink.out" &
sink_pid=$!
postfix -c "$d/conf" start >/dev/null 2>&1
for _ in $(seq 50); do ss -ltn | grep -q ":$in_port " && break; sleep 0.1; done
start=$(date +%s.%N)
/usr/sbin/smtp-source -s 20 -m "$n" -l "$size" -f bench@example.com -t rcpt@example.net 127.0.0.1:$in_port
while :; do
  sent=$(grep -c 'status=sent' "$log" || true)
  [ "$sent" -ge "$n" ] && break
  sleep 0.2
done
end=$(date +%s.%N)
awk -v n="$n" -v s="$start" -v e="$end" 'BEGIN { printf "postfix_relay_msgs_per_sec %.1f\n", n / (e - s) }'
