//! Where the decision is made: one pass over one service, as a pipeline
//! with plain data between its stages.
//!
//! ```text
//!   observe   actuator.status()                 -> Observed (replicas)
//!   collect   sources, sample history            -> Collected (windows)
//!   evaluate  the policy's code (an Evaluator:   -> Advised (on a blocking
//!             the plugin in its sandbox)            thread, never on an
//!                                                   async worker)
//!   guard     the guard rails' rules in order    -> Judged (what happens)
//!   plan      act, announce, or stay quiet       -> Plan
//!   act       audit intent, scale, audit outcome -> Acted
//!   record    a shadow's divergence audited when -> Pass
//!             it starts or changes; the state
//!             file, written once
//! ```
//!
//! Every shell drives the same functions: `check` (cron) and the daemon's
//! loop call [`pass`]; `scale-up`, `scale-down` and the API call
//! [`manual::scale`]; both call [`reconcile::reconcile`] before their first
//! action; pause, resume and reset are [`operator`]'s. The controller
//! works through the [`Actuator`] and
//! [`MetricSource`](crate::sources::MetricSource) traits and takes its time
//! from a [`Clock`], so its unit tests use in-memory fakes and a manual
//! clock.

pub mod action;
pub mod manual;
pub mod operator;
pub mod reconcile;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use vedfolnir_core::guard::GuardState;
use vedfolnir_core::model::{PolicyInput, SignalWindow, TimestampMs};

use crate::actuators::{Actuator, Observed, ScaleReport};
use crate::audit::{Actor, Audit, AuditError, Event, PluginRecord};
use crate::clock::{Clock, Stopwatch};
use crate::engine::EngineError;
use crate::policy::{Evaluation, Outcome, ReadyPolicy};
use crate::sources::{self, Collected, Sources};
use crate::state::{HELD_REPEAT_MS, HeldSince, LastDecision, ServiceState, StateError, Store};
use crate::telemetry::{self, Stage, Telemetry, Timings};
use action::{Acted, Intent};

/// Signal samples older than this are dropped from the history unless the
/// policy asks for more; it exceeds the longest documented window (15 min)
/// with room to spare.
pub const HISTORY_RETENTION_MS: u64 = 60 * 60 * 1000;

/// Evaluations running at once, over every service: each holds a blocking
/// thread for up to its deadline.
pub const MAX_CONCURRENT_EVALUATIONS: usize = 4;

static EVALUATIONS: tokio::sync::Semaphore =
    tokio::sync::Semaphore::const_new(MAX_CONCURRENT_EVALUATIONS);

/// What a pass works with: the seams, and whether it may act.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// What scales the target.
    pub actuator: &'a dyn Actuator,
    /// Where signals come from.
    pub sources: &'a Sources,
    /// Where actions are recorded.
    pub audit: &'a dyn Audit,
    /// Cooldowns, histories.
    pub state: &'a dyn Store,
    /// Where "now" comes from.
    pub clock: &'a dyn Clock,
    /// Logs and counts.
    pub telemetry: &'a Telemetry,
    /// Decide, audit and notify "would scale"; change nothing on the engine.
    pub dry_run: bool,
    /// Where the policy is evaluated.
    pub evaluate: Evaluate,
    /// This pass started more than [`LATE_AFTER`] of its interval after it
    /// was due (the daemon's loop; never for `check` or a replay).
    pub late: bool,
    /// Another daemon leads (it holds the lease of the Swarm targets; the
    /// words name it): the pass observes, collects and evaluates, so its
    /// windows are warm at a takeover, but changes and records nothing.
    pub standby: Option<&'a str>,
}

/// A pass that starts more than this share of its interval after it was
/// due is late: counted in `/metrics`, the status and `report`.
pub const LATE_AFTER: f64 = 0.1;

/// Whether a pass that started `late_by` after it was due is late, at
/// `interval`.
pub fn is_late(late_by: Duration, interval: Duration) -> bool {
    late_by.as_secs_f64() > interval.as_secs_f64() * LATE_AFTER
}

/// Why a pass (or an operator's action) stopped.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// The engine: listing or reading the target.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The audit log.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The state files.
    #[error(transparent)]
    State(#[from] StateError),
    /// The evaluation task (not the policy) failed: it panicked, or the
    /// evaluations' semaphore closed.
    #[error("the evaluation task failed")]
    Evaluation(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl PassError {
    /// What failed, for `/metrics`.
    pub fn stage(&self) -> Stage {
        match self {
            PassError::Engine(_) => Stage::Engine,
            PassError::Audit(_) => Stage::Audit,
            PassError::State(_) => Stage::State,
            PassError::Evaluation(_) => Stage::Evaluation,
        }
    }
}

/// What one pass saw, decided and did.
#[derive(Debug)]
pub struct Pass {
    /// The policy's input.
    pub input: PolicyInput,
    /// The plugin's answer and the guard rails' decision.
    pub evaluation: Evaluation,
    /// The shadow policy's, on the same input.
    pub shadow: Option<Evaluation>,
    /// What the sources said beside the signals (the docker usage, errors).
    pub collected: Collected,
    /// The scale, when one ran.
    pub report: Option<ScaleReport>,
    /// The decision as the state file keeps it.
    pub last: LastDecision,
    /// The guard rails' clocks after the pass (a scale it ran starts its
    /// cooldown), as its next pass will read them.
    pub guard: GuardState,
    /// How long each stage took.
    pub timings: Timings,
}

/// What the policy's code (and its shadow's) answered for one input.
#[derive(Debug)]
struct Advised {
    input: PolicyInput,
    outcome: Outcome,
    shadow: Option<Outcome>,
    elapsed: Duration,
}

/// The policy's evaluation of one input: its answer and the guard rails'
/// decision.
#[derive(Debug)]
struct Judged {
    input: PolicyInput,
    evaluation: Evaluation,
    shadow: Option<Evaluation>,
    elapsed: Duration,
}

/// What a decision leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Scale (live).
    Act,
    /// Audit without acting: a dry run's "would scale", or a hold worth a
    /// record (the policy or a source failed).
    Announce(Event),
    /// Nothing to record beyond the state.
    Quiet,
}

/// Where a pass evaluates its policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evaluate {
    /// On the blocking pool, so a policy spinning to its deadline never
    /// holds an async worker that other services' I/O needs (the daemon,
    /// the commands).
    OffThread,
    /// On the calling thread: a replay, which has nothing else to run.
    Inline,
}

/// One pass: observe, collect, evaluate, plan, act, record.
pub async fn pass(cx: &Context<'_>, policy: &Arc<ReadyPolicy>) -> Result<Pass, PassError> {
    let service = policy.file.service.as_str();
    let mut timings = Timings::default();
    let mut watch = Stopwatch::start();
    // observe
    let observed = cx.actuator.status().await?;
    if cx.standby.is_none() {
        reconcile::sweep(cx, service, &observed.replicas).await?;
    }
    timings.observe = watch.lap();
    let now = cx.clock.now_ms();
    let mut state = cx.state.state(service, now)?;
    // collect
    let mut collected = collect(cx, policy, &observed, now, Save::Yes).await?;
    timings.collect = watch.lap();
    let guard = guard_of(&state, &observed, cx.dry_run);
    let windows = std::mem::take(&mut collected.windows);
    let input = input_for(policy, &guard, &observed, windows, now);
    // evaluate, then guard
    let advised = evaluate(cx.evaluate, policy, input).await?;
    let judged = judge(policy, advised, &guard);
    cx.telemetry.emit(telemetry::Event::Evaluated {
        service,
        input: &judged.input,
        evaluation: &judged.evaluation,
        shadow: judged.shadow.as_ref(),
        elapsed: judged.elapsed,
        dry_run: cx.dry_run,
    });
    timings.evaluate = watch.lap();
    // plan
    let held = (!judged.evaluation.decision.is_scale())
        .then(|| held_cause(&judged, &collected))
        .flatten();
    let planned = match cx.standby {
        Some(_) => Plan::Quiet,
        None => plan(cx.dry_run, &judged, &state, held.as_deref(), now),
    };
    let note = track_hold(
        &mut state,
        held,
        planned == Plan::Announce(Event::Held),
        now,
    );
    // act
    let report = carry_out(cx, policy, planned, &judged, &mut state, note).await?;
    timings.act = watch.lap();
    // record
    record_divergence(cx, policy, &judged, &mut state);
    let last = last_decision(&judged.evaluation, report.as_ref(), cx.dry_run, now);
    state.last_decision = Some(last.clone());
    state
        .pace
        .record(timings.total(), timings.slowest(), cx.late);
    cx.state.save(service, &state)?;
    timings.record = watch.lap();
    Ok(Pass {
        input: judged.input,
        evaluation: judged.evaluation,
        shadow: judged.shadow,
        collected,
        report,
        last,
        guard: guard_of(&state, &observed, cx.dry_run),
        timings,
    })
}

/// The act stage: scale (its intent and outcome audited, a move starting
/// the cooldown), or audit what was announced, or nothing.
async fn carry_out(
    cx: &Context<'_>,
    policy: &ReadyPolicy,
    planned: Plan,
    judged: &Judged,
    state: &mut ServiceState,
    note: Option<String>,
) -> Result<Option<ScaleReport>, PassError> {
    let service = policy.file.service.as_str();
    let direction = judged.evaluation.decision.direction;
    let now = judged.input.now;
    match planned {
        Plan::Act => {
            let intent = intent_of(policy, judged);
            let Acted { report, at } = action::act(cx, service, &intent).await?;
            if report.moved() {
                state.record_scale(direction, at, false);
            }
            Ok(Some(report))
        }
        Plan::Announce(event) => {
            let mut intent = intent_of(policy, judged);
            intent.reasons.extend(note);
            cx.audit
                .append(&intent.record(service, event, cx.dry_run, now))?;
            if event == Event::WouldScale {
                state.record_scale(direction, now, true);
            }
            Ok(None)
        }
        Plan::Quiet => Ok(None),
    }
}

impl Pass {
    /// Whether the shadow policy decided otherwise than the live one.
    pub fn diverged(&self) -> bool {
        self.shadow
            .as_ref()
            .is_some_and(|sh| self.evaluation.diverges(sh))
    }
}

/// Audit a shadow policy's divergence from the live one when it starts or
/// changes (not on every pass it lasts; a standby records nothing). A
/// record that cannot be written is logged: it changes no decision.
fn record_divergence(
    cx: &Context<'_>,
    policy: &ReadyPolicy,
    judged: &Judged,
    state: &mut ServiceState,
) {
    let Some(sh) = judged
        .shadow
        .as_ref()
        .filter(|sh| judged.evaluation.diverges(sh))
    else {
        state.diverging = None;
        return;
    };
    let live = &judged.evaluation.decision;
    let decisions = (
        format!("{} to {}", live.direction, live.target),
        format!("{} to {}", sh.decision.direction, sh.decision.target),
    );
    if cx.standby.is_some() || state.diverging.as_ref() == Some(&decisions) {
        return;
    }
    let shadow_plugin = policy.shadow.as_ref().map(|s| s.plugin.id());
    let mut reasons = vec![format!(
        "live {} decides {}; shadow {} decides {}",
        policy.plugin.id(),
        decisions.0,
        shadow_plugin.map(ToString::to_string).unwrap_or_default(),
        decisions.1
    )];
    reasons.extend(sh.reasons().into_iter().map(|r| format!("shadow {r}")));
    let input = &judged.input;
    let record = crate::audit::AuditRecord {
        dry_run: cx.dry_run,
        direction: sh.decision.direction,
        from: input.current_replicas,
        to: sh.decision.target,
        reasons,
        plugin: shadow_plugin.map(|id| PluginRecord::from(&**id)),
        scores: sh.scores(),
        inputs: inputs_of(input),
        ..crate::audit::AuditRecord::new(
            &policy.file.service,
            Event::ShadowDiverged,
            Actor::Auto,
            input.now,
        )
    };
    if let Err(e) = cx.audit.append(&record) {
        tracing::error!(error = %format!("{e:#}"), "cannot audit a shadow divergence");
    }
    state.diverging = Some(decisions);
}

/// The guard rails' clocks: the state file's, and for a live Swarm target
/// the later of each and what the last scale wrote on the service
/// (whichever daemon led then), so a new leader honours the old one's
/// cooldowns.
fn guard_of(state: &ServiceState, observed: &Observed, dry_run: bool) -> GuardState {
    let mut guard = state.guard(dry_run);
    if let Some(m) = observed.marks.as_ref().filter(|_| !dry_run) {
        guard.last_scale_up = guard.last_scale_up.max(m.last_scale_up);
        guard.last_scale_down = guard.last_scale_down.max(m.last_scale_down);
    }
    guard
}

/// The decision as the state file keeps it.
fn last_decision(
    evaluation: &Evaluation,
    report: Option<&ScaleReport>,
    dry_run: bool,
    now: TimestampMs,
) -> LastDecision {
    let d = &evaluation.decision;
    LastDecision {
        time_ms: now,
        direction: d.direction,
        from: d.current,
        to: report.map(|r| r.reached).unwrap_or(d.target),
        actor: Actor::Auto,
        dry_run,
        summary: evaluation.summary(),
    }
}

/// What `report` shows: a pass's observe, collect and evaluate stages on
/// the live clocks, with nothing saved, audited or done.
#[derive(Debug)]
pub struct Look {
    /// The target's replicas.
    pub observed: Observed,
    /// The signals and the sources' notes.
    pub collected: Collected,
    /// The policy's evaluation.
    pub evaluation: Evaluation,
}

/// Look without acting: see [`Look`].
pub async fn look(cx: &Context<'_>, policy: &Arc<ReadyPolicy>) -> Result<Look, PassError> {
    let observed = cx.actuator.status().await?;
    let now = cx.clock.now_ms();
    let guard = cx.state.state(&policy.file.service, now)?.guard(false);
    let collected = collect(cx, policy, &observed, now, Save::No).await?;
    let input = input_for(policy, &guard, &observed, collected.windows.clone(), now);
    let advised = evaluate(cx.evaluate, policy, input).await?;
    let judged = judge(policy, advised, &guard);
    Ok(Look {
        observed,
        collected,
        evaluation: judged.evaluation,
    })
}

/// Whether a stage keeps what it read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Save {
    Yes,
    No,
}

/// Read the sources into windows, keeping the sample history on disk
/// (unless only looking).
async fn collect(
    cx: &Context<'_>,
    policy: &ReadyPolicy,
    observed: &Observed,
    now: TimestampMs,
    save: Save,
) -> Result<Collected, PassError> {
    let service = policy.file.service.as_str();
    let span = policy.history_span_ms;
    let read = sources::read(cx.sources, &policy.file, observed, now, span).await;
    if !read.needs_history() {
        return Ok(read.without_history());
    }
    let mut history = cx.state.history(service)?;
    let collected = read.window(&mut history, now, span.max(HISTORY_RETENTION_MS));
    if save == Save::Yes {
        cx.state.save_history(service, &history)?;
        // The minutes are for replays, not for deciding: a failure to keep
        // them is logged, and the pass goes on.
        if let Err(e) = cx.state.record_minutes(service, &history, now) {
            tracing::warn!(service, error = %crate::errors::chain(&e), "cannot keep the minute record");
        }
    }
    Ok(collected)
}

/// Evaluate the live and the shadow policy on a blocking thread (a policy
/// may spin to its deadline; an async worker must not wait for it), at
/// most [`MAX_CONCURRENT_EVALUATIONS`] at once.
async fn evaluate(
    how: Evaluate,
    policy: &Arc<ReadyPolicy>,
    input: PolicyInput,
) -> Result<Advised, PassError> {
    let advise = move |policy: &ReadyPolicy| {
        let watch = Stopwatch::start();
        let outcome = policy.advise(&input);
        let elapsed = watch.elapsed();
        let shadow = policy.advise_shadow(&input);
        Advised {
            input,
            outcome,
            shadow,
            elapsed,
        }
    };
    if how == Evaluate::Inline {
        return Ok(advise(policy));
    }
    let _permit = EVALUATIONS
        .acquire()
        .await
        .map_err(|e| PassError::Evaluation(Box::new(e)))?;
    let policy = policy.clone();
    tokio::task::spawn_blocking(move || advise(&policy))
        .await
        .map_err(|e| PassError::Evaluation(Box::new(e)))
}

/// The guard stage: the guard rails' rules, in order, on the policy's
/// answer and on its shadow's (`vedfolnir_core::guard::decide`).
fn judge(policy: &ReadyPolicy, advised: Advised, guard: &GuardState) -> Judged {
    let Advised {
        input,
        outcome,
        shadow,
        elapsed,
    } = advised;
    let evaluation = policy.guard(&input, guard, outcome);
    let shadow = shadow.and_then(|o| policy.guard_shadow(&input, guard, o));
    Judged {
        input,
        evaluation,
        shadow,
        elapsed,
    }
}

/// What a decision leads to. A dry run announces a "would scale" once: the
/// same would-scale as the last decision (a bound restored repeats every
/// pass, since nothing moves) is not announced again. A hold is recorded
/// when the policy or a source failed (`held`, its [`held_cause`]): when
/// that begins or what fails changes, and again every [`HELD_REPEAT_MS`]
/// while it lasts.
fn plan(
    dry_run: bool,
    judged: &Judged,
    state: &ServiceState,
    held: Option<&str>,
    now: TimestampMs,
) -> Plan {
    let d = &judged.evaluation.decision;
    if d.is_scale() && !dry_run {
        return Plan::Act;
    }
    if d.is_scale() {
        let repeated = state.last_decision.as_ref().is_some_and(|l| {
            l.dry_run && (l.direction, l.from, l.to) == (d.direction, d.current, d.target)
        });
        return if repeated {
            Plan::Quiet
        } else {
            Plan::Announce(Event::WouldScale)
        };
    }
    let Some(cause) = held else {
        return Plan::Quiet;
    };
    let repeated = state
        .held
        .as_ref()
        .is_some_and(|h| h.cause == cause && now - h.recorded_ms < HELD_REPEAT_MS);
    if repeated {
        Plan::Quiet
    } else {
        Plan::Announce(Event::Held)
    }
}

/// What a hold is on, when the policy or a source failed: the policy's
/// failure kind and each source and signal that failed (not their
/// messages, which carry ages that change every pass).
fn held_cause(judged: &Judged, collected: &Collected) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    if let Some(f) = &judged.evaluation.failure {
        parts.push(format!("policy {}", f.kind.as_str()));
    }
    for (kind, signal) in &collected.failed {
        parts.push(format!("{} {signal}", kind.name()));
    }
    if parts.is_empty() && !collected.errors.is_empty() {
        parts.push("a source".into());
    }
    parts.sort();
    parts.dedup();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// Keep the hold in progress in the state: begun, recorded (with how long
/// the same cause has held and the passes not recorded since), counted,
/// or over.
fn track_hold(
    state: &mut ServiceState,
    cause: Option<String>,
    recorded: bool,
    now: TimestampMs,
) -> Option<String> {
    let Some(cause) = cause else {
        state.held = None;
        return None;
    };
    let same = state.held.take().filter(|h| h.cause == cause);
    if !recorded {
        state.held = Some(match same {
            Some(h) => HeldSince {
                unrecorded: h.unrecorded + 1,
                ..h
            },
            None => HeldSince {
                cause,
                since_ms: now,
                recorded_ms: now,
                unrecorded: 0,
            },
        });
        return None;
    }
    let note = same.as_ref().map(|h| {
        format!(
            "held on {} for {} ({} passes since the last record of it)",
            h.cause,
            vedfolnir_core::format_elapsed((now - h.since_ms).max(0) as u64),
            h.unrecorded
        )
    });
    state.held = Some(HeldSince {
        since_ms: same.map_or(now, |h| h.since_ms),
        cause,
        recorded_ms: now,
        unrecorded: 0,
    });
    note
}

/// What an automatic decision records: the plugin, its scores and
/// reasons, the guard rails' interventions, the inputs that mattered.
fn intent_of(policy: &ReadyPolicy, judged: &Judged) -> Intent {
    let d = &judged.evaluation.decision;
    Intent {
        actor: Actor::Auto,
        direction: d.direction,
        from: d.current,
        to: d.target,
        reasons: judged.evaluation.reasons(),
        guard: d.reasons.clone(),
        plugin: Some(PluginRecord::from(&**policy.plugin.id())),
        scores: judged.evaluation.scores(),
        inputs: inputs_of(&judged.input),
        request: None,
    }
}

fn input_for(
    policy: &ReadyPolicy,
    state: &GuardState,
    observed: &Observed,
    signals: Vec<SignalWindow>,
    now: TimestampMs,
) -> PolicyInput {
    PolicyInput {
        service: policy.file.service.clone(),
        now,
        current_replicas: observed.running,
        ready_replicas: observed.ready.min(observed.running),
        min_replicas: policy.file.guard.min_replicas,
        max_replicas: policy.file.guard.max_replicas,
        since_last_scale_up: state.since_last_scale_up(now),
        since_last_scale_down: state.since_last_scale_down(now),
        params: policy.params.clone(),
        signals,
    }
}

/// The inputs that mattered: each signal's newest value (or why it is
/// missing) and the replica counts.
pub fn inputs_of(input: &PolicyInput) -> BTreeMap<String, serde_json::Value> {
    let mut out = signals_of(input);
    out.insert("replicas".into(), input.current_replicas.into());
    out.insert("ready".into(), input.ready_replicas.into());
    out
}

/// Each signal's newest value, or why it is missing.
pub fn signals_of(input: &PolicyInput) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    for w in &input.signals {
        let v = match w.current() {
            Ok(value) => serde_json::json!(value),
            Err(why) => serde_json::json!({ "missing": why }),
        };
        out.insert(w.signal.to_string(), v);
    }
    out
}

#[cfg(test)]
mod tests;
