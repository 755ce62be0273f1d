#!/usr/bin/env bash
# Called by meson.build: builds the cdylib with cargo and copies it to meson's output path.
set -euo pipefail
cargo=$1 manifest=$2 target_dir=$3 profile=$4 output=$5
args=(build --manifest-path "$manifest" --target-dir "$target_dir" --lib)
[ "$profile" = release ] && args+=(--release)
"$cargo" "${args[@]}"
cp "$target_dir/$profile/libgstaudiotagger.so" "$output"
