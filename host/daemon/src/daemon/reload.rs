//! Hot reload of the policies folder.
//!
//! The folder (or the folders and files `run` was given) is watched
//! (inotify, through `notify`); a burst of changes is debounced into one
//! rescan. A rescan:
//!
//! - fingerprints every `*.toml` policy file together with the `.wasm`
//!   modules it names, and loads only what changed, off the evaluation
//!   path (a blocking task), with the same checks as `plugin check` and
//!   `validate`; the compiled component comes from the digest-keyed cache
//!   when it is there;
//! - swaps a good new version in atomically (a `watch` channel the service's
//!   loop reads at the start of each pass: a pass runs wholly on the old or
//!   wholly on the new version, and the loop's clock is untouched, so no
//!   evaluation is lost or doubled);
//! - starts a loop for a new file and stops the loop of a removed one
//!   (after its pass in flight);
//! - keeps the last good version serving when a file or module is bad, and
//!   reports it by path and stage (log, `/metrics`, `/api/v1/status`);
//! - checks every `.wasm` in a watched folder too, so a module dropped in
//!   is validated (and its compiled form cached) before a policy names it.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::sync::watch;
use vedfolnir_sandbox::{MAX_COMPONENT_BYTES, files};

use super::service::{self, Spawned};
use super::shared::Shared;
use super::status::{LoadErrorView, ModuleView};
use crate::audit::PluginRecord;
use crate::clock::{Stopwatch, format_time, now_ms};
use crate::config::{Listing, list};
use crate::config::{Overrides, PluginRef, PolicyFile};
use crate::policy::{PolicyError, ReadyPolicy};
use crate::telemetry::metrics::PathStageLabel;

/// Quiet time that ends a burst of file events.
pub const DEBOUNCE: Duration = Duration::from_millis(200);
/// A burst longer than this is rescanned anyway.
pub const MAX_DEBOUNCE: Duration = Duration::from_secs(2);
/// A rescan also runs this often, in case an event was missed (or a
/// removed folder came back).
pub const RESCAN_EVERY: Duration = Duration::from_secs(30);

/// A policy file being served.
struct Entry {
    service: String,
    fingerprint: u64,
    tx: watch::Sender<Arc<ReadyPolicy>>,
    spawned: Spawned,
}

/// Where loading a file failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The policy file or its parameters.
    Config,
    /// A plugin load stage (`read`, `decode`, ... `smoke-test`).
    Plugin(vedfolnir_sandbox::Stage),
    /// Another file already scales the service.
    Conflict,
    /// Another process holds the service's lock (retried at each rescan).
    Lock,
    /// The load task itself failed.
    Load,
}

impl Stage {
    /// The name the status and `/metrics` show.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Config => "config",
            Stage::Plugin(s) => s.as_str(),
            Stage::Conflict => "conflict",
            Stage::Lock => "lock",
            Stage::Load => "load",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a file could not be (re)loaded: the stage and the message.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Where it failed.
    pub stage: Stage,
    /// What went wrong, on one line.
    pub message: String,
}

/// One line out of a multi-line error.
fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

impl From<PolicyError> for Failure {
    fn from(e: PolicyError) -> Self {
        match e {
            PolicyError::Config(p) => Failure {
                stage: Stage::Config,
                message: one_line(&p.to_string()),
            },
            PolicyError::Plugin(l) => Failure {
                stage: Stage::Plugin(l.stage),
                message: one_line(&crate::errors::chain(&l)),
            },
        }
    }
}

/// What is being served, and what failed.
pub struct Registry {
    sandbox: vedfolnir_sandbox::Sandbox,
    overrides: Overrides,
    roots: Vec<PathBuf>,
    serving: BTreeMap<PathBuf, Entry>,
    /// Files whose current content failed, by fingerprint (not retried
    /// until they change).
    failed: BTreeMap<PathBuf, u64>,
    /// `.wasm` files checked, by fingerprint.
    modules: BTreeMap<PathBuf, u64>,
}

fn hash_bytes(h: &mut impl Hasher, path: &Path) {
    match files::read(path, MAX_COMPONENT_BYTES) {
        Ok(b) => b.hash(h),
        Err(e) => e.kind().to_string().hash(h),
    }
}

/// A policy file's content with that of the modules it names.
fn fingerprint(path: &Path, file: Option<&PolicyFile>) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    hash_bytes(&mut h, path);
    if let Some(f) = file {
        let shadow = f.shadow.as_ref().map(|s| &s.plugin);
        for r in std::iter::once(&f.plugin).chain(shadow) {
            if let PluginRef::File(m) = r {
                hash_bytes(&mut h, m);
            }
        }
    }
    h.finish()
}

/// The fingerprint of a policy file as it is on disk now.
pub fn file_fingerprint(path: &Path, overrides: &Overrides) -> u64 {
    let parsed = PolicyFile::load(path, overrides).ok();
    fingerprint(path, parsed.as_ref())
}

fn module_fingerprint(path: &Path) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    hash_bytes(&mut h, path);
    h.finish()
}

impl Registry {
    /// An empty registry over `roots`.
    pub fn new(
        sandbox: vedfolnir_sandbox::Sandbox,
        overrides: Overrides,
        roots: Vec<PathBuf>,
    ) -> Registry {
        Registry {
            sandbox,
            overrides,
            roots,
            serving: BTreeMap::new(),
            failed: BTreeMap::new(),
            modules: BTreeMap::new(),
        }
    }

    /// The folders to watch: each folder root, and the folder of each file
    /// root (editors replace files by renaming).
    pub fn watch_dirs(&self) -> BTreeSet<PathBuf> {
        self.roots
            .iter()
            .map(|r| {
                if r.is_dir() {
                    r.clone()
                } else {
                    r.parent()
                        .filter(|p| !p.as_os_str().is_empty())
                        .unwrap_or(Path::new("."))
                        .to_path_buf()
                }
            })
            .collect()
    }

    /// Services served now.
    pub fn services(&self) -> usize {
        self.serving.len()
    }

    async fn load(&self, path: &Path) -> Result<ReadyPolicy, Failure> {
        let sandbox = self.sandbox.clone();
        let overrides = self.overrides.clone();
        let p = path.to_path_buf();
        tokio::task::spawn_blocking(move || ReadyPolicy::load_for_serving(&sandbox, &p, &overrides))
            .await
            .map_err(|e| Failure {
                stage: Stage::Load,
                message: format!("the load task failed: {e}"),
            })?
            .map_err(Failure::from)
    }

    /// Bring what is served in line with the files. Returns how many files
    /// were (re)loaded or removed.
    pub async fn rescan(&mut self, shared: &Arc<Shared>) -> usize {
        let listing = list(&self.roots);
        {
            let mut status = shared.status.lock().expect("status lock");
            status.missing_roots = listing
                .missing
                .iter()
                .map(|(p, why)| format!("{}: {why}", p.display()))
                .collect();
        }
        for (root, why) in &listing.missing {
            tracing::error!(path = %root.display(), error = %why, "policies folder missing; what was loaded from it keeps serving");
        }
        let mut changed = self.load_changed(&listing, shared).await;
        changed += self.retire_gone(&listing, shared);
        self.failed.retain(|p, _| listing.policies.contains(p));
        clear_stale_errors(&listing, shared);
        self.check_modules(&listing, shared).await;
        changed
    }

    /// Load every policy file whose content changed since it was last
    /// served or failed.
    async fn load_changed(&mut self, listing: &Listing, shared: &Arc<Shared>) -> usize {
        let mut changed = 0;
        for path in &listing.policies {
            let fp = file_fingerprint(path, &self.overrides);
            if self.serving.get(path).is_some_and(|e| e.fingerprint == fp) {
                // Written back to the content being served: its last
                // failure is over, though nothing needs loading.
                if self.failed.remove(path).is_some() {
                    self.restored(path, shared);
                }
                continue;
            }
            if self.failed.get(path) == Some(&fp) {
                continue;
            }
            changed += 1;
            let started = Stopwatch::start();
            let result = match self.load(path).await {
                Ok(p) => self.apply(path, fp, p, shared),
                Err(f) => Err(f),
            };
            self.report(path, fp, result, started, shared);
        }
        changed
    }

    /// A failed file written back to the content it serves: its load error
    /// goes from the status and `/metrics`, and the log says why.
    fn restored(&self, path: &Path, shared: &Shared) {
        let key = path.display().to_string();
        let mut status = shared.status.lock().expect("status lock");
        clear_error(&mut status.load_errors, shared, &key);
        outln!(
            "vedfolnir-autoscaler: {} is back to the version being served: its load error is cleared",
            path.display()
        );
    }

    /// Stop the loops of removed files (not of those under a missing root:
    /// what was loaded from it keeps serving).
    fn retire_gone(&mut self, listing: &Listing, shared: &Arc<Shared>) -> usize {
        let under_missing = |p: &Path| {
            listing
                .missing
                .iter()
                .any(|(root, _)| p == root || p.starts_with(root))
        };
        let gone: Vec<PathBuf> = self
            .serving
            .keys()
            .filter(|p| !listing.policies.contains(p) && !under_missing(p))
            .cloned()
            .collect();
        for path in &gone {
            if let Some(entry) = self.serving.remove(path) {
                outln!(
                    "vedfolnir-autoscaler: {} removed: {} is no longer scaled (after its pass in flight)",
                    path.display(),
                    entry.service
                );
                service::retire(shared, &entry.service, entry.spawned);
            }
        }
        gone.len()
    }

    /// Check every `.wasm` in a watched folder that changed, so a module
    /// dropped in is validated (and cached) before a policy names it.
    async fn check_modules(&mut self, listing: &Listing, shared: &Arc<Shared>) {
        for path in &listing.modules {
            let fp = module_fingerprint(path);
            if self.modules.get(path) == Some(&fp) {
                continue;
            }
            self.modules.insert(path.clone(), fp);
            let sandbox = self.sandbox.clone();
            let p = path.clone();
            let checked = tokio::task::spawn_blocking(move || {
                sandbox.load_file(&p).and_then(|plugin| {
                    let defaults = vedfolnir_core::snapshot::effective_params(
                        &plugin.description().params,
                        &[],
                    );
                    plugin.smoke_test(&defaults).map(|_| plugin)
                })
            })
            .await;
            let mut status = shared.status.lock().expect("status lock");
            let key = path.display().to_string();
            match checked {
                Ok(Ok(plugin)) => {
                    status.modules.insert(
                        key.clone(),
                        ModuleView {
                            plugin: Some(PluginRecord::from(&**plugin.id())),
                            error: None,
                        },
                    );
                    clear_error(&mut status.load_errors, shared, &key);
                }
                Ok(Err(e)) => {
                    let f = Failure {
                        stage: Stage::Plugin(e.stage),
                        message: one_line(&crate::errors::chain(&e)),
                    };
                    tracing::error!(path = %path.display(), stage = %f.stage, error = %f.message, "module rejected");
                    outln!(
                        "vedfolnir-autoscaler: module {} rejected at {}: {}",
                        path.display(),
                        f.stage,
                        f.message
                    );
                    status.modules.insert(
                        key.clone(),
                        ModuleView {
                            plugin: None,
                            error: Some(format!("{}: {}", f.stage, f.message)),
                        },
                    );
                    set_error(&mut status.load_errors, shared, &key, f);
                }
                Err(e) => tracing::error!(error = %e, "module check task failed"),
            }
        }
        let mut status = shared.status.lock().expect("status lock");
        status.modules.retain(|k, _| {
            listing
                .modules
                .iter()
                .any(|m| m.display().to_string() == *k)
        });
        drop(status);
        self.modules.retain(|p, _| listing.modules.contains(p));
    }

    /// Serve a loaded policy: swap it in, or start its loop.
    fn apply(
        &mut self,
        path: &Path,
        fp: u64,
        policy: ReadyPolicy,
        shared: &Arc<Shared>,
    ) -> Result<String, Failure> {
        log_notes(&policy);
        let id = policy.plugin.id().to_string();
        let service = policy.file.service.clone();
        if let Some(entry) = self.serving.get_mut(path) {
            if entry.service == service {
                shared
                    .status
                    .lock()
                    .expect("status lock")
                    .policy_loaded(&policy);
                entry.tx.send_replace(Arc::new(policy));
                entry.fingerprint = fp;
                return Ok(format!("reloaded {} ({id})", path.display()));
            }
            // The file now scales another service: stop the old loop.
            let old = self.serving.remove(path).expect("present");
            outln!(
                "vedfolnir-autoscaler: {} now scales {service}, not {}",
                path.display(),
                old.service
            );
            service::retire(shared, &old.service, old.spawned);
        }
        if let Some((other, _)) = self.serving.iter().find(|(_, e)| e.service == service) {
            return Err(Failure {
                stage: Stage::Conflict,
                message: format!(
                    "service {service} is already scaled by {}; one policy per service",
                    other.display()
                ),
            });
        }
        let lock = shared
            .state
            .lock(&service, "run", now_ms())
            .map_err(|e| Failure {
                stage: Stage::Lock,
                message: crate::errors::chain(&e),
            })?;
        self.serve(path, fp, policy, lock, shared);
        Ok(format!("loaded {} ({id})", path.display()))
    }

    /// Serve what `run` loaded and locked at start (its fingerprint taken
    /// before the load), without loading it again.
    pub fn adopt(
        &mut self,
        path: &Path,
        fp: u64,
        policy: ReadyPolicy,
        lock: std::fs::File,
        started: Stopwatch,
        shared: &Arc<Shared>,
    ) {
        log_notes(&policy);
        let what = format!("loaded {} ({})", path.display(), policy.plugin.id());
        self.serve(path, fp, policy, lock, shared);
        self.report(path, fp, Ok(what), started, shared);
    }

    /// Start a loop for a new policy file.
    fn serve(
        &mut self,
        path: &Path,
        fp: u64,
        policy: ReadyPolicy,
        lock: std::fs::File,
        shared: &Arc<Shared>,
    ) {
        let service = policy.file.service.clone();
        let policy = Arc::new(policy);
        let (tx, rx) = watch::channel(policy.clone());
        shared
            .status
            .lock()
            .expect("status lock")
            .policy_loaded(&policy);
        let spawned = service::spawn(shared, rx, lock);
        self.serving.insert(
            path.to_path_buf(),
            Entry {
                service,
                fingerprint: fp,
                tx,
                spawned,
            },
        );
    }

    fn report(
        &mut self,
        path: &Path,
        fp: u64,
        result: Result<String, Failure>,
        started: Stopwatch,
        shared: &Arc<Shared>,
    ) {
        let key = path.display().to_string();
        shared.telemetry.emit(crate::telemetry::Event::Reloaded {
            path: &key,
            ok: result.is_ok(),
        });
        let mut status = shared.status.lock().expect("status lock");
        match result {
            Ok(what) => {
                self.failed.remove(path);
                clear_error(&mut status.load_errors, shared, &key);
                outln!(
                    "vedfolnir-autoscaler: {what} in {}",
                    vedfolnir_core::format_elapsed(started.elapsed_ms())
                );
            }
            Err(f) => {
                // A held lock is retried at the next rescan; anything else
                // waits for the file to change.
                if f.stage != Stage::Lock {
                    self.failed.insert(path.to_path_buf(), fp);
                }
                let serving = self.serving.contains_key(path);
                tracing::error!(path = %path.display(), stage = %f.stage, error = %f.message, "policy load failed");
                outln!(
                    "vedfolnir-autoscaler: reload of {} failed at {}, {}: {}",
                    path.display(),
                    f.stage,
                    if serving {
                        "the last good version keeps serving"
                    } else {
                        "not serving"
                    },
                    f.message
                );
                set_error(&mut status.load_errors, shared, &key, f);
            }
        }
    }

    /// Stop every loop (SIGTERM): each finishes its pass in flight.
    pub fn drain(&mut self) -> Vec<Spawned> {
        std::mem::take(&mut self.serving)
            .into_values()
            .map(|e| e.spawned)
            .collect()
    }
}

/// Errors of files that are gone go from the status and `/metrics`.
fn clear_stale_errors(listing: &Listing, shared: &Shared) {
    let mut status = shared.status.lock().expect("status lock");
    let stale: Vec<String> = status
        .load_errors
        .keys()
        .filter(|k| {
            let p = Path::new(k.as_str());
            !listing.policies.iter().any(|x| x == p) && !listing.modules.iter().any(|x| x == p)
        })
        .cloned()
        .collect();
    for k in stale {
        clear_error(&mut status.load_errors, shared, &k);
    }
}

/// What a loaded policy's operator should know (an optional signal no
/// source provides), logged at each load.
fn log_notes(policy: &ReadyPolicy) {
    for note in &policy.notes {
        tracing::warn!(path = %note.file.display(), key = %note.key, "{}", note.message);
    }
}

/// A file loads again: its error goes from the status and `/metrics`.
fn clear_error(errors: &mut BTreeMap<String, LoadErrorView>, shared: &Shared, key: &str) {
    if let Some(e) = errors.remove(key) {
        shared.metrics.policy_load_error.remove(&PathStageLabel {
            path: key.to_string(),
            stage: e.stage,
        });
    }
}

fn set_error(errors: &mut BTreeMap<String, LoadErrorView>, shared: &Shared, key: &str, f: Failure) {
    if let Some(old) = errors.get(key)
        && old.stage != f.stage.as_str()
    {
        shared.metrics.policy_load_error.remove(&PathStageLabel {
            path: key.to_string(),
            stage: old.stage.clone(),
        });
    }
    shared
        .metrics
        .policy_load_error
        .get_or_create(&PathStageLabel {
            path: key.to_string(),
            stage: f.stage.as_str().into(),
        })
        .set(1.0);
    errors.insert(
        key.to_string(),
        LoadErrorView {
            path: key.to_string(),
            stage: f.stage.as_str().into(),
            message: f.message,
            since: format_time(now_ms()),
        },
    );
}

/// Watch the roots' folders; every event (after debouncing) and every
/// `RESCAN_EVERY` asks for a rescan on the returned channel.
pub fn watch(
    dirs: BTreeSet<PathBuf>,
) -> Result<(
    notify::RecommendedWatcher,
    tokio::sync::mpsc::UnboundedReceiver<()>,
)> {
    use notify::Watcher as _;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(ev) if ev.kind.is_access() => {}
            Ok(_) => {
                let _ = tx.send(());
            }
            Err(e) => tracing::warn!(error = %e, "file watch error"),
        })?;
    for d in &dirs {
        if let Err(e) = watcher.watch(d, notify::RecursiveMode::NonRecursive) {
            tracing::warn!(path = %d.display(), error = %e, "cannot watch; changes there need SIGHUP");
        }
    }
    Ok((watcher, rx))
}

/// Wait for the end of a burst of events: `DEBOUNCE` without one, or
/// `MAX_DEBOUNCE` in all.
pub async fn settle(rx: &mut tokio::sync::mpsc::UnboundedReceiver<()>) {
    let start = tokio::time::Instant::now();
    loop {
        let left = MAX_DEBOUNCE.saturating_sub(start.elapsed());
        if left.is_zero() {
            return;
        }
        match tokio::time::timeout(DEBOUNCE.min(left), rx.recv()).await {
            Ok(Some(())) => continue,
            _ => return,
        }
    }
}
