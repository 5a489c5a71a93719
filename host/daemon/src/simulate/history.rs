//! `simulate --history`: a service's own recorded load as the trace, and
//! the model calibrated on what was recorded beside it.
//!
//! The record is the state directory's minute record
//! ([`crate::state::minutes`]: each signal's mean a minute, as the sources
//! read it) or a Prometheus range query at a minute's step. The load is its
//! request-rate signal; the model's capacity per replica is the load over
//! the busy replicas (`cpu x instance-count`) in the minutes busy enough to
//! measure, its memory a straight line through memory against CPU, its
//! start-up the time the audit log's scale-ups took, and the daemon's
//! interval the time between its passes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use serde::Serialize;
use vedfolnir_core::model::TimestampMs;
use vedfolnir_core::sim::{ServiceModel, Trace};

use super::Invalid;
use crate::audit::{AuditLog, Event};
use crate::state::minutes::{self, MINUTE_MS, Minute};

/// The load signal a record is replayed from, unless named.
pub const LOAD_SIGNAL: &str = vedfolnir_core::sim::REQUESTS_PER_SECOND;

/// A minute's CPU below this tells too little of the capacity (a replica
/// mostly idle): such minutes are left out of its calibration.
pub const MIN_CALIBRATION_CPU: f64 = 0.1;

/// The most minutes one replay of a record takes: 31 days.
pub const MAX_MINUTES: usize = 31 * 1440;

/// Where the record is read.
#[derive(Debug, Clone)]
pub enum Origin {
    /// The daemon's state directory.
    StateDir(PathBuf),
    /// A Prometheus server, with the load's query (default: the rate of
    /// the workload's request counter for the service).
    Prometheus {
        /// The server.
        url: String,
        /// How long one query may take.
        timeout: Duration,
        /// The load's PromQL expression.
        query: Option<String>,
    },
}

/// What to replay.
#[derive(Debug, Clone)]
pub struct Asked {
    /// The service, as its policy file names it.
    pub service: String,
    /// Where its record is.
    pub origin: Origin,
    /// From (included), ms since the Unix epoch.
    pub from: TimestampMs,
    /// To (excluded).
    pub to: TimestampMs,
    /// The load signal.
    pub signal: String,
}

/// A service's record over the asked span.
#[derive(Debug, Default)]
pub struct Recorded {
    /// Whole minutes, oldest first.
    pub minutes: Vec<Minute>,
    /// Lines of the record that could not be read.
    pub skipped: Vec<String>,
    /// How long each recorded scale-up took, ms.
    pub startups_ms: Vec<u64>,
    /// Where it was read, for the report.
    pub what: String,
}

/// The model's parameters as the record shows them; `None` where it
/// does not (the flag's value, or its default, is used).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Calibration {
    /// Requests per second one replica serves at full CPU.
    pub capacity: Option<f64>,
    /// The minutes it was measured on.
    pub capacity_minutes: usize,
    /// An idle replica's memory, as a fraction of its limit.
    pub memory_idle: Option<f64>,
    /// Memory added at full CPU.
    pub memory_busy: Option<f64>,
    /// From a scale-up's start to its replicas' readiness, ms (median).
    pub startup_ms: Option<u64>,
    /// The scale-ups it was measured on.
    pub startup_scales: usize,
    /// The daemon's time between passes, ms (median over the minutes).
    pub interval_ms: Option<u64>,
    /// Replicas at the first minute.
    pub start_replicas: Option<u32>,
}

/// The record, as the report shows it beside the replays.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryReport {
    /// The service.
    pub service: String,
    /// The first minute replayed (RFC 3339).
    pub from: String,
    /// The same, ms since the Unix epoch.
    pub from_ms: TimestampMs,
    /// The end of the last minute replayed.
    pub to: String,
    /// The minutes replayed.
    pub minutes: usize,
    /// Minutes with no load recorded, which hold the minute before.
    pub filled_minutes: usize,
    /// Record lines that could not be read (the first few named).
    pub skipped_lines: usize,
    /// The first of them.
    pub skipped: Vec<String>,
    /// What the model took from the record.
    pub calibration: Calibration,
    /// The load of each minute, req/s.
    pub load: Vec<f64>,
    /// The replicas the service ran in each minute (its mean), where
    /// recorded.
    pub recorded_replicas: Vec<Option<f64>>,
    /// Replica-hours the service ran, over the minutes with a count.
    pub recorded_replica_hours: Option<f64>,
    /// The service's current policy file, replayed first.
    pub current: Option<String>,
}

impl Calibration {
    /// `model` with what the record showed in place of its values.
    pub fn applied(&self, model: ServiceModel) -> ServiceModel {
        ServiceModel {
            capacity: self.capacity.unwrap_or(model.capacity),
            startup_ms: self.startup_ms.unwrap_or(model.startup_ms),
            memory_idle: self.memory_idle.unwrap_or(model.memory_idle),
            memory_busy: self.memory_busy.unwrap_or(model.memory_busy),
            ..model
        }
    }
}

/// A service's record, ready to replay.
#[derive(Debug)]
pub struct Prepared {
    /// The load, a point a second.
    pub trace: Trace,
    /// What it is, for the report.
    pub what: String,
    /// The record, for the report: where it starts (the replay's clock
    /// starts there), the calibration, the current policy.
    pub report: HistoryReport,
}

/// Read `asked`'s record, calibrate on it, and find the service's current
/// policy among `policies` (files, or folders of them): refused when there
/// is none and no `candidates` either.
pub fn prepare(asked: &Asked, policies: &[PathBuf], candidates: bool) -> Result<Prepared> {
    let read = read(asked)?;
    let RecordedLoad {
        trace,
        per_minute: load,
        held: filled,
        first_ms,
    } = trace(&read, &asked.signal)?;
    let calibration = calibrate(&read, &asked.signal);
    let recorded_replicas = replicas_by_minute(&read, first_ms, load.len());
    let counted: Vec<f64> = recorded_replicas.iter().flatten().copied().collect();
    let current = current_policy(policies, &asked.service)?;
    if current.is_none() && !candidates {
        let given: Vec<String> = policies.iter().map(|p| p.display().to_string()).collect();
        bail!(Invalid::new(format!(
            "no policy to replay: no policy file in --policies ({}) names the service {:?}; \
             name the folder the daemon reads (--policies), or candidates with --policy",
            if given.is_empty() {
                "none given".to_string()
            } else {
                given.join(", ")
            },
            asked.service
        )));
    }
    let format = crate::clock::format_time;
    let report = HistoryReport {
        service: asked.service.clone(),
        from: format(first_ms),
        from_ms: first_ms,
        to: format(first_ms + load.len() as i64 * MINUTE_MS),
        minutes: load.len(),
        filled_minutes: filled,
        skipped_lines: read.skipped.len(),
        skipped: read.skipped.iter().take(5).cloned().collect(),
        calibration,
        load,
        recorded_replica_hours: (!counted.is_empty()).then(|| counted.iter().sum::<f64>() / 60.0),
        recorded_replicas,
        current,
    };
    Ok(Prepared {
        trace,
        what: format!("{} from {} to {}", read.what, report.from, report.to),
        report,
    })
}

/// The policy file among `paths` (files, or folders of `*.toml`, listed
/// as the daemon lists them) whose `service` is `service`.
pub fn current_policy(paths: &[PathBuf], service: &str) -> Result<Option<String>> {
    let listing = crate::config::list(paths);
    if let Some((root, why)) = listing.missing.first() {
        bail!(Invalid::new(format!(
            "--policies {}: {why}",
            root.display()
        )));
    }
    for file in listing.policies {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let names = text
            .parse::<toml::Table>()
            .ok()
            .and_then(|t| t.get("service")?.as_str().map(str::to_string));
        if names.as_deref() == Some(service) {
            return Ok(Some(file.display().to_string()));
        }
    }
    Ok(None)
}

/// The chart of a replay of `service`'s last day, from the state directory
/// `dir`, with its current policy among `policies` and the model calibrated
/// on its record: the status page's link.
pub fn last_day_chart(
    dir: &std::path::Path,
    policies: &[PathBuf],
    service: &str,
    now: TimestampMs,
) -> Result<String> {
    let asked = Asked {
        service: service.to_string(),
        origin: Origin::StateDir(dir.to_path_buf()),
        from: now - 86_400_000,
        to: now,
        signal: LOAD_SIGNAL.to_string(),
    };
    let prepared = prepare(&asked, policies, false)?;
    let sandbox = vedfolnir_sandbox::Sandbox::new(vedfolnir_sandbox::SandboxConfig {
        fuel: Some(super::REPLAY_FUEL),
        ..Default::default()
    })?;
    let c = &prepared.report.calibration;
    let options = super::Options {
        load: super::Load::Recorded {
            trace: prepared.trace,
            what: prepared.what,
        },
        scale: 1.0,
        policies: prepared.report.current.clone().into_iter().collect(),
        frontier: false,
        overrides: crate::config::Overrides::default(),
        interval_ms: c.interval_ms.unwrap_or(15_000),
        step_ms: None,
        model: c.applied(ServiceModel::default()),
        start_replicas: c.start_replicas,
        slo: super::DEFAULT_SLO,
        chart: None,
        actions: None,
        violations: None,
        json: true,
        progress: false,
        start_ms: prepared.report.from_ms,
        by_minute: false,
    };
    let (report, runs) = super::replay_all(&sandbox, &options)?;
    Ok(super::chart_svg(&options, &report, runs))
}

/// Read the record of `asked`.
pub fn read(asked: &Asked) -> Result<Recorded> {
    if asked.to <= asked.from {
        bail!(Invalid::new(format!(
            "--from {} is not before --to {}",
            crate::clock::format_time(asked.from),
            crate::clock::format_time(asked.to)
        )));
    }
    if (asked.to - asked.from) / MINUTE_MS > MAX_MINUTES as i64 {
        bail!(Invalid::new(format!(
            "--from to --to spans more than {} days: a replay of a record takes at most {MAX_MINUTES} minutes",
            MAX_MINUTES / 1440
        )));
    }
    match &asked.origin {
        Origin::StateDir(dir) => {
            let read = minutes::read(dir, &asked.service, asked.from, asked.to)?;
            let audit = AuditLog::in_dir(dir);
            Ok(Recorded {
                minutes: read.minutes,
                skipped: read.skipped,
                startups_ms: startups(&audit, &asked.service, asked.from, asked.to)?,
                what: format!(
                    "{}'s record in {}",
                    asked.service,
                    minutes::folder(dir).display()
                ),
            })
        }
        Origin::Prometheus {
            url,
            timeout,
            query,
        } => prometheus(asked, url, *timeout, query.as_deref()),
    }
}

/// How long each live scale-up from `from` to `to` took: its start and
/// finish in the audit log.
fn startups(
    audit: &AuditLog,
    service: &str,
    from: TimestampMs,
    to: TimestampMs,
) -> Result<Vec<u64>> {
    let records = audit.records(service)?;
    let mut started: BTreeMap<&str, TimestampMs> = BTreeMap::new();
    let mut out = Vec::new();
    for r in &records {
        if r.dry_run || r.direction != vedfolnir_core::model::Direction::Up {
            continue;
        }
        match r.event {
            Event::ScaleStarted if r.time_ms >= from && r.time_ms < to => {
                started.insert(&r.action_id, r.time_ms);
            }
            Event::ScaleFinished if r.to > r.from => {
                if let Some(t) = started.remove(r.action_id.as_str()) {
                    out.push((r.time_ms - t).max(0) as u64);
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The default load query of `service` on Prometheus: the workload's
/// request counter's rate, as deploy/prometheus labels it.
pub fn default_query(service: &str) -> String {
    format!("sum(rate(vedfolnir_requests_total{{service=\"{service}\"}}[1m]))")
}

/// The record from Prometheus: the load query, and our recording rules'
/// CPU, memory and replica count for the calibration (each at a minute's
/// step; a rule with no data leaves its part of the calibration out).
fn prometheus(
    asked: &Asked,
    url: &str,
    timeout: Duration,
    query: Option<&str>,
) -> Result<Recorded> {
    let service = &asked.service;
    let load = query.map_or_else(|| default_query(service), str::to_string);
    let series = [
        (asked.signal.clone(), load.clone()),
        (
            "cpu".into(),
            format!("vedfolnir:cpu_usage_avg{{service=\"{service}\"}}"),
        ),
        (
            "memory".into(),
            format!("vedfolnir:memory_usage_avg{{service=\"{service}\"}}"),
        ),
        (
            "instance-count".into(),
            format!("vedfolnir:instance_count{{service=\"{service}\"}}"),
        ),
    ];
    let client = crate::sources::prometheus::Prometheus::new(url, timeout);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut by_minute: BTreeMap<TimestampMs, BTreeMap<String, f64>> = BTreeMap::new();
    // A minute's value is the query's at the minute's end: a rate over
    // [1m] then covers the minute.
    let (from, to) = (asked.from + MINUTE_MS, asked.to + MINUTE_MS);
    for (i, (name, expr)) in series.iter().enumerate() {
        let samples = match runtime.block_on(client.minutes(expr, from, to)) {
            Ok(s) => s,
            Err(e) if i == 0 => bail!("the load query {expr}: {e}"),
            Err(e) => {
                tracing::warn!(query = %expr, error = %e, "left out of the calibration");
                continue;
            }
        };
        for s in samples.into_iter().filter(|s| s.value.is_finite()) {
            let t = (s.at - MINUTE_MS).div_euclid(MINUTE_MS) * MINUTE_MS;
            by_minute
                .entry(t)
                .or_default()
                .insert(name.clone(), s.value);
        }
    }
    Ok(Recorded {
        minutes: by_minute
            .into_iter()
            .map(|(t, values)| Minute {
                t,
                samples: 0,
                values,
            })
            .collect(),
        skipped: Vec::new(),
        startups_ms: Vec::new(),
        what: format!("{load} on Prometheus at {url}"),
    })
}

/// A record's load, minute by minute.
#[derive(Debug)]
pub struct RecordedLoad {
    /// As a trace, a point a second, so each minute's load is flat.
    pub trace: Trace,
    /// Each minute's load, req/s.
    pub per_minute: Vec<f64>,
    /// The minutes without one, which hold the minute before.
    pub held: usize,
    /// The first minute's start.
    pub first_ms: TimestampMs,
}

/// The load of each minute from the first minute with `signal` to the
/// last, a minute with none holding the one before.
pub fn trace(recorded: &Recorded, signal: &str) -> Result<RecordedLoad> {
    let with: Vec<&Minute> = recorded
        .minutes
        .iter()
        .filter(|m| load_of(m, signal).is_some())
        .collect();
    let (Some(first), Some(last)) = (with.first(), with.last()) else {
        bail!(Invalid::new(format!(
            "{}: no minute has {signal}: route it in the service's policy file \
             (for example [signals.{signal}] source = \"scrape\" metric = \"vedfolnir_requests_total\", \
             a counter read as its rate) and let the daemon run, or name another with --load-signal",
            recorded.what
        )));
    };
    let n = ((last.t - first.t) / MINUTE_MS + 1) as usize;
    let mut per_minute = Vec::with_capacity(n);
    let mut held = 0;
    let mut at = with.iter().peekable();
    let mut value = 0.0;
    for k in 0..n {
        let t = first.t + k as i64 * MINUTE_MS;
        match at.peek() {
            Some(m) if m.t == t => {
                value = load_of(m, signal).unwrap_or(0.0).max(0.0);
                at.next();
            }
            _ => held += 1,
        }
        per_minute.push(value);
    }
    let values = per_minute
        .iter()
        .flat_map(|v| std::iter::repeat_n(*v, 60))
        .collect();
    Ok(RecordedLoad {
        trace: Trace {
            step_ms: 1000,
            values,
        },
        per_minute,
        held,
        first_ms: first.t,
    })
}

/// The model's parameters, as far as `recorded` shows them.
pub fn calibrate(recorded: &Recorded, signal: &str) -> Calibration {
    let value = |m: &Minute, name: &str| m.values.get(name).copied();
    let capacities: Vec<f64> = recorded
        .minutes
        .iter()
        .filter_map(|m| {
            let (load, cpu, n) = (
                load_of(m, signal)?,
                value(m, "cpu")?,
                value(m, "instance-count")?,
            );
            (cpu >= MIN_CALIBRATION_CPU && n >= 0.5 && load > 0.0).then(|| load / (cpu * n))
        })
        .collect();
    let points: Vec<(f64, f64)> = recorded
        .minutes
        .iter()
        .filter_map(|m| Some((value(m, "cpu")?, value(m, "memory")?)))
        .collect();
    let (memory_idle, memory_busy) = match line_through(&points) {
        Some((a, b)) => (Some(a), Some(b)),
        None => (None, None),
    };
    let intervals: Vec<f64> = recorded
        .minutes
        .iter()
        .filter(|m| m.samples > 0)
        .map(|m| 60.0 / f64::from(m.samples))
        .collect();
    Calibration {
        capacity: median(&capacities),
        capacity_minutes: capacities.len(),
        memory_idle,
        memory_busy,
        startup_ms: median(
            &recorded
                .startups_ms
                .iter()
                .map(|&v| v as f64)
                .collect::<Vec<_>>(),
        )
        .map(|v| v as u64),
        startup_scales: recorded.startups_ms.len(),
        interval_ms: median(&intervals).map(|s| (s.round().max(1.0) * 1000.0) as u64),
        start_replicas: recorded
            .minutes
            .iter()
            .find(|m| load_of(m, signal).is_some())
            .and_then(|m| value(m, "instance-count"))
            .map(|n| n.round().max(0.0) as u32),
    }
}

/// The replicas of each minute of the replay from `first` (the trace's
/// first minute) over `n` minutes, where recorded.
pub fn replicas_by_minute(recorded: &Recorded, first: TimestampMs, n: usize) -> Vec<Option<f64>> {
    let by_time: BTreeMap<TimestampMs, f64> = recorded
        .minutes
        .iter()
        .filter_map(|m| Some((m.t, *m.values.get("instance-count")?)))
        .collect();
    (0..n)
        .map(|k| by_time.get(&(first + k as i64 * MINUTE_MS)).copied())
        .collect()
}

/// A minute's load: the signal's recent rate where the record has it (a
/// counter's rate since the pass before, [`crate::sources::Reading::Recent`]),
/// else the signal itself (which, for a counter, is its rate over the
/// last 5 minutes: it would smear each change over the minutes after it).
pub fn load_of(m: &Minute, signal: &str) -> Option<f64> {
    m.values
        .get(&format!("{signal}{}", crate::sources::RECENT_SUFFIX))
        .or_else(|| m.values.get(signal))
        .copied()
}

/// The middle value (the mean of the middle two), if any.
fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

/// `y = a + b x` through the points by least squares, within the model's
/// range (a and b not negative, a + b at most 1); a flat line at the mean
/// when x hardly varies; none for fewer than two points.
fn line_through(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let b = if sxx / n < 1e-4 {
        0.0
    } else {
        (sxy / sxx).max(0.0)
    };
    let a = (my - b * mx).clamp(0.0, 1.0);
    Some((a, b.min(1.0 - a)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minute(t: TimestampMs, samples: u32, values: &[(&str, f64)]) -> Minute {
        Minute {
            t,
            samples,
            values: values.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    #[test]
    fn a_gap_in_the_record_holds_the_minute_before_and_each_minute_is_flat() {
        let rec = Recorded {
            minutes: vec![
                minute(0, 4, &[("cpu", 0.5)]),
                minute(60_000, 4, &[(LOAD_SIGNAL, 5.0)]),
                minute(180_000, 4, &[(LOAD_SIGNAL, 30.0)]),
            ],
            ..Recorded::default()
        };
        let RecordedLoad {
            trace,
            per_minute,
            held,
            first_ms,
        } = trace(&rec, LOAD_SIGNAL).unwrap();
        assert_eq!(per_minute, vec![5.0, 5.0, 30.0]);
        assert_eq!(first_ms, 60_000);
        // A counter's recent rate is the minute's load where recorded.
        let recent = Recorded {
            minutes: vec![minute(
                0,
                4,
                &[(LOAD_SIGNAL, 12.0), ("requests-per-second@recent", 20.0)],
            )],
            ..Recorded::default()
        };
        assert_eq!(
            super::trace(&recent, LOAD_SIGNAL).unwrap().per_minute,
            vec![20.0]
        );
        assert_eq!(held, 1);
        assert_eq!(trace.duration_ms(), 180_000);
        assert_eq!(trace.mean(120_000, 180_000), 30.0);
        assert_eq!(trace.mean(0, 59_000), 5.0);
        let none = Recorded {
            what: "web's record".into(),
            ..Recorded::default()
        };
        let e = super::trace(&none, LOAD_SIGNAL).unwrap_err().to_string();
        assert!(
            e.contains("web's record: no minute has requests-per-second"),
            "{e}"
        );
    }

    #[test]
    fn capacity_memory_interval_and_start_come_from_the_busy_minutes() {
        // 20 req/s a replica at full CPU; memory 0.1 + 0.2 x CPU; passes
        // every 15 s; one idle minute, left out of the capacity.
        let rec = Recorded {
            minutes: vec![
                minute(
                    0,
                    4,
                    &[
                        (LOAD_SIGNAL, 0.5),
                        ("cpu", 0.01),
                        ("instance-count", 1.0),
                        ("memory", 0.102),
                    ],
                ),
                minute(
                    60_000,
                    4,
                    &[
                        (LOAD_SIGNAL, 10.0),
                        ("cpu", 0.5),
                        ("instance-count", 1.0),
                        ("memory", 0.2),
                    ],
                ),
                minute(
                    120_000,
                    4,
                    &[
                        (LOAD_SIGNAL, 30.0),
                        ("cpu", 0.75),
                        ("instance-count", 2.0),
                        ("memory", 0.25),
                    ],
                ),
                minute(
                    180_000,
                    3,
                    &[
                        (LOAD_SIGNAL, 24.0),
                        ("cpu", 0.4),
                        ("instance-count", 3.0),
                        ("memory", 0.18),
                    ],
                ),
            ],
            startups_ms: vec![2_000, 3_000, 10_000],
            ..Recorded::default()
        };
        let c = calibrate(&rec, LOAD_SIGNAL);
        assert_eq!(c.capacity_minutes, 3);
        assert!((c.capacity.unwrap() - 20.0).abs() < 1e-9, "{c:?}");
        assert!((c.memory_idle.unwrap() - 0.1).abs() < 1e-3, "{c:?}");
        assert!((c.memory_busy.unwrap() - 0.2).abs() < 1e-2, "{c:?}");
        assert_eq!(c.startup_ms, Some(3_000));
        assert_eq!(c.interval_ms, Some(15_000));
        assert_eq!(c.start_replicas, Some(1));
        assert_eq!(
            replicas_by_minute(&rec, 60_000, 4),
            vec![Some(1.0), Some(2.0), Some(3.0), None]
        );
    }

    /// The status page's chart: the service's policy replayed on the last
    /// day of its record, drawn in memory (the load and the policy's row),
    /// and a service with no policy naming it refused.
    #[test]
    fn the_last_days_chart_replays_the_current_policy_on_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let now = 1_796_601_600_000_i64 + 2 * 3_600_000; // 2026-12-07T02:00Z
        let record: Vec<Minute> = (0..60)
            .map(|k| {
                let load = if k < 30 { 40.0 } else { 160.0 };
                minute(
                    now - (60 - k) * MINUTE_MS,
                    4,
                    &[
                        (LOAD_SIGNAL, load),
                        ("cpu", load / 200.0),
                        ("instance-count", 2.0),
                    ],
                )
            })
            .collect();
        minutes::append(dir.path(), "web", &record).unwrap();
        let policy = dir.path().join("web.toml");
        std::fs::write(
            &policy,
            "service = \"web\"\nplugin = \"builtin:target-tracking\"\nmin_replicas = 1\nmax_replicas = 6\n",
        )
        .unwrap();
        let svg = last_day_chart(dir.path(), std::slice::from_ref(&policy), "web", now).unwrap();
        // The record's load (up to 160 req/s) and the policy's row, by
        // its file's name.
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("web&#39;s record in "), "{svg}");
        assert!(
            svg.contains(">160</text>") && svg.contains(">web</text>"),
            "{svg}"
        );
        let other = last_day_chart(dir.path(), &[policy], "other", now).unwrap_err();
        assert!(other.to_string().contains("other"), "{other:#}");
    }
}
