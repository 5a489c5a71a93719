//! `limits`: the seed's limits test. It reads each running replica's CPU,
//! memory and PIDs limits and its memory reservation from the engine
//! (`docker inspect`'s `HostConfig`) and compares them with the resource
//! table the service is supposed to have: its Compose file's
//! `deploy.resources` and `pids_limit` (the file Compose started it from,
//! named by the `com.docker.compose.project.config_files` label, or
//! `--compose`). A mismatch names the container, the field, what was
//! expected and what runs; the exit code is then 10.
//!
//! A CPU reservation has no per-container setting in the engine (Compose
//! keeps it for Swarm's scheduler), so it is shown, not compared.
//!
//! The Compose file is read with `serde-saphyr` (a maintained YAML parser
//! that reports errors with their line; `serde_yaml` is archived), after
//! the `${VAR}`, `${VAR:-default}` and `${VAR-default}` substitutions
//! Compose makes from the environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use serde::Deserialize;
use vedfolnir_sandbox::files;

use super::InvalidInput;
use super::args::LimitsArgs;
use crate::config::{Overrides, PolicyFile, TargetKind};
use crate::engine::{self, Engine};

/// The label Compose puts the files a container was started from in.
pub const CONFIG_FILES_LABEL: &str = "com.docker.compose.project.config_files";

/// The most bytes of a Compose file read.
const MAX_FILE: u64 = 1 << 20;

/// A replica's resources, as the engine applies them (0: unset).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Resources {
    /// CPU limit, in cores.
    pub cpus: f64,
    /// Memory limit, bytes.
    pub memory: u64,
    /// PIDs limit.
    pub pids: i64,
    /// Memory reservation (a soft limit), bytes.
    pub memory_reservation: u64,
}

/// The table a service is supposed to have.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Table {
    /// What the engine applies.
    pub resources: Resources,
    /// The CPU reservation (shown, not compared: see the module docs).
    pub cpus_reservation: f64,
}

/// One field of one container that differs from the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    /// The container.
    pub container: String,
    /// The field (`cpus`, `memory`, `pids`, `memory_reservation`).
    pub field: &'static str,
    /// What the table says.
    pub expected: String,
    /// What runs.
    pub actual: String,
}

/// `limits` found a replica that differs from its table (exit code 10).
#[derive(Debug, thiserror::Error)]
#[error("{0} resource setting(s) differ from the table")]
pub struct Mismatched(pub usize);

#[derive(Debug, Deserialize)]
struct ComposeFile {
    #[serde(default)]
    services: BTreeMap<String, ComposeService>,
}

#[derive(Debug, Default, Deserialize)]
struct ComposeService {
    #[serde(default)]
    deploy: Option<Deploy>,
    #[serde(default)]
    pids_limit: Option<i64>,
    #[serde(default)]
    cpus: Option<Number>,
    #[serde(default)]
    mem_limit: Option<Number>,
    #[serde(default)]
    mem_reservation: Option<Number>,
}

#[derive(Debug, Default, Deserialize)]
struct Deploy {
    #[serde(default)]
    resources: Option<DeployResources>,
}

#[derive(Debug, Default, Deserialize)]
struct DeployResources {
    #[serde(default)]
    limits: Option<Limits>,
    #[serde(default)]
    reservations: Option<Limits>,
}

#[derive(Debug, Default, Deserialize)]
struct Limits {
    #[serde(default)]
    cpus: Option<Number>,
    #[serde(default)]
    memory: Option<Number>,
    #[serde(default)]
    pids: Option<i64>,
}

/// A number Compose accepts as a string or a number ("2.0", 2, "512M").
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Number {
    Int(i64),
    Float(f64),
    Text(String),
}

impl Number {
    fn cpus(&self, key: &str) -> Result<f64, String> {
        let v = match self {
            Number::Int(i) => *i as f64,
            Number::Float(f) => *f,
            Number::Text(t) => t
                .trim()
                .parse()
                .map_err(|_| format!("{key}: {t:?} is not a number of CPUs"))?,
        };
        if !(v.is_finite() && v >= 0.0) {
            return Err(format!("{key}: {v} is not a number of CPUs"));
        }
        Ok(v)
    }

    fn bytes(&self, key: &str) -> Result<u64, String> {
        match self {
            Number::Int(i) if *i >= 0 => Ok(*i as u64),
            Number::Text(t) => parse_bytes(t).ok_or_else(|| {
                format!("{key}: {t:?} is not a size (bytes, or a number with b, k, m or g)")
            }),
            other => Err(format!("{key}: {other:?} is not a size")),
        }
    }
}

/// A Compose size: bytes, or a number with a unit b, k(b), m(b), g(b)
/// (powers of 1024, as Compose reads them).
pub fn parse_bytes(text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (number, unit) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        _ => return None,
    };
    let n: f64 = number.trim().parse().ok()?;
    (n.is_finite() && n >= 0.0).then(|| (n * (1u64 << shift) as f64).round() as u64)
}

/// Compose's variable substitution: `${VAR}`, `${VAR:-default}` (default
/// when unset or empty), `${VAR-default}` (when unset), `${VAR:?error}`
/// and `${VAR?error}` (an error), `$$` (a dollar).
pub fn interpolate(text: &str, var: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("an unclosed ${{ in {:?}", &rest[at..]))?;
            out.push_str(&substitute(&body[..end], var)?);
            rest = &body[end + 1..];
        } else {
            let len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if len == 0 {
                out.push('$');
            } else {
                out.push_str(&var(&after[..len]).unwrap_or_default());
            }
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn substitute(expr: &str, var: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let name_len = expr
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(expr.len());
    let (name, op) = expr.split_at(name_len);
    let value = var(name);
    let set_nonempty = value.as_deref().is_some_and(|v| !v.is_empty());
    Ok(match op {
        "" => value.unwrap_or_default(),
        _ if op.starts_with(":-") => {
            if set_nonempty {
                value.unwrap_or_default()
            } else {
                op[2..].to_string()
            }
        }
        _ if op.starts_with('-') => value.unwrap_or_else(|| op[1..].to_string()),
        _ if op.starts_with(":?") && !set_nonempty => {
            return Err(format!("{name} is not set: {}", &op[2..]));
        }
        _ if op.starts_with('?') && value.is_none() => {
            return Err(format!("{name} is not set: {}", &op[1..]));
        }
        _ if op.starts_with(":?") || op.starts_with('?') => value.unwrap_or_default(),
        _ => return Err(format!("${{{expr}}}: not a substitution Compose knows")),
    })
}

/// The table of `service` in a Compose file's text, its variables taken
/// from `var` (the environment, for `limits`).
pub fn table_of(
    text: &str,
    service: &str,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Table, String> {
    let text = interpolate(text, var)?;
    let file: ComposeFile = serde_saphyr::from_str(&text).map_err(|e| e.to_string())?;
    let s = file
        .services
        .get(service)
        .ok_or_else(|| format!("no service {service:?} in it"))?;
    let resources = s.deploy.as_ref().and_then(|d| d.resources.as_ref());
    let limits = resources.and_then(|r| r.limits.as_ref());
    let reservations = resources.and_then(|r| r.reservations.as_ref());
    let key = |k: &str| format!("services.{service}.{k}");
    let cpus = match (limits.and_then(|l| l.cpus.as_ref()), &s.cpus) {
        (Some(c), _) => c.cpus(&key("deploy.resources.limits.cpus"))?,
        (None, Some(c)) => c.cpus(&key("cpus"))?,
        (None, None) => 0.0,
    };
    let memory = match (limits.and_then(|l| l.memory.as_ref()), &s.mem_limit) {
        (Some(m), _) => m.bytes(&key("deploy.resources.limits.memory"))?,
        (None, Some(m)) => m.bytes(&key("mem_limit"))?,
        (None, None) => 0,
    };
    let memory_reservation = match (
        reservations.and_then(|r| r.memory.as_ref()),
        &s.mem_reservation,
    ) {
        (Some(m), _) => m.bytes(&key("deploy.resources.reservations.memory"))?,
        (None, Some(m)) => m.bytes(&key("mem_reservation"))?,
        (None, None) => 0,
    };
    let cpus_reservation = match reservations.and_then(|r| r.cpus.as_ref()) {
        Some(c) => c.cpus(&key("deploy.resources.reservations.cpus"))?,
        None => 0.0,
    };
    Ok(Table {
        resources: Resources {
            cpus,
            memory,
            pids: limits.and_then(|l| l.pids).or(s.pids_limit).unwrap_or(0),
            memory_reservation,
        },
        cpus_reservation,
    })
}

/// What the engine applies to a container.
pub fn applied(c: &bollard::models::ContainerInspectResponse) -> Resources {
    let Some(h) = &c.host_config else {
        return Resources::default();
    };
    let cpus = match (h.nano_cpus, h.cpu_quota, h.cpu_period) {
        (Some(n), _, _) if n > 0 => n as f64 / 1e9,
        (_, Some(q), Some(p)) if q > 0 && p > 0 => q as f64 / p as f64,
        _ => 0.0,
    };
    Resources {
        cpus,
        memory: h.memory.unwrap_or(0).max(0) as u64,
        // -1 and 0 both mean no limit.
        pids: h.pids_limit.unwrap_or(0).max(0),
        memory_reservation: h.memory_reservation.unwrap_or(0).max(0) as u64,
    }
}

/// Every field of `actual` that differs from `expected`.
pub fn compare(container: &str, expected: &Resources, actual: &Resources) -> Vec<Mismatch> {
    let mut out = Vec::new();
    let mut field = |field, e: String, a: String, same: bool| {
        if !same {
            out.push(Mismatch {
                container: container.to_string(),
                field,
                expected: e,
                actual: a,
            });
        }
    };
    field(
        "cpus",
        cpus_text(expected.cpus),
        cpus_text(actual.cpus),
        (expected.cpus - actual.cpus).abs() < 1e-6,
    );
    field(
        "memory",
        bytes_text(expected.memory),
        bytes_text(actual.memory),
        expected.memory == actual.memory,
    );
    field(
        "pids",
        count_text(expected.pids),
        count_text(actual.pids),
        expected.pids == actual.pids,
    );
    field(
        "memory_reservation",
        bytes_text(expected.memory_reservation),
        bytes_text(actual.memory_reservation),
        expected.memory_reservation == actual.memory_reservation,
    );
    out
}

fn cpus_text(c: f64) -> String {
    if c == 0.0 {
        "none".into()
    } else {
        format!("{c}")
    }
}

fn count_text(n: i64) -> String {
    if n == 0 { "none".into() } else { n.to_string() }
}

/// Bytes as Compose would write them (2G, 512M), exact.
pub fn bytes_text(b: u64) -> String {
    match b {
        0 => "none".into(),
        _ if b.is_multiple_of(1 << 30) => format!("{}G", b >> 30),
        _ if b.is_multiple_of(1 << 20) => format!("{}M", b >> 20),
        _ if b.is_multiple_of(1 << 10) => format!("{}K", b >> 10),
        _ => format!("{b}B"),
    }
}

/// `limits`: every running replica against its table.
pub fn run(args: &LimitsArgs) -> Result<ExitCode> {
    let file = PolicyFile::load(&args.policy, &Overrides::default())?;
    if !matches!(file.target.kind, TargetKind::Compose { .. }) && args.compose.is_none() {
        return Err(InvalidInput(format!(
            "{}: the target is a Swarm service; give its resource table with --compose FILE",
            args.policy.display()
        ))
        .into());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let engine = Engine::connect(file.target.docker_host.as_deref()).await?;
        let replicas = engine::replicas(&engine, &file.target).await?;
        let running: Vec<_> = replicas.iter().filter(|r| r.is_running()).collect();
        if running.is_empty() {
            return Err(engine::EngineError::not_found(format!(
                "a running replica of {} ({} container(s), none running): nothing to check",
                crate::actuators::describe(&file.target),
                replicas.len()
            ))
            .into());
        }
        let mut rows = Vec::new();
        let mut tables: BTreeMap<PathBuf, Table> = BTreeMap::new();
        for r in running {
            let inspect = engine::inspect(&engine, &r.id).await?;
            let path = match &args.compose {
                Some(p) => p.clone(),
                None => compose_file_of(&inspect, &r.name)?,
            };
            let table = match tables.get(&path) {
                Some(t) => *t,
                None => {
                    let t = read_table(&path, &file.target.name)?;
                    tables.insert(path.clone(), t);
                    t
                }
            };
            let actual = applied(&inspect);
            let mismatches = compare(&r.name, &table.resources, &actual);
            rows.push((r.name.clone(), path, table, actual, mismatches));
        }
        print(&rows, args.json)?;
        let n: usize = rows.iter().map(|r| r.4.len()).sum();
        if n > 0 {
            return Err(Mismatched(n).into());
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn compose_file_of(c: &bollard::models::ContainerInspectResponse, name: &str) -> Result<PathBuf> {
    let files = c
        .config
        .as_ref()
        .and_then(|c| c.labels.as_ref())
        .and_then(|l| l.get(CONFIG_FILES_LABEL))
        .ok_or_else(|| {
            InvalidInput(format!(
                "{name} has no {CONFIG_FILES_LABEL} label to find its Compose file: give it with --compose FILE"
            ))
        })?;
    // Several files (-f a -f b) are merged by Compose; the last one that
    // sets resources wins, which the first covers in the common case.
    let first = files.split(',').next().unwrap_or_default();
    Ok(PathBuf::from(first))
}

fn read_table(path: &Path, service: &str) -> Result<Table> {
    let text = files::read_text(path, MAX_FILE).map_err(|e| {
        InvalidInput(format!(
            "cannot read the Compose file {}: {e} (give it with --compose FILE)",
            path.display()
        ))
    })?;
    table_of(&text, service, &|name| std::env::var(name).ok())
        .map_err(|e| InvalidInput(format!("{}: {e}", path.display())).into())
}

type Row = (String, PathBuf, Table, Resources, Vec<Mismatch>);

fn print(rows: &[Row], json: bool) -> Result<()> {
    if json {
        let out: Vec<_> = rows
            .iter()
            .map(|(name, path, table, actual, mismatches)| {
                serde_json::json!({
                    "container": name,
                    "compose_file": path,
                    "expected": resources_json(&table.resources),
                    "cpus_reservation": table.cpus_reservation,
                    "actual": resources_json(actual),
                    "mismatches": mismatches.iter().map(|m| serde_json::json!({
                        "field": m.field, "expected": m.expected, "actual": m.actual,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    if let Some((_, path, table, _, _)) = rows.first() {
        let r = &table.resources;
        outln!(
            "table ({}): cpus {}, memory {}, pids {}, memory reservation {}, cpu reservation {} (not applied per container)",
            path.display(),
            cpus_text(r.cpus),
            bytes_text(r.memory),
            count_text(r.pids),
            bytes_text(r.memory_reservation),
            cpus_text(table.cpus_reservation)
        );
    }
    for (name, _, _, actual, mismatches) in rows {
        if mismatches.is_empty() {
            outln!(
                "ok        {name}: cpus {}, memory {}, pids {}, memory reservation {}",
                cpus_text(actual.cpus),
                bytes_text(actual.memory),
                count_text(actual.pids),
                bytes_text(actual.memory_reservation)
            );
        }
        for m in mismatches {
            outln!(
                "MISMATCH  {}: {} is {}, the table says {}",
                m.container,
                m.field,
                m.actual,
                m.expected
            );
        }
    }
    Ok(())
}

fn resources_json(r: &Resources) -> serde_json::Value {
    serde_json::json!({
        "cpus": r.cpus, "memory": r.memory, "pids": r.pids, "memory_reservation": r.memory_reservation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_compose_reads_them() {
        assert_eq!(parse_bytes("2G"), Some(2 << 30));
        assert_eq!(parse_bytes("512m"), Some(512 << 20));
        assert_eq!(parse_bytes("1gb"), Some(1 << 30));
        assert_eq!(parse_bytes("1.5g"), Some(3 << 29));
        assert_eq!(parse_bytes("1024"), Some(1024));
        assert_eq!(parse_bytes("12x"), None);
        assert_eq!(parse_bytes("-1g"), None);
        assert_eq!(bytes_text(2 << 30), "2G");
        assert_eq!(bytes_text(512 << 20), "512M");
    }

    #[test]
    fn variables_are_substituted_as_compose_does() {
        let env = |n: &str| match n {
            "SET" => Some("x".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        let i = |t: &str| interpolate(t, &env);
        assert_eq!(i("a ${SET} $SET b").unwrap(), "a x x b");
        assert_eq!(
            i("${UNSET:-d} ${EMPTY:-d} ${EMPTY-d} ${UNSET-d}").unwrap(),
            "d d  d"
        );
        assert_eq!(i("$$SET").unwrap(), "$SET");
        assert!(i("${UNSET:?needed}").unwrap_err().contains("needed"));
        assert!(i("${EMPTY:?needed}").is_err());
        assert!(i("${SET").is_err());
    }

    const COMPOSE: &str = r#"
services:
  vedfolnir:
    image: ${IMAGE:-app}
    pids_limit: 1000
    deploy:
      resources:
        limits: { cpus: "2.0", memory: 2G }
        reservations: { cpus: "1.0", memory: 1G }
  redis:
    image: redis
    deploy:
      resources:
        limits: { cpus: 2, memory: 2G, pids: 500 }
"#;

    #[test]
    fn the_table_comes_from_deploy_resources_and_pids_limit() {
        let none = |_: &str| None;
        let t = table_of(COMPOSE, "vedfolnir", &none).unwrap();
        assert_eq!(
            t.resources,
            Resources {
                cpus: 2.0,
                memory: 2 << 30,
                pids: 1000,
                memory_reservation: 1 << 30
            }
        );
        assert_eq!(t.cpus_reservation, 1.0);
        let r = table_of(COMPOSE, "redis", &none).unwrap();
        assert_eq!((r.resources.cpus, r.resources.pids), (2.0, 500));
        assert!(
            table_of(COMPOSE, "nginx", &none)
                .unwrap_err()
                .contains("nginx")
        );
        let bad = COMPOSE.replace(
            "memory: 2G }\n        reservations",
            "memory: lots }\n        reservations",
        );
        let e = table_of(&bad, "vedfolnir", &none).unwrap_err();
        assert!(
            e.contains("services.vedfolnir.deploy.resources.limits.memory"),
            "{e}"
        );
    }

    /// The bundle carries the seed's resource table, exactly: (service,
    /// CPU limit, memory limit, CPU reservation, memory reservation, PIDs).
    #[test]
    fn the_deployment_bundle_has_the_seeds_resource_table() {
        const G: u64 = 1 << 30;
        const M: u64 = 1 << 20;
        let seed: [(&str, f64, u64, f64, u64, i64); 7] = [
            ("vedfolnir", 2.0, 2 * G, 1.0, G, 1000),
            ("mysql", 4.0, 8 * G, 2.0, 4 * G, 2000),
            ("redis", 2.0, 2 * G, 1.0, G, 0),
            ("nginx", 1.0, G, 0.5, 512 * M, 0),
            ("prometheus", 2.0, 4 * G, 1.0, 2 * G, 0),
            ("grafana", 1.0, 2 * G, 0.5, G, 0),
            ("loki", 2.0, 2 * G, 1.0, G, 0),
        ];
        let bundle = include_str!("../../../../deploy/compose/compose.yml");
        let env = |name: &str| (name == "DOCKER_GID").then(|| "999".to_string());
        for (service, cpus, memory, cpus_reservation, memory_reservation, pids) in seed {
            let t = table_of(bundle, service, &env).unwrap();
            assert_eq!(
                t,
                Table {
                    resources: Resources {
                        cpus,
                        memory,
                        pids,
                        memory_reservation
                    },
                    cpus_reservation
                },
                "{service}"
            );
        }
        // Nothing that scales has a fixed name.
        assert!(
            !bundle
                .lines()
                .any(|l| l.trim_start().starts_with("container_name:"))
        );
    }

    #[test]
    fn each_differing_field_is_named_with_both_values() {
        let expected = Resources {
            cpus: 2.0,
            memory: 2 << 30,
            pids: 1000,
            memory_reservation: 1 << 30,
        };
        assert!(compare("c1", &expected, &expected).is_empty());
        let actual = Resources {
            cpus: 1.5,
            pids: 0,
            ..expected
        };
        let m = compare("c1", &expected, &actual);
        assert_eq!(m.len(), 2);
        assert_eq!(
            (m[0].field, m[0].expected.as_str(), m[0].actual.as_str()),
            ("cpus", "2", "1.5")
        );
        assert_eq!(
            (m[1].field, m[1].expected.as_str(), m[1].actual.as_str()),
            ("pids", "1000", "none")
        );
    }
}
