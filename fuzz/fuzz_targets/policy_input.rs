//! Arbitrary policy inputs through each shipped component in the real
//! sandbox, then the guard rails: the host never panics, and the guard
//! always returns a decision that agrees with itself and never moves the
//! count away from the bounds, whatever the policy answered.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use vedfolnir_core::guard::{self, GuardConfig, GuardState, Requirements};
use vedfolnir_core::model::{Direction, Param, PolicyInput, Sample, SignalId, SignalWindow};
use vedfolnir_sandbox::{Plugin, Sandbox, SandboxConfig};

const POLICIES: [&str; 4] = ["threshold-score", "target-tracking", "predictive", "cost-aware"];

fn plugins() -> &'static [Plugin] {
    static PLUGINS: OnceLock<Vec<Plugin>> = OnceLock::new();
    PLUGINS.get_or_init(|| {
        // A deadline far past any evaluation's: a busy machine must not
        // turn a finding into a timeout.
        let sandbox = Sandbox::new(SandboxConfig {
            deadline: std::time::Duration::from_secs(5),
            ..SandboxConfig::default()
        })
        .unwrap();
        POLICIES
            .iter()
            .map(|name| {
                let path = vedfolnir_plugin_artifacts::policy_path(name).unwrap();
                sandbox.load_file(Path::new(path)).unwrap()
            })
            .collect()
    })
}

/// An input as the host could build it: samples in time order, none after
/// `now`, bounds in order.
fn input(u: &mut Unstructured<'_>, params: Vec<Param>) -> arbitrary::Result<PolicyInput> {
    let now = i64::arbitrary(u)?;
    let (a, b) = (u32::arbitrary(u)?, u32::arbitrary(u)?);
    let mut signals = Vec::new();
    for signal in SignalId::WELL_KNOWN {
        if !bool::arbitrary(u)? {
            continue;
        }
        let mut samples: Vec<Sample> = (0..u.int_in_range(0..=120)?)
            .map(|_| {
                Ok(Sample {
                    at: i64::arbitrary(u)?.min(now),
                    value: f64::arbitrary(u)?,
                })
            })
            .collect::<arbitrary::Result<_>>()?;
        samples.sort_by_key(|s| s.at);
        signals.push(SignalWindow {
            signal,
            samples,
            missing_reason: Option::<String>::arbitrary(u)?,
        });
    }
    Ok(PolicyInput {
        service: String::arbitrary(u)?,
        now,
        current_replicas: u32::arbitrary(u)?,
        ready_replicas: u32::arbitrary(u)?,
        min_replicas: a.min(b),
        max_replicas: a.max(b),
        since_last_scale_up: Option::arbitrary(u)?,
        since_last_scale_down: Option::arbitrary(u)?,
        params,
        signals,
    })
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(which) = u.choose_index(POLICIES.len()) else {
        return;
    };
    let plugin = &plugins()[which];
    let params = plugin.description().default_params();
    let Ok(input) = input(&mut u, params) else {
        return;
    };
    let outcome = plugin.evaluate(&input).map_err(|e| e.to_failure());
    let config = GuardConfig {
        min_replicas: input.min_replicas,
        max_replicas: input.max_replicas,
        ..GuardConfig::default()
    };
    let d = guard::decide(
        &config,
        &GuardState::default(),
        &input,
        Requirements { required: &[] },
        outcome.as_ref(),
    );
    assert_eq!(d.current, input.current_replicas);
    assert_eq!(d.direction, Direction::between(d.current, d.target), "{d:?}");
    // Never away from the bounds: inside them, or between the current
    // count and the bound it is outside of.
    let (min, max) = (input.min_replicas, input.max_replicas);
    let distance = |n: u32| min.saturating_sub(n) + n.saturating_sub(max);
    assert!(distance(d.target) <= distance(d.current), "{d:?} for {min}..={max}");
});
