#!/usr/bin/env bash
# run.sh BUILD_DIR SECONDS - run every libFuzzer harness built in
# BUILD_DIR/fuzz for SECONDS each (used by "make fuzz").
#
# Each harness gets a corpus directory BUILD_DIR/fuzz-corpus/NAME, seeded
# from every file under tests/data/ (the corpus grows across runs), and
# writes crash/leak/timeout reproducers to BUILD_DIR/fuzz-artifacts/NAME/.
# Exits non-zero when any harness finds a crash (or none was built).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"
build=${1:?usage: run.sh BUILD_DIR SECONDS}
secs=${2:?usage: run.sh BUILD_DIR SECONDS}

shopt -s nullglob
harnesses=("$build"/fuzz/fuzz_*)
if [ ${#harnesses[@]} -eq 0 ]; then
  echo "run.sh: no harness in $build/fuzz (build them with make fuzz)" >&2
  exit 1
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
rc=0
for bin in "${harnesses[@]}"; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin")
  corpus=$build/fuzz-corpus/$name
  artifacts=$build/fuzz-artifacts/$name
  mkdir -p "$corpus" "$artifacts"
  # Seed: every file under tests/data/, named by content hash (idempotent).
  while IFS= read -r -d '' f; do
    cp "$f" "$corpus/seed-$(sha1sum "$f" | cut -c1-16)"
  done < <(find tests/data -type f -print0)
  log=$build/fuzz-artifacts/$name.log
  echo "==> fuzz $name for ${secs}s (corpus $corpus)"
  if "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=262144 \
       -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
    echo "    ok: ${runs:-?} executions, ${rate:-?}/s, ${cov:-cov: ?}, corpus $(ls "$corpus" | wc -l) files"
  else
    echo "    FAILED: $name (log $log, reproducers in $artifacts)" >&2
    tail -60 "$log" >&2
    rc=1
  fi
done
exit $rc
