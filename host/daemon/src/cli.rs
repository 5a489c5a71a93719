//! The command line: the flags ([`args`]), one function per command, and
//! the exit code an error maps to. Every command is a thin shell: the
//! engine-side ones over the controller ([`service`]), the daemon over
//! [`crate::daemon`], `simulate` over [`crate::simulate`].

pub mod args;
pub mod limits;
pub mod load;
pub mod manual;
pub mod policy;
pub mod remote;
pub mod render;
pub mod scaffold;
pub mod service;
pub mod simulate;

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use vedfolnir_sandbox::{LoadError, OutputLimits, Sandbox, SandboxConfig, files};

use crate::config::{Overrides, Problems};
use crate::controller::PassError;
use crate::controller::manual::{ManualError, Wanted};
use crate::engine::EngineError;
use crate::policy::PolicyError;
use crate::state::{Busy, StateError};
use args::{Cli, Command, PluginCommand};

/// Bad configuration or input (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub String);

/// A scale did not reach its target (exit code 7).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ScaleFailed(pub String);

/// `health` found something wrong (exit code 8).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unhealthy(pub String);

/// The exit code of one error in a chain, if it decides one.
fn code_of(cause: &(dyn std::error::Error + 'static)) -> Option<u8> {
    if cause.is::<Problems>()
        || cause.is::<InvalidInput>()
        || cause.is::<crate::simulate::Invalid>()
    {
        return Some(2);
    }
    if cause.is::<LoadError>() {
        return Some(3);
    }
    if let Some(e) = cause.downcast_ref::<EngineError>() {
        return Some(match e {
            EngineError::Unreachable { .. } => 5,
            EngineError::NotFound { .. } => 6,
            EngineError::Api { .. } => 1,
            // Another holds the Swarm targets' lease.
            EngineError::Fenced { .. } => 9,
        });
    }
    if cause.is::<remote::NoDaemon>() {
        return Some(5);
    }
    if cause.is::<ScaleFailed>() {
        return Some(7);
    }
    if cause.is::<Unhealthy>() {
        return Some(8);
    }
    if cause.is::<Busy>() {
        return Some(9);
    }
    if cause.is::<limits::Mismatched>() {
        return Some(10);
    }
    if let Some(StateError::Busy(b)) = cause.downcast_ref::<StateError>() {
        return code_of(b);
    }
    match cause.downcast_ref::<ManualError>() {
        Some(ManualError::Refused { .. }) => return Some(2),
        Some(ManualError::Standby { .. }) => return Some(9),
        Some(ManualError::Pass(p)) => return code_of(p),
        None => {}
    }
    match cause.downcast_ref::<PassError>() {
        Some(PassError::Engine(e)) => return code_of(e),
        Some(PassError::State(e)) => return code_of(e),
        _ => {}
    }
    match cause.downcast_ref::<PolicyError>() {
        Some(PolicyError::Config(_)) => Some(2),
        Some(PolicyError::Plugin(_)) => Some(3),
        None => None,
    }
}

/// The exit code for an error, by what it is (see `main.rs`).
pub fn exit_code_of(e: &anyhow::Error) -> u8 {
    e.chain().find_map(code_of).unwrap_or(1)
}

/// The largest token file read.
const MAX_TOKEN_FILE_BYTES: u64 = 64 << 10;

/// A bearer token (`what`: "API", "Alertmanager webhook"): from the file
/// named, or the environment variable `var`. At least 16 characters.
pub(crate) fn token(file: Option<&Path>, var: &str, what: &str) -> Result<Option<String>> {
    let (token, from) = match file {
        Some(f) => (
            files::read_text(f, MAX_TOKEN_FILE_BYTES).map_err(|e| {
                InvalidInput(format!(
                    "cannot read the {what} token file {}: {e}",
                    f.display()
                ))
            })?,
            f.display().to_string(),
        ),
        None => match std::env::var(var) {
            Ok(t) => (t, var.to_string()),
            Err(_) => return Ok(None),
        },
    };
    let token = token.trim().to_string();
    if token.len() < 16 {
        return Err(InvalidInput(format!(
            "the {what} token in {from} is {}: use at least 16 characters (for example: head -c 24 /dev/urandom | base64)",
            if token.is_empty() { "empty".to_string() } else { format!("only {} characters", token.len()) }
        ))
        .into());
    }
    Ok(Some(token))
}

impl args::TokenArgs {
    /// The API's token: from its file, or `VEDFOLNIR_API_TOKEN`.
    fn api(&self) -> Result<Option<String>> {
        token(self.api_token_file.as_deref(), "VEDFOLNIR_API_TOKEN", "API")
    }

    /// The Alertmanager webhook's: from its file, or
    /// `VEDFOLNIR_ALERTMANAGER_TOKEN`.
    fn alertmanager(&self) -> Result<Option<String>> {
        token(
            self.alertmanager_token_file.as_deref(),
            "VEDFOLNIR_ALERTMANAGER_TOKEN",
            "Alertmanager webhook",
        )
    }
}

/// Where a command without a state directory of its own would keep one
/// (`Setup` is shared; those commands never open it).
const NO_STATE_DIR: &str = "/var/lib/vedfolnir-autoscaler";

fn sandbox(command: &Command, args: &args::SandboxArgs) -> Result<Sandbox> {
    Sandbox::new(SandboxConfig {
        deadline: args.plugin_deadline,
        memory_cap: args.plugin_memory_mib << 20,
        output_limits: OutputLimits {
            reasons: args.plugin_max_reasons,
            message_bytes: args.plugin_max_reason_bytes,
            trigger_bytes: args.plugin_max_trigger_bytes,
        },
        // The daemon caches compiled modules by default (in its state
        // directory), so a module swapped back in loads in milliseconds.
        cache_dir: args.cache_dir.clone().or_else(|| match command {
            Command::Run { state, .. } => Some(state.state_dir.join("cache")),
            _ => None,
        }),
        // A replay budgets instructions, not wall-clock time: the same
        // trace gives the same report however busy the machine is.
        fuel: matches!(command, Command::Simulate(_)).then_some(crate::simulate::REPLAY_FUEL),
        ..Default::default()
    })
    .context("cannot start the policy sandbox")
}

/// Run the command the line names.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let command = cli.command;
    let Some(sandbox_args) = command.sandbox().cloned() else {
        return without_policies(&command);
    };
    let sandbox = sandbox(&command, &sandbox_args)?;
    let state_dir = command
        .state()
        .map(|s| s.state_dir.clone())
        .unwrap_or_else(|| NO_STATE_DIR.into());
    let setup = service::Setup {
        sandbox: &sandbox,
        state_dir: &state_dir,
        prometheus: prometheus_of(&command),
    };
    match command {
        Command::Evaluate {
            policy,
            input,
            json,
            min_replicas,
            max_replicas,
            ..
        } => policy::evaluate(
            &sandbox,
            &policy,
            &input,
            json,
            &Overrides {
                min_replicas,
                max_replicas,
            },
        ),
        Command::Validate(args) => policy::validate(&sandbox, &args.files(), args.json),
        Command::Simulate(args) => simulate::simulate(&sandbox, *args),
        Command::Run {
            policies,
            interval,
            listen,
            act,
            tokens,
            min_replicas,
            max_replicas,
            ..
        } => crate::daemon::run(
            &sandbox,
            crate::state::StateDir::open(&state_dir)?,
            setup.sources(),
            &Overrides {
                min_replicas,
                max_replicas,
            },
            run_options(policies, interval, listen, &act, &tokens)?,
        ),
        Command::ScaleUp {
            replicas,
            args,
            act,
            ..
        } => service::scale(&setup, &args, &act, Wanted::Up(replicas), "scale-up"),
        Command::ScaleDown {
            replicas,
            args,
            act,
            ..
        } => service::scale(&setup, &args, &act, Wanted::Down(replicas), "scale-down"),
        Command::Health { args, .. } => service::health(&setup, &args),
        Command::Report {
            args, lease_name, ..
        } => service::report(&setup, &args, &lease_name),
        Command::Reset { args, act, .. } => service::reset(&setup, &args, &act),
        Command::Check { args, act, .. } => service::check(&setup, &args, &act),
        Command::Plugin { command } => plugin(&sandbox, command),
        // `load`, `limits`, `status`, `pause`, `resume`, `completions`,
        // `man`: see `without_policies`.
        _ => unreachable!("answered before the sandbox is built"),
    }
}

/// The Prometheus source a command's flags name, if any.
fn prometheus_of(command: &Command) -> Option<crate::sources::prometheus::Prometheus> {
    let p = command.prometheus()?;
    let url = p.prometheus_url.as_deref()?;
    Some(crate::sources::prometheus::Prometheus::new(
        url,
        p.prometheus_timeout,
    ))
}

/// The commands that load no policy: `plugin new`, `load`, `limits`,
/// `status`, `pause`, `resume`, `completions`, `man`.
fn without_policies(command: &Command) -> Result<ExitCode> {
    match command {
        Command::Plugin {
            command: PluginCommand::New { name, dir, sdk },
        } => scaffold::run(name, dir.clone(), sdk.as_deref()),
        Command::Load(args) => load::run(args),
        Command::Limits(args) => limits::run(args),
        Command::Status(args) => remote::status(args),
        Command::Pause(args) => remote::pause(args, true),
        Command::Resume(args) => remote::pause(args, false),
        Command::Completions { shell } => manual::completions(*shell),
        Command::Man(args) => manual::man(args),
        _ => unreachable!("every other command loads policies"),
    }
}

/// The daemon's options from `run`'s flags.
fn run_options(
    policies: Vec<std::path::PathBuf>,
    interval: std::time::Duration,
    listen: std::net::SocketAddr,
    act: &args::ActArgs,
    tokens: &args::TokenArgs,
) -> Result<crate::daemon::RunOptions> {
    Ok(crate::daemon::RunOptions {
        policies,
        interval,
        listen,
        dry_run: act.dry_run,
        api_token: tokens.api()?,
        alertmanager_token: tokens.alertmanager()?,
        webhook_url: act.webhook().map(str::to_string),
        lease: act.lease.config()?,
    })
}

/// `plugin check|test|list` (`plugin new` needs no sandbox: see [`run`]).
fn plugin(sandbox: &Sandbox, command: PluginCommand) -> Result<ExitCode> {
    match command {
        PluginCommand::Check { file, json, .. } => policy::plugin_check(sandbox, &file, json),
        PluginCommand::Test {
            file, scenarios, ..
        } => policy::plugin_test(sandbox, &file, &scenarios),
        PluginCommand::List { json, .. } => policy::plugin_list(sandbox, json),
        PluginCommand::New { .. } => unreachable!("answered before the sandbox is built"),
    }
}
