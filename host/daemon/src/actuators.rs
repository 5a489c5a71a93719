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
use crate::engine::{Engine, EngineError, Readiness, Replica, replicas};

/// What a target is now, as its engine shows it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Observed {
    /// Every container of the target (running or not, for Compose).
    pub replicas: Vec<Replica>,
    /// Running replicas.
    pub running: u32,
    /// Running and ready (healthy, or without a healthcheck).
    pub ready: u32,
}

/// What scales a target.
pub trait Actuator: Send + Sync {
    /// The target in words, for messages ("compose service web (project p)").
    fn describe(&self) -> String;
    /// The target's replicas now. A target with nothing on the engine is
    /// [`EngineError::NotFound`].
    fn status(&self) -> BoxFuture<'_, Result<Observed, EngineError>>;
    /// Scale to `to` running replicas; the report says what happened,
    /// replica by replica.
    fn scale(&self, to: u32) -> BoxFuture<'_, Result<ScaleReport, EngineError>>;
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
            let all = replicas(&self.engine, &self.target).await?;
            let running = running_among(&self.engine, &self.target, &all).await?;
            let ready = all
                .iter()
                .filter(|r| r.readiness == Readiness::Ready)
                .count() as u32;
            Ok(Observed {
                replicas: all,
                running,
                ready,
            })
        })
    }

    fn scale(&self, to: u32) -> BoxFuture<'_, Result<ScaleReport, EngineError>> {
        Box::pin(async move {
            match &self.target.kind {
                TargetKind::Compose { project } => {
                    compose::scale(&self.engine, &self.target, project, &self.rollout, to).await
                }
                TargetKind::Swarm => {
                    swarm::scale(&self.engine, &self.target, &self.rollout, to).await
                }
            }
        })
    }
}

/// Running replicas among a target's listed ones (Compose counts them;
/// Swarm asks for its running tasks). A Compose service with no container
/// at all (running or not) is not found: there is nothing to clone.
async fn running_among(
    engine: &Engine,
    target: &Target,
    all: &[Replica],
) -> Result<u32, EngineError> {
    match target.kind {
        TargetKind::Compose { .. } => {
            if all.is_empty() {
                return Err(not_found(target));
            }
            Ok(all.iter().filter(|r| r.is_running()).count() as u32)
        }
        TargetKind::Swarm => Ok(swarm::state(engine, target).await?.running),
    }
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
