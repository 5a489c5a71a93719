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

use crate::duration::{Elapsed, Pretty};
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
        Held::Stale { age } => Err(format!("{signal}: newest sample is {} old", Elapsed(age))),
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

impl Kind {
    /// `metric.total = true` reads a service total, otherwise an average.
    pub fn from_total(total: bool) -> Kind {
        if total { Kind::Total } else { Kind::Average }
    }

    /// The service's total behind sample `s`: the value itself for a
    /// total; for an average, the value times the replica count of the
    /// sample's time (the newest `replicas` sample at or before it, else
    /// `current`; at least 1). The one place a past sample is read at the
    /// replica count of its time, so a window that spans a scale reads as
    /// one demand.
    pub fn total_at(self, s: &Sample, replicas: &[Sample], current: u32) -> f64 {
        match self {
            Kind::Total => s.value,
            Kind::Average => self.total_with(s, value_at(replicas, s.at), current),
        }
    }

    /// [`Kind::total_at`] of every sample of `metric`, in order: the same
    /// values, with `replicas` read in one pass alongside (linear time, for
    /// a whole window) instead of searched for each sample.
    pub fn totals<'a>(
        self,
        metric: &'a [Sample],
        replicas: &'a [Sample],
        current: u32,
    ) -> impl Iterator<Item = (&'a Sample, f64)> + 'a {
        let mut then = ValueAt::new(replicas);
        metric.iter().map(move |s| match self {
            Kind::Total => (s, s.value),
            Kind::Average => (s, self.total_with(s, then.at(s.at), current)),
        })
    }

    fn total_with(self, s: &Sample, then: Option<f64>, current: u32) -> f64 {
        match self {
            Kind::Total => s.value,
            Kind::Average => s.value * then.unwrap_or(f64::from(current)).max(1.0),
        }
    }
}

/// [`value_at`] for times that ascend, in one pass over the samples.
struct ValueAt<'a> {
    samples: &'a [Sample],
    next: usize,
    newest: Option<f64>,
    last: TimestampMs,
}

impl<'a> ValueAt<'a> {
    fn new(samples: &'a [Sample]) -> ValueAt<'a> {
        ValueAt {
            samples,
            next: 0,
            newest: None,
            last: TimestampMs::MIN,
        }
    }

    /// The value of the newest finite sample at or before `at`.
    fn at(&mut self, at: TimestampMs) -> Option<f64> {
        if at < self.last {
            // Out of order: search, as value_at does.
            return value_at(self.samples, at);
        }
        self.last = at;
        while let Some(s) = self.samples.get(self.next)
            && s.at <= at
        {
            if s.value.is_finite() {
                self.newest = Some(s.value);
            }
            self.next += 1;
        }
        self.newest
    }
}

/// The samples of `metric` (ascending) in `[from, to]`, found by search.
fn within(metric: &[Sample], from: TimestampMs, to: TimestampMs) -> &[Sample] {
    let lo = metric.partition_point(|s| s.at < from);
    let hi = metric.partition_point(|s| s.at <= to).max(lo);
    &metric[lo..hi]
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
        within(metric, now - window as i64, now)
            .iter()
            .filter_map(move |s| {
                let then = value_at(replicas, s.at).map_or(current, |r| r.round().max(0.0) as u32);
                self.desired(then, s.value)
            })
    }

    /// The replicas each sample in `[now - window, now]` asks for, before
    /// rounding: the metric's demand in replicas at the target, with the
    /// replica count of the sample's time (from `replicas`, else
    /// `current`). Independent of how many replicas there are now, so a
    /// window that spans a scale still reads as one demand.
    pub fn demand<'a>(
        &'a self,
        metric: &'a [Sample],
        replicas: &'a [Sample],
        current: u32,
        now: TimestampMs,
        window: DurationMs,
    ) -> impl Iterator<Item = f64> + 'a {
        within(metric, now - window as i64, now)
            .iter()
            .filter(|s| s.value.is_finite())
            .map(move |s| self.kind.total_at(s, replicas, current) / self.target)
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

/// The mean and the standard deviation of a window's values: a level to
/// decide on that one noisy sample cannot move much, and the noise to
/// size a margin by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// The mean.
    pub mean: f64,
    /// The (population) standard deviation.
    pub sd: f64,
    /// How many values.
    pub count: usize,
}

impl Spread {
    /// The spread of `values`; `None` when there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let (mut count, mut sum, mut squares) = (0usize, 0.0, 0.0);
        for v in values {
            count += 1;
            sum += v;
            squares += v * v;
        }
        if count == 0 {
            return None;
        }
        let mean = sum / count as f64;
        let sd = (squares / count as f64 - mean * mean).max(0.0).sqrt();
        Some(Spread { mean, sd, count })
    }

    /// The mean plus `k` standard deviations: a level the window stays
    /// under nearly all the time, for `k` around 2.
    pub fn upper(&self, k: f64) -> f64 {
        self.mean + k * self.sd
    }
}

/// How a tracked metric decides without following its noise, each
/// mechanism a parameter (declared with [`Calm::specs`] and read with
/// [`Calm::read`], each with a policy's own defaults: `Calm::default()`,
/// or it with some changed):
///
/// - `scale-up.window` (2m): a scale-up is decided on the mean demand over
///   this window, not one sample (0: the newest sample, as HPA does);
/// - `scale-up.tolerance` (0.25), `scale-up.noise-trigger` (1.25) and
///   `scale-up.min-rise` (0.125): and only once that mean plus 1.25 of its
///   standard deviations is more than 25% above the replicas, the mean
///   itself more than 12.5%: a steady rise waits for the wider band (a
///   demand 20% over a 0.6 target still has room), a rise with bursts on
///   top, which reach saturation first, goes from 12.5%;
/// - `scale-up.noise-margin` (2): a scale-up goes to what the mean plus
///   this many standard deviations of that window asks for, so one action
///   covers the rise and its noise;
/// - `panic.ratio` (1.5): a newest sample asking for this many times the
///   replicas scales up on it at once (a CPU that saturates reads at most
///   1/target times the replicas, so 1.5 at a 0.6 target is a CPU at 90%);
/// - `scale-down.stabilization` (30m) and `scale-down.noise-margin` (2): a
///   scale-down goes only as low as the mean plus this many standard
///   deviations of the demand over the window asks, hysteresis sized to
///   the metric's own noise; `tolerance` (0.1) below the replicas first.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calm {
    /// `scale-up.window`, ms.
    pub up_window: DurationMs,
    /// `scale-up.tolerance`.
    pub up_tolerance: f64,
    /// `scale-up.noise-trigger`.
    pub up_noise: f64,
    /// `scale-up.min-rise` (at most `up_tolerance` counts).
    pub up_min_rise: f64,
    /// `scale-up.noise-margin`.
    pub up_margin: f64,
    /// `panic.ratio` (0: off).
    pub panic: f64,
    /// `scale-down.stabilization`, ms.
    pub down_window: DurationMs,
    /// `scale-down.noise-margin`.
    pub down_margin: f64,
}

/// What [`Calm::decide`] made of one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Decided {
    /// The replica count it asks for.
    pub want: u32,
    /// How, in words (`mean demand 5.20 (sd 0.31) replicas over 2m`).
    pub basis: String,
    /// The newest sample alone would ask for fewer (the HPA count), and
    /// the window holds to `want`.
    pub held_down: Option<u32>,
    /// What a scale-up, whatever decides it (a forecast), should go to:
    /// the recent demand's mean plus `scale-up.noise-margin` standard
    /// deviations, or the newest sample's, whichever is higher.
    pub sized_up: u32,
}

impl Default for Calm {
    fn default() -> Self {
        Calm {
            up_window: 2 * 60_000,
            up_tolerance: 0.25,
            up_noise: 1.25,
            up_min_rise: 0.125,
            up_margin: 2.0,
            panic: 1.5,
            down_window: 30 * 60_000,
            down_margin: 2.0,
        }
    }
}

impl Calm {
    /// The parameters, with these as their defaults.
    pub fn specs(&self) -> Vec<crate::ParamSpec> {
        let d = self;
        vec![
            crate::ParamSpec::duration(
                "scale-up.window",
                d.up_window,
                "decide a scale-up on the mean demand over this window, not one noisy sample (0: the newest sample, as HPA)",
            ),
            crate::ParamSpec::number(
                "scale-up.tolerance",
                d.up_tolerance,
                "no scale-up while the mean demand over scale-up.window plus scale-up.noise-trigger standard deviations is within this fraction above the replicas",
            ),
            crate::ParamSpec::number(
                "scale-up.noise-trigger",
                d.up_noise,
                "the standard deviations of the scale-up window added to its mean before it is held against scale-up.tolerance: a window with bursts near saturation scales up sooner (0: the mean alone)",
            ),
            crate::ParamSpec::number(
                "scale-up.min-rise",
                d.up_min_rise,
                "however noisy the window, no scale-up while its mean is within this fraction above the replicas (at most scale-up.tolerance)",
            ),
            crate::ParamSpec::number(
                "scale-up.noise-margin",
                d.up_margin,
                "a scale-up goes to what the mean plus this many standard deviations of the demand over scale-up.window asks for, so one action covers the rise",
            ),
            crate::ParamSpec::number(
                "panic.ratio",
                d.panic,
                "a newest sample asking for at least this many times the replicas scales up on it at once (0: off)",
            ),
            crate::ParamSpec::duration(
                "scale-down.stabilization",
                d.down_window,
                "scale down only as low as the demand over this window allows",
            ),
            crate::ParamSpec::number(
                "scale-down.noise-margin",
                d.down_margin,
                "scale down only to what the mean plus this many standard deviations of the demand over the stabilisation window asks for: hysteresis sized to the metric's own noise",
            ),
        ]
    }

    /// Why a scale-down went no lower than `want` although the newest
    /// sample asked for `hpa` (a [`Decided::held_down`]), in words.
    pub fn held_down_message(&self, hpa: u32, want: u32) -> String {
        format!(
            "scale-down stabilised: the newest sample asks for {hpa}, the demand over the last {} for {want}",
            Pretty(self.down_window)
        )
    }

    /// Read the parameters, these being the defaults, recording a problem
    /// for each bad value.
    pub fn read(&self, p: &mut crate::params::Params) -> Calm {
        let d = self;
        let fraction = |p: &mut crate::params::Params, key: &str, default: f64| {
            let v = p.number(key, default);
            if !(0.0..1.0).contains(&v) {
                p.error(key, format!("must be from 0 to below 1, found {v}"));
            }
            v
        };
        let up_tolerance = fraction(p, "scale-up.tolerance", d.up_tolerance);
        let panic = p.number("panic.ratio", d.panic);
        if !(panic == 0.0 || panic > 1.0) {
            p.error(
                "panic.ratio",
                format!("must be 0 (off) or above 1, found {panic}"),
            );
        }
        let margin = |p: &mut crate::params::Params, key: &str, default: f64| {
            let v = p.number(key, default);
            if !(v.is_finite() && v >= 0.0) {
                p.error(key, format!("must be 0 or above, found {v}"));
            }
            v
        };
        let up_margin = margin(p, "scale-up.noise-margin", d.up_margin);
        let up_noise = margin(p, "scale-up.noise-trigger", d.up_noise);
        let up_min_rise = fraction(p, "scale-up.min-rise", d.up_min_rise);
        let down_margin = margin(p, "scale-down.noise-margin", d.down_margin);
        Calm {
            up_window: p.duration("scale-up.window", d.up_window),
            up_tolerance,
            up_noise,
            up_min_rise,
            up_margin,
            panic,
            down_window: p.duration("scale-down.stabilization", d.down_window),
            down_margin,
        }
    }

    /// `scale-up.min-rise`, at most `scale-up.tolerance`.
    fn min_rise(&self) -> f64 {
        self.up_min_rise.min(self.up_tolerance)
    }

    /// The level a scale-up is decided on, in replicas, from the scale-up
    /// window's demand: its mean, plus `scale-up.noise-trigger` standard
    /// deviations once the mean is more than `scale-up.min-rise` above
    /// the `here` replicas. Held against `scale-up.tolerance`, a steady
    /// rise waits for that band, while one whose bursts reach towards
    /// saturation goes from `scale-up.min-rise`.
    fn rising(&self, recent: &Spread, here: f64) -> f64 {
        if recent.mean > here * (1.0 + self.min_rise()) {
            recent.upper(self.up_noise)
        } else {
            recent.mean
        }
    }

    /// The count one metric asks for, `newest` being its newest usable
    /// value: up on the mean demand over `scale-up.window` (plus
    /// `scale-up.noise-trigger` standard deviations, once the mean is past
    /// `scale-up.min-rise`) past `scale-up.tolerance` (or at once past
    /// `panic.ratio`), sized by `scale-up.noise-margin`; down only as low
    /// as the stabilisation window's demand plus `scale-down.noise-margin`
    /// allows.
    pub fn decide(
        &self,
        t: &Tracker,
        (metric, replicas): (&[Sample], &[Sample]),
        now: TimestampMs,
        current: u32,
        newest: f64,
    ) -> Decided {
        let here = f64::from(current.max(1));
        let newest_demand = match t.kind {
            Kind::Average => newest * here / t.target,
            Kind::Total => newest / t.target,
        };
        let count = |demand: f64| -> u32 {
            let ratio = demand / here;
            if ratio <= 1.0 + self.up_tolerance && ratio >= 1.0 - t.tolerance {
                current
            } else {
                (demand - 1e-9).ceil().clamp(0.0, f64::from(u32::MAX)) as u32
            }
        };
        let level = |window: DurationMs| {
            Spread::of(t.demand(metric, replicas, current, now, window)).unwrap_or(Spread {
                mean: newest_demand,
                sd: 0.0,
                count: 1,
            })
        };
        let panic = self.panic > 0.0 && newest_demand >= self.panic * here;
        let recent = level(self.up_window);
        let up_level = if panic || self.up_window == 0 {
            newest_demand
        } else {
            self.rising(&recent, here)
        };
        let up = count(up_level);
        let sized_up = ((recent.upper(self.up_margin).max(newest_demand)) - 1e-9)
            .ceil()
            .clamp(0.0, f64::from(u32::MAX)) as u32;
        if up > current {
            // A panic is sized for the newest sample (the window's spread
            // is the jump itself); a rise for its mean and noise.
            let sized = if panic { up } else { up.max(sized_up) };
            let basis = if panic {
                format!("panic: the newest sample asks for {newest_demand:.1} replicas")
            } else {
                format!(
                    "mean demand {:.2} (sd {:.2}) replicas over {}, sized for {:.2}",
                    recent.mean,
                    recent.sd,
                    Pretty(self.up_window),
                    recent.upper(self.up_margin).max(newest_demand)
                )
            };
            return Decided {
                want: sized,
                basis,
                held_down: None,
                sized_up,
            };
        }
        let down = level(self.down_window);
        let want = count(down.upper(self.down_margin)).min(current);
        let hpa = t.desired(current, newest).unwrap_or(current);
        Decided {
            want,
            basis: self.held_basis(&recent, &down, want, current),
            held_down: (hpa < current && want > hpa).then_some(hpa),
            sized_up,
        }
    }

    /// How a count that did not rise was decided, in words: the scale-down
    /// window's demand and noise, and, when the recent demand is above the
    /// replicas, the scale-up band that held it.
    fn held_basis(&self, recent: &Spread, down: &Spread, want: u32, current: u32) -> String {
        let held = format!(
            "demand {:.2} + {} x {:.2} replicas over {}",
            down.mean,
            self.down_margin,
            down.sd,
            Pretty(self.down_window)
        );
        let here = f64::from(current.max(1));
        if want < current || recent.mean <= here || self.up_window == 0 {
            return held;
        }
        format!(
            "{held}; mean demand {:.2} (sd {:.2}) over {} is within the scale-up band ({:.0}% over {current}, from {:.1}% in bursts)",
            recent.mean,
            recent.sd,
            Pretty(self.up_window),
            self.up_tolerance * 100.0,
            self.min_rise() * 100.0
        )
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

    /// 4 replicas, CPU every 15 s for 20 minutes ending at `now` (within
    /// every window of [`Calm::default`]).
    fn cpu(values: impl Fn(i64) -> f64) -> Vec<Sample> {
        (0..=80)
            .map(|i| Sample {
                at: 1_200_000 - (80 - i) * 15_000,
                value: values(i),
            })
            .collect()
    }

    #[test]
    fn calm_holds_on_noise_and_acts_on_a_rise_and_a_saturation() {
        let t = Tracker {
            kind: Kind::Average,
            target: 0.6,
            tolerance: 0.1,
        };
        let calm = Calm::default();
        let replicas = samples(&[(0, 4.0)]);
        let decide = |metric: &[Sample]| {
            let newest = metric.last().unwrap().value;
            calm.decide(&t, (metric, &replicas), 1_200_000, 4, newest)
        };
        // Noise of 15% either side of the target, ending on a spike.
        let noisy = cpu(|i| {
            if i == 80 {
                0.75
            } else if i % 2 == 0 {
                0.69
            } else {
                0.51
            }
        });
        let d = decide(&noisy);
        assert_eq!(d.want, 4, "{d:?}");
        // HPA's formula alone would follow the spike to 5.
        assert_eq!(t.desired(4, 0.75), Some(5));
        // A rise held for two minutes: up, sized for its spread.
        let rise = cpu(|i| if i >= 72 { 0.8 } else { 0.6 });
        let d = decide(&rise);
        assert!(d.want > 5, "{d:?}");
        assert_eq!(d.want, d.sized_up, "{d:?}");
        // Near saturation: at once on the newest sample.
        let jump = cpu(|i| if i == 80 { 0.95 } else { 0.6 });
        let d = decide(&jump);
        assert!(d.basis.starts_with("panic"), "{d:?}");
        assert_eq!(d.want, 7, "{d:?}");
        // A dip the window's noise covers is not followed down.
        let dip = cpu(|i| {
            if i >= 76 {
                0.3
            } else if i % 2 == 0 {
                0.5
            } else {
                0.4
            }
        });
        let d = decide(&dip);
        assert_eq!(d.want, 4, "{d:?}");
        assert_eq!(d.held_down, Some(2), "{d:?}");
        // A drop held over the whole window is.
        let low = cpu(|_| 0.3);
        assert_eq!(decide(&low).want, 2);
    }

    #[test]
    fn a_steady_rise_waits_for_the_band_and_one_in_bursts_goes_from_the_min_rise() {
        let t = Tracker {
            kind: Kind::Average,
            target: 0.6,
            tolerance: 0.1,
        };
        let replicas = samples(&[(0, 4.0)]);
        let decide = |calm: &Calm, metric: &[Sample]| {
            let newest = metric.last().unwrap().value;
            calm.decide(&t, (metric, &replicas), 1_200_000, 4, newest)
        };
        // The last two minutes 20% over the target (4.8 replicas' worth).
        let steady = cpu(|i| if i >= 72 { 0.72 } else { 0.6 });
        let bursty = cpu(|i| if i >= 72 && i % 2 == 0 { 0.84 } else { 0.6 });
        let calm = Calm::default();
        let d = decide(&calm, &steady);
        assert_eq!(d.want, 4);
        assert!(
            d.basis.ends_with(
                "mean demand 4.80 (sd 0.00) over 2m is within the scale-up band (25% over 4, from 12.5% in bursts)"
            ),
            "{d:?}"
        );
        let d = decide(&calm, &bursty);
        assert!(d.want > 4, "{d:?}");
        assert!(d.basis.contains("4.89 (sd 0.80)"), "{d:?}");
        // The mean alone: both wait. The old 15% band: both go.
        let mean_only = Calm {
            up_noise: 0.0,
            ..Calm::default()
        };
        assert_eq!(decide(&mean_only, &bursty).want, 4);
        let narrow = Calm {
            up_tolerance: 0.15,
            up_noise: 0.0,
            ..Calm::default()
        };
        assert_eq!(decide(&narrow, &steady).want, 5);
        // Under the min-rise no noise scales up: 11% over, swinging widely
        // (its mean plus 1.25 standard deviations is 42% over).
        let wide = cpu(|i| if i % 2 == 0 { 0.8 } else { 0.5 });
        assert_eq!(decide(&calm, &wide).want, 4);
        let no_floor = Calm {
            up_min_rise: 0.0,
            ..Calm::default()
        };
        assert!(decide(&no_floor, &wide).want > 4);
        // A min-rise above the band counts as the band: a mean 33% over
        // scales up, one 22% over in bursts does not.
        let high = Calm {
            up_min_rise: 0.5,
            ..Calm::default()
        };
        let rise = cpu(|i| if i >= 72 { 0.8 } else { 0.6 });
        assert!(decide(&high, &rise).want > 4);
        assert_eq!(decide(&high, &bursty).want, 4);
    }

    #[test]
    fn the_band_s_parameters_are_checked() {
        let read = |params: &[(&str, f64)]| {
            let params: Vec<crate::Param> = params
                .iter()
                .map(|&(key, n)| crate::Param {
                    key: key.into(),
                    value: crate::ParamValue::Number(n),
                })
                .collect();
            let mut p = crate::params::Params::new(&params);
            let calm = Calm::default().read(&mut p);
            (calm, p.finish().err().unwrap_or_default())
        };
        let (calm, errors) = read(&[("scale-up.noise-trigger", 0.0), ("scale-up.min-rise", 0.2)]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!((calm.up_noise, calm.up_min_rise), (0.0, 0.2));
        let (_, errors) = read(&[("scale-up.noise-trigger", -1.0), ("scale-up.min-rise", 1.0)]);
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            ["scale-up.noise-trigger", "scale-up.min-rise"],
            "{errors:?}"
        );
        assert!(errors[1].message.contains("found 1"), "{errors:?}");
    }

    #[test]
    fn demand_reads_each_sample_at_the_replica_count_of_its_time() {
        // 4 replicas at 0.9 then, after a scale to 6, 0.6: the same demand.
        let cpu = samples(&[(0, 0.9), (60_000, 0.6), (90_000, f64::NAN)]);
        let replicas = samples(&[(0, 4.0), (45_000, 6.0)]);
        let t = Tracker {
            kind: Kind::Average,
            target: 0.6,
            tolerance: 0.1,
        };
        let d: Vec<f64> = t.demand(&cpu, &replicas, 6, 90_000, 300_000).collect();
        assert_eq!(d.len(), 2, "the NaN sample is no demand");
        assert!(
            (d[0] - 6.0).abs() < 1e-9 && (d[1] - 6.0).abs() < 1e-9,
            "{d:?}"
        );
        let s = Spread::of(d).unwrap();
        assert!((s.mean - 6.0).abs() < 1e-9 && s.sd < 1e-6, "{s:?}");
        let noisy = Spread::of([4.0, 6.0]).unwrap();
        assert_eq!((noisy.mean, noisy.sd, noisy.count), (5.0, 1.0, 2));
        assert_eq!(noisy.upper(2.0), 7.0);
        assert_eq!(Spread::of([]), None);
    }

    #[test]
    fn a_total_is_read_at_the_replica_count_of_the_samples_time() {
        let replicas = samples(&[(0, 4.0), (45_000, 6.0), (80_000, 0.0)]);
        let at = |at, value| Sample { at, value };
        let avg = |s: Sample, current| Kind::Average.total_at(&s, &replicas, current);
        assert_eq!(avg(at(30_000, 0.5), 9), 2.0, "4 replicas then");
        assert_eq!(avg(at(60_000, 0.5), 9), 3.0, "6 replicas then");
        assert_eq!(avg(at(-1, 0.5), 9), 4.5, "before any count: the current 9");
        assert_eq!(avg(at(90_000, 0.5), 9), 0.5, "a count of 0 reads as 1");
        assert_eq!(
            Kind::Total.total_at(&at(60_000, 250.0), &replicas, 9),
            250.0
        );
        assert_eq!(Kind::from_total(true), Kind::Total);
        assert_eq!(Kind::from_total(false), Kind::Average);
    }

    #[test]
    fn totals_over_a_window_equal_total_at_of_each_sample() {
        // Replica counts with a gap, a NaN and a repeated time; metric
        // samples before, between, on and after them, one out of order.
        let replicas = samples(&[
            (10, 2.0),
            (20, f64::NAN),
            (30, 5.0),
            (30, 6.0),
            (55, 0.0),
            (70, 3.0),
        ]);
        let metric = samples(&[
            (0, 0.5),
            (10, 0.5),
            (20, f64::NAN),
            (25, 0.25),
            (30, 1.0),
            (40, 0.75),
            (35, 0.5),
            (55, 2.0),
            (90, 0.1),
        ]);
        for kind in [Kind::Average, Kind::Total] {
            let each: Vec<f64> = metric
                .iter()
                .map(|s| kind.total_at(s, &replicas, 7))
                .collect();
            let walked: Vec<f64> = kind.totals(&metric, &replicas, 7).map(|(_, v)| v).collect();
            assert_eq!(
                format!("{each:?}"),
                format!("{walked:?}"),
                "{kind:?}: the one-pass walk reads the same counts"
            );
        }
        assert_eq!(
            Kind::Average
                .totals(&metric, &replicas, 7)
                .map(|(_, v)| v)
                .nth(4),
            Some(6.0),
            "at 30 the newest count at or before it is the second at 30"
        );
    }
}
