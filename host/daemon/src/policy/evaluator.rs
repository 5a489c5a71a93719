//! The seam between the controller and a policy's code: the three calls of
//! the WIT world (`describe`, `validate-config`, `evaluate`) on the host's
//! side. The sandboxed plugin implements it; the controller's tests script
//! one, so each decision path is tested without a component.
//!
//! A policy's code only recommends: what happens is the guard rails' say
//! (`vedfolnir_core::guard::decide`), a stage of its own in the pass.

use std::fmt;
use std::sync::Arc;

use vedfolnir_core::model::{ConfigError, Description, Param, PolicyInput, Recommendation};
use vedfolnir_sandbox::{EvalError, Plugin, PluginId};

/// A policy's code, as the host calls it.
pub trait Evaluator: fmt::Debug + Send + Sync {
    /// Where it came from, its name, version and digest: what records and
    /// the status name.
    fn id(&self) -> &Arc<PluginId>;

    /// Its declaration (`describe`): signals, parameters and defaults.
    fn description(&self) -> &Description;

    /// Its own check of parameters (`validate-config`): every problem, by
    /// key; the outer error when the call itself failed.
    fn validate_config(&self, params: &[Param]) -> Result<Result<(), Vec<ConfigError>>, EvalError>;

    /// Its recommendation for one input (`evaluate`), or why it gave none.
    fn evaluate(&self, input: &PolicyInput) -> Result<Recommendation, EvalError>;

    /// How many evaluations took longer than the daemon's deadline by the
    /// wall clock, where an instruction budget, not the clock, bounds them
    /// (a replay's sandbox): what a replay reports beside its results.
    fn over_deadline(&self) -> u64;
}

/// The sandboxed component: each call on a fresh instance, within its
/// deadline, memory cap and output bounds.
impl Evaluator for Plugin {
    fn id(&self) -> &Arc<PluginId> {
        Plugin::id(self)
    }

    fn description(&self) -> &Description {
        Plugin::description(self)
    }

    fn validate_config(&self, params: &[Param]) -> Result<Result<(), Vec<ConfigError>>, EvalError> {
        Plugin::validate_config(self, params)
    }

    fn evaluate(&self, input: &PolicyInput) -> Result<Recommendation, EvalError> {
        Plugin::evaluate(self, input)
    }

    fn over_deadline(&self) -> u64 {
        Plugin::over_deadline(self)
    }
}
