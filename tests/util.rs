//! Helpers for running the real binary.
//!
//! - [`run`] runs `vedfolnir-autoscaler` with arguments from the workspace
//!   root (so the repository's `policies/` paths work) and returns its exit
//!   code, stdout and stderr.
//! - [`root`] is the workspace root; [`fixture`] the path of a built
//!   misbehaving plugin (see `plugins/fixtures/README.md`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// What a run printed, and how it ended.
#[derive(Debug)]
pub struct Output {
    /// The exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// Panic with both streams unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(self, code: i32) -> Output {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// `name` from the environment, parsed; `default` when unset or not a
/// value of its kind (the series' lengths and seeds).
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The path of a built fixture component.
pub fn fixture(name: &str) -> String {
    vedfolnir_plugin_artifacts::fixture(name).to_string()
}

/// Run the binary with `args` and extra environment, from the workspace root.
pub fn run_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vedfolnir-autoscaler"));
    clean(&mut cmd);
    cmd.args(args).envs(env.iter().copied());
    cmd.output().expect("the binary runs").into()
}

/// [`run`], ended by `timeout` after `seconds` (exit 124): a run that
/// waits on something fails its test instead of hanging it.
pub fn run_within(seconds: u32, args: &[&str]) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.arg(seconds.to_string())
        .arg(env!("CARGO_BIN_EXE_vedfolnir-autoscaler"));
    clean(&mut cmd);
    cmd.args(args).output().expect("timeout runs").into()
}

/// From the workspace root, without the environment that would change
/// what the binary does.
fn clean(cmd: &mut Command) {
    cmd.current_dir(root());
    for var in [
        "MIN_REPLICAS",
        "MAX_REPLICAS",
        "VEDFOLNIR_LOG",
        "VEDFOLNIR_CACHE_DIR",
        "VEDFOLNIR_STATE_DIR",
        "VEDFOLNIR_POLICY",
        "DOCKER_HOST",
        "DRY_RUN",
        "WEBHOOK_URL",
        "VEDFOLNIR_API_TOKEN",
        "VEDFOLNIR_API_TOKEN_FILE",
        "VEDFOLNIR_ALERTMANAGER_TOKEN",
        "VEDFOLNIR_ALERTMANAGER_TOKEN_FILE",
        "VEDFOLNIR_POLICIES",
        "VEDFOLNIR_INTERVAL",
        "VEDFOLNIR_LISTEN",
        "PROMETHEUS_URL",
    ] {
        cmd.env_remove(var);
    }
}

/// Each line `reader` gives, as `stamp` makes it, on a channel, read on a
/// thread of its own (a child's output, read while the test waits).
pub fn lines<T: Send + 'static>(
    reader: impl std::io::Read + Send + 'static,
    stamp: fn(String) -> T,
) -> std::sync::mpsc::Receiver<T> {
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(reader)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(stamp(line)).is_err() {
                break;
            }
        }
    });
    lines
}

impl From<std::process::Output> for Output {
    fn from(out: std::process::Output) -> Output {
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// True when `program --version` runs. Without it: a note and `false`
/// locally, a failure under `CI=true` (`.ci/run` installs every program
/// the tests use from Debian's packages).
pub fn have(program: &str) -> bool {
    let ok = Command::new(program)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true, and {program} is missing (.ci/run installs it from Debian's packages)"
        );
        eprintln!("{program} is not installed; the tests that need it not run");
    }
    ok
}

/// Run the binary with `args`, from the workspace root.
pub fn run(args: &[&str]) -> Output {
    run_env(args, &[])
}

/// Write `text` to `name` in a new temporary directory; returns both.
pub fn temp_file(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    (dir, path)
}
