#!/usr/bin/env bash
# Side-by-side: zerok vs restic vs borg on one deterministic corpus, interleaved runs.
# Installs restic and borgbackup with apt when missing, builds zerok and zerok-limit
# (release), then runs benches/compare.py, which measures this machine's limit for the first
# backup (zerok-limit), prints the table and writes compare.json and compare.svg.
# Usage: benches/compare.sh [--size-mib N] [--runs R] [--out DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v restic >/dev/null || ! command -v borg >/dev/null; then
  apt-get update -qq && apt-get install -y -qq restic borgbackup
fi
cargo build --release --locked --bin zerok --bin zerok-limit
exec python3 benches/compare.py --zerok "$PWD/target/release/zerok" --limit "$PWD/target/release/zerok-limit" "$@"
