//! Runs Vedfolnir policy components in a wasmtime sandbox.
//!
//! Everything that knows wasmtime lives here; callers see the core model
//! ([`vedfolnir_core::model`]) and classified errors, never a wasmtime type.
//!
//! A policy is compiled once and linked once ([`Plugin`] holds a pre-linked
//! `PolicyPre`), then **instantiated afresh for every evaluation**, from the
//! pooling allocator. That is the isolation guarantee: a policy cannot keep
//! state between evaluations, and a bad one cannot leak memory into a daemon
//! that runs for months, because its whole store is dropped after each call.
//!
//! Each evaluation runs under an epoch deadline (default 50 ms) and a memory
//! cap (default 32 MiB, growth failure traps). The WASI context denies
//! everything: no environment, no arguments, no preopened directories, no
//! sockets; stdout/stderr are captured into the log tagged with the plugin;
//! the clocks read the evaluation's `now`; randomness comes from a fixed
//! seed. An evaluation is therefore a pure function of its input. What it
//! returns is cut to [`OutputLimits`] (64 reasons, 1 KiB a message, 64 bytes
//! a trigger by default), and a cut is marked by an `output-cut` reason.
#![deny(unsafe_code)]

mod convert;
pub mod files;
mod load;

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::SeedableRng as _;
use thiserror::Error;
pub use vedfolnir_core::bounds::{Cut, OutputLimits};
use vedfolnir_core::guard::{FailureKind, PolicyFailure};
use vedfolnir_core::model::{ConfigError, Description, Param, PolicyInput, Recommendation};
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, ResourceLimiter, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

pub use load::{
    ALLOWED_IMPORT_PREFIXES, CONTRACT_PACKAGE, CONTRACT_VERSION, LoadError, MAX_COMPONENT_BYTES,
    Stage, smoke_inputs,
};

#[allow(missing_docs, unused_qualifications, clippy::all)]
mod bindings {
    wasmtime::component::bindgen!({
        world: "policy",
        path: "../../wit",
    });
}

/// Sandbox settings.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Wall-clock budget of one call into a policy. Defaults to 50 ms.
    pub deadline: Duration,
    /// Most linear memory one evaluation may use. Defaults to 32 MiB; at
    /// least 2 MiB (a Rust guest starts at about 1.1 MiB).
    pub memory_cap: usize,
    /// Where compiled components are cached, keyed by the module's digest.
    /// `None` disables the disk cache.
    pub cache_dir: Option<PathBuf>,
    /// Most evaluations in flight at once (pooling allocator slots).
    /// Defaults to 64.
    pub max_concurrent: u32,
    /// Epoch tick: the deadline's precision. Defaults to 5 ms.
    pub tick: Duration,
    /// Most bytes of stdout (and of stderr) kept from one evaluation.
    /// Defaults to 16 KiB.
    pub output_cap: usize,
    /// Most `log` lines kept from one evaluation. Defaults to 32.
    pub max_log_lines: u32,
    /// Bytes at the start of each pooled linear memory kept mapped and reset
    /// with memset between evaluations instead of being unmapped and faulted
    /// in again. It should cover what an evaluation touches: the stack (64
    /// KiB for the shipped policies), the data segment and the early heap.
    /// Defaults to 256 KiB.
    pub resident_memory: usize,
    /// Most a recommendation may say; the rest is cut and the cut marked.
    pub output_limits: OutputLimits,
    /// An instruction budget per call instead of the wall-clock deadline:
    /// what a replay uses, so that whether a call runs out depends on the
    /// policy and its input alone, never on how busy the machine is. A call
    /// past it fails as a `timeout`. `deadline` then only decides which
    /// calls [`Plugin::over_deadline`] counts. Defaults to `None` (the
    /// daemon's wall-clock deadline).
    pub fuel: Option<u64>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            deadline: Duration::from_millis(50),
            memory_cap: 32 << 20,
            cache_dir: None,
            max_concurrent: 64,
            tick: Duration::from_millis(5),
            output_cap: 16 << 10,
            max_log_lines: 32,
            resident_memory: 256 << 10,
            output_limits: OutputLimits::default(),
            fuel: None,
        }
    }
}

/// A sandbox could not be set up.
#[derive(Debug, Error)]
pub enum SandboxError {
    /// The settings are out of range.
    #[error("invalid sandbox setting {setting}: {problem}")]
    Config {
        /// Which setting.
        setting: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// wasmtime refused the engine configuration.
    #[error("cannot create the wasm engine")]
    Engine(#[source] wasmtime::Error),
}

/// The wasm engine and its settings, shared by every loaded plugin.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<State>,
    config: SandboxConfig,
    deadline_ticks: u64,
    ticker: Ticker,
    /// The components in use, by digest: a policy file naming one already
    /// loaded shares it (compiled code, pre-linked form, description)
    /// rather than loading it again. Weak, so a version no plugin uses any
    /// more is freed.
    loaded: Mutex<std::collections::HashMap<String, std::sync::Weak<Loaded>>>,
}

/// What every plugin of the same component shares.
struct Loaded {
    pre: bindings::PolicyPre<State>,
    description: Description,
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox")
            .field("config", &self.inner.config)
            .finish()
    }
}

/// Advances the engine's epoch while evaluations are in flight, and sleeps
/// otherwise, so an idle daemon spends no CPU on deadlines.
struct Ticker {
    in_flight: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Ticker {
    fn start(engine: Engine, tick: Duration) -> Ticker {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, s) = (in_flight.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    if f.load(Ordering::Acquire) == 0 {
                        std::thread::park_timeout(Duration::from_millis(250));
                    } else {
                        std::thread::sleep(tick);
                        engine.increment_epoch();
                    }
                }
            })
            .expect("spawning a thread only fails when the process is out of resources");
        Ticker {
            in_flight,
            stop,
            thread: Mutex::new(Some(thread)),
        }
    }

    fn enter(&self) -> TickerGuard<'_> {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) == 0
            && let Some(t) = self.thread.lock().expect("ticker lock").as_ref()
        {
            t.thread().unpark();
        }
        TickerGuard(self)
    }
}

struct TickerGuard<'a>(&'a Ticker);

impl Drop for TickerGuard<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.ticker.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.thread.lock().expect("ticker lock").take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl Sandbox {
    /// Create the engine: component model, pooling allocator, epoch
    /// interruption, and a linker with the deny-everything WASI context and
    /// the contract's `log` import.
    pub fn new(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        if config.memory_cap < (2 << 20) {
            return Err(SandboxError::Config {
                setting: "memory_cap",
                problem: format!(
                    "{} bytes is below the 2 MiB a Rust guest needs to start",
                    config.memory_cap
                ),
            });
        }
        if config.tick.is_zero() || config.deadline < config.tick * 2 {
            return Err(SandboxError::Config {
                setting: "deadline",
                problem: format!(
                    "{:?} must be at least two epoch ticks of {:?} (one tick can fire at once)",
                    config.deadline, config.tick
                ),
            });
        }
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        let slots = config.max_concurrent.max(1);
        pool.total_component_instances(slots)
            .total_core_instances(slots * 4)
            .total_memories(slots * 4)
            .total_tables(slots * 4)
            .max_memory_size(config.memory_cap)
            // Keep the first pages of each slot resident between uses: the
            // guest's stack, data segment and early heap are touched by every
            // evaluation, and resetting them with memset is cheaper than
            // unmapping them and faulting them in again.
            .linear_memory_keep_resident(config.resident_memory)
            .table_keep_resident(16 << 10);
        let mut wasm = wasmtime::Config::new();
        wasm.wasm_component_model(true)
            .epoch_interruption(config.fuel.is_none())
            .consume_fuel(config.fuel.is_some())
            .allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool))
            .cranelift_opt_level(wasmtime::OptLevel::Speed);
        let engine = Engine::new(&wasm).map_err(SandboxError::Engine)?;

        let mut linker = Linker::<State>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(SandboxError::Engine)?;
        bindings::Policy::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)
            .map_err(SandboxError::Engine)?;

        let deadline_ticks = config.deadline.as_nanos().div_ceil(config.tick.as_nanos()) as u64;
        let ticker = Ticker::start(engine.clone(), config.tick);
        Ok(Sandbox {
            inner: Arc::new(Inner {
                engine,
                linker,
                config,
                deadline_ticks,
                ticker,
                loaded: Mutex::default(),
            }),
        })
    }

    /// The settings in force.
    pub fn config(&self) -> &SandboxConfig {
        &self.inner.config
    }
}

/// Identifies a loaded plugin in logs, errors and the audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginId {
    /// Where it came from (a path, or `builtin:<name>`).
    pub source: String,
    /// The policy's own name, from `describe`.
    pub name: String,
    /// The policy's own version, from `describe`.
    pub version: String,
    /// sha256 of the `.wasm` bytes, hex.
    pub digest: String,
}

impl fmt::Display for PluginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{} ({}, sha256:{})",
            self.name,
            self.version,
            self.source,
            &self.digest[..12]
        )
    }
}

/// A loaded, validated, pre-linked policy. Cheap to clone; plugins of the
/// same component (by digest) in one sandbox share its compiled form.
#[derive(Clone)]
pub struct Plugin {
    sandbox: Sandbox,
    loaded: Arc<Loaded>,
    id: Arc<PluginId>,
    /// Calls that took longer than the sandbox's deadline, by wall clock.
    over_deadline: Arc<AtomicU64>,
    /// How the component was obtained, for the load-time figures.
    pub provenance: Provenance,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin").field("id", &self.id).finish()
    }
}

/// Whether a component was compiled now, read from the precompiled cache,
/// or shared with a plugin of the same digest already loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    /// Compiled from the `.wasm` bytes.
    Compiled,
    /// Deserialized from the digest-keyed cache.
    Cached,
    /// The same component, already loaded in this sandbox for another
    /// policy file: nothing compiled, read or described again.
    Shared,
}

/// An evaluation that did not produce a value, classified.
#[derive(Debug, Clone, Error)]
#[error("policy {plugin} {call}: {kind}: {message}")]
pub struct EvalError {
    /// The class of failure.
    pub kind: FailureKind,
    /// Which plugin.
    pub plugin: Arc<PluginId>,
    /// Which export was called.
    pub call: &'static str,
    /// The detail (the trap, the guest's message, stderr's tail).
    pub message: String,
}

impl EvalError {
    /// The form the guard rails take.
    pub fn to_failure(&self) -> PolicyFailure {
        PolicyFailure {
            kind: self.kind,
            message: format!("{}: {}", self.plugin, self.message),
        }
    }
}

impl Plugin {
    /// A plugin of a loaded component, named `label` (its file, or
    /// `builtin:<name>`).
    fn of(
        sandbox: &Sandbox,
        loaded: Arc<Loaded>,
        label: &str,
        digest: String,
        provenance: Provenance,
    ) -> Plugin {
        Plugin {
            sandbox: sandbox.clone(),
            id: Arc::new(PluginId {
                source: label.to_string(),
                name: loaded.description.name.clone(),
                version: loaded.description.version.clone(),
                digest,
            }),
            loaded,
            over_deadline: Default::default(),
            provenance,
        }
    }

    /// The plugin's identity.
    pub fn id(&self) -> &Arc<PluginId> {
        &self.id
    }

    /// What the policy said about itself at load.
    pub fn description(&self) -> &Description {
        &self.loaded.description
    }

    /// How many calls (of this plugin and its clones) took longer than the
    /// sandbox's `deadline` by the wall clock: under a fuel budget (a
    /// replay) the calls the daemon's deadline would have stopped. It
    /// depends on the machine and its load, unlike everything else a
    /// replay reports.
    pub fn over_deadline(&self) -> u64 {
        self.over_deadline.load(Ordering::Relaxed)
    }

    /// Ask the policy to check parameters. The outer `Err` is a failure of
    /// the call itself; the inner one the policy's list of problems.
    pub fn validate_config(
        &self,
        params: &[Param],
    ) -> Result<Result<(), Vec<ConfigError>>, EvalError> {
        let wit_params = convert::params(params);
        self.call("validate-config", 0, |policy, store| {
            policy
                .vedfolnir_autoscaler_scaling_policy()
                .call_validate_config(store, &wit_params)
        })
        .map(|r| r.map_err(convert::config_errors))
    }

    /// Evaluate one service in a fresh instance. The recommendation is cut
    /// to the sandbox's [`OutputLimits`]; a cut recommendation ends with an
    /// `output-cut` reason ([`Cut::marks`]).
    pub fn evaluate(&self, input: &PolicyInput) -> Result<Recommendation, EvalError> {
        let wit_input = convert::input(input);
        let result = self.call("evaluate", input.now, |policy, store| {
            policy
                .vedfolnir_autoscaler_scaling_policy()
                .call_evaluate(store, &wit_input)
        })?;
        let limits = &self.sandbox.inner.config.output_limits;
        result
            .map(|rec| {
                let mut rec = convert::recommendation(rec);
                limits.apply(&mut rec);
                rec
            })
            .map_err(|mut message| {
                vedfolnir_core::bounds::shorten(&mut message, limits.message_bytes);
                EvalError {
                    kind: FailureKind::Guest,
                    plugin: self.id.clone(),
                    call: "evaluate",
                    message,
                }
            })
    }

    /// Instantiate afresh, call `f`, classify any failure, forward the
    /// guest's output to the log.
    fn call<R>(
        &self,
        call: &'static str,
        now_ms: i64,
        f: impl FnOnce(&bindings::Policy, &mut Store<State>) -> wasmtime::Result<R>,
    ) -> Result<R, EvalError> {
        let inner = &self.sandbox.inner;
        let mut store = Store::new(
            &inner.engine,
            State::new(&inner.config, now_ms, self.id.clone()),
        );
        store.limiter(|s| &mut s.limits);
        let _ticking = match inner.config.fuel {
            Some(fuel) => {
                store.set_fuel(fuel).expect("the engine consumes fuel");
                None
            }
            None => {
                store.set_epoch_deadline(inner.deadline_ticks);
                store.epoch_deadline_trap();
                Some(inner.ticker.enter())
            }
        };
        let started = Instant::now();
        let outcome = self
            .loaded
            .pre
            .instantiate(&mut store)
            .and_then(|policy| f(&policy, &mut store));
        if started.elapsed() > inner.config.deadline {
            self.over_deadline.fetch_add(1, Ordering::Relaxed);
        }
        let state = store.data();
        state.forward_output();
        outcome.map_err(|error| self.classify(call, error, state))
    }

    fn classify(&self, call: &'static str, error: wasmtime::Error, state: &State) -> EvalError {
        let stderr_tail = state.stderr_tail();
        let (kind, mut message) = if let Some(denied) = state.limits.denied {
            (
                FailureKind::OutOfMemory,
                format!(
                    "memory cap reached: asked for {} bytes, cap {} bytes",
                    denied, self.sandbox.inner.config.memory_cap
                ),
            )
        } else if let Some(trap) = error.downcast_ref::<wasmtime::Trap>() {
            match trap {
                wasmtime::Trap::Interrupt => (
                    FailureKind::Timeout,
                    format!(
                        "ran past its deadline of {:?}",
                        self.sandbox.inner.config.deadline
                    ),
                ),
                wasmtime::Trap::OutOfFuel => (
                    FailureKind::Timeout,
                    format!(
                        "ran past its budget of {} instructions",
                        self.sandbox.inner.config.fuel.unwrap_or_default()
                    ),
                ),
                // The kind already says "trap"; wasmtime's own words
                // begin "wasm trap: " too.
                other => {
                    let text = other.to_string();
                    let what = text.strip_prefix("wasm trap: ").unwrap_or(&text);
                    (FailureKind::Trap, what.to_string())
                }
            }
        } else {
            (FailureKind::Trap, format!("{error:#}"))
        };
        if !stderr_tail.is_empty() {
            message.push_str(&format!("; guest stderr: {stderr_tail}"));
        }
        EvalError {
            kind,
            plugin: self.id.clone(),
            call,
            message,
        }
    }
}

/// Per-evaluation host state. Dropped with the store after every call.
struct State {
    /// The deny-everything WASI context, built on the guest's first WASI
    /// call: most evaluations make none (a policy that neither prints nor
    /// reads a clock), and building one (random and clock contexts, two
    /// output pipes) is a measurable part of a fresh instance's cost.
    wasi: Option<Wasi>,
    /// What the context is built from.
    now: Duration,
    output_cap: usize,
    table: ResourceTable,
    limits: Limits,
    plugin: Arc<PluginId>,
    log_lines: u32,
    max_log_lines: u32,
}

/// A WASI context and the pipes its stdout and stderr write to.
struct Wasi {
    ctx: WasiCtx,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
}

impl Wasi {
    fn new(now: Duration, output_cap: usize) -> Wasi {
        let stdout = MemoryOutputPipe::new(output_cap);
        let stderr = MemoryOutputPipe::new(output_cap);
        // WasiCtxBuilder::new() starts with no env, no args, no preopens,
        // closed stdin, and every socket address denied.
        let ctx = wasmtime_wasi::WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .wall_clock(FixedClock(now))
            .monotonic_clock(FixedClock(now))
            .secure_random(rand::rngs::StdRng::seed_from_u64(RANDOM_SEED))
            .insecure_random(rand::rngs::StdRng::seed_from_u64(RANDOM_SEED ^ 1))
            .insecure_random_seed(u128::from(RANDOM_SEED))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Wasi {
            ctx,
            stdout,
            stderr,
        }
    }
}

/// The seed of every evaluation's randomness: fixed, so a replay draws the
/// same numbers. Policies hold no secrets, so predictability costs nothing.
const RANDOM_SEED: u64 = 0x7665_6466_6f6c_6e69;

impl State {
    fn new(config: &SandboxConfig, now_ms: i64, plugin: Arc<PluginId>) -> State {
        State {
            wasi: None,
            now: Duration::from_millis(now_ms.max(0) as u64),
            output_cap: config.output_cap,
            table: ResourceTable::new(),
            limits: Limits {
                cap: config.memory_cap,
                denied: None,
            },
            plugin,
            log_lines: 0,
            max_log_lines: config.max_log_lines,
        }
    }

    /// What the guest wrote to `stdout` or `stderr`.
    fn output(&self, stream: &str) -> Vec<u8> {
        match &self.wasi {
            Some(w) if stream == "stdout" => w.stdout.contents().to_vec(),
            Some(w) => w.stderr.contents().to_vec(),
            None => Vec::new(),
        }
    }

    fn forward_output(&self) {
        for stream in ["stdout", "stderr"] {
            let bytes = self.output(stream);
            if bytes.is_empty() {
                continue;
            }
            for line in String::from_utf8_lossy(&bytes)
                .lines()
                .filter(|l| !l.trim().is_empty())
            {
                tracing::info!(plugin = %self.plugin.name, digest = %&self.plugin.digest[..12], stream, "{line}");
            }
        }
    }

    /// The end of what the guest wrote to stderr, on one line, without
    /// the Rust runtime's tip to set `RUST_BACKTRACE`: no environment
    /// reaches the sandbox, so the tip cannot be followed.
    fn stderr_tail(&self) -> String {
        let bytes = self.output("stderr");
        let text = String::from_utf8_lossy(&bytes);
        let text: Vec<&str> = text
            .lines()
            .filter(|l| {
                !(l.starts_with("note: run with `RUST_BACKTRACE=") && l.contains("backtrace"))
            })
            .collect();
        let text = text.join("\n");
        let text = text.trim();
        let start = text.len().saturating_sub(400);
        let start = (start..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len());
        text[start..].replace('\n', " | ")
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let (now, cap) = (self.now, self.output_cap);
        let wasi = self.wasi.get_or_insert_with(|| Wasi::new(now, cap));
        WasiCtxView {
            ctx: &mut wasi.ctx,
            table: &mut self.table,
        }
    }
}

impl bindings::vedfolnir::autoscaler::types::Host for State {}

impl bindings::vedfolnir::autoscaler::host::Host for State {
    fn log(&mut self, level: bindings::vedfolnir::autoscaler::host::Level, message: String) {
        use bindings::vedfolnir::autoscaler::host::Level;
        self.log_lines += 1;
        if self.log_lines > self.max_log_lines {
            if self.log_lines == self.max_log_lines + 1 {
                tracing::warn!(plugin = %self.plugin.name, "log line limit of {} reached; dropping the rest of this evaluation's lines", self.max_log_lines);
            }
            return;
        }
        let mut message = message;
        if message.len() > 1024 {
            let cut = (0..=1024)
                .rev()
                .find(|i| message.is_char_boundary(*i))
                .unwrap_or(0);
            message.truncate(cut);
            message.push('…');
        }
        let plugin = &self.plugin.name;
        match level {
            Level::Debug => tracing::debug!(plugin = %plugin, "{message}"),
            Level::Info => tracing::info!(plugin = %plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin = %plugin, "{message}"),
            Level::Error => tracing::error!(plugin = %plugin, "{message}"),
        }
    }
}

/// Caps linear memory and remembers a denied growth, so running out of
/// memory is classified as such rather than as a generic trap.
struct Limits {
    cap: usize,
    denied: Option<usize>,
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.denied = Some(desired);
            return Err(wasmtime::format_err!(
                "memory cap reached: asked for {desired} bytes, cap {} bytes",
                self.cap
            ));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// A clock stopped at the evaluation's `now`.
struct FixedClock(Duration);

impl HostWallClock for FixedClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }
    fn now(&self) -> Duration {
        self.0
    }
}

impl HostMonotonicClock for FixedClock {
    fn resolution(&self) -> u64 {
        1_000_000
    }
    fn now(&self) -> u64 {
        self.0.as_nanos() as u64
    }
}
