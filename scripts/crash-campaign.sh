#!/usr/bin/env bash
# Crash and fault campaign: SIGKILLs `zerok backup` and `zerok forget --prune` at random
# points (KILLS of each, default 50) on a local folder and on the in-process S3 server,
# checking `check --read-data`, restoring every snapshot bit-exact and running the next
# backup after every kill; then runs backup/prune/restore through the fault-injecting
# store. Prints the figures. Usage: scripts/crash-campaign.sh [KILLS]
# (ZEROK_CRASH_SEED=N repeats a campaign's kill points.)
set -euo pipefail
cd "$(dirname "$0")/.."

kills="${1:-50}"
case "$kills" in '' | *[!0-9]*) echo "crash-campaign: KILLS must be a number, not '$kills'" >&2; exit 2 ;; esac
seed="${ZEROK_CRASH_SEED:-$(( (RANDOM << 15) | RANDOM ))}"

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
echo "== SIGKILL campaign: $kills kills of backup and of prune per vault, seed $seed"
ZEROK_CRASH_KILLS="$kills" ZEROK_CRASH_SEED="$seed" \
  cargo test -p zerok-cli --locked --test crash_campaign -- --nocapture >"$log" 2>&1
status=$?
grep -E '^(local folder|S3|seed)' "$log"
[ "$status" -eq 0 ] || tail -n 40 "$log"

echo "== fault-injecting store"
cargo test -p zerok-vault --locked --test faults -- --nocapture >"$log" 2>&1
faults=$?
grep -E '^faults:' "$log"
[ "$faults" -eq 0 ] || tail -n 40 "$log"
set -e

if [ "$status" -ne 0 ] || [ "$faults" -ne 0 ]; then
  echo "crash-campaign: FAILED (seed $seed)" >&2
  exit 1
fi
echo "crash-campaign: passed"
