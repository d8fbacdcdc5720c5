#!/usr/bin/env bash
# postfix_bounce.sh start DIR IN_PORT BOUNCE_DOMAIN BOUNCE_PORT | stop DIR
#
# A throwaway Postfix instance (postfix_lib.sh: own config_directory
# DIR/conf, loopback only, services unchrooted) for the bounce end-to-end
# test: it accepts mail on 127.0.0.1:IN_PORT for any user of the local
# domain rcpt.localhost, local(8) then bounces unknown users ("5.1.1
# unknown user"), and a transport map sends mail for BOUNCE_DOMAIN (the DSN
# to the VERP return path) to mailferry's bounce listener on
# 127.0.0.1:BOUNCE_PORT.
# The maillog is /var/log/mailferry-test-postfix-IN_PORT.log (via postlogd).
set -euo pipefail
# shellcheck source=tests/integration/postfix_lib.sh
. "$(dirname "$0")/postfix_lib.sh"
cmd=${1:?usage}; d=${2:?usage}
if [ "$cmd" = stop ]; then
  log=$(postconf -c "$d/conf" -h maillog_file 2>/dev/null || true)
  pf_stop "$d"
  case "$log" in /var/log/mailferry-test-postfix-*.log) rm -f "$log" ;; esac
  exit 0
fi
in_port=${3:?usage}; bdomain=${4:?usage}; bport=${5:?usage}
pf_prepare "$d" "$in_port" "/var/log/mailferry-test-postfix-$in_port.log"
cat > "$d/conf/transport" <<TR
$bdomain smtp:[127.0.0.1]:$bport
TR
cat >> "$d/conf/main.cf" <<CF
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
CF
pf_start "$d" "$in_port"
