//! A service's engine-side seams, wired in one place for the daemon and
//! the commands: the actuator that scales its target, and the sources that
//! read it (the shell's own, such as Prometheus, then the engine's docker
//! source and the replicas' own metrics pages).

use std::sync::Arc;

use crate::actuators::DockerActuator;
use crate::config::PolicyFile;
use crate::engine::Engine;
use crate::lease::Lease;
use crate::sources::Sources;
use crate::sources::docker::DockerStats;
use crate::sources::scrape::Scrape;

/// The actuator and the sources of one service on its engine.
#[derive(Debug)]
pub struct Seams {
    /// What scales the target.
    pub actuator: DockerActuator,
    /// Where its signals come from.
    pub sources: Sources,
}

impl Seams {
    /// `file`'s target on `engine`, reading `shared` sources besides the
    /// engine's; Swarm writes fenced by `lease` when there is one.
    pub fn wire(shared: Sources, engine: Engine, file: &PolicyFile, lease: Option<Lease>) -> Seams {
        let target = &file.target;
        Seams {
            sources: shared
                .with(Arc::new(DockerStats::new(engine.clone(), target.clone())))
                .with(Arc::new(Scrape::default())),
            actuator: DockerActuator {
                engine,
                target: target.clone(),
                rollout: file.rollout,
                lease,
            },
        }
    }
}
