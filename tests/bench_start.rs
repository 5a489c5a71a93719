//! The daemon's start with many policy files (prints a table;
//! BENCHMARKS.md):
//!
//! ```text
//! cargo bench -p vedfolnir-autoscaler --bench start
//! VEDFOLNIR_BENCH_FILES=1000 VEDFOLNIR_BENCH_SETTLE_SECS=20 cargo bench -p vedfolnir-autoscaler --bench start
//! ```
//!
//! N policy files naming the same builtin (`threshold-score`), each its own
//! service of a Compose project that has no containers (the engine is only
//! listed; every pass finds nothing and holds). Measured: from the
//! daemon's spawn to every service serving (its plugin shown in
//! `/api/v1/status`, polled every 50 ms), and the daemon's resident memory
//! after it has run for a while.

// Test code: an unwrap that fails is a failed test, which is what it should be.
#![allow(clippy::unwrap_used)]
// These drive the real binary in real time and time whole runs: the
// daemon's injected clock does not apply here.
#![allow(clippy::disallowed_methods)]

#[allow(dead_code)]
mod bench_proc;
#[allow(dead_code)]
mod docker;
#[allow(dead_code)]
mod util;

use bench_proc::{env_num, rss_mib};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Services whose plugin `/api/v1/status` shows.
fn serving(port: u16) -> usize {
    let Ok(answer) = docker::http_get(&port.to_string(), "/api/v1/status") else {
        return 0;
    };
    let Some(body) = answer.split("\r\n\r\n").nth(1) else {
        return 0;
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
        return 0;
    };
    v["services"]
        .as_object()
        .map(|s| s.values().filter(|s| !s["plugin"].is_null()).count())
        .unwrap_or(0)
}

fn main() {
    if !docker::engine() {
        return;
    }
    let files = env_num("VEDFOLNIR_BENCH_FILES", 1000);
    let settle = Duration::from_secs(env_num("VEDFOLNIR_BENCH_SETTLE_SECS", 20));
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    for n in 0..files {
        std::fs::write(
            policies.join(format!("s{n}.toml")),
            format!(
                "service = \"s{n}\"\nplugin = \"builtin:threshold-score\"\nmin_replicas = 1\n\
                 [target]\nproject = \"vstart-nothing-{n}\"\n"
            ),
        )
        .unwrap();
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vedfolnir-autoscaler"))
        .args(["run", "--dry-run", "--interval", "15s", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--policies")
        .arg(&policies)
        .env("VEDFOLNIR_STATE_DIR", dir.path().join("state"))
        .env("VEDFOLNIR_LOG", "error")
        .env_remove("DRY_RUN")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let served = loop {
        if serving(port) >= files as usize {
            break started.elapsed();
        }
        assert!(child.try_wait().unwrap().is_none(), "the daemon exited");
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "not all {files} services served within 300 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(settle);
    let rss = rss_mib(pid);
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
    println!(
        "| policy files | all served after | daemon RSS {} s later | per service |",
        settle.as_secs()
    );
    println!("|---|---|---|---|");
    println!(
        "| {files} | {:.2} s | {rss:.0} MiB | {:.0} KiB |",
        served.as_secs_f64(),
        rss * 1024.0 / files as f64
    );
}
