//! `simulate`'s speed (prints a table; BENCHMARKS.md):
//!
//! ```text
//! cargo bench -p vedfolnir-autoscaler --bench simulate
//! ```
//!
//! One year of hourly load (`google-2011-cpu-hourly.csv`, read from
//! `../shared/traces/` beside the checkout, or `VEDFOLNIR_TRACES`), scaled
//! x1000, replayed for three policies side by side (threshold-score,
//! predictive, cost-aware) at a 1-minute model step, for several
//! evaluation intervals. Each row is the median of 3 runs of the release
//! binary; "replay" is the time the binary reports for the replay itself,
//! "process" the whole command (start-up and the policies' compilation
//! included). The replay's outputs are checked equal across runs.

// Test code: an unwrap that fails is a failed test, which is what it should be.
#![allow(clippy::unwrap_used)]
// These drive the real binary against real engines, in real time, and
// time whole runs: the daemon's injected clock does not apply here.
#![allow(clippy::disallowed_methods)]

#[allow(dead_code)]
mod util;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

fn main() {
    let traces = std::env::var_os("VEDFOLNIR_TRACES")
        .map(PathBuf::from)
        .unwrap_or_else(|| util::root().join("../shared/traces"));
    let trace = traces.join("google-2011-cpu-hourly.csv");
    assert!(
        trace.exists(),
        "{} is missing: set VEDFOLNIR_TRACES to the folder of the shared traces",
        trace.display()
    );
    let bin = env!("CARGO_BIN_EXE_vedfolnir-autoscaler");
    println!(
        "simulate: 1 year hourly (8,760 rows), x1000, 3 policies, 1m model step; median of 3\n"
    );
    println!("| evaluated every | evaluations per policy | replay (s) | process (s) | under 5 s |");
    println!("|---|---|---|---|---|");
    for interval in ["5m", "10m", "15m"] {
        let mut replay = Vec::new();
        let mut process = Vec::new();
        let mut outputs = Vec::new();
        for _ in 0..3 {
            let started = Instant::now();
            let out = Command::new(bin)
                .args([
                    "simulate",
                    "--json",
                    "--quiet",
                    "--trace",
                    trace.to_str().unwrap(),
                    "--scale",
                    "1000",
                    "--max-replicas",
                    "20",
                    "--step",
                    "1m",
                    "--interval",
                    interval,
                    "--policy",
                    "builtin:threshold-score",
                    "--policy",
                    "builtin:predictive",
                    "--policy",
                    "builtin:cost-aware",
                ])
                .output()
                .expect("the binary runs");
            process.push(started.elapsed().as_secs_f64());
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let mut report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            replay.push(report["elapsed_ms"].as_f64().unwrap() / 1000.0);
            report["elapsed_ms"] = 0.into();
            outputs.push(report);
        }
        assert!(outputs.windows(2).all(|w| w[0] == w[1]), "runs differ");
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let evaluations = outputs[0]["results"][0]["evaluations"].as_u64().unwrap();
        let r = median(&mut replay);
        let p = median(&mut process);
        println!(
            "| {interval} | {evaluations} | {r:.2} | {p:.2} | {} |",
            if r < 5.0 { "yes" } else { "no" }
        );
    }
}
