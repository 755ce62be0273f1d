#!/usr/bin/env bash
# What a user gets from `meson install`: installs the plugin, its models and ONNX Runtime into a
# fresh prefix, moves the checkout's models and ONNX Runtime away, and tags a real speech clip
# with the installed plugin alone. Run by scripts/test.sh after scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

stage=$(mktemp -d)
builddir=target/meson-install-check
hidden=target/install-check-hidden
restore() {
  for f in "$hidden"/*.onnx; do [ -e "$f" ] && mv "$f" models/; done
  [ -d "$hidden/onnxruntime" ] && mv "$hidden/onnxruntime" .deps/
  rm -rf "$stage" "$hidden"
}
trap restore EXIT

rm -rf "$builddir"
meson setup "$builddir" --prefix="$stage" -Dplugindir="$stage/lib/gstreamer-1.0" >/dev/null
meson compile -C "$builddir" >/dev/null
meson install -C "$builddir" >/dev/null

mkdir -p "$hidden"
mv models/*.onnx "$hidden/"
mv .deps/onnxruntime "$hidden/"

# Only the installed plugin, with a registry of its own so no cached path leads to the checkout.
export GST_PLUGIN_PATH="$stage/lib/gstreamer-1.0" GST_REGISTRY="$stage/registry.bin"
unset ORT_DYLIB_PATH AUDIOTAGGER_DATA_DIR
inspect=$(gst-inspect-1.0 audiotagger)
grep -q "Filename *$stage/lib/gstreamer-1.0/libgstaudiotagger.so" <<<"$inspect" \
  || { echo "audiotagger was not loaded from $stage"; exit 1; }
grep -q "Default: \"$stage/share/gstreamer-1.0/audiotagger/yamnet.onnx\"" <<<"$inspect" \
  || { echo "the default model is not the installed one:"; grep -A4 '^  model ' <<<"$inspect"; exit 1; }

# A folder named by the environment comes first.
inspect=$(AUDIOTAGGER_DATA_DIR="$PWD/$hidden" gst-inspect-1.0 audiotagger)
grep -q "Default: \"$PWD/$hidden/yamnet.onnx\"" <<<"$inspect" \
  || { echo "AUDIOTAGGER_DATA_DIR=$PWD/$hidden does not set the default model"; exit 1; }

clip=../shared/audio/speech__librispeech__1.wav
[ -f "$clip" ] || clip=$(ls ../shared/audio/speech__*.wav | head -1)
out=$(gst-launch-1.0 -m filesrc location="$clip" ! decodebin ! audioconvert ! audiotagger ! fakesink 2>&1) \
  || { echo "$out"; exit 1; }
windows=$(grep -c 'audiotagger, window-index' <<<"$out" || true)
[ "$windows" -gt 0 ] && grep -q 'labels=(string)< "Speech"\|labels=(string)< Speech' <<<"$out" \
  || { echo "the installed plugin did not tag $clip as speech:"; grep 'audiotagger,' <<<"$out" | head -3; exit 1; }

# The publishing element ships in the same plugin and writes what the tagger found.
jsonl="$stage/published.jsonl"
gst-launch-1.0 -q filesrc location="$clip" ! decodebin ! audioconvert ! audiotagger watch=speech \
  ! audiotagpublish location="$jsonl" ! fakesink \
  && grep -q '"group":"speech"' "$jsonl" \
  || { echo "the installed audiotagpublish did not write the speech event to $jsonl"; exit 1; }
echo "installed plugin, models and ONNX Runtime in $stage; checkout's hidden; $windows windows of $clip tagged, Speech among them"
