//! What foresight is worth on a noisy `web` load: the SLO-violation
//! minutes and replica-hours of two scalers that know more than any policy
//! can, to judge a policy's trade between the two against.
//!
//! - **level**: knows the load's smooth level ahead (the shape without its
//!   bursts, the mean over 10 minutes around each step) and how the bursts
//!   are distributed around it, but not when one comes.
//! - **level + burst**: also knows the burst of the newest sample a policy
//!   could have acted on (an interval plus a replica's start-up before),
//!   and how the bursts that follow such a one are distributed.
//!
//! Each step, each picks the replica count `n` that minimises
//! `n + price * P(the step's load > n * c)`, where `c` is the most one
//! replica carries within the SLO (the M/M/k queue of
//! [`vedfolnir_core::sim::ServiceModel`]) and `P` comes from the run's own
//! bursts (so the oracles know their distribution exactly, in-sample). A
//! higher `price` of a violation buys fewer violations with more replicas:
//! each price is one point of the scaler's frontier. They change the count
//! at every step without limits, have every replica ready when asked (one
//! is paid for from a start-up time before), and count a violation only
//! while a step's load is over `n * c` (no backlog carried over). No policy
//! knows as much as **level + burst**, so a goal past its frontier is past
//! any policy's; **level** shows what knowing the daily pattern ahead is
//! worth. `simulate` reports the level scaler on any trace
//! (`vedfolnir_core::sim::foresight`, the level taken from the trace
//! itself); this example draws both frontiers on the shape, whose level
//! it knows without the noise.
//!
//! ```sh
//! cargo run --release -p vedfolnir-core --example foresight -- \
//!     --duration 7d --base 180 --peak 780 --seed 1 --step 15s --interval 15s
//! # the fewest replica-hours each needs for at most 0 violation minutes,
//! # over 45 prices from 100 to 2.5 million
//! cargo run --release -p vedfolnir-core --example foresight -- --seed 1 --goal 0
//! ```
//!
//! Options (defaults): `--duration 7d`, `--base 180`, `--peak 780`,
//! `--noise 0.15`, `--seed 1`, `--step 15s`, `--interval 15s`,
//! `--max-replicas 20`, `--prices 100,1000,10000,1e9` (with `--goal`: the
//! 45 prices), `--goal` (none: every price's point).

use std::collections::BTreeMap;
use std::process::ExitCode;

use vedfolnir_core::model::DurationMs;
use vedfolnir_core::parse_duration;
use vedfolnir_core::sim::foresight::carried_within;
use vedfolnir_core::sim::{ServiceModel, Shape, Slo, Trace, paid_replica_hours};

/// The level is the mean over this long around each step.
const LEVEL_SPAN_MS: DurationMs = 10 * 60_000;

/// Bursts are grouped by the newest sample's load against the level, in
/// classes this wide.
const BURST_CLASS: f64 = 0.2;

struct Options {
    duration_ms: DurationMs,
    base: f64,
    peak: f64,
    noise: f64,
    seed: u64,
    step_ms: DurationMs,
    interval_ms: DurationMs,
    max_replicas: u32,
    prices: Vec<f64>,
    /// Print only the cheapest point with at most this many violation
    /// minutes, per scaler.
    goal: Option<f64>,
}

/// The prices a goal is sought over: 45, a tenth of a decade apart, from
/// 100 to 2.5 million.
fn sweep() -> Vec<f64> {
    (0..45)
        .map(|i| 10f64.powf(2.0 + f64::from(i) / 10.0).round())
        .collect()
}

fn main() -> ExitCode {
    match parse(std::env::args().skip(1)) {
        Ok(options) => {
            run(&options);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("foresight: {e}");
            ExitCode::from(2)
        }
    }
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut o = Options {
        duration_ms: 7 * 86_400_000,
        base: 180.0,
        peak: 780.0,
        noise: 0.15,
        seed: 1,
        step_ms: 15_000,
        interval_ms: 15_000,
        max_replicas: 20,
        prices: vec![100.0, 1_000.0, 10_000.0, 1e9],
        goal: None,
    };
    let mut priced = false;
    while let Some(key) = args.next() {
        let value = args.next().ok_or_else(|| format!("{key}: no value"))?;
        let bad = |e: String| format!("{key} {value}: {e}");
        let number = |v: &str| {
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| "not a number of 0 or more".to_string())
        };
        let duration = |v: &str| parse_duration(v).map_err(|e| e.to_string());
        match key.as_str() {
            "--duration" => o.duration_ms = duration(&value).map_err(bad)?,
            "--base" => o.base = number(&value).map_err(bad)?,
            "--peak" => o.peak = number(&value).map_err(bad)?,
            "--noise" => o.noise = number(&value).map_err(bad)?,
            "--seed" => o.seed = value.parse().map_err(|_| bad("not a seed".into()))?,
            "--step" => o.step_ms = duration(&value).map_err(bad)?,
            "--interval" => o.interval_ms = duration(&value).map_err(bad)?,
            "--max-replicas" => {
                o.max_replicas = value
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| bad("not a count above 0".into()))?
            }
            "--goal" => o.goal = Some(number(&value).map_err(bad)?),
            "--prices" => {
                priced = true;
                o.prices = value
                    .split(',')
                    .map(number)
                    .collect::<Result<_, _>>()
                    .map_err(bad)?
            }
            _ => return Err(format!("unknown option {key}")),
        }
    }
    if o.goal.is_some() && !priced {
        o.prices = sweep();
    }
    if o.step_ms < 1_000 || o.duration_ms < o.step_ms {
        return Err("--step must be 1s or more, and --duration at least one step".into());
    }
    Ok(o)
}

/// The mean load of each step, as `simulate` replays a shape (generated
/// per second, averaged over the step).
fn steps(o: &Options, noise: f64) -> Vec<f64> {
    let noise = vedfolnir_core::sim::Noise {
        size: Some(noise),
        ..Default::default()
    };
    let trace: Trace = Shape::Web.generate(o.duration_ms, 1_000, (o.base, o.peak), o.seed, noise);
    let n = o.duration_ms / o.step_ms;
    (0..n)
        .map(|k| trace.mean(k * o.step_ms, (k + 1) * o.step_ms))
        .collect()
}

/// The empirical chance that a ratio in `sorted` exceeds `x`.
fn above(sorted: &[f64], x: f64) -> f64 {
    let at_or_below = sorted.partition_point(|&v| v <= x);
    1.0 - at_or_below as f64 / sorted.len() as f64
}

/// One point of an oracle's frontier.
#[derive(Debug, Clone, PartialEq)]
struct Point {
    /// What it knows: `level`, or `level + burst`.
    knows: &'static str,
    price: f64,
    violation_minutes: f64,
    replica_hours: f64,
    changes_per_day: f64,
}

fn run(o: &Options) {
    let (c, points) = frontier(o);
    println!(
        "web, {base} to {peak} req/s, noise {noise}, seed {seed}, {days} at {step}; one replica carries {c:.1} req/s within p95 {p95} s",
        base = o.base,
        peak = o.peak,
        noise = o.noise,
        seed = o.seed,
        days = vedfolnir_core::format_duration(o.duration_ms),
        step = vedfolnir_core::format_duration(o.step_ms),
        p95 = SLO.p95,
    );
    let shown: Vec<&Point> = match o.goal {
        Some(goal) => {
            let best = cheapest(&points, goal);
            for (knows, p) in &best {
                if p.is_none() {
                    println!("{knows}: no price gives at most {goal} violation minutes");
                }
            }
            best.into_iter().filter_map(|(_, p)| p).collect()
        }
        None => points.iter().collect(),
    };
    println!("| knows | price | SLO-violation min | replica-hours | count changes/day |");
    println!("|---|---|---|---|---|");
    for p in shown {
        println!(
            "| {} | {} | {:.2} | {:.1} | {:.0} |",
            p.knows, p.price, p.violation_minutes, p.replica_hours, p.changes_per_day
        );
    }
}

/// Per scaler, the point with the fewest replica-hours among those with at
/// most `goal` violation minutes (`None` when no price gives that).
fn cheapest(points: &[Point], goal: f64) -> Vec<(&'static str, Option<&Point>)> {
    ["level", "level + burst"]
        .into_iter()
        .map(|knows| {
            let best = points
                .iter()
                .filter(|p| p.knows == knows && p.violation_minutes <= goal)
                .min_by(|a, b| a.replica_hours.total_cmp(&b.replica_hours));
            (knows, best)
        })
        .collect()
}

/// `simulate`'s default SLO.
const SLO: Slo = Slo {
    p95: 0.5,
    error_rate: 0.01,
};

/// What one replica carries within the SLO, and each oracle's point at
/// each price.
fn frontier(o: &Options) -> (f64, Vec<Point>) {
    let model = ServiceModel::default();
    let c = carried_within(&model, SLO);
    let load = steps(o, o.noise);
    let calm = steps(o, 0.0);
    let n = load.len();
    let half = (LEVEL_SPAN_MS / 2 / o.step_ms) as usize;
    let mut prefix = vec![0.0];
    for v in &calm {
        prefix.push(prefix.last().copied().unwrap_or(0.0) + v);
    }
    let level: Vec<f64> = (0..n)
        .map(|i| {
            let (a, b) = (i.saturating_sub(half), (i + half + 1).min(n));
            ((prefix[b] - prefix[a]) / (b - a) as f64).max(1e-9)
        })
        .collect();
    let ratio: Vec<f64> = (0..n).map(|i| load[i] / level[i]).collect();
    // The newest sample a policy could have acted on for step i.
    let lag = (o.interval_ms + model.startup_ms).div_ceil(o.step_ms) as usize;
    let class = |i: usize| {
        i.checked_sub(lag)
            .map_or(i64::MIN, |j| (ratio[j] / BURST_CLASS).floor() as i64)
    };
    let mut all = ratio.clone();
    all.sort_by(f64::total_cmp);
    let mut after: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for (i, &r) in ratio.iter().enumerate() {
        after.entry(class(i)).or_default().push(r);
    }
    for v in after.values_mut() {
        v.sort_by(f64::total_cmp);
    }
    let days = (n as u64 * o.step_ms) as f64 / 86_400_000.0;
    let mut points = Vec::new();
    for (name, bursts) in [("level", None), ("level + burst", Some(&after))] {
        for &price in &o.prices {
            let ready: Vec<u32> = (0..n)
                .map(|i| {
                    let dist = bursts.map_or(&all, |b| &b[&class(i)]);
                    (1..=o.max_replicas)
                        .map(|k| {
                            let cost =
                                f64::from(k) + price * above(dist, f64::from(k) * c / level[i]);
                            (k, cost)
                        })
                        .fold((1, f64::INFINITY), |best, (k, cost)| {
                            if cost < best.1 - 1e-12 {
                                (k, cost)
                            } else {
                                best
                            }
                        })
                        .0
                })
                .collect();
            let violated = (0..n)
                .filter(|&i| load[i] > f64::from(ready[i]) * c)
                .count();
            let changes = ready.windows(2).filter(|w| w[0] != w[1]).count();
            points.push(Point {
                knows: name,
                price,
                violation_minutes: violated as f64 * o.step_ms as f64 / 60_000.0,
                replica_hours: paid_replica_hours(&model, &ready, o.step_ms),
                changes_per_day: changes as f64 / days,
            });
        }
    }
    (c, points)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(args: &[&str]) -> Options {
        parse(args.iter().map(|s| s.to_string())).unwrap()
    }

    #[test]
    fn a_higher_price_of_a_violation_buys_fewer_violations_and_never_less_than_the_least() {
        let o = options(&["--duration", "2d", "--seed", "3", "--prices", "10,1000,1e9"]);
        let (c, points) = frontier(&o);
        assert!((90.0..95.0).contains(&c), "one replica carries {c}");
        let loads = steps(&o, o.noise);
        let least = vedfolnir_core::sim::least_replica_hours(
            &ServiceModel::default(),
            SLO,
            1,
            &loads,
            o.step_ms,
        )
        .unwrap();
        for knows in ["level", "level + burst"] {
            let mine: Vec<&Point> = points.iter().filter(|p| p.knows == knows).collect();
            assert_eq!(mine.len(), 3);
            for pair in mine.windows(2) {
                assert!(
                    pair[1].violation_minutes <= pair[0].violation_minutes,
                    "{pair:?}"
                );
                assert!(pair[1].replica_hours >= pair[0].replica_hours, "{pair:?}");
            }
            // Priced out of every violation, in-sample: none, and never
            // fewer replica-hours than a scaler that knew every burst.
            let last = mine[2];
            assert_eq!(last.violation_minutes, 0.0, "{last:?}");
            assert!(last.replica_hours >= least, "{last:?} against {least}");
            assert!(mine[0].violation_minutes > 0.0, "{:?}", mine[0]);
        }
    }

    #[test]
    fn a_goal_picks_the_cheapest_point_within_it_from_the_sweep() {
        let o = options(&["--duration", "1d", "--goal", "0.5"]);
        assert_eq!(o.prices.len(), 45);
        assert_eq!(
            (o.prices[0], o.prices[10], o.prices[44]),
            (100.0, 1_000.0, 2_511_886.0)
        );
        let (_, points) = frontier(&o);
        for (knows, best) in cheapest(&points, 0.5) {
            let best = best.unwrap_or_else(|| panic!("{knows}: none within 0.5"));
            assert!(best.violation_minutes <= 0.5, "{best:?}");
            for p in points
                .iter()
                .filter(|p| p.knows == knows && p.violation_minutes <= 0.5)
            {
                assert!(
                    p.replica_hours >= best.replica_hours,
                    "{p:?} against {best:?}"
                );
            }
        }
        // Prices given stay as given.
        let o = options(&["--goal", "0", "--prices", "5,50"]);
        assert_eq!(o.prices, [5.0, 50.0]);
    }

    #[test]
    fn bad_options_are_refused_by_name() {
        let e = |args: &[&str]| parse(args.iter().map(|s| s.to_string())).err().unwrap();
        assert!(e(&["--noise", "-1"]).starts_with("--noise -1"));
        assert!(e(&["--step", "soon"]).starts_with("--step soon"));
        assert!(e(&["--colour", "red"]).contains("--colour"));
        assert!(e(&["--seed"]).contains("no value"));
    }
}
