//! An operator's scale (`scale-up`, `scale-down`, the API): one function
//! for every shell. The guard rails' rule for manual requests
//! ([`vedfolnir_core::guard::manual`]) bounds it to `[min, max]` and records
//! each clamp; no plugin is needed, so a broken policy module never blocks
//! an operator. A dry run audits "would scale" and changes nothing but the
//! dry-run clocks.

use vedfolnir_core::guard::{self, Decision, Rule};
use vedfolnir_core::model::Direction;

use super::action::{self, Intent};
use super::{Context, PassError};
use crate::actuators::ScaleReport;
use crate::audit::{Actor, Event};
use crate::config::PolicyFile;

/// What an operator asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    /// `scale-up [N]`: N, or one more; never fewer than now.
    Up(Option<u32>),
    /// `scale-down [N]`: N, or one fewer; never more than now.
    Down(Option<u32>),
    /// The API: exactly N, either way.
    To(u32),
}

/// An operator's request.
#[derive(Debug, Clone)]
pub struct Request {
    /// Who asks (`manual` on the command line, `api`).
    pub actor: Actor,
    /// How many.
    pub wanted: Wanted,
    /// The operator's own reason, recorded with the action.
    pub reason: Option<String>,
    /// The API request it carries out (its audit id), if any.
    pub request: Option<String>,
}

/// What became of a request.
#[derive(Debug)]
pub enum Outcome {
    /// The service is already where the (bounded) request ends.
    NothingToDo {
        /// Running replicas.
        at: u32,
        /// The bounds' clamps, in words.
        notes: Vec<String>,
    },
    /// A dry run: audited as "would scale", nothing changed.
    WouldScale {
        /// The bounded decision.
        decision: Decision,
        /// The bounds' clamps, in words.
        notes: Vec<String>,
    },
    /// Scaled (whatever the report's outcome).
    Scaled {
        /// The bounded decision.
        decision: Decision,
        /// The bounds' clamps, in words.
        notes: Vec<String>,
        /// What the actuator did.
        report: ScaleReport,
    },
}

/// Why a request was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum ManualError {
    /// The request contradicts the state (scale-up to fewer than run now).
    #[error("{message}")]
    Refused {
        /// What is wrong, and what to use instead.
        message: String,
    },
    /// Reading the engine, the audit or the state failed.
    #[error(transparent)]
    Pass(#[from] PassError),
    /// Another daemon leads the Swarm targets: send the request there.
    #[error("{message}")]
    Standby {
        /// Who leads, and where its API answers.
        message: String,
    },
}

/// The replica count a request asks for, or why it makes no sense now.
fn wanted(request: &Request, from: u32, what: &str) -> Result<u32, ManualError> {
    let refuse = |message| Err(ManualError::Refused { message });
    match request.wanted {
        Wanted::Up(n) => {
            let to = n.unwrap_or(from + 1);
            if to < from {
                return refuse(format!(
                    "scale-up to {to}: {what} already runs {from} replica(s); use scale-down"
                ));
            }
            Ok(to)
        }
        Wanted::Down(n) => {
            let to = n.unwrap_or(from.saturating_sub(1));
            if to > from {
                return refuse(format!(
                    "scale-down to {to}: {what} runs only {from} replica(s); use scale-up"
                ));
            }
            Ok(to)
        }
        Wanted::To(n) => Ok(n),
    }
}

/// Carry out an operator's request on the service of `file`.
pub async fn scale(
    cx: &Context<'_>,
    file: &PolicyFile,
    request: Request,
) -> Result<Outcome, ManualError> {
    let service = &file.service;
    let from = cx.actuator.status().await.map_err(PassError::from)?.running;
    let to = wanted(&request, from, &cx.actuator.describe())?;
    let decision = guard::manual(&file.guard, from, to);
    let notes: Vec<String> = decision
        .reasons
        .iter()
        .filter(|r| r.rule != Rule::NoChange)
        .map(|r| r.message.clone())
        .collect();
    if decision.direction == Direction::Hold {
        return Ok(Outcome::NothingToDo { at: from, notes });
    }
    let mut reasons = vec![format!(
        "{} {} to {}",
        request.actor, decision.direction, decision.target
    )];
    reasons.extend(request.reason);
    reasons.extend(notes.iter().cloned());
    let intent = Intent {
        actor: request.actor,
        direction: decision.direction,
        from,
        to: decision.target,
        reasons,
        guard: decision.reasons.clone(),
        plugin: None,
        scores: None,
        inputs: Default::default(),
        request: request.request.clone(),
    };
    let now = cx.clock.now_ms();
    if cx.dry_run {
        let record = intent.record(service, Event::WouldScale, true, now);
        cx.audit.append(&record).map_err(PassError::from)?;
        crate::state::update(cx.state, service, now, |s| {
            s.record_scale(decision.direction, now, true)
        })
        .map_err(PassError::from)?;
        return Ok(Outcome::WouldScale { decision, notes });
    }
    let acted = action::act(cx, service, &intent).await?;
    if acted.report.moved() {
        crate::state::update(cx.state, service, acted.at, |s| {
            s.record_scale(decision.direction, acted.at, false)
        })
        .map_err(PassError::from)?;
    }
    Ok(Outcome::Scaled {
        decision,
        notes,
        report: acted.report,
    })
}
