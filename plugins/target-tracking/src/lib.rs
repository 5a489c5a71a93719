//! `target-tracking`: hold each metric near a target with the Kubernetes
//! Horizontal Pod Autoscaler's formula, so operators can compare with what
//! they know, decided so that it does not follow noise.
//!
//! For each metric with a target set, its demand in replicas:
//!
//! - per-replica averages (`target.cpu`, `target.memory`):
//!   `current * value / target`, each sample at the replica count of its
//!   time;
//! - service totals divided among replicas (`target.queue-depth`, a custom
//!   signal with `custom.target`): `total / target`.
//!
//! It scales up when the mean demand over `scale-up.window` (2 minutes)
//! plus `scale-up.noise-trigger` (1.25) standard deviations is more than
//! `scale-up.tolerance` (25%) above the replicas, the mean itself more
//! than `scale-up.min-rise` (12.5%), at once when
//! the newest sample asks for `panic.ratio` (1.5) times them, to what the
//! mean plus `scale-up.noise-margin` (2) standard deviations asks; and down
//! only as far as the mean plus `scale-down.noise-margin` (2) standard
//! deviations over `scale-down.stabilization` (30 minutes) allows
//! (`tracking::Calm`, recomputed from the windows because a policy keeps
//! nothing between evaluations). Several metrics: the largest count wins
//! (HPA). Like HPA, a metric that is missing or stale never lets the
//! service shrink, but the others may still grow it; with no metric at all
//! it holds.
//!
//! Scores: `scale-up-score` is the replicas it wants to add, and
//! `scale-down-score` the replicas it wants to remove (0 otherwise).

use vedfolnir_sdk::duration::Pretty;
use vedfolnir_sdk::prelude::*;
use vedfolnir_sdk::tracking::{Calm, Kind, Tracker, newest, recommend};

/// The policy.
pub struct TargetTracking;

vedfolnir_sdk::export_policy!(TargetTracking);

const MINUTE: u64 = 60_000;

/// One tracked metric, as configured.
struct Metric {
    signal: SignalId,
    key: String,
    tracker: Tracker,
}

/// The effective configuration, read from parameters.
pub struct Config {
    metrics: Vec<Metric>,
    up_window: u64,
    staleness: u64,
    /// How a metric decides without following its noise.
    calm: Calm,
}

impl Config {
    fn read(p: &mut Params) -> Config {
        let tolerance = p.number("tolerance", 0.1);
        if !(0.0..1.0).contains(&tolerance) {
            p.error(
                "tolerance",
                format!("must be from 0 to below 1, found {tolerance}"),
            );
        }
        let mut metrics = Vec::new();
        let mut bad_target = false;
        let mut add = |p: &mut Params, key: &str, signal: SignalId, kind, default| {
            let target = p.number(key, default);
            if target < 0.0 || !target.is_finite() {
                bad_target = true;
                p.error(key, format!("must be 0 (off) or above, found {target}"));
            } else if target > 0.0 {
                metrics.push(Metric {
                    signal,
                    key: key.to_string(),
                    tracker: Tracker {
                        kind,
                        target,
                        tolerance,
                    },
                });
            }
        };
        add(p, "target.cpu", SignalId::Cpu, Kind::Average, 0.6);
        add(p, "target.memory", SignalId::Memory, Kind::Average, 0.0);
        add(
            p,
            "target.queue-depth",
            SignalId::QueueDepth,
            Kind::Total,
            0.0,
        );
        let custom = p.text("custom.signal", "");
        if custom.is_empty() {
            let t = p.number("custom.target", 0.0);
            if t != 0.0 {
                p.error("custom.target", "set custom.signal too (which signal)");
            }
        } else {
            match custom.parse::<SignalId>() {
                Ok(signal) => add(p, "custom.target", signal, Kind::Total, 0.0),
                Err(e) => p.error("custom.signal", e.to_string()),
            }
        }
        let up_window = p.duration("scale-up.stabilization", 0);
        let staleness = p.duration("staleness", MINUTE);
        if staleness == 0 {
            p.error("staleness", "must be longer than 0");
        }
        let calm = Calm::default().read(p);
        if metrics.is_empty() && !bad_target {
            p.error(
                "target.cpu",
                "no metric has a target: set target.cpu, target.memory, target.queue-depth or custom.target above 0",
            );
        }
        Config {
            metrics,
            up_window,
            staleness,
            calm,
        }
    }
}

impl Configured for TargetTracking {
    type Config = Config;

    fn describe() -> Description {
        Description {
            name: "target-tracking".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Holds each metric near its target with the Kubernetes HPA's formula, desired = ceil(current x value / target), the largest of several metrics, without following noise: up on a 2-minute mean past a 25% band, from 12.5% when it comes in bursts (at once near saturation), down only as far as the noise over 30 minutes allows.".into(),
            signals: vec![
                SignalSpec::optional(SignalId::Cpu, "tracked against target.cpu (per-replica average)"),
                SignalSpec::optional(SignalId::Memory, "tracked against target.memory when set"),
                SignalSpec::optional(SignalId::QueueDepth, "tracked against target.queue-depth (jobs per replica) when set"),
                SignalSpec::optional(SignalId::InstanceCount, "the replica count behind each past sample, for the stabilisation window"),
            ],
            params: vec![
                ParamSpec::number("target.cpu", 0.6, "CPU fraction of the limit to hold each replica at; 0 turns it off"),
                ParamSpec::number("target.memory", 0.0, "memory fraction of the limit to hold; 0 (default) is off"),
                ParamSpec::number("target.queue-depth", 0.0, "queued jobs per replica to hold; 0 (default) is off"),
                ParamSpec::text("custom.signal", "", "another signal, a service total (for example requests-per-second)"),
                ParamSpec::number("custom.target", 0.0, "what one replica should carry of custom.signal; 0 is off"),
                ParamSpec::number("tolerance", 0.1, "no scale-down while value / target is within this of 1"),
                ParamSpec::duration("scale-up.stabilization", 0, "scale up only to the lowest count recommended over this window (0: at once)"),
                ParamSpec::duration("staleness", MINUTE, "a metric whose newest sample is older than this is missing"),
            ]
            .into_iter()
            .chain(Calm::default().specs())
            .collect(),
        }
    }

    fn read(params: &mut Params) -> Config {
        Config::read(params)
    }

    fn decide(config: &Config, input: &PolicyInput) -> Result<Recommendation, String> {
        Ok(evaluate(config, input))
    }
}

/// What the tracked metrics want together.
#[derive(Default)]
struct Tracked {
    /// The highest count a metric with a usable value wants.
    wanted: Option<u32>,
    /// The highest of each metric's lowest count over
    /// `scale-up.stabilization`, when that window is set.
    stabilised_up: Option<u32>,
    /// A scale-down held by the stabilisation window: the count and why.
    held_down: Option<(u32, String)>,
    /// The metrics without a usable value.
    missing: Vec<String>,
}

/// Each metric's count and reason (or why it is missing), combined.
fn track(config: &Config, input: &PolicyInput, reasons: &mut Vec<Reason>) -> Tracked {
    let current = input.current_replicas;
    let replicas: &[Sample] = input
        .window(&SignalId::InstanceCount)
        .map_or(&[], |w| w.samples.as_slice());
    let mut tracked = Tracked::default();
    for m in &config.metrics {
        let samples = input
            .window(&m.signal)
            .map_or(&[][..], |w| w.samples.as_slice());
        let name = m.signal.name();
        let newest = match newest(input, &m.signal, config.staleness) {
            Ok(v) => v,
            Err(why) => {
                reasons.push(Reason::new(
                    format!("{name}-missing"),
                    format!("{why}; no scale-down while a metric is missing"),
                ));
                tracked.missing.push(name.to_string());
                continue;
            }
        };
        let (want, reason, held) =
            decide(config, m, (samples, replicas), input.now, current, newest);
        reasons.push(reason);
        if held.is_some() {
            tracked.held_down = held;
        }
        tracked.wanted = Some(tracked.wanted.map_or(want, |w| w.max(want)));
        if config.up_window > 0 {
            let low = m
                .tracker
                .lowest_recent(samples, replicas, current, input.now, config.up_window)
                .unwrap_or(want);
            tracked.stabilised_up = Some(tracked.stabilised_up.map_or(low, |l| l.max(low)));
        }
    }
    tracked
}

fn evaluate(config: &Config, input: &PolicyInput) -> Recommendation {
    let current = input.current_replicas;
    let mut reasons = Vec::new();
    let tracked = track(config, input, &mut reasons);
    let Some(want) = tracked.wanted else {
        reasons.push(Reason::new(
            "no-metric",
            "no tracked metric has a usable value",
        ));
        return recommend(current, current, reasons);
    };
    let mut desired = want;
    if desired > current {
        if let Some(low) = tracked.stabilised_up
            && low < desired
        {
            reasons.push(Reason::new(
                "scale-up-stabilized",
                format!(
                    "scale-up stabilised: the lowest count recommended in the last {} is {low}",
                    Pretty(config.up_window)
                ),
            ));
            desired = low.max(current);
        }
    } else if desired < current && !tracked.missing.is_empty() {
        reasons.push(Reason::new(
            "missing-blocks-down",
            format!(
                "would scale down to {desired}, but {} is missing",
                tracked.missing.join(", ")
            ),
        ));
        desired = current;
    }
    if desired >= current
        && let Some((high, why)) = tracked.held_down
    {
        reasons.push(Reason {
            observed: Some(f64::from(high)),
            ..Reason::new("scale-down-stabilized", why)
        });
    }
    recommend(current, desired, reasons)
}

/// One metric's count ([`Calm::decide`]), and its reason.
fn decide(
    config: &Config,
    m: &Metric,
    windows: (&[Sample], &[Sample]),
    now: TimestampMs,
    current: u32,
    newest: f64,
) -> (u32, Reason, Option<(u32, String)>) {
    let t = &m.tracker;
    let name = m.signal.name();
    let decided = config.calm.decide(t, windows, now, current, newest);
    let what = match t.kind {
        Kind::Average => format!(
            "{name} {newest:.3} against target {:.3} per replica (x{:.2})",
            t.target,
            newest / t.target
        ),
        Kind::Total => format!(
            "{name} {newest:.1} in total against {:.1} per replica",
            t.target
        ),
    };
    let reason = Reason {
        observed: Some(newest),
        threshold: Some(t.target),
        ..Reason::new(
            format!("{name}-tracking"),
            format!(
                "{what}; {}: {current} -> {} ({})",
                decided.basis, decided.want, m.key
            ),
        )
    };
    let held = decided.held_down.map(|hpa| {
        (
            decided.want,
            config.calm.held_down_message(hpa, decided.want),
        )
    });
    (decided.want, reason, held)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_scenarios_pass_and_the_defaults_validate() {
        vedfolnir_sdk::testing::check_policy::<TargetTracking>(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scenarios.toml"
        ));
    }

    #[test]
    fn bad_values_are_reported_by_key() {
        let keys = vedfolnir_sdk::testing::rejected_keys::<TargetTracking>(&[
            ("target.cpu", ParamValue::Number(-0.5)),
            ("tolerance", ParamValue::Number(1.5)),
            ("custom.signal", ParamValue::Text("Not A Name".into())),
        ]);
        assert_eq!(keys, ["custom.signal", "target.cpu", "tolerance"]);
    }

    #[test]
    fn turning_every_metric_off_is_an_error() {
        let params = vec![Param {
            key: "target.cpu".into(),
            value: ParamValue::Number(0.0),
        }];
        let errors = TargetTracking::validate_config(&params).unwrap_err();
        assert_eq!(errors[0].key, "target.cpu");
        assert!(errors[0].message.contains("no metric"), "{}", errors[0]);
    }
}
