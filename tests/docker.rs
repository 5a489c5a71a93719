//! The real binary against the real Docker engine: our own workload
//! (tests/workload, built static and packed `FROM scratch` here, since no
//! registry is reachable) run by docker-compose, then scaled by
//! `scale-up`, `scale-down` and `check`, and the Swarm path on a one-node
//! swarm.
//!
//! Without an engine these tests say so and pass locally; with `CI=true`
//! they fail instead.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::util::{Output, root, run_env};

/// The image every test runs.
const IMAGE: &str = "vedfolnir-workload:test";

pub(crate) fn cmd(program: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
        .into()
}

pub(crate) fn docker(args: &[&str]) -> Output {
    cmd("docker", args, &[])
}

/// True when the engine answers. Without one: a note and `false` locally, a
/// failure under `CI=true`.
pub(crate) fn engine() -> bool {
    let out = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output();
    let ok = matches!(&out, Ok(o) if o.status.success());
    if !ok {
        let why = match out {
            Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
            Err(e) => e.to_string(),
        };
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true, and the Docker engine is not reachable (docker info: {why})"
        );
        eprintln!("no Docker engine here (docker info: {why}); Docker tests not run");
    }
    ok
}

/// Build the workload statically and pack it into a `FROM scratch` image,
/// once per test run.
pub(crate) fn image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = root();
        let target = "x86_64-unknown-linux-musl";
        let installed = cmd("rustup", &["target", "list", "--installed"], &[]);
        if !installed.stdout.lines().any(|l| l.trim() == target) {
            cmd("rustup", &["target", "add", target], &[]).expect_code(0);
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let target_dir = root.join("target/workload");
        let out = Command::new(cargo)
            .current_dir(&root)
            .args([
                "build",
                "--release",
                "--locked",
                "-p",
                "vedfolnir-test-workload",
                "--target",
                target,
                "--target-dir",
            ])
            .arg(&target_dir)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .output()
            .expect("cargo runs");
        assert!(
            out.status.success(),
            "building the workload failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let context = tempfile::tempdir().unwrap();
        std::fs::copy(
            target_dir.join(target).join("release/workload"),
            context.path().join("workload"),
        )
        .unwrap();
        std::fs::copy(
            root.join("tests/workload/Dockerfile"),
            context.path().join("Dockerfile"),
        )
        .unwrap();
        docker(&["build", "-q", "-t", IMAGE, context.path().to_str().unwrap()]).expect_code(0);
    });
    IMAGE
}

/// `docker swarm leave` takes their networks from the running containers
/// of every Compose project (their published ports and addresses are gone,
/// and a request to them is refused: seen on this engine), so a swarm a
/// test made is left only while no test has containers of its own up: the
/// tests that have are counted here ([`networks_in_use`]), and the leave
/// waits for none ([`leave_swarm`]). A count, not a lock that blocks: a test
/// may hold two (two projects) without waiting on the leave.
static IN_USE: Mutex<usize> = Mutex::new(0);
static RELEASED: Condvar = Condvar::new();

/// Held while a test's own containers run: a swarm is not left meanwhile.
pub(crate) struct NetworksInUse(());

pub(crate) fn networks_in_use() -> NetworksInUse {
    *IN_USE.lock().unwrap_or_else(PoisonError::into_inner) += 1;
    NetworksInUse(())
}

impl Drop for NetworksInUse {
    fn drop(&mut self) {
        *IN_USE.lock().unwrap_or_else(PoisonError::into_inner) -= 1;
        RELEASED.notify_all();
    }
}

/// Leave the swarm once no test has containers up; a test starting its
/// own meanwhile waits for the leave.
fn leave_swarm() {
    let none = RELEASED
        .wait_while(IN_USE.lock().unwrap_or_else(PoisonError::into_inner), |n| {
            *n > 0
        })
        .unwrap_or_else(PoisonError::into_inner);
    let _ = docker(&["swarm", "leave", "--force"]);
    // `swarm init` made this bridge; leaving does not remove it.
    let _ = docker(&["network", "rm", "docker_gwbridge"]);
    drop(none);
}

/// A Compose project of its own for one test, taken down on drop.
pub(crate) struct Project {
    pub(crate) name: String,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    /// Declared last: dropped after the project is down.
    _networks: NetworksInUse,
}

impl Project {
    /// `docker-compose up` with `replicas` of the app, waiting until they
    /// are healthy.
    pub(crate) fn up(test: &str, replicas: u32, image: &str) -> Project {
        let name = format!("vt{test}{}", std::process::id());
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("control")).unwrap();
        let project = Project {
            env: vec![
                (
                    "CONTROL_DIR".into(),
                    dir.path().join("control").display().to_string(),
                ),
                ("WORKLOAD_IMAGE".into(), image.into()),
            ],
            name,
            dir,
            _networks: networks_in_use(),
        };
        project
            .compose(&["up", "-d", "--scale", &format!("vedfolnir={replicas}")])
            .expect_code(0);
        project.wait_healthy(replicas);
        project
    }

    pub(crate) fn compose(&self, args: &[&str]) -> Output {
        let file = root().join("tests/workload/compose.yml");
        let mut all = vec!["-p", &self.name, "-f", file.to_str().unwrap()];
        all.extend_from_slice(args);
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        cmd("docker-compose", &all, &env)
    }

    fn filter(&self, service: &str) -> Vec<String> {
        vec![
            "--filter".into(),
            format!("label=com.docker.compose.project={}", self.name),
            "--filter".into(),
            format!("label=com.docker.compose.service={service}"),
        ]
    }

    /// Names of the running containers of `service`, sorted.
    pub(crate) fn running(&self, service: &str) -> Vec<String> {
        let mut args = vec!["ps".to_string(), "--format".into(), "{{.Names}}".into()];
        args.extend(self.filter(service));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut names: Vec<String> = docker(&args)
            .expect_code(0)
            .stdout
            .lines()
            .map(str::to_string)
            .collect();
        names.sort();
        names
    }

    pub(crate) fn wait_healthy(&self, n: u32) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut args = vec!["ps".to_string(), "-q".into()];
            args.extend(self.filter("vedfolnir"));
            args.extend(["--filter".into(), "health=healthy".into()]);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let healthy = docker(&args).stdout.lines().count() as u32;
            if healthy >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{healthy} of {n} replicas healthy after 60 s"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// A policy file for this project's app service.
    pub(crate) fn policy(&self, extra: &str) -> PathBuf {
        let path = self.dir.path().join("policy.toml");
        std::fs::write(
            &path,
            format!(
                "service = \"vedfolnir\"\nplugin = \"builtin:threshold-score\"\nmin_replicas = 2\nmax_replicas = 5\n{extra}\n[target]\nproject = \"{}\"\n[rollout]\nmonitor = \"20s\"\nstop_timeout = \"5s\"\n",
                self.name
            ),
        )
        .unwrap();
        path
    }

    pub(crate) fn policy_path(&self) -> PathBuf {
        self.dir.path().join("policy.toml")
    }

    pub(crate) fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Run the autoscaler on this project's policy.
    pub(crate) fn cli(&self, args: &[&str]) -> Output {
        self.cli_env(args, &[])
    }

    /// Run the autoscaler on this project's policy, with more environment.
    pub(crate) fn cli_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let policy = self.dir.path().join("policy.toml");
        if !policy.exists() {
            self.policy("");
        }
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--policy", policy.to_str().unwrap()]);
        let state = self.state_dir();
        let mut env = env.to_vec();
        env.push(("VEDFOLNIR_STATE_DIR", state.to_str().unwrap()));
        run_env(&all, &env)
    }

    /// The audit log's records, oldest first.
    pub(crate) fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.state_dir().join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.compose(&["down", "-t", "1", "--remove-orphans"]);
    }
}

fn inspect(name: &str, format: &str) -> String {
    docker(&["inspect", name, "--format", format])
        .expect_code(0)
        .stdout
        .trim()
        .to_string()
}

/// The finished records of the audit, with their reports.
fn finished(audit: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    audit
        .iter()
        .filter(|r| r["event"] == "scale-finished")
        .collect()
}

#[test]
fn compose_scales_2_4_2_cloning_limits_and_never_touching_other_services() {
    if !engine() {
        return;
    }
    let p = Project::up("scale", 2, image());
    let store = p.running("store");
    assert_eq!(store.len(), 1);
    let store_before = inspect(&store[0], "{{.Id}} {{.State.StartedAt}}");

    p.cli(&["scale-up", "4"]).expect_code(0);
    let app = p.running("vedfolnir");
    assert_eq!(app.len(), 4, "{app:?}");
    // Compose sees the new replicas as part of its service.
    let ps = p.compose(&["ps"]).expect_code(0).stdout;
    for n in [3, 4] {
        let name = format!("{}_vedfolnir_{n}", p.name);
        assert!(ps.contains(&name), "{name} missing from compose ps:\n{ps}");
        assert_eq!(
            inspect(
                &name,
                "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.MemoryReservation}} {{.HostConfig.RestartPolicy.Name}} {{.State.Health.Status}}"
            ),
            "2000000000 2147483648 1000 1073741824 unless-stopped healthy",
            "{name} does not carry the template's limits"
        );
        let mounts = inspect(&name, "{{range .Mounts}}{{.Destination}}{{end}}");
        assert_eq!(mounts, "/control");
    }

    // The seed's manual scale-up had no cap: ours clamps, and says so.
    let out = p.cli(&["scale-up", "9"]).expect_code(0);
    assert!(
        out.stderr.contains("above max_replicas 5"),
        "{}",
        out.stderr
    );
    assert_eq!(p.running("vedfolnir").len(), 5);

    // Down to 2: the newest go, gracefully, and never below min.
    let out = p.cli(&["scale-down", "1"]).expect_code(0);
    assert!(
        out.stderr.contains("below min_replicas 2"),
        "{}",
        out.stderr
    );
    assert_eq!(
        p.running("vedfolnir"),
        [
            format!("{}_vedfolnir_1", p.name),
            format!("{}_vedfolnir_2", p.name)
        ]
    );
    // A scale-down to more than are running is refused.
    let out = p.cli(&["scale-down", "3"]).expect_code(2);
    assert!(out.stderr.contains("runs only 2"), "{}", out.stderr);

    // The other service was never restarted or recreated.
    assert_eq!(
        inspect(&store[0], "{{.Id}} {{.State.StartedAt}}"),
        store_before
    );

    // Every action audited before and after.
    let audit = p.audit();
    let events: Vec<&str> = audit.iter().map(|r| r["event"].as_str().unwrap()).collect();
    assert_eq!(
        events,
        [
            "scale-started",
            "scale-finished",
            "scale-started",
            "scale-finished",
            "scale-started",
            "scale-finished"
        ]
    );
    let report = p.cli(&["report"]).expect_code(0).stdout;
    assert!(report.contains("replicas: 2 running, 2 ready"), "{report}");
    assert!(report.contains("last scale-up:"), "{report}");
    assert!(!report.contains("never"), "{report}");
    // Why it holds: the recommendation with its scores against the ones it
    // scales at, the guard rails' words, the verdict.
    assert!(
        report.contains("recommendation: ")
            && report.contains("(scores up ")
            && report.contains("/3 down ")
            && report.contains("guard rails:")
            && report.contains("decision: "),
        "{report}"
    );
}

#[test]
fn a_replica_that_never_gets_healthy_is_rolled_back_audited_and_starts_no_cooldown() {
    if !engine() {
        return;
    }
    let p = Project::up("rollback", 2, image());
    // New replicas find this file when they start and never pass their
    // healthcheck; the two running ones stay healthy.
    std::fs::write(p.dir.path().join("control/fail-health"), "").unwrap();
    let out = p.cli(&["scale-up", "3"]).expect_code(7);
    assert!(out.stderr.contains("RolledBack"), "{}", out.stderr);
    assert!(
        out.stderr.contains("no cooldown recorded"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.contains("unhealthy"), "{}", out.stdout);
    assert_eq!(p.running("vedfolnir").len(), 2);
    // Removed, not left stopped.
    let all = docker(&[
        "ps",
        "-a",
        "-q",
        "--filter",
        &format!("label=com.docker.compose.project={}", p.name),
    ])
    .stdout;
    assert_eq!(all.lines().count(), 3, "app x2 + store:\n{all}");

    let audit = p.audit();
    let done = finished(&audit);
    assert_eq!(done.len(), 1);
    let report = &done[0]["report"];
    assert_eq!(report["outcome"], "rolled-back");
    assert_eq!(report["failed"].as_array().unwrap().len(), 1);
    assert_eq!(report["reached"], 2);
    assert!(!p.state_dir().join("vedfolnir.state.json").exists());
    let text = p.cli(&["report"]).expect_code(0).stdout;
    assert!(text.contains("RolledBack"), "{text}");
    assert!(text.contains("last scale-down: never"), "{text}");
}

#[test]
fn report_reads_a_missing_state_directory_as_empty_and_creates_nothing() {
    if !engine() {
        return;
    }
    let p = Project::up("readonly", 1, image());
    p.policy("");
    let missing = p.state_dir().with_file_name("never-made");
    let out = p
        .cli(&["report", "--state-dir", missing.to_str().unwrap()])
        .expect_code(0);
    assert!(
        out.stderr.contains("no state directory at")
            && out.stderr.contains("--state-dir or VEDFOLNIR_STATE_DIR"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.contains("last scale-down: never"),
        "{}",
        out.stdout
    );
    assert!(
        !missing.exists(),
        "a read-only command created its state directory"
    );
}

#[test]
fn check_replaces_a_replica_removed_behind_its_back_up_to_min() {
    if !engine() {
        return;
    }
    let p = Project::up("replace", 2, image());
    docker(&["rm", "-f", &format!("{}_vedfolnir_2", p.name)]).expect_code(0);
    assert_eq!(p.running("vedfolnir").len(), 1);

    // While another instance holds the service's lock, a pass does nothing.
    std::fs::create_dir_all(p.state_dir()).unwrap();
    let lock = std::fs::File::create(p.state_dir().join("vedfolnir.lock")).unwrap();
    lock.lock().unwrap();
    let out = p.cli(&["check"]).expect_code(9);
    assert!(
        out.stderr.contains("another vedfolnir-autoscaler"),
        "{}",
        out.stderr
    );
    assert_eq!(p.running("vedfolnir").len(), 1);
    drop(lock);
    let out = p.cli(&["check"]).expect_code(0);
    assert!(
        out.stdout.contains("below-minimum [1 -> 2]"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("SCALE UP 1 -> 2"), "{}", out.stdout);
    assert_eq!(p.running("vedfolnir").len(), 2);
    let audit = p.audit();
    assert_eq!(audit[0]["actor"], "auto");
    assert_eq!(finished(&audit)[0]["report"]["outcome"], "succeeded");
    // A second pass finds nothing to do (cooldowns, no data yet).
    let out = p.cli(&["check"]).expect_code(0);
    assert!(out.stdout.contains("HOLD at 2"), "{}", out.stdout);
}

#[test]
fn a_name_conflict_mid_scale_is_recorded_as_a_partial_scale() {
    if !engine() {
        return;
    }
    let p = Project::up("conflict", 2, image());
    // A container that is not a replica squats on the name replica 4 needs.
    let squatter = format!("{}_vedfolnir_4", p.name);
    docker(&["create", "--name", &squatter, IMAGE]).expect_code(0);
    let out = p.cli(&["scale-up", "4"]);
    docker(&["rm", "-f", &squatter]).expect_code(0);
    let out = out.expect_code(7);
    assert!(out.stderr.contains("Partial"), "{}", out.stderr);
    assert!(out.stderr.contains("name is taken"), "{}", out.stderr);
    assert_eq!(p.running("vedfolnir").len(), 3);
    let audit = p.audit();
    let r = &finished(&audit)[0]["report"];
    assert_eq!(r["outcome"], "partial");
    assert_eq!(r["reached"], 3);
    assert_eq!(
        r["created"],
        serde_json::json!([format!("{}_vedfolnir_3", p.name)])
    );
    // The count moved, so its cooldown started.
    assert!(p.state_dir().join("vedfolnir.state.json").exists());
}

#[test]
fn a_missing_image_fails_the_scale_clearly_and_starts_no_cooldown() {
    if !engine() {
        return;
    }
    let doomed = format!("vedfolnir-workload:doomed{}", std::process::id());
    docker(&["tag", image(), &doomed]).expect_code(0);
    let p = Project::up("image", 2, &doomed);
    // Untag: the running replicas keep their image; a new one cannot be made.
    docker(&["rmi", &doomed]).expect_code(0);
    let out = p.cli(&["scale-up", "3"]).expect_code(7);
    assert!(
        out.stdout.contains("is missing on this engine"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("no cooldown recorded"),
        "{}",
        out.stderr
    );
    assert_eq!(p.running("vedfolnir").len(), 2);
    assert!(!p.state_dir().join("vedfolnir.state.json").exists());
    assert_eq!(finished(&p.audit())[0]["report"]["outcome"], "failed");
}

#[test]
fn an_unknown_service_or_project_is_exit_6() {
    if !engine() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.toml");
    std::fs::write(
        &policy,
        "service = \"nothere\"\nplugin = \"builtin:threshold-score\"\n[target]\nproject = \"no-such-project\"\n",
    )
    .unwrap();
    let state = dir.path().join("state");
    for command in ["health", "scale-up", "check"] {
        let out = run_env(
            &[command, "--policy", policy.to_str().unwrap()],
            &[("VEDFOLNIR_STATE_DIR", state.to_str().unwrap())],
        )
        .expect_code(6);
        assert!(
            out.stderr.contains("\"no-such-project\" has no containers"),
            "{command}: {}",
            out.stderr
        );
    }
}

#[test]
fn a_missing_socket_or_one_we_may_not_open_is_exit_5() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.toml");
    std::fs::write(
        &policy,
        "service = \"web\"\nplugin = \"builtin:threshold-score\"\n",
    )
    .unwrap();
    let out = run_env(
        &["health", "--policy", policy.to_str().unwrap()],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    )
    .expect_code(5);
    assert!(
        out.stderr
            .contains("/nonexistent/docker.sock does not exist: is the Docker engine running?"),
        "{}",
        out.stderr
    );

    // A socket that exists but is not ours to open.
    let sock_dir = tempfile::tempdir().unwrap();
    let sock = sock_dir.path().join("docker.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let host = format!("unix://{}", sock.display());
    let out = if is_root() {
        // Root may open anything: drop to nobody for the run.
        use std::os::unix::fs::PermissionsExt;
        for p in [dir.path(), sock_dir.path()] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600)).unwrap();
        cmd(
            "setpriv",
            &[
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--",
                env!("CARGO_BIN_EXE_vedfolnir-autoscaler"),
                "health",
                "--policy",
                policy.to_str().unwrap(),
            ],
            &[("DOCKER_HOST", &host)],
        )
    } else {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o000)).unwrap();
        run_env(
            &["health", "--policy", policy.to_str().unwrap()],
            &[("DOCKER_HOST", &host)],
        )
    };
    let out = out.expect_code(5);
    assert!(
        out.stderr.contains("permission denied")
            && out.stderr.contains("member of the docker group"),
        "{}",
        out.stderr
    );
}

/// Whether this process runs as root (root ignores file permissions).
fn is_root() -> bool {
    cmd("id", &["-u"], &[]).stdout.trim() == "0"
}

/// A one-node swarm with one service of the workload image, for one test
/// at a time (the tests of this binary run in parallel; two would init and
/// leave one swarm under each other). On drop: the service removed, and
/// the swarm left if this test made it, as it was found.
pub(crate) struct Swarm {
    created: bool,
    pub(crate) service: String,
    /// The lease the test's scalers name (removed at the end).
    pub(crate) lease: String,
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
}

impl Swarm {
    /// Join or make the swarm, and start `service` with `replicas`.
    pub(crate) fn up(service: &str, replicas: u32) -> Swarm {
        static ONE: Mutex<()> = Mutex::new(());
        let guard = ONE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let image = image();
        let state = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]).stdout;
        let created = state.trim() == "inactive";
        if created {
            docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]).expect_code(0);
        }
        let swarm = Swarm {
            created,
            service: format!("{service}{}", std::process::id()),
            lease: format!("{service}-lease{}", std::process::id()),
            _one_at_a_time: guard,
        };
        let replicas = replicas.to_string();
        docker(&[
            "service",
            "create",
            "-d",
            "--name",
            &swarm.service,
            "--replicas",
            &replicas,
            "--limit-cpu",
            "0.5",
            image,
        ])
        .expect_code(0);
        swarm.wait_for(&format!("{replicas}/{replicas}"), Duration::from_secs(60));
        swarm
    }

    /// Wait until `docker service ls` shows `replicas` (`running/desired`).
    pub(crate) fn wait_for(&self, replicas: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while swarm_replicas(&self.service) != replicas {
            assert!(
                Instant::now() < deadline,
                "{} never showed {replicas}: {}",
                self.service,
                swarm_replicas(&self.service)
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// A label on the service (`None` when it has none).
    pub(crate) fn label(&self, key: &str) -> Option<String> {
        let out = docker(&[
            "service",
            "inspect",
            "--format",
            &format!("{{{{index .Spec.Labels \"{key}\"}}}}"),
            &self.service,
        ])
        .expect_code(0)
        .stdout;
        let v = out.trim();
        (!v.is_empty() && v != "<no value>").then(|| v.to_string())
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        let _ = docker(&["service", "rm", &self.service]);
        let _ = docker(&["config", "rm", &self.lease]);
        if self.created {
            leave_swarm();
        }
    }
}

/// `running/desired` of the Swarm service named exactly `service` (the
/// engine's name filter also matches longer names).
pub(crate) fn swarm_replicas(service: &str) -> String {
    docker(&[
        "service",
        "ls",
        "--filter",
        &format!("name={service}"),
        "--format",
        "{{.Name}} {{.Replicas}}",
    ])
    .expect_code(0)
    .stdout
    .lines()
    .find_map(|l| l.strip_prefix(&format!("{service} ")))
    .unwrap_or("")
    .trim()
    .to_string()
}

#[test]
fn swarm_scales_1_3_1_by_the_service_replica_count() {
    if !engine() {
        return;
    }
    let swarm = Swarm::up("vtswarm", 1);
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("swarm.toml");
    std::fs::write(
        &policy,
        format!(
            "service = \"{}\"\nplugin = \"builtin:threshold-score\"\nmin_replicas = 1\nmax_replicas = 4\n[target]\nkind = \"swarm\"\n[rollout]\nmonitor = \"60s\"\n",
            swarm.service
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--policy", policy.to_str().unwrap()]);
        run_env(
            &all,
            &[
                ("VEDFOLNIR_STATE_DIR", state.to_str().unwrap()),
                ("VEDFOLNIR_LEASE_NAME", &swarm.lease),
            ],
        )
    };
    run(&["scale-up", "3"]).expect_code(0);
    assert_eq!(swarm_replicas(&swarm.service), "3/3");
    let health = run(&["health"]).expect_code(0);
    assert!(health.stdout.contains("3 running"), "{}", health.stdout);
    run(&["scale-down", "1"]).expect_code(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while swarm_replicas(&swarm.service) != "1/1" {
        assert!(
            Instant::now() < deadline,
            "{}",
            swarm_replicas(&swarm.service)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let audit = std::fs::read_to_string(state.join("audit.jsonl")).unwrap();
    assert_eq!(
        audit.matches("\"outcome\":\"succeeded\"").count(),
        2,
        "{audit}"
    );
    drop(swarm);
}

/// `docker exec` the workload's own load commands (the image has no shell).
fn exec_load(container: &str, args: &[&str]) -> std::process::Child {
    let mut all = vec!["exec", container, "/workload"];
    all.extend_from_slice(args);
    Command::new("docker")
        .args(&all)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

fn usage(out: &Output) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    v["usage"].clone()
}

#[test]
fn the_docker_source_reads_the_services_own_replicas_against_their_own_limits() {
    if !engine() {
        return;
    }
    let p = Project::up("stats", 2, image());
    let store = p.running("store").remove(0);

    // Load on the other service does not show in this one's figures.
    let mut burner = exec_load(&store, &["burn", "5000"]);
    std::thread::sleep(Duration::from_millis(500));
    let quiet = usage(&p.cli(&["check", "--json", "--dry-run"]).expect_code(0));
    burner.wait().unwrap();
    assert!(quiet["cpu"].as_f64().unwrap() < 0.1, "{quiet}");
    assert_eq!(
        (quiet["running"].as_u64(), quiet["ready"].as_u64()),
        (Some(2), Some(2))
    );

    // One replica burns one core of its 2-CPU limit and holds 512 MiB of its
    // 2 GiB: about 0.5 and 0.25 for it, half that averaged over two.
    let app = format!("{}_vedfolnir_1", p.name);
    let mut load = [
        exec_load(&app, &["burn", "6000"]),
        exec_load(&app, &["hold", "512", "6000"]),
    ];
    std::thread::sleep(Duration::from_millis(1500));
    // The 512 MiB take a moment to be touched on a busy machine (the files
    // are read at once, where the engine's stats took a second or two):
    // read again until the hold shows, within its 6 s.
    let started = Instant::now();
    let busy = loop {
        let busy = usage(&p.cli(&["check", "--json", "--dry-run"]).expect_code(0));
        let held = busy["memory"].as_f64().is_some_and(|m| m >= 0.1);
        if held || started.elapsed() > Duration::from_millis(3000) {
            break busy;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    for l in &mut load {
        l.wait().unwrap();
    }
    let cpu = busy["cpu"].as_f64().unwrap();
    let memory = busy["memory"].as_f64().unwrap();
    assert!((0.1..0.45).contains(&cpu), "cpu {cpu}: {busy}");
    assert!((0.1..0.2).contains(&memory), "memory {memory}: {busy}");
    // A dry run decides but never acts. (What it recorded is printed: once,
    // under a full CI run, this found a record.)
    let audit = p.audit();
    assert!(audit.is_empty(), "{audit:?}");
}

/// The cgroup hierarchy this host mounts, when the engine's containers'
/// cgroups can be read here: what the docker source should read by.
fn host_cgroup_path() -> Option<&'static str> {
    let root = std::path::Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").is_file() {
        Some("cgroup-v2")
    } else if root.join("memory").is_dir() {
        Some("cgroup-v1")
    } else {
        None
    }
}

/// How many replicas each path read, from `check --json`'s usage.
fn read_by(usage: &serde_json::Value) -> Vec<(String, u64)> {
    usage["read_by"]
        .as_object()
        .unwrap_or_else(|| panic!("no read_by: {usage}"))
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect()
}

#[test]
fn the_docker_source_reads_the_cgroup_files_and_falls_back_to_the_engines_stats() {
    if !engine() {
        return;
    }
    let Some(cgroup) = host_cgroup_path() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI runs where /sys/fs/cgroup is a cgroup hierarchy"
        );
        return;
    };
    let p = Project::up("cgpath", 1, image());
    let app = format!("{}_vedfolnir_1", p.name);
    // One core of the replica's 2-CPU limit, read by each path in turn.
    let burning = || {
        let load = exec_load(&app, &["burn", "4000"]);
        std::thread::sleep(Duration::from_millis(800));
        load
    };
    let check = |env: &[(&str, &str)]| {
        let mut load = burning();
        let out = p
            .cli_env(&["check", "--json", "--dry-run"], env)
            .expect_code(0);
        load.wait().unwrap();
        (usage(&out), out.stderr)
    };

    // The host's own files: no stats call to the engine.
    let (files, _) = check(&[]);
    assert_eq!(read_by(&files), [(cgroup.to_string(), 1)], "{files}");
    // The engine's stats API, asked for: VEDFOLNIR_CGROUP_ROOT=off.
    let (api, _) = check(&[("VEDFOLNIR_CGROUP_ROOT", "off")]);
    assert_eq!(read_by(&api), [("api".to_string(), 1)], "{api}");
    // Both read the same load: about 0.5 of the replica's limit.
    for u in [&files, &api] {
        let cpu = u["cpu"].as_f64().unwrap();
        assert!((0.3..0.65).contains(&cpu), "cpu {cpu}: {u}");
        let throttled = u["cpu_throttled"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&throttled), "{u}");
    }
    let (mf, ma) = (
        files["memory"].as_f64().unwrap(),
        api["memory"].as_f64().unwrap(),
    );
    assert!(
        (mf - ma).abs() < 0.01,
        "memory by the files {mf}, by the API {ma}"
    );

    // A hierarchy that does not hold this container (another host's, or a
    // layout we do not know): the replica falls back to the API, and the
    // fallback is said.
    let elsewhere = tempfile::tempdir().unwrap();
    for c in ["memory", "cpuacct", "cpu"] {
        std::fs::create_dir_all(elsewhere.path().join(c).join("docker")).unwrap();
    }
    let (fallback, stderr) =
        check(&[("VEDFOLNIR_CGROUP_ROOT", elsewhere.path().to_str().unwrap())]);
    assert_eq!(read_by(&fallback), [("api".to_string(), 1)], "{fallback}");
    assert!(
        stderr.contains("through the engine's API") && stderr.contains("no cgroup of container"),
        "{stderr}"
    );
    assert!(fallback["cpu"].as_f64().is_some(), "{fallback}");
}

/// GET `path` from 127.0.0.1:`port`; the answer, or the error.
pub(crate) fn http_get(port: &str, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(format!("127.0.0.1:{port}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// The host port a container publishes its 8080 on (on 127.0.0.1).
pub(crate) fn published_port(container: &str) -> String {
    let out = docker(&["port", container, "8080/tcp"]).expect_code(0);
    out.stdout
        .lines()
        .next()
        .and_then(|l| l.rsplit(':').next())
        .unwrap_or_else(|| panic!("{container} publishes no 8080: {:?}", out.stdout))
        .trim()
        .to_string()
}

#[test]
fn oom_kills_are_counted_from_engine_events_across_restarts() {
    if !engine() {
        return;
    }
    let image = image();
    let project = format!("vtoom{}", std::process::id());
    let name = format!("{project}_app_1");
    // A replica with a 64 MiB limit that restarts after an OOM kill (which
    // clears its OOMKilled flag; the engine's events keep the kill).
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        &format!("com.docker.compose.project={project}"),
        "--label",
        "com.docker.compose.service=app",
        "--label",
        "com.docker.compose.container-number=1",
        "--memory",
        "64m",
        "--memory-swap",
        "64m",
        "--restart",
        "always",
        "-p",
        "127.0.0.1::8080",
        image,
    ])
    .expect_code(0);
    struct Remove(String);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = docker(&["rm", "-f", &self.0]);
        }
    }
    let _cleanup = Remove(name.clone());
    let port = published_port(&name);
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_get(&port, "/health").is_err() {
        assert!(Instant::now() < deadline, "the replica never answered");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The serving process itself allocates past its limit.
    let _ = http_get(&port, "/hold?mib=256&ms=100");

    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.toml");
    std::fs::write(
        &policy,
        format!(
            "service = \"app\"\nplugin = \"builtin:threshold-score\"\nmin_replicas = 1\n[target]\nproject = \"{project}\"\n"
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = run_env(
            &["report", "--json", "--policy", policy.to_str().unwrap()],
            &[("VEDFOLNIR_STATE_DIR", state.to_str().unwrap())],
        )
        .expect_code(0);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        if v["usage"]["oom_kills"].as_u64().unwrap_or(0) >= 1 {
            // Restarted: its flag may be clear, the count is not.
            assert_eq!(v["replicas"]["containers"].as_array().unwrap().len(), 1);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no OOM kill seen: {}",
            out.stdout
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn the_daemons_compose_file_is_valid_and_asks_for_the_socket_group() {
    if !engine() {
        return;
    }
    let file = root().join("deploy/docker/compose.yml");
    let file = file.to_str().unwrap();
    // Without the socket's group it refuses, and says what to set.
    let out = cmd("docker-compose", &["-f", file, "config"], &[]);
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(out.stderr.contains("DOCKER_GID"), "{}", out.stderr);
    let out = cmd(
        "docker-compose",
        &["-f", file, "config"],
        &[("DOCKER_GID", "998")],
    )
    .expect_code(0);
    let config = out.stdout;
    for wanted in [
        "/var/run/docker.sock:/var/run/docker.sock",
        "127.0.0.1",
        "read_only: true",
        "'998'",
        "VEDFOLNIR_API_TOKEN_FILE: /run/secrets/api-token",
        "/sys/fs/cgroup:/host/cgroup:ro",
        "VEDFOLNIR_CGROUP_ROOT: /host/cgroup",
        "locks:/run/vedfolnir-autoscaler",
    ] {
        assert!(config.contains(wanted), "{wanted}:\n{config}");
    }
}
