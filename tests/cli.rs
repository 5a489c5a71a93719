//! The command line: `evaluate`, `validate`, `plugin check|test|list`, with
//! good and bad input. Exit codes are documented in host/daemon/src/main.rs.

use crate::util::{fixture, run, run_env, run_within, temp_file};

const POLICY: &str = "policies/vedfolnir.toml";

#[test]
fn evaluate_busy_snapshot_scales_up_and_explains_why() {
    let out = run(&[
        "evaluate",
        "--policy",
        POLICY,
        "--input",
        "policies/examples/busy.json",
    ])
    .expect_code(0);
    assert!(
        out.stdout.contains("decision: SCALE UP 3 -> 4"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("cpu-high"), "{}", out.stdout);
    assert!(out.stdout.contains("queue-high-pending"), "{}", out.stdout);
    assert!(out.stdout.contains("error-rate-missing"), "{}", out.stdout);
}

#[test]
fn evaluate_json_is_machine_readable() {
    let out = run(&[
        "evaluate",
        "--policy",
        POLICY,
        "--input",
        "policies/examples/idle.json",
        "--json",
    ])
    .expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["decision"]["direction"], "down");
    assert_eq!(v["decision"]["target"], 3);
    assert_eq!(v["recommendation"]["scale_down_score"], 7.0);
    assert_eq!(v["plugin"]["name"], "threshold-score");
    assert_eq!(v["plugin"]["digest"].as_str().unwrap().len(), 64);
    // Effective parameters: the file's values and the plugin's defaults.
    assert_eq!(v["params"]["cpu-high.threshold"]["number"], 0.7);
    assert_eq!(v["params"]["memory-low.for"]["duration"], 900_000);
}

#[test]
fn evaluate_reports_the_cooldown_that_blocks_a_scale_up() {
    let out = run(&[
        "evaluate",
        "--policy",
        POLICY,
        "--input",
        "policies/examples/cooling-down.json",
    ])
    .expect_code(0);
    assert!(
        out.stdout.contains("cooldown-up [5 -> 4]"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("decision: HOLD at 4"), "{}", out.stdout);
}

#[test]
fn max_replicas_from_the_environment_caps_the_decision() {
    let out = run_env(
        &[
            "evaluate",
            "--policy",
            POLICY,
            "--input",
            "policies/examples/busy.json",
            "--json",
        ],
        &[("MAX_REPLICAS", "3")],
    )
    .expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["max_replicas"], 3);
    assert_eq!(v["decision"]["direction"], "hold");
}

#[test]
fn malformed_toml_exits_2_naming_file_and_line() {
    let (_dir, path) = temp_file("bad.toml", "service = \"x\"\nplugin = [\n");
    let out = run(&[
        "evaluate",
        "--policy",
        path.to_str().unwrap(),
        "--input",
        "policies/examples/busy.json",
    ])
    .expect_code(2);
    assert!(
        out.stderr.contains("bad.toml: not valid TOML: line"),
        "{}",
        out.stderr
    );
}

#[test]
fn every_policy_file_problem_is_reported_at_once() {
    let (_dir, path) = temp_file(
        "bad.toml",
        "service = \"x\"\nplugin = \"builtin:threshold-score\"\nmin_replicas = 6\nmax_replicas = 4\nmax_replica = 2\n[cooldown]\nup = \"soon\"\n",
    );
    let out = run(&["validate", path.to_str().unwrap()]).expect_code(2);
    assert!(out.stderr.contains("3 problems"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("min_replicas: min_replicas 6 is greater than max_replicas 4"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("max_replica: unknown key (did you mean \"max_replicas\"?)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("cooldown.up: invalid duration \"soon\""),
        "{}",
        out.stderr
    );
    // The same as JSON, for a script: one object, the same exit code.
    let out = run(&["validate", "--json", path.to_str().unwrap()]).expect_code(2);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["files"][0]["ok"], false);
    let keys: Vec<&str> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 3, "{v}");
    assert!(
        keys.contains(&"cooldown.up") && keys.contains(&"max_replica"),
        "{v}"
    );
    let out = run(&["validate", "--json", POLICY]).expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert!(
        v["files"][0]["plugin"]
            .as_str()
            .unwrap()
            .starts_with("threshold-score@"),
        "{v}"
    );
    let out = run(&["plugin", "list", "--json"]).expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["plugin"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"builtin:threshold-score"), "{v}");
    assert!(v[0]["digest"].as_str().unwrap().len() == 64, "{v}");
}

#[test]
fn plugin_parameters_are_checked_against_the_plugin() {
    let (_dir, path) = temp_file(
        "params.toml",
        "service = \"x\"\nplugin = \"builtin:threshold-score\"\n[params.cpu-high]\ntreshold = 0.8\nfor = 300\n[params.missing]\ncpu = \"zero\"\n",
    );
    let out = run(&["validate", path.to_str().unwrap()]).expect_code(2);
    assert!(
        out.stderr.contains(
            "params.cpu-high.treshold: unknown parameter (did you mean \"cpu-high.threshold\"?)"
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("params.cpu-high.for: expected a duration"),
        "{}",
        out.stderr
    );
    // The plugin's own check runs on the rest in the same run: its problem
    // is not hidden behind the unknown and ill-typed keys.
    assert!(
        out.stderr
            .contains("params.missing.cpu: must be \"hold\", \"ignore\" or \"last-value\""),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("3 problems"), "{}", out.stderr);
}

#[test]
fn a_plugin_rejecting_a_value_names_the_key() {
    let (_dir, path) = temp_file(
        "params.toml",
        "service = \"x\"\nplugin = \"builtin:threshold-score\"\n[params.missing]\ncpu = \"zero\"\n",
    );
    let out = run(&["validate", path.to_str().unwrap()]).expect_code(2);
    assert!(
        out.stderr
            .contains("params.missing.cpu: must be \"hold\", \"ignore\" or \"last-value\""),
        "{}",
        out.stderr
    );
}

#[test]
fn validate_notes_each_optional_signal_no_source_provides() {
    let (_dir, path) = temp_file(
        "docker-only.toml",
        "service = \"x\"\nplugin = \"builtin:threshold-score\"\n",
    );
    let out = run(&["validate", path.to_str().unwrap()]).expect_code(0);
    for want in [
        "note: signals.queue-depth: threshold-score can read queue-depth (scored; missing-data rule missing.queue-depth); no source provides it",
        "missing.queue-depth = ",
        "add [signals.queue-depth] with source = \"scrape\"",
        "note: signals.scaling-alerts:",
    ] {
        assert!(out.stdout.contains(want), "{want}\n{}", out.stdout);
    }
    // The docker source provides cpu and memory.
    assert!(!out.stdout.contains("signals.cpu"), "{}", out.stdout);
    // A file that sets the missing-data rule itself has said what the
    // absence means: no note for that signal, the other's stays.
    let (_dir, path) = temp_file(
        "acknowledged.toml",
        "service = \"x\"\nplugin = \"builtin:threshold-score\"\n[params.missing]\nscaling-alerts = \"ignore\"\n",
    );
    let out = run(&["validate", path.to_str().unwrap()]).expect_code(0);
    assert!(
        !out.stdout.contains("signals.scaling-alerts"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("note: signals.queue-depth"),
        "{}",
        out.stdout
    );
}

#[test]
fn the_example_and_demo_policies_validate() {
    let out = run(&["validate", POLICY, "deploy/demo/policy.toml"]).expect_code(0);
    assert_eq!(
        out.stdout.matches("ok (threshold-score@").count(),
        2,
        "{}",
        out.stdout
    );
    // The demo's first run prints no note: it routes or acknowledges each
    // signal its policy reads.
    let out = run(&["validate", "deploy/demo/policy.toml"]).expect_code(0);
    assert!(!out.stdout.contains("note:"), "{}", out.stdout);
    // `--policy FILE`, as every other command takes it, alone or beside
    // the files given as arguments.
    let out = run(&["validate", "--policy", POLICY]).expect_code(0);
    assert_eq!(out.stdout.matches("ok (threshold-score@").count(), 1);
    let out = run(&["validate", POLICY, "--policy", "deploy/demo/policy.toml"]).expect_code(0);
    assert_eq!(out.stdout.matches("ok (threshold-score@").count(), 2);
    // Neither: clap says a file is needed.
    let out = run(&["validate"]).expect_code(2);
    assert!(out.stderr.contains("required"), "{}", out.stderr);
}

#[test]
fn a_bad_snapshot_exits_2_naming_the_key() {
    let (_dir, path) = temp_file(
        "snap.json",
        r#"{"current_replicas": 3, "signals": {"cpu": [{"value": 0.5, "for": "ten minutes"}]}}"#,
    );
    let out = run(&[
        "evaluate",
        "--policy",
        POLICY,
        "--input",
        path.to_str().unwrap(),
    ])
    .expect_code(2);
    assert!(out.stderr.contains("signals.cpu[0].for"), "{}", out.stderr);
}

/// Evaluate the busy example with a policy file naming `plugin`.
fn evaluate_busy_with(plugin: &str, env: &[(&str, &str)]) -> crate::util::Output {
    let (_dir, path) = temp_file("p.toml", &format!("service = \"x\"\nplugin = {plugin:?}\n"));
    run_env(
        &[
            "evaluate",
            "--policy",
            path.to_str().unwrap(),
            "--input",
            "policies/examples/busy.json",
        ],
        env,
    )
}

#[test]
fn a_trapping_plugin_means_hold_never_a_crash() {
    let out = evaluate_busy_with(&fixture("panics"), &[]).expect_code(0);
    assert!(out.stdout.contains("policy failed: trap"), "{}", out.stdout);
    assert!(out.stdout.contains("policy-failed"), "{}", out.stdout);
    assert!(out.stdout.contains("decision: HOLD at 3"), "{}", out.stdout);
    // The panic's message, said once, without a tip the sandbox cannot follow.
    assert!(
        out.stdout.contains("fixture panics on purpose"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("trap: trap"), "{}", out.stdout);
    assert!(!out.stdout.contains("RUST_BACKTRACE"), "{}", out.stdout);
}

#[test]
fn nan_scores_from_a_plugin_mean_hold() {
    let out = evaluate_busy_with(&fixture("nan-scores"), &[]).expect_code(0);
    assert!(
        out.stdout.contains("invalid-recommendation"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("decision: HOLD at 3"), "{}", out.stdout);
}

#[test]
fn guest_output_and_log_lines_reach_the_log_tagged_with_the_plugin() {
    let out = evaluate_busy_with(&fixture("probe-environment"), &[("VEDFOLNIR_LOG", "info")])
        .expect_code(0);
    for line in [
        "probe printed to stdout",
        "probe printed to stderr",
        "probe logged through the host",
    ] {
        let logged = out
            .stderr
            .lines()
            .find(|l| l.contains(line))
            .unwrap_or_else(|| panic!("{line}: {}", out.stderr));
        assert!(
            logged.contains("plugin=fixture-probe-environment"),
            "{logged}"
        );
    }
    assert!(
        !out.stdout.contains("probe printed"),
        "guest output must not leak into the command's own output"
    );
}

#[test]
fn plugin_check_passes_the_shipped_policy_through_every_stage() {
    let out = run(&["plugin", "check", "builtin:threshold-score"]).expect_code(0);
    for stage in [
        "read",
        "decode",
        "world",
        "imports",
        "link",
        "describe",
        "smoke-test",
    ] {
        assert!(
            out.stdout.contains(&format!("ok     {stage}")),
            "{stage}: {}",
            out.stdout
        );
    }
}

#[test]
fn plugin_check_names_the_failing_stage_of_each_bad_plugin() {
    let cases = [
        (
            crate::util::root()
                .join("plugins/fixtures/static/not-wasm.wasm")
                .display()
                .to_string(),
            "decode",
            "not a WebAssembly file",
        ),
        (
            crate::util::root()
                .join("plugins/fixtures/static/core-module.wasm")
                .display()
                .to_string(),
            "decode",
            "not a component",
        ),
        (fixture("other-world"), "world", "wasi:cli/run"),
        (fixture("wrong-version"), "world", "0.2.0"),
        (fixture("imports-filesystem"), "imports", "wasi:filesystem"),
        (fixture("imports-sockets"), "imports", "wasi:sockets"),
        (fixture("loop-forever"), "smoke-test", "timeout"),
        (fixture("alloc-unbounded"), "smoke-test", "out-of-memory"),
        (fixture("panics"), "smoke-test", "trap"),
        ("/nonexistent.wasm".to_string(), "read", "No such file"),
    ];
    for (file, stage, detail) in cases {
        // A generous deadline: on a loaded machine (the Docker tests run
        // beside these) the unbounded allocation must meet its memory cap
        // before the clock, or it would be classified a timeout.
        let deadline = if detail == "timeout" { "50ms" } else { "5s" };
        let out = run(&["plugin", "check", "--plugin-deadline", deadline, &file]).expect_code(3);
        let line = out
            .stdout
            .lines()
            .find(|l| l.contains("FAILED"))
            .unwrap_or_else(|| panic!("{file}: {}", out.stdout));
        assert!(
            line.contains(stage) && line.contains(detail),
            "{file}: {line}"
        );
        assert!(
            out.stderr.contains(&format!("{stage} failed")),
            "{file}: {}",
            out.stderr
        );
    }
}

#[test]
fn plugin_check_accepts_a_guest_error_as_an_answer_and_says_so() {
    let out = run(&["plugin", "check", &fixture("guest-error")]).expect_code(0);
    assert!(out.stdout.contains("ok     smoke-test"), "{}", out.stdout);
    assert!(
        out.stderr
            .contains("note: busy service: the policy returned an error"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_policy_that_says_too_much_is_cut_to_the_limits_and_check_says_so() {
    // The wall-clock deadline is not this test's subject: moving 12 MiB out
    // of the sandbox can take more than the default 50 ms on a loaded
    // machine, so the budget here is 5 s.
    let slow = ("VEDFOLNIR_PLUGIN_DEADLINE", "5s");
    // One reason of 12 MiB: `evaluate` prints about 1 KiB of it and the mark.
    let out = evaluate_busy_with(&fixture("oversized-output"), &[slow]).expect_code(0);
    assert!(out.stdout.len() < 16 << 10, "{} bytes", out.stdout.len());
    assert!(out.stdout.contains("output-cut"), "{}", out.stdout);
    assert!(
        out.stdout.contains("longest 12582912 bytes"),
        "{}",
        out.stdout
    );
    // The limit is the operator's to set.
    let out = evaluate_busy_with(
        &fixture("oversized-output"),
        &[("VEDFOLNIR_PLUGIN_MAX_REASON_BYTES", "100"), slow],
    )
    .expect_code(0);
    assert!(out.stdout.contains(&"m".repeat(90)), "{}", out.stdout);
    assert!(!out.stdout.contains(&"m".repeat(101)), "{}", out.stdout);
    assert!(out.stdout.contains("100 bytes a message"), "{}", out.stdout);

    let out = run_env(&["plugin", "check", &fixture("oversized-output")], &[slow]).expect_code(0);
    assert!(
        out.stderr
            .contains("note: busy service: the policy's output was cut"),
        "{}",
        out.stderr
    );
}

#[test]
fn plugin_test_runs_the_golden_scenarios_against_the_component() {
    let out = run(&[
        "plugin",
        "test",
        "builtin:threshold-score",
        "plugins/threshold-score/scenarios.toml",
    ])
    .expect_code(0);
    assert!(out.stdout.contains("36 passed, 0 failed"), "{}", out.stdout);
}

#[test]
fn plugin_test_fails_with_4_on_a_wrong_expectation() {
    let (_dir, path) = temp_file(
        "s.toml",
        "[[scenario]]\nname = \"wrong on purpose\"\ninput = { current_replicas = 3, signals = { cpu = [{ value = 0.9, for = \"6m\" }], memory = [{ value = 0.5, for = \"6m\" }] } }\nexpect = { direction = \"down\" }\n",
    );
    let out = run(&[
        "plugin",
        "test",
        "builtin:threshold-score",
        path.to_str().unwrap(),
    ])
    .expect_code(4);
    assert!(
        out.stdout.contains("FAIL  wrong on purpose"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("direction: want down, got up"),
        "{}",
        out.stdout
    );
}

#[test]
fn plugin_list_names_the_builtin_policies() {
    let out = run(&["plugin", "list"]).expect_code(0);
    assert!(
        out.stdout.starts_with("builtin:threshold-score"),
        "{}",
        out.stdout
    );
    for name in ["target-tracking", "predictive", "cost-aware"] {
        assert!(
            out.stdout.contains(&format!("builtin:{name}")),
            "{}",
            out.stdout
        );
    }
}

#[test]
fn reset_clears_cooldowns_keeps_history_and_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::write(
        state.join("vedfolnir.state.json"),
        r#"{"last_scale_up": 1700000000000, "last_scale_down": null, "paused": false}"#,
    )
    .unwrap();
    std::fs::write(
        state.join("vedfolnir.samples.json"),
        r#"{"signals": {"cpu": [[1700000000000, 0.5]]}}"#,
    )
    .unwrap();
    let out = run_env(
        &["reset", "--policy", "policies/vedfolnir.toml"],
        &[("VEDFOLNIR_STATE_DIR", state.to_str().unwrap())],
    )
    .expect_code(0);
    assert!(out.stdout.contains("cooldowns cleared"), "{}", out.stdout);
    assert!(
        out.stdout.contains("last scale-down never"),
        "{}",
        out.stdout
    );
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("vedfolnir.state.json")).unwrap())
            .unwrap();
    assert_eq!(s["last_scale_up"], serde_json::Value::Null);
    assert!(
        std::fs::read_to_string(state.join("vedfolnir.samples.json"))
            .unwrap()
            .contains("0.5")
    );
    let audit = std::fs::read_to_string(state.join("audit.jsonl")).unwrap();
    assert!(audit.contains("\"event\":\"reset\""), "{audit}");
    // An empty state file is not "no cooldowns": it is moved aside, named,
    // and the state rebuilt from the audit.
    std::fs::write(state.join("vedfolnir.state.json"), "").unwrap();
    let out = run_env(
        &["reset", "--policy", "policies/vedfolnir.toml"],
        &[("VEDFOLNIR_STATE_DIR", state.to_str().unwrap())],
    )
    .expect_code(0);
    assert!(
        out.stderr
            .contains("vedfolnir.state.json was empty; moved to")
            && out.stderr.contains("rebuilt from 1 audit record(s)"),
        "{}",
        out.stderr
    );
}

#[test]
fn reset_names_a_state_directory_that_is_not_there_and_leaves_none_behind() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("vedfolnir-autoscler");
    let out = run_env(
        &["reset", "--policy", "policies/vedfolnir.toml"],
        &[("VEDFOLNIR_STATE_DIR", typo.to_str().unwrap())],
    )
    .expect_code(2);
    assert!(
        out.stderr
            .contains(&format!("no state directory at {}", typo.display()))
            && out.stderr.contains("is --state-dir the daemon's?"),
        "{}",
        out.stderr
    );
    assert!(!typo.exists(), "reset created {}", typo.display());
}

/// `run` with `args`, a state directory, and the example policy unless
/// `--policies` is given; expected to exit at once.
fn run_daemon(state: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> crate::util::Output {
    let mut all = vec!["run", "--listen", "127.0.0.1:0"];
    all.extend(args);
    let mut env = env.to_vec();
    env.push(("VEDFOLNIR_STATE_DIR", state.to_str().unwrap()));
    run_env(&all, &env)
}

#[test]
fn the_daemon_refuses_a_missing_policies_folder_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-folder");
    let out = run_daemon(
        &dir.path().join("state"),
        &["--policies", missing.to_str().unwrap()],
        &[],
    )
    .expect_code(2);
    assert!(
        out.stderr.contains(&format!(
            "{}: no such policy file or folder",
            missing.display()
        )),
        "{}",
        out.stderr
    );
}

#[test]
fn the_daemon_refuses_to_start_without_a_writable_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // The audit log's place is taken by a folder: it cannot be appended to.
    std::fs::create_dir_all(state.join("audit.jsonl")).unwrap();
    let out = run_daemon(&state, &["--policies", POLICY], &[]).expect_code(1);
    assert!(
        out.stderr.contains("cannot write the audit log")
            && out
                .stderr
                .contains("audit.jsonl: refusing to act without one"),
        "{}",
        out.stderr
    );
}

#[test]
fn the_daemon_refuses_to_start_in_a_state_folder_it_cannot_write() {
    // As nobody, in a folder only root may write to.
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let policy = dir.path().join("p.toml");
    std::fs::copy(crate::util::root().join(POLICY), &policy).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_vedfolnir-autoscaler"))
        .args(["run", "--listen", "127.0.0.1:0", "--policies"])
        .arg(&policy)
        .env("VEDFOLNIR_STATE_DIR", &state)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("setpriv: setresuid failed") {
        eprintln!("not root: cannot become nobody; not run");
        return;
    }
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot write the audit log {}/audit.jsonl",
            state.display()
        )) && stderr.contains("Permission denied"),
        "{stderr}"
    );
}

#[test]
fn a_short_or_empty_api_token_is_refused_naming_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "\n").unwrap();
    let state = dir.path().join("state");
    let out = run_daemon(
        &state,
        &[
            "--policies",
            POLICY,
            "--api-token-file",
            token.to_str().unwrap(),
        ],
        &[],
    )
    .expect_code(2);
    assert!(
        out.stderr
            .contains(&format!("the API token in {} is empty", token.display())),
        "{}",
        out.stderr
    );
    let out = run_daemon(
        &state,
        &["--policies", POLICY],
        &[("VEDFOLNIR_API_TOKEN", "short")],
    )
    .expect_code(2);
    assert!(
        out.stderr
            .contains("VEDFOLNIR_API_TOKEN is only 5 characters"),
        "{}",
        out.stderr
    );
}

/// A daemon on the example policy with no engine to reach: it holds the
/// service's lock and waits. The state directory is given with `run`'s
/// `--state-dir` flag (after the global `--log`, so the command is not the
/// first argument), or in the environment.
fn lock_holder(state: &std::path::Path, flag: bool) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vedfolnir-autoscaler"));
    cmd.current_dir(crate::util::root());
    if flag {
        cmd.args(["--log", "warn", "run", "--state-dir"])
            .arg(state)
            .env_remove("VEDFOLNIR_STATE_DIR");
    } else {
        cmd.arg("run").env("VEDFOLNIR_STATE_DIR", state);
    }
    let mut child = cmd
        .args(["--listen", "127.0.0.1:0", "--policies", POLICY])
        .env("DOCKER_HOST", "unix:///nonexistent.sock")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let started = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("service(s)"))
        .unwrap();
    // Keep reading what it prints: a closed pipe would fail its next line.
    std::thread::spawn(move || lines.for_each(drop));
    (child, started)
}

/// SIGTERM, and a clean exit.
fn stop(mut child: std::process::Child) {
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_second_daemon_for_the_same_service_says_who_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (first, started) = lock_holder(&state, false);
    assert!(started.contains("1 service(s)"), "{started}");
    let out = run_daemon(&state, &["--policies", POLICY], &[]).expect_code(9);
    assert!(
        out.stderr.contains(&format!("pid {} (run)", first.id()))
            && out.stderr.contains("vedfolnir.lock"),
        "{}",
        out.stderr
    );
    // A cron `check` is refused the same way, pointing at the daemon's API.
    let out = run_env(
        &["check", "--policy", POLICY],
        &[("VEDFOLNIR_STATE_DIR", state.to_str().unwrap())],
    )
    .expect_code(9);
    assert!(
        out.stderr.contains("POST /api/v1/services/"),
        "{}",
        out.stderr
    );
    stop(first);
}

#[test]
fn the_systemd_unit_verifies_without_a_warning() {
    let have = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true, and systemd-analyze is missing"
        );
        eprintln!("systemd-analyze is not installed; the unit is not verified");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(
        crate::util::root().join("deploy/systemd/vedfolnir-autoscaler.service"),
    )
    .unwrap()
    .replace(
        "/usr/local/bin/vedfolnir-autoscaler",
        env!("CARGO_BIN_EXE_vedfolnir-autoscaler"),
    );
    let path = dir.path().join("vedfolnir-autoscaler.service");
    std::fs::write(&path, unit).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", path.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Unknown keys are only warnings: any output is a failure here.
    assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");
}

/// Regression (the engine issue): the lock named `(--state-dir)` as its
/// holder when the daemon was started with a global flag before `run`.
#[test]
fn the_lock_names_the_command_run_whatever_flags_come_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (first, _) = lock_holder(&state, true);
    let out = run_env(
        &["scale-up", "--policy", POLICY],
        &[("VEDFOLNIR_STATE_DIR", state.to_str().unwrap())],
    )
    .expect_code(9);
    assert!(
        out.stderr.contains(&format!("pid {} (run)", first.id())),
        "{}",
        out.stderr
    );
    stop(first);
}

/// The help of a subcommand.
fn help(args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.push("--help");
    run(&all).expect_code(0).stdout
}

#[test]
fn each_subcommand_lists_only_the_flags_it_uses_with_an_example() {
    let simulate = help(&["simulate"]);
    for absent in ["--dry-run", "--webhook-url", "--api-token"] {
        assert!(
            !simulate.contains(absent),
            "simulate --help lists {absent}:\n{simulate}"
        );
    }
    // Where a service's own record is read: under --history's heading only.
    let (before, history) = simulate
        .split_once("A service's own load (--history):")
        .unwrap_or_else(|| panic!("no --history heading:\n{simulate}"));
    for flag in ["--state-dir", "--prometheus-url", "--from"] {
        assert!(
            history.contains(flag) && !before.contains(flag),
            "{flag}:\n{simulate}"
        );
    }
    assert!(simulate.contains("--plugin-memory-mib") && simulate.contains("Examples:"));
    let check = help(&["check"]);
    for present in [
        "--state-dir",
        "--prometheus-url",
        "--dry-run",
        "--plugin-deadline",
        "Example",
    ] {
        assert!(
            check.contains(present),
            "check --help lacks {present}:\n{check}"
        );
    }
    let health = help(&["health"]);
    assert!(
        !health.contains("--state-dir") && health.contains("--prometheus-url"),
        "{health}"
    );
    let load = help(&["load"]);
    assert!(
        load.contains("--rate") && !load.contains("--plugin-deadline"),
        "{load}"
    );
    let limits = help(&["limits"]);
    assert!(
        !limits.contains("--state-dir") && limits.contains("Example"),
        "{limits}"
    );
    let validate = help(&["validate"]);
    assert!(
        !validate.contains("--state-dir") && !validate.contains("--prometheus"),
        "{validate}"
    );
}

/// A path that never ends (`/dev/zero`) or blocks (a named pipe), given as
/// a policy file, its plugin, a component or a trace, is refused at once
/// naming it, not read until memory runs out.
#[test]
fn a_path_that_never_ends_or_blocks_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("zero.toml");
    std::fs::write(&policy, "service = \"web\"\nplugin = \"/dev/zero\"\n").unwrap();
    let fifo = dir.path().join("pipe.toml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let (p, f) = (policy.to_str().unwrap(), fifo.to_str().unwrap());
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    for (args, code, says) in [
        (vec!["validate", p], 3, "plugin: /dev/zero: read failed"),
        (
            vec!["validate", f],
            2,
            "pipe.toml: cannot read: not a regular file",
        ),
        (
            vec!["plugin", "check", "/dev/zero"],
            3,
            "not a regular file",
        ),
        (
            vec!["simulate", "--trace", "/dev/zero"],
            2,
            "/dev/zero: cannot read: not a regular file",
        ),
        (
            vec!["run", "--policies", p, "--dry-run", "--state-dir", state],
            3,
            "plugin: /dev/zero: read failed",
        ),
    ] {
        // `timeout` ends a run that waits: exit 124, not a hung test.
        let out = run_within(60, &args).expect_code(code);
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("not a regular file"),
            "{args:?}: {}",
            out.stderr
        );
    }
}

/// An interval of 0 would start loops that cannot wait between passes: it
/// is refused before anything starts, from the flag or the environment.
#[test]
fn run_refuses_an_interval_of_0() {
    let out = run(&["run", "--policies", POLICY, "--interval", "0s"]).expect_code(2);
    assert!(
        out.stderr
            .contains("invalid value '0s' for '--interval <INTERVAL>': must be longer than 0"),
        "{}",
        out.stderr
    );
    let out = run_env(
        &["run", "--policies", POLICY],
        &[("VEDFOLNIR_INTERVAL", "0ms")],
    )
    .expect_code(2);
    assert!(
        out.stderr.contains("must be longer than 0"),
        "{}",
        out.stderr
    );
}

#[test]
fn completions_are_made_for_each_shell_from_the_same_commands() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run(&["completions", shell]).expect_code(0);
        // fish names a long flag without its dashes (`-l policy`).
        let flag = |f: &str| match shell {
            "fish" => format!("-l {f}"),
            _ => format!("--{f}"),
        };
        for word in [
            "status".into(),
            "scale-up".into(),
            flag("policy"),
            flag("state-dir"),
        ] {
            assert!(out.stdout.contains(&word), "{shell} lacks {word}");
        }
    }
    // The bash script parses.
    let (_dir, script) = temp_file(
        "vedfolnir-autoscaler.bash",
        &run(&["completions", "bash"]).expect_code(0).stdout,
    );
    let parsed = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        parsed.status.success(),
        "{}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    let out = run(&["completions", "tcsh"]).expect_code(2);
    assert!(out.stderr.contains("possible values"), "{}", out.stderr);
}

#[test]
fn the_install_script_puts_the_binary_manual_pages_completions_and_unit_in_place() {
    let dest = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(crate::util::root().join("deploy/install.sh"))
        .env("BIN", env!("CARGO_BIN_EXE_vedfolnir-autoscaler"))
        .env("DESTDIR", dest.path())
        .env("PREFIX", "/usr")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let at = |p: &str| dest.path().join(p.trim_start_matches('/'));
    let man = at("/usr/share/man/man1");
    for command in ["", "-run", "-status", "-plugin-new"] {
        let page = std::fs::read_to_string(man.join(format!("vedfolnir-autoscaler{command}.1")))
            .unwrap_or_else(|e| panic!("vedfolnir-autoscaler{command}.1: {e}"));
        assert!(page.starts_with(".ie") || page.contains(".TH"), "{page}");
    }
    let status = std::fs::read_to_string(man.join("vedfolnir-autoscaler-status.1")).unwrap();
    assert!(status.contains("VEDFOLNIR_URL"), "{status}");
    for file in [
        "/usr/bin/vedfolnir-autoscaler",
        "/usr/share/bash-completion/completions/vedfolnir-autoscaler",
        "/usr/share/zsh/site-functions/_vedfolnir-autoscaler",
        "/usr/share/fish/vendor_completions.d/vedfolnir-autoscaler.fish",
        "/usr/share/doc/vedfolnir-autoscaler/operations.md",
    ] {
        assert!(at(file).is_file(), "{file} not installed");
    }
    // The unit runs the binary where it was put.
    let unit =
        std::fs::read_to_string(at("/etc/systemd/system/vedfolnir-autoscaler.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/bin/vedfolnir-autoscaler run")
            && unit.contains("file:///usr/share/doc/vedfolnir-autoscaler/operations.md"),
        "{unit}"
    );
    // `man` renders the page where it is installed.
    if let Ok(rendered) = std::process::Command::new("man")
        .arg("-l")
        .arg(man.join("vedfolnir-autoscaler-status.1"))
        .env("MANWIDTH", "80")
        .output()
    {
        let text = String::from_utf8_lossy(&rendered.stdout);
        assert!(
            rendered.status.success() && text.contains("SYNOPSIS"),
            "{text}"
        );
    }
}
