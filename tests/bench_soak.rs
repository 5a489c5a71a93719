//! Soak: the daemon on the real engine for many passes, with the plugin
//! module replaced every few hundred passes; prints resident memory, open
//! file descriptors and the audit log's size at intervals, and the RSS
//! growth after warm-up (BENCHMARKS.md has a run):
//!
//! ```text
//! cargo bench -p vedfolnir-autoscaler --bench soak
//! VEDFOLNIR_SOAK_PASSES=100000 VEDFOLNIR_SOAK_SERVICES=10 VEDFOLNIR_SOAK_DOCKER=2 \
//!   VEDFOLNIR_SOAK_RELOAD_EVERY=300 VEDFOLNIR_SOAK_MINUTES=90 cargo bench -p vedfolnir-autoscaler --bench soak
//! ```
//!
//! `SERVICES` policy files, each its own service, all on one Compose
//! service of two replicas, in a dry run at a 50 ms interval: the first
//! `DOCKER` read CPU and memory from Docker's stats (about 1 s a pass), the
//! rest every signal from the replicas' `/metrics` (milliseconds a pass).
//! All use one module file, which is replaced by a variant (a new digest,
//! then the cached ones again) every `RELOAD_EVERY` passes. It stops at
//! `PASSES` passes (summed over the services, from `/metrics`) or after
//! `MINUTES`, and fails when RSS grew by 5% or more from the sample at a
//! tenth of the run to the end.

// Test code: an unwrap that fails is a failed test, which is what it should be.
#![allow(clippy::unwrap_used)]
// These drive the real binary against real engines, in real time, and
// time whole runs: the daemon's injected clock does not apply here.
#![allow(clippy::disallowed_methods)]

#[allow(dead_code, unused_imports)]
mod daemon;
#[allow(dead_code)]
mod docker;
#[allow(dead_code)]
mod util;

use std::time::{Duration, Instant};

use daemon::{Daemon, free_port, module_variant};
use docker::Project;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resident memory in KiB and open file descriptors of `pid`.
fn rss_and_fds(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    (rss, fds)
}

/// The sum of a counter over its label sets, from `/metrics`.
fn total(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// A policy file for service `name` on the project's app; scrape-only
/// unless `docker`.
fn policy(name: &str, project: &str, docker: bool) -> String {
    let signals = if docker {
        ""
    } else {
        "[signals.cpu]\nsource = \"scrape\"\nmetric = \"vedfolnir_queue_depth\"\n\
         [signals.memory]\nsource = \"scrape\"\nmetric = \"vedfolnir_held_memory_bytes\"\n"
    };
    format!(
        "service = \"{name}\"\nplugin = \"score.wasm\"\nmin_replicas = 1\nmax_replicas = 4\n\
         [target]\nname = \"vedfolnir\"\nproject = \"{project}\"\n\
         [scrape]\nport = 8080\n\
         [signals.queue-depth]\nsource = \"scrape\"\nmetric = \"vedfolnir_queue_depth\"\n\
         [signals.response-time-p95]\nsource = \"scrape\"\nmetric = \"vedfolnir_request_duration_seconds\"\n\
         [signals.error-rate]\nsource = \"scrape\"\nmetric = \"vedfolnir_errors_total\"\ntotal = \"vedfolnir_requests_total\"\n\
         {signals}"
    )
}

fn main() {
    if !docker::engine() {
        return;
    }
    let target = env_or("VEDFOLNIR_SOAK_PASSES", 20_000);
    let services = env_or("VEDFOLNIR_SOAK_SERVICES", 8);
    let with_docker = env_or("VEDFOLNIR_SOAK_DOCKER", 2).min(services);
    let reload_every = env_or("VEDFOLNIR_SOAK_RELOAD_EVERY", 300);
    let limit = Duration::from_secs(env_or("VEDFOLNIR_SOAK_MINUTES", 30) * 60);

    let p = Project::up("soak", 2, docker::image());
    let base =
        std::fs::read(vedfolnir_plugin_artifacts::policy_path("threshold-score").unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("policies");
    std::fs::create_dir(&folder).unwrap();
    let module = folder.join("score.wasm");
    std::fs::write(&module, module_variant(&base, 0)).unwrap();
    for i in 0..services {
        std::fs::write(
            folder.join(format!("s{i}.toml")),
            policy(&format!("s{i}"), &p.name, i < with_docker),
        )
        .unwrap();
    }
    let mut d = Daemon::spawn(
        &p,
        &folder,
        free_port(),
        &["--interval", "50ms", "--dry-run"],
        &[(
            "VEDFOLNIR_CACHE_DIR",
            dir.path().join("cache").to_str().unwrap(),
        )],
    );
    d.expect_line("s0: ", Duration::from_secs(60));
    let pid = d.child.id();
    let audit = p.state_dir().join("audit.jsonl");
    println!(
        "soak: {services} services ({with_docker} on Docker stats), dry run, 50 ms interval, module replaced every {reload_every} passes, to {target} passes"
    );
    println!(
        "{:>8} {:>9} {:>8} {:>9} {:>5} {:>11} {:>8}",
        "elapsed", "passes", "per s", "RSS MiB", "fds", "audit bytes", "reloads"
    );
    let started = Instant::now();
    let mut next_reload = reload_every;
    let mut variant = 1u32;
    let mut last_print = Instant::now() - Duration::from_secs(60);
    let mut samples: Vec<(u64, u64)> = Vec::new();
    let mut fds_seen = Vec::new();
    let (passes, reloads) = loop {
        let m = d.metrics();
        let passes = total(&m, "vedfolnir_autoscaler_evaluations_total");
        let reloads = total(&m, "vedfolnir_autoscaler_reloads_total");
        if passes >= next_reload {
            // A new digest for the first four, then the cached ones again.
            std::fs::write(&module, module_variant(&base, variant % 4)).unwrap();
            variant += 1;
            next_reload = passes + reload_every;
        }
        let done = passes >= target || started.elapsed() >= limit;
        if last_print.elapsed() >= Duration::from_secs(30) || done {
            last_print = Instant::now();
            let (rss, fds) = rss_and_fds(pid);
            samples.push((passes, rss));
            fds_seen.push(fds);
            let secs = started.elapsed().as_secs_f64();
            println!(
                "{:>7.0}s {passes:>9} {:>8.1} {:>9.1} {fds:>5} {:>11} {reloads:>8}",
                secs,
                passes as f64 / secs,
                rss as f64 / 1024.0,
                std::fs::metadata(&audit).map(|m| m.len()).unwrap_or(0),
            );
        }
        if done {
            break (passes, reloads);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    // Warm-up: the first sample at or past a tenth of the passes.
    let warm = samples
        .iter()
        .find(|(n, _)| *n >= passes / 10)
        .copied()
        .unwrap_or(samples[0]);
    let end = *samples.last().unwrap();
    let growth = (end.1 as f64 - warm.1 as f64) / warm.1 as f64 * 100.0;
    println!(
        "passes {passes}, module replaced {} times ({reloads} file reloads), RSS {:.1} MiB after warm-up ({} passes) -> {:.1} MiB: {growth:+.2}%; fds {}..{}",
        variant - 1,
        warm.1 as f64 / 1024.0,
        warm.0,
        end.1 as f64 / 1024.0,
        fds_seen.iter().min().unwrap(),
        fds_seen.iter().max().unwrap(),
    );
    assert!(
        matches!(d.child.try_wait(), Ok(None)),
        "the daemon died during the soak"
    );
    assert!(
        growth < 5.0,
        "RSS grew {growth:.2}% after warm-up (goal: under 5%)"
    );
}
