//! Reading a policy file key by key, so every problem (syntax, unknown
//! keys with a "did you mean", wrong types, min > max, a source that cannot
//! provide a signal) is reported at once, each naming the file and the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use vedfolnir_core::guard::GuardConfig;
use vedfolnir_core::model::SignalId;
use vedfolnir_core::snapshot::{RawParam, closest};

use super::{
    Aggregate, Endpoint, Overrides, PluginRef, PolicyFile, Problem, Problems, REPLICA_LIMIT,
    Rejected, Rollout, ScrapeSignal, ShadowFile, SignalSource, Source, Target, TargetKind,
};

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
    "slo",
];
const SLO_KEYS: &[&str] = &["p95", "error_rate"];
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

const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 60 * MINUTE_MS;
/// The longest cooldown: past a day the service would not scale for days
/// on a mistyped value (`pause` is the way to stop scaling).
const MAX_COOLDOWN_MS: u64 = 24 * HOUR_MS;
/// The longest staleness: history older than an hour reaches a policy as
/// 15-minute means, so an older sample is no reading of the present.
const MAX_STALENESS_MS: u64 = HOUR_MS;
/// The longest a pass waits on one scrape (the pass interval is seconds).
const MAX_SCRAPE_TIMEOUT_MS: u64 = MINUTE_MS;
/// The longest a scale waits for health, or for a container to stop.
const MAX_ROLLOUT_WAIT_MS: u64 = HOUR_MS;

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

    /// A duration of at most `most` ms (`why`: what a longer one would do).
    fn duration(
        &mut self,
        parent: &toml::Table,
        key: &str,
        full: &str,
        (most, why): (u64, &str),
    ) -> Option<u64> {
        let text = self.string(parent, key, full)?;
        match vedfolnir_core::parse_duration(&text) {
            Ok(ms) if ms > most => {
                self.problem(
                    full,
                    format!(
                        "{text:?} is longer than the most allowed, {} ({why})",
                        vedfolnir_core::duration::format_duration(most)
                    ),
                );
                None
            }
            Ok(ms) => Some(ms),
            Err(e) => {
                self.problem(full, e.to_string());
                None
            }
        }
    }
}

/// Check policy-file text (see [`PolicyFile::parse`]); a file with
/// problems comes back with what could still be read of it.
pub(super) fn policy_file(
    path: &Path,
    text: &str,
    overrides: &Overrides,
) -> Result<PolicyFile, Box<Rejected>> {
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
            return Err(Box::new(Rejected::nothing_read(Problems(r.problems))));
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
    let slo = read_slo(&mut r, &root, &signals);
    if !r.problems.is_empty() {
        return Err(Box::new(Rejected {
            problems: Problems(r.problems),
            plugin,
            params,
            signals,
            slo: slo.is_some(),
            shadow,
        }));
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
        slo,
    })
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
        let most = (MAX_COOLDOWN_MS, "pause the service to stop it scaling");
        guard.cooldown_up = r
            .duration(t, "up", "cooldown.up", most)
            .unwrap_or(guard.cooldown_up);
        guard.cooldown_down = r
            .duration(t, "down", "cooldown.down", most)
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
            .duration(
                t,
                "staleness",
                "data.staleness",
                (
                    MAX_STALENESS_MS,
                    "history older than an hour reaches a policy as 15-minute means",
                ),
            )
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
    let timeout_ms = r
        .duration(
            t,
            "timeout",
            "scrape.timeout",
            (
                MAX_SCRAPE_TIMEOUT_MS,
                "a pass would wait that long on one replica",
            ),
        )
        .unwrap_or(2_000);
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
    }
    if query.is_some()
        && matches!(
            source.as_deref(),
            Some("docker" | "scrape" | "alertmanager")
        )
    {
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
            if !super::DOCKER_SIGNALS.contains(signal) {
                r.problem(
                    format!("{key}.source"),
                    format!("docker cannot provide {signal} (it provides cpu, memory and instance-count); use prometheus"),
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
    let most = (
        MAX_ROLLOUT_WAIT_MS,
        "a scale would wait that long for health",
    );
    if let Some(ms) = r.duration(t, "monitor", "rollout.monitor", most) {
        if ms == 0 {
            r.problem("rollout.monitor", "must be longer than 0");
        }
        rollout.monitor_ms = ms;
    }
    rollout.stop_timeout_ms = r.duration(
        t,
        "stop_timeout",
        "rollout.stop_timeout",
        (
            MAX_ROLLOUT_WAIT_MS,
            "a scale-down would wait that long for a container to stop",
        ),
    );
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

/// The longest `slo.p95`: past it a request has long timed out.
const MAX_SLO_P95_MS: u64 = 10 * 60_000;

/// `[slo]`: the service's SLO, from which each pass derives `slo-violation`
/// (so a signal routed under that name as well would be two sources of it).
fn read_slo(
    r: &mut Reader,
    root: &toml::Table,
    signals: &[SignalSource],
) -> Option<crate::config::SloSpec> {
    let t = r.table(root, "slo", "slo")?;
    r.unknown_keys(t, "slo.", SLO_KEYS);
    let p95_ms = r.duration(
        t,
        "p95",
        "slo.p95",
        (MAX_SLO_P95_MS, "a request waits that long"),
    );
    if p95_ms == Some(0) {
        r.problem("slo.p95", "must be longer than 0");
    }
    let error_rate = match t.get("error_rate") {
        None => None,
        Some(v) => match v.as_float().or_else(|| v.as_integer().map(|i| i as f64)) {
            Some(x) if x > 0.0 && x < 1.0 => Some(x),
            Some(x) => {
                r.problem(
                    "slo.error_rate",
                    format!("{x} is not a fraction above 0 and below 1"),
                );
                None
            }
            None => {
                r.problem(
                    "slo.error_rate",
                    format!("expected a number, found {}", v.type_str()),
                );
                None
            }
        },
    };
    if !t.contains_key("p95") && !t.contains_key("error_rate") {
        r.problem(
            "slo",
            "give p95 (a duration), error_rate (a fraction), or both",
        );
    }
    let derived = vedfolnir_core::model::SLO_VIOLATION;
    if signals.iter().any(|s| s.signal.name() == derived) {
        r.problem(
            format!("signals.{derived}"),
            format!(
                "{derived} is derived from [slo] each pass: route it here or set [slo], not both"
            ),
        );
    }
    Some(crate::config::SloSpec { p95_ms, error_rate })
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
