#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS_PER_TARGET (default 60), one after the
# other, each starting from its committed seeds (fuzz/seeds/<target>/, copied into
# fuzz/corpus/<target>/), then prints execs, execs/s, corpus size and crashes per target.
# Inputs under fuzz/regressions/<target>/ (past crashes) are replayed first. Exits non-zero
# when any target crashed; crashing inputs are left in fuzz/artifacts/<target>/.
# Uses nightly (with AddressSanitizer) when installed, else stable with --sanitizer none.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

secs=${1:-60}
if ! [[ $secs =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 [SECONDS_PER_TARGET]" >&2
  exit 2
fi
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1}

if ! cargo fuzz --version >/dev/null 2>&1; then
  nice -n 19 cargo install cargo-fuzz --locked
fi
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  tc=(+nightly)
  sanitizer=address
else
  tc=()
  sanitizer=none
fi
echo "== building with $(rustc "${tc[@]}" --version), sanitizer $sanitizer"
nice -n 19 cargo "${tc[@]}" fuzz build --sanitizer "$sanitizer"

triple=$(rustc -vV | sed -n 's/^host: //p')
bins=target/$triple/release
logs=target/fuzz-logs
mkdir -p "$logs"

# Longest input per target: past the decoder's own bound where that is small (key slot
# 16 KiB, config body and roster entry 64 KiB, invite URL 8 KiB), else room for real objects.
max_len() {
  case $1 in
    pack_header) echo $((1 << 20)) ;;
    index | tree | snapshot | sync_group) echo $((256 << 10)) ;;
    frame) echo $((128 << 10)) ;;
    config | roster) echo $((70 << 10)) ;;
    keyslot) echo $((17 << 10)) ;;
    invite) echo $((10 << 10)) ;;
    *) echo 512 ;;
  esac
}

final_stat() {
  local v
  v=$(sed -n "s/^stat::$1: *//p" "$2" | tail -1)
  echo "${v:--}"
}

limits=(-rss_limit_mb=2048 -timeout=10)
rows=()
failed=0
for t in $(cargo "${tc[@]}" fuzz list); do
  mkdir -p "corpus/$t" "artifacts/$t"
  cp "seeds/$t"/* "corpus/$t/"
  if compgen -G "regressions/$t/*" >/dev/null \
    && ! nice -n 19 "$bins/$t" "${limits[@]}" "regressions/$t"/* >"$logs/$t.regressions.log" 2>&1; then
    echo "!! $t: a past crash is back, see $PWD/$logs/$t.regressions.log"
    failed=1
  fi
  stamp=$logs/$t.start
  touch "$stamp"
  echo "== $t: $secs s"
  rc=0
  timeout --kill-after=10 $((secs * 2 + 60)) nice -n 19 "$bins/$t" "corpus/$t" "${limits[@]}" \
    -max_total_time="$secs" -max_len="$(max_len "$t")" -print_final_stats=1 -artifact_prefix="artifacts/$t/" \
    >"$logs/$t.log" 2>&1 || rc=$?
  crashes=$(find "artifacts/$t" -type f -newer "$stamp" | wc -l)
  if [ "$rc" -ne 0 ] || [ "$crashes" -gt 0 ]; then
    failed=1
    echo "!! $t crashed (exit $rc), log $PWD/$logs/$t.log, input:"
    find "artifacts/$t" -type f -newer "$stamp" -printf '   %p\n'
    grep -m1 -A12 -E '^(==[0-9]+==ERROR|thread .* panicked)' "$logs/$t.log" || tail -20 "$logs/$t.log"
  fi
  rows+=("$(printf '%-12s %12s %10s %8s %8s' "$t" "$(final_stat number_of_executed_units "$logs/$t.log")" \
    "$(final_stat average_exec_per_sec "$logs/$t.log")" "$(find "corpus/$t" -type f | wc -l)" "$crashes")")
done

printf '\n%-12s %12s %10s %8s %8s\n' target execs execs/s corpus crashes
printf '%s\n' "${rows[@]}"
exit "$failed"
