//! The Swarm actuator: a replicated service scaled by updating its replica
//! count (with optimistic concurrency on the service's version), then
//! waiting for its running tasks to match.

use std::collections::HashMap;
use std::time::Duration;

use bollard::query_parameters::{ListTasksOptionsBuilder, UpdateServiceOptionsBuilder};
use tokio::time::Instant;

use super::{Outcome, ScalePlan, ScaleReport, not_found};
use crate::config::{Rollout, Target};
use crate::engine::{Engine, EngineError, api_error};

/// A Swarm service's replica counts.
#[derive(Debug, Clone)]
pub struct SwarmState {
    /// Tasks running now.
    pub running: u32,
    /// The replica count the service asks for.
    pub desired: u32,
    /// The containers of the tasks Swarm wants running: a container whose
    /// task is being shut down (after a scale-down) still runs for a
    /// moment, but is no longer one of the service's replicas.
    pub current: std::collections::HashSet<String>,
}

/// The Swarm service's running tasks.
pub async fn state(engine: &Engine, target: &Target) -> Result<SwarmState, EngineError> {
    let service = match engine.docker.inspect_service(&target.name, None).await {
        Ok(s) => s,
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => return Err(not_found(target)),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 503,
            message,
        }) => {
            return Err(EngineError::not_found(format!(
                "this engine is not part of a Swarm ({message}); target.kind = \"swarm\" needs one (docker swarm init)"
            )));
        }
        Err(e) => {
            return Err(api_error(
                engine,
                &format!("inspecting service {}", target.name),
                e,
            ));
        }
    };
    let desired = service
        .spec
        .as_ref()
        .and_then(|s| s.mode.as_ref())
        .and_then(|m| m.replicated.as_ref())
        .and_then(|r| r.replicas)
        .ok_or_else(|| {
            EngineError::api(format!(
                "service {} is not in replicated mode: a global service cannot be scaled",
                target.name
            ))
        })?;
    let filters: HashMap<String, Vec<String>> = HashMap::from([
        ("service".to_string(), vec![target.name.clone()]),
        ("desired-state".to_string(), vec!["running".to_string()]),
    ]);
    let tasks = engine
        .docker
        .list_tasks(Some(
            ListTasksOptionsBuilder::default().filters(&filters).build(),
        ))
        .await
        .map_err(|e| api_error(engine, &format!("listing tasks of {}", target.name), e))?;
    let running = tasks
        .iter()
        .filter(|t| {
            t.status
                .as_ref()
                .and_then(|s| s.state)
                .map(|s| s.to_string() == "running")
                .unwrap_or(false)
        })
        .count() as u32;
    let current = tasks
        .iter()
        .filter_map(|t| {
            t.status
                .as_ref()?
                .container_status
                .as_ref()?
                .container_id
                .clone()
        })
        .collect();
    Ok(SwarmState {
        running,
        desired: desired.clamp(0, i64::from(u32::MAX)) as u32,
        current,
    })
}

/// Finish an interrupted scale: setting the replica count is one update,
/// so it happened when the service asks for the planned count, and Swarm
/// converges the tasks itself.
pub async fn settle(
    engine: &Engine,
    target: &Target,
    plan: &ScalePlan,
) -> Result<ScaleReport, EngineError> {
    let now = state(engine, target).await?;
    let mut report = ScaleReport::new(plan.from, plan.to);
    let done = now.desired == plan.to;
    if done {
        report.reached = plan.to;
    }
    report.outcome = if done {
        Outcome::Succeeded
    } else {
        Outcome::Failed
    };
    report.error = Some(format!(
        "interrupted: the process stopped mid-scale; the service asks for {} replicas ({} running)",
        now.desired, now.running
    ));
    Ok(report)
}

/// Scale a Swarm service by its replica count and wait (the monitor
/// window) for its running tasks to match.
pub async fn scale(
    engine: &Engine,
    target: &Target,
    rollout: &Rollout,
    to: u32,
) -> Result<ScaleReport, EngineError> {
    let started = Instant::now();
    let before = state(engine, target).await?;
    let mut report = ScaleReport::new(before.running, to);
    // Optimistic concurrency: update against the version we read; if
    // someone else updated the service in between, read again and retry.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let service = engine
            .docker
            .inspect_service(&target.name, None)
            .await
            .map_err(|e| api_error(engine, &format!("inspecting service {}", target.name), e))?;
        let version = service.version.and_then(|v| v.index).unwrap_or(0);
        let mut spec = service.spec.unwrap_or_default();
        if let Some(r) = spec.mode.as_mut().and_then(|m| m.replicated.as_mut()) {
            r.replicas = Some(i64::from(to));
        }
        let options = UpdateServiceOptionsBuilder::default()
            .version(version as i32)
            .build();
        match engine
            .docker
            .update_service(&target.name, spec, options, None)
            .await
        {
            Ok(_) => break,
            Err(bollard::errors::Error::DockerResponseServerError { message, .. })
                if message.contains("out of sequence") && attempts < 5 =>
            {
                tracing::info!(service = %target.name, version, "service changed under us; retrying the update");
            }
            Err(e) => {
                report.error = Some(
                    api_error(engine, &format!("updating service {}", target.name), e).to_string(),
                );
                return Ok(report.finish(started));
            }
        }
    }
    // Converged when the running tasks equal the new count.
    let deadline = Instant::now() + Duration::from_millis(rollout.monitor_ms);
    loop {
        let now = state(engine, target).await?;
        report.reached = now.running;
        if now.running == to {
            break;
        }
        if Instant::now() >= deadline {
            report.error = Some(format!(
                "{} of {to} task(s) running after the monitor window of {}",
                now.running,
                vedfolnir_core::format_duration(rollout.monitor_ms)
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(report.finish(started))
}
