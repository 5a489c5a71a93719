//! Logging from a policy. In the component, lines go to the daemon's log,
//! tagged with the policy's name (the host rate-limits and truncates them).
//! Natively, they go to stderr, so `cargo test -- --nocapture` shows them.

/// How important a log line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Detail for plugin authors.
    Debug,
    /// Normal operation.
    Info,
    /// Something an operator may want to look at.
    Warn,
    /// Something went wrong inside the policy.
    Error,
}

/// Write one log line.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    {
        use crate::guest::bindings::vedfolnir::autoscaler::host;
        let level = match level {
            Level::Debug => host::Level::Debug,
            Level::Info => host::Level::Info,
            Level::Warn => host::Level::Warn,
            Level::Error => host::Level::Error,
        };
        host::log(level, message);
    }
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[policy {level:?}] {message}");
}

/// Write a debug line.
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Write an info line.
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Write a warning.
pub fn warn(message: &str) {
    log(Level::Warn, message);
}
