//! The Vedfolnir Autoscaler: the daemon, the command line and `simulate`,
//! as one library the `vedfolnir-autoscaler` binary runs ([`main`]).
//!
//! Its modules are private: the command line is the interface. [`fuzz`]
//! opens the parsers of untrusted input to the fuzz targets in `fuzz/`.
#![forbid(unsafe_code)]

/// `print!` for a command's output, that a closed reader does not panic
/// ([`console`]).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::console::write(format_args!($($arg)*))
    };
}

/// `outln!` for a command's output, that a closed reader does not panic
/// ([`console`]).
macro_rules! outln {
    () => {
        $crate::console::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::console::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

mod console;

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
mod errors;
mod lease;
mod markup;
mod policy;
mod seams;
mod simulate;
mod sources;
mod state;
mod telemetry;

pub mod bench;
pub mod fuzz;

use std::process::ExitCode;

use clap::FromArgMatches as _;

/// Parse the command line, set up logging, run the command, and turn its
/// error into the exit code `main.rs` documents.
pub fn main() -> ExitCode {
    let matches = cli::args::command().get_matches();
    let cli = match cli::args::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
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

#[cfg(test)]
mod structure;
