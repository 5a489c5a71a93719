//! The Docker engine: connecting (with clear errors for the usual
//! mistakes), finding a service's replicas by label, and the `docker`
//! metrics source (CPU, memory, ready replicas, OOM kills from the stats
//! and inspect APIs).

use std::collections::HashMap;
use std::fmt;

use bollard::Docker;
use bollard::models::{ContainerInspectResponse, ContainerStatsResponse, HealthStatusEnum};
use bollard::query_parameters::{
    EventsOptionsBuilder, InspectContainerOptions, ListContainersOptionsBuilder,
    StatsOptionsBuilder,
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

/// A failure talking to the engine, phrased for an operator.
#[derive(Debug)]
pub enum EngineError {
    /// The engine cannot be reached at all (socket missing, refused,
    /// permission denied).
    Unreachable { host: String, message: String },
    /// The target has no replicas (or no Swarm service) on the engine.
    NotFound(String),
    /// The engine answered with an error.
    Api(String),
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Unreachable { host, message } => {
                write!(f, "cannot reach the Docker engine at {host}: {message}")
            }
            EngineError::NotFound(m) | EngineError::Api(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for EngineError {}

/// Phrase a bollard error, naming what was being done.
pub fn api_error(doing: &str, e: bollard::errors::Error) -> EngineError {
    use bollard::errors::Error as B;
    match e {
        B::DockerResponseServerError {
            status_code,
            message,
        } => EngineError::Api(format!(
            "{doing}: the engine answered {status_code}: {message}"
        )),
        other => EngineError::Api(format!("{doing}: {other}")),
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
}

/// Why connecting failed, in words that say what to do.
fn unreachable_message(host: &str, e: &bollard::errors::Error) -> String {
    let text = format!("{e}");
    let chain = {
        let mut s = text.clone();
        let mut src = std::error::Error::source(e);
        while let Some(c) = src {
            s.push_str(": ");
            s.push_str(&c.to_string());
            src = c.source();
        }
        s
    };
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
}

impl Replica {
    /// Running (whatever its health).
    pub fn is_running(&self) -> bool {
        self.readiness != Readiness::Down
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
        .map_err(|e| api_error("listing containers", e))?;
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
            Err(e) => return Err(api_error(&format!("inspecting container {id}"), e)),
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
    }
}

/// What the stats API says of one replica.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Usage {
    /// CPU used as a fraction of the container's own CPU limit (of the
    /// host's cores when it has none).
    pub cpu: f64,
    /// Working set (usage minus inactive page cache) over the memory limit.
    pub memory: f64,
}

/// CPU and memory of one stats sample. `cpu_limit` is the container's
/// limit in cores (NanoCpus / 1e9, or quota / period), `None` when it has
/// none; `memory_limit` its memory limit in bytes, `None` when it has none
/// (the stats' own limit, the host's memory, is used then).
pub fn usage_of(
    s: &ContainerStatsResponse,
    cpu_limit: Option<f64>,
    memory_limit: Option<u64>,
) -> Option<Usage> {
    let cpu = s.cpu_stats.as_ref()?;
    let pre = s.precpu_stats.as_ref()?;
    let total = cpu.cpu_usage.as_ref()?.total_usage?;
    let pre_total = pre.cpu_usage.as_ref()?.total_usage?;
    let system = cpu.system_cpu_usage?;
    let pre_system = pre.system_cpu_usage?;
    let online = cpu
        .online_cpus
        .map(f64::from)
        .or_else(|| {
            cpu.cpu_usage
                .as_ref()?
                .percpu_usage
                .as_ref()
                .map(|v| v.len() as f64)
        })
        .filter(|n| *n > 0.0)?;
    let system_delta = system.checked_sub(pre_system)? as f64;
    if system_delta <= 0.0 {
        return None;
    }
    let cores_used = total.saturating_sub(pre_total) as f64 / system_delta * online;
    let cpu_fraction = cores_used / cpu_limit.filter(|l| *l > 0.0).unwrap_or(online);

    let mem = s.memory_stats.as_ref()?;
    let usage = mem.usage?;
    let stats = mem.stats.clone().unwrap_or_default();
    // cgroup v1 reports total_inactive_file, v2 inactive_file; `docker
    // stats` subtracts the same.
    let inactive = stats
        .get("total_inactive_file")
        .or_else(|| stats.get("inactive_file"))
        .copied()
        .unwrap_or(0);
    let limit = memory_limit.filter(|l| *l > 0).or(mem.limit)?;
    if limit == 0 {
        return None;
    }
    Some(Usage {
        cpu: cpu_fraction,
        memory: usage.saturating_sub(inactive) as f64 / limit as f64,
    })
}

/// Inspect one container.
pub async fn inspect(engine: &Engine, id: &str) -> Result<ContainerInspectResponse, EngineError> {
    engine
        .docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
        .map_err(|e| api_error(&format!("inspecting container {id}"), e))
}

/// One replica's usage, from a stats sample and its limits.
pub async fn replica_usage(engine: &Engine, id: &str) -> Result<Usage, EngineError> {
    let inspect = inspect(engine, id).await?;
    let host = inspect.host_config.unwrap_or_default();
    let cpu_limit = match (host.nano_cpus, host.cpu_quota, host.cpu_period) {
        (Some(n), _, _) if n > 0 => Some(n as f64 / 1e9),
        (_, Some(q), Some(p)) if q > 0 && p > 0 => Some(q as f64 / p as f64),
        (_, Some(q), _) if q > 0 => Some(q as f64 / 100_000.0),
        _ => None,
    };
    let memory_limit = host.memory.filter(|m| *m > 0).map(|m| m as u64);
    // stream=false, one-shot=false: the engine takes two samples a second
    // apart, so precpu_stats is filled and the CPU delta is real.
    let mut stream = engine.docker.stats(
        id,
        Some(
            StatsOptionsBuilder::default()
                .stream(false)
                .one_shot(false)
                .build(),
        ),
    );
    let sample = stream
        .next()
        .await
        .ok_or_else(|| EngineError::Api(format!("no stats for container {id}")))?
        .map_err(|e| api_error(&format!("reading stats of container {id}"), e))?;
    usage_of(&sample, cpu_limit.or(Some(engine.host_cpus)), memory_limit)
        .ok_or_else(|| EngineError::Api(format!("incomplete stats for container {id}")))
}

/// What the `docker` source reports of a target, averaged over its running
/// replicas only.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServiceUsage {
    /// Running replicas.
    pub running: u32,
    /// Ready replicas (healthy, or running without a healthcheck).
    pub ready: u32,
    /// Mean CPU fraction of the running replicas; `None` when none gave
    /// stats.
    pub cpu: Option<f64>,
    /// Mean memory fraction of the running replicas.
    pub memory: Option<f64>,
    /// Replicas (running or not) whose last run ended in an OOM kill.
    pub oom_killed: u32,
    /// OOM kills the engine reported for the target's containers in the
    /// last [`OOM_WINDOW_S`] seconds (its events survive a restart, which
    /// clears a container's OOMKilled flag); `None` when the events could
    /// not be read.
    pub oom_kills: Option<u32>,
    /// Replicas whose stats could not be read, with why.
    pub errors: Vec<String>,
}

/// How far back `oom_kills` looks.
pub const OOM_WINDOW_S: i64 = 3600;

/// OOM events of the target's containers over the last `window_s` seconds.
pub async fn oom_kills(
    engine: &Engine,
    target: &Target,
    window_s: i64,
) -> Result<u32, EngineError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let filters: HashMap<String, Vec<String>> = HashMap::from([
        ("type".to_string(), vec!["container".to_string()]),
        ("event".to_string(), vec!["oom".to_string()]),
        ("label".to_string(), label_filter(target)),
    ]);
    // With `until` the engine replays its buffer and ends the stream.
    let mut stream = engine.docker.events(Some(
        EventsOptionsBuilder::default()
            .since(&(now - window_s).to_string())
            .until(&now.to_string())
            .filters(&filters)
            .build(),
    ));
    let mut n = 0;
    while let Some(event) = stream.next().await {
        event.map_err(|e| api_error("reading engine events", e))?;
        n += 1;
    }
    Ok(n)
}

/// Collect the `docker` source for a target's replicas.
pub async fn service_usage(engine: &Engine, target: &Target, replicas: &[Replica]) -> ServiceUsage {
    let running: Vec<&Replica> = replicas.iter().filter(|r| r.is_running()).collect();
    let samples =
        futures_util::future::join_all(running.iter().map(|r| replica_usage(engine, &r.id))).await;
    let mut cpu = Vec::new();
    let mut memory = Vec::new();
    let mut errors = Vec::new();
    for (r, s) in running.iter().zip(samples) {
        match s {
            Ok(u) => {
                cpu.push(u.cpu);
                memory.push(u.memory);
            }
            Err(e) => errors.push(format!("{}: {e}", r.name)),
        }
    }
    let oom_kills = match oom_kills(engine, target, OOM_WINDOW_S).await {
        Ok(n) => Some(n),
        Err(e) => {
            errors.push(format!("OOM events: {e}"));
            None
        }
    };
    let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    ServiceUsage {
        running: running.len() as u32,
        ready: running
            .iter()
            .filter(|r| r.readiness == Readiness::Ready)
            .count() as u32,
        cpu: mean(&cpu),
        memory: mean(&memory),
        oom_killed: replicas.iter().filter(|r| r.oom_killed).count() as u32,
        oom_kills,
        errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerCpuStats, ContainerCpuUsage, ContainerMemoryStats};

    fn stats(total: u64, pre_total: u64, system: u64, pre_system: u64) -> ContainerStatsResponse {
        ContainerStatsResponse {
            cpu_stats: Some(ContainerCpuStats {
                cpu_usage: Some(ContainerCpuUsage {
                    total_usage: Some(total),
                    ..Default::default()
                }),
                system_cpu_usage: Some(system),
                online_cpus: Some(4),
                ..Default::default()
            }),
            precpu_stats: Some(ContainerCpuStats {
                cpu_usage: Some(ContainerCpuUsage {
                    total_usage: Some(pre_total),
                    ..Default::default()
                }),
                system_cpu_usage: Some(pre_system),
                online_cpus: Some(4),
                ..Default::default()
            }),
            memory_stats: Some(ContainerMemoryStats {
                usage: Some(600 << 20),
                limit: Some(16 << 30),
                stats: Some(HashMap::from([(
                    "total_inactive_file".to_string(),
                    100 << 20,
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn cpu_is_a_fraction_of_the_containers_own_limit() {
        // 4 host cores; the container used 1 core's worth of the system's
        // time (1/4 of the system delta).
        let s = stats(1_000, 0, 4_000, 0);
        let own = usage_of(&s, Some(2.0), Some(1 << 30)).unwrap();
        assert!((own.cpu - 0.5).abs() < 1e-9, "{own:?}");
        let host = usage_of(&s, None, None).unwrap();
        assert!((host.cpu - 0.25).abs() < 1e-9, "{host:?}");
    }

    #[test]
    fn memory_is_the_working_set_over_the_limit() {
        let s = stats(1, 0, 4, 0);
        let u = usage_of(&s, Some(1.0), Some(1 << 30)).unwrap();
        // (600 MiB - 100 MiB inactive file) / 1 GiB
        assert!((u.memory - 500.0 / 1024.0).abs() < 1e-9, "{u:?}");
        // Without a limit of its own, the stats' limit (the host's memory).
        let u = usage_of(&s, Some(1.0), None).unwrap();
        assert!((u.memory - 500.0 / (16.0 * 1024.0)).abs() < 1e-9, "{u:?}");
    }

    #[test]
    fn a_first_sample_without_a_previous_one_is_no_reading() {
        let mut s = stats(1_000, 0, 4_000, 0);
        s.precpu_stats = None;
        assert_eq!(usage_of(&s, Some(1.0), None), None);
        let s = stats(1_000, 0, 4_000, 4_000);
        assert_eq!(usage_of(&s, Some(1.0), None), None, "zero system delta");
    }
}
