//! Integration tests: the real `vedfolnir-autoscaler` binary, run as an
//! operator or a plugin author would run it. One test binary with modules
//! (as ripgrep and wasmtime do), helpers in `util`.

// Test code: an unwrap that fails is a failed test, which is what it should be.
#![allow(clippy::unwrap_used)]
// These drive the real binary against real engines, in real time, and
// time whole runs: the daemon's injected clock does not apply here.
#![allow(clippy::disallowed_methods)]

mod chaos;
mod cli;
mod daemon;
mod docker;
mod ha;
mod history;
mod operator;
mod page;
mod plugin_new;
mod prometheus;
mod shells;
mod simulate;
mod util;
