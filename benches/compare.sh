#!/usr/bin/env bash
# Side-by-side: zerok vs restic vs borg (and rustic when installed) on deterministic inputs,
# interleaved runs. Installs restic and borgbackup with apt when missing, builds zerok,
# zerok-limit and zerok-s3 (release), then runs benches/compare.py, which measures this
# machine's limit for the first backup (zerok-limit), prints a table per workload and writes
# compare.json and compare.svg.
# Workloads (--workload, comma-separated; default local): local (mixed corpus, local folder),
# wan (S3 behind --delays ms each way), tree (a real tree read in place, --tree; default this
# Python's install), small (--small-files files of 200 B-4 KB), sqlite (a --db-mb MB app
# database after a day of SQL). Peers: restic and borg (installed here), rustic
# (`cargo install rustic-rs --no-default-features`) and bupstash (`cargo install bupstash`,
# needs libsodium-dev) when installed; --install-peers installs those two as well.
# Usage: benches/compare.sh [--install-peers] [--workload local,wan,tree,small,sqlite]
#        [--delays 10,40] [--size-mib N] [--wan-size-mib N] [--tree DIR] [--small-files N]
#        [--db-mb N] [--runs R] [--peers restic,borg,rustic,bupstash] [--out DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v restic >/dev/null || ! command -v borg >/dev/null; then
  apt-get update -qq && apt-get install -y -qq restic borgbackup
fi
if [ "${1:-}" = "--install-peers" ]; then
  shift
  command -v pkg-config >/dev/null && pkg-config --exists libsodium || {
    apt-get update -qq && apt-get install -y -qq libsodium-dev pkg-config
  }
  command -v bupstash >/dev/null || cargo install --locked bupstash
  command -v rustic >/dev/null || cargo install --locked rustic-rs --no-default-features
fi
cargo build --release --locked --bin zerok --bin zerok-limit --bin zerok-s3
bin="${CARGO_TARGET_DIR:-$PWD/target}/release"
exec python3 benches/compare.py --zerok "$bin/zerok" --limit "$bin/zerok-limit" --s3 "$bin/zerok-s3" "$@"
