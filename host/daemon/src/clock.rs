//! The one place the daemon reads the time (clippy's `disallowed-methods`
//! in `clippy.toml` refuses `SystemTime::now` and `Instant::now` anywhere
//! else, as linkerd does).
//!
//! Decisions take the wall-clock time from a [`Clock`], so the controller
//! is tested, and `simulate` replayed, on a clock that only moves when told
//! to ([`ManualClock`]). Waits inside an action (a replica's health
//! window, a Swarm convergence) use tokio's clock, which tests pause and
//! advance. A [`Stopwatch`] measures how long something took, for reports
//! and metrics; it never feeds a decision.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use vedfolnir_core::model::TimestampMs;

/// Where "now" comes from.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> TimestampMs;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one sanctioned wall-clock read
    fn now_ms(&self) -> TimestampMs {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// A clock that moves only when set or advanced: tests and replays.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock showing `at`.
    pub fn at(at: TimestampMs) -> ManualClock {
        ManualClock(AtomicI64::new(at))
    }

    /// Move the clock to `at`.
    pub fn set(&self, at: TimestampMs) {
        self.0.store(at, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> TimestampMs {
        self.0.load(Ordering::SeqCst)
    }
}

/// The system clock's time now, for the few places outside a pass that
/// stamp a record (a load error's "since", a lock holder's "since").
pub fn now_ms() -> TimestampMs {
    SystemClock.now_ms()
}

/// The monotonic clock now: for rate limits and durations, never for a
/// decision.
#[allow(clippy::disallowed_methods)] // the one sanctioned monotonic read
pub fn monotonic() -> Instant {
    Instant::now()
}

/// Measures elapsed wall time (monotonic) for reports and metrics.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch(Instant);

impl Stopwatch {
    /// Start measuring.
    pub fn start() -> Stopwatch {
        Stopwatch(monotonic())
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }

    /// Time since the start, in whole milliseconds.
    pub fn elapsed_ms(&self) -> u64 {
        self.0.elapsed().as_millis() as u64
    }

    /// Time since the start, and start again: one stage's lap.
    pub fn lap(&mut self) -> Duration {
        let now = monotonic();
        let lap = now - self.0;
        self.0 = now;
        lap
    }
}

/// A short measured duration for a log line: `0.3 ms`, `12 ms`, `1.02 s`.
pub fn format_timing(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.2} s", ms / 1000.0)
    }
}

/// A time as RFC 3339 UTC, to the second.
pub fn format_time(ms: TimestampMs) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_measured_duration_reads_in_its_own_scale() {
        assert_eq!(format_timing(Duration::from_micros(300)), "0.3 ms");
        assert_eq!(format_timing(Duration::from_millis(12)), "12 ms");
        assert_eq!(format_timing(Duration::from_millis(1020)), "1.02 s");
    }

    #[test]
    fn format_time_is_rfc3339_utc() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(1_672_531_200_000), "2023-01-01T00:00:00Z");
        assert_eq!(
            format_time(951_782_400_000 + 3_661_000),
            "2000-02-29T01:01:01Z"
        );
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let c = ManualClock::at(1_000);
        assert_eq!(c.now_ms(), 1_000);
        c.set(1_500);
        assert_eq!(c.now_ms(), 1_500);
        c.set(10);
        assert_eq!(c.now_ms(), 10);
    }
}
