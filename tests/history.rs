//! `simulate --history` on the real engine: the workload runs under the
//! daemon through a known load ramp (5, 30, then 5 requests a second, each
//! request burning 20 ms of CPU), and a replay of the service's own record
//! with its own policy follows the replicas the daemon ran, on a trace that
//! matches the load sent.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::daemon::{Daemon, free_port};
use crate::docker::{Project, engine, http_get, image};
use crate::util::run;

/// The workload's p95 and error rate, from each replica's /metrics.
const SCRAPED: &str = r#"[signals.response-time-p95]
source = "scrape"
metric = "vedfolnir_request_duration_seconds"
[signals.error-rate]
source = "scrape"
metric = "vedfolnir_errors_total"
total = "vedfolnir_requests_total"
[scrape]
port = 8080
"#;

/// The load of each whole minute, requests a second.
const RAMP: [u32; 5] = [5, 30, 30, 5, 5];

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Sleep until `at` (ms since the epoch).
fn sleep_until(at: i64) {
    let wait = at - now_ms();
    if wait > 0 {
        std::thread::sleep(Duration::from_millis(wait as u64));
    }
}

/// The policy: the request rate recorded beside what threshold-score
/// reads; CPU above 20% of the (2-CPU) limit for 20 s scales up, below 8%
/// for 30 s down.
fn policy(p: &Project) -> std::path::PathBuf {
    let path = p.policy_path();
    std::fs::write(
        &path,
        format!(
            r#"service = "vedfolnir"
plugin = "builtin:threshold-score"
min_replicas = 1
max_replicas = 4
[cooldown]
up = "20s"
down = "30s"
[step]
max_up = 1
max_down = 1
[target]
project = "{}"
[rollout]
monitor = "20s"
stop_timeout = "5s"
[signals.cpu]
source = "docker"
[signals.memory]
source = "docker"
[signals.requests-per-second]
source = "scrape"
metric = "vedfolnir_requests_total"
[signals.queue-depth]
source = "scrape"
metric = "vedfolnir_queue_depth"
{SCRAPED}[params.cpu-high]
threshold = 0.2
for = "20s"
[params.cpu-low]
threshold = 0.08
for = "30s"
[params.memory-low]
for = "30s"
[params.queue-low]
for = "30s"
[params.latency-low]
for = "30s"
[params.decision]
down-score = 6
[params.missing]
queue-depth = "ignore"
scaling-alerts = "ignore"
"#,
            p.name
        ),
    )
    .unwrap();
    path
}

#[test]
fn a_replay_of_the_services_own_record_follows_the_daemon_and_the_load_sent() {
    if !engine() {
        return;
    }
    let p = Project::up("history", 1, image());
    let policy = policy(&p);
    let mut daemon = Daemon::spawn(&p, &policy, free_port(), &["--interval", "2s"], &[]);
    daemon.expect_line("vedfolnir: ", Duration::from_secs(30));

    // Each minute of the ramp from a minute's start, as a `load` of 59 s.
    let first = (now_ms() / 60_000 + 1) * 60_000;
    let mut sent = Vec::new();
    for (i, rate) in RAMP.iter().enumerate() {
        sleep_until(first + i as i64 * 60_000 + 200);
        let out = p
            .cli(&[
                "load",
                "--rate",
                &rate.to_string(),
                "--duration",
                "59s",
                "--path",
                "/burn?ms=20",
                "--json",
            ])
            .expect_code(0);
        let summary: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        // Requests to a replica a scale-down stopped fail (`load` sends to
        // the replicas ready when it started): the load is what was served.
        sent.push(summary["served"].as_f64().unwrap());
    }
    // The last minute is written by the first pass after it.
    sleep_until(first + RAMP.len() as i64 * 60_000 + 5_000);
    let state = p.state_dir();
    let out = run(&[
        "simulate",
        "--history",
        "vedfolnir",
        "--from",
        "30m",
        "--state-dir",
        state.to_str().unwrap(),
        "--policies",
        policy.to_str().unwrap(),
        "--json",
    ])
    .expect_code(0);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let h = &report["history"];
    let c = &h["calibration"];
    // 20 ms of CPU a request on a 2-CPU limit: 100 requests a second (more
    // where a busy machine lets a burn use less CPU than its 20 ms).
    let capacity = c["capacity"].as_f64().expect("calibrated, not the default");
    assert!((50.0..=250.0).contains(&capacity), "{c}");
    assert!(c["capacity_minutes"].as_u64().unwrap() >= 2, "{c}");
    assert_eq!(c["interval_ms"], 2000, "{c}");
    assert!(c["startup_scales"].as_u64().unwrap() >= 1, "{c}");

    // The derived trace is the load sent, within 5% each minute.
    let from = h["from_ms"].as_i64().unwrap();
    let load: Vec<f64> = serde_json::from_value(h["load"].clone()).unwrap();
    for (i, sent) in sent.iter().enumerate() {
        let k = ((first - from) / 60_000) as usize + i;
        let expected = sent / 60.0;
        assert!(
            (load[k] - expected).abs() <= 0.05 * expected,
            "minute {i} of the ramp: the record says {:.2} req/s, {sent} were served ({expected:.2}/s): {load:?}",
            load[k]
        );
    }

    // The daemon scaled up under 30/s and back down after it; the replay of
    // its own policy is within one replica of it at every minute.
    let recorded: Vec<Option<f64>> =
        serde_json::from_value(h["recorded_replicas"].clone()).unwrap();
    let peak = recorded.iter().flatten().copied().fold(0.0, f64::max);
    assert!(peak >= 1.5, "the daemon scaled up: {recorded:?}");
    assert!(
        recorded.last().unwrap().unwrap() < peak - 0.5,
        "and back down: {recorded:?}"
    );
    let row = &report["results"][0];
    eprintln!(
        "calibration {c}\nserved per minute {sent:?}\nrecord {load:?}\nrecorded replicas {recorded:?}\nreplayed {}",
        row["replicas_by_minute"]
    );
    assert_eq!(
        row["policy"], "policy",
        "the current policy is replayed first"
    );
    let replayed: Vec<f64> = serde_json::from_value(row["replicas_by_minute"].clone()).unwrap();
    assert_eq!(replayed.len(), recorded.len());
    assert!(
        replayed.iter().copied().fold(0.0, f64::max) >= 1.5,
        "the replay scaled up too: {replayed:?}"
    );
    for (k, (rec, rep)) in recorded.iter().zip(&replayed).enumerate() {
        if let Some(rec) = rec {
            assert!(
                (rec - rep).abs() <= 1.0,
                "minute {k}: the daemon ran {rec:.2} replicas, the replay {rep:.2}\nrecorded {recorded:?}\nreplayed {replayed:?}"
            );
        }
    }

    // The status page links the replay of the last day, which the daemon
    // draws from the same record.
    let port = daemon.port();
    let page = http_get(&port, "/").unwrap();
    assert!(page.contains("href=\"/replay/vedfolnir\""), "{page}");
    let chart = http_get(&port, "/replay/vedfolnir").unwrap();
    assert!(
        chart.lines().next().unwrap().ends_with(" 200 OK"),
        "{chart}"
    );
    assert!(
        chart.contains("image/svg+xml") && chart.contains("<svg"),
        "{chart}"
    );
    let unknown = http_get(&port, "/replay/other").unwrap();
    assert!(
        unknown.lines().next().unwrap().contains(" 404 "),
        "{unknown}"
    );
}

/// The `[slo]` of a policy file makes each pass record whether the SLO
/// held, and cost-aware counts its error budget on it: through the real
/// engine and the workload's own p95 (each request burns 5 ms; the SLO
/// asks 1 ms), the budget's spent minutes rise pass by pass.
#[test]
fn a_cost_aware_policy_spends_its_error_budget_on_the_slo_the_file_states() {
    if !engine() {
        return;
    }
    let p = Project::up("budget", 2, image());
    std::fs::write(
        p.policy_path(),
        format!(
            r#"service = "vedfolnir"
plugin = "builtin:cost-aware"
min_replicas = 2
max_replicas = 4
[target]
project = "{}"
[slo]
p95 = "1ms"
[signals.cpu]
source = "docker"
{SCRAPED}"#,
            p.name
        ),
    )
    .unwrap();
    let spent = |stdout: &str| -> Option<f64> {
        let i = stdout.find(" of 30 SLO-violation minutes spent")?;
        let before = &stdout[..i];
        let start = before.rfind(|c: char| !(c.is_ascii_digit() || c == '.'))? + 1;
        before[start..].parse().ok()
    };
    let passes = std::thread::scope(|s| {
        let load = s.spawn(|| {
            p.cli(&[
                "load",
                "--rate",
                "20",
                "--duration",
                "12s",
                "--path",
                "/burn?ms=5",
            ])
            .expect_code(0)
        });
        std::thread::sleep(Duration::from_secs(1));
        let passes: Vec<String> = (0..4)
            .map(|_| {
                std::thread::sleep(Duration::from_millis(1500));
                p.cli(&["check", "--dry-run", "--json"])
                    .expect_code(0)
                    .stdout
            })
            .collect();
        load.join().unwrap();
        passes
    });
    let counted: Vec<Option<f64>> = passes.iter().map(|o| spent(o)).collect();
    assert!(
        counted.iter().all(Option::is_some),
        "every pass counts the budget: {counted:?}\n{}",
        passes[0]
    );
    assert!(
        counted.last().unwrap().unwrap() > 0.0,
        "p95 past the SLO spends the budget: {counted:?}\n{}",
        passes[3]
    );
    assert!(!passes.iter().any(|o| o.contains("budget-unknown")));
}
