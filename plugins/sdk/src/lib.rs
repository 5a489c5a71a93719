//! Write a Vedfolnir Autoscaler scaling policy in Rust.
//!
//! Implement [`Policy`] on a type (or [`Configured`], when its parameters
//! are read into a configuration), call [`export_policy!`] once, and build
//! with `cargo build --target wasm32-wasip2 --release`: the result is a
//! `.wasm` component that the daemon loads, sandboxes and hot-reloads. The
//! same type runs natively in plain `cargo test` through [`testing`], on the
//! same scenario files that `vedfolnir-autoscaler plugin test` runs against
//! the built component.
//!
//! ```text
//! use vedfolnir_sdk::prelude::*;
//!
//! struct QueueOnly;
//!
//! impl Policy for QueueOnly {
//!     fn describe() -> Description { /* name, version, signals, params */ }
//!     fn evaluate(input: &PolicyInput) -> Result<Recommendation, String> {
//!         let depth = vedfolnir_sdk::tracking::newest(input, &SignalId::QueueDepth, 60_000)?;
//!         /* ... */
//!     }
//! }
//!
//! vedfolnir_sdk::export_policy!(QueueOnly);
//! ```
//!
//! `vedfolnir-autoscaler plugin new NAME` writes such a crate, with golden
//! scenarios, a native test and a policy file, ready to build.
//!
//! A policy is handed only the signals it declares in `describe` (and
//! those its parameters name or its policy file routes). It must be a pure
//! function of its input: read time from `input.now`, never from a clock
//! (the host pins WASI clocks to `now`, and gives no filesystem, network or
//! environment).

pub use vedfolnir_core::model::*;
pub use vedfolnir_core::{duration, queueing, window};

pub mod log;
pub mod params;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
pub mod tracking;

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod guest;

/// Everything a policy usually needs, in one `use`.
pub mod prelude {
    pub use crate::params::Params;
    pub use crate::window::{Held, held, latest_within};
    pub use crate::{
        ConfigError, Configured, Description, Direction, DurationMs, Param, ParamKind, ParamSpec,
        ParamValue, Policy, PolicyInput, Reason, Recommendation, Sample, SignalId, SignalSpec,
        SignalWindow, TimestampMs,
    };
}

/// A scaling policy. Implemented by a plugin author; exported with
/// [`export_policy!`].
pub trait Policy {
    /// The policy's name, version, signals and parameters with defaults.
    fn describe() -> Description;

    /// Check parameters (kinds and defaults already applied by the host).
    /// Return every problem, each naming its key. Defaults to accepting all.
    fn validate_config(params: &[Param]) -> Result<(), Vec<ConfigError>> {
        let _ = params;
        Ok(())
    }

    /// Evaluate one service.
    fn evaluate(input: &PolicyInput) -> Result<Recommendation, String>;
}

/// A policy whose parameters are read into a configuration of its own.
/// Implement this instead of [`Policy`] and the glue is the SDK's: one
/// [`read`](Configured::read) serves both calls, so `validate_config`
/// reports every problem it records, and `evaluate` refuses an invalid
/// configuration (naming every key) before it calls
/// [`decide`](Configured::decide).
pub trait Configured {
    /// What the parameters are read into.
    type Config;

    /// As [`Policy::describe`].
    fn describe() -> Description;

    /// Read the parameters, recording each problem with
    /// [`Params::error`](params::Params::error) and going on with a
    /// fallback in its place, so that every problem is reported at once.
    fn read(params: &mut params::Params<'_>) -> Self::Config;

    /// Evaluate one service, on a configuration that read without a problem.
    fn decide(config: &Self::Config, input: &PolicyInput) -> Result<Recommendation, String>;
}

impl<T: Configured> Policy for T {
    fn describe() -> Description {
        <T as Configured>::describe()
    }

    fn validate_config(params: &[Param]) -> Result<(), Vec<ConfigError>> {
        read_config::<T>(params).1
    }

    fn evaluate(input: &PolicyInput) -> Result<Recommendation, String> {
        let (config, valid) = read_config::<T>(&input.params);
        valid.map_err(|errors| params::invalid(&errors))?;
        T::decide(&config, input)
    }
}

/// A [`Configured`] policy's configuration, and every problem reading it
/// found.
pub fn read_config<T: Configured>(params: &[Param]) -> (T::Config, Result<(), Vec<ConfigError>>) {
    let mut p = params::Params::new(params);
    let config = T::read(&mut p);
    (config, p.finish())
}

/// Export a [`Policy`] implementation as the component's
/// `vedfolnir:autoscaler/scaling-policy@0.1.0`. Call it once per crate, at
/// the top level. Outside wasm32 it expands to nothing, so the crate still
/// builds and tests natively.
#[macro_export]
macro_rules! export_policy {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct VedfolnirExport;
            impl $crate::guest::bindings::exports::vedfolnir::autoscaler::scaling_policy::Guest for VedfolnirExport {
                fn describe() -> $crate::guest::bindings::vedfolnir::autoscaler::types::Description {
                    $crate::guest::describe::<$ty>()
                }
                fn validate_config(
                    params: ::std::vec::Vec<$crate::guest::bindings::vedfolnir::autoscaler::types::Param>,
                ) -> ::std::result::Result<(), ::std::vec::Vec<$crate::guest::bindings::vedfolnir::autoscaler::types::ConfigError>>
                {
                    $crate::guest::validate_config::<$ty>(params)
                }
                fn evaluate(
                    input: $crate::guest::bindings::vedfolnir::autoscaler::types::PolicyInput,
                ) -> ::std::result::Result<$crate::guest::bindings::vedfolnir::autoscaler::types::Recommendation, ::std::string::String>
                {
                    $crate::guest::evaluate::<$ty>(input)
                }
            }
            $crate::guest::bindings::__export_policy_bindings!(VedfolnirExport with_types_in $crate::guest::bindings);
        };
    };
}
