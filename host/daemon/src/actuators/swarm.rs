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
use crate::lease::Fence;

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
    /// What the autoscaler wrote on the service with its last scale.
    pub marks: Marks,
}

/// The service label holding the epoch of the last write (the fence).
pub const EPOCH_LABEL: &str = "io.vedfolnir.autoscaler.epoch";
/// The service label holding when the last scale-up was written (ms).
pub const LAST_UP_LABEL: &str = "io.vedfolnir.autoscaler.last-scale-up";
/// ... and the last scale-down.
pub const LAST_DOWN_LABEL: &str = "io.vedfolnir.autoscaler.last-scale-down";
/// The service label naming the last action: `<action id> <from>-><to>`.
pub const LAST_ACTION_LABEL: &str = "io.vedfolnir.autoscaler.last-action";

/// What the autoscaler keeps on a Swarm service, written in the same
/// update as the replica count, so whichever daemon leads next honours the
/// cooldowns and knows the last action.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Marks {
    /// The epoch of the holder that wrote last.
    pub epoch: Option<u64>,
    /// When the last scale-up was written.
    pub last_scale_up: Option<vedfolnir_core::model::TimestampMs>,
    /// When the last scale-down was written.
    pub last_scale_down: Option<vedfolnir_core::model::TimestampMs>,
    /// The last action: `<action id> <from>-><to>`.
    pub last_action: Option<String>,
}

impl Marks {
    fn of(labels: Option<&HashMap<String, String>>) -> Marks {
        let get = |k: &str| labels.and_then(|l| l.get(k));
        Marks {
            epoch: get(EPOCH_LABEL).and_then(|v| v.parse().ok()),
            last_scale_up: get(LAST_UP_LABEL).and_then(|v| v.parse().ok()),
            last_scale_down: get(LAST_DOWN_LABEL).and_then(|v| v.parse().ok()),
            last_action: get(LAST_ACTION_LABEL).cloned(),
        }
    }
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
    let marks = Marks::of(service.spec.as_ref().and_then(|s| s.labels.as_ref()));
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
        marks,
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

/// Whether a write fenced by `fence` may go on a service whose labels
/// say `marks`: the holder's lease has not run out by its own clock, and
/// no higher epoch has written to the service.
fn check_fence(
    fence: &Fence,
    planned_at: Option<u64>,
    marks: &Marks,
    service: &str,
) -> Result<(), EngineError> {
    // A plan made under another term is not carried out.
    if planned_at != Some(fence.epoch) {
        return Err(EngineError::Fenced {
            why: format!(
                "planned at epoch {planned_at:?}, and this daemon now leads at epoch {}; nothing written",
                fence.epoch
            ),
        });
    }
    if !fence.holds(Instant::now()) {
        return Err(EngineError::Fenced {
            why: format!(
                "the lease (epoch {}) ran out by this daemon's clock before the write to {service}; nothing written",
                fence.epoch
            ),
        });
    }
    match marks.epoch {
        Some(theirs) if theirs > fence.epoch => Err(EngineError::Fenced {
            why: format!(
                "{service} was last written at epoch {theirs}, above this daemon's {}: another leader took over; nothing written",
                fence.epoch
            ),
        }),
        _ => Ok(()),
    }
}

/// The labels a write sets beside the replica count: the epoch, the
/// cooldown clock of its direction, the action.
fn mark(labels: &mut HashMap<String, String>, fence: Option<&Fence>, write: &Write<'_>) {
    if let Some(f) = fence {
        labels.insert(EPOCH_LABEL.into(), f.epoch.to_string());
    }
    let clock = match write.to.cmp(&write.from) {
        std::cmp::Ordering::Greater => Some(LAST_UP_LABEL),
        std::cmp::Ordering::Less => Some(LAST_DOWN_LABEL),
        std::cmp::Ordering::Equal => None,
    };
    if let Some(k) = clock {
        labels.insert(k.into(), write.at.to_string());
    }
    labels.insert(
        LAST_ACTION_LABEL.into(),
        format!("{} {}->{}", write.action, write.from, write.to),
    );
}

/// One scale's write: the action, the counts, when.
#[derive(Debug, Clone, Copy)]
pub struct Write<'a> {
    /// The action id.
    pub action: &'a str,
    /// The count asked before.
    pub from: u32,
    /// The count asked now.
    pub to: u32,
    /// When (ms since the epoch): the cooldown's start.
    pub at: vedfolnir_core::model::TimestampMs,
}

/// Write the replica count `to` with its marks, against the version
/// read (someone else's update in between: read again and retry, up to
/// five times); `Ok(Err(why))` when the engine refused the update.
async fn write_count(
    engine: &Engine,
    target: &Target,
    plan: &ScalePlan,
    action: &str,
    fence: Option<Fence>,
) -> Result<Result<(), String>, EngineError> {
    let to = plan.to;
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
        // Checked against what this version of the service says: a higher
        // epoch written since makes the update fail out of sequence, and
        // the next round sees it.
        if let Some(f) = &fence {
            check_fence(
                f,
                plan.epoch,
                &Marks::of(spec.labels.as_ref()),
                &target.name,
            )?;
        }
        let Some(replicated) = spec.mode.as_mut().and_then(|m| m.replicated.as_mut()) else {
            return Ok(Err(format!(
                "service {} is not in replicated mode",
                target.name
            )));
        };
        let asked = replicated
            .replicas
            .unwrap_or(0)
            .clamp(0, i64::from(u32::MAX)) as u32;
        replicated.replicas = Some(i64::from(to));
        let write = Write {
            action,
            from: asked,
            to,
            at: crate::clock::now_ms(),
        };
        mark(
            spec.labels.get_or_insert_with(HashMap::new),
            fence.as_ref(),
            &write,
        );
        let options = UpdateServiceOptionsBuilder::default()
            .version(version as i32)
            .build();
        match engine
            .docker
            .update_service(&target.name, spec, options, None)
            .await
        {
            Ok(_) => return Ok(Ok(())),
            Err(bollard::errors::Error::DockerResponseServerError { message, .. })
                if message.contains("out of sequence") && attempts < 5 =>
            {
                tracing::info!(service = %target.name, version, "service changed under us; retrying the update");
            }
            Err(e) => {
                return Ok(Err(api_error(
                    engine,
                    &format!("updating service {}", target.name),
                    e,
                )
                .to_string()));
            }
        }
    }
}

/// Scale a Swarm service by its replica count and wait (the monitor
/// window) for its running tasks to match. With a `fence`, the write
/// carries its epoch and is refused ([`EngineError::Fenced`]) when the
/// lease ran out or a higher epoch wrote to the service; both are checked
/// against the version the update is compared with.
pub async fn scale(
    engine: &Engine,
    target: &Target,
    rollout: &Rollout,
    plan: &ScalePlan,
    action: &str,
    fence: Option<Fence>,
) -> Result<ScaleReport, EngineError> {
    let started = Instant::now();
    let to = plan.to;
    let before = state(engine, target).await?;
    let mut report = ScaleReport::new(before.running, to);
    if let Err(e) = write_count(engine, target, plan, action, fence).await? {
        report.error = Some(e);
        return Ok(report.finish(started));
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
