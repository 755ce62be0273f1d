#!/usr/bin/env bash
# The README's main job: tag a real recording and print what the element hears, one JSON object
# per window (start time, top labels and scores, smoothed labels).
#   bash scripts/demo.sh [audio file or URI] [audiotagger property=value ...]
# Default: a LibriSpeech utterance, then a music clip, from ../shared/audio.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --quiet --example tag
if [ $# -gt 0 ]; then
  exec target/release/examples/tag "$@"
fi
for f in ../shared/audio/speech__librispeech__1.wav ../shared/audio/music__librosa__2.wav; do
  echo "== $f"
  target/release/examples/tag "$f" top-k=3
done
