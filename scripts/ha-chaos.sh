#!/usr/bin/env bash
# Two daemons on a one-node Swarm (tests/ha.rs) under a long series of
# faults with scales in flight: SIGKILL (restarted after), SIGSTOP past the
# lease (SIGCONT after) and the engine endpoint cut (restored after), on
# the leader mostly, with the daemon's default lease (10 s, renewed every
# 3 s). Prints each round, the failover distribution (from the fault to the
# new leader's first pass) and the tally; fails on an intent without an
# outcome or with two, an epoch used by both daemons, a write by a fenced
# leader, or a container left behind.
#
#   scripts/ha-chaos.sh [ROUNDS] [SEED]     (default 50 rounds, a fixed seed)
#
# Bounded: ROUNDS rounds of about 15 s; the service, the lease and (when
# the series made it) the swarm are removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add x86_64-unknown-linux-musl >/dev/null
export CI=true
export VEDFOLNIR_HA_ROUNDS="${1:-50}"
export VEDFOLNIR_HA_SEED="${2:-1245278957}"
export VEDFOLNIR_HA_DEFAULT_LEASE=1
exec cargo test --locked -p vedfolnir-autoscaler --test integration -- \
    ha::kill_stop --nocapture --test-threads 1
