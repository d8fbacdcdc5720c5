#!/usr/bin/env bash
# postfix_bounce.sh start DIR IN_PORT BOUNCE_DOMAIN BOUNCE_PORT | stop DIR
#
# A throwaway Postfix instance (own config_directory DIR/conf, loopback
# only, services unchrooted) for the bounce end-to-end test: it accepts
# mail on 127.0.0.1:IN_PORT for any user of the local domain rcpt.localhost,
# local(8) then bounces unknown users ("5.1.1 unknown user"), and a
# transport map sends mail for BOUNCE_DOMAIN (the DSN to the VERP return
# path) to mailferry's bounce listener on 127.0.0.1:BOUNCE_PORT.
# The maillog is DIR/maillog (via postlogd).
set -euo pipefail
cmd=${1:?usage}; d=${2:?usage}
if [ "$cmd" = stop ]; then
  log=$(postconf -c "$d/conf" -h maillog_file 2>/dev/null || true)
  postfix -c "$d/conf" stop >/dev/null 2>&1 || true
  case "$log" in /var/log/mailferry-test-postfix-*.log) rm -f "$log" ;; esac
  exit 0
fi
in_port=${3:?usage}; bdomain=${4:?usage}; bport=${5:?usage}
mkdir -p "$d/conf" "$d/queue" "$d/data"
chmod 755 "$d"
chown postfix "$d/data"
cp /etc/postfix/master.cf "$d/conf/"
sed -i -e 's/^\(\S*\s\+\S\+\s\+\S\+\s\+\S\+\s\+\)y/\1n/' \
       -e "s/^smtp      inet.*/127.0.0.1:$in_port inet n - n - - smtpd/" "$d/conf/master.cf"
cat > "$d/conf/transport" <<TR
$bdomain smtp:[127.0.0.1]:$bport
TR
cat > "$d/conf/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $d/queue
data_directory = $d/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.rcpt.localhost
mydomain = rcpt.localhost
mydestination = rcpt.localhost
# Accept every local part at RCPT time, so that local(8) bounces unknown
# users with a DSN instead of smtpd rejecting them synchronously.
local_recipient_maps =
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
transport_maps = texthash:$d/conf/transport
relayhost =
smtp_tls_security_level = none
smtp_dns_support_level = disabled
maillog_file = /var/log/mailferry-test-postfix-$in_port.log
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
CF
: > "/var/log/mailferry-test-postfix-$in_port.log"
postfix -c "$d/conf" check
postfix -c "$d/conf" start >/dev/null 2>&1
for _ in $(seq 100); do ss -ltn | grep -q "127.0.0.1:$in_port " && exit 0; sleep 0.1; done
echo "postfix did not listen on $in_port" >&2
exit 1
