//! The daemon's figures, on the real engine (prints tables; BENCHMARKS.md):
//!
//! ```text
//! cargo bench -p vedfolnir-autoscaler --bench daemon
//! VEDFOLNIR_BENCH_RELOADS=100 VEDFOLNIR_BENCH_IDLE_SECS=120 cargo bench -p vedfolnir-autoscaler --bench daemon
//! ```
//!
//! 1. Reload latency: from a policy's `.wasm` module written to the new
//!    version serving (its sha256 in `/api/v1/status`, polled every 5 ms),
//!    for a module never seen (cold compile) and for one already in the
//!    digest-keyed cache. Each includes the 200 ms debounce.
//! 2. Evaluations missed or doubled over N reloads while one service is
//!    evaluated every second: the module is replaced every 0.5 s, and every
//!    pass's decision line is timestamped as it is read. A gap between two
//!    passes under half the cadence is a doubled evaluation; one over 1.5
//!    times the cadence a missed one. The cadence is max(interval, pass);
//!    a pass (Docker's one-shot stats) takes about 2 s here, so it is
//!    measured before the reloads start, not assumed.
//! 3. Resident memory and CPU of an idle daemon with 3 services at 15 s.

// Test code: an unwrap that fails is a failed test, which is what it should be.
#![allow(clippy::unwrap_used)]
// These drive the real binary against real engines, in real time, and
// time whole runs: the daemon's injected clock does not apply here.
#![allow(clippy::disallowed_methods)]

#[allow(dead_code)]
mod bench_proc;
#[allow(dead_code, unused_imports)]
mod daemon;
#[allow(dead_code)]
mod docker;
#[allow(dead_code)]
mod util;

use bench_proc::{cpu_seconds, rss_mib};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use daemon::{Daemon, free_port as port, module_variant as variant, sha256};
use docker::Project;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn digest_of(d: &Daemon) -> String {
    d.status()["services"]["vedfolnir"]["plugin"]["digest"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Write the module, then poll until its digest serves.
fn reload_once(d: &Daemon, module: &Path, bytes: &[u8]) -> Duration {
    let t = Instant::now();
    std::fs::write(module, bytes).unwrap();
    let want = sha256(module);
    while digest_of(d) != want {
        assert!(t.elapsed() < Duration::from_secs(30), "reload never served");
        std::thread::sleep(Duration::from_millis(5));
    }
    t.elapsed()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ms(d: f64) -> String {
    format!("{:.0} ms", d * 1000.0)
}

fn main() {
    if !docker::engine() {
        return;
    }
    let reloads = env_or("VEDFOLNIR_BENCH_RELOADS", 100) as u32;
    let idle_secs = env_or("VEDFOLNIR_BENCH_IDLE_SECS", 120);
    let p = Project::up("benchd", 2, docker::image());
    let base =
        std::fs::read(vedfolnir_plugin_artifacts::policy_path("threshold-score").unwrap()).unwrap();

    // 1 and 2: one service, its module in the watched folder.
    let dir = tempfile::tempdir().unwrap();
    let folder: PathBuf = dir.path().join("policies");
    std::fs::create_dir(&folder).unwrap();
    let module = folder.join("score.wasm");
    std::fs::write(&module, variant(&base, 0)).unwrap();
    std::fs::write(
        folder.join("vedfolnir.toml"),
        daemon::policy_text("vedfolnir", &p.name, "score.wasm", ""),
    )
    .unwrap();
    let cache = dir.path().join("cache");
    let mut d = Daemon::spawn(
        &p,
        &folder,
        port(),
        &["--interval", "1s"],
        &[("VEDFOLNIR_CACHE_DIR", cache.to_str().unwrap())],
    );
    d.expect_line("vedfolnir: HOLD", Duration::from_secs(60));

    let rounds = 10;
    let mut cold = Vec::new();
    for n in 1..=rounds {
        cold.push(reload_once(&d, &module, &variant(&base, n)).as_secs_f64());
    }
    let mut warm = Vec::new();
    for n in 1..=rounds {
        warm.push(reload_once(&d, &module, &variant(&base, n)).as_secs_f64());
    }
    let loads: Vec<f64> = d
        .lines_so_far(Duration::from_millis(50))
        .iter()
        .filter_map(|(_, l)| {
            let l = l.strip_prefix("vedfolnir-autoscaler: reloaded ")?;
            let t = l.rsplit(" in ").next()?;
            vedfolnir_core::parse_duration(t)
                .ok()
                .map(|ms| ms as f64 / 1000.0)
        })
        .collect();
    let (mut cold_load, mut warm_load) = (
        loads[..rounds as usize].to_vec(),
        loads[rounds as usize..].to_vec(),
    );
    println!("reload latency: module written -> new version serving ({rounds} each)\n");
    println!("| module | median | min | max | of which load (median) |");
    println!("|---|---|---|---|---|");
    for (label, v, l) in [
        ("new (cold compile)", &mut cold, &mut cold_load),
        ("seen before (cache hit)", &mut warm, &mut warm_load),
    ] {
        let (lo, hi) = (
            v.iter().copied().fold(f64::MAX, f64::min),
            v.iter().copied().fold(0.0, f64::max),
        );
        println!(
            "| {label} | {} | {} | {} | {} |",
            ms(median(v)),
            ms(lo),
            ms(hi),
            ms(median(l))
        );
    }

    // 2: the cadence first, then reloads every 0.5 s.
    let before = d.lines_so_far(Duration::from_secs(8));
    let stamp = |lines: &[(Instant, String)]| -> Vec<Instant> {
        lines
            .iter()
            .filter(|(_, l)| l.starts_with("vedfolnir: HOLD"))
            .map(|(t, _)| *t)
            .collect()
    };
    let pre = stamp(&before);
    let mut pre_gaps: Vec<f64> = pre
        .windows(2)
        .rev()
        .take(4)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    let cadence = median(&mut pre_gaps);
    let seen = before.len();
    let started = Instant::now();
    for n in 0..reloads {
        std::fs::write(&module, variant(&base, 1000 + n)).unwrap();
        std::thread::sleep(Duration::from_millis(500));
    }
    let last = sha256(&module);
    while digest_of(&d) != last {
        std::thread::sleep(Duration::from_millis(20));
    }
    let all = d.lines_so_far(Duration::from_secs(4));
    let during: Vec<Instant> = stamp(&all[seen.saturating_sub(1)..])
        .into_iter()
        .filter(|t| *t >= started)
        .collect();
    let gaps: Vec<f64> = during
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    let doubled = gaps.iter().filter(|g| **g < 0.5 * cadence).count();
    let missed: usize = gaps
        .iter()
        .filter(|g| **g > 1.5 * cadence)
        .map(|g| (g / cadence).round() as usize - 1)
        .sum();
    let swaps = all[seen..]
        .iter()
        .filter(|(_, l)| l.contains("reloaded"))
        .count();
    println!(
        "\nevaluation during {reloads} module replacements, one every 0.5 s ({:.0} s)\n",
        started.elapsed().as_secs_f64()
    );
    println!("| cadence before | passes | swaps served | gap min | gap max | doubled | missed |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {:.2} s | {} | {swaps} | {:.2} s | {:.2} s | {doubled} | {missed} |",
        cadence,
        during.len(),
        gaps.iter().copied().fold(f64::MAX, f64::min),
        gaps.iter().copied().fold(0.0, f64::max),
    );
    drop(d);

    // 3: three services at 15 s, idle.
    let q = Project::up("benchq", 1, docker::image());
    let folder3 = dir.path().join("three");
    std::fs::create_dir(&folder3).unwrap();
    for (file, service, project) in [
        ("a.toml", "vedfolnir", &p.name),
        ("b.toml", "store", &p.name),
        ("c.toml", "vedfolnir", &q.name),
    ] {
        let text = daemon::policy_text(service, project, "builtin:threshold-score", "");
        // The third scales another project's service of the same name:
        // a service name is the policy's own, the target says what it is.
        let text = if file == "c.toml" {
            text.replacen("service = \"vedfolnir\"", "service = \"vedfolnir-q\"", 1)
                .replace("[target]\n", "[target]\nname = \"vedfolnir\"\n")
        } else {
            text
        };
        std::fs::write(folder3.join(file), text).unwrap();
    }
    let mut d = Daemon::spawn(
        &p,
        &folder3,
        port(),
        &["--interval", "15s"],
        &[("VEDFOLNIR_CACHE_DIR", cache.to_str().unwrap())],
    );
    for s in ["vedfolnir:", "store:", "vedfolnir-q:"] {
        d.expect_line(s, Duration::from_secs(60));
    }
    let pid = d.child.id();
    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    let mut peak = 0.0_f64;
    let mut samples = Vec::new();
    while t0.elapsed() < Duration::from_secs(idle_secs) {
        std::thread::sleep(Duration::from_secs(1));
        let rss = rss_mib(pid) * 1024.0;
        peak = peak.max(rss);
        samples.push(rss);
    }
    let (rss_end, cpu1) = (rss_mib(pid) * 1024.0, cpu_seconds(pid));
    let cpu_pct = (cpu1 - cpu0) / t0.elapsed().as_secs_f64() * 100.0;
    let passes = d
        .lines_so_far(Duration::from_millis(50))
        .iter()
        .filter(|(t, l)| *t >= t0 && l.contains(": HOLD"))
        .count();
    println!("\nidle daemon, 3 services every 15 s, {idle_secs} s ({passes} passes)\n");
    println!("| RSS median | RSS peak | RSS at end | CPU (of one core) |");
    println!("|---|---|---|---|");
    println!(
        "| {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.2}% |",
        median(&mut samples) / 1024.0,
        peak / 1024.0,
        rss_end / 1024.0,
        cpu_pct
    );
}
