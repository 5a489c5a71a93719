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

/// A time written as [`format_time`] writes it (`2026-12-07T13:05:00Z`,
/// UTC, to the second), as ms since the Unix epoch.
pub fn parse_time(text: &str) -> Result<TimestampMs, String> {
    let bad = || format!("{text:?} is not a UTC time such as 2026-12-07T13:05:00Z");
    let b = text.as_bytes();
    let shape = b.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z';
    if !shape {
        return Err(bad());
    }
    let num = |from: usize, to: usize| -> Result<i64, String> {
        let s = &text[from..to];
        if s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().map_err(|_| bad())
        } else {
            Err(bad())
        }
    };
    let (y, m, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hh, mm, ss) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 59 {
        return Err(bad());
    }
    // A civil date to days since 1970-01-01 (Howard Hinnant's algorithm).
    let y = y - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let ms = ((days * 86_400) + hh * 3600 + mm * 60 + ss) * 1000;
    // A day past the month's end (02-30) reads as another date: refused.
    if format_time(ms) != text {
        return Err(bad());
    }
    Ok(ms)
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
        for ms in [0, 1_672_531_200_000, 1_709_164_799_000, 1_796_601_905_000] {
            assert_eq!(parse_time(&format_time(ms)), Ok(ms));
        }
        for bad in [
            "2023-02-30T00:00:00Z",
            "2023-01-01 00:00:00Z",
            "2023-1-01T00:00:00Z",
            "x",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
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
