//! The status page at `/`, loaded in a real browser (Debian's headless
//! Chromium) against a running daemon: what it shows, and a screenshot
//! kept as a test artifact (`target/test-artifacts/status-page.png`).
//!
//! Without Chromium this test says so and passes locally; with `CI=true`
//! it fails instead (`.ci/run` installs the package).

use std::process::Command;
use std::time::Duration;

use crate::daemon::{Daemon, free_port};
use crate::docker::{Project, engine, image};
use crate::util::{have, root};

/// Headless Chromium on `url` with `args`; its stdout.
fn chromium(url: &str, args: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_status_page_shows_replicas_signals_decisions_and_a_broken_policy_in_a_real_browser() {
    if !engine() || !have("chromium") {
        return;
    }
    let p = Project::up("page", 1, image());
    let folder = tempfile::tempdir().unwrap();
    // A policy whose minimum (2) is above what runs: a decision to show.
    std::fs::write(
        folder.path().join("vedfolnir.toml"),
        format!(
            "service = \"vedfolnir\"\nplugin = \"builtin:threshold-score\"\nmin_replicas = 2\nmax_replicas = 4\n[target]\nproject = \"{}\"\n[rollout]\nmonitor = \"20s\"\nstop_timeout = \"5s\"\n",
            p.name
        ),
    )
    .unwrap();
    let mut d = Daemon::spawn(&p, folder.path(), free_port(), &["--interval", "1s"], &[]);
    d.expect_line("SCALE UP 1 -> 2", Duration::from_secs(60));
    d.expect_line("HOLD at 2", Duration::from_secs(30));
    // Then a policy that fails to load (the hot reload keeps serving the
    // rest).
    std::fs::write(
        folder.path().join("broken.toml"),
        "service = \"store\"\nplugin = \"builtin:no-such-policy\"\n",
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while d.status()["load_errors"].as_array().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "{}", d.status());
        std::thread::sleep(Duration::from_millis(200));
    }

    let url = format!("http://{}/", d.listen);
    let dom = chromium(&url, &["--dump-dom"]);
    for wanted in [
        "<h1>Vedfolnir Autoscaler</h1>",
        "id=\"service-vedfolnir\"",
        // The replicas chart, with the scale marked.
        "<svg class=\"replicas\"",
        "class=\"scale\"",
        // Signals against the thresholds the policy compares them with, in
        // the signal's unit.
        "cpu-high.threshold 70%",
        "memory-low.threshold 40%",
        // The decision, with its reason and guard rule.
        "scale up 1 → 2 (succeeded, 2 running)",
        "below-minimum",
        // The broken policy, by file and stage.
        "Policies that failed to load",
        "broken.toml",
        "no-such-policy",
        // It refreshes itself, without JavaScript.
        "http-equiv=\"refresh\" content=\"1\"",
    ] {
        assert!(dom.contains(wanted), "no {wanted:?} in the page:\n{dom}");
    }
    assert!(!dom.contains("<script"), "the page needs no JavaScript");

    let artifacts = root().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &url,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,1300",
        ],
    );
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
}
