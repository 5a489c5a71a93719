//! What knowing the load's level ahead is worth, on any load: the
//! frontier of a scaler that knows the level of every step ahead (the
//! load's centred mean over [`LEVEL_SPAN_MS`]) and how the load is spread
//! around its level over the whole run, but not when a burst comes. The
//! yardstick a forecast is judged by: a policy that forecast the level
//! perfectly could do this well, and no better without knowing the bursts
//! too ([`super::least_replica_hours`] knows them).
//!
//! Each step it picks the count `n` (within the bounds) that minimises
//! `n + price * P(load > n * c)`, `c` being the most one replica carries
//! within the SLO and `P` the run's own spread of load over level. A higher
//! price of a violation buys fewer violations with more replicas: each of
//! [`PRICES`] is one point of the frontier. It changes the count at every
//! step without limits, pays for each replica from a start-up before it
//! serves, and counts a violation while a step's load is over `n * c`.
//!
//! On a synthetic `web` load the level here is the trace's own mean,
//! bursts included, where `host/core/examples/foresight.rs` takes the
//! shape's level without its noise: on a noisy load this scaler knows a
//! little more than that one; on a smooth one, the same.

use crate::model::DurationMs;
use crate::queueing::Queue;

use super::{Paid, ServiceModel, Slo};

/// The level is the mean over this long, centred on each step.
pub const LEVEL_SPAN_MS: DurationMs = 10 * 60_000;

/// The prices of a violation the frontier is drawn at: 24, a fifth of a
/// decade apart, from 100 to about 6 million replica-steps.
pub const PRICES: usize = 24;

/// One point of the frontier.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// The price of a violating step, in replica-steps.
    pub price: f64,
    /// SLO-violation minutes.
    pub violation_minutes: f64,
    /// Replica-hours paid.
    pub replica_hours: f64,
}

/// The level-foresight scaler's points, one a price.
#[derive(Debug, Clone, PartialEq)]
pub struct Frontier {
    /// Ascending in price: violation minutes fall, replica-hours rise.
    pub points: Vec<Point>,
}

impl Frontier {
    /// The point with the fewest replica-hours among those with at most
    /// `violation_minutes` (`None`: every price violates more).
    pub fn cheapest_within(&self, violation_minutes: f64) -> Option<Point> {
        self.points
            .iter()
            .filter(|p| p.violation_minutes <= violation_minutes + 1e-9)
            .min_by(|a, b| a.replica_hours.total_cmp(&b.replica_hours))
            .copied()
    }
}

/// The most requests a second one replica carries with its p95 within the
/// SLO (0 when not even an idle one meets it).
pub fn carried_within(model: &ServiceModel, slo: Slo) -> f64 {
    let queue = Queue::from_capacity(model.capacity, model.workers);
    let (mut lo, mut hi) = (0.0, queue.capacity());
    if queue.response_time_quantile(0.0, 0.95) > slo.p95 {
        return 0.0;
    }
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if queue.response_time_quantile(mid, 0.95) <= slo.p95 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// The most order statistics of the spread a chance is read from.
const QUANTILES: usize = 4096;

/// `sorted`, or [`QUANTILES`] of its order statistics, evenly spaced, when
/// it is longer: the highest of each `n / QUANTILES`, so the largest is
/// the spread's own largest (a chance read from them is never 0 below it,
/// and the high prices still buy a run without a violation).
fn quantiles(sorted: Vec<f64>) -> Vec<f64> {
    let n = sorted.len();
    if n <= QUANTILES {
        return sorted;
    }
    (0..QUANTILES)
        .map(|i| sorted[(i + 1) * n / QUANTILES - 1])
        .collect()
}

/// Each step's level: the mean of the loads within [`LEVEL_SPAN_MS`]
/// centred on it.
fn levels(loads: &[f64], step_ms: DurationMs) -> Vec<f64> {
    let n = loads.len();
    let half = (LEVEL_SPAN_MS / 2 / step_ms.max(1)) as usize;
    // The window's sum, moved along one step at a time.
    let mut sum: f64 = loads[..(half + 1).min(n)].iter().sum();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let (a, b) = (i.saturating_sub(half), (i + half + 1).min(n));
        out.push(sum / (b - a) as f64);
        if i + half + 1 < n {
            sum += loads[i + half + 1];
        }
        if i >= half {
            sum -= loads[i - half];
        }
    }
    out
}

/// The count from `from` to `max` that minimises `n + price * chance(n)`
/// (the first of equals), `chances[j]` holding the chance of `min + j`,
/// filled as far as the search needs. A count at or above the best cost
/// so far cannot beat it (a count costs at least itself): the search stops
/// there.
fn cheapest(
    price: f64,
    (min, from, max): (u32, u32, u32),
    chances: &mut Vec<f64>,
    chance: &impl Fn(u32) -> f64,
) -> u32 {
    let mut best = (from, f64::INFINITY);
    for n in from..=max {
        if f64::from(n) >= best.1 {
            break;
        }
        let j = (n - min) as usize;
        while chances.len() <= j {
            chances.push(chance(min + chances.len() as u32));
        }
        let cost = f64::from(n) + price * chances[j];
        if cost < best.1 - 1e-12 {
            best = (n, cost);
        }
    }
    best.0
}

/// The frontier of the level-foresight scaler on `loads` (each step's mean
/// load, `step_ms` apart), with replicas within `[min, max]`. `None` when
/// one replica carries nothing within the SLO.
pub fn level_frontier(
    model: &ServiceModel,
    slo: Slo,
    (min, max): (u32, u32),
    loads: &[f64],
    step_ms: DurationMs,
) -> Option<Frontier> {
    let c = carried_within(model, slo);
    if c <= 0.0 || loads.is_empty() {
        return None;
    }
    let (min, max) = (min.max(1), max.max(min.max(1)));
    let level = levels(loads, step_ms);
    // The spread of load over level, sorted: P(load > x * level).
    let mut spread: Vec<f64> = loads
        .iter()
        .zip(&level)
        .map(|(l, v)| if *v > 0.0 { l / v } else { 0.0 })
        .collect();
    spread.sort_by(f64::total_cmp);
    // P(load > x * level), from at most QUANTILES of its order statistics
    // (evenly spaced): within 1/QUANTILES of the whole spread's answer,
    // and a search that stays in the cache on a year of steps.
    let spread = quantiles(spread);
    let above = |x: f64| 1.0 - spread.partition_point(|&r| r <= x) as f64 / spread.len() as f64;
    // Last step first, each price's count chosen and paid as it comes:
    // nothing a step long is kept but the loads, their levels and spread.
    let prices: Vec<f64> = (0..PRICES)
        .map(|i| 10f64.powf(2.0 + i as f64 / 5.0).round())
        .collect();
    let mut paid = vec![Paid::new(model, step_ms); PRICES];
    let mut violated = [0u64; PRICES];
    // A step's chance of a violation at each count, found as far as a
    // price's search needs it ([`cheapest`]).
    let mut chances = Vec::with_capacity((max - min + 1) as usize);
    for k in (0..loads.len()).rev() {
        chances.clear();
        let chance = |n: u32| {
            if level[k] > 0.0 {
                above(f64::from(n) * c / level[k])
            } else {
                0.0
            }
        };
        // A higher price never wants fewer replicas (each count's saving
        // grows with the price), so each price's search starts at the
        // count the price below it chose.
        let mut from = min;
        for (i, &price) in prices.iter().enumerate() {
            from = cheapest(price, (min, from, max), &mut chances, &chance);
            paid[i].add(k, from);
            if loads[k] > f64::from(from) * c {
                violated[i] += 1;
            }
        }
    }
    let minutes = step_ms as f64 / 60_000.0;
    let points = (0..PRICES)
        .map(|i| Point {
            price: prices[i],
            violation_minutes: violated[i] as f64 * minutes,
            replica_hours: paid[i].replica_hours(),
        })
        .collect();
    Some(Frontier { points })
}

#[cfg(test)]
mod tests {
    use super::super::{Noise, Shape, least_replica_hours};
    use super::*;

    const SLO: Slo = Slo {
        p95: 0.5,
        error_rate: 0.01,
    };

    fn web(days: u64, seed: u64) -> Vec<f64> {
        let ms = days * 86_400_000;
        let trace = Shape::Web.generate(ms, 1_000, (180.0, 780.0), seed, Noise::default());
        (0..ms / 60_000)
            .map(|k| trace.mean(k * 60_000, (k + 1) * 60_000))
            .collect()
    }

    #[test]
    fn a_higher_price_buys_fewer_violations_and_never_less_than_the_least() {
        let model = ServiceModel::default();
        let c = carried_within(&model, SLO);
        assert!((90.0..95.0).contains(&c), "one replica carries {c}");
        let loads = web(2, 3);
        let f = level_frontier(&model, SLO, (1, 20), &loads, 60_000).unwrap();
        assert_eq!(f.points.len(), PRICES);
        for pair in f.points.windows(2) {
            assert!(
                pair[1].violation_minutes <= pair[0].violation_minutes,
                "{pair:?}"
            );
            assert!(pair[1].replica_hours >= pair[0].replica_hours, "{pair:?}");
        }
        let least = least_replica_hours(&model, SLO, 1, &loads, 60_000).unwrap();
        let (first, last) = (f.points[0], f.points[PRICES - 1]);
        assert!(
            first.violation_minutes > last.violation_minutes,
            "{first:?} {last:?}"
        );
        assert!(last.replica_hours >= least, "{last:?} against {least}");
        // The cheapest within a goal is on the frontier, within the goal.
        let goal = f.points[PRICES / 2].violation_minutes;
        let best = f.cheapest_within(goal).unwrap();
        assert!(best.violation_minutes <= goal);
        assert!(
            f.points
                .iter()
                .all(|p| p.violation_minutes > goal || p.replica_hours >= best.replica_hours)
        );
        assert!(f.cheapest_within(-1.0).is_none());
    }

    #[test]
    fn a_steady_load_is_carried_without_a_violation_at_its_own_count() {
        let model = ServiceModel::default();
        let loads = vec![250.0; 600];
        let f = level_frontier(&model, SLO, (2, 10), &loads, 60_000).unwrap();
        let c = carried_within(&model, SLO);
        let need = (250.0 / c).ceil();
        let best = f.cheapest_within(0.0).unwrap();
        // Ten hours at `need` replicas (and the start-up paid at the start).
        assert!(
            (best.replica_hours - need * 10.0).abs() <= need * 1.01 / 60.0 * 2.0,
            "{best:?}"
        );
        // Bounds hold: a minimum above the need is paid for.
        let f = level_frontier(&model, SLO, (8, 10), &loads, 60_000).unwrap();
        assert!(
            f.points.iter().all(|p| p.replica_hours >= 80.0 - 1e-9),
            "{f:?}"
        );
    }

    #[test]
    fn the_frontier_is_what_a_search_of_every_count_at_every_step_finds() {
        let model = ServiceModel::default();
        let c = carried_within(&model, SLO);
        let loads = web(1, 5);
        let (min, max) = (2, 12);
        let f = level_frontier(&model, SLO, (min, max), &loads, 60_000).unwrap();
        // By hand: the level, the whole spread, every count tried.
        let level = levels(&loads, 60_000);
        let mut spread: Vec<f64> = loads.iter().zip(&level).map(|(l, v)| l / v).collect();
        spread.sort_by(f64::total_cmp);
        let above = |x: f64| 1.0 - spread.partition_point(|&r| r <= x) as f64 / spread.len() as f64;
        for point in &f.points {
            let ready: Vec<u32> = level
                .iter()
                .map(|&v| {
                    (min..=max)
                        .map(|n| (n, f64::from(n) + point.price * above(f64::from(n) * c / v)))
                        .fold((min, f64::INFINITY), |b, (n, cost)| {
                            if cost < b.1 - 1e-12 { (n, cost) } else { b }
                        })
                        .0
                })
                .collect();
            let violated = loads
                .iter()
                .zip(&ready)
                .filter(|(l, n)| **l > f64::from(**n) * c)
                .count();
            assert_eq!(point.violation_minutes, violated as f64, "{point:?}");
            assert_eq!(
                point.replica_hours,
                super::super::paid_replica_hours(&model, &ready, 60_000),
                "{point:?}"
            );
        }
    }

    #[test]
    fn a_level_is_the_mean_of_the_ten_minutes_around_its_step() {
        let loads: Vec<f64> = (0..40).map(|i| f64::from(i * i % 17)).collect();
        // One-minute steps: five either side, fewer at the ends.
        for (i, level) in levels(&loads, 60_000).iter().enumerate() {
            let window = &loads[i.saturating_sub(5)..(i + 6).min(40)];
            let mean = window.iter().sum::<f64>() / window.len() as f64;
            assert!((level - mean).abs() < 1e-9, "{i}: {level} against {mean}");
        }
    }

    #[test]
    fn a_long_run_keeps_the_largest_spread_so_a_high_price_buys_no_violation() {
        let model = ServiceModel::default();
        // A week at a minute: 10,080 steps, more than the quantiles kept.
        let loads = web(7, 2);
        assert!(loads.len() > QUANTILES);
        let f = level_frontier(&model, SLO, (1, 40), &loads, 60_000).unwrap();
        let last = f.points[PRICES - 1];
        assert_eq!(last.violation_minutes, 0.0, "{last:?}");
        assert!(f.cheapest_within(0.0).is_some());
        let q = quantiles((0..10_000).map(f64::from).collect());
        assert_eq!((q.len(), q[QUANTILES - 1]), (QUANTILES, 9_999.0));
    }
}
