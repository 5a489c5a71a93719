//! Golden scenarios: an input written as a [`Snapshot`], the expected
//! recommendation out. The same files drive a plugin's native tests (through
//! `vedfolnir-sdk`) and `vedfolnir-autoscaler plugin test FILE.wasm SCENARIOS`
//! against the built component, so an author tests both the logic and the
//! shipped artifact with one set of expectations.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::guard::{self, Decision, FailureKind, GuardConfig, GuardState, PolicyFailure};
use crate::model::{Description, Direction, Param, PolicyInput, Recommendation, visible_signals};
use crate::snapshot::{Frame, RawParam, SeriesSpec, Snapshot, effective_params, resolve_params};

/// A file of scenarios.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Lower bound for every scenario unless it sets its own. Defaults to 2.
    #[serde(default)]
    pub min_replicas: Option<u32>,
    /// Upper bound for every scenario unless it sets its own. Defaults to 5.
    #[serde(default)]
    pub max_replicas: Option<u32>,
    /// Parameters for every scenario; a scenario's own override them.
    #[serde(default)]
    pub params: BTreeMap<String, RawParam>,
    /// Baseline signals for every scenario; a scenario's own signal of the
    /// same name replaces the baseline one (write `{ missing = "why" }` to
    /// make a baseline signal missing in one scenario).
    #[serde(default)]
    pub signals: BTreeMap<String, SeriesSpec>,
    /// The scenarios, run in order.
    #[serde(rename = "scenario")]
    pub scenarios: Vec<Scenario>,
}

/// One scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// A sentence saying what behaviour it shows.
    pub name: String,
    /// Lower bound override.
    #[serde(default)]
    pub min_replicas: Option<u32>,
    /// Upper bound override.
    #[serde(default)]
    pub max_replicas: Option<u32>,
    /// Parameter overrides.
    #[serde(default)]
    pub params: BTreeMap<String, RawParam>,
    /// The input.
    pub input: Snapshot,
    /// What must come out.
    pub expect: Expectation,
}

/// What a scenario expects. Only the fields given are checked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// `up`, `down` or `hold`.
    #[serde(default)]
    pub direction: Option<Direction>,
    /// The desired replica count.
    #[serde(default)]
    pub desired_replicas: Option<u32>,
    /// The scale-up score.
    #[serde(default)]
    pub scale_up_score: Option<f64>,
    /// The scale-down score.
    #[serde(default)]
    pub scale_down_score: Option<f64>,
    /// Triggers that must appear among the reasons.
    #[serde(default)]
    pub triggers: Vec<String>,
    /// Triggers that must not appear.
    #[serde(default)]
    pub absent_triggers: Vec<String>,
    /// The evaluation must fail with an error containing this text.
    #[serde(default)]
    pub error_contains: Option<String>,
    /// The guard rails' decision: `up`, `down` or `hold` (default guard
    /// settings with the scenario's bounds; cooldowns from the input's
    /// `since_last_scale_up` / `since_last_scale_down`).
    #[serde(default)]
    pub decision: Option<Direction>,
    /// The replica count the guard rails decide on.
    #[serde(default)]
    pub target: Option<u32>,
    /// Guard rules that must appear in the decision (`cooldown-up`,
    /// `step-limited`, `policy-failed`, ...).
    #[serde(default)]
    pub guard_rules: Vec<String>,
}

impl ScenarioFile {
    /// The effective bounds, raw parameters and input of `scenario`, with
    /// the file's baseline applied.
    pub fn resolve(&self, scenario: &Scenario) -> (u32, u32, BTreeMap<String, RawParam>, Snapshot) {
        let min = scenario.min_replicas.or(self.min_replicas).unwrap_or(2);
        let max = scenario.max_replicas.or(self.max_replicas).unwrap_or(5);
        let mut params = self.params.clone();
        params.extend(scenario.params.clone());
        let mut input = scenario.input.clone();
        for (name, spec) in &self.signals {
            input
                .signals
                .entry(name.clone())
                .or_insert_with(|| spec.clone());
        }
        (min, max, params, input)
    }
}

/// Build the input a host would pass for a snapshot: the raw parameters
/// checked against the policy's declared parameters (only those set are
/// passed), then `validate` (the policy's own validate-config), then the
/// snapshot expanded, with only the signals the policy may read
/// ([`visible_signals`]: a scenario has no policy file, so no routed ones).
pub fn prepare(
    snapshot: &Snapshot,
    policy: &Description,
    min: u32,
    max: u32,
    raw: &BTreeMap<String, RawParam>,
    validate: impl FnOnce(&[Param]) -> Result<(), String>,
) -> Result<PolicyInput, String> {
    let params = resolve_params(&policy.params, raw).map_err(|e| join(&e))?;
    validate(&params)?;
    let visible = visible_signals(
        &policy.signals,
        &effective_params(&policy.params, &params),
        [],
    );
    let frame = Frame {
        service: "scenario".into(),
        min_replicas: min,
        max_replicas: max,
        params,
    };
    let mut input = snapshot.to_input(&frame).map_err(|e| join(&e))?;
    input.signals.retain(|w| visible.contains(&w.signal));
    Ok(input)
}

fn join(errors: &[impl std::fmt::Display]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl ScenarioFile {
    /// Run every scenario against a policy, given as its description, its
    /// validate-config and its evaluate. Returns each scenario's name
    /// with every mismatch (empty when it passes), in file order. The SDK's
    /// native runner and `plugin test` both run scenarios through here.
    pub fn run(
        &self,
        policy: &Description,
        mut validate: impl FnMut(&[Param]) -> Result<(), String>,
        mut evaluate: impl FnMut(&PolicyInput) -> Result<Recommendation, String>,
    ) -> Vec<(&str, Vec<String>)> {
        self.scenarios
            .iter()
            .map(|scenario| {
                let (min, max, raw, snapshot) = self.resolve(scenario);
                let problems = match prepare(&snapshot, policy, min, max, &raw, &mut validate) {
                    Ok(input) => scenario.expect.check(&input, &evaluate(&input)),
                    Err(e) => scenario
                        .expect
                        .mismatches(&Err(format!("invalid scenario input: {e}"))),
                };
                (scenario.name.as_str(), problems)
            })
            .collect()
    }
}

/// The guard rails' decision for a scenario: default guard settings with the
/// input's bounds, cooldown state from the input's time since the last
/// scale-up and scale-down, and no required signals.
pub fn decide(input: &PolicyInput, outcome: &Result<Recommendation, String>) -> Decision {
    let config = GuardConfig {
        min_replicas: input.min_replicas,
        max_replicas: input.max_replicas,
        ..GuardConfig::default()
    };
    let failure;
    let outcome = match outcome {
        Ok(rec) => Ok(rec),
        Err(message) => {
            failure = PolicyFailure {
                kind: FailureKind::Guest,
                message: message.clone(),
            };
            Err(&failure)
        }
    };
    guard::decide(
        &config,
        &GuardState::implied_by(input),
        input,
        guard::Requirements { required: &[] },
        outcome,
    )
}

impl Expectation {
    /// Every way the outcome, and the guard rails' decision on it, differ
    /// from the expectation; empty when both match.
    pub fn check(
        &self,
        input: &PolicyInput,
        outcome: &Result<Recommendation, String>,
    ) -> Vec<String> {
        let mut out = self.mismatches(outcome);
        out.extend(self.decision_mismatches(&decide(input, outcome)));
        out
    }

    /// Every way the guard rails' `decision` differs from the expectation.
    pub fn decision_mismatches(&self, decision: &Decision) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(d) = self.decision.filter(|d| *d != decision.direction) {
            out.push(format!("decision: want {d}, got {}", decision.direction));
        }
        if let Some(t) = self.target.filter(|t| *t != decision.target) {
            out.push(format!("target: want {t}, got {}", decision.target));
        }
        for rule in &self.guard_rules {
            if !decision.reasons.iter().any(|r| r.rule.as_str() == rule) {
                let got: Vec<&str> = decision.reasons.iter().map(|r| r.rule.as_str()).collect();
                out.push(format!("missing guard rule {rule:?} (got {got:?})"));
            }
        }
        out
    }

    /// Every way `outcome` differs from the expectation; empty when it matches.
    pub fn mismatches(&self, outcome: &Result<Recommendation, String>) -> Vec<String> {
        let mut out = Vec::new();
        let rec = match (outcome, &self.error_contains) {
            (Err(e), Some(want)) => {
                if !e.contains(want.as_str()) {
                    out.push(format!("error {e:?} does not contain {want:?}"));
                }
                return out;
            }
            (Err(e), None) => {
                out.push(format!("evaluation failed: {e}"));
                return out;
            }
            (Ok(_), Some(want)) => {
                out.push(format!(
                    "expected an error containing {want:?}, got a recommendation"
                ));
                return out;
            }
            (Ok(rec), None) => rec,
        };
        if let Some(d) = self.direction.filter(|d| *d != rec.direction) {
            out.push(format!("direction: want {d}, got {}", rec.direction));
        }
        if let Some(n) = self.desired_replicas.filter(|n| *n != rec.desired_replicas) {
            out.push(format!(
                "desired_replicas: want {n}, got {}",
                rec.desired_replicas
            ));
        }
        for (name, want, got) in [
            ("scale_up_score", self.scale_up_score, rec.scale_up_score),
            (
                "scale_down_score",
                self.scale_down_score,
                rec.scale_down_score,
            ),
        ] {
            if let Some(w) = want.filter(|w| (w - got).abs() > 1e-9 || !got.is_finite()) {
                out.push(format!("{name}: want {w}, got {got}"));
            }
        }
        let has = |t: &str| rec.reasons.iter().any(|r| r.trigger == t);
        for t in &self.triggers {
            if !has(t) {
                out.push(format!(
                    "missing reason {t:?} (got {:?})",
                    rec.reasons.iter().map(|r| &r.trigger).collect::<Vec<_>>()
                ));
            }
        }
        for t in &self.absent_triggers {
            if has(t) {
                out.push(format!("unexpected reason {t:?}"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Reason;

    fn rec() -> Recommendation {
        Recommendation {
            desired_replicas: 4,
            direction: Direction::Up,
            scale_up_score: 3.0,
            scale_down_score: 0.0,
            reasons: vec![Reason::new("cpu-high", "x")],
        }
    }

    #[test]
    fn matching_expectation_has_no_mismatch() {
        let e = Expectation {
            direction: Some(Direction::Up),
            desired_replicas: Some(4),
            scale_up_score: Some(3.0),
            triggers: vec!["cpu-high".into()],
            ..Default::default()
        };
        assert!(e.mismatches(&Ok(rec())).is_empty());
    }

    #[test]
    fn each_difference_is_reported() {
        let e = Expectation {
            direction: Some(Direction::Hold),
            desired_replicas: Some(3),
            scale_up_score: Some(14.0),
            triggers: vec!["errors-high".into()],
            absent_triggers: vec!["cpu-high".into()],
            ..Default::default()
        };
        assert_eq!(e.mismatches(&Ok(rec())).len(), 5);
    }

    #[test]
    fn decision_expectations_are_checked_against_the_guard_rails() {
        use crate::model::{Sample, SignalId, SignalWindow};
        let input = PolicyInput {
            service: "s".into(),
            now: 1_000_000_000,
            current_replicas: 3,
            ready_replicas: 3,
            min_replicas: 2,
            max_replicas: 5,
            since_last_scale_up: Some(60_000),
            since_last_scale_down: None,
            params: vec![],
            signals: vec![SignalWindow {
                signal: SignalId::Cpu,
                samples: vec![Sample {
                    at: 1_000_000_000,
                    value: 0.9,
                }],
                missing_reason: None,
            }],
        };
        let decision = decide(&input, &Ok(rec()));
        let held = Expectation {
            decision: Some(Direction::Hold),
            target: Some(3),
            guard_rules: vec!["cooldown-up".into()],
            ..Default::default()
        };
        assert!(held.decision_mismatches(&decision).is_empty());
        let wrong = Expectation {
            decision: Some(Direction::Up),
            target: Some(4),
            guard_rules: vec!["step-limited".into()],
            ..Default::default()
        };
        assert_eq!(wrong.decision_mismatches(&decision).len(), 3);
    }

    #[test]
    fn an_unexpected_error_is_a_mismatch() {
        assert_eq!(
            Expectation::default().mismatches(&Err("boom".into())).len(),
            1
        );
    }
}
