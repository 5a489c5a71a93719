//! The `docker` source: CPU and memory of each running replica as a
//! fraction of its own limits (the stats and inspect APIs), averaged over
//! the running replicas, and OOM kills from the engine's events.

use std::collections::HashMap;

use bollard::models::ContainerStatsResponse;
use bollard::query_parameters::{EventsOptionsBuilder, StatsOptionsBuilder};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use vedfolnir_core::model::SignalId;

use super::{Ask, MetricSource, Reading, SourceReport};
use crate::config::{SourceKind, Target};
use crate::engine::{Engine, EngineError, Readiness, Replica, api_error, inspect, label_filter};

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
        .ok_or_else(|| EngineError::api(format!("no stats for container {id}")))?
        .map_err(|e| api_error(engine, &format!("reading stats of container {id}"), e))?;
    usage_of(&sample, cpu_limit.or(Some(engine.host_cpus)), memory_limit)
        .ok_or_else(|| EngineError::api(format!("incomplete stats for container {id}")))
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

/// OOM events of the target's containers over the `window_s` seconds up
/// to `now_s` (seconds since the epoch).
pub async fn oom_kills(
    engine: &Engine,
    target: &Target,
    now_s: i64,
    window_s: i64,
) -> Result<u32, EngineError> {
    let now = now_s;
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
        event.map_err(|e| api_error(engine, "reading engine events", e))?;
        n += 1;
    }
    Ok(n)
}

/// What [`service_usage`] reads: each running replica's stats (CPU and
/// memory; a second per replica), and the engine's OOM events.
#[derive(Debug, Clone, Copy)]
pub struct Wanted {
    /// Read stats.
    pub stats: bool,
    /// Read OOM events.
    pub events: bool,
}

/// Collect the `docker` source for a target's replicas.
pub async fn service_usage(
    engine: &Engine,
    target: &Target,
    replicas: &[Replica],
    now: vedfolnir_core::model::TimestampMs,
    wanted: Wanted,
) -> ServiceUsage {
    let running: Vec<&Replica> = replicas.iter().filter(|r| r.is_running()).collect();
    let samples = if wanted.stats {
        futures_util::future::join_all(running.iter().map(|r| replica_usage(engine, &r.id))).await
    } else {
        Vec::new()
    };
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
    let oom_kills = if wanted.events {
        match oom_kills(engine, target, now.div_euclid(1000), OOM_WINDOW_S).await {
            Ok(n) => Some(n),
            Err(e) => {
                errors.push(format!("OOM events: {e}"));
                None
            }
        }
    } else {
        None
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

/// The `docker` source of one target on one engine.
#[derive(Debug, Clone)]
pub struct DockerStats {
    /// The engine.
    pub engine: Engine,
    /// Whose replicas.
    pub target: Target,
}

impl MetricSource for DockerStats {
    fn kind(&self) -> SourceKind {
        SourceKind::Docker
    }

    fn serves(&self) -> Vec<SignalId> {
        let mut out = crate::config::DOCKER_SIGNALS.to_vec();
        out.push(crate::config::oom_kills_signal());
        out
    }

    /// CPU and memory of the running replicas, the running count, and OOM
    /// kills, for the signals routed here.
    fn read<'a>(&'a self, ask: &'a Ask<'a>) -> BoxFuture<'a, SourceReport> {
        Box::pin(async move {
            // Stats take a second per replica: read them, and the OOM
            // events, only for the signals that need them.
            let signals = || ask.signals.iter().map(|s| &s.signal);
            let wanted = Wanted {
                stats: signals().any(|s| matches!(s, SignalId::Cpu | SignalId::Memory)),
                events: signals().any(|s| *s == crate::config::oom_kills_signal()),
            };
            let usage = service_usage(
                &self.engine,
                &self.target,
                &ask.observed.replicas,
                ask.now,
                wanted,
            )
            .await;
            let unreadable = || {
                if usage.running == 0 {
                    "no running replica to read stats from".to_string()
                } else {
                    format!("docker stats unreadable: {}", usage.errors.join("; "))
                }
            };
            let readings = ask
                .signals
                .iter()
                .map(|s| {
                    let value = match &s.signal {
                        SignalId::Cpu => usage.cpu.ok_or_else(unreadable),
                        SignalId::Memory => usage.memory.ok_or_else(unreadable),
                        SignalId::InstanceCount => Ok(f64::from(usage.running)),
                        other if *other == crate::config::oom_kills_signal() => {
                            usage.oom_kills.map(f64::from).ok_or_else(unreadable)
                        }
                        other => Err(format!("docker cannot provide {other}")),
                    };
                    Reading::Now(s.signal.clone(), value)
                })
                .collect();
            SourceReport {
                readings,
                errors: usage.errors.clone(),
                usage: Some(usage),
            }
        })
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
