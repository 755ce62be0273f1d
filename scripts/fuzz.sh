#!/usr/bin/env bash
# Fuzzes the front-end and the descriptor parser with cargo-fuzz (libFuzzer), each for a bounded
# time: `bash scripts/fuzz.sh [seconds per target]` (default 60). Installs cargo-fuzz from
# crates.io when missing. The toolchain here is stable; RUSTC_BOOTSTRAP lets it take the
# sanitizer flags cargo-fuzz passes. A crash leaves its input in fuzz/artifacts/<target>/ and
# fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
export RUSTC_BOOTSTRAP=1
for target in frontend descriptor; do
    mkdir -p "fuzz/corpus/$target"
    echo "== fuzz $target for ${seconds}s"
    log="fuzz/$target.log"
    rc=0
    cargo fuzz run --release "$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=4096 -len_control=0 -print_final_stats=1 >"$log" 2>&1 || rc=$?
    grep -E "^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY)" "$log" || true
    if [ "$rc" -ne 0 ]; then
        tail -40 "$log"
        echo "fuzz $target failed (exit $rc); inputs that crash are in fuzz/artifacts/$target"
        exit "$rc"
    fi
done
