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
//!
//! Here: the options, loading the trace and the policies, and the run that
//! replays them side by side. [`replay`]: one policy's replay (the model
//! behind the controller's seams, stepped through the trace). [`report`]:
//! its rows and the table printed. [`model`], [`trace`], [`chart`] and
//! [`violation`]: the service model, the trace files, the SVG chart and
//! the `--violations` lines.

pub mod chart;
pub mod history;
pub mod model;
mod replay;
pub mod report;
pub mod trace;
mod violation;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use vedfolnir_core::model::TimestampMs;
use vedfolnir_core::sim::{self, Noise, ServiceModel, Shape, Slo, Trace, foresight};
use vedfolnir_sandbox::Sandbox;

use crate::config::{Overrides, PolicyFile};
use crate::policy::{ReadyPolicy, load_plugin};
use replay::{Outcome, Progress, replay};
use report::{Report, Row};

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

/// The SLO a replay judges by unless told (`--slo-p95`, `--slo-error-rate`):
/// p95 at most 0.5 s, errors at most 1%.
pub const DEFAULT_SLO: Slo = Slo {
    p95: 0.5,
    error_rate: 0.01,
};

/// A trace, a shape or an option that cannot be replayed (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    /// What is wrong, naming the file, line or flag.
    pub message: String,
}

impl Invalid {
    pub(crate) fn new(message: impl Into<String>) -> Invalid {
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
    /// A trace already read (a service's record, `--history`), and what
    /// it is.
    Recorded {
        /// The trace.
        trace: Trace,
        /// Where it came from, for the report.
        what: String,
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
    /// Also replay target-tracking at each of [`FRONTIER_TARGETS`]: the
    /// curve a policy's point is read against.
    pub frontier: bool,
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
    /// The virtual clock's start: [`EPOCH_MS`], or a record's first minute.
    pub start_ms: TimestampMs,
    /// Keep each row's mean replica count of every minute.
    pub by_minute: bool,
}

/// A policy ready to replay, with its label.
struct Entry {
    label: String,
    policy: Arc<ReadyPolicy>,
}

/// The CPU targets `--frontier` replays target-tracking at: denser where
/// the curve bends. Not above 0.8: a CPU fraction cannot show demand past
/// the replicas' capacity, so at 0.9 target-tracking barely scales up at
/// all (a week of `web`: thousands of violation minutes, under one action
/// a day), which is no point of the curve.
pub const FRONTIER_TARGETS: [f64; 6] = [0.5, 0.6, 0.65, 0.7, 0.75, 0.8];

/// The builtin target-tracking at `target.cpu = target`, labelled
/// `tracking cpu 0.6`: one point of the frontier.
fn tracking_at(sandbox: &Sandbox, target: f64, overrides: &Overrides) -> Result<Entry> {
    let label = format!("tracking cpu {target}");
    let toml = format!(
        "service = \"simulated\"\nplugin = \"builtin:target-tracking\"\n[params]\n\"target.cpu\" = {target}\n"
    );
    let file = PolicyFile::parse(Path::new(&label), &toml, overrides)?;
    let plugin = load_plugin(sandbox, &file.plugin)?;
    let policy = ReadyPolicy::with_plugin(file, Arc::new(plugin))?;
    Ok(Entry {
        label,
        policy: Arc::new(for_replay(policy)),
    })
}

/// Load a policy named on the command line.
fn load_policy(sandbox: &Sandbox, text: &str, overrides: &Overrides) -> Result<Entry> {
    let (label, policy) = match text.strip_prefix("builtin:") {
        Some(name) => {
            let toml = format!("service = \"simulated\"\nplugin = \"builtin:{name}\"\n");
            let file = PolicyFile::parse(Path::new(text), &toml, overrides)?;
            let plugin = load_plugin(sandbox, &file.plugin)?;
            (
                name.to_string(),
                ReadyPolicy::with_plugin(file, Arc::new(plugin))?,
            )
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
        Load::Recorded { trace, what } => (trace.clone(), what.clone()),
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
    if options.frontier {
        for target in FRONTIER_TARGETS {
            entries.push(tracking_at(sandbox, target, &options.overrides)?);
        }
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
        std::fs::write(path, chart_svg(options, report, runs))
            .with_context(|| format!("cannot write the chart {}", path.display()))?;
    }
    Ok(())
}

/// The chart of the runs, as SVG.
fn chart_svg(options: &Options, report: &Report, runs: Vec<Outcome>) -> String {
    let title = format!(
        "{} — evaluated every {}",
        report.load,
        vedfolnir_core::format_duration(options.interval_ms)
    );
    let columns: Vec<(String, chart::Columns)> = runs
        .into_iter()
        .map(|o| (o.row.policy, o.columns))
        .collect();
    chart::svg(&title, &columns, report.duration_ms, options.slo.p95)
}

/// Run the simulation and write the outputs asked for (the action log,
/// the violations, the chart); the caller prints the report.
pub fn run(sandbox: &Sandbox, options: &Options) -> Result<Report> {
    let (report, runs) = replay_all(sandbox, options)?;
    write_outputs(options, &report, runs)?;
    Ok(report)
}

/// Replay every policy and measure the yardsticks beside them: the
/// report, and each policy's run.
fn replay_all(sandbox: &Sandbox, options: &Options) -> Result<(Report, Vec<Outcome>)> {
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
    // The yardsticks are measured beside the replays, on a thread of
    // their own.
    let bounds: Vec<(u32, u32)> = entries
        .iter()
        .map(|e| {
            (
                e.policy.file.guard.min_replicas,
                e.policy.file.guard.max_replicas,
            )
        })
        .collect();
    let (runs, yardsticks) = std::thread::scope(|scope| {
        let measured =
            scope.spawn(|| Yardsticks::measure(&trace, options, step_ms, steps, &bounds));
        let handles: Vec<_> = entries
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                let trace = &trace;
                let progress = &progress;
                scope.spawn(move || replay(entry, trace, options, step_ms, steps, progress, i))
            })
            .collect();
        let runs: Result<Vec<Outcome>> = handles
            .into_iter()
            .map(|h| h.join().expect("a replay thread panicked"))
            .collect();
        (
            runs,
            measured.join().expect("the yardsticks' thread panicked"),
        )
    });
    let runs = runs?;
    progress.finish();
    let elapsed_ms = started.elapsed_ms();
    let report = Report {
        load: what,
        duration_ms,
        interval_ms: options.interval_ms,
        step_ms,
        results: runs
            .iter()
            .map(|o| yardsticks.beside(o.row.clone()))
            .collect(),
        least_replica_hours: yardsticks.least,
        elapsed_ms,
        history: None,
    };
    Ok((report, runs))
}

/// The yardsticks for the policies' replica-hours, on the load at each
/// step as the replays see it.
struct Yardsticks {
    /// The least possible ([`sim::least_replica_hours`]) at the policies'
    /// smallest `min_replicas` (the override, else 1).
    least: Option<f64>,
    /// The level-foresight frontier within each policy's bounds.
    frontiers: std::collections::BTreeMap<(u32, u32), Option<foresight::Frontier>>,
}

impl Yardsticks {
    fn measure(
        trace: &Trace,
        options: &Options,
        step_ms: u64,
        steps: u64,
        bounds: &[(u32, u32)],
    ) -> Yardsticks {
        let loads: Vec<f64> = (0..steps)
            .map(|k| trace.mean(k * step_ms, (k + 1) * step_ms))
            .collect();
        let (model, slo) = (&options.model, options.slo);
        let distinct: std::collections::BTreeSet<(u32, u32)> = bounds.iter().copied().collect();
        let frontiers = distinct
            .into_iter()
            .map(|b| (b, foresight::level_frontier(model, slo, b, &loads, step_ms)))
            .collect();
        let min = options.overrides.min_replicas.unwrap_or(1);
        Yardsticks {
            least: sim::least_replica_hours(model, slo, min, &loads, step_ms),
            frontiers,
        }
    }

    /// `row`, with its level foresight at its violation minutes.
    fn beside(&self, row: Row) -> Row {
        let frontier = self.frontiers.get(&(row.min_replicas, row.max_replicas));
        Row {
            foresight_replica_hours: frontier
                .and_then(Option::as_ref)
                .and_then(|f| f.cheapest_within(row.slo_violation_minutes))
                .map(|p| p.replica_hours),
            ..row
        }
    }
}

#[cfg(test)]
mod tests {
    use super::replay::Replay;
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
            frontier: false,
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
            start_ms: EPOCH_MS,
            by_minute: false,
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
