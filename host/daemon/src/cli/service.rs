//! The commands that work on a service on its engine: `scale-up`,
//! `scale-down`, `reset`, `health`, `report`, and `check` (one pass, for
//! cron). Each is a thin shell over the controller: it opens the seams
//! ([`Shell`]), takes the service's lock where it decides or acts, calls
//! the controller, and prints.
//!
//! `scale-up`, `scale-down`, `reset` and `health` need only the policy
//! file: a plugin that fails to load is said, not fatal. `DRY_RUN` and
//! `WEBHOOK_URL` mean the same here as in the daemon.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use vedfolnir_core::duration::format_elapsed;
use vedfolnir_core::model::{Direction, TimestampMs};
use vedfolnir_sandbox::Sandbox;

use super::args::{ActArgs, PolicyArgs};
use super::{InvalidInput, ScaleFailed, Unhealthy, render};
use crate::actuators::{self, Actuator, DockerActuator, Outcome, ScaleReport};
use crate::audit::{self, Actor, AuditLog};
use crate::clock::{Clock, SystemClock};
use crate::config::{Overrides, PolicyFile, TargetKind};
use crate::controller::manual::{self, Request, Wanted};
use crate::controller::{self, Context, Evaluate, operator, reconcile};
use crate::engine::{Engine, Readiness};
use crate::policy::{ReadyPolicy, load_plugin};
use crate::seams::Seams;
use crate::sources::Sources;
use crate::sources::prometheus::Prometheus;
use crate::state::StateDir;
use crate::telemetry::Telemetry;
use crate::telemetry::notifier::{self, Delivery, Notifier};

/// What the commands here share: the state directory, the sources the
/// command line configures, and the sandbox.
#[derive(Debug)]
pub struct Setup<'a> {
    /// The sandbox (for the commands that evaluate).
    pub sandbox: &'a Sandbox,
    /// The state directory.
    pub state_dir: &'a Path,
    /// Prometheus, when `PROMETHEUS_URL` is set.
    pub prometheus: Option<Prometheus>,
}

impl Setup<'_> {
    /// The sources every service reads besides its engine's (Prometheus).
    pub fn sources(&self) -> Sources {
        match &self.prometheus {
            Some(p) => Sources::new().with(Arc::new(p.clone())),
            None => Sources::new(),
        }
    }
}

/// One command's seams: engine, actuator, sources, audit (notifying
/// `WEBHOOK_URL`), state.
struct Shell {
    seams: Seams,
    audit: AuditLog,
    state: StateDir,
    telemetry: Telemetry,
    dry_run: bool,
    notifier: Option<tokio::task::JoinHandle<()>>,
    /// The target's lock on its engine, for a command that may scale a
    /// Compose target.
    _target: Option<std::fs::File>,
    /// The lease, for a command that may scale a Swarm target.
    lease: Option<crate::lease::Held>,
}

impl Shell {
    /// Connect for `command`; one that may scale (`act`, not a dry run)
    /// holds the target's lock on its engine, or is refused naming who
    /// holds it.
    async fn open(
        setup: &Setup<'_>,
        file: &PolicyFile,
        state: StateDir,
        act: Option<&ActArgs>,
        command: &str,
    ) -> Result<Shell> {
        let target = &file.target;
        let engine = Engine::connect(target.docker_host.as_deref()).await?;
        let (lock, lease) = match (act, &target.kind) {
            (Some(a), TargetKind::Swarm) if !a.dry_run => {
                let store = Box::new(crate::lease::SwarmStore {
                    engine: engine.clone(),
                    name: a.lease.lease_name.clone(),
                });
                let me = crate::lease::Holder::me("", command);
                let held = crate::lease::hold_for_action(store, me, a.lease.config()?).await?;
                (None, Some(held))
            }
            (Some(a), _) if !a.dry_run => (
                Some(crate::state::lock_target(
                    &engine.id,
                    &target.lock_name(),
                    &file.service,
                    command,
                    SystemClock.now_ms(),
                )?),
                None,
            ),
            _ => (None, None),
        };
        let (audit, notifier) = audit_log(setup, act);
        let fence = lease.as_ref().map(|h| h.lease.clone());
        Ok(Shell {
            seams: Seams::wire(setup.sources(), engine, file, fence),
            audit,
            state,
            telemetry: Telemetry::log_only(),
            dry_run: act.is_some_and(|a| a.dry_run),
            notifier,
            _target: lock,
            lease,
        })
    }

    fn context(&self) -> Context<'_> {
        Context {
            actuator: &self.seams.actuator,
            sources: &self.seams.sources,
            audit: &self.audit,
            state: &self.state,
            clock: &SystemClock,
            telemetry: &self.telemetry,
            dry_run: self.dry_run,
            evaluate: Evaluate::OffThread,
            late: false,
            standby: None,
        }
    }

    /// Finish interrupted scales before acting, saying so.
    async fn reconcile(&self, service: &str) -> Result<()> {
        for r in reconcile::reconcile(&self.context(), service).await? {
            eprintln!("note: {}", reconcile::describe(&r));
        }
        Ok(())
    }

    /// Let go of the lease, if held; let queued notifications go out (a
    /// few seconds at most).
    async fn close(self) {
        let Shell {
            audit,
            notifier,
            lease,
            ..
        } = self;
        if let Some(held) = lease {
            held.release().await;
        }
        close_audit(audit, notifier).await;
    }
}

/// The audit log, telling `WEBHOOK_URL` (when set) of each action; the
/// notifier's worker runs on the command's runtime.
fn audit_log(
    setup: &Setup<'_>,
    act: Option<&ActArgs>,
) -> (AuditLog, Option<tokio::task::JoinHandle<()>>) {
    let audit = AuditLog::in_dir(setup.state_dir);
    match act.and_then(ActArgs::webhook) {
        Some(url) => {
            let metrics = Arc::new(crate::telemetry::metrics::Metrics::new());
            let (n, worker) = Notifier::start(url.to_string(), Delivery::default(), metrics);
            (audit.with_observer(Arc::new(n)), Some(worker))
        }
        None => (audit, None),
    }
}

/// Close the audit log and let queued notifications go out.
async fn close_audit(audit: AuditLog, notifier: Option<tokio::task::JoinHandle<()>>) {
    drop(audit);
    if let Some(worker) = notifier
        && !notifier::flush(worker).await
    {
        eprintln!("warning: notifications still pending at exit were dropped");
    }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The policy file, and a note when its plugin does not load (the commands
/// that need only the file go on).
fn file_only(setup: &Setup<'_>, args: &PolicyArgs, command: &str) -> Result<PolicyFile> {
    let file = PolicyFile::load(&args.policy, &overrides(args))?;
    if let Err(e) = load_plugin(setup.sandbox, &file.plugin) {
        eprintln!(
            "note: the policy's plugin does not load ({}: {}); {command} does not need it, automatic scaling holds until it is fixed",
            e.stage.as_str(),
            e.detail()
        );
    }
    Ok(file)
}

/// The policy's bounds as given on the command line.
pub fn overrides(args: &PolicyArgs) -> Overrides {
    Overrides {
        min_replicas: args.min_replicas,
        max_replicas: args.max_replicas,
    }
}

/// The state directory, with the service's lock held for `command` (the
/// lock is released when the file is dropped).
fn locked(state_dir: &Path, service: &str, command: &str) -> Result<(StateDir, std::fs::File)> {
    let state = StateDir::open(state_dir)?;
    let lock = state.lock(service, command, SystemClock.now_ms())?;
    Ok((state, lock))
}

/// `scale-up [N]` / `scale-down [N]`: N is the replica count wanted
/// (default: one more or one fewer), clamped to min/max with the clamp said.
pub fn scale(
    setup: &Setup<'_>,
    args: &PolicyArgs,
    act: &ActArgs,
    wanted: Wanted,
    command: &str,
) -> Result<ExitCode> {
    let file = file_only(setup, args, command)?;
    let (state, _lock) = locked(setup.state_dir, &file.service, command)?;
    runtime()?.block_on(async {
        let shell = Shell::open(setup, &file, state, Some(act), command).await?;
        shell.reconcile(&file.service).await?;
        let request = Request {
            actor: Actor::Manual,
            wanted,
            reason: None,
            request: None,
        };
        let outcome = manual::scale(&shell.context(), &file, request).await;
        shell.close().await;
        print_manual(&actuators::describe(&file.target), outcome?, args.json)
    })
}

fn print_manual(what: &str, outcome: manual::Outcome, json: bool) -> Result<ExitCode> {
    let notes = match &outcome {
        manual::Outcome::NothingToDo { notes, .. }
        | manual::Outcome::WouldScale { notes, .. }
        | manual::Outcome::Scaled { notes, .. } => notes,
    };
    for n in notes {
        eprintln!("note: {n}");
    }
    match outcome {
        manual::Outcome::NothingToDo { at, .. } => {
            outln!("{what}: already at {at} replica(s); nothing to do");
            Ok(ExitCode::SUCCESS)
        }
        manual::Outcome::WouldScale { decision: d, .. } => {
            outln!(
                "dry run: would scale {} -> {} (audited as would-scale; nothing changed)",
                d.current,
                d.target
            );
            Ok(ExitCode::SUCCESS)
        }
        manual::Outcome::Scaled { report, .. } => {
            render::print_report(&report, json);
            finish(&report)
        }
    }
}

fn finish(report: &ScaleReport) -> Result<ExitCode> {
    if report.outcome == Outcome::Succeeded {
        return Ok(ExitCode::SUCCESS);
    }
    Err(ScaleFailed(format!(
        "the scale {} -> {} ended {:?} at {} replica(s){}{}",
        report.from,
        report.to,
        report.outcome,
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
    .into())
}

/// `reset`: clear the service's cooldowns (the seed's `reset`), audited;
/// the audit log and sample history are kept.
pub fn reset(setup: &Setup<'_>, args: &PolicyArgs, act: &ActArgs) -> Result<ExitCode> {
    let file = file_only(setup, args, "reset")?;
    let service = &file.service;
    // Nothing was ever recorded where no state directory is: a mistyped
    // --state-dir is said, not created and audited as a reset.
    if !setup.state_dir.is_dir() {
        return Err(InvalidInput(format!(
            "no state directory at {}: {service} has no cooldowns there to reset (is --state-dir the daemon's?)",
            setup.state_dir.display()
        ))
        .into());
    }
    let (state, _lock) = locked(setup.state_dir, service, "reset")?;
    let asked = operator::Asked {
        actor: Actor::Manual,
        request: None,
        reason: None,
        dry_run: act.dry_run,
        now: SystemClock.now_ms(),
    };
    let what = runtime()?.block_on(async {
        let (audit, notifier) = audit_log(setup, Some(act));
        let done = operator::reset(&state, &audit, service, asked);
        close_audit(audit, notifier).await;
        done
    })?;
    outln!("{service}: {what}; the audit log and sample history are kept");
    Ok(ExitCode::SUCCESS)
}

/// `check`: one pass (collect, evaluate, guard, act unless a dry run).
pub fn check(setup: &Setup<'_>, args: &PolicyArgs, act: &ActArgs) -> Result<ExitCode> {
    let policy = Arc::new(ReadyPolicy::load(
        setup.sandbox,
        &args.policy,
        &overrides(args),
    )?);
    let (state, _lock) = locked(setup.state_dir, &policy.file.service, "check")?;
    runtime()?.block_on(async {
        let shell = Shell::open(setup, &policy.file, state, Some(act), "check").await?;
        shell.reconcile(&policy.file.service).await?;
        let pass = controller::pass(&shell.context(), &policy).await;
        let dry_run = shell.dry_run;
        let what = shell.seams.actuator.describe();
        shell.close().await;
        let p = pass?;
        print_check(&policy, &p, &what, dry_run, args.json)?;
        match &p.report {
            Some(r) => finish(r),
            None => Ok(ExitCode::SUCCESS),
        }
    })
}

fn print_check(
    policy: &ReadyPolicy,
    p: &controller::Pass,
    what: &str,
    dry_run: bool,
    json: bool,
) -> Result<()> {
    let e = &p.evaluation;
    if json {
        let out = serde_json::json!({
            "service": policy.file.service,
            "target": what,
            "dry_run": dry_run,
            "usage": p.collected.usage,
            "recommendation": e.recommendation,
            "failure": e.failure,
            "decision": e.decision,
            "shadow": p.shadow,
            "scale": p.report,
        });
        outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    out!(
        "{}",
        render::check(policy, &p.input, e, p.collected.usage.as_ref())
    );
    if dry_run && e.decision.is_scale() {
        outln!("dry run: not acting (would scale; the dry-run cooldown starts)");
    }
    if let Some(sh) = &p.shadow {
        outln!(
            "shadow {}: {} to {}{}",
            policy
                .shadow
                .as_ref()
                .map(|s| s.plugin.id().to_string())
                .unwrap_or_default(),
            sh.decision.direction,
            sh.decision.target,
            if e.diverges(sh) { " (diverges)" } else { "" }
        );
    }
    if let Some(r) = &p.report {
        render::print_report(r, false);
    }
    Ok(())
}

/// `health`: the engine, the target, its replicas.
pub fn health(setup: &Setup<'_>, args: &PolicyArgs) -> Result<ExitCode> {
    let file = file_only(setup, args, "health")?;
    runtime()?.block_on(async {
        let target = &file.target;
        let engine = Engine::connect(target.docker_host.as_deref()).await?;
        let actuator = Seams::wire(Sources::new(), engine.clone(), &file, None).actuator;
        let observed = actuator.status().await?;
        let mut problems = Vec::new();
        let prometheus = match &setup.prometheus {
            None => None,
            Some(p) => Some(match p.ready().await {
                Ok(()) => format!("ok ({})", p.url),
                Err(e) => {
                    problems.push(e.clone());
                    e
                }
            }),
        };
        if observed.running < file.guard.min_replicas {
            problems.push(format!(
                "{} replica(s) running, below min_replicas {}",
                observed.running, file.guard.min_replicas
            ));
        }
        for r in observed
            .replicas
            .iter()
            .filter(|r| r.readiness != Readiness::Ready)
        {
            problems.push(format!("{} is {:?} ({})", r.name, r.readiness, r.state));
        }
        print_health(
            &engine,
            &actuator,
            &observed,
            prometheus.as_deref(),
            &problems,
            args.json,
        )?;
        if problems.is_empty() {
            Ok(ExitCode::SUCCESS)
        } else {
            Err(Unhealthy(problems.join("; ")).into())
        }
    })
}

fn print_health(
    engine: &Engine,
    actuator: &DockerActuator,
    observed: &actuators::Observed,
    prometheus: Option<&str>,
    problems: &[String],
    json: bool,
) -> Result<()> {
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "engine": { "host": engine.host, "version": engine.version, "api_version": engine.api_version },
                "target": actuator.describe(),
                "prometheus": prometheus,
                "running": observed.running,
                "ready": observed.ready,
                "replicas": observed.replicas,
                "problems": problems,
            }))?
        );
        return Ok(());
    }
    outln!(
        "engine: ok ({}, Docker {}, API {})",
        engine.host,
        engine.version,
        engine.api_version
    );
    outln!("target: {} found", actuator.describe());
    if let Some(p) = prometheus {
        outln!("prometheus: {p}");
    }
    outln!(
        "replicas: {} running, {} ready",
        observed.running,
        observed.ready
    );
    for r in &observed.replicas {
        outln!("  {:<28} {:<10} {:?}", r.name, r.state, r.readiness);
    }
    Ok(())
}

/// `report`: replicas, metrics, scores and the last actions, from the
/// engine and the audit log. Nothing is saved.
pub fn report(setup: &Setup<'_>, args: &PolicyArgs, lease_name: &str) -> Result<ExitCode> {
    let policy = Arc::new(ReadyPolicy::load(
        setup.sandbox,
        &args.policy,
        &overrides(args),
    )?);
    // A read-only command creates nothing: a missing state directory is
    // said, and read as one where nothing was recorded.
    if !setup.state_dir.is_dir() {
        eprintln!(
            "note: no state directory at {}: nothing recorded there (point --state-dir or VEDFOLNIR_STATE_DIR at the daemon's)",
            setup.state_dir.display()
        );
    }
    runtime()?.block_on(async {
        let state = StateDir::read_only(setup.state_dir);
        let shell = Shell::open(setup, &policy.file, state, None, "report").await?;
        let service = &policy.file.service;
        let seen = controller::look(&shell.context(), &policy).await?;
        let record = shell.audit.summary(service)?;
        let now = SystemClock.now_ms();
        let pace = shell.context().state.state(service, now)?.pace;
        let lease = lease_of(&shell, lease_name).await?;
        if args.json {
            print_report_json(&policy, &shell, &seen, &record, &pace, &lease)?;
        } else {
            out!("{}", report_text(&policy, &shell, &seen, &record, now));
            out!("{}", lease_text(&lease, seen.observed.marks.as_ref()));
            out!("{}", pace_text(&pace));
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// The lease of a Swarm target, as its record says: `None` for a
/// Compose target; `Some(None)` while no daemon ever took it.
async fn lease_of(shell: &Shell, name: &str) -> Result<Option<Option<crate::lease::Record>>> {
    if !matches!(shell.seams.actuator.target.kind, TargetKind::Swarm) {
        return Ok(None);
    }
    let store = crate::lease::SwarmStore {
        engine: shell.seams.actuator.engine.clone(),
        name: name.to_string(),
    };
    use crate::lease::Store as _;
    Ok(Some(store.read().await?.map(|(_, record)| record)))
}

/// Who leads a Swarm target, and what the last write left on the service.
fn lease_text(
    lease: &Option<Option<crate::lease::Record>>,
    marks: Option<&actuators::swarm::Marks>,
) -> String {
    let Some(lease) = lease else {
        return String::new();
    };
    let mut out = match lease {
        None => "lease: never taken (no daemon serves this Swarm yet)\n".to_string(),
        Some(r) => match &r.holder {
            Some(h) => format!(
                "lease: held by {} ({}) at epoch {}\n",
                h.name,
                if h.listen.is_empty() {
                    "a command line"
                } else {
                    &h.listen
                },
                r.epoch
            ),
            None => format!("lease: free (let go at epoch {})\n", r.epoch),
        },
    };
    if let Some(m) = marks {
        let _ = writeln!(
            out,
            "on the service: last write at epoch {}, last action {}",
            m.epoch.map_or("-".into(), |e| e.to_string()),
            m.last_action.as_deref().unwrap_or("none")
        );
    }
    out
}

fn print_report_json(
    policy: &ReadyPolicy,
    shell: &Shell,
    seen: &controller::Look,
    record: &audit::Summary,
    pace: &crate::state::Pace,
    lease: &Option<Option<crate::lease::Record>>,
) -> Result<()> {
    outln!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "service": policy.file.service,
            "target": shell.seams.actuator.describe(),
            "replicas": {
                "running": seen.observed.running,
                "ready": seen.collected.usage.as_ref().map(|u| u.ready),
                "containers": seen.observed.replicas,
            },
            "usage": seen.collected.usage,
            "recommendation": seen.evaluation.recommendation,
            "decision": seen.evaluation.decision,
            "last_scale_up": record.last_up,
            "last_scale_down": record.last_down,
            "interrupted": record.interrupted,
            "pace": pace,
            "lease": lease.as_ref().map(|l| l.as_ref().map(|r| serde_json::json!({
                "holder": r.holder,
                "epoch": r.epoch,
            }))),
            "marks": seen.observed.marks,
        }))?
    );
    Ok(())
}

fn report_text(
    policy: &ReadyPolicy,
    shell: &Shell,
    seen: &controller::Look,
    record: &audit::Summary,
    now: TimestampMs,
) -> String {
    let mut out = String::new();
    let usage = seen.collected.usage.as_ref();
    let _ = writeln!(out, "{}", shell.seams.actuator.describe());
    let _ = writeln!(
        out,
        "replicas: {} running, {} ready (min {}, max {})",
        seen.observed.running,
        usage.map(|u| u.ready).unwrap_or(seen.observed.ready),
        policy.file.guard.min_replicas,
        policy.file.guard.max_replicas
    );
    for r in &seen.observed.replicas {
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
        render::pct(usage.and_then(|u| u.cpu)),
        render::pct(usage.and_then(|u| u.memory)),
        usage
            .map(render::oom_kills)
            .unwrap_or_else(|| "unknown".into())
    );
    if let Some(u) = usage {
        let _ = writeln!(
            out,
            "  cpu throttled {} of periods; replica stats read by {}",
            render::pct(u.cpu_throttled),
            render::read_by(u)
        );
    }
    out.push_str(&render::judgement(policy, &seen.evaluation));
    out.push_str(&last_actions(record, now));
    out
}

/// How the recorded passes kept to their interval.
fn pace_text(pace: &crate::state::Pace) -> String {
    if pace.passes == 0 {
        return "passes: none recorded\n".into();
    }
    let slowest = pace
        .slowest
        .as_ref()
        .map(|(stage, ms)| format!(", slowest stage {stage} {ms} ms"))
        .unwrap_or_default();
    format!(
        "passes: {} recorded, {} late; the last took {} ms{slowest}\n",
        pace.passes, pace.late, pace.last_ms
    )
}

fn last_actions(record: &audit::Summary, now: TimestampMs) -> String {
    let mut out = String::new();
    for (label, d) in [("scale-up", Direction::Up), ("scale-down", Direction::Down)] {
        match record.last(d) {
            None => {
                let _ = writeln!(out, "last {label}: never");
            }
            Some(r) => {
                let rep = r.report.as_ref();
                let _ = writeln!(
                    out,
                    "last {label}: {} ago, {} -> {} ({:?}, {:?})",
                    format_elapsed((now - r.time_ms).max(0) as u64),
                    r.from,
                    rep.map(|p| p.reached).unwrap_or(r.to),
                    r.actor,
                    rep.map(|p| p.outcome).unwrap_or(Outcome::Failed)
                );
            }
        }
    }
    for r in &record.interrupted {
        let _ = writeln!(
            out,
            "interrupted: {} {} -> {} started {} ago and never finished",
            r.direction,
            r.from,
            r.to,
            format_elapsed((now - r.time_ms).max(0) as u64)
        );
    }
    out
}
