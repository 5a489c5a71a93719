//! The sandbox against real components: the shipped policy, and every
//! misbehaving fixture in `plugins/fixtures/` (each must have a test here;
//! `every_fixture_has_a_test` checks it).

// Test code: an unwrap that fails is a failed test, which is what it should be.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use vedfolnir_core::guard::FailureKind;
use vedfolnir_core::model::{Direction, PolicyInput};
use vedfolnir_core::scenario::ScenarioFile;
use vedfolnir_plugin_artifacts::{fixture, policy_path, static_fixture};
use vedfolnir_sandbox::{Plugin, Provenance, Sandbox, SandboxConfig, Stage};
use vedfolnir_sdk::Policy as _;

/// A sandbox whose deadline is far beyond what any of these tests needs, so a
/// busy machine cannot turn what a test looks for (a memory cap, a trap, a
/// guest error) into a timeout. The deadline's own tests use
/// [`default_sandbox`].
fn sandbox() -> Sandbox {
    Sandbox::new(SandboxConfig {
        deadline: Duration::from_secs(20),
        ..SandboxConfig::default()
    })
    .unwrap()
}

fn default_sandbox() -> Sandbox {
    Sandbox::new(SandboxConfig::default()).unwrap()
}

fn load_fixture(name: &str) -> Result<Plugin, vedfolnir_sandbox::LoadError> {
    sandbox().load_file(Path::new(fixture(name)))
}

fn sample_input(plugin: &Plugin) -> PolicyInput {
    // The "busy service" sample: every signal present and high.
    vedfolnir_sandbox::smoke_inputs(&plugin.description().default_params())
        .remove(1)
        .1
}

fn threshold_score() -> Plugin {
    sandbox()
        .load_file(Path::new(policy_path("threshold-score").unwrap()))
        .unwrap()
}

#[test]
fn shipped_policy_loads_and_describes_itself() {
    let plugin = threshold_score();
    assert_eq!(plugin.id().name, "threshold-score");
    assert_eq!(plugin.id().digest.len(), 64);
    assert_eq!(
        plugin.description(),
        &threshold_score::ThresholdScore::describe()
    );
    assert_eq!(
        plugin.smoke_test(&sample_input(&plugin).params).unwrap(),
        Vec::<String>::new()
    );
}

#[test]
fn wasm_and_native_agree_on_every_golden_scenario() {
    let plugin = threshold_score();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../plugins/threshold-score/scenarios.toml"
    );
    let file: ScenarioFile = toml_from(path);
    for scenario in &file.scenarios {
        let (min, max, raw, snapshot) = file.resolve(scenario);
        let input = vedfolnir_sdk::testing::input_for::<threshold_score::ThresholdScore>(
            &snapshot, min, max, &raw,
        )
        .unwrap();
        let native = threshold_score::ThresholdScore::evaluate(&input);
        let wasm = plugin.evaluate(&input).map_err(|e| e.message);
        assert_eq!(wasm, native, "{}", scenario.name);
        assert!(
            scenario.expect.mismatches(&wasm).is_empty(),
            "{}",
            scenario.name
        );
    }
    assert!(file.scenarios.len() >= 20);
}

fn toml_from(path: &str) -> ScenarioFile {
    vedfolnir_sdk::testing::read_scenarios(Path::new(path)).unwrap()
}

#[test]
fn loop_forever_times_out_within_its_deadline() {
    let plugin = default_sandbox()
        .load_file(Path::new(fixture("loop-forever")))
        .unwrap();
    let started = Instant::now();
    let err = plugin.evaluate(&sample_input(&plugin)).unwrap_err();
    assert_eq!(err.kind, FailureKind::Timeout, "{err}");
    // A liveness bound, not a speed goal (that is BENCHMARKS.md's job): at
    // 100 times the 50 ms deadline it catches a deadline that fires far too
    // late; one that never fires would leave this test hanging.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    // A fresh instance from the same pre-linked component still works: the
    // trap poisoned only that evaluation's store.
    assert_eq!(
        plugin.evaluate(&sample_input(&plugin)).unwrap_err().kind,
        FailureKind::Timeout
    );
    let load = default_sandbox()
        .load_file(Path::new(fixture("loop-forever")))
        .unwrap();
    let smoke = load.smoke_test(&[]).unwrap_err();
    assert_eq!(smoke.stage, Stage::Smoke);
    assert!(smoke.message.contains("timeout"), "{smoke}");
}

/// Under an instruction budget (a replay's), a policy that never returns
/// stops after exactly its budget: the same failure however busy the
/// machine, and the calls the wall-clock deadline would have stopped are
/// counted apart.
#[test]
fn an_instruction_budget_stops_a_loop_the_same_way_every_time() {
    // A deadline far below what the budget takes on any machine: 10 ms was
    // once beaten by a fast core. Under fuel the epoch ticker is not used.
    let sandbox = Sandbox::new(SandboxConfig {
        deadline: Duration::from_micros(500),
        tick: Duration::from_micros(100),
        fuel: Some(200_000_000),
        ..SandboxConfig::default()
    })
    .unwrap();
    let plugin = sandbox
        .load_file(Path::new(fixture("loop-forever")))
        .unwrap();
    // The load's own calls count too when a busy machine takes them past
    // half a millisecond: only the two evaluations' are checked.
    let at_load = plugin.over_deadline();
    let input = sample_input(&plugin);
    let first = plugin.evaluate(&input).unwrap_err();
    let second = plugin.evaluate(&input).unwrap_err();
    assert_eq!(first.kind, FailureKind::Timeout, "{first}");
    assert!(
        first.message.contains("budget of 200000000 instructions"),
        "{first}"
    );
    assert_eq!(first.message, second.message);
    // Two hundred million instructions take longer than half a millisecond.
    assert_eq!(plugin.over_deadline() - at_load, 2);
    // A policy that answers answers under a budget too, and in time.
    let shipped = sandbox
        .load_file(Path::new(policy_path("threshold-score").unwrap()))
        .unwrap();
    shipped.evaluate(&sample_input(&shipped)).unwrap();
}

#[test]
fn alloc_unbounded_hits_the_memory_cap() {
    let plugin = load_fixture("alloc-unbounded").unwrap();
    let err = plugin.evaluate(&sample_input(&plugin)).unwrap_err();
    assert_eq!(err.kind, FailureKind::OutOfMemory, "{err}");
    assert!(err.message.contains("cap 33554432"), "{err}");
}

#[test]
fn panics_comes_back_as_a_trap_with_the_panic_message() {
    let plugin = load_fixture("panics").unwrap();
    let err = plugin.evaluate(&sample_input(&plugin)).unwrap_err();
    assert_eq!(err.kind, FailureKind::Trap, "{err}");
    assert!(err.message.contains("fixture panics on purpose"), "{err}");
    assert!(err.to_string().contains("fixture-panics@0.1.0"), "{err}");
    // Said once: the kind is "trap", the message does not repeat it.
    assert!(!err.message.contains("trap:"), "{err}");
    assert_eq!(err.to_string().matches("trap").count(), 1, "{err}");
    // No environment reaches the sandbox: the runtime's tip to set
    // RUST_BACKTRACE cannot be followed, so it is not passed on.
    assert!(!err.message.contains("RUST_BACKTRACE"), "{err}");
}

#[test]
fn guest_error_is_tagged_with_the_plugin() {
    let plugin = load_fixture("guest-error").unwrap();
    let err = plugin.evaluate(&sample_input(&plugin)).unwrap_err();
    assert_eq!(err.kind, FailureKind::Guest);
    assert_eq!(err.message, "fixture refuses to evaluate smoke-test");
    let failure = err.to_failure();
    assert!(
        failure.message.contains("fixture-guest-error@0.1.0"),
        "{}",
        failure.message
    );
    assert!(failure.message.contains("sha256:"), "{}", failure.message);
    // A guest error is a documented answer, not a crash: the smoke test
    // passes and hands it back as a note.
    let notes = plugin.smoke_test(&[]).unwrap();
    assert_eq!(notes.len(), 3, "{notes:?}");
    assert!(
        notes[0].contains("fixture refuses to evaluate"),
        "{notes:?}"
    );
}

#[test]
fn nan_scores_fail_the_smoke_test_and_the_guard_holds() {
    let plugin = load_fixture("nan-scores").unwrap();
    let rec = plugin.evaluate(&sample_input(&plugin)).unwrap();
    assert!(rec.scale_up_score.is_nan());
    let err = plugin.smoke_test(&[]).unwrap_err();
    assert_eq!(err.stage, Stage::Smoke);
    assert!(err.message.contains("not a finite number"), "{err}");
}

#[test]
fn imports_filesystem_is_rejected_naming_the_import() {
    let err = load_fixture("imports-filesystem").unwrap_err();
    assert_eq!(err.stage, Stage::Imports, "{err}");
    assert!(err.message.contains("wasi:filesystem/"), "{err}");
    assert!(err.source_label.ends_with(".wasm"));
}

#[test]
fn imports_sockets_is_rejected_naming_the_import() {
    let err = load_fixture("imports-sockets").unwrap_err();
    assert_eq!(err.stage, Stage::Imports, "{err}");
    assert!(err.message.contains("wasi:sockets/"), "{err}");
}

#[test]
fn other_world_is_rejected_at_the_world_check() {
    let err = load_fixture("other-world").unwrap_err();
    assert_eq!(err.stage, Stage::World, "{err}");
    assert!(err.message.contains("WASI command"), "{err}");
}

#[test]
fn wrong_version_is_rejected_naming_both_versions() {
    let err = load_fixture("wrong-version").unwrap_err();
    assert_eq!(err.stage, Stage::World, "{err}");
    assert!(
        err.message.contains("@0.2.0") && err.message.contains("0.1.x"),
        "{err}"
    );
}

#[test]
fn not_wasm_is_rejected_at_decode() {
    let err = sandbox()
        .load_file(Path::new(&static_fixture("not-wasm.wasm")))
        .unwrap_err();
    assert_eq!(err.stage, Stage::Decode);
    assert!(err.message.contains("not a WebAssembly file"), "{err}");
}

#[test]
fn core_module_is_rejected_at_decode_with_a_hint() {
    let err = sandbox()
        .load_file(Path::new(&static_fixture("core-module.wasm")))
        .unwrap_err();
    assert_eq!(err.stage, Stage::Decode);
    assert!(err.message.contains("not a component"), "{err}");
}

#[test]
fn missing_file_is_a_read_error_naming_the_path() {
    let err = sandbox()
        .load_file(Path::new("/nonexistent/policy.wasm"))
        .unwrap_err();
    assert_eq!(err.stage, Stage::Read);
    assert!(
        err.to_string()
            .starts_with("/nonexistent/policy.wasm: read failed"),
        "{err}"
    );
}

#[test]
fn probe_environment_sees_a_pinned_clock_no_env_no_args_and_fixed_randomness() {
    let plugin = load_fixture("probe-environment").unwrap();
    let mut input = sample_input(&plugin);
    let observed = |input: &PolicyInput| -> BTreeMap<String, f64> {
        let rec = plugin.evaluate(input).unwrap();
        assert_eq!(rec.direction, Direction::Hold);
        rec.reasons
            .into_iter()
            .map(|r| (r.trigger, r.observed.unwrap()))
            .collect()
    };
    let first = observed(&input);
    assert_eq!(first["clock-ms"], input.now as f64);
    assert_eq!(first["env-vars"], 0.0);
    assert_eq!(first["args"], 0.0);
    assert_eq!(
        observed(&input)["random"],
        first["random"],
        "randomness must not vary between evaluations"
    );
    input.now += 60_000;
    assert_eq!(observed(&input)["clock-ms"], input.now as f64);
}

#[test]
fn precompiled_cache_is_used_and_survives_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let config = SandboxConfig {
        cache_dir: Some(dir.path().join("cache")),
        deadline: Duration::from_secs(20),
        ..Default::default()
    };
    let path = Path::new(policy_path("threshold-score").unwrap());
    let first = Sandbox::new(config.clone())
        .unwrap()
        .load_file(path)
        .unwrap();
    assert_eq!(first.provenance, Provenance::Compiled);
    let second = Sandbox::new(config.clone())
        .unwrap()
        .load_file(path)
        .unwrap();
    assert_eq!(second.provenance, Provenance::Cached);
    let input = sample_input(&second);
    assert_eq!(
        first.evaluate(&input).unwrap(),
        second.evaluate(&input).unwrap()
    );

    let artifact = std::fs::read_dir(dir.path().join("cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .unwrap();
    let mut bytes = std::fs::read(&artifact).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&artifact, bytes).unwrap();
    let third = Sandbox::new(config).unwrap().load_file(path).unwrap();
    assert_eq!(
        third.provenance,
        Provenance::Compiled,
        "a corrupted artifact must be recompiled, not mapped"
    );
    assert_eq!(
        third.evaluate(&input).unwrap(),
        first.evaluate(&input).unwrap()
    );
}

#[test]
fn policy_files_naming_the_same_component_share_it_until_none_uses_it() {
    let sandbox = Sandbox::new(SandboxConfig {
        deadline: Duration::from_secs(20),
        ..Default::default()
    })
    .unwrap();
    let bytes = std::fs::read(policy_path("threshold-score").unwrap()).unwrap();
    let a = sandbox.load_bytes("a.toml", &bytes).unwrap();
    assert_eq!(a.provenance, Provenance::Compiled);
    let b = sandbox.load_bytes("b.toml", &bytes).unwrap();
    assert_eq!(b.provenance, Provenance::Shared);
    // Each keeps its own name for logs and errors; both describe the same.
    assert_eq!(
        (a.id().source.as_str(), b.id().source.as_str()),
        ("a.toml", "b.toml")
    );
    assert_eq!(a.id().digest, b.id().digest);
    assert_eq!(b.id().name, "threshold-score");
    assert_eq!(a.description(), b.description());
    let input = sample_input(&b);
    assert_eq!(a.evaluate(&input).unwrap(), b.evaluate(&input).unwrap());
    // Another component is not shared.
    let other = std::fs::read(policy_path("target-tracking").unwrap()).unwrap();
    let c = sandbox.load_bytes("c.toml", &other).unwrap();
    assert_ne!(c.provenance, Provenance::Shared);
    // Once no plugin uses it, it is loaded afresh.
    drop((a, b));
    let again = sandbox.load_bytes("a.toml", &bytes).unwrap();
    assert_eq!(again.provenance, Provenance::Compiled);
}

#[test]
fn evaluations_are_deterministic() {
    let plugin = threshold_score();
    let input = sample_input(&plugin);
    let a = plugin.evaluate(&input).unwrap();
    for _ in 0..20 {
        assert_eq!(plugin.evaluate(&input).unwrap(), a);
    }
}

#[test]
fn bad_sandbox_settings_are_refused() {
    let tiny = Sandbox::new(SandboxConfig {
        memory_cap: 1 << 20,
        ..Default::default()
    });
    assert!(tiny.unwrap_err().to_string().contains("memory_cap"));
    let short = Sandbox::new(SandboxConfig {
        deadline: Duration::from_millis(5),
        ..Default::default()
    });
    assert!(short.unwrap_err().to_string().contains("two epoch ticks"));
}

#[test]
fn every_fixture_has_a_test() {
    let readme = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../plugins/fixtures/README.md"
    ))
    .unwrap();
    let this_file = include_str!("sandbox.rs");
    let names: Vec<&str> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("- `"))
        .filter_map(|l| l.split('`').next())
        .collect();
    assert!(names.len() >= 12, "{names:?}");
    // Every fixture in the folder is listed: a crate, or a static file.
    let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/../../plugins/fixtures");
    let mut present = Vec::new();
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.join("Cargo.toml").is_file() {
            present.push(name);
        } else if name == "static" {
            for file in std::fs::read_dir(&path).unwrap() {
                let file = file.unwrap().file_name().to_string_lossy().into_owned();
                present.push(format!("static/{file}"));
            }
        }
    }
    assert!(present.len() >= 12, "{present:?}");
    for name in &present {
        assert!(
            names.contains(&name.as_str()),
            "fixture {name} is not listed in plugins/fixtures/README.md"
        );
    }
    for name in names {
        let short = name.trim_start_matches("static/");
        assert!(
            this_file.contains(&format!("fixture(\"{short}\")"))
                || this_file.contains(&format!("static_fixture(\"{short}\")")),
            "fixture {name} has no test in host/sandbox/tests/sandbox.rs"
        );
    }
}

#[test]
fn oversized_output_is_cut_to_the_limits_and_marked() {
    use vedfolnir_core::model::{Param, ParamValue};
    use vedfolnir_sandbox::{Cut, OutputLimits};
    let plugin = sandbox()
        .load_file(Path::new(fixture("oversized-output")))
        .unwrap();
    let limits = OutputLimits::default();
    let with = |reasons: f64, message: f64, trigger: f64| {
        let mut input = sample_input(&plugin);
        input.params = [
            ("reasons", reasons),
            ("message-bytes", message),
            ("trigger-bytes", trigger),
        ]
        .into_iter()
        .map(|(key, n)| Param {
            key: key.into(),
            value: ParamValue::Number(n),
        })
        .collect();
        plugin.evaluate(&input).unwrap()
    };
    let mark = |rec: &vedfolnir_core::model::Recommendation| {
        let last = rec.reasons.last().unwrap().clone();
        assert!(Cut::marks(&last), "{rec:?}");
        last.message
    };

    // One 12 MiB reason: the message is cut to 1 KiB.
    let rec = with(1.0, f64::from(12u32 << 20), 8.0);
    assert_eq!(rec.reasons.len(), 2);
    assert!(rec.reasons[0].message.len() <= limits.message_bytes);
    assert!(mark(&rec).contains("longest 12582912 bytes"), "{rec:?}");

    // Ten thousand short reasons: 64 are kept, and the mark.
    let rec = with(10_000.0, 10.0, 8.0);
    assert_eq!(rec.reasons.len(), limits.reasons + 1);
    assert!(mark(&rec).contains("9936 reasons dropped"));

    // A 10 KiB trigger.
    let rec = with(1.0, 10.0, 10_240.0);
    assert!(rec.reasons[0].trigger.len() <= limits.trigger_bytes);
    assert!(mark(&rec).contains("1 triggers shortened"));

    // Within the limits: nothing marked.
    let rec = with(64.0, 1024.0, 64.0);
    assert_eq!(rec.reasons.len(), 64);
    assert!(!rec.reasons.iter().any(Cut::marks));

    // `plugin check`'s smoke test says the output needed cutting.
    let notes = plugin
        .smoke_test(&plugin.description().default_params())
        .unwrap();
    assert_eq!(notes.len(), 3, "{notes:?}");
    assert!(notes[0].contains("output was cut"), "{notes:?}");
}

#[test]
fn a_memory_minimum_over_the_cap_is_refused_with_both_sizes() {
    let err = sandbox()
        .load_file(Path::new(fixture("large-memory")))
        .unwrap_err();
    assert_eq!(err.stage, Stage::Decode, "{err}");
    assert!(err.message.contains("starts at 64 MiB"), "{err}");
    assert!(err.message.contains("memory cap of 32 MiB"), "{err}");
    assert!(!err.message.contains("pooling"), "{err}");
    // Under a cap that holds it, it loads and runs.
    let roomy = Sandbox::new(SandboxConfig {
        memory_cap: 128 << 20,
        deadline: Duration::from_secs(20),
        ..SandboxConfig::default()
    })
    .unwrap()
    .load_file(Path::new(fixture("large-memory")))
    .unwrap();
    assert!(roomy.evaluate(&sample_input(&roomy)).is_ok());
}
