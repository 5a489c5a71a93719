//! A policy ready to evaluate: the checked file, the loaded plugin, and the
//! parameters checked against what the plugin declares. The same checks run
//! for `evaluate`, `plugin check` and (later) hot reload, so a file that
//! passes one passes the others.

use std::path::Path;

use serde::{Deserialize, Serialize};
use vedfolnir_core::guard::{self, Decision, GuardState, PolicyFailure};
use vedfolnir_core::model::{Direction, Param, PolicyInput, Recommendation, SignalId};
use vedfolnir_core::snapshot::resolve_params;
use vedfolnir_sandbox::{LoadError, Plugin, Sandbox};

use crate::config::{PluginRef, PolicyFile, Problem, Problems};

/// Why a policy could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file or its parameters are wrong.
    #[error(transparent)]
    Config(Problems),
    /// The plugin failed to load, at a named stage.
    #[error(transparent)]
    Plugin(LoadError),
}

/// A policy's two scores.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Scale-up score.
    pub up: f64,
    /// Scale-down score.
    pub down: f64,
}

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
    /// The shadow policy, evaluated on the same input and never acted on.
    pub shadow: Option<Shadow>,
    /// How much signal history it needs, ms (see `history_span_ms`).
    pub history_span_ms: u64,
}

/// A shadow policy, loaded and checked like the live one.
#[derive(Debug, Clone)]
pub struct Shadow {
    /// Its plugin.
    pub plugin: Plugin,
    /// Its checked parameters.
    pub params: Vec<Param>,
    /// Its required signals.
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

impl Evaluation {
    /// Whether another evaluation (a shadow policy's) decided differently.
    pub fn diverges(&self, other: &Evaluation) -> bool {
        (self.decision.direction, self.decision.target)
            != (other.decision.direction, other.decision.target)
    }

    /// The two scores, when the plugin answered.
    pub fn scores(&self) -> Option<Scores> {
        self.recommendation.as_ref().map(|r| Scores {
            up: r.scale_up_score,
            down: r.scale_down_score,
        })
    }

    /// The policy's reasons, every guard-rail intervention and any failure,
    /// in words.
    pub fn reasons(&self) -> Vec<String> {
        let mut reasons: Vec<String> = self
            .recommendation
            .iter()
            .flat_map(|r| r.reasons.iter())
            .map(|r| format!("{}: {}", r.trigger, r.message))
            .collect();
        reasons.extend(
            self.decision
                .reasons
                .iter()
                .map(|r| format!("guard {}: {}", r.rule.as_str(), r.message)),
        );
        if let Some(f) = &self.failure {
            reasons.push(format!("policy failed ({}): {}", f.kind, f.message));
        }
        reasons
    }

    /// The reason that settled the decision: the guard rails' last word.
    pub fn summary(&self) -> String {
        match (self.decision.reasons.last(), &self.failure) {
            (Some(r), _) => format!("{}: {}", r.rule.as_str(), r.message),
            (None, Some(f)) => format!("policy failed ({}): {}", f.kind, f.message),
            (None, None) => String::new(),
        }
    }
}

/// A decision in one phrase: `SCALE UP 2 -> 3`, `HOLD at 2`; `verb` is
/// `SCALE`, or `WOULD SCALE` for a dry run.
pub fn verdict(d: &Decision, verb: &str) -> String {
    match d.direction {
        Direction::Up => format!("{verb} UP {} -> {}", d.current, d.target),
        Direction::Down => format!("{verb} DOWN {} -> {}", d.current, d.target),
        Direction::Hold => format!("HOLD at {}", d.current),
    }
}

/// The longest history a policy may ask for (a forecast's days): 8 days.
pub const MAX_HISTORY_MS: u64 = 8 * 24 * 60 * 60 * 1000;

/// The span of history a policy needs: its longest duration parameter (its
/// windows, gaps and TTLs, a forecast's history) plus a minute, at least
/// five minutes, at most [`MAX_HISTORY_MS`].
fn history_span_ms(plugin: &Plugin, params: &[Param]) -> u64 {
    let longest = vedfolnir_core::snapshot::effective_params(&plugin.description().params, params)
        .iter()
        .filter_map(|p| match p.value {
            vedfolnir_core::model::ParamValue::Duration(ms) => Some(ms),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    (longest + 60_000).clamp(5 * 60_000, MAX_HISTORY_MS)
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
        let mut ready = Self::with_plugin(file, plugin)?;
        if let Some(sh) = ready.file.shadow.clone() {
            let plugin = load_plugin(sandbox, &sh.plugin).map_err(PolicyError::Plugin)?;
            let (params, required) =
                check_params(&ready.file, "shadow.params", &plugin, &sh.params)?;
            ready.shadow = Some(Shadow {
                plugin,
                params,
                required,
            });
        }
        Ok(ready)
    }

    /// `load`, then every stage of `plugin check`: the smoke test runs the
    /// sample inputs with this file's parameters (and the shadow's with
    /// its). What the daemon serves passes this; the one-shot commands use
    /// `load`, so `evaluate` can show what the guard rails make of a
    /// misbehaving plugin.
    pub fn load_for_serving(
        sandbox: &Sandbox,
        path: &Path,
        overrides: &crate::config::Overrides,
    ) -> Result<ReadyPolicy, PolicyError> {
        let ready = Self::load(sandbox, path, overrides)?;
        smoke(&ready.plugin, &ready.params)?;
        if let Some(sh) = &ready.shadow {
            smoke(&sh.plugin, &sh.params)?;
        }
        Ok(ready)
    }

    /// Check the file's parameters against a loaded plugin.
    pub fn with_plugin(file: PolicyFile, plugin: Plugin) -> Result<ReadyPolicy, PolicyError> {
        let (params, required) = check_params(&file, "params", &plugin, &file.params)?;
        Ok(ReadyPolicy {
            history_span_ms: history_span_ms(&plugin, &params),
            file,
            plugin,
            params,
            required,
            shadow: None,
        })
    }

    /// The shadow policy's evaluation of the same input, when there is one.
    pub fn evaluate_shadow(&self, input: &PolicyInput, state: &GuardState) -> Option<Evaluation> {
        let sh = self.shadow.as_ref()?;
        let mut input = input.clone();
        input.params = sh.params.clone();
        Some(evaluate_with(
            &sh.plugin,
            &self.file,
            &sh.required,
            &input,
            state,
        ))
    }

    /// Evaluate one input: the plugin in its sandbox, then the guard rails.
    pub fn evaluate(&self, input: &PolicyInput, state: &GuardState) -> Evaluation {
        evaluate_with(&self.plugin, &self.file, &self.required, input, state)
    }
}

/// Evaluate the sample inputs (`plugin check`'s smoke-test stage).
fn smoke(plugin: &Plugin, params: &[Param]) -> Result<(), PolicyError> {
    let effective =
        vedfolnir_core::snapshot::effective_params(&plugin.description().params, params);
    plugin
        .smoke_test(&effective)
        .map(|_| ())
        .map_err(PolicyError::Plugin)
}

fn evaluate_with(
    plugin: &Plugin,
    file: &PolicyFile,
    required: &[SignalId],
    input: &PolicyInput,
    state: &GuardState,
) -> Evaluation {
    let outcome = plugin.evaluate(input).map_err(|e| e.to_failure());
    let decision = guard::decide(
        &file.guard,
        state,
        input,
        guard::Requirements { required },
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

/// Check parameters against a plugin's declaration and its own
/// `validate-config`; the signals it requires, with the file's overrides.
fn check_params(
    file: &PolicyFile,
    prefix: &str,
    plugin: &Plugin,
    raw: &std::collections::BTreeMap<String, vedfolnir_core::snapshot::RawParam>,
) -> Result<(Vec<Param>, Vec<SignalId>), PolicyError> {
    let problem = |key: &str, message: String| Problem {
        file: file.path.clone(),
        key: format!("{prefix}.{key}"),
        message,
    };
    let description = plugin.description();
    let params = resolve_params(&description.params, raw).map_err(|errors| {
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
                key: prefix.into(),
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
    Ok((params, required))
}
