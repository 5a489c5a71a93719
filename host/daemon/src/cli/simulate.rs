//! `simulate`: its flags as the simulator's options, and what it prints.

use std::process::ExitCode;

use anyhow::Result;
use vedfolnir_sandbox::Sandbox;

use super::args::SimulateArgs;
use crate::config::Overrides;
use crate::simulate::history::Prepared;

/// `simulate`: the flags as the simulator's options; the table or JSON.
pub fn simulate(sandbox: &Sandbox, mut a: SimulateArgs) -> Result<ExitCode> {
    use vedfolnir_core::sim::{ServiceModel, Slo};
    let recorded = match a.history.service.take() {
        Some(service) => Some(recorded(&a, service)?),
        None => None,
    };
    let calibration = recorded.as_ref().map(|r| &r.report.calibration);
    let load = load_of(&mut a, recorded.as_ref());
    let ms = |d: std::time::Duration| d.as_millis() as u64;
    let calibrated = calibration.map_or_else(ServiceModel::default, |c| {
        c.applied(ServiceModel::default())
    });
    let policies = policies_to_replay(&mut a, recorded.as_ref());
    let options = crate::simulate::Options {
        load,
        scale: a.scale,
        policies,
        frontier: a.frontier,
        overrides: Overrides {
            min_replicas: a.min_replicas,
            max_replicas: a.max_replicas,
        },
        interval_ms: a
            .interval
            .map(ms)
            .or_else(|| calibration.and_then(|c| c.interval_ms))
            .unwrap_or(15_000),
        step_ms: a.step.map(ms),
        model: ServiceModel {
            capacity: a.capacity.unwrap_or(calibrated.capacity),
            workers: a.workers,
            startup_ms: a.startup.map_or(calibrated.startup_ms, ms),
            timeout_ms: ms(a.timeout),
            ..calibrated
        },
        start_replicas: a
            .start_replicas
            .or_else(|| calibration.and_then(|c| c.start_replicas)),
        slo: Slo {
            p95: a.slo_p95,
            error_rate: a.slo_error_rate,
        },
        chart: a.chart,
        actions: a.actions,
        violations: a.violations,
        json: a.json,
        progress: !a.quiet && !a.json,
        start_ms: recorded
            .as_ref()
            .map_or(crate::simulate::EPOCH_MS, |r| r.report.from_ms),
        by_minute: recorded.is_some(),
    };
    let mut report = crate::simulate::run(sandbox, &options)?;
    report.history = recorded.map(|r| r.report);
    if options.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        out!("{}", crate::simulate::report::table(&report, &options));
        if let Some(path) = &options.chart {
            outln!("\nchart: {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Where the load comes from: the record, a trace file, or a shape.
fn load_of(a: &mut SimulateArgs, recorded: Option<&Prepared>) -> crate::simulate::Load {
    match (recorded, a.trace.take()) {
        (Some(r), _) => crate::simulate::Load::Recorded {
            trace: r.trace.clone(),
            what: r.what.clone(),
        },
        (None, Some(path)) => crate::simulate::Load::File {
            path,
            column: a.column.take(),
        },
        (None, None) => crate::simulate::Load::Shape {
            shape: a.shape.take().unwrap_or_else(|| "diurnal".into()),
            duration_ms: a.duration.as_millis() as u64,
            base: a.base,
            peak: a.peak,
            seed: a.seed,
            noise: vedfolnir_core::sim::Noise {
                size: a.noise,
                burst_period_ms: a.burst_period.map(|d| d.as_millis() as u64),
            },
        },
    }
}

/// The policies a run replays: each `--policy` (every builtin when none is
/// given), and with `--history` the service's current policy first.
fn policies_to_replay(a: &mut SimulateArgs, recorded: Option<&Prepared>) -> Vec<String> {
    let mut policies = std::mem::take(&mut a.policies);
    match recorded.and_then(|r| r.report.current.clone()) {
        Some(current) => policies.insert(0, current),
        None if policies.is_empty() => {
            policies = vedfolnir_plugin_artifacts::POLICIES
                .iter()
                .map(|(n, _, _)| format!("builtin:{n}"))
                .collect();
        }
        None => {}
    }
    policies
}

/// Read `service`'s record as `--history` and its flags ask, and find its
/// current policy.
fn recorded(a: &SimulateArgs, service: String) -> Result<Prepared> {
    use crate::simulate::history;
    let h = &a.history;
    let now = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
    let asked = history::Asked {
        from: when("--from", &h.from, now)?,
        to: when("--to", &h.to, now)?,
        origin: match &h.prometheus_url {
            Some(url) => history::Origin::Prometheus {
                url: url.clone(),
                timeout: std::time::Duration::from_secs(30),
                query: h.query.clone(),
            },
            None => history::Origin::StateDir(h.state.state_dir.clone()),
        },
        signal: h.load_signal.clone(),
        service,
    };
    history::prepare(&asked, &h.policy_folders, !a.policies.is_empty())
}

/// A `--from` or `--to`: a UTC time, or a duration before `now`.
fn when(flag: &str, text: &str, now: vedfolnir_core::model::TimestampMs) -> Result<i64> {
    if let Ok(ms) = crate::clock::parse_time(text) {
        return Ok(ms);
    }
    match vedfolnir_core::duration::parse_duration(text) {
        Ok(ago) => Ok(now - ago as i64),
        Err(_) => Err(crate::simulate::Invalid::new(format!(
            "{flag} {text:?}: neither a UTC time (2026-12-07T00:00:00Z) nor how long ago (1d, 90m)"
        ))
        .into()),
    }
}
