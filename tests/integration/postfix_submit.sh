#!/usr/bin/env bash
# postfix_submit.sh start DIR PORT RELAYPORT KEY | send DIR FROM TO SUBJECT | stop DIR
#
# A throwaway Postfix instance (postfix_lib.sh) as the client of mailferry's
# SMTP submission: everything it accepts goes to relayhost
# [127.0.0.1]:RELAYPORT over STARTTLS (smtp_tls_security_level = encrypt;
# the test certificate is self-signed, so not verified) with SMTP AUTH
# (smtp_sasl_auth_enable, Cyrus SASL's client PLAIN/LOGIN) as user "postfix"
# with the API key KEY as the password - what a site with its own MTA
# configures to send through mailferry.  "send" injects one message with
# Postfix's sendmail(1).  DIR/maillog is the instance's log.
set -euo pipefail
# shellcheck source=tests/integration/postfix_lib.sh
. "$(dirname "$0")/postfix_lib.sh"
cmd=${1:?usage}; d=${2:?usage}
case "$cmd" in
stop)
  pf_stop "$d"
  exit 0 ;;
send)
  from=${3:?usage}; to=${4:?usage}; subject=${5:?usage}
  printf 'From: %s\nTo: %s\nSubject: %s\n\nSent through Postfix.\n' "$from" "$to" "$subject" |
    timeout 30 /usr/sbin/sendmail -C "$d/conf" -f "$from" "$to"
  exit 0 ;;
esac
port=${3:?usage}; relayport=${4:?usage}; key=${5:?usage}
pf_prepare "$d" "$port" "$d/maillog"
(umask 077 && printf '[127.0.0.1]:%s postfix:%s\n' "$relayport" "$key" > "$d/conf/sasl_passwd")
postmap -c "$d/conf" "$d/conf/sasl_passwd"
cat >> "$d/conf/main.cf" <<CF
myhostname = client.postfix.test
mydestination =
relayhost = [127.0.0.1]:$relayport
smtp_tls_security_level = encrypt
smtp_sasl_auth_enable = yes
smtp_sasl_password_maps = hash:$d/conf/sasl_passwd
smtp_sasl_security_options = noanonymous
smtp_sasl_tls_security_options = noanonymous
smtp_sasl_mechanism_filter = plain, login
alias_maps =
alias_database =
local_recipient_maps =
CF
pf_start "$d" "$port"
