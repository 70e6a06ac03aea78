#!/usr/bin/env bash
# The main job, end to end on the embedded default (a local-folder vault, no services):
# build zerok, create a vault, back up a folder, edit it, back it up again (only changes
# are stored), verify every byte, lose the device, and rebuild it with zerok-restore and
# the recovery key. Usage: scripts/quickstart.sh [FOLDER-TO-BACK-UP]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bins
bin=$PWD/target/release
work=$(mktemp -d "${TMPDIR:-/tmp}/zerok-quickstart.XXXXXX")
trap 'rm -rf "$work"' EXIT
export ZEROK_HOME=$work/device-home

src=${1:-}
if [ -z "$src" ]; then
  src=$work/app-state
  mkdir -p "$src/db" "$src/cache/empty"
  head -c 32M /dev/urandom > "$src/db/app.sqlite"
  for i in $(seq 1 200); do echo "note $i: $(date +%s%N)" > "$src/note-$i.txt"; done
  seq 1 200000 > "$src/log.txt"
  ln -s log.txt "$src/latest-log"
fi

echo "== init (local folder vault at $work/vault)"
"$bin/zerok" init --vault "$work/vault" --json > "$work/init.json"
recovery=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["recovery_key"])' "$work/init.json")
echo "recovery key: $recovery"

echo "== first backup"
"$bin/zerok" backup "$src"
if [ -z "${1:-}" ]; then
  dd if=/dev/urandom of="$src/db/app.sqlite" bs=64K count=24 seek=100 conv=notrunc status=none
  echo "edited" >> "$src/note-7.txt"
fi
echo "== second backup (after a 5% edit: only the changes are stored)"
"$bin/zerok" backup "$src"
"$bin/zerok" snapshots

echo "== check every byte"
"$bin/zerok" check --read-data

echo "== lose the device; rebuild it from the recovery key"
rm -rf "$ZEROK_HOME"
ZEROK_RECOVERY_KEY=$recovery "$bin/zerok-restore" --vault "$work/vault" --target "$work/rebuilt"
diff -r --no-dereference "$src" "$work/rebuilt"
echo "== restored tree is identical to the source"
