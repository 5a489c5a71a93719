//! Actuators: what scales a target, behind one trait ([`Actuator`]).
//!
//! The Docker engine's ([`DockerActuator`]) scales a Compose service
//! through the Docker API ([`compose`]: clone a running replica,
//! start-first, roll back past a failure ratio; stop the newest gracefully)
//! or a Swarm service by its replica count ([`swarm`]). Only the target
//! service's containers are touched: no `compose up`, so the project's
//! other services (database, cache) are never re-converged.
//!
//! Replica counts are always read from the engine, never from a counter of
//! our own.

pub mod compose;
pub mod swarm;

use futures_util::future::BoxFuture;
use tokio::time::Instant;

use crate::config::{Rollout, Target, TargetKind};
use crate::engine::{Engine, EngineError, Readiness, Replica};

/// What a target is now, as its engine shows it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Observed {
    /// Every container of the target (running or not, for Compose).
    pub replicas: Vec<Replica>,
    /// Running replicas.
    pub running: u32,
    /// Running and ready (healthy, or without a healthcheck).
    pub ready: u32,
    /// What the last scale wrote on a Swarm service (its cooldown clocks,
    /// epoch and action), whichever daemon wrote it.
    pub marks: Option<swarm::Marks>,
}

/// What a scale will do, decided before it runs and written into its
/// intent, so an interrupted scale is judged by what it set out to do and
/// its half-made work can be found: the containers it creates carry its
/// action id ([`crate::engine::ACTION_LABEL`]), and those it stops are
/// named here.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScalePlan {
    /// Running replicas when planned.
    pub from: u32,
    /// The target count.
    pub to: u32,
    /// The container to clone (Compose scale-up), by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Containers to create (Compose scale-up).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub create: Vec<PlannedReplica>,
    /// Containers to stop and remove (Compose scale-down).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<PlannedReplica>,
    /// The lease's epoch the planner led at (a Swarm target among several
    /// daemons): the write goes only if it still leads at this epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
}

/// One container a plan creates or stops.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlannedReplica {
    /// Its name.
    pub name: String,
    /// Its id (a container to stop; empty for one to create).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Its Compose container number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u32>,
}

impl ScalePlan {
    /// A plan that only names the counts (an actuator with nothing to
    /// create or stop by name).
    pub fn counts(from: u32, to: u32) -> ScalePlan {
        ScalePlan {
            from,
            to,
            template: None,
            create: Vec::new(),
            stop: Vec::new(),
            epoch: None,
        }
    }
}

/// What scales a target.
pub trait Actuator: Send + Sync {
    /// The target in words, for messages ("compose service web (project p)").
    fn describe(&self) -> String;
    /// The target's replicas now. A target with nothing on the engine is
    /// [`EngineError::NotFound`].
    fn status(&self) -> BoxFuture<'_, Result<Observed, EngineError>>;
    /// What scaling to `to` would do. By default, only the counts.
    fn plan(&self, to: u32) -> BoxFuture<'_, Result<ScalePlan, EngineError>> {
        Box::pin(async move { Ok(ScalePlan::counts(self.status().await?.running, to)) })
    }
    /// Carry out `plan` as action `action` (its audit `action_id`); the
    /// report says what happened, replica by replica.
    fn scale<'a>(
        &'a self,
        plan: &'a ScalePlan,
        action: &'a str,
    ) -> BoxFuture<'a, Result<ScaleReport, EngineError>>;
    /// Finish a scale that was interrupted (its process died): judge it by
    /// what it did, and with `tidy` remove what it left half-made (a dry
    /// run only judges). By default, by the count the engine shows now.
    fn settle<'a>(
        &'a self,
        plan: &'a ScalePlan,
        action: &'a str,
        tidy: bool,
    ) -> BoxFuture<'a, Result<ScaleReport, EngineError>> {
        let _ = (action, tidy);
        Box::pin(async move {
            let running = self.status().await?.running;
            Ok(ScaleReport::judged_by_count(plan, running))
        })
    }
    /// Remove replicas the autoscaler created that will not run again
    /// ([`Replica::is_abandoned`]); each removed name, or why not.
    fn remove_abandoned<'a>(
        &'a self,
        abandoned: &'a [Replica],
    ) -> BoxFuture<'a, Vec<(String, Result<(), EngineError>)>> {
        let _ = abandoned;
        Box::pin(async { Vec::new() })
    }
}

impl std::fmt::Debug for dyn Actuator + '_ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// A Compose or Swarm target on a Docker engine.
#[derive(Debug, Clone)]
pub struct DockerActuator {
    /// The engine.
    pub engine: Engine,
    /// What it scales.
    pub target: Target,
    /// How a scale is rolled out.
    pub rollout: Rollout,
    /// The lease a Swarm write is fenced by (a daemon among several);
    /// `None`: writes carry no epoch (one scaler, or a Compose target).
    pub lease: Option<crate::lease::Lease>,
}

impl DockerActuator {
    /// The fence a Swarm write carries: `None` without a lease; refused
    /// when the lease is not this process's now.
    fn fence(&self) -> Result<Option<crate::lease::Fence>, EngineError> {
        let Some(lease) = &self.lease else {
            return Ok(None);
        };
        match lease.fence() {
            Some(f) => Ok(Some(f)),
            None => Err(EngineError::Fenced {
                why: format!(
                    "this process does not hold the lease now ({}); nothing written",
                    lease.role.borrow().standing_by()
                ),
            }),
        }
    }
}

/// A target in words.
pub fn describe(t: &Target) -> String {
    match &t.kind {
        TargetKind::Compose { project } => {
            format!("compose service {} (project {project})", t.name)
        }
        TargetKind::Swarm => format!("swarm service {}", t.name),
    }
}

impl Actuator for DockerActuator {
    fn describe(&self) -> String {
        describe(&self.target)
    }

    fn status(&self) -> BoxFuture<'_, Result<Observed, EngineError>> {
        Box::pin(async move {
            // The engine's shared view: one listing for every service.
            let all = crate::engine::observe(&self.engine, &self.target).await?;
            let (running, swarm) = running_among(&self.engine, &self.target, &all).await?;
            let ready = ready_among(&all, swarm.as_ref().map(|s| &s.current));
            Ok(Observed {
                replicas: all,
                running,
                ready,
                marks: swarm.map(|s| s.marks),
            })
        })
    }

    fn plan(&self, to: u32) -> BoxFuture<'_, Result<ScalePlan, EngineError>> {
        Box::pin(async move {
            match &self.target.kind {
                TargetKind::Compose { project } => {
                    compose::plan(&self.engine, &self.target, project, to).await
                }
                TargetKind::Swarm => Ok(ScalePlan {
                    epoch: self.fence()?.map(|f| f.epoch),
                    ..ScalePlan::counts(swarm::state(&self.engine, &self.target).await?.running, to)
                }),
            }
        })
    }

    fn scale<'a>(
        &'a self,
        plan: &'a ScalePlan,
        action: &'a str,
    ) -> BoxFuture<'a, Result<ScaleReport, EngineError>> {
        Box::pin(async move {
            let report = match &self.target.kind {
                TargetKind::Compose { .. } => {
                    compose::scale(&self.engine, &self.rollout, plan, action).await
                }
                TargetKind::Swarm => match self.fence() {
                    Ok(fence) => {
                        swarm::scale(
                            &self.engine,
                            &self.target,
                            &self.rollout,
                            plan,
                            action,
                            fence,
                        )
                        .await
                    }
                    Err(e) => Err(e),
                },
            };
            // The next pass sees what the scale did, not a listing from before.
            self.engine.view.forget();
            report
        })
    }

    fn settle<'a>(
        &'a self,
        plan: &'a ScalePlan,
        action: &'a str,
        tidy: bool,
    ) -> BoxFuture<'a, Result<ScaleReport, EngineError>> {
        Box::pin(async move {
            let report = match &self.target.kind {
                TargetKind::Compose { .. } => {
                    compose::settle(&self.engine, &self.target, plan, action, tidy).await
                }
                TargetKind::Swarm => swarm::settle(&self.engine, &self.target, plan).await,
            };
            self.engine.view.forget();
            report
        })
    }

    fn remove_abandoned<'a>(
        &'a self,
        abandoned: &'a [Replica],
    ) -> BoxFuture<'a, Vec<(String, Result<(), EngineError>)>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for r in abandoned {
                out.push((
                    r.name.clone(),
                    compose::remove(&self.engine, &r.id, Some(0)).await,
                ));
            }
            self.engine.view.forget();
            out
        })
    }
}

/// Running replicas among a target's listed ones (Compose counts them;
/// Swarm asks for its running tasks). A Compose service with no container
/// at all (running or not) is not found: there is nothing to clone.
/// The running replicas, and for a Swarm service its state: the
/// containers of the tasks it wants running, its marks (`None` for
/// Compose: every container listed is a replica).
async fn running_among(
    engine: &Engine,
    target: &Target,
    all: &[Replica],
) -> Result<(u32, Option<swarm::SwarmState>), EngineError> {
    match target.kind {
        TargetKind::Compose { .. } => {
            if all.is_empty() {
                return Err(not_found(target));
            }
            Ok((all.iter().filter(|r| r.is_running()).count() as u32, None))
        }
        TargetKind::Swarm => {
            let state = swarm::state(engine, target).await?;
            Ok((state.running, Some(state)))
        }
    }
}

/// The ready replicas among `all`: only those of `current` tasks when
/// given, so a container still running while its task shuts down (after
/// a scale-down) is not counted ready.
fn ready_among(all: &[Replica], current: Option<&std::collections::HashSet<String>>) -> u32 {
    all.iter()
        .filter(|r| r.readiness == Readiness::Ready)
        .filter(|r| current.is_none_or(|c| c.contains(&r.id)))
        .count() as u32
}

fn not_found(target: &Target) -> EngineError {
    match &target.kind {
        TargetKind::Compose { project } => EngineError::not_found(format!(
            "service {:?} of Compose project {project:?} has no containers on this engine: start it once (docker-compose up -d), or fix target.project / target.name",
            target.name
        )),
        TargetKind::Swarm => EngineError::not_found(format!(
            "no Swarm service named {:?} on this engine (docker service ls)",
            target.name
        )),
    }
}

/// A replica that was started and did not become ready.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ReplicaFailure {
    /// Its container name.
    pub name: String,
    /// Why (unhealthy, exited, not ready within the monitor window).
    pub reason: String,
}

/// How a scale ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The target count was reached.
    Succeeded,
    /// Part of the way: some replicas were added or removed, then an error
    /// (or failed replicas within the ratio) stopped it.
    Partial,
    /// Too many new replicas failed: every one this scale created was removed.
    RolledBack,
    /// Nothing changed.
    Failed,
}

/// What a scale did, replica by replica.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ScaleReport {
    /// Running replicas before.
    pub from: u32,
    /// What was asked.
    pub to: u32,
    /// Running (and, for new ones, ready) replicas after.
    pub reached: u32,
    /// How it ended.
    pub outcome: Outcome,
    /// Containers created and kept.
    pub created: Vec<String>,
    /// Containers stopped and removed (scale-down, failed or rolled-back
    /// replicas).
    pub removed: Vec<String>,
    /// New replicas that did not become ready.
    pub failed: Vec<ReplicaFailure>,
    /// The error that stopped the scale, if any.
    pub error: Option<String>,
    /// Wall time of the scale, in milliseconds.
    pub duration_ms: u64,
}

impl Outcome {
    /// How a scale from `from` to `to` that got to `reached` (never past
    /// `to`) ended: all the way, part of the way, or not at all.
    pub fn judge(from: u32, to: u32, reached: u32) -> Outcome {
        if reached == to {
            Outcome::Succeeded
        } else if reached == from {
            Outcome::Failed
        } else {
            Outcome::Partial
        }
    }

    /// The kebab-case name the audit log and `/metrics` use.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Partial => "partial",
            Outcome::RolledBack => "rolled-back",
            Outcome::Failed => "failed",
        }
    }
}

impl ScaleReport {
    /// A report of nothing done yet.
    pub fn new(from: u32, to: u32) -> ScaleReport {
        ScaleReport {
            from,
            to,
            reached: from,
            outcome: Outcome::Failed,
            created: Vec::new(),
            removed: Vec::new(),
            failed: Vec::new(),
            error: None,
            duration_ms: 0,
        }
    }

    pub(crate) fn finish(mut self, started: Instant) -> ScaleReport {
        self.outcome = if self.reached == self.to && self.error.is_none() && self.failed.is_empty()
        {
            Outcome::Succeeded
        } else if self.reached == self.from && !self.failed.is_empty() && self.to > self.from {
            if self.created.is_empty() && !self.removed.is_empty() {
                Outcome::RolledBack
            } else {
                Outcome::Failed
            }
        } else if self.reached != self.from {
            Outcome::Partial
        } else {
            Outcome::Failed
        };
        self.duration_ms = started.elapsed().as_millis() as u64;
        self
    }

    /// An interrupted scale judged by the count the engine shows now, for
    /// an actuator with nothing per action to look at. A count past the
    /// target is reported as reaching it, with the count in `error`: this
    /// scale cannot have done more than it was asked.
    pub fn judged_by_count(plan: &ScalePlan, running: u32) -> ScaleReport {
        let (low, high) = (plan.from.min(plan.to), plan.from.max(plan.to));
        let mut report = ScaleReport::new(plan.from, plan.to);
        report.reached = running.clamp(low, high);
        report.outcome = Outcome::judge(plan.from, plan.to, report.reached);
        report.error = Some(format!(
            "interrupted: the process stopped mid-scale; judged by the {running} running now"
        ));
        report
    }

    /// True when the replica count moved toward the target (a cooldown
    /// starts only then).
    pub fn moved(&self) -> bool {
        self.reached != self.from
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_whose_swarm_task_is_shutting_down_is_not_ready() {
        let replica = Replica::running;
        // Right after a scale-down 3 -> 1: all three containers still run
        // and pass their healthchecks, but Swarm wants only a's task.
        let all = [
            replica("a", Readiness::Ready),
            replica("b", Readiness::Ready),
            replica("c", Readiness::Ready),
        ];
        let current: std::collections::HashSet<String> = ["a".to_string()].into();
        assert_eq!(ready_among(&all, Some(&current)), 1);
        // Compose: every container listed is a replica.
        assert_eq!(ready_among(&all, None), 3);
        let starting = [replica("a", Readiness::Starting)];
        assert_eq!(ready_among(&starting, Some(&current)), 0);
    }

    #[test]
    fn outcomes() {
        let t = Instant::now();
        let mut r = ScaleReport::new(2, 4);
        r.reached = 4;
        r.created = vec!["a".into(), "b".into()];
        assert_eq!(r.clone().finish(t).outcome, Outcome::Succeeded);
        r.reached = 3;
        r.error = Some("conflict".into());
        assert_eq!(r.finish(t).outcome, Outcome::Partial);
        let mut r = ScaleReport::new(2, 3);
        r.failed.push(ReplicaFailure {
            name: "c".into(),
            reason: "unhealthy".into(),
        });
        r.removed.push("c".into());
        assert_eq!(r.finish(t).outcome, Outcome::RolledBack);
        let mut r = ScaleReport::new(2, 3);
        r.error = Some("image missing".into());
        assert_eq!(r.finish(t).outcome, Outcome::Failed);
    }
}
