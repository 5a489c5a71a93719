//! Every shell over the controller honours the seed's variables alike
//! (`DRY_RUN`, `WEBHOOK_URL`, `MIN_REPLICAS`, `MAX_REPLICAS`), and the
//! commands that need only the policy file work while its plugin does not
//! load. On the real engine, like `docker.rs`.

use std::time::Duration;

use crate::daemon::receiver;
use crate::docker::{Project, engine, image};

/// The project's policy with `plugin` in place of the builtin.
fn with_plugin(p: &Project, plugin: &str) -> std::path::PathBuf {
    let path = p.policy("");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "plugin = \"builtin:threshold-score\"",
        &format!("plugin = {plugin:?}"),
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn dry_run_means_the_same_for_check_and_manual_scales_and_changes_nothing() {
    if !engine() {
        return;
    }
    // One replica, below the policy's minimum of 2: `check` would restore it.
    let p = Project::up("dry1", 1, image());
    p.policy("");
    let out = p.cli_env(&["check"], &[("DRY_RUN", "true")]).expect_code(0);
    assert!(out.stdout.contains("dry run: not acting"), "{}", out.stdout);
    let out = p
        .cli_env(&["scale-up", "3"], &[("DRY_RUN", "1")])
        .expect_code(0);
    assert!(
        out.stdout.contains("dry run: would scale 1 -> 3"),
        "{}",
        out.stdout
    );
    assert_eq!(p.running("vedfolnir").len(), 1, "a dry run changes nothing");
    let events: Vec<serde_json::Value> = p.audit().iter().map(|r| r["event"].clone()).collect();
    assert_eq!(events, ["would-scale", "would-scale"]);
    // DRY_RUN=false is not a dry run: the bound is restored.
    p.cli_env(&["check"], &[("DRY_RUN", "false")])
        .expect_code(0);
    assert_eq!(p.running("vedfolnir").len(), 2);
}

#[test]
fn webhook_url_and_the_bounds_mean_the_same_for_check_and_manual_scales() {
    if !engine() {
        return;
    }
    let p = Project::up("hook1", 1, image());
    p.policy("");
    let (hook, posts) = receiver(0);
    let env = [("WEBHOOK_URL", hook.as_str()), ("MAX_REPLICAS", "3")];
    // check restores the minimum, and says so to the webhook.
    p.cli_env(&["check"], &env).expect_code(0);
    let n: serde_json::Value =
        serde_json::from_str(&posts.recv_timeout(Duration::from_secs(20)).unwrap()).unwrap();
    assert_eq!(
        (n["event"].as_str(), n["to"].as_u64()),
        (Some("scale-finished"), Some(2))
    );
    // A manual scale is capped by MAX_REPLICAS and notified too.
    let out = p.cli_env(&["scale-up", "9"], &env).expect_code(0);
    assert!(out.stderr.contains("clamped to 3"), "{}", out.stderr);
    let n: serde_json::Value =
        serde_json::from_str(&posts.recv_timeout(Duration::from_secs(20)).unwrap()).unwrap();
    assert_eq!(
        (n["actor"].as_str(), n["to"].as_u64()),
        (Some("manual"), Some(3))
    );
    assert_eq!(n["guard"][0]["rule"], "clamped-to-max", "{n}");
    assert_eq!(p.running("vedfolnir").len(), 3);
    p.cli_env(&["scale-down"], &env).expect_code(0);
    let n: serde_json::Value =
        serde_json::from_str(&posts.recv_timeout(Duration::from_secs(20)).unwrap()).unwrap();
    assert_eq!(
        (n["direction"].as_str(), n["to"].as_u64()),
        (Some("down"), Some(2))
    );
    p.cli_env(&["reset"], &env).expect_code(0);
    let n: serde_json::Value =
        serde_json::from_str(&posts.recv_timeout(Duration::from_secs(20)).unwrap()).unwrap();
    assert_eq!(n["event"], "reset");
}

#[test]
fn manual_scales_reset_and_health_work_while_the_plugin_does_not_load() {
    if !engine() {
        return;
    }
    let p = Project::up("broken1", 2, image());
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("broken.wasm");
    std::fs::write(&module, b"\0asm not really").unwrap();
    with_plugin(&p, module.to_str().unwrap());
    let out = p.cli_env(&["scale-up"], &[]).expect_code(0);
    assert!(
        out.stderr.contains("plugin does not load")
            && out.stderr.contains("scale-up does not need it"),
        "{}",
        out.stderr
    );
    assert_eq!(p.running("vedfolnir").len(), 3);
    p.cli_env(&["scale-down"], &[]).expect_code(0);
    assert_eq!(p.running("vedfolnir").len(), 2);
    let out = p.cli_env(&["reset"], &[]).expect_code(0);
    assert!(out.stdout.contains("cooldowns cleared"), "{}", out.stdout);
    let out = p.cli_env(&["health"], &[]).expect_code(0);
    assert!(
        out.stdout.contains("2 running") && out.stderr.contains("plugin does not load"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    // The commands that evaluate still refuse it, at its stage.
    let out = p.cli_env(&["check"], &[]).expect_code(3);
    assert!(out.stderr.contains("decode"), "{}", out.stderr);
}

#[test]
fn the_scrape_source_reads_all_five_signals_from_the_replicas_own_metrics() {
    use crate::daemon::Daemon;
    use crate::docker::http_get;
    if !engine() {
        return;
    }
    let p = Project::up("scrape1", 2, image());
    // The example policy's signals, on this project; nothing else runs.
    let example = std::fs::read_to_string(crate::util::root().join("policies/vedfolnir.toml"))
        .unwrap()
        .replace(
            "project = \"vedfolnir\"",
            &format!("project = \"{}\"", p.name),
        )
        .replace("monitor = \"60s\"", "monitor = \"20s\"");
    std::fs::write(p.policy_path(), example).unwrap();
    let mut d = Daemon::start(&p, &["--interval", "1s"]);
    d.expect_line("service(s)", Duration::from_secs(30));
    // Work on both replicas (300 queued each), then requests, one in ten
    // an error, until every signal is there.
    let ports: Vec<String> = p
        .running("vedfolnir")
        .iter()
        .map(|n| crate::docker::published_port(n))
        .collect();
    for port in &ports {
        http_get(port, "/enqueue?n=300").unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let signals = loop {
        for port in &ports {
            for _ in 0..9 {
                http_get(port, "/").unwrap();
            }
            http_get(port, "/error").unwrap();
        }
        let s = d.status();
        let sig = s["services"]["vedfolnir"]["signals"].clone();
        let present = [
            "cpu",
            "memory",
            "queue-depth",
            "response-time-p95",
            "error-rate",
        ]
        .iter()
        .all(|k| sig[k].is_number());
        if present {
            break sig;
        }
        assert!(std::time::Instant::now() < deadline, "signals: {sig}");
        std::thread::sleep(Duration::from_millis(500));
    };
    // The queue is summed over the replicas (600, less what drained at 5
    // a second each).
    let queue = signals["queue-depth"].as_f64().unwrap();
    assert!((300.0..=600.0).contains(&queue), "{signals}");
    assert!(
        signals["response-time-p95"].as_f64().unwrap() > 0.0,
        "{signals}"
    );
    // The error rate is errors over requests since the first scrape kept:
    // one in ten. The window's two ends fall anywhere in a round of ten
    // (the first reading above may have seen 1 error in 8 requests), so the
    // rate is read after 20 more rounds a replica, when an end's part round
    // moves it by under a hundredth; then a pass that read them all.
    for _ in 0..20 {
        for port in &ports {
            for _ in 0..9 {
                http_get(port, "/").unwrap();
            }
            http_get(port, "/error").unwrap();
        }
    }
    let seq = d.status()["services"]["vedfolnir"]["passes"].as_u64();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let signals = loop {
        let s = d.status();
        if s["services"]["vedfolnir"]["passes"].as_u64() > seq.map(|n| n + 1) {
            break s["services"]["vedfolnir"]["signals"].clone();
        }
        assert!(std::time::Instant::now() < deadline, "no new pass: {s}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let errors = signals["error-rate"].as_f64().unwrap();
    assert!((0.088..=0.106).contains(&errors), "{signals}");
    // A port no replica answers on (the file is reloaded): the scraped
    // signals are missing, naming a replica, never 0.
    let text = std::fs::read_to_string(p.policy_path()).unwrap();
    std::fs::write(p.policy_path(), text.replace("port = 8080", "port = 8081")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s = d.status();
        let q = &s["services"]["vedfolnir"]["signals"]["queue-depth"];
        let named = q["missing"].as_str().is_some_and(|m| {
            p.running("vedfolnir")
                .iter()
                .any(|r| m.contains(r.as_str()))
        });
        if named {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "queue-depth: {q}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A Unix-socket proxy to the local engine that notes the request line of
/// every request it forwards: a second endpoint to the same engine. It can
/// be cut (every connection closed, new ones refused) and restored.
pub(crate) struct Proxy {
    path: std::path::PathBuf,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<std::os::unix::net::UnixStream>>>,
    _dir: tempfile::TempDir,
}

impl Proxy {
    pub(crate) fn start() -> Proxy {
        use std::os::unix::net::{UnixListener, UnixStream};
        use std::sync::atomic::Ordering;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("engine.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (seen, is_cut, streams) = (requests.clone(), cut.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                if is_cut.load(Ordering::SeqCst) {
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    continue;
                }
                let Ok(engine) = UnixStream::connect("/var/run/docker.sock") else {
                    return;
                };
                streams.lock().unwrap().push(client.try_clone().unwrap());
                let (mut c_in, mut e_out) =
                    (client.try_clone().unwrap(), engine.try_clone().unwrap());
                let seen = seen.clone();
                std::thread::spawn(move || {
                    use std::io::{Read, Write};
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = c_in.read(&mut buf) {
                        if n == 0 || e_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        for line in String::from_utf8_lossy(&buf[..n]).lines() {
                            if ["GET ", "POST ", "DELETE ", "HEAD "]
                                .iter()
                                .any(|m| line.starts_with(m))
                            {
                                seen.lock().unwrap().push(line.to_string());
                            }
                        }
                    }
                    let _ = e_out.shutdown(std::net::Shutdown::Write);
                });
                let (mut e_in, mut c_out) = (engine, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut e_in, &mut c_out);
                    let _ = c_out.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        Proxy {
            path,
            requests,
            cut,
            open,
            _dir: dir,
        }
    }

    pub(crate) fn host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// Close every connection and refuse new ones: the engine is gone.
    pub(crate) fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Forward again.
    pub(crate) fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// The container creations that went through this endpoint.
    fn creates(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("/containers/create"))
            .cloned()
            .collect()
    }
}

#[test]
fn one_daemon_serves_two_services_on_two_engine_endpoints() {
    use crate::daemon::Daemon;
    if !engine() {
        return;
    }
    // Two projects, each below its minimum, each policy naming its own
    // endpoint; one daemon over the folder holding both.
    let (a, b) = (
        Project::up("eng1a", 1, image()),
        Project::up("eng1b", 1, image()),
    );
    let (pa, pb) = (Proxy::start(), Proxy::start());
    let folder = tempfile::tempdir().unwrap();
    for (name, p, proxy) in [("a", &a, &pa), ("b", &b, &pb)] {
        let text = std::fs::read_to_string(p.policy(""))
            .unwrap()
            .replace(
                "service = \"vedfolnir\"",
                &format!("service = \"svc-{name}\""),
            )
            .replace(
                "[target]\n",
                &format!(
                    "[target]\nname = \"vedfolnir\"\ndocker_host = \"{}\"\n",
                    proxy.host()
                ),
            );
        std::fs::write(folder.path().join(format!("{name}.toml")), text).unwrap();
    }
    let mut d = Daemon::spawn(
        &a,
        folder.path(),
        crate::daemon::free_port(),
        &["--interval", "1s"],
        &[],
    );
    d.expect_line("2 service(s)", Duration::from_secs(30));
    // Both restored, in whichever order their loops get there.
    let mut scaled: Vec<String> = (0..2)
        .map(|_| d.expect_line("SCALE UP 1 -> 2", Duration::from_secs(60)))
        .map(|l| l.split(':').next().unwrap().to_string())
        .collect();
    scaled.sort();
    assert_eq!(scaled, ["svc-a", "svc-b"]);
    assert_eq!(a.running("vedfolnir").len(), 2);
    assert_eq!(b.running("vedfolnir").len(), 2);
    // Each scale went through its own endpoint, and only there.
    let (ca, cb) = (pa.creates(), pb.creates());
    assert!(ca.len() == 1 && ca[0].contains(&a.name), "{ca:?}");
    assert!(cb.len() == 1 && cb[0].contains(&b.name), "{cb:?}");
}

#[test]
fn prometheus_url_means_the_same_for_every_command_that_reads_signals() {
    if !engine() {
        return;
    }
    let p = Project::up("promurl1", 2, image());
    p.policy(
        "[signals.queue-depth]\nsource = \"prometheus\"\nquery = 'vedfolnir:queue_depth'\nrequired = true\n",
    );
    // A port nothing listens on, from the environment.
    let port = crate::daemon::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let env = [("PROMETHEUS_URL", url.as_str())];
    for command in ["check", "report"] {
        let out = p.cli_env(&[command, "--json"], &env).expect_code(0);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let reasons = v["recommendation"]["reasons"].to_string();
        assert!(
            reasons.contains(&format!("cannot reach Prometheus at {url}")),
            "{command}: {reasons}"
        );
    }
    let out = p.cli_env(&["health"], &env).expect_code(8);
    assert!(out.stdout.contains("prometheus:"), "{}", out.stdout);
    assert!(out.stderr.contains(&url), "{}", out.stderr);
}
