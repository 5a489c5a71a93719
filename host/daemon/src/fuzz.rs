//! The parsers of untrusted input, opened to the fuzz targets in `fuzz/`
//! (`scripts/fuzz.sh` runs them). Each takes raw bytes as they would
//! arrive (a file, a request body, a scraped page) and must return, never
//! panic; where a result has a property that must hold, it is checked here.

use std::path::Path;

use vedfolnir_core::scenario::ScenarioFile;
use vedfolnir_core::snapshot::{Frame, Snapshot};

/// A policy file, as `validate` and the daemon's reload read it.
pub fn policy_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/fuzz/policy.toml");
    if let Err(problems) =
        crate::config::PolicyFile::parse(path, text, &crate::config::Overrides::default())
    {
        // Every problem names the file.
        assert!(!problems.0.is_empty());
        for p in &problems.0 {
            assert_eq!(p.file, path, "{p:?}");
        }
    }
}

/// A replica's `/metrics` page, as the `scrape` source reads it.
pub fn scrape_text(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(page) = crate::sources::scrape::parse(text) {
        assert!(page.len() <= crate::sources::scrape::MAX_SERIES);
    }
}

/// A Prometheus query response body, as the `prometheus` source reads it.
pub fn prometheus_response(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    for key in ["value", "values"] {
        let _ = crate::sources::prometheus::one_series(&body["data"], key);
    }
}

/// An Alertmanager webhook body, as `POST /webhook/alertmanager` takes it.
pub fn alertmanager_body(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let book = crate::sources::alertmanager::AlertBook::default();
    if let Ok(n) = book.ingest(&body) {
        let listed = body["alerts"].as_array().map(Vec::len).unwrap_or(0);
        assert!((n.firing + n.resolved + n.ignored) as usize <= listed);
    }
}

/// A load trace (CSV), as `simulate --trace` reads it.
pub fn trace_csv(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(file) = crate::simulate::trace::parse(text, None) {
        let values = &file.trace.values;
        assert!(values.iter().all(|v| v.is_finite() && *v >= 0.0));
        assert!(file.trace.step_ms > 0);
    }
}

/// A snapshot, as `evaluate --input` reads it.
pub fn snapshot(data: &[u8]) {
    let Ok(snap) = serde_json::from_slice::<Snapshot>(data) else {
        return;
    };
    let frame = Frame {
        service: "fuzz".into(),
        min_replicas: 2,
        max_replicas: 5,
        params: Vec::new(),
    };
    if let Ok(input) = snap.to_input(&frame) {
        assert!(
            input
                .signals
                .iter()
                .all(|w| w.samples.iter().all(|s| s.at <= input.now))
        );
    }
}

/// A scenario file, as `plugin test` reads it.
pub fn scenarios(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = toml::from_str::<ScenarioFile>(text) else {
        return;
    };
    for scenario in &file.scenarios {
        let (min, max, _, snapshot) = file.resolve(scenario);
        let frame = Frame {
            service: "fuzz".into(),
            min_replicas: min,
            max_replicas: max,
            params: Vec::new(),
        };
        let _ = snapshot.to_input(&frame);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every fuzz target's seed corpus (`fuzz/corpus/<target>`) and every
    /// input it once crashed on (`fuzz/regressions/<target>`, kept after
    /// the fix), through the same entry points, on every `cargo test`.
    #[test]
    fn the_seed_corpus_and_every_kept_crash_run_clean() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
        type Target = fn(&[u8]);
        let targets: [(&str, Target); 7] = [
            ("policy_file", super::policy_file),
            ("scrape_text", super::scrape_text),
            ("prometheus_response", super::prometheus_response),
            ("alertmanager_body", super::alertmanager_body),
            ("trace_csv", super::trace_csv),
            ("snapshot", super::snapshot),
            ("scenarios", super::scenarios),
        ];
        for (name, run) in targets {
            let mut seeds = 0;
            let target_file = root.join(format!("fuzz_targets/{name}.rs"));
            assert!(target_file.exists(), "{} is missing", target_file.display());
            for dir in ["corpus", "regressions"] {
                let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else {
                    continue;
                };
                for entry in entries {
                    let path = entry.unwrap().path();
                    run(&std::fs::read(&path).unwrap());
                    seeds += 1;
                }
            }
            assert!(seeds > 0, "{name} has no seed corpus");
        }
    }
}
