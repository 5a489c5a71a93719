//! What the daemon keeps of each service in its state directory, besides
//! the audit log:
//!
//! - `<service>.state.json`: the cooldown clocks, the pause flag and the
//!   last decision, replaced atomically (write, fsync, rename) and once per
//!   pass;
//! - `<service>.samples.json`: the signal history of one-shot `check` runs,
//!   so windows such as "cpu above 70% for 5 minutes" span cron runs;
//! - `minutes/<service>.<day>.jsonl`: what the sources read, a line a
//!   minute, kept a week ([`minutes`]): the load `simulate --history`
//!   replays;
//! - `<service>.lock`: held (flock) by whoever is deciding or scaling the
//!   service, so two overlapping cron runs, or a cron run and an operator,
//!   never scale it at once. It names its holder (pid, command, since).
//!
//! A state file that is corrupt or empty is moved aside and rebuilt from
//! the audit log ([`recover`]).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use std::time::Duration;

use serde::{Deserialize, Serialize};
use vedfolnir_core::guard::GuardState;
use vedfolnir_core::history::History;
use vedfolnir_core::model::{Direction, TimestampMs};

use crate::audit::{Actor, AuditError, AuditLog, AuditRecord, Event};

pub mod minutes;

/// The state directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A file could not be read.
    #[error("cannot read {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A file could not be written (or the directory created).
    #[error("cannot write {}", .path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A corrupt state file could not be moved aside.
    #[error("{} is {why}, and cannot be moved aside", .path.display())]
    MoveAside {
        /// The file.
        path: PathBuf,
        /// Empty, or not valid.
        why: String,
        /// Why it could not be moved.
        #[source]
        source: io::Error,
    },
    /// Rebuilding a state from the audit log failed.
    #[error("cannot rebuild the state from the audit log")]
    Audit(#[from] AuditError),
    /// The daemon refuses to start without its state files.
    #[error("cannot write state files in {}: refusing to act without them", .dir.display())]
    NotWritable {
        /// The state directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Another process holds the service's lock.
    #[error(transparent)]
    Busy(#[from] Busy),
}

/// Another process holds the service's lock (exit code 9).
#[derive(Debug, thiserror::Error)]
#[error("another vedfolnir-autoscaler is deciding or scaling {service}: {holder} holds {}; try again when it is done{hint}", .path.display())]
pub struct Busy {
    /// The service.
    pub service: String,
    /// Who holds it, as the lock file says.
    pub holder: String,
    /// The lock file.
    pub path: PathBuf,
    /// Where else to go.
    pub hint: &'static str,
}

/// Where the controller keeps each service's state and sample history:
/// the state directory, or (in a replay) memory.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// The state of one service (the default when there is none yet).
    fn state(&self, service: &str, now: TimestampMs) -> Result<ServiceState, StateError>;
    /// Replace the state of one service.
    fn save(&self, service: &str, state: &ServiceState) -> Result<(), StateError>;
    /// The sample history of one service.
    fn history(&self, service: &str) -> Result<History, StateError>;
    /// Replace the sample history of one service.
    fn save_history(&self, service: &str, history: &History) -> Result<(), StateError>;
    /// Keep the minutes of `history` that are whole at `now` and not yet
    /// kept ([`minutes`]); a replay keeps none.
    fn record_minutes(
        &self,
        _service: &str,
        _history: &History,
        _now: TimestampMs,
    ) -> Result<(), StateError> {
        Ok(())
    }
}

/// Change the state of one service: read, change, replace.
pub fn update<T>(
    store: &dyn Store,
    service: &str,
    now: TimestampMs,
    change: impl FnOnce(&mut ServiceState) -> T,
) -> Result<T, StateError> {
    let mut state = store.state(service, now)?;
    let out = change(&mut state);
    store.save(service, &state)?;
    Ok(out)
}

/// States and histories in memory, for replays and tests.
#[derive(Debug, Default)]
pub struct Memory {
    states: std::sync::Mutex<BTreeMap<String, ServiceState>>,
    histories: std::sync::Mutex<BTreeMap<String, History>>,
}

impl Store for Memory {
    fn state(&self, service: &str, _: TimestampMs) -> Result<ServiceState, StateError> {
        let states = self.states.lock().expect("not poisoned");
        Ok(states.get(service).cloned().unwrap_or_default())
    }

    fn save(&self, service: &str, state: &ServiceState) -> Result<(), StateError> {
        let mut states = self.states.lock().expect("not poisoned");
        match states.get_mut(service) {
            Some(kept) => kept.clone_from(state),
            None => {
                states.insert(service.to_string(), state.clone());
            }
        }
        Ok(())
    }

    fn history(&self, service: &str) -> Result<History, StateError> {
        let histories = self.histories.lock().expect("not poisoned");
        Ok(histories.get(service).cloned().unwrap_or_default())
    }

    fn save_history(&self, service: &str, history: &History) -> Result<(), StateError> {
        let mut histories = self.histories.lock().expect("not poisoned");
        histories.insert(service.to_string(), history.clone());
        Ok(())
    }
}

impl Store for StateDir {
    fn state(&self, service: &str, now: TimestampMs) -> Result<ServiceState, StateError> {
        StateDir::state(self, service, now)
    }

    fn save(&self, service: &str, state: &ServiceState) -> Result<(), StateError> {
        StateDir::save(self, service, state)
    }

    fn history(&self, service: &str) -> Result<History, StateError> {
        StateDir::history(self, service)
    }

    fn save_history(&self, service: &str, history: &History) -> Result<(), StateError> {
        StateDir::save_history(self, service, history)
    }

    fn record_minutes(
        &self,
        service: &str,
        history: &History,
        now: TimestampMs,
    ) -> Result<(), StateError> {
        let mut recorded = self.recorded.lock().expect("not poisoned");
        let after = match recorded.get(service) {
            Some(t) => *t,
            None => minutes::last_recorded(&self.dir, service)?.unwrap_or(i64::MIN),
        };
        // Most passes end no minute: nothing to do.
        if now.div_euclid(minutes::MINUTE_MS) * minutes::MINUTE_MS - minutes::MINUTE_MS <= after {
            return Ok(());
        }
        let whole = minutes::whole_minutes(history, after, now);
        if let Some(last) = whole.last() {
            minutes::append(&self.dir, service, &whole)?;
            recorded.insert(service.to_string(), last.t);
        } else {
            recorded.insert(service.to_string(), after);
        }
        Ok(())
    }
}

/// The state directory: state files, sample histories, locks.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
    /// Read to rebuild a corrupt state file.
    audit: AuditLog,
    /// The newest minute kept of each service ([`minutes`]), once read.
    recorded: std::sync::Arc<std::sync::Mutex<BTreeMap<String, TimestampMs>>>,
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
    /// The hold in progress because the policy or a source fails, while it
    /// lasts.
    #[serde(default)]
    pub held: Option<HeldSince>,
    /// The shadow policy's divergence in progress, while it lasts: the
    /// live and the shadow decision (`up to 4`), as last audited.
    #[serde(default)]
    pub diverging: Option<(String, String)>,
    /// How the automatic passes kept to their interval.
    #[serde(default)]
    pub pace: Pace,
}

/// How a service's automatic passes kept to their interval, for `report`
/// (the daemon's `/metrics` has the same as a histogram and a counter).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pace {
    /// Passes recorded.
    pub passes: u64,
    /// Of those, passes that started late (see `controller::LATE_AFTER`).
    pub late: u64,
    /// The last pass's time up to its record stage, ms.
    pub last_ms: u64,
    /// Its slowest stage, and how long it took, ms.
    pub slowest: Option<(String, u64)>,
}

/// A hold because the policy or a source fails: recorded in the audit log
/// when it begins, when what fails changes, and again every
/// [`HELD_REPEAT_MS`] while it lasts, not on every pass (an outage of a
/// weekend would be thousands of records).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldSince {
    /// What fails, e.g. `policy timeout, prometheus response-time-p95`.
    pub cause: String,
    /// When this cause began holding.
    pub since_ms: TimestampMs,
    /// When a record of it was last written.
    pub recorded_ms: TimestampMs,
    /// Passes held on it since, not recorded.
    pub unrecorded: u64,
}

impl Pace {
    /// Count one pass that took `took` up to its record stage, `slowest`
    /// the stage that took longest.
    pub fn record(&mut self, took: Duration, slowest: (&str, Duration), late: bool) {
        self.passes += 1;
        self.late += u64::from(late);
        self.last_ms = took.as_millis() as u64;
        self.slowest = Some((slowest.0.to_string(), slowest.1.as_millis() as u64));
    }
}

/// While a hold's cause is unchanged, it is recorded again after this long.
pub const HELD_REPEAT_MS: i64 = 60 * 60 * 1000;

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

/// A service's state rebuilt from its audit records: the cooldowns of the
/// scales that moved the count, dry-run clocks, resets, pause and resume.
/// With no record of the service at all, both cooldowns start `now`
/// (never silently disabled).
pub fn recover(records: &[AuditRecord], now: TimestampMs) -> ServiceState {
    if records.is_empty() {
        return ServiceState {
            last_scale_up: Some(now),
            last_scale_down: Some(now),
            ..Default::default()
        };
    }
    let mut state = ServiceState::default();
    for r in records {
        match r.event {
            Event::ScaleFinished if r.report.as_ref().is_some_and(|p| p.moved()) => {
                state.record_scale(r.direction, r.time_ms, false);
            }
            Event::WouldScale => state.record_scale(r.direction, r.time_ms, true),
            Event::Reset => {
                if !r.dry_run {
                    state.last_scale_up = None;
                    state.last_scale_down = None;
                }
                state.dry_run = DryRunClocks::default();
            }
            Event::Paused => state.paused = true,
            Event::Resumed => state.paused = false,
            _ => {}
        }
    }
    state
}

impl StateDir {
    /// Open (creating) the state directory `dir`.
    pub fn open(dir: &Path) -> Result<StateDir, StateError> {
        fs::create_dir_all(dir).map_err(|source| StateError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(StateDir::read_only(dir))
    }

    /// The state directory at `dir` for reading only: nothing is created
    /// (a missing directory reads as one where nothing was recorded).
    pub fn read_only(dir: &Path) -> StateDir {
        StateDir {
            dir: dir.to_path_buf(),
            audit: AuditLog::in_dir(dir),
            recorded: Default::default(),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn state_path(&self, service: &str) -> PathBuf {
        self.dir.join(format!("{service}.state.json"))
    }

    fn samples_path(&self, service: &str) -> PathBuf {
        self.dir.join(format!("{service}.samples.json"))
    }

    /// Check state files can be written here.
    pub fn check_writable(&self) -> Result<(), StateError> {
        tempfile::NamedTempFile::new_in(&self.dir)
            .map(|_| ())
            .map_err(|source| StateError::NotWritable {
                dir: self.dir.clone(),
                source,
            })
    }

    /// Take the service's lock for `holder` (the command running), or say
    /// who should be waited for. Released when the returned file is dropped
    /// (or the process dies).
    pub fn lock(&self, service: &str, holder: &str, now: TimestampMs) -> Result<File, StateError> {
        take_lock(
            &self.dir.join(format!("{service}.lock")),
            service,
            holder,
            now,
        )
    }
    /// The state of one service. None yet means no scale happened. A
    /// corrupt or empty file is moved aside and the state rebuilt from the
    /// audit log ([`recover`]).
    pub fn state(&self, service: &str, now: TimestampMs) -> Result<ServiceState, StateError> {
        let path = self.state_path(service);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ServiceState::default()),
            Err(source) => return Err(StateError::Read { path, source }),
        };
        let e = match serde_json::from_slice::<ServiceState>(&bytes) {
            Ok(s) => return Ok(s),
            Err(e) => e,
        };
        let why = if bytes.iter().all(u8::is_ascii_whitespace) {
            "empty".to_string()
        } else {
            format!("not valid: {e}")
        };
        let aside = path.with_extension(format!("json.corrupt-{now}"));
        if let Err(source) = fs::rename(&path, &aside) {
            return Err(StateError::MoveAside { path, why, source });
        }
        let records = self.audit.records(service)?;
        let state = recover(&records, now);
        let how = if records.is_empty() {
            "with both cooldowns starting now (no audit record of the service)".to_string()
        } else {
            format!(
                "from {} audit record(s) in {}",
                records.len(),
                self.audit.path().display()
            )
        };
        tracing::warn!(
            path = %path.display(), moved_to = %aside.display(), recovered = %how,
            "state file {why}; rebuilt"
        );
        eprintln!(
            "warning: {} was {why}; moved to {} and rebuilt {how}",
            path.display(),
            aside.display()
        );
        self.save(service, &state)?;
        Ok(state)
    }

    /// Replace the state of one service atomically.
    pub fn save(&self, service: &str, state: &ServiceState) -> Result<(), StateError> {
        let path = self.state_path(service);
        write_atomic(
            &path,
            &serde_json::to_vec_pretty(state).expect("state serializes"),
        )
        .map_err(|source| StateError::Write { path, source })
    }

    /// Change the state of one service: read, change, replace atomically.
    pub fn update<T>(
        &self,
        service: &str,
        now: TimestampMs,
        change: impl FnOnce(&mut ServiceState) -> T,
    ) -> Result<T, StateError> {
        update(self, service, now, change)
    }

    /// Clear the cooldown clocks, live and dry-run, or in a dry run the
    /// dry-run ones only (keeping the pause flag, the audit and the sample
    /// history); returns what the cleared clocks were.
    pub fn reset_cooldowns(
        &self,
        service: &str,
        now: TimestampMs,
        dry_run: bool,
    ) -> Result<GuardState, StateError> {
        self.update(service, now, |s| {
            let before = s.guard(dry_run);
            if !dry_run {
                s.last_scale_up = None;
                s.last_scale_down = None;
            }
            s.dry_run = DryRunClocks::default();
            before
        })
    }

    /// The sample history of one service.
    pub fn history(&self, service: &str) -> Result<History, StateError> {
        let path = self.samples_path(service);
        match fs::read(&path) {
            // A corrupt history only loses windows: start over, loudly.
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "sample history unreadable; starting a new one");
                History::default()
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(History::default()),
            Err(source) => Err(StateError::Read { path, source }),
        }
    }

    /// Replace the sample history of one service.
    pub fn save_history(&self, service: &str, history: &History) -> Result<(), StateError> {
        let path = self.samples_path(service);
        write_atomic(
            &path,
            &serde_json::to_vec(history).expect("history serializes"),
        )
        .map_err(|source| StateError::Write { path, source })
    }
}

/// The directory of the locks that keep one scaler per target on an
/// engine, whatever its state directory: `$VEDFOLNIR_LOCK_DIR`, else
/// `/run/vedfolnir-autoscaler` (created when it can be), else one under
/// the system's temporary directory. Every process that may scale the
/// same targets must see the same directory (mount it into a container).
pub fn lock_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("VEDFOLNIR_LOCK_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let run = PathBuf::from("/run/vedfolnir-autoscaler");
    if fs::create_dir_all(&run).is_ok() {
        return run;
    }
    std::env::temp_dir().join("vedfolnir-autoscaler-locks")
}

/// Take the lock of one target on one engine (`engine_id`: the engine's
/// own ID, the same whichever address reaches it) in [`lock_dir`], for
/// `holder`: two scalers with different state directories, or a cron
/// `check` beside a daemon, never act on one target at once. Named for
/// the target, so the refusal says which; released with the file.
pub fn lock_target(
    engine_id: &str,
    target: &str,
    service: &str,
    holder: &str,
    now: TimestampMs,
) -> Result<File, StateError> {
    let dir = lock_dir();
    fs::create_dir_all(&dir).map_err(|source| StateError::Write {
        path: dir.clone(),
        source,
    })?;
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let engine: String = clean(engine_id).chars().take(12).collect();
    let path = dir.join(format!("{}@{engine}.lock", clean(target)));
    take_lock(&path, service, holder, now)
}

/// Take the lock file at `path` without waiting, writing who holds it; or
/// the holder it names.
fn take_lock(
    path: &Path,
    service: &str,
    holder: &str,
    now: TimestampMs,
) -> Result<File, StateError> {
    let path = path.to_path_buf();
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| StateError::Write {
            path: path.clone(),
            source,
        })?;
    match f.try_lock() {
        Ok(()) => {
            // Say who holds it, for the next one who tries.
            let line = format!(
                "pid {} ({holder}) on {}, since {}\n",
                std::process::id(),
                crate::engine::host_name(),
                crate::clock::format_time(now)
            );
            let mut w = &f;
            let _ = f.set_len(0).and_then(|_| w.write_all(line.as_bytes()));
            Ok(f)
        }
        Err(fs::TryLockError::WouldBlock) => {
            let holder = fs::read_to_string(&path).unwrap_or_default();
            let holder = holder.trim();
            Err(Busy {
                service: service.to_string(),
                hint: if holder.contains("(run)") {
                    " (a running daemon takes manual scales on its API: POST /api/v1/services/<service>/scale)"
                } else {
                    ""
                },
                holder: if holder.is_empty() { "a process" } else { holder }.to_string(),
                path,
            }
            .into())
        }
        Err(fs::TryLockError::Error(source)) => Err(StateError::Write { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actuators::ScaleReport;
    use vedfolnir_core::model::SignalId;

    fn finished(service: &str, direction: Direction, at: TimestampMs, reached: u32) -> AuditRecord {
        AuditRecord {
            direction,
            from: 2,
            to: 3,
            report: Some(ScaleReport {
                from: 2,
                to: 3,
                reached,
                outcome: crate::actuators::Outcome::Succeeded,
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
    fn state_is_replaced_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateDir::open(dir.path()).unwrap();
        assert_eq!(
            store.state("web", 0).unwrap().guard(false),
            GuardState::default()
        );
        store
            .update("web", 0, |s| s.record_scale(Direction::Up, 10, false))
            .unwrap();
        store
            .update("web", 0, |s| s.record_scale(Direction::Down, 20, false))
            .unwrap();
        let s = store.state("web", 0).unwrap().guard(false);
        assert_eq!((s.last_scale_up, s.last_scale_down), (Some(10), Some(20)));
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_corrupt_or_empty_state_file_is_rebuilt_from_the_audit() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateDir::open(dir.path()).unwrap();
        let log = AuditLog::in_dir(dir.path());
        log.append(&finished("web", Direction::Up, 100, 3)).unwrap();
        // A scale that did not move the count starts no cooldown.
        log.append(&finished("web", Direction::Down, 150, 2))
            .unwrap();
        log.append(&AuditRecord::new("web", Event::Paused, Actor::Api, 160))
            .unwrap();
        log.append(&AuditRecord {
            direction: Direction::Down,
            dry_run: true,
            ..AuditRecord::new("web", Event::WouldScale, Actor::Auto, 170)
        })
        .unwrap();
        log.append(&finished("other", Direction::Up, 200, 3))
            .unwrap();
        for bad in ["", "{not json", "\n"] {
            fs::write(dir.path().join("web.state.json"), bad).unwrap();
            let s = store.state("web", 0).unwrap();
            assert_eq!(s.last_scale_up, Some(100), "{bad:?}");
            assert_eq!(s.last_scale_down, None, "{bad:?}");
            assert!(s.paused, "{bad:?}");
            assert_eq!(s.dry_run.last_scale_down, Some(170));
            // Rewritten, readable, and the bad one kept for a post-mortem.
            assert_eq!(store.state("web", 0).unwrap(), s);
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
        let store = StateDir::open(dir.path()).unwrap();
        fs::write(dir.path().join("web.state.json"), "").unwrap();
        let s = store.state("web", 5_000).unwrap().guard(false);
        assert_eq!(s.last_scale_up, Some(5_000));
        assert_eq!(s.last_scale_down, Some(5_000));
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
    fn reset_clears_the_cooldowns_and_keeps_the_pause_and_history() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateDir::open(dir.path()).unwrap();
        store
            .update("web", 0, |s| s.record_scale(Direction::Up, 10, false))
            .unwrap();
        let mut h = History::default();
        h.push(5, [(&SignalId::Cpu, 0.5)], 60_000);
        store.save_history("web", &h).unwrap();
        let before = store.reset_cooldowns("web", 0, false).unwrap();
        assert_eq!(before.last_scale_up, Some(10));
        assert_eq!(
            store.state("web", 0).unwrap().guard(false),
            GuardState::default()
        );
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
        let store = StateDir::open(dir.path()).unwrap();
        let held = store.lock("web", "test", 0).unwrap();
        let e = store.lock("web", "test", 0).unwrap_err();
        assert!(matches!(e, StateError::Busy(_)), "{e:#}");
        assert!(format!("{e}").contains("web.lock"), "{e}");
        // It says who holds it.
        assert!(
            format!("{e}").contains(&format!("pid {} (test)", std::process::id())),
            "{e}"
        );
        // Another service is not blocked.
        let _other = store.lock("api", "test", 0).unwrap();
        drop(held);
        store.lock("web", "test", 0).unwrap();
    }

    #[test]
    fn a_dry_run_reset_clears_only_the_dry_run_clocks_and_is_rebuilt_so() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateDir::open(dir.path()).unwrap();
        store
            .update("web", 0, |s| {
                s.record_scale(Direction::Up, 10, false);
                s.record_scale(Direction::Up, 20, true);
            })
            .unwrap();
        let before = store.reset_cooldowns("web", 30, true).unwrap();
        assert_eq!(before.last_scale_up, Some(20));
        let s = store.state("web", 30).unwrap();
        assert_eq!((s.last_scale_up, s.dry_run.last_scale_up), (Some(10), None));
        // The audit tells a dry-run reset from a live one.
        let reset = |dry_run| AuditRecord {
            dry_run,
            ..AuditRecord::new("web", Event::Reset, Actor::Manual, 40)
        };
        let up = AuditRecord {
            direction: Direction::Up,
            ..finished("web", Direction::Up, 10, 3)
        };
        let rebuilt = recover(&[up.clone(), reset(true)], 50);
        assert_eq!(rebuilt.last_scale_up, Some(10));
        let rebuilt = recover(&[up, reset(false)], 50);
        assert_eq!(rebuilt.last_scale_up, None);
    }
}
