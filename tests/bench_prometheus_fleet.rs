//! Ten thousand services through a real Prometheus (prints a table;
//! BENCHMARKS.md):
//!
//! ```text
//! cargo bench -p vedfolnir-autoscaler --bench prometheus-fleet
//! VEDFOLNIR_BENCH_SERVICES=10000 VEDFOLNIR_BENCH_WINDOW_SECS=120 cargo bench -p vedfolnir-autoscaler --bench prometheus-fleet
//! ```
//!
//! An exporter in this process serves `bench_cpu`, `bench_memory` and
//! `bench_queue` for every service (a `service` label each, values moving
//! with time); a Prometheus of our own scrapes it every 15 s. N policy
//! files name `threshold-score` with those three signals from the
//! `prometheus` source (`bench_cpu{service="sN"}`: they differ only in the
//! service's label, so they are read grouped). The daemon's loops then run
//! in this process (`vedfolnir_autoscaler::bench::prometheus_fleet`: the
//! real pass, sources, sandbox, state directory and audit log, with an
//! in-memory actuator, since the engine is not what is measured here).
//! Over the window: evaluations due against done and late, pass p50 and
//! p99, this process's CPU and resident memory (the exporter's share is
//! measured apart and taken out), and the queries Prometheus answered
//! (its own `prometheus_http_requests_total`).

// Test code: an unwrap that fails is a failed test, which is what it should be.
#![allow(clippy::unwrap_used)]
// These drive real servers in real time: the daemon's injected clock
// does not apply here.
#![allow(clippy::disallowed_methods)]

#[allow(dead_code)]
mod bench_proc;
#[allow(dead_code)]
mod docker;
#[allow(dead_code)]
mod util;

use bench_proc::{cpu_seconds, env_num, rss_mib};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The exporter: every service's three metrics, on 127.0.0.1; returns its
/// port and the CPU time its thread spent, ns.
fn exporter(services: u64) -> (u16, Arc<AtomicU64>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let spent = Arc::new(AtomicU64::new(0));
    let spent_by = spent.clone();
    let started = Instant::now();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let t = cpu_clock();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
                line.clear();
            }
            let phase = started.elapsed().as_secs_f64() / 60.0;
            let mut body = String::with_capacity(services as usize * 120);
            for (name, base) in [
                ("bench_cpu", 0.45),
                ("bench_memory", 0.4),
                ("bench_queue", 3.0),
            ] {
                body.push_str(&format!("# TYPE {name} gauge\n"));
                for s in 0..services {
                    let v = base * (1.0 + 0.2 * (phase + s as f64).sin());
                    body.push_str(&format!("{name}{{service=\"s{s}\"}} {v:.4}\n"));
                }
            }
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            spent_by.fetch_add(cpu_clock() - t, Ordering::Relaxed);
        }
    });
    (port, spent)
}

/// This thread's CPU time, ns.
fn cpu_clock() -> u64 {
    // /proc/thread-self/schedstat: run time (ns), wait time, slices.
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_prometheus(exporter: u16) -> Prometheus {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!(
        "global:\n  scrape_interval: 15s\n  scrape_timeout: 10s\nscrape_configs:\n  - job_name: bench\n    static_configs:\n      - targets: [\"127.0.0.1:{exporter}\"]\n"
    );
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    let child = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus (Debian's package) on the PATH");
    Prometheus {
        child,
        port,
        _dir: dir,
    }
}

/// A value of Prometheus' own metrics: the sum of the series whose line
/// starts with `prefix`.
fn own_metric(port: u16, prefix: &str) -> f64 {
    let text = docker::http_get(&port.to_string(), "/metrics").unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// How many series of `bench_cpu` Prometheus holds now.
fn series_held(port: u16) -> u64 {
    let answer = docker::http_get(&port.to_string(), "/api/v1/query?query=count(bench_cpu)")
        .unwrap_or_default();
    answer
        .split("\"value\":[")
        .nth(1)
        .and_then(|v| v.split('"').nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// What is read as the window opens and closes.
#[derive(Debug, Clone, Copy)]
struct Edge {
    /// This process's CPU seconds.
    cpu: f64,
    /// The exporter thread's CPU time, ns.
    exporter_ns: u64,
    /// Queries Prometheus answered.
    queries: f64,
    /// This process's resident memory, MiB.
    rss: f64,
}

fn percentile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(((v.len().max(1) - 1) as f64 * q).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

fn main() {
    let services = env_num("VEDFOLNIR_BENCH_SERVICES", 10_000);
    let window = Duration::from_secs(env_num("VEDFOLNIR_BENCH_WINDOW_SECS", 120));
    let interval = Duration::from_secs(15);
    let (exporter_port, exporter_cpu) = exporter(services);
    let prometheus = start_prometheus(exporter_port);
    let deadline = Instant::now() + Duration::from_secs(120);
    while series_held(prometheus.port) < services {
        assert!(
            Instant::now() < deadline,
            "Prometheus never held every service's series"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let dir = tempfile::tempdir().unwrap();
    let policies: Vec<std::path::PathBuf> = (0..services)
        .map(|s| {
            let path = dir.path().join(format!("s{s}.toml"));
            let signals: String = [("cpu", "bench_cpu"), ("memory", "bench_memory"), ("queue-depth", "bench_queue")]
                .iter()
                .map(|(signal, metric)| {
                    format!("[signals.{signal}]\nsource = \"prometheus\"\nquery = '{metric}{{service=\"s{s}\"}}'\n")
                })
                .collect();
            std::fs::write(
                &path,
                format!(
                    "service = \"s{s}\"\nplugin = \"builtin:threshold-score\"\nmin_replicas = 1\nmax_replicas = 5\n\
                     [target]\nproject = \"bench\"\n{signals}"
                ),
            )
            .unwrap();
            path
        })
        .collect();
    let edges: Arc<Mutex<Vec<Edge>>> = Arc::default();
    let seen = edges.clone();
    let port = prometheus.port;
    let edge = Arc::new(move |_closing: bool| {
        let queries = own_metric(
            port,
            "prometheus_http_requests_total{code=\"200\",handler=\"/api/v1/query",
        );
        seen.lock().unwrap().push(Edge {
            cpu: cpu_seconds(std::process::id()),
            exporter_ns: exporter_cpu.load(Ordering::Relaxed),
            queries,
            rss: rss_mib(std::process::id()),
        });
    });
    let f = vedfolnir_autoscaler::bench::prometheus_fleet(
        &policies,
        &format!("http://127.0.0.1:{port}"),
        &dir.path().join("state"),
        vedfolnir_autoscaler::bench::FleetTimes {
            interval,
            warmup: interval * 2,
            window,
        },
        edge,
    );
    let e = edges.lock().unwrap().clone();
    let (open, close) = (e[0], e[1]);
    let secs = window.as_secs_f64();
    let exporter = (close.exporter_ns - open.exporter_ns) as f64 / 1e9;
    let cpu = ((close.cpu - open.cpu) - exporter) / secs;
    let (rss, q0, q1) = (close.rss, open.queries, close.queries);
    let mut ms = f.pass_ms.clone();
    let on_time = ((f.done - f.late) as f64 / f.due as f64 * 100.0).min(100.0);
    println!(
        "{} services through Prometheus, 3 signals each, interval 15 s, window {} s; policy files loaded in {:.2} s\n",
        f.services,
        window.as_secs(),
        f.load.as_secs_f64()
    );
    println!(
        "| evaluations due | done | late | failed | with a signal missing | on time | pass p50 | pass p99 | daemon CPU | daemon RSS | Prometheus queries / s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} | {} | {on_time:.1}% | {:.1} ms | {:.1} ms | {:.1}% | {rss:.0} MiB | {:.1} |",
        f.due,
        f.done,
        f.late,
        f.failed,
        f.missing,
        percentile(&mut ms, 0.5),
        percentile(&mut ms, 0.99),
        cpu * 100.0,
        (q1 - q0) / secs
    );
}
