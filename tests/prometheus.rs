//! Our Prometheus rules under promtool, and a real Prometheus (Debian's
//! package) scraping the test workload, with the autoscaler's `check`
//! scaling through the `prometheus` source.
//!
//! Without promtool/prometheus these tests say so and pass locally; with
//! `CI=true` they fail instead (`.ci/run` installs the package; see
//! [`have`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::daemon::{Daemon, free_port, request};
use crate::docker::{Project, engine, http_get, image, published_port};
use crate::util::{Output, have, root, run};

fn promtool(args: &[&str]) -> Output {
    Command::new("promtool")
        .current_dir(root().join("deploy/prometheus"))
        .args(args)
        .output()
        .unwrap()
        .into()
}

#[test]
fn promtool_accepts_the_config_and_rules_and_the_rule_unit_tests_pass() {
    if !have("promtool") {
        return;
    }
    promtool(&["check", "config", "prometheus.yml"]).expect_code(0);
    let rules = promtool(&[
        "check",
        "rules",
        "rules/vedfolnir.rules.yml",
        "rules/vedfolnir.alerts.yml",
    ])
    .expect_code(0);
    assert!(
        rules.stdout.contains("SUCCESS: 14 rules found"),
        "{}",
        rules.stdout
    );
    let tests = promtool(&["test", "rules", "tests/vedfolnir.test.yml"]).expect_code(0);
    assert!(tests.stdout.contains("SUCCESS"), "{}", tests.stdout);
}

#[test]
fn amtool_accepts_the_alertmanager_configs_which_send_the_webhook_token() {
    if !have("amtool") {
        return;
    }
    for file in [
        "deploy/alertmanager/alertmanager.yml",
        "deploy/compose/alertmanager.yml",
    ] {
        let out = Command::new("amtool")
            .args(["check-config", file])
            .current_dir(root())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{file}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("SUCCESS"), "{stdout}");
        let config = std::fs::read_to_string(root().join(file)).unwrap();
        assert!(config.contains("credentials_file:"), "{config}");
    }
}

#[test]
fn promtool_accepts_the_bundles_prometheus_config_with_our_rules() {
    if !have("promtool") {
        return;
    }
    // Laid out as the bundle mounts it: the config, and rules/ beside it.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        root().join("deploy/compose/prometheus.yml"),
        dir.path().join("prometheus.yml"),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    for rules in ["vedfolnir.rules.yml", "vedfolnir.alerts.yml"] {
        std::fs::copy(
            root().join("deploy/prometheus/rules").join(rules),
            dir.path().join("rules").join(rules),
        )
        .unwrap();
    }
    let out: Output = Command::new("promtool")
        .current_dir(dir.path())
        .args(["check", "config", "prometheus.yml"])
        .output()
        .unwrap()
        .into();
    let out = out.expect_code(0);
    assert!(out.stdout.contains("SUCCESS"), "{}", out.stdout);
}

/// A Prometheus server of our own, killed on drop.
struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Our rules, scraping `project`'s app every second.
    fn start(project: &str, daemon: &str) -> Server {
        Server::start_on(project, daemon, free_port())
    }

    /// The same, on `port` (a restart keeps its address).
    fn start_on(project: &str, daemon: &str, port: u16) -> Server {
        let rules = root().join("deploy/prometheus/rules");
        Server::start_with(project, daemon, port, &rules, "")
    }

    /// The same, with the rules of `rules` (a folder holding our two rule
    /// files) and `extra` appended to the configuration.
    fn start_with(project: &str, daemon: &str, port: u16, rules: &Path, extra: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            r#"global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - {rules}/vedfolnir.rules.yml
  - {rules}/vedfolnir.alerts.yml
scrape_configs:
  - job_name: vedfolnir
    docker_sd_configs:
      - host: unix:///var/run/docker.sock
        refresh_interval: 1s
        filters:
          - name: label
            values: ["com.docker.compose.project={project}"]
          - name: label
            values: ["com.docker.compose.service=vedfolnir"]
    relabel_configs:
      - source_labels: [__meta_docker_port_private]
        regex: "8080"
        action: keep
      - source_labels: [__meta_docker_container_label_com_docker_compose_project]
        target_label: project
      - source_labels: [__meta_docker_container_label_com_docker_compose_service]
        target_label: service
  - job_name: vedfolnir-autoscaler
    static_configs:
      - targets: ["{daemon}"]
{extra}"#,
            rules = rules.display()
        );
        let data = dir.path().join("data");
        Server::prometheus(dir, &config, &data, port)
    }

    /// Prometheus with `config`, its storage in `data`, on `port`; its
    /// config file and log in `dir`.
    fn prometheus(dir: tempfile::TempDir, config: &str, data: &Path, port: u16) -> Server {
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
            .spawn()
            .unwrap();
        Server::ready(child, port, dir, "Prometheus")
    }

    /// A server with no scrape of its own over the samples of
    /// `openmetrics` (ending `# EOF`), backfilled into its storage by
    /// `promtool tsdb create-blocks-from openmetrics`.
    fn backfilled(openmetrics: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("backfill.om");
        std::fs::write(&input, openmetrics).unwrap();
        let data = dir.path().join("data");
        let out: Output = Command::new("promtool")
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(&input)
            .arg(&data)
            .output()
            .unwrap()
            .into();
        out.expect_code(0);
        Server::prometheus(dir, "global:\n  scrape_interval: 1m\n", &data, free_port())
    }

    /// Wait until the server `child` answers `/-/ready` on `port`.
    fn ready(child: Child, port: u16, dir: tempfile::TempDir, what: &str) -> Server {
        let server = Server {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !http_get(&port.to_string(), "/-/ready")
            .map(|r| r.contains(" 200 "))
            .unwrap_or(false)
        {
            assert!(Instant::now() < deadline, "{what} never got ready");
            std::thread::sleep(Duration::from_millis(200));
        }
        server
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// One instant query's single value, if any.
fn query(server: &Server, expr: &str) -> Option<f64> {
    let path = format!(
        "/api/v1/query?query={}",
        expr.replace('{', "%7B")
            .replace('}', "%7D")
            .replace('"', "%22")
            .replace('=', "%3D")
    );
    let body = http_get(&server.port.to_string(), &path).ok()?;
    let json = &body[body.find('{')?..];
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[test]
fn queue_load_seen_through_prometheus_makes_the_daemon_scale_up_then_down() {
    if !engine() || !have("prometheus") {
        return;
    }
    let p = Project::up("prom", 2, image());
    // Windows shortened from minutes to seconds; the queue alone can act.
    let policy: PathBuf = p.policy(&format!(
        r#"
[cooldown]
up = "1s"
down = "1s"
[signals.queue-depth]
source = "prometheus"
query = 'vedfolnir:queue_depth{{project="{}",service="vedfolnir"}}'
required = true
[params.queue-high]
weight = 3
for = "10s"
[params.queue-low]
for = "10s"
[params.cpu-low]
for = "10s"
[params.memory-low]
for = "10s"
"#,
        p.name
    ));
    assert!(policy.exists());
    // Prometheus first (it scrapes the daemon), then the daemon pointed at it.
    let daemon_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = Server::start(&p.name, &format!("127.0.0.1:{daemon_port}"));
    let mut daemon = Daemon::start_on(
        &p,
        daemon_port,
        &["--interval", "2s", "--prometheus-url", &server.url()],
    );
    let ports: Vec<String> = p
        .running("vedfolnir")
        .iter()
        .map(|c| published_port(c))
        .collect();
    for port in &ports {
        http_get(port, "/enqueue?n=400").unwrap();
    }
    daemon.expect_line("SCALE UP 2 -> 3", Duration::from_secs(90));
    assert_eq!(p.running("vedfolnir").len(), 3);
    let m = daemon.metrics();
    assert!(
        m.contains("vedfolnir_autoscaler_queue_depth{service=\"vedfolnir\"}"),
        "{m}"
    );
    assert!(
        m.contains("vedfolnir_autoscaler_actions_total{service=\"vedfolnir\",direction=\"up\",outcome=\"succeeded\"} 1"),
        "{m}"
    );

    // The load stops: the queue empties, and after its window the daemon
    // scales back down.
    for port in &ports {
        http_get(port, "/drain").unwrap();
    }
    daemon.expect_line("SCALE DOWN 3 -> 2", Duration::from_secs(120));
    assert_eq!(p.running("vedfolnir").len(), 2);
    // Prometheus scrapes the daemon as well.
    let deadline = Instant::now() + Duration::from_secs(30);
    while query(
        &server,
        "vedfolnir_autoscaler_instance_count{service=\"vedfolnir\"}",
    )
    .is_none()
    {
        assert!(
            Instant::now() < deadline,
            "Prometheus never saw the daemon's metrics"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A project of two replicas whose policy takes Alertmanager's scaling
/// alerts (scale-ups cooled down for an hour), and a daemon on it holding
/// at 2 whose webhook takes `token`; the token's file is kept beside the
/// project.
fn alerts_daemon(name: &str, token: &str) -> (Project, PathBuf, Daemon) {
    let p = Project::up(name, 2, image());
    let policy = p.policy(
        r#"
[cooldown]
up = "1h"
[signals.scaling-alerts]
source = "alertmanager"
"#,
    );
    let token_file = policy.with_file_name("alertmanager-token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let mut daemon = Daemon::spawn(
        &p,
        &p.policy_path(),
        free_port(),
        &["--interval", "1s"],
        &[(
            "VEDFOLNIR_ALERTMANAGER_TOKEN_FILE",
            token_file.to_str().unwrap(),
        )],
    );
    daemon.expect_line("HOLD at 2", Duration::from_secs(30));
    (p, token_file, daemon)
}

#[test]
fn a_firing_alertmanager_alert_is_a_policy_input_and_the_guard_rails_still_decide() {
    if !engine() {
        return;
    }
    let (p, _, mut daemon) = alerts_daemon("alerts", "alertmanager-credential-0123");
    let addr = daemon.listen.clone();
    let firing = r#"{"version":"4","status":"firing","alerts":[{"status":"firing","fingerprint":"f1","labels":{"alertname":"VedfolnirHighCPUUsage","service":"vedfolnir","scaling_action":"scale_up"}}]}"#;
    // Without the webhook's token, or with the API's, nothing gets in.
    for headers in [
        &[][..],
        &[("Authorization", "Bearer alertmanager-credential-0124")][..],
    ] {
        let (code, body) = request(&addr, "POST", "/webhook/alertmanager", headers, firing);
        assert_eq!(code, 401, "{body}");
    }
    let post = |body: &str| {
        let (code, answer) = request(
            &addr,
            "POST",
            "/webhook/alertmanager",
            &[("Authorization", "Bearer alertmanager-credential-0123")],
            body,
        );
        format!("{code} {answer}")
    };
    let answer = post(
        r#"{"version":"4","status":"firing","alerts":[{"status":"firing","fingerprint":"f1","labels":{"alertname":"VedfolnirHighCPUUsage","service":"vedfolnir","scaling_action":"scale_up"}}]}"#,
    );
    assert!(
        answer.contains(r#"{"firing":1,"resolved":0,"ignored":0}"#),
        "{answer}"
    );
    // The alert is scored as a term; the step limit and bounds still apply.
    daemon.expect_line("SCALE UP 2 -> 3", Duration::from_secs(30));
    assert_eq!(p.running("vedfolnir").len(), 3);
    // Still firing, but the 1h scale-up cooldown holds: a bypass would not.
    daemon.expect_line("cooldown", Duration::from_secs(30));
    assert_eq!(p.running("vedfolnir").len(), 3);
    let bad = post("<html>");
    assert!(bad.starts_with("400 "), "{bad}");
    let m = daemon.metrics();
    assert!(
        m.contains(
            "vedfolnir_autoscaler_webhook_alerts_total{service=\"\",kind=\"unauthorized\"} 2"
        ),
        "{m}"
    );
    assert!(
        m.contains("vedfolnir_autoscaler_webhook_alerts_total{service=\"\",kind=\"firing\"} 1"),
        "{m}"
    );
}

/// Debian's Alertmanager with the shipped `deploy/alertmanager/alertmanager.yml`,
/// pointed at `daemon` and `token_file`, grouping after 1 s; killed on drop.
fn alertmanager(daemon: &str, token_file: &Path) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let shipped =
        std::fs::read_to_string(root().join("deploy/alertmanager/alertmanager.yml")).unwrap();
    let config = shipped
        .replace("http://127.0.0.1:9464", &format!("http://{daemon}"))
        .replace(
            "/etc/alertmanager/vedfolnir-webhook-token",
            token_file.to_str().unwrap(),
        )
        .replace("group_wait: 10s", "group_wait: 1s");
    assert_ne!(config, shipped);
    let config_path = dir.path().join("alertmanager.yml");
    std::fs::write(&config_path, config).unwrap();
    let port = free_port();
    let child = Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
        .spawn()
        .unwrap();
    Server::ready(child, port, dir, "Alertmanager")
}

#[test]
fn a_real_alertmanager_delivers_a_scaling_alert_with_its_token_and_the_daemon_scales() {
    if !engine() || !have("prometheus-alertmanager") {
        return;
    }
    let (p, token_file, mut daemon) = alerts_daemon("amreal", "alertmanager-credential-4567");
    let am = alertmanager(&daemon.listen, &token_file);
    // What Prometheus would send when VedfolnirHighCPUUsage fires.
    let (code, body) = request(
        &format!("127.0.0.1:{}", am.port),
        "POST",
        "/api/v2/alerts",
        &[],
        r#"[{"labels":{"alertname":"VedfolnirHighCPUUsage","service":"vedfolnir","scaling_action":"scale_up","severity":"warning"}}]"#,
    );
    assert_eq!(code, 200, "{body}");
    daemon.expect_line("SCALE UP 2 -> 3", Duration::from_secs(60));
    assert_eq!(p.running("vedfolnir").len(), 3);
    let m = daemon.metrics();
    assert!(
        m.contains("vedfolnir_autoscaler_webhook_alerts_total{service=\"\",kind=\"firing\"}"),
        "{m}"
    );
    assert!(!m.contains("kind=\"unauthorized\""), "{m}");
}

#[test]
fn prometheus_fires_our_alert_rule_and_alertmanager_routes_it_to_the_daemon_which_scales() {
    if !engine() || !have("prometheus") || !have("prometheus-alertmanager") {
        return;
    }
    let (p, token_file, mut daemon) = alerts_daemon("amchain", "alertmanager-credential-8901");
    let am = alertmanager(&daemon.listen, &token_file);
    // Our recording and alert rules as shipped, but each alert's `for` cut
    // from minutes to nothing, so a test waits seconds.
    let rules = tempfile::tempdir().unwrap();
    let shipped = root().join("deploy/prometheus/rules");
    std::fs::copy(
        shipped.join("vedfolnir.rules.yml"),
        rules.path().join("vedfolnir.rules.yml"),
    )
    .unwrap();
    let alerts = std::fs::read_to_string(shipped.join("vedfolnir.alerts.yml")).unwrap();
    let quick: String = alerts
        .lines()
        .map(|l| match l.trim_start().strip_prefix("for: ") {
            Some(_) => format!("{}for: 0s", &l[..l.len() - l.trim_start().len()]),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(quick.matches("for: 0s").count() >= 6, "{quick}");
    std::fs::write(rules.path().join("vedfolnir.alerts.yml"), quick).unwrap();
    let server = Server::start_with(
        &p.name,
        &daemon.listen,
        free_port(),
        rules.path(),
        &format!(
            "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [\"127.0.0.1:{}\"]\n",
            am.port
        ),
    );

    // A backlog of 400 jobs: vedfolnir:queue_depth > 50 fires
    // VedfolnirHighQueueDepth (scaling_action="scale_up").
    for c in p.running("vedfolnir") {
        http_get(&published_port(&c), "/enqueue?n=200").unwrap();
    }
    let line = daemon.expect_line("SCALE UP 2 -> 3", Duration::from_secs(90));
    assert!(line.contains("scaling-alerts 1"), "{line}");
    assert_eq!(p.running("vedfolnir").len(), 3);
    assert_eq!(
        query(
            &server,
            "ALERTS{alertname=\"VedfolnirHighQueueDepth\",alertstate=\"firing\"}"
        ),
        Some(1.0)
    );
    // The audit names the alert term that scored, and the guard rails'
    // step limit let one replica through.
    let audit = p.audit();
    let scaled = audit
        .iter()
        .find(|r| r["event"] == "scale-finished")
        .expect("a finished scale");
    assert!(
        scaled["reasons"].to_string().contains("alert-up"),
        "{scaled}"
    );
    assert_eq!(scaled["inputs"]["scaling-alerts"], 1.0, "{scaled}");
    // The daemon's webhook was reached by Alertmanager, with its token.
    let m = daemon.metrics();
    assert!(
        m.contains("vedfolnir_autoscaler_webhook_alerts_total{service=\"\",kind=\"firing\"}"),
        "{m}"
    );
    assert!(!m.contains("kind=\"unauthorized\""), "{m}");
}

#[test]
fn prometheus_unreachable_holds_with_the_reason_in_the_decision() {
    if !engine() {
        return;
    }
    let p = Project::up("promdown", 2, image());
    p.policy(
        r#"
[signals.queue-depth]
source = "prometheus"
query = 'vedfolnir:queue_depth{service="vedfolnir"}'
required = true
"#,
    );
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = p
        .cli(&[
            "check",
            "--json",
            "--prometheus-url",
            &format!("http://127.0.0.1:{port}"),
        ])
        .expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["decision"]["direction"], "hold");
    // The policy's reasons name the signal, the rule that fired and why.
    let reasons = v["recommendation"]["reasons"].to_string();
    assert!(
        reasons.contains("queue-depth missing (prometheus")
            && reasons.contains("cannot reach Prometheus at http://127.0.0.1:"),
        "{reasons}"
    );
    // And in the log.
    assert!(
        out.stderr.contains("cannot reach Prometheus"),
        "{}",
        out.stderr
    );
}

#[test]
fn prometheus_killed_and_restarted_mid_run_holds_then_reads_again() {
    if !engine() || !have("prometheus") {
        return;
    }
    let p = Project::up("promkill", 2, image());
    p.policy(
        r#"
[signals.queue-depth]
source = "prometheus"
query = 'sum(vedfolnir_queue_depth)'
required = true
"#,
    );
    let prom_port = free_port();
    let daemon_port = free_port();
    let server = Server::start_on(&p.name, &format!("127.0.0.1:{daemon_port}"), prom_port);
    let url = format!("http://127.0.0.1:{prom_port}");
    let mut d = Daemon::start_on(
        &p,
        daemon_port,
        &["--interval", "1s", "--prometheus-url", &url],
    );
    d.expect_line("vedfolnir: ", Duration::from_secs(60));
    // Wait until the signal is read (the first scrapes take a moment).
    let read = |d: &Daemon| {
        d.status()["services"]["vedfolnir"]["signals"]["queue-depth"]
            .as_f64()
            .is_some()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !read(&d) {
        assert!(
            Instant::now() < deadline,
            "queue-depth never read: {}",
            d.status()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Killed: the signal is missing with the reason, the service holds,
    // and the passes go on.
    drop(server);
    let missing = |d: &Daemon| {
        d.status()["services"]["vedfolnir"]["signals"]["queue-depth"]["missing"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !missing(&d).contains("cannot reach Prometheus at") {
        assert!(Instant::now() < deadline, "never missing: {}", d.status());
        std::thread::sleep(Duration::from_millis(500));
    }
    d.expect_line("vedfolnir: HOLD at 2", Duration::from_secs(30));
    assert!(matches!(d.child.try_wait(), Ok(None)), "the daemon died");
    // Restarted on the same address: read again, the daemon untouched.
    let _server = Server::start_on(&p.name, &format!("127.0.0.1:{daemon_port}"), prom_port);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !read(&d) {
        assert!(
            Instant::now() < deadline,
            "never read again: {}",
            d.status()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    d.expect_line("vedfolnir: HOLD at 2", Duration::from_secs(30));
    assert_eq!(p.running("vedfolnir").len(), 2);
}

#[test]
fn sighup_reloads_the_policy_and_a_bad_file_keeps_the_last_good_version() {
    if !engine() {
        return;
    }
    let p = Project::up("reload", 2, image());
    p.policy("");
    let mut daemon = Daemon::start(&p, &["--interval", "1s"]);
    daemon.expect_line("HOLD at 2", Duration::from_secs(30));
    let hup = |d: &Daemon| {
        Command::new("kill")
            .args(["-HUP", &d.child.id().to_string()])
            .status()
            .unwrap();
    };
    // Written half-way: not valid TOML.
    std::fs::write(
        p.policy_path(),
        "service = \"vedfolnir\"\nplugin = \"builtin:thr",
    )
    .unwrap();
    hup(&daemon);
    let line = daemon.expect_line("reload of", Duration::from_secs(10));
    assert!(
        line.contains("failed at config, the last good version keeps serving"),
        "{line}"
    );
    assert!(line.contains("not valid TOML"), "{line}");
    daemon.expect_line("HOLD at 2", Duration::from_secs(10));
    // Completed, with a lower maximum: the next passes use it.
    p.policy("");
    let text = std::fs::read_to_string(p.policy_path()).unwrap().replace(
        "min_replicas = 2\nmax_replicas = 5",
        "min_replicas = 3\nmax_replicas = 5",
    );
    std::fs::write(p.policy_path(), text).unwrap();
    hup(&daemon);
    daemon.expect_line("reloaded", Duration::from_secs(10));
    // The new minimum of 3 is restored.
    daemon.expect_line("SCALE UP 2 -> 3", Duration::from_secs(30));
    // One failed reload; two good loads (at start, and the completed file).
    let m = daemon.metrics();
    let path = p.policy_path().display().to_string();
    assert!(
        m.contains(&format!(
            "vedfolnir_autoscaler_reloads_total{{path=\"{path}\",kind=\"error\"}} 1"
        )) && m.contains(&format!(
            "vedfolnir_autoscaler_reloads_total{{path=\"{path}\",kind=\"ok\"}} 2"
        )),
        "{m}"
    );
}

/// `simulate --history` from a real Prometheus: an hour of the workload's
/// request counter and our recording rules' series, backfilled with
/// promtool (10, then 40, then 10 requests a second, 20 minutes each, on
/// 1 then 2 then 1 replicas at 100 requests a second each), read back as
/// the trace and the calibration.
#[test]
fn a_prometheus_range_query_is_the_load_and_the_recording_rules_the_calibration() {
    if !have("promtool") || !have("prometheus") {
        return;
    }
    // Three hours ago, at a minute's start: inside the default retention,
    // outside the head block.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let t0 = (now_ms / 60_000 - 180) * 60_000;
    let rate = |minute: i64| {
        if (20..40).contains(&minute) {
            40.0
        } else {
            10.0
        }
    };
    let mut counter = String::new();
    let mut gauges = String::new();
    let mut total = 0.0;
    for k in 0..=(60 * 4) {
        let (t, minute) = (t0 + k * 15_000, k / 4);
        if k > 0 {
            total += rate((k - 1) / 4) * 15.0;
        }
        let s = t as f64 / 1000.0;
        counter.push_str(&format!(
            "vedfolnir_requests_total{{service=\"web\"}} {total} {s}\n"
        ));
        let replicas = if rate(minute) > 10.0 { 2.0 } else { 1.0 };
        gauges.push_str(&format!(
            "vedfolnir:cpu_usage_avg{{service=\"web\"}} {} {s}\n\
             vedfolnir:memory_usage_avg{{service=\"web\"}} {} {s}\n\
             vedfolnir:instance_count{{service=\"web\"}} {replicas} {s}\n",
            rate(minute) / (100.0 * replicas),
            0.1 + 0.2 * rate(minute) / (100.0 * replicas),
        ));
    }
    // OpenMetrics wants each family's samples together.
    let by_family = |name: &str| -> String {
        gauges
            .lines()
            .filter(|l| l.starts_with(&format!("{name}{{")))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    let server = Server::backfilled(&format!(
        "{counter}{}{}{}# EOF\n",
        by_family("vedfolnir:cpu_usage_avg"),
        by_family("vedfolnir:memory_usage_avg"),
        by_family("vedfolnir:instance_count")
    ));
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("web.toml");
    std::fs::write(
        &policy,
        "service = \"web\"\nplugin = \"builtin:target-tracking\"\nmin_replicas = 1\nmax_replicas = 4\n",
    )
    .unwrap();
    let iso = |ms: i64| -> String {
        let secs = ms / 1000;
        let out = Command::new("date")
            .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%SZ"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let out = run(&[
        "simulate",
        "--history",
        "web",
        "--prometheus-url",
        &server.url(),
        "--from",
        &iso(t0),
        "--to",
        &iso(t0 + 60 * 60_000),
        "--policies",
        policy.to_str().unwrap(),
        "--json",
    ]);
    drop(server);
    let report: serde_json::Value = serde_json::from_str(&out.expect_code(0).stdout).unwrap();
    let h = &report["history"];
    assert_eq!(h["from_ms"], t0, "{h}");
    let load: Vec<f64> = serde_json::from_value(h["load"].clone()).unwrap();
    assert_eq!(load.len(), 60, "{load:?}");
    for (minute, got) in load.iter().enumerate() {
        let want = rate(minute as i64);
        assert!(
            (got - want).abs() <= 0.02 * want,
            "minute {minute}: {got} for {want}: {load:?}"
        );
    }
    let c = &h["calibration"];
    assert!((c["capacity"].as_f64().unwrap() - 100.0).abs() < 1.0, "{c}");
    assert!(
        (c["memory_idle"].as_f64().unwrap() - 0.1).abs() < 0.01,
        "{c}"
    );
    assert!(
        (c["memory_busy"].as_f64().unwrap() - 0.2).abs() < 0.02,
        "{c}"
    );
    assert_eq!(c["start_replicas"], 1, "{c}");
    let recorded: Vec<Option<f64>> =
        serde_json::from_value(h["recorded_replicas"].clone()).unwrap();
    assert_eq!(recorded[30], Some(2.0), "{recorded:?}");
    assert_eq!(
        report["results"][0]["policy"], "web",
        "the current policy first"
    );
}
