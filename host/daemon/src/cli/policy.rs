//! The commands that need no engine: `evaluate` (one snapshot), `validate`
//! (policy files), `plugin check|test|list`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use vedfolnir_core::guard::GuardState;
use vedfolnir_core::scenario::ScenarioFile;
use vedfolnir_core::snapshot::{Frame, Snapshot, effective_params, resolve_params};
use vedfolnir_sandbox::{LoadError, Plugin, Sandbox, Stage, files};

use super::{InvalidInput, render};
use crate::clock::Stopwatch;
use crate::config::{Overrides, PluginRef, Problems};
use crate::policy::{PolicyError, ReadyPolicy, load_plugin};

fn plugin_ref(text: &str) -> PluginRef {
    match text.strip_prefix("builtin:") {
        Some(name) => PluginRef::Builtin(name.to_string()),
        None => PluginRef::File(PathBuf::from(text)),
    }
}

fn load_named(sandbox: &Sandbox, text: &str) -> Result<Plugin, LoadError> {
    let r = plugin_ref(text);
    if let PluginRef::Builtin(name) = &r
        && vedfolnir_plugin_artifacts::policy(name).is_none()
    {
        return Err(LoadError::new(
            text,
            Stage::Read,
            "no such builtin policy (see `plugin list`)",
        ));
    }
    load_plugin(sandbox, &r)
}

pub fn evaluate(
    sandbox: &Sandbox,
    policy_path: &Path,
    input_path: &Path,
    json: bool,
    overrides: &Overrides,
) -> Result<ExitCode> {
    let policy = ReadyPolicy::load(sandbox, policy_path, overrides)?;
    let snapshot = read_snapshot(input_path)?;
    let frame = Frame {
        service: policy.file.service.clone(),
        min_replicas: policy.file.guard.min_replicas,
        max_replicas: policy.file.guard.max_replicas,
        params: policy.params.clone(),
    };
    let input = snapshot.to_input(&frame).map_err(|errors| {
        let list: Vec<String> = errors
            .iter()
            .map(|e| format!("  {}: {e}", input_path.display()))
            .collect();
        InvalidInput(format!(
            "{} problem(s) in the snapshot:\n{}",
            errors.len(),
            list.join("\n")
        ))
    })?;
    // A snapshot carries time since the last scale-up/down; the guard rails
    // take the same facts as timestamps.
    let state = GuardState::implied_by(&input);
    let evaluation = policy.evaluate(&input, &state);
    if json {
        let id = policy.plugin.id();
        let out = serde_json::json!({
            "service": input.service,
            "plugin": { "name": id.name, "version": id.version, "source": id.source, "digest": id.digest },
            "current_replicas": input.current_replicas,
            "ready_replicas": input.ready_replicas,
            "min_replicas": input.min_replicas,
            "max_replicas": input.max_replicas,
            "params": effective_params(&policy.plugin.description().params, &policy.params)
                .into_iter()
                .map(|p| (p.key, p.value))
                .collect::<std::collections::BTreeMap<_, _>>(),
            "recommendation": evaluation.recommendation,
            "failure": evaluation.failure,
            "decision": evaluation.decision,
        });
        outln!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        out!("{}", render::decision(&policy, &input, &evaluation));
    }
    Ok(ExitCode::SUCCESS)
}

/// The largest snapshot or scenario file read.
const MAX_INPUT_BYTES: u64 = 64 << 20;

fn read_snapshot(path: &Path) -> Result<Snapshot> {
    let text = files::read_text(path, MAX_INPUT_BYTES)
        .with_context(|| format!("cannot read snapshot {}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| InvalidInput(format!("{}: not a valid snapshot: {e}", path.display())).into())
}

/// `validate`: every problem of every file in one run (exit 2), or each
/// file's plugin and notes. `json`: one object on stdout with the same
/// exit codes (2 problems, 3 a plugin rejected).
pub fn validate(sandbox: &Sandbox, paths: &[PathBuf], json: bool) -> Result<ExitCode> {
    let mut problems = Vec::new();
    let mut files = Vec::new();
    let mut rejected = None;
    for path in paths {
        match ReadyPolicy::load(sandbox, path, &Overrides::default()) {
            Ok(p) => {
                if !json {
                    outln!(
                        "{}: ok ({} for service {})",
                        path.display(),
                        p.plugin.id(),
                        p.file.service
                    );
                    for note in &p.notes {
                        outln!("  note: {}: {}", note.key, note.message);
                    }
                }
                files.push(serde_json::json!({
                    "path": path, "ok": true, "plugin": p.plugin.id().to_string(),
                    "service": p.file.service,
                    "notes": p.notes.iter().map(|n| serde_json::json!({"key": n.key, "message": n.message})).collect::<Vec<_>>(),
                }));
            }
            Err(PolicyError::Config(Problems(mut list))) => {
                files.push(serde_json::json!({ "path": path, "ok": false }));
                problems.append(&mut list);
            }
            Err(PolicyError::Plugin(e)) if json => {
                files.push(serde_json::json!({ "path": path, "ok": false }));
                problems.push(crate::config::Problem {
                    file: path.clone(),
                    key: "plugin".into(),
                    message: crate::errors::chain(&e),
                });
                rejected = Some(3);
            }
            Err(PolicyError::Plugin(e)) => {
                return Err(e).with_context(|| format!("{}: plugin", path.display()));
            }
        }
    }
    if json {
        let listed: Vec<_> = problems
            .iter()
            .map(|p| serde_json::json!({ "file": p.file, "key": p.key, "message": p.message }))
            .collect();
        let ok = problems.is_empty();
        outln!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "ok": ok, "files": files, "problems": listed })
            )?
        );
        return Ok(match (ok, rejected) {
            (true, _) => ExitCode::SUCCESS,
            (false, Some(code)) => ExitCode::from(code),
            (false, None) => ExitCode::from(2),
        });
    }
    if problems.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(Problems(problems).into())
    }
}

pub fn plugin_check(sandbox: &Sandbox, file: &str, json: bool) -> Result<ExitCode> {
    let started = Stopwatch::start();
    let outcome = load_named(sandbox, file).and_then(|plugin| {
        let defaults: Vec<_> = resolve_params(&plugin.description().params, &Default::default())
            .map_err(|e| LoadError::new(file, Stage::Describe, format!("{e:?}")))?;
        plugin.smoke_test(&defaults).map(|notes| (plugin, notes))
    });
    if !json {
        outln!("checking {file}");
        for stage in Stage::ALL {
            match outcome.as_ref().err() {
                Some(e) if e.stage == stage => {
                    outln!("  FAILED {:<10} {}", stage.as_str(), e.detail());
                    break;
                }
                _ => outln!("  ok     {}", stage.as_str()),
            }
        }
    }
    let (plugin, notes) = outcome?;
    for note in &notes {
        eprintln!("note: {note}");
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(plugin.description())?);
    } else {
        let d = plugin.description();
        let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        outln!(
            "{} {}: {}, {}; checked in {} ms",
            d.name,
            d.version,
            count(d.signals.len(), "signal"),
            count(d.params.len(), "parameter"),
            started.elapsed_ms()
        );
        outln!("digest sha256:{}", plugin.id().digest);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn plugin_test(sandbox: &Sandbox, file: &str, scenario_paths: &[PathBuf]) -> Result<ExitCode> {
    let plugin = load_named(sandbox, file)?;
    let (mut passed, mut failed) = (0usize, 0usize);
    for path in scenario_paths {
        let text = files::read_text(path, MAX_INPUT_BYTES)
            .with_context(|| format!("cannot read scenario file {}", path.display()))?;
        let scenarios: ScenarioFile = toml::from_str(&text).map_err(|e| {
            InvalidInput(format!(
                "{}: not a valid scenario file: {e}",
                path.display()
            ))
        })?;
        outln!(
            "{} ({} scenarios)",
            path.display(),
            scenarios.scenarios.len()
        );
        let validate = |params: &[_]| match plugin.validate_config(params) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(errors)) => Err(errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")),
            Err(e) => Err(e.to_string()),
        };
        let evaluate = |input: &_| plugin.evaluate(input).map_err(|e| e.message);
        for (name, mismatches) in scenarios.run(plugin.description(), validate, evaluate) {
            if mismatches.is_empty() {
                passed += 1;
                outln!("  ok    {name}");
            } else {
                failed += 1;
                outln!("  FAIL  {name}");
                for m in mismatches {
                    outln!("          {m}");
                }
            }
        }
    }
    outln!("scenarios: {passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(4)
    })
}

/// `plugin list`: the policies built into this binary.
pub fn plugin_list(sandbox: &Sandbox, json: bool) -> Result<ExitCode> {
    let mut listed = Vec::new();
    for (name, _, bytes) in vedfolnir_plugin_artifacts::POLICIES {
        let plugin = sandbox.load_bytes(&format!("builtin:{name}"), bytes)?;
        let d = plugin.description();
        if json {
            listed.push(serde_json::json!({
                "plugin": format!("builtin:{name}"), "name": d.name, "version": d.version,
                "summary": d.summary, "digest": plugin.id().digest,
            }));
        } else {
            outln!("builtin:{name}  {}  {}", d.version, d.summary);
        }
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&listed)?);
    }
    Ok(ExitCode::SUCCESS)
}
