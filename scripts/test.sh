#!/usr/bin/env bash
# The whole test suite, from a fresh machine: set-up, formatting, lints, every test, the meson
# build. This is the README's test command and exactly what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

export GST_PLUGIN_PATH="$PWD/target/release"
step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --release --all-targets --quiet -- -D warnings

step "cargo test"
# The example tests run the real example binaries, which `cargo test` builds only as tests.
cargo build --release --examples --quiet
cargo test --release --all-targets 2>&1 | tee target/test.log
passed=$(grep -Eo '[0-9]+ passed' target/test.log | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' target/test.log | awk '{s+=$1} END {print s+0}')

step "Python: converter and model parity with the official TF-Lite YAMNet"
.venv/bin/python -m pytest -q tests/python 2>&1 | tee target/pytest.log
passed=$((passed + $(grep -Eo '[0-9]+ passed' target/pytest.log | awk '{s+=$1} END {print s+0}')))

step "fuzz the front-end and the descriptor parser (cargo-fuzz, ${FUZZ_SECONDS:-30} s each)"
# Bounded, so CI can afford it; `bash scripts/fuzz.sh 600` fuzzes longer. FUZZ_SECONDS=0 skips.
if [ "${FUZZ_SECONDS:-30}" -gt 0 ]; then
  bash scripts/fuzz.sh "${FUZZ_SECONDS:-30}"
fi

step "meson install into a fresh prefix; the installed plugin tags a clip with the checkout's models moved away"
bash scripts/install_check.sh
passed=$((passed + 1))

printf '\n%s passed, %s failed\n' "$passed" "$failed"
