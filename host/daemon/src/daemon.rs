//! `run`: the daemon.
//!
//! - One loop per policy file ([`service`]), each running the controller's
//!   pass every interval and holding its service's lock.
//! - The policies folder is watched and hot-reloaded ([`reload`]); SIGHUP
//!   rescans at once.
//! - The HTTP server ([`api`]) listens on 127.0.0.1 by default: status,
//!   decisions, `/metrics`, the Alertmanager webhook, token-protected
//!   scale/pause/resume.
//! - SIGTERM or SIGINT lets every loop finish the pass or action in flight
//!   (an action is never cut in half; every audit write is fsynced), gives
//!   pending notifications a moment, then exits.

pub mod api;
pub mod page;
pub mod reload;
pub mod service;
pub mod shared;
pub mod status;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};
use tokio::sync::watch;

use crate::audit::AuditLog;
use crate::clock::{Stopwatch, now_ms};
use crate::config::{Overrides, Problem, Problems};
use crate::policy::{PolicyError, ReadyPolicy};
use crate::sources::Sources;
use crate::sources::alertmanager::AlertBook;
use crate::state::StateDir;
use crate::telemetry::Telemetry;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::notifier::{self, Delivery, Notifier};
pub use api::lease_line;
use reload::Registry;
pub use shared::RunOptions;
use shared::Shared;
use status::Status;

/// A policy loaded and locked at start, ready to serve.
struct Loaded {
    path: PathBuf,
    fingerprint: u64,
    policy: ReadyPolicy,
    lock: std::fs::File,
    started: Stopwatch,
}

/// Load and lock what the operator gave at start: a missing folder or a bad
/// file is an error now, and only later a "keep the last good one".
fn load_at_start(
    sandbox: &vedfolnir_sandbox::Sandbox,
    state: &StateDir,
    overrides: &Overrides,
    options: &RunOptions,
) -> Result<Vec<Loaded>> {
    let listing = crate::config::list(&options.policies);
    if let Some((root, why)) = listing.missing.first() {
        return Err(Problems(vec![Problem {
            file: root.clone(),
            key: String::new(),
            message: format!(
                "{why}: give an existing policies folder or file (--policies / VEDFOLNIR_POLICIES)"
            ),
        }])
        .into());
    }
    let mut problems = Vec::new();
    let mut loaded = Vec::new();
    for (f, started, fp, result) in load_all(sandbox, &listing.policies, overrides) {
        match result {
            Ok(p) => loaded.push((f.clone(), fp, p, started)),
            Err(PolicyError::Config(Problems(mut list))) => problems.append(&mut list),
            Err(PolicyError::Plugin(e)) => {
                return Err(e).with_context(|| format!("{}: plugin", f.display()));
            }
        }
    }
    if !problems.is_empty() {
        return Err(Problems(problems).into());
    }
    // One active scaler per service: fail at once when another holds one.
    let mut locked = Vec::new();
    for (path, fingerprint, policy, started) in loaded {
        let lock = state.lock(&policy.file.service, "run", now_ms())?;
        locked.push(Loaded {
            path,
            fingerprint,
            policy,
            lock,
            started,
        });
    }
    Ok(locked)
}

/// Load every file, on as many threads as there are cores (each load
/// parses, links and smoke-tests; files naming one component share it), in
/// the listing's order.
pub(crate) fn load_all<'a>(
    sandbox: &vedfolnir_sandbox::Sandbox,
    files: &'a [PathBuf],
    overrides: &Overrides,
) -> Vec<(
    &'a PathBuf,
    Stopwatch,
    u64,
    Result<ReadyPolicy, PolicyError>,
)> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let load = || {
        let mut out = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(f) = files.get(i) else { break out };
            let started = Stopwatch::start();
            let fp = reload::file_fingerprint(f, overrides);
            let result = ReadyPolicy::load_for_serving(sandbox, f, overrides);
            out.push((i, (f, started, fp, result)));
        }
    };
    let mut all: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers).map(|_| s.spawn(load)).collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a policy load does not panic"))
            .collect()
    });
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, l)| l).collect()
}

/// Run the daemon until SIGTERM or SIGINT.
pub fn run(
    sandbox: &vedfolnir_sandbox::Sandbox,
    state: StateDir,
    base: Sources,
    overrides: &Overrides,
    options: RunOptions,
) -> Result<ExitCode> {
    // Refuse to start, and so to act, without a place to record actions.
    let audit = AuditLog::in_dir(state.dir());
    audit.check_writable()?;
    state.check_writable()?;
    let loaded = load_at_start(sandbox, &state, overrides, &options)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(serve(
        sandbox, state, audit, base, overrides, options, loaded,
    ))
}

async fn serve(
    sandbox: &vedfolnir_sandbox::Sandbox,
    state: StateDir,
    audit: AuditLog,
    base: Sources,
    overrides: &Overrides,
    options: RunOptions,
    loaded: Vec<Loaded>,
) -> Result<ExitCode> {
    let metrics = Arc::new(Metrics::new());
    let alerts = Arc::new(AlertBook::default());
    let (audit, notifier) = match &options.webhook_url {
        Some(url) => {
            let (n, worker) = Notifier::start(url.clone(), Delivery::default(), metrics.clone());
            (audit.with_observer(Arc::new(n)), Some(worker))
        }
        None => (audit, None),
    };
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("cannot listen on {}", options.listen))?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared {
        telemetry: Telemetry::counting(metrics.clone()),
        metrics,
        sources: base.with(alerts.clone()),
        alerts,
        audit,
        state,
        status: Mutex::new(Status::default()),
        commands: Mutex::new(BTreeMap::new()),
        reconciled: Mutex::default(),
        stopping: false.into(),
        started: false.into(),
        // The address bound (a port 0 given is a port now).
        options: RunOptions {
            listen: addr,
            ..options.clone()
        },
        retiring: Mutex::new(Vec::new()),
        engines: Default::default(),
        lease: Default::default(),
    });
    let (stop_tx, mut server_stop) = watch::channel(false);
    let app = api::router(shared.clone());
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = server_stop.changed().await;
            })
            .await
    });
    let mut registry = Registry::new(sandbox.clone(), overrides.clone(), options.policies.clone());
    let (watcher, events) = reload::watch(registry.watch_dirs())?;
    for l in loaded {
        registry.adopt(&l.path, l.fingerprint, l.policy, l.lock, l.started, &shared);
    }
    // What changed since, and the folders' modules.
    registry.rescan(&shared).await;
    // Every loop is registered: `/health` now waits for their reconciliation.
    shared.started.store(true, Ordering::SeqCst);
    print_banner(&options, registry.services(), addr);
    watch_until_stopped(&mut registry, &shared, events).await?;
    drop(watcher);
    outln!("vedfolnir-autoscaler: stopping after the passes in flight");
    stop_loops(&mut registry, &shared).await;
    let _ = stop_tx.send(true);
    let _ = server.await;
    // Drop every sender so the notifier's queue ends, then give it a
    // moment to deliver what is queued.
    drop(shared);
    if let Some(worker) = notifier
        && !notifier::flush(worker).await
    {
        eprintln!("vedfolnir-autoscaler: notifications still pending at exit were dropped");
    }
    Ok(ExitCode::SUCCESS)
}

/// Stop every loop after its pass in flight, then let go of the lease.
async fn stop_loops(registry: &mut Registry, shared: &Shared) {
    // Refuse new requests; the loops answer those already queued.
    shared.stopping.store(true, Ordering::SeqCst);
    // Every loop at once: stopped one after another, a loop would go on
    // starting passes (and scale actions) while the one before it finished.
    futures_util::future::join_all(registry.drain().into_iter().map(|s| s.stop())).await;
    let retiring = std::mem::take(&mut *shared.retiring.lock().expect("retiring lock"));
    for r in retiring {
        let _ = r.await;
    }
    // No loop acts any more: another daemon may take the lease at once.
    shared.release_lease().await;
}

fn print_banner(options: &RunOptions, services: usize, addr: std::net::SocketAddr) {
    outln!(
        "vedfolnir-autoscaler: {} service(s), every {}{}, http://{addr} (/api/v1/status, /api/v1/decisions, /metrics, /health); watching {}{}",
        services,
        vedfolnir_core::format_duration(options.interval.as_millis() as u64),
        if options.dry_run {
            ", DRY RUN (decisions are audited as \"would scale\", nothing is changed)"
        } else {
            ""
        },
        options
            .policies
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        match (&options.api_token, &options.alertmanager_token) {
            (Some(_), Some(_)) => "",
            (None, Some(_)) => "; API writes off (no token)",
            (Some(_), None) => "; Alertmanager webhook off (no token)",
            (None, None) => "; API writes and Alertmanager webhook off (no tokens)",
        }
    );
    outln!("vedfolnir-autoscaler: {}", stats_path());
}

/// Where the docker source will read replicas' CPU and memory from.
fn stats_path() -> String {
    use crate::sources::cgroup::{Cgroups, DEFAULT_ROOT, ROOT_ENV};
    match Cgroups::from_env() {
        Some(c) => format!(
            "replica stats from the {} files at {} (the engine's stats API for a remote engine, \
             or a replica whose files are not there)",
            c.version().path_name(),
            c.root().display()
        ),
        None => format!(
            "replica stats through the engine's stats API: no cgroup hierarchy at {} ({ROOT_ENV})",
            std::env::var(ROOT_ENV).unwrap_or_else(|_| DEFAULT_ROOT.into())
        ),
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Rescan on file events, SIGHUP and a timer until SIGTERM or SIGINT.
async fn watch_until_stopped(
    registry: &mut Registry,
    shared: &Arc<Shared>,
    mut events: tokio::sync::mpsc::UnboundedReceiver<()>,
) -> Result<()> {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot install the SIGHUP handler")?;
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut periodic = tokio::time::interval(reload::RESCAN_EVERY);
    periodic.tick().await;
    loop {
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = hup.recv() => {
                outln!("vedfolnir-autoscaler: SIGHUP, rescanning the policies");
                if registry.rescan(shared).await == 0 {
                    outln!("vedfolnir-autoscaler: no policy changed");
                }
            }
            Some(()) = events.recv() => {
                reload::settle(&mut events).await;
                registry.rescan(shared).await;
            }
            _ = periodic.tick() => {
                registry.rescan(shared).await;
            }
        }
    }
}
