//! Loading a policy component, in the stages the daemon and
//! `plugin check` both run:
//!
//! ```text
//! read -> decode (header, compile or cache) -> world (export + contract
//! version) -> imports (allowlist) -> link (pre-instantiate) -> describe
//! (call describe, validate the defaults) -> smoke (sample evaluations)
//! ```
//!
//! Each failure names the stage and the source, so an operator reading
//! "policies/custom.wasm: imports failed: ..." knows what to fix.

use std::fmt;
use std::hash::{Hash as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use thiserror::Error;
use vedfolnir_core::guard;
use vedfolnir_core::model::{Param, PolicyInput, Sample, SignalId, SignalWindow};
use wasmtime::component::Component;

use crate::{Loaded, Plugin, Provenance, Sandbox, bindings};

/// The contract's package name.
pub const CONTRACT_PACKAGE: &str = "vedfolnir:autoscaler";
/// The contract version this host implements. Components built against the
/// same major.minor (`0.1.x`) are accepted.
pub const CONTRACT_VERSION: &str = "0.1.0";
const EXPORT_INTERFACE: &str = "vedfolnir:autoscaler/scaling-policy";

/// Imports a policy may have: the contract's own interfaces, and the WASI
/// 0.2 interfaces that Rust's std links for a `wasm32-wasip2` component
/// (streams, stdio, environment, exit, clocks, random). The host satisfies
/// all of them with a deny-everything context. Anything else (filesystem,
/// sockets, HTTP, unknown interfaces) is rejected by name at load.
pub const ALLOWED_IMPORT_PREFIXES: &[&str] = &[
    "vedfolnir:autoscaler/host@0.1.",
    "vedfolnir:autoscaler/types@0.1.",
    "wasi:io/error@0.2.",
    "wasi:io/poll@0.2.",
    "wasi:io/streams@0.2.",
    "wasi:cli/environment@0.2.",
    "wasi:cli/exit@0.2.",
    "wasi:cli/stdin@0.2.",
    "wasi:cli/stdout@0.2.",
    "wasi:cli/stderr@0.2.",
    "wasi:cli/terminal-input@0.2.",
    "wasi:cli/terminal-output@0.2.",
    "wasi:cli/terminal-stdin@0.2.",
    "wasi:cli/terminal-stdout@0.2.",
    "wasi:cli/terminal-stderr@0.2.",
    "wasi:clocks/wall-clock@0.2.",
    "wasi:clocks/monotonic-clock@0.2.",
    "wasi:random/random@0.2.",
    "wasi:random/insecure@0.2.",
    "wasi:random/insecure-seed@0.2.",
];

/// A stage of loading a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Reading the file.
    Read,
    /// Checking it is a component and compiling it.
    Decode,
    /// Checking it exports the policy interface at a supported version.
    World,
    /// Checking every import is allowed.
    Imports,
    /// Linking it against the host.
    Link,
    /// Calling `describe` and validating the declared defaults.
    Describe,
    /// Evaluating sample inputs.
    Smoke,
}

impl Stage {
    /// Every stage, in order.
    pub const ALL: [Stage; 7] = [
        Stage::Read,
        Stage::Decode,
        Stage::World,
        Stage::Imports,
        Stage::Link,
        Stage::Describe,
        Stage::Smoke,
    ];

    /// The stage's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Read => "read",
            Stage::Decode => "decode",
            Stage::World => "world",
            Stage::Imports => "imports",
            Stage::Link => "link",
            Stage::Describe => "describe",
            Stage::Smoke => "smoke-test",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A policy that failed to load, naming where and at which stage. Its
/// display is the operator's sentence; the error that caused it (the file
/// system's, the linker's), when there is one, is its source:
/// [`LoadError::detail`] or an error chain prints both.
#[derive(Debug, Clone, Error)]
#[error("{source_label}: {stage} failed: {message}")]
pub struct LoadError {
    /// The file path or `builtin:<name>`.
    pub source_label: String,
    /// The failing stage.
    pub stage: Stage,
    /// What went wrong.
    pub message: String,
    /// What caused it.
    #[source]
    pub cause: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl LoadError {
    /// `label` failed at `stage`: `message`.
    pub fn new(label: impl Into<String>, stage: Stage, message: impl Into<String>) -> LoadError {
        LoadError {
            source_label: label.into(),
            stage,
            message: message.into(),
            cause: None,
        }
    }

    /// This error, caused by `cause`.
    pub fn caused_by(
        self,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> LoadError {
        LoadError {
            cause: Some(Arc::from(cause.into())),
            ..self
        }
    }

    /// The message and each cause, joined by ": ".
    pub fn detail(&self) -> String {
        let mut s = self.message.clone();
        let mut cause: Option<&(dyn std::error::Error + 'static)> = self
            .cause
            .as_deref()
            .map(|c| c as &(dyn std::error::Error + 'static));
        while let Some(c) = cause {
            s.push_str(": ");
            s.push_str(&c.to_string());
            cause = c.source();
        }
        s
    }
}

/// The largest component file loaded: several times a component built
/// from an interpreted language (a Python one is about 40 MB), hundreds of
/// times the shipped ones.
pub const MAX_COMPONENT_BYTES: u64 = 128 << 20;

impl Sandbox {
    /// Load a policy from a `.wasm` file (at most [`MAX_COMPONENT_BYTES`]),
    /// through the describe stage.
    pub fn load_file(&self, path: &Path) -> Result<Plugin, LoadError> {
        let label = path.display().to_string();
        let bytes = crate::files::read(path, MAX_COMPONENT_BYTES)
            .map_err(|e| LoadError::new(&label, Stage::Read, "cannot read it").caused_by(e))?;
        self.load_bytes(&label, &bytes)
    }

    /// Load a policy from bytes, through the describe stage. `label` names
    /// it in errors and logs.
    pub fn load_bytes(&self, label: &str, bytes: &[u8]) -> Result<Plugin, LoadError> {
        let fail = |stage, message: String| LoadError::new(label, stage, message);
        check_header(bytes).map_err(|m| fail(Stage::Decode, m))?;
        check_memory_minimum(bytes, self.inner.config.memory_cap)
            .map_err(|m| fail(Stage::Decode, m))?;
        let digest = hex(&Sha256::digest(bytes));
        if let Some(loaded) = self.in_use(&digest) {
            return Ok(Plugin::of(self, loaded, label, digest, Provenance::Shared));
        }
        let (component, provenance) = self
            .compile_cached(bytes, &digest)
            .map_err(|m| fail(Stage::Decode, m))?;

        let pre = self.link(label, &component)?;
        let (loaded, plugin) = self
            .describe(pre, label, &digest, provenance)
            .map_err(|m| fail(Stage::Describe, m))?;
        self.keep_in_use(digest, &loaded);
        Ok(plugin)
    }

    /// The world, import and link stages: the component exports the
    /// contract's world, imports only what a policy may
    /// ([`ALLOWED_IMPORT_PREFIXES`]), and links against the host. `label`
    /// names it in errors.
    fn link(
        &self,
        label: &str,
        component: &Component,
    ) -> Result<bindings::PolicyPre<crate::State>, LoadError> {
        let engine = &self.inner.engine;
        let ty = component.component_type();
        let exports: Vec<String> = ty
            .exports(engine)
            .map(|(name, _)| name.to_string())
            .collect();
        check_world(&exports).map_err(|m| LoadError::new(label, Stage::World, m))?;
        let imports: Vec<String> = ty
            .imports(engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let refused: Vec<&str> = imports
            .iter()
            .map(String::as_str)
            .filter(|n| !ALLOWED_IMPORT_PREFIXES.iter().any(|p| n.starts_with(p)))
            .collect();
        if !refused.is_empty() {
            return Err(LoadError::new(
                label,
                Stage::Imports,
                format!(
                    "imports {} which a policy may not use (policies get no filesystem, network or \
                     environment; allowed: the contract's host interface and the WASI io/cli/clocks/random \
                     interfaces that std links)",
                    refused.join(", ")
                ),
            ));
        }
        self.inner
            .linker
            .instantiate_pre(component)
            .and_then(bindings::PolicyPre::new)
            .map_err(|e| {
                LoadError::new(label, Stage::Link, "it does not link against the host").caused_by(e)
            })
    }

    /// The describe stage: `describe` called on a plugin of its own, its
    /// answer checked (a name, defaults of their declared kinds, defaults
    /// the policy's own `validate-config` accepts), then the plugin made.
    fn describe(
        &self,
        pre: bindings::PolicyPre<crate::State>,
        label: &str,
        digest: &str,
        provenance: Provenance,
    ) -> Result<(Arc<Loaded>, Plugin), String> {
        let describing = Arc::new(Loaded {
            pre: pre.clone(),
            description: vedfolnir_core::Description::new("(describing)", "", ""),
        });
        let plugin = Plugin::of(self, describing, label, digest.to_string(), provenance);
        let description = plugin
            .call("describe", 0, |policy, store| {
                policy
                    .vedfolnir_autoscaler_scaling_policy()
                    .call_describe(store)
            })
            .map(crate::convert::description)
            .map_err(|e| format!("{}: {}", e.kind, e.message))?;
        if description.name.is_empty() {
            return Err("describe returned an empty name".into());
        }
        let defaults = description.default_params();
        if let Some(spec) = description
            .params
            .iter()
            .find(|p| p.default.kind() != p.kind)
        {
            return Err(format!(
                "parameter {} is declared {} but its default is {}",
                spec.key,
                spec.kind,
                spec.default.kind()
            ));
        }
        let loaded = Arc::new(Loaded { pre, description });
        let plugin = Plugin::of(self, loaded.clone(), label, digest.to_string(), provenance);
        match plugin.validate_config(&defaults) {
            Ok(Ok(())) => Ok((loaded, plugin)),
            Ok(Err(errors)) => {
                let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
                Err(format!(
                    "the policy rejects its own defaults: {}",
                    list.join("; ")
                ))
            }
            Err(e) => Err(format!("validate-config {}: {}", e.kind, e.message)),
        }
    }

    /// The component of `digest`, when a plugin of this sandbox still uses
    /// it.
    fn in_use(&self, digest: &str) -> Option<Arc<Loaded>> {
        let loaded = self.inner.loaded.lock().expect("loaded lock");
        loaded.get(digest).and_then(std::sync::Weak::upgrade)
    }

    /// Remember a component that passed every stage, and forget those no
    /// plugin uses any more.
    fn keep_in_use(&self, digest: String, loaded: &Arc<Loaded>) {
        let mut map = self.inner.loaded.lock().expect("loaded lock");
        map.retain(|_, w| w.strong_count() > 0);
        map.insert(digest, Arc::downgrade(loaded));
    }

    /// Compile, or read the compiled form from the digest-keyed cache.
    fn compile_cached(
        &self,
        bytes: &[u8],
        digest: &str,
    ) -> Result<(Component, Provenance), String> {
        let engine = &self.inner.engine;
        let Some(dir) = &self.inner.config.cache_dir else {
            return Component::new(engine, bytes)
                .map(|c| (c, Provenance::Compiled))
                .map_err(|e| format!("{e:#}"));
        };
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let key = format!("{digest}-{:016x}", hasher.finish());
        let artifact = dir.join(format!("{key}.cwasm"));
        let checksum = dir.join(format!("{key}.sha256"));
        if let Some(component) = self.read_cached(&artifact, &checksum) {
            return Ok((component, Provenance::Cached));
        }
        let component = Component::new(engine, bytes).map_err(|e| format!("{e:#}"))?;
        // A cache that cannot be written costs speed, never correctness.
        if let Err(e) = write_cache(dir, &artifact, &checksum, &component) {
            tracing::warn!(dir = %dir.display(), "cannot write the precompiled-policy cache: {e}");
        }
        Ok((component, Provenance::Compiled))
    }

    fn read_cached(&self, artifact: &Path, checksum: &Path) -> Option<Component> {
        let bytes = std::fs::read(artifact).ok()?;
        let expected = std::fs::read_to_string(checksum).ok()?;
        if hex(&Sha256::digest(&bytes)) != expected.trim() {
            tracing::warn!(path = %artifact.display(), "precompiled policy does not match its checksum; recompiling");
            return None;
        }
        // SAFETY: `deserialize` trusts its input to be machine code that
        // wasmtime itself produced. These bytes are: we wrote them from
        // `Component::serialize` into our own cache directory (created
        // 0700), named by the source digest and the engine's compatibility
        // hash, and they match the checksum written beside them, so a
        // truncated or corrupted file is never mapped.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(&self.inner.engine, &bytes) };
        match component {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %artifact.display(), "cannot use precompiled policy ({e:#}); recompiling");
                None
            }
        }
    }
}

fn write_cache(
    dir: &Path,
    artifact: &Path,
    checksum: &Path,
    component: &Component,
) -> Result<(), String> {
    create_private_dir(dir).map_err(|e| e.to_string())?;
    let bytes = component.serialize().map_err(|e| format!("{e:#}"))?;
    write_atomic(artifact, &bytes)?;
    write_atomic(checksum, hex(&Sha256::digest(&bytes)).as_bytes())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write as _;
    let tmp: PathBuf = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn check_header(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err("not a WebAssembly file (no \\0asm header)".into());
    }
    match bytes[4..8] {
        [0x0d, 0x00, 0x01, 0x00] => Ok(()),
        [0x01, 0x00, 0x00, 0x00] => Err("a core WebAssembly module, not a component: build the policy with \
             `cargo build --target wasm32-wasip2` (or wrap a core module with `wasm-tools component new`)"
            .into()),
        _ => Err(format!("unknown WebAssembly version/layer {:02x?}", &bytes[4..8])),
    }
}

fn check_world(exports: &[String]) -> Result<(), String> {
    let found = exports.iter().find_map(|name| {
        name.strip_prefix(EXPORT_INTERFACE)
            .and_then(|rest| rest.strip_prefix('@'))
            .map(|v| (name, v))
    });
    let Some((name, version)) = found else {
        let hint = if exports.iter().any(|e| e.starts_with("wasi:cli/run")) {
            " (it exports wasi:cli/run: a WASI command, not a policy)"
        } else {
            " (a Rust policy exports it with `vedfolnir_sdk::export_policy!(YourPolicy);` once, \
             at the top level of its crate, built with crate-type \"cdylib\")"
        };
        return Err(format!(
            "does not export {EXPORT_INTERFACE}@{CONTRACT_VERSION}{hint}; exports: [{}]",
            exports.join(", ")
        ));
    };
    fn compatible(v: &str) -> Vec<&str> {
        v.split('.').take(2).collect()
    }
    if compatible(version) != compatible(CONTRACT_VERSION) {
        return Err(format!(
            "exports {name}: built against contract {CONTRACT_PACKAGE}@{version}, this host speaks {CONTRACT_PACKAGE}@0.1.x"
        ));
    }
    Ok(())
}

/// Refuse a component one of whose core modules defines a linear memory
/// that starts above the memory cap: it could never be instantiated, and
/// wasmtime's own words for that are about its pooling allocator. Anything
/// that does not parse is left for the compiler to describe.
fn check_memory_minimum(bytes: &[u8], cap: usize) -> Result<(), String> {
    use wasmparser::{Encoding, Parser, Payload};
    let mut module = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload {
            Ok(Payload::Version {
                encoding: Encoding::Module,
                ..
            }) => module += 1,
            Ok(Payload::MemorySection(reader)) => {
                for (index, memory) in reader.into_iter().enumerate() {
                    let Ok(memory) = memory else { return Ok(()) };
                    let page = 1u64 << memory.page_size_log2.unwrap_or(16);
                    let start = memory.initial.saturating_mul(page);
                    if start > cap as u64 {
                        return Err(format!(
                            "linear memory {index} of core module {module} starts at {} ({} pages), over the sandbox's memory cap of {}: it could never run. Link the policy with a smaller initial memory, or raise the cap (--plugin-memory-mib)",
                            crate::files::size(start),
                            memory.initial,
                            crate::files::size(cap as u64)
                        ));
                    }
                }
            }
            Ok(_) => {}
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}

/// The sample inputs of the smoke test: a quiet service, a busy one, and
/// one with every signal missing. A policy must answer each without a trap,
/// a timeout, an error, or a malformed recommendation.
pub fn smoke_inputs(params: &[Param]) -> Vec<(&'static str, PolicyInput)> {
    const NOW: i64 = 1_800_000_000_000;
    let series = |value: f64| -> Vec<Sample> {
        (0..60)
            .map(|i| Sample {
                at: NOW - (59 - i) * 15_000,
                value,
            })
            .collect()
    };
    let input = |signals: Vec<SignalWindow>| PolicyInput {
        service: "smoke-test".into(),
        now: NOW,
        current_replicas: 3,
        ready_replicas: 3,
        min_replicas: 2,
        max_replicas: 5,
        since_last_scale_up: None,
        since_last_scale_down: None,
        params: params.to_vec(),
        signals,
    };
    let all = |cpu: f64, mem: f64, queue: f64, p95: f64, err: f64| {
        SignalId::WELL_KNOWN
            .iter()
            .zip([cpu, mem, queue, p95, err, 3.0])
            .map(|(s, v)| SignalWindow {
                signal: s.clone(),
                samples: series(v),
                missing_reason: None,
            })
            .collect()
    };
    vec![
        ("quiet service", input(all(0.1, 0.3, 0.0, 0.2, 0.0))),
        ("busy service", input(all(0.95, 0.9, 200.0, 5.0, 0.2))),
        (
            "every signal missing",
            input(
                SignalId::WELL_KNOWN
                    .iter()
                    .map(|s| SignalWindow {
                        signal: s.clone(),
                        samples: vec![],
                        missing_reason: Some("smoke test: no data".into()),
                    })
                    .collect(),
            ),
        ),
    ]
}

impl Plugin {
    /// Evaluate the sample inputs with the given effective parameters.
    ///
    /// Fails on a trap, a timeout, running out of memory, or a malformed
    /// recommendation (non-finite score, direction disagreeing with the
    /// count). A guest error is the policy's own documented answer (for
    /// example "no queue-depth sample": the host then holds), so it does not
    /// fail the test; it is returned as a note for the author to read, as is
    /// output the host had to cut to its limits.
    pub fn smoke_test(&self, params: &[Param]) -> Result<Vec<String>, LoadError> {
        let fail = |message: String| LoadError::new(&self.id.source, Stage::Smoke, message);
        let mut notes = Vec::new();
        for (name, input) in smoke_inputs(params) {
            let rec = match self.evaluate(&input) {
                Ok(rec) => rec,
                Err(e) if e.kind == guard::FailureKind::Guest => {
                    notes.push(format!(
                        "{name}: the policy returned an error (the host would hold): {}",
                        e.message
                    ));
                    continue;
                }
                Err(e) => return Err(fail(format!("{name}: {}: {}", e.kind, e.message))),
            };
            if let Some(problem) = guard::malformed(&rec, input.current_replicas) {
                return Err(fail(format!("{name}: {problem}")));
            }
            if let Some(mark) = rec.reasons.iter().find(|r| crate::Cut::marks(r)) {
                notes.push(format!("{name}: {}", mark.message));
            }
        }
        Ok(notes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_check_names_the_problem() {
        assert!(
            check_header(b"hello world")
                .unwrap_err()
                .contains("not a WebAssembly file")
        );
        assert!(
            check_header(b"\0asm\x01\0\0\0")
                .unwrap_err()
                .contains("core WebAssembly module")
        );
        assert!(check_header(b"\0asm\x0d\0\x01\0").is_ok());
    }

    #[test]
    fn world_check_accepts_patch_versions_only_within_the_minor() {
        let ok = |v: &str| check_world(&[format!("{EXPORT_INTERFACE}@{v}")]);
        assert!(ok("0.1.0").is_ok());
        assert!(ok("0.1.7").is_ok());
        assert!(ok("0.2.0").unwrap_err().contains("0.2.0"));
        assert!(ok("1.1.0").is_err());
        let err = check_world(&["wasi:cli/run@0.2.6".into()]).unwrap_err();
        assert!(err.contains("WASI command"), "{err}");
        // A crate built without the macro exports nothing: the hint names it.
        let err = check_world(&[]).unwrap_err();
        assert!(err.contains("export_policy!"), "{err}");
        assert!(err.contains("exports: []"), "{err}");
    }
}
