//! What the daemon's loops, its policy registry and its API share.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::status::Status;
use crate::audit::AuditLog;
use crate::controller::PassError;
use crate::controller::manual::{self, ManualError};
use crate::sources::Sources;
use crate::sources::alertmanager::AlertBook;
use crate::state::StateDir;
use crate::telemetry::Telemetry;
use crate::telemetry::metrics::Metrics;

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
    pub engines: tokio::sync::Mutex<BTreeMap<Option<String>, crate::engine::Engine>>,
}

impl Shared {
    /// The engine at `host`, connected once.
    pub async fn engine(
        &self,
        host: Option<&str>,
    ) -> Result<crate::engine::Engine, crate::engine::EngineError> {
        let mut engines = self.engines.lock().await;
        let key = host.map(str::to_string);
        if let Some(e) = engines.get(&key) {
            return Ok(e.clone());
        }
        let engine = crate::engine::Engine::connect(host).await?;
        engines.insert(key, engine.clone());
        Ok(engine)
    }

    /// Forget the connection to `host`: the next [`Shared::engine`]
    /// connects again (after the engine stopped answering).
    pub async fn forget_engine(&self, host: Option<&str>) {
        self.engines.lock().await.remove(&host.map(str::to_string));
    }
}
