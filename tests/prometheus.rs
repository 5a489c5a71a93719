//! Our Prometheus rules under promtool, and a real Prometheus (Debian's
//! package) scraping the test workload, with the autoscaler's `check`
//! scaling through the `prometheus` source.
//!
//! Without promtool/prometheus these tests say so and pass locally; with
//! `CI=true` they fail instead (`.ci/run` installs the package).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::docker::{Project, engine, http_get, image};
use crate::util::{Output, root};

/// True when `program` runs. Without it: a note and `false` locally, a
/// failure under `CI=true`.
fn have(program: &str) -> bool {
    let ok = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true, and {program} is missing (Debian's prometheus package)"
        );
        eprintln!("{program} is not installed; Prometheus tests not run");
    }
    ok
}

fn promtool(args: &[&str]) -> Output {
    let out = Command::new("promtool")
        .current_dir(root().join("deploy/prometheus"))
        .args(args)
        .output()
        .unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
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
    fn start(project: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let rules = root().join("deploy/prometheus/rules");
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
"#,
            rules = rules.display()
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
            .spawn()
            .unwrap();
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
            assert!(Instant::now() < deadline, "Prometheus never got ready");
            std::thread::sleep(Duration::from_millis(200));
        }
        server
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn published_port(container: &str) -> String {
    let out = Command::new("docker")
        .args(["port", container, "8080/tcp"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string()
}

/// Run `check` until its output contains `wanted`, or fail after `limit`.
fn check_until(p: &Project, prometheus: &str, wanted: &str, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    loop {
        let out = p.cli(&["check", "--prometheus-url", prometheus]);
        if out.stdout.contains(wanted) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "no {wanted:?} within {limit:?}; last pass:\n{}\n{}",
            out.stdout,
            out.stderr
        );
        std::thread::sleep(Duration::from_millis(1000));
    }
}

#[test]
fn queue_load_seen_through_prometheus_scales_up_then_down_when_it_stops() {
    if !engine() || !have("prometheus") {
        return;
    }
    let p = Project::up("prom", 2, image());
    let server = Server::start(&p.name);
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
    let ports: Vec<String> = p
        .running("vedfolnir")
        .iter()
        .map(|c| published_port(c))
        .collect();
    for port in &ports {
        http_get(port, "/enqueue?n=400").unwrap();
    }
    let up = check_until(
        &p,
        &server.url(),
        "SCALE UP 2 -> 3",
        Duration::from_secs(90),
    );
    assert!(up.stdout.contains("queue-high"), "{}", up.stdout);
    assert_eq!(p.running("vedfolnir").len(), 3);

    // The load stops: the queue empties, and after its window the service
    // goes back down.
    for port in &ports {
        http_get(port, "/drain").unwrap();
    }
    let down = check_until(
        &p,
        &server.url(),
        "SCALE DOWN 3 -> 2",
        Duration::from_secs(120),
    );
    assert!(down.stdout.contains("queue-low"), "{}", down.stdout);
    assert_eq!(p.running("vedfolnir").len(), 2);
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
