//! Builds the shipped policies and the test fixtures to `wasm32-wasip2`
//! components as part of the ordinary `cargo build` / `cargo test`, so no
//! one has to remember a separate step (the approach of wasmtime's own
//! `test-programs-artifacts`).
//!
//! It runs a nested `cargo build` of the guest crates, from this same
//! workspace and lock file, into `wasm-artifacts` in the outer target
//! directory: a separate directory so the nested cargo never waits on the
//! outer one's build lock, and one shared by every outer build (check,
//! clippy, test, release, another target), which all build the same guests
//! with the same profile, so the guests are compiled once. The paths of the
//! results are written to `artifacts.rs`.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Shipped policies: embedded into the daemon as `builtin:<name>`.
const POLICIES: &[&str] = &[
    "threshold-score",
    "target-tracking",
    "predictive",
    "cost-aware",
];

/// Misbehaving guests for the sandbox tests (see plugins/fixtures/README.md).
const FIXTURES: &[&str] = &[
    "loop-forever",
    "alloc-unbounded",
    "panics",
    "guest-error",
    "nan-scores",
    "imports-filesystem",
    "imports-sockets",
    "other-world",
    "wrong-version",
    "probe-environment",
    "oversized-output",
    "large-memory",
];

const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "wasm-plugin";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .join("../..")
        .canonicalize()
        .expect("workspace root exists");
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));
    let target_dir = guest_target_dir(&out_dir);

    for watched in [
        "wit",
        "plugins/sdk",
        "plugins/threshold-score",
        "plugins/target-tracking",
        "plugins/predictive",
        "plugins/cost-aware",
        "plugins/fixtures",
        "host/core/src",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    // VEDFOLNIR_GUEST_TOOLCHAIN builds the guests with another rustup
    // toolchain than the outer build's: the fuzz targets build on nightly,
    // whose wasm32-wasip2 standard library may not be published, while the
    // guests need nothing but the pinned stable one.
    println!("cargo:rerun-if-env-changed=VEDFOLNIR_GUEST_TOOLCHAIN");
    let mut cmd = match env::var("VEDFOLNIR_GUEST_TOOLCHAIN") {
        Ok(toolchain) => {
            let mut cmd = Command::new("rustup");
            cmd.args(["run", &toolchain, "cargo"]);
            for var in ["RUSTC", "RUSTDOC", "RUSTUP_TOOLCHAIN", "CARGO"] {
                cmd.env_remove(var);
            }
            cmd
        }
        Err(_) => {
            ensure_target_installed();
            Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        }
    };
    cmd.current_dir(&root)
        .args([
            "build",
            "--target",
            TARGET,
            "--profile",
            PROFILE,
            "--target-dir",
        ])
        .arg(&target_dir);
    if env::var_os("CARGO_NET_OFFLINE").is_some() {
        cmd.arg("--offline");
    }
    for p in POLICIES {
        cmd.args(["-p", p]);
    }
    for f in FIXTURES {
        cmd.args(["-p", &format!("fixture-{f}")]);
    }
    // The outer build's settings are for the host, not for wasm: a wrapper
    // (clippy-driver under `cargo clippy`), host RUSTFLAGS or a forced
    // target dir would break or redirect the guest build.
    for var in [
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_LLVM_COV",
        "__CARGO_FIX_PLZ",
    ] {
        cmd.env_remove(var);
    }
    for (key, _) in env::vars_os() {
        if let Some(k) = key.to_str()
            && (k.starts_with("CARGO_PROFILE_")
                || k.starts_with("CARGO_CFG_")
                || k.starts_with("CARGO_FEATURE_"))
        {
            cmd.env_remove(&key);
        }
    }
    // A 64 KiB stack instead of Rust's default 1 MiB: wasm-ld puts the
    // stack first, so with 1 MiB the pages an evaluation touches (stack top,
    // data, heap) sit above 1 MiB, outside the pool's resident window, and
    // fault in on every fresh instance. With 64 KiB they are compact and
    // stay resident (see BENCHMARKS.md). Overflow traps and is classified.
    cmd.env(
        "CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS",
        "-C link-arg=-zstack-size=65536",
    );
    let status = cmd
        .status()
        .expect("cannot run cargo for the wasm32-wasip2 guests");
    assert!(
        status.success(),
        "building the policy components failed ({status}); is the wasm32-wasip2 target installed? \
         (`rustup toolchain install` in the workspace installs it from rust-toolchain.toml)"
    );

    let wasm_dir = target_dir.join(TARGET).join(PROFILE);
    let mut code = String::new();
    let path_of = |crate_name: &str| {
        let file = wasm_dir.join(format!("{}.wasm", crate_name.replace('-', "_")));
        assert!(
            file.exists(),
            "expected {} after the guest build",
            file.display()
        );
        file
    };
    writeln!(code, "/// Shipped policies: (name, path, bytes).").expect("a String takes any write");
    writeln!(code, "pub const POLICIES: &[(&str, &str, &[u8])] = &[")
        .expect("a String takes any write");
    for p in POLICIES {
        let file = path_of(p);
        writeln!(
            code,
            "    ({p:?}, {f:?}, include_bytes!({f:?})),",
            f = file.display().to_string()
        )
        .expect("a String takes any write");
    }
    writeln!(code, "];").expect("a String takes any write");
    writeln!(code, "/// Test fixtures: (name, path).").expect("a String takes any write");
    writeln!(code, "pub const FIXTURES: &[(&str, &str)] = &[").expect("a String takes any write");
    for f in FIXTURES {
        let file = if *f == "other-world" {
            // A binary crate: cargo names its component after the bin.
            let file = wasm_dir.join("fixture-other-world.wasm");
            assert!(
                file.exists(),
                "expected {} after the guest build",
                file.display()
            );
            file
        } else {
            path_of(&format!("fixture-{f}"))
        };
        writeln!(code, "    ({f:?}, {:?}),", file.display().to_string())
            .expect("a String takes any write");
    }
    writeln!(code, "];").expect("a String takes any write");
    std::fs::write(out_dir.join("artifacts.rs"), code).expect("write artifacts.rs");
}

/// The nested build's target directory: `wasm-artifacts` in the outer
/// target directory. `OUT_DIR` is `<target>/[<triple>/]<profile>/build/
/// <package>-<hash>/out`; where it is laid out otherwise, the guests build
/// under `OUT_DIR`, for this build alone.
fn guest_target_dir(out_dir: &Path) -> PathBuf {
    let triple = env::var("TARGET").unwrap_or_default();
    out_dir
        .ancestors()
        .nth(4)
        .map(|dir| match dir.parent() {
            Some(parent) if dir.file_name().is_some_and(|name| *name == *triple) => parent,
            _ => dir,
        })
        .filter(|target| target.join("CACHEDIR.TAG").is_file())
        .map_or_else(
            || out_dir.join("wasm-target"),
            |target| target.join("wasm-artifacts"),
        )
}

/// rustup installs the targets of rust-toolchain.toml when it installs the
/// toolchain, but not into a toolchain that was already there. Add the one
/// target the guests need, visibly, rather than fail with a cryptic
/// "can't find crate for `core`".
fn ensure_target_installed() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let Some(sysroot) = sysroot else { return };
    if sysroot.join("lib/rustlib").join(TARGET).exists() {
        return;
    }
    println!(
        "cargo:warning=installing the {TARGET} target with rustup (needed to build the policy components)"
    );
    let mut cmd = Command::new("rustup");
    cmd.args(["target", "add", TARGET]);
    if let Ok(toolchain) = env::var("RUSTUP_TOOLCHAIN") {
        cmd.args(["--toolchain", &toolchain]);
    }
    match cmd.status() {
        Ok(s) if s.success() => {}
        other => println!(
            "cargo:warning=`rustup target add {TARGET}` failed ({other:?}); the guest build will fail"
        ),
    }
}
