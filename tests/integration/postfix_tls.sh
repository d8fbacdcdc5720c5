#!/usr/bin/env bash
# postfix_tls.sh start DIR PORT SAN [MECHS] | stop DIR
#
# A throwaway Postfix instance (postfix_lib.sh) that mailferry's SMTP
# client talks to as a real peer: smtpd on 127.0.0.1:PORT offers STARTTLS
# (RFC 3207) with a certificate from a test CA made here, and, only after
# STARTTLS (smtpd_tls_auth_only), SMTP AUTH (RFC 4954) through Cyrus SASL
# with a sasldb of its own.  No key is committed; nothing global changes
# (the Cyrus config is the instance's, via cyrus_sasl_config_path).
#
#   SAN    the server certificate's subjectAltName, e.g. DNS:localhost
#   MECHS  the SASL mechanisms offered (Cyrus mech_list), default
#          "PLAIN LOGIN"
#
# Files for the test:
#   DIR/ca.crt        the CA that signed the server certificate
#   DIR/other-ca.crt  an unrelated CA (signed nothing here)
#   DIR/maillog       the instance's log (postlogd)
# The one SASL account is relay@test.example (the realm is
# smtpd_sasl_local_domain, so the client logs in as "relay"), password
# "relay-secret".  Relaying needs AUTH (permit_sasl_authenticated), except
# to dest.example (relay_domains); accepted mail is discarded by discard(8),
# which logs its status=sent line.
set -euo pipefail
# shellcheck source=tests/integration/postfix_lib.sh
. "$(dirname "$0")/postfix_lib.sh"
cmd=${1:?usage}; d=${2:?usage}
if [ "$cmd" = stop ]; then
  pf_stop "$d"
  exit 0
fi
port=${3:?usage}; san=${4:?usage}; mechs=${5:-PLAIN LOGIN}
pf_prepare "$d" "$port" "$d/maillog"

# A test CA, a server certificate for SAN signed by it, and an unrelated CA.
ossl() { openssl "$@" 2>/dev/null; }
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=mailferry test CA" -keyout "$d/ca.key" -out "$d/ca.crt"
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=mailferry other test CA" -keyout "$d/other-ca.key" -out "$d/other-ca.crt"
ossl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=${san#*:}" -keyout "$d/server.key" -out "$d/server.csr"
printf 'subjectAltName = %s\nextendedKeyUsage = serverAuth\nbasicConstraints = CA:FALSE\n' "$san" > "$d/server.ext"
ossl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
  -days 2 -extfile "$d/server.ext" -out "$d/server.crt"
chmod 644 "$d/ca.crt" "$d/other-ca.crt"

# Cyrus SASL: the instance's own smtpd.conf and sasldb.  Debian's Postfix
# reads smtpd.conf from $config_directory/sasl whatever
# cyrus_sasl_config_path says (set too, for other builds).
sasl=$d/conf/sasl
mkdir -p "$sasl"
cat > "$sasl/smtpd.conf" <<SASL
pwcheck_method: auxprop
auxprop_plugin: sasldb
sasldb_path: $sasl/sasldb2
mech_list: $mechs
SASL
printf '%s' relay-secret | saslpasswd2 -f "$sasl/sasldb2" -p -c -u test.example relay
chgrp postfix "$sasl/sasldb2"
chmod 640 "$sasl/sasldb2"

cat >> "$d/conf/main.cf" <<CF
myhostname = mx.test.example
mydomain = test.example
mydestination =
relay_domains = dest.example
mynetworks = 127.0.0.1/32
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
default_transport = discard:relayed by the test instance
relay_transport = discard:accepted by the test instance
smtpd_tls_security_level = may
smtpd_tls_chain_files = $d/server.key, $d/server.crt
smtpd_tls_loglevel = 1
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
cyrus_sasl_config_path = $sasl
smtpd_sasl_local_domain = test.example
smtpd_tls_auth_only = yes
smtpd_sasl_security_options = noanonymous
smtpd_sasl_tls_security_options = noanonymous
smtp_tls_security_level = none
alias_maps =
alias_database =
local_recipient_maps =
CF
pf_start "$d" "$port"
