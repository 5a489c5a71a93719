//! The `web` shape: web traffic as measured, to tune scalers against
//! rather than a smooth curve.
//!
//! - A daily pattern: the diurnal sine between `base` (04:00) and `peak`
//!   (16:00).
//! - Self-similar bursts: the superposition of [`SOURCES`] ON/OFF sources
//!   whose ON and OFF periods are Pareto-distributed with tail index
//!   `alpha = 3 - 2H`. Such a superposition is self-similar with Hurst
//!   parameter `H` (Willinger, Taqqu, Sherman and Wilson, "Self-similarity
//!   through high-variability", IEEE/ACM Transactions on Networking 5(1),
//!   1997); measured LAN and web traffic has `H` between about 0.7 and 0.9
//!   (Leland, Taqqu, Willinger and Wilson, "On the self-similar nature of
//!   Ethernet traffic", IEEE/ACM ToN 2(1), 1994; Crovella and Bestavros,
//!   "Self-similarity in World Wide Web traffic: evidence and possible
//!   causes", IEEE/ACM ToN 5(6), 1997). [`HURST`] is 0.8. The sources'
//!   count, standardised, moves the level by [`BURST`] per standard
//!   deviation: noise from minute to minute, and now and then a burst or a
//!   dip that lasts an hour.
//! - Quiet periods: on about one day in three, a lull of 1 to 4 hours at
//!   half the level, starting at a random hour, fading in and out over 15
//!   minutes.
//! - Poisson arrivals: each point is a Poisson count of requests over its
//!   step around that level, divided by the step.
//!
//! Seeded: the same seed always gives the same trace.

use super::SplitMix;
use crate::model::DurationMs;

/// The Hurst parameter of the bursts.
pub const HURST: f64 = 0.8;
/// How many ON/OFF sources make the bursts.
pub const SOURCES: usize = 32;
/// The relative change of the level per standard deviation of the
/// bursts, by default (`simulate --noise` sets another).
pub const BURST: f64 = 0.15;
/// The shortest ON or OFF period, ms (the Pareto scale), by default
/// (`simulate --burst-period` sets another).
pub const BURST_PERIOD_MS: DurationMs = 30_000;
/// How long a lull takes to fall to half the level, and to rise back.
const LULL_EDGE_MS: u64 = 15 * 60_000;
const DAY_MS: u64 = 86_400_000;

/// `n` points at `step_ms`, between `base` and `peak` requests per second,
/// the bursts moving the level by `burst` per standard deviation
/// ([`BURST`] unless a replay asks for noisier traffic), their ON and OFF
/// periods at least `period_ms` ([`BURST_PERIOD_MS`] unless a replay asks
/// for bursts that last longer).
pub fn generate(
    n: usize,
    step_ms: DurationMs,
    (base, peak): (f64, f64),
    seed: u64,
    (burst, period_ms): (f64, DurationMs),
) -> Vec<f64> {
    let mut rng = SplitMix(seed);
    let bursts = on_off(n, step_ms, (HURST, period_ms), &mut rng);
    let quiet = quiet_periods(n as u64 * step_ms, &mut rng);
    let step_s = step_ms as f64 / 1000.0;
    (0..n)
        .map(|i| {
            let t = i as u64 * step_ms;
            let phase = (t as f64 / DAY_MS as f64 - 4.0 / 24.0) * std::f64::consts::TAU;
            let daily = base + (peak - base) * (0.5 - 0.5 * phase.cos());
            let lull = quiet
                .iter()
                .map(|&(from, to)| lull_factor(t, from, to))
                .fold(1.0, f64::min);
            let level = (daily * lull * (1.0 + burst * bursts[i])).max(0.0);
            poisson(&mut rng, level * step_s) / step_s
        })
        .collect()
}

/// The standardised count of ON sources at each of `n` steps: mean 0,
/// standard deviation 1, self-similar with Hurst parameter `hurst`, each
/// ON or OFF period at least `period_ms`.
pub fn on_off(
    n: usize,
    step_ms: DurationMs,
    (hurst, period_ms): (f64, DurationMs),
    rng: &mut SplitMix,
) -> Vec<f64> {
    let alpha = 3.0 - 2.0 * hurst;
    let shortest = period_ms as f64;
    let period =
        |rng: &mut SplitMix| shortest / rng.uniform().max(f64::MIN_POSITIVE).powf(1.0 / alpha);
    // Each source: ON or OFF, and how long it stays so, ms.
    let mut sources: Vec<(bool, f64)> = (0..SOURCES)
        .map(|_| {
            let on = rng.uniform() < 0.5;
            // Start each part-way through a period, so they do not all
            // flip together at the start.
            let left = period(rng) * rng.uniform();
            (on, left)
        })
        .collect();
    let mean = SOURCES as f64 * 0.5;
    let sd = (SOURCES as f64 * 0.25).sqrt();
    (0..n)
        .map(|_| {
            let mut on = 0usize;
            for (state, left) in &mut sources {
                // The fraction of this step spent ON.
                let mut remaining = step_ms as f64;
                let mut on_ms = 0.0;
                while remaining > 0.0 {
                    let spent = left.min(remaining);
                    if *state {
                        on_ms += spent;
                    }
                    remaining -= spent;
                    *left -= spent;
                    if *left <= 0.0 {
                        *state = !*state;
                        *left = period(rng);
                    }
                }
                if on_ms * 2.0 >= step_ms as f64 {
                    on += 1;
                }
            }
            (on as f64 - mean) / sd
        })
        .collect()
}

/// Lulls over `duration_ms`: on about one day in three, 1 to 4 hours
/// from a random hour.
fn quiet_periods(duration_ms: u64, rng: &mut SplitMix) -> Vec<(u64, u64)> {
    (0..duration_ms.div_ceil(DAY_MS))
        .filter_map(|day| {
            let lull = rng.uniform() < 1.0 / 3.0;
            let start = day * DAY_MS + (rng.uniform() * 24.0) as u64 * 3_600_000;
            let hours = 1 + (rng.uniform() * 4.0) as u64;
            lull.then_some((start, start + hours.min(4) * 3_600_000))
        })
        .collect()
}

/// The level during a lull from `from` to `to`: half, reached and left
/// over [`LULL_EDGE_MS`] (traffic fades and returns; it does not switch).
fn lull_factor(t: u64, from: u64, to: u64) -> f64 {
    let edge = LULL_EDGE_MS as f64;
    let into = (t as f64 - from as f64) / edge;
    let left = (to as f64 - t as f64) / edge;
    let depth = into.min(left).clamp(0.0, 1.0);
    1.0 - 0.5 * depth
}

/// A Poisson draw with mean `mean`: by multiplication below 30, by the
/// normal approximation above (its error is far below the bursts').
fn poisson(rng: &mut SplitMix, mean: f64) -> f64 {
    if mean <= 0.0 {
        return 0.0;
    }
    if mean > 30.0 {
        return (mean + mean.sqrt() * rng.gaussian()).round().max(0.0);
    }
    let limit = (-mean).exp();
    let mut product = rng.uniform();
    let mut count = 0.0;
    while product > limit {
        product *= rng.uniform();
        count += 1.0;
    }
    count
}

/// The Hurst parameter of `series` by the aggregated-variance method: the
/// slope `b` of log variance of block means against log block size, for
/// block sizes from `min_block` to a tenth of the series, is `2H - 2`.
pub fn hurst_estimate(series: &[f64], min_block: usize) -> f64 {
    let mut points = Vec::new();
    let mut m = min_block.max(1);
    while m * 10 <= series.len() {
        let var = variance(&block_means(series, m));
        points.push(((m as f64).ln(), var.ln()));
        m *= 2;
    }
    let k = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / k, sy / k);
    let slope = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum::<f64>()
        / points.iter().map(|(x, _)| (x - mx).powi(2)).sum::<f64>();
    1.0 + slope / 2.0
}

/// The means of `series`' consecutive blocks of `m` points (a shorter
/// last block left out).
fn block_means(series: &[f64], m: usize) -> Vec<f64> {
    series
        .chunks_exact(m)
        .map(|c| c.iter().sum::<f64>() / m as f64)
        .collect()
}

/// The population variance of `v`.
fn variance(v: &[f64]) -> f64 {
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bursts_are_self_similar_with_the_hurst_parameter_of_web_traffic() {
        // A week at 1 s, blocks of a minute to a day: the aggregated
        // variance of Poisson-like noise would fall as 1/m (H = 0.5).
        let series = on_off(7 * 86_400, 1000, (HURST, BURST_PERIOD_MS), &mut SplitMix(7));
        let h = hurst_estimate(&series, 60);
        assert!((0.7..=0.9).contains(&h), "H = {h}");
        let mean = series.iter().sum::<f64>() / series.len() as f64;
        assert!(mean.abs() < 0.5, "mean {mean}");
        // Independent noise, for contrast, estimates near 0.5.
        let mut rng = SplitMix(7);
        let white: Vec<f64> = (0..7 * 86_400).map(|_| rng.gaussian()).collect();
        let h = hurst_estimate(&white, 60);
        assert!((0.4..0.6).contains(&h), "white noise H = {h}");
    }

    #[test]
    fn a_longer_burst_period_makes_bursts_that_last_longer() {
        // The spread of half-hour means of a week at 1 s, against that of
        // the seconds themselves: the slower the sources flip, the more of
        // the noise survives half an hour's averaging.
        let kept = |period_ms| {
            let s = on_off(7 * 86_400, 1000, (HURST, period_ms), &mut SplitMix(7));
            (variance(&block_means(&s, 1800)) / variance(&s)).sqrt()
        };
        let (short, long) = (kept(BURST_PERIOD_MS), kept(10 * 60_000));
        assert!(long > 1.2 * short, "30s: {short}, 10m: {long}");
    }

    /// The relative standard deviation of the per-minute means of
    /// `a` (one point a second) from 15:00 to 17:00.
    fn minute_noise(a: &[f64]) -> f64 {
        let minutes = block_means(&a[15 * 3600..17 * 3600], 60);
        let mean = minutes.iter().sum::<f64>() / minutes.len() as f64;
        variance(&minutes).sqrt() / mean
    }

    #[test]
    fn the_shape_follows_the_day_with_noise_and_the_same_seed_gives_the_same_trace() {
        let n = 2 * 86_400;
        let a = generate(n, 1000, (200.0, 900.0), 3, (BURST, BURST_PERIOD_MS));
        assert_eq!(
            a,
            generate(n, 1000, (200.0, 900.0), 3, (BURST, BURST_PERIOD_MS))
        );
        assert_ne!(
            a,
            generate(n, 1000, (200.0, 900.0), 4, (BURST, BURST_PERIOD_MS))
        );
        let hour = |h: usize| a[h * 3600..(h + 1) * 3600].iter().sum::<f64>() / 3600.0;
        // Around 04:00 near the base, around 16:00 near the peak.
        assert!(hour(4) < 400.0, "{}", hour(4));
        assert!(hour(16) > 600.0, "{}", hour(16));
        // Minute to minute, the load moves by several percent.
        let noise = minute_noise(&a);
        assert!(noise > 0.05, "minute-to-minute noise {noise}");
        assert!(a.iter().all(|v| v.is_finite() && *v >= 0.0));
        // Larger bursts move it more; with none, only the Poisson draws do.
        let noisier = minute_noise(&generate(
            n,
            1000,
            (200.0, 900.0),
            3,
            (2.0 * BURST, BURST_PERIOD_MS),
        ));
        assert!(noisier > 1.5 * noise, "{noisier} against {noise}");
        let calm = minute_noise(&generate(
            n,
            1000,
            (200.0, 900.0),
            3,
            (0.0, BURST_PERIOD_MS),
        ));
        assert!(calm < 0.02, "Poisson arrivals alone: {calm}");
    }

    #[test]
    fn poisson_draws_have_their_mean() {
        let mut rng = SplitMix(1);
        for mean in [0.5, 4.0, 25.0, 400.0] {
            let n = 20_000;
            let avg = (0..n).map(|_| poisson(&mut rng, mean)).sum::<f64>() / n as f64;
            assert!((avg - mean).abs() < 0.05 * mean.max(1.0), "{mean}: {avg}");
        }
    }
}
