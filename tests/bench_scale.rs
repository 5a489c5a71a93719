//! Time from `scale-up` to the new replica healthy, next to
//! `docker-compose up -d --scale` on the same service in the same run.
//!
//! ```text
//! cargo bench -p vedfolnir-autoscaler --bench scale
//! VEDFOLNIR_BENCH_ROUNDS=10 cargo bench -p vedfolnir-autoscaler --bench scale
//! ```
//!
//! Each round scales the test workload (tests/workload, healthcheck every
//! second) from 2 to 3 replicas, once with `vedfolnir-autoscaler scale-up 3`
//! (which returns when the new replica is healthy) and once with
//! `docker-compose up -d --scale vedfolnir=3` followed by a wait for three
//! healthy replicas (polled every 250 ms, as the autoscaler polls), then
//! back to 2 the same way. It reuses the integration tests' harness.

// Test code: an unwrap that fails is a failed test, which is what it should be.
#![allow(clippy::unwrap_used)]
// These drive the real binary against real engines, in real time, and
// time whole runs: the daemon's injected clock does not apply here.
#![allow(clippy::disallowed_methods)]

#[allow(dead_code)]
mod docker;
#[allow(dead_code)]
mod util;

use std::time::{Duration, Instant};

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if !docker::engine() {
        return;
    }
    let rounds: usize = std::env::var("VEDFOLNIR_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let p = docker::Project::up("bench", 2, docker::image());
    let mut ours = Vec::new();
    let mut compose = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        p.cli(&["scale-up", "3"]).expect_code(0);
        ours.push(t.elapsed());
        p.cli(&["scale-down", "2"]).expect_code(0);

        let t = Instant::now();
        p.compose(&["up", "-d", "--scale", "vedfolnir=3"])
            .expect_code(0);
        p.wait_healthy(3);
        compose.push(t.elapsed());
        p.compose(&["up", "-d", "--scale", "vedfolnir=2"])
            .expect_code(0);
        assert_eq!(p.running("vedfolnir").len(), 2);
    }
    let fmt = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    let (min_o, max_o) = (*ours.iter().min().unwrap(), *ours.iter().max().unwrap());
    let (min_c, max_c) = (
        *compose.iter().min().unwrap(),
        *compose.iter().max().unwrap(),
    );
    let (mo, mc) = (median(&mut ours), median(&mut compose));
    println!("scale 2 -> 3, until the new replica is healthy ({rounds} rounds)\n");
    println!("| command | median | min | max |");
    println!("|---|---|---|---|");
    println!(
        "| vedfolnir-autoscaler scale-up 3 | {} | {} | {} |",
        fmt(mo),
        fmt(min_o),
        fmt(max_o)
    );
    println!(
        "| docker-compose up -d --scale vedfolnir=3 | {} | {} | {} |",
        fmt(mc),
        fmt(min_c),
        fmt(max_c)
    );
    println!(
        "\nratio (autoscaler / compose, medians): {:.2}",
        mo.as_secs_f64() / mc.as_secs_f64()
    );
}
