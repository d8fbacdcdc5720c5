#!/usr/bin/env bash
# bootstrap.sh - install what mailferry needs to build, run and test on Debian 12.
#
# Idempotent and fast when everything is present: it only calls apt-get when a
# package is missing.  Usage: deploy/bootstrap.sh [run|test|bench]
#   run   - packages to build and run the relay
#   test  - additionally the test peers (postfix, Cyrus SASL tools, swaks, python3-dkim, ...)
#           and the OpenAPI linters, puppeteer-core and axe-core (the console's
#           browser test), pinned in tests/node/package-lock.json
#           and installed there with "npm ci"
#   bench - additionally the HTTP load generator of make bench (wrk)
#
# apt-get waits up to APT_LOCK_TIMEOUT seconds (default 600) for the dpkg
# lock instead of failing: on a cloud VM's first boot unattended-upgrades
# holds it for minutes.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

mode=${1:-run}
pkgs_run="build-essential pkg-config libmicrohttpd-dev libjansson-dev libcjson-dev libjemalloc-dev libssl-dev
  libpq-dev libcurl4-openssl-dev libc-ares-dev postgresql postgresql-client ca-certificates"
pkgs_test="libcriterion-dev postfix sasl2-bin libsasl2-modules openssl swaks python3 python3-dkim python3-nacl python3-dnspython clang
  libclang-rt-14-dev python3-yaml curl iproute2 procps libnet-ssleay-perl prometheus systemd nsd"
# make test-tsan: gcc's ThreadSanitizer runtime (gcc pulls it in on amd64;
# named so that a slimmer toolchain does not lose it silently).
pkgs_test="$pkgs_test libtsan2"
# The operations console's browser test (tests/node/console.mjs): a real
# headless Chromium, driven by puppeteer-core from tests/node; and
# python3-jsonschema, which checks API answers against docs/openapi.yaml.
pkgs_test="$pkgs_test chromium python3-jsonschema"
pkgs=$pkgs_run
case "$mode" in
  test) pkgs="$pkgs $pkgs_test" ;;
  bench) pkgs="$pkgs $pkgs_test wrk" ;;
esac

# The linters run on Node.js: Debian's nodejs and npm, unless a node and
# npm are already there (e.g. NodeSource's nodejs, which bundles npm).
if [ "$mode" != run ] && ! { command -v node && command -v npm; } >/dev/null 2>&1; then
  pkgs="$pkgs nodejs npm"
fi

# npm ci in tests/node when its node_modules is missing or older than the lock file.
node_tools() {
  [ "$mode" != run ] || return 0
  local d=$here/tests/node
  if [ ! -f "$d/node_modules/.package-lock.json" ] || [ "$d/package-lock.json" -nt "$d/node_modules/.package-lock.json" ]; then
    echo "bootstrap: npm ci in tests/node (OpenAPI linters, the console's browser test)" >&2
    (cd "$d" && npm ci --no-audit --no-fund --loglevel=error >&2)
  fi
}

missing=()
for p in $pkgs; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  node_tools
  exit 0
fi

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
# Another apt (unattended-upgrades) may hold the locks: deploy/apt.sh waits.
. "$here/deploy/apt.sh"
apt_wait_get update -qq || exit 1
DEBIAN_FRONTEND=noninteractive apt_wait_get install -y -qq --no-install-recommends "${missing[@]}" || exit 1
node_tools
