# postfix_lib.sh - sourced by the tests' Postfix scripts (postfix_bounce.sh,
# postfix_tls.sh): one throwaway Postfix instance with its own
# config_directory DIR/conf and queue DIR/queue, loopback only, every
# service unchrooted, smtpd on 127.0.0.1:PORT.  Nothing global changes:
# /etc/postfix is only read (its master.cf is the template).
#
#   pf_prepare DIR PORT MAILLOG   writes DIR/conf/{master,main}.cf; the
#                                 callers append their own main.cf lines
#   pf_start DIR PORT             postfix start (bounded), then waits (bounded)
#                                 until smtpd listens; 1 when it does not
#   pf_stop DIR                   stops the instance (bounded: postfix-script
#                                 kills the process group after 5 s)
#
# The master and its children carry MAILFERRY_TEST_TMP in their
# environment (import_environment), so tests/run.sh can tell them apart
# from other Postfix instances on the machine; run.sh also stops any
# instance whose queue is still under its temporary directory.

pf_prepare() {
  local d=$1 port=$2 log=$3
  mkdir -p "$d/conf" "$d/queue" "$d/data"
  chmod 755 "$d"
  chown postfix "$d/data"
  cp /etc/postfix/master.cf "$d/conf/"
  : > "$d/conf/main.cf"
  postconf -c "$d/conf" -F '*/*/chroot = n'
  postconf -c "$d/conf" -M# smtp/inet
  postconf -c "$d/conf" -Me "127.0.0.1:$port/inet = 127.0.0.1:$port inet n - n - - smtpd"
  cat > "$d/conf/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $d/queue
data_directory = $d/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
smtp_dns_support_level = disabled
maillog_file_prefixes = /var, $d
maillog_file = $log
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C MAILFERRY_TEST_TMP
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
CF
  : > "$log"
}

pf_start() {
  local d=$1 port=$2
  if ! timeout 60 postfix -c "$d/conf" start >"$d/start.log" 2>&1; then
    cat "$d/start.log" >&2
    return 1
  fi
  for _ in $(seq 200); do
    ss -ltn | grep -q "127.0.0.1:$port " && return 0
    sleep 0.1
  done
  echo "postfix did not listen on $port" >&2
  return 1
}

pf_stop() {
  local d=$1
  [ -f "$d/conf/main.cf" ] || return 0
  timeout 30 postfix -c "$d/conf" stop >/dev/null 2>&1 || true
}
