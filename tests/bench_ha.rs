//! What a standby costs beside the leader (prints a table; BENCHMARKS.md,
//! "High availability"):
//!
//! ```text
//! cargo bench -p vedfolnir-autoscaler --bench ha
//! VEDFOLNIR_BENCH_IDLE_SECS=300 cargo bench -p vedfolnir-autoscaler --bench ha
//! ```
//!
//! Two daemons with the defaults (a pass every 15 s, the lease 10 s renewed
//! every 3 s) serve one Swarm service of 2 replicas on a one-node swarm;
//! once one leads, each one's CPU time and resident memory are read from
//! /proc over the idle window. The standby runs every pass as the leader
//! does (its windows stay warm) and acts on nothing; the leader renews the
//! lease, the standby reads it.

// Test code: an unwrap that fails is a failed test, which is what it should be.
#![allow(clippy::unwrap_used)]
// These drive the real binary against real engines, in real time.
#![allow(clippy::disallowed_methods)]

#[allow(dead_code)]
mod bench_proc;
#[allow(dead_code, unused_imports)]
mod daemon;
#[allow(dead_code)]
mod docker;
#[allow(dead_code)]
mod util;

use std::time::{Duration, Instant};

use bench_proc::{cpu_seconds, env_num, rss_mib};
use daemon::{Daemon, free_port};
use docker::Swarm;

fn main() {
    if !docker::engine() {
        return;
    }
    let idle = Duration::from_secs(env_num("VEDFOLNIR_BENCH_IDLE_SECS", 120));
    let swarm = Swarm::up("vtbenchha", 2);
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("ha.toml");
    std::fs::write(
        &policy,
        format!(
            "service = \"{}\"\nplugin = \"builtin:threshold-score\"\nmin_replicas = 2\nmax_replicas = 4\n[target]\nkind = \"swarm\"\n",
            swarm.service
        ),
    )
    .unwrap();
    let start = |name: &str| {
        Daemon::spawn_in(
            &dir.path().join(name),
            &policy,
            free_port(),
            &[],
            &[("VEDFOLNIR_LEASE_NAME", swarm.lease.as_str())],
        )
    };
    let mut daemons = [start("a"), start("b")];
    let deadline = Instant::now() + Duration::from_secs(60);
    let leader = loop {
        if let Some(i) = daemons.iter_mut().position(|d| {
            d.lines_so_far(Duration::from_millis(100))
                .iter()
                .any(|(_, l)| l.contains("took it at epoch"))
        }) {
            break i;
        }
        assert!(Instant::now() < deadline, "no daemon took the lease");
    };
    // Past the start (loads, first passes), then the idle window.
    std::thread::sleep(Duration::from_secs(20));
    let pids: Vec<u32> = daemons.iter().map(|d| d.child.id()).collect();
    let cpu0: Vec<f64> = pids.iter().map(|p| cpu_seconds(*p)).collect();
    std::thread::sleep(idle);
    let cpu: Vec<f64> = pids
        .iter()
        .zip(&cpu0)
        .map(|(p, c)| cpu_seconds(*p) - c)
        .collect();
    let rss: Vec<f64> = pids.iter().map(|p| rss_mib(*p)).collect();
    let (l, s) = (leader, 1 - leader);
    println!(
        "two daemons, one Swarm service, a pass every 15 s, the lease 10 s / 3 s, over {} s idle",
        idle.as_secs()
    );
    println!("| role | CPU time | CPU share | resident memory |");
    println!("|---|---|---|---|");
    for (role, i) in [("leader", l), ("standby", s)] {
        println!(
            "| {role} | {:.2} s | {:.3}% | {:.1} MiB |",
            cpu[i],
            cpu[i] / idle.as_secs_f64() * 100.0,
            rss[i]
        );
    }
    println!(
        "standby / leader: CPU {:.2}x, memory {:.2}x",
        cpu[s] / cpu[l].max(1e-9),
        rss[s] / rss[l].max(1e-9)
    );
    drop(daemons);
    drop(swarm);
}
