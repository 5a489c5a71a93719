//! The `docker` source: CPU, memory and CPU throttling of each running
//! replica as a fraction of its own limits, averaged over the running
//! replicas, memory pressure where the kernel has it, and OOM kills from
//! the engine's events.
//!
//! Each replica is read from its cgroup files when the daemon can see them
//! ([`cgroup`](super::cgroup): no cost to the engine), else through the
//! engine's stats API (a remote engine, an unusual cgroup layout). Either
//! way CPU is the cumulative usage between two of the daemon's own reads:
//! the previous pass's sample is kept per replica, so the API is asked for
//! one collection cycle (`one-shot`), not two. A replica read for the first
//! time is read twice, [`FIRST_READ_GAP`] apart.
//!
//! ```text
//!   replica ──cgroup readable?──yes──> counters now - kept counters ──> usage
//!      │                                 (none kept: read again after the gap)
//!      no: from now on through the API for this replica, said once
//!      └──> inspect (limits) + stats, one-shot when a sample is kept
//!           404 at any step: removed since listed, a missing sample, no error
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bollard::models::{ContainerCpuStats, ContainerStatsResponse};
use bollard::query_parameters::StatsOptionsBuilder;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use vedfolnir_core::model::SignalId;

use super::cgroup::{self, Cgroups, Counters, Located};
use super::{Ask, MetricSource, Reading, SourceReport};
use crate::config::{SourceKind, Target};
use crate::engine::{Engine, Readiness, Replica, api_error, is_gone};

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

/// How long apart a replica's first two reads are: CPU use is a difference
/// of cumulative counters, so a replica seen for the first time is read
/// twice. The counters are in nanoseconds, so a quarter of a second is
/// precise; it is kept well under the daemon's interval, so the first pass
/// is not much longer than the rest (an overrun would make the next pass
/// start at once).
pub const FIRST_READ_GAP: Duration = Duration::from_millis(250);

/// How the stats of a replica read through the API are named.
pub const API_PATH: &str = "api";

/// One replica's usage at one read.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sampled {
    usage: Usage,
    /// The share of CFS periods throttled since the previous read.
    throttled: Option<f64>,
    /// PSI memory pressure (cgroup v2).
    pressure: Option<f64>,
    /// How it was read: `cgroup-v1`, `cgroup-v2` or `api`.
    path: &'static str,
}

/// What reading one replica came to.
#[derive(Debug)]
enum Sample {
    Read(Sampled),
    /// Removed since it was listed: a missing sample, not an error.
    Gone,
    Failed(String),
}

/// A replica's counters at its previous read, for the next read's deltas.
#[derive(Debug, Clone)]
enum Previous {
    Cgroup {
        at: Located,
        when: Instant,
        counters: Counters,
    },
    Api(Box<ContainerCpuStats>),
}

/// What the source keeps between passes, by container id.
#[derive(Debug, Default)]
struct Kept {
    previous: HashMap<String, Previous>,
    /// Replicas whose cgroup could not be read: read through the API, and
    /// said so once.
    api_only: HashSet<String>,
}

/// The share of periods throttled between two `(periods, throttled)`
/// counts; 0 when no period elapsed (no CPU quota, or idle).
fn throttled_between(before: Option<(u64, u64)>, now: Option<(u64, u64)>) -> Option<f64> {
    let ((p0, t0), (p1, t1)) = (before?, now?);
    let periods = p1.checked_sub(p0)?;
    let throttled = t1.checked_sub(t0)?;
    Some(if periods == 0 {
        0.0
    } else {
        (throttled as f64 / periods as f64).min(1.0)
    })
}

/// Usage between two cgroup reads `elapsed` apart.
fn cgroup_usage(
    before: &Counters,
    now: &Counters,
    elapsed: Duration,
    engine: &Engine,
) -> Result<Usage, String> {
    let used_ns = now
        .cpu_ns
        .checked_sub(before.cpu_ns)
        .ok_or("the cgroup's CPU time went back")?;
    if elapsed.is_zero() {
        return Err("two reads at the same instant".into());
    }
    let cores = now.cpu_limit.unwrap_or(engine.host_cpus);
    let limit = now
        .memory_limit
        .or(engine.host_memory)
        .filter(|l| *l > 0)
        .ok_or("no memory limit, and the engine did not say the host's memory")?;
    Ok(Usage {
        cpu: used_ns as f64 / elapsed.as_nanos() as f64 / cores,
        memory: now.memory_used as f64 / limit as f64,
    })
}

/// The `docker` source of one target on one engine.
#[derive(Debug)]
pub struct DockerStats {
    /// The engine.
    pub engine: Engine,
    /// Whose replicas.
    pub target: Target,
    /// The engine's cgroups, when this process can see them.
    cgroups: Option<Cgroups>,
    kept: Mutex<Kept>,
}

impl DockerStats {
    /// The source of `target` on `engine`, reading cgroup files when
    /// [`Cgroups::from_env`] finds them and the engine is on this host's
    /// socket (a remote engine's containers are not in this host's files).
    pub fn new(engine: Engine, target: Target) -> DockerStats {
        let local = engine.host.starts_with("unix://");
        let cgroups = if local { Cgroups::from_env() } else { None };
        DockerStats {
            engine,
            target,
            cgroups,
            kept: Mutex::default(),
        }
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().expect("kept lock: no panic while held")
    }

    /// Read one replica, from its cgroup or else through the API.
    async fn sample(&self, r: &Replica) -> Sample {
        let why_not = match self.by_cgroup(&r.id).await {
            Ok(s) => return Sample::Read(s),
            Err(why) => why,
        };
        let sample = self.by_api(&r.id).await;
        if let (Some(why), Sample::Read(_)) = (why_not, &sample) {
            tracing::warn!(
                service = %self.target.name, replica = %r.name, reason = %why,
                "reading this replica's stats through the engine's API from now on"
            );
        }
        sample
    }

    /// The replica's usage from its cgroup files. `Err(None)`: not tried
    /// (no cgroups here, or this replica is read through the API);
    /// `Err(Some(why))`: tried and failed, from now on read through the API.
    async fn by_cgroup(&self, id: &str) -> Result<Sampled, Option<String>> {
        let Some(cgroups) = &self.cgroups else {
            return Err(None);
        };
        let previous = {
            let kept = self.kept();
            if kept.api_only.contains(id) {
                return Err(None);
            }
            match kept.previous.get(id) {
                Some(Previous::Cgroup { at, when, counters }) => {
                    Some((at.clone(), *when, *counters))
                }
                _ => None,
            }
        };
        let result = self.read_cgroup(cgroups, id, previous).await;
        if let Err(why) = &result {
            tracing::debug!(replica = %id, reason = %why, "cgroup unreadable");
            self.kept().api_only.insert(id.to_string());
        }
        result.map_err(Some)
    }

    async fn read_cgroup(
        &self,
        cgroups: &Cgroups,
        id: &str,
        previous: Option<(Located, Instant, Counters)>,
    ) -> Result<Sampled, String> {
        let text = |e: cgroup::CgroupError| crate::errors::chain(&e);
        let at = match &previous {
            Some((at, ..)) => at.clone(),
            None => cgroups.locate(id).map_err(text)?,
        };
        let read = || {
            cgroup::read(&at)
                .map(|c| (crate::clock::monotonic(), c))
                .map_err(text)
        };
        let mut now = read()?;
        let before = match previous {
            Some((_, when, counters)) if counters.cpu_ns <= now.1.cpu_ns => (when, counters),
            // A first read, or counters that went back (restarted since):
            // read again after the gap.
            _ => {
                let first = now;
                tokio::time::sleep(FIRST_READ_GAP).await;
                now = read()?;
                first
            }
        };
        let (when, counters) = now;
        let usage = cgroup_usage(&before.1, &counters, when - before.0, &self.engine)?;
        self.kept()
            .previous
            .insert(id.to_string(), Previous::Cgroup { at, when, counters });
        Ok(Sampled {
            usage,
            throttled: throttled_between(before.1.periods, counters.periods),
            pressure: counters.memory_pressure,
            path: cgroups.version().path_name(),
        })
    }

    /// The replica's usage through the engine: its limits (inspect) and one
    /// stats sample, one collection cycle when the previous pass's sample
    /// is kept, two otherwise.
    async fn by_api(&self, id: &str) -> Sample {
        let engine = &self.engine;
        let previous = match self.kept().previous.get(id) {
            Some(Previous::Api(cpu)) => Some(cpu.clone()),
            _ => None,
        };
        let inspect = match engine
            .docker
            .inspect_container(
                id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
        {
            Ok(i) => i,
            Err(e) if is_gone(&e) => return Sample::Gone,
            Err(e) => {
                let e = api_error(engine, &format!("inspecting container {id}"), e);
                return Sample::Failed(crate::errors::chain(&e));
            }
        };
        let host = inspect.host_config.unwrap_or_default();
        let cpu_limit = match (host.nano_cpus, host.cpu_quota, host.cpu_period) {
            (Some(n), _, _) if n > 0 => Some(n as f64 / 1e9),
            (_, Some(q), Some(p)) if q > 0 && p > 0 => Some(q as f64 / p as f64),
            (_, Some(q), _) if q > 0 => Some(q as f64 / 100_000.0),
            _ => None,
        };
        let memory_limit = host.memory.filter(|m| *m > 0).map(|m| m as u64);
        // With a kept sample, one cycle (`one-shot`) and the delta from the
        // kept one; without, the engine's two cycles fill `precpu_stats`.
        let options = StatsOptionsBuilder::default()
            .stream(false)
            .one_shot(previous.is_some())
            .build();
        let mut sample = match engine.docker.stats(id, Some(options)).next().await {
            Some(Ok(s)) => s,
            Some(Err(e)) if is_gone(&e) => return Sample::Gone,
            Some(Err(e)) => {
                let e = api_error(engine, &format!("reading stats of container {id}"), e);
                return Sample::Failed(crate::errors::chain(&e));
            }
            None => return Sample::Failed(format!("no stats for container {id}")),
        };
        if let Some(p) = previous {
            sample.precpu_stats = Some(*p);
        }
        if let Some(cpu) = &sample.cpu_stats {
            self.kept()
                .previous
                .insert(id.to_string(), Previous::Api(Box::new(cpu.clone())));
        }
        let periods = |c: Option<&ContainerCpuStats>| {
            let t = c?.throttling_data.as_ref()?;
            Some((t.periods?, t.throttled_periods?))
        };
        match usage_of(&sample, cpu_limit.or(Some(engine.host_cpus)), memory_limit) {
            Some(usage) => Sample::Read(Sampled {
                usage,
                throttled: throttled_between(
                    periods(sample.precpu_stats.as_ref()),
                    periods(sample.cpu_stats.as_ref()),
                ),
                pressure: None,
                path: API_PATH,
            }),
            None => Sample::Failed(format!("incomplete stats for container {id}")),
        }
    }

    /// Forget what is kept of replicas no longer listed.
    fn forget_except(&self, replicas: &[Replica]) {
        let listed: HashSet<&str> = replicas.iter().map(|r| r.id.as_str()).collect();
        let mut kept = self.kept();
        kept.previous.retain(|id, _| listed.contains(id.as_str()));
        kept.api_only.retain(|id| listed.contains(id.as_str()));
    }
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
    /// Mean share of CFS periods in which a replica was throttled, since
    /// the previous read.
    pub cpu_throttled: Option<f64>,
    /// Mean PSI memory pressure (cgroup v2 only).
    pub memory_pressure: Option<f64>,
    /// Replicas (running or not) whose last run ended in an OOM kill.
    pub oom_killed: u32,
    /// OOM kills the engine reported for the target's containers in the
    /// last [`OOM_WINDOW_S`] seconds (its events survive a restart, which
    /// clears a container's OOMKilled flag); `None` when the events could
    /// not be read.
    pub oom_kills: Option<u32>,
    /// How many replicas each path read: `cgroup-v1`, `cgroup-v2`, `api`.
    pub read_by: BTreeMap<&'static str, u32>,
    /// Replicas whose stats could not be read, with why.
    pub errors: Vec<String>,
}

/// How far back `oom_kills` looks.
pub const OOM_WINDOW_S: i64 = 3600;

/// What [`DockerStats::service_usage`] reads: each running replica's
/// counters (CPU, memory, throttling), and the engine's OOM events.
#[derive(Debug, Clone, Copy)]
pub struct Wanted {
    /// Read each replica's counters.
    pub stats: bool,
    /// Read OOM events.
    pub events: bool,
}

/// The mean of some values, `None` for none.
fn mean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = v.fold((0.0, 0u32), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| sum / f64::from(n))
}

impl DockerStats {
    /// Collect the `docker` source for a target's replicas.
    pub async fn service_usage(
        &self,
        replicas: &[Replica],
        now: vedfolnir_core::model::TimestampMs,
        wanted: Wanted,
    ) -> ServiceUsage {
        let running: Vec<&Replica> = replicas.iter().filter(|r| r.is_running()).collect();
        let samples = if wanted.stats {
            futures_util::future::join_all(running.iter().map(|r| self.sample(r))).await
        } else {
            Vec::new()
        };
        self.forget_except(replicas);
        let mut read = Vec::new();
        let mut errors = Vec::new();
        let mut read_by = BTreeMap::new();
        for (r, s) in running.iter().zip(samples) {
            match s {
                Sample::Read(s) => {
                    *read_by.entry(s.path).or_insert(0) += 1;
                    read.push(s);
                }
                Sample::Gone => tracing::debug!(replica = %r.name, "removed since listed"),
                Sample::Failed(e) => errors.push(format!("{}: {e}", r.name)),
            }
        }
        let oom_kills = if wanted.events {
            let now_s = now.div_euclid(1000);
            match crate::engine::oom_kills(&self.engine, &self.target, now_s, OOM_WINDOW_S).await {
                Ok(n) => Some(n),
                Err(e) => {
                    errors.push(format!("OOM events: {}", crate::errors::chain(&e)));
                    None
                }
            }
        } else {
            None
        };
        ServiceUsage {
            running: running.len() as u32,
            ready: running
                .iter()
                .filter(|r| r.readiness == Readiness::Ready)
                .count() as u32,
            cpu: mean(read.iter().map(|s| s.usage.cpu)),
            memory: mean(read.iter().map(|s| s.usage.memory)),
            cpu_throttled: mean(read.iter().filter_map(|s| s.throttled)),
            memory_pressure: mean(read.iter().filter_map(|s| s.pressure)),
            oom_killed: replicas.iter().filter(|r| r.oom_killed).count() as u32,
            oom_kills,
            read_by,
            errors,
        }
    }
}

impl MetricSource for DockerStats {
    fn kind(&self) -> SourceKind {
        SourceKind::Docker
    }

    fn serves(&self) -> Vec<SignalId> {
        use crate::config::{cpu_throttled_signal, memory_pressure_signal, oom_kills_signal};
        let mut out = crate::config::DOCKER_SIGNALS.to_vec();
        out.extend([oom_kills_signal(), cpu_throttled_signal()]);
        // Served only where it can be read: a signal missing on every pass
        // would count as a source failure on every pass.
        if self.cgroups.as_ref().is_some_and(Cgroups::has_psi) {
            out.push(memory_pressure_signal());
        }
        out
    }

    /// CPU, memory and throttling of the running replicas, the running
    /// count, memory pressure and OOM kills, for the signals routed here.
    fn read<'a>(&'a self, ask: &'a Ask<'a>) -> BoxFuture<'a, SourceReport> {
        Box::pin(async move {
            // Read the counters, and the OOM events, only for the signals
            // that need them.
            let signals = || ask.signals.iter().map(|s| &s.signal);
            let counters = [
                SignalId::Cpu,
                SignalId::Memory,
                crate::config::cpu_throttled_signal(),
                crate::config::memory_pressure_signal(),
            ];
            let wanted = Wanted {
                stats: signals().any(|s| counters.contains(s)),
                events: signals().any(|s| *s == crate::config::oom_kills_signal()),
            };
            let usage = self
                .service_usage(&ask.observed.replicas, ask.now, wanted)
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
                        other if *other == crate::config::cpu_throttled_signal() => {
                            usage.cpu_throttled.ok_or_else(unreadable)
                        }
                        other if *other == crate::config::memory_pressure_signal() => {
                            usage.memory_pressure.ok_or_else(|| {
                                "no memory pressure: the kernel reports PSI only for cgroup v2 \
                                 files the daemon can read"
                                    .to_string()
                            })
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

    fn engine(host_cpus: f64, host_memory: Option<u64>) -> Engine {
        Engine {
            docker: bollard::Docker::connect_with_http(
                "http://127.0.0.1:9",
                1,
                bollard::API_DEFAULT_VERSION,
            )
            .unwrap(),
            host: "unix:///nowhere".into(),
            id: "test".into(),
            version: String::new(),
            api_version: String::new(),
            host_cpus,
            host_memory,
            view: Default::default(),
        }
    }

    fn counters(cpu_ns: u64, cpu_limit: Option<f64>, memory_limit: Option<u64>) -> Counters {
        Counters {
            cpu_ns,
            memory_used: 256 << 20,
            cpu_limit,
            memory_limit,
            ..Default::default()
        }
    }

    #[test]
    fn cgroup_cpu_is_cpu_time_over_wall_time_over_the_limit() {
        let e = engine(4.0, Some(4 << 30));
        let gap = Duration::from_secs(2);
        // One core's worth over 2 s: 2e9 ns.
        let (a, b) = (
            counters(1_000, Some(2.0), Some(1 << 30)),
            counters(2_000_001_000, Some(2.0), Some(1 << 30)),
        );
        let u = cgroup_usage(&a, &b, gap, &e).unwrap();
        assert!((u.cpu - 0.5).abs() < 1e-9, "{u:?}");
        assert!((u.memory - 0.25).abs() < 1e-9, "{u:?}");
        // Without limits of its own: the host's cores and memory.
        let (a, b) = (counters(0, None, None), counters(2_000_000_000, None, None));
        let u = cgroup_usage(&a, &b, gap, &e).unwrap();
        assert!((u.cpu - 0.25).abs() < 1e-9, "{u:?}");
        assert!((u.memory - 1.0 / 16.0).abs() < 1e-9, "{u:?}");
    }

    #[test]
    fn cgroup_counters_that_went_back_or_no_memory_limit_at_all_are_no_reading() {
        let gap = Duration::from_secs(1);
        let e = engine(2.0, Some(1 << 30));
        let err = cgroup_usage(&counters(5, None, None), &counters(4, None, None), gap, &e);
        assert!(err.unwrap_err().contains("went back"));
        let e = engine(2.0, None);
        let err = cgroup_usage(&counters(1, None, None), &counters(4, None, None), gap, &e);
        assert!(err.unwrap_err().contains("memory limit"));
        let err = cgroup_usage(
            &counters(1, None, Some(1)),
            &counters(4, None, Some(1)),
            Duration::ZERO,
            &e,
        );
        assert!(err.is_err());
    }

    #[test]
    fn throttling_is_the_share_of_periods_throttled_between_two_reads() {
        assert_eq!(
            throttled_between(Some((100, 10)), Some((200, 60))),
            Some(0.5)
        );
        // No period elapsed (no quota, or idle): never throttled.
        assert_eq!(throttled_between(Some((0, 0)), Some((0, 0))), Some(0.0));
        // Counters that went back (a restart), or none: no reading.
        assert_eq!(throttled_between(Some((200, 60)), Some((100, 10))), None);
        assert_eq!(throttled_between(None, Some((1, 1))), None);
    }

    #[test]
    fn a_mean_of_nothing_is_none() {
        assert_eq!(mean([].into_iter()), None);
        assert_eq!(mean([0.25, 0.75].into_iter()), Some(0.5));
    }
}
