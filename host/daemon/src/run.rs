//! `run`: the daemon.
//!
//! - One evaluation loop per policy file, each doing the same pass as
//!   `check` every interval, holding the service's lock for as long as it
//!   runs. API requests (scale, pause, resume) reach a loop on a channel and
//!   run between its passes, so a service is never scaled by two things at
//!   once.
//! - The policies folder is watched and hot-reloaded (`reload.rs`); SIGHUP
//!   rescans at once.
//! - At start, an action with an intent but no outcome in the audit is
//!   reconciled against the engine and recorded.
//! - The HTTP server (`api.rs`) listens on 127.0.0.1 by default.
//! - SIGTERM or SIGINT lets every loop finish the pass or action in flight
//!   (an action is never cut in half; every audit write is fsynced), gives
//!   pending notifications a moment, then exits.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::alerts::AlertBook;
use crate::config::Overrides;
use crate::docker::Engine;
use crate::metrics::Metrics;
use crate::notifier::{Delivery, Notifier};
use crate::ops::{self, Intent, Manual, Pass, Sources, pass};
use crate::policy::ReadyPolicy;
use crate::reload::Registry;
use crate::store::{Actor, AuditRecord, Event, LastDecision, PluginRecord, Scores, Store};

/// What `run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Policy files, or folders of them (`*.toml`) and their modules.
    pub policies: Vec<PathBuf>,
    /// Time between passes.
    pub interval: Duration,
    /// Where the HTTP server listens.
    pub listen: SocketAddr,
    /// Decide, audit and expose "would scale", never act.
    pub dry_run: bool,
    /// The bearer token the API's write endpoints require.
    pub api_token: Option<String>,
    /// Where each action is posted (WEBHOOK_URL).
    pub webhook_url: Option<String>,
}

/// A failed policy file or module, as the status API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LoadErrorView {
    /// The file.
    pub path: String,
    /// The stage that failed.
    pub stage: String,
    /// Why.
    pub message: String,
    /// Since when (RFC 3339).
    pub since: String,
}

/// A `.wasm` file in a watched folder.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleView {
    /// What it is, when it passed every stage.
    pub plugin: Option<PluginRecord>,
    /// The stage and message, when it did not.
    pub error: Option<String>,
}

/// The shadow policy's last decision.
#[derive(Debug, Clone, Serialize)]
pub struct ShadowView {
    /// The shadow plugin.
    pub plugin: PluginRecord,
    /// Its decision's direction.
    pub direction: vedfolnir_core::Direction,
    /// Its target.
    pub target: u32,
    /// Its scores.
    pub scores: Option<Scores>,
    /// Whether it differs from the live decision.
    pub diverges: bool,
    /// Passes where it differed, since the daemon started.
    pub divergences: u64,
}

/// One service, as the status API shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServiceStatus {
    /// The policy file.
    pub policy_file: String,
    /// The live plugin: the policy version in force.
    pub plugin: Option<PluginRecord>,
    /// When that version was loaded.
    pub policy_loaded: String,
    /// Running replicas, at the last pass.
    pub replicas: Option<u32>,
    /// Ready replicas, at the last pass.
    pub ready: Option<u32>,
    /// Each signal's newest value, or why it is missing.
    pub signals: BTreeMap<String, serde_json::Value>,
    /// The live policy's scores.
    pub scores: Option<Scores>,
    /// The last decision ("would scale" in a dry run).
    pub last_decision: Option<LastDecision>,
    /// The shadow policy, when there is one.
    pub shadow: Option<ShadowView>,
    /// Automatic scaling paused.
    pub paused: bool,
    /// Passes run since the daemon started.
    pub passes: u64,
    /// When the last pass ran.
    pub last_pass: Option<String>,
    /// What went wrong at the last pass, and the policy file's load error.
    pub errors: Vec<String>,
}

/// What the status API shows.
#[derive(Debug, Default, Serialize)]
pub struct Status {
    /// By service.
    pub services: BTreeMap<String, ServiceStatus>,
    /// Policy files and modules that failed, by path.
    pub load_errors: BTreeMap<String, LoadErrorView>,
    /// `.wasm` files in the watched folders.
    pub modules: BTreeMap<String, ModuleView>,
    /// Policy folders that are missing.
    pub missing_roots: Vec<String>,
}

/// An API request for a service's loop.
#[derive(Debug)]
pub enum LoopCommand {
    /// Scale to a replica count (bounded by min/max).
    Scale {
        /// The count wanted.
        replicas: u32,
        /// The caller's reason.
        reason: Option<String>,
        /// The answer.
        reply: oneshot::Sender<Reply>,
    },
    /// Pause (true) or resume (false) automatic scaling.
    Pause {
        /// Pause or resume.
        paused: bool,
        /// The caller's reason.
        reason: Option<String>,
        /// The answer.
        reply: oneshot::Sender<Reply>,
    },
}

/// A loop's answer to an API request: an HTTP status and a JSON body.
pub type Reply = (u16, serde_json::Value);

/// A running loop.
pub struct Spawned {
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
    lock: std::fs::File,
}

/// What the loops, the registry and the API share.
pub struct Shared {
    /// The daemon's metrics.
    pub metrics: Arc<Metrics>,
    /// Firing Alertmanager alerts.
    pub alerts: Arc<AlertBook>,
    /// State and audit.
    pub store: Store,
    /// What the status API shows.
    pub status: Mutex<Status>,
    /// Each service's request channel.
    pub commands: Mutex<BTreeMap<String, mpsc::Sender<LoopCommand>>>,
    /// The options.
    pub options: RunOptions,
    /// Where signals come from.
    pub sources: Arc<Sources>,
    /// Loops being stopped (their files were removed), awaited at exit.
    retiring: Mutex<Vec<JoinHandle<()>>>,
    /// The API's rate limit.
    pub limiter: Mutex<crate::api::Limiter>,
}

impl Shared {
    /// A policy version now serves its service.
    pub fn policy_loaded(&self, policy: &ReadyPolicy) {
        let mut status = self.status.lock().expect("status lock");
        let s = status
            .services
            .entry(policy.file.service.clone())
            .or_default();
        s.policy_file = policy.file.path.display().to_string();
        s.plugin = Some(PluginRecord::from(&**policy.plugin.id()));
        s.policy_loaded = ops::format_time(ops::now_ms());
    }

    /// Start a service's loop; it holds `lock` until it stops.
    pub fn spawn_loop(
        self: &Arc<Self>,
        policy: watch::Receiver<Arc<ReadyPolicy>>,
        lock: std::fs::File,
    ) -> Spawned {
        let service = policy.borrow().file.service.clone();
        let (cmd_tx, cmd_rx) = mpsc::channel(8);
        self.commands
            .lock()
            .expect("commands lock")
            .insert(service, cmd_tx);
        let (stop, stop_rx) = watch::channel(false);
        let handle = tokio::spawn(service_loop(policy, self.clone(), stop_rx, cmd_rx));
        Spawned { stop, handle, lock }
    }

    /// Stop a service's loop after its pass in flight; its lock is released
    /// once it has stopped.
    pub fn retire(self: &Arc<Self>, service: &str, spawned: Spawned) {
        self.commands.lock().expect("commands lock").remove(service);
        self.status
            .lock()
            .expect("status lock")
            .services
            .remove(service);
        let Spawned { stop, handle, lock } = spawned;
        let _ = stop.send(true);
        let service = service.to_string();
        let shared = self.clone();
        let waiter = tokio::spawn(async move {
            let _ = handle.await;
            drop(lock);
            // The pass that was in flight may have published meanwhile.
            shared
                .status
                .lock()
                .expect("status lock")
                .services
                .remove(&service);
            println!("{service}: stopped; its lock is released");
        });
        self.retiring.lock().expect("retiring lock").push(waiter);
    }
}

/// One line per decision, for the terminal and the journal.
fn decision_line(service: &str, p: &Pass, dry_run: bool) -> String {
    let d = &p.evaluation.decision;
    let verb = if dry_run { "WOULD SCALE" } else { "SCALE" };
    let verdict = match d.direction {
        vedfolnir_core::Direction::Up => format!("{verb} UP {} -> {}", d.current, d.target),
        vedfolnir_core::Direction::Down => format!("{verb} DOWN {} -> {}", d.current, d.target),
        vedfolnir_core::Direction::Hold => format!("HOLD at {}", d.current),
    };
    let scores = match (&p.evaluation.recommendation, &p.evaluation.failure) {
        (Some(r), _) => format!("scores up {} down {}", r.scale_up_score, r.scale_down_score),
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
    format!("{service}: {verdict}  {scores}{why}{outcome}")
}

/// Answer an API request between passes.
async fn handle(cmd: LoopCommand, engine: &Engine, policy: &ReadyPolicy, shared: &Shared) {
    let service = &policy.file.service;
    let store = &shared.store;
    match cmd {
        LoopCommand::Pause {
            paused,
            reason,
            reply,
        } => {
            let result = store
                .update_state(service, |s| std::mem::replace(&mut s.paused, paused))
                .and_then(|was| {
                    if was != paused {
                        let mut reasons = vec![format!(
                            "automatic scaling {} through the API",
                            if paused { "paused" } else { "resumed" }
                        )];
                        reasons.extend(reason);
                        store.audit(&AuditRecord {
                            reasons,
                            dry_run: shared.options.dry_run,
                            ..AuditRecord::new(
                                service,
                                if paused {
                                    Event::Paused
                                } else {
                                    Event::Resumed
                                },
                                Actor::Api,
                                ops::now_ms(),
                            )
                        })?;
                    }
                    Ok(was)
                });
            let answer = match result {
                Ok(was) => {
                    shared
                        .status
                        .lock()
                        .expect("status lock")
                        .services
                        .entry(service.clone())
                        .or_default()
                        .paused = paused;
                    println!(
                        "{service}: automatic scaling {} (api){}",
                        if paused { "paused" } else { "resumed" },
                        if was == paused {
                            ", as it already was"
                        } else {
                            ""
                        }
                    );
                    (
                        200,
                        serde_json::json!({ "service": service, "paused": paused, "changed": was != paused }),
                    )
                }
                Err(e) => (500, serde_json::json!({ "error": format!("{e:#}") })),
            };
            let _ = reply.send(answer);
        }
        LoopCommand::Scale {
            replicas,
            reason,
            reply,
        } => {
            let answer = api_scale(engine, policy, shared, replicas, reason).await;
            let _ = reply.send(answer);
        }
    }
}

async fn api_scale(
    engine: &Engine,
    policy: &ReadyPolicy,
    shared: &Shared,
    replicas: u32,
    reason: Option<String>,
) -> Reply {
    let service = &policy.file.service;
    let from = match crate::actuate::running(engine, &policy.file.target).await {
        Ok(n) => n,
        Err(e) => return (502, serde_json::json!({ "error": e.to_string() })),
    };
    let way = if replicas >= from {
        Manual::Up
    } else {
        Manual::Down
    };
    let (direction, to, notes) = match ops::manual_plan(policy, from, way, Some(replicas)) {
        Ok(Some(plan)) => plan,
        Ok(None) => {
            return (
                200,
                serde_json::json!({ "service": service, "replicas": from, "result": "nothing to do: already there" }),
            );
        }
        Err(e) => return (409, serde_json::json!({ "error": format!("{e:#}") })),
    };
    let mut reasons = vec![format!("api {direction} to {to}")];
    reasons.extend(reason);
    reasons.extend(notes.iter().cloned());
    let intent = Intent::manual(Actor::Api, direction, from, to, reasons);
    if shared.options.dry_run {
        let record = ops::record_of(service, Event::WouldScale, true, ops::now_ms(), intent);
        return match shared.store.audit(&record) {
            Ok(()) => {
                println!("{service}: WOULD SCALE {direction} {from} -> {to} (api, dry run)");
                (
                    200,
                    serde_json::json!({ "service": service, "dry_run": true, "would_scale": { "from": from, "to": to }, "notes": notes }),
                )
            }
            Err(e) => (500, serde_json::json!({ "error": format!("{e:#}") })),
        };
    }
    match ops::act(engine, policy, &shared.store, intent).await {
        Ok(report) => {
            println!(
                "{service}: SCALE {} {from} -> {to} (api); {:?}, {} running",
                direction.to_string().to_uppercase(),
                report.outcome,
                report.reached
            );
            let ok = report.outcome == crate::actuate::Outcome::Succeeded;
            (
                if ok { 200 } else { 502 },
                serde_json::json!({ "service": service, "notes": notes, "report": report }),
            )
        }
        Err(e) => (500, serde_json::json!({ "error": format!("{e:#}") })),
    }
}

/// Publish one pass in the status.
fn publish(shared: &Shared, policy: &ReadyPolicy, p: &Pass, divergences: u64) {
    let service = &policy.file.service;
    let mut status = shared.status.lock().expect("status lock");
    let s = status.services.entry(service.clone()).or_default();
    s.replicas = Some(p.input.current_replicas);
    s.ready = Some(p.input.ready_replicas);
    s.signals = ops::signals_of(&p.input);
    s.scores = ops::scores_of(&p.evaluation);
    s.passes += 1;
    s.last_pass = Some(ops::format_time(p.input.now));
    s.last_decision = Some(p.last.clone());
    s.paused = p
        .evaluation
        .decision
        .reasons
        .iter()
        .any(|r| r.rule.as_str() == "paused");
    s.errors = p.usage.errors.clone();
    if let Some(f) = &p.evaluation.failure {
        s.errors
            .push(format!("policy failed ({}): {}", f.kind, f.message));
    }
    s.shadow = match (&policy.shadow, &p.shadow) {
        (Some(sh), Some(e)) => Some(ShadowView {
            plugin: PluginRecord::from(&**sh.plugin.id()),
            direction: e.decision.direction,
            target: e.decision.target,
            scores: ops::scores_of(e),
            diverges: ops::diverges(&p.evaluation, e),
            divergences,
        }),
        _ => None,
    };
}

/// Audit a shadow divergence when it starts or changes.
fn record_divergence(
    shared: &Shared,
    policy: &ReadyPolicy,
    p: &Pass,
    last: &mut Option<(String, String)>,
) -> bool {
    let Some(sh) = &p.shadow else {
        *last = None;
        return false;
    };
    if !ops::diverges(&p.evaluation, sh) {
        *last = None;
        return false;
    }
    let live = format!(
        "{} to {}",
        p.evaluation.decision.direction, p.evaluation.decision.target
    );
    let shadow = format!("{} to {}", sh.decision.direction, sh.decision.target);
    if last.as_ref() != Some(&(live.clone(), shadow.clone())) {
        let shadow_plugin = policy
            .shadow
            .as_ref()
            .map(|s| s.plugin.id().to_string())
            .unwrap_or_default();
        let mut reasons = vec![format!(
            "live {} decides {live}; shadow {shadow_plugin} decides {shadow}",
            policy.plugin.id()
        )];
        reasons.extend(
            ops::reasons_of(sh)
                .into_iter()
                .map(|r| format!("shadow {r}")),
        );
        let record = AuditRecord {
            dry_run: shared.options.dry_run,
            direction: sh.decision.direction,
            from: p.input.current_replicas,
            to: sh.decision.target,
            reasons,
            plugin: policy
                .shadow
                .as_ref()
                .map(|s| PluginRecord::from(&**s.plugin.id())),
            scores: ops::scores_of(sh),
            inputs: ops::inputs_of(&p.input),
            ..AuditRecord::new(
                &policy.file.service,
                Event::ShadowDiverged,
                Actor::Auto,
                p.input.now,
            )
        };
        if let Err(e) = shared.store.audit(&record) {
            tracing::error!(error = %format!("{e:#}"), "cannot audit a shadow divergence");
        }
        *last = Some((live, shadow));
    }
    true
}

async fn service_loop(
    policy_rx: watch::Receiver<Arc<ReadyPolicy>>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    mut commands: mpsc::Receiver<LoopCommand>,
) {
    let service = policy_rx.borrow().file.service.clone();
    let dry_run = shared.options.dry_run;
    let mut engine: Option<Engine> = None;
    let mut reconciled = false;
    let mut divergence: Option<(String, String)> = None;
    let mut divergences = 0u64;
    let mut ticker = tokio::time::interval(shared.options.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut command = None;
        tokio::select! {
            _ = ticker.tick() => {}
            Some(c) = commands.recv() => command = Some(c),
            _ = stop.changed() => break,
        }
        // The policy as of this pass: a reload swaps it between passes.
        let policy = policy_rx.borrow().clone();
        if engine.is_none() {
            match Engine::connect(policy.file.target.docker_host.as_deref()).await {
                Ok(e) => engine = Some(e),
                Err(e) => {
                    tracing::error!(service = %service, error = %e, "engine unreachable; holding");
                    shared.metrics.source_error(&service, "docker");
                    if let Some(
                        LoopCommand::Scale { reply, .. } | LoopCommand::Pause { reply, .. },
                    ) = command
                    {
                        let _ = reply.send((502, serde_json::json!({ "error": e.to_string() })));
                    }
                    continue;
                }
            }
        }
        let e = engine.as_ref().expect("connected above");
        if !reconciled {
            match ops::reconcile(e, &policy, &shared.store).await {
                Ok(done) => {
                    reconciled = true;
                    for r in done {
                        let rep = r
                            .report
                            .as_ref()
                            .expect("reconciled records carry a report");
                        println!(
                            "{service}: reconciled an interrupted scale {} -> {} ({}): {:?}, {} running",
                            r.from, r.to, r.action_id, rep.outcome, rep.reached
                        );
                    }
                }
                Err(err) => {
                    tracing::error!(service = %service, error = %format!("{err:#}"), "cannot reconcile interrupted actions; holding");
                    continue;
                }
            }
        }
        if let Some(c) = command {
            handle(c, e, &policy, &shared).await;
            continue;
        }
        // The pass runs to its end even if a stop arrives meanwhile.
        match pass(
            e,
            &policy,
            &shared.sources,
            &shared.store,
            dry_run,
            Some(&shared.metrics),
        )
        .await
        {
            Ok(p) => {
                println!("{}", decision_line(&service, &p, dry_run));
                if record_divergence(&shared, &policy, &p, &mut divergence) {
                    divergences += 1;
                }
                publish(&shared, &policy, &p, divergences);
            }
            Err(err) => {
                let msg = format!("{err:#}");
                tracing::error!(service = %service, error = %msg, "pass failed; holding");
                println!("{service}: pass failed, holding: {msg}");
                shared.metrics.source_error(&service, "docker");
                let mut status = shared.status.lock().expect("status lock");
                let s = status.services.entry(service.clone()).or_default();
                s.passes += 1;
                s.last_pass = Some(ops::format_time(ops::now_ms()));
                s.errors = vec![msg];
                drop(status);
                if err.chain().any(|c| c.is::<crate::docker::EngineError>()) {
                    engine = None;
                }
            }
        }
        if *stop.borrow() {
            break;
        }
    }
    tracing::info!(service = %service, "loop stopped");
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Run the daemon until SIGTERM or SIGINT.
pub fn run(
    sandbox: &vedfolnir_sandbox::Sandbox,
    store: Store,
    prometheus: Option<crate::prom::Prometheus>,
    overrides: &Overrides,
    options: RunOptions,
) -> Result<ExitCode> {
    // Refuse to start, and so to act, without a place to record actions.
    store.check_writable()?;
    // Fail fast on what the operator gave at start: a missing folder or a
    // bad file is an error now, and only later a "keep the last good one".
    let listing = crate::reload::list(&options.policies);
    if let Some((root, why)) = listing.missing.first() {
        return Err(crate::config::Problems(vec![crate::config::Problem {
            file: root.clone(),
            key: String::new(),
            message: format!(
                "{why}: give an existing policies folder or file (--policies / VEDFOLNIR_POLICIES)"
            ),
        }])
        .into());
    }
    // Loaded once, here: the registry serves these without loading again.
    let mut problems = Vec::new();
    let mut loaded = Vec::new();
    for f in &listing.policies {
        let started = std::time::Instant::now();
        let fp = crate::reload::file_fingerprint(f, overrides);
        match ReadyPolicy::load_for_serving(sandbox, f, overrides) {
            Ok(p) => loaded.push((f.clone(), fp, p, started)),
            Err(crate::policy::PolicyError::Config(crate::config::Problems(mut list))) => {
                problems.append(&mut list)
            }
            Err(crate::policy::PolicyError::Plugin(e)) => {
                return Err(e).with_context(|| format!("{}: plugin", f.display()));
            }
        }
    }
    if !problems.is_empty() {
        return Err(crate::config::Problems(problems).into());
    }
    // One active scaler per service: fail at once when another holds one.
    let mut locked = Vec::new();
    for (path, fp, policy, started) in loaded {
        let lock = store.lock(&policy.file.service)?;
        locked.push((path, fp, policy, lock, started));
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let metrics = Arc::new(Metrics::new());
        let alerts = Arc::new(AlertBook::default());
        let (store, notifier) = match &options.webhook_url {
            Some(url) => {
                let (n, worker) = Notifier::start(url.clone(), Delivery::default(), metrics.clone());
                (store.with_notifier(n), Some(worker))
            }
            None => (store, None),
        };
        let sources = Arc::new(Sources {
            prometheus,
            alerts: Some(alerts.clone()),
        });
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .with_context(|| format!("cannot listen on {}", options.listen))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            metrics: metrics.clone(),
            alerts,
            store,
            status: Mutex::new(Status::default()),
            commands: Mutex::new(BTreeMap::new()),
            options: options.clone(),
            sources,
            retiring: Mutex::new(Vec::new()),
            limiter: Mutex::new(crate::api::Limiter::default()),
        });
        let (stop_tx, mut server_stop) = watch::channel(false);
        let app = crate::api::router(shared.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = server_stop.changed().await;
                })
                .await
        });

        let mut registry = Registry::new(sandbox.clone(), overrides.clone(), options.policies.clone());
        let (watcher, mut events) = crate::reload::watch(registry.watch_dirs())?;
        for (path, fp, policy, lock, started) in locked {
            registry.adopt(&path, fp, policy, lock, started, &shared);
        }
        // What changed since, and the folders' modules.
        registry.rescan(&shared).await;
        println!(
            "vedfolnir-autoscaler: {} service(s), every {}{}, http://{addr} (/api/v1/status, /api/v1/decisions, /metrics, /health); watching {}{}",
            registry.services(),
            vedfolnir_core::format_duration(options.interval.as_millis() as u64),
            if options.dry_run { ", DRY RUN (decisions are audited as \"would scale\", nothing is changed)" } else { "" },
            options
                .policies
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            if options.api_token.is_some() { "" } else { "; API writes off (no token)" }
        );
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("cannot install the SIGHUP handler")?;
        let shutdown = shutdown_signal();
        tokio::pin!(shutdown);
        let mut periodic = tokio::time::interval(crate::reload::RESCAN_EVERY);
        periodic.tick().await;
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = hup.recv() => {
                    println!("vedfolnir-autoscaler: SIGHUP, rescanning the policies");
                    if registry.rescan(&shared).await == 0 {
                        println!("vedfolnir-autoscaler: no policy changed");
                    }
                }
                Some(()) = events.recv() => {
                    crate::reload::settle(&mut events).await;
                    registry.rescan(&shared).await;
                }
                _ = periodic.tick() => {
                    registry.rescan(&shared).await;
                }
            }
        }
        drop(watcher);
        println!("vedfolnir-autoscaler: stopping after the passes in flight");
        for s in registry.drain() {
            let _ = s.stop.send(true);
            let _ = s.handle.await;
            drop(s.lock);
        }
        let retiring = std::mem::take(&mut *shared.retiring.lock().expect("retiring lock"));
        for r in retiring {
            let _ = r.await;
        }
        let _ = stop_tx.send(true);
        let _ = server.await;
        // Drop every sender so the notifier's queue ends, then give it a
        // moment to deliver what is queued.
        drop(shared);
        if let Some(worker) = notifier
            && tokio::time::timeout(Duration::from_secs(5), worker).await.is_err()
        {
            eprintln!("vedfolnir-autoscaler: notifications still pending at exit were dropped");
        }
        Ok(ExitCode::SUCCESS)
    })
}
