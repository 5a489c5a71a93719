//! What starting costs on a long-lived daemon's audit log (prints a table;
//! BENCHMARKS.md):
//!
//! ```text
//! cargo bench -p vedfolnir-autoscaler --bench audit
//! VEDFOLNIR_BENCH_AUDIT_MB=500 cargo bench -p vedfolnir-autoscaler --bench audit
//! ```
//!
//! A start (`run`, `check`) and `report` look in the audit log for scales
//! interrupted by a crash and requests never answered. The table compares,
//! in one run on one log, reading every record of the service whole (what
//! they did before) with the one-pass summary they use: wall time (median
//! of 5, warm page cache) and how far the process's resident set rose
//! above where it stood (its peak, reset before each read; Linux).

// Test code: an unwrap that fails is a failed test, which is what it should be.
#![allow(clippy::unwrap_used)]
// Times whole reads in real time: the daemon's injected clock does not
// apply here.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

/// A size the kernel reports for this process in /proc/self/status
/// (`VmHWM`, the peak resident set; `VmRSS`, the resident set now), in
/// bytes.
fn status_bytes(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"));
    kb << 10
}

/// The median time of 5 runs of `f`, how far the resident set rose above
/// where it stood before (the peak reset by writing 5 to
/// /proc/self/clear_refs), and its result.
fn measure(f: impl Fn() -> usize) -> (Duration, usize, usize) {
    let mut times = Vec::new();
    let mut rise = 0;
    let mut result = 0;
    for _ in 0..5 {
        std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak resident set");
        let before = status_bytes("VmRSS");
        let started = Instant::now();
        result = f();
        times.push(started.elapsed());
        rise = rise.max(status_bytes("VmHWM").saturating_sub(before));
    }
    times.sort();
    (times[2], rise, result)
}

fn main() {
    let mb: u64 = std::env::var("VEDFOLNIR_BENCH_AUDIT_MB")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(165);
    let dir = tempfile::tempdir().unwrap();
    let records = vedfolnir_autoscaler::bench::write_audit_log(dir.path(), "web", mb << 20);
    let size = std::fs::metadata(dir.path().join("audit.jsonl"))
        .unwrap()
        .len();
    println!(
        "audit log: {:.0} MB, {records} records (about 2 kB each), 90% of them the service's\n",
        size as f64 / 1e6
    );
    println!("| read | time (ms) | resident set rose (MB) | found |");
    println!("|---|---|---|---|");
    let (t_all, m_all, n_all) =
        measure(|| vedfolnir_autoscaler::bench::read_audit_records(dir.path(), "web"));
    println!(
        "| every record, whole (before) | {:.1} | {:.1} | {n_all} records |",
        t_all.as_secs_f64() * 1e3,
        m_all as f64 / 1e6
    );
    let (t_sum, m_sum, open) =
        measure(|| vedfolnir_autoscaler::bench::read_audit_summary(dir.path(), "web"));
    println!(
        "| the summary (now) | {:.1} | {:.3} | {open} interrupted |",
        t_sum.as_secs_f64() * 1e3,
        m_sum as f64 / 1e6
    );
    println!(
        "\nsummary / whole: time {:.2}, memory {:.4}",
        t_sum.as_secs_f64() / t_all.as_secs_f64(),
        m_sum as f64 / m_all as f64
    );
    assert_eq!(open, 1, "the one scale left open at the end");
}
