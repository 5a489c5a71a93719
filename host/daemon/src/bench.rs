//! The internals the benches in `tests/bench_*.rs` time directly (see
//! BENCHMARKS.md), where the whole binary would measure something else.

use std::io::Write as _;
use std::path::Path;

use vedfolnir_core::model::Direction;

use crate::actuators::{ScalePlan, ScaleReport};
use crate::audit::{Actor, AuditLog, AuditRecord, Event};

/// Write an `audit.jsonl` of about `bytes` into `dir` for `service`, as a
/// long-lived daemon leaves it: pairs of `scale-started` and
/// `scale-finished` records with the policy's reasons and inputs (about
/// 2 kB each), a `held` record after each pair, every tenth triple another
/// service's, and one scale left interrupted at the end. Returns the
/// records written.
pub fn write_audit_log(dir: &Path, service: &str, bytes: u64) -> usize {
    let path = AuditLog::in_dir(dir).path().to_path_buf();
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).expect("create the log"));
    let reasons: Vec<String> = (0..12)
        .map(|i| format!("cpu-tracking {i}: cpu 0.712 against target 0.600 per replica (x1.19); mean demand 5.93 replicas over 2m, sized for 6.41"))
        .collect();
    let inputs: std::collections::BTreeMap<String, serde_json::Value> = [
        "cpu",
        "memory",
        "queue-depth",
        "response-time-p95",
        "error-rate",
        "instance-count",
    ]
    .iter()
    .map(|s| {
        (
            (*s).to_string(),
            serde_json::json!({ "value": 0.4321, "age_ms": 1500, "samples": 240 }),
        )
    })
    .collect();
    let (mut written, mut n) = (0u64, 0usize);
    while written < bytes {
        let at = 1_700_000_000_000 + n as i64 * 60_000;
        let who = if (n / 3) % 10 == 9 { "other" } else { service };
        let event = match n % 3 {
            0 => Event::ScaleStarted,
            1 => Event::ScaleFinished,
            _ => Event::Held,
        };
        let mut r = AuditRecord {
            direction: if n % 6 < 3 {
                Direction::Up
            } else {
                Direction::Down
            },
            from: 4,
            to: 5,
            reasons: reasons.clone(),
            inputs: inputs.clone(),
            ..AuditRecord::new(who, event, Actor::Auto, at)
        };
        // A finish closes the start written just before it.
        r.action_id = format!("{who}-{}", n - n % 3);
        match event {
            Event::ScaleStarted => r.plan = Some(ScalePlan::counts(4, 5)),
            Event::ScaleFinished => r.report = Some(ScaleReport::new(4, 5)),
            _ => {}
        }
        let mut line = serde_json::to_vec(&r).expect("records serialize");
        line.push(b'\n');
        out.write_all(&line).expect("write the log");
        written += line.len() as u64;
        n += 1;
    }
    let open = AuditRecord {
        direction: Direction::Up,
        plan: Some(ScalePlan::counts(4, 6)),
        ..AuditRecord::new(service, Event::ScaleStarted, Actor::Auto, 1_800_000_000_000)
    };
    let mut line = serde_json::to_vec(&open).expect("records serialize");
    line.push(b'\n');
    out.write_all(&line).expect("write the log");
    out.flush().expect("write the log");
    n + 1
}

/// What starting read of the log before [`crate::audit::Summary`]: every
/// record of `service`, parsed whole. Returns how many.
pub fn read_audit_records(dir: &Path, service: &str) -> usize {
    AuditLog::in_dir(dir)
        .records(service)
        .expect("read the log")
        .len()
}

/// What starting reads of the log now (reconciliation, `report`).
/// Returns how many scales it finds interrupted.
pub fn read_audit_summary(dir: &Path, service: &str) -> usize {
    AuditLog::in_dir(dir)
        .summary(service)
        .expect("read the log")
        .interrupted
        .len()
}
