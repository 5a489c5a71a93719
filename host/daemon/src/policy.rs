//! A policy ready to evaluate: the checked file, the loaded plugin, and the
//! parameters checked against what the plugin declares. The same checks run
//! for `evaluate`, `plugin check` and (later) hot reload, so a file that
//! passes one passes the others.

mod coverage;
mod evaluator;

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use vedfolnir_core::guard::{self, Decision, GuardState, PolicyFailure};
use vedfolnir_core::model::{
    Direction, Param, PolicyInput, Recommendation, SignalId, visible_signals,
};
use vedfolnir_core::snapshot::{effective_params, resolve_params_partly};
use vedfolnir_sandbox::{LoadError, Plugin, Sandbox};

use crate::config::{PluginRef, PolicyFile, Problem, Problems, Rejected, SignalSource};
pub use evaluator::Evaluator;

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
    /// The policy's code: the loaded plugin, behind the seam.
    pub plugin: Arc<dyn Evaluator>,
    /// The parameters the file sets, checked against the plugin's kinds (what
    /// the plugin receives; it applies its declared defaults to the rest).
    pub params: Vec<Param>,
    /// Signals whose absence holds scaling (plugin declaration, overridden
    /// by the file's `required`).
    pub required: Vec<SignalId>,
    /// The signals the plugin is handed (`model::visible_signals`): what it
    /// declares, what its parameters name, what the file routes.
    pub visible: Vec<SignalId>,
    /// What an operator should know but need not fix: an optional signal
    /// that no source provides (`validate` prints them, a reload logs them).
    pub notes: Vec<Problem>,
    /// The shadow policy, evaluated on the same input and never acted on.
    pub shadow: Option<Shadow>,
    /// How much signal history it needs, ms (see `history_span_ms`).
    pub history_span_ms: u64,
    /// The scores at which it scales, when its parameters name them.
    pub score_thresholds: ScoreThresholds,
}

/// The scores at which a policy scales, when its parameters name them
/// (`decision.up-score` and `decision.down-score`, as threshold-score
/// declares): what the decision line and the status compare its scores
/// with. A policy whose scores count replicas (target-tracking) has none.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct ScoreThresholds {
    /// The up score at which it scales up.
    pub up: Option<f64>,
    /// The down score at which it scales down.
    pub down: Option<f64>,
}

impl ScoreThresholds {
    fn of(plugin: &dyn Evaluator, params: &[Param]) -> ScoreThresholds {
        let mut t = ScoreThresholds::default();
        for p in effective_params(&plugin.description().params, params) {
            let vedfolnir_core::model::ParamValue::Number(n) = p.value else {
                continue;
            };
            match p.key.as_str() {
                "decision.up-score" => t.up = Some(n),
                "decision.down-score" => t.down = Some(n),
                _ => {}
            }
        }
        t
    }

    /// `up 0/3 down 5/5` (a score beside the one it must reach), or the
    /// scores alone where the policy names no threshold.
    pub fn compare(&self, up: f64, down: f64) -> String {
        let against = |score: f64, at: Option<f64>| match at {
            Some(at) => format!("{score}/{at}"),
            None => format!("{score}"),
        };
        format!(
            "up {} down {}",
            against(up, self.up),
            against(down, self.down)
        )
    }
}

/// A shadow policy, loaded and checked like the live one.
#[derive(Debug, Clone)]
pub struct Shadow {
    /// Its plugin.
    pub plugin: Arc<dyn Evaluator>,
    /// Its checked parameters.
    pub params: Vec<Param>,
    /// Its required signals.
    pub required: Vec<SignalId>,
    /// The signals it is handed.
    pub visible: Vec<SignalId>,
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

/// The newest value of each signal, in a few words for a decision line:
/// `cpu 93%, memory 1%, queue-depth 0, response-time-p95 31ms,
/// error-rate 0.0%` (a missing one as `cpu missing`).
pub fn signal_values(input: &PolicyInput) -> String {
    input
        .signals
        .iter()
        .map(|w| {
            let name = w.signal.to_string();
            match w.current() {
                Ok(v) => format!("{name} {}", signal_value(&w.signal, v)),
                Err(_) => format!("{name} missing"),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One signal's value in its own unit: fractions as percentages, the p95
/// in ms or s, counts as they are.
pub fn signal_value(signal: &SignalId, v: f64) -> String {
    match signal {
        SignalId::Cpu | SignalId::Memory => format!("{:.0}%", v * 100.0),
        SignalId::ErrorRate => format!("{:.1}%", v * 100.0),
        SignalId::ResponseTimeP95 if v < 1.0 => format!("{:.0}ms", v * 1000.0),
        SignalId::ResponseTimeP95 if (v * 100.0).round() % 100.0 == 0.0 => format!("{v:.0}s"),
        SignalId::ResponseTimeP95 => format!("{v:.2}s"),
        _ if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
        _ => format!("{v:.2}"),
    }
}

/// Whether parameter `key` is compared with `signal`: its first word
/// names the signal (`cpu-high.threshold`, `latency-low.threshold` for the
/// p95, `errors-high` for the error rate) or its second does
/// (`target.cpu`).
pub fn relates(signal: &str, key: &str) -> bool {
    let words: Vec<&str> = key.split(['.', '-']).collect();
    let names: &[&str] = match signal {
        "cpu" => &["cpu"],
        "memory" => &["memory"],
        "queue-depth" => &["queue"],
        "response-time-p95" => &["latency", "response"],
        "error-rate" => &["errors", "error"],
        "scaling-alerts" => &["alert"],
        other => return key.starts_with(other) || key.ends_with(other),
    };
    let first = words.first().copied().unwrap_or_default();
    let second = if first == "target" {
        words.get(1).copied().unwrap_or_default()
    } else {
        ""
    };
    names.contains(&first) || names.contains(&second)
}

/// A threshold or target parameter's value (`latency-high.threshold` = 3)
/// in the unit of the signal it is about (`3s`, beside a p95 of `173ms`;
/// `70%` beside a CPU of `93%`); as written when it is about none.
pub fn threshold_value(key: &str, value: &str) -> String {
    let signal = SignalId::WELL_KNOWN.iter().find(|s| relates(s.name(), key));
    match (signal, value.parse::<f64>()) {
        (Some(s), Ok(v)) => signal_value(s, v),
        _ => value.to_string(),
    }
}

/// The longest history a policy may ask for (a forecast's days): 8 days.
pub const MAX_HISTORY_MS: u64 = 8 * 24 * 60 * 60 * 1000;

/// The span of history a policy needs: its longest duration parameter (its
/// windows, gaps and TTLs, a forecast's history) plus a minute, at least
/// five minutes, at most [`MAX_HISTORY_MS`].
fn history_span_ms(plugin: &dyn Evaluator, params: &[Param]) -> u64 {
    let longest = effective_params(&plugin.description().params, params)
        .iter()
        .filter_map(|p| match p.value {
            vedfolnir_core::model::ParamValue::Duration(ms) => Some(ms),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    longest
        .saturating_add(60_000)
        .clamp(5 * 60_000, MAX_HISTORY_MS)
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
    /// Read the file, load its plugin, check the parameters and that a
    /// source provides every signal the plugin requires. A file with
    /// problems still has its plugin's parameters checked, so every
    /// problem is reported in one run.
    pub fn load(
        sandbox: &Sandbox,
        path: &Path,
        overrides: &crate::config::Overrides,
    ) -> Result<ReadyPolicy, PolicyError> {
        Self::load_with(sandbox, path, overrides, Smoke::No)
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
        Self::load_with(sandbox, path, overrides, Smoke::Yes)
    }

    fn load_with(
        sandbox: &Sandbox,
        path: &Path,
        overrides: &crate::config::Overrides,
        smoke_test: Smoke,
    ) -> Result<ReadyPolicy, PolicyError> {
        let file = match PolicyFile::read(path, overrides) {
            Ok(file) => file,
            Err(rejected) => {
                return Err(PolicyError::Config(also_the_plugins(
                    sandbox, path, *rejected,
                )));
            }
        };
        let plugin = load_plugin(sandbox, &file.plugin).map_err(PolicyError::Plugin)?;
        let mut ready = Self::with_plugin(file, Arc::new(plugin.clone()))?;
        if smoke_test == Smoke::Yes {
            smoke(&plugin, &ready.params)?;
        }
        if let Some(sh) = ready.file.shadow.clone() {
            let plugin = load_plugin(sandbox, &sh.plugin).map_err(PolicyError::Plugin)?;
            let checked = check_params(
                &ready.file.path,
                "shadow.params",
                &plugin,
                &sh.params,
                &ready.file.signals,
                ready.file.slo.is_some(),
            )
            .map_err(|p| PolicyError::Config(Problems(p)))?;
            if smoke_test == Smoke::Yes {
                smoke(&plugin, &checked.params)?;
            }
            ready.notes.extend(checked.notes);
            ready.shadow = Some(Shadow {
                plugin: Arc::new(plugin),
                params: checked.params,
                required: checked.required,
                visible: checked.visible,
            });
        }
        Ok(ready)
    }

    /// Check the file's parameters against a loaded plugin.
    pub fn with_plugin(
        file: PolicyFile,
        plugin: Arc<dyn Evaluator>,
    ) -> Result<ReadyPolicy, PolicyError> {
        let slo = file.slo.is_some();
        let checked = check_params(
            &file.path,
            "params",
            &*plugin,
            &file.params,
            &file.signals,
            slo,
        )
        .map_err(|p| PolicyError::Config(Problems(p)))?;
        Ok(ReadyPolicy {
            history_span_ms: history_span_ms(&*plugin, &checked.params),
            score_thresholds: ScoreThresholds::of(&*plugin, &checked.params),
            visible: checked.visible,
            notes: checked.notes,
            file,
            plugin,
            params: checked.params,
            required: checked.required,
            shadow: None,
        })
    }

    /// The policy's answer: its code on the signals it may read.
    pub fn advise(&self, input: &PolicyInput) -> Outcome {
        advise(&*self.plugin, &self.visible, input)
    }

    /// The shadow policy's answer to the same input (with its own
    /// parameters), when there is one.
    pub fn advise_shadow(&self, input: &PolicyInput) -> Option<Outcome> {
        let sh = self.shadow.as_ref()?;
        let mut input = input.clone();
        input.params = sh.params.clone();
        Some(advise(&*sh.plugin, &sh.visible, &input))
    }

    /// The guard rails on the policy's answer, on the whole input: what
    /// happens.
    pub fn guard(&self, input: &PolicyInput, state: &GuardState, outcome: Outcome) -> Evaluation {
        guard_rails(&self.file.guard, &self.required, input, state, outcome)
    }

    /// The guard rails on the shadow policy's answer (its required
    /// signals, the live file's bounds and cooldowns).
    pub fn guard_shadow(
        &self,
        input: &PolicyInput,
        state: &GuardState,
        outcome: Outcome,
    ) -> Option<Evaluation> {
        let sh = self.shadow.as_ref()?;
        Some(guard_rails(
            &self.file.guard,
            &sh.required,
            input,
            state,
            outcome,
        ))
    }

    /// Both stages for one input: the plugin in its sandbox, then the
    /// guard rails.
    pub fn evaluate(&self, input: &PolicyInput, state: &GuardState) -> Evaluation {
        self.guard(input, state, self.advise(input))
    }
}

/// Whether a policy is smoke-tested as it loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Smoke {
    Yes,
    No,
}

/// Evaluate the sample inputs (`plugin check`'s smoke-test stage).
fn smoke(plugin: &Plugin, params: &[Param]) -> Result<(), PolicyError> {
    let effective = effective_params(&plugin.description().params, params);
    plugin
        .smoke_test(&effective)
        .map(|_| ())
        .map_err(PolicyError::Plugin)
}

/// What a policy's code answered: its recommendation, or why it gave none.
pub type Outcome = Result<Recommendation, PolicyFailure>;

/// The code on the signals it may read (`visible`).
fn advise(plugin: &dyn Evaluator, visible: &[SignalId], input: &PolicyInput) -> Outcome {
    plugin
        .evaluate(&input.only(visible))
        .map_err(|e| e.to_failure())
}

/// The guard rails on an answer: the decision, beside the answer.
fn guard_rails(
    guard: &guard::GuardConfig,
    required: &[SignalId],
    input: &PolicyInput,
    state: &GuardState,
    outcome: Outcome,
) -> Evaluation {
    let decision = guard::decide(
        guard,
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

/// A plugin's parameters checked against a policy file.
struct Checked {
    /// The parameters the file sets, in the plugin's kinds.
    params: Vec<Param>,
    /// The signals whose absence holds scaling.
    required: Vec<SignalId>,
    /// The signals the plugin is handed.
    visible: Vec<SignalId>,
    /// Optional signals no source provides.
    notes: Vec<Problem>,
}

/// Check parameters against a plugin's declaration and its own
/// `validate-config`, and the plugin's signals against what `routed`
/// (the file's `[signals]`) and the docker source provide. Every problem,
/// each naming `path` and its key.
fn check_params(
    path: &Path,
    prefix: &str,
    plugin: &dyn Evaluator,
    raw: &std::collections::BTreeMap<String, vedfolnir_core::snapshot::RawParam>,
    routed: &[SignalSource],
    slo: bool,
) -> Result<Checked, Vec<Problem>> {
    let problem = |key: &str, message: String| Problem {
        file: path.to_path_buf(),
        key: format!("{prefix}.{key}"),
        message,
    };
    let description = plugin.description();
    // An unknown or ill-typed parameter does not stop the checks that
    // follow: they run on the rest (its default in its place), so every
    // problem comes out in one run.
    let (params, bad) = resolve_params_partly(&description.params, raw);
    let mut problems: Vec<Problem> = bad
        .into_iter()
        .map(|e| problem(&e.key, e.message))
        .collect();
    let effective = effective_params(&description.params, &params);
    let (more, notes) = coverage::check(path, description, &params, &effective, routed, slo);
    problems.extend(more);
    match plugin.validate_config(&params) {
        Ok(Ok(())) => {}
        Ok(Err(errors)) => problems.extend(errors.into_iter().map(|e| problem(&e.key, e.message))),
        Err(e) => problems.push(Problem {
            file: path.to_path_buf(),
            key: prefix.into(),
            message: format!("the plugin failed while checking them: {e}"),
        }),
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut required: Vec<SignalId> = description
        .signals
        .iter()
        .filter(|s| s.required)
        .map(|s| s.signal.clone())
        .collect();
    for s in routed {
        match s.required {
            Some(true) if !required.contains(&s.signal) => required.push(s.signal.clone()),
            Some(false) => required.retain(|r| r != &s.signal),
            _ => {}
        }
    }
    Ok(Checked {
        visible: visible_signals(
            &description.signals,
            &effective,
            routed.iter().map(|s| &s.signal),
        ),
        params,
        required,
        notes,
    })
}

/// The problems of a file that could not be read whole, and those of its
/// plugins' parameters, as far as they could be read: every problem in
/// one run.
fn also_the_plugins(sandbox: &Sandbox, path: &Path, rejected: Rejected) -> Problems {
    let Rejected {
        problems: Problems(mut problems),
        plugin,
        params,
        signals,
        shadow,
        slo,
    } = rejected;
    let mut parts = vec![("plugin", "params", plugin, params)];
    if let Some(sh) = shadow {
        parts.push(("shadow.plugin", "shadow.params", Some(sh.plugin), sh.params));
    }
    for (key, prefix, plugin, params) in parts {
        let Some(plugin) = plugin else { continue };
        match load_plugin(sandbox, &plugin) {
            Ok(loaded) => {
                if let Err(more) = check_params(path, prefix, &loaded, &params, &signals, slo) {
                    problems.extend(more);
                }
            }
            Err(e) => problems.push(Problem {
                file: path.to_path_buf(),
                key: key.into(),
                message: format!(
                    "{plugin} failed to load at {}: {}",
                    e.stage.as_str(),
                    e.detail()
                ),
            }),
        }
    }
    Problems(problems)
}

#[cfg(test)]
mod tests {
    use vedfolnir_core::model::{Sample, SignalWindow};

    use super::*;

    #[test]
    fn a_decision_line_shows_each_signal_in_its_own_unit() {
        let window = |signal, value: Option<f64>| SignalWindow {
            signal,
            samples: value
                .map(|value| vec![Sample { at: 0, value }])
                .unwrap_or_default(),
            missing_reason: value.is_none().then(|| "no scrape".to_string()),
        };
        let input = PolicyInput {
            signals: vec![
                window(SignalId::Cpu, Some(0.934)),
                window(SignalId::Memory, None),
                window(SignalId::QueueDepth, Some(12.0)),
                window(SignalId::ResponseTimeP95, Some(0.031)),
                window(SignalId::ErrorRate, Some(0.05)),
            ],
            service: "s".into(),
            now: 0,
            current_replicas: 1,
            ready_replicas: 1,
            min_replicas: 1,
            max_replicas: 2,
            since_last_scale_up: None,
            since_last_scale_down: None,
            params: vec![],
        };
        assert_eq!(
            signal_values(&input),
            "cpu 93%, memory missing, queue-depth 12, response-time-p95 31ms, error-rate 5.0%"
        );
    }

    #[test]
    fn a_threshold_is_shown_in_the_unit_of_its_signal() {
        for (key, raw, shown) in [
            ("latency-high.threshold", "3", "3s"),
            ("latency-low.threshold", "0.25", "250ms"),
            ("cpu-high.threshold", "0.7", "70%"),
            ("target.memory", "0.6", "60%"),
            ("errors-high.threshold", "0.05", "5.0%"),
            ("queue-high.threshold", "50", "50"),
            ("step.up", "1", "1"),
            ("cpu-high.threshold", "high", "high"),
        ] {
            assert_eq!(threshold_value(key, raw), shown, "{key} = {raw}");
        }
        assert_eq!(signal_value(&SignalId::ResponseTimeP95, 1.234), "1.23s");
    }
}
