//! The Docker engine, as the `docker` source and the actuators share it:
//! connecting (with clear errors for the usual mistakes), and finding a
//! target's replicas by label.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{ContainerInspectResponse, ContainerSummary, EventMessage, HealthStatusEnum};
use bollard::query_parameters::{
    EventsOptionsBuilder, InspectContainerOptions, ListContainersOptionsBuilder,
};
use futures_util::StreamExt;

use crate::config::{Target, TargetKind};

/// Compose's labels.
pub const PROJECT_LABEL: &str = "com.docker.compose.project";
/// The Compose service a container belongs to.
pub const SERVICE_LABEL: &str = "com.docker.compose.service";
/// The replica's number within its Compose service.
pub const NUMBER_LABEL: &str = "com.docker.compose.container-number";
/// Set by Compose on `run` containers, which are not replicas.
pub const ONEOFF_LABEL: &str = "com.docker.compose.oneoff";
/// Swarm's label on a task's container.
pub const SWARM_SERVICE_LABEL: &str = "com.docker.swarm.service.name";
/// Marks the replicas this daemon created.
pub const CREATED_BY_LABEL: &str = "io.vedfolnir.autoscaler.created-by";
/// The action (its audit `action_id`) that created a replica, so an
/// interrupted scale can be judged by what it made.
pub const ACTION_LABEL: &str = "io.vedfolnir.autoscaler.action";

/// What an engine error was caused by: the client's own error, kept as
/// the source (shown after the message by `errors::chain`).
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// A failure talking to the engine, phrased for an operator. Its display
/// is the operator's sentence; the client's error that caused it, when
/// there is one, is its source (`errors::chain` prints both).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The engine cannot be reached at all (socket missing, refused,
    /// permission denied).
    #[error("cannot reach the Docker engine at {host}: {message}")]
    Unreachable {
        /// The engine's address.
        host: String,
        /// Why, and what to do.
        message: String,
        /// The client's error, when it stopped answering mid-way.
        #[source]
        cause: Option<Cause>,
    },
    /// The target has no replicas (or no Swarm service) on the engine.
    #[error("{what}")]
    NotFound {
        /// What is missing, and how to fix it.
        what: String,
    },
    /// The engine answered with an error, or the request failed.
    #[error("{message}")]
    Api {
        /// What was being done, and the engine's answer.
        message: String,
        /// The client's error, when the request failed on its side.
        #[source]
        cause: Option<Cause>,
    },
    /// A write to a Swarm service refused by its fence: this daemon's lease
    /// ran out, or a higher epoch wrote to the service.
    #[error("fenced: {why}")]
    Fenced {
        /// Which, and that nothing was written.
        why: String,
    },
}

impl EngineError {
    /// An engine answer phrased as an error.
    pub fn api(message: impl Into<String>) -> EngineError {
        EngineError::Api {
            message: message.into(),
            cause: None,
        }
    }

    /// An engine unreachable at `host`, saying why.
    pub fn unreachable(host: &str, message: impl Into<String>) -> EngineError {
        EngineError::Unreachable {
            host: host.to_string(),
            message: message.into(),
            cause: None,
        }
    }

    /// A target that is not on the engine.
    pub fn not_found(what: impl Into<String>) -> EngineError {
        EngineError::NotFound { what: what.into() }
    }
}

/// This host's name, for the holder of a lock or lease.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Phrase a bollard error, naming what was being done: an answer from the
/// engine is an API error; no answer at all (the connection refused, cut or
/// timed out) is the engine unreachable, with its address and the cause.
pub fn api_error(engine: &Engine, doing: &str, e: bollard::errors::Error) -> EngineError {
    use bollard::errors::Error as B;
    match e {
        B::DockerResponseServerError {
            status_code,
            message,
        } => EngineError::api(format!(
            "{doing}: the engine answered {status_code}: {message}"
        )),
        transport @ (B::HyperLegacyError { .. }
        | B::IOError { .. }
        | B::RequestTimeoutError
        | B::HyperResponseError { .. }) => EngineError::Unreachable {
            host: engine.host.clone(),
            message: format!("{doing}: it stopped answering"),
            cause: Some(Box::new(transport)),
        },
        other => EngineError::Api {
            message: doing.to_string(),
            cause: Some(Box::new(other)),
        },
    }
}

/// A connected engine.
#[derive(Debug, Clone)]
pub struct Engine {
    /// The client.
    pub docker: Docker,
    /// Where it is, for messages.
    pub host: String,
    /// The engine's own ID (`docker info`): the same whichever address
    /// reaches it; what the lock of a target is keyed by.
    pub id: String,
    /// The engine's own version (e.g. 20.10.24).
    pub version: String,
    /// The API version agreed on.
    pub api_version: String,
    /// The host's CPU count (the CPU limit of a container that has none).
    pub host_cpus: f64,
    /// The host's memory, bytes (the memory limit of a container that has
    /// none); `None` when the engine does not say.
    pub host_memory: Option<u64>,
    /// What the passes of every service on this engine share.
    pub view: Arc<View>,
}

/// Why connecting failed, in words that say what to do.
fn unreachable_message(host: &str, e: &bollard::errors::Error) -> String {
    let lower = crate::errors::chain(e).to_lowercase();
    if lower.contains("permission denied") {
        format!("permission denied on {host}: run as root or as a member of the docker group")
    } else if lower.contains("no such file") || lower.contains("socket not found") {
        format!("{host} does not exist: is the Docker engine running?")
    } else if lower.contains("connection refused") {
        "connection refused: is the Docker engine running?".into()
    } else {
        "it did not answer".into()
    }
}

impl Engine {
    /// Connect to `host` (or `$DOCKER_HOST`, or the local socket) and agree
    /// on an API version the engine speaks.
    pub async fn connect(host: Option<&str>) -> Result<Engine, EngineError> {
        let host = host
            .map(str::to_string)
            .or_else(|| std::env::var("DOCKER_HOST").ok())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".into());
        let unreachable = |e: bollard::errors::Error| EngineError::Unreachable {
            host: host.clone(),
            message: unreachable_message(&host, &e),
            cause: Some(Box::new(e)),
        };
        // Fail early, and clearly, on a socket that is missing or not ours.
        if let Some(path) = host.strip_prefix("unix://") {
            match std::fs::metadata(path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(EngineError::unreachable(
                        &host,
                        format!(
                            "{path} does not exist: is the Docker engine running? (set DOCKER_HOST or target.docker_host to use another)"
                        ),
                    ));
                }
                _ => {}
            }
        }
        let docker = Docker::connect_with_host(&host).map_err(unreachable)?;
        let docker = docker.negotiate_version().await.map_err(unreachable)?;
        let version = docker.version().await.map_err(unreachable)?;
        let info = docker.info().await.map_err(unreachable)?;
        let api = docker.client_version();
        Ok(Engine {
            docker,
            host: host.clone(),
            id: info.id.unwrap_or_else(|| host.clone()),
            version: version.version.unwrap_or_default(),
            api_version: format!("{}.{}", api.major_version, api.minor_version),
            host_cpus: info.ncpu.unwrap_or(1).max(1) as f64,
            host_memory: info.mem_total.filter(|m| *m > 0).map(|m| m as u64),
            view: Arc::default(),
        })
    }
}

/// Where a replica is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Readiness {
    /// Running, and healthy (or running with no healthcheck).
    Ready,
    /// Running, healthcheck not yet passed.
    Starting,
    /// Running, healthcheck failing.
    Unhealthy,
    /// Not running (created, exited, dead, restarting, paused).
    Down,
}

/// One container of the target.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Replica {
    /// Container id.
    pub id: String,
    /// Container name, without the leading '/'.
    pub name: String,
    /// `com.docker.compose.container-number`, when set.
    pub number: Option<u32>,
    /// Creation time, seconds since the epoch.
    pub created: i64,
    /// Docker's state word (running, exited, ...).
    pub state: String,
    /// Ready, starting, unhealthy or down.
    pub readiness: Readiness,
    /// The kernel killed it for memory at some point of its last run.
    pub oom_killed: bool,
    /// When it last started (RFC 3339), for "was it restarted" checks.
    pub started_at: String,
    /// Its address on its first network with one (none with
    /// `network_mode: none` or `host`).
    pub ip: Option<String>,
    /// Container ports published on the host: (container port, host port).
    pub published: Vec<(u16, u16)>,
    /// Created by the autoscaler ([`CREATED_BY_LABEL`]).
    pub ours: bool,
    /// The action that created it ([`ACTION_LABEL`]).
    pub action: Option<String>,
}

impl Replica {
    /// A running replica named `name` (its id too), for tests: no address,
    /// no published port, not one of ours.
    #[cfg(test)]
    pub(crate) fn running(name: &str, readiness: Readiness) -> Replica {
        Replica {
            id: name.into(),
            name: name.into(),
            number: None,
            created: 0,
            state: "running".into(),
            readiness,
            oom_killed: false,
            started_at: String::new(),
            ip: None,
            published: Vec::new(),
            ours: false,
            action: None,
        }
    }

    /// Running (whatever its health).
    pub fn is_running(&self) -> bool {
        self.readiness != Readiness::Down
    }

    /// One of the autoscaler's own replicas that is not running and will
    /// not run again by itself: created and never started, or exited or
    /// dead (a restarting or paused one is left alone). What an interrupted
    /// scale leaves behind.
    pub fn is_abandoned(&self) -> bool {
        self.ours && matches!(self.state.as_str(), "created" | "exited" | "dead")
    }
}

/// The readiness an inspect shows.
pub fn readiness_of(c: &ContainerInspectResponse) -> Readiness {
    let Some(state) = &c.state else {
        return Readiness::Down;
    };
    if state.running != Some(true) || state.restarting == Some(true) || state.paused == Some(true) {
        return Readiness::Down;
    }
    match state.health.as_ref().and_then(|h| h.status) {
        Some(HealthStatusEnum::HEALTHY) | Some(HealthStatusEnum::NONE) | None => Readiness::Ready,
        Some(HealthStatusEnum::EMPTY) => Readiness::Ready,
        Some(HealthStatusEnum::STARTING) => Readiness::Starting,
        Some(HealthStatusEnum::UNHEALTHY) => Readiness::Unhealthy,
    }
}

/// The label filter that finds a target's containers.
pub fn label_filter(target: &Target) -> Vec<String> {
    let mut labels = match &target.kind {
        TargetKind::Compose { project } => vec![
            format!("{PROJECT_LABEL}={project}"),
            format!("{SERVICE_LABEL}={}", target.name),
        ],
        TargetKind::Swarm => vec![format!("{SWARM_SERVICE_LABEL}={}", target.name)],
    };
    labels.extend(target.selector.iter().map(|(k, v)| format!("{k}={v}")));
    labels
}

/// Every container of the target, oldest number first: running or not for
/// Compose (a dead replica is still a template and a number), running only
/// for Swarm (whose task history keeps stopped containers). Compose `run`
/// containers are not replicas and are left out.
pub async fn replicas(engine: &Engine, target: &Target) -> Result<Vec<Replica>, EngineError> {
    let filters: HashMap<String, Vec<String>> =
        HashMap::from([("label".to_string(), label_filter(target))]);
    let list = engine
        .docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(matches!(target.kind, TargetKind::Compose { .. }))
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(|e| api_error(engine, "listing containers", e))?;
    let mut out = Vec::with_capacity(list.len());
    for summary in list {
        let labels = summary.labels.unwrap_or_default();
        let Some(id) = summary.id else { continue };
        if is_oneoff(&labels) {
            continue;
        }
        let created = summary.created.unwrap_or(0);
        out.extend(inspect_replica(engine, &id, &labels, created).await?);
    }
    out.sort_by_key(|r| (r.number.unwrap_or(u32::MAX), r.created));
    Ok(out)
}

/// A Compose `run` container: not a replica.
fn is_oneoff(labels: &HashMap<String, String>) -> bool {
    labels.get(ONEOFF_LABEL).map(String::as_str) == Some("True")
}

/// A listed container, inspected, as a replica; `None` when it was removed
/// between the listing and the inspect.
async fn inspect_replica(
    engine: &Engine,
    id: &str,
    labels: &HashMap<String, String>,
    created: i64,
) -> Result<Option<Replica>, EngineError> {
    match engine
        .docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
    {
        Ok(i) => Ok(Some(replica_of(&i, labels, created))),
        Err(e) if is_gone(&e) => Ok(None),
        Err(e) => Err(api_error(engine, &format!("inspecting container {id}"), e)),
    }
}

fn replica_of(
    c: &ContainerInspectResponse,
    labels: &HashMap<String, String>,
    created: i64,
) -> Replica {
    let state = c.state.as_ref();
    Replica {
        id: c.id.clone().unwrap_or_default(),
        name: c
            .name
            .as_deref()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        number: labels.get(NUMBER_LABEL).and_then(|n| n.parse().ok()),
        created,
        state: state
            .and_then(|s| s.status)
            .map(|s| s.to_string())
            .unwrap_or_default(),
        readiness: readiness_of(c),
        oom_killed: state.and_then(|s| s.oom_killed).unwrap_or(false),
        started_at: state.and_then(|s| s.started_at.clone()).unwrap_or_default(),
        ip: ip_of(c),
        published: published_of(c),
        ours: labels.contains_key(CREATED_BY_LABEL),
        action: labels.get(ACTION_LABEL).cloned(),
    }
}

/// The container's address on its first network that has one.
fn ip_of(c: &ContainerInspectResponse) -> Option<String> {
    let networks = c.network_settings.as_ref()?.networks.as_ref()?;
    let mut names: Vec<&String> = networks.keys().collect();
    names.sort();
    names
        .into_iter()
        .filter_map(|n| networks[n].ip_address.clone())
        .find(|ip| !ip.is_empty())
}

/// The container's TCP ports published on the host.
fn published_of(c: &ContainerInspectResponse) -> Vec<(u16, u16)> {
    let Some(ports) = c.network_settings.as_ref().and_then(|n| n.ports.as_ref()) else {
        return Vec::new();
    };
    let mut out: Vec<(u16, u16)> = ports
        .iter()
        .filter_map(|(key, bindings)| {
            let port = key.strip_suffix("/tcp")?.parse().ok()?;
            let host = bindings
                .as_ref()?
                .iter()
                .find_map(|b| b.host_port.as_deref()?.parse().ok())?;
            Some((port, host))
        })
        .collect();
    out.sort();
    out
}

/// Whether the engine answered that a container does not exist (it was
/// removed since it was listed).
pub fn is_gone(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Inspect one container.
pub async fn inspect(engine: &Engine, id: &str) -> Result<ContainerInspectResponse, EngineError> {
    engine
        .docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
        .map_err(|e| api_error(engine, &format!("inspecting container {id}"), e))
}

/// How long one listing of the engine's containers, and one read of its
/// OOM events, serve every service's pass: a daemon of 500 services asks
/// the engine once, not 500 times, per pass.
pub const SHARED_FOR: Duration = Duration::from_secs(2);

/// A container's inspect is taken again after this long even when its
/// listing shows no change (its OOM flag can change while it runs).
pub const INSPECT_AGAIN_AFTER: Duration = Duration::from_secs(60);

/// What the passes of every service on one engine share: one listing of
/// all containers and one read of the OOM events per [`SHARED_FOR`], each
/// filtered by target in memory, and each container's inspect for as long
/// as its state and health in the listing do not change (at most
/// [`INSPECT_AGAIN_AFTER`]). What scales reads the engine afresh and then
/// [`View::forget`]s the listing.
#[derive(Debug, Default)]
pub struct View {
    listing: Fresh<Vec<ContainerSummary>>,
    oom: Fresh<Vec<EventMessage>>,
    inspected: std::sync::Mutex<HashMap<String, Inspected>>,
}

/// A value read from the engine and shared for [`SHARED_FOR`]; one read at
/// a time, the others wait for it.
#[derive(Debug)]
struct Fresh<T>(tokio::sync::Mutex<Option<(Instant, Arc<T>)>>);

impl<T> Default for Fresh<T> {
    fn default() -> Self {
        Fresh(tokio::sync::Mutex::new(None))
    }
}

impl<T> Fresh<T> {
    /// The value kept, or what `read` gives when it is older than
    /// [`SHARED_FOR`].
    async fn get<F>(&self, read: impl FnOnce() -> F) -> Result<Arc<T>, EngineError>
    where
        F: Future<Output = Result<T, EngineError>>,
    {
        let mut kept = self.0.lock().await;
        if let Some((at, value)) = kept.as_ref()
            && at.elapsed() < SHARED_FOR
        {
            return Ok(value.clone());
        }
        let value = Arc::new(read().await?);
        *kept = Some((crate::clock::monotonic(), value.clone()));
        Ok(value)
    }

    /// Drop the value kept (unless a read is under way).
    fn forget(&self) {
        if let Ok(mut kept) = self.0.try_lock() {
            *kept = None;
        }
    }
}

/// A container's inspect, kept while its listing says the same.
#[derive(Debug, Clone)]
struct Inspected {
    at: Instant,
    /// State and health, as the listing shows them.
    seen: (String, String),
    replica: Replica,
}

impl View {
    /// Drop the listing: the next pass lists the engine again (after a
    /// scale, which changed it).
    pub fn forget(&self) {
        self.listing.forget();
    }

    /// Every container on the engine, at most [`SHARED_FOR`] old.
    async fn listing(&self, engine: &Engine) -> Result<Arc<Vec<ContainerSummary>>, EngineError> {
        self.listing
            .get(|| async {
                let all = ListContainersOptionsBuilder::default().all(true).build();
                engine
                    .docker
                    .list_containers(Some(all))
                    .await
                    .map_err(|e| api_error(engine, "listing containers", e))
            })
            .await
    }

    /// The engine's OOM events of the last `window_s` up to `now_s`, at
    /// most [`SHARED_FOR`] old.
    async fn oom_events(
        &self,
        engine: &Engine,
        now_s: i64,
        window_s: i64,
    ) -> Result<Arc<Vec<EventMessage>>, EngineError> {
        self.oom
            .get(|| async {
                let filters: HashMap<String, Vec<String>> = HashMap::from([
                    ("type".to_string(), vec!["container".to_string()]),
                    ("event".to_string(), vec!["oom".to_string()]),
                ]);
                // With `until` the engine replays its buffer and ends the stream.
                let mut stream = engine.docker.events(Some(
                    EventsOptionsBuilder::default()
                        .since(&(now_s - window_s).to_string())
                        .until(&now_s.to_string())
                        .filters(&filters)
                        .build(),
                ));
                let mut events = Vec::new();
                while let Some(event) = stream.next().await {
                    let event = event.map_err(|e| api_error(engine, "reading engine events", e))?;
                    events.push(event);
                }
                Ok(events)
            })
            .await
    }
}

/// Whether a container's labels carry every `key=value` of `wanted`.
fn labelled(labels: &HashMap<String, String>, wanted: &[String]) -> bool {
    wanted.iter().all(|w| {
        let (k, v) = w.split_once('=').unwrap_or((w.as_str(), ""));
        labels.get(k).is_some_and(|l| l == v)
    })
}

/// OOM kills of the target's containers over the `window_s` seconds up to
/// `now_s`, from the engine's shared read of its events.
pub async fn oom_kills(
    engine: &Engine,
    target: &Target,
    now_s: i64,
    window_s: i64,
) -> Result<u32, EngineError> {
    let events = engine.view.oom_events(engine, now_s, window_s).await?;
    let wanted = label_filter(target);
    let empty = HashMap::new();
    Ok(events
        .iter()
        .filter(|e| {
            let attributes = e.actor.as_ref().and_then(|a| a.attributes.as_ref());
            labelled(attributes.unwrap_or(&empty), &wanted)
        })
        .count() as u32)
}

/// The state and health a listing shows of a container: `running` and
/// `healthy` from `Up 5 minutes (healthy)`.
fn seen(summary: &ContainerSummary) -> (String, String) {
    let state = summary.state.map(|s| s.to_string()).unwrap_or_default();
    let status = summary.status.as_deref().unwrap_or("");
    let health = status
        .rsplit_once('(')
        .and_then(|(_, h)| h.strip_suffix(')'))
        .unwrap_or("")
        .to_string();
    (state, health)
}

/// The target's containers as [`replicas`] finds them, from the engine's
/// shared view: its listing filtered here, and an inspect only for a
/// container that is new or changed (or not inspected for
/// [`INSPECT_AGAIN_AFTER`]). What a pass observes; what scales calls
/// [`replicas`].
pub async fn observe(engine: &Engine, target: &Target) -> Result<Vec<Replica>, EngineError> {
    let listing = engine.view.listing(engine).await?;
    let wanted = label_filter(target);
    let swarm = matches!(target.kind, TargetKind::Swarm);
    let empty = HashMap::new();
    let mut out = Vec::new();
    for summary in listing.iter() {
        let labels = summary.labels.as_ref().unwrap_or(&empty);
        let Some(id) = summary.id.as_deref() else {
            continue;
        };
        let seen = seen(summary);
        if !labelled(labels, &wanted) || is_oneoff(labels) || (swarm && seen.0 != "running") {
            continue;
        }
        let kept = {
            let inspected = engine.view.inspected.lock().expect("inspected lock");
            inspected
                .get(id)
                .filter(|i| i.seen == seen && i.at.elapsed() < INSPECT_AGAIN_AFTER)
                .map(|i| i.replica.clone())
        };
        let replica = match kept {
            Some(r) => r,
            None => {
                let created = summary.created.unwrap_or(0);
                let Some(replica) = inspect_replica(engine, id, labels, created).await? else {
                    continue;
                };
                let keep = Inspected {
                    at: crate::clock::monotonic(),
                    seen,
                    replica: replica.clone(),
                };
                let mut inspected = engine.view.inspected.lock().expect("inspected lock");
                inspected.insert(id.to_string(), keep);
                replica
            }
        };
        out.push(replica);
    }
    // Forget what is no longer listed.
    let listed: std::collections::HashSet<&str> =
        listing.iter().filter_map(|s| s.id.as_deref()).collect();
    engine
        .view
        .inspected
        .lock()
        .expect("inspected lock")
        .retain(|id, _| listed.contains(id.as_str()));
    out.sort_by_key(|r| (r.number.unwrap_or(u32::MAX), r.created));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::ContainerSummaryStateEnum;

    #[test]
    fn a_listing_shows_state_and_health_apart_from_the_uptime() {
        let summary = |state, status: &str| ContainerSummary {
            state: Some(state),
            status: Some(status.to_string()),
            ..Default::default()
        };
        let running = ContainerSummaryStateEnum::RUNNING;
        assert_eq!(
            seen(&summary(running, "Up 5 minutes (healthy)")),
            ("running".into(), "healthy".into())
        );
        // The uptime moves every pass; what is kept does not.
        assert_eq!(
            seen(&summary(running, "Up 6 minutes (healthy)")),
            seen(&summary(running, "Up 5 minutes (healthy)"))
        );
        assert_eq!(
            seen(&summary(running, "Up 2 seconds (health: starting)")).1,
            "health: starting"
        );
        assert_eq!(seen(&summary(running, "Up 1 hour")).1, "");
        let exited = ContainerSummaryStateEnum::EXITED;
        assert_eq!(
            seen(&summary(exited, "Exited (137) 3 seconds ago")).0,
            "exited"
        );
    }

    #[test]
    fn a_container_is_the_targets_when_it_carries_every_label() {
        let labels = HashMap::from([
            (PROJECT_LABEL.to_string(), "shop".to_string()),
            (SERVICE_LABEL.to_string(), "web".to_string()),
        ]);
        let wanted = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let project = format!("{PROJECT_LABEL}=shop");
        let web = format!("{SERVICE_LABEL}=web");
        let api = format!("{SERVICE_LABEL}=api");
        assert!(labelled(&labels, &wanted(&[&project, &web])));
        assert!(!labelled(&labels, &wanted(&[&project, &api])));
        assert!(!labelled(&labels, &wanted(&[&project, &web, "tier=front"])));
    }
}
