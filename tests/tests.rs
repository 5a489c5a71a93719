//! Integration tests: the real `vedfolnir-autoscaler` binary, run as an
//! operator or a plugin author would run it. One test binary with modules
//! (as ripgrep and wasmtime do), helpers in `util`.

mod cli;
mod daemon;
mod docker;
mod prometheus;
mod simulate;
mod util;
