//! The minute record: what a service's sources read, one line a minute
//! (each signal's mean over the minute), kept [`RETENTION_DAYS`] in
//! `<state>/minutes/<service>.<YYYY-MM-DD>.jsonl`, a file per UTC day. It
//! is what `simulate --history` replays and calibrates its model on: the
//! sample history keeps only what the policy's windows need, and only its
//! last hour at every sample.
//!
//! A minute is written once it is whole, from the sample history's fine
//! span (every sample of the last hour), by the first pass after it: the
//! daemon's and a cron run's alike. Lines are appended (a torn last line
//! is skipped on reading, and counted); a minute written twice (a crash
//! between the append and the next pass) reads as its last line.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vedfolnir_core::history::History;
use vedfolnir_core::model::{SignalId, TimestampMs};
use vedfolnir_core::window::FINE_MS;

use super::StateError;

/// A minute, ms.
pub const MINUTE_MS: i64 = 60_000;

/// Days of minutes kept: a week, and the day that is running.
pub const RETENTION_DAYS: i64 = 8;

/// The longest line read; longer ones are skipped (a line names each
/// signal once: a few hundred bytes).
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// The most signals one minute keeps (past it, the first by name).
pub const MAX_SIGNALS: usize = 64;

const DAY_MS: i64 = 86_400_000;

/// One minute of a service's signals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Minute {
    /// The minute's start, ms since the Unix epoch.
    pub t: TimestampMs,
    /// The most samples any one signal had standing for part of the
    /// minute (about the passes in it).
    pub samples: u32,
    /// Each signal's mean over the minute, by name.
    pub values: BTreeMap<String, f64>,
}

/// The minutes read back, and the lines that could not be.
#[derive(Debug, Default)]
pub struct Read {
    /// Whole minutes, oldest first, one per start time.
    pub minutes: Vec<Minute>,
    /// Lines skipped: `file:line: why`.
    pub skipped: Vec<String>,
}

/// The longest span one sample stands for: a sample after a longer gap
/// (the daemon was down) stands for none.
pub const MAX_COVER_MS: i64 = 5 * MINUTE_MS;

/// The whole minutes of `history` after the one starting at `after`, up to
/// its newest sample, within its fine span: each signal's mean over the
/// minute, a sample standing for the time since the one before it (a rate
/// read at a pass is the rate since the last pass), so a change of load
/// between two passes is split between the minutes at the time it fell.
pub fn whole_minutes(history: &History, after: TimestampMs, now: TimestampMs) -> Vec<Minute> {
    let newest = history
        .signals
        .values()
        .filter_map(|s| s.last().map(|(t, _)| t))
        .max()
        .unwrap_or(i64::MIN)
        .min(now);
    let end = newest.div_euclid(MINUTE_MS) * MINUTE_MS;
    let fine = (now - FINE_MS as i64).div_euclid(MINUTE_MS) * MINUTE_MS + MINUTE_MS;
    let from = after.saturating_add(MINUTE_MS).max(fine);
    // Per minute, per signal: (value x ms, ms, samples in it).
    let mut sums: BTreeMap<TimestampMs, BTreeMap<&str, (f64, i64, u32)>> = BTreeMap::new();
    if end <= from {
        return Vec::new();
    }
    for (name, series) in history.signals.iter().take(MAX_SIGNALS) {
        // From the sample before `from` at the earliest: it bounds the
        // span of the first one in it.
        let samples: Vec<(TimestampMs, f64)> = series
            .window(&SignalId::Custom(name.clone()), from - MAX_COVER_MS, now)
            .samples
            .iter()
            .map(|s| (s.at, s.value))
            .collect();
        for (i, &(t, value)) in samples.iter().enumerate() {
            // The first sample, or the first after a gap, stands for
            // nothing before it: what came before is not known.
            let Some(&(before, _)) = i.checked_sub(1).and_then(|j| samples.get(j)) else {
                continue;
            };
            let start = before.max(from);
            let stop = t.min(end);
            if !value.is_finite() || t - before > MAX_COVER_MS || stop <= start {
                continue;
            }
            let mut m = start.div_euclid(MINUTE_MS) * MINUTE_MS;
            while m < stop {
                let ms = stop.min(m + MINUTE_MS) - start.max(m);
                let sum = sums.entry(m).or_default().entry(name).or_default();
                sum.0 += value * ms as f64;
                sum.1 += ms;
                sum.2 += 1;
                m += MINUTE_MS;
            }
        }
    }
    sums.into_iter()
        .map(|(t, signals)| Minute {
            t,
            samples: signals.values().map(|s| s.2).max().unwrap_or(0),
            values: signals
                .into_iter()
                .map(|(name, (sum, ms, _))| (name.to_string(), sum / ms as f64))
                .collect(),
        })
        .collect()
}

/// The folder of the minute files in the state directory `dir`.
pub fn folder(dir: &Path) -> PathBuf {
    dir.join("minutes")
}

/// The file of `service`'s minutes of the day `day` (days since the epoch).
fn day_file(dir: &Path, service: &str, day: i64) -> PathBuf {
    let date = &crate::clock::format_time(day * DAY_MS)[..10];
    folder(dir).join(format!("{service}.{date}.jsonl"))
}

/// `service`'s day files in `dir`, as (day, path), oldest first.
fn day_files(dir: &Path, service: &str) -> io::Result<Vec<(i64, PathBuf)>> {
    let entries = match fs::read_dir(folder(dir)) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let prefix = format!("{service}.");
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(date) = name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|n| n.strip_suffix(".jsonl"))
        else {
            continue;
        };
        if let Ok(ms) = crate::clock::parse_time(&format!("{date}T00:00:00Z")) {
            out.push((ms.div_euclid(DAY_MS), entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Append `minutes` (oldest first) to their days' files, and remove the
/// files older than [`RETENTION_DAYS`] when a day's file is begun.
pub fn append(dir: &Path, service: &str, minutes: &[Minute]) -> Result<(), StateError> {
    let write = |path: &Path, source| StateError::Write {
        path: path.to_path_buf(),
        source,
    };
    let folder = folder(dir);
    fs::create_dir_all(&folder).map_err(|e| write(&folder, e))?;
    let mut days: BTreeMap<i64, String> = BTreeMap::new();
    for m in minutes {
        let line = serde_json::to_string(m).expect("a minute serializes");
        let text = days.entry(m.t.div_euclid(DAY_MS)).or_default();
        text.push_str(&line);
        text.push('\n');
    }
    for (day, text) in days {
        let path = day_file(dir, service, day);
        let begun = !path.exists();
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| write(&path, e))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|e| write(&path, e))?;
        if begun {
            remove_old(dir, service, day).map_err(|e| write(&folder, e))?;
        }
    }
    Ok(())
}

/// Remove `service`'s day files more than [`RETENTION_DAYS`] before `day`.
fn remove_old(dir: &Path, service: &str, day: i64) -> io::Result<()> {
    for (d, path) in day_files(dir, service)? {
        if d <= day - RETENTION_DAYS {
            fs::remove_file(path)?;
        }
    }
    Ok(())
}

/// The start of the newest minute recorded for `service`, if any: the last
/// readable line of its newest file.
pub fn last_recorded(dir: &Path, service: &str) -> Result<Option<TimestampMs>, StateError> {
    let files = day_files(dir, service).map_err(|source| StateError::Read {
        path: folder(dir),
        source,
    })?;
    for (_, path) in files.iter().rev() {
        let read = read_file(path, i64::MIN, i64::MAX)?;
        if let Some(m) = read.minutes.last() {
            return Ok(Some(m.t));
        }
    }
    Ok(None)
}

/// `service`'s minutes starting from `from` up to (not including) `to`.
pub fn read(
    dir: &Path,
    service: &str,
    from: TimestampMs,
    to: TimestampMs,
) -> Result<Read, StateError> {
    let files = day_files(dir, service).map_err(|source| StateError::Read {
        path: folder(dir),
        source,
    })?;
    let mut out = Read::default();
    let mut by_time: BTreeMap<TimestampMs, Minute> = BTreeMap::new();
    for (day, path) in files {
        if day < from.div_euclid(DAY_MS) || day > to.div_euclid(DAY_MS) {
            continue;
        }
        let read = read_file(&path, from, to)?;
        out.skipped.extend(read.skipped);
        by_time.extend(read.minutes.into_iter().map(|m| (m.t, m)));
    }
    out.minutes = by_time.into_values().collect();
    Ok(out)
}

/// One day file's minutes from `from` to `to` (excluded), in file order,
/// each line bounded and checked.
fn read_file(path: &Path, from: TimestampMs, to: TimestampMs) -> Result<Read, StateError> {
    let file = fs::File::open(path).map_err(|source| StateError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Read::default();
    let mut reader = io::BufReader::new(file);
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        let n = io::Read::take(&mut reader, MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|source| StateError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        if n == 0 {
            break;
        }
        number += 1;
        let skip = |why: String| format!("{}:{number}: {why}", path.display());
        if line.last() != Some(&b'\n') {
            if line.len() > MAX_LINE_BYTES {
                out.skipped
                    .push(skip(format!("longer than {MAX_LINE_BYTES} bytes")));
                // The rest of the long line.
                let mut rest = Vec::new();
                reader
                    .read_until(b'\n', &mut rest)
                    .map_err(|source| StateError::Read {
                        path: path.to_path_buf(),
                        source,
                    })?;
            } else {
                out.skipped.push(skip("cut short (no end of line)".into()));
            }
            continue;
        }
        match parse(&line) {
            Ok(m) if m.t >= from && m.t < to => out.minutes.push(m),
            Ok(_) => {}
            Err(why) => out.skipped.push(skip(why)),
        }
    }
    Ok(out)
}

/// One line, checked: a minute's start, finite values.
fn parse(line: &[u8]) -> Result<Minute, String> {
    let m: Minute = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    if m.t.rem_euclid(MINUTE_MS) != 0 {
        return Err(format!("t {} is not the start of a minute", m.t));
    }
    if m.values.len() > MAX_SIGNALS {
        return Err(format!("more than {MAX_SIGNALS} signals"));
    }
    if let Some((name, v)) = m.values.iter().find(|(_, v)| !v.is_finite()) {
        return Err(format!("{name} is {v}, not a number"));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vedfolnir_core::model::SignalId;

    const T0: TimestampMs = 1_765_065_600_000; // 2025-12-07T00:00:00Z

    fn history(samples: &[(TimestampMs, f64, f64)]) -> History {
        let mut h = History::default();
        for (at, cpu, rps) in samples {
            let rate = SignalId::Custom("requests-per-second".into());
            h.push(*at, [(&SignalId::Cpu, *cpu), (&rate, *rps)], 3_600_000);
        }
        h
    }

    #[test]
    fn a_minute_is_each_signals_mean_over_the_time_its_samples_stand_for() {
        // Passes every 15 s from 00:00:00 to 00:02:15; a sample stands for
        // the 15 s before it.
        let samples: Vec<_> = (0..10)
            .map(|i| (T0 + i * 15_000, 0.1 * i as f64, 10.0))
            .collect();
        let h = history(&samples);
        let minutes = whole_minutes(&h, i64::MIN, T0 + 135_000);
        assert_eq!(minutes.len(), 2, "{minutes:?}");
        assert_eq!(minutes[0].t, T0);
        // Minute 0: the samples at 15, 30, 45 and 60 s (the one at 0 stands
        // for nothing: what came before it is not known).
        assert!(
            (minutes[0].values["cpu"] - 0.25).abs() < 1e-9,
            "{minutes:?}"
        );
        assert_eq!(minutes[0].samples, 4);
        assert!(
            (minutes[1].values["cpu"] - 0.65).abs() < 1e-9,
            "{minutes:?}"
        );
        assert_eq!(minutes[1].values["requests-per-second"], 10.0);
        // Nothing after the last recorded, nothing past the newest sample.
        assert!(whole_minutes(&h, T0 + 60_000, T0 + 135_000).is_empty());
        assert_eq!(whole_minutes(&h, T0, T0 + 135_000).len(), 1);
        assert_eq!(whole_minutes(&h, i64::MIN, T0 + 400_000).len(), 2);
    }

    #[test]
    fn a_change_between_two_passes_is_split_at_the_minute() {
        // A pass every 20 s at 00:00:50 and 00:01:10: the second read 30
        // req/s over the 20 s between them, 10 s of each minute.
        let h = history(&[
            (T0 + 10_000, 0.0, 5.0),
            (T0 + 30_000, 0.0, 5.0),
            (T0 + 50_000, 0.0, 5.0),
            (T0 + 70_000, 0.0, 30.0),
            (T0 + 90_000, 0.0, 30.0),
            (T0 + 110_000, 0.0, 30.0),
            (T0 + 130_000, 0.0, 30.0),
        ]);
        let minutes = whole_minutes(&h, i64::MIN, T0 + 130_000);
        let rps: Vec<f64> = minutes
            .iter()
            .map(|m| m.values["requests-per-second"])
            .collect();
        // Minute 0 from 00:00:10 (the first sample): 40 s at 5, 10 s at 30.
        assert_eq!(rps.len(), 2, "{minutes:?}");
        assert!(
            (rps[0] - (40.0 * 5.0 + 10.0 * 30.0) / 50.0).abs() < 1e-9,
            "{rps:?}"
        );
        assert_eq!(rps[1], 30.0);
    }

    #[test]
    fn minutes_are_kept_by_day_read_back_in_order_and_old_days_removed() {
        let dir = tempfile::tempdir().unwrap();
        let minute = |t: TimestampMs, cpu: f64| Minute {
            t,
            samples: 4,
            values: [("cpu".to_string(), cpu)].into(),
        };
        // Ten days ago, then yesterday's last minute and today's first.
        append(dir.path(), "web", &[minute(T0 - 10 * DAY_MS, 0.9)]).unwrap();
        append(
            dir.path(),
            "web",
            &[minute(T0 - MINUTE_MS, 0.2), minute(T0, 0.3)],
        )
        .unwrap();
        let names: Vec<String> = fs::read_dir(folder(dir.path()))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.contains(&"web.2025-12-07.jsonl".to_string()),
            "{names:?}"
        );
        assert_eq!(names.len(), 2, "the ten-day-old file is removed: {names:?}");
        let read = read(dir.path(), "web", T0 - DAY_MS, T0 + DAY_MS).unwrap();
        let got: Vec<(TimestampMs, f64)> = read
            .minutes
            .iter()
            .map(|m| (m.t, m.values["cpu"]))
            .collect();
        assert_eq!(got, vec![(T0 - MINUTE_MS, 0.2), (T0, 0.3)]);
        assert_eq!(last_recorded(dir.path(), "web").unwrap(), Some(T0));
        assert_eq!(last_recorded(dir.path(), "other").unwrap(), None);
    }

    #[test]
    fn bad_lines_are_skipped_and_named_and_a_minute_written_twice_reads_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = day_file(dir.path(), "web", T0.div_euclid(DAY_MS));
        fs::create_dir_all(folder(dir.path())).unwrap();
        let long = format!(
            "{{\"t\":{T0},\"samples\":1,\"values\":{{\"x\":\"{}\"}}}}\n",
            "a".repeat(MAX_LINE_BYTES)
        );
        let text = format!(
            "{{\"t\":{T0},\"samples\":1,\"values\":{{\"cpu\":0.1}}}}\n\
             {{\"t\":{T0},\"samples\":2,\"values\":{{\"cpu\":0.2}}}}\n\
             not json\n\
             {{\"t\":{},\"samples\":1,\"values\":{{}}}}\n\
             {long}\
             {{\"t\":{},\"samples\":1,\"values\":{{\"cpu\":0.4}}}}\n\
             {{\"t\":{},\"samp",
            T0 + 1,
            T0 + MINUTE_MS,
            T0 + 2 * MINUTE_MS
        );
        fs::write(&path, text).unwrap();
        let read = read(dir.path(), "web", T0, T0 + DAY_MS).unwrap();
        let got: Vec<(TimestampMs, f64)> = read
            .minutes
            .iter()
            .map(|m| (m.t, m.values["cpu"]))
            .collect();
        assert_eq!(got, vec![(T0, 0.2), (T0 + MINUTE_MS, 0.4)]);
        let why: Vec<&str> = read
            .skipped
            .iter()
            .map(|s| s.rsplit_once(": ").unwrap().1)
            .collect();
        assert_eq!(read.skipped.len(), 4, "{:?}", read.skipped);
        assert!(read.skipped[0].contains(":3: "), "{:?}", read.skipped);
        assert!(why[1].contains("not the start of a minute"), "{why:?}");
        assert!(why[2].contains("longer than"), "{why:?}");
        assert!(why[3].contains("cut short"), "{why:?}");
    }
}
