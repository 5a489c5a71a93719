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
    /// Where action records are also sent (WEBHOOK_URL).
    notifier: Option<crate::notifier::Notifier>,
}

/// Another process holds the service's lock (exit code 9).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Busy(pub String);

/// Who started a decision or an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Actor {
    /// A `check` pass or the daemon's loop: the policy and the guard rails.
    #[serde(alias = "policy")]
    Auto,
    /// `scale-up`, `scale-down` or `reset` on the command line.
    Manual,
    /// A request to the daemon's HTTP API.
    Api,
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Actor::Auto => "auto",
            Actor::Manual => "manual",
            Actor::Api => "api",
        })
    }
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
    /// A dry run decided to scale: what production would have done. Its
    /// cooldown advances as if it had scaled.
    WouldScale,
    /// Automatic scaling paused (API).
    Paused,
    /// Automatic scaling resumed (API).
    Resumed,
    /// The shadow policy's decision differs from the live one's.
    ShadowDiverged,
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
    /// Who started it.
    #[serde(alias = "trigger")]
    pub actor: Actor,
    /// Decided by a dry run: nothing was changed on the engine.
    #[serde(default)]
    pub dry_run: bool,
    /// Which way.
    pub direction: Direction,
    /// Running replicas before.
    pub from: u32,
    /// The target count.
    pub to: u32,
    /// Why: the policy's reasons and every guard-rail intervention.
    #[serde(default)]
    pub reasons: Vec<String>,
    /// The plugin that decided (automatic decisions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<PluginRecord>,
    /// The policy's scores (automatic decisions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scores: Option<Scores>,
    /// The inputs that mattered: each signal's newest value, or why it was
    /// missing.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, serde_json::Value>,
    /// What the actuator did (finished records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<ScaleReport>,
}

impl AuditRecord {
    /// A record with no scale numbers, plugin, scores or inputs yet.
    pub fn new(service: &str, event: Event, actor: Actor, at: TimestampMs) -> AuditRecord {
        AuditRecord {
            time_ms: at,
            action_id: format!("{service}-{at}-{}", std::process::id()),
            service: service.to_string(),
            event,
            actor,
            dry_run: false,
            direction: Direction::Hold,
            from: 0,
            to: 0,
            reasons: Vec::new(),
            plugin: None,
            scores: None,
            inputs: BTreeMap::new(),
            report: None,
        }
    }
}

/// Scales with an intent (`scale-started`) and no outcome: the process
/// stopped mid-scale.
pub fn interrupted(records: &[AuditRecord]) -> Vec<&AuditRecord> {
    records
        .iter()
        .filter(|r| {
            r.event == Event::ScaleStarted
                && !records
                    .iter()
                    .any(|f| f.event == Event::ScaleFinished && f.action_id == r.action_id)
        })
        .collect()
}

/// Which plugin decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginRecord {
    /// The policy's own name.
    pub name: String,
    /// The policy's own version.
    pub version: String,
    /// sha256 of the module, hex.
    pub digest: String,
    /// Where it came from (a path or `builtin:<name>`).
    pub source: String,
}

impl From<&vedfolnir_sandbox::PluginId> for PluginRecord {
    fn from(id: &vedfolnir_sandbox::PluginId) -> Self {
        PluginRecord {
            name: id.name.clone(),
            version: id.version.clone(),
            digest: id.digest.clone(),
            source: id.source.clone(),
        }
    }
}

/// A policy's two scores.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Scale-up score.
    pub up: f64,
    /// Scale-down score.
    pub down: f64,
}

/// The last decision of a service, kept in its state file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastDecision {
    /// When.
    pub time_ms: TimestampMs,
    /// Which way (hold included).
    pub direction: Direction,
    /// Replicas running then.
    pub from: u32,
    /// The target.
    pub to: u32,
    /// Who decided.
    pub actor: Actor,
    /// A dry run's decision ("would scale").
    pub dry_run: bool,
    /// The reason that settled it.
    pub summary: String,
}

/// The persisted state of one service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceState {
    /// When a scale-up last moved the count.
    pub last_scale_up: Option<TimestampMs>,
    /// When a scale-down last moved the count.
    pub last_scale_down: Option<TimestampMs>,
    /// Automatic scaling paused by an operator.
    #[serde(default)]
    pub paused: bool,
    /// A dry run's own cooldown clocks: advanced by "would scale" decisions,
    /// kept apart so a dry run never delays production scaling.
    #[serde(default)]
    pub dry_run: DryRunClocks,
    /// The last decision.
    #[serde(default)]
    pub last_decision: Option<LastDecision>,
}

/// A dry run's cooldown clocks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DryRunClocks {
    /// When a dry run last "would have" scaled up.
    pub last_scale_up: Option<TimestampMs>,
    /// When a dry run last "would have" scaled down.
    pub last_scale_down: Option<TimestampMs>,
}

impl ServiceState {
    /// The guard rails' view: the live clocks, or a dry run's own.
    pub fn guard(&self, dry_run: bool) -> GuardState {
        let (up, down) = if dry_run {
            (self.dry_run.last_scale_up, self.dry_run.last_scale_down)
        } else {
            (self.last_scale_up, self.last_scale_down)
        };
        GuardState {
            last_scale_up: up,
            last_scale_down: down,
            paused: self.paused,
        }
    }

    /// Start the cooldown of `direction` at `at` (live or dry-run clocks).
    pub fn record_scale(&mut self, direction: Direction, at: TimestampMs, dry_run: bool) {
        let (up, down) = if dry_run {
            (
                &mut self.dry_run.last_scale_up,
                &mut self.dry_run.last_scale_down,
            )
        } else {
            (&mut self.last_scale_up, &mut self.last_scale_down)
        };
        match direction {
            Direction::Up => *up = Some(at),
            Direction::Down => *down = Some(at),
            Direction::Hold => {}
        }
    }
}

/// Samples kept for `check` runs, by signal name.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct History {
    /// `[time_ms, value]` pairs, oldest first.
    pub signals: BTreeMap<String, Vec<(TimestampMs, f64)>>,
}

impl History {
    /// Add one sample per signal and drop those older than `retention_ms`.
    /// Samples older than an hour are kept as 15-minute means (see
    /// `vedfolnir_core::window::compact`), so days of history for a
    /// forecasting policy stay a few hundred points per signal.
    pub fn push(&mut self, now: TimestampMs, values: &[(SignalId, f64)], retention_ms: u64) {
        use vedfolnir_core::window::{BUCKET_MS, FINE_MS, compact};
        for (signal, value) in values {
            self.signals
                .entry(signal.to_string())
                .or_default()
                .push((now, *value));
        }
        let oldest = now - retention_ms as i64;
        for samples in self.signals.values_mut() {
            samples.retain(|(t, _)| *t >= oldest && *t <= now);
            compact(samples, now - FINE_MS as i64, BUCKET_MS);
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
            notifier: None,
        })
    }

    /// The same store, also notifying each action record once written.
    pub fn with_notifier(mut self, notifier: crate::notifier::Notifier) -> Store {
        self.notifier = Some(notifier);
        self
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
            Ok(()) => {
                // Say who holds it, for the next one who tries.
                let holder = format!(
                    "pid {} ({}), since {}\n",
                    std::process::id(),
                    std::env::args()
                        .skip(1)
                        .take(1)
                        .collect::<Vec<_>>()
                        .join(" "),
                    crate::ops::format_time(crate::ops::now_ms())
                );
                let mut w = &f;
                let _ = f.set_len(0).and_then(|_| w.write_all(holder.as_bytes()));
                Ok(f)
            }
            Err(fs::TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                Err(Busy(format!(
                    "another vedfolnir-autoscaler is deciding or scaling {service}: {} holds {}; try again when it is done{}",
                    if holder.is_empty() { "a process" } else { holder },
                    path.display(),
                    if holder.contains("(run)") {
                        " (a running daemon takes manual scales on its API: POST /api/v1/services/<service>/scale)"
                    } else {
                        ""
                    }
                ))
                .into())
            }
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
            .with_context(|| format!("cannot write the audit log {}", path.display()))?;
        if let Some(n) = &self.notifier {
            n.offer(record);
        }
        Ok(())
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

    /// Check the state directory can take the audit log and state files:
    /// the daemon refuses to start, and so to act, when it cannot record
    /// what it does.
    pub fn check_writable(&self) -> Result<()> {
        let path = self.audit_path();
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| {
                format!(
                    "cannot write the audit log {}: refusing to act without one",
                    path.display()
                )
            })?;
        tempfile::NamedTempFile::new_in(&self.dir).with_context(|| {
            format!(
                "cannot write state files in {}: refusing to act without them",
                self.dir.display()
            )
        })?;
        Ok(())
    }

    /// The state of one service. None yet means no scale happened. A
    /// corrupt or empty file is moved aside and the state rebuilt from the
    /// audit log; with no audit record of the service either, both
    /// cooldowns start now (never silently disabled).
    pub fn state(&self, service: &str) -> Result<ServiceState> {
        let path = self.state_path(service);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ServiceState::default()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        match serde_json::from_slice::<ServiceState>(&bytes) {
            Ok(s) => Ok(s),
            Err(e) => {
                let why = if bytes.iter().all(u8::is_ascii_whitespace) {
                    "empty".to_string()
                } else {
                    format!("not valid: {e}")
                };
                let aside = path.with_extension(format!("json.corrupt-{}", crate::ops::now_ms()));
                fs::rename(&path, &aside).with_context(|| {
                    format!("{} is {why}, and cannot be moved aside", path.display())
                })?;
                let (state, how) = self.recover(service)?;
                tracing::warn!(
                    path = %path.display(), moved_to = %aside.display(), recovered = %how,
                    "state file {why}; rebuilt"
                );
                eprintln!(
                    "warning: {} was {why}; moved to {} and rebuilt {how}",
                    path.display(),
                    aside.display()
                );
                self.save_state(service, &state)?;
                Ok(state)
            }
        }
    }

    /// Rebuild a service's state from the audit log.
    fn recover(&self, service: &str) -> Result<(ServiceState, String)> {
        let records = self.audit_records(service)?;
        let now = crate::ops::now_ms();
        if records.is_empty() {
            let state = ServiceState {
                last_scale_up: Some(now),
                last_scale_down: Some(now),
                ..Default::default()
            };
            return Ok((
                state,
                "with both cooldowns starting now (no audit record of the service)".into(),
            ));
        }
        let mut state = ServiceState::default();
        for r in &records {
            match r.event {
                Event::ScaleFinished if r.report.as_ref().is_some_and(|p| p.moved()) => {
                    state.record_scale(r.direction, r.time_ms, false);
                }
                Event::WouldScale => state.record_scale(r.direction, r.time_ms, true),
                Event::Reset => {
                    state.last_scale_up = None;
                    state.last_scale_down = None;
                }
                Event::Paused => state.paused = true,
                Event::Resumed => state.paused = false,
                _ => {}
            }
        }
        Ok((
            state,
            format!(
                "from {} audit record(s) in {}",
                records.len(),
                self.audit_path().display()
            ),
        ))
    }

    /// Replace the state of one service atomically.
    pub fn save_state(&self, service: &str, state: &ServiceState) -> Result<()> {
        let path = self.state_path(service);
        write_atomic(
            &path,
            &serde_json::to_vec_pretty(state).expect("state serializes"),
        )
        .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Change the state of one service: read, change, replace atomically.
    pub fn update_state<T>(
        &self,
        service: &str,
        change: impl FnOnce(&mut ServiceState) -> T,
    ) -> Result<T> {
        let mut state = self.state(service)?;
        let out = change(&mut state);
        self.save_state(service, &state)?;
        Ok(out)
    }

    /// The live guard state of one service.
    pub fn guard_state(&self, service: &str) -> Result<GuardState> {
        Ok(self.state(service)?.guard(false))
    }

    /// Record a scale that moved the replica count: its cooldown starts now.
    pub fn record_scale(&self, service: &str, direction: Direction, at: TimestampMs) -> Result<()> {
        self.update_state(service, |s| s.record_scale(direction, at, false))
    }

    /// Clear the cooldown clocks, live and dry-run (keeping the pause flag,
    /// the audit and the sample history); returns what they were.
    pub fn reset_cooldowns(&self, service: &str) -> Result<GuardState> {
        self.update_state(service, |s| {
            let before = s.guard(false);
            s.last_scale_up = None;
            s.last_scale_down = None;
            s.dry_run = DryRunClocks::default();
            before
        })
    }

    /// The newest audit records of every service, newest first.
    pub fn recent_records(&self, service: Option<&str>, limit: usize) -> Result<Vec<AuditRecord>> {
        let path = self.audit_path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        Ok(text
            .lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<AuditRecord>(l).ok())
            .filter(|r| service.is_none_or(|s| r.service == s))
            .take(limit)
            .collect())
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
            direction: Direction::Up,
            from: 2,
            to: 3,
            ..AuditRecord::new(service, event, Actor::Manual, 1)
        }
    }

    fn finished(service: &str, direction: Direction, at: TimestampMs, reached: u32) -> AuditRecord {
        AuditRecord {
            direction,
            from: 2,
            to: 3,
            report: Some(ScaleReport {
                from: 2,
                to: 3,
                reached,
                outcome: crate::actuate::Outcome::Succeeded,
                created: vec![],
                removed: vec![],
                failed: vec![],
                error: None,
                duration_ms: 1,
            }),
            ..AuditRecord::new(service, Event::ScaleFinished, Actor::Auto, at)
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
    fn state_is_replaced_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.guard_state("web").unwrap(), GuardState::default());
        store.record_scale("web", Direction::Up, 10).unwrap();
        store.record_scale("web", Direction::Down, 20).unwrap();
        let s = store.guard_state("web").unwrap();
        assert_eq!((s.last_scale_up, s.last_scale_down), (Some(10), Some(20)));
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_corrupt_or_empty_state_file_is_rebuilt_from_the_audit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .audit(&finished("web", Direction::Up, 100, 3))
            .unwrap();
        // A scale that did not move the count starts no cooldown.
        store
            .audit(&finished("web", Direction::Down, 150, 2))
            .unwrap();
        store
            .audit(&AuditRecord::new("web", Event::Paused, Actor::Api, 160))
            .unwrap();
        store
            .audit(&AuditRecord {
                direction: Direction::Down,
                dry_run: true,
                ..AuditRecord::new("web", Event::WouldScale, Actor::Auto, 170)
            })
            .unwrap();
        store
            .audit(&finished("other", Direction::Up, 200, 3))
            .unwrap();
        for bad in ["", "{not json", "\n"] {
            fs::write(dir.path().join("web.state.json"), bad).unwrap();
            let s = store.state("web").unwrap();
            assert_eq!(s.last_scale_up, Some(100), "{bad:?}");
            assert_eq!(s.last_scale_down, None, "{bad:?}");
            assert!(s.paused, "{bad:?}");
            assert_eq!(s.dry_run.last_scale_down, Some(170));
            // Rewritten, readable, and the bad one kept for a post-mortem.
            assert_eq!(store.state("web").unwrap(), s);
        }
        let aside = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("web.state.json.corrupt-")
            })
            .count();
        assert!(aside >= 1, "the corrupt file is kept");
    }

    #[test]
    fn with_no_audit_either_a_rebuilt_state_starts_both_cooldowns() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        fs::write(dir.path().join("web.state.json"), "").unwrap();
        let before = crate::ops::now_ms();
        let s = store.guard_state("web").unwrap();
        assert!(s.last_scale_up.unwrap() >= before);
        assert!(s.last_scale_down.unwrap() >= before);
    }

    #[test]
    fn dry_run_clocks_are_apart_from_the_live_ones() {
        let mut s = ServiceState::default();
        s.record_scale(Direction::Up, 10, true);
        assert_eq!(s.guard(false).last_scale_up, None);
        assert_eq!(s.guard(true).last_scale_up, Some(10));
        s.record_scale(Direction::Down, 20, false);
        assert_eq!(s.guard(false).last_scale_down, Some(20));
        assert_eq!(s.guard(true).last_scale_down, None);
    }

    #[test]
    fn old_audit_records_still_read() {
        let line = r#"{"time_ms":1,"action_id":"a","service":"web","event":"scale-started","trigger":"policy","direction":"up","from":2,"to":3}"#;
        let r: AuditRecord = serde_json::from_str(line).unwrap();
        assert_eq!((r.actor, r.dry_run), (Actor::Auto, false));
    }

    #[test]
    fn an_unwritable_audit_log_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.check_writable().unwrap();
        // The audit log's place is taken by a folder: it cannot be opened.
        fs::remove_file(store.audit_path()).unwrap();
        fs::create_dir(store.audit_path()).unwrap();
        let e = format!("{:#}", store.check_writable().unwrap_err());
        assert!(
            e.contains("audit.jsonl") && e.contains("refusing to act"),
            "{e}"
        );
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
        // It says who holds it.
        assert!(
            format!("{e}").contains(&format!("pid {}", std::process::id())),
            "{e}"
        );
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

    #[test]
    fn days_of_history_stay_a_few_hundred_points() {
        // Three days at 15 s, kept for three days.
        let mut h = History::default();
        let day = 24 * 3_600_000;
        for i in 0..(3 * day / 15_000) {
            h.push(i * 15_000, &[(SignalId::Cpu, 0.5)], 3 * day as u64);
        }
        let w = h.window(&SignalId::Cpu);
        // About 71 hours of 15-minute means, then every sample of the last
        // 60 to 75 minutes (a bucket is averaged once it is whole).
        let n = w.samples.len();
        assert!((71 * 4 + 240..=72 * 4 + 300).contains(&n), "{n}");
        assert!(w.samples.iter().all(|s| s.value == 0.5));
        assert!(w.samples.windows(2).all(|p| p[0].at < p[1].at));
    }
}
