//! `cost-aware`: the fewest replicas expected to meet a p95 latency SLO,
//! within a budget.
//!
//! Each replica is modelled as an M/M/k queue (`workers` concurrent
//! requests, `service-time` each; see `vedfolnir_core::queueing`). The
//! demand, from CPU (a fraction of the replicas' capacity, times the
//! replica count of each sample's time) or from a service total such as
//! `requests-per-second`, is planned for with `headroom` (15%): when the
//! mean over `scale-up.window` (2 minutes) needs more replicas, its mean
//! plus `scale-up.noise-margin` standard deviations (at once, near
//! saturation); otherwise the mean plus `scale-down.noise-margin` standard
//! deviations over `scale-down.stabilization` (25 minutes), so a scale-down
//! is sized to the demand's own noise. For each candidate count
//! the p95 is estimated; the smallest count whose estimate meets `slo.p95`
//! wins. Two corrections keep the model honest:
//!
//! - the observed p95 (`response-time-p95`, when routed) above the SLO while
//!   the model says the current count meets it adds one replica;
//! - `budget` (per hour, 0 = none) caps the count at `budget / price`, and
//!   the reasons say which SLO estimate that buys.
//!
//! The reasons state the trade-off: the chosen count, its estimated p95
//! and hourly cost, and what one replica fewer would give.
//!
//! Scores: `scale-up-score` is the replicas it wants to add, and
//! `scale-down-score` the replicas it wants to remove.

use vedfolnir_sdk::SLO_VIOLATION;
use vedfolnir_sdk::duration::Pretty;
use vedfolnir_sdk::prelude::*;
use vedfolnir_sdk::queueing::Queue;
use vedfolnir_sdk::tracking::{Calm, Kind, Spread, newest, recommend};

/// The policy.
pub struct CostAware;

vedfolnir_sdk::export_policy!(CostAware);

const MINUTE: u64 = 60_000;
const HOUR: u64 = 60 * MINUTE;
const WEEK: u64 = 7 * 24 * HOUR;

/// The share of the error budget kept in reserve: with this much left, the
/// headroom is `slo.budget.headroom`.
const BUDGET_RESERVE: f64 = 0.2;

/// The calm decision's windows and margins, with a 25-minute scale-down
/// window where target-tracking holds 30: a 30-minute hold costs the 15%
/// saving on noisy load (docs/policies.md, "Noisy web traffic").
fn calm_defaults() -> Calm {
    Calm {
        down_window: 25 * MINUTE,
        ..Calm::default()
    }
}

/// The effective configuration, read from parameters.
pub struct Config {
    metric: SignalId,
    kind: Kind,
    price: f64,
    budget: f64,
    slo: f64,
    queue: Queue,
    headroom: f64,
    /// The error budget: SLO-violation minutes per `budget_window` (0: off).
    budget_minutes: f64,
    budget_window: u64,
    /// The headroom planned for once [`BUDGET_RESERVE`] of the budget is
    /// left.
    budget_headroom: f64,
    margin: f64,
    staleness: u64,
    /// The windows and margins of a calm decision (`tracking::Calm`).
    calm: Calm,
}

impl Config {
    fn read(p: &mut Params) -> Config {
        let metric = p.signal("metric", "cpu");
        let total = p.boolean("metric.total", false);
        let positive = |p: &mut Params, key: &str, default: f64| {
            let v = p.number(key, default);
            if !(v > 0.0 && v.is_finite()) {
                p.error(key, format!("must be above 0, found {v}"));
            }
            v
        };
        let price = positive(p, "price", 0.05);
        let slo = positive(p, "slo.p95", 0.5);
        let service_time = positive(p, "service-time", 0.08);
        let workers = p.number("workers", 8.0);
        if !(1.0..=10_000.0).contains(&workers) || workers.fract() != 0.0 {
            p.error(
                "workers",
                format!("must be a whole number from 1 to 10000, found {workers}"),
            );
        }
        let budget = p.number("budget", 0.0);
        if budget.is_nan() || budget < 0.0 {
            p.error(
                "budget",
                format!("must be 0 (none) or above, found {budget}"),
            );
        }
        let headroom = p.number("headroom", 0.15);
        if !(0.0..=10.0).contains(&headroom) {
            p.error(
                "headroom",
                format!("must be from 0 to 10, found {headroom}"),
            );
        }
        if budget > 0.0 && price > 0.0 && budget < price {
            p.error(
                "budget",
                format!("{budget} per hour does not buy one replica at {price}"),
            );
        }
        let margin = p.number("scale-down.margin", 0.15);
        if !(0.0..=10.0).contains(&margin) {
            p.error(
                "scale-down.margin",
                format!("must be from 0 to 10, found {margin}"),
            );
        }
        let (budget_minutes, budget_window, budget_headroom) = read_budget(p);
        let calm = calm_defaults().read(p);
        let staleness = p.duration("staleness", MINUTE);
        if staleness == 0 {
            p.error("staleness", "must be longer than 0");
        }
        let workers = workers.clamp(1.0, 10_000.0) as u32;
        Config {
            metric,
            kind: Kind::from_total(total),
            price,
            budget,
            slo,
            queue: Queue {
                workers,
                service_rate: 1.0 / service_time.max(1e-9),
            },
            headroom,
            budget_minutes,
            budget_window,
            budget_headroom,
            margin,
            staleness,
            calm,
        }
    }

    fn hourly(&self, replicas: u32) -> f64 {
        f64::from(replicas) * self.price
    }
}

/// The error budget's parameters: minutes, window, headroom.
fn read_budget(p: &mut Params) -> (f64, u64, f64) {
    let budget_minutes = p.number("slo.budget", 30.0);
    if !(0.0..=10_080.0).contains(&budget_minutes) {
        p.error(
            "slo.budget",
            format!("must be from 0 (off) to 10080 minutes, found {budget_minutes}"),
        );
    }
    let budget_window = p.duration("slo.budget.window", WEEK);
    if budget_window < HOUR {
        p.error("slo.budget.window", "must be an hour or longer");
    }
    let budget_headroom = p.number("slo.budget.headroom", 0.25);
    if !(0.0..=10.0).contains(&budget_headroom) {
        p.error(
            "slo.budget.headroom",
            format!("must be from 0 to 10, found {budget_headroom}"),
        );
    }
    (budget_minutes, budget_window, budget_headroom)
}

impl Configured for CostAware {
    type Config = Config;

    fn describe() -> Description {
        Description {
            name: "cost-aware".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Keeps the fewest replicas whose estimated p95 latency (an M/M/k queue per replica) meets slo.p95, within budget / price, and states the cost of the choice against one replica fewer.".into(),
            signals: vec![
                SignalSpec::optional(SignalId::Cpu, "the default demand metric: the fraction of the replicas' capacity in use"),
                SignalSpec::optional(SignalId::InstanceCount, "the replica count behind each past sample"),
                SignalSpec::optional(SignalId::ResponseTimeP95, "the observed p95, to correct the model when it is optimistic"),
                SignalSpec::optional(SignalId::Custom(SLO_VIOLATION.into()), "1 while the SLO is violated, 0 while met: what the error budget counts"),
                SignalSpec::optional(SignalId::Custom("requests-per-second".into()), "a service total to use instead (metric = \"requests-per-second\", metric.total = true)"),
            ],
            params: vec![
                ParamSpec::number("price", 0.05, "cost of one replica for one hour"),
                ParamSpec::number("budget", 0.0, "most to spend per hour; 0 is no cap"),
                ParamSpec::number("slo.p95", 0.5, "p95 response time to meet, seconds"),
                ParamSpec::number("service-time", 0.08, "mean time one request takes, seconds"),
                ParamSpec::number("workers", 8.0, "requests one replica serves at once"),
                ParamSpec::number("headroom", 0.15, "plan for this much more demand than the demand level (0.15 = 15%); with an error budget, the headroom while none of it is known"),
                ParamSpec::number("slo.budget", 30.0, "the error budget: SLO-violation minutes allowed per slo.budget.window, counted on the slo-violation signal; the headroom grows from 0 as it is spent (0: off, a fixed headroom)"),
                ParamSpec::duration("slo.budget.window", WEEK, "the span the error budget is counted over (a rolling week)"),
                ParamSpec::number("slo.budget.headroom", 0.25, "the headroom planned for once four fifths of the budget are spent (twice this past that, until enough violations age out of the window)"),
                ParamSpec::text("metric", "cpu", "the demand signal"),
                ParamSpec::boolean("metric.total", false, "true: requests per second for the service; false: a fraction of each replica's capacity"),
                ParamSpec::number("scale-down.margin", 0.15, "scale down only to a count that meets the SLO with this much more demand again (hysteresis)"),
                ParamSpec::duration("staleness", MINUTE, "a metric whose newest sample is older than this is missing"),
            ]
            .into_iter()
            // A queue model, not a target: it reads the windows and margins,
            // and panics on saturation, not on a ratio.
            .chain(
                calm_defaults()
                    .specs()
                    .into_iter()
                    .filter(|s| {
                        ![
                            "panic.ratio",
                            "scale-up.tolerance",
                            "scale-up.noise-trigger",
                            "scale-up.min-rise",
                        ]
                        .contains(&s.key.as_str())
                    }),
            )
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

fn evaluate(config: &Config, input: &PolicyInput) -> Recommendation {
    let current = input.current_replicas;
    let mut reasons = Vec::new();
    if let Err(why) = newest(input, &config.metric, config.staleness) {
        let name = config.metric.name();
        reasons.push(Reason::new(format!("{name}-missing"), why));
        return recommend(current, current, reasons);
    }
    let samples = input
        .window(&config.metric)
        .map_or(&[][..], |w| w.samples.as_slice());
    let replicas: &[Sample] = input
        .window(&SignalId::InstanceCount)
        .map_or(&[], |w| w.samples.as_slice());
    let level = Levels::read(config, samples, replicas, input.now, current);
    let ceiling = input.max_replicas.max(1);
    let headroom = budgeted_headroom(config, input, &mut reasons);
    let (demand, rising) = plan(config, &level, headroom, (current, ceiling), &mut reasons);
    let mut n = slo_count(config, demand, current, ceiling, rising, &mut reasons);
    if n < current {
        n = scale_down_margin(config, demand, n, current, &mut reasons);
    }
    if let Some(more) = observed_p95_high(config, input, n, &mut reasons) {
        n = more;
    }
    if config.budget > 0.0 {
        n = budget_cap(config, demand, n, &mut reasons);
    }
    trade_off(config, demand, n, current, &mut reasons);
    recommend(current, n, reasons)
}

/// The headroom to plan with: `headroom` without an error budget (or
/// without the `slo-violation` signal to count it on); with one, from 0
/// while none of it is spent, growing with the share spent over the
/// budget's window to `slo.budget.headroom` once only [`BUDGET_RESERVE`]
/// of it is left. Cheap while the budget lasts, careful as it runs out.
fn budgeted_headroom(config: &Config, input: &PolicyInput, reasons: &mut Vec<Reason>) -> f64 {
    if config.budget_minutes <= 0.0 {
        return config.headroom;
    }
    // A pass that could not judge the SLO (no request to take a p95 of)
    // leaves its window missing now, but what was spent before stands.
    let window = input
        .window(&SignalId::Custom(SLO_VIOLATION.into()))
        .filter(|w| !w.samples.is_empty());
    let Some(window) = window else {
        reasons.push(Reason::new(
            "budget-unknown",
            format!(
                "no {SLO_VIOLATION} signal to count the error budget on: headroom {:.0}%",
                config.headroom * 100.0
            ),
        ));
        return config.headroom;
    };
    let from = input.now - config.budget_window as i64;
    let spent = violation_minutes(&window.samples, from, input.now);
    let share = spent / config.budget_minutes;
    // Into the reserve: twice the headroom, until enough of the window's
    // violations have aged out of it.
    let ramp = if share < 1.0 - BUDGET_RESERVE {
        share / (1.0 - BUDGET_RESERVE)
    } else {
        2.0
    };
    let headroom = config.budget_headroom * ramp;
    reasons.push(Reason {
        observed: Some(spent),
        threshold: Some(config.budget_minutes),
        ..Reason::new(
            "budget",
            format!(
                "{spent:.1} of {} SLO-violation minutes spent over the last {} ({:.0}%): headroom {:.0}%",
                config.budget_minutes,
                Pretty(config.budget_window),
                share * 100.0,
                headroom * 100.0
            ),
        )
    });
    headroom
}

/// Minutes in violation from `from` to `now`: each sample's value (the
/// share of its time in violation: 0 or 1, or a bucket's mean) over the
/// time to the next sample, the newest over at most as long as the gap
/// before it.
fn violation_minutes(samples: &[Sample], from: TimestampMs, now: TimestampMs) -> f64 {
    let kept: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= from && s.at <= now && s.value.is_finite())
        .collect();
    let mut ms = 0.0;
    for pair in kept.windows(2) {
        ms += pair[0].value.clamp(0.0, 1.0) * (pair[1].at - pair[0].at) as f64;
    }
    if let [.., before, last] = kept.as_slice() {
        let gap = (last.at - before.at).min(now - last.at).max(0);
        ms += last.value.clamp(0.0, 1.0) * gap as f64;
    }
    ms / MINUTE as f64
}

/// The model's p95 response time for `demand` requests a second over `n`
/// replicas (infinite for none).
fn p95_at(config: &Config, demand: f64, n: u32) -> f64 {
    if n == 0 {
        return f64::INFINITY;
    }
    config
        .queue
        .response_time_quantile(demand / f64::from(n), 0.95)
}

/// The demand to plan for, in requests per second with the headroom, and
/// whether demand is rising. It is decided on the mean over
/// `scale-up.window` (or the newest sample, a panic), sized for its noise;
/// a scale-down plans for the mean plus the noise margin over the
/// stabilisation window (`tracking::Calm`'s levels, through the model).
fn plan(
    config: &Config,
    level: &Levels,
    headroom: f64,
    (current, ceiling): (u32, u32),
    reasons: &mut Vec<Reason>,
) -> (f64, bool) {
    let meets = |demand: f64| {
        (1..=ceiling).find(|&n| p95_at(config, demand * (1.0 + headroom), n) <= config.slo)
    };
    let rising = meets(level.decide).is_none_or(|n| n > current) || level.panic;
    let (planned, basis) = if rising {
        (
            level.sized,
            format!(
                "rising: mean {:.1} req/s over {}, planned for {:.1}",
                level.decide,
                Pretty(config.calm.up_window),
                level.sized
            ),
        )
    } else {
        (
            level.hold,
            format!(
                "planned for {:.1} req/s: the mean plus {} standard deviations over {}",
                level.hold,
                config.calm.down_margin,
                Pretty(config.calm.down_window)
            ),
        )
    };
    let demand = planned * (1.0 + headroom);
    reasons.push(Reason {
        observed: Some(level.newest),
        ..Reason::new(
            "demand",
            format!(
                "demand {:.1} req/s now; {basis} (+{:.0}% headroom: {demand:.1}); one replica serves {:.1}",
                level.newest,
                headroom * 100.0,
                config.queue.capacity()
            ),
        )
    });
    (demand, rising)
}

/// The fewest replicas whose p95 meets the SLO (the maximum, said, when
/// none does); never fewer than now while rising, never more otherwise.
fn slo_count(
    config: &Config,
    demand: f64,
    current: u32,
    ceiling: u32,
    rising: bool,
    reasons: &mut Vec<Reason>,
) -> u32 {
    let reachable = (1..=ceiling).find(|&n| p95_at(config, demand, n) <= config.slo);
    if reachable.is_none() {
        reasons.push(Reason::new(
            "slo-unreachable",
            format!(
                "even the maximum {ceiling} replicas give an estimated p95 of {} against the SLO {:.3}s",
                seconds(p95_at(config, demand, ceiling)),
                config.slo
            ),
        ));
    }
    let n = reachable.unwrap_or(ceiling);
    if rising {
        n.max(current)
    } else {
        n.min(current)
    }
}

/// Hysteresis: shrink only to a count that would still meet the SLO with
/// `scale-down.margin` more demand, so a load hovering at a boundary does
/// not flap.
fn scale_down_margin(
    config: &Config,
    demand: f64,
    n: u32,
    current: u32,
    reasons: &mut Vec<Reason>,
) -> u32 {
    let strict = demand * (1.0 + config.margin);
    let safe = (n..current)
        .find(|&k| p95_at(config, strict, k) <= config.slo)
        .unwrap_or(current);
    if safe > n {
        reasons.push(Reason::new(
            "scale-down-margin",
            format!(
                "{n} would meet the SLO, but only {safe} meets it with {:.0}% more demand: {safe}",
                config.margin * 100.0
            ),
        ));
    }
    safe.max(n)
}

/// The model's estimate against what is observed: a fresh observed p95
/// above the SLO, where the model keeps or lowers the count, asks one more
/// replica than now.
fn observed_p95_high(
    config: &Config,
    input: &PolicyInput,
    n: u32,
    reasons: &mut Vec<Reason>,
) -> Option<u32> {
    let observed = input
        .window(&SignalId::ResponseTimeP95)
        .and_then(|w| w.samples.last())
        .filter(|s| s.value.is_finite() && input.now - s.at <= config.staleness as i64)
        .map(|s| s.value)?;
    if observed <= config.slo || n > input.current_replicas {
        return None;
    }
    reasons.push(Reason {
        observed: Some(observed),
        threshold: Some(config.slo),
        ..Reason::new(
            "observed-p95-high",
            format!(
                "observed p95 {observed:.3}s is above the SLO although the model expects it met: one more replica"
            ),
        )
    });
    Some(input.current_replicas + 1)
}

/// At most what `budget` buys at `price`, saying what the SLO needed.
fn budget_cap(config: &Config, demand: f64, n: u32, reasons: &mut Vec<Reason>) -> u32 {
    let affordable = (config.budget / config.price + 1e-9).floor() as u32;
    if n <= affordable {
        return n;
    }
    reasons.push(Reason {
        observed: Some(config.hourly(n)),
        threshold: Some(config.budget),
        ..Reason::new(
            "budget-cap",
            format!(
                "the SLO needs {n} replicas ({:.2}/h) but the budget {:.2}/h buys {affordable}: estimated p95 {} (SLO at risk)",
                config.hourly(n),
                config.budget,
                seconds(p95_at(config, demand, affordable))
            ),
        )
    });
    affordable
}

/// The choice's cost and p95 against one replica fewer, and what a
/// scale-down saves.
fn trade_off(config: &Config, demand: f64, n: u32, current: u32, reasons: &mut Vec<Reason>) {
    let p95 = |n: u32| p95_at(config, demand, n);
    let fewer = n.saturating_sub(1);
    let trade = if fewer == 0 {
        String::new()
    } else {
        format!(
            "; {fewer} would cost {:.2}/h with p95 {}",
            config.hourly(fewer),
            seconds(p95(fewer))
        )
    };
    reasons.push(Reason {
        observed: Some(p95(n)),
        threshold: Some(config.slo),
        ..Reason::new(
            "trade-off",
            format!(
                "{n} replicas: estimated p95 {} (SLO {:.3}s), {:.2}/h{trade}",
                seconds(p95(n)),
                config.slo,
                config.hourly(n)
            ),
        )
    });
    if n < current {
        reasons.push(Reason::new(
            "saving",
            format!(
                "{} fewer replicas save {:.2}/h",
                current - n,
                config.hourly(current - n)
            ),
        ));
    }
}

/// The share of the replicas' capacity in use past which the newest sample
/// is planned for at once, not the mean: a saturated CPU hides how much
/// more is asked.
const SATURATED: f64 = 0.9;

/// The demand levels of one evaluation, requests per second.
struct Levels {
    /// The newest sample's.
    newest: f64,
    /// What decides a scale-up: the mean over `scale-up.window`.
    decide: f64,
    /// What a scale-up plans for: that mean plus `scale-up.noise-margin`
    /// standard deviations, or the newest sample, whichever is higher.
    sized: f64,
    /// What a scale-down must still carry: the mean plus
    /// `scale-down.noise-margin` standard deviations over the
    /// stabilisation window.
    hold: f64,
    /// The newest sample uses [`SATURATED`] of the replicas' capacity.
    panic: bool,
}

impl Levels {
    fn read(
        config: &Config,
        samples: &[Sample],
        replicas: &[Sample],
        now: TimestampMs,
        current: u32,
    ) -> Levels {
        let capacity = config.queue.capacity();
        // Requests per second: a total is one already; an average is the
        // fraction of the replicas' capacity in use.
        let demand_at = |s: &Sample| match config.kind {
            Kind::Total => s.value,
            Kind::Average => Kind::Average.total_at(s, replicas, current) * capacity,
        };
        let over = |window: u64| {
            let from = now - window as i64;
            Spread::of(
                samples
                    .iter()
                    .filter(|s| s.at >= from && s.at <= now && s.value.is_finite())
                    .map(demand_at),
            )
        };
        let newest = samples
            .iter()
            .rev()
            .find(|s| s.value.is_finite())
            .map_or(0.0, demand_at);
        let calm = &config.calm;
        let recent = over(calm.up_window).unwrap_or(Spread {
            mean: newest,
            sd: 0.0,
            count: 1,
        });
        let held = over(calm.down_window).unwrap_or(recent);
        // Near saturation (a CPU reads at most the replicas' capacity, so
        // the demand behind it is unknown): plan for the newest sample now.
        let panic = newest >= SATURATED * f64::from(current.max(1)) * capacity;
        let decide = if calm.up_window == 0 || panic {
            newest
        } else {
            recent.mean
        };
        Levels {
            newest,
            decide,
            sized: recent.upper(calm.up_margin).max(newest).max(decide),
            hold: held.upper(calm.down_margin),
            panic,
        }
    }
}

fn seconds(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.3}s")
    } else {
        "unbounded (overloaded)".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_scenarios_pass_and_the_defaults_validate() {
        vedfolnir_sdk::testing::check_policy::<CostAware>(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scenarios.toml"
        ));
    }

    #[test]
    fn bad_values_are_reported_by_key() {
        let keys = vedfolnir_sdk::testing::rejected_keys::<CostAware>(&[
            ("price", ParamValue::Number(-1.0)),
            ("workers", ParamValue::Number(2.5)),
            ("slo.p95", ParamValue::Number(0.0)),
            ("slo.budget", ParamValue::Number(-5.0)),
            ("slo.budget.window", ParamValue::Duration(MINUTE)),
        ]);
        assert_eq!(
            keys,
            [
                "price",
                "slo.budget",
                "slo.budget.window",
                "slo.p95",
                "workers"
            ]
        );
    }

    /// An idle pass cannot judge the SLO (no request, no p95): the signal
    /// is missing now, and the minutes spent before still count.
    #[test]
    fn a_budget_spent_before_a_pass_that_could_not_judge_the_slo_still_counts() {
        let now = 7 * 24 * 60 * MINUTE as i64;
        let window = SignalWindow {
            signal: SignalId::Custom(SLO_VIOLATION.into()),
            samples: (0..10)
                .map(|k| Sample {
                    at: now - (10 - k) * MINUTE as i64,
                    value: 1.0,
                })
                .collect(),
            missing_reason: Some("the SLO cannot be judged".into()),
        };
        let input = PolicyInput {
            service: "web".into(),
            now,
            current_replicas: 4,
            ready_replicas: 4,
            min_replicas: 1,
            max_replicas: 20,
            since_last_scale_up: None,
            since_last_scale_down: None,
            params: Vec::new(),
            signals: vec![window],
        };
        let config = Config::read(&mut Params::new(&[]));
        let mut reasons = Vec::new();
        budgeted_headroom(&config, &input, &mut reasons);
        let budget = reasons.iter().find(|r| r.trigger == "budget");
        assert!(
            budget.is_some_and(|r| r.observed.is_some_and(|m| m >= 9.0)),
            "{reasons:?}"
        );
    }

    #[test]
    fn violation_minutes_weigh_each_sample_by_its_time_to_the_next() {
        let at = |min: i64, value: f64| Sample {
            at: min * MINUTE as i64,
            value,
        };
        // A 15-minute bucket a third in violation, then a minute a sample:
        // two violating, the newest (not yet lasted) counted to now only.
        let samples = [
            at(0, 1.0 / 3.0),
            at(15, 0.0),
            at(16, 1.0),
            at(17, 1.0),
            at(18, 0.0),
            at(19, 1.0),
        ];
        let now = 19 * MINUTE as i64 + 30_000;
        let minutes = violation_minutes(&samples, 0, now);
        assert!((minutes - (5.0 + 2.0 + 0.5)).abs() < 1e-9, "{minutes}");
        // Only what lies in the window counts, and no sample is more than 1.
        let samples = [at(0, 1.0), at(10, 7.0), at(11, f64::NAN), at(12, 0.0)];
        let minutes = violation_minutes(&samples, 5 * MINUTE as i64, 12 * MINUTE as i64);
        assert!((minutes - 2.0).abs() < 1e-9, "{minutes}");
    }

    #[test]
    fn a_budget_smaller_than_one_replica_is_refused() {
        let params = vec![Param {
            key: "budget".into(),
            value: ParamValue::Number(0.01),
        }];
        let errors = CostAware::validate_config(&params).unwrap_err();
        assert_eq!(errors[0].key, "budget");
    }
}
