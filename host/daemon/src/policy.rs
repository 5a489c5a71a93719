//! A policy ready to evaluate: the checked file, the loaded plugin, and the
//! parameters checked against what the plugin declares. The same checks run
//! for `evaluate`, `plugin check` and (later) hot reload, so a file that
//! passes one passes the others.

use std::path::Path;

use vedfolnir_core::guard::{self, Decision, GuardState, PolicyFailure};
use vedfolnir_core::model::{Param, PolicyInput, Recommendation, SignalId};
use vedfolnir_core::snapshot::resolve_params;
use vedfolnir_sandbox::{LoadError, Plugin, Sandbox};

use crate::config::{PluginRef, PolicyFile, Problem, Problems};

/// Why a policy could not be made ready.
#[derive(Debug)]
pub enum PolicyError {
    /// The file or its parameters are wrong.
    Config(Problems),
    /// The plugin failed to load, at a named stage.
    Plugin(LoadError),
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicyError::Config(p) => write!(f, "{p}"),
            PolicyError::Plugin(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for PolicyError {}

/// A policy ready to evaluate.
#[derive(Debug, Clone)]
pub struct ReadyPolicy {
    /// The checked file.
    pub file: PolicyFile,
    /// The loaded plugin.
    pub plugin: Plugin,
    /// The parameters the file sets, checked against the plugin's kinds (what
    /// the plugin receives; it applies its declared defaults to the rest).
    pub params: Vec<Param>,
    /// Signals whose absence holds scaling (plugin declaration, overridden
    /// by the file's `required`).
    pub required: Vec<SignalId>,
}

/// The outcome of one evaluation: what the plugin said, and what the guard
/// rails made of it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Evaluation {
    /// The plugin's recommendation, when it produced one.
    pub recommendation: Option<Recommendation>,
    /// Why it produced none.
    pub failure: Option<PolicyFailure>,
    /// The guard rails' decision.
    pub decision: Decision,
}

/// Load the plugin a policy file names.
pub fn load_plugin(sandbox: &Sandbox, plugin: &PluginRef) -> Result<Plugin, LoadError> {
    match plugin {
        PluginRef::Builtin(name) => {
            let bytes = vedfolnir_plugin_artifacts::policy(name)
                .expect("builtin names are checked when the file is read");
            sandbox.load_bytes(&format!("builtin:{name}"), bytes)
        }
        PluginRef::File(path) => sandbox.load_file(path),
    }
}

impl ReadyPolicy {
    /// Read the file, load its plugin, check the parameters.
    pub fn load(
        sandbox: &Sandbox,
        path: &Path,
        overrides: &crate::config::Overrides,
    ) -> Result<ReadyPolicy, PolicyError> {
        let file = PolicyFile::load(path, overrides).map_err(PolicyError::Config)?;
        let plugin = load_plugin(sandbox, &file.plugin).map_err(PolicyError::Plugin)?;
        Self::with_plugin(file, plugin)
    }

    /// Check the file's parameters against a loaded plugin.
    pub fn with_plugin(file: PolicyFile, plugin: Plugin) -> Result<ReadyPolicy, PolicyError> {
        let problem = |key: &str, message: String| Problem {
            file: file.path.clone(),
            key: format!("params.{key}"),
            message,
        };
        let description = plugin.description();
        let params = resolve_params(&description.params, &file.params).map_err(|errors| {
            PolicyError::Config(Problems(
                errors
                    .into_iter()
                    .map(|e| problem(&e.key, e.message))
                    .collect(),
            ))
        })?;
        match plugin.validate_config(&params) {
            Ok(Ok(())) => {}
            Ok(Err(errors)) => {
                return Err(PolicyError::Config(Problems(
                    errors
                        .into_iter()
                        .map(|e| problem(&e.key, e.message))
                        .collect(),
                )));
            }
            Err(e) => {
                return Err(PolicyError::Config(Problems(vec![Problem {
                    file: file.path.clone(),
                    key: "params".into(),
                    message: format!("the plugin failed while checking them: {e}"),
                }])));
            }
        }
        let mut required: Vec<SignalId> = description
            .signals
            .iter()
            .filter(|s| s.required)
            .map(|s| s.signal.clone())
            .collect();
        for s in &file.signals {
            match s.required {
                Some(true) if !required.contains(&s.signal) => required.push(s.signal.clone()),
                Some(false) => required.retain(|r| r != &s.signal),
                _ => {}
            }
        }
        Ok(ReadyPolicy {
            file,
            plugin,
            params,
            required,
        })
    }

    /// Evaluate one input: the plugin in its sandbox, then the guard rails.
    pub fn evaluate(&self, input: &PolicyInput, state: &GuardState) -> Evaluation {
        let outcome = self.plugin.evaluate(input).map_err(|e| e.to_failure());
        let decision = guard::decide(
            &self.file.guard,
            state,
            input,
            guard::Requirements {
                required: &self.required,
            },
            outcome.as_ref(),
        );
        let (recommendation, failure) = match outcome {
            Ok(rec) => (Some(rec), None),
            Err(failure) => (None, Some(failure)),
        };
        Evaluation {
            recommendation,
            failure,
            decision,
        }
    }
}
