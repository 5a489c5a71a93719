//! Interrupted scales and what they leave behind.
//!
//! An intent in the audit log without its outcome (the process died
//! mid-scale) is finished by [`reconcile`]: judged by what that scale did,
//! from the plan its intent recorded (the containers it created carry its
//! action id; those it was to stop are named), its half-made containers
//! removed, the outcome recorded once, and its cooldown started when the
//! count moved. An API request the daemon stopped under before answering
//! is closed with what became of it. [`sweep`] removes the autoscaler's own replicas that will
//! not run again (created and never started, or stopped and not removed),
//! at reconciliation and at every pass.

use super::{Context, PassError};
use crate::actuators::{ScalePlan, ScaleReport};
use crate::audit::{Actor, AuditRecord, Event};
use crate::engine::Replica;

/// Finish every interrupted scale of `service`, then sweep; returns the
/// finished records written. A dry run judges and returns the same
/// records but writes none, removes nothing and starts no cooldown: it
/// leaves the scale open for a real run to finish.
pub async fn reconcile(cx: &Context<'_>, service: &str) -> Result<Vec<AuditRecord>, PassError> {
    let open = cx.audit.summary(service)?;
    let mut out = Vec::new();
    for started in &open.interrupted {
        let report = match &started.plan {
            Some(plan) => {
                cx.actuator
                    .settle(plan, &started.action_id, !cx.dry_run)
                    .await?
            }
            // Written before intents carried a plan: only the count is left.
            None => {
                let running = cx.actuator.status().await?.running;
                ScaleReport::judged_by_count(&ScalePlan::counts(started.from, started.to), running)
            }
        };
        let now = cx.clock.now_ms();
        let report = ScaleReport {
            duration_ms: (now - started.time_ms).max(0) as u64,
            ..report
        };
        let mut finished = started.clone();
        finished.time_ms = now;
        finished.event = Event::ScaleFinished;
        finished.plan = None;
        finished.report = Some(report.clone());
        if cx.dry_run {
            finished.dry_run = true;
            finished
                .reasons
                .push("judged by a dry run: left open for a real run to finish".into());
            out.push(finished);
            continue;
        }
        finished.reasons.push("reconciled at start".into());
        cx.audit.append(&finished)?;
        if report.moved() {
            // Conservative: the cooldown starts at the reconciliation.
            crate::state::update(cx.state, service, now, |s| {
                s.record_scale(started.direction, now, false)
            })?;
        }
        out.push(finished);
    }
    for (request, carried_out) in &open.unanswered {
        let mut record = unanswered(request, carried_out.as_ref(), cx.clock.now_ms());
        if cx.dry_run {
            record.dry_run = true;
        } else {
            cx.audit.append(&record)?;
        }
        out.push(record);
    }
    let observed = cx.actuator.status().await?;
    sweep(cx, service, &observed.replicas).await?;
    Ok(out)
}

/// One line for a record [`reconcile`] wrote.
pub fn describe(r: &AuditRecord) -> String {
    match &r.report {
        Some(rep) if r.dry_run => format!(
            "an interrupted scale {} -> {} ({}) looks {:?}, {} running; a dry run leaves it open for a real run to finish",
            r.from, r.to, r.action_id, rep.outcome, rep.reached
        ),
        Some(rep) => format!(
            "reconciled an interrupted scale {} -> {} ({}): {:?}, {} running",
            r.from, r.to, r.action_id, rep.outcome, rep.reached
        ),
        None => format!(
            "an unanswered API request ({}): {}",
            r.action_id,
            r.reasons.join("; ")
        ),
    }
}

/// The record that closes an API request the daemon stopped under: what
/// became of it, judged by the API's records that followed it.
fn unanswered(request: &AuditRecord, acted: Option<&AuditRecord>, now: i64) -> AuditRecord {
    let what = request
        .reasons
        .first()
        .map(String::as_str)
        .unwrap_or("a request");
    let fate = match acted {
        Some(r) if r.event == Event::ScaleStarted => format!(
            "{what}: the daemon stopped before answering; it started scale {} (its outcome is recorded under that id)",
            r.action_id
        ),
        Some(r) => format!(
            "{what}: the daemon stopped before answering; it was carried out ({:?})",
            r.event
        ),
        None => format!(
            "{what}: the daemon stopped before answering and it was not carried out; send it again"
        ),
    };
    AuditRecord {
        event: Event::Unanswered,
        time_ms: now,
        reasons: vec![fate],
        ..request.clone()
    }
}

/// Remove the autoscaler's abandoned replicas among `replicas`
/// ([`Replica::is_abandoned`]) and audit what was removed. Called by
/// whoever holds the service's lock, after reconciling, so no scale of
/// its own is in flight. A dry run changes nothing.
pub async fn sweep(
    cx: &Context<'_>,
    service: &str,
    replicas: &[Replica],
) -> Result<Vec<String>, PassError> {
    let abandoned: Vec<Replica> = replicas
        .iter()
        .filter(|r| r.is_abandoned())
        .cloned()
        .collect();
    if abandoned.is_empty() || cx.dry_run {
        return Ok(Vec::new());
    }
    let mut removed = Vec::new();
    let mut reasons = Vec::new();
    for (name, result) in cx.actuator.remove_abandoned(&abandoned).await {
        let state = abandoned
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.state.as_str())
            .unwrap_or_default();
        match result {
            Ok(()) => {
                reasons.push(format!(
                    "removed {name}: created by the autoscaler, {state}, not running"
                ));
                removed.push(name);
            }
            Err(e) => {
                tracing::warn!(service = %service, replica = %name, "cannot remove an abandoned replica: {}", crate::errors::chain(&e))
            }
        }
    }
    if !removed.is_empty() {
        let running = replicas.iter().filter(|r| r.is_running()).count() as u32;
        let record = AuditRecord {
            from: running,
            to: running,
            reasons,
            ..AuditRecord::new(
                service,
                Event::AbandonedRemoved,
                Actor::Auto,
                cx.clock.now_ms(),
            )
        };
        cx.audit.append(&record)?;
    }
    Ok(removed)
}
