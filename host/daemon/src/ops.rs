//! The commands that work on a real engine: `scale-up`, `scale-down`,
//! `health`, `report` and `check` (one collect-evaluate-guard-act pass, for
//! cron).
//!
//! Replica counts are always read from the engine, never from a counter of
//! our own; cooldowns start only when a scale moved the count; every scale
//! is audited before it touches the engine and after.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use vedfolnir_core::duration::format_duration;
use vedfolnir_core::guard::GuardState;
use vedfolnir_core::model::{Direction, PolicyInput, SignalId, SignalWindow, TimestampMs};

use crate::actuate::{self, Outcome, ScaleReport};
use crate::config::{Source, Target, TargetKind};
use crate::docker::{self, Engine, EngineError, Readiness, ServiceUsage};
use crate::metrics::{KindLabel, Metrics, OutcomeLabel, ServiceLabel};
use crate::policy::{Evaluation, ReadyPolicy};
use crate::store::{Actor, AuditRecord, Event, History, LastDecision, PluginRecord, Scores, Store};

/// Signal samples older than this are dropped from a `check` history
/// unless the policy asks for more; it exceeds the longest documented
/// window (15 min) with room to spare.
pub const HISTORY_RETENTION_MS: u64 = 60 * 60 * 1000;

/// The longest history a policy may ask for (a forecast's days): 8 days.
pub const MAX_HISTORY_MS: u64 = 8 * 24 * 60 * 60 * 1000;

/// A scale did not reach its target (exit code 7).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ScaleFailed(pub String);

/// A request the current state makes meaningless (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// `health` found something wrong (exit code 8).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unhealthy(pub String);

pub fn now_ms() -> TimestampMs {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A time as RFC 3339 UTC, to the second.
pub fn format_time(ms: TimestampMs) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn describe_target(t: &Target) -> String {
    match &t.kind {
        TargetKind::Compose { project } => {
            format!("compose service {} (project {project})", t.name)
        }
        TargetKind::Swarm => format!("swarm service {}", t.name),
    }
}

/// The replica count the engine shows, and whether the target exists.
async fn current(engine: &Engine, target: &Target) -> Result<u32, EngineError> {
    actuate::running(engine, target).await
}

/// Which way a manual scale goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manual {
    /// `scale-up`.
    Up,
    /// `scale-down`.
    Down,
}

/// `scale-up [N]` / `scale-down [N]`: N is the replica count wanted
/// (default: one more or one fewer), clamped to min/max with the clamp said.
pub fn manual_scale(
    policy: &ReadyPolicy,
    store: &Store,
    way: Manual,
    wanted: Option<u32>,
    json: bool,
) -> Result<ExitCode> {
    let _lock = store.lock(&policy.file.service)?;
    let rt = runtime()?;
    rt.block_on(async {
        let target = &policy.file.target;
        let engine = Engine::connect(target.docker_host.as_deref()).await?;
        let from = current(&engine, target).await?;
        let Some((direction, to, notes)) = manual_plan(policy, from, way, wanted)? else {
            println!(
                "{}: already at {from} replica(s); nothing to do",
                describe_target(target)
            );
            return Ok(ExitCode::SUCCESS);
        };
        for n in &notes {
            eprintln!("note: {n}");
        }
        let mut reasons = vec![format!("manual {direction} to {to}")];
        reasons.extend(notes);
        let report = act(
            &engine,
            policy,
            store,
            Intent::manual(Actor::Manual, direction, from, to, reasons),
        )
        .await?;
        print_report(&report, json);
        finish(&report)
    })
}

/// A manual request (`scale-up`/`scale-down` or the API): the target, the
/// direction and what the bounds changed, or `None` when there is nothing to
/// do. Manual scales are capped by the bounds like automatic ones.
pub fn manual_plan(
    policy: &ReadyPolicy,
    from: u32,
    way: Manual,
    wanted: Option<u32>,
) -> Result<Option<(Direction, u32, Vec<String>)>> {
    let target = &policy.file.target;
    let guard = &policy.file.guard;
    let mut to = match (way, wanted) {
        (_, Some(n)) => n,
        (Manual::Up, None) => from + 1,
        (Manual::Down, None) => from.saturating_sub(1),
    };
    let mut notes = Vec::new();
    match way {
        Manual::Up if to < from => {
            return Err(Refused(format!(
                "scale-up to {to}: {} already runs {from} replica(s); use scale-down",
                describe_target(target)
            ))
            .into());
        }
        Manual::Down if to > from => {
            return Err(Refused(format!(
                "scale-down to {to}: {} runs only {from} replica(s); use scale-up",
                describe_target(target)
            ))
            .into());
        }
        _ => {}
    }
    if to > guard.max_replicas {
        notes.push(format!(
            "{to} is above max_replicas {}: clamped to {}",
            guard.max_replicas, guard.max_replicas
        ));
        to = guard.max_replicas;
    }
    if to < guard.min_replicas {
        notes.push(format!(
            "{to} is below min_replicas {}: clamped to {}",
            guard.min_replicas, guard.min_replicas
        ));
        to = guard.min_replicas;
    }
    Ok(match to.cmp(&from) {
        std::cmp::Ordering::Greater => Some((Direction::Up, to, notes)),
        std::cmp::Ordering::Less => Some((Direction::Down, to, notes)),
        std::cmp::Ordering::Equal => None,
    })
}

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
    /// Why.
    pub reasons: Vec<String>,
    /// The deciding plugin (automatic scales).
    pub plugin: Option<PluginRecord>,
    /// Its scores.
    pub scores: Option<Scores>,
    /// The inputs that mattered.
    pub inputs: std::collections::BTreeMap<String, serde_json::Value>,
}

impl Intent {
    /// An operator's scale.
    pub fn manual(
        actor: Actor,
        direction: Direction,
        from: u32,
        to: u32,
        reasons: Vec<String>,
    ) -> Intent {
        Intent {
            actor,
            direction,
            from,
            to,
            reasons,
            plugin: None,
            scores: None,
            inputs: Default::default(),
        }
    }
}

/// Audit, scale, audit, and start the cooldown only if the count moved.
pub async fn act(
    engine: &Engine,
    policy: &ReadyPolicy,
    store: &Store,
    intent: Intent,
) -> Result<ScaleReport> {
    let service = &policy.file.service;
    let started_at = now_ms();
    let Intent {
        actor,
        direction,
        from,
        to,
        reasons,
        plugin,
        scores,
        inputs,
    } = intent;
    let mut record = AuditRecord {
        direction,
        from,
        to,
        reasons,
        plugin,
        scores,
        inputs,
        ..AuditRecord::new(service, Event::ScaleStarted, actor, started_at)
    };
    // Recorded before the engine is touched: a crash mid-scale leaves a
    // started record without its finish.
    store.audit(&record)?;
    let report = match actuate::scale(engine, &policy.file.target, &policy.file.rollout, to).await {
        Ok(r) => r,
        Err(e) => {
            let mut r = ScaleReport {
                from,
                to,
                reached: from,
                outcome: Outcome::Failed,
                created: vec![],
                removed: vec![],
                failed: vec![],
                error: Some(e.to_string()),
                duration_ms: (now_ms() - started_at).max(0) as u64,
            };
            // The count may still have moved (a replica died meanwhile):
            // record what the engine shows now.
            if let Ok(n) = current(engine, &policy.file.target).await {
                r.reached = n;
            }
            r
        }
    };
    record.time_ms = now_ms();
    record.event = Event::ScaleFinished;
    record.report = Some(report.clone());
    store.audit(&record)?;
    if report.moved() {
        store.record_scale(service, direction, record.time_ms)?;
    }
    Ok(report)
}

fn print_report(report: &ScaleReport, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).expect("reports serialize")
        );
        return;
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "scale {} -> {}: {:?}, {} replica(s) running ({})",
        report.from,
        report.to,
        report.outcome,
        report.reached,
        format_duration(report.duration_ms)
    );
    for c in &report.created {
        let _ = writeln!(out, "  created {c}");
    }
    for r in &report.removed {
        let _ = writeln!(out, "  removed {r}");
    }
    for f in &report.failed {
        let _ = writeln!(out, "  failed  {}: {}", f.name, f.reason);
    }
    if let Some(e) = &report.error {
        let _ = writeln!(out, "  error: {e}");
    }
    print!("{out}");
}

fn finish(report: &ScaleReport) -> Result<ExitCode> {
    match report.outcome {
        Outcome::Succeeded => Ok(ExitCode::SUCCESS),
        other => Err(ScaleFailed(format!(
            "the scale {} -> {} ended {other:?} at {} replica(s){}{}",
            report.from,
            report.to,
            report.reached,
            report
                .error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default(),
            if report.moved() {
                "; its cooldown started, since the count moved"
            } else {
                "; no cooldown recorded"
            }
        ))
        .into()),
    }
}

/// The span of history a policy needs: its longest duration parameter (its
/// windows, gaps and TTLs, a forecast's history) plus a minute, at least
/// five minutes, at most [`MAX_HISTORY_MS`].
pub fn history_span_ms(policy: &ReadyPolicy) -> u64 {
    let longest = vedfolnir_core::snapshot::effective_params(
        &policy.plugin.description().params,
        &policy.params,
    )
    .iter()
    .filter_map(|p| match p.value {
        vedfolnir_core::model::ParamValue::Duration(ms) => Some(ms),
        _ => None,
    })
    .max()
    .unwrap_or(0);
    (longest + 60_000).clamp(5 * 60_000, MAX_HISTORY_MS)
}

/// Where the non-docker sources are.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The Prometheus server, when one is configured.
    pub prometheus: Option<crate::prom::Prometheus>,
    /// Firing Alertmanager alerts, when the daemon's webhook receives them.
    pub alerts: Option<std::sync::Arc<crate::alerts::AlertBook>>,
}

/// The signals one pass collects: the `docker` source's (kept in the
/// sample history), and each Prometheus expression's window, read whole
/// from Prometheus (so the window is there at once, cron or restart).
async fn collect_signals(
    policy: &ReadyPolicy,
    sources: &Sources,
    usage: &ServiceUsage,
    history: &mut History,
    now: TimestampMs,
) -> Vec<SignalWindow> {
    let routed = |signal: &SignalId| {
        policy
            .file
            .signals
            .iter()
            .find(|s| &s.signal == signal)
            .map(|s| &s.source)
    };
    let mut fresh = Vec::new();
    for (signal, value) in [(SignalId::Cpu, usage.cpu), (SignalId::Memory, usage.memory)] {
        if matches!(routed(&signal), None | Some(Source::Docker))
            && let Some(v) = value
        {
            fresh.push((signal, v));
        }
    }
    fresh.push((SignalId::InstanceCount, f64::from(usage.running)));
    if let Some(n) = usage.oom_kills {
        fresh.push((SignalId::Custom("oom-kills".into()), f64::from(n)));
    }
    let retention = history_span_ms(policy).max(HISTORY_RETENTION_MS);
    history.push(now, &fresh, retention);

    let mut windows = Vec::new();
    for signal in [
        SignalId::Cpu,
        SignalId::Memory,
        SignalId::InstanceCount,
        SignalId::Custom("oom-kills".into()),
    ] {
        if !matches!(routed(&signal), None | Some(Source::Docker)) {
            continue;
        }
        let mut w = history.window(&signal);
        if !fresh.iter().any(|(s, _)| s == &signal) {
            w.missing_reason = Some(if usage.running == 0 {
                "no running replica to read stats from".into()
            } else {
                format!("docker stats unreadable: {}", usage.errors.join("; "))
            });
        }
        windows.push(w);
    }
    let span = history_span_ms(policy);
    let mut queries = Vec::new();
    for s in &policy.file.signals {
        match &s.source {
            Source::Docker => {}
            Source::Prometheus { query } => match &sources.prometheus {
                Some(p) => queries.push(p.window(&s.signal, query, now, span)),
                None => windows.push(SignalWindow {
                    signal: s.signal.clone(),
                    samples: vec![],
                    missing_reason: Some(format!(
                        "prometheus source ({query}): no Prometheus configured (PROMETHEUS_URL or --prometheus-url)"
                    )),
                }),
            },
            Source::Alertmanager => match &sources.alerts {
                Some(book) => {
                    history.push(
                        now,
                        &[(s.signal.clone(), book.value(&policy.file.service))],
                        retention,
                    );
                    windows.push(history.window(&s.signal));
                }
                None => windows.push(SignalWindow {
                    signal: s.signal.clone(),
                    samples: vec![],
                    missing_reason: Some(
                        "alertmanager source needs the daemon's webhook (run), not a one-shot pass"
                            .into(),
                    ),
                }),
            },
        }
    }
    let fetched = futures_util::future::join_all(queries).await;
    for w in &fetched {
        if let Some(reason) = &w.missing_reason {
            tracing::warn!(service = %policy.file.service, signal = %w.signal, reason = %reason, "signal missing");
        }
    }
    windows.extend(fetched);
    windows
}

fn input_for(
    policy: &ReadyPolicy,
    state: &GuardState,
    usage: &ServiceUsage,
    current: u32,
    signals: Vec<SignalWindow>,
    now: TimestampMs,
) -> PolicyInput {
    let since = |t: Option<TimestampMs>| t.map(|t| (now - t).max(0) as u64);
    PolicyInput {
        service: policy.file.service.clone(),
        now,
        current_replicas: current,
        ready_replicas: usage.ready.min(current),
        min_replicas: policy.file.guard.min_replicas,
        max_replicas: policy.file.guard.max_replicas,
        since_last_scale_up: since(state.last_scale_up),
        since_last_scale_down: since(state.last_scale_down),
        params: policy.params.clone(),
        signals,
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
    /// The `docker` source's readings.
    pub usage: ServiceUsage,
    /// The scale, when one ran.
    pub report: Option<ScaleReport>,
    /// The decision as the state file keeps it.
    pub last: LastDecision,
}

/// One pass: collect, evaluate, guard, act (unless `dry_run`), with the
/// daemon's metrics updated when given.
pub async fn pass(
    engine: &Engine,
    policy: &ReadyPolicy,
    sources: &Sources,
    store: &Store,
    dry_run: bool,
    metrics: Option<&Metrics>,
) -> Result<Pass> {
    let target = &policy.file.target;
    let service = &policy.file.service;
    let replicas = docker::replicas(engine, target).await?;
    let current = actuate::running_among(engine, target, &replicas).await?;
    let usage = docker::service_usage(engine, target, &replicas).await;
    let now = now_ms();
    let mut history = store.history(service)?;
    let signals = collect_signals(policy, sources, &usage, &mut history, now).await;
    store.save_history(service, &history)?;
    let state = store.state(service)?;
    let guard_state = state.guard(dry_run);
    let input = input_for(policy, &guard_state, &usage, current, signals, now);
    let started = std::time::Instant::now();
    let evaluation = policy.evaluate(&input, &guard_state);
    let elapsed = started.elapsed();
    let shadow = policy.evaluate_shadow(&input, &guard_state);
    let d = &evaluation.decision;
    let reasons = reasons_of(&evaluation);
    if let Some(m) = metrics {
        let label = ServiceLabel {
            service: service.clone(),
        };
        m.observe_signals(service, &input.signals);
        m.instance_count
            .get_or_create(&label)
            .set(f64::from(current));
        m.ready_replicas
            .get_or_create(&label)
            .set(f64::from(input.ready_replicas));
        m.evaluation_seconds
            .get_or_create(&label)
            .observe(elapsed.as_secs_f64());
        m.evaluations.get_or_create(&label).inc();
        match (&evaluation.recommendation, &evaluation.failure) {
            (Some(r), _) => {
                m.scale_up_score.get_or_create(&label).set(r.scale_up_score);
                m.scale_down_score
                    .get_or_create(&label)
                    .set(r.scale_down_score);
            }
            (None, Some(f)) => {
                m.scale_up_score.remove(&label);
                m.scale_down_score.remove(&label);
                m.plugin_errors
                    .get_or_create(&KindLabel {
                        service: service.clone(),
                        kind: f.kind.to_string(),
                    })
                    .inc();
            }
            (None, None) => {}
        }
        m.decisions
            .get_or_create(&OutcomeLabel {
                service: service.clone(),
                direction: d.direction.to_string(),
                outcome: if dry_run && d.is_scale() {
                    "dry-run".into()
                } else {
                    "decided".into()
                },
            })
            .inc();
        if let Some(sh) = &shadow {
            let diverges = diverges(&evaluation, sh);
            m.shadow_diverging
                .get_or_create(&label)
                .set(if diverges { 1.0 } else { 0.0 });
            if diverges {
                m.shadow_divergences.get_or_create(&label).inc();
            }
        }
    }

    let intent = Intent {
        actor: Actor::Auto,
        direction: d.direction,
        from: current,
        to: d.target,
        reasons: reasons.clone(),
        plugin: Some(PluginRecord::from(&**policy.plugin.id())),
        scores: scores_of(&evaluation),
        inputs: inputs_of(&input),
    };
    let report = if d.is_scale() && !dry_run {
        let r = act(engine, policy, store, intent).await?;
        if let Some(m) = metrics {
            m.actions
                .get_or_create(&OutcomeLabel {
                    service: service.clone(),
                    direction: d.direction.to_string(),
                    outcome: serde_json::to_value(r.outcome)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                })
                .inc();
        }
        Some(r)
    } else {
        let repeated = state.last_decision.as_ref().is_some_and(|l| {
            l.dry_run && (l.direction, l.from, l.to) == (d.direction, current, d.target)
        });
        let event = if d.is_scale() && !repeated {
            // A dry run: what production would do, audited, and its own
            // cooldown advances as if it had scaled. (A bound restored
            // repeats every pass, since nothing moves: audited once.)
            Some(Event::WouldScale)
        } else if d.is_scale() {
            None
        } else if evaluation.failure.is_some() || !usage.errors.is_empty() {
            Some(Event::Held)
        } else {
            None
        };
        if let Some(event) = event {
            store.audit(&record_of(service, event, dry_run, now, intent))?;
        }
        None
    };
    let last = LastDecision {
        time_ms: now,
        direction: d.direction,
        from: current,
        to: report.as_ref().map(|r| r.reached).unwrap_or(d.target),
        actor: Actor::Auto,
        dry_run,
        summary: summary_of(&evaluation),
    };
    // The state read at the start of the pass, unless a scale changed it.
    let mut state = if report.is_some() {
        store.state(service)?
    } else {
        state
    };
    if dry_run && d.is_scale() {
        state.record_scale(d.direction, now, true);
    }
    state.last_decision = Some(last.clone());
    store.save_state(service, &state)?;
    Ok(Pass {
        input,
        evaluation,
        shadow,
        usage,
        report,
        last,
    })
}

/// The audit record of a decision that is not a scale (would-scale, held).
pub fn record_of(
    service: &str,
    event: Event,
    dry_run: bool,
    now: TimestampMs,
    intent: Intent,
) -> AuditRecord {
    AuditRecord {
        dry_run,
        direction: intent.direction,
        from: intent.from,
        to: intent.to,
        reasons: intent.reasons,
        plugin: intent.plugin,
        scores: intent.scores,
        inputs: intent.inputs,
        ..AuditRecord::new(service, event, intent.actor, now)
    }
}

/// The policy's reasons, every guard-rail intervention and any failure.
pub fn reasons_of(evaluation: &Evaluation) -> Vec<String> {
    let mut reasons: Vec<String> = evaluation
        .recommendation
        .iter()
        .flat_map(|r| r.reasons.iter())
        .map(|r| format!("{}: {}", r.trigger, r.message))
        .collect();
    reasons.extend(
        evaluation
            .decision
            .reasons
            .iter()
            .map(|r| format!("guard {}: {}", r.rule.as_str(), r.message)),
    );
    if let Some(f) = &evaluation.failure {
        reasons.push(format!("policy failed ({}): {}", f.kind, f.message));
    }
    reasons
}

/// The reason that settled a decision: the guard rails' last word.
pub fn summary_of(evaluation: &Evaluation) -> String {
    match (evaluation.decision.reasons.last(), &evaluation.failure) {
        (Some(r), _) => format!("{}: {}", r.rule.as_str(), r.message),
        (None, Some(f)) => format!("policy failed ({}): {}", f.kind, f.message),
        (None, None) => String::new(),
    }
}

/// The two scores, when the plugin answered.
pub fn scores_of(evaluation: &Evaluation) -> Option<Scores> {
    evaluation.recommendation.as_ref().map(|r| Scores {
        up: r.scale_up_score,
        down: r.scale_down_score,
    })
}

/// Whether a shadow policy decided differently from the live one.
pub fn diverges(live: &Evaluation, shadow: &Evaluation) -> bool {
    (live.decision.direction, live.decision.target)
        != (shadow.decision.direction, shadow.decision.target)
}

/// The inputs that mattered: each signal's newest value (or why it is
/// missing) and the replica counts.
pub fn inputs_of(input: &PolicyInput) -> std::collections::BTreeMap<String, serde_json::Value> {
    let mut out = signals_of(input);
    out.insert("replicas".into(), input.current_replicas.into());
    out.insert("ready".into(), input.ready_replicas.into());
    out
}

/// Each signal's newest value, or why it is missing.
pub fn signals_of(input: &PolicyInput) -> std::collections::BTreeMap<String, serde_json::Value> {
    let mut out = std::collections::BTreeMap::new();
    for w in &input.signals {
        let v = match (&w.missing_reason, w.samples.last()) {
            (Some(why), _) => serde_json::json!({ "missing": why }),
            (None, Some(s)) if s.value.is_finite() => serde_json::json!(s.value),
            (None, _) => serde_json::json!({ "missing": "no sample" }),
        };
        out.insert(w.signal.to_string(), v);
    }
    out
}

/// At start: every scale with an intent but no outcome (the process died
/// mid-scale) is finished against what the engine shows now, and recorded.
pub async fn reconcile(
    engine: &Engine,
    policy: &ReadyPolicy,
    store: &Store,
) -> Result<Vec<AuditRecord>> {
    let service = &policy.file.service;
    let records = store.audit_records(service)?;
    let pending = crate::store::interrupted(&records);
    let mut out = Vec::new();
    if pending.is_empty() {
        return Ok(out);
    }
    let reached = current(engine, &policy.file.target).await?;
    for started in pending {
        let now = now_ms();
        let outcome = if reached == started.to {
            Outcome::Succeeded
        } else if reached != started.from && (reached > started.from) == (started.to > started.from)
        {
            Outcome::Partial
        } else {
            Outcome::Failed
        };
        let report = ScaleReport {
            from: started.from,
            to: started.to,
            reached,
            outcome,
            created: vec![],
            removed: vec![],
            failed: vec![],
            error: Some(format!(
                "interrupted: the process stopped mid-scale; reconciled at start ({}), the engine shows {reached} running",
                format_time(now)
            )),
            duration_ms: (now - started.time_ms).max(0) as u64,
        };
        let mut finished = started.clone();
        finished.time_ms = now;
        finished.event = Event::ScaleFinished;
        finished.reasons.push("reconciled at start".into());
        finished.report = Some(report.clone());
        store.audit(&finished)?;
        if report.moved() {
            // Conservative: the cooldown starts at the reconciliation.
            store.record_scale(service, started.direction, now)?;
        }
        out.push(finished);
    }
    Ok(out)
}

/// One pass: collect, evaluate, guard, act (unless `dry_run`).
pub fn check(
    policy: &ReadyPolicy,
    sources: &Sources,
    store: &Store,
    dry_run: bool,
    json: bool,
) -> Result<ExitCode> {
    let _lock = store.lock(&policy.file.service)?;
    let rt = runtime()?;
    rt.block_on(async {
        let target = &policy.file.target;
        let service = &policy.file.service;
        let engine = Engine::connect(target.docker_host.as_deref()).await?;
        let Pass {
            input,
            evaluation,
            shadow,
            usage,
            report,
            ..
        } = pass(&engine, policy, sources, store, dry_run, None).await?;
        let d = &evaluation.decision;
        if json {
            let out = serde_json::json!({
                "service": service,
                "target": describe_target(target),
                "dry_run": dry_run,
                "usage": usage,
                "recommendation": evaluation.recommendation,
                "failure": evaluation.failure,
                "decision": evaluation.decision,
                "shadow": shadow,
                "scale": report,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            print!("{}", render_check(policy, &input, &evaluation, &usage));
            if dry_run && d.is_scale() {
                println!("dry run: not acting (would scale; the dry-run cooldown starts)");
            }
            if let Some(sh) = &shadow {
                println!(
                    "shadow {}: {} to {}{}",
                    policy
                        .shadow
                        .as_ref()
                        .map(|s| s.plugin.id().to_string())
                        .unwrap_or_default(),
                    sh.decision.direction,
                    sh.decision.target,
                    if diverges(&evaluation, sh) {
                        " (diverges)"
                    } else {
                        ""
                    }
                );
            }
            if let Some(r) = &report {
                print_report(r, false);
            }
        }
        match &report {
            Some(r) => finish(r),
            None => Ok(ExitCode::SUCCESS),
        }
    })
}

/// A fraction as a percentage, or "missing".
fn pct(v: Option<f64>) -> String {
    v.map(|v| format!("{:.1}%", v * 100.0))
        .unwrap_or_else(|| "missing".into())
}

/// OOM kills in the last hour, or "unknown" when the events were unreadable.
fn oom_kills(usage: &ServiceUsage) -> String {
    usage
        .oom_kills
        .map(|n| n.to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn render_check(
    policy: &ReadyPolicy,
    input: &PolicyInput,
    e: &Evaluation,
    usage: &ServiceUsage,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "docker: cpu {} of limit, memory {} of limit, {} running, {} ready, {} OOM kill(s) in the last hour",
        pct(usage.cpu),
        pct(usage.memory),
        usage.running,
        usage.ready,
        oom_kills(usage)
    );
    for err in &usage.errors {
        let _ = writeln!(out, "  stats error: {err}");
    }
    out.push_str(&crate::commands::render(policy, input, e));
    out
}

/// `reset`: clear the service's cooldowns (the seed's `reset`), audited;
/// the audit log and sample history are kept.
pub fn reset(policy: &ReadyPolicy, store: &Store) -> Result<ExitCode> {
    let service = &policy.file.service;
    let _lock = store.lock(service)?;
    let before = store.reset_cooldowns(service)?;
    let now = now_ms();
    let ago = |t: Option<TimestampMs>| {
        t.map(|t| format!("{} ago", format_duration((now - t).max(0) as u64)))
            .unwrap_or_else(|| "never".into())
    };
    let what = format!(
        "cooldowns cleared (last scale-up {}, last scale-down {})",
        ago(before.last_scale_up),
        ago(before.last_scale_down)
    );
    store.audit(&AuditRecord {
        reasons: vec![what.clone()],
        ..AuditRecord::new(service, Event::Reset, Actor::Manual, now)
    })?;
    println!("{service}: {what}; the audit log and sample history are kept");
    Ok(ExitCode::SUCCESS)
}

/// `health`: the engine, the target, its replicas.
pub fn health(policy: &ReadyPolicy, sources: &Sources, json: bool) -> Result<ExitCode> {
    let rt = runtime()?;
    rt.block_on(async {
        let target = &policy.file.target;
        let engine = Engine::connect(target.docker_host.as_deref()).await?;
        let replicas = docker::replicas(&engine, target).await?;
        let running = actuate::running_among(&engine, target, &replicas).await?;
        let ready = replicas
            .iter()
            .filter(|r| r.readiness == Readiness::Ready)
            .count() as u32;
        let mut problems = Vec::new();
        let prometheus = match &sources.prometheus {
            None => None,
            Some(p) => Some(match p.ready().await {
                Ok(()) => format!("ok ({})", p.url),
                Err(e) => {
                    problems.push(e.clone());
                    e
                }
            }),
        };
        if running < policy.file.guard.min_replicas {
            problems.push(format!(
                "{running} replica(s) running, below min_replicas {}",
                policy.file.guard.min_replicas
            ));
        }
        for r in replicas.iter().filter(|r| r.readiness != Readiness::Ready) {
            problems.push(format!("{} is {:?} ({})", r.name, r.readiness, r.state));
        }
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "engine": { "host": engine.host, "version": engine.version, "api_version": engine.api_version },
                    "target": describe_target(target),
                    "prometheus": prometheus,
                    "running": running,
                    "ready": ready,
                    "replicas": replicas,
                    "problems": problems,
                }))?
            );
        } else {
            println!(
                "engine: ok ({}, Docker {}, API {})",
                engine.host, engine.version, engine.api_version
            );
            println!("target: {} found", describe_target(target));
            if let Some(p) = &prometheus {
                println!("prometheus: {p}");
            }
            println!("replicas: {running} running, {ready} ready");
            for r in &replicas {
                println!("  {:<28} {:<10} {:?}", r.name, r.state, r.readiness);
            }
        }
        if problems.is_empty() {
            Ok(ExitCode::SUCCESS)
        } else {
            Err(Unhealthy(problems.join("; ")).into())
        }
    })
}

/// `report`: replicas, metrics, scores and the last actions, from the
/// engine and the audit log.
pub fn report(
    policy: &ReadyPolicy,
    sources: &Sources,
    store: &Store,
    json: bool,
) -> Result<ExitCode> {
    let rt = runtime()?;
    rt.block_on(async {
        let target = &policy.file.target;
        let service = &policy.file.service;
        let engine = Engine::connect(target.docker_host.as_deref()).await?;
        let replicas = docker::replicas(&engine, target).await?;
        let current = actuate::running_among(&engine, target, &replicas).await?;
        let usage = docker::service_usage(&engine, target, &replicas).await;
        let now = now_ms();
        // Scores on the stored history plus this reading; nothing is saved.
        let mut history = store.history(service)?;
        let signals = collect_signals(policy, sources, &usage, &mut history, now).await;
        let state = store.guard_state(service)?;
        let input = input_for(policy, &state, &usage, current, signals, now);
        let evaluation = policy.evaluate(&input, &state);
        let records = store.audit_records(service)?;
        let last = |d: Direction| {
            records
                .iter()
                .rev()
                .find(|r| r.event == Event::ScaleFinished && r.direction == d)
        };
        let interrupted = crate::store::interrupted(&records);
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "service": service,
                    "target": describe_target(target),
                    "replicas": { "running": current, "ready": usage.ready, "containers": replicas },
                    "usage": usage,
                    "recommendation": evaluation.recommendation,
                    "decision": evaluation.decision,
                    "last_scale_up": last(Direction::Up),
                    "last_scale_down": last(Direction::Down),
                    "interrupted": interrupted,
                }))?
            );
            return Ok(ExitCode::SUCCESS);
        }
        let mut out = String::new();
        let _ = writeln!(out, "{}", describe_target(target));
        let _ = writeln!(
            out,
            "replicas: {current} running, {} ready (min {}, max {})",
            usage.ready, policy.file.guard.min_replicas, policy.file.guard.max_replicas
        );
        for r in &replicas {
            let _ = writeln!(
                out,
                "  {:<28} {:<10} {:?}{}",
                r.name,
                r.state,
                r.readiness,
                if r.oom_killed { "  OOM-killed" } else { "" }
            );
        }
        let _ = writeln!(
            out,
            "metrics: cpu {} of limit, memory {} of limit (mean of running replicas); OOM kills in the last hour: {}",
            pct(usage.cpu),
            pct(usage.memory),
            oom_kills(&usage)
        );
        match &evaluation.recommendation {
            Some(r) => {
                let _ = writeln!(
                    out,
                    "scores: scale-up {}, scale-down {} -> {} to {}",
                    r.scale_up_score, r.scale_down_score, r.direction, r.desired_replicas
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "scores: none ({})",
                    evaluation
                        .failure
                        .as_ref()
                        .map(|f| f.message.as_str())
                        .unwrap_or("no recommendation")
                );
            }
        }
        for (label, d) in [("scale-up", Direction::Up), ("scale-down", Direction::Down)] {
            match last(d) {
                None => {
                    let _ = writeln!(out, "last {label}: never");
                }
                Some(r) => {
                    let rep = r.report.as_ref();
                    let _ = writeln!(
                        out,
                        "last {label}: {} ago, {} -> {} ({:?}, {:?})",
                        format_duration((now - r.time_ms).max(0) as u64),
                        r.from,
                        rep.map(|p| p.reached).unwrap_or(r.to),
                        r.actor,
                        rep.map(|p| p.outcome).unwrap_or(Outcome::Failed)
                    );
                }
            }
        }
        for r in interrupted {
            let _ = writeln!(
                out,
                "interrupted: {} {} -> {} started {} ago and never finished",
                r.direction,
                r.from,
                r.to,
                format_duration((now - r.time_ms).max(0) as u64)
            );
        }
        print!("{out}");
        Ok(ExitCode::SUCCESS)
    })
}
