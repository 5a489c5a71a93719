//! Window maths: "has this condition held for the whole window?".
//!
//! The seed's "CPU > 70% for 5 minutes" is only meaningful if the samples
//! prove it: the newest sample must be fresh, every sample back to the start
//! of the window must satisfy the condition, and no gap between samples may
//! be so long that the condition could have broken unseen. A non-finite
//! sample is no observation, so it breaks a run too; it never counts as 0.

use crate::model::{DurationMs, Sample, TimestampMs};

/// What the samples say about a condition at `now`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Held {
    /// There is no sample at all.
    NoData,
    /// The newest sample is older than the allowed gap: the data is stale.
    Stale {
        /// How old the newest sample is.
        age: DurationMs,
    },
    /// The newest sample is NaN or infinite.
    NonFinite,
    /// The newest sample is fresh and finite.
    Observed {
        /// The newest value.
        latest: f64,
        /// Whether the newest value satisfies the condition.
        satisfied: bool,
        /// How long the condition has held continuously up to `now`
        /// (0 when the newest sample does not satisfy it).
        held_for: DurationMs,
    },
}

impl Held {
    /// True when the condition has held for at least `window`.
    pub fn for_at_least(&self, window: DurationMs) -> bool {
        matches!(self, Held::Observed { satisfied: true, held_for, .. } if *held_for >= window)
    }

    /// True when the newest sample satisfies the condition.
    pub fn satisfied(&self) -> bool {
        matches!(
            self,
            Held::Observed {
                satisfied: true,
                ..
            }
        )
    }

    /// The newest finite value, when there is one.
    pub fn latest(&self) -> Option<f64> {
        match self {
            Held::Observed { latest, .. } => Some(*latest),
            _ => None,
        }
    }

    /// How long the condition held, when observed.
    pub fn held_for(&self) -> Option<DurationMs> {
        match self {
            Held::Observed { held_for, .. } => Some(*held_for),
            _ => None,
        }
    }
}

/// How long `condition` has held continuously up to `now`.
///
/// `samples` must be in ascending time order (as the host sends them).
/// `max_gap` is both the freshness limit of the newest sample and the
/// longest allowed gap between two samples of a run.
///
/// The run starts at the oldest sample of the unbroken sequence of
/// satisfying samples ending with the newest one; `held_for` is
/// `now - start`. A run that is only one sample long has held since that
/// sample, so with a sample taken exactly at `now`, `held_for` is 0 and the
/// condition does not count as held for any positive window.
pub fn held(
    samples: &[Sample],
    now: TimestampMs,
    max_gap: DurationMs,
    condition: impl Fn(f64) -> bool,
) -> Held {
    let Some(newest) = samples.last() else {
        return Held::NoData;
    };
    let age = now.saturating_sub(newest.at).max(0) as u64;
    if age > max_gap {
        return Held::Stale { age };
    }
    if !newest.value.is_finite() {
        return Held::NonFinite;
    }
    if !condition(newest.value) {
        return Held::Observed {
            latest: newest.value,
            satisfied: false,
            held_for: 0,
        };
    }
    let mut start = newest.at;
    for sample in samples.iter().rev().skip(1) {
        let gap = start.saturating_sub(sample.at).max(0) as u64;
        if gap > max_gap || !sample.value.is_finite() || !condition(sample.value) {
            break;
        }
        start = sample.at;
    }
    Held::Observed {
        latest: newest.value,
        satisfied: true,
        held_for: now.saturating_sub(start).max(0) as u64,
    }
}

/// The newest finite sample no older than `ttl`, for "use the last value"
/// missing-data rules.
pub fn latest_within(samples: &[Sample], now: TimestampMs, ttl: DurationMs) -> Option<Sample> {
    samples
        .iter()
        .rev()
        .find(|s| s.value.is_finite())
        .filter(|s| now.saturating_sub(s.at).max(0) as u64 <= ttl)
        .copied()
}

/// Samples older than this are kept as bucket means once a whole bucket
/// has passed it: one hour (the longest documented window is 15 minutes).
pub const FINE_MS: DurationMs = 60 * 60_000;

/// The bucket that older history is averaged into: 15 minutes.
pub const BUCKET_MS: DurationMs = 15 * 60_000;

/// Replace each whole `bucket_ms` bucket that ends at or before `cut` and
/// holds more than one sample by one sample, its mean, stamped at the
/// bucket's midpoint. Non-finite samples are left out of the mean (no
/// observation); a bucket of only those keeps one NaN.
///
/// Long history (a forecast's days) stays a few hundred points per signal
/// while the recent hour keeps every sample for the windows that need it.
/// Idempotent: a compacted bucket holds one sample. `samples` ascend.
pub fn compact(samples: &mut Vec<(TimestampMs, f64)>, cut: TimestampMs, bucket_ms: DurationMs) {
    let b = bucket_ms.max(1) as i64;
    let whole = samples.partition_point(|(t, _)| (t.div_euclid(b) + 1) * b <= cut);
    if whole == 0 {
        return;
    }
    let mut out: Vec<(TimestampMs, f64)> = Vec::with_capacity(samples.len());
    let mut i = 0;
    while i < whole {
        let bucket = samples[i].0.div_euclid(b);
        let mut j = i;
        let (mut sum, mut n) = (0.0, 0u32);
        while j < whole && samples[j].0.div_euclid(b) == bucket {
            if samples[j].1.is_finite() {
                sum += samples[j].1;
                n += 1;
            }
            j += 1;
        }
        if j - i == 1 {
            out.push(samples[i]);
        } else {
            let mean = if n == 0 { f64::NAN } else { sum / f64::from(n) };
            out.push((bucket * b + b / 2, mean));
        }
        i = j;
    }
    out.extend_from_slice(&samples[whole..]);
    *samples = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: TimestampMs = 1_800_000_000_000;
    const GAP: DurationMs = 60_000;

    /// Samples every `step` ms ending at NOW, oldest first, from `values`.
    fn series(step: i64, values: &[f64]) -> Vec<Sample> {
        let n = values.len() as i64;
        values
            .iter()
            .enumerate()
            .map(|(i, &value)| Sample {
                at: NOW - (n - 1 - i as i64) * step,
                value,
            })
            .collect()
    }

    fn above(t: f64) -> impl Fn(f64) -> bool {
        move |v| v > t
    }

    #[test]
    fn compaction_averages_whole_old_buckets_and_keeps_recent_samples() {
        // One sample a minute for 50 minutes; 10-minute buckets; cut at 35m.
        let mut s: Vec<(TimestampMs, f64)> = (0..50).map(|i| (i * 60_000, i as f64)).collect();
        compact(&mut s, 35 * 60_000, 600_000);
        // Buckets [0,10m), [10m,20m), [20m,30m) are whole before the cut;
        // [30m,40m) is not, so its samples stay.
        assert_eq!(
            &s[..3],
            &[(300_000, 4.5), (900_000, 14.5), (1_500_000, 24.5)]
        );
        assert_eq!(s[3], (30 * 60_000, 30.0));
        assert_eq!(s.len(), 3 + 20);
        let again = s.clone();
        compact(&mut s, 35 * 60_000, 600_000);
        assert_eq!(s, again, "idempotent");
        // A NaN is no observation: it does not enter the mean.
        let mut s = vec![(0, 1.0), (1, f64::NAN), (2, 3.0), (700_000, 1.0)];
        compact(&mut s, 650_000, 600_000);
        assert_eq!(s, vec![(300_000, 2.0), (700_000, 1.0)]);
    }

    #[test]
    fn condition_true_over_the_whole_window_counts() {
        // 21 samples 15 s apart: the oldest is exactly 5 minutes old.
        let s = series(15_000, &[0.9; 21]);
        let h = held(&s, NOW, GAP, above(0.7));
        assert_eq!(h.held_for(), Some(300_000));
        assert!(h.for_at_least(300_000));
    }

    #[test]
    fn condition_that_held_4m59s_does_not_count_as_5_minutes() {
        let mut values = vec![0.5; 10];
        values.extend(std::iter::repeat_n(0.9, 300)); // 1 s apart: 299 s of satisfying samples
        let s = series(1_000, &values);
        let h = held(&s, NOW, GAP, above(0.7));
        assert_eq!(h.held_for(), Some(299_000));
        assert!(!h.for_at_least(300_000));
    }

    #[test]
    fn a_short_history_cannot_prove_a_long_window() {
        let s = series(15_000, &[0.9; 5]); // one minute of data
        assert!(!held(&s, NOW, GAP, above(0.7)).for_at_least(300_000));
    }

    #[test]
    fn a_gap_longer_than_allowed_breaks_the_run() {
        let mut s = series(15_000, &[0.9; 21]);
        s.remove(10);
        s.remove(10);
        s.remove(10);
        s.remove(10); // 75 s gap in the middle
        let h = held(&s, NOW, GAP, above(0.7));
        assert!(h.held_for().unwrap() < 300_000);
    }

    #[test]
    fn stale_newest_sample_is_stale_not_held() {
        let s: Vec<Sample> = series(15_000, &[0.9; 21])
            .into_iter()
            .map(|s| Sample {
                at: s.at - 120_000,
                ..s
            })
            .collect();
        assert_eq!(held(&s, NOW, GAP, above(0.7)), Held::Stale { age: 120_000 });
    }

    #[test]
    fn nan_newest_sample_is_not_a_value() {
        let mut values = vec![0.9; 20];
        values.push(f64::NAN);
        let s = series(15_000, &values);
        assert_eq!(held(&s, NOW, GAP, above(0.7)), Held::NonFinite);
    }

    #[test]
    fn nan_inside_the_window_breaks_the_run() {
        let mut values = vec![0.9; 21];
        values[5] = f64::NAN;
        let s = series(15_000, &values);
        let h = held(&s, NOW, GAP, above(0.7));
        assert_eq!(h.held_for(), Some(14 * 15_000)); // samples 6..=20: 14 gaps
        assert!(!h.for_at_least(300_000));
    }

    #[test]
    fn empty_window_is_no_data() {
        assert_eq!(held(&[], NOW, GAP, above(0.7)), Held::NoData);
    }

    #[test]
    fn unsatisfied_newest_sample_held_for_zero() {
        let s = series(15_000, &[0.9, 0.9, 0.1]);
        let h = held(&s, NOW, GAP, above(0.7));
        assert_eq!(h.held_for(), Some(0));
        assert!(!h.satisfied());
        assert!(!h.for_at_least(0), "an unsatisfied condition never counts");
    }

    #[test]
    fn latest_within_skips_nan_and_respects_ttl() {
        let s = series(15_000, &[0.4, 0.5, f64::NAN]);
        assert_eq!(latest_within(&s, NOW, 60_000).map(|s| s.value), Some(0.5));
        assert_eq!(latest_within(&s, NOW, 10_000), None);
    }
}
