#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine: system packages, the project-local Python
# environment (.venv), ONNX Runtime's shared library (.deps/onnxruntime) and the plugin build.
# Everything it writes stays inside the checkout; run it as often as you like.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

log() { printf '[setup] %s\n' "$*" >&2; }

apt_packages=(
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good pkg-config python3-venv
  meson ninja-build python3-gi python3-gst-1.0 gir1.2-gstreamer-1.0
  # Real recordings to calibrate the int8 model on and to benchmark with.
  asterisk-moh-opsound-wav asterisk-core-sounds-en-wav sound-theme-freedesktop
  # The font the timeline example writes its labels in.
  fonts-dejavu-core
  # audiotagpublish: TLS through OpenSSL; its tests run a real MQTT broker and make certificates.
  libssl-dev mosquitto mosquitto-clients openssl
)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

command -v cargo >/dev/null || { log "cargo not found: install Rust 1.95 (rustup) first"; exit 1; }

# Python environment: converter, reference front-end, parity checks, and the runtime wheel.
stamp=.venv/.requirements.sha256
want=$(sha256sum models/requirements.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "creating .venv from models/requirements.txt"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r models/requirements.txt
  echo "$want" > "$stamp"
fi

# ONNX Runtime's shared library, copied out of the wheel to a stable project-local path.
capi=$(.venv/bin/python -c 'import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), "capi"))')
lib=$(ls "$capi"/libonnxruntime.so.* | head -n1)
mkdir -p .deps/onnxruntime
if ! cmp -s "$lib" .deps/onnxruntime/libonnxruntime.so; then
  log "installing $(basename "$lib") into .deps/onnxruntime"
  cp "$lib" .deps/onnxruntime/libonnxruntime.so
fi

# The default model, converted from the official TF-Lite file, and the Rust tests' reference
# fixtures; both are generated, never committed, and rebuilt when their inputs change.
shared=${AUDIOTAGGER_SHARED:-$root/../shared}
tflite=${YAMNET_TFLITE:-$shared/models/yamnet.tflite}
labels=$shared/models/yamnet_class_map.csv
if [ ! -s models/yamnet.onnx ] || [ ! -s models/yamnet-int8.onnx ] \
   || [ models/convert_yamnet.py -nt models/yamnet-int8.onnx ] || [ "$stamp" -nt models/yamnet-int8.onnx ]; then
  log "converting $tflite to models/yamnet.onnx and models/yamnet-int8.onnx"
  .venv/bin/python models/convert_yamnet.py "$tflite" --labels "$labels" -o models/yamnet.onnx \
    --int8 models/yamnet-int8.onnx
fi
# The second-look model: CED-Tiny as the `soundevents` crate ships it, with its int8 constants
# made float, its exact front-end and its missing -120 dB floor (models/ced.md).
ced=$shared/models/ced/ced_tiny.onnx
if [ -s "$ced" ] && { [ ! -s models/ced-tiny.onnx ] || [ models/convert_ced.py -nt models/ced-tiny.onnx ] \
   || [ "$stamp" -nt models/ced-tiny.onnx ]; }; then
  log "converting $ced to models/ced-tiny.onnx"
  .venv/bin/python models/convert_ced.py "$ced" --labels "$shared/models/ced/class_labels_indices.csv" \
    -o models/ced-tiny.onnx
fi
# A stronger log-mel backbone: EfficientAT mn04 (MIT), the ONNX export beside its checkpoint in
# ../shared (made with torch, which set-up does not install) with the element's descriptor added.
efficientat=$shared/models/efficientat
if [ -s "$efficientat/mn04_as_mel.onnx" ] && { [ ! -s models/efficientat-mn04.onnx ] \
   || [ models/convert_efficientat.py -nt models/efficientat-mn04.onnx ] || [ "$stamp" -nt models/efficientat-mn04.onnx ]; }; then
  log "describing $efficientat/mn04_as_mel.onnx as models/efficientat-mn04.onnx"
  .venv/bin/python models/convert_efficientat.py describe "$efficientat/mn04_as_mel.onnx" \
    --labels "$efficientat/class_labels_indices.csv" -o models/efficientat-mn04.onnx
fi
# The security heads, trained on ../shared/train over the float model's features (seeded: the
# same data gives the same head); models/heads.md says how and what they measure.
heads=models/yamnet-heads.onnx
if [ -d "$shared/train" ] && { [ ! -s "$heads" ] || [ models/yamnet.onnx -nt "$heads" ] \
   || [ -n "$(find models -name 'heads_*.py' -newer "$heads")" ] || [ models/train_heads.py -nt "$heads" ]; }; then
  log "training the heads on $shared/train into $heads (a few minutes)"
  .venv/bin/python models/train_heads.py --data "$shared/train" --backbone models/yamnet.onnx -o "$heads"
fi
# The same heads over CED-Tiny's features on 3 s windows: the second look's trained classes.
look_heads=models/ced-tiny-heads.onnx
if [ -d "$shared/train" ] && [ -s models/ced-tiny.onnx ] && { [ ! -s "$look_heads" ] \
   || [ models/ced-tiny.onnx -nt "$look_heads" ] || [ -n "$(find models -name 'heads_*.py' -newer "$look_heads")" ] \
   || [ models/train_heads.py -nt "$look_heads" ]; }; then
  log "training the second look's heads on $shared/train into $look_heads (a few minutes)"
  .venv/bin/python models/train_heads.py --data "$shared/train" --backbone models/ced-tiny.onnx \
    --kind fusion+scores --per-label 150 -o "$look_heads"
fi
fixtures=tests/fixtures/generated/index.json
if [ -d "$shared/audio" ] && { [ ! -s "$fixtures" ] || [ models/yamnet.onnx -nt "$fixtures" ] \
   || [ models/make_fixtures.py -nt "$fixtures" ] || [ models/yamnet_reference.py -nt "$fixtures" ] \
   || [ models/frontend_reference.py -nt "$fixtures" ]; }; then
  log "generating reference fixtures in tests/fixtures/generated"
  .venv/bin/python models/make_fixtures.py --model models/yamnet.onnx -o tests/fixtures/generated
fi

log "building the plugin (release)"
cargo build --release --quiet
log "ready: GST_PLUGIN_PATH=$root/target/release"
