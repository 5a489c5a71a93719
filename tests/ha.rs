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

/// The chaos series' lease: [`LEASE`], or the daemon's defaults (10 s,
/// renewed every 3 s) with `VEDFOLNIR_HA_DEFAULT_LEASE=1`, as
/// `scripts/ha-chaos.sh` measures the failover.
fn chaos_lease() -> Vec<(&'static str, &'static str)> {
    if std::env::var("VEDFOLNIR_HA_DEFAULT_LEASE").as_deref() == Ok("1") {
        Vec::new()
    } else {
        LEASE.to_vec()
    }
}

fn daemon(swarm: &Swarm, state: &Path, policy: &Path, webhook: &str) -> Daemon {
    Daemon::spawn_in(
        state,
        policy,
        free_port(),
        &["--interval", "1s"],
        &[
            ("VEDFOLNIR_API_TOKEN", TOKEN),
            ("VEDFOLNIR_LEASE_NAME", &swarm.lease),
            ("WEBHOOK_URL", webhook),
            LEASE[0],
            LEASE[1],
        ],
    )
}

/// The audit records of a state directory with `event`.
fn events(state: &Path, event: &str) -> Vec<serde_json::Value> {
    audit(state)
        .into_iter()
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
    let (hook, told) = crate::daemon::receiver(0);
    let mut a = daemon(&swarm, &sa, &policy, &hook);
    let mut b = daemon(&swarm, &sb, &policy, &hook);

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
    // Within the lease (4 s), the standby's look at it (up to 1 s after the
    // last renewal) and a pass (1 s), with a margin for a busy machine.
    let failover = took.duration_since(killed);
    assert!(failover < Duration::from_secs(8), "{failover:?}");
    swarm.wait_for("2/2", Duration::from_secs(60));
    // Its first decision as leader read warm windows: every signal has a
    // value (the docker source's CPU needs a previous read).
    // (The line comes once its scale has converged: wait for it. A pass
    // that began while it was still standby may end after the takeover's
    // line; it says so and acted on nothing: the first decision made as
    // leader is the one that follows.)
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        let lines = stand.lines_so_far(Duration::from_millis(200));
        let mut after = lines
            .iter()
            .skip_while(|(_, l)| !l.contains("took it at epoch 2"))
            .filter(|(_, l)| {
                l.starts_with(&format!("{}: ", swarm.service)) && l.contains("scores")
            });
        if let Some((_, l)) = after.find(|(_, l)| !l.contains("standby")) {
            break l.clone();
        }
        assert!(Instant::now() < deadline, "no decision after the takeover");
    };
    assert!(
        first.contains("cpu ") && !first.contains("missing"),
        "{first}"
    );
    assert_eq!(
        swarm.label("io.vedfolnir.autoscaler.epoch").as_deref(),
        Some("2")
    );
    assert_eq!(events(stand_dir, "scale-finished").len(), 1);
    // Each takeover was notified.
    let bodies: Vec<String> = told.try_iter().collect();
    assert_eq!(
        bodies
            .iter()
            .filter(|b| b.contains("\"event\":\"takeover\""))
            .count(),
        2,
        "{bodies:?}"
    );
    // `report` names who leads, at which epoch, and the last write.
    let report = crate::util::run_env(
        &["report", "--policy", policy.to_str().unwrap()],
        &[
            ("VEDFOLNIR_STATE_DIR", stand_dir.to_str().unwrap()),
            ("VEDFOLNIR_LEASE_NAME", &swarm.lease),
        ],
    )
    .expect_code(0)
    .stdout;
    assert!(
        report.contains(&format!("http://{}) at epoch 2", stand.listen))
            && report.contains("last write at epoch 2"),
        "{report}"
    );

    // The old leader comes back: it stands by.
    drop(lead);
    let mut back = daemon(&swarm, lead_dir, &policy, &hook);
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

/// One of the two daemons of a chaos series: its state directory, its own
/// endpoint to the engine (so its engine can be cut alone), its process,
/// and what its lines said of the lease.
struct Node {
    name: &'static str,
    dir: std::path::PathBuf,
    proxy: crate::shells::Proxy,
    daemon: Option<Daemon>,
    /// How many of its lines were read.
    read: usize,
    /// The epoch it leads at, as its lines last said.
    leads: Option<u64>,
    /// When its first pass as leader printed its decision.
    first_pass: Option<Instant>,
}

impl Node {
    fn new(name: &'static str, root: &Path) -> Node {
        Node {
            name,
            dir: root.join(name),
            proxy: crate::shells::Proxy::start(),
            daemon: None,
            read: 0,
            leads: None,
            first_pass: None,
        }
    }

    fn start(&mut self, swarm: &Swarm, policy: &Path) {
        let host = self.proxy.host();
        let mut env = vec![
            ("DOCKER_HOST", host.as_str()),
            ("VEDFOLNIR_LEASE_NAME", swarm.lease.as_str()),
        ];
        env.extend(chaos_lease());
        self.daemon = Some(Daemon::spawn_in(
            &self.dir,
            policy,
            free_port(),
            &["--interval", "1s"],
            &env,
        ));
        self.read = 0;
        self.leads = None;
    }

    /// Read its new lines: the epoch it took, when; that it lost; its
    /// first decision as leader.
    fn poll(&mut self, service: &str, wait: Duration) -> Option<(u64, Instant)> {
        let d = self.daemon.as_mut()?;
        let lines = d.lines_so_far(wait);
        let mut took = None;
        for (at, line) in &lines[self.read..] {
            if let Some(rest) = line.split("took it at epoch ").nth(1) {
                let epoch = rest.split(|c: char| !c.is_ascii_digit()).next()?;
                let epoch: u64 = epoch.parse().ok()?;
                self.leads = Some(epoch);
                self.first_pass = None;
                took = Some((epoch, *at));
            } else if line.contains(": lost it (epoch ") {
                self.leads = None;
            } else if self.leads.is_some()
                && self.first_pass.is_none()
                && line.starts_with(&format!("{service}: "))
                && line.contains("scores")
                && !line.contains("standby")
            {
                self.first_pass = Some(*at);
            }
        }
        self.read = lines.len();
        took
    }
}

/// The audit records of a state directory, in order.
fn audit(state: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(state.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .collect()
}

/// What a chaos series found, over both daemons' audit logs.
#[derive(Debug, Default)]
struct Tally {
    intents: usize,
    open: usize,
    doubled: usize,
    shared_epochs: usize,
    fenced_writes: usize,
}

fn tally(dirs: &[&Path]) -> Tally {
    let logs: Vec<Vec<serde_json::Value>> = dirs.iter().map(|d| audit(d)).collect();
    let mut t = Tally::default();
    let mut epochs: Vec<std::collections::BTreeSet<u64>> = Vec::new();
    for log in &logs {
        let mut finished: std::collections::BTreeMap<&str, usize> = Default::default();
        let mut mine = std::collections::BTreeSet::new();
        for r in log {
            let id = r["action_id"].as_str().unwrap_or("");
            match r["event"].as_str() {
                Some("scale-started") => {
                    t.intents += 1;
                    finished.entry(id).or_default();
                    if let Some(e) = r["plan"]["epoch"].as_u64() {
                        mine.insert(e);
                    }
                }
                Some("scale-finished") => *finished.entry(id).or_default() += 1,
                _ => {}
            }
        }
        t.open += finished.values().filter(|n| **n == 0).count();
        t.doubled += finished.values().filter(|n| **n > 1).count();
        epochs.push(mine);
    }
    t.shared_epochs = epochs[0].intersection(&epochs[1]).count();
    // A write that went through (the count moved) from a plan whose epoch
    // another daemon had already passed when it started.
    for (i, log) in logs.iter().enumerate() {
        let other = &logs[1 - i];
        let starts: std::collections::BTreeMap<&str, (u64, i64)> = log
            .iter()
            .filter(|r| r["event"] == "scale-started")
            .filter_map(|r| {
                Some((
                    r["action_id"].as_str()?,
                    (r["plan"]["epoch"].as_u64()?, r["time_ms"].as_i64()?),
                ))
            })
            .collect();
        for r in log.iter().filter(|r| r["event"] == "scale-finished") {
            let Some((epoch, at)) = starts.get(r["action_id"].as_str().unwrap_or("")) else {
                continue;
            };
            let moved = r["report"]["reached"] != r["report"]["from"]
                && r["report"]["error"]
                    .as_str()
                    .is_none_or(|e| !e.starts_with("fenced"));
            let passed = other.iter().any(|o| {
                o["event"] == "takeover"
                    && o["time_ms"].as_i64().is_some_and(|t| t < *at)
                    && o["reasons"][0]
                        .as_str()
                        .and_then(|s| s.split("epoch ").nth(1))
                        .and_then(|s| s.split_whitespace().next())
                        .and_then(|s| s.parse::<u64>().ok())
                        .is_some_and(|e| e > *epoch)
            });
            if moved && passed {
                t.fenced_writes += 1;
            }
        }
    }
    t
}

/// What a round does to a daemon: SIGKILL (restarted after), SIGSTOP
/// (SIGCONT after), or its engine endpoint cut (restored after).
const FAULTS: [&str; 3] = ["kill", "stop", "cut"];

/// Wait until exactly one node says it leads (a woken old leader has
/// said it lost); its index.
fn leading(nodes: &mut [Node], service: &str, limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    loop {
        for n in nodes.iter_mut() {
            n.poll(service, Duration::from_millis(20));
        }
        let claims: Vec<usize> = (0..nodes.len())
            .filter(|i| nodes[*i].leads.is_some())
            .collect();
        if let [one] = claims[..] {
            return one;
        }
        assert!(Instant::now() < deadline, "not one leader: {claims:?}");
    }
}

#[test]
fn kill_stop_and_cut_under_two_daemons_lose_no_intent_and_fence_every_stale_write() {
    if !engine() {
        return;
    }
    let rounds = crate::util::env_or("VEDFOLNIR_HA_ROUNDS", 3u32);
    let mut rng = crate::chaos::Rng(crate::util::env_or("VEDFOLNIR_HA_SEED", 0x4a11_5eed));
    let swarm = Swarm::up("vtchaos", 2);
    let root = tempfile::tempdir().unwrap();
    let policy = root.path().join("ha.toml");
    std::fs::write(
        &policy,
        format!(
            "service = \"{}\"\nplugin = \"builtin:threshold-score\"\nmin_replicas = 2\nmax_replicas = 3\n[target]\nkind = \"swarm\"\n[rollout]\nmonitor = \"30s\"\n",
            swarm.service
        ),
    )
    .unwrap();
    let mut nodes = [Node::new("a", root.path()), Node::new("b", root.path())];
    for n in nodes.iter_mut() {
        n.start(&swarm, &policy);
    }
    let mut failovers = Vec::new();
    for round in 0..rounds {
        let lead = leading(&mut nodes, &swarm.service, Duration::from_secs(30));
        let epoch = nodes[lead].leads.unwrap();
        // A scale in flight: the service pushed out of its bounds (below
        // or above), which the leader restores at its next pass.
        let out_of_bounds = if rng.next(2) == 0 { 1 } else { 5 };
        docker(&[
            "service",
            "scale",
            "-d",
            &format!("{}={out_of_bounds}", swarm.service),
        ])
        .expect_code(0);
        std::thread::sleep(Duration::from_millis(rng.next(1500)));
        // The fault: each on the leader in the first three rounds, then
        // drawn, mostly on the leader.
        let (victim, fault) = match round {
            0..3 => (lead, FAULTS[round as usize]),
            _ => (
                if rng.next(4) == 0 { 1 - lead } else { lead },
                FAULTS[rng.next(3) as usize],
            ),
        };
        let at = Instant::now();
        match fault {
            "kill" => {
                let d = nodes[victim].daemon.as_mut().unwrap();
                d.child.kill().unwrap();
                let _ = d.child.wait();
            }
            "stop" => nodes[victim].daemon.as_ref().unwrap().signal("STOP"),
            _ => nodes[victim].proxy.cut(),
        }
        nodes[victim].leads = None;
        if victim == lead {
            // The other takes over: the failover is from the fault to its
            // line saying so.
            let other = 1 - lead;
            let deadline = at + Duration::from_secs(60);
            let first_pass = loop {
                nodes[other].poll(&swarm.service, Duration::from_millis(50));
                if nodes[other].leads.is_some_and(|e| e > epoch)
                    && let Some(when) = nodes[other].first_pass
                {
                    break when;
                }
                assert!(
                    Instant::now() < deadline,
                    "round {round}: no takeover after {fault}"
                );
            };
            failovers.push(first_pass.duration_since(at));
        } else {
            std::thread::sleep(Duration::from_secs(5));
        }
        // The fault ends: the killed one restarts, the stopped one wakes,
        // the cut one is reconnected.
        match fault {
            "kill" => {
                nodes[victim].daemon = None;
                nodes[victim].start(&swarm, &policy);
            }
            "stop" => nodes[victim].daemon.as_ref().unwrap().signal("CONT"),
            _ => nodes[victim].proxy.restore(),
        }
        // The leader brings the service back within its bounds.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            for n in nodes.iter_mut() {
                n.poll(&swarm.service, Duration::from_millis(20));
            }
            let r = crate::docker::swarm_replicas(&swarm.service);
            if r == "2/2" || r == "3/3" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: the service stays at {r}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!(
            "round {round}: {fault} of {} ({}), epoch {epoch}, failover {:?}",
            nodes[victim].name,
            if victim == lead { "leader" } else { "standby" },
            if victim == lead {
                failovers.last().copied()
            } else {
                None
            }
        );
    }
    // Stopped as an operator would (each lets go), then the logs judged.
    for n in nodes.iter_mut() {
        n.daemon = None;
    }
    let t = tally(&[&nodes[0].dir, &nodes[1].dir]);
    failovers.sort();
    let pick = |q: f64| {
        failovers
            .get(((failovers.len() as f64 - 1.0) * q).round() as usize)
            .copied()
    };
    eprintln!(
        "{rounds} rounds: {} intents, {} without an outcome, {} with two, {} epochs used by both daemons, {} writes by a fenced leader; failover over {} leader faults: p50 {:?}, p95 {:?}, max {:?}",
        t.intents,
        t.open,
        t.doubled,
        t.shared_epochs,
        t.fenced_writes,
        failovers.len(),
        pick(0.5),
        pick(0.95),
        failovers.last()
    );
    assert_eq!((t.open, t.doubled), (0, 0), "{t:?}");
    assert_eq!(t.shared_epochs, 0, "{t:?}");
    assert_eq!(t.fenced_writes, 0, "{t:?}");
    assert!(t.intents > 0, "no scale ran: {t:?}");
    let service = swarm.service.clone();
    drop(swarm);
    // No container of the service is left once it is removed.
    let deadline = Instant::now() + Duration::from_secs(30);
    let filter = format!("label=com.docker.swarm.service.name={service}");
    loop {
        let left = docker(&["ps", "-aq", "--filter", &filter]).stdout;
        if left.trim().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "containers left: {left}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A stack deployed by a test, removed on drop with its secret.
struct Stack {
    name: String,
    secret: String,
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = docker(&["stack", "rm", &self.name]);
        // The stack's tasks go away before its secret can.
        let filter = format!("label=com.docker.stack.namespace={}", self.name);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !docker(&["ps", "-aq", "--filter", &filter])
            .stdout
            .trim()
            .is_empty()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(250));
        }
        let _ = docker(&["secret", "rm", &self.secret]);
    }
}

#[test]
fn the_swarm_stack_runs_one_daemon_a_node_and_it_leads() {
    use std::os::unix::fs::PermissionsExt;
    if !engine() {
        return;
    }
    let image = crate::daemon::daemon_image();
    // The service the stack's policy scales: below its minimum of 2.
    let swarm = Swarm::up("vtstack", 1);
    let root = crate::util::root();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let stack = Stack {
        name: format!("vtstack{}", std::process::id()),
        secret: format!("vtstack-token{}", std::process::id()),
    };
    // The shipped files, with this test's names: the service, the lease,
    // the secret, a free port.
    let text = std::fs::read_to_string(root.join("deploy/swarm/stack.yml"))
        .unwrap()
        .replace(
            "VEDFOLNIR_LEASE_NAME: vedfolnir-autoscaler-lease",
            &format!("VEDFOLNIR_LEASE_NAME: {}", swarm.lease),
        )
        .replace("vedfolnir-api-token", &stack.secret)
        .replace("published: 9464", &format!("published: {}", free_port()));
    std::fs::write(dir.path().join("stack.yml"), text).unwrap();
    let policy = std::fs::read_to_string(root.join("deploy/swarm/policy.toml"))
        .unwrap()
        .replace("\"web\"", &format!("{:?}", swarm.service));
    std::fs::write(dir.path().join("policy.toml"), policy).unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "correct-horse-battery-staple\n").unwrap();
    docker(&["secret", "create", &stack.secret, token.to_str().unwrap()]).expect_code(0);
    let gid = crate::docker::cmd("stat", &["-c", "%g", "/var/run/docker.sock"], &[])
        .stdout
        .trim()
        .to_string();
    let stack_file = dir.path().join("stack.yml");
    crate::docker::cmd(
        "docker",
        &[
            "stack",
            "deploy",
            "-c",
            stack_file.to_str().unwrap(),
            &stack.name,
        ],
        &[("DOCKER_GID", gid.as_str()), ("AUTOSCALER_IMAGE", image)],
    )
    .expect_code(0);
    // One daemon runs on this one node (at most one a node): it takes the
    // lease and restores the service's minimum.
    swarm.wait_for("2/2", Duration::from_secs(120));
    let service = format!("{}_autoscaler", stack.name);
    let tasks = docker(&[
        "service",
        "ps",
        "--filter",
        "desired-state=running",
        "--format",
        "{{.CurrentState}} {{.Error}}",
        &service,
    ])
    .expect_code(0)
    .stdout;
    assert_eq!(
        tasks.lines().filter(|l| l.starts_with("Running")).count(),
        1,
        "{tasks}"
    );
    let logs = docker(&["service", "logs", "--raw", &service])
        .expect_code(0)
        .stdout;
    assert!(logs.contains("took it at epoch 1"), "{logs}");
    assert_eq!(
        swarm.label("io.vedfolnir.autoscaler.epoch").as_deref(),
        Some("1")
    );
    drop(stack);
    drop(swarm);
}
