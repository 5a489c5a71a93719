//! What the daemon's loops, its policy registry and its API share.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::status::Status;
use crate::audit::AuditLog;
use crate::controller::PassError;
use crate::controller::manual::{self, ManualError};
use crate::engine::Engine;
use crate::lease::{Change, Holder, Lease, SwarmStore};
use crate::sources::Sources;
use crate::sources::alertmanager::AlertBook;
use crate::state::StateDir;
use crate::telemetry::Telemetry;
use crate::telemetry::metrics::{LeaseLabel, Metrics};

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
    /// The bearer token `POST /webhook/alertmanager` requires.
    pub alertmanager_token: Option<String>,
    /// Where each action is posted (WEBHOOK_URL).
    pub webhook_url: Option<String>,
    /// The lease of the Swarm targets.
    pub lease: crate::lease::LeaseConfig,
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
        /// The request's audit id.
        request: String,
        /// The answer.
        reply: oneshot::Sender<Result<manual::Outcome, ManualError>>,
    },
    /// Pause (true) or resume (false) automatic scaling.
    Pause {
        /// Pause or resume.
        paused: bool,
        /// The caller's reason.
        reason: Option<String>,
        /// The request's audit id.
        request: String,
        /// The answer: whether it changed anything.
        reply: oneshot::Sender<Result<bool, PassError>>,
    },
}

/// What the loops, the registry and the API share.
#[derive(Debug)]
pub struct Shared {
    /// The daemon's metrics.
    pub metrics: Arc<Metrics>,
    /// Logs and counts (into `metrics`).
    pub telemetry: Telemetry,
    /// Firing Alertmanager alerts.
    pub alerts: Arc<AlertBook>,
    /// The audit log (notifying WEBHOOK_URL).
    pub audit: AuditLog,
    /// Cooldowns, histories, locks.
    pub state: StateDir,
    /// What the status API shows.
    pub status: Mutex<Status>,
    /// Each service's request channel (closed by its loop when it stops).
    pub commands: Mutex<BTreeMap<String, mpsc::Sender<LoopCommand>>>,
    /// The services whose interrupted actions were reconciled at their
    /// loop's start: `/health` answers 200 once every loop's is.
    pub reconciled: Mutex<std::collections::BTreeSet<String>>,
    /// The daemon is stopping: requests are refused, not queued.
    pub stopping: std::sync::atomic::AtomicBool,
    /// The policies found at start have their loops (until then `/health`
    /// has no loop to wait for, and must not say ok).
    pub started: std::sync::atomic::AtomicBool,
    /// The options.
    pub options: RunOptions,
    /// The sources every service reads (Prometheus, the alerts); each
    /// loop adds its engine's docker source.
    pub sources: Sources,
    /// Loops being stopped (their files were removed), awaited at exit.
    pub retiring: Mutex<Vec<JoinHandle<()>>>,
    /// One connection per engine address (`None`: `DOCKER_HOST` or the
    /// local socket), shared by every service on it, so their passes share
    /// the engine's view (one listing per pass, not one per service).
    pub engines: tokio::sync::Mutex<BTreeMap<Option<String>, Engine>>,
    /// The lease of the Swarm targets, started by the first loop with one.
    pub lease: tokio::sync::Mutex<Option<LeaseTask>>,
}

/// The lease task and how to stop it.
#[derive(Debug)]
pub struct LeaseTask {
    /// What the loops read.
    pub lease: Lease,
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

impl Shared {
    /// The engine at `host`, connected once.
    pub async fn engine(&self, host: Option<&str>) -> Result<Engine, crate::engine::EngineError> {
        let mut engines = self.engines.lock().await;
        let key = host.map(str::to_string);
        if let Some(e) = engines.get(&key) {
            return Ok(e.clone());
        }
        let engine = Engine::connect(host).await?;
        engines.insert(key, engine.clone());
        Ok(engine)
    }

    /// The lease of the Swarm targets, kept on `engine` (a Swarm manager),
    /// started on first use: a look now, then one every renewal interval.
    pub async fn lease(&self, engine: &Engine) -> Lease {
        let mut task = self.lease.lock().await;
        if let Some(t) = task.as_ref() {
            return t.lease.clone();
        }
        let config = self.options.lease.clone();
        let store = Box::new(SwarmStore {
            engine: engine.clone(),
            name: config.name.clone(),
        });
        let me = Holder::me(&self.listen_url(), "run");
        let metrics = self.metrics.clone();
        let label = LeaseLabel {
            lease: config.name.clone(),
        };
        metrics.leader.get_or_create(&label).set(0.0);
        let on_change = Box::new(move |change: &Change| match change {
            Change::Took { epoch, from } => {
                metrics.leader.get_or_create(&label).set(1.0);
                metrics.lease_takeovers.get_or_create(&label).inc();
                let from = from
                    .as_ref()
                    .map_or(String::new(), |h| format!(" from {}", h.name));
                outln!(
                    "lease {}: took it at epoch {epoch}{from}; this daemon acts",
                    label.lease
                );
            }
            Change::Lost { epoch, why } => {
                metrics.leader.get_or_create(&label).set(0.0);
                metrics.lease_lost.get_or_create(&label).inc();
                outln!(
                    "lease {}: lost it (epoch {epoch}): {why}; this daemon stands by",
                    label.lease
                );
            }
        });
        let (stop, stop_rx) = watch::channel(false);
        let (lease, handle) = crate::lease::spawn(store, me, config, on_change, stop_rx);
        *task = Some(LeaseTask {
            lease: lease.clone(),
            stop,
            handle,
        });
        lease
    }

    /// Let go of the lease (a standby takes it at its next look), if this
    /// daemon holds it.
    pub async fn release_lease(&self) {
        if let Some(t) = self.lease.lock().await.take() {
            let _ = t.stop.send(true);
            let _ = t.handle.await;
        }
    }

    /// Where this daemon's API answers, as a URL for callers sent here:
    /// the listen address, or this host's name in place of an unspecified
    /// one (0.0.0.0: every interface).
    pub fn listen_url(&self) -> String {
        let listen = self.options.listen;
        if listen.ip().is_unspecified() {
            return format!("http://{}:{}", crate::engine::host_name(), listen.port());
        }
        format!("http://{listen}")
    }

    /// Forget the connection to `host`: the next [`Shared::engine`]
    /// connects again (after the engine stopped answering).
    pub async fn forget_engine(&self, host: Option<&str>) {
        self.engines.lock().await.remove(&host.map(str::to_string));
    }
}
