//! The one-shot commands: `evaluate`, `validate`, `plugin check|test|list`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, Result};
use vedfolnir_core::duration::format_duration;
use vedfolnir_core::guard::GuardState;
use vedfolnir_core::model::Reason;
use vedfolnir_core::scenario::ScenarioFile;
use vedfolnir_core::snapshot::{Frame, Snapshot, effective_params, resolve_params};
use vedfolnir_sandbox::{LoadError, Plugin, Sandbox, SandboxConfig, Stage};

use crate::config::{Overrides, PluginRef, Problems};
use crate::policy::{Evaluation, PolicyError, ReadyPolicy, load_plugin};
use crate::{Cli, Command, PluginCommand};

/// An error that means "bad configuration or input" (exit code 2).
#[derive(Debug)]
pub(crate) struct InvalidInput(pub String);

impl std::fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidInput {}

/// The exit code for an error, by what it is (see `main.rs`).
pub fn exit_code_of(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if cause.is::<Problems>() || cause.is::<InvalidInput>() {
            return 2;
        }
        if cause.is::<LoadError>() {
            return 3;
        }
        if let Some(e) = cause.downcast_ref::<crate::docker::EngineError>() {
            return match e {
                crate::docker::EngineError::Unreachable { .. } => 5,
                crate::docker::EngineError::NotFound(_) => 6,
                crate::docker::EngineError::Api(_) => 1,
            };
        }
        if cause.is::<crate::ops::Refused>() {
            return 2;
        }
        if cause.is::<crate::ops::ScaleFailed>() {
            return 7;
        }
        if cause.is::<crate::ops::Unhealthy>() {
            return 8;
        }
        if cause.is::<crate::store::Busy>() {
            return 9;
        }
        if let Some(p) = cause.downcast_ref::<PolicyError>() {
            return match p {
                PolicyError::Config(_) => 2,
                PolicyError::Plugin(_) => 3,
            };
        }
    }
    1
}

/// The API token: from the file named, or `VEDFOLNIR_API_TOKEN`.
fn api_token(file: Option<&Path>) -> Result<Option<String>> {
    let (token, from) = match file {
        Some(f) => (
            std::fs::read_to_string(f).map_err(|e| {
                InvalidInput(format!(
                    "cannot read the API token file {}: {e}",
                    f.display()
                ))
            })?,
            f.display().to_string(),
        ),
        None => match std::env::var("VEDFOLNIR_API_TOKEN") {
            Ok(t) => (t, "VEDFOLNIR_API_TOKEN".to_string()),
            Err(_) => return Ok(None),
        },
    };
    let token = token.trim().to_string();
    if token.len() < 16 {
        return Err(InvalidInput(format!(
            "the API token in {from} is {}: use at least 16 characters (for example: head -c 24 /dev/urandom | base64)",
            if token.is_empty() { "empty".to_string() } else { format!("only {} characters", token.len()) }
        ))
        .into());
    }
    Ok(Some(token))
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    let sandbox = Sandbox::new(SandboxConfig {
        deadline: cli.plugin_deadline,
        memory_cap: cli.plugin_memory_mib << 20,
        // The daemon caches compiled modules by default (in its state
        // directory), so a module swapped back in loads in milliseconds.
        cache_dir: cli.cache_dir.clone().or_else(|| {
            matches!(cli.command, Command::Run { .. }).then(|| cli.state_dir.join("cache"))
        }),
        ..Default::default()
    })
    .context("cannot start the policy sandbox")?;
    let sources = sources(&cli);
    match cli.command {
        Command::Evaluate {
            policy,
            input,
            json,
            min_replicas,
            max_replicas,
        } => evaluate(
            &sandbox,
            &policy,
            &input,
            json,
            &Overrides {
                min_replicas,
                max_replicas,
            },
        ),
        Command::Validate { policies } => validate(&sandbox, &policies),
        Command::Simulate(args) => simulate(&sandbox, *args),
        Command::Run {
            policies,
            interval,
            listen,
            dry_run,
            api_token_file,
            webhook_url,
            min_replicas,
            max_replicas,
        } => crate::run::run(
            &sandbox,
            crate::store::Store::open(&cli.state_dir)?,
            sources.prometheus.clone(),
            &Overrides {
                min_replicas,
                max_replicas,
            },
            crate::run::RunOptions {
                policies,
                interval,
                listen,
                dry_run,
                api_token: api_token(api_token_file.as_deref())?,
                webhook_url: webhook_url.filter(|u| !u.trim().is_empty()),
            },
        ),
        Command::ScaleUp { replicas, args } => {
            let (policy, store) = ready(&sandbox, &cli.state_dir, &args)?;
            crate::ops::manual_scale(&policy, &store, crate::ops::Manual::Up, replicas, args.json)
        }
        Command::ScaleDown { replicas, args } => {
            let (policy, store) = ready(&sandbox, &cli.state_dir, &args)?;
            crate::ops::manual_scale(
                &policy,
                &store,
                crate::ops::Manual::Down,
                replicas,
                args.json,
            )
        }
        Command::Health { args } => {
            let policy = ReadyPolicy::load(&sandbox, &args.policy, &overrides(&args))?;
            crate::ops::health(&policy, &sources, args.json)
        }
        Command::Report { args } => {
            let (policy, store) = ready(&sandbox, &cli.state_dir, &args)?;
            crate::ops::report(&policy, &sources, &store, args.json)
        }
        Command::Reset { args } => {
            let (policy, store) = ready(&sandbox, &cli.state_dir, &args)?;
            crate::ops::reset(&policy, &store)
        }
        Command::Check { args, dry_run } => {
            let (policy, store) = ready(&sandbox, &cli.state_dir, &args)?;
            crate::ops::check(&policy, &sources, &store, dry_run, args.json)
        }
        Command::Plugin { command } => match command {
            PluginCommand::Check { file, json } => plugin_check(&sandbox, &file, json),
            PluginCommand::Test { file, scenarios } => plugin_test(&sandbox, &file, &scenarios),
            PluginCommand::List => {
                for (name, _, bytes) in vedfolnir_plugin_artifacts::POLICIES {
                    let plugin = sandbox.load_bytes(&format!("builtin:{name}"), bytes)?;
                    let d = plugin.description();
                    println!("builtin:{name}  {}  {}", d.version, d.summary);
                }
                Ok(ExitCode::SUCCESS)
            }
        },
    }
}

fn overrides(args: &crate::PolicyArgs) -> Overrides {
    Overrides {
        min_replicas: args.min_replicas,
        max_replicas: args.max_replicas,
    }
}

/// The non-docker sources the command line configures.
fn sources(cli: &Cli) -> crate::ops::Sources {
    crate::ops::Sources {
        prometheus: cli
            .prometheus_url
            .as_deref()
            .map(|url| crate::prom::Prometheus::new(url, cli.prometheus_timeout)),
        alerts: None,
    }
}

/// The policy and the state directory a Docker command needs.
fn ready(
    sandbox: &Sandbox,
    state_dir: &Path,
    args: &crate::PolicyArgs,
) -> Result<(ReadyPolicy, crate::store::Store)> {
    let policy = ReadyPolicy::load(sandbox, &args.policy, &overrides(args))?;
    let store = crate::store::Store::open(state_dir)?;
    Ok((policy, store))
}

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
        return Err(LoadError {
            source_label: text.to_string(),
            stage: Stage::Read,
            message: "no such builtin policy (see `plugin list`)".into(),
        });
    }
    load_plugin(sandbox, &r)
}

fn evaluate(
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
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", render(&policy, &input, &evaluation));
    }
    Ok(ExitCode::SUCCESS)
}

fn read_snapshot(path: &Path) -> Result<Snapshot> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read snapshot {}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| InvalidInput(format!("{}: not a valid snapshot: {e}", path.display())).into())
}

pub fn render(policy: &ReadyPolicy, input: &vedfolnir_core::PolicyInput, e: &Evaluation) -> String {
    let mut out = String::new();
    let id = policy.plugin.id();
    let _ = writeln!(out, "service {}  policy {id}", input.service);
    let _ = writeln!(
        out,
        "replicas {} (ready {}, min {}, max {})",
        input.current_replicas, input.ready_replicas, input.min_replicas, input.max_replicas
    );
    match (&e.recommendation, &e.failure) {
        (Some(rec), _) => {
            let _ = writeln!(
                out,
                "\nrecommendation: {} to {}  (scale-up score {}, scale-down score {})",
                rec.direction, rec.desired_replicas, rec.scale_up_score, rec.scale_down_score
            );
            for r in &rec.reasons {
                let _ = writeln!(out, "  {}", reason_line(r));
            }
        }
        (None, Some(f)) => {
            let _ = writeln!(out, "\npolicy failed: {}: {}", f.kind, f.message);
        }
        (None, None) => {}
    }
    let d = &e.decision;
    let _ = writeln!(out, "\nguard rails:");
    if d.reasons.is_empty() {
        let _ = writeln!(out, "  (no intervention)");
    }
    for r in &d.reasons {
        let change = match (r.from, r.to) {
            (Some(a), Some(b)) => format!(" [{a} -> {b}]"),
            _ => String::new(),
        };
        let _ = writeln!(out, "  {}{change}: {}", r.rule.as_str(), r.message);
    }
    let verdict = match d.direction {
        vedfolnir_core::Direction::Up => format!("SCALE UP {} -> {}", d.current, d.target),
        vedfolnir_core::Direction::Down => format!("SCALE DOWN {} -> {}", d.current, d.target),
        vedfolnir_core::Direction::Hold => format!("HOLD at {}", d.current),
    };
    let _ = writeln!(out, "\ndecision: {verdict}");
    out
}

fn reason_line(r: &Reason) -> String {
    let mut facts = Vec::new();
    if let Some(v) = r.observed {
        facts.push(format!("observed {v}"));
    }
    if let Some(t) = r.threshold {
        facts.push(format!("threshold {t}"));
    }
    if let Some(h) = r.held_for {
        facts.push(format!("held {}", format_duration(h)));
    }
    let facts = if facts.is_empty() {
        String::new()
    } else {
        format!("  ({})", facts.join(", "))
    };
    format!("{:<22} {}{facts}", r.trigger, r.message)
}

fn validate(sandbox: &Sandbox, paths: &[PathBuf]) -> Result<ExitCode> {
    let mut problems = Vec::new();
    for path in paths {
        match ReadyPolicy::load(sandbox, path, &Overrides::default()) {
            Ok(p) => println!(
                "{}: ok ({} for service {})",
                path.display(),
                p.plugin.id(),
                p.file.service
            ),
            Err(PolicyError::Config(Problems(mut list))) => problems.append(&mut list),
            Err(PolicyError::Plugin(e)) => {
                return Err(e).with_context(|| format!("{}: plugin", path.display()));
            }
        }
    }
    if problems.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(Problems(problems).into())
    }
}

fn plugin_check(sandbox: &Sandbox, file: &str, json: bool) -> Result<ExitCode> {
    let started = Instant::now();
    let outcome = load_named(sandbox, file).and_then(|plugin| {
        let defaults: Vec<_> = resolve_params(&plugin.description().params, &Default::default())
            .map_err(|e| LoadError {
                source_label: file.to_string(),
                stage: Stage::Describe,
                message: format!("{e:?}"),
            })?;
        plugin.smoke_test(&defaults).map(|notes| (plugin, notes))
    });
    let failed_stage = outcome.as_ref().err().map(|e| e.stage);
    if !json {
        println!("checking {file}");
        for stage in Stage::ALL {
            match failed_stage {
                Some(f) if f == stage => {
                    let e = outcome.as_ref().unwrap_err();
                    println!("  FAILED {:<10} {}", stage.as_str(), e.message);
                    break;
                }
                _ => println!("  ok     {}", stage.as_str()),
            }
        }
    }
    let (plugin, notes) = outcome?;
    for note in &notes {
        eprintln!("note: {note}");
    }
    if json {
        println!("{}", serde_json::to_string_pretty(plugin.description())?);
    } else {
        let d = plugin.description();
        println!(
            "{} {}: {} signals, {} parameters; checked in {} ms",
            d.name,
            d.version,
            d.signals.len(),
            d.params.len(),
            started.elapsed().as_millis()
        );
        println!("digest sha256:{}", plugin.id().digest);
    }
    Ok(ExitCode::SUCCESS)
}

fn plugin_test(sandbox: &Sandbox, file: &str, scenario_paths: &[PathBuf]) -> Result<ExitCode> {
    let plugin = load_named(sandbox, file)?;
    let specs = &plugin.description().params;
    let (mut passed, mut failed) = (0usize, 0usize);
    for path in scenario_paths {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read scenario file {}", path.display()))?;
        let scenarios: ScenarioFile = toml::from_str(&text).map_err(|e| {
            InvalidInput(format!(
                "{}: not a valid scenario file: {e}",
                path.display()
            ))
        })?;
        println!(
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
        for (name, mismatches) in scenarios.run(specs, validate, evaluate) {
            if mismatches.is_empty() {
                passed += 1;
                println!("  ok    {name}");
            } else {
                failed += 1;
                println!("  FAIL  {name}");
                for m in mismatches {
                    println!("          {m}");
                }
            }
        }
    }
    println!("scenarios: {passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(4)
    })
}

fn simulate(sandbox: &Sandbox, a: crate::SimulateArgs) -> Result<ExitCode> {
    use vedfolnir_core::sim::{ServiceModel, Slo};
    let load = match a.trace {
        Some(path) => crate::simulate::Load::File {
            path,
            column: a.column,
        },
        None => crate::simulate::Load::Shape {
            shape: a.shape.unwrap_or_else(|| "diurnal".into()),
            duration_ms: a.duration.as_millis() as u64,
            base: a.base,
            peak: a.peak,
            seed: a.seed,
        },
    };
    let policies = if a.policies.is_empty() {
        vedfolnir_plugin_artifacts::POLICIES
            .iter()
            .map(|(n, _, _)| format!("builtin:{n}"))
            .collect()
    } else {
        a.policies
    };
    let ms = |d: std::time::Duration| d.as_millis() as u64;
    let options = crate::simulate::Options {
        load,
        scale: a.scale,
        policies,
        overrides: Overrides {
            min_replicas: a.min_replicas,
            max_replicas: a.max_replicas,
        },
        interval_ms: ms(a.interval),
        step_ms: a.step.map(ms),
        model: ServiceModel {
            capacity: a.capacity,
            workers: a.workers,
            startup_ms: ms(a.startup),
            timeout_ms: ms(a.timeout),
            ..ServiceModel::default()
        },
        start_replicas: a.start_replicas,
        slo: Slo {
            p95: a.slo_p95,
            error_rate: a.slo_error_rate,
        },
        chart: a.chart,
        actions: a.actions,
        json: a.json,
        progress: !a.quiet && !a.json,
    };
    let report = crate::simulate::run(sandbox, &options)?;
    if options.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", crate::simulate::table(&report, &options));
        if let Some(path) = &options.chart {
            println!("\nchart: {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
