//! A plugin author's first hour, from an empty directory: `plugin new`,
//! then `cargo test`, the wasm build, `plugin check`, `plugin test` and
//! `validate` exactly as docs/writing-a-policy.md gives them; then the
//! mistakes that used to pass silently, each made loud.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::util::{Output, run};

/// Cargo (the one running these tests) in `dir`, building into the crate's
/// own target folder.
fn cargo(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(dir)
        .args(args)
        .env_remove("CARGO_TARGET_DIR");
    cmd.envs(env.iter().copied());
    cmd.output().expect("cargo runs").into()
}

fn build_wasm(dir: &Path) {
    cargo(
        dir,
        &["build", "--target", "wasm32-wasip2", "--release", "--quiet"],
        &[],
    )
    .expect_code(0);
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} has no {from:?}", path.display());
    std::fs::write(path, text.replace(from, to)).unwrap();
}

#[test]
fn plugin_new_builds_and_tests_out_of_the_box() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("queue-only");
    let started = Instant::now();
    let out = run(&[
        "plugin",
        "new",
        "queue-only",
        "--dir",
        dir.to_str().unwrap(),
    ])
    .expect_code(0);
    assert!(out.stdout.contains("created"), "{}", out.stdout);

    // As written: warnings are errors, so the template stays clean too.
    let test = cargo(&dir, &["test", "--quiet"], &[("RUSTFLAGS", "-D warnings")]).expect_code(0);
    assert!(test.stdout.contains("2 passed"), "{}", test.stdout);
    build_wasm(&dir);
    let wasm = dir.join("target/wasm32-wasip2/release/queue_only.wasm");
    let wasm = wasm.to_str().unwrap();
    let check = run(&["plugin", "check", wasm]).expect_code(0);
    assert!(
        check.stdout.contains("queue-only 0.1.0"),
        "{}",
        check.stdout
    );
    let scenarios = dir.join("scenarios.toml");
    let tested = run(&["plugin", "test", wasm, scenarios.to_str().unwrap()]).expect_code(0);
    assert!(
        tested.stdout.contains("scenarios: 3 passed, 0 failed"),
        "{}",
        tested.stdout
    );
    eprintln!(
        "plugin new to a passing plugin test: {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let policy = dir.join("queue-only.toml");
    let valid = run(&["validate", policy.to_str().unwrap()]).expect_code(0);
    assert!(
        valid.stdout.contains("ok (queue-only@0.1.0"),
        "{}",
        valid.stdout
    );
    assert!(!valid.stdout.contains("note:"), "{}", valid.stdout);

    every_problem_of_a_file_at_once(&policy);
    an_undeclared_signal_is_not_handed_over(&dir, wasm, &policy);
    a_crate_without_the_export_gets_a_hint(&dir, wasm);
}

/// A file problem, a signal the plugin requires that nothing provides, and
/// a value the plugin's own `validate_config` refuses: one run, three
/// problems, each with its key.
fn every_problem_of_a_file_at_once(policy: &Path) {
    let text = std::fs::read_to_string(policy).unwrap();
    let start = text.find("[signals.queue-depth]").unwrap();
    let end = text.find("[params]").unwrap();
    let broken = format!("max_replica = 3\n{}{}", &text[..start], &text[end..])
        .replace("jobs-per-replica = 50", "jobs-per-replica = 0");
    let bad = policy.with_file_name("broken.toml");
    std::fs::write(&bad, broken).unwrap();
    let out = run(&["validate", bad.to_str().unwrap()]).expect_code(2);
    for want in [
        "3 problems",
        "max_replica: unknown key",
        "signals.queue-depth: queue-only requires queue-depth, but no source provides it",
        "source = \"scrape\"",
        "params.jobs-per-replica: must be above 0",
    ] {
        assert!(out.stderr.contains(want), "{want}\n{}", out.stderr);
    }
}

/// The policy declares queue-depth and reads cpu: the host hands it only
/// what it declared, in `evaluate` as in `plugin test` and `cargo test`,
/// and the SDK's error names the signal.
fn an_undeclared_signal_is_not_handed_over(dir: &Path, wasm: &str, policy: &Path) {
    edit(
        &dir.join("src/lib.rs"),
        "newest(input, &SignalId::QueueDepth, 60_000)",
        "newest(input, &SignalId::Cpu, 60_000)",
    );
    build_wasm(dir);
    let want = "cpu: not in the input";
    let out = run(&[
        "evaluate",
        "--policy",
        policy.to_str().unwrap(),
        "--input",
        "policies/examples/busy.json",
    ])
    .expect_code(0);
    assert!(out.stdout.contains(want), "{}", out.stdout);
    assert!(out.stdout.contains("decision: HOLD at 3"), "{}", out.stdout);
    let scenarios = dir.join("scenarios.toml");
    let out = run(&["plugin", "test", wasm, scenarios.to_str().unwrap()]).expect_code(4);
    assert!(out.stdout.contains(want), "{}", out.stdout);
    let native = cargo(dir, &["test", "--quiet"], &[]);
    assert_ne!(native.code, 0, "{}", native.stdout);
    assert!(native.stdout.contains(want), "{}", native.stdout);
}

/// Without `export_policy!` the crate still builds and its tests still
/// compile; `plugin check` fails at `world` and says what to add.
fn a_crate_without_the_export_gets_a_hint(dir: &Path, wasm: &str) {
    edit(
        &dir.join("src/lib.rs"),
        "vedfolnir_sdk::export_policy!(QueueOnly);",
        "",
    );
    build_wasm(dir);
    let out = run(&["plugin", "check", wasm]);
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(out.stdout.contains("FAILED world"), "{}", out.stdout);
    assert!(out.stdout.contains("export_policy!"), "{}", out.stdout);
}
