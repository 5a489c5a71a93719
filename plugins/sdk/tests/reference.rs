//! The SDK reference in docs/writing-a-policy.md lists the helpers'
//! signatures: each must be one the SDK (or the core it re-exports)
//! declares, so the reference cannot drift from the code.

// Test code: an unwrap that fails is a failed test, which is what it should be.
#![allow(clippy::unwrap_used)]

use std::path::Path;

/// Whitespace collapsed, as rustfmt's line breaks would not be written.
fn normalise(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace("( ", "(")
        .replace(", )", ")")
}

fn sources() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut text = String::new();
    for dir in [root.join("src"), root.join("../../host/core/src")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") {
                text.push_str(&std::fs::read_to_string(&path).unwrap());
                text.push('\n');
            }
        }
    }
    normalise(&text)
}

#[test]
fn every_signature_in_the_reference_is_declared() {
    let guide = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/writing-a-policy.md"),
    )
    .unwrap();
    let sources = sources();
    let mut lines = guide.lines();
    let mut checked = 0;
    while let Some(line) = lines.next() {
        if line != "```text" {
            continue;
        }
        for sig in lines.by_ref().take_while(|l| *l != "```") {
            if sig.starts_with("pub fn ") {
                assert!(
                    sources.contains(&normalise(sig)),
                    "docs/writing-a-policy.md lists a signature the SDK does not declare:\n{sig}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 20, "only {checked} signatures found");
}

/// The fields a scenario-file type accepts, as its own parser lists them
/// when refusing an unknown one.
fn fields<T: serde::de::DeserializeOwned + std::fmt::Debug>() -> Vec<String> {
    let err = toml::from_str::<T>("not_a_field = 1")
        .unwrap_err()
        .to_string();
    let (_, list) = err
        .split_once("expected one of ")
        .or_else(|| err.split_once("expected "))
        .unwrap_or_else(|| panic!("no field list in {err:?}"));
    list.split(',')
        .filter_map(|f| f.split('`').nth(1))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_reference_names_every_field_of_a_scenario_file() {
    use vedfolnir_core::scenario::{Expectation, Scenario, ScenarioFile};
    use vedfolnir_core::snapshot::{AgoSample, DetailedSeries, Segment, Snapshot};
    let guide = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/writing-a-policy.md"),
    )
    .unwrap();
    let reference = &guide[guide
        .find("### Scenario files")
        .expect("the reference section")..];
    let named = |field: &str| {
        reference.match_indices(field).any(|(at, _)| {
            let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            !word(reference[..at].chars().next_back())
                && !word(reference[at + field.len()..].chars().next())
        })
    };
    let all = [
        fields::<ScenarioFile>(),
        fields::<Scenario>(),
        fields::<Expectation>(),
        fields::<Snapshot>(),
        fields::<DetailedSeries>(),
        fields::<Segment>(),
        fields::<AgoSample>(),
    ]
    .concat();
    assert!(all.len() > 30, "{all:?}");
    let missing: Vec<&String> = all.iter().filter(|f| !named(f)).collect();
    assert!(
        missing.is_empty(),
        "the scenario reference does not name {missing:?}"
    );
}
