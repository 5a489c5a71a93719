//! Run a policy natively, in plain `cargo test`, on the same snapshot and
//! scenario files that `vedfolnir-autoscaler plugin test` runs against the
//! built component.

use std::collections::BTreeMap;
use std::path::Path;

use vedfolnir_core::scenario::{self, ScenarioFile};
use vedfolnir_core::snapshot::{Frame, RawParam, Snapshot, resolve_params};

use crate::{Policy, PolicyInput, Recommendation};

/// Build the input a host would pass: parameters checked against
/// `P::describe()` with defaults filled in, then `P::validate_config`.
pub fn input_for<P: Policy>(
    snapshot: &Snapshot,
    min: u32,
    max: u32,
    raw: &BTreeMap<String, RawParam>,
) -> Result<PolicyInput, String> {
    let spec = P::describe();
    let params = resolve_params(&spec.params, raw).map_err(|e| join(&e))?;
    P::validate_config(&params).map_err(|e| join(&e))?;
    let frame = Frame {
        service: "test".into(),
        min_replicas: min,
        max_replicas: max,
        params,
    };
    snapshot.to_input(&frame).map_err(|e| join(&e))
}

/// Evaluate a snapshot given as JSON text, with default bounds (2..=5) and
/// default parameters.
pub fn evaluate_json<P: Policy>(snapshot_json: &str) -> Result<Recommendation, String> {
    let snapshot: Snapshot =
        serde_json::from_str(snapshot_json).map_err(|e| format!("snapshot: {e}"))?;
    let input = input_for::<P>(&snapshot, 2, 5, &BTreeMap::new())?;
    P::evaluate(&input)
}

/// Run every scenario in a TOML scenario file; returns one line per failing
/// scenario (empty when all pass). Panics with the file's path if it cannot
/// be read or parsed, since that is a broken test rather than a failure of
/// the policy.
pub fn run_scenarios<P: Policy>(path: impl AsRef<Path>) -> Vec<String> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let file: ScenarioFile =
        toml::from_str(&text).unwrap_or_else(|e| panic!("cannot parse {}: {e}", path.display()));
    let mut failures = Vec::new();
    for scenario in &file.scenarios {
        let (min, max, raw, snapshot) = file.resolve(scenario);
        let mut problems = Vec::new();
        match input_for::<P>(&snapshot, min, max, &raw) {
            Ok(input) => {
                let outcome = P::evaluate(&input);
                problems.extend(scenario.expect.mismatches(&outcome));
                problems.extend(
                    scenario
                        .expect
                        .decision_mismatches(&scenario::decide(&input, &outcome)),
                );
            }
            Err(e) => problems.extend(scenario.expect.mismatches(&Err(e))),
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}", scenario.name, problems.join("; ")));
        }
    }
    assert!(
        !file.scenarios.is_empty(),
        "{} has no scenarios",
        path.display()
    );
    failures
}

/// Read and parse a TOML scenario file; the error names the file.
pub fn read_scenarios(path: &Path) -> Result<ScenarioFile, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("cannot parse {}: {e}", path.display()))
}

fn join(errors: &[impl std::fmt::Display]) -> String {
    errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}
