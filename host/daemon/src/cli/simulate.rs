//! `simulate`: its flags as the simulator's options, and what it prints.

use std::process::ExitCode;

use anyhow::Result;
use vedfolnir_sandbox::Sandbox;

use super::args::SimulateArgs;
use crate::config::Overrides;

/// `simulate`: the flags as the simulator's options; the table or JSON.
pub fn simulate(sandbox: &Sandbox, a: SimulateArgs) -> Result<ExitCode> {
    use vedfolnir_core::sim::{ServiceModel, Slo};
    let load = match a.trace {
        Some(path) => crate::simulate::Load::File {
            path,
            column: a.column,
        },
        None => crate::simulate::Load::Shape {
            shape: a.shape.unwrap_or_else(|| "diurnal".into()),
            duration_ms: a.duration.as_millis() as u64,
            base: a.base,
            peak: a.peak,
            seed: a.seed,
            noise: vedfolnir_core::sim::Noise {
                size: a.noise,
                burst_period_ms: a.burst_period.map(|d| d.as_millis() as u64),
            },
        },
    };
    let policies = if a.policies.is_empty() {
        vedfolnir_plugin_artifacts::POLICIES
            .iter()
            .map(|(n, _, _)| format!("builtin:{n}"))
            .collect()
    } else {
        a.policies
    };
    let ms = |d: std::time::Duration| d.as_millis() as u64;
    let options = crate::simulate::Options {
        load,
        scale: a.scale,
        policies,
        frontier: a.frontier,
        overrides: Overrides {
            min_replicas: a.min_replicas,
            max_replicas: a.max_replicas,
        },
        interval_ms: ms(a.interval),
        step_ms: a.step.map(ms),
        model: ServiceModel {
            capacity: a.capacity,
            workers: a.workers,
            startup_ms: ms(a.startup),
            timeout_ms: ms(a.timeout),
            ..ServiceModel::default()
        },
        start_replicas: a.start_replicas,
        slo: Slo {
            p95: a.slo_p95,
            error_rate: a.slo_error_rate,
        },
        chart: a.chart,
        actions: a.actions,
        violations: a.violations,
        json: a.json,
        progress: !a.quiet && !a.json,
    };
    let report = crate::simulate::run(sandbox, &options)?;
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
