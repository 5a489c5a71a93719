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
//! | 10 | `limits`: a replica's resources differ from its table |
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    vedfolnir_autoscaler::main()
}
