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

// The pipeline, from where a metric enters to where the engine is touched
// (docs/architecture.md draws it):
mod actuators;
mod audit;
mod cli;
mod clock;
mod config;
mod controller;
mod daemon;
mod engine;
mod policy;
mod simulate;
mod sources;
mod state;
mod telemetry;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = cli::args::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(cli::exit_code_of(&e))
        }
    }
}
