//! Target tracking, as the Kubernetes Horizontal Pod Autoscaler computes it
//! (<https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/#algorithm-details>),
//! for policies that hold a metric near a target.
//!
//! - `desired = ceil(current * value / target)` for a per-replica average
//!   (CPU utilisation); `ceil(total / target)` for a service total divided
//!   among replicas (requests per second);
//! - within the tolerance (HPA: 10%) of the target, nothing changes;
//! - scale-down stabilisation: the recommendation is the highest of those
//!   computed over the window (HPA: 5 minutes), so a brief dip does not
//!   remove replicas that are needed a minute later.
//!
//! A policy instance keeps nothing between evaluations, so the past
//! recommendations the stabilisation window needs are recomputed from the
//! signal's window and the `instance-count` window (the replica count at
//! each sample's time).

use crate::duration::Pretty;
use crate::window::{Held, held};
use crate::{
    Direction, DurationMs, PolicyInput, Reason, Recommendation, Sample, SignalId, TimestampMs,
};

/// The recommendation to go from `current` to `desired`: the reasons end
/// with a `decision` reason (`scale up 4 -> 6`, `scale down 4 -> 3`,
/// `hold at 4`), and the scores are the replicas added (up score) or
/// removed (down score).
pub fn recommend(current: u32, desired: u32, mut reasons: Vec<Reason>) -> Recommendation {
    let direction = Direction::between(current, desired);
    let message = match direction {
        Direction::Up => format!("scale up {current} -> {desired}"),
        Direction::Down => format!("scale down {current} -> {desired}"),
        Direction::Hold => format!("hold at {current}"),
    };
    reasons.push(Reason::new("decision", message));
    Recommendation {
        desired_replicas: desired,
        direction,
        scale_up_score: f64::from(desired.saturating_sub(current)),
        scale_down_score: f64::from(current.saturating_sub(desired)),
        reasons,
    }
}

/// The newest value of `signal`, or why there is none usable, naming the
/// signal: no window (the host hands a policy only the signals it declares
/// in `describe`, names in a parameter, or has routed by its policy file),
/// no samples (with the host's reason when it gave one), the newest older
/// than `staleness`, or not a finite number. Never 0 in its place.
pub fn newest(
    input: &PolicyInput,
    signal: &SignalId,
    staleness: DurationMs,
) -> Result<f64, String> {
    let Some(window) = input.window(signal) else {
        return Err(format!(
            "{signal}: not in the input (a policy is handed only the signals it declares in describe())"
        ));
    };
    match held(&window.samples, input.now, staleness, |_| true) {
        Held::Observed { latest, .. } => Ok(latest),
        Held::Stale { age } => Err(format!("{signal}: newest sample is {} old", Pretty(age))),
        Held::NonFinite => Err(format!("{signal}: newest sample is not a finite number")),
        Held::NoData => Err(format!(
            "{signal}: {}",
            window.missing_reason.as_deref().unwrap_or("no samples")
        )),
    }
}

/// How a metric relates to the replica count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The mean over replicas (CPU or memory fraction, queue per replica):
    /// more replicas lower it proportionally.
    Average,
    /// The service's total (requests per second): the target is what one
    /// replica should carry.
    Total,
}

/// One metric held near a target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tracker {
    /// How the metric relates to the replica count.
    pub kind: Kind,
    /// The value to hold: per replica for both kinds.
    pub target: f64,
    /// No change while `value / target` is within this of 1 (HPA: 0.1).
    pub tolerance: f64,
}

impl Tracker {
    /// The replica count a metric value asks for: HPA's formula with its
    /// tolerance. `None` for a non-finite value or a target that is not
    /// positive.
    pub fn desired(&self, current: u32, value: f64) -> Option<u32> {
        if !(value.is_finite() && self.target > 0.0) {
            return None;
        }
        let current_f = f64::from(current.max(1));
        let ratio = match self.kind {
            Kind::Average => value / self.target,
            Kind::Total => value / (self.target * current_f),
        };
        if (ratio - 1.0).abs() <= self.tolerance {
            return Some(current);
        }
        let want = (current_f * ratio - 1e-9).ceil().max(0.0);
        Some(want.min(f64::from(u32::MAX)) as u32)
    }

    /// The recommendation of each sample of the metric in
    /// `[now - window, now]`, with the replica count of its time (from
    /// `replicas`, else `current`).
    pub fn recent<'a>(
        &'a self,
        metric: &'a [Sample],
        replicas: &'a [Sample],
        current: u32,
        now: TimestampMs,
        window: DurationMs,
    ) -> impl Iterator<Item = u32> + 'a {
        let from = now - window as i64;
        metric
            .iter()
            .filter(move |s| s.at >= from && s.at <= now)
            .filter_map(move |s| {
                let then = value_at(replicas, s.at).map_or(current, |r| r.round().max(0.0) as u32);
                self.desired(then, s.value)
            })
    }

    /// The highest of [`Tracker::recent`]: scale-down stabilisation.
    /// `None` when no sample is in the window.
    pub fn highest_recent(
        &self,
        metric: &[Sample],
        replicas: &[Sample],
        current: u32,
        now: TimestampMs,
        window: DurationMs,
    ) -> Option<u32> {
        self.recent(metric, replicas, current, now, window).max()
    }

    /// The lowest of [`Tracker::recent`]: scale-up stabilisation.
    /// `None` when no sample is in the window.
    pub fn lowest_recent(
        &self,
        metric: &[Sample],
        replicas: &[Sample],
        current: u32,
        now: TimestampMs,
        window: DurationMs,
    ) -> Option<u32> {
        self.recent(metric, replicas, current, now, window).min()
    }
}

/// The value of the newest sample at or before `at`.
pub fn value_at(samples: &[Sample], at: TimestampMs) -> Option<f64> {
    let i = samples.partition_point(|s| s.at <= at);
    samples[..i]
        .iter()
        .rev()
        .find(|s| s.value.is_finite())
        .map(|s| s.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(points: &[(i64, f64)]) -> Vec<Sample> {
        points
            .iter()
            .map(|&(at, value)| Sample { at, value })
            .collect()
    }

    #[test]
    fn hpa_formula_rounds_up_and_respects_the_tolerance() {
        let t = |kind, target| Tracker {
            kind,
            target,
            tolerance: 0.1,
        };
        // The HPA documentation's example: 200m used, 100m target, 1 pod -> 2.
        assert_eq!(t(Kind::Average, 0.1).desired(1, 0.2), Some(2));
        // 4 replicas at 0.75 with a 0.6 target: 4 * 1.25 = 5.
        assert_eq!(t(Kind::Average, 0.6).desired(4, 0.75), Some(5));
        // Within 10% of the target: no change.
        assert_eq!(t(Kind::Average, 0.6).desired(4, 0.65), Some(4));
        assert_eq!(t(Kind::Average, 0.6).desired(4, 0.2), Some(2));
        // A total: 450 req/s at 100 per replica needs 5.
        assert_eq!(t(Kind::Total, 100.0).desired(3, 450.0), Some(5));
        assert_eq!(t(Kind::Average, 0.6).desired(4, f64::NAN), None);
        assert_eq!(t(Kind::Average, 0.0).desired(4, 0.5), None);
    }

    #[test]
    fn stabilisation_takes_the_highest_recommendation_in_the_window() {
        let cpu = samples(&[(0, 0.9), (60_000, 0.3), (120_000, 0.3)]);
        let replicas = samples(&[(0, 4.0)]);
        let t = Tracker {
            kind: Kind::Average,
            target: 0.6,
            tolerance: 0.1,
        };
        // At 120 s the newest says 2, but 0 s said 6 (4 * 0.9 / 0.6).
        let h = t.highest_recent(&cpu, &replicas, 4, 120_000, 300_000);
        assert_eq!(h, Some(6));
        // With a 90 s window only the low samples count.
        let h = t.highest_recent(&cpu, &replicas, 4, 120_000, 90_000);
        assert_eq!(h, Some(2));
        assert_eq!(value_at(&replicas, -1), None);
    }
}
