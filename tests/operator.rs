//! The seed's test script as commands, on the real engine: `load` sends
//! requests that really reach the application (its own counters rise by
//! what was sent), `limits` really compares (a replica changed with
//! `docker update` is named), and both fail clearly on bad input.

use std::time::Duration;

use crate::docker::{Project, cmd, engine, http_get, image, published_port};
use crate::util::run;

/// The workload's own count of requests served.
fn requests_served(container: &str) -> u64 {
    let page = http_get(&published_port(container), "/metrics").unwrap();
    page.lines()
        .find_map(|l| l.strip_prefix("vedfolnir_requests_total "))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn load_reaches_every_ready_replica_and_their_counters_rise_by_what_was_sent() {
    if !engine() {
        return;
    }
    let p = Project::up("load", 2, image());
    let replicas = p.running("vedfolnir");
    let before: Vec<u64> = replicas.iter().map(|r| requests_served(r)).collect();

    let out = p
        .cli(&["load", "--rate", "40", "--duration", "2s", "--json"])
        .expect_code(0);
    let summary: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let sent = summary["sent"].as_u64().unwrap();
    assert!(
        (70..=90).contains(&sent),
        "40/s for 2 s sent {sent}: {summary}"
    );
    assert_eq!(summary["served"].as_u64(), Some(sent), "{summary}");
    assert_eq!(summary["failed"].as_u64(), Some(0), "{summary}");
    assert!(summary["latency_ms"]["p99"].as_f64().unwrap() > 0.0);

    // Round-robin: each replica got half, and counted every request.
    let per: Vec<u64> = summary["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["served"].as_u64().unwrap())
        .collect();
    assert_eq!(per.len(), 2, "{summary}");
    assert!(per.iter().all(|n| n.abs_diff(sent / 2) <= 1), "{per:?}");
    let after: Vec<u64> = replicas.iter().map(|r| requests_served(r)).collect();
    let rise: u64 = after.iter().zip(&before).map(|(a, b)| a - b).sum();
    assert_eq!(rise, sent, "the workload counted {rise} of {sent} requests");
}

/// A run started the moment the only replica restarts (its health check
/// not yet passed: not ready) waits for it, up to `READY_WAIT`, rather
/// than refusing: a service just brought up is loaded, not reported
/// empty.
#[test]
fn load_started_while_the_replica_is_not_yet_ready_waits_for_it() {
    if !engine() {
        return;
    }
    let p = Project::up("loadwait", 1, image());
    let replica = p.running("vedfolnir").remove(0);
    cmd("docker", &["restart", "-t", "1", &replica], &[]).expect_code(0);
    let out = p
        .cli(&["load", "--rate", "20", "--duration", "1s", "--json"])
        .expect_code(0);
    let summary: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(summary["served"].as_u64().unwrap() > 0, "{summary}");
}

#[test]
fn load_counts_a_replica_that_dies_mid_run_as_failures_and_ends_on_time() {
    if !engine() {
        return;
    }
    let p = Project::up("loaddie", 2, image());
    let victim = p.running("vedfolnir").remove(0);
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1200));
        cmd("docker", &["kill", &victim], &[]).expect_code(0);
        victim
    });
    let watch = std::time::Instant::now();
    let out = p
        .cli(&[
            "load",
            "--rate",
            "50",
            "--duration",
            "4s",
            "--timeout",
            "1s",
            "--json",
        ])
        .expect_code(0);
    let took = watch.elapsed();
    let victim = killer.join().unwrap();
    let summary: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let (sent, served, failed) = (
        summary["sent"].as_u64().unwrap(),
        summary["served"].as_u64().unwrap(),
        summary["failed"].as_u64().unwrap(),
    );
    assert_eq!(sent, served + failed, "{summary}");
    assert!(
        failed > 0,
        "the killed replica's requests failed: {summary}"
    );
    // Once the list is read again, the survivor gets everything.
    let survivor = summary["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] != victim.as_str())
        .unwrap();
    assert_eq!(survivor["failed"].as_u64(), Some(0), "{summary}");
    assert!(
        took < Duration::from_secs(12),
        "4 s of load took {took:?}: {summary}"
    );
}

#[test]
fn load_against_nothing_listening_fails_every_request_and_says_so() {
    // Port 9 (discard) on loopback: nothing listens in a test machine.
    let out = run(&[
        "load",
        "--url",
        "http://127.0.0.1:9/",
        "--rate",
        "20",
        "--duration",
        "1s",
    ])
    .expect_code(1);
    assert!(
        out.stdout.contains("connection refused") && out.stdout.contains("0 served"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("no request was served"),
        "{}",
        out.stderr
    );
    let unbounded = run(&["load", "--url", "http://127.0.0.1:9/", "--duration", "1s"]);
    assert_eq!(unbounded.code, 2, "{}", unbounded.stderr);
    assert!(unbounded.stderr.contains("--rate"), "{}", unbounded.stderr);
}

#[test]
fn limits_passes_on_the_compose_table_and_names_a_replica_changed_behind_its_back() {
    if !engine() {
        return;
    }
    let p = Project::up("limits", 2, image());
    let out = p.cli(&["limits"]).expect_code(0);
    assert_eq!(out.stdout.matches("ok ").count(), 2, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("cpus 2, memory 2G, pids 1000, memory reservation 1G"),
        "{}",
        out.stdout
    );

    let changed = p.running("vedfolnir").remove(1);
    cmd(
        "docker",
        &["update", "--cpus", "1.5", "--pids-limit", "200", &changed],
        &[],
    )
    .expect_code(0);
    let out = p.cli(&["limits", "--json"]).expect_code(10);
    let rows: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let bad: Vec<(String, String, String, String)> = rows
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r["mismatches"].as_array().unwrap().iter().map(move |m| {
                (
                    r["container"].as_str().unwrap().to_string(),
                    m["field"].as_str().unwrap().to_string(),
                    m["expected"].as_str().unwrap().to_string(),
                    m["actual"].as_str().unwrap().to_string(),
                )
            })
        })
        .collect();
    let s = |x: &str| x.to_string();
    assert_eq!(
        bad,
        vec![
            (changed.clone(), s("cpus"), s("2"), s("1.5")),
            (changed.clone(), s("pids"), s("1000"), s("200")),
        ]
    );
    assert!(
        out.stderr.contains("2 resource setting(s) differ"),
        "{}",
        out.stderr
    );
}

#[test]
fn limits_on_a_service_with_no_replica_is_a_clear_error() {
    if !engine() {
        return;
    }
    let p = Project::up("limitsnone", 1, image());
    p.compose(&["stop", "-t", "1", "vedfolnir"]).expect_code(0);
    let out = p.cli(&["limits"]);
    assert_eq!(out.code, 6, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("none running"), "{}", out.stderr);
}

#[test]
fn the_deployment_bundle_validates_and_the_app_it_runs_here_passes_limits() {
    if !engine() {
        return;
    }
    // Declared first, dropped last: no swarm is left while it runs.
    let _networks = crate::docker::networks_in_use();
    let file = crate::util::root().join("deploy/compose/compose.yml");
    let file = file.to_str().unwrap();
    let project = format!("vtbundle{}", std::process::id());
    let env = [("DOCKER_GID", "999"), ("VEDFOLNIR_IMAGE", image())];
    let compose = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["-p", project.as_str(), "-f", file];
        all.extend_from_slice(args);
        cmd("docker-compose", &all, env)
    };
    compose(&["config", "-q"], &env).expect_code(0);
    let unset = compose(&["config", "-q"], &[]);
    assert_ne!(unset.code, 0);
    assert!(unset.stderr.contains("DOCKER_GID"), "{}", unset.stderr);

    // What can run here: the application (the workload stands in for it),
    // two replicas, with the bundle's table.
    struct Down(String, String);
    impl Drop for Down {
        fn drop(&mut self) {
            let args = ["-p", &self.0, "-f", &self.1, "down", "-t", "1"];
            let _ = cmd("docker-compose", &args, &[("DOCKER_GID", "999")]);
        }
    }
    let _down = Down(project.clone(), file.to_string());
    compose(
        &[
            "up",
            "-d",
            "--no-deps",
            "--scale",
            "vedfolnir=2",
            "vedfolnir",
        ],
        &env,
    )
    .expect_code(0);
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "service = \"vedfolnir\"\nplugin = \"builtin:threshold-score\"\n[target]\nproject = \"{project}\"\n"
        ),
    )
    .unwrap();
    let out = crate::util::run_env(
        &["limits", "--policy", policy.to_str().unwrap()],
        &[("DOCKER_GID", "999")],
    );
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.stdout.matches("ok ").count(), 2, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("cpus 2, memory 2G, pids 1000, memory reservation 1G"),
        "{}",
        out.stdout
    );
}
