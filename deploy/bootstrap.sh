#!/usr/bin/env bash
# bootstrap.sh - install what mailferry needs to build, run and test on Debian 12.
#
# Idempotent and fast when everything is present: it only calls apt-get when a
# package is missing.  Usage: deploy/bootstrap.sh [run|test|bench]
#   run   - packages to build and run the relay
#   test  - additionally the test peers (postfix, Cyrus SASL tools, swaks, python3-dkim, ...)
#   bench - additionally the HTTP load generator of make bench (wrk)
set -euo pipefail

mode=${1:-run}
pkgs_run="build-essential pkg-config libmicrohttpd-dev libjansson-dev libcjson-dev libjemalloc-dev libssl-dev
  libpq-dev libcurl4-openssl-dev postgresql postgresql-client ca-certificates"
pkgs_test="libcriterion-dev postfix sasl2-bin libsasl2-modules openssl swaks python3 python3-dkim clang
  libclang-rt-14-dev python3-yaml curl iproute2 procps libnet-ssleay-perl prometheus systemd"
pkgs=$pkgs_run
case "$mode" in
  test) pkgs="$pkgs $pkgs_test" ;;
  bench) pkgs="$pkgs $pkgs_test wrk" ;;
esac

missing=()
for p in $pkgs; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  sudo_cmd=""
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo_cmd="sudo"
  else
    echo "bootstrap: missing packages: ${missing[*]}" >&2
    echo "bootstrap: run this as root, then retry:" >&2
    echo "  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
else
  sudo_cmd=""
fi

echo "bootstrap: installing ${missing[*]}" >&2
# Postfix asks debconf questions; we only need its tools (smtp-sink, ...).
echo "postfix postfix/main_mailer_type select No configuration" | $sudo_cmd debconf-set-selections
$sudo_cmd apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
