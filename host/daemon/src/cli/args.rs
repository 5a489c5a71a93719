//! The command line: every flag, its environment variable and its default.
//! The seed's variables (`PROMETHEUS_URL`, `DRY_RUN`, `WEBHOOK_URL`,
//! `MIN_REPLICAS`, `MAX_REPLICAS`) mean the same in every command that
//! decides or acts.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// A Docker autoscaler whose scaling policies are sandboxed WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "vedfolnir-autoscaler", version, about, long_about = None)]
pub struct Cli {
    /// Log filter, as in RUST_LOG (e.g. "info", "vedfolnir=debug").
    #[arg(long, global = true, env = "VEDFOLNIR_LOG", default_value = "warn")]
    pub log: String,

    #[command(subcommand)]
    pub command: Command,
}

/// How policies are sandboxed: every command that loads one.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Policy sandbox")]
pub struct SandboxArgs {
    /// Where compiled policy components are cached, keyed by digest (for `run`,
    /// <state-dir>/cache unless given).
    #[arg(long, env = "VEDFOLNIR_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Wall-clock budget of one call into a policy.
    #[arg(long, env = "VEDFOLNIR_PLUGIN_DEADLINE", default_value = "50ms", value_parser = parse_duration)]
    pub plugin_deadline: Duration,

    /// Memory cap of one policy evaluation, in MiB.
    #[arg(long, env = "VEDFOLNIR_PLUGIN_MEMORY_MIB", default_value_t = 32)]
    pub plugin_memory_mib: usize,

    /// Most reasons kept from one recommendation; the rest are cut and the
    /// cut marked by an `output-cut` reason.
    #[arg(long, env = "VEDFOLNIR_PLUGIN_MAX_REASONS", default_value_t = 64)]
    pub plugin_max_reasons: usize,

    /// Most bytes of one reason's message (and of a policy's error).
    #[arg(
        long,
        env = "VEDFOLNIR_PLUGIN_MAX_REASON_BYTES",
        default_value_t = 1024
    )]
    pub plugin_max_reason_bytes: usize,

    /// Most bytes of one reason's trigger.
    #[arg(long, env = "VEDFOLNIR_PLUGIN_MAX_TRIGGER_BYTES", default_value_t = 64)]
    pub plugin_max_trigger_bytes: usize,
}

/// Where a command that decides or acts keeps its state.
#[derive(Debug, Clone, clap::Args)]
pub struct StateArgs {
    /// Where the audit log, cooldown state, sample history and minute record
    /// are kept.
    #[arg(
        long,
        env = "VEDFOLNIR_STATE_DIR",
        default_value = "/var/lib/vedfolnir-autoscaler"
    )]
    pub state_dir: PathBuf,
}

/// Where `prometheus` signals come from: the commands that collect.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Prometheus")]
pub struct PrometheusArgs {
    /// The Prometheus server that `prometheus` signals are queried from.
    #[arg(long, env = "PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,

    /// How long one Prometheus query may take.
    #[arg(long, env = "VEDFOLNIR_PROMETHEUS_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub prometheus_timeout: Duration,
}

/// The policy file a Docker command works on.
#[derive(Debug, clap::Args)]
pub struct PolicyArgs {
    /// The policy file (TOML): service, target, bounds.
    #[arg(long, env = "VEDFOLNIR_POLICY")]
    pub policy: PathBuf,
    /// Replaces the policy's min_replicas.
    #[arg(long, env = "MIN_REPLICAS")]
    pub min_replicas: Option<u32>,
    /// Replaces the policy's max_replicas.
    #[arg(long, env = "MAX_REPLICAS")]
    pub max_replicas: Option<u32>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What a command that acts needs besides the policy: the seed's
/// `DRY_RUN` and `WEBHOOK_URL`, meaning the same in every such command.
#[derive(Debug, Clone, clap::Args)]
pub struct ActArgs {
    /// Decide, audit and notify "would scale", never act; the dry-run
    /// cooldowns advance (on their own clocks) as if it had scaled.
    #[arg(long, env = "DRY_RUN", value_parser = clap::builder::FalseyValueParser::new())]
    pub dry_run: bool,
    /// Where each action is posted as JSON (with a Slack-compatible `text`).
    #[arg(long, env = "WEBHOOK_URL")]
    pub webhook_url: Option<String>,
    #[command(flatten)]
    pub lease: LeaseArgs,
}

impl ActArgs {
    /// The webhook, unless empty.
    pub fn webhook(&self) -> Option<&str> {
        self.webhook_url.as_deref().filter(|u| !u.trim().is_empty())
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Evaluate a policy on one snapshot: the plugin's recommendation, the
    /// guard-rail decision, and every reason.
    #[command(
        after_help = "Example: vedfolnir-autoscaler evaluate --policy policies/vedfolnir.toml --input policies/examples/busy.json"
    )]
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
        #[command(flatten)]
        sandbox: SandboxArgs,
    },
    /// Work with policy plugins.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Scale up to N replicas (default: one more), clamped to max_replicas.
    #[command(
        after_help = "Example: vedfolnir-autoscaler scale-up 4 --policy policies/vedfolnir.toml --dry-run"
    )]
    ScaleUp {
        /// The replica count wanted.
        replicas: Option<u32>,
        #[command(flatten)]
        args: PolicyArgs,
        #[command(flatten)]
        act: ActArgs,
        #[command(flatten)]
        state: StateArgs,
        #[command(flatten)]
        sandbox: SandboxArgs,
    },
    /// Scale down to N replicas (default: one fewer), clamped to min_replicas.
    #[command(
        after_help = "Example: vedfolnir-autoscaler scale-down --policy policies/vedfolnir.toml"
    )]
    ScaleDown {
        /// The replica count wanted.
        replicas: Option<u32>,
        #[command(flatten)]
        args: PolicyArgs,
        #[command(flatten)]
        act: ActArgs,
        #[command(flatten)]
        state: StateArgs,
        #[command(flatten)]
        sandbox: SandboxArgs,
    },
    /// Is the engine reachable, the service found, every replica healthy?
    #[command(
        after_help = "Example: vedfolnir-autoscaler health --policy policies/vedfolnir.toml --prometheus-url http://127.0.0.1:9090"
    )]
    Health {
        #[command(flatten)]
        args: PolicyArgs,
        #[command(flatten)]
        sandbox: SandboxArgs,
        #[command(flatten)]
        prometheus: PrometheusArgs,
    },
    /// Replicas, metrics, scores and the last actions, read from the engine
    /// and the audit log.
    Report {
        #[command(flatten)]
        args: PolicyArgs,
        /// The Swarm config holding the lease of the Swarm targets (shown
        /// for a Swarm target: who leads, at which epoch).
        #[arg(
            long,
            env = "VEDFOLNIR_LEASE_NAME",
            default_value = "vedfolnir-autoscaler-lease"
        )]
        lease_name: String,
        #[command(flatten)]
        state: StateArgs,
        #[command(flatten)]
        sandbox: SandboxArgs,
        #[command(flatten)]
        prometheus: PrometheusArgs,
    },
    /// Clear the service's cooldowns; the audit log and sample history stay.
    Reset {
        #[command(flatten)]
        args: PolicyArgs,
        #[command(flatten)]
        act: ActArgs,
        #[command(flatten)]
        state: StateArgs,
        #[command(flatten)]
        sandbox: SandboxArgs,
    },
    /// One pass: collect, evaluate, guard, act. Made for cron.
    #[command(
        after_help = "Example (a crontab line): * * * * * vedfolnir-autoscaler check --policy /etc/vedfolnir/policies/vedfolnir.toml"
    )]
    Check {
        #[command(flatten)]
        args: PolicyArgs,
        #[command(flatten)]
        act: ActArgs,
        #[command(flatten)]
        state: StateArgs,
        #[command(flatten)]
        sandbox: SandboxArgs,
        #[command(flatten)]
        prometheus: PrometheusArgs,
    },
    /// The daemon: a pass per policy every interval; the policies folder
    /// hot-reloaded; the status API, /metrics and the Alertmanager webhook on
    /// 127.0.0.1. SIGHUP rescans the policies; SIGTERM stops it after the
    /// passes in flight. The API token may also come from VEDFOLNIR_API_TOKEN,
    /// the webhook's from VEDFOLNIR_ALERTMANAGER_TOKEN.
    #[command(
        after_help = "Example: vedfolnir-autoscaler run --policies /etc/vedfolnir/policies --api-token-file /etc/vedfolnir/api-token\nThen open http://127.0.0.1:9464/ for the status page."
    )]
    Run {
        /// Policy files, or folders of `*.toml` policy files and `.wasm` modules (watched).
        #[arg(long = "policies", env = "VEDFOLNIR_POLICIES", required = true, num_args = 1.., value_delimiter = ',')]
        policies: Vec<PathBuf>,
        /// Time between passes.
        #[arg(long, env = "VEDFOLNIR_INTERVAL", default_value = "15s", value_parser = parse_interval)]
        interval: Duration,
        /// Where /metrics, /health and the webhook listen.
        #[arg(long, env = "VEDFOLNIR_LISTEN", default_value = "127.0.0.1:9464")]
        listen: std::net::SocketAddr,
        #[command(flatten)]
        act: ActArgs,
        #[command(flatten)]
        tokens: TokenArgs,
        /// Replaces every policy's min_replicas.
        #[arg(long, env = "MIN_REPLICAS")]
        min_replicas: Option<u32>,
        /// Replaces every policy's max_replicas.
        #[arg(long, env = "MAX_REPLICAS")]
        max_replicas: Option<u32>,
        #[command(flatten)]
        state: StateArgs,
        #[command(flatten)]
        sandbox: SandboxArgs,
        #[command(flatten)]
        prometheus: PrometheusArgs,
    },
    /// Replay a load trace (CSV: time, load) or a built-in shape through a
    /// model of the service, with the real sandbox and guard rails on a
    /// virtual clock, for one or several policies side by side; print the
    /// SLO-violation minutes, replica-hours, actions and reversals of each.
    #[command(
        after_help = "Examples:\n  vedfolnir-autoscaler simulate --shape web --duration 7d --max-replicas 20 --chart web.svg\n  vedfolnir-autoscaler simulate --trace load.csv --scale 0.5 --policy my-policy.toml --policy builtin:target-tracking\n  vedfolnir-autoscaler simulate --history vedfolnir --from 7d --policies /etc/vedfolnir/policies --policy candidate.toml"
    )]
    Simulate(Box<SimulateArgs>),
    /// Send HTTP load to the service, through every ready replica in turn
    /// (or to one URL), at a rate or a concurrency, for a bounded time;
    /// print what was sent, served and failed, latency percentiles, and
    /// each replica's share.
    ///
    /// Example: vedfolnir-autoscaler load --policy policies/vedfolnir.toml --path '/burn?ms=20' --rate 40 --duration 3m
    Load(Box<LoadArgs>),
    /// Compare each running replica's CPU, memory and PIDs limits and
    /// memory reservation with the service's resource table (its Compose
    /// file's); exit 10 on a mismatch, naming container, field, expected
    /// and actual.
    ///
    /// Example: vedfolnir-autoscaler limits --policy policies/vedfolnir.toml
    Limits(LimitsArgs),
    /// Check policy files without evaluating: every problem, with file and key.
    #[command(after_help = "Example: vedfolnir-autoscaler validate /etc/vedfolnir/policies/*.toml")]
    Validate(ValidateArgs),
    /// Why each service holds or scales, from a running daemon's API (else
    /// from the state directory): replicas, bounds, the last decision and
    /// its reasons, scores, signals against their thresholds, paused.
    ///
    /// Example: vedfolnir-autoscaler status vedfolnir
    Status(StatusArgs),
    /// Pause automatic scaling of a service on a running daemon (audited).
    ///
    /// Example: vedfolnir-autoscaler pause vedfolnir --reason "release in progress"
    Pause(PauseArgs),
    /// Resume automatic scaling of a service on a running daemon (audited).
    ///
    /// Example: vedfolnir-autoscaler resume vedfolnir
    Resume(PauseArgs),
    /// Print a completion script for a shell (bash, zsh, fish, elvish,
    /// powershell).
    ///
    /// Example: vedfolnir-autoscaler completions bash > /usr/share/bash-completion/completions/vedfolnir-autoscaler
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page, write one page per command to a folder, or
    /// print the command reference as Markdown; each made from the
    /// definitions `--help` prints.
    ///
    /// Example: vedfolnir-autoscaler man --out /usr/local/share/man/man1
    Man(ManArgs),
}

/// `man`'s arguments.
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write `vedfolnir-autoscaler.1` and a page per command
    /// (`vedfolnir-autoscaler-run.1`, ...) to this folder.
    #[arg(long, value_name = "DIR", conflicts_with = "markdown")]
    pub out: Option<PathBuf>,
    /// Print every command's `--help` as one Markdown page (what
    /// docs/commands.md holds).
    #[arg(long)]
    pub markdown: bool,
}

/// The command line as clap sees it, for parsing and for what is made
/// from it (completions, manual pages, the reference): environment
/// variables' values are never printed in help (`WEBHOOK_URL` may hold a
/// secret), only their names.
pub fn command() -> clap::Command {
    fn env_names_only(cmd: clap::Command) -> clap::Command {
        let subcommands: Vec<String> = cmd
            .get_subcommands()
            .map(|s| s.get_name().to_string())
            .collect();
        let mut cmd = cmd.mut_args(|a| a.hide_env_values(true));
        for name in subcommands {
            cmd = cmd.mut_subcommand(name, env_names_only);
        }
        cmd
    }
    env_names_only(<Cli as clap::CommandFactory>::command())
}

/// Where a running daemon's API answers.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiArgs {
    /// The daemon's address (its `--listen`).
    #[arg(long, env = "VEDFOLNIR_URL", default_value = "http://127.0.0.1:9464")]
    pub url: String,
}

/// `status`'s arguments.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// One service (default: every service).
    pub service: Option<String>,
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub state: StateArgs,
    /// Print JSON: `{"from": "daemon", "services": {...}}`, each service
    /// as `/api/v1/status` shows it, or `{"from": "state-directory",
    /// "services": {...}}`, each as its state file keeps it, when no daemon
    /// answers.
    #[arg(long)]
    pub json: bool,
}

/// `pause`'s and `resume`'s arguments.
#[derive(Debug, clap::Args)]
pub struct PauseArgs {
    /// The service.
    pub service: String,
    /// Why, for the audit log.
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub api: ApiArgs,
    /// A file holding the API's bearer token (the daemon's
    /// `--api-token-file`); or the token itself in `VEDFOLNIR_API_TOKEN`.
    #[arg(long, env = "VEDFOLNIR_API_TOKEN_FILE")]
    pub api_token_file: Option<PathBuf>,
    /// Print the daemon's JSON answer.
    #[arg(long)]
    pub json: bool,
}

/// `validate`'s arguments.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Policy files (TOML).
    #[arg(required_unless_present = "policy")]
    pub policies: Vec<PathBuf>,
    /// A policy file, as every other command takes it (repeatable; with
    /// the files given as arguments, all are checked).
    #[arg(long, value_name = "FILE")]
    pub policy: Vec<PathBuf>,
    /// Print JSON: `{"ok": bool, "files": [{"path", "ok", "plugin",
    /// "service", "notes"}], "problems": [{"file", "key", "message"}]}`.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

impl ValidateArgs {
    /// Every file to check: the arguments, then the `--policy` ones.
    pub fn files(&self) -> Vec<PathBuf> {
        [self.policies.as_slice(), &self.policy].concat()
    }
}

impl Command {
    /// The sandbox settings, for a command that loads policies.
    pub fn sandbox(&self) -> Option<&SandboxArgs> {
        match self {
            Command::Evaluate { sandbox, .. }
            | Command::ScaleUp { sandbox, .. }
            | Command::ScaleDown { sandbox, .. }
            | Command::Health { sandbox, .. }
            | Command::Report { sandbox, .. }
            | Command::Reset { sandbox, .. }
            | Command::Check { sandbox, .. }
            | Command::Run { sandbox, .. }
            | Command::Validate(ValidateArgs { sandbox, .. }) => Some(sandbox),
            Command::Simulate(args) => Some(&args.sandbox),
            Command::Plugin { command } => match command {
                PluginCommand::Check { sandbox, .. }
                | PluginCommand::Test { sandbox, .. }
                | PluginCommand::List { sandbox, .. } => Some(sandbox),
                PluginCommand::New { .. } => None,
            },
            Command::Load(_)
            | Command::Limits(_)
            | Command::Status(_)
            | Command::Pause(_)
            | Command::Resume(_)
            | Command::Completions { .. }
            | Command::Man(_) => None,
        }
    }

    /// The state directory, for a command that decides or acts.
    pub fn state(&self) -> Option<&StateArgs> {
        match self {
            Command::ScaleUp { state, .. }
            | Command::ScaleDown { state, .. }
            | Command::Report { state, .. }
            | Command::Reset { state, .. }
            | Command::Check { state, .. }
            | Command::Run { state, .. } => Some(state),
            _ => None,
        }
    }

    /// The Prometheus settings, for a command that collects.
    pub fn prometheus(&self) -> Option<&PrometheusArgs> {
        match self {
            Command::Health { prometheus, .. }
            | Command::Report { prometheus, .. }
            | Command::Check { prometheus, .. }
            | Command::Run { prometheus, .. } => Some(prometheus),
            _ => None,
        }
    }
}

/// Where the daemon's POST endpoints find their bearer tokens.
#[derive(Debug, Clone, clap::Args)]
pub struct TokenArgs {
    /// A file holding the bearer token the API's POST endpoints require.
    #[arg(long, env = "VEDFOLNIR_API_TOKEN_FILE")]
    pub api_token_file: Option<PathBuf>,
    /// A file holding the bearer token `POST /webhook/alertmanager`
    /// requires (Alertmanager's `http_config.authorization.credentials_file`).
    /// Without one the webhook is off (403).
    #[arg(long, env = "VEDFOLNIR_ALERTMANAGER_TOKEN_FILE")]
    pub alertmanager_token_file: Option<PathBuf>,
}

/// The lease of the Swarm targets: daemons naming the same lease elect
/// one leader; the others stand by. A command line's scale takes it for
/// the action, or is refused naming the holder.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Swarm lease")]
pub struct LeaseArgs {
    /// The Swarm config holding the lease (daemons that serve the same
    /// policies name the same one).
    #[arg(
        long,
        env = "VEDFOLNIR_LEASE_NAME",
        default_value = "vedfolnir-autoscaler-lease"
    )]
    pub lease_name: String,
    /// How long a standby waits on a lease whose holder fell silent before
    /// it takes over.
    #[arg(long, env = "VEDFOLNIR_LEASE_DURATION", default_value = "10s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// How often the leader renews the lease and a standby looks at it (at
    /// most half the duration).
    #[arg(long, env = "VEDFOLNIR_LEASE_RENEW", default_value = "3s", value_parser = parse_duration)]
    pub lease_renew: Duration,
}

impl LeaseArgs {
    /// The lease's settings, checked.
    pub fn config(&self) -> Result<crate::lease::LeaseConfig, super::InvalidInput> {
        let config = crate::lease::LeaseConfig {
            name: self.lease_name.clone(),
            duration: self.lease_duration,
            renew: self.lease_renew,
        };
        config.check().map_err(super::InvalidInput)?;
        Ok(config)
    }
}

/// `limits`' arguments.
#[derive(Debug, clap::Args)]
pub struct LimitsArgs {
    /// The policy file of the service to check.
    #[arg(long, env = "VEDFOLNIR_POLICY")]
    pub policy: PathBuf,
    /// The Compose file with the service's resource table (default: the
    /// file Compose started each replica from, as its label names it).
    #[arg(long)]
    pub compose: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `load`'s arguments.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// The policy file of the service to load: its ready replicas get the
    /// requests in turn, through their published ports.
    #[arg(long, env = "VEDFOLNIR_POLICY", required_unless_present = "url")]
    pub policy: Option<PathBuf>,
    /// One URL to send every request to instead (a proxy in front, say).
    #[arg(long, conflicts_with = "policy")]
    pub url: Option<String>,
    /// The path requested on each replica, with its query.
    #[arg(long, default_value = "/")]
    pub path: String,
    /// The container port the replicas serve on (default: the policy's
    /// scrape port, else 8080).
    #[arg(long)]
    pub port: Option<u16>,
    /// Requests a second, sent whatever the answers (at most 5000).
    #[arg(long, conflicts_with = "concurrency")]
    pub rate: Option<f64>,
    /// Requests in flight instead, each sent when one ends (at most 512).
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// How long to send (at most 1h), e.g. 30s, 5m.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Duration,
    /// How long one request may take before it counts as failed.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// `simulate`'s arguments.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The trace: CSV with a header; the first column is the time (named
    /// time/second, minute or hour: its unit), then the load.
    #[arg(long, conflicts_with_all = ["shape", "service"])]
    pub trace: Option<PathBuf>,
    /// The load column, when the trace has several (default: `load`, or
    /// the only one).
    #[arg(long, requires = "trace")]
    pub column: Option<String>,
    /// A built-in load shape instead of a trace: step, ramp, flash-crowd,
    /// diurnal, web (diurnal with self-similar bursts, lulls and Poisson
    /// arrivals). The default when no trace is given is diurnal.
    #[arg(long, conflicts_with = "service")]
    pub shape: Option<String>,
    /// How long the shape lasts.
    #[arg(long, default_value = "2d", value_parser = parse_duration)]
    pub duration: Duration,
    /// The shape's low load, requests per second.
    #[arg(long, default_value_t = 100.0)]
    pub base: f64,
    /// The shape's high load, requests per second.
    #[arg(long, default_value_t = 600.0)]
    pub peak: f64,
    /// The seed of the shape's noise.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The size of the shape's noise, from 0 to 1: diurnal's Gaussian
    /// standard deviation (default 0.05), web's change of the level per
    /// standard deviation of its bursts (default 0.15).
    #[arg(long, conflicts_with = "trace")]
    pub noise: Option<f64>,
    /// The web shape's shortest burst (its ON/OFF sources' shortest
    /// period, default 30s): longer, and its bursts and dips last tens of
    /// minutes.
    #[arg(long, value_parser = parse_duration, conflicts_with = "trace")]
    pub burst_period: Option<Duration>,
    /// Multiply the load by this (to bring a trace to requests per second
    /// at sensible replica counts).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// A policy file, or builtin:<name>; repeat for several side by side
    /// (default: every builtin policy).
    #[arg(long = "policy")]
    pub policies: Vec<String>,
    /// Also replay target-tracking at target.cpu 0.5, 0.6, 0.65, 0.7, 0.75
    /// and 0.8: the SLO/cost curve each policy's row is read against
    #[arg(long)]
    pub frontier: bool,
    /// Time between evaluations (the daemon's --interval; default 15s, or
    /// with --history the daemon's own, from its record).
    #[arg(long, value_parser = parse_duration)]
    pub interval: Option<Duration>,
    /// The model's time step (default 15s, at most the interval).
    #[arg(long, value_parser = parse_duration)]
    pub step: Option<Duration>,
    /// Requests per second one replica serves at full use (default 100, or
    /// with --history calibrated from the record).
    #[arg(long)]
    pub capacity: Option<f64>,
    /// Requests one replica serves at once (its M/M/k queue's k).
    #[arg(long, default_value_t = 8)]
    pub workers: u32,
    /// From a replica's creation to its first request (default 1m, or with
    /// --history the audit log's scale-ups).
    #[arg(long, value_parser = parse_duration)]
    pub startup: Option<Duration>,
    /// A request waiting longer than this fails.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// The SLO: a step whose p95 response time is above this, in seconds,
    /// is a violation.
    #[arg(long, default_value_t = crate::simulate::DEFAULT_SLO.p95)]
    pub slo_p95: f64,
    /// The SLO: a step whose error fraction is above this is a violation.
    #[arg(long, default_value_t = crate::simulate::DEFAULT_SLO.error_rate)]
    pub slo_error_rate: f64,
    /// Replicas at the start (default: what the first load needs at 70% of
    /// capacity, within each policy's bounds).
    #[arg(long)]
    pub start_replicas: Option<u32>,
    /// Replaces every policy's min_replicas.
    #[arg(long, env = "MIN_REPLICAS")]
    pub min_replicas: Option<u32>,
    /// Replaces every policy's max_replicas.
    #[arg(long, env = "MAX_REPLICAS")]
    pub max_replicas: Option<u32>,
    /// Write a chart (SVG): load, replicas per policy, p95 per policy.
    #[arg(long)]
    pub chart: Option<PathBuf>,
    /// Write every scale action (time, policy, from, to, reasons) here, as
    /// JSON lines.
    #[arg(long)]
    pub actions: Option<PathBuf>,
    /// Write every stretch of SLO violation (when, how long, replicas and
    /// ready replicas at its start, load, worst p95 and error rate, per
    /// policy) here, as JSON lines.
    #[arg(long)]
    pub violations: Option<PathBuf>,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub history: HistoryArgs,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

/// `simulate --history`: a service's own recorded load.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "A service's own load (--history)")]
pub struct HistoryArgs {
    /// Replay this service's own recorded load (its state directory's
    /// minute record, or Prometheus with --prometheus-url), with the model
    /// calibrated on its recorded CPU, memory and scale-ups, against its
    /// current policy (found in --policies) and each --policy.
    #[arg(long = "history", value_name = "SERVICE")]
    pub service: Option<String>,
    /// The record's start: a UTC time (2026-12-07T00:00:00Z) or how long
    /// ago (1d).
    #[arg(long, default_value = "1d", requires = "service")]
    pub from: String,
    /// The record's end: a UTC time or how long ago (0s: now).
    #[arg(long, default_value = "0s", requires = "service")]
    pub to: String,
    /// The signal that is the load.
    #[arg(long, default_value = crate::simulate::history::LOAD_SIGNAL, requires = "service")]
    pub load_signal: String,
    /// Policy files or folders (the daemon's --policies): the service's
    /// current policy is the one naming it.
    #[arg(long = "policies", env = "VEDFOLNIR_POLICIES", num_args = 1.., value_delimiter = ',')]
    pub policy_folders: Vec<PathBuf>,
    #[command(flatten)]
    pub state: StateArgs,
    /// Read the load from this Prometheus server instead of the state
    /// directory (its recording rules, deploy/prometheus, for the
    /// calibration).
    #[arg(long, requires = "service")]
    pub prometheus_url: Option<String>,
    /// The load's PromQL expression (default
    /// sum(rate(vedfolnir_requests_total{service="SERVICE"}[1m]))).
    #[arg(long, requires = "prometheus_url")]
    pub query: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Run the stages the daemon runs before serving a plugin: read, decode,
    /// world/version, imports, link, describe, smoke test.
    Check {
        /// The component (.wasm), or builtin:<name>.
        file: String,
        /// Print the plugin's description (signals and parameters) as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        sandbox: SandboxArgs,
    },
    /// Run golden scenario files against a plugin.
    #[command(
        after_help = "Example: vedfolnir-autoscaler plugin test target/wasm32-wasip2/release/queue_only.wasm scenarios.toml"
    )]
    Test {
        /// The component (.wasm), or builtin:<name>.
        file: String,
        /// Scenario files (TOML).
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        #[command(flatten)]
        sandbox: SandboxArgs,
    },
    /// List the policies built into this binary.
    List {
        #[command(flatten)]
        sandbox: SandboxArgs,
        /// Print JSON: a list of `{"plugin", "name", "version", "summary",
        /// "digest"}`.
        #[arg(long)]
        json: bool,
    },
    /// Start a policy crate: a queue-depth policy, its golden scenarios, a
    /// native test and a policy file, which `cargo test` and `cargo build
    /// --target wasm32-wasip2 --release` pass as written.
    ///
    /// Example: vedfolnir-autoscaler plugin new queue-only --dir ~/src/queue-only
    New {
        /// The policy's name: lowercase letters, digits and '-' (the crate's
        /// and `describe`'s name).
        name: String,
        /// The folder to create (must not exist, or be empty). Default: ./NAME.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The SDK to depend on: a git URL, or the path of a checkout.
        /// Default: the checkout this binary was built from.
        #[arg(long, value_name = "URL|PATH")]
        sdk: Option<String>,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    vedfolnir_core::parse_duration(s)
        .map(Duration::from_millis)
        .map_err(|e| e.to_string())
}

/// A duration above 0: the time between two passes.
fn parse_interval(s: &str) -> Result<Duration, String> {
    parse_duration(s).and_then(|d| {
        if d.is_zero() {
            Err("must be longer than 0".into())
        } else {
            Ok(d)
        }
    })
}
