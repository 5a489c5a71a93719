//! The daemon (`run`) on a real engine: hot reload of the policies folder,
//! the HTTP API with its token and rate limit, notifications, dry run,
//! shadow policies, and reconciling an interrupted action at start.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::docker::{Project, engine, http_get, image};

/// A running daemon whose stdout lines can be waited for.
pub(crate) struct Daemon {
    pub(crate) child: Child,
    lines: std::sync::mpsc::Receiver<(Instant, String)>,
    seen: Vec<(Instant, String)>,
    pub(crate) listen: String,
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Daemon {
    pub(crate) fn start(p: &Project, args: &[&str]) -> Daemon {
        Daemon::start_on(p, free_port(), args)
    }

    pub(crate) fn start_on(p: &Project, port: u16, args: &[&str]) -> Daemon {
        Daemon::spawn(p, &p.policy_path(), port, args, &[])
    }

    /// `run --policies <policies>` with the project's state directory.
    pub(crate) fn spawn(
        p: &Project,
        policies: &Path,
        port: u16,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Daemon {
        Daemon::spawn_in(&p.state_dir(), policies, port, args, env)
    }

    /// `run --policies <policies>` with the state directory `state`.
    pub(crate) fn spawn_in(
        state: &Path,
        policies: &Path,
        port: u16,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Daemon {
        let listen = format!("127.0.0.1:{port}");
        let mut child = Command::new(env!("CARGO_BIN_EXE_vedfolnir-autoscaler"))
            .args([
                "run",
                "--policies",
                policies.to_str().unwrap(),
                "--listen",
                &listen,
            ])
            .args(args)
            .env("VEDFOLNIR_STATE_DIR", state)
            .env("VEDFOLNIR_LOG", "info")
            .env_remove("DRY_RUN")
            .env_remove("WEBHOOK_URL")
            .env_remove("VEDFOLNIR_API_TOKEN")
            .env_remove("VEDFOLNIR_ALERTMANAGER_TOKEN")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = crate::util::lines(child.stdout.take().unwrap(), |line| (Instant::now(), line));
        Daemon {
            child,
            lines,
            seen: Vec::new(),
            listen,
        }
    }

    /// Wait for a line containing `wanted`.
    pub(crate) fn expect_line(&mut self, wanted: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, line)) => {
                    self.seen.push((at, line.clone()));
                    if line.contains(wanted) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {wanted:?} within {limit:?}; the daemon said:\n{}",
                    self.seen
                        .iter()
                        .map(|(_, l)| l.as_str())
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            }
        }
    }

    /// Every line printed so far, and those printed in the next `wait`,
    /// with when each was read.
    pub(crate) fn lines_so_far(&mut self, wait: Duration) -> Vec<(Instant, String)> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => break,
            }
        }
        self.seen.clone()
    }

    pub(crate) fn port(&self) -> String {
        self.listen.rsplit(':').next().unwrap().to_string()
    }

    pub(crate) fn metrics(&self) -> String {
        http_get(&self.port(), "/metrics").unwrap()
    }

    pub(crate) fn status(&self) -> serde_json::Value {
        let (code, body) = request(&self.listen, "GET", "/api/v1/status", &[], "");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    pub(crate) fn signal(&self, sig: &str) {
        Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal("TERM");
        }
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request; the status code and body.
pub(crate) fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let (code, _, body) = request_full(addr, method, path, headers, body);
    (code, body)
}

/// One HTTP/1.1 request; the status code, the headers (lowercase) and body.
pub(crate) fn request_full(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, head.to_lowercase(), body.to_string())
}

/// A webhook receiver on 127.0.0.1: answers 500 to the first `failures`
/// requests, 200 after; every body received goes to the channel.
pub(crate) fn receiver(failures: usize) -> (String, std::sync::mpsc::Receiver<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(mut conn) = conn else { break };
            conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let body = loop {
                let Ok(k) = conn.read(&mut chunk) else {
                    break None;
                };
                if k == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..k]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((head, rest)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    if rest.len() >= len {
                        break Some(rest[..len].to_string());
                    }
                }
            };
            let status = if n < failures {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = conn.write_all(
                format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
            if let Some(b) = body
                && tx.send(b).is_err()
            {
                break;
            }
        }
    });
    (url, rx)
}

pub(crate) fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// The test policy's text for `service` of project `project`.
pub(crate) fn policy_text(service: &str, project: &str, plugin: &str, extra: &str) -> String {
    format!(
        "service = \"{service}\"\nplugin = \"{plugin}\"\nmin_replicas = 1\nmax_replicas = 4\n{extra}\n[target]\nproject = \"{project}\"\n[rollout]\nmonitor = \"20s\"\nstop_timeout = \"5s\"\n"
    )
}

/// The shipped policy's component, with a custom section appended: a
/// valid component with its own digest.
pub(crate) fn module_variant(base: &[u8], n: u32) -> Vec<u8> {
    let name = b"vedfolnir-test";
    let payload = n.to_le_bytes();
    let mut v = base.to_vec();
    v.push(0); // custom section
    v.push((1 + name.len() + payload.len()) as u8);
    v.push(name.len() as u8);
    v.extend_from_slice(name);
    v.extend_from_slice(&payload);
    v
}

#[test]
fn the_policies_folder_is_hot_reloaded_and_a_bad_file_keeps_the_last_good_version() {
    if !engine() {
        return;
    }
    let p = Project::up("hot", 2, image());
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("policies");
    std::fs::create_dir(&folder).unwrap();
    let base =
        std::fs::read(vedfolnir_plugin_artifacts::policy_path("threshold-score").unwrap()).unwrap();
    let module = folder.join("score.wasm");
    std::fs::write(&module, module_variant(&base, 0)).unwrap();
    let main = folder.join("vedfolnir.toml");
    std::fs::write(&main, policy_text("vedfolnir", &p.name, "score.wasm", "")).unwrap();
    let cache = dir.path().join("cache");
    let mut d = Daemon::spawn(
        &p,
        &folder,
        free_port(),
        &["--interval", "1s"],
        &[("VEDFOLNIR_CACHE_DIR", cache.to_str().unwrap())],
    );
    d.expect_line("HOLD at 2", Duration::from_secs(30));
    let s = d.status();
    assert_eq!(
        s["services"]["vedfolnir"]["plugin"]["digest"],
        sha256(&module),
        "{s}"
    );
    // The module replaced 50 times in a second, half of the writes a
    // truncated file: the last version serves, evaluation goes on.
    let storm = Instant::now();
    for n in 1..=50u32 {
        let bytes = module_variant(&base, n);
        let bytes = if n % 2 == 0 || n == 50 {
            bytes
        } else {
            bytes[..bytes.len() / 2].to_vec()
        };
        std::fs::write(&module, bytes).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    let last = sha256(&module);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = d.status();
        if s["services"]["vedfolnir"]["plugin"]["digest"] == last.as_str() {
            assert!(s["load_errors"].as_array().unwrap().is_empty(), "{s}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the last module never served: {s}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(6));
    // Passes went on through the reloads: none doubled (a gap under half
    // the interval: a restarted loop evaluates at once) and none stalled.
    // (How regular the cadence stays is measured by the daemon bench; on a
    // machine busy with other tests a pass's Docker stats vary too much to
    // judge it here.)
    let lines = d.lines_so_far(Duration::from_millis(100));
    let passes: Vec<Instant> = lines
        .iter()
        .filter(|(_, l)| l.starts_with("vedfolnir: HOLD"))
        .map(|(t, _)| *t)
        .collect();
    let gaps: Vec<f64> = passes
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    let during = passes.iter().filter(|t| **t > storm).count();
    assert!(during >= 3, "{gaps:?}");
    assert!(
        gaps.iter().all(|g| *g >= 0.5 && *g < 10.0),
        "gaps between passes (s): {gaps:?}"
    );
    let reloads = lines.iter().filter(|(_, l)| l.contains("reloaded")).count();
    assert!(
        (1..10).contains(&reloads),
        "50 writes are debounced into a few reloads, not {reloads}"
    );

    // A second policy file dropped in starts its own loop (the project's
    // other service).
    let store_policy = folder.join("store.toml");
    std::fs::write(
        &store_policy,
        policy_text("store", &p.name, "builtin:threshold-score", ""),
    )
    .unwrap();
    d.expect_line(
        &format!("loaded {}", store_policy.display()),
        Duration::from_secs(10),
    );
    d.expect_line("store: HOLD at 1", Duration::from_secs(20));
    // Written half-way: not valid TOML. The last good version serves, and
    // the failure is reported by path and stage.
    std::fs::write(&store_policy, "service = \"store\"\nplugin = \"builtin:thr").unwrap();
    let line = d.expect_line("reload of", Duration::from_secs(10));
    assert!(
        line.contains("store.toml failed at config, the last good version keeps serving")
            && line.contains("not valid TOML"),
        "{line}"
    );
    d.expect_line("store: HOLD at 1", Duration::from_secs(10));
    let s = d.status();
    let errors = s["load_errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{s}");
    assert_eq!(errors[0]["path"], store_policy.display().to_string());
    assert_eq!(errors[0]["stage"], "config");
    let m = d.metrics();
    assert!(
        m.contains(&format!(
            "vedfolnir_autoscaler_policy_load_error{{path=\"{}\",stage=\"config\"}} 1",
            store_policy.display()
        )),
        "{m}"
    );
    // Completed: it serves, and the error is gone.
    std::fs::write(
        &store_policy,
        policy_text(
            "store",
            &p.name,
            "builtin:threshold-score",
            "[cooldown]\nup = \"7m\"\n",
        ),
    )
    .unwrap();
    d.expect_line("reloaded", Duration::from_secs(10));
    assert!(d.status()["load_errors"].as_array().unwrap().is_empty());
    assert!(!d.metrics().contains("policy_load_error{"));
    // Broken again, then written back to exactly the content it serves:
    // nothing needs loading, but the error is over and goes.
    let good = std::fs::read_to_string(&store_policy).unwrap();
    std::fs::write(&store_policy, format!("max_replica = 3\n{good}")).unwrap();
    let line = d.expect_line("reload of", Duration::from_secs(10));
    assert!(line.contains("store.toml failed"), "{line}");
    assert_eq!(d.status()["load_errors"].as_array().unwrap().len(), 1);
    std::fs::write(&store_policy, &good).unwrap();
    d.expect_line(
        "store.toml is back to the version being served: its load error is cleared",
        Duration::from_secs(10),
    );
    assert!(d.status()["load_errors"].as_array().unwrap().is_empty());
    assert!(!d.metrics().contains("policy_load_error{"));
    // A module that is not a component is rejected by path and stage.
    std::fs::write(folder.join("junk.wasm"), b"\0asm junk").unwrap();
    let line = d.expect_line("junk.wasm rejected", Duration::from_secs(10));
    assert!(line.contains("at decode"), "{line}");
    // Removed: its loop stops (and its lock is released); the other goes on.
    std::fs::remove_file(&store_policy).unwrap();
    d.expect_line("store.toml removed", Duration::from_secs(10));
    d.expect_line(
        "store: stopped; its lock is released",
        Duration::from_secs(20),
    );
    let s = d.status();
    assert!(s["services"].get("store").is_none(), "{s}");
    d.expect_line("vedfolnir: HOLD at 2", Duration::from_secs(10));
    let elsewhere = dir.path().join("store-check.toml");
    std::fs::write(
        &elsewhere,
        policy_text("store", &p.name, "builtin:threshold-score", ""),
    )
    .unwrap();
    let state = p.state_dir();
    crate::util::run_env(
        &[
            "check",
            "--dry-run",
            "--policy",
            elsewhere.to_str().unwrap(),
        ],
        &[("VEDFOLNIR_STATE_DIR", state.to_str().unwrap())],
    )
    .expect_code(0);
    // The compiled module is cached by digest.
    assert!(std::fs::read_dir(&cache).unwrap().count() >= 2);
}

#[test]
fn the_api_scales_pauses_and_resumes_with_a_token_rate_limited_and_notified() {
    if !engine() {
        return;
    }
    let p = Project::up("api", 2, image());
    p.policy("");
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "correct-horse-battery-staple\n").unwrap();
    // The first post of each notification fails: the retry delivers it.
    let (hook, posts) = receiver(1);
    let mut d = Daemon::spawn(
        &p,
        &p.policy_path(),
        free_port(),
        &["--interval", "2s"],
        &[
            ("VEDFOLNIR_API_TOKEN_FILE", token_file.to_str().unwrap()),
            ("WEBHOOK_URL", &hook),
        ],
    );
    d.expect_line("HOLD at 2", Duration::from_secs(30));
    let addr = d.listen.clone();
    let url = "/api/v1/services/vedfolnir/scale";
    let auth = [("Authorization", "Bearer correct-horse-battery-staple")];
    // No token, a wrong token: refused, nothing scaled.
    let (code, body) = request(&addr, "POST", url, &[], r#"{"replicas": 3}"#);
    assert_eq!(code, 401, "{body}");
    let (code, body) = request(
        &addr,
        "POST",
        url,
        &[("Authorization", "Bearer guess")],
        r#"{"replicas": 3}"#,
    );
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("wrong token"), "{body}");
    assert_eq!(p.running("vedfolnir").len(), 2);
    // The API's token does not open the Alertmanager webhook, which is off
    // while it has no token of its own.
    let (code, body) = request(&addr, "POST", "/webhook/alertmanager", &auth, "{}");
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("VEDFOLNIR_ALERTMANAGER_TOKEN"), "{body}");
    assert!(body.contains("the Alertmanager webhook is off"), "{body}");
    // Unknown service, bad body.
    let (code, _) = request(
        &addr,
        "POST",
        "/api/v1/services/nope/scale",
        &auth,
        r#"{"replicas": 3}"#,
    );
    assert_eq!(code, 404);
    let (code, body) = request(&addr, "POST", url, &auth, r#"{"replica": 3}"#);
    assert_eq!(code, 400, "{body}");
    // The right token: scaled, capped at max_replicas like any scale.
    let reason = "load test \"spring\" <b>&</b>";
    let (code, body) = request(
        &addr,
        "POST",
        url,
        &auth,
        &serde_json::json!({ "replicas": 9, "reason": reason }).to_string(),
    );
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["report"]["reached"], 5, "{v}");
    assert!(
        v["notes"][0].as_str().unwrap().contains("clamped to 5"),
        "{v}"
    );
    assert_eq!(p.running("vedfolnir").len(), 5);
    // Notified: the first post failed, the retry carried the same payload,
    // escaped for Slack in `text` and exact in `reasons`.
    let first = posts.recv_timeout(Duration::from_secs(20)).unwrap();
    let second = posts.recv_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(first, second);
    let n: serde_json::Value = serde_json::from_str(&second).unwrap();
    assert_eq!(n["event"], "scale-finished");
    assert_eq!(n["actor"], "api");
    assert_eq!(n["reasons"][1], reason);
    let text = n["text"].as_str().unwrap();
    assert!(
        text.contains("scale up from 2 to 5: succeeded, 5 running (by api)"),
        "{text}"
    );
    assert!(
        !text.contains('<') && text.contains("&lt;b&gt;&amp;&lt;/b&gt;"),
        "{text}"
    );
    // The decisions endpoint reads the audit: intent and outcome.
    let (code, body) = request(
        &addr,
        "GET",
        "/api/v1/decisions?service=vedfolnir&limit=2",
        &[],
        "",
    );
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let events: Vec<&str> = v["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["scale-finished", "scale-started"], "{v}");
    assert_eq!(v["decisions"][1]["actor"], "api");

    // Pause: the loop holds, and says so; resume.
    std::thread::sleep(Duration::from_secs(2)); // the bucket refills
    let (code, body) = request(
        &addr,
        "POST",
        "/api/v1/services/vedfolnir/pause",
        &auth,
        r#"{"reason": "maintenance"}"#,
    );
    assert_eq!(code, 200, "{body}");
    d.expect_line("automatic scaling paused", Duration::from_secs(10));
    let line = d.expect_line("vedfolnir: HOLD", Duration::from_secs(10));
    assert!(line.contains("paused"), "{line}");
    assert_eq!(d.status()["services"]["vedfolnir"]["paused"], true);
    let (code, _) = request(
        &addr,
        "POST",
        "/api/v1/services/vedfolnir/resume",
        &auth,
        "",
    );
    assert_eq!(code, 200);
    d.expect_line("automatic scaling resumed", Duration::from_secs(10));

    // A burst of 20 scale requests: a few are taken (one at a time, by the
    // loop), the rest refused with Retry-After; the bounds still hold.
    std::thread::sleep(Duration::from_secs(6)); // the bucket refills
    let burst: Vec<_> = (0..20)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                request_full(
                    &addr,
                    "POST",
                    "/api/v1/services/vedfolnir/scale",
                    &[("Authorization", "Bearer correct-horse-battery-staple")],
                    r#"{"replicas": 0}"#,
                )
            })
        })
        .collect();
    let answers: Vec<(u16, String, String)> =
        burst.into_iter().map(|t| t.join().unwrap()).collect();
    let limited = answers.iter().filter(|a| a.0 == 429).count();
    let taken = answers.iter().filter(|a| a.0 == 200).count();
    assert!(
        limited >= 14 && taken <= 6 && limited + taken == 20,
        "{answers:?}"
    );
    assert!(
        answers
            .iter()
            .filter(|a| a.0 == 429)
            .all(|a| a.1.contains("retry-after:")),
        "{answers:?}"
    );
    // Down to min_replicas (2); the others found nothing to do.
    assert_eq!(p.running("vedfolnir").len(), 2);
    let m = d.metrics();
    assert!(
        m.contains(
            "vedfolnir_autoscaler_api_requests_total{service=\"vedfolnir\",kind=\"rate-limited\"}"
        ),
        "{m}"
    );
    assert!(
        m.contains("vedfolnir_autoscaler_notifications_total{service=\"vedfolnir\",kind=\"sent\"}"),
        "{m}"
    );

    // The audit log becomes unwritable: a scale is refused before the
    // engine is touched, and says why.
    let audit = p.state_dir().join("audit.jsonl");
    let kept = p.state_dir().join("audit.kept");
    std::fs::rename(&audit, &kept).unwrap();
    std::fs::create_dir(&audit).unwrap();
    std::thread::sleep(Duration::from_secs(2)); // the bucket refills
    let (code, body) = request(&addr, "POST", url, &auth, r#"{"replicas": 3}"#);
    assert_eq!(code, 500, "{body}");
    assert!(body.contains("cannot open the audit log"), "{body}");
    assert_eq!(p.running("vedfolnir").len(), 2);
    std::fs::remove_dir(&audit).unwrap();
    std::fs::rename(&kept, &audit).unwrap();

    // SIGTERM while an API scale is in flight: it finishes, is answered
    // and audited, then the daemon exits 0.
    std::thread::sleep(Duration::from_secs(2));
    let post = |path: &'static str, body: &'static str| {
        let addr = addr.clone();
        std::thread::spawn(move || {
            let auth = [("Authorization", "Bearer correct-horse-battery-staple")];
            request(&addr, "POST", path, &auth, body)
        })
    };
    let inflight = post("/api/v1/services/vedfolnir/scale", r#"{"replicas": 3}"#);
    // In flight: its intent is on record (the request itself is recorded,
    // fsynced, before it reaches the loop, so a fixed wait could send the
    // signal before it got there).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !p
        .audit()
        .iter()
        .any(|r| r["event"] == "scale-started" && r["actor"] == "api" && r["to"] == 3)
    {
        assert!(Instant::now() < deadline, "the scale never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A request queued behind it (recorded, waiting for the loop) when the
    // signal comes is answered too, not dropped with a 503.
    // Counted, not looked for: the pauses earlier in this test are on
    // record too, and finding one of those sent the signal too soon.
    let pauses_requested = || {
        p.audit()
            .iter()
            .filter(|r| {
                r["event"] == "requested"
                    && r["reasons"][0].as_str().unwrap_or("").starts_with("pause")
            })
            .count()
    };
    let before = pauses_requested();
    let queued = post(
        "/api/v1/services/vedfolnir/pause",
        r#"{"reason": "queued at shutdown"}"#,
    );
    while pauses_requested() == before {
        assert!(Instant::now() < deadline, "the pause was never recorded");
        std::thread::sleep(Duration::from_millis(20));
    }
    d.signal("TERM");
    let (code, body) = inflight.join().unwrap();
    assert_eq!(code, 200, "{body}");
    let (code, body) = queued.join().unwrap();
    assert_eq!(code, 200, "{body}");
    let status = d.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(p.running("vedfolnir").len(), 3);
    let audit = p.audit();
    let last = audit
        .iter()
        .rev()
        .find(|r| r["event"] == "scale-finished")
        .unwrap();
    assert_eq!(last["to"], 3, "{last}");
    assert_eq!(last["report"]["outcome"], "succeeded", "{last}");
    // The request is on record, and so is its answer.
    let answered = audit.last().unwrap();
    assert_eq!(answered["event"], "answered", "{answered}");
    assert_eq!(answered["reasons"][0], "HTTP 200", "{answered}");
    let requested: Vec<_> = audit.iter().filter(|r| r["event"] == "requested").collect();
    for r in &requested {
        let closing = audit
            .iter()
            .filter(|a| a["event"] == "answered" && a["action_id"] == r["action_id"])
            .count();
        assert_eq!(closing, 1, "{r}");
    }
}

#[test]
fn metrics_show_a_signal_missing_now_as_missing_whatever_history_the_state_holds() {
    if !engine() {
        return;
    }
    let p = Project::up("stale", 1, image());
    // Both signals scraped from a port nothing listens on: missing at
    // every pass, with a reason.
    p.policy(
        "[signals.response-time-p95]\nsource = \"scrape\"\nmetric = \"vedfolnir_request_duration_seconds\"\n\
         [signals.error-rate]\nsource = \"scrape\"\nmetric = \"vedfolnir_errors_total\"\ntotal = \"vedfolnir_requests_total\"\n\
         [scrape]\nport = 9\npath = \"/metrics\"\n",
    );
    // What earlier `check` runs left in the state directory's history.
    std::fs::create_dir_all(p.state_dir()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let history = serde_json::json!({ "signals": {
        "response-time-p95": [[now - 30_000, 0.00475], [now - 15_000, 0.00475]],
        "error-rate": [[now - 30_000, 0.0], [now - 15_000, 0.0]],
    }});
    std::fs::write(
        p.state_dir().join("vedfolnir.samples.json"),
        history.to_string(),
    )
    .unwrap();
    let mut d = Daemon::spawn(
        &p,
        &p.policy_path(),
        free_port(),
        &["--interval", "1s"],
        &[],
    );
    d.expect_line("vedfolnir: ", Duration::from_secs(30));
    d.expect_line("vedfolnir: ", Duration::from_secs(10));
    let status = d.status();
    let signals = &status["services"]["vedfolnir"]["signals"];
    for signal in ["response-time-p95", "error-rate"] {
        assert!(
            signals[signal]["missing"].is_string(),
            "{signal}: {signals}"
        );
    }
    let m = d.metrics();
    for (gauge, signal) in [
        ("response_time_p95", "response-time-p95"),
        ("error_rate", "error-rate"),
    ] {
        assert!(
            !m.contains(&format!("vedfolnir_autoscaler_{gauge}{{")),
            "{gauge} shows a value from the old history:\n{m}"
        );
        assert!(
            m.contains(&format!(
                "vedfolnir_autoscaler_signal_missing{{service=\"vedfolnir\",signal=\"{signal}\"}} 1"
            )),
            "{signal}:\n{m}"
        );
    }
}

#[test]
fn status_pause_and_resume_from_the_command_line() {
    if !engine() {
        return;
    }
    let p = Project::up("why", 2, image());
    p.policy("");
    let token = "a-token-of-twenty-chars";
    let mut d = Daemon::spawn(
        &p,
        &p.policy_path(),
        free_port(),
        &["--interval", "1s"],
        &[("VEDFOLNIR_API_TOKEN", token)],
    );
    let line = d.expect_line("vedfolnir: HOLD", Duration::from_secs(30));
    // The decision line sets each score beside the one the policy scales at
    // (threshold-score: up 3, down 5).
    assert!(
        line.contains("scores up ") && line.contains("/3 down ") && line.contains("/5"),
        "{line}"
    );
    let url = format!("http://{}", d.listen);
    let state = p.state_dir();
    let env = [
        ("VEDFOLNIR_URL", url.as_str()),
        ("VEDFOLNIR_STATE_DIR", state.to_str().unwrap()),
    ];
    let cli = |args: &[&str], env: &[(&str, &str)]| crate::util::run_env(args, env);
    let out = cli(&["status", "vedfolnir"], &env).expect_code(0);
    assert!(
        out.stdout.contains("from the daemon at")
            && out.stdout.contains("vedfolnir: 2 running")
            && out.stdout.contains("bounds 2-5")
            && out.stdout.contains("last decision")
            && out.stdout.contains("(scales up at 3)")
            && out.stdout.contains("cooldowns: scale-up "),
        "{}",
        out.stdout
    );
    let json: serde_json::Value =
        serde_json::from_str(&cli(&["status", "--json"], &env).expect_code(0).stdout).unwrap();
    assert_eq!(json["from"], "daemon", "{json}");
    let json = &json["services"];
    assert_eq!(json["vedfolnir"]["max_replicas"], 5, "{json}");
    assert_eq!(json["vedfolnir"]["score_thresholds"]["down"], 5.0, "{json}");
    cli(&["status", "nope"], &env).expect_code(6);
    // At an address where nothing listens, with no state directory: exit 5.
    cli(
        &["status"],
        &[
            ("VEDFOLNIR_URL", "http://127.0.0.1:9"),
            ("VEDFOLNIR_STATE_DIR", "/nonexistent/state"),
        ],
    )
    .expect_code(5);
    // Without the token: refused, saying where to put it.
    let out = cli(&["pause", "vedfolnir"], &env).expect_code(2);
    assert!(out.stderr.contains("--api-token-file"), "{}", out.stderr);
    let with_token = [env[0], env[1], ("VEDFOLNIR_API_TOKEN", token)];
    let out = cli(&["pause", "vedfolnir", "--reason", "release"], &with_token).expect_code(0);
    assert!(out.stdout.contains("vedfolnir: paused"), "{}", out.stdout);
    let out = cli(&["status", "vedfolnir"], &env).expect_code(0);
    assert!(out.stdout.contains("PAUSED"), "{}", out.stdout);
    let out = cli(&["resume", "vedfolnir"], &with_token).expect_code(0);
    assert!(out.stdout.contains("vedfolnir: resumed"), "{}", out.stdout);
    let out = cli(&["resume", "vedfolnir"], &with_token).expect_code(0);
    assert!(out.stdout.contains("was not paused"), "{}", out.stdout);
    // No daemon: what the state directory kept.
    drop(d);
    let out = cli(&["status"], &env).expect_code(0);
    assert!(
        out.stdout.contains("no daemon answered at")
            && out.stdout.contains("from the state directory")
            && out.stdout.contains("vedfolnir:"),
        "{}",
        out.stdout
    );
}

#[test]
fn health_answers_ok_only_once_the_start_reconciliation_is_written() {
    if !engine() {
        return;
    }
    let p = Project::up("ready", 2, image());
    p.policy("");
    // An interrupted scale from a previous run: an intent, no outcome.
    std::fs::create_dir_all(p.state_dir()).unwrap();
    let audit = p.state_dir().join("audit.jsonl");
    std::fs::write(
        &audit,
        r#"{"time_ms":1000,"action_id":"vedfolnir-1000-1","service":"vedfolnir","event":"scale-started","actor":"auto","direction":"up","from":2,"to":3}
"#,
    )
    .unwrap();
    let d = Daemon::spawn(
        &p,
        &p.policy_path(),
        free_port(),
        &["--interval", "1s"],
        &[],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut refused = 0;
    loop {
        assert!(Instant::now() < deadline, "never healthy");
        match http_get(&d.port(), "/health") {
            Ok(answer)
                if answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200") =>
            {
                break;
            }
            Ok(answer) => {
                assert!(
                    answer.contains("not yet reconciled for vedfolnir")
                        || answer.contains("starting: the policies are loading"),
                    "{answer}"
                );
                refused += 1;
            }
            Err(_) => {}
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // Ready means reconciled: the outcome is already written.
    let text = std::fs::read_to_string(&audit).unwrap();
    assert!(
        text.contains("\"scale-finished\"") && text.contains("reconciled at start"),
        "healthy before the reconciliation was written ({refused} answers 503 before):\n{text}"
    );
}

#[test]
fn two_daemons_with_different_state_directories_on_one_compose_service_one_acts() {
    if !engine() {
        return;
    }
    let p = Project::up("twostate", 3, image());
    // Idle replicas: after 3 s of low cpu and memory the policy scales
    // down 3 -> 2, then its cooldown (1h) holds.
    p.policy(
        r#"
[cooldown]
down = "1h"
[params.cpu-low]
for = "3s"
[params.memory-low]
for = "3s"
"#,
    );
    let other_state = p.state_dir().with_file_name("state-other");
    let mut first = Daemon::spawn(
        &p,
        &p.policy_path(),
        free_port(),
        &["--interval", "1s"],
        &[],
    );
    first.expect_line("vedfolnir: ", Duration::from_secs(30));
    let mut second = Daemon::spawn(
        &p,
        &p.policy_path(),
        free_port(),
        &["--interval", "1s"],
        &[("VEDFOLNIR_STATE_DIR", other_state.to_str().unwrap())],
    );
    // The second is refused the target, naming the first, on every pass.
    let refused = second.expect_line("pass failed", Duration::from_secs(30));
    assert!(
        refused.contains("another vedfolnir-autoscaler")
            && refused.contains(&format!("pid {}", first.child.id()))
            && refused.contains("(run)"),
        "{refused}"
    );
    // So is a command line with a third state directory; a dry run,
    // which changes nothing, is not.
    let third = p.state_dir().with_file_name("state-third");
    let third = third.to_str().unwrap();
    let out = p.cli(&["scale-up", "--state-dir", third]).expect_code(9);
    assert!(
        out.stderr.contains("another vedfolnir-autoscaler")
            && out.stderr.contains(&format!("pid {}", first.child.id()))
            && out.stderr.contains("compose-"),
        "refused by the target's lock, not the state directory's: {}",
        out.stderr
    );
    p.cli(&["check", "--dry-run", "--state-dir", third])
        .expect_code(0);
    first.expect_line("SCALE DOWN 3 -> 2", Duration::from_secs(60));
    let seen = second.lines_so_far(Duration::from_secs(3));
    assert!(
        !seen.iter().any(|(_, l)| l.contains("SCALE")),
        "the second never acts while the first holds the target: {seen:?}"
    );
    assert_eq!(p.running("vedfolnir").len(), 2, "one scale, by one daemon");
    // The first gone, the second takes the target at its next pass.
    first.signal("KILL");
    let _ = first.child.wait();
    let mut line = second.expect_line("vedfolnir: ", Duration::from_secs(10));
    for _ in 0..3 {
        if !line.contains("pass failed") {
            break;
        }
        line = second.expect_line("vedfolnir: ", Duration::from_secs(10));
    }
    assert!(!line.contains("pass failed"), "{line}");
}

#[test]
fn a_dry_run_audits_what_it_would_do_once_per_cooldown_with_a_shadow_and_leaves_an_interrupted_scale_open()
 {
    if !engine() {
        return;
    }
    let p = Project::up("dry", 3, image());
    // Idle replicas: after 3 s of low cpu and memory the live policy would
    // scale down 3 -> 2; the shadow (the documented 15-minute windows)
    // holds.
    p.policy(
        r#"
[cooldown]
down = "1h"
[params.cpu-low]
for = "3s"
[params.memory-low]
for = "3s"
[shadow]
plugin = "builtin:threshold-score"
"#,
    );
    // An interrupted scale from a previous run: an intent, no outcome.
    std::fs::create_dir_all(p.state_dir()).unwrap();
    std::fs::write(
        p.state_dir().join("audit.jsonl"),
        r#"{"time_ms":1000,"action_id":"vedfolnir-1000-1","service":"vedfolnir","event":"scale-started","actor":"auto","direction":"up","from":3,"to":4}
"#,
    )
    .unwrap();
    let mut d = Daemon::spawn(
        &p,
        &p.policy_path(),
        free_port(),
        &["--interval", "1s"],
        &[("DRY_RUN", "1")],
    );
    // A dry run judges the interrupted scale and says so, but leaves it
    // open: it is a real run's to finish.
    let line = d.expect_line("an interrupted scale", Duration::from_secs(30));
    assert!(
        line.contains("3 -> 4")
            && line.contains("Failed, 3 running")
            && line.contains("leaves it open"),
        "{line}"
    );
    let line = d.expect_line("WOULD SCALE DOWN 3 -> 2", Duration::from_secs(60));
    assert!(line.contains("dry run"), "{line}");
    // The dry-run cooldown (1h) holds the next passes.
    let line = d.expect_line("vedfolnir: HOLD at 3", Duration::from_secs(10));
    assert!(line.contains("cooldown"), "{line}");
    d.expect_line("vedfolnir: HOLD at 3", Duration::from_secs(10));
    assert_eq!(p.running("vedfolnir").len(), 3, "a dry run changes nothing");
    let s = d.status();
    let svc = &s["services"]["vedfolnir"];
    assert_eq!(s["dry_run"], true);
    assert!(svc["shadow"]["divergences"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(svc["shadow"]["plugin"]["name"], "threshold-score");
    let m = d.metrics();
    assert!(
        m.contains("vedfolnir_autoscaler_shadow_divergences_total{service=\"vedfolnir\"}"),
        "{m}"
    );
    drop(d);
    let audit: Vec<serde_json::Value> = std::fs::read_to_string(p.state_dir().join("audit.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of = |e: &str| audit.iter().filter(|r| r["event"] == e).collect::<Vec<_>>();
    // The interrupted intent is still open: a dry run closes no real
    // action.
    assert!(of("scale-finished").is_empty(), "{audit:?}");
    assert_eq!(of("scale-started").len(), 1, "{audit:?}");
    // One "would scale", with what decided it.
    let would = of("would-scale");
    assert_eq!(would.len(), 1, "{audit:?}");
    let w = would[0];
    assert_eq!(
        (
            w["dry_run"].clone(),
            w["direction"].clone(),
            w["from"].clone(),
            w["to"].clone()
        ),
        (true.into(), "down".into(), 3.into(), 2.into())
    );
    assert_eq!(w["plugin"]["name"], "threshold-score");
    assert_eq!(w["plugin"]["digest"].as_str().unwrap().len(), 64);
    assert!(w["scores"]["down"].as_f64().unwrap() >= 5.0, "{w}");
    assert!(w["inputs"]["cpu"].is_number(), "{w}");
    assert_eq!(w["inputs"]["replicas"], 3);
    // The shadow's divergence, recorded once (it did not change after).
    let diverged = of("shadow-diverged");
    assert_eq!(diverged.len(), 1, "{audit:?}");
    assert_eq!(diverged[0]["direction"], "hold");
    // Live state: no cooldown started by the dry run.
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(p.state_dir().join("vedfolnir.state.json")).unwrap(),
    )
    .unwrap();
    assert!(state["last_scale_down"].is_null(), "{state}");
    assert!(state["dry_run"]["last_scale_down"].is_number(), "{state}");
    assert_eq!(state["last_decision"]["dry_run"], true);
}

/// `docker-compose down -v` of the daemon's own project when dropped.
struct ComposeDown(Vec<(String, String)>, String);

impl Drop for ComposeDown {
    fn drop(&mut self) {
        let file = crate::util::root().join("deploy/docker/compose.yml");
        let env: Vec<(&str, &str)> = self
            .0
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        crate::docker::cmd(
            "docker-compose",
            &[
                "-p",
                &self.1,
                "-f",
                file.to_str().unwrap(),
                "down",
                "-v",
                "-t",
                "5",
            ],
            &env,
        );
    }
}

/// The daemon's image, `vedfolnir-autoscaler:test`, built once from a
/// static build of this checkout (deploy/docker/build.sh) with the quick
/// profile: the image is what is tested, not the optimiser.
pub(crate) fn daemon_image() -> &'static str {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let root = crate::util::root();
        let out = Command::new(root.join("deploy/docker/build.sh"))
            .current_dir(&root)
            .env("IMAGE", "vedfolnir-autoscaler:test")
            .env("BUILD_PROFILE", "image-test")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "deploy/docker/build.sh failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    "vedfolnir-autoscaler:test"
}

#[test]
fn the_daemons_from_scratch_image_runs_from_its_compose_file_and_scales_through_the_socket() {
    if !engine() {
        return;
    }
    // Declared first, dropped last: no swarm is left while it runs.
    let _networks = crate::docker::networks_in_use();
    use std::os::unix::fs::PermissionsExt;
    daemon_image();
    let p = Project::up("image", 1, image());
    // What the operator provides: a policies folder and a token, readable
    // by the daemon's user (65534).
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(
        policies.join("vedfolnir.toml"),
        policy_text("vedfolnir", &p.name, "builtin:threshold-score", "")
            .replace("min_replicas = 1", "min_replicas = 2"),
    )
    .unwrap();
    let token = dir.path().join("api-token");
    std::fs::write(&token, "correct-horse-battery-staple\n").unwrap();
    for f in [
        policies.clone(),
        policies.join("vedfolnir.toml"),
        token.clone(),
    ] {
        let mode = if f.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let gid = Command::new("stat")
        .args(["-c", "%g", "/var/run/docker.sock"])
        .output()
        .unwrap();
    let gid = String::from_utf8_lossy(&gid.stdout).trim().to_string();
    let port = free_port().to_string();
    let env = vec![
        ("DOCKER_GID".to_string(), gid),
        ("POLICIES_DIR".to_string(), policies.display().to_string()),
        ("API_TOKEN_FILE".to_string(), token.display().to_string()),
        (
            "AUTOSCALER_IMAGE".to_string(),
            "vedfolnir-autoscaler:test".to_string(),
        ),
        ("AUTOSCALER_PORT".to_string(), port.clone()),
    ];
    let project = format!("{}ctl", p.name);
    let down = ComposeDown(env.clone(), project.clone());
    let file = crate::util::root().join("deploy/docker/compose.yml");
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    crate::docker::cmd(
        "docker-compose",
        &["-p", &project, "-f", file.to_str().unwrap(), "up", "-d"],
        &env_ref,
    )
    .expect_code(0);
    // Not root, a read-only root, the socket through its group: it restores
    // the minimum of 2.
    let deadline = Instant::now() + Duration::from_secs(90);
    while p.running("vedfolnir").len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the daemon in its container never scaled"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let (code, body) = request(&addr, "GET", "/api/v1/status", &[], "");
        if code == 200 && body.contains("\"passes\"") {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "no status from the container: {code} {body}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(
        v["services"]["vedfolnir"]["plugin"]["name"], "threshold-score",
        "{v}"
    );
    // The token file is read: a scale through the API works.
    let (code, body) = request(
        &addr,
        "POST",
        "/api/v1/services/vedfolnir/scale",
        &[("Authorization", "Bearer correct-horse-battery-staple")],
        r#"{"replicas": 3}"#,
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(p.running("vedfolnir").len(), 3);
    let logs = crate::docker::cmd(
        "docker-compose",
        &[
            "-p",
            &project,
            "-f",
            file.to_str().unwrap(),
            "logs",
            "--no-color",
        ],
        &env_ref,
    );
    assert!(logs.stdout.contains("SCALE UP 1 -> 2"), "{}", logs.stdout);
    drop(down);
}

/// A reader of the daemon's standard output that goes away (a closed pipe,
/// a log shipper that restarted) stops neither a pass nor the daemon, and
/// a one-shot command's closed pipe ends it quietly.
#[test]
fn a_reader_that_goes_away_stops_neither_the_daemon_nor_a_command() {
    let bin = env!("CARGO_BIN_EXE_vedfolnir-autoscaler");
    let simulate = Command::new(bin)
        .current_dir(crate::util::root())
        .args(["simulate", "--shape", "step", "--duration", "1h"])
        .args(["--policy", "builtin:target-tracking"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Closed before the report is written.
    let mut simulate = simulate;
    drop(simulate.stdout.take());
    let out = simulate.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // A service on no engine: every pass fails, holds, and says so on
    // standard output, which nobody reads.
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("gone.toml");
    std::fs::write(
        &policy,
        "service = \"reader-gone\"\nplugin = \"builtin:threshold-score\"\n[target]\nproject = \"reader-gone-nowhere\"\n",
    )
    .unwrap();
    let mut daemon = Command::new(bin)
        .args(["run", "--dry-run", "--interval", "1s", "--policies"])
        .arg(&policy)
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .env("VEDFOLNIR_STATE_DIR", dir.path().join("state"))
        .env("VEDFOLNIR_LOG", "warn")
        .env_remove("VEDFOLNIR_API_TOKEN")
        .env_remove("VEDFOLNIR_ALERTMANAGER_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(daemon.stdout.take());
    let lines = crate::util::lines(daemon.stderr.take().unwrap(), |line| line);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen
        .iter()
        .filter(|l: &&String| l.contains("pass failed"))
        .count()
        < 3
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("fewer than 3 failed passes in 60 s:\n{}", seen.join("\n")),
        }
    }
    assert!(
        matches!(daemon.try_wait(), Ok(None)),
        "the daemon stopped:\n{}",
        seen.join("\n")
    );
    Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    let status = daemon.wait().unwrap();
    seen.extend(lines.try_iter());
    assert!(status.success(), "{status}:\n{}", seen.join("\n"));
    assert!(
        !seen.iter().any(|l| l.contains("panicked")),
        "{}",
        seen.join("\n")
    );
}
