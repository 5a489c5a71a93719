//! One policy's replay: the model service behind the controller's seams,
//! stepped through the trace, with a pass of the controller each interval;
//! and the progress bars of a run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result};
use vedfolnir_core::model::TimestampMs;
use vedfolnir_core::sim::{self, Tally, Trace};

use super::model::Model;
use super::report::Row;
use super::violation::Violation;
use super::{Entry, Options, chart, start_replicas};
use crate::audit::{Audit, Discard};
use crate::clock::Clock as _;
use crate::controller::{self, Context, Evaluate};
use crate::sources::Sources;
use crate::state::{Memory, Store};
use crate::telemetry::Telemetry;

/// One policy's replay in progress: the model service behind the
/// controller's seams, the state the guard rails keep, and the tallies.
pub(super) struct Replay<'a> {
    entry: &'a Entry,
    options: &'a Options,
    model: Arc<Model>,
    sources: Sources,
    /// Where the guard rails' state is kept: memory.
    pub(super) store: Box<dyn Store>,
    /// Where actions are recorded: nowhere (the report lists them).
    pub(super) audit: Box<dyn Audit>,
    telemetry: Telemetry,
    runtime: tokio::runtime::Runtime,
    tally: Tally,
    columns: chart::Columns,
    next_eval: TimestampMs,
    busy_until: TimestampMs,
    evaluations: u64,
    failed: u64,
    actions: Vec<String>,
    /// The SLO violation in progress, if the last step violated.
    violation: Option<Violation>,
    /// Violating steps at `max_replicas`, ms.
    violation_at_max_ms: u64,
    violations: Vec<String>,
    /// Each whole minute's mean replica count, when the options ask.
    by_minute: Vec<f64>,
    /// Replica-ms of the minute running.
    minute_sum: f64,
}

/// What one policy's replay gives: its row, its chart columns, and the
/// lines of `--actions` and `--violations`.
pub(super) struct Outcome {
    pub(super) row: Row,
    pub(super) columns: chart::Columns,
    pub(super) actions: Vec<String>,
    pub(super) violations: Vec<String>,
}

impl<'a> Replay<'a> {
    pub(super) fn new(
        entry: &'a Entry,
        trace: &Trace,
        options: &'a Options,
        (steps, step_ms): (u64, u64),
    ) -> Result<Replay<'a>> {
        let policy = &entry.policy;
        let guard = &policy.file.guard;
        let start = options
            .start_replicas
            .unwrap_or_else(|| start_replicas(trace, &options.model))
            .clamp(guard.min_replicas, guard.max_replicas);
        // The history the daemon would keep for this policy, cut the same way.
        let span = policy.history_span_ms;
        let described = &policy.plugin.description().signals;
        let declared = sim::signals()
            .iter()
            .map(|s| described.iter().any(|d| &d.signal == s))
            .collect();
        let model = Arc::new(Model::new(
            sim::Service::new(options.model.clone(), start, options.start_ms),
            span,
            declared,
            options.start_ms,
        ));
        Ok(Replay {
            entry,
            options,
            sources: Sources::new().with(model.clone()),
            model,
            store: Box::new(Memory::default()),
            audit: Box::new(Discard),
            telemetry: Telemetry::quiet(),
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .context("cannot start the replay's runtime")?,
            tally: Tally::default(),
            columns: chart::Columns::new(steps, step_ms),
            next_eval: options.start_ms + options.interval_ms as i64,
            busy_until: options.start_ms,
            by_minute: Vec::new(),
            minute_sum: 0.0,
            evaluations: 0,
            failed: 0,
            actions: Vec::new(),
            violation: None,
            violation_at_max_ms: 0,
            violations: Vec::new(),
        })
    }

    /// Advance the model by step `k`; evaluate when an interval is due and
    /// no scale-up is still starting.
    pub(super) fn step(&mut self, trace: &Trace, k: u64, step_ms: u64) -> Result<()> {
        let t = self.options.start_ms + (k * step_ms) as i64;
        let load = trace.mean(k * step_ms, (k + 1) * step_ms);
        let obs = self.model.advance(t, step_ms, load, self.options.slo);
        self.tally.observe(&obs, step_ms, self.options.slo);
        let violated = self.options.slo.violated_by(&obs);
        if violated && obs.replicas >= self.entry.policy.file.guard.max_replicas {
            self.violation_at_max_ms += step_ms;
        }
        self.columns
            .add(k, obs.load, obs.replicas, obs.p95, violated);
        let now = t + step_ms as i64;
        self.note_minute(obs.replicas, now, step_ms);
        self.note_violation(violated, t, now, &obs);
        if now < self.next_eval || now < self.busy_until {
            return Ok(());
        }
        self.next_eval = now + self.options.interval_ms as i64;
        self.evaluate(now)
    }

    /// One pass of the controller, as the daemon runs it, on the model.
    pub(super) fn evaluate(&mut self, now: TimestampMs) -> Result<()> {
        self.model.clock.set(now);
        let cx = Context {
            actuator: &*self.model,
            sources: &self.sources,
            audit: &*self.audit,
            state: &*self.store,
            clock: &self.model.clock,
            telemetry: &self.telemetry,
            dry_run: false,
            evaluate: Evaluate::Inline,
            late: false,
            standby: None,
        };
        let pass = self
            .runtime
            .block_on(controller::pass(&cx, &self.entry.policy))
            .context("a replayed pass failed")?;
        self.evaluations += 1;
        if pass.evaluation.failure.is_some() {
            self.failed += 1;
        }
        if pass.report.is_some() {
            self.log_action(&pass.evaluation, now);
            let decision = &pass.evaluation.decision;
            self.tally.action(now, decision.current, decision.target);
            self.columns
                .action(now - self.options.start_ms, decision.direction);
            // A scale-up returns when its replicas are ready: no
            // evaluation before then, as in the daemon.
            self.busy_until = self.model.clock.now_ms();
        }
        Ok(())
    }

    /// Add a step's replicas to its minute's mean (`Options::by_minute`).
    fn note_minute(&mut self, replicas: u32, now: TimestampMs, step_ms: u64) {
        if !self.options.by_minute {
            return;
        }
        self.minute_sum += f64::from(replicas) * step_ms as f64;
        if (now - self.options.start_ms) % 60_000 == 0 {
            self.by_minute.push(self.minute_sum / 60_000.0);
            self.minute_sum = 0.0;
        }
    }

    /// Follow the stretches of SLO violation, for `--violations`: a step
    /// from `t` to `now` violated or not.
    fn note_violation(
        &mut self,
        violated: bool,
        t: TimestampMs,
        now: TimestampMs,
        obs: &sim::Observation,
    ) {
        if self.options.violations.is_none() {
            return;
        }
        match (&mut self.violation, violated) {
            (Some(v), true) => v.extend(now, obs),
            (None, true) => self.violation = Some(Violation::start(t, now, obs)),
            (Some(_), false) => self.close_violation(),
            (None, false) => {}
        }
    }

    pub(super) fn close_violation(&mut self) {
        if let Some(v) = self.violation.take() {
            self.violations
                .push(v.line(&self.entry.label, self.options.start_ms));
        }
    }

    /// The action, for `--actions`.
    fn log_action(&mut self, evaluation: &crate::policy::Evaluation, now: TimestampMs) {
        if self.options.actions.is_none() {
            return;
        }
        let decision = &evaluation.decision;
        let reasons: Vec<String> = evaluation
            .recommendation
            .iter()
            .flat_map(|r| r.reasons.iter().map(ToString::to_string))
            .chain(decision.reasons.iter().map(|r| r.message.clone()))
            .collect();
        self.actions.push(
            serde_json::json!({
                "policy": self.entry.label,
                "time": crate::clock::format_time(now),
                "elapsed_s": (now - self.options.start_ms) / 1000,
                "from": decision.current,
                "to": decision.target,
                "direction": decision.direction,
                "reasons": reasons,
            })
            .to_string(),
        );
    }

    /// The table's row, for a replay of `duration_ms`.
    pub(super) fn row(&self, duration_ms: u64) -> Row {
        let d = self.entry.policy.plugin.description();
        let tally = &self.tally;
        let days = duration_ms as f64 / 86_400_000.0;
        Row {
            actions_per_day: f64::from(tally.actions) / days,
            reversals_per_day: f64::from(tally.reversals) / days,
            container_starts: tally.container_starts,
            mean_minutes_between_actions: tally.minutes_between_actions(),
            over_deadline_evaluations: self.entry.policy.plugin.over_deadline(),
            foresight_replica_hours: None,
            policy: self.entry.label.clone(),
            plugin: format!("{} {}", d.name, d.version),
            min_replicas: self.entry.policy.file.guard.min_replicas,
            max_replicas: self.entry.policy.file.guard.max_replicas,
            slo_violation_minutes: tally.violation_minutes(),
            violation_minutes_at_max: self.violation_at_max_ms as f64 / 60_000.0,
            replica_hours: tally.replica_hours(),
            actions: tally.actions,
            reversals: tally.reversals,
            peak_replicas: tally.peak_replicas,
            mean_p95: tally.mean_p95(),
            failed_fraction: if tally.requests > 0.0 {
                tally.failed_requests / tally.requests
            } else {
                0.0
            },
            evaluations: self.evaluations,
            failed_evaluations: self.failed,
            replicas_by_minute: self.by_minute.clone(),
        }
    }
}

/// One policy over the whole trace.
pub(super) fn replay(
    entry: &Entry,
    trace: &Trace,
    options: &Options,
    step_ms: u64,
    steps: u64,
    progress: &Progress,
    index: usize,
) -> Result<Outcome> {
    let mut r = Replay::new(entry, trace, options, (steps, step_ms))?;
    let tick = (steps / 200).max(1);
    for k in 0..steps {
        r.step(trace, k, step_ms)?;
        if k % tick == 0 {
            progress.advance(index, tick);
        }
    }
    progress.done(index);
    r.close_violation();
    Ok(Outcome {
        row: r.row(trace.duration_ms()),
        columns: r.columns,
        actions: r.actions,
        violations: r.violations,
    })
}

/// Progress bars on stderr, one per policy, when it is a terminal and the
/// run is long enough to need them.
pub(super) struct Progress {
    bars: Option<(indicatif::MultiProgress, Vec<indicatif::ProgressBar>)>,
    done: Vec<AtomicU64>,
}

impl Progress {
    pub(super) fn new(enabled: bool, steps: u64, entries: &[Entry]) -> Progress {
        let done = entries.iter().map(|_| AtomicU64::new(0)).collect();
        let visible = enabled && std::io::IsTerminal::is_terminal(&std::io::stderr());
        // Under 50,000 steps a replay takes about a second: no bar.
        if !visible || steps < 50_000 {
            return Progress { bars: None, done };
        }
        let multi = indicatif::MultiProgress::new();
        let style = indicatif::ProgressStyle::with_template(
            "{prefix:>18} [{bar:40}] {percent:>3}% {elapsed_precise} eta {eta}",
        )
        .expect("the template is valid")
        .progress_chars("=> ");
        let bars = entries
            .iter()
            .map(|e| {
                let bar = multi.add(indicatif::ProgressBar::new(steps));
                bar.set_style(style.clone());
                bar.set_prefix(e.label.clone());
                bar.enable_steady_tick(Duration::from_millis(200));
                bar
            })
            .collect();
        Progress {
            bars: Some((multi, bars)),
            done,
        }
    }

    pub(super) fn advance(&self, index: usize, by: u64) {
        self.done[index].fetch_add(by, Ordering::Relaxed);
        if let Some((_, bars)) = &self.bars {
            bars[index].inc(by);
        }
    }

    pub(super) fn done(&self, index: usize) {
        if let Some((_, bars)) = &self.bars {
            bars[index].finish();
        }
    }

    pub(super) fn finish(&self) {
        if let Some((multi, _)) = &self.bars {
            let _ = multi.clear();
        }
    }
}
