//! One leader among the daemons serving the same Swarm: a lease kept in
//! Swarm's own replicated store, and the fence every write to a Swarm
//! service carries.
//!
//! The lease is the labels of a dedicated Swarm config
//! ([`LeaseConfig::name`]), which the engine updates only against the
//! version it was read at ("update out of sequence" is a lost race). The
//! record names its holder (a per-process id, the host, pid and listen
//! address) and an epoch. Expiry needs no shared clock: the holder renews
//! (an update, which moves the version) every [`LeaseConfig::renew`]; a
//! standby that sees the version unchanged for [`LeaseConfig::duration`]
//! on its own monotonic clock takes the lease with epoch + 1. A holder
//! that stops lets go (an empty holder), so another takes it at once.
//!
//! ```text
//!   read ──none──> create (epoch 1) ──won──> leader
//!     │──held by me──> renew (same epoch) ──won──> leader, valid for `duration` from the read
//!     │──let go──────> take (epoch + 1)
//!     └──held by another──> standby; version unchanged for `duration`? ──> take (epoch + 1)
//! ```
//!
//! A leader is valid until `duration` after the read that preceded its
//! last renewal (a standby's clock starts no earlier than that write
//! landed), so by its own clock it stops acting before any standby can
//! take over. A leader that cannot renew in that time steps down
//! (`lease-lost`). Every write to a Swarm service carries the writer's
//! epoch as a label in the same update, compared and swapped on the
//! service's version (in `actuators/swarm.rs`): a writer whose epoch is
//! below the service's does not write.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::ConfigSpec;
use bollard::query_parameters::UpdateConfigOptionsBuilder;
use futures_util::future::BoxFuture;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::engine::{Engine, EngineError, api_error};

/// The label naming the holder's id (empty: let go).
pub const HOLDER_ID_LABEL: &str = "io.vedfolnir.autoscaler.lease.holder-id";
/// The label naming the holder in words.
pub const HOLDER_LABEL: &str = "io.vedfolnir.autoscaler.lease.holder";
/// The label holding the holder's API address (where a standby sends
/// callers).
pub const LISTEN_LABEL: &str = "io.vedfolnir.autoscaler.lease.listen";
/// The label holding the epoch.
pub const EPOCH_LABEL: &str = "io.vedfolnir.autoscaler.lease.epoch";

/// The lease's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// The Swarm config that holds it: daemons naming the same one elect
    /// one leader.
    pub name: String,
    /// How long a standby waits on an unchanged record before it takes
    /// the lease; how long a leader stays valid after a renewal's read.
    pub duration: Duration,
    /// How often the holder renews and a standby looks.
    pub renew: Duration,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            name: "vedfolnir-autoscaler-lease".into(),
            duration: Duration::from_secs(10),
            renew: Duration::from_secs(3),
        }
    }
}

impl LeaseConfig {
    /// Refuse settings under which a live holder could lose its lease: a
    /// renewal must fit twice in the lease.
    pub fn check(&self) -> Result<(), String> {
        if self.renew.is_zero() || self.renew * 2 > self.duration {
            return Err(format!(
                "--lease-renew ({}) must be above 0 and at most half of --lease-duration ({})",
                vedfolnir_core::format_duration(self.renew.as_millis() as u64),
                vedfolnir_core::format_duration(self.duration.as_millis() as u64)
            ));
        }
        if self.name.is_empty() || self.name.len() > 64 {
            return Err(format!("--lease-name {:?}: 1 to 64 characters", self.name));
        }
        Ok(())
    }
}

/// Who holds the lease, as its record says.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Holder {
    /// A per-process id (a pid is reused; this is not).
    pub id: String,
    /// In words: host, pid, since when.
    pub name: String,
    /// Its API address.
    pub listen: String,
}

impl Holder {
    /// This process, listening at `listen`.
    pub fn me(listen: &str, command: &str) -> Holder {
        let host = crate::engine::host_name();
        let pid = std::process::id();
        let now = crate::clock::now_ms();
        Holder {
            id: format!("{host}-{pid}-{now:x}-{:08x}", rand_u32()),
            name: format!(
                "pid {pid} ({command}) on {host}, since {}",
                crate::clock::format_time(now)
            ),
            listen: listen.to_string(),
        }
    }
}

/// A little randomness for an id, without a dependency: the hash of the
/// time and an address, from the standard library's random hasher keys.
fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(crate::clock::now_ms() as u64);
    h.finish() as u32
}

/// The lease's record as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// The holder; `None` when it let go.
    pub holder: Option<Holder>,
    /// The epoch: raised by one at every change of holder.
    pub epoch: u64,
}

impl Record {
    fn labels(&self) -> HashMap<String, String> {
        let h = self.holder.clone().unwrap_or_default();
        HashMap::from([
            (HOLDER_ID_LABEL.to_string(), h.id),
            (HOLDER_LABEL.to_string(), h.name),
            (LISTEN_LABEL.to_string(), h.listen),
            (EPOCH_LABEL.to_string(), self.epoch.to_string()),
        ])
    }

    fn from_labels(labels: &HashMap<String, String>) -> Record {
        let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
        let id = get(HOLDER_ID_LABEL);
        Record {
            holder: (!id.is_empty()).then(|| Holder {
                id,
                name: get(HOLDER_LABEL),
                listen: get(LISTEN_LABEL),
            }),
            epoch: get(EPOCH_LABEL).parse().unwrap_or(0),
        }
    }
}

/// A compare-and-swap's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Swap {
    /// Written.
    Won,
    /// Someone wrote first (the version moved, or the record exists).
    Lost,
}

/// Where the record is kept: Swarm's store, or memory in tests.
pub trait Store: Send + Sync {
    /// The record and its version; `None` when there is none yet.
    fn read(&self) -> BoxFuture<'_, Result<Option<(u64, Record)>, EngineError>>;
    /// Create the record; `Lost` when it exists.
    fn create<'a>(&'a self, record: &'a Record) -> BoxFuture<'a, Result<Swap, EngineError>>;
    /// Replace the record read at `version`; `Lost` when it moved.
    fn swap<'a>(
        &'a self,
        version: u64,
        record: &'a Record,
    ) -> BoxFuture<'a, Result<Swap, EngineError>>;
}

/// The lease in a Swarm config's labels.
#[derive(Debug, Clone)]
pub struct SwarmStore {
    /// The engine (a Swarm manager).
    pub engine: Engine,
    /// The config's name.
    pub name: String,
}

impl SwarmStore {
    /// The config holding `record`. Its data never changes (the engine
    /// allows only label updates after creation): "vedfolnir-autoscaler
    /// lease", base64.
    fn spec(&self, record: &Record) -> ConfigSpec {
        ConfigSpec {
            name: Some(self.name.clone()),
            labels: Some(record.labels()),
            data: Some("dmVkZm9sbmlyLWF1dG9zY2FsZXIgbGVhc2UK".into()),
            templating: None,
        }
    }
}

impl Store for SwarmStore {
    fn read(&self) -> BoxFuture<'_, Result<Option<(u64, Record)>, EngineError>> {
        Box::pin(async move {
            match self.engine.docker.inspect_config(&self.name).await {
                Ok(c) => {
                    let version = c.version.and_then(|v| v.index).unwrap_or(0);
                    let labels = c.spec.and_then(|s| s.labels).unwrap_or_default();
                    Ok(Some((version, Record::from_labels(&labels))))
                }
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => Ok(None),
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 503,
                    message,
                }) => Err(EngineError::not_found(format!(
                    "this engine is not a Swarm manager ({message}): the lease of Swarm targets is kept in the Swarm's store (docker swarm init, or run the daemon on a manager)"
                ))),
                Err(e) => Err(api_error(
                    &self.engine,
                    &format!("reading the lease {}", self.name),
                    e,
                )),
            }
        })
    }

    fn create<'a>(&'a self, record: &'a Record) -> BoxFuture<'a, Result<Swap, EngineError>> {
        Box::pin(async move {
            match self.engine.docker.create_config(self.spec(record)).await {
                Ok(_) => Ok(Swap::Won),
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 409, ..
                }) => Ok(Swap::Lost),
                Err(e) => Err(api_error(
                    &self.engine,
                    &format!("creating the lease {}", self.name),
                    e,
                )),
            }
        })
    }

    fn swap<'a>(
        &'a self,
        version: u64,
        record: &'a Record,
    ) -> BoxFuture<'a, Result<Swap, EngineError>> {
        Box::pin(async move {
            let spec = self.spec(record);
            let options = UpdateConfigOptionsBuilder::default()
                .version(version as i64)
                .build();
            match self
                .engine
                .docker
                .update_config(&self.name, spec, options)
                .await
            {
                Ok(()) => Ok(Swap::Won),
                Err(bollard::errors::Error::DockerResponseServerError { message, .. })
                    if message.contains("out of sequence") =>
                {
                    Ok(Swap::Lost)
                }
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => Ok(Swap::Lost),
                Err(e) => Err(api_error(
                    &self.engine,
                    &format!("writing the lease {}", self.name),
                    e,
                )),
            }
        })
    }
}

/// This process's part.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "role")]
pub enum Role {
    /// Not yet known (the first look has not answered).
    Unknown {
        /// Why not.
        why: String,
    },
    /// It holds the lease.
    Leader {
        /// Its epoch.
        epoch: u64,
        /// Until when it may act, by its own monotonic clock.
        #[serde(skip)]
        valid_until: Instant,
    },
    /// Another holds it (or held it last).
    Standby {
        /// The holder, when there is one.
        holder: Option<Holder>,
        /// The epoch it holds.
        epoch: u64,
    },
}

impl Role {
    /// The fence of a leader still valid at `now`.
    pub fn fence(&self, now: Instant) -> Option<Fence> {
        match self {
            Role::Leader { epoch, valid_until } if now < *valid_until => Some(Fence {
                epoch: *epoch,
                valid_until: *valid_until,
            }),
            _ => None,
        }
    }

    /// The epoch it holds or last saw held.
    pub fn epoch(&self) -> Option<u64> {
        match self {
            Role::Unknown { .. } => None,
            Role::Leader { epoch, .. } | Role::Standby { epoch, .. } => Some(*epoch),
        }
    }

    /// Why this daemon does not act, in words: who leads instead.
    pub fn standing_by(&self) -> String {
        match self {
            Role::Leader { epoch, .. } => {
                format!("the lease (epoch {epoch}) ran out by this daemon's clock before a renewal")
            }
            Role::Standby {
                holder: Some(h),
                epoch,
            } if h.listen.is_empty() => format!("standby: {} holds it (epoch {epoch})", h.name),
            Role::Standby {
                holder: Some(h),
                epoch,
            } => format!("standby: {} leads (epoch {epoch}, {})", h.name, h.listen),
            Role::Standby { epoch, .. } => {
                format!("standby: the lease (epoch {epoch}) has no holder yet")
            }
            Role::Unknown { why } => format!("standby: the lease is not known ({why})"),
        }
    }

    /// `leader`, `standby` or `unknown`.
    pub fn name(&self) -> &'static str {
        match self {
            Role::Unknown { .. } => "unknown",
            Role::Leader { .. } => "leader",
            Role::Standby { .. } => "standby",
        }
    }
}

/// What a leader's write carries: its epoch, and until when it may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fence {
    /// The epoch.
    pub epoch: u64,
    /// Past this (its own clock), it does not write.
    pub valid_until: Instant,
}

impl Fence {
    /// Whether the fence still holds at `now`.
    pub fn holds(&self, now: Instant) -> bool {
        now < self.valid_until
    }
}

/// A change of role worth an audit record and a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// It became leader (epoch, and the holder it took over from).
    Took {
        /// The new epoch.
        epoch: u64,
        /// Who held it before, if anyone.
        from: Option<Holder>,
    },
    /// It was leader and is no more.
    Lost {
        /// The epoch it held.
        epoch: u64,
        /// Why.
        why: String,
    },
}

/// The election's state machine: one [`Elector::step`] per look.
#[derive(Debug)]
pub struct Elector {
    me: Holder,
    config: LeaseConfig,
    /// The version last seen held by another, and when it was first seen.
    watching: Option<(u64, Instant)>,
    role: Role,
}

impl Elector {
    /// A process that holds nothing yet.
    pub fn new(me: Holder, config: LeaseConfig) -> Elector {
        Elector {
            me,
            config,
            watching: None,
            role: Role::Unknown {
                why: "the lease has not been read yet".into(),
            },
        }
    }

    /// Its role now.
    pub fn role(&self) -> &Role {
        &self.role
    }

    /// When a look could take the lease: the moment the version it watches
    /// will have stood still for the lease's duration (so a standby looks
    /// then, not up to a renewal interval later).
    pub fn due(&self) -> Option<Instant> {
        self.watching.map(|(_, since)| since + self.config.duration)
    }

    /// Look at the record at `now` (read before the store is asked) and
    /// renew, take, or watch; the change of role, if any.
    pub async fn step(&mut self, store: &dyn Store, now: Instant) -> Option<Change> {
        let was = self.role.clone();
        let result = self.look(store, now).await;
        if let Err(e) = &result {
            // No answer: a leader stays one only until its lease runs out.
            let why = crate::errors::chain(e);
            self.role = match &was {
                Role::Leader { valid_until, .. } if now < *valid_until => was.clone(),
                Role::Leader { .. } => Role::Unknown {
                    why: format!("the lease ran out without a renewal: {why}"),
                },
                _ => Role::Unknown { why },
            };
        }
        match (&was, &self.role) {
            (Role::Leader { epoch: a, .. }, Role::Leader { epoch: b, .. }) if a == b => None,
            (Role::Leader { epoch, .. }, now_role) => Some(Change::Lost {
                epoch: *epoch,
                why: match now_role {
                    Role::Standby {
                        holder: Some(h),
                        epoch,
                    } => format!("{} holds it now (epoch {epoch})", h.name),
                    Role::Standby { epoch, .. } => format!("the lease moved on (epoch {epoch})"),
                    Role::Unknown { why } => why.clone(),
                    Role::Leader { epoch, .. } => format!("taken again at epoch {epoch}"),
                },
            }),
            (_, Role::Leader { epoch, .. }) => Some(Change::Took {
                epoch: *epoch,
                from: match &was {
                    Role::Standby { holder, .. } => holder.clone(),
                    _ => None,
                },
            }),
            _ => None,
        }
    }

    async fn look(&mut self, store: &dyn Store, now: Instant) -> Result<(), EngineError> {
        let leader = |epoch| Role::Leader {
            epoch,
            valid_until: now + self.config.duration,
        };
        let Some((version, record)) = store.read().await? else {
            let mine = Record {
                holder: Some(self.me.clone()),
                epoch: 1,
            };
            self.role = match store.create(&mine).await? {
                Swap::Won => leader(1),
                Swap::Lost => Role::Standby {
                    holder: None,
                    epoch: 0,
                },
            };
            return Ok(());
        };
        let mine_now = matches!(self.role, Role::Leader { epoch, .. } if epoch == record.epoch);
        let held_by_me = record.holder.as_ref().is_some_and(|h| h.id == self.me.id);
        let free = match &record.holder {
            None => true,
            Some(_) if held_by_me => true,
            Some(_) => match self.watching {
                Some((v, since)) if v == version => {
                    now.duration_since(since) >= self.config.duration
                }
                _ => {
                    self.watching = Some((version, now));
                    false
                }
            },
        };
        if !free {
            self.role = Role::Standby {
                holder: record.holder.clone(),
                epoch: record.epoch,
            };
            return Ok(());
        }
        // Renew at the same epoch; any other take raises it.
        let epoch = if held_by_me && mine_now {
            record.epoch
        } else {
            record.epoch + 1
        };
        let mine = Record {
            holder: Some(self.me.clone()),
            epoch,
        };
        match store.swap(version, &mine).await? {
            Swap::Won => {
                self.watching = None;
                self.role = leader(epoch);
            }
            // Someone wrote first: look again next time.
            Swap::Lost => {
                self.watching = None;
                self.role = Role::Standby {
                    holder: record.holder.clone().filter(|_| !held_by_me),
                    epoch: record.epoch,
                };
            }
        }
        Ok(())
    }

    /// Let go, if it holds the lease: another takes it at its next look.
    pub async fn release(&mut self, store: &dyn Store) -> Result<(), EngineError> {
        let Role::Leader { epoch, .. } = self.role else {
            return Ok(());
        };
        if let Some((version, record)) = store.read().await?
            && record.holder.as_ref().is_some_and(|h| h.id == self.me.id)
        {
            let released = Record {
                holder: None,
                epoch,
            };
            store.swap(version, &released).await?;
        }
        self.role = Role::Standby {
            holder: None,
            epoch,
        };
        Ok(())
    }
}

/// The lease as the daemon's loops see it: the role now, kept current by
/// the task [`spawn`] starts.
#[derive(Debug, Clone)]
pub struct Lease {
    /// The role, as of the last look.
    pub role: watch::Receiver<Role>,
    /// Who this process is.
    pub me: Holder,
    /// The settings.
    pub config: LeaseConfig,
}

impl Lease {
    /// The fence of a still-valid leader, now.
    pub fn fence(&self) -> Option<Fence> {
        self.role.borrow().fence(Instant::now())
    }
}

/// What the lease task reports, for the audit, the notifications and
/// `/metrics`.
pub type OnChange = Box<dyn Fn(&Change) + Send + Sync>;

/// Start the lease task on `store`: a look every `renew`; on `stop`, let
/// go. The returned handle ends once it has let go.
pub fn spawn(
    store: Box<dyn Store>,
    me: Holder,
    config: LeaseConfig,
    on_change: OnChange,
    mut stop: watch::Receiver<bool>,
) -> (Lease, tokio::task::JoinHandle<()>) {
    let mut elector = Elector::new(me.clone(), config.clone());
    let (tx, rx) = watch::channel(elector.role().clone());
    let renew = config.renew;
    let handle = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(renew);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // A standby also looks when a silent lease falls due.
            let due = elector.due().filter(|d| *d > Instant::now());
            let falls_due = async {
                match due {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = ticker.tick() => {}
                _ = falls_due => {}
                _ = stop.changed() => break,
            }
            let now = Instant::now();
            if let Some(change) = elector.step(store.as_ref(), now).await {
                on_change(&change);
            }
            // The loops wake on a change of role or epoch, not on every
            // renewal (which only moves the validity).
            let new = elector.role().clone();
            tx.send_if_modified(|r| {
                let changed = (r.name(), r.epoch()) != (new.name(), new.epoch());
                *r = new;
                changed
            });
        }
        if let Err(e) = elector.release(store.as_ref()).await {
            tracing::warn!("cannot let go of the lease: {}", crate::errors::chain(&e));
        }
        let _ = tx.send(elector.role().clone());
    });
    (
        Lease {
            role: rx,
            me,
            config,
        },
        handle,
    )
}

/// The lease held for one action (a command line's scale), released by
/// [`Held::release`].
#[derive(Debug)]
pub struct Held {
    /// What the actuator's writes are fenced by.
    pub lease: Lease,
    stop: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
}

impl Held {
    /// Let go (another takes it at its next look).
    pub async fn release(self) {
        let _ = self.stop.send(true);
        let _ = self.handle.await;
    }
}

/// Take the lease for one action, renewing it while the action runs: at
/// once when no one holds it or its holder let go; after `duration` of
/// silence when its holder stopped renewing; refused ([`EngineError::Fenced`],
/// naming the holder) when the holder renews meanwhile.
pub async fn hold_for_action(
    store: Box<dyn Store>,
    me: Holder,
    config: LeaseConfig,
) -> Result<Held, EngineError> {
    let (stop, stop_rx) = watch::channel(false);
    let name = config.name.clone();
    let wait = config.duration + config.renew * 2;
    let on_change: OnChange = Box::new(|_| {});
    let (lease, handle) = spawn(store, me, config, on_change, stop_rx);
    let mut role = lease.role.clone();
    let deadline = Instant::now() + wait;
    loop {
        if lease.fence().is_some() {
            return Ok(Held {
                lease,
                stop,
                handle,
            });
        }
        let changed = tokio::time::timeout_at(deadline, role.changed()).await;
        if !matches!(changed, Ok(Ok(()))) {
            let why = role.borrow().standing_by();
            let _ = stop.send(true);
            let _ = handle.await;
            return Err(EngineError::Fenced {
                why: format!(
                    "the Swarm targets' lease {name} is not free ({why}): send the scale to the leader's API (POST <leader>/api/v1/services/<service>/scale), or stop it"
                ),
            });
        }
    }
}

#[cfg(test)]
pub mod memory {
    //! The lease in memory, for tests: the same compare-and-swap rules.

    use std::sync::Mutex;

    use super::*;

    /// A store in memory.
    #[derive(Debug, Default)]
    pub struct MemoryStore {
        /// The version and record.
        pub inner: Mutex<Option<(u64, Record)>>,
        /// Answer every call with an unreachable engine.
        pub cut: std::sync::atomic::AtomicBool,
    }

    impl MemoryStore {
        fn check(&self) -> Result<(), EngineError> {
            if self.cut.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(EngineError::unreachable("memory", "cut"));
            }
            Ok(())
        }
    }

    impl Store for MemoryStore {
        fn read(&self) -> BoxFuture<'_, Result<Option<(u64, Record)>, EngineError>> {
            Box::pin(async move {
                self.check()?;
                Ok(self.inner.lock().unwrap().clone())
            })
        }
        fn create<'a>(&'a self, record: &'a Record) -> BoxFuture<'a, Result<Swap, EngineError>> {
            Box::pin(async move {
                self.check()?;
                let mut inner = self.inner.lock().unwrap();
                if inner.is_some() {
                    return Ok(Swap::Lost);
                }
                *inner = Some((1, record.clone()));
                Ok(Swap::Won)
            })
        }
        fn swap<'a>(
            &'a self,
            version: u64,
            record: &'a Record,
        ) -> BoxFuture<'a, Result<Swap, EngineError>> {
            Box::pin(async move {
                self.check()?;
                let mut inner = self.inner.lock().unwrap();
                match inner.as_ref() {
                    Some((v, _)) if *v == version => {
                        *inner = Some((version + 1, record.clone()));
                        Ok(Swap::Won)
                    }
                    _ => Ok(Swap::Lost),
                }
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::memory::MemoryStore;
    use super::*;

    fn holder(n: &str) -> Holder {
        Holder {
            id: n.into(),
            name: format!("daemon {n}"),
            listen: format!("{n}:9464"),
        }
    }

    const S: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn one_leader_then_a_takeover_only_after_a_silent_lease_with_a_higher_epoch() {
        let store = MemoryStore::default();
        let config = LeaseConfig::default();
        let t0 = Instant::now();
        let mut a = Elector::new(holder("a"), config.clone());
        let mut b = Elector::new(holder("b"), config.clone());
        assert_eq!(
            a.step(&store, t0).await,
            Some(Change::Took {
                epoch: 1,
                from: None
            })
        );
        assert_eq!(b.step(&store, t0).await, None);
        assert_eq!(b.role().name(), "standby");
        // a renews every 3 s: b never takes it, whatever the time.
        for i in 1..10 {
            let now = t0 + 3 * S * i;
            assert_eq!(a.step(&store, now).await, None);
            assert_eq!(b.step(&store, now + S).await, None);
            assert_eq!(b.role().name(), "standby");
        }
        // a falls silent after its renewal at 27 s, which b saw at 28 s: b
        // takes it once the version stood still 10 s on its own clock.
        let quiet = t0 + 28 * S;
        b.step(&store, quiet + 5 * S).await;
        b.step(&store, quiet + 9 * S).await;
        assert_eq!(b.role().name(), "standby");
        // Its next look is due when the version has stood still 10 s.
        assert_eq!(b.due(), Some(quiet + 10 * S));
        let took = b.step(&store, quiet + 10 * S).await;
        assert_eq!(
            took,
            Some(Change::Took {
                epoch: 2,
                from: Some(holder("a"))
            })
        );
        // a's own clock ran its lease out before b could take it.
        assert_eq!(a.role().name(), "leader");
        assert!(a.role().fence(quiet + 10 * S).is_none());
        // a wakes: it loses, naming the new holder.
        let lost = a.step(&store, quiet + 11 * S).await;
        assert!(
            matches!(&lost, Some(Change::Lost { epoch: 1, why }) if why.contains("daemon b")),
            "{lost:?}"
        );
        assert_eq!(a.role().name(), "standby");
    }

    #[tokio::test]
    async fn a_leader_that_cannot_renew_steps_down_when_its_lease_runs_out() {
        let store = MemoryStore::default();
        let t0 = Instant::now();
        let mut a = Elector::new(holder("a"), LeaseConfig::default());
        a.step(&store, t0).await;
        store.cut.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(a.step(&store, t0 + 3 * S).await, None);
        assert!(a.role().fence(t0 + 9 * S).is_some());
        let lost = a.step(&store, t0 + 10 * S).await;
        assert!(
            matches!(lost, Some(Change::Lost { epoch: 1, .. })),
            "{lost:?}"
        );
        assert!(a.role().fence(t0 + 10 * S).is_none());
    }

    #[tokio::test]
    async fn a_lease_let_go_is_taken_at_once_with_the_next_epoch() {
        let store = MemoryStore::default();
        let t0 = Instant::now();
        let mut a = Elector::new(holder("a"), LeaseConfig::default());
        let mut b = Elector::new(holder("b"), LeaseConfig::default());
        a.step(&store, t0).await;
        b.step(&store, t0).await;
        a.release(&store).await.unwrap();
        let took = b.step(&store, t0 + S).await;
        assert!(
            matches!(took, Some(Change::Took { epoch: 2, .. })),
            "{took:?}"
        );
        // Two standbys racing for a silent lease: one wins.
        let mut c = Elector::new(holder("c"), LeaseConfig::default());
        let mut d = Elector::new(holder("d"), LeaseConfig::default());
        c.step(&store, t0 + S).await;
        d.step(&store, t0 + S).await;
        let (x, y) = (
            c.step(&store, t0 + 11 * S).await,
            d.step(&store, t0 + 11 * S).await,
        );
        assert_eq!(
            [&x, &y]
                .iter()
                .filter(|c| matches!(c, Some(Change::Took { epoch: 3, .. })))
                .count(),
            1,
            "{x:?} {y:?}"
        );
    }

    #[test]
    fn settings_that_could_drop_a_live_holder_are_refused() {
        let bad = LeaseConfig {
            renew: Duration::from_secs(6),
            ..LeaseConfig::default()
        };
        assert!(bad.check().unwrap_err().contains("--lease-renew"));
        assert!(LeaseConfig::default().check().is_ok());
    }
}
