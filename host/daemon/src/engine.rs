//! The Docker engine, as the `docker` source and the actuators share it:
//! connecting (with clear errors for the usual mistakes), and finding a
//! target's replicas by label.

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::{ContainerInspectResponse, HealthStatusEnum};
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptionsBuilder};

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

/// A failure talking to the engine, phrased for an operator.
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
    },
}

impl EngineError {
    /// An engine answer phrased as an error.
    pub fn api(message: impl Into<String>) -> EngineError {
        EngineError::Api {
            message: message.into(),
        }
    }

    /// A target that is not on the engine.
    pub fn not_found(what: impl Into<String>) -> EngineError {
        EngineError::NotFound { what: what.into() }
    }
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
            message: format!(
                "{doing}: it stopped answering ({})",
                crate::errors::chain(&transport)
            ),
        },
        other => EngineError::api(format!("{doing}: {other}")),
    }
}

/// A connected engine.
#[derive(Debug, Clone)]
pub struct Engine {
    /// The client.
    pub docker: Docker,
    /// Where it is, for messages.
    pub host: String,
    /// The engine's own version (e.g. 20.10.24).
    pub version: String,
    /// The API version agreed on.
    pub api_version: String,
    /// The host's CPU count (the CPU limit of a container that has none).
    pub host_cpus: f64,
    /// The host's memory, bytes (the memory limit of a container that has
    /// none); `None` when the engine does not say.
    pub host_memory: Option<u64>,
}

/// Why connecting failed, in words that say what to do.
fn unreachable_message(host: &str, e: &bollard::errors::Error) -> String {
    let chain = crate::errors::chain(e);
    let lower = chain.to_lowercase();
    if lower.contains("permission denied") {
        format!(
            "permission denied on {host}: run as root or as a member of the docker group ({chain})"
        )
    } else if lower.contains("no such file") || lower.contains("socket not found") {
        format!("{host} does not exist: is the Docker engine running? ({chain})")
    } else if lower.contains("connection refused") {
        format!("connection refused: is the Docker engine running? ({chain})")
    } else {
        chain
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
        };
        // Fail early, and clearly, on a socket that is missing or not ours.
        if let Some(path) = host.strip_prefix("unix://") {
            match std::fs::metadata(path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(EngineError::Unreachable {
                        host: host.clone(),
                        message: format!(
                            "{path} does not exist: is the Docker engine running? (set DOCKER_HOST or target.docker_host to use another)"
                        ),
                    });
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
            version: version.version.unwrap_or_default(),
            api_version: format!("{}.{}", api.major_version, api.minor_version),
            host_cpus: info.ncpu.unwrap_or(1).max(1) as f64,
            host_memory: info.mem_total.filter(|m| *m > 0).map(|m| m as u64),
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
        if labels.get(ONEOFF_LABEL).map(String::as_str) == Some("True") {
            continue;
        }
        let Some(id) = summary.id else { continue };
        let inspect = match engine
            .docker
            .inspect_container(&id, None::<InspectContainerOptions>)
            .await
        {
            Ok(i) => i,
            // Removed between the list and the inspect.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => continue,
            Err(e) => return Err(api_error(engine, &format!("inspecting container {id}"), e)),
        };
        out.push(replica_of(&inspect, &labels, summary.created.unwrap_or(0)));
    }
    out.sort_by_key(|r| (r.number.unwrap_or(u32::MAX), r.created));
    Ok(out)
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
