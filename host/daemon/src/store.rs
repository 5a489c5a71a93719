//! What the daemon keeps on disk, in its state directory:
//!
//! - `audit.jsonl`: one JSON record per line, appended and fsynced. A scale
//!   writes a `scale-started` record before it touches the engine and a
//!   `scale-finished` record (with what happened, replica by replica) after;
//!   a started record without its finish is an interrupted scale.
//! - `<service>.state.json`: the cooldown clocks and the pause flag, replaced
//!   atomically (write, fsync, rename), and only after a scale succeeded.
//! - `<service>.samples.json`: the signal history of one-shot `check` runs,
//!   so windows such as "cpu above 70% for 5 minutes" span cron runs.
//! - `<service>.lock`: held (flock) by whoever is deciding or scaling the
//!   service, so two overlapping cron runs, or a cron run and an operator,
//!   never scale it at once.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use vedfolnir_core::guard::GuardState;
use vedfolnir_core::model::{Direction, Sample, SignalId, SignalWindow, TimestampMs};

use crate::actuate::ScaleReport;

/// The state directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// Another process holds the service's lock (exit code 9).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Busy(pub String);

/// What started a scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    /// `scale-up` / `scale-down` on the command line.
    Manual,
    /// A `check` pass (or the daemon's loop): the policy and the guard rails.
    Policy,
}

/// The kind of an audit record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Event {
    /// Written before the engine is touched.
    ScaleStarted,
    /// Written after, with the report.
    ScaleFinished,
    /// A pass that decided to hold, or could not decide.
    Held,
    /// An operator cleared the cooldowns (`reset`); `from`/`to` are 0.
    Reset,
}

/// One line of `audit.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Milliseconds since the epoch.
    pub time_ms: TimestampMs,
    /// Pairs a started record with its finish.
    pub action_id: String,
    /// The policy's service.
    pub service: String,
    /// What kind of record.
    pub event: Event,
    /// What started it.
    pub trigger: Trigger,
    /// Which way.
    pub direction: Direction,
    /// Running replicas before.
    pub from: u32,
    /// The target count.
    pub to: u32,
    /// Why: the policy's reasons and every guard-rail intervention.
    #[serde(default)]
    pub reasons: Vec<String>,
    /// What the actuator did (finished records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<ScaleReport>,
}

/// The persisted guard state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct StateFile {
    last_scale_up: Option<TimestampMs>,
    last_scale_down: Option<TimestampMs>,
    #[serde(default)]
    paused: bool,
}

/// Samples kept for `check` runs, by signal name.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct History {
    /// `[time_ms, value]` pairs, oldest first.
    pub signals: BTreeMap<String, Vec<(TimestampMs, f64)>>,
}

impl History {
    /// Add one sample per signal and drop those older than `retention_ms`.
    pub fn push(&mut self, now: TimestampMs, values: &[(SignalId, f64)], retention_ms: u64) {
        for (signal, value) in values {
            self.signals
                .entry(signal.to_string())
                .or_default()
                .push((now, *value));
        }
        let oldest = now - retention_ms as i64;
        for samples in self.signals.values_mut() {
            samples.retain(|(t, _)| *t >= oldest && *t <= now);
        }
        self.signals.retain(|_, s| !s.is_empty());
    }

    /// The window of one signal.
    pub fn window(&self, signal: &SignalId) -> SignalWindow {
        SignalWindow {
            signal: signal.clone(),
            samples: self
                .signals
                .get(&signal.to_string())
                .map(|s| {
                    s.iter()
                        .map(|(t, v)| Sample { at: *t, value: *v })
                        .collect()
                })
                .unwrap_or_default(),
            missing_reason: None,
        }
    }
}

/// Write `bytes` to `path` atomically: a temporary file in the same
/// directory, fsynced, renamed over, and the directory fsynced.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    File::open(dir)?.sync_all()
}

impl Store {
    /// Open (creating) the state directory.
    pub fn open(dir: &Path) -> Result<Store> {
        fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the state directory {}", dir.display()))?;
        Ok(Store {
            dir: dir.to_path_buf(),
        })
    }

    /// The audit log's path.
    pub fn audit_path(&self) -> PathBuf {
        self.dir.join("audit.jsonl")
    }

    fn state_path(&self, service: &str) -> PathBuf {
        self.dir.join(format!("{service}.state.json"))
    }

    fn samples_path(&self, service: &str) -> PathBuf {
        self.dir.join(format!("{service}.samples.json"))
    }

    /// Take the service's lock, or say who should be waited for. Released
    /// when the returned file is dropped (or the process dies).
    pub fn lock(&self, service: &str) -> Result<File> {
        let path = self.dir.join(format!("{service}.lock"));
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        match f.try_lock() {
            Ok(()) => Ok(f),
            Err(fs::TryLockError::WouldBlock) => Err(Busy(format!(
                "another vedfolnir-autoscaler is deciding or scaling {service} (it holds {}); try again when it is done",
                path.display()
            ))
            .into()),
            Err(fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }

    /// Append one record, fsynced before returning.
    pub fn audit(&self, record: &AuditRecord) -> Result<()> {
        let path = self.audit_path();
        let mut line = serde_json::to_vec(record).expect("records serialize");
        line.push(b'\n');
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open the audit log {}", path.display()))?;
        // One write of the whole line: appends do not interleave.
        f.write_all(&line)
            .and_then(|_| f.sync_data())
            .with_context(|| format!("cannot write the audit log {}", path.display()))
    }

    /// The audit records of one service, oldest first. A torn last line (a
    /// crash mid-append) is skipped, not an error.
    pub fn audit_records(&self, service: &str) -> Result<Vec<AuditRecord>> {
        let path = self.audit_path();
        let f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", path.display()));
            }
        };
        let mut out = Vec::new();
        for line in io::BufReader::new(f).lines() {
            let line = line.with_context(|| format!("cannot read {}", path.display()))?;
            if let Ok(r) = serde_json::from_str::<AuditRecord>(&line)
                && r.service == service
            {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// The guard state of one service (none yet: no scale happened).
    pub fn guard_state(&self, service: &str) -> Result<GuardState> {
        let path = self.state_path(service);
        let s: StateFile = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{} is not a valid state file (remove it to start over)",
                    path.display()
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => StateFile::default(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        Ok(GuardState {
            last_scale_up: s.last_scale_up,
            last_scale_down: s.last_scale_down,
            paused: s.paused,
        })
    }

    /// Record a scale that moved the replica count: its cooldown starts now.
    pub fn record_scale(&self, service: &str, direction: Direction, at: TimestampMs) -> Result<()> {
        let mut state = self.guard_state(service)?;
        match direction {
            Direction::Up => state.last_scale_up = Some(at),
            Direction::Down => state.last_scale_down = Some(at),
            Direction::Hold => return Ok(()),
        }
        let file = StateFile {
            last_scale_up: state.last_scale_up,
            last_scale_down: state.last_scale_down,
            paused: state.paused,
        };
        let path = self.state_path(service);
        write_atomic(
            &path,
            &serde_json::to_vec_pretty(&file).expect("state serializes"),
        )
        .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Clear the cooldown clocks (keeping the pause flag, the audit and the
    /// sample history); returns what they were.
    pub fn reset_cooldowns(&self, service: &str) -> Result<GuardState> {
        let before = self.guard_state(service)?;
        let file = StateFile {
            last_scale_up: None,
            last_scale_down: None,
            paused: before.paused,
        };
        let path = self.state_path(service);
        write_atomic(
            &path,
            &serde_json::to_vec_pretty(&file).expect("state serializes"),
        )
        .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(before)
    }

    /// The sample history of one service.
    pub fn history(&self, service: &str) -> Result<History> {
        let path = self.samples_path(service);
        match fs::read(&path) {
            // A corrupt history only loses windows: start over, loudly.
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "sample history unreadable; starting a new one");
                History::default()
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(History::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Replace the sample history of one service.
    pub fn save_history(&self, service: &str, history: &History) -> Result<()> {
        let path = self.samples_path(service);
        write_atomic(
            &path,
            &serde_json::to_vec(history).expect("history serializes"),
        )
        .with_context(|| format!("cannot write {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(event: Event, service: &str) -> AuditRecord {
        AuditRecord {
            time_ms: 1,
            action_id: "a".into(),
            service: service.into(),
            event,
            trigger: Trigger::Manual,
            direction: Direction::Up,
            from: 2,
            to: 3,
            reasons: vec![],
            report: None,
        }
    }

    #[test]
    fn audit_appends_and_survives_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.audit(&record(Event::ScaleStarted, "web")).unwrap();
        store.audit(&record(Event::ScaleStarted, "other")).unwrap();
        store.audit(&record(Event::ScaleFinished, "web")).unwrap();
        let mut f = OpenOptions::new()
            .append(true)
            .open(store.audit_path())
            .unwrap();
        f.write_all(b"{\"time_ms\": 5, \"act").unwrap();
        let records = store.audit_records("web").unwrap();
        assert_eq!(
            records.iter().map(|r| r.event).collect::<Vec<_>>(),
            [Event::ScaleStarted, Event::ScaleFinished]
        );
    }

    #[test]
    fn state_is_replaced_atomically_and_a_corrupt_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.guard_state("web").unwrap(), GuardState::default());
        store.record_scale("web", Direction::Up, 10).unwrap();
        store.record_scale("web", Direction::Down, 20).unwrap();
        let s = store.guard_state("web").unwrap();
        assert_eq!((s.last_scale_up, s.last_scale_down), (Some(10), Some(20)));
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        fs::write(dir.path().join("web.state.json"), "{not json").unwrap();
        let e = format!("{:#}", store.guard_state("web").unwrap_err());
        assert!(e.contains("web.state.json"), "{e}");
    }

    #[test]
    fn reset_clears_the_cooldowns_and_keeps_the_pause_and_history() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.record_scale("web", Direction::Up, 10).unwrap();
        let mut h = History::default();
        h.push(5, &[(SignalId::Cpu, 0.5)], 60_000);
        store.save_history("web", &h).unwrap();
        let before = store.reset_cooldowns("web").unwrap();
        assert_eq!(before.last_scale_up, Some(10));
        assert_eq!(store.guard_state("web").unwrap(), GuardState::default());
        assert_eq!(
            store
                .history("web")
                .unwrap()
                .window(&SignalId::Cpu)
                .samples
                .len(),
            1
        );
    }

    #[test]
    fn the_lock_is_exclusive_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let held = store.lock("web").unwrap();
        let e = store.lock("web").unwrap_err();
        assert!(e.is::<Busy>(), "{e:#}");
        assert!(format!("{e}").contains("web.lock"), "{e}");
        // Another service is not blocked.
        let _other = store.lock("api").unwrap();
        drop(held);
        store.lock("web").unwrap();
    }

    #[test]
    fn history_keeps_the_retention_window_only() {
        let mut h = History::default();
        h.push(0, &[(SignalId::Cpu, 0.1)], 60_000);
        h.push(
            30_000,
            &[(SignalId::Cpu, 0.2), (SignalId::Memory, 0.5)],
            60_000,
        );
        h.push(90_000, &[(SignalId::Cpu, 0.3)], 60_000);
        let cpu = h.window(&SignalId::Cpu);
        assert_eq!(
            cpu.samples.iter().map(|s| s.at).collect::<Vec<_>>(),
            [30_000, 90_000]
        );
        assert_eq!(h.window(&SignalId::Memory).samples.len(), 1);
        assert!(h.window(&SignalId::QueueDepth).samples.is_empty());
    }
}
