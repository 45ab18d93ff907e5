#!/usr/bin/env bash
# Fuzz smoke run for orca-cluster-core.
#
# 1. Always: replay the checked-in corpus (and a batch of generated inputs) through every
#    target on stable, without libFuzzer: `cargo test --manifest-path fuzz/Cargo.toml`.
# 2. If a nightly toolchain and cargo-fuzz are installed (else skipped, or a failure when CI=true): build the targets with cargo-fuzz and
#    run each for ${FUZZ_SECONDS:-30} seconds. A crash fails the script; the reproducer is left
#    in fuzz/artifacts/<target>/ (replay it with `cargo +nightly fuzz run <target> <file>`).
#
# Environment: FUZZ_SECONDS (per target, default 30), FUZZ_TARGETS (space-separated subset),
# CARGO_TARGET_DIR (used for the stable replay only; cargo-fuzz builds into fuzz/target).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
# shellcheck source=../.ci/skip.sh
. "$here/../.ci/skip.sh"

seconds="${FUZZ_SECONDS:-30}"
targets="${FUZZ_TARGETS:-decode_query fill_response membership rendezvous admission h1_response h1_request dns_answer listener_head}"

echo "== stable corpus replay"
cargo test --manifest-path "$here/Cargo.toml"

if ! cargo +nightly --version >/dev/null 2>&1; then
    skip_or_fail "the libFuzzer runs: no nightly toolchain"
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    skip_or_fail "the libFuzzer runs: cargo-fuzz not installed (cargo install cargo-fuzz --locked)"
fi

echo "== cargo +nightly fuzz build"
cargo +nightly fuzz build

# libFuzzer adds what it finds to the corpus directory; run on a scratch copy so the checked-in
# corpus stays as it is.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

for t in $targets; do
    echo "== cargo +nightly fuzz run $t (${seconds}s)"
    mkdir -p "$scratch/$t"
    cp -R "corpus/$t/." "$scratch/$t/"
    log="$scratch/$t.log"
    if ! cargo +nightly fuzz run "$t" "$scratch/$t" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "== $t: CRASH (reproducer in fuzz/artifacts/$t/)"
        exit 1
    fi
    grep -E '^(Done|stat::average_exec_per_sec|stat::new_units_added)' "$log" || true
done
echo "== fuzz smoke: all targets ran without a crash"
