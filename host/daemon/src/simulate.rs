//! `simulate`: replay a load trace through a model of the service with the
//! daemon's own pass (`controller::pass`: the real sandbox, the real guard
//! rails, the same input assembly and cooldown bookkeeping) on a virtual
//! clock, for one or several policies side by side.
//!
//! Each policy runs in its own thread over its own copy of the service; the
//! model stands behind the controller's seams ([`model::Model`] is both the
//! actuator and the source), the state is kept in memory, actions in the
//! report rather than an audit log:
//!
//! ```text
//!   every step (15 s, or the interval if shorter):
//!     load = trace mean over the step x --scale
//!     observation = model.advance(load)            (vedfolnir_core::sim)
//!     tally, chart column <- observation
//!   every interval, unless a scale-up is still starting:
//!     controller::pass on the model: its windows (as the daemon keeps
//!     them), the policy in its sandbox, the guard rails, and a scale:
//!     a scale-up finishes when its replicas are ready (the daemon waits
//!     for health), which starts the cooldown; a scale-down finishes at once
//! ```
//!
//! Nothing here reads a clock except for the elapsed time it reports.

pub mod chart;
pub mod model;
pub mod trace;
mod violation;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use vedfolnir_core::model::TimestampMs;
use vedfolnir_core::sim::{self, History, Noise, ServiceModel, Shape, Slo, Tally, Trace};
use vedfolnir_core::window;
use vedfolnir_sandbox::Sandbox;

use crate::audit::{Audit, Discard};
use crate::clock::Clock as _;
use crate::config::{Overrides, PolicyFile};
use crate::controller::{self, Context, Evaluate};
use crate::policy::{ReadyPolicy, load_plugin};
use crate::sources::Sources;
use crate::state::{Memory, Store};
use crate::telemetry::Telemetry;
use model::Model;
use violation::Violation;

/// The instruction budget of one evaluation in a replay, in place of the
/// daemon's wall-clock deadline: about a second of wasm on a 2-core
/// machine, far above what the shipped policies use (see BENCHMARKS.md).
pub const REPLAY_FUEL: u64 = 1_000_000_000;

/// The finest model step and interval a replay takes: a shape is generated
/// per second, and no daemon decides faster.
pub const MIN_STEP_MS: u64 = 1_000;

/// The most model steps one replay runs: a year and a day at the finest
/// step (shapes are generated per second, so this also bounds their
/// length and memory).
pub const MAX_STEPS: u64 = 366 * 86_400;
/// The longest burst period a web shape takes: a day (the daily pattern's
/// own period).
pub const MAX_BURST_PERIOD_MS: u64 = 86_400_000;

/// The highest load a replay takes, in replicas' capacities: past it the
/// numbers are not a Docker deployment's, and the yardstick's search for
/// a replica count would run long.
pub const MAX_LOAD_REPLICAS: f64 = 1e6;

/// The virtual clock's start: 2023-01-01 00:00 UTC, a midnight, so a
/// trace's first row is the start of a day (daily seasons line up).
pub const EPOCH_MS: TimestampMs = 1_672_531_200_000;

/// A trace, a shape or an option that cannot be replayed (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    /// What is wrong, naming the file, line or flag.
    pub message: String,
}

impl Invalid {
    fn new(message: impl Into<String>) -> Invalid {
        Invalid {
            message: message.into(),
        }
    }
}

/// Where the load comes from.
#[derive(Debug, Clone)]
pub enum Load {
    /// A CSV file and the column to read.
    File {
        /// The file.
        path: PathBuf,
        /// The load column, when the file has several.
        column: Option<String>,
    },
    /// A built-in shape.
    Shape {
        /// Which.
        shape: String,
        /// How long, ms.
        duration_ms: u64,
        /// The low load, req/s.
        base: f64,
        /// The high load, req/s.
        peak: f64,
        /// The noise seed.
        seed: u64,
        /// The noise asked for (`None`s: the shape's own).
        noise: Noise,
    },
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The load.
    pub load: Load,
    /// Multiply the trace by this.
    pub scale: f64,
    /// Policy files, or `builtin:<name>`.
    pub policies: Vec<String>,
    /// Bounds replacing every policy's.
    pub overrides: Overrides,
    /// Time between evaluations.
    pub interval_ms: u64,
    /// The model's time step (at most the interval).
    pub step_ms: Option<u64>,
    /// The service.
    pub model: ServiceModel,
    /// Replicas at the start (default: what the first load needs at 70% of capacity, within the bounds).
    pub start_replicas: Option<u32>,
    /// The service level.
    pub slo: Slo,
    /// Write the chart here.
    pub chart: Option<PathBuf>,
    /// Write every action here, as JSON lines.
    pub actions: Option<PathBuf>,
    /// Write every stretch of SLO violation here, as JSON lines.
    pub violations: Option<PathBuf>,
    /// Print JSON.
    pub json: bool,
    /// Show progress bars (when stderr is a terminal).
    pub progress: bool,
}

/// One policy's results.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The label in the table.
    pub policy: String,
    /// The plugin's name and version.
    pub plugin: String,
    /// The replica bounds this policy ran with: its file's, or the
    /// `--min-replicas`/`--max-replicas` given (a builtin's defaults
    /// otherwise). A row is only comparable with another of the same.
    pub min_replicas: u32,
    /// See `min_replicas`.
    pub max_replicas: u32,
    /// SLO-violation minutes.
    pub slo_violation_minutes: f64,
    /// Of those, the minutes the policy was at `max_replicas`: the bound,
    /// not the policy, decided them.
    pub violation_minutes_at_max: f64,
    /// Replica-hours (starting replicas included).
    pub replica_hours: f64,
    /// Scale actions.
    pub actions: u32,
    /// Actions reversing the previous one within 10 minutes.
    pub reversals: u32,
    /// Actions per simulated day.
    pub actions_per_day: f64,
    /// Reversals per simulated day.
    pub reversals_per_day: f64,
    /// Replicas created by scale-ups: each a container start, its caches
    /// cold.
    pub container_starts: u64,
    /// The mean time between two actions, minutes (none with fewer than
    /// two actions).
    pub mean_minutes_between_actions: Option<f64>,
    /// The most replicas at once.
    pub peak_replicas: u32,
    /// The mean p95, seconds.
    pub mean_p95: f64,
    /// Failed requests as a fraction of all.
    pub failed_fraction: f64,
    /// Evaluations run.
    pub evaluations: u64,
    /// Evaluations where the plugin failed (trap, timeout, error).
    pub failed_evaluations: u64,
    /// Evaluations that took longer than the daemon's deadline by this
    /// machine's wall clock. A replay stops a policy by an instruction
    /// budget instead (so the rest of the report is the same on a busy
    /// machine); this count alone depends on the machine and its load.
    pub over_deadline_evaluations: u64,
}

/// What a run printed.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Where the load came from.
    pub load: String,
    /// The simulated time, ms.
    pub duration_ms: u64,
    /// The evaluation interval, ms.
    pub interval_ms: u64,
    /// The model step, ms.
    pub step_ms: u64,
    /// One row per policy, in the order given.
    pub results: Vec<Row>,
    /// The fewest replica-hours any scaler could spend on this load without
    /// an SLO violation ([`sim::least_replica_hours`], at `--min-replicas`
    /// or 1): how far above it each policy's are. `None` when no replica
    /// count meets the SLO.
    pub least_replica_hours: Option<f64>,
    /// Wall-clock time of the replay, ms.
    pub elapsed_ms: u64,
}

/// A policy ready to replay, with its label.
struct Entry {
    label: String,
    policy: Arc<ReadyPolicy>,
}

/// Load a policy named on the command line.
fn load_policy(sandbox: &Sandbox, text: &str, overrides: &Overrides) -> Result<Entry> {
    let (label, policy) = match text.strip_prefix("builtin:") {
        Some(name) => {
            let toml = format!("service = \"simulated\"\nplugin = \"builtin:{name}\"\n");
            let file = PolicyFile::parse(Path::new(text), &toml, overrides)?;
            let plugin = load_plugin(sandbox, &file.plugin)?;
            (name.to_string(), ReadyPolicy::with_plugin(file, plugin)?)
        }
        None => {
            let path = Path::new(text);
            let label = path
                .file_stem()
                .map_or_else(|| text.to_string(), |s| s.to_string_lossy().into_owned());
            (label, ReadyPolicy::load(sandbox, path, overrides)?)
        }
    };
    Ok(Entry {
        label,
        policy: Arc::new(for_replay(policy)),
    })
}

/// A policy as a replay runs it: every signal comes from the model,
/// whatever source the file names (a signal's `required` was folded into
/// the policy when it loaded), and a shadow policy has nothing to shadow
/// beside the other rows.
fn for_replay(mut policy: ReadyPolicy) -> ReadyPolicy {
    policy.file.signals.clear();
    policy.shadow = None;
    policy
}

/// Replicas at the start, unless given: what the first load needs at 70%
/// of capacity, so no policy starts in an overload it did not cause.
fn start_replicas(trace: &Trace, model: &ServiceModel) -> u32 {
    (trace.values[0] / (0.7 * model.capacity)).ceil().max(1.0) as u32
}

/// The model step: `--step` (15 s unless given), at most the interval, and
/// at least [`MIN_STEP_MS`].
fn step_of(options: &Options) -> Result<u64> {
    let step_ms = options.step_ms.unwrap_or(15_000).min(options.interval_ms);
    if step_ms < MIN_STEP_MS {
        let (key, ms) = match options.step_ms {
            Some(ms) if ms < MIN_STEP_MS => ("--step", ms),
            _ => ("--interval", options.interval_ms),
        };
        bail!(Invalid::new(format!(
            "{key} {}: a replay's step and interval must be at least {}",
            vedfolnir_core::format_duration(ms),
            vedfolnir_core::format_duration(MIN_STEP_MS)
        )));
    }
    Ok(step_ms)
}

/// Refuse a replay too long for [`MAX_STEPS`] or a load past
/// [`MAX_LOAD_REPLICAS`], naming what to change.
fn check_size(trace: &Trace, options: &Options, step_ms: u64) -> Result<()> {
    let steps = trace.duration_ms() / step_ms;
    if steps > MAX_STEPS {
        bail!(Invalid::new(format!(
            "{} at a {} step is {steps} model steps, more than {MAX_STEPS} (366 days at {}): use a longer --step or a shorter trace",
            vedfolnir_core::format_duration(trace.duration_ms()),
            vedfolnir_core::format_duration(step_ms),
            vedfolnir_core::format_duration(MIN_STEP_MS)
        )));
    }
    let peak = trace.values.iter().copied().fold(0.0, f64::max);
    let most = MAX_LOAD_REPLICAS * options.model.capacity;
    if peak > most {
        bail!(Invalid::new(format!(
            "the load reaches {peak} req/s, more than {MAX_LOAD_REPLICAS:e} replicas at --capacity {} serve: bring it down with --scale",
            options.model.capacity
        )));
    }
    Ok(())
}

/// Build the trace.
fn load_trace(options: &Options) -> Result<(Trace, String)> {
    let (trace, what) = match &options.load {
        Load::File { path, column } => {
            let t = trace::read(path, column.as_deref()).map_err(|e| Invalid {
                message: e.to_string(),
            })?;
            let what = format!(
                "{} (column {}, one row per {})",
                path.display(),
                t.column,
                t.unit
            );
            (t.trace, what)
        }
        Load::Shape {
            shape,
            duration_ms,
            base,
            peak,
            seed,
            noise,
        } => shape_trace(shape, *duration_ms, (*base, *peak), *seed, noise)?,
    };
    if !(options.scale.is_finite() && options.scale > 0.0) {
        return Err(Invalid::new(format!("--scale {} must be above 0", options.scale)).into());
    }
    let what = if options.scale == 1.0 {
        what
    } else {
        format!("{what} x {}", options.scale)
    };
    Ok((trace.scaled(options.scale), what))
}

/// Generate a built-in shape, checking what the command line asked of it.
fn shape_trace(
    shape: &str,
    duration_ms: u64,
    (base, peak): (f64, f64),
    seed: u64,
    noise: &Noise,
) -> Result<(Trace, String)> {
    let Some(s) = Shape::parse(shape) else {
        let names: Vec<&str> = Shape::ALL.iter().map(|(n, _)| *n).collect();
        return Err(Invalid::new(format!(
            "--shape: unknown shape {shape:?} (one of {})",
            names.join(", ")
        ))
        .into());
    };
    if !(base.is_finite() && peak.is_finite() && base >= 0.0 && peak >= 0.0) {
        return Err(Invalid::new(format!(
            "--base {base} and --peak {peak} must be finite and not negative"
        ))
        .into());
    }
    if duration_ms < 60_000 {
        return Err(Invalid::new("--duration must be at least 1m").into());
    }
    // Generated per second: bounded before it is allocated.
    if duration_ms / MIN_STEP_MS > MAX_STEPS {
        return Err(Invalid::new(format!(
            "--duration {}: a shape lasts at most {}",
            vedfolnir_core::format_duration(duration_ms),
            vedfolnir_core::format_duration(MAX_STEPS * MIN_STEP_MS)
        ))
        .into());
    }
    let mut what = format!(
        "synthetic {shape}, {base} to {peak} req/s over {}",
        vedfolnir_core::format_duration(duration_ms)
    );
    if let Some(n) = noise.size {
        if s.default_noise().is_none() {
            return Err(Invalid::new(format!(
                "--noise: the {shape} shape has no noise (diurnal and web have)"
            ))
            .into());
        }
        if !(0.0..=1.0).contains(&n) {
            return Err(Invalid::new(format!("--noise {n} must be from 0 to 1")).into());
        }
        what.push_str(&format!(", noise {n}"));
    }
    if let Some(p) = noise.burst_period_ms {
        if s != Shape::Web {
            return Err(Invalid::new(format!(
                "--burst-period: the {shape} shape has no bursts (web has)"
            ))
            .into());
        }
        if !(MIN_STEP_MS..=MAX_BURST_PERIOD_MS).contains(&p) {
            return Err(Invalid::new(format!(
                "--burst-period {}: must be from {} to {}",
                vedfolnir_core::format_duration(p),
                vedfolnir_core::format_duration(MIN_STEP_MS),
                vedfolnir_core::format_duration(MAX_BURST_PERIOD_MS)
            ))
            .into());
        }
        what.push_str(&format!(
            ", bursts from {}",
            vedfolnir_core::format_duration(p)
        ));
    }
    let trace = s.generate(
        duration_ms,
        1000.min(duration_ms),
        (base, peak),
        seed,
        *noise,
    );
    Ok((trace, what))
}

/// Load every policy named, with labels that tell rows apart: a label
/// given more than once gets the policy's position (judged on the labels
/// as given, so the last of a pair is renamed too).
fn load_policies(sandbox: &Sandbox, options: &Options) -> Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for text in &options.policies {
        entries.push(
            load_policy(sandbox, text, &options.overrides)
                .with_context(|| format!("cannot load the policy {text}"))?,
        );
    }
    let labels: Vec<String> = entries.iter().map(|e| e.label.clone()).collect();
    for (i, entry) in entries.iter_mut().enumerate() {
        if labels.iter().filter(|l| **l == entry.label).count() > 1 {
            entry.label = format!("{}#{}", entry.label, i + 1);
        }
    }
    Ok(entries)
}

/// Refuse, before a replay that may take minutes, an output (`--chart`,
/// `--actions`, `--violations`) its folder would not take: a missing or
/// read-only folder, or a folder where the file should be. The folder is
/// tried by creating a file in it, removed at once.
fn check_outputs(options: &Options) -> Result<()> {
    let outputs = [
        ("--chart", &options.chart),
        ("--actions", &options.actions),
        ("--violations", &options.violations),
    ];
    for (flag, path) in outputs {
        let Some(path) = path else { continue };
        if path.is_dir() {
            bail!(Invalid::new(format!(
                "{flag} {}: a folder, not a file",
                path.display()
            )));
        }
        let folder = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if let Err(e) = tempfile::Builder::new()
            .prefix(".vedfolnir-probe")
            .tempfile_in(folder)
        {
            bail!(Invalid::new(format!(
                "{flag} {}: its folder {} cannot be written: {e}",
                path.display(),
                folder.display()
            )));
        }
    }
    Ok(())
}

/// Write the action log, the violations and the chart, when asked for.
fn write_outputs(options: &Options, report: &Report, runs: Vec<Outcome>) -> Result<()> {
    let lines = |path: &Path, what: &str, of: fn(&Outcome) -> &Vec<String>| {
        let text: String = runs.iter().flat_map(of).map(|l| format!("{l}\n")).collect();
        std::fs::write(path, text)
            .with_context(|| format!("cannot write the {what} {}", path.display()))
    };
    if let Some(path) = &options.actions {
        lines(path, "actions", |o| &o.actions)?;
    }
    if let Some(path) = &options.violations {
        lines(path, "violations", |o| &o.violations)?;
    }
    if let Some(path) = &options.chart {
        let title = format!(
            "{} — evaluated every {}",
            report.load,
            vedfolnir_core::format_duration(options.interval_ms)
        );
        let columns: Vec<(String, chart::Columns)> = runs
            .into_iter()
            .map(|o| (o.row.policy, o.columns))
            .collect();
        std::fs::write(
            path,
            chart::svg(&title, &columns, report.duration_ms, options.slo.p95),
        )
        .with_context(|| format!("cannot write the chart {}", path.display()))?;
    }
    Ok(())
}

/// Run the simulation and print the table (or JSON); write the chart.
pub fn run(sandbox: &Sandbox, options: &Options) -> Result<Report> {
    if options.interval_ms == 0 {
        bail!(Invalid::new("--interval must be longer than 0"));
    }
    // Whether a policy ran out of time must not depend on how busy the
    // machine is, or two replays of one trace could differ.
    if sandbox.config().fuel.is_none() {
        bail!("a replay needs a sandbox with an instruction budget (SandboxConfig::fuel)");
    }
    let step_ms = step_of(options)?;
    let m = &options.model;
    if !(m.capacity > 0.0 && m.capacity.is_finite()) || m.workers == 0 {
        bail!(Invalid::new("--capacity and --workers must be above 0"));
    }
    check_outputs(options)?;
    let (trace, what) = load_trace(options)?;
    let duration_ms = trace.duration_ms();
    let steps = duration_ms / step_ms;
    check_size(&trace, options, step_ms)?;
    let entries = load_policies(sandbox, options)?;
    let started = crate::clock::Stopwatch::start();
    let progress = Progress::new(options.progress, steps, &entries);
    let runs: Vec<Outcome> = std::thread::scope(|scope| {
        let handles: Vec<_> = entries
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                let trace = &trace;
                let progress = &progress;
                scope.spawn(move || replay(entry, trace, options, step_ms, steps, progress, i))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a replay thread panicked"))
            .collect::<Result<_>>()
    })?;
    progress.finish();
    let elapsed_ms = started.elapsed_ms();
    let report = Report {
        load: what,
        duration_ms,
        interval_ms: options.interval_ms,
        step_ms,
        results: runs.iter().map(|o| o.row.clone()).collect(),
        least_replica_hours: least_replica_hours(&trace, options, step_ms, steps),
        elapsed_ms,
    };
    write_outputs(options, &report, runs)?;
    Ok(report)
}

/// The yardstick for the policies' replica-hours: the load at each step,
/// as the replays see it, at their smallest `min_replicas` (the override,
/// else 1).
fn least_replica_hours(trace: &Trace, options: &Options, step_ms: u64, steps: u64) -> Option<f64> {
    let loads: Vec<f64> = (0..steps)
        .map(|k| trace.mean(k * step_ms, (k + 1) * step_ms))
        .collect();
    let min = options.overrides.min_replicas.unwrap_or(1);
    sim::least_replica_hours(&options.model, options.slo, min, &loads, step_ms)
}

/// One policy's replay in progress: the model service behind the
/// controller's seams, the state the guard rails keep, and the tallies.
struct Replay<'a> {
    entry: &'a Entry,
    options: &'a Options,
    model: Arc<Model>,
    sources: Sources,
    /// Where the guard rails' state is kept: memory.
    store: Box<dyn Store>,
    /// Where actions are recorded: nowhere (the report lists them).
    audit: Box<dyn Audit>,
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
}

/// What one policy's replay gives: its row, its chart columns, and the
/// lines of `--actions` and `--violations`.
struct Outcome {
    row: Row,
    columns: chart::Columns,
    actions: Vec<String>,
    violations: Vec<String>,
}

impl<'a> Replay<'a> {
    fn new(
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
            sim::Service::new(options.model.clone(), start, EPOCH_MS),
            History::new(span, window::FINE_MS, window::BUCKET_MS),
            declared,
            EPOCH_MS,
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
            next_eval: EPOCH_MS + options.interval_ms as i64,
            busy_until: EPOCH_MS,
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
    fn step(&mut self, trace: &Trace, k: u64, step_ms: u64) -> Result<()> {
        let t = EPOCH_MS + (k * step_ms) as i64;
        let load = trace.mean(k * step_ms, (k + 1) * step_ms);
        let obs = self.model.advance(t, step_ms, load);
        self.tally.observe(&obs, step_ms, self.options.slo);
        let violated = self.options.slo.violated_by(&obs);
        if violated && obs.replicas >= self.entry.policy.file.guard.max_replicas {
            self.violation_at_max_ms += step_ms;
        }
        self.columns
            .add(k, obs.load, obs.replicas, obs.p95, violated);
        let now = t + step_ms as i64;
        self.note_violation(violated, t, now, &obs);
        if now < self.next_eval || now < self.busy_until {
            return Ok(());
        }
        self.next_eval = now + self.options.interval_ms as i64;
        self.evaluate(now)
    }

    /// One pass of the controller, as the daemon runs it, on the model.
    fn evaluate(&mut self, now: TimestampMs) -> Result<()> {
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
            self.columns.action(now - EPOCH_MS, decision.direction);
            // A scale-up returns when its replicas are ready: no
            // evaluation before then, as in the daemon.
            self.busy_until = self.model.clock.now_ms();
        }
        Ok(())
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

    fn close_violation(&mut self) {
        if let Some(v) = self.violation.take() {
            self.violations.push(v.line(&self.entry.label));
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
                "elapsed_s": (now - EPOCH_MS) / 1000,
                "from": decision.current,
                "to": decision.target,
                "direction": decision.direction,
                "reasons": reasons,
            })
            .to_string(),
        );
    }

    /// The table's row, for a replay of `duration_ms`.
    fn row(&self, duration_ms: u64) -> Row {
        let d = self.entry.policy.plugin.description();
        let tally = &self.tally;
        let days = duration_ms as f64 / 86_400_000.0;
        Row {
            actions_per_day: f64::from(tally.actions) / days,
            reversals_per_day: f64::from(tally.reversals) / days,
            container_starts: tally.container_starts,
            mean_minutes_between_actions: tally.minutes_between_actions(),
            over_deadline_evaluations: self.entry.policy.plugin.over_deadline(),
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
        }
    }
}

/// One policy over the whole trace.
fn replay(
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
struct Progress {
    bars: Option<(indicatif::MultiProgress, Vec<indicatif::ProgressBar>)>,
    done: Vec<AtomicU64>,
}

impl Progress {
    fn new(enabled: bool, steps: u64, entries: &[Entry]) -> Progress {
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

    fn advance(&self, index: usize, by: u64) {
        self.done[index].fetch_add(by, Ordering::Relaxed);
        if let Some((_, bars)) = &self.bars {
            bars[index].inc(by);
        }
    }

    fn done(&self, index: usize) {
        if let Some((_, bars)) = &self.bars {
            bars[index].finish();
        }
    }

    fn finish(&self) {
        if let Some((multi, _)) = &self.bars {
            let _ = multi.clear();
        }
    }
}

/// The results as a table.
pub fn table(report: &Report, options: &Options) -> String {
    use std::fmt::Write as _;
    let m = &options.model;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "load: {}\nsimulated {} at a {} step, evaluated every {}; replayed in {:.2}s",
        report.load,
        vedfolnir_core::format_duration(report.duration_ms),
        vedfolnir_core::format_duration(report.step_ms),
        vedfolnir_core::format_duration(report.interval_ms),
        report.elapsed_ms as f64 / 1000.0
    );
    let _ = writeln!(
        s,
        "service: {} req/s per replica ({} workers), start-up {}, timeout {}; SLO: p95 <= {}s and errors <= {}%\n",
        m.capacity,
        m.workers,
        vedfolnir_core::format_duration(m.startup_ms),
        vedfolnir_core::format_duration(m.timeout_ms),
        options.slo.p95,
        options.slo.error_rate * 100.0
    );
    let width = report
        .results
        .iter()
        .map(|r| r.policy.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let _ = writeln!(
        s,
        "{:<width$}  {:>8}  {:>14}  {:>13}  {:>7}  {:>15}  {:>5}  {:>9}  {:>8}",
        "policy",
        "replicas",
        "SLO-violation",
        "replica-hours",
        "actions",
        "reversals<=10m",
        "peak",
        "mean p95",
        "failed"
    );
    let _ = writeln!(
        s,
        "{:<width$}  {:>8}  {:>14}  {:>13}  {:>7}  {:>15}  {:>5}  {:>9}  {:>8}",
        "", "min-max", "minutes", "", "", "", "", "", "requests"
    );
    for r in &report.results {
        let _ = writeln!(
            s,
            "{:<width$}  {:>8}  {:>14.1}  {:>13.1}  {:>7}  {:>15}  {:>5}  {:>8.3}s  {:>7.3}%",
            r.policy,
            format!("{}-{}", r.min_replicas, r.max_replicas),
            r.slo_violation_minutes,
            r.replica_hours,
            r.actions,
            r.reversals,
            r.peak_replicas,
            r.mean_p95,
            r.failed_fraction * 100.0
        );
    }
    if let Some(least) = report.least_replica_hours {
        let _ = writeln!(
            s,
            "\nleast possible: {least:.1} replica-hours with no SLO violation (a scaler that knew the load \
             ahead and changed the count every step; no policy does with less)"
        );
    }
    churn(&mut s, report, width);
    notes(&mut s, report);
    s
}

/// What went wrong in the plugin, and what took longer than the daemon
/// would allow, per policy; where a bound, not a policy, decided.
fn notes(s: &mut String, report: &Report) {
    use std::fmt::Write as _;
    let bounds: std::collections::BTreeSet<(u32, u32)> = report
        .results
        .iter()
        .map(|r| (r.min_replicas, r.max_replicas))
        .collect();
    if bounds.len() > 1 {
        let _ = writeln!(
            s,
            "\nthe policies ran with different replica bounds (the column \"replicas\"): a row is \
             comparable only with one of the same bounds; --min-replicas and --max-replicas set them for all"
        );
    }
    for r in &report.results {
        if r.violation_minutes_at_max > 0.0 {
            let _ = writeln!(
                s,
                "\n{}: at its max_replicas ({}) for {:.1} of its {:.1} SLO-violation minutes: \
                 the bound, not the policy, decided those",
                r.policy, r.max_replicas, r.violation_minutes_at_max, r.slo_violation_minutes
            );
        }
    }
    for r in &report.results {
        if r.over_deadline_evaluations > 0 {
            let _ = writeln!(
                s,
                "\n{}: {} of {} evaluations took longer than the daemon's deadline on this machine \
                 (a replay budgets instructions instead, so they ran to completion here)",
                r.policy, r.over_deadline_evaluations, r.evaluations
            );
        }
        if r.failed_evaluations > 0 {
            let _ = writeln!(
                s,
                "\n{}: {} of {} evaluations failed in the plugin (each held)",
                r.policy, r.failed_evaluations, r.evaluations
            );
        }
    }
}

/// The churn table: how often each policy acts, and what that costs in
/// container starts.
fn churn(s: &mut String, report: &Report, width: usize) {
    use std::fmt::Write as _;
    let _ = writeln!(
        s,
        "\n{:<width$}  {:>11}  {:>13}  {:>16}  {:>20}",
        "churn", "actions/day", "reversals/day", "container starts", "between actions"
    );
    for r in &report.results {
        let between = r.mean_minutes_between_actions.map_or_else(
            || "-".into(),
            |m| vedfolnir_core::format_duration((m * 60_000.0) as u64),
        );
        let _ = writeln!(
            s,
            "{:<width$}  {:>11.1}  {:>13.1}  {:>16}  {:>20}",
            r.policy, r.actions_per_day, r.reversals_per_day, r.container_starts, between
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(actions: &Path) -> Options {
        Options {
            load: Load::Shape {
                shape: "step".into(),
                duration_ms: 2 * 3_600_000,
                base: 100.0,
                peak: 1000.0,
                seed: 1,
                noise: Noise::default(),
            },
            scale: 1.0,
            policies: vec!["builtin:target-tracking".into()],
            overrides: Overrides {
                min_replicas: None,
                max_replicas: Some(20),
            },
            interval_ms: 15_000,
            step_ms: None,
            model: ServiceModel::default(),
            start_replicas: None,
            slo: Slo {
                p95: 0.5,
                error_rate: 0.01,
            },
            chart: None,
            actions: Some(actions.to_path_buf()),
            violations: None,
            json: true,
            progress: false,
        }
    }

    /// A replay keeps its state in memory and no audit; the same replay on
    /// the daemon's own state directory and audit log takes the same
    /// actions, each recorded before and after.
    #[test]
    fn a_replay_acts_as_the_controller_does_on_the_daemons_own_state_and_audit() {
        let dir = tempfile::tempdir().unwrap();
        let options = options(&dir.path().join("actions.jsonl"));
        let sandbox = Sandbox::new(vedfolnir_sandbox::SandboxConfig {
            fuel: Some(REPLAY_FUEL),
            ..Default::default()
        })
        .unwrap();
        run(&sandbox, &options).unwrap();
        let replayed: Vec<(i64, u64, u64)> =
            std::fs::read_to_string(dir.path().join("actions.jsonl"))
                .unwrap()
                .lines()
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    (
                        v["elapsed_s"].as_i64().unwrap() * 1000,
                        v["from"].as_u64().unwrap(),
                        v["to"].as_u64().unwrap(),
                    )
                })
                .collect();
        assert!(replayed.len() >= 3, "{replayed:?}");

        let (trace, _) = load_trace(&options).unwrap();
        let entry = load_policy(&sandbox, "builtin:target-tracking", &options.overrides).unwrap();
        let steps = trace.duration_ms() / 15_000;
        let mut r = Replay::new(&entry, &trace, &options, (steps, 15_000)).unwrap();
        let state_dir = dir.path().join("state");
        r.store = Box::new(crate::state::StateDir::open(&state_dir).unwrap());
        let log = crate::audit::AuditLog::in_dir(&state_dir);
        r.audit = Box::new(log.clone());
        for k in 0..steps {
            r.step(&trace, k, 15_000).unwrap();
        }
        let records = log.records("simulated").unwrap();
        let started: Vec<(i64, u64, u64)> = records
            .iter()
            .filter(|r| r.event == crate::audit::Event::ScaleStarted)
            .map(|r| (r.time_ms - EPOCH_MS, u64::from(r.from), u64::from(r.to)))
            .collect();
        assert_eq!(started, replayed);
        assert!(log.summary("simulated").unwrap().interrupted.is_empty());
    }

    /// `--violations` lists each stretch of SLO violation: together they
    /// make the report's violation minutes, and each starts and ends where
    /// the steps did.
    #[test]
    fn the_violations_file_adds_up_to_the_reported_violation_minutes() {
        let dir = tempfile::tempdir().unwrap();
        let mut options = options(&dir.path().join("actions.jsonl"));
        let path = dir.path().join("violations.jsonl");
        options.violations = Some(path.clone());
        // The step from 100 to 1000 req/s outruns a minute's start-up.
        let sandbox = Sandbox::new(vedfolnir_sandbox::SandboxConfig {
            fuel: Some(REPLAY_FUEL),
            ..Default::default()
        })
        .unwrap();
        let report = run(&sandbox, &options).unwrap();
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(!lines.is_empty());
        let minutes: f64 = lines.iter().map(|v| v["minutes"].as_f64().unwrap()).sum();
        let reported = report.results[0].slo_violation_minutes;
        assert!(reported > 0.0);
        assert!((minutes - reported).abs() < 1e-6, "{minutes} != {reported}");
        for v in &lines {
            assert_eq!(v["policy"], "target-tracking");
            assert_eq!(v["from_s"].as_i64().unwrap() % 15, 0, "{v}");
            assert!(
                v["worst_p95"].as_f64().unwrap() > 0.5
                    || v["worst_error_rate"].as_f64().unwrap() > 0.01,
                "{v}"
            );
            assert!(v["peak_load"].as_f64().unwrap() >= v["load"].as_f64().unwrap());
        }
    }
}
