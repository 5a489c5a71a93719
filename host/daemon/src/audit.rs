//! The audit log, `audit.jsonl` in the state directory: one JSON record per
//! line, appended and fsynced. A scale writes a `scale-started` record
//! before it touches the engine and a `scale-finished` record (with what
//! happened, replica by replica) after; a started record without its
//! finish is an interrupted scale. Every record is also offered to an
//! [`AuditObserver`] (the `WEBHOOK_URL` notifier) once written.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use vedfolnir_core::guard::GuardReason;
use vedfolnir_core::model::{Direction, TimestampMs};

use crate::actuators::{ScalePlan, ScaleReport};
pub use crate::policy::Scores;

/// The audit log could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The log could not be opened for appending: the action it would
    /// record must not go ahead.
    #[error("cannot open the audit log {}", .path.display())]
    Open {
        /// The log.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Appending a record failed: the action it records must not go ahead.
    #[error("cannot write the audit log {}", .path.display())]
    Write {
        /// The log.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Reading the log failed.
    #[error("cannot read the audit log {}", .path.display())]
    Read {
        /// The log.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The daemon refuses to start without a place to record actions.
    #[error("cannot write the audit log {}: refusing to act without one", .path.display())]
    NotWritable {
        /// The log.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// Told of each record once it is written (the notifier).
pub trait AuditObserver: Send + Sync + std::fmt::Debug {
    /// A record was appended.
    fn recorded(&self, record: &AuditRecord);
}

/// Where the controller records actions: the audit log, or (in a replay)
/// nowhere.
pub trait Audit: Send + Sync + std::fmt::Debug {
    /// Append one record; an action must not go ahead when this fails.
    fn append(&self, record: &AuditRecord) -> Result<(), AuditError>;
    /// What of one service's record is still open, and its last scales.
    fn summary(&self, service: &str) -> Result<Summary, AuditError>;
}

/// What one service's audit record leaves open, and its last scales: all
/// that starting (reconciliation) and `report` need, read in one pass
/// that keeps only these records, so it costs memory for what is open,
/// not for the size of the log.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Scales with an intent (`scale-started`) and no outcome after it
    /// (`scale-finished` of the same `action_id`): the process stopped
    /// mid-scale. Oldest first.
    pub interrupted: Vec<AuditRecord>,
    /// API requests received (`requested`) and never answered (`answered`
    /// or `unanswered` after it): the daemon stopped under them. Oldest
    /// first, each with the first record that carried it out (its
    /// `request` names it), if one did.
    pub unanswered: Vec<(AuditRecord, Option<AuditRecord>)>,
    /// The last `scale-finished` record up.
    pub last_up: Option<AuditRecord>,
    /// The last `scale-finished` record down.
    pub last_down: Option<AuditRecord>,
}

impl Summary {
    /// The last finished scale in direction `d` (none for hold).
    pub fn last(&self, d: Direction) -> Option<&AuditRecord> {
        match d {
            Direction::Up => self.last_up.as_ref(),
            Direction::Down => self.last_down.as_ref(),
            Direction::Hold => None,
        }
    }
}

/// The fields of a line a [`Summary`] is decided by, borrowed from it.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    service: Cow<'a, str>,
    event: Event,
    #[serde(borrow)]
    action_id: Cow<'a, str>,
    direction: Direction,
    #[serde(default, borrow)]
    request: Option<Cow<'a, str>>,
}

/// A `requested` line with no answer yet, and the first line that
/// carried it out.
struct Request {
    at: usize,
    line: Vec<u8>,
    carried_out: Option<Vec<u8>>,
}

/// A [`Summary`] being read: the lines still open, by `action_id`, each
/// with its line number (the file's order), and the last scale each way.
#[derive(Default)]
struct Scan {
    started: HashMap<String, (usize, Vec<u8>)>,
    requests: HashMap<String, Request>,
    last_up: Option<Vec<u8>>,
    last_down: Option<Vec<u8>>,
}

impl Scan {
    /// Line `n`, of the service, whose head is `head`.
    fn read(&mut self, n: usize, head: Head<'_>, line: &[u8]) {
        if let Some(id) = &head.request
            && let Some(r) = self.requests.get_mut(id.as_ref())
            && r.carried_out.is_none()
        {
            r.carried_out = Some(line.to_vec());
        }
        let id = head.action_id.into_owned();
        match (head.event, head.direction) {
            (Event::ScaleStarted, _) => {
                self.started.insert(id, (n, line.to_vec()));
            }
            (Event::ScaleFinished, d) => {
                self.started.remove(&id);
                match d {
                    Direction::Up => self.last_up = Some(line.to_vec()),
                    Direction::Down => self.last_down = Some(line.to_vec()),
                    Direction::Hold => {}
                }
            }
            (Event::Requested, _) => {
                let line = line.to_vec();
                let r = Request {
                    at: n,
                    line,
                    carried_out: None,
                };
                self.requests.insert(id, r);
            }
            (Event::Answered | Event::Unanswered, _) => {
                self.requests.remove(&id);
            }
            _ => {}
        }
    }

    /// The kept lines parsed whole, oldest first; one that the head read
    /// but that is no record is left out.
    fn finish(self) -> Summary {
        let parse = |line: &[u8]| serde_json::from_slice::<AuditRecord>(line).ok();
        let mut started: Vec<_> = self.started.into_values().collect();
        started.sort_by_key(|(n, _)| *n);
        let mut requests: Vec<_> = self.requests.into_values().collect();
        requests.sort_by_key(|r| r.at);
        Summary {
            interrupted: started.iter().filter_map(|(_, l)| parse(l)).collect(),
            unanswered: requests
                .iter()
                .filter_map(|r| Some((parse(&r.line)?, r.carried_out.as_deref().and_then(parse))))
                .collect(),
            last_up: self.last_up.as_deref().and_then(parse),
            last_down: self.last_down.as_deref().and_then(parse),
        }
    }
}

/// Keeps nothing: a replay's actions are its report, not an audit.
#[derive(Debug, Clone, Copy, Default)]
pub struct Discard;

impl Audit for Discard {
    fn append(&self, _: &AuditRecord) -> Result<(), AuditError> {
        Ok(())
    }

    fn summary(&self, _: &str) -> Result<Summary, AuditError> {
        Ok(Summary::default())
    }
}

impl Audit for AuditLog {
    fn append(&self, record: &AuditRecord) -> Result<(), AuditError> {
        AuditLog::append(self, record)
    }

    fn summary(&self, service: &str) -> Result<Summary, AuditError> {
        AuditLog::summary(self, service)
    }
}

/// Whether the file is empty or its last byte ends a line.
fn ends_a_line(f: &mut File) -> io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(true);
    }
    f.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// The lines of a file from the last to the first, read a block at a time
/// from the end (a torn last line comes first, and fails to parse like any
/// other bad line).
struct LinesBackward {
    file: File,
    /// Where the part not yet read ends.
    unread: u64,
    /// Bytes read but not yet split off: the start of the file's part
    /// from `unread` up to the lines already returned.
    pending: Vec<u8>,
}

impl LinesBackward {
    const BLOCK: u64 = 64 * 1024;

    fn new(file: File) -> io::Result<LinesBackward> {
        let unread = file.metadata()?.len();
        Ok(LinesBackward {
            file,
            unread,
            pending: Vec::new(),
        })
    }

    /// The next line back, without its newline; `None` at the start.
    fn next_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        use std::io::{Read, Seek, SeekFrom};
        loop {
            // A newline in what is pending, not at its very end, ends the
            // line after it (the trailing newline of the file ends none).
            let body = self.pending.strip_suffix(b"\n").unwrap_or(&self.pending);
            if let Some(at) = body.iter().rposition(|b| *b == b'\n') {
                let line = body[at + 1..].to_vec();
                self.pending.truncate(at + 1);
                return Ok(Some(line));
            }
            if self.unread == 0 {
                let line = std::mem::take(&mut self.pending);
                let line = line.strip_suffix(b"\n").unwrap_or(&line).to_vec();
                return Ok((!line.is_empty()).then_some(line));
            }
            let size = self.unread.min(Self::BLOCK);
            self.unread -= size;
            let mut block = vec![0u8; size as usize];
            self.file.seek(SeekFrom::Start(self.unread))?;
            self.file.read_exact(&mut block)?;
            block.extend_from_slice(&self.pending);
            self.pending = block;
        }
    }
}

/// The audit log of a state directory.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
    observer: Option<Arc<dyn AuditObserver>>,
}

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
    /// Replicas the autoscaler created that will not run again (left by an
    /// interrupted scale) were removed; `reasons` names each.
    AbandonedRemoved,
    /// A request to the API that changes something, received (`reasons`
    /// says what), before it is run.
    Requested,
    /// Its answer (`reasons`: the HTTP status), with the same `action_id`.
    Answered,
    /// A request the daemon stopped under before answering, found at the
    /// next start, with what became of it.
    Unanswered,
    /// This daemon took the lease of the Swarm targets (`reasons`: the
    /// epoch, and from whom): it acts from now on.
    Takeover,
    /// This daemon lost the lease (another took it, or it could not renew
    /// in time): it acts no more, and writes nothing to the service.
    LeaseLost,
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
    /// The guard rails' interventions, structured (rule, before, after),
    /// as `reasons` also says in words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guard: Vec<GuardReason>,
    /// What the scale set out to do (started records): the containers it
    /// creates or stops, by name, so an interrupted one can be judged by
    /// what it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<ScalePlan>,
    /// What the actuator did (finished records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<ScaleReport>,
    /// The API request (its `requested` record's `action_id`) this record
    /// carries out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
}

impl AuditRecord {
    /// A record with no scale numbers, plugin, scores or inputs yet.
    pub fn new(service: &str, event: Event, actor: Actor, at: TimestampMs) -> AuditRecord {
        AuditRecord {
            time_ms: at,
            action_id: action_id(service, at),
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
            guard: Vec::new(),
            plan: None,
            report: None,
            request: None,
        }
    }
}

/// A new record's id: the service, the time, the process, and a count
/// within the process, so two records made in one millisecond (a burst of
/// API requests) never share one.
fn action_id(service: &str, at: TimestampMs) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{service}-{at}-{}-{n}", std::process::id())
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

impl AuditLog {
    /// The log in the state directory `dir`.
    pub fn in_dir(dir: &Path) -> AuditLog {
        AuditLog {
            path: dir.join("audit.jsonl"),
            observer: None,
        }
    }

    /// The same log, telling `observer` of each record written.
    pub fn with_observer(mut self, observer: Arc<dyn AuditObserver>) -> AuditLog {
        self.observer = Some(observer);
        self
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one record, fsynced before returning. A last line left torn
    /// (a crash mid-write, a full disk) is ended first, so it cannot eat
    /// this record.
    pub fn append(&self, record: &AuditRecord) -> Result<(), AuditError> {
        let mut line = serde_json::to_vec(record).expect("records serialize");
        line.push(b'\n');
        let write = |source| AuditError::Write {
            path: self.path.clone(),
            source,
        };
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&self.path)
            .map_err(|source| AuditError::Open {
                path: self.path.clone(),
                source,
            })?;
        if !ends_a_line(&mut f).map_err(write)? {
            line.insert(0, b'\n');
        }
        // One write of the whole line: appends do not interleave.
        f.write_all(&line)
            .and_then(|_| f.sync_data())
            .map_err(write)?;
        if let Some(o) = &self.observer {
            o.recorded(record);
        }
        Ok(())
    }

    /// A failure to read the log.
    fn read_error(&self, source: io::Error) -> AuditError {
        AuditError::Read {
            path: self.path.clone(),
            source,
        }
    }

    /// The log opened to read; `None` when there is none yet (nothing was
    /// recorded).
    fn open_to_read(&self) -> Result<Option<File>, AuditError> {
        match File::open(&self.path) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.read_error(e)),
        }
    }

    /// The records of one service, oldest first. A torn last line (a
    /// crash mid-append) is skipped, not an error.
    pub fn records(&self, service: &str) -> Result<Vec<AuditRecord>, AuditError> {
        let read = |source| self.read_error(source);
        let Some(f) = self.open_to_read()? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for line in io::BufReader::new(f).lines() {
            let line = line.map_err(read)?;
            if let Ok(r) = serde_json::from_str::<AuditRecord>(&line)
                && r.service == service
            {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// [`Summary`] of one service, in one pass over the log that parses
    /// only each line's service, event, ids and direction, and keeps only
    /// the lines still open (and the last scale each way). A torn or
    /// unreadable line is skipped, as [`AuditLog::records`] skips it.
    pub fn summary(&self, service: &str) -> Result<Summary, AuditError> {
        let read = |source| self.read_error(source);
        let Some(file) = self.open_to_read()? else {
            return Ok(Summary::default());
        };
        let mut reader = io::BufReader::new(file);
        let mut line = Vec::new();
        let mut scan = Scan::default();
        for n in 0.. {
            line.clear();
            if reader.read_until(b'\n', &mut line).map_err(read)? == 0 {
                break;
            }
            if let Ok(head) = serde_json::from_slice::<Head>(&line)
                && head.service == service
            {
                scan.read(n, head, &line);
            }
        }
        Ok(scan.finish())
    }

    /// The newest records (of one service, or all), newest first; the
    /// API's bookkeeping of its own requests (`requested`, `answered`) is
    /// left out. The file is read from its end, a block at a time, until
    /// `limit` records are found: what the status page and
    /// `/api/v1/decisions` cost grows with how far back their records
    /// are, not with the size of the log.
    pub fn recent(
        &self,
        service: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, AuditError> {
        let read = |source| self.read_error(source);
        let Some(file) = self.open_to_read()? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut lines = LinesBackward::new(file).map_err(read)?;
        while out.len() < limit {
            let Some(line) = lines.next_line().map_err(read)? else {
                break;
            };
            let Ok(r) = serde_json::from_slice::<AuditRecord>(&line) else {
                continue;
            };
            if service.is_none_or(|s| r.service == s)
                && !matches!(r.event, Event::Requested | Event::Answered)
            {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Check the log can be appended to: the daemon refuses to start, and
    /// so to act, when it cannot record what it does.
    pub fn check_writable(&self) -> Result<(), AuditError> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map(|_| ())
            .map_err(|source| AuditError::NotWritable {
                path: self.path.clone(),
                source,
            })
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

    #[test]
    fn audit_appends_and_survives_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::in_dir(dir.path());
        log.append(&record(Event::ScaleStarted, "web")).unwrap();
        log.append(&record(Event::ScaleStarted, "other")).unwrap();
        log.append(&record(Event::ScaleFinished, "web")).unwrap();
        let mut f = OpenOptions::new().append(true).open(log.path()).unwrap();
        f.write_all(b"{\"time_ms\": 5, \"act").unwrap();
        let records = log.records("web").unwrap();
        assert_eq!(
            records.iter().map(|r| r.event).collect::<Vec<_>>(),
            [Event::ScaleStarted, Event::ScaleFinished]
        );
        // The next record is not glued onto the torn line.
        log.append(&record(Event::Reset, "web")).unwrap();
        let records = log.records("web").unwrap();
        assert_eq!(
            records.iter().map(|r| r.event).collect::<Vec<_>>(),
            [Event::ScaleStarted, Event::ScaleFinished, Event::Reset]
        );
    }

    #[test]
    fn recent_reads_back_from_the_end_across_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::in_dir(dir.path());
        // About 600 KB: the newest records span several 64 KiB blocks.
        let reason = "x".repeat(300);
        for i in 0..2000u32 {
            let service = if i % 3 == 0 { "other" } else { "web" };
            let event = if i % 7 == 0 {
                Event::Requested
            } else {
                Event::ScaleStarted
            };
            let r = AuditRecord {
                to: i,
                reasons: vec![reason.clone()],
                ..record(event, service)
            };
            log.append(&r).unwrap();
        }
        // Read forward, the naive way, for comparison.
        let forward: Vec<AuditRecord> = log
            .records("web")
            .unwrap()
            .into_iter()
            .filter(|r| r.event != Event::Requested)
            .collect();
        for limit in [1, 5, 400, 5000] {
            let back = log.recent(Some("web"), limit).unwrap();
            let want: Vec<u32> = forward.iter().rev().take(limit).map(|r| r.to).collect();
            assert_eq!(
                back.iter().map(|r| r.to).collect::<Vec<_>>(),
                want,
                "{limit}"
            );
        }
        assert_eq!(
            log.recent(None, 3)
                .unwrap()
                .iter()
                .map(|r| r.to)
                .collect::<Vec<_>>(),
            [1999, 1998, 1997]
        );
        // A torn last line is skipped, and the first line of the file is read.
        let mut f = OpenOptions::new().append(true).open(log.path()).unwrap();
        f.write_all(b"{\"time_ms\": 5, \"act").unwrap();
        assert_eq!(log.recent(None, 1).unwrap()[0].to, 1999);
        let every = log.recent(None, usize::MAX).unwrap();
        assert_eq!(every.len(), (0..2000).filter(|i| i % 7 != 0).count());
        let all = log.recent(Some("other"), usize::MAX).unwrap();
        assert_eq!(
            all.last().map(|r| r.to),
            Some(3),
            "the oldest kept record of other"
        );
        assert_eq!(
            AuditLog::in_dir(&dir.path().join("none"))
                .recent(None, 5)
                .unwrap()
                .len(),
            0
        );
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
        let log = AuditLog::in_dir(dir.path());
        log.check_writable().unwrap();
        // The audit log's place is taken by a folder: it cannot be opened.
        std::fs::remove_file(log.path()).unwrap();
        std::fs::create_dir(log.path()).unwrap();
        let e = log.check_writable().unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("audit.jsonl") && text.contains("refusing to act"),
            "{text}"
        );
    }

    #[test]
    fn the_summary_keeps_what_is_open_and_the_last_scales() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::in_dir(dir.path());
        let finish = |started: &AuditRecord| AuditRecord {
            event: Event::ScaleFinished,
            ..started.clone()
        };
        let request = || AuditRecord {
            direction: Direction::Hold,
            ..record(Event::Requested, "web")
        };
        let open = record(Event::ScaleStarted, "web");
        let up = record(Event::ScaleStarted, "web");
        let down = AuditRecord {
            direction: Direction::Down,
            ..record(Event::ScaleStarted, "web")
        };
        let others = record(Event::ScaleStarted, "other");
        let (lost, carried, answered) = (request(), request(), request());
        let ran = AuditRecord {
            request: Some(carried.action_id.clone()),
            ..record(Event::ScaleStarted, "web")
        };
        for r in [
            &open,
            &up,
            &finish(&up),
            &others,
            &lost,
            &carried,
            &answered,
            &AuditRecord {
                event: Event::Answered,
                ..answered.clone()
            },
            &ran,
            &down,
            &finish(&down),
        ] {
            log.append(r).unwrap();
        }
        let mut f = OpenOptions::new().append(true).open(log.path()).unwrap();
        f.write_all(b"{\"time_ms\": 5, \"service\": \"web\", \"ev")
            .unwrap();

        let s = log.summary("web").unwrap();
        let ids = |rs: &[AuditRecord]| rs.iter().map(|r| r.action_id.clone()).collect::<Vec<_>>();
        // Oldest first; another service's intent is not this one's.
        assert_eq!(
            ids(&s.interrupted),
            [open.action_id.clone(), ran.action_id.clone()]
        );
        let unanswered: Vec<(String, Option<String>)> = s
            .unanswered
            .iter()
            .map(|(r, by)| {
                (
                    r.action_id.clone(),
                    by.as_ref().map(|b| b.action_id.clone()),
                )
            })
            .collect();
        assert_eq!(
            unanswered,
            [
                (lost.action_id.clone(), None),
                (carried.action_id.clone(), Some(ran.action_id.clone()))
            ]
        );
        assert_eq!(s.last(Direction::Up).unwrap().action_id, up.action_id);
        assert_eq!(s.last(Direction::Down).unwrap().action_id, down.action_id);
        assert_eq!(s.last_up.as_ref().unwrap().event, Event::ScaleFinished);
        assert!(s.last(Direction::Hold).is_none());
        // No log yet: nothing open.
        let empty = AuditLog::in_dir(&dir.path().join("none"))
            .summary("web")
            .unwrap();
        assert!(empty.interrupted.is_empty() && empty.last_up.is_none());
    }
}
