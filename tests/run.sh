#!/usr/bin/env bash
# run.sh BUILD_DIR... - run the test suite once per build directory.
#
# Starts one throwaway PostgreSQL cluster in a temporary directory (tests
# make their own databases in it) and removes it afterwards.  Exports:
#   MAILFERRY_TEST_PG_URL   superuser URL of the cluster's postgres database
#   MAILFERRY_TEST_SRCDIR   the repository
#   MAILFERRY_BIN           the mailferry binary of the build under test
#   MAILFERRY_TEST_TEMPLATE a database migrated by it, copied by th_db_create(1)
# Extra Criterion options can be given in CRITERION_OPTS, e.g.
#   CRITERION_OPTS='--filter config/*' tests/run.sh build
# A chosen set of suites runs with TEST_SUITES: suite names and/or test
# sources (each meaning every suite it defines), e.g.
#   TEST_SUITES='committer tests/integration/test_delivery.c' tests/run.sh build
# A run fails when a test fails, and also when any test it should have run
# was skipped, disabled, compiled out or missing from Criterion's report
# (tests/check_report.py prints the counts).
#
# TEST_DAEMON_BUILD=DIR runs BUILD's tests against DIR's mailferry
# instead of BUILD's own: make test-tsan runs the normal test binary against
# the ThreadSanitizer daemon of build-tsan (Criterion 2.4's runner cannot
# start under gcc's TSan: its fixed-address arena falls in the ranges TSan
# reserves, and it crashes when it does start).  TSAN_OPTIONS make a race
# fail the run: each TSan process writes its reports to $tmp/tsan.PID,
# printed at the end; any such report fails the run, whether or not the
# test that caused it noticed.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

tmp=$(mktemp -d /tmp/mailferry-test.XXXXXX)
chmod 755 "$tmp"
cleanup() {
  # A test that fails half-way may leave its servers behind: every process
  # started under this run carries MAILFERRY_TEST_TMP=$tmp in its environment.
  # (one pgrep per name: pgrep refuses patterns longer than 15 characters)
  for p in $(for n in mailferry smtp-sink smtp-source swaks; do pgrep -x "$n"; done || true); do
    [ "$p" = "$$" ] && continue
    if grep -qa "MAILFERRY_TEST_TMP=$tmp" "/proc/$p/environ" 2>/dev/null; then kill -9 "$p" 2>/dev/null || true; fi
  done
  # Postfix instances (tests/integration/postfix_lib.sh) keep their queue in
  # a directory under $tmp; stop any a failed test left running.  Postfix
  # masters carry MAILFERRY_TEST_TMP too (import_environment); with force,
  # their process group goes.
  for pidf in "$tmp"/*/queue/pid/master.pid; do
    [ -f "$pidf" ] || continue
    timeout 30 postfix -c "${pidf%/queue/pid/master.pid}/conf" stop >/dev/null 2>&1 || true
    p=$(tr -dc 0-9 < "$pidf" 2>/dev/null || true)
    if [ -n "$p" ] && grep -qa "MAILFERRY_TEST_TMP=$tmp" "/proc/$p/environ" 2>/dev/null; then kill -9 -- "-$p" 2>/dev/null || true; fi
  done
  # Clusters of their own that tests start (deploy/pg.sh --dir X keeps its
  # data in X/pg) are stopped by the test, unless it failed half-way.
  find "$tmp" -mindepth 3 -maxdepth 5 -name postmaster.pid -path '*/pg/postmaster.pid' 2>/dev/null |
    while read -r pidf; do d=$(dirname "$(dirname "$pidf")"); [ "$d" = "$tmp" ] || deploy/pg.sh --dir "$d" stop >/dev/null 2>&1 || true; done
  deploy/pg.sh --dir "$tmp" stop >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
deploy/pg.sh --dir "$tmp" start >/dev/null
export MAILFERRY_TEST_PG_URL="postgresql://postgres@/postgres?host=$tmp/run"
export MAILFERRY_TEST_SRCDIR=$here
export MAILFERRY_TEST_TMP=$tmp
# This run's /24 of 127/8 for the MX and MTA-STS hosts on fixed ports (th_ip(),
# tests/harness/harness.h): two runs side by side do not share one.
export MAILFERRY_TEST_NET="127.$((20 + $$ % 200)).$(( ($$ / 200) % 250 + 1 ))"

psql=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)/psql

rc=0
set -f  # CRITERION_OPTS patterns such as --filter deploy/* are for Criterion, not the shell
suite_filter=()
suite_check=()
if [ -n "${TEST_SUITES:-}" ]; then
  # shellcheck disable=SC2086
  pat=$(python3 tests/check_report.py --sources tests --criterion-filter $TEST_SUITES) || exit 1
  suite_filter=(--filter "$pat")
  # shellcheck disable=SC2086
  suite_check=(--suites $TEST_SUITES)
fi
for build in "$@"; do
  bin_build=${TEST_DAEMON_BUILD:-$build}
  if [ "$bin_build" = build ]; then export MAILFERRY_BIN=$here/bin/mailferry; else export MAILFERRY_BIN=$here/$bin_build/bin/mailferry; fi
  # One migrated database per build that th_db_create(1) copies (CREATE
  # DATABASE ... TEMPLATE): the build's own "mailferry migrate" runs once
  # here, not once per test (tests/db/test_migrate.c migrates empty ones).
  template=mf_template_${bin_build//[^a-z0-9]/_}
  "$psql" -q -d "$MAILFERRY_TEST_PG_URL" -c "CREATE DATABASE $template" >/dev/null ||
    { echo "run.sh: cannot create $template" >&2; exit 1; }
  MAILFERRY_DATABASE_URL="postgresql://postgres@/$template?host=$tmp/run" "$MAILFERRY_BIN" migrate >/dev/null ||
    { echo "run.sh: mailferry migrate failed on $template" >&2; exit 1; }
  export MAILFERRY_TEST_TEMPLATE=$template
  [ -x "$MAILFERRY_BIN" ] || { echo "run.sh: no $MAILFERRY_BIN (build it first)" >&2; exit 1; }
  echo "==> test suite: $build${TEST_DAEMON_BUILD:+ (daemon: $MAILFERRY_BIN)}"
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  # ThreadSanitizer: a race stops the process with exit code 66 and is
  # written to $tmp/tsan.PID.  tests/tsan.supp: races inside third-party
  # libraries only.
  export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:exitcode=66:second_deadlock_stack=1:suppressions=$here/tests/tsan.supp:log_path=$tmp/tsan}
  # Criterion leaves skipped tests out of its summary and exits 0: its JSON
  # report and the list of compiled-in tests are checked against the tests
  # the sources define (tests/check_report.py); a skip or a missing test fails.
  list=$tmp/tests-${build//\//_}.list
  report=$tmp/report-${build//\//_}.json
  timing=$tmp/timing-${build//\//_}.xml
  "$build/tests/mailferry-tests" --list > "$list" 2>&1 || rc=1
  # shellcheck disable=SC2086
  "$build/tests/mailferry-tests" --jobs 4 --json="$report" --xml="$timing" "${suite_filter[@]}" ${CRITERION_OPTS:-} || rc=1
  # The slowest tests, to keep the suite within CI's budget.
  python3 - "$timing" <<'PY' || true
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception:
    sys.exit(0)
rows = [(float(t.get("time", "0")), s.get("name") + "::" + t.get("name"))
        for s in root.iter("testsuite") for t in s.iter("testcase") if t.get("status") != "SKIPPED"]
rows.sort(reverse=True)
total = sum(r[0] for r in rows)
print("==> test time: %.0f s in %d tests; the slowest:" % (total, len(rows)))
for secs, name in rows[:12]:
    print("    %6.1f s  %s" % (secs, name))
PY
  # shellcheck disable=SC2086
  python3 tests/check_report.py --label "$build" --list "$list" --report "$report" --sources tests \
    "${suite_check[@]}" -- ${CRITERION_OPTS:-} || rc=1
  for f in "$tmp"/tsan.*; do
    [ -f "$f" ] || continue
    echo "==> ThreadSanitizer report ($build): $f" >&2
    cat "$f" >&2
    rm -f "$f"
    rc=1
  done
done
exit $rc
