//! Interrupted scales: an intent in the audit log without its outcome (the
//! process died mid-scale) is finished against what the engine shows now,
//! recorded once, and its cooldown started when the count moved.

use super::{Context, PassError};
use crate::actuators::{Outcome, ScaleReport};
use crate::audit::{self, AuditRecord, Event};
use crate::clock::format_time;

/// Finish every interrupted scale of `service`; returns the records written.
pub async fn reconcile(cx: &Context<'_>, service: &str) -> Result<Vec<AuditRecord>, PassError> {
    let records = cx.audit.records(service)?;
    let pending = audit::interrupted(&records);
    let mut out = Vec::new();
    if pending.is_empty() {
        return Ok(out);
    }
    let reached = cx.actuator.status().await?.running;
    for started in pending {
        let now = cx.clock.now_ms();
        let report = ScaleReport {
            reached,
            outcome: outcome(started.from, started.to, reached),
            error: Some(format!(
                "interrupted: the process stopped mid-scale; reconciled at start ({}), the engine shows {reached} running",
                format_time(now)
            )),
            duration_ms: (now - started.time_ms).max(0) as u64,
            ..ScaleReport::new(started.from, started.to)
        };
        let mut finished = started.clone();
        finished.time_ms = now;
        finished.event = Event::ScaleFinished;
        finished.reasons.push("reconciled at start".into());
        finished.report = Some(report.clone());
        cx.audit.append(&finished)?;
        if report.moved() {
            // Conservative: the cooldown starts at the reconciliation.
            crate::state::update(cx.state, service, now, |s| {
                s.record_scale(started.direction, now, false)
            })?;
        }
        out.push(finished);
    }
    Ok(out)
}

/// How an interrupted scale from `from` to `to` ended, judged by the count
/// the engine shows now.
fn outcome(from: u32, to: u32, reached: u32) -> Outcome {
    if reached == to {
        Outcome::Succeeded
    } else if reached != from && (reached > from) == (to > from) {
        Outcome::Partial
    } else {
        Outcome::Failed
    }
}
