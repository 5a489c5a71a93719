//! `vedfolnir-autoscaler`: the Vedfolnir Autoscaler's command line.
//!
//! Exit codes (for scripts and cron):
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success |
//! | 1 | an error not covered below (I/O, an unexpected failure) |
//! | 2 | invalid configuration or input: a policy file, a snapshot, a scenario file |
//! | 3 | a plugin was rejected, at the stage named in the message |
//! | 4 | `plugin test`: at least one scenario failed |
//! | 5 | the Docker engine cannot be reached (socket missing, permission denied) |
//! | 6 | the target service was not found on the engine |
//! | 7 | a scale did not reach its target (failed, partial or rolled back) |
//! | 8 | `health`: the engine answers but the service is not healthy |
//! | 9 | another instance holds the service's lock (it is deciding or scaling) |
#![forbid(unsafe_code)]

mod actuate;
mod alerts;
mod api;
mod commands;
mod config;
mod docker;
mod metrics;
mod notifier;
mod ops;
mod policy;
mod prom;
mod reload;
mod run;
mod simulate;
mod store;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// A Docker autoscaler whose scaling policies are sandboxed WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "vedfolnir-autoscaler", version, about, long_about = None)]
struct Cli {
    /// Log filter, as in RUST_LOG (e.g. "info", "vedfolnir=debug").
    #[arg(long, global = true, env = "VEDFOLNIR_LOG", default_value = "warn")]
    log: String,

    /// Where compiled policy components are cached, keyed by digest (for
    /// `run`, <state-dir>/cache unless given).
    #[arg(long, global = true, env = "VEDFOLNIR_CACHE_DIR")]
    cache_dir: Option<PathBuf>,

    /// Wall-clock budget of one call into a policy.
    #[arg(long, global = true, env = "VEDFOLNIR_PLUGIN_DEADLINE", default_value = "50ms", value_parser = parse_duration)]
    plugin_deadline: Duration,

    /// Memory cap of one policy evaluation, in MiB.
    #[arg(
        long,
        global = true,
        env = "VEDFOLNIR_PLUGIN_MEMORY_MIB",
        default_value_t = 32
    )]
    plugin_memory_mib: usize,

    /// Where the audit log, cooldown state and sample history are kept.
    #[arg(
        long,
        global = true,
        env = "VEDFOLNIR_STATE_DIR",
        default_value = "/var/lib/vedfolnir-autoscaler"
    )]
    state_dir: PathBuf,

    /// The Prometheus server that `prometheus` signals are queried from.
    #[arg(long, global = true, env = "PROMETHEUS_URL")]
    prometheus_url: Option<String>,

    /// How long one Prometheus query may take.
    #[arg(long, global = true, env = "VEDFOLNIR_PROMETHEUS_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    prometheus_timeout: Duration,

    #[command(subcommand)]
    command: Command,
}

/// The policy file a Docker command works on.
#[derive(Debug, clap::Args)]
struct PolicyArgs {
    /// The policy file (TOML): service, target, bounds.
    #[arg(long, env = "VEDFOLNIR_POLICY")]
    policy: PathBuf,
    /// Replaces the policy's min_replicas.
    #[arg(long, env = "MIN_REPLICAS")]
    min_replicas: Option<u32>,
    /// Replaces the policy's max_replicas.
    #[arg(long, env = "MAX_REPLICAS")]
    max_replicas: Option<u32>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Evaluate a policy on one snapshot: the plugin's recommendation, the
    /// guard-rail decision, and every reason.
    Evaluate {
        /// The policy file (TOML).
        #[arg(long)]
        policy: PathBuf,
        /// The input snapshot (JSON).
        #[arg(long)]
        input: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Replaces the policy's min_replicas.
        #[arg(long, env = "MIN_REPLICAS")]
        min_replicas: Option<u32>,
        /// Replaces the policy's max_replicas.
        #[arg(long, env = "MAX_REPLICAS")]
        max_replicas: Option<u32>,
    },
    /// Work with policy plugins.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Scale up to N replicas (default: one more), clamped to max_replicas.
    ScaleUp {
        /// The replica count wanted.
        replicas: Option<u32>,
        #[command(flatten)]
        args: PolicyArgs,
    },
    /// Scale down to N replicas (default: one fewer), clamped to min_replicas.
    ScaleDown {
        /// The replica count wanted.
        replicas: Option<u32>,
        #[command(flatten)]
        args: PolicyArgs,
    },
    /// Is the engine reachable, the service found, every replica healthy?
    Health {
        #[command(flatten)]
        args: PolicyArgs,
    },
    /// Replicas, metrics, scores and the last actions, read from the engine
    /// and the audit log.
    Report {
        #[command(flatten)]
        args: PolicyArgs,
    },
    /// Clear the service's cooldowns; the audit log and sample history stay.
    Reset {
        #[command(flatten)]
        args: PolicyArgs,
    },
    /// One pass: collect, evaluate, guard, act. Made for cron.
    Check {
        #[command(flatten)]
        args: PolicyArgs,
        /// Decide, but do not act.
        #[arg(long)]
        dry_run: bool,
    },
    /// The daemon: a pass per policy every interval; the policies folder
    /// hot-reloaded; the status API, /metrics and the Alertmanager webhook on
    /// 127.0.0.1. SIGHUP rescans the policies; SIGTERM stops it after the
    /// passes in flight. The API token may also come from VEDFOLNIR_API_TOKEN.
    Run {
        /// Policy files, or folders of `*.toml` policy files and `.wasm` modules (watched).
        #[arg(long = "policies", env = "VEDFOLNIR_POLICIES", required = true, num_args = 1.., value_delimiter = ',')]
        policies: Vec<PathBuf>,
        /// Time between passes.
        #[arg(long, env = "VEDFOLNIR_INTERVAL", default_value = "15s", value_parser = parse_duration)]
        interval: Duration,
        /// Where /metrics, /health and the webhook listen.
        #[arg(long, env = "VEDFOLNIR_LISTEN", default_value = "127.0.0.1:9464")]
        listen: std::net::SocketAddr,
        /// Decide, audit and expose "would scale", never act; cooldowns
        /// advance (on their own clocks) as if it had scaled.
        #[arg(long, env = "DRY_RUN", value_parser = clap::builder::FalseyValueParser::new())]
        dry_run: bool,
        /// A file holding the bearer token the API's POST endpoints require.
        #[arg(long, env = "VEDFOLNIR_API_TOKEN_FILE")]
        api_token_file: Option<PathBuf>,
        /// Where each action is posted as JSON (with a Slack-compatible `text`).
        #[arg(long, env = "WEBHOOK_URL")]
        webhook_url: Option<String>,
        /// Replaces every policy's min_replicas.
        #[arg(long, env = "MIN_REPLICAS")]
        min_replicas: Option<u32>,
        /// Replaces every policy's max_replicas.
        #[arg(long, env = "MAX_REPLICAS")]
        max_replicas: Option<u32>,
    },
    /// Replay a load trace (CSV: time, load) or a built-in shape through a
    /// model of the service, with the real sandbox and guard rails on a
    /// virtual clock, for one or several policies side by side; print the
    /// SLO-violation minutes, replica-hours, actions and reversals of each.
    Simulate(Box<SimulateArgs>),
    /// Check policy files without evaluating: every problem, with file and key.
    Validate {
        /// Policy files (TOML).
        #[arg(required = true)]
        policies: Vec<PathBuf>,
    },
}

/// `simulate`'s arguments.
#[derive(Debug, clap::Args)]
struct SimulateArgs {
    /// The trace: CSV with a header; the first column is the time (named
    /// time/second, minute or hour: its unit), then the load.
    #[arg(long, conflicts_with = "shape")]
    trace: Option<PathBuf>,
    /// The load column, when the trace has several (default: `load`, or
    /// the only one).
    #[arg(long, requires = "trace")]
    column: Option<String>,
    /// A built-in load shape instead of a trace: step, ramp, flash-crowd,
    /// diurnal. The default when no trace is given is diurnal.
    #[arg(long)]
    shape: Option<String>,
    /// How long the shape lasts.
    #[arg(long, default_value = "2d", value_parser = parse_duration)]
    duration: Duration,
    /// The shape's low load, requests per second.
    #[arg(long, default_value_t = 100.0)]
    base: f64,
    /// The shape's high load, requests per second.
    #[arg(long, default_value_t = 600.0)]
    peak: f64,
    /// The seed of the shape's noise.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Multiply the load by this (to bring a trace to requests per second
    /// at sensible replica counts).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// A policy file, or builtin:<name>; repeat for several side by side
    /// (default: every builtin policy).
    #[arg(long = "policy")]
    policies: Vec<String>,
    /// Time between evaluations (the daemon's --interval).
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    interval: Duration,
    /// The model's time step (default 15s, at most the interval).
    #[arg(long, value_parser = parse_duration)]
    step: Option<Duration>,
    /// Requests per second one replica serves at full use.
    #[arg(long, default_value_t = 100.0)]
    capacity: f64,
    /// Requests one replica serves at once (its M/M/k queue's k).
    #[arg(long, default_value_t = 8)]
    workers: u32,
    /// From a replica's creation to its first request.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    startup: Duration,
    /// A request waiting longer than this fails.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
    /// The SLO: a step whose p95 response time is above this, in seconds,
    /// is a violation.
    #[arg(long, default_value_t = 0.5)]
    slo_p95: f64,
    /// The SLO: a step whose error fraction is above this is a violation.
    #[arg(long, default_value_t = 0.01)]
    slo_error_rate: f64,
    /// Replicas at the start (default: what the first load needs at 70% of
    /// capacity, within each policy's bounds).
    #[arg(long)]
    start_replicas: Option<u32>,
    /// Replaces every policy's min_replicas.
    #[arg(long, env = "MIN_REPLICAS")]
    min_replicas: Option<u32>,
    /// Replaces every policy's max_replicas.
    #[arg(long, env = "MAX_REPLICAS")]
    max_replicas: Option<u32>,
    /// Write a chart (SVG): load, replicas per policy, p95 per policy.
    #[arg(long)]
    chart: Option<PathBuf>,
    /// Write every scale action (time, policy, from, to, reasons) here, as
    /// JSON lines.
    #[arg(long)]
    actions: Option<PathBuf>,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Run the stages the daemon runs before serving a plugin: read, decode,
    /// world/version, imports, link, describe, smoke test.
    Check {
        /// The component (.wasm), or builtin:<name>.
        file: String,
        /// Print the plugin's description (signals and parameters) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run golden scenario files against a plugin.
    Test {
        /// The component (.wasm), or builtin:<name>.
        file: String,
        /// Scenario files (TOML).
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
    },
    /// List the policies built into this binary.
    List,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    vedfolnir_core::parse_duration(s)
        .map(Duration::from_millis)
        .map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(commands::exit_code_of(&e))
        }
    }
}
