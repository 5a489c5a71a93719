//! Two daemons on one Swarm (a one-node swarm; two daemons on one node
//! stand in for two managers): one leads and acts, the other stands by;
//! the standby takes over when the leader dies, and a leader that was
//! stopped past its lease writes nothing when it wakes.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::daemon::{Daemon, free_port, request};
use crate::docker::{Swarm, docker, engine};

const TOKEN: &str = "a-token-of-twenty-chars";

/// The lease made short so the test is quick: a standby takes a silent
/// lease after 4 s; the leader renews every second.
const LEASE: [(&str, &str); 2] = [
    ("VEDFOLNIR_LEASE_DURATION", "4s"),
    ("VEDFOLNIR_LEASE_RENEW", "1s"),
];

fn daemon(swarm: &Swarm, state: &Path, policy: &Path) -> Daemon {
    Daemon::spawn_in(
        state,
        policy,
        free_port(),
        &["--interval", "1s"],
        &[
            ("VEDFOLNIR_API_TOKEN", TOKEN),
            ("VEDFOLNIR_LEASE_NAME", &swarm.lease),
            LEASE[0],
            LEASE[1],
        ],
    )
}

/// The audit records of a state directory with `event`.
fn events(state: &Path, event: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(state.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["event"] == event)
        .collect()
}

/// Wait until one of `daemons` says it took the lease; its index and when.
fn leader(daemons: &mut [&mut Daemon], epoch: u64, limit: Duration) -> (usize, Instant) {
    let wanted = format!("took it at epoch {epoch}");
    let deadline = Instant::now() + limit;
    loop {
        for (i, d) in daemons.iter_mut().enumerate() {
            if let Some((at, _)) = d
                .lines_so_far(Duration::from_millis(50))
                .into_iter()
                .find(|(_, l)| l.contains(&wanted))
            {
                return (i, at);
            }
        }
        assert!(Instant::now() < deadline, "no daemon took epoch {epoch}");
    }
}

#[test]
fn one_of_two_daemons_acts_the_other_takes_over_and_a_woken_leader_writes_nothing() {
    if !engine() {
        return;
    }
    let swarm = Swarm::up("vtha", 1);
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("ha.toml");
    // Below its minimum of 2: whoever leads restores the bound at once.
    std::fs::write(
        &policy,
        format!(
            "service = \"{}\"\nplugin = \"builtin:threshold-score\"\nmin_replicas = 2\nmax_replicas = 4\n[target]\nkind = \"swarm\"\n[rollout]\nmonitor = \"60s\"\n",
            swarm.service
        ),
    )
    .unwrap();
    let (sa, sb) = (dir.path().join("a"), dir.path().join("b"));
    let mut a = daemon(&swarm, &sa, &policy);
    let mut b = daemon(&swarm, &sb, &policy);

    // Exactly one leads and acts.
    let (first, _) = leader(&mut [&mut a, &mut b], 1, Duration::from_secs(30));
    let (lead, lead_dir, stand, stand_dir) = if first == 0 {
        (a, &sa, b, &sb)
    } else {
        (b, &sb, a, &sa)
    };
    swarm.wait_for("2/2", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(events(lead_dir, "scale-finished").len(), 1);
    assert!(events(stand_dir, "scale-started").is_empty());
    assert_eq!(events(lead_dir, "takeover").len(), 1);
    assert_eq!(
        swarm.label("io.vedfolnir.autoscaler.epoch").as_deref(),
        Some("1")
    );
    // The standby shows who leads, and sends a manual scale there.
    let status = stand.status();
    assert_eq!(status["lease"]["role"], "standby", "{status}");
    assert_eq!(
        status["lease"]["holder"]["listen"],
        format!("http://{}", lead.listen)
    );
    let (code, body) = request(
        &stand.listen,
        "POST",
        &format!("/api/v1/services/{}/scale", swarm.service),
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        r#"{"replicas": 3}"#,
    );
    assert_eq!(code, 409, "{body}");
    assert!(body.contains(&lead.listen), "{body}");
    let m = stand.metrics();
    let gauge = |v: u8| {
        format!(
            "vedfolnir_autoscaler_leader{{lease=\"{}\"}} {v}",
            swarm.lease
        )
    };
    assert!(m.contains(&gauge(0)), "{m}");
    assert!(lead.metrics().contains(&gauge(1)));
    // A command line's scale while a daemon leads: refused, naming it, and
    // nothing written.
    let out = crate::util::run_env(
        &["scale-up", "3", "--policy", policy.to_str().unwrap()],
        &[
            (
                "VEDFOLNIR_STATE_DIR",
                dir.path().join("cli").to_str().unwrap(),
            ),
            ("VEDFOLNIR_LEASE_NAME", &swarm.lease),
            LEASE[0],
            LEASE[1],
        ],
    )
    .expect_code(9);
    assert!(out.stderr.contains(&lead.listen), "{}", out.stderr);
    assert_eq!(crate::docker::swarm_replicas(&swarm.service), "2/2");

    // The leader dies; the service drops to 1 meanwhile: the standby takes
    // over within the lease and a look, and restores it.
    let mut lead = lead;
    let killed = Instant::now();
    lead.child.kill().unwrap();
    let _ = lead.child.wait();
    docker(&["service", "scale", "-d", &format!("{}=1", swarm.service)]).expect_code(0);
    let mut stand = stand;
    let (_, took) = leader(&mut [&mut stand], 2, Duration::from_secs(30));
    let failover = took.duration_since(killed);
    assert!(failover < Duration::from_secs(10), "{failover:?}");
    swarm.wait_for("2/2", Duration::from_secs(60));
    assert_eq!(
        swarm.label("io.vedfolnir.autoscaler.epoch").as_deref(),
        Some("2")
    );
    assert_eq!(events(stand_dir, "scale-finished").len(), 1);

    // The old leader comes back: it stands by.
    drop(lead);
    let mut back = daemon(&swarm, lead_dir, &policy);
    back.expect_line("standby", Duration::from_secs(20));
    let started_before = events(lead_dir, "scale-started").len();

    // The leader stops (SIGSTOP) past its lease: the other takes over and
    // scales; woken, the stopped one writes nothing and says it lost.
    stand.signal("STOP");
    let (_, _) = leader(&mut [&mut back], 3, Duration::from_secs(30));
    docker(&["service", "scale", "-d", &format!("{}=1", swarm.service)]).expect_code(0);
    swarm.wait_for("2/2", Duration::from_secs(60));
    assert_eq!(
        swarm.label("io.vedfolnir.autoscaler.epoch").as_deref(),
        Some("3")
    );
    let stand_scales = events(stand_dir, "scale-started").len();
    stand.signal("CONT");
    stand.expect_line("lost it (epoch 2)", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(events(stand_dir, "scale-started").len(), stand_scales);
    assert_eq!(events(stand_dir, "lease-lost").len(), 1);
    assert_eq!(
        swarm.label("io.vedfolnir.autoscaler.epoch").as_deref(),
        Some("3")
    );
    assert_eq!(events(lead_dir, "scale-started").len(), started_before + 1);
    drop(stand);
    drop(back);
    drop(swarm);
}
