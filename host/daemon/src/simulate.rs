//! `simulate`: replay a load trace through a model of the service, with
//! the real sandbox, the real guard rails and a virtual clock, for one or
//! several policies side by side.
//!
//! Each policy runs in its own thread over its own copy of the service:
//!
//! ```text
//!   every step (15 s, or the interval if shorter):
//!     load = trace mean over the step x --scale
//!     observation = service.advance(load)          (vedfolnir_core::sim)
//!     tally, chart column, history <- observation
//!   every interval, unless a scale-up is still starting:
//!     input = windows from the history (as the daemon builds them)
//!     evaluation = ReadyPolicy::evaluate(input)    (sandbox + guard rails)
//!     scale: the service scales; a scale-up finishes when its replicas
//!            are ready (the daemon waits for health), which starts the
//!            cooldown; a scale-down finishes at once
//! ```
//!
//! Nothing here reads a clock except for the elapsed time it reports.

pub mod chart;
pub mod trace;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use vedfolnir_core::guard::GuardState;
use vedfolnir_core::model::{Direction, PolicyInput, TimestampMs};
use vedfolnir_core::sim::{self, History, ServiceModel, Shape, Slo, Tally, Trace};
use vedfolnir_core::window;
use vedfolnir_sandbox::Sandbox;

use crate::config::{Overrides, PolicyFile};
use crate::policy::{ReadyPolicy, load_plugin};

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
    /// SLO-violation minutes.
    pub slo_violation_minutes: f64,
    /// Replica-hours (starting replicas included).
    pub replica_hours: f64,
    /// Scale actions.
    pub actions: u32,
    /// Actions reversing the previous one within 10 minutes.
    pub reversals: u32,
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
    /// Wall-clock time of the replay, ms.
    pub elapsed_ms: u64,
}

/// A policy ready to replay, with its label.
struct Entry {
    label: String,
    policy: ReadyPolicy,
}

/// Load a policy named on the command line.
fn load_policy(sandbox: &Sandbox, text: &str, overrides: &Overrides) -> Result<Entry> {
    if let Some(name) = text.strip_prefix("builtin:") {
        let label = Path::new(text);
        let toml = format!("service = \"simulated\"\nplugin = \"builtin:{name}\"\n");
        let file = PolicyFile::parse(label, &toml, overrides)?;
        let plugin = load_plugin(sandbox, &file.plugin)?;
        let policy = ReadyPolicy::with_plugin(file, plugin)?;
        return Ok(Entry {
            label: name.to_string(),
            policy,
        });
    }
    let path = Path::new(text);
    let policy = ReadyPolicy::load(sandbox, path, overrides)?;
    let label = path
        .file_stem()
        .map_or_else(|| text.to_string(), |s| s.to_string_lossy().into_owned());
    Ok(Entry { label, policy })
}

/// Replicas at the start, unless given: what the first load needs at 70%
/// of capacity, so no policy starts in an overload it did not cause.
fn start_replicas(trace: &Trace, model: &ServiceModel) -> u32 {
    (trace.values[0] / (0.7 * model.capacity)).ceil().max(1.0) as u32
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
        } => {
            let Some(s) = Shape::parse(shape) else {
                let names: Vec<&str> = Shape::ALL.iter().map(|(n, _)| *n).collect();
                return Err(Invalid::new(format!(
                    "--shape: unknown shape {shape:?} (one of {})",
                    names.join(", ")
                ))
                .into());
            };
            if !(base.is_finite() && peak.is_finite() && *base >= 0.0 && *peak >= 0.0) {
                return Err(Invalid::new(format!(
                    "--base {base} and --peak {peak} must be finite and not negative"
                ))
                .into());
            }
            if *duration_ms < 60_000 {
                return Err(Invalid::new("--duration must be at least 1m").into());
            }
            (
                s.generate(*duration_ms, 1000.min(*duration_ms), *base, *peak, *seed),
                format!(
                    "synthetic {shape}, {base} to {peak} req/s over {}",
                    vedfolnir_core::format_duration(*duration_ms)
                ),
            )
        }
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

/// Write the action log and the chart, when asked for.
fn write_outputs(
    options: &Options,
    report: &Report,
    runs: Vec<(Row, chart::Columns, Vec<String>)>,
) -> Result<()> {
    if let Some(path) = &options.actions {
        let mut text = String::new();
        for (_, _, lines) in &runs {
            for l in lines {
                text.push_str(l);
                text.push('\n');
            }
        }
        std::fs::write(path, text)
            .with_context(|| format!("cannot write the actions {}", path.display()))?;
    }
    if let Some(path) = &options.chart {
        let title = format!(
            "{} — evaluated every {}",
            report.load,
            vedfolnir_core::format_duration(options.interval_ms)
        );
        let columns: Vec<(String, chart::Columns)> =
            runs.into_iter().map(|(r, c, _)| (r.policy, c)).collect();
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
    let step_ms = options
        .step_ms
        .unwrap_or(15_000)
        .min(options.interval_ms)
        .max(1);
    let m = &options.model;
    if !(m.capacity > 0.0 && m.capacity.is_finite()) || m.workers == 0 {
        bail!(Invalid::new("--capacity and --workers must be above 0"));
    }
    let (trace, what) = load_trace(options)?;
    let entries = load_policies(sandbox, options)?;
    let duration_ms = trace.duration_ms();
    let steps = duration_ms / step_ms;
    let started = crate::clock::Stopwatch::start();
    let progress = Progress::new(options.progress, steps, &entries);
    let runs: Vec<(Row, chart::Columns, Vec<String>)> = std::thread::scope(|scope| {
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
            .collect()
    });
    progress.finish();
    let elapsed_ms = started.elapsed_ms();
    let report = Report {
        load: what,
        duration_ms,
        interval_ms: options.interval_ms,
        step_ms,
        results: runs.iter().map(|(r, _, _)| r.clone()).collect(),
        elapsed_ms,
    };
    write_outputs(options, &report, runs)?;
    Ok(report)
}

/// One policy's replay in progress: the model service, the history the
/// daemon would keep, the guard rails' clocks, and the tallies.
struct Replay<'a> {
    entry: &'a Entry,
    options: &'a Options,
    service: sim::Service,
    history: History,
    /// Which of the simulator's signals the plugin declares: only those
    /// get long history (a day of every signal would be copied into the
    /// sandbox for nothing).
    declared: Vec<bool>,
    state: GuardState,
    tally: Tally,
    columns: chart::Columns,
    next_eval: TimestampMs,
    busy_until: TimestampMs,
    evaluations: u64,
    failed: u64,
    actions: Vec<String>,
}

impl<'a> Replay<'a> {
    fn new(entry: &'a Entry, trace: &Trace, options: &'a Options, steps: u64) -> Replay<'a> {
        let policy = &entry.policy;
        let guard = &policy.file.guard;
        let start = options
            .start_replicas
            .unwrap_or_else(|| start_replicas(trace, &options.model))
            .clamp(guard.min_replicas, guard.max_replicas);
        // The history the daemon would keep for this policy, cut the same way.
        let span = crate::controller::history_span_ms(policy);
        let described = &policy.plugin.description().signals;
        Replay {
            entry,
            options,
            service: sim::Service::new(options.model.clone(), start, EPOCH_MS),
            history: History::new(span, window::FINE_MS, window::BUCKET_MS),
            declared: sim::signals()
                .iter()
                .map(|s| described.iter().any(|d| &d.signal == s))
                .collect(),
            state: GuardState::default(),
            tally: Tally::default(),
            columns: chart::Columns::new(steps),
            next_eval: EPOCH_MS + options.interval_ms as i64,
            busy_until: EPOCH_MS,
            evaluations: 0,
            failed: 0,
            actions: Vec::new(),
        }
    }

    /// Advance the model by step `k`; evaluate when an interval is due and
    /// no scale-up is still starting.
    fn step(&mut self, trace: &Trace, k: u64, step_ms: u64) {
        let t = EPOCH_MS + (k * step_ms) as i64;
        let load = trace.mean(k * step_ms, (k + 1) * step_ms);
        let obs = self.service.advance(t, step_ms, load);
        self.tally.observe(&obs, step_ms, self.options.slo);
        self.columns.add(k, obs.load, obs.replicas, obs.p95);
        let now = t + step_ms as i64;
        self.history.push(now, obs.values());
        if now < self.next_eval || now < self.busy_until {
            return;
        }
        self.next_eval = now + self.options.interval_ms as i64;
        self.evaluate(now);
    }

    /// One evaluation, as the daemon builds its input, and its scale.
    fn evaluate(&mut self, now: TimestampMs) {
        let policy = &self.entry.policy;
        let guard = &policy.file.guard;
        let signals = sim::signals()
            .into_iter()
            .enumerate()
            .map(|(i, s)| self.history.window(i, s, now, self.declared[i]))
            .collect();
        let input = PolicyInput {
            service: policy.file.service.clone(),
            now,
            current_replicas: self.service.replicas(),
            ready_replicas: self.service.ready(now),
            min_replicas: guard.min_replicas,
            max_replicas: guard.max_replicas,
            since_last_scale_up: self.state.since_last_scale_up(now),
            since_last_scale_down: self.state.since_last_scale_down(now),
            params: policy.params.clone(),
            signals,
        };
        let evaluation = policy.evaluate(&input, &self.state);
        self.evaluations += 1;
        if evaluation.failure.is_some() {
            self.failed += 1;
        }
        if evaluation.decision.is_scale() {
            self.scale(&evaluation, now);
        }
    }

    /// Scale the model as the daemon would, and log the action.
    fn scale(&mut self, evaluation: &crate::policy::Evaluation, now: TimestampMs) {
        let decision = &evaluation.decision;
        if self.options.actions.is_some() {
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
        self.service.scale_to(decision.target, now);
        self.tally.action(now, decision.direction);
        match decision.direction {
            Direction::Up => {
                // As the daemon does, the scale finishes (and its cooldown
                // starts) when the new replicas are ready.
                let done = self.service.all_ready_at(now);
                self.state.last_scale_up = Some(done);
                self.busy_until = done;
            }
            Direction::Down => self.state.last_scale_down = Some(now),
            Direction::Hold => {}
        }
    }

    /// The table's row.
    fn row(&self) -> Row {
        let d = self.entry.policy.plugin.description();
        let tally = &self.tally;
        Row {
            policy: self.entry.label.clone(),
            plugin: format!("{} {}", d.name, d.version),
            slo_violation_minutes: tally.violation_minutes(),
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
) -> (Row, chart::Columns, Vec<String>) {
    let mut r = Replay::new(entry, trace, options, steps);
    let tick = (steps / 200).max(1);
    for k in 0..steps {
        r.step(trace, k, step_ms);
        if k % tick == 0 {
            progress.advance(index, tick);
        }
    }
    progress.done(index);
    (r.row(), r.columns, r.actions)
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
        "{:<width$}  {:>14}  {:>13}  {:>7}  {:>15}  {:>5}  {:>9}  {:>8}",
        "policy",
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
        "{:<width$}  {:>14}  {:>13}  {:>7}  {:>15}  {:>5}  {:>9}  {:>8}",
        "", "minutes", "", "", "", "", "", "requests"
    );
    for r in &report.results {
        let _ = writeln!(
            s,
            "{:<width$}  {:>14.1}  {:>13.1}  {:>7}  {:>15}  {:>5}  {:>8.3}s  {:>7.3}%",
            r.policy,
            r.slo_violation_minutes,
            r.replica_hours,
            r.actions,
            r.reversals,
            r.peak_replicas,
            r.mean_p95,
            r.failed_fraction * 100.0
        );
    }
    for r in &report.results {
        if r.failed_evaluations > 0 {
            let _ = writeln!(
                s,
                "\n{}: {} of {} evaluations failed in the plugin (each held)",
                r.policy, r.failed_evaluations, r.evaluations
            );
        }
    }
    s
}
