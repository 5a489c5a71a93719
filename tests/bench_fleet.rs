//! The daemon at scale on the real engine: many services of the workload
//! image, each with its own policy file (the shipped example policy: the
//! `docker` and `scrape` sources), `run --interval 15s --dry-run`, one row
//! per way of reading replica stats (prints a table; BENCHMARKS.md):
//!
//! ```text
//! cargo bench -p vedfolnir-autoscaler --bench fleet
//! VEDFOLNIR_BENCH_SERVICES=500 VEDFOLNIR_BENCH_REPLICAS=2 VEDFOLNIR_BENCH_WINDOW_SECS=120 \
//!   VEDFOLNIR_BENCH_HEALTH=60s VEDFOLNIR_BENCH_PATHS=cgroup,api cargo bench -p vedfolnir-autoscaler --bench fleet
//! ```
//!
//! The containers are started with `docker run` and Compose's labels on
//! the default bridge (quicker than a Compose project per service, and
//! Docker runs out of network pools near 30 projects), with a CPU and
//! memory limit and the image's healthcheck every `VEDFOLNIR_BENCH_HEALTH`
//! (60 s: the engine's cost of the daemon, not of health execs; 1s: a busy
//! engine). Before the first row the engine's CPU is measured with the
//! containers running and no daemon: its idle. Then, per row (`cgroup`: the
//! default; `api`: `VEDFOLNIR_CGROUP_ROOT=off`), the daemon starts, every
//! service passes once, and over the window: evaluations due (services x
//! window / interval) against done and late (`/metrics`: the pass-duration
//! histogram's count and `passes_late_total`), pass duration p50 and p99
//! (from the histogram, interpolated within its buckets as
//! `histogram_quantile` does), the daemon's CPU and resident memory, and
//! what `dockerd` and `containerd` spent beyond their idle. Every container
//! it starts is removed at the end, and any a killed run left behind at the
//! start.

// Test code: an unwrap that fails is a failed test, which is what it should be.
#![allow(clippy::unwrap_used)]
// These drive the real binary against real engines, in real time, and
// time whole runs: the daemon's injected clock does not apply here.
#![allow(clippy::disallowed_methods)]

#[allow(dead_code)]
mod bench_proc;
#[allow(dead_code)]
mod docker;
#[allow(dead_code)]
mod util;

use bench_proc::{cpu_seconds, env_num, rss_mib};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The label every container of this benchmark carries.
const LABEL: &str = "io.vedfolnir.bench=fleet";
/// The Compose project the services belong to.
const PROJECT: &str = "vfleet";

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker").args(args).output().unwrap()
}

/// Remove every container of this benchmark.
fn remove_all() {
    let out = docker(&["ps", "-aq", "--filter", &format!("label={LABEL}")]);
    let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    for chunk in ids.chunks(100) {
        let mut args = vec!["rm", "-f"];
        args.extend(chunk.iter().map(String::as_str));
        docker(&args);
    }
}

/// Removes the containers however the run ends.
struct Fleet;

impl Drop for Fleet {
    fn drop(&mut self) {
        remove_all();
    }
}

/// Start `services` x `replicas` containers, four `docker run` at a time.
fn start_fleet(services: u64, replicas: u64, health: &str) -> Fleet {
    remove_all();
    let fleet = Fleet;
    let image = docker::image();
    let jobs: Vec<(u64, u64)> = (0..services)
        .flat_map(|s| (1..=replicas).map(move |r| (s, r)))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let t = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((s, r)) = jobs.get(i) else { break };
                    let out = docker(&[
                        "run",
                        "-d",
                        "--name",
                        &format!("{PROJECT}_app{s}_{r}"),
                        "--label",
                        LABEL,
                        "--label",
                        &format!("com.docker.compose.project={PROJECT}"),
                        "--label",
                        &format!("com.docker.compose.service=app{s}"),
                        "--label",
                        &format!("com.docker.compose.container-number={r}"),
                        "--cpus",
                        "0.5",
                        "--memory",
                        "64m",
                        "--health-interval",
                        health,
                        image,
                    ]);
                    assert!(
                        out.status.success(),
                        "docker run: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            });
        }
    });
    eprintln!(
        "started {} containers in {:.0} s",
        jobs.len(),
        t.elapsed().as_secs_f64()
    );
    fleet
}

/// One policy file per service: the shipped example policy, renamed.
fn write_policies(dir: &Path, services: u64) {
    let example = std::fs::read_to_string(util::root().join("policies/vedfolnir.toml")).unwrap();
    assert!(
        example.contains("service = \"vedfolnir\"") && example.contains("project = \"vedfolnir\"")
    );
    for s in 0..services {
        let text = example
            .replace("service = \"vedfolnir\"", &format!("service = \"app{s}\""))
            .replace(
                "project = \"vedfolnir\"",
                &format!("project = \"{PROJECT}\""),
            );
        std::fs::write(dir.join(format!("app{s}.toml")), text).unwrap();
    }
}

/// The engine's processes: dockerd and containerd (not the shims, which
/// the containers' own work and health execs keep busy).
fn engine_pids() -> Vec<u32> {
    ["dockerd", "containerd"]
        .iter()
        .filter_map(|name| {
            let out = Command::new("pidof").arg(name).output().ok()?;
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

fn engine_cpu() -> f64 {
    engine_pids().into_iter().map(cpu_seconds).sum()
}

/// CPU share of one core the engine spends over `secs`, with no daemon.
fn engine_idle(secs: u64) -> f64 {
    let before = engine_cpu();
    std::thread::sleep(Duration::from_secs(secs));
    (engine_cpu() - before) / secs as f64
}

/// The figures of `/metrics` this benchmark reads, summed over services.
#[derive(Debug, Default, Clone)]
struct Scrape {
    passes: f64,
    late: f64,
    /// Cumulative count per bucket bound.
    buckets: BTreeMap<u64, f64>,
    read_by: BTreeMap<String, f64>,
}

fn scrape(port: u16) -> Scrape {
    let text = docker::http_get(&port.to_string(), "/metrics").unwrap_or_default();
    let mut out = Scrape::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        if series.starts_with("vedfolnir_autoscaler_pass_duration_seconds_count") {
            out.passes += v;
        } else if series.starts_with("vedfolnir_autoscaler_passes_late_total") {
            out.late += v;
        } else if series.starts_with("vedfolnir_autoscaler_pass_duration_seconds_bucket") {
            let le = series
                .split("le=\"")
                .nth(1)
                .and_then(|r| r.split('"').next());
            let bound = match le {
                Some("+Inf") => u64::MAX,
                Some(b) => (b.parse::<f64>().unwrap() * 1e6) as u64,
                None => continue,
            };
            *out.buckets.entry(bound).or_default() += v;
        } else if series.starts_with("vedfolnir_autoscaler_stats_replicas") {
            let path = series
                .split("path=\"")
                .nth(1)
                .and_then(|r| r.split('"').next());
            *out.read_by.entry(path.unwrap_or("?").into()).or_default() += v;
        }
    }
    out
}

/// The `q` quantile of the passes between two scrapes, seconds.
fn quantile(before: &Scrape, after: &Scrape, q: f64) -> f64 {
    let counts: Vec<(u64, f64)> = after
        .buckets
        .iter()
        .map(|(b, n)| (*b, n - before.buckets.get(b).copied().unwrap_or(0.0)))
        .collect();
    let total = counts.last().map(|c| c.1).unwrap_or(0.0);
    if total <= 0.0 {
        return f64::NAN;
    }
    let rank = q * total;
    let mut lower = (0u64, 0.0);
    for (bound, n) in counts {
        if n >= rank {
            if bound == u64::MAX {
                return lower.0 as f64 / 1e6;
            }
            let share = (rank - lower.1) / (n - lower.1).max(f64::MIN_POSITIVE);
            return (lower.0 as f64 + (bound - lower.0) as f64 * share) / 1e6;
        }
        lower = (bound, n);
    }
    f64::NAN
}

/// Start the daemon on the policies folder.
fn daemon(policies: &Path, state: &Path, port: u16, interval: &str, env: &[(&str, &str)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_vedfolnir-autoscaler"))
        .args(["run", "--dry-run", "--interval", interval, "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--policies")
        .arg(policies)
        .env("VEDFOLNIR_STATE_DIR", state)
        .env("VEDFOLNIR_LOG", "warn")
        .env_remove("DRY_RUN")
        .env_remove("WEBHOOK_URL")
        .env_remove("VEDFOLNIR_CGROUP_ROOT")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

struct Row {
    path: String,
    due: f64,
    done: f64,
    late: f64,
    p50: f64,
    p99: f64,
    cpu: f64,
    rss: f64,
    engine: f64,
    read_by: BTreeMap<String, f64>,
    /// Each stage's mean over the services' last pass, ms.
    stages: Vec<(String, f64)>,
}

/// Each stage's mean time over the services' last pass (`/api/v1/status`).
fn stage_means(port: u16) -> Vec<(String, f64)> {
    let answer = docker::http_get(&port.to_string(), "/api/v1/status").unwrap_or_default();
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("{}");
    let status: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let mut sums: Vec<(String, f64, u32)> = Vec::new();
    for service in status["services"]
        .as_object()
        .into_iter()
        .flat_map(|s| s.values())
    {
        for stage in service["pace"]["stages_ms"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let (name, ms) = (
                stage[0].as_str().unwrap_or("?"),
                stage[1].as_f64().unwrap_or(0.0),
            );
            match sums.iter_mut().find(|(n, ..)| n == name) {
                Some((_, sum, n)) => {
                    *sum += ms;
                    *n += 1;
                }
                None => sums.push((name.to_string(), ms, 1)),
            }
        }
    }
    sums.into_iter()
        .map(|(name, sum, n)| (name, sum / f64::from(n)))
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn measure(
    path: &str,
    services: u64,
    interval: Duration,
    window: Duration,
    idle: f64,
    policies: &Path,
    scratch: &Path,
) -> Row {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let state = scratch.join(format!("state-{path}"));
    let env: Vec<(&str, &str)> = match path {
        "cgroup" => vec![],
        "api" => vec![("VEDFOLNIR_CGROUP_ROOT", "off")],
        other => panic!("VEDFOLNIR_BENCH_PATHS: unknown path {other} (cgroup, api)"),
    };
    let interval_arg = format!("{}s", interval.as_secs());
    let mut child = daemon(policies, &state, port, &interval_arg, &env);
    let pid = child.id();
    // Warm up: every service has passed once, then one more interval.
    let deadline = Instant::now() + interval * 4 + Duration::from_secs(120);
    loop {
        let s = scrape(port);
        if s.passes >= services as f64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the services never all passed: {s:?}"
        );
        assert!(child.try_wait().unwrap().is_none(), "the daemon exited");
        std::thread::sleep(Duration::from_secs(1));
    }
    std::thread::sleep(interval);
    let (before, cpu0, engine0) = (scrape(port), cpu_seconds(pid), engine_cpu());
    std::thread::sleep(window);
    let (after, cpu1, engine1) = (scrape(port), cpu_seconds(pid), engine_cpu());
    let rss = rss_mib(pid);
    let stages = stage_means(port);
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
    let secs = window.as_secs_f64();
    Row {
        path: path.to_string(),
        due: services as f64 * (secs / interval.as_secs_f64()).floor(),
        done: after.passes - before.passes,
        late: after.late - before.late,
        p50: quantile(&before, &after, 0.5),
        p99: quantile(&before, &after, 0.99),
        cpu: (cpu1 - cpu0) / secs,
        rss,
        engine: (engine1 - engine0) / secs - idle,
        read_by: after.read_by,
        stages,
    }
}

fn main() {
    if !docker::engine() {
        return;
    }
    let services = env_num("VEDFOLNIR_BENCH_SERVICES", 500);
    let replicas = env_num("VEDFOLNIR_BENCH_REPLICAS", 2);
    let window = Duration::from_secs(env_num("VEDFOLNIR_BENCH_WINDOW_SECS", 120));
    let interval = Duration::from_secs(env_num("VEDFOLNIR_BENCH_INTERVAL_SECS", 15));
    let health = env_or("VEDFOLNIR_BENCH_HEALTH", "60s");
    let paths = env_or("VEDFOLNIR_BENCH_PATHS", "cgroup,api");
    // Two runs removing the same containers at once deadlock dockerd 20.10
    // (its network code): one run at a time.
    let lock =
        std::fs::File::create(std::env::temp_dir().join("vedfolnir-bench-fleet.lock")).unwrap();
    if lock.try_lock().is_err() {
        panic!("another fleet bench is running (or still removing its containers)");
    }
    let scratch = tempfile::tempdir().unwrap();
    let policies = scratch.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    write_policies(&policies, services);

    // Dropped before the lock: the containers are gone when it is released.
    let _fleet = start_fleet(services, replicas, &health);
    // Let the containers settle (start-up, first health checks).
    std::thread::sleep(Duration::from_secs(20));
    let idle = engine_idle(30);
    let rows: Vec<Row> = paths
        .split(',')
        .map(|p| {
            measure(
                p.trim(),
                services,
                interval,
                window,
                idle,
                &policies,
                scratch.path(),
            )
        })
        .collect();

    println!(
        "{services} services x {replicas} replicas = {} containers, healthcheck every {health}, \
         interval {} s, window {} s; the engine idle (dockerd + containerd, no daemon): {:.1}% of a core\n",
        services * replicas,
        interval.as_secs(),
        window.as_secs(),
        idle * 100.0
    );
    println!(
        "| stats read by | evaluations due | done | late | on time | pass p50 | pass p99 | daemon CPU | daemon RSS | engine CPU beyond idle | daemon + engine | mean stage times of the last pass (ms) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let on_time = ((r.done - r.late) / r.due * 100.0).min(100.0);
        let read_by = r
            .read_by
            .iter()
            .filter(|(_, n)| **n > 0.0)
            .map(|(p, n)| format!("{p} {n:.0}"))
            .collect::<Vec<_>>()
            .join(", ");
        let stages = r
            .stages
            .iter()
            .map(|(name, ms)| format!("{name} {ms:.0}"))
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "| {} ({read_by}) | {:.0} | {:.0} | {:.0} | {on_time:.1}% | {:.0} ms | {:.0} ms | {:.1}% | {:.0} MiB | {:.1}% | {:.1}% | {stages} |",
            r.path,
            r.due,
            r.done,
            r.late,
            r.p50 * 1000.0,
            r.p99 * 1000.0,
            r.cpu * 100.0,
            r.rss,
            r.engine * 100.0,
            (r.cpu + r.engine) * 100.0
        );
    }
}
