//! One scale, recorded before and after: the intent, with the actuator's
//! plan (the containers it will create or stop), goes to the audit log
//! before the engine is changed, the outcome after, so a crash mid-scale
//! leaves an intent without an outcome that says what it set out to do
//! ([`super::reconcile`] finds it and judges it by that).

use std::collections::BTreeMap;

use vedfolnir_core::guard::GuardReason;
use vedfolnir_core::model::{Direction, TimestampMs};

use super::{Context, PassError};
use crate::actuators::ScaleReport;
use crate::audit::{Actor, AuditRecord, Event, PluginRecord, Scores};
use crate::telemetry;

/// What a scale is to do, and why: written to the audit before it runs.
#[derive(Debug, Clone)]
pub struct Intent {
    /// Who asked.
    pub actor: Actor,
    /// Which way.
    pub direction: Direction,
    /// Running replicas before.
    pub from: u32,
    /// The target.
    pub to: u32,
    /// Why, in words.
    pub reasons: Vec<String>,
    /// The guard rails' interventions, structured.
    pub guard: Vec<GuardReason>,
    /// The deciding plugin (automatic scales).
    pub plugin: Option<PluginRecord>,
    /// Its scores.
    pub scores: Option<Scores>,
    /// The inputs that mattered.
    pub inputs: BTreeMap<String, serde_json::Value>,
    /// The API request it carries out (its audit id), if any.
    pub request: Option<String>,
}

impl Intent {
    /// The audit record of this intent as `event`, at `now`.
    pub fn record(
        &self,
        service: &str,
        event: Event,
        dry_run: bool,
        now: TimestampMs,
    ) -> AuditRecord {
        AuditRecord {
            dry_run,
            direction: self.direction,
            from: self.from,
            to: self.to,
            reasons: self.reasons.clone(),
            guard: self.guard.clone(),
            plugin: self.plugin.clone(),
            scores: self.scores,
            inputs: self.inputs.clone(),
            request: self.request.clone(),
            ..AuditRecord::new(service, event, self.actor, now)
        }
    }
}

/// What a finished scale leaves for the state file: its cooldown starts
/// at `at` when the count moved.
#[derive(Debug, Clone)]
pub struct Acted {
    /// What the actuator did.
    pub report: ScaleReport,
    /// When the outcome was recorded.
    pub at: TimestampMs,
}

/// Plan the scale, audit the intent with its plan, scale, audit the
/// outcome. The caller starts the cooldown (in the one state write of its
/// pass) when the count moved.
pub async fn act(cx: &Context<'_>, service: &str, intent: &Intent) -> Result<Acted, PassError> {
    let plan = cx.actuator.plan(intent.to).await?;
    let started_at = cx.clock.now_ms();
    let mut record = intent.record(service, Event::ScaleStarted, false, started_at);
    record.plan = Some(plan.clone());
    // Recorded before the engine is changed: a crash mid-scale leaves a
    // started record, with what it set out to do, without its finish.
    cx.audit.append(&record)?;
    let report = match cx.actuator.scale(&plan, &record.action_id).await {
        Ok(r) => r,
        Err(e) => {
            let mut r = ScaleReport::new(intent.from, intent.to);
            r.error = Some(crate::errors::chain(&e));
            r.duration_ms = (cx.clock.now_ms() - started_at).max(0) as u64;
            // The count may still have moved (a replica died meanwhile):
            // record what the engine shows now.
            if let Ok(o) = cx.actuator.status().await {
                r.reached = o.running;
            }
            r
        }
    };
    record.time_ms = cx.clock.now_ms();
    record.event = Event::ScaleFinished;
    record.plan = None;
    record.report = Some(report.clone());
    cx.audit.append(&record)?;
    cx.telemetry.emit(telemetry::Event::Acted {
        service,
        direction: intent.direction,
        outcome: report.outcome,
    });
    Ok(Acted {
        report,
        at: record.time_ms,
    })
}
