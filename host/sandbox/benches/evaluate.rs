//! Evaluation and load figures for BENCHMARKS.md.
//!
//! `cargo bench -p vedfolnir-sandbox --bench evaluate` prints a table:
//! - threshold-score evaluated in a fresh instance per call (the daemon's
//!   way), 6 signals x 60 samples: p50, p99;
//! - the same policy logic run natively through the SDK, and the ratio;
//! - component load: cold compile, and from the precompiled cache.

// Bench code: an unwrap that fails stops the bench, which is what it should do.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use vedfolnir_core::model::PolicyInput;
use vedfolnir_sandbox::{Provenance, Sandbox, SandboxConfig, smoke_inputs};
use vedfolnir_sdk::Policy as _;

const EVALUATIONS: usize = 20_000;
const LOADS: usize = 15;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn time_each(n: usize, mut f: impl FnMut()) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        f();
        samples.push(start.elapsed());
    }
    samples.sort();
    samples
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    // `cargo bench` passes --bench; accept and ignore harness flags.
    let bytes =
        vedfolnir_plugin_artifacts::policy("threshold-score").expect("built by plugins/artifacts");
    let mut config = SandboxConfig::default();
    if let Some(kib) = std::env::var("VEDFOLNIR_BENCH_RESIDENT_KIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        config.resident_memory = kib << 10;
    }
    let sandbox = Sandbox::new(config).unwrap();
    let plugin = sandbox
        .load_bytes("builtin:threshold-score", bytes)
        .unwrap();
    // The documented defaults: the policy file sets no parameter, so the
    // host passes none (the policy applies its declared defaults).
    let input: PolicyInput = smoke_inputs(&[]).remove(1).1;
    assert_eq!(input.signals.len(), 6);
    assert!(input.signals.iter().all(|w| w.samples.len() == 60));
    let wasm_rec = plugin.evaluate(&input).unwrap();
    let native_rec = threshold_score::ThresholdScore::evaluate(&input).unwrap();
    assert_eq!(
        wasm_rec, native_rec,
        "wasm and native must agree before they are compared"
    );

    // `VEDFOLNIR_BENCH_PROFILE=1`: loop the wasm evaluation only, for perf.
    // `VEDFOLNIR_BENCH_PROFILE=native`: the native path only.
    match std::env::var("VEDFOLNIR_BENCH_PROFILE").as_deref() {
        Ok("native") => {
            for _ in 0..1_000_000 {
                black_box(threshold_score::ThresholdScore::evaluate(black_box(&input)).unwrap());
            }
            return;
        }
        Ok("trivial") => {
            let trivial = sandbox
                .load_file(std::path::Path::new(vedfolnir_plugin_artifacts::fixture(
                    "guest-error",
                )))
                .unwrap();
            for _ in 0..100_000 {
                black_box(trivial.evaluate(black_box(&input)).unwrap_err());
            }
            return;
        }
        Ok(_) => {
            for _ in 0..100_000 {
                black_box(plugin.evaluate(black_box(&input)).unwrap());
            }
            return;
        }
        Err(_) => {}
    }

    // Warm up both paths (pool slots, caches, branch predictors).
    for _ in 0..2_000 {
        black_box(plugin.evaluate(black_box(&input)).unwrap());
        black_box(threshold_score::ThresholdScore::evaluate(black_box(&input)).unwrap());
    }
    let wasm = time_each(EVALUATIONS, || {
        black_box(plugin.evaluate(black_box(&input)).unwrap());
    });
    let native = time_each(EVALUATIONS, || {
        black_box(threshold_score::ThresholdScore::evaluate(black_box(&input)).unwrap());
    });

    // A sandbox of its own: `sandbox` holds the component loaded (by
    // digest), and would share it rather than compile it again.
    let cold_sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
    let cold = time_each(LOADS, || {
        let p = cold_sandbox.load_bytes("bench", bytes).unwrap();
        assert_eq!(p.provenance, Provenance::Compiled);
    });
    let dir = std::env::temp_dir().join(format!("vedfolnir-bench-cache-{}", std::process::id()));
    let cached_sandbox = Sandbox::new(SandboxConfig {
        cache_dir: Some(dir.clone()),
        ..Default::default()
    })
    .unwrap();
    cached_sandbox.load_bytes("bench", bytes).unwrap();
    let cached = time_each(LOADS, || {
        let p = cached_sandbox.load_bytes("bench", bytes).unwrap();
        assert_eq!(p.provenance, Provenance::Cached);
    });
    let _ = std::fs::remove_dir_all(&dir);

    // The sandbox's own cost: a policy that returns at once (the guest-error
    // fixture), on the same input: fresh instance, input marshalled into the
    // guest and converted by the SDK, a short error string back.
    let trivial = sandbox
        .load_file(std::path::Path::new(vedfolnir_plugin_artifacts::fixture(
            "guest-error",
        )))
        .unwrap();
    for _ in 0..2_000 {
        black_box(trivial.evaluate(black_box(&input)).unwrap_err());
    }
    let overhead = time_each(EVALUATIONS, || {
        black_box(trivial.evaluate(black_box(&input)).unwrap_err());
    });

    let (w50, w99) = (percentile(&wasm, 0.5), percentile(&wasm, 0.99));
    let (n50, n99) = (percentile(&native, 0.5), percentile(&native, 0.99));
    println!("threshold-score, 6 signals x 60 samples, {EVALUATIONS} evaluations each");
    println!();
    println!("| measurement | p50 | p99 |");
    println!("|---|---|---|");
    println!(
        "| evaluate, wasm, fresh instance per call | {} | {} |",
        us(w50),
        us(w99)
    );
    println!(
        "| evaluate, wasm, a policy that returns at once (sandbox overhead) | {} | {} |",
        us(percentile(&overhead, 0.5)),
        us(percentile(&overhead, 0.99))
    );
    println!(
        "| evaluate, native (same logic via the SDK) | {} | {} |",
        us(n50),
        us(n99)
    );
    println!(
        "| wasm / native | {:.1}x | {:.1}x |",
        w50.as_secs_f64() / n50.as_secs_f64(),
        w99.as_secs_f64() / n99.as_secs_f64()
    );
    println!(
        "| load, cold compile (compile + link + describe + validate), {LOADS} runs | {} | {} |",
        ms(percentile(&cold, 0.5)),
        ms(percentile(&cold, 0.99))
    );
    println!(
        "| load, precompiled cache (read + checksum + deserialize + link + describe + validate) | {} | {} |",
        ms(percentile(&cached, 0.5)),
        ms(percentile(&cached, 0.99))
    );
}
