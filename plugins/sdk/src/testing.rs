//! Run a policy natively, in plain `cargo test`, on the same snapshot and
//! scenario files that `vedfolnir-autoscaler plugin test` runs against the
//! built component.

use std::collections::BTreeMap;
use std::path::Path;

use vedfolnir_core::scenario::{self, ScenarioFile};
use vedfolnir_core::snapshot::{RawParam, Snapshot};

use crate::{Policy, PolicyInput, Recommendation};

/// Build the input a host would pass: parameters checked against
/// `P::describe()` (only those set are passed; the policy applies its
/// defaults), then `P::validate_config`, then the snapshot expanded, with
/// only the signals the policy declares (or names in a parameter, such as
/// `metric = "memory"`): the host hands a policy nothing else.
pub fn input_for<P: Policy>(
    snapshot: &Snapshot,
    min: u32,
    max: u32,
    raw: &BTreeMap<String, RawParam>,
) -> Result<PolicyInput, String> {
    scenario::prepare(snapshot, &P::describe(), min, max, raw, validate::<P>)
}

fn validate<P: Policy>(params: &[crate::Param]) -> Result<(), String> {
    P::validate_config(params).map_err(|e| {
        e.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })
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
    let file = read_scenarios(path).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !file.scenarios.is_empty(),
        "{} has no scenarios",
        path.display()
    );
    file.run(&P::describe(), validate::<P>, P::evaluate)
        .into_iter()
        .filter(|(_, problems)| !problems.is_empty())
        .map(|(name, problems)| format!("{name}: {}", problems.join("; ")))
        .collect()
}

/// Read and parse a TOML scenario file; the error names the file.
pub fn read_scenarios(path: &Path) -> Result<ScenarioFile, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("cannot parse {}: {e}", path.display()))
}

/// The checks every policy crate runs: its golden scenarios in
/// `scenarios` all pass, and its declared defaults pass its own
/// `validate_config`. Panics naming what failed.
pub fn check_policy<P: Policy>(scenarios: impl AsRef<Path>) {
    let failures = run_scenarios::<P>(scenarios);
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    let defaults = P::describe().default_params();
    if let Err(errors) = P::validate_config(&defaults) {
        panic!("the declared defaults fail validate_config: {errors:?}");
    }
}

/// The keys `validate_config` reports for these parameters (number, text
/// or boolean values by key), sorted; empty when it accepts them.
pub fn rejected_keys<P: Policy>(params: &[(&str, crate::ParamValue)]) -> Vec<String> {
    let params: Vec<crate::Param> = params
        .iter()
        .map(|(key, value)| crate::Param {
            key: key.to_string(),
            value: value.clone(),
        })
        .collect();
    let mut keys: Vec<String> = P::validate_config(&params)
        .err()
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.key)
        .collect();
    keys.sort();
    keys
}
