#!/usr/bin/env bash
# run.sh BUILD_DIR SECONDS [JOBS] - run every libFuzzer harness built in
# BUILD_DIR/fuzz for SECONDS each, JOBS harnesses at a time (default 2;
# used by "make fuzz" and, briefly, by .ci/run).
#
# Each harness fuzz_NAME gets a corpus directory BUILD_DIR/fuzz-corpus/,
# seeded from its own seeds in tests/fuzz/corpus/NAME/ and from every file
# under tests/data/ (named by content hash; the corpus grows across runs),
# and writes crash/leak/timeout reproducers to BUILD_DIR/fuzz-artifacts/NAME/.
# At the end a table gives per harness the executions, libFuzzer's final
# coverage figures (cov: edges, ft: features) and the corpus size.
# Exits non-zero when any harness crashes, leaks, times out or runs out of
# memory (or none was built).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"
build=${1:?usage: run.sh BUILD_DIR SECONDS [JOBS]}
secs=${2:?usage: run.sh BUILD_DIR SECONDS [JOBS]}
jobs=${3:-${FUZZ_JOBS:-2}}

shopt -s nullglob
harnesses=()
for bin in "$build"/fuzz/fuzz_*; do
  [ -x "$bin" ] && harnesses+=("$bin")
done
if [ ${#harnesses[@]} -eq 0 ]; then
  echo "run.sh: no harness in $build/fuzz (build them with make fuzz)" >&2
  exit 1
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# One harness: seed, run, leave NAME.log and NAME.rc in the artifacts dir.
run_one() {
  local bin=$1 name corpus artifacts f rc=0
  name=$(basename "$bin")
  corpus=$build/fuzz-corpus/$name
  artifacts=$build/fuzz-artifacts/$name
  mkdir -p "$corpus" "$artifacts"
  while IFS= read -r -d '' f; do
    cp "$f" "$corpus/seed-$(sha1sum "$f" | cut -c1-16)"
  done < <(find "tests/fuzz/corpus/${name#fuzz_}" tests/data -type f -print0 2>/dev/null)
  # -timeout: one input over 10 s is a hang; -error_exitcode for leaks too.
  "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=262144 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" \
    >"$build/fuzz-artifacts/$name.log" 2>&1 || rc=$?
  echo "$rc" >"$build/fuzz-artifacts/$name.rc"
}

start=$(date +%s)
echo "==> fuzz ${#harnesses[@]} harnesses for ${secs}s each, $jobs at a time"
running=0
for bin in "${harnesses[@]}"; do
  run_one "$bin" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait

rc=0
failed=()
printf '%-24s %-6s %10s %9s %8s %8s %7s\n' harness result runs exec/s cov ft corpus
for bin in "${harnesses[@]}"; do
  name=$(basename "$bin")
  log=$build/fuzz-artifacts/$name.log
  r=$(cat "$build/fuzz-artifacts/$name.rc" 2>/dev/null || echo 1)
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  # The last status line ("#N DONE cov: C ft: F corp: ...") has the final figures.
  cov=$(grep -oE '\bcov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -oE '\bft: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  files=$(find "$build/fuzz-corpus/$name" -type f | wc -l)
  result=ok
  if [ "$r" != 0 ] || grep -qE '^==[0-9]+==ERROR|^SUMMARY: |ALARM: working on the last Unit|out-of-memory|runtime error' "$log"; then
    result=FAILED
    failed+=("$name")
    rc=1
  fi
  printf '%-24s %-6s %10s %9s %8s %8s %7s\n' "$name" "$result" "${runs:-?}" "${rate:-?}" \
    "${cov:-?}" "${ft:-?}" "$files"
done
echo "==> fuzz took $(($(date +%s) - start))s"
if [ "$rc" != 0 ]; then
  for name in "${failed[@]}"; do
    echo "==> $name FAILED (log $build/fuzz-artifacts/$name.log, reproducers in $build/fuzz-artifacts/$name/)" >&2
    tail -60 "$build/fuzz-artifacts/$name.log" >&2
  done
fi
exit $rc
