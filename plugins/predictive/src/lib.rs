//! `predictive`: forecast the load and scale out ahead of it; scale in
//! reactively, as AWS predictive scaling does.
//!
//! The load is the service's demand, in the metric's units: a per-replica
//! average (CPU, the default) times the replica count of each sample's time
//! (`instance-count`), or a service total (`metric.total = true`, for
//! example `requests-per-second`). One replica should carry `target`.
//!
//! ```text
//!   history >= 2 seasons (2 days)  -> Holt-Winters, additive, daily season,
//!                                     on `bucket` means (15 minutes)
//!   history >= trend.window (30m)  -> a least-squares linear trend
//!   less                           -> reactive only, and the reasons say so
//! ```
//!
//! The forecast looks `startup` ahead (the time a new replica takes to
//! serve) and only ever raises the count, once past the reactive part's up
//! band: the result is the larger of the forecast's count and the reactive
//! one. The reactive part is target tracking that does not follow noise
//! (`tracking::Calm`, as in target-tracking); it alone scales in, and never
//! below what the forecast needs. Where a seasonal forecast sees less
//! demand ahead, that scale-in is judged on the last `forecast.fall-window`
//! (8 minutes) instead of the whole stabilisation window: a falling day is
//! followed down without the window's lag. A seasonal forecast that ran
//! above the demand over the last `forecast.correction` (30m) is lowered by
//! its mean error there, never raised.
//!
//! A policy keeps nothing between evaluations, so the model is fitted anew
//! from the window each time (a few hundred buckets: microseconds).

use vedfolnir_sdk::duration::{Elapsed, Pretty};
use vedfolnir_sdk::prelude::*;
use vedfolnir_sdk::tracking::{Calm, Decided, Kind, Tracker, newest, recommend};

/// The policy.
pub struct Predictive;

vedfolnir_sdk::export_policy!(Predictive);

const MINUTE: u64 = 60_000;
const HOUR: u64 = 60 * MINUTE;

/// The effective configuration, read from parameters.
pub struct Config {
    metric: SignalId,
    tracker: Tracker,
    /// The reactive part: target tracking that does not follow noise.
    calm: Calm,
    startup: u64,
    history: u64,
    season: u64,
    bucket: u64,
    trend_window: u64,
    alpha: f64,
    beta: f64,
    gamma: f64,
    /// `forecast.correction`, ms (0: off).
    correction: u64,
    /// `forecast.fall-window`, ms (0: off).
    fall_window: u64,
    error_window: u64,
    max_error: f64,
    staleness: u64,
}

impl Config {
    fn read(p: &mut Params) -> Config {
        let metric = p.signal("metric", "cpu");
        let total = p.boolean("metric.total", false);
        let target = p.number("target", 0.6);
        if !(target.is_finite() && target > 0.0) {
            p.error("target", format!("must be above 0, found {target}"));
        }
        let tolerance = p.number("tolerance", 0.1);
        if !(0.0..1.0).contains(&tolerance) {
            p.error(
                "tolerance",
                format!("must be from 0 to below 1, found {tolerance}"),
            );
        }
        let calm = Calm::default().read(p);
        let startup = p.duration("startup", MINUTE);
        let history = p.duration("history", 72 * HOUR);
        let season = p.duration("season", 24 * HOUR);
        let bucket = p.duration("bucket", 15 * MINUTE);
        let trend_window = p.duration("trend.window", 30 * MINUTE);
        let correction = p.duration("forecast.correction", 30 * MINUTE);
        let fall_window = p.duration("forecast.fall-window", 8 * MINUTE);
        let error_window = p.duration("forecast.error-window", 3 * HOUR);
        if error_window == 0 {
            p.error("forecast.error-window", "must be longer than 0");
        }
        let max_error = p.number("forecast.max-error", 0.15);
        if !(max_error.is_finite() && max_error > 0.0) {
            p.error(
                "forecast.max-error",
                format!("must be above 0, found {max_error}"),
            );
        }
        let staleness = p.duration("staleness", MINUTE);
        check_periods(p, [season, bucket, trend_window, staleness, history]);
        let fraction = |p: &mut Params, key: &str, default: f64| {
            let v = p.number(key, default);
            if !(v > 0.0 && v < 1.0) {
                p.error(key, format!("must be between 0 and 1, found {v}"));
            }
            v
        };
        let alpha = fraction(p, "smoothing.level", 0.5);
        let beta = fraction(p, "smoothing.trend", 0.05);
        let gamma = fraction(p, "smoothing.season", 0.3);
        Config {
            metric,
            tracker: Tracker {
                kind: Kind::from_total(total),
                target,
                tolerance,
            },
            calm,
            startup,
            history,
            season,
            bucket,
            trend_window,
            alpha,
            beta,
            gamma,
            correction,
            fall_window,
            error_window,
            max_error,
            staleness,
        }
    }
}

/// The periods must be longer than 0, the season a whole number of at
/// least two buckets, and the history at least two seasons.
fn check_periods(p: &mut Params, [season, bucket, trend_window, staleness, history]: [u64; 5]) {
    for (key, value) in [
        ("season", season),
        ("bucket", bucket),
        ("trend.window", trend_window),
        ("staleness", staleness),
    ] {
        if value == 0 {
            p.error(key, "must be longer than 0");
        }
    }
    if bucket > 0 && season > 0 {
        if !season.is_multiple_of(bucket) {
            p.error(
                "season",
                format!(
                    "must be a whole number of buckets ({}), found {}",
                    Pretty(bucket),
                    Pretty(season)
                ),
            );
        } else if season / bucket < 2 {
            p.error("bucket", "must be at most half the season");
        }
    }
    if history < 2 * season {
        p.error(
            "history",
            format!(
                "must cover at least two seasons ({}) for the seasonal forecast, found {}",
                Pretty(2 * season),
                Pretty(history)
            ),
        );
    }
}

impl Configured for Predictive {
    type Config = Config;

    fn describe() -> Description {
        Description {
            name: "predictive".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Forecasts the demand (Holt-Winters with a daily season when two days of history exist, a linear trend otherwise) and scales out the replica start-up time ahead of it; only the reactive target tracking scales in.".into(),
            signals: vec![
                SignalSpec::optional(SignalId::Cpu, "the default metric, a per-replica average"),
                SignalSpec::optional(SignalId::InstanceCount, "turns a per-replica average into the service's demand"),
                SignalSpec::optional(SignalId::Custom("requests-per-second".into()), "a service total to use instead (metric = \"requests-per-second\", metric.total = true)"),
            ],
            params: vec![
                ParamSpec::text("metric", "cpu", "the signal whose demand is forecast"),
                ParamSpec::boolean("metric.total", false, "true: the metric is a service total; false: a per-replica average"),
                ParamSpec::number("target", 0.6, "what one replica should carry, in the metric's unit"),
                ParamSpec::number("tolerance", 0.1, "no reactive change while value / target is within this of 1"),
                ParamSpec::duration("startup", MINUTE, "how long a new replica takes to serve: how far ahead to forecast"),
                ParamSpec::duration("history", 72 * HOUR, "how much history to ask the host for (at least two seasons)"),
                ParamSpec::duration("season", 24 * HOUR, "the seasonal period"),
                ParamSpec::duration("bucket", 15 * MINUTE, "the forecast's time step: history is averaged into buckets this long"),
                ParamSpec::duration("trend.window", 30 * MINUTE, "history the linear trend is fitted on, and the least history to forecast at all"),
                ParamSpec::number("smoothing.level", 0.5, "Holt-Winters alpha (0-1)"),
                ParamSpec::number("smoothing.trend", 0.05, "Holt-Winters beta (0-1)"),
                ParamSpec::number("smoothing.season", 0.3, "Holt-Winters gamma (0-1)"),
                ParamSpec::duration("forecast.correction", 30 * MINUTE, "a seasonal forecast that ran above the demand over this much recent history is lowered by its mean error there, never raised (0: off)"),
                ParamSpec::duration("forecast.fall-window", 8 * MINUTE, "where a seasonal forecast expects less demand ahead, the scale-in is judged on this much recent demand instead of scale-down.stabilization, never below the forecast (0: off)"),
                ParamSpec::duration("forecast.error-window", 3 * HOUR, "the recent history a seasonal forecast's error is measured over (its one-step-ahead bucket forecasts against the buckets)"),
                ParamSpec::number("forecast.max-error", 0.15, "forecast.fall-window is used only while that error (root mean square, relative) is at most this; above it, the reactive window alone scales in"),
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

/// What the forecast says the service needs.
enum Forecast {
    /// Replicas needed by the peak forecast within the lead time.
    Needs {
        replicas: u32,
        demand: f64,
        /// The peak up to a stabilisation window further ahead: what a
        /// scale-in must still carry.
        hold_demand: f64,
        method: String,
        /// A seasonal forecast's recent relative error (none for a trend
        /// line, or with no demand to judge it on).
        error: Option<f64>,
        /// Whether the forecast expects less demand at the end of the hold
        /// than in the bucket in progress: the day is falling.
        falling: bool,
    },
    /// Too little history: reactive only.
    Unavailable(String),
}

fn evaluate(config: &Config, input: &PolicyInput) -> Recommendation {
    let current = input.current_replicas;
    let name = config.metric.name().to_string();
    let replicas: &[Sample] = input
        .window(&SignalId::InstanceCount)
        .map_or(&[], |w| w.samples.as_slice());
    let samples = input
        .window(&config.metric)
        .map_or(&[][..], |w| w.samples.as_slice());
    let mut reasons = Vec::new();
    let newest = match newest(input, &config.metric, config.staleness) {
        Ok(v) => v,
        Err(why) => {
            reasons.push(Reason::new(format!("{name}-missing"), why));
            return recommend(current, current, reasons);
        }
    };

    let windows = (samples, replicas);
    let decided = reactive(config, input, windows, newest, &mut reasons);
    let reactive = decided.want;

    // Predictive: only ever raises the count.
    let demand = demand_series(config, samples, replicas, current);
    let desired = match forecast(config, &demand, input.now) {
        Forecast::Needs {
            replicas: needed,
            demand: peak,
            hold_demand,
            method,
            error,
            falling,
        } => {
            let reactive = forecast_falls(
                config,
                input,
                (windows, newest),
                (hold_demand, error, falling),
                &decided,
                &mut reasons,
            );
            reasons.push(Reason {
                observed: Some(peak),
                threshold: Some(config.tracker.target),
                ..Reason::new(
                    "forecast",
                    format!(
                        "{method}: demand peaks at {peak:.2} from {} ago to {} ahead (start-up): needs {needed}",
                        Pretty(config.calm.down_window),
                        Pretty(config.startup)
                    ),
                )
            });
            let desired = forecast_raises(
                config,
                current,
                reactive,
                needed,
                &decided,
                hold_demand,
                &mut reasons,
            );
            forecast_holds(config, current, desired, hold_demand, &mut reasons)
        }
        Forecast::Unavailable(why) => {
            reasons.push(Reason::new(
                "forecast-unavailable",
                format!("{why}: reactive only"),
            ));
            reactive
        }
    };
    recommend(current, desired, reasons)
}

/// The reactive part: target tracking that does not follow the noise
/// ([`Calm::decide`]), with its reasons.
fn reactive(
    config: &Config,
    input: &PolicyInput,
    windows: (&[Sample], &[Sample]),
    newest: f64,
    reasons: &mut Vec<Reason>,
) -> Decided {
    let name = config.metric.name();
    let current = input.current_replicas;
    let decided = config
        .calm
        .decide(&config.tracker, windows, input.now, current, newest);
    let count = decided.want;
    reasons.push(Reason {
        observed: Some(newest),
        threshold: Some(config.tracker.target),
        ..Reason::new(
            "reactive",
            format!(
                "{name} {newest:.3} against target {:.3}; {}: reactive count {count}",
                config.tracker.target, decided.basis
            ),
        )
    });
    if let Some(hpa) = decided.held_down {
        reasons.push(Reason::new(
            "scale-down-stabilized",
            config.calm.held_down_message(hpa, count),
        ));
    }
    decided
}

/// Where a seasonal forecast (`error`: its recent error; none for a trend
/// line or with nothing to judge it on) has been right and expects less demand ahead, the reactive
/// scale-in is judged on the shorter `forecast.fall-window` (8 minutes),
/// never below what the forecast for the hold needs with the tolerance:
/// a falling day is followed down without the whole stabilisation window's
/// lag, which the forecast makes up for.
fn forecast_falls(
    config: &Config,
    input: &PolicyInput,
    (windows, newest): ((&[Sample], &[Sample]), f64),
    (hold_demand, error, falling): (f64, Option<f64>, bool),
    decided: &Decided,
    reasons: &mut Vec<Reason>,
) -> u32 {
    let current = input.current_replicas;
    let Some(error) = error else {
        return decided.want;
    };
    if error > config.max_error {
        reasons.push(Reason {
            observed: Some(error),
            threshold: Some(config.max_error),
            ..Reason::new(
                "forecast-poor",
                format!(
                    "the forecast was off by {:.0}% over the last {} (more than {:.0}%): only the {} window scales in",
                    error * 100.0,
                    Pretty(config.error_window),
                    config.max_error * 100.0,
                    Pretty(config.calm.down_window)
                ),
            )
        });
        return decided.want;
    }
    // A rising or level day is not followed down faster: a burst's
    // scale-up there is not taken back the moment the burst ends.
    if !falling || config.fall_window == 0 || config.fall_window >= config.calm.down_window {
        return decided.want;
    }
    let fast = Calm {
        down_window: config.fall_window,
        ..config.calm
    }
    .decide(&config.tracker, windows, input.now, current, newest);
    let floor = replicas_for(config, hold_demand * (1.0 + config.tracker.tolerance));
    let to = fast.want.max(floor);
    if to >= decided.want || to >= current {
        return decided.want;
    }
    reasons.push(Reason::new(
        "forecast-falls",
        format!(
            "the forecast for the next {} needs {floor}: the scale-in is judged on the last {} ({}): {to}",
            Pretty(config.startup + config.calm.down_window.max(config.bucket)),
            Pretty(config.fall_window),
            fast.basis
        ),
    ));
    to
}

/// The count the forecast raises the reactive one to, when it needs more
/// than the reactive count and past `scale-up.tolerance` (a forecast is a
/// steady rise: like a reactive one without bursts, it waits until then).
/// Sized like any scale-up: for the recent demand and its noise too, so
/// the raise is not followed by another.
fn forecast_raises(
    config: &Config,
    current: u32,
    reactive: u32,
    needed: u32,
    decided: &Decided,
    hold_demand: f64,
    reasons: &mut Vec<Reason>,
) -> u32 {
    let past_band = f64::from(needed)
        > (f64::from(current) * (1.0 + config.calm.up_tolerance)).max(f64::from(current) + 1.0);
    if needed <= reactive || !past_band {
        return reactive;
    }
    let to = needed
        .max(decided.sized_up)
        .max(replicas_for(config, hold_demand));
    reasons.push(Reason::new(
        "forecast-raises",
        format!(
            "the forecast needs {needed}: the count rises from {reactive} to {to} (the recent demand and its noise need {})",
            decided.sized_up
        ),
    ));
    to
}

/// Hysteresis: scale in only to a count that carries the forecast with the
/// tolerance to spare, so a forecast hovering at a replica boundary does
/// not flap.
fn forecast_holds(
    config: &Config,
    current: u32,
    desired: u32,
    hold_demand: f64,
    reasons: &mut Vec<Reason>,
) -> u32 {
    if desired >= current {
        return desired;
    }
    let keep = replicas_for(config, hold_demand * (1.0 + config.tracker.tolerance));
    if keep <= desired {
        return desired;
    }
    let to = keep.min(current);
    reasons.push(Reason::new(
        "forecast-holds",
        format!(
            "scale in only to {to}: the forecast for the next {} plus {:.0}% needs {keep}",
            Pretty(config.startup + config.calm.down_window.max(config.bucket)),
            config.tracker.tolerance * 100.0
        ),
    ));
    to
}

/// The demand at each sample: the value times the replica count of its
/// time for an average, the value itself for a total. Non-finite samples
/// are dropped (no observation, never zero).
fn demand_series(
    config: &Config,
    samples: &[Sample],
    replicas: &[Sample],
    current: u32,
) -> Vec<Sample> {
    config
        .tracker
        .kind
        .totals(samples, replicas, current)
        .filter(|(s, _)| s.value.is_finite())
        .map(|(s, value)| Sample { at: s.at, value })
        .collect()
}

/// Replicas needed to carry `demand` at the target.
fn replicas_for(config: &Config, demand: f64) -> u32 {
    (demand / config.tracker.target - 1e-9).ceil().max(0.0) as u32
}

fn forecast(config: &Config, demand: &[Sample], now: TimestampMs) -> Forecast {
    let lead_end = now + config.startup as i64;
    // A scale-in must also carry the next bucket's forecast (a forecast
    // rises in steps of one bucket), and the stabilisation window's.
    let hold_end = lead_end + config.calm.down_window.max(config.bucket) as i64;
    if let Some((mut series, last_end)) = buckets(config, demand, now) {
        // A fixed length: the window's oldest bucket is often partial, and
        // a fit on one bucket more or less (or one whole season more or
        // less) would forecast differently from one evaluation to the next.
        let most = (config.history / config.bucket).saturating_sub(1) as usize;
        if series.len() > most {
            series.drain(..series.len() - most);
        }
        let m = (config.season / config.bucket) as usize;
        if series.len() >= 2 * m {
            let since = now - config.calm.down_window as i64;
            let fit = holt_winters(config, &series, m, last_end, since, (lead_end, hold_end));
            return Forecast::Needs {
                replicas: replicas_for(config, fit.peak),
                demand: fit.peak,
                hold_demand: fit.hold,
                error: fit.error,
                falling: fit.falling,
                method: seasonal_method(config, series.len(), &fit),
            };
        }
    }
    let from = now - config.trend_window as i64;
    let recent: Vec<&Sample> = demand.iter().filter(|s| s.at >= from).collect();
    let span = match (recent.first(), recent.last()) {
        (Some(a), Some(b)) => (b.at - a.at) as u64,
        _ => 0,
    };
    // Three quarters of the window is enough to fit a line on.
    if recent.len() < 3 || span < config.trend_window * 3 / 4 {
        return Forecast::Unavailable(format!(
            "too little history for a forecast ({} of the {} a trend needs)",
            Elapsed(span),
            Pretty(config.trend_window)
        ));
    }
    let n = recent.len() as f64;
    let t0 = recent[0].at;
    let xs = recent.iter().map(|s| (s.at - t0) as f64 / 1000.0);
    let mean_x = xs.clone().sum::<f64>() / n;
    let mean_y = recent.iter().map(|s| s.value).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (x, s) in xs.zip(&recent) {
        sxy += (x - mean_x) * (s.value - mean_y);
        sxx += (x - mean_x) * (x - mean_x);
    }
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let line = |t: i64| (mean_y + slope * ((t - t0) as f64 / 1000.0 - mean_x)).max(0.0);
    let peak = line(lead_end);
    Forecast::Needs {
        replicas: replicas_for(config, peak),
        demand: peak,
        hold_demand: peak.max(line(hold_end)),
        error: None,
        falling: slope < 0.0,
        method: format!(
            "linear trend over {} ({:+.4}/min; less than two seasons of history)",
            Pretty(config.trend_window),
            slope * 60.0
        ),
    }
}

/// How a seasonal fit on `buckets` buckets is described in its reason: the
/// history, its error and its lowering.
fn seasonal_method(config: &Config, buckets: usize, fit: &Fit) -> String {
    let error = fit.error.map_or(String::new(), |e| {
        format!(
            ", off by {:.0}% over the last {}",
            e * 100.0,
            Pretty(config.error_window)
        )
    });
    let lowered = if fit.lowered > 0.0 {
        format!(
            ", lowered by {:.2}: it ran above the demand over the last {}",
            fit.lowered,
            Pretty(config.correction)
        )
    } else {
        String::new()
    };
    format!(
        "Holt-Winters on {} of history (season {}{error}){lowered}",
        Pretty(buckets as u64 * config.bucket),
        Pretty(config.season)
    )
}

/// The demand as bucket means, oldest first, ending with the last bucket
/// complete at `now`, and that bucket's end. Gaps of up to four buckets are
/// filled by linear interpolation; before a longer gap, history is cut.
fn buckets(config: &Config, demand: &[Sample], now: TimestampMs) -> Option<(Vec<f64>, i64)> {
    let b = config.bucket as i64;
    let last = now.div_euclid(b) - 1; // the newest complete bucket
    let first = demand.first()?.at.div_euclid(b);
    if last < first {
        return None;
    }
    let n = (last - first + 1) as usize;
    let mut sum = vec![0.0; n];
    let mut count = vec![0u32; n];
    for s in demand {
        let i = s.at.div_euclid(b) - first;
        if (0..n as i64).contains(&i) {
            sum[i as usize] += s.value;
            count[i as usize] += 1;
        }
    }
    let mut series: Vec<Option<f64>> = sum
        .iter()
        .zip(&count)
        .map(|(s, &c)| (c > 0).then(|| s / f64::from(c)))
        .collect();
    // Cut before the last long gap, then interpolate the short ones.
    let mut start = 0;
    let mut run = 0;
    for (i, v) in series.iter().enumerate() {
        if v.is_none() {
            run += 1;
            if run > 4 {
                start = i + 1;
            }
        } else {
            run = 0;
        }
    }
    series.drain(..start.min(series.len()));
    while series.first().is_some_and(Option::is_none) {
        series.remove(0);
    }
    if series.last().is_none_or(Option::is_none) {
        return None;
    }
    let mut filled = Vec::with_capacity(series.len());
    let mut i = 0;
    while i < series.len() {
        match series[i] {
            Some(v) => {
                filled.push(v);
                i += 1;
            }
            None => {
                let before = *filled.last().expect("the series starts with a value");
                let j = (i..series.len())
                    .find(|&j| series[j].is_some())
                    .expect("the series ends with a value");
                let after = series[j].expect("found above");
                let steps = (j - i + 1) as f64;
                for k in 1..=(j - i) {
                    filled.push(before + (after - before) * k as f64 / steps);
                }
                i = j;
            }
        }
    }
    Some((filled, (last + 1) * b))
}

/// The mean of `values`.
fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// The average seasonal profile of `series` (season `m`), by phase: each
/// whole season's deviations from its mean.
fn average_profile(series: &[f64], m: usize, phase: impl Fn(usize) -> usize) -> Vec<f64> {
    let mut season = vec![0.0; m];
    let mut counts = vec![0u32; m];
    for block in 0..series.len() / m {
        let slice = &series[block * m..(block + 1) * m];
        let mu = mean(slice);
        for (k, x) in slice.iter().enumerate() {
            season[phase(block * m + k)] += x - mu;
            counts[phase(block * m + k)] += 1;
        }
    }
    for (s, c) in season.iter_mut().zip(&counts) {
        *s /= f64::from((*c).max(1));
    }
    season
}

/// What [`holt_winters`] forecasts.
struct Fit {
    /// The demand to carry up to the lead time.
    peak: f64,
    /// The same up to the end of the hold, for scale-in.
    hold: f64,
    /// How much both were lowered by `forecast.correction` (0 or more).
    lowered: f64,
    /// The root mean square of the one-step-ahead forecasts' relative
    /// error over the last `forecast.error-window` (none when no bucket
    /// there had demand to be relative to).
    error: Option<f64>,
    /// The forecast for the bucket that ends the hold is below the one for
    /// the bucket in progress.
    falling: bool,
}

/// Additive Holt-Winters fitted on `series` (season `m` buckets). The
/// floor it sets is the highest of: the forecasts for the buckets covering
/// `[now, lead_end]`, and the one-step-ahead forecasts the fit made for the
/// buckets covering `[since, now)`, so the floor does not drop the moment
/// a bucket ends (the forecast's own stabilisation). The hold is the same
/// up to `hold_end`, for scale-in.
///
/// Where the one-step-ahead forecasts of the last `forecast.correction`
/// ran above the demand on average, every forecast is lowered by that mean
/// error (a bias correction; never raised, as the reactive part carries a
/// demand above the forecast). A season learnt on busier days (weekdays
/// before a weekend, a day with a burst) then does not hold replicas the
/// day in progress does not need: the level alone adapts only partly
/// within a bucket or two, and the seasonal rise ahead stays the busier
/// days'.
///
/// The seasonal terms are indexed by the bucket's phase in the season of
/// the clock (not of the window), and start from the average profile of
/// every whole season in the window. A policy refits on every evaluation
/// from a window that slides; started from the window's first season alone
/// (the textbook start) the fit, and the forecast, jumped each time the
/// window moved by a bucket.
fn holt_winters(
    config: &Config,
    series: &[f64],
    m: usize,
    last_end: i64,
    since: TimestampMs,
    (lead_end, hold_end): (TimestampMs, TimestampMs),
) -> Fit {
    let (a, b, g) = (config.alpha, config.beta, config.gamma);
    let n = series.len();
    let bucket = config.bucket as i64;
    let first_abs = last_end.div_euclid(bucket) - n as i64;
    let phase = |t: usize| (first_abs + t as i64).rem_euclid(m as i64) as usize;
    let mut season = average_profile(series, m, phase);
    let mut level = mean(&series[..m]);
    let mut trend = (mean(&series[m..2 * m]) - level) / m as f64;
    // Buckets at or after this index are within the stabilisation window.
    let recent_from = n as i64 - (last_end - since).div_euclid(bucket) - 1;
    // Buckets at or after this index are within the correction's span.
    let correct_from = n - config.correction.div_ceil(config.bucket).min(n as u64) as usize;
    let mut floor: f64 = 0.0;
    let (mut error, mut errors) = (0.0, 0u32);
    // Buckets at or after this index are within the error's span.
    let judged_from = n - config.error_window.div_ceil(config.bucket).min(n as u64) as usize;
    let (mut squares, mut judged) = (0.0, 0u32);
    for (t, &x) in series.iter().enumerate().skip(m) {
        let p = phase(t);
        let s = season[p];
        let ahead = level + trend + s;
        if t as i64 >= recent_from {
            floor = floor.max(ahead);
        }
        if t >= correct_from {
            error += x - ahead;
            errors += 1;
        }
        if t >= judged_from && x > 0.0 {
            squares += ((ahead - x) / x).powi(2);
            judged += 1;
        }
        let prev = level;
        level = a * (x - s) + (1.0 - a) * (level + trend);
        trend = b * (level - prev) + (1.0 - b) * trend;
        season[p] = g * (x - level) + (1.0 - g) * s;
    }
    let lowered = if errors > 0 {
        (-error / f64::from(errors)).max(0.0)
    } else {
        0.0
    };
    // Bucket h (1-based) after the last complete one covers
    // [last_end + (h-1)b, last_end + h b).
    let ahead = |h: usize| level + h as f64 * trend + season[phase(n + h - 1)];
    let last_bucket = |end: i64| ((end - last_end).div_euclid(bucket) + 1).max(1) as usize;
    let peak_to = |end: i64| {
        let peak = (1..=last_bucket(end)).map(ahead).fold(floor, f64::max);
        (peak - lowered).max(0.0)
    };
    Fit {
        peak: peak_to(lead_end),
        hold: peak_to(hold_end),
        falling: ahead(last_bucket(hold_end)) < ahead(1),
        lowered,
        error: (judged > 0).then(|| (squares / f64::from(judged)).sqrt()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_scenarios_pass_and_the_defaults_validate() {
        vedfolnir_sdk::testing::check_policy::<Predictive>(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scenarios.toml"
        ));
    }

    #[test]
    fn bad_values_are_reported_by_key() {
        let keys = vedfolnir_sdk::testing::rejected_keys::<Predictive>(&[
            ("target", ParamValue::Number(0.0)),
            ("season", ParamValue::Duration(25 * MINUTE)),
            ("smoothing.level", ParamValue::Number(1.5)),
            ("forecast.max-error", ParamValue::Number(0.0)),
        ]);
        assert_eq!(
            keys,
            ["forecast.max-error", "season", "smoothing.level", "target"]
        );
    }

    /// Demand samples every 5 minutes for `days`, following a daily sine
    /// between 2 and 6 replica-units, ending at `now`.
    fn daily(days: i64, now: i64) -> Vec<Sample> {
        let step = 5 * MINUTE as i64;
        let n = days * 24 * 12;
        (0..n)
            .map(|i| {
                let at = now - (n - 1 - i) * step;
                let phase = at as f64 / (24.0 * HOUR as f64) * std::f64::consts::TAU;
                Sample {
                    at,
                    value: 4.0 - 2.0 * phase.cos(),
                }
            })
            .collect()
    }

    #[test]
    fn holt_winters_anticipates_the_daily_rise() {
        let (config, _) = vedfolnir_sdk::read_config::<Predictive>(&[Param {
            key: "startup".into(),
            value: ParamValue::Duration(HOUR),
        }]);
        // Three days of history; now is 06:00 of the fourth day, when the
        // sine (minimum at midnight) rises fastest.
        let now = 3 * 24 * HOUR as i64 + 6 * HOUR as i64;
        let demand = daily(3, now);
        let Forecast::Needs {
            demand: peak,
            method,
            ..
        } = forecast(&config, &demand, now)
        else {
            panic!("three days is enough history");
        };
        assert!(method.starts_with("Holt-Winters"), "{method}");
        // The true value an hour ahead (07:00) is 4 - 2 cos(7/24 tau) = 4.52;
        // the forecast sees it coming (the current value is 4.0).
        assert!(peak > 4.3 && peak < 4.8, "{peak}");
    }

    #[test]
    fn a_forecast_error_is_judged_only_on_buckets_with_demand() {
        let (config, _) = vedfolnir_sdk::read_config::<Predictive>(&[]);
        let now = 3 * 24 * HOUR as i64 + 6 * HOUR as i64;
        let error_of = |demand: &[Sample]| match forecast(&config, demand, now) {
            Forecast::Needs { error, method, .. } => (error, method),
            Forecast::Unavailable(why) => panic!("three days is enough history: {why}"),
        };
        // A daily sine, forecast by its own season: a small error, named.
        let (error, method) = error_of(&daily(3, now));
        assert!(error.is_some_and(|e| e < 0.15), "{error:?}");
        assert!(
            method.contains("off by") && method.contains("last 3h"),
            "{method}"
        );
        // An idle service: no demand to be relative to, so no error (not
        // an infinite one), and the forecast says nothing of it.
        let idle: Vec<Sample> = daily(3, now)
            .into_iter()
            .map(|s| Sample { value: 0.0, ..s })
            .collect();
        let (error, method) = error_of(&idle);
        assert_eq!(error, None);
        assert!(!method.contains("off by"), "{method}");
    }

    fn seasonal_peak(correction: u64, demand: &[Sample], now: i64) -> (f64, String) {
        let (config, valid) = vedfolnir_sdk::read_config::<Predictive>(&[Param {
            key: "forecast.correction".into(),
            value: ParamValue::Duration(correction),
        }]);
        valid.expect("a valid correction");
        match forecast(&config, demand, now) {
            Forecast::Needs { demand, method, .. } => (demand, method),
            Forecast::Unavailable(why) => panic!("three days is enough history: {why}"),
        }
    }

    /// Three days of a flat demand of 2 to `now`, every 5 minutes, but
    /// `burst` from 12:00 to 13:00 of the day before.
    fn flat_with_yesterdays_burst(burst: f64, now: i64) -> Vec<Sample> {
        let (day, step) = (24 * HOUR as i64, 5 * MINUTE as i64);
        let noon = now.div_euclid(day) * day - day + 12 * HOUR as i64;
        (0..3 * day / step)
            .map(|i| {
                let at = now - i * step;
                let value = if (noon..noon + HOUR as i64).contains(&at) {
                    burst
                } else {
                    2.0
                };
                Sample { at, value }
            })
            .rev()
            .collect()
    }

    #[test]
    fn a_forecast_that_ran_above_the_demand_is_lowered_by_its_error_never_raised() {
        // 12:30: yesterday's burst from 12:00 is in the season, so the
        // forecast asks for more than the flat 2 of the last half hour.
        let now = 3 * 24 * HOUR as i64 + 12 * HOUR as i64 + 30 * MINUTE as i64;
        let burst = flat_with_yesterdays_burst(4.0, now);
        let (plain, _) = seasonal_peak(0, &burst, now);
        let (corrected, method) = seasonal_peak(30 * MINUTE, &burst, now);
        assert!(plain > 2.3, "{plain}");
        assert!(
            corrected < plain - 0.2 && corrected >= 2.0 - 1e-9,
            "{corrected} against {plain}"
        );
        assert!(
            method.contains("lowered by") && method.contains("last 30m"),
            "{method}"
        );

        // A dip yesterday instead: the forecast runs below the demand, and
        // the correction leaves it as it is (the reactive part carries what
        // a forecast misses).
        let dip = flat_with_yesterdays_burst(1.0, now);
        let (plain, _) = seasonal_peak(0, &dip, now);
        let (corrected, method) = seasonal_peak(30 * MINUTE, &dip, now);
        assert_eq!(corrected, plain);
        assert!(!method.contains("lowered"), "{method}");
    }

    #[test]
    fn a_rising_line_is_extrapolated_with_too_little_history_for_a_season() {
        let (config, _) = vedfolnir_sdk::read_config::<Predictive>(&[]);
        let now = 10 * HOUR as i64;
        let demand: Vec<Sample> = (0..60)
            .map(|i| Sample {
                at: now - (59 - i) * MINUTE as i64,
                value: 2.0 + 0.05 * i as f64,
            })
            .collect();
        let Forecast::Needs {
            demand: peak,
            method,
            ..
        } = forecast(&config, &demand, now)
        else {
            panic!("an hour is enough for a trend");
        };
        assert!(method.starts_with("linear"), "{method}");
        // 4.95 now, +0.05/min, one minute ahead: 5.0.
        assert!((peak - 5.0).abs() < 1e-6, "{peak}");
    }
}
