#!/usr/bin/env bash
# The README's main job: tag a real recording and print what the element reports.
#   bash scripts/demo.sh [audio file]   (default: a LibriSpeech utterance from ../shared/audio)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
file=${1:-../shared/audio/speech__librispeech__1.wav}
[ -f "$file" ] || { echo "no such audio file: $file" >&2; exit 1; }
export GST_PLUGIN_PATH="$PWD/target/release"
gst-launch-1.0 -m filesrc location="$file" ! decodebin ! audioconvert ! audiotagger ! fakesink sync=false
