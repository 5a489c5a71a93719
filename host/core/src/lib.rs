//! Pure scaling logic of the Vedfolnir Autoscaler.
//!
//! Nothing in this crate does I/O, reads a clock or knows about wasmtime:
//! the evaluation time is always an argument, so every rule here can be
//! tested without sleeping and every decision can be replayed. The same
//! crate is compiled into policy plugins (through `vedfolnir-sdk`) so that
//! the host and the guests share one data model and one set of window helpers.
#![forbid(unsafe_code)]

pub mod bounds;
pub mod duration;
pub mod guard;
pub mod history;
pub mod model;
pub mod queueing;
pub mod scenario;
pub mod sim;
pub mod snapshot;
pub mod window;

pub use duration::{format_duration, format_elapsed, parse_duration};
pub use model::*;
