#!/usr/bin/env bash
# Run every fuzz target (fuzz/, cargo-fuzz on libFuzzer) for a bounded time
# each, from the committed seed corpus, and print executions and findings.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]    (default 60 s, all)
#
# Needs a nightly toolchain (`rustup toolchain install nightly`) and
# cargo-fuzz (`cargo install cargo-fuzz`); both are installed if missing.
# New inputs go to a temporary corpus, never into fuzz/corpus. A crash is
# left in fuzz/artifacts/<target>/: fix it, then keep the input under
# fuzz/regressions/<target>/, where `cargo test` runs it
# (host/daemon/src/fuzz.rs) from then on.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-60}"
shift || true
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
# The policy components are built with the pinned toolchain (nightly's
# wasm32-wasip2 standard library is not always published).
pinned="$(sed -nE 's/^channel = "([^"]+)"/\1/p' ../rust-toolchain.toml)"
rustup target add --toolchain "$pinned" wasm32-wasip2 >/dev/null
export VEDFOLNIR_GUEST_TOOLCHAIN="$pinned"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
# No sanitizer: the code under test forbids unsafe; the build and the runs
# are several times faster without ASan.
cargo +nightly fuzz build -s none
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
printf '%-22s %12s %10s %s\n' target executions exec/s result
for t in "${targets[@]}"; do
    mkdir -p "$work/$t"
    log="$work/$t.log"
    status=ok
    cargo +nightly fuzz run -s none "$t" "$work/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=20 >"$log" 2>&1 || status="FINDING (see fuzz/artifacts/$t and $log)"
    line="$(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "$log" | tail -1)"
    execs="$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$line")"
    rate="$(sed -nE 's/.*exec\/s: ([0-9]+).*/\1/p' <<<"$line")"
    printf '%-22s %12s %10s %s\n' "$t" "${execs:-?}" "${rate:-?}" "$status"
    if [ "$status" != ok ]; then
        cp "$log" "artifacts/$t.log" 2>/dev/null || true
    fi
done
