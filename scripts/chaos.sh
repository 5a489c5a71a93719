#!/usr/bin/env bash
# The kill tests (tests/chaos.rs) as a long series on the real engine:
# SIGKILL of `scale-up`/`scale-down` and of the daemon under an API scale,
# at a container's create, at a replica's stop signal, or after a random
# delay; each interrupted scale reconciled by the next command or restart.
# Prints each round and the tally; fails on a lost, doubled or wrong
# outcome, or a container left behind.
#
#   scripts/chaos.sh [ROUNDS] [SEED]     (default 45 rounds, a fixed seed)
#
# Bounded: ROUNDS command-line rounds and ROUNDS/2 daemon rounds, about
# 3 s each; every container is removed at the end (docker-compose down).
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add x86_64-unknown-linux-musl >/dev/null
export CI=true
export VEDFOLNIR_CHAOS_ROUNDS="${1:-45}"
export VEDFOLNIR_CHAOS_SEED="${2:-1609587929}"
exec cargo test --locked -p vedfolnir-autoscaler --test integration -- \
    chaos:: --nocapture --test-threads 1
