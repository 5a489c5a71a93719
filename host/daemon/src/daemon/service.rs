//! One service's loop: a pass every interval, holding the service's lock
//! for as long as it runs. API requests (scale, pause, resume) reach it on
//! a channel and run between its passes, so a service is never scaled by
//! two things at once. Before its first action the loop reconciles the
//! scales a previous process left unfinished.
//!
//! ```text
//!   connect engine ──fail──> count, hold, retry next tick
//!        │
//!   reconcile (once) ──fail──> hold, retry next tick
//!        │
//!   tick ──> controller::pass ──> print, publish status
//!   request ──> controller::manual::scale | pause/resume ──> reply
//!   stop ──> finish the pass in flight, release the lock
//! ```

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::shared::{LoopCommand, Shared};
use super::status::{SEED_RECORDS, ShadowView};
use crate::audit::{Actor, AuditRecord, Event, PluginRecord};
use crate::clock::{SystemClock, format_time};
use crate::config::TargetKind;
use crate::controller::manual::{self, ManualError, Request, Wanted};
use crate::controller::{self, Context, Pass, PassError, operator, reconcile};
use crate::engine::EngineError;
use crate::lease::{Lease, Role};
use crate::policy::{ReadyPolicy, signal_values, verdict};
use crate::seams::Seams;
use crate::telemetry;

/// A running loop.
#[derive(Debug)]
pub struct Spawned {
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
    lock: std::fs::File,
}

impl Spawned {
    /// Ask the loop to stop after its pass in flight, wait for it, release
    /// its lock.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.handle.await;
        drop(self.lock);
    }
}

/// Start a service's loop; it holds `lock` until it stops.
pub fn spawn(
    shared: &Arc<Shared>,
    policy: watch::Receiver<Arc<ReadyPolicy>>,
    lock: std::fs::File,
) -> Spawned {
    let service = policy.borrow().file.service.clone();
    let (cmd_tx, cmd_rx) = mpsc::channel(8);
    shared
        .commands
        .lock()
        .expect("commands lock")
        .insert(service, cmd_tx);
    let (stop, stop_rx) = watch::channel(false);
    let handle = tokio::spawn(run(policy, shared.clone(), stop_rx, cmd_rx));
    Spawned { stop, handle, lock }
}

/// Stop a service's loop after its pass in flight; its lock is released
/// once it has stopped.
pub fn retire(shared: &Arc<Shared>, service: &str, spawned: Spawned) {
    shared
        .commands
        .lock()
        .expect("commands lock")
        .remove(service);
    shared
        .reconciled
        .lock()
        .expect("reconciled lock")
        .remove(service);
    let forget = |shared: &Shared, service: &str| {
        shared
            .status
            .lock()
            .expect("status lock")
            .services
            .remove(service);
    };
    forget(shared, service);
    let service = service.to_string();
    let s = shared.clone();
    let waiter = tokio::spawn(async move {
        spawned.stop().await;
        // The pass that was in flight may have published meanwhile.
        forget(&s, &service);
        outln!("{service}: stopped; its lock is released");
    });
    shared.retiring.lock().expect("retiring lock").push(waiter);
}

/// One service once its engine answers: its seams, and what holds the
/// target for this daemon.
struct Connected {
    seams: Seams,
    reconciled: bool,
    /// The lock of a Compose target on its engine, held while connected
    /// (a Swarm target is held by the lease instead).
    _target: Option<std::fs::File>,
    /// The lease of a Swarm target.
    lease: Option<Lease>,
}

impl Connected {
    /// Why this daemon does not act on the target now (another leads), or
    /// `None` when it may.
    fn standby(&self) -> Option<String> {
        let lease = self.lease.as_ref()?;
        let role = lease.role.borrow();
        match role.fence(tokio::time::Instant::now()) {
            Some(_) => None,
            None => Some(role.standing_by()),
        }
    }

    fn context<'a>(&'a self, shared: &'a Shared, late: bool) -> Context<'a> {
        Context {
            actuator: &self.seams.actuator,
            sources: &self.seams.sources,
            audit: &shared.audit,
            state: &shared.state,
            clock: &SystemClock,
            telemetry: &shared.telemetry,
            dry_run: shared.options.dry_run,
            evaluate: controller::Evaluate::OffThread,
            late,
            standby: None,
        }
    }
}

/// Connect to the policy's engine and reconcile, or say why not.
async fn ready<'a>(
    seams: &'a mut Option<Connected>,
    policy: &ReadyPolicy,
    shared: &Shared,
) -> Result<&'a Connected, PassError> {
    if seams.is_none() {
        let target = &policy.file.target;
        let engine = shared.engine(target.docker_host.as_deref()).await?;
        // One scaler per target: a Swarm's daemons elect one by the lease
        // in the Swarm's store; on one engine, whatever the state
        // directory, the lock file; until the holder lets go, every pass
        // says who holds it.
        let (lock, lease) = match target.kind {
            TargetKind::Swarm => (None, Some(shared.lease(&engine).await)),
            TargetKind::Compose { .. } => {
                let lock = crate::state::lock_target(
                    &engine.id,
                    &target.lock_name(),
                    &policy.file.service,
                    "run",
                    crate::clock::now_ms(),
                )?;
                (Some(lock), None)
            }
        };
        let wired = Seams::wire(shared.sources.clone(), engine, &policy.file, lease.clone());
        *seams = Some(Connected {
            _target: lock,
            lease,
            seams: wired,
            reconciled: false,
        });
    }
    let s = seams.as_mut().expect("connected above");
    if !s.reconciled {
        let service = &policy.file.service;
        for r in reconcile::reconcile(&s.context(shared, false), service).await? {
            outln!("{service}: {}", reconcile::describe(&r));
        }
        s.reconciled = true;
        shared
            .reconciled
            .lock()
            .expect("reconciled lock")
            .insert(service.clone());
    }
    Ok(s)
}

/// Resolves when the lease's role changes; never without a lease (or
/// once its task has ended).
async fn role_changed(rx: &mut Option<watch::Receiver<Role>>) {
    let alive = match rx.as_mut() {
        Some(r) => r.changed().await.is_ok(),
        None => false,
    };
    if alive {
        return;
    }
    *rx = None;
    std::future::pending::<()>().await
}

async fn run(
    policy_rx: watch::Receiver<Arc<ReadyPolicy>>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    mut commands: mpsc::Receiver<LoopCommand>,
) {
    let service = policy_rx.borrow().file.service.clone();
    let mut seams: Option<Connected> = None;
    // Passes where the shadow policy decided otherwise, since this loop
    // began (the pass audits when a divergence starts or changes).
    let mut divergences = 0u64;
    // The lease's role (a Swarm target): a change runs a pass at once, so
    // a takeover acts without waiting out the interval.
    let mut role: Option<watch::Receiver<Role>> = None;
    let mut led: Option<u64> = None;
    let mut ticker = tokio::time::interval(shared.options.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Told to stop, the loop runs no more passes and takes no more
    // requests, but answers those already queued (each recorded): the
    // closed channel still yields them, then ends.
    let mut stopping = false;
    loop {
        // A tick tells when it was due: with `Delay`, a pass that overran
        // its interval makes the next one start at once, late by the overrun.
        let (command, late_by) = tokio::select! {
            biased;
            c = commands.recv() => match c {
                Some(c) => (Some(c), Duration::ZERO),
                None => break,
            },
            _ = stop.changed(), if !stopping => {
                stopping = true;
                commands.close();
                continue;
            }
            due = ticker.tick(), if !stopping => (None, due.elapsed()),
            _ = role_changed(&mut role), if !stopping => (None, Duration::ZERO),
        };
        let late = controller::is_late(late_by, shared.options.interval);
        // The policy as of this pass: a reload swaps it between passes.
        let policy = policy_rx.borrow().clone();
        if let Some(LoopCommand::Pause {
            paused,
            reason,
            request,
            reply,
        }) = command
        {
            let _ = reply.send(pause(&shared, &service, paused, reason, request));
            continue;
        }
        let result = match ready(&mut seams, &policy, &shared).await {
            Ok(s) => {
                if role.is_none() {
                    role = s.lease.as_ref().map(|l| l.role.clone());
                }
                lease_changes(&shared, &service, s, &mut led);
                turn(s, &policy, &shared, command, late, &mut divergences).await
            }
            Err(e) => Err(fail_command(command, e)),
        };
        if let Err(e) = result {
            failed(&shared, &service, &e);
            if matches!(e, PassError::Engine(EngineError::Unreachable { .. })) {
                let host = policy.file.target.docker_host.as_deref();
                shared.forget_engine(host).await;
            }
            if matches!(e, PassError::Engine(_)) {
                seams = None;
            }
        }
    }
    tracing::info!(service = %service, "loop stopped");
}

/// Answer a request that arrived while the engine was unreachable.
fn fail_command(command: Option<LoopCommand>, e: PassError) -> PassError {
    if let Some(LoopCommand::Scale { reply, .. }) = command {
        // The same failure, said again to the caller.
        let again = PassError::Engine(EngineError::api(crate::errors::chain(&e)));
        let _ = reply.send(Err(ManualError::Pass(again)));
    }
    e
}

/// Record a change of this daemon's part for the service (the epoch it
/// leads at, `led`): a takeover, or the lease lost (each audited, so
/// notified).
fn lease_changes(shared: &Shared, service: &str, seams: &Connected, led: &mut Option<u64>) {
    let Some(lease) = &seams.lease else {
        return;
    };
    let (leading, why) = {
        let role = lease.role.borrow();
        let now = tokio::time::Instant::now();
        (role.fence(now).map(|f| f.epoch), role.standing_by())
    };
    if *led == leading {
        return;
    }
    let now = crate::clock::now_ms();
    let mut records = Vec::new();
    if let Some(epoch) = *led {
        records.push((
            Event::LeaseLost,
            format!(
                "lease {} lost at epoch {epoch}: {why}; this daemon writes nothing to {service}",
                lease.config.name
            ),
        ));
    }
    if let Some(epoch) = leading {
        records.push((
            Event::Takeover,
            format!(
                "lease {} taken at epoch {epoch} by {} ({}): this daemon acts on {service}",
                lease.config.name, lease.me.name, lease.me.listen
            ),
        ));
    }
    for (event, reason) in records {
        outln!("{service}: {reason}");
        let record = AuditRecord {
            reasons: vec![reason],
            ..AuditRecord::new(service, event, Actor::Auto, now)
        };
        if let Err(e) = shared.audit.append(&record) {
            tracing::warn!(service = %service, "cannot record a change of lease: {e}");
        }
    }
    *led = leading;
}

/// One turn of the loop: a request, or a pass.
async fn turn(
    seams: &Connected,
    policy: &Arc<ReadyPolicy>,
    shared: &Shared,
    command: Option<LoopCommand>,
    late: bool,
    divergences: &mut u64,
) -> Result<(), PassError> {
    let standby = seams.standby();
    let cx = Context {
        standby: standby.as_deref(),
        ..seams.context(shared, late)
    };
    if let Some(LoopCommand::Scale {
        replicas,
        reason,
        request,
        reply,
    }) = command
    {
        let answer = match &standby {
            Some(why) => Err(ManualError::Standby {
                message: format!("this daemon does not act on {}: {why}", policy.file.service),
            }),
            None => api_scale(&cx, policy, replicas, reason, request).await,
        };
        let _ = reply.send(answer);
        return Ok(());
    }
    // The pass runs to its end even if a stop arrives meanwhile.
    let p = controller::pass(&cx, policy).await?;
    shared.telemetry.emit(telemetry::Event::Passed {
        service: &policy.file.service,
        timings: &p.timings,
        read_by: p.collected.usage.as_ref().map(|u| &u.read_by),
        late,
        interval: shared.options.interval,
    });
    let mut line = decision_line(policy, &p, cx.dry_run);
    if let Some(why) = &standby {
        line = format!("{line}; {why}: not acted on");
    }
    outln!("{line}");
    if p.diverged() {
        *divergences += 1;
    }
    publish(shared, policy, &p, *divergences, late);
    Ok(())
}

/// A pass or a request that failed: logged, counted, shown in the status.
fn failed(shared: &Shared, service: &str, e: &PassError) {
    let msg = crate::errors::chain(e);
    shared.telemetry.emit(telemetry::Event::PassFailed {
        service,
        stage: e.stage(),
        error: &msg,
    });
    outln!("{service}: pass failed, holding: {msg}");
    let mut status = shared.status.lock().expect("status lock");
    let s = status.services.entry(service.to_string()).or_default();
    s.passes += 1;
    s.last_pass = Some(format_time(crate::clock::now_ms()));
    s.errors = vec![msg];
}

/// Pause or resume automatic scaling, audited when it changes.
fn pause(
    shared: &Shared,
    service: &str,
    paused: bool,
    reason: Option<String>,
    request: String,
) -> Result<bool, PassError> {
    let asked = operator::Asked {
        actor: Actor::Api,
        request: Some(request),
        reason,
        dry_run: shared.options.dry_run,
        now: crate::clock::now_ms(),
    };
    let changed = operator::pause(&shared.state, &shared.audit, service, paused, asked)?;
    shared
        .status
        .lock()
        .expect("status lock")
        .services
        .entry(service.to_string())
        .or_default()
        .paused = paused;
    outln!(
        "{service}: automatic scaling {} (api){}",
        if paused { "paused" } else { "resumed" },
        if changed { "" } else { ", as it already was" }
    );
    Ok(changed)
}

/// A scale through the API: the controller's manual scale, printed.
async fn api_scale(
    cx: &Context<'_>,
    policy: &ReadyPolicy,
    replicas: u32,
    reason: Option<String>,
    request: String,
) -> Result<manual::Outcome, ManualError> {
    let service = &policy.file.service;
    let request = Request {
        actor: Actor::Api,
        wanted: Wanted::To(replicas),
        reason,
        request: Some(request),
    };
    let outcome = manual::scale(cx, &policy.file, request).await?;
    match &outcome {
        manual::Outcome::NothingToDo { .. } => {}
        manual::Outcome::WouldScale { decision: d, .. } => outln!(
            "{service}: WOULD SCALE {} {} -> {} (api, dry run)",
            d.direction,
            d.current,
            d.target
        ),
        manual::Outcome::Scaled {
            decision: d,
            report,
            ..
        } => outln!(
            "{service}: SCALE {} {} -> {} (api); {:?}, {} running",
            d.direction.to_string().to_uppercase(),
            d.current,
            d.target,
            report.outcome,
            report.reached
        ),
    }
    Ok(outcome)
}

/// One line per decision, for the terminal and the journal.
fn decision_line(policy: &ReadyPolicy, p: &Pass, dry_run: bool) -> String {
    let service = &policy.file.service;
    let d = &p.evaluation.decision;
    let verdict = verdict(d, if dry_run { "WOULD SCALE" } else { "SCALE" });
    let scores = match (&p.evaluation.recommendation, &p.evaluation.failure) {
        (Some(r), _) => format!(
            "scores {}",
            (policy.score_thresholds).compare(r.scale_up_score, r.scale_down_score)
        ),
        (None, Some(f)) => format!("policy failed ({}): {}", f.kind, f.message),
        (None, None) => String::new(),
    };
    let why = d
        .reasons
        .last()
        .map(|r| format!("; {}: {}", r.rule.as_str(), r.message))
        .unwrap_or_default();
    let outcome = match &p.report {
        Some(r) => format!("; {:?}, {} running", r.outcome, r.reached),
        None if dry_run && d.is_scale() => "; dry run: audited, not acted on".into(),
        None => String::new(),
    };
    let values = signal_values(&p.input);
    format!("{service}: {verdict}  {values}; {scores}{why}{outcome}")
}

/// Publish one pass in the status.
fn publish(shared: &Shared, policy: &ReadyPolicy, p: &Pass, divergences: u64, late: bool) {
    let service = &policy.file.service;
    // The loop's first pass (the daemon started, or the file is new): the
    // chart begins with what the audit log recorded, read before the
    // status is locked, as a service with few records is read back to the
    // log's start and every status reader would wait on it.
    let first = (shared.status.lock().expect("status lock").services)
        .get(service)
        .is_none_or(|s| s.history.is_empty());
    let seed = first.then(|| shared.audit.recent(Some(service), SEED_RECORDS));
    let mut status = shared.status.lock().expect("status lock");
    let s = status.services.entry(service.clone()).or_default();
    s.replicas = Some(p.input.current_replicas);
    s.ready = Some(p.input.ready_replicas);
    match seed {
        Some(Ok(records)) if s.history.is_empty() => s.seed(&records, p.input.now, SEED_RECORDS),
        Some(Err(e)) => {
            tracing::warn!(error = %e, "the chart starts empty: the audit log was not read")
        }
        _ => {}
    }
    s.record(
        p.input.now,
        p.input.current_replicas,
        p.input.ready_replicas,
    );
    s.signals = controller::signals_of(&p.input);
    s.scores = p.evaluation.scores();
    (s.cooldown_up_ends_ms, s.cooldown_down_ends_ms) = p.guard.cooldowns_end(&policy.file.guard);
    s.passes += 1;
    s.pace.record(
        &p.timings,
        late,
        p.collected.usage.as_ref().map(|u| &u.read_by),
    );
    s.last_pass = Some(format_time(p.input.now));
    s.last_decision = Some(p.last.clone());
    s.paused = p
        .evaluation
        .decision
        .reasons
        .iter()
        .any(|r| r.rule == vedfolnir_core::guard::Rule::Paused);
    s.errors = p.collected.errors.clone();
    if let Some(f) = &p.evaluation.failure {
        s.errors
            .push(format!("policy failed ({}): {}", f.kind, f.message));
    }
    s.shadow = match (&policy.shadow, &p.shadow) {
        (Some(sh), Some(e)) => Some(ShadowView {
            plugin: PluginRecord::from(&**sh.plugin.id()),
            direction: e.decision.direction,
            target: e.decision.target,
            scores: e.scores(),
            diverges: p.evaluation.diverges(e),
            divergences,
        }),
        _ => None,
    };
}
