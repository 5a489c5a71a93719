//! Policy files: one TOML file per service.
//!
//! ```toml
//! service = "vedfolnir"
//! plugin = "builtin:threshold-score"   # or a .wasm path, relative to this file
//! min_replicas = 2
//! max_replicas = 5
//!
//! [cooldown]
//! up = "5m"      # wait after a scale-up before the next scale-up
//! down = "10m"   # wait after any scale before a scale-down
//!
//! [step]
//! max_up = 2     # most replicas added by one action
//! max_down = 1   # most replicas removed by one action
//!
//! [data]
//! staleness = "1m"   # a required signal older than this holds scaling
//!
//! [target]                  # what the actuator scales
//! kind = "compose"          # compose | swarm
//! project = "vedfolnir"     # the Compose project (com.docker.compose.project)
//! # name = "vedfolnir"      # the Compose or Swarm service; default: `service`
//! # selector = ["app=web"]  # more labels a replica must carry
//! # docker_host = "unix:///var/run/docker.sock"   # default: $DOCKER_HOST
//!
//! [rollout]                 # the seed's update_config
//! monitor = "60s"           # a new replica must be healthy within this
//! max_failure_ratio = 0.3   # more failures than this roll the scale back
//! stop_timeout = "10s"      # SIGTERM, then SIGKILL after this
//!
//! [signals.cpu]
//! source = "docker"                      # docker | prometheus | alertmanager
//! [signals.queue-depth]
//! source = "prometheus"
//! query = 'vedfolnir:queue_depth{service="vedfolnir"}'
//! required = true                        # hold while it is missing or stale
//!
//! [params.cpu-high]                      # the plugin's parameters; nested
//! threshold = 0.7                        # tables flatten to "cpu-high.threshold"
//! ```
//!
//! Loading is two-stage, as in Vector's config compiler: the file is parsed
//! into a TOML table, then walked key by key, so every problem (syntax,
//! unknown keys with a "did you mean", wrong types, min > max, a source
//! that cannot provide a signal) is reported at once, each naming the file
//! and the key. The plugin's own parameters are checked in a second pass
//! against what the plugin declares (the `policy` module).

mod read;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use vedfolnir_core::guard::GuardConfig;
use vedfolnir_core::model::SignalId;
use vedfolnir_core::snapshot::RawParam;
use vedfolnir_sandbox::files;

/// One problem in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// The key, dotted (`cooldown.up`, `params.cpu-high.threshold`); empty
    /// for problems with the file as a whole.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}: {}: {}", self.file.display(), self.key, self.message)
        }
    }
}

/// Every problem found in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "{n} problem{} in the policy configuration:",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.0 {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// Where a signal comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// Docker's stats API (cpu, memory, instance-count).
    Docker,
    /// A PromQL expression.
    Prometheus {
        /// The query; must resolve to one value per service.
        query: String,
    },
    /// Firing Alertmanager alerts with a `scaling_action` label.
    Alertmanager,
    /// Each ready replica's own `/metrics`, read directly.
    Scrape(ScrapeSignal),
    /// The simulator's model of the service: what a replay reads every
    /// signal from, whatever the file says (never written in a file).
    Model,
}

/// A signal read from the replicas' `/metrics` (`source = "scrape"`).
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeSignal {
    /// The metric family. Its `# TYPE` says how it becomes a signal: a
    /// gauge is aggregated over the replicas, a counter becomes a rate per
    /// second (or, with `total`, the ratio of the two rates), a histogram
    /// the `quantile` of the requests since the last scrape.
    pub metric: String,
    /// A counter the metric is divided by (errors over requests).
    pub total: Option<String>,
    /// The histogram quantile. Defaults to 0.95.
    pub quantile: f64,
    /// How a gauge's replicas combine. Defaults to `sum` for queue-depth,
    /// `mean` for the rest.
    pub aggregate: Aggregate,
    /// Where the replicas serve it (`[scrape]`).
    pub endpoint: Endpoint,
}

/// How a gauge's values over the replicas make one signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// The total (a queue: each replica's backlog adds up).
    Sum,
    /// The mean (a utilisation).
    Mean,
    /// The highest.
    Max,
}

/// `[scrape]`: where each replica serves its metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The container port.
    pub port: u16,
    /// The path. Defaults to `/metrics`.
    pub path: String,
    /// How long one replica may take to answer, ms. Defaults to 2 s.
    pub timeout_ms: u64,
}

/// The kinds of source, as [`Source`] names them without their settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKind {
    /// `docker`.
    Docker,
    /// `prometheus`.
    Prometheus,
    /// `alertmanager`.
    Alertmanager,
    /// `scrape`.
    Scrape,
    /// A replay's model.
    Model,
}

impl SourceKind {
    /// The kind as a policy file names it (`model` for a replay's).
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Docker => "docker",
            SourceKind::Prometheus => "prometheus",
            SourceKind::Alertmanager => "alertmanager",
            SourceKind::Scrape => "scrape",
            SourceKind::Model => "model",
        }
    }

    /// Every kind, in the order a pass asks them.
    pub const ALL: [SourceKind; 5] = [
        SourceKind::Docker,
        SourceKind::Prometheus,
        SourceKind::Alertmanager,
        SourceKind::Scrape,
        SourceKind::Model,
    ];
}

impl Source {
    /// Its kind.
    pub fn kind(&self) -> SourceKind {
        match self {
            Source::Docker => SourceKind::Docker,
            Source::Prometheus { .. } => SourceKind::Prometheus,
            Source::Alertmanager => SourceKind::Alertmanager,
            Source::Scrape(_) => SourceKind::Scrape,
            Source::Model => SourceKind::Model,
        }
    }
}

/// The signals the docker source reads for every policy unless its file
/// routes them elsewhere (it also adds [`docker_extra_signals`]); any other
/// signal needs a `[signals.<name>]` source.
pub const DOCKER_SIGNALS: [SignalId; 3] =
    [SignalId::Cpu, SignalId::Memory, SignalId::InstanceCount];

/// The OOM-kill count the docker source adds.
pub fn oom_kills_signal() -> SignalId {
    SignalId::Custom("oom-kills".into())
}

/// The share of CFS periods in which the replicas were throttled (their
/// CPU quota ran out), which the docker source adds: a replica can be
/// starved at a modest mean CPU.
pub fn cpu_throttled_signal() -> SignalId {
    SignalId::Custom("cpu-throttled".into())
}

/// The replicas' memory pressure (PSI `some avg10`, a fraction), which the
/// docker source adds where the kernel reports it for their cgroups (v2).
pub fn memory_pressure_signal() -> SignalId {
    SignalId::Custom("memory-pressure".into())
}

/// The custom signals the docker source adds to [`DOCKER_SIGNALS`].
pub fn docker_extra_signals() -> [SignalId; 3] {
    [
        oom_kills_signal(),
        cpu_throttled_signal(),
        memory_pressure_signal(),
    ]
}

/// How the policy reads one signal.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalSource {
    /// The signal.
    pub signal: SignalId,
    /// Where it comes from.
    pub source: Source,
    /// Hold while missing or stale; `None` keeps the plugin's declaration.
    pub required: Option<bool>,
}

/// Where the policy's plugin comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginRef {
    /// A policy shipped inside the daemon.
    Builtin(String),
    /// A `.wasm` file.
    File(PathBuf),
}

impl fmt::Display for PluginRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginRef::Builtin(name) => write!(f, "builtin:{name}"),
            PluginRef::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A checked policy file.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// The service it scales.
    pub service: String,
    /// The plugin that scores it.
    pub plugin: PluginRef,
    /// Bounds, cooldowns, steps, staleness.
    pub guard: GuardConfig,
    /// Signal sources by signal.
    pub signals: Vec<SignalSource>,
    /// The plugin's parameters, flattened, not yet checked against the plugin.
    pub params: BTreeMap<String, RawParam>,
    /// What the actuator scales, and where.
    pub target: Target,
    /// How a scale is rolled out and judged.
    pub rollout: Rollout,
    /// A second policy evaluated on the same input, never acted on: its
    /// divergence from this one is recorded and exposed.
    pub shadow: Option<ShadowFile>,
    /// The service's SLO, from which each pass derives the `slo-violation`
    /// signal (an error budget's count).
    pub slo: Option<SloSpec>,
}

/// `[slo]`: a pass violates it when the response-time p95 it read is above
/// `p95` or the error rate above `error_rate`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SloSpec {
    /// The most p95 response time, ms.
    pub p95_ms: Option<u64>,
    /// The most error rate, a fraction.
    pub error_rate: Option<f64>,
}

impl SloSpec {
    /// Whether a pass that read `p95` (seconds) and `error_rate` violated
    /// it; `None` when it read neither of the signals the SLO names.
    pub fn violated(&self, p95: Option<f64>, error_rate: Option<f64>) -> Option<bool> {
        let slow = self
            .p95_ms
            .zip(p95)
            .map(|(most, p)| p * 1000.0 > most as f64);
        let failing = self.error_rate.zip(error_rate).map(|(most, e)| e > most);
        match (slow, failing) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(false) || b.unwrap_or(false)),
        }
    }
}

/// `[shadow]`: a second plugin and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowFile {
    /// The shadow's plugin.
    pub plugin: PluginRef,
    /// Its parameters, flattened.
    pub params: BTreeMap<String, RawParam>,
}

/// Which kind of deployment a policy scales.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetKind {
    /// Containers of one Compose service, created and removed through the
    /// Docker API (only that service is touched).
    Compose {
        /// The Compose project (`com.docker.compose.project`).
        project: String,
    },
    /// A Swarm service, scaled by updating its replica count.
    Swarm,
}

/// What the actuator scales.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Compose or Swarm.
    pub kind: TargetKind,
    /// The Compose service or Swarm service name.
    pub name: String,
    /// More `key=value` labels every replica must carry.
    pub selector: Vec<(String, String)>,
    /// The engine's address; `None` uses `$DOCKER_HOST` or the local socket.
    pub docker_host: Option<String>,
}

impl Target {
    /// The target's name among every target of its engine, for its lock:
    /// `compose-<project>-<service>` or `swarm-<service>`.
    pub fn lock_name(&self) -> String {
        match &self.kind {
            TargetKind::Compose { project } => format!("compose-{project}-{}", self.name),
            TargetKind::Swarm => format!("swarm-{}", self.name),
        }
    }
}

/// How a scale is rolled out (the seed's `update_config`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rollout {
    /// How long a new replica has to become healthy (running, without a
    /// healthcheck), in milliseconds.
    pub monitor_ms: u64,
    /// More failed replicas than this fraction of those started rolls the
    /// whole scale back.
    pub max_failure_ratio: f64,
    /// Grace between SIGTERM and SIGKILL on scale-down, in milliseconds;
    /// `None` uses each container's own stop timeout (10 s when unset).
    pub stop_timeout_ms: Option<u64>,
}

impl Default for Rollout {
    fn default() -> Self {
        Rollout {
            monitor_ms: 60_000,
            max_failure_ratio: 0.3,
            stop_timeout_ms: None,
        }
    }
}

/// Overrides from the command line or the environment (the seed's
/// `MIN_REPLICAS` / `MAX_REPLICAS`).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Replaces `min_replicas`.
    pub min_replicas: Option<u32>,
    /// Replaces `max_replicas`.
    pub max_replicas: Option<u32>,
}

/// Upper bound on `max_replicas`: far beyond one Docker host, low enough
/// that a typo (50000) is caught.
pub const REPLICA_LIMIT: u32 = 1000;

/// A policy file with problems, and what could still be read of it: the
/// plugin, its parameters and the routed signals, so that the plugin's own
/// checks of its parameters are reported in the same run.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// Every problem found in the file.
    pub problems: Problems,
    /// The plugin, when `plugin` could be read.
    pub plugin: Option<PluginRef>,
    /// The parameters that could be read, flattened.
    pub params: BTreeMap<String, RawParam>,
    /// The signals whose source could be read.
    pub signals: Vec<SignalSource>,
    /// Whether the file has an `[slo]` (which provides `slo-violation`).
    pub slo: bool,
    /// The shadow policy, when it could be read.
    pub shadow: Option<ShadowFile>,
}

impl Rejected {
    /// A file of which nothing could be read (unreadable, not TOML).
    fn nothing_read(problems: Problems) -> Rejected {
        Rejected {
            problems,
            plugin: None,
            params: BTreeMap::new(),
            signals: Vec::new(),
            slo: false,
            shadow: None,
        }
    }
}

/// The largest policy file read: a policy file is a few KiB.
pub const MAX_POLICY_FILE_BYTES: u64 = 1 << 20;

impl PolicyFile {
    /// Read and check a policy file (at most [`MAX_POLICY_FILE_BYTES`]),
    /// reporting every problem at once.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<PolicyFile, Problems> {
        Self::read(path, overrides).map_err(|r| r.problems)
    }

    /// [`PolicyFile::load`], keeping what could be read of a file with
    /// problems.
    pub fn read(path: &Path, overrides: &Overrides) -> Result<PolicyFile, Box<Rejected>> {
        let text = files::read_text(path, MAX_POLICY_FILE_BYTES).map_err(|e| {
            Box::new(Rejected::nothing_read(Problems(vec![Problem {
                file: path.to_path_buf(),
                key: String::new(),
                message: format!("cannot read: {e}"),
            }])))
        })?;
        read::policy_file(path, &text, overrides)
    }

    /// Check policy-file text; `path` names it in problems and anchors
    /// relative plugin paths.
    pub fn parse(path: &Path, text: &str, overrides: &Overrides) -> Result<PolicyFile, Problems> {
        read::policy_file(path, text, overrides).map_err(|r| r.problems)
    }
}

/// The files under the roots: policy files and modules. A root that is
/// missing is returned apart: what was served from it keeps serving.
pub struct Listing {
    /// `*.toml` policy files.
    pub policies: Vec<PathBuf>,
    /// `*.wasm` modules in watched folders.
    pub modules: Vec<PathBuf>,
    /// Roots that could not be read, with why.
    pub missing: Vec<(PathBuf, String)>,
}

/// List what the roots hold.
pub fn list(roots: &[PathBuf]) -> Listing {
    let mut out = Listing {
        policies: Vec::new(),
        modules: Vec::new(),
        missing: Vec::new(),
    };
    for root in roots {
        if root.is_dir() {
            match std::fs::read_dir(root) {
                Ok(entries) => {
                    let mut files: Vec<PathBuf> = entries
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.is_file())
                        .collect();
                    files.sort();
                    for f in files {
                        match f.extension().and_then(|x| x.to_str()) {
                            Some("toml") => out.policies.push(f),
                            Some("wasm") => out.modules.push(f),
                            _ => {}
                        }
                    }
                }
                Err(e) => out.missing.push((root.clone(), e.to_string())),
            }
        } else if root.is_file() {
            out.policies.push(root.clone());
        } else {
            out.missing
                .push((root.clone(), "no such policy file or folder".into()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PolicyFile, Problems> {
        PolicyFile::parse(Path::new("policies/test.toml"), text, &Overrides::default())
    }

    fn keys(p: Problems) -> Vec<String> {
        p.0.into_iter().map(|p| p.key).collect()
    }

    #[test]
    fn a_shadow_policy_is_read_and_its_problems_named() {
        let f = parse(
            "service = \"web\"\nplugin = \"builtin:threshold-score\"\n[shadow]\nplugin = \"next.wasm\"\n[shadow.params.decision]\nup-score = 4\n",
        )
        .unwrap();
        let sh = f.shadow.unwrap();
        assert_eq!(sh.plugin, PluginRef::File("policies/next.wasm".into()));
        assert!(sh.params.contains_key("decision.up-score"));
        let e = parse(
            "service = \"web\"\nplugin = \"builtin:threshold-score\"\n[shadow]\nplugin = \"builtin:nope\"\nparam = 1\n",
        )
        .unwrap_err();
        assert_eq!(keys(e), ["shadow.param", "shadow.plugin"]);
        let e = parse("service = \"web\"\nplugin = \"builtin:threshold-score\"\n[shadow]\n")
            .unwrap_err();
        assert_eq!(keys(e), ["shadow.plugin"]);
    }

    #[test]
    fn a_minimal_file_gets_the_documented_defaults() {
        let f = parse("service = \"vedfolnir\"\nplugin = \"builtin:threshold-score\"\n").unwrap();
        assert_eq!(f.guard, GuardConfig::default());
        assert_eq!(f.plugin, PluginRef::Builtin("threshold-score".into()));
    }

    #[test]
    fn relative_plugin_paths_are_anchored_at_the_file() {
        let f = parse("service = \"a\"\nplugin = \"custom.wasm\"\n").unwrap();
        assert_eq!(
            f.plugin,
            PluginRef::File(PathBuf::from("policies/custom.wasm"))
        );
    }

    #[test]
    fn malformed_toml_names_the_file_and_line() {
        let p = parse("service = \"a\"\nplugin = \n").unwrap_err();
        let text = p.to_string();
        assert!(
            text.contains("policies/test.toml: not valid TOML: line 2"),
            "{text}"
        );
    }

    #[test]
    fn a_duration_past_its_bound_is_named_with_the_bound_and_why() {
        let e = parse(
            "service = \"web\"\nplugin = \"builtin:threshold-score\"\n[cooldown]\nup = \"1000000h\"\ndown = \"24h\"\n[data]\nstaleness = \"2h\"\n[rollout]\nmonitor = \"61m\"\nstop_timeout = \"1h\"\n[scrape]\nport = 9100\ntimeout = \"90s\"\n",
        )
        .unwrap_err();
        // cooldown.down at 24h and stop_timeout at 1h are at their bounds:
        // allowed.
        assert_eq!(
            keys(e.clone()),
            [
                "cooldown.up",
                "data.staleness",
                "scrape.timeout",
                "rollout.monitor"
            ]
        );
        let text = e.to_string();
        assert!(
            text.contains("cooldown.up: \"1000000h\" is longer than the most allowed, 1d (pause the service to stop it scaling)"),
            "{text}"
        );
        assert!(
            text.contains("scrape.timeout: \"90s\" is longer than the most allowed, 1m"),
            "{text}"
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let p = parse(
            r#"
service = "vedfolnir"
plugin = "builtin:threshold-score"
min_replicas = 6
max_replicas = 5
max_replica = 3
[cooldown]
up = "5 minutes"
dwon = "10m"
[step]
max_up = 0
[signals.queue-depth]
source = "docker"
[signals.error-rate]
source = "prometheus"
[signals.Bad]
source = "docker"
[signals.cpu]
source = "docker"
query = "rate(x[1m])"
[signals.scaling-alerts]
source = "alertmanager"
query = "ALERTS"
[params]
list = [1, 2]
"#,
        )
        .unwrap_err();
        let mut k = keys(p);
        k.sort();
        assert_eq!(
            k,
            vec![
                "cooldown.dwon",
                "cooldown.up",
                "max_replica",
                "min_replicas",
                "params.list",
                "signals.Bad",
                "signals.cpu.query",
                "signals.error-rate.query",
                "signals.queue-depth.source",
                "signals.scaling-alerts.query",
                "step.max_up"
            ]
        );
    }

    #[test]
    fn unknown_keys_get_a_hint() {
        let p = parse("service = \"a\"\nplugin = \"builtin:threshold-score\"\nmax_replica = 3\n")
            .unwrap_err();
        assert!(
            p.0[0].message.contains("did you mean \"max_replicas\""),
            "{}",
            p
        );
    }

    #[test]
    fn min_greater_than_max_is_refused() {
        let p = parse("service = \"a\"\nplugin = \"builtin:threshold-score\"\nmin_replicas = 4\nmax_replicas = 3\n").unwrap_err();
        assert_eq!(keys(p), vec!["min_replicas"]);
    }

    #[test]
    fn overrides_replace_the_bounds_and_are_checked_too() {
        let text = "service = \"a\"\nplugin = \"builtin:threshold-score\"\n";
        let o = Overrides {
            min_replicas: Some(1),
            max_replicas: Some(9),
        };
        let f = PolicyFile::parse(Path::new("x.toml"), text, &o).unwrap();
        assert_eq!((f.guard.min_replicas, f.guard.max_replicas), (1, 9));
        let bad = Overrides {
            min_replicas: Some(7),
            max_replicas: Some(3),
        };
        assert!(PolicyFile::parse(Path::new("x.toml"), text, &bad).is_err());
    }

    #[test]
    fn unknown_builtin_and_missing_keys_are_named() {
        let p = parse("plugin = \"builtin:nope\"\n").unwrap_err();
        let mut k = keys(p);
        k.sort();
        assert_eq!(k, vec!["plugin", "service"]);
    }

    #[test]
    fn nested_params_flatten_to_dotted_keys() {
        let f = parse("service = \"a\"\nplugin = \"builtin:threshold-score\"\n[params.cpu-high]\nthreshold = 0.8\nfor = \"3m\"\n[params]\n\"missing.cpu\" = \"ignore\"\n").unwrap();
        assert_eq!(
            f.params.get("cpu-high.threshold"),
            Some(&RawParam::Number(0.8))
        );
        assert_eq!(
            f.params.get("cpu-high.for"),
            Some(&RawParam::Text("3m".into()))
        );
        assert_eq!(
            f.params.get("missing.cpu"),
            Some(&RawParam::Text("ignore".into()))
        );
    }

    #[test]
    fn the_target_defaults_to_the_compose_project_named_after_the_service() {
        let f = parse("service = \"web\"\nplugin = \"builtin:threshold-score\"\n").unwrap();
        assert_eq!(
            f.target,
            Target {
                kind: TargetKind::Compose {
                    project: "web".into()
                },
                name: "web".into(),
                selector: vec![],
                docker_host: None,
            }
        );
        assert_eq!(f.rollout, Rollout::default());
        assert_eq!(
            (f.rollout.monitor_ms, f.rollout.max_failure_ratio),
            (60_000, 0.3)
        );
    }

    #[test]
    fn target_and_rollout_problems_are_named_by_key() {
        let p = parse(
            "service = \"web\"\nplugin = \"builtin:threshold-score\"\n[target]\nkind = \"kubernetes\"\nselector = [\"app\"]\nprojekt = \"x\"\n[rollout]\nmonitor = \"0s\"\nmax_failure_ratio = 1.5\n",
        )
        .unwrap_err();
        let mut k = keys(p.clone());
        k.sort();
        assert_eq!(
            k,
            [
                "rollout.max_failure_ratio",
                "rollout.monitor",
                "target.kind",
                "target.projekt",
                "target.selector[0]"
            ]
        );
        let text = p.to_string();
        assert!(text.contains("did you mean \"project\"?"), "{text}");
        assert!(text.contains("1.5 is not a fraction"), "{text}");
    }

    #[test]
    fn a_swarm_target_takes_a_name_and_no_project() {
        let f = parse(
            "service = \"web\"\nplugin = \"builtin:threshold-score\"\n[target]\nkind = \"swarm\"\nname = \"stack_web\"\nselector = [\"tier=front\"]\n[rollout]\nstop_timeout = \"30s\"\n",
        )
        .unwrap();
        assert_eq!(f.target.kind, TargetKind::Swarm);
        assert_eq!(f.target.name, "stack_web");
        assert_eq!(f.target.selector, [("tier".into(), "front".into())]);
        assert_eq!(f.rollout.stop_timeout_ms, Some(30_000));
        let p = parse(
            "service = \"web\"\nplugin = \"builtin:threshold-score\"\n[target]\nkind = \"swarm\"\nproject = \"p\"\n",
        )
        .unwrap_err();
        assert_eq!(keys(p), ["target.project"]);
    }
}
