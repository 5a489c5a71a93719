//! A service's sample history, as the policies' windows show it: every
//! sample of the recent [`FINE_MS`], older ones as the means of
//! [`BUCKET_MS`] buckets (so a policy that asks for days of history gets
//! hundreds of points a signal, not tens of thousands), nothing older than
//! the retention asked for. One implementation for the daemon (kept in the
//! state directory between passes, as JSON) and the simulator (in memory,
//! pushed every model step).
//!
//! Each push costs a constant, but for the compaction of the bucket that
//! just left the fine span: once per bucket, over the signal's samples.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::model::{Sample, SignalId, SignalWindow, TimestampMs};
use crate::window::{BUCKET_MS, FINE_MS, compact};

/// The closest two samples of one signal may be: a newer sample within
/// this of the last replaces it (a sub-second interval would otherwise
/// keep, and write each pass, tens of thousands of points an hour).
pub const MIN_GAP_MS: i64 = 1000;

/// Samples kept, by signal name.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct History {
    /// Each signal's samples.
    pub signals: BTreeMap<String, Series>,
}

/// One signal's samples: `[time_ms, value]` pairs, oldest first, at least
/// [`MIN_GAP_MS`] apart; before the fine span, one per bucket (its mean at
/// its midpoint, or a lone sample as it was). Stored as the list of pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "Vec<(TimestampMs, f64)>", into = "Vec<(TimestampMs, f64)>")]
pub struct Series {
    /// A queue: the oldest leave from the front every push once the
    /// retention is reached.
    samples: VecDeque<(TimestampMs, f64)>,
    /// Up to where the buckets are compacted: a bucket boundary, or the far
    /// past (a list read back, compacted again once, to no change).
    compacted_to: TimestampMs,
}

impl Default for Series {
    fn default() -> Series {
        Series::from(Vec::new())
    }
}

impl From<Vec<(TimestampMs, f64)>> for Series {
    fn from(samples: Vec<(TimestampMs, f64)>) -> Series {
        Series {
            samples: samples.into(),
            compacted_to: i64::MIN,
        }
    }
}

impl From<Series> for Vec<(TimestampMs, f64)> {
    fn from(series: Series) -> Vec<(TimestampMs, f64)> {
        series.samples.into()
    }
}

impl Series {
    /// The samples, oldest first.
    pub fn samples(&self) -> Vec<(TimestampMs, f64)> {
        self.samples.iter().copied().collect()
    }

    /// The newest sample, if any.
    pub fn last(&self) -> Option<(TimestampMs, f64)> {
        self.samples.back().copied()
    }

    /// Add `value` at `now` and drop what is older than `retention_ms`:
    /// [`History::push`] for one signal, kept apart from the others (the
    /// simulator's model keeps its signals by index).
    pub fn add(&mut self, now: TimestampMs, value: f64, retention_ms: u64) {
        self.push(now, value);
        self.trim(oldest(now, retention_ms), now);
    }

    /// This signal's window from `from` to `to`, both included.
    pub fn window(&self, signal: &SignalId, from: TimestampMs, to: TimestampMs) -> SignalWindow {
        SignalWindow {
            signal: signal.clone(),
            samples: self.between(from, to),
            missing_reason: None,
        }
    }

    /// Add `value` at `now` (a sample within [`MIN_GAP_MS`] of the last
    /// replaces it).
    fn push(&mut self, now: TimestampMs, value: f64) {
        match self.samples.back_mut() {
            Some(last) if last.0 > now - MIN_GAP_MS && last.0 <= now => *last = (now, value),
            _ => self.samples.push_back((now, value)),
        }
    }

    /// Drop what is older than `oldest` or newer than `now` (a clock that
    /// went back), and compact the buckets that left the fine span.
    fn trim(&mut self, oldest: TimestampMs, now: TimestampMs) {
        while self.samples.front().is_some_and(|(t, _)| *t < oldest) {
            self.samples.pop_front();
        }
        if self.samples.back().is_some_and(|(t, _)| *t > now) {
            self.samples.retain(|(t, _)| *t <= now);
        }
        let cut = now - FINE_MS as i64;
        let b = BUCKET_MS as i64;
        let boundary = cut.div_euclid(b) * b;
        if boundary > self.compacted_to {
            let mut samples = Vec::from(std::mem::take(&mut self.samples));
            compact(&mut samples, cut, BUCKET_MS);
            self.samples = samples.into();
            self.compacted_to = boundary;
        }
    }

    /// The samples from `from` to `to`, both included.
    fn between(&self, from: TimestampMs, to: TimestampMs) -> Vec<Sample> {
        let start = self.samples.partition_point(|(t, _)| *t < from);
        let end = self.samples.partition_point(|(t, _)| *t <= to).max(start);
        self.samples
            .range(start..end)
            .map(|(at, value)| Sample {
                at: *at,
                value: *value,
            })
            .collect()
    }
}

impl History {
    /// Add one sample per signal at `now`, and drop what is older than
    /// `retention_ms`.
    pub fn push<'a>(
        &mut self,
        now: TimestampMs,
        values: impl IntoIterator<Item = (&'a SignalId, f64)>,
        retention_ms: u64,
    ) {
        for (signal, value) in values {
            match self.signals.get_mut(signal.name()) {
                Some(series) => series.push(now, value),
                None => {
                    let mut series = Series::default();
                    series.push(now, value);
                    self.signals.insert(signal.name().to_string(), series);
                }
            }
        }
        let oldest = oldest(now, retention_ms);
        let mut emptied = false;
        for series in self.signals.values_mut() {
            series.trim(oldest, now);
            emptied |= series.samples.is_empty();
        }
        if emptied {
            self.signals.retain(|_, s| !s.samples.is_empty());
        }
    }

    /// The window of one signal: every sample kept.
    pub fn window(&self, signal: &SignalId) -> SignalWindow {
        self.window_between(signal, i64::MIN, i64::MAX)
    }

    /// The window of one signal from `from` to `to`, both included.
    pub fn window_between(
        &self,
        signal: &SignalId,
        from: TimestampMs,
        to: TimestampMs,
    ) -> SignalWindow {
        match self.signals.get(signal.name()) {
            Some(series) => series.window(signal, from, to),
            None => Series::default().window(signal, from, to),
        }
    }
}

/// The oldest time kept at `now` for `retention_ms`.
fn oldest(now: TimestampMs, retention_ms: u64) -> TimestampMs {
    now.saturating_sub(retention_ms.min(i64::MAX as u64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Push `values` at `now`.
    fn push(h: &mut History, now: TimestampMs, values: &[(SignalId, f64)], retention_ms: u64) {
        h.push(now, values.iter().map(|(s, v)| (s, *v)), retention_ms);
    }

    #[test]
    fn a_sub_second_interval_keeps_one_sample_a_second() {
        let mut h = History::default();
        // Ten seconds of passes every 50 ms.
        for i in 0..200 {
            push(&mut h, i * 50, &[(SignalId::Cpu, i as f64)], 3_600_000);
        }
        let cpu = &h.signals["cpu"].samples();
        assert!(cpu.len() <= 11, "{} samples", cpu.len());
        assert!(cpu.windows(2).all(|p| p[1].0 - p[0].0 >= MIN_GAP_MS));
        // The newest value is kept.
        assert_eq!(*cpu.last().unwrap(), (9_950, 199.0));
        // A normal interval keeps every pass.
        let mut h = History::default();
        for i in 0..10 {
            push(&mut h, i * 15_000, &[(SignalId::Cpu, 1.0)], 3_600_000);
        }
        assert_eq!(h.signals["cpu"].samples().len(), 10);
    }

    #[test]
    fn history_keeps_the_retention_window_only() {
        let mut h = History::default();
        push(&mut h, 0, &[(SignalId::Cpu, 0.1)], 60_000);
        push(
            &mut h,
            30_000,
            &[(SignalId::Cpu, 0.2), (SignalId::Memory, 0.5)],
            60_000,
        );
        push(&mut h, 90_000, &[(SignalId::Cpu, 0.3)], 60_000);
        let cpu = h.window(&SignalId::Cpu);
        assert_eq!(
            cpu.samples.iter().map(|s| s.at).collect::<Vec<_>>(),
            [30_000, 90_000]
        );
        assert_eq!(h.window(&SignalId::Memory).samples.len(), 1);
        assert!(h.window(&SignalId::QueueDepth).samples.is_empty());
    }

    #[test]
    fn days_of_history_stay_a_few_hundred_points() {
        // Three days at 15 s, kept for three days.
        let mut h = History::default();
        let day = 24 * 3_600_000;
        for i in 0..(3 * day / 15_000) {
            push(&mut h, i * 15_000, &[(SignalId::Cpu, 0.5)], 3 * day as u64);
        }
        let w = h.window(&SignalId::Cpu);
        // About 71 hours of 15-minute means, then every sample of the last
        // 60 to 75 minutes (a bucket is averaged once it is whole).
        let n = w.samples.len();
        assert!((71 * 4 + 240..=72 * 4 + 300).contains(&n), "{n}");
        assert!(w.samples.iter().all(|s| s.value == 0.5));
        assert!(w.samples.windows(2).all(|p| p[0].at < p[1].at));
    }

    #[test]
    fn recent_samples_stay_whole_and_older_ones_become_bucket_means() {
        // Three hours at a minute, kept three hours.
        let mut h = History::default();
        let keep = 3 * 3_600_000;
        for i in 0..=180 {
            push(&mut h, i * 60_000, &[(SignalId::Cpu, i as f64)], keep);
        }
        let now = 180 * 60_000;
        let w = h.window(&SignalId::Cpu);
        let short = h.window_between(&SignalId::Cpu, now - FINE_MS as i64, now);
        assert!(short.samples.iter().all(|s| s.at >= now - 3_600_000));
        assert_eq!(short.samples.len(), 61);
        let times: Vec<i64> = w.samples.iter().map(|s| s.at).collect();
        assert!(times.windows(2).all(|p| p[0] < p[1]), "ascending");
        // Older ones are 15-minute means: bucket [0, 15m) holds 0..14,
        // mean 7, at its midpoint.
        assert_eq!((w.samples[0].at, w.samples[0].value), (450_000, 7.0));
        assert_eq!(w.samples.len(), 8 + 61);
        // Nothing older than the retention stays.
        push(
            &mut h,
            181 * 60_000 + keep as i64,
            &[(SignalId::Cpu, 0.0)],
            keep,
        );
        assert_eq!(h.window(&SignalId::Cpu).samples.len(), 1);
    }

    #[test]
    fn a_history_read_back_is_kept_on_as_if_never_written() {
        let mut h = History::default();
        let keep = 2 * 3_600_000;
        for i in 0..100 {
            push(&mut h, i * 60_000, &[(SignalId::Cpu, i as f64)], keep);
        }
        // Stored as each signal's list of [time, value] pairs.
        let json = serde_json::to_string(&h).unwrap();
        assert!(
            json.starts_with(r#"{"signals":{"cpu":[[450000,7.0],"#),
            "{json}"
        );
        let mut back: History = serde_json::from_str(&json).unwrap();
        for i in 100..200 {
            push(&mut h, i * 60_000, &[(SignalId::Cpu, i as f64)], keep);
            push(&mut back, i * 60_000, &[(SignalId::Cpu, i as f64)], keep);
        }
        assert_eq!(back.window(&SignalId::Cpu), h.window(&SignalId::Cpu));
        assert!(h.window(&SignalId::Cpu).samples.len() < 70);
    }
}
