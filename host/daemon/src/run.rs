//! `run`: the daemon. One evaluation loop per policy file, each doing the
//! same pass as `check` every interval; an HTTP server on 127.0.0.1 with
//! `/metrics`, `/health` and the Alertmanager webhook
//! (`POST /webhook/alertmanager`). SIGTERM or SIGINT lets every loop finish
//! the pass in flight (an action is never cut in half), then exits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use tokio::sync::watch;

use crate::alerts::AlertBook;
use crate::config::{Overrides, Problems};
use crate::docker::Engine;
use crate::metrics::{KindLabel, Metrics};
use crate::ops::{Pass, Sources, pass};
use crate::policy::{PolicyError, ReadyPolicy};
use crate::store::Store;

/// What `run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Policy files, or folders of them (`*.toml`).
    pub policies: Vec<PathBuf>,
    /// Time between passes.
    pub interval: Duration,
    /// Where the HTTP server listens.
    pub listen: SocketAddr,
    /// Decide and report, never act.
    pub dry_run: bool,
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    alerts: Arc<AlertBook>,
}

/// The policy files named, folders expanded to their `*.toml`, sorted.
fn policy_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("cannot read the policies folder {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "toml"))
                .collect();
            files.sort();
            out.extend(files);
        } else if p.exists() {
            out.push(p.clone());
        } else {
            anyhow::bail!("{}: no such policy file or folder", p.display());
        }
    }
    Ok(out)
}

async fn metrics_handler(
    State(app): State<AppState>,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    (
        StatusCode::OK,
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.encode(),
    )
}

async fn webhook_handler(
    State(app): State<AppState>,
    body: axum::body::Bytes,
) -> (StatusCode, String) {
    let payload: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("not JSON: {e}\n"));
        }
    };
    match app.alerts.ingest(&payload) {
        Ok(n) => {
            for (kind, count) in [
                ("firing", n.firing),
                ("resolved", n.resolved),
                ("ignored", n.ignored),
            ] {
                app.metrics
                    .webhook_alerts
                    .get_or_create(&KindLabel {
                        service: String::new(),
                        kind: kind.into(),
                    })
                    .inc_by(u64::from(count));
            }
            tracing::info!(
                firing = n.firing,
                resolved = n.resolved,
                ignored = n.ignored,
                "alertmanager notification"
            );
            (
                StatusCode::OK,
                serde_json::to_string(&n).expect("serializes") + "\n",
            )
        }
        Err(e) => (StatusCode::UNPROCESSABLE_ENTITY, format!("{e}\n")),
    }
}

/// One line per decision, for the terminal and the journal.
fn decision_line(service: &str, p: &Pass, dry_run: bool) -> String {
    let d = &p.evaluation.decision;
    let verdict = match d.direction {
        vedfolnir_core::Direction::Up => format!("SCALE UP {} -> {}", d.current, d.target),
        vedfolnir_core::Direction::Down => format!("SCALE DOWN {} -> {}", d.current, d.target),
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
        None if dry_run && d.is_scale() => "; dry run, not acting".into(),
        None => String::new(),
    };
    format!("{service}: {verdict}  {scores}{why}{outcome}")
}

async fn service_loop(
    policy_rx: watch::Receiver<Arc<ReadyPolicy>>,
    sources: Arc<Sources>,
    store: Store,
    metrics: Arc<Metrics>,
    options: RunOptions,
    mut stop: watch::Receiver<bool>,
) {
    let service = policy_rx.borrow().file.service.clone();
    let mut engine: Option<Engine> = None;
    let mut ticker = tokio::time::interval(options.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => break,
        }
        // The policy as of this pass: a reload swaps it between passes.
        let policy = policy_rx.borrow().clone();
        if engine.is_none() {
            match Engine::connect(policy.file.target.docker_host.as_deref()).await {
                Ok(e) => engine = Some(e),
                Err(e) => {
                    tracing::error!(service = %service, error = %e, "engine unreachable; holding");
                    metrics.source_error(&service, "docker");
                    continue;
                }
            }
        }
        let e = engine.as_ref().expect("connected above");
        // The pass runs to its end even if a stop arrives meanwhile.
        match pass(
            e,
            &policy,
            &sources,
            &store,
            options.dry_run,
            Some(&metrics),
        )
        .await
        {
            Ok(p) => println!("{}", decision_line(&service, &p, options.dry_run)),
            Err(err) => {
                tracing::error!(service = %service, error = %format!("{err:#}"), "pass failed; holding");
                metrics.source_error(&service, "docker");
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

/// SIGHUP: read every serving policy's file again, with the same checks as
/// at start; a file that fails keeps its last good version serving, and
/// says why. The swap happens between passes.
fn reload(
    sandbox: &vedfolnir_sandbox::Sandbox,
    overrides: &Overrides,
    senders: &[watch::Sender<Arc<ReadyPolicy>>],
    metrics: &Metrics,
) {
    for tx in senders {
        let current = tx.borrow().clone();
        let path = current.file.path.clone();
        let result = match ReadyPolicy::load(sandbox, &path, overrides) {
            Ok(p) if p.file.service != current.file.service => Err(format!(
                "its service changed from {} to {}; restart the daemon to change services",
                current.file.service, p.file.service
            )),
            Ok(p) => {
                let id = p.plugin.id().to_string();
                tx.send_replace(Arc::new(p));
                Ok(id)
            }
            // One line, for the terminal and the journal.
            Err(e) => Err(e
                .to_string()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ")),
        };
        let label = KindLabel {
            service: current.file.service.clone(),
            kind: if result.is_ok() { "ok" } else { "error" }.into(),
        };
        metrics.reloads.get_or_create(&label).inc();
        match result {
            Ok(id) => println!("vedfolnir-autoscaler: reloaded {} ({id})", path.display()),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "reload failed; the last good version keeps serving");
                println!(
                    "vedfolnir-autoscaler: reload of {} failed, the last good version keeps serving: {}",
                    path.display(),
                    e
                );
            }
        }
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

/// Run the daemon until SIGTERM or SIGINT.
pub fn run(
    sandbox: &vedfolnir_sandbox::Sandbox,
    store: Store,
    prometheus: Option<crate::prom::Prometheus>,
    overrides: &Overrides,
    options: RunOptions,
) -> Result<ExitCode> {
    let files = policy_files(&options.policies)?;
    let mut policies = Vec::new();
    let mut problems = Vec::new();
    for f in &files {
        match ReadyPolicy::load(sandbox, f, overrides) {
            Ok(p) => policies.push(Arc::new(p)),
            Err(PolicyError::Config(Problems(mut list))) => problems.append(&mut list),
            Err(PolicyError::Plugin(e)) => {
                return Err(e).with_context(|| format!("{}: plugin", f.display()));
            }
        }
    }
    if !problems.is_empty() {
        return Err(Problems(problems).into());
    }
    if policies.is_empty() {
        anyhow::bail!(
            "no policy files in {}",
            options
                .policies
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    // One active scaler per service, for the daemon's lifetime.
    let mut locks = Vec::new();
    for p in &policies {
        locks.push(store.lock(&p.file.service)?);
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let metrics = Arc::new(Metrics::new());
        let alerts = Arc::new(AlertBook::default());
        let sources = Arc::new(Sources {
            prometheus,
            alerts: Some(alerts.clone()),
        });
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .with_context(|| format!("cannot listen on {}", options.listen))?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .route("/metrics", get(metrics_handler))
            .route("/health", get(|| async { "ok\n" }))
            .route("/webhook/alertmanager", post(webhook_handler))
            .with_state(AppState {
                metrics: metrics.clone(),
                alerts,
            });
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut server_stop = stop_rx.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = server_stop.changed().await;
                })
                .await
        });
        println!(
            "vedfolnir-autoscaler: {} service(s), every {}{}, http://{addr} (/metrics, /health, /webhook/alertmanager)",
            policies.len(),
            vedfolnir_core::format_duration(options.interval.as_millis() as u64),
            if options.dry_run { ", dry run" } else { "" }
        );
        let mut senders = Vec::new();
        let loops: Vec<_> = policies
            .iter()
            .map(|p| {
                let (tx, rx) = watch::channel(p.clone());
                senders.push(tx);
                tokio::spawn(service_loop(
                    rx,
                    sources.clone(),
                    store.clone(),
                    metrics.clone(),
                    options.clone(),
                    stop_rx.clone(),
                ))
            })
            .collect();
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("cannot install the SIGHUP handler")?;
        let shutdown = shutdown_signal();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = hup.recv() => reload(sandbox, overrides, &senders, &metrics),
            }
        }
        println!("vedfolnir-autoscaler: stopping after the passes in flight");
        let _ = stop_tx.send(true);
        for l in loops {
            let _ = l.await;
        }
        let _ = server.await;
        drop(locks);
        Ok(ExitCode::SUCCESS)
    })
}
