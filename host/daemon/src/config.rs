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

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use vedfolnir_core::guard::GuardConfig;
use vedfolnir_core::model::SignalId;
use vedfolnir_core::snapshot::{RawParam, closest};

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
}

impl SourceKind {
    /// Every kind, in the order a pass asks them.
    pub const ALL: [SourceKind; 4] = [
        SourceKind::Docker,
        SourceKind::Prometheus,
        SourceKind::Alertmanager,
        SourceKind::Scrape,
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
        }
    }
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

const TOP_KEYS: &[&str] = &[
    "service",
    "plugin",
    "min_replicas",
    "max_replicas",
    "cooldown",
    "step",
    "data",
    "signals",
    "params",
    "target",
    "rollout",
    "shadow",
    "scrape",
];
const SCRAPE_KEYS: &[&str] = &["port", "path", "timeout"];
const SHADOW_KEYS: &[&str] = &["plugin", "params"];
const TARGET_KEYS: &[&str] = &["kind", "project", "name", "selector", "docker_host"];
const ROLLOUT_KEYS: &[&str] = &["monitor", "max_failure_ratio", "stop_timeout"];
const COOLDOWN_KEYS: &[&str] = &["up", "down"];
const STEP_KEYS: &[&str] = &["max_up", "max_down"];
const DATA_KEYS: &[&str] = &["staleness"];
const SIGNAL_KEYS: &[&str] = &[
    "source",
    "query",
    "required",
    "metric",
    "total",
    "quantile",
    "aggregate",
];
const SOURCES: &[&str] = &["docker", "prometheus", "alertmanager", "scrape"];

/// Upper bound on `max_replicas`: far beyond one Docker host, low enough
/// that a typo (50000) is caught.
pub const REPLICA_LIMIT: u32 = 1000;

struct Reader<'a> {
    file: &'a Path,
    problems: Vec<Problem>,
}

impl Reader<'_> {
    fn problem(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.to_path_buf(),
            key: key.into(),
            message: message.into(),
        });
    }

    fn unknown_keys(&mut self, table: &toml::Table, prefix: &str, known: &[&str]) {
        for key in table.keys() {
            if !known.contains(&key.as_str()) {
                let hint = closest(key, known.iter().copied())
                    .map(|k| format!(" (did you mean {k:?}?)"))
                    .unwrap_or_else(|| format!(" (known keys: {})", known.join(", ")));
                self.problem(format!("{prefix}{key}"), format!("unknown key{hint}"));
            }
        }
    }

    fn table<'t>(
        &mut self,
        parent: &'t toml::Table,
        key: &str,
        full: &str,
    ) -> Option<&'t toml::Table> {
        match parent.get(key) {
            None => None,
            Some(toml::Value::Table(t)) => Some(t),
            Some(other) => {
                self.problem(
                    full,
                    format!("expected a table, found {}", other.type_str()),
                );
                None
            }
        }
    }

    fn string(&mut self, parent: &toml::Table, key: &str, full: &str) -> Option<String> {
        match parent.get(key)? {
            toml::Value::String(s) => Some(s.clone()),
            other => {
                self.problem(
                    full,
                    format!("expected a string, found {}", other.type_str()),
                );
                None
            }
        }
    }

    fn count(&mut self, parent: &toml::Table, key: &str, full: &str) -> Option<u32> {
        match parent.get(key)? {
            toml::Value::Integer(n) if (0..=i64::from(u32::MAX)).contains(n) => Some(*n as u32),
            toml::Value::Integer(n) => {
                self.problem(
                    full,
                    format!("expected a whole number of at least 0, found {n}"),
                );
                None
            }
            other => {
                self.problem(
                    full,
                    format!("expected a whole number, found {}", other.type_str()),
                );
                None
            }
        }
    }

    fn duration(&mut self, parent: &toml::Table, key: &str, full: &str) -> Option<u64> {
        let text = self.string(parent, key, full)?;
        match vedfolnir_core::parse_duration(&text) {
            Ok(ms) => Some(ms),
            Err(e) => {
                self.problem(full, e.to_string());
                None
            }
        }
    }
}

impl PolicyFile {
    /// Read and check a policy file, reporting every problem at once.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<PolicyFile, Problems> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Problems(vec![Problem {
                file: path.to_path_buf(),
                key: String::new(),
                message: format!("cannot read: {e}"),
            }])
        })?;
        Self::parse(path, &text, overrides)
    }

    /// Check policy-file text; `path` names it in problems and anchors
    /// relative plugin paths.
    pub fn parse(path: &Path, text: &str, overrides: &Overrides) -> Result<PolicyFile, Problems> {
        let mut r = Reader {
            file: path,
            problems: Vec::new(),
        };
        let root = match text.parse::<toml::Table>() {
            Ok(t) => t,
            Err(e) => {
                let at = e
                    .span()
                    .map(|s| {
                        let line = text[..s.start].matches('\n').count() + 1;
                        format!("line {line}: ")
                    })
                    .unwrap_or_default();
                r.problem("", format!("not valid TOML: {at}{}", e.message()));
                return Err(Problems(r.problems));
            }
        };
        r.unknown_keys(&root, "", TOP_KEYS);
        let service = read_service(&mut r, &root);
        let plugin = read_plugin(&mut r, &root, path);
        let shadow = read_shadow(&mut r, &root, path);
        let guard = read_guard(&mut r, &root, overrides);
        let endpoint = read_endpoint(&mut r, &root);
        let signals = read_signals(&mut r, &root, endpoint.as_ref());
        let mut params = BTreeMap::new();
        if let Some(t) = r.table(&root, "params", "params") {
            flatten(&mut r, t, "", &mut params);
        }
        let target = read_target(&mut r, &root, service.as_deref());
        let rollout = read_rollout(&mut r, &root);
        if !r.problems.is_empty() {
            return Err(Problems(r.problems));
        }
        Ok(PolicyFile {
            target: target.expect("no problems, so a target"),
            rollout,
            path: path.to_path_buf(),
            service: service.expect("checked above"),
            plugin: plugin.expect("checked above"),
            guard,
            signals,
            params,
            shadow,
        })
    }
}

/// `service`: required, a name of letters, digits, '-', '_', '.'.
fn read_service(r: &mut Reader, root: &toml::Table) -> Option<String> {
    let service = r.string(root, "service", "service");
    match &service {
        None if !root.contains_key("service") => {
            r.problem("service", "missing: name the service this policy scales")
        }
        Some(s)
            if s.is_empty()
                || !s
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) =>
        {
            r.problem(
                "service",
                format!("{s:?} is not a valid service name (letters, digits, '-', '_', '.')"),
            )
        }
        _ => {}
    }
    service
}

/// `plugin`: required.
fn read_plugin(r: &mut Reader, root: &toml::Table, path: &Path) -> Option<PluginRef> {
    match r.string(root, "plugin", "plugin") {
        None => {
            if !root.contains_key("plugin") {
                r.problem(
                    "plugin",
                    "missing: \"builtin:threshold-score\" or a path to a .wasm file",
                );
            }
            None
        }
        Some(p) => plugin_ref(r, &p, "plugin", path),
    }
}

/// `[shadow]`: a second plugin and its parameters, never acted on.
fn read_shadow(r: &mut Reader, root: &toml::Table, path: &Path) -> Option<ShadowFile> {
    let t = r.table(root, "shadow", "shadow")?;
    r.unknown_keys(t, "shadow.", SHADOW_KEYS);
    let plugin = match r.string(t, "plugin", "shadow.plugin") {
        Some(p) => plugin_ref(r, &p, "shadow.plugin", path),
        None => {
            if !t.contains_key("plugin") {
                r.problem("shadow.plugin", "missing: the shadow policy's plugin");
            }
            None
        }
    };
    let mut params = BTreeMap::new();
    if let Some(pt) = r.table(t, "params", "shadow.params") {
        flatten(r, pt, "", &mut params);
    }
    plugin.map(|plugin| ShadowFile { plugin, params })
}

/// The bounds (with the command line's overrides), `[cooldown]`, `[step]`
/// and `[data]`.
fn read_guard(r: &mut Reader, root: &toml::Table, overrides: &Overrides) -> GuardConfig {
    let defaults = GuardConfig::default();
    let min = overrides
        .min_replicas
        .or_else(|| r.count(root, "min_replicas", "min_replicas"))
        .unwrap_or(defaults.min_replicas);
    let max = overrides
        .max_replicas
        .or_else(|| r.count(root, "max_replicas", "max_replicas"))
        .unwrap_or(defaults.max_replicas);
    if min > max {
        r.problem(
            "min_replicas",
            format!("min_replicas {min} is greater than max_replicas {max}"),
        );
    }
    if max == 0 {
        r.problem("max_replicas", "must be at least 1");
    }
    if max > REPLICA_LIMIT {
        r.problem(
            "max_replicas",
            format!("{max} is above the limit of {REPLICA_LIMIT}"),
        );
    }
    let mut guard = GuardConfig {
        min_replicas: min,
        max_replicas: max,
        ..defaults
    };
    read_timing(r, root, &mut guard);
    guard
}

/// `[cooldown]`, `[step]` and `[data]` into the guard rails' settings.
fn read_timing(r: &mut Reader, root: &toml::Table, guard: &mut GuardConfig) {
    if let Some(t) = r.table(root, "cooldown", "cooldown") {
        r.unknown_keys(t, "cooldown.", COOLDOWN_KEYS);
        guard.cooldown_up = r
            .duration(t, "up", "cooldown.up")
            .unwrap_or(guard.cooldown_up);
        guard.cooldown_down = r
            .duration(t, "down", "cooldown.down")
            .unwrap_or(guard.cooldown_down);
    }
    if let Some(t) = r.table(root, "step", "step") {
        r.unknown_keys(t, "step.", STEP_KEYS);
        for (key, slot) in [
            ("max_up", &mut guard.max_step_up),
            ("max_down", &mut guard.max_step_down),
        ] {
            match r.count(t, key, &format!("step.{key}")) {
                Some(0) => r.problem(
                    format!("step.{key}"),
                    "must be at least 1 (0 would never scale)",
                ),
                Some(n) => *slot = n,
                None => {}
            }
        }
    }
    if let Some(t) = r.table(root, "data", "data") {
        r.unknown_keys(t, "data.", DATA_KEYS);
        guard.staleness = r
            .duration(t, "staleness", "data.staleness")
            .unwrap_or(guard.staleness);
        if guard.staleness == 0 {
            r.problem("data.staleness", "must be longer than 0");
        }
    }
}

/// `[scrape]`: the replicas' metrics endpoint, when given.
fn read_endpoint(r: &mut Reader, root: &toml::Table) -> Option<Endpoint> {
    let t = r.table(root, "scrape", "scrape")?;
    r.unknown_keys(t, "scrape.", SCRAPE_KEYS);
    let port = match r.count(t, "port", "scrape.port") {
        Some(p @ 1..=65535) => Some(p as u16),
        Some(p) => {
            r.problem("scrape.port", format!("{p} is not a port (1 to 65535)"));
            None
        }
        None => {
            if !t.contains_key("port") {
                r.problem(
                    "scrape.port",
                    "missing: the container port each replica serves its metrics on",
                );
            }
            None
        }
    };
    let path = r
        .string(t, "path", "scrape.path")
        .unwrap_or_else(|| "/metrics".into());
    if !path.starts_with('/') {
        r.problem("scrape.path", format!("{path:?} must start with '/'"));
    }
    let timeout_ms = r.duration(t, "timeout", "scrape.timeout").unwrap_or(2_000);
    if timeout_ms == 0 {
        r.problem("scrape.timeout", "must be longer than 0");
    }
    Some(Endpoint {
        port: port?,
        path,
        timeout_ms,
    })
}

/// `[signals.<name>]`: where each signal comes from.
fn read_signals(
    r: &mut Reader,
    root: &toml::Table,
    endpoint: Option<&Endpoint>,
) -> Vec<SignalSource> {
    let Some(t) = r.table(root, "signals", "signals") else {
        return Vec::new();
    };
    t.iter()
        .filter_map(|(name, value)| read_signal(r, name, value, endpoint))
        .collect()
}

fn read_signal(
    r: &mut Reader,
    name: &str,
    value: &toml::Value,
    endpoint: Option<&Endpoint>,
) -> Option<SignalSource> {
    let key = format!("signals.{name}");
    let signal: SignalId = match name.parse() {
        Ok(s) => s,
        Err(e) => {
            r.problem(&key, format!("{e}"));
            return None;
        }
    };
    let toml::Value::Table(spec) = value else {
        r.problem(
            &key,
            format!(
                "expected a table such as {{ source = \"docker\" }}, found {}",
                value.type_str()
            ),
        );
        return None;
    };
    r.unknown_keys(spec, &format!("{key}."), SIGNAL_KEYS);
    let required = match spec.get("required") {
        None => None,
        Some(toml::Value::Boolean(b)) => Some(*b),
        Some(other) => {
            r.problem(
                format!("{key}.required"),
                format!("expected true or false, found {}", other.type_str()),
            );
            None
        }
    };
    let source = read_source(r, spec, &key, &signal, endpoint)?;
    Some(SignalSource {
        signal,
        source,
        required,
    })
}

/// A signal's `source` (and its `query`, or its scrape settings).
fn read_source(
    r: &mut Reader,
    spec: &toml::Table,
    key: &str,
    signal: &SignalId,
    endpoint: Option<&Endpoint>,
) -> Option<Source> {
    let query = r.string(spec, "query", &format!("{key}.query"));
    let source = r.string(spec, "source", &format!("{key}.source"));
    if source.as_deref() != Some("scrape") {
        for k in ["metric", "total", "quantile", "aggregate"] {
            if spec.contains_key(k) {
                r.problem(format!("{key}.{k}"), "only a scrape source takes this key");
            }
        }
    } else if query.is_some() {
        r.problem(
            format!("{key}.query"),
            "only a prometheus source takes a query",
        );
    }
    match source.as_deref() {
        None => {
            r.problem(
                format!("{key}.source"),
                format!("missing: one of {}", SOURCES.join(", ")),
            );
            None
        }
        Some("docker") => {
            if !matches!(
                signal,
                SignalId::Cpu | SignalId::Memory | SignalId::InstanceCount
            ) {
                r.problem(
                    format!("{key}.source"),
                    format!("docker cannot provide {signal} (it provides cpu, memory and instance-count); use prometheus"),
                );
            }
            if query.is_some() {
                r.problem(
                    format!("{key}.query"),
                    "only a prometheus source takes a query",
                );
            }
            Some(Source::Docker)
        }
        Some("prometheus") => match query {
            Some(q) if !q.trim().is_empty() => Some(Source::Prometheus { query: q }),
            _ => {
                r.problem(
                    format!("{key}.query"),
                    "missing: a prometheus source needs a PromQL query",
                );
                None
            }
        },
        Some("alertmanager") => Some(Source::Alertmanager),
        Some("scrape") => read_scrape(r, spec, key, signal, endpoint).map(Source::Scrape),
        Some(other) => {
            r.problem(
                format!("{key}.source"),
                format!("unknown source {other:?} (one of {})", SOURCES.join(", ")),
            );
            None
        }
    }
}

/// A `scrape` signal's keys: the metric, and how it becomes the signal.
fn read_scrape(
    r: &mut Reader,
    spec: &toml::Table,
    key: &str,
    signal: &SignalId,
    endpoint: Option<&Endpoint>,
) -> Option<ScrapeSignal> {
    let metric = r.string(spec, "metric", &format!("{key}.metric"));
    if metric.is_none() && !spec.contains_key("metric") {
        r.problem(
            format!("{key}.metric"),
            "missing: a scrape source needs the metric to read (e.g. \"vedfolnir_queue_depth\")",
        );
    }
    let total = r.string(spec, "total", &format!("{key}.total"));
    let quantile = match spec.get("quantile") {
        None => 0.95,
        Some(v) => match v.as_float() {
            Some(q) if q > 0.0 && q < 1.0 => q,
            _ => {
                r.problem(
                    format!("{key}.quantile"),
                    format!("{v} is not a fraction between 0 and 1 (e.g. 0.95)"),
                );
                0.95
            }
        },
    };
    let aggregate = match r
        .string(spec, "aggregate", &format!("{key}.aggregate"))
        .as_deref()
    {
        None if *signal == SignalId::QueueDepth => Aggregate::Sum,
        None | Some("mean") => Aggregate::Mean,
        Some("sum") => Aggregate::Sum,
        Some("max") => Aggregate::Max,
        Some(other) => {
            r.problem(
                format!("{key}.aggregate"),
                format!("unknown aggregate {other:?} (one of sum, mean, max)"),
            );
            Aggregate::Mean
        }
    };
    if endpoint.is_none() {
        r.problem(
            "scrape",
            format!(
                "{key} reads the replicas' metrics: add [scrape] with their port (port = 8080)"
            ),
        );
    }
    Some(ScrapeSignal {
        metric: metric?,
        total,
        quantile,
        aggregate,
        endpoint: endpoint?.clone(),
    })
}

/// `builtin:<name>`, or a `.wasm` path relative to the policy file.
fn plugin_ref(r: &mut Reader, p: &str, key: &str, path: &Path) -> Option<PluginRef> {
    match p.strip_prefix("builtin:") {
        Some(name) if vedfolnir_plugin_artifacts::policy(name).is_some() => {
            Some(PluginRef::Builtin(name.into()))
        }
        Some(name) => {
            let known: Vec<&str> = vedfolnir_plugin_artifacts::POLICIES
                .iter()
                .map(|(n, _, _)| *n)
                .collect();
            r.problem(
                key,
                format!("no builtin policy {name:?} (builtin: {})", known.join(", ")),
            );
            None
        }
        None => {
            let rel = PathBuf::from(p);
            Some(PluginRef::File(if rel.is_absolute() {
                rel
            } else {
                path.parent().unwrap_or(Path::new(".")).join(rel)
            }))
        }
    }
}

/// `[target]`: Compose by default, with the project named after the service.
fn read_target(r: &mut Reader, root: &toml::Table, service: Option<&str>) -> Option<Target> {
    let empty = toml::Table::new();
    let t = r.table(root, "target", "target").unwrap_or(&empty);
    r.unknown_keys(t, "target.", TARGET_KEYS);
    let name = r
        .string(t, "name", "target.name")
        .or_else(|| service.map(str::to_string));
    let project = r.string(t, "project", "target.project");
    let docker_host = r.string(t, "docker_host", "target.docker_host");
    let mut selector = Vec::new();
    match t.get("selector") {
        None => {}
        Some(toml::Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match item.as_str().and_then(|s| s.split_once('=')) {
                    Some((k, v)) if !k.is_empty() => selector.push((k.to_string(), v.to_string())),
                    _ => r.problem(
                        format!("target.selector[{i}]"),
                        format!("expected \"label=value\", found {item}"),
                    ),
                }
            }
        }
        Some(other) => r.problem(
            "target.selector",
            format!(
                "expected a list of \"label=value\" strings, found {}",
                other.type_str()
            ),
        ),
    }
    let kind = match r.string(t, "kind", "target.kind").as_deref() {
        None | Some("compose") => TargetKind::Compose {
            project: project.or_else(|| service.map(str::to_string))?,
        },
        Some("swarm") => {
            if project.is_some() {
                r.problem("target.project", "only a compose target has a project");
            }
            TargetKind::Swarm
        }
        Some(other) => {
            r.problem(
                "target.kind",
                format!("unknown kind {other:?} (one of compose, swarm)"),
            );
            return None;
        }
    };
    Some(Target {
        kind,
        name: name?,
        selector,
        docker_host,
    })
}

/// `[rollout]`: the seed's update_config (monitor 60s, max_failure_ratio 0.3).
fn read_rollout(r: &mut Reader, root: &toml::Table) -> Rollout {
    let mut rollout = Rollout::default();
    let Some(t) = r.table(root, "rollout", "rollout") else {
        return rollout;
    };
    r.unknown_keys(t, "rollout.", ROLLOUT_KEYS);
    if let Some(ms) = r.duration(t, "monitor", "rollout.monitor") {
        if ms == 0 {
            r.problem("rollout.monitor", "must be longer than 0");
        }
        rollout.monitor_ms = ms;
    }
    rollout.stop_timeout_ms = r.duration(t, "stop_timeout", "rollout.stop_timeout");
    match t.get("max_failure_ratio") {
        None => {}
        Some(v) => match v.as_float().or_else(|| v.as_integer().map(|i| i as f64)) {
            Some(x) if (0.0..=1.0).contains(&x) => rollout.max_failure_ratio = x,
            Some(x) => r.problem(
                "rollout.max_failure_ratio",
                format!("{x} is not a fraction between 0 and 1"),
            ),
            None => r.problem(
                "rollout.max_failure_ratio",
                format!("expected a number, found {}", v.type_str()),
            ),
        },
    }
    rollout
}

/// `[params.cpu-high] threshold = 0.7` becomes `cpu-high.threshold`.
fn flatten(
    r: &mut Reader,
    table: &toml::Table,
    prefix: &str,
    out: &mut BTreeMap<String, RawParam>,
) {
    for (key, value) in table {
        let full = format!("{prefix}{key}");
        let raw = match value {
            toml::Value::Table(t) => {
                flatten(r, t, &format!("{full}."), out);
                continue;
            }
            toml::Value::Integer(n) => RawParam::Number(*n as f64),
            toml::Value::Float(f) => RawParam::Number(*f),
            toml::Value::Boolean(b) => RawParam::Boolean(*b),
            toml::Value::String(s) => RawParam::Text(s.clone()),
            other => {
                r.problem(
                    format!("params.{full}"),
                    format!(
                        "expected a number, string or boolean, found {}",
                        other.type_str()
                    ),
                );
                continue;
            }
        };
        out.insert(full, raw);
    }
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
                "signals.error-rate.query",
                "signals.queue-depth.source",
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
