//! The commands that talk to a running daemon's API: `status` (which reads
//! the state directory when no daemon answers), `pause` and `resume`.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde_json::Value;

use super::InvalidInput;
use super::args::{PauseArgs, StatusArgs};
use super::service::runtime;
use crate::clock::{Clock as _, SystemClock, format_time};
use crate::engine::EngineError;
use crate::state::StateDir;
use vedfolnir_core::model::TimestampMs;

/// How long a daemon may take to answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// No daemon answered at the address (exit 5, as an unreachable engine).
#[derive(Debug, thiserror::Error)]
#[error("no daemon answered at {url} ({why}): is `run` listening there? (--url or VEDFOLNIR_URL)")]
pub struct NoDaemon {
    /// The address tried.
    pub url: String,
    /// The innermost cause, in a few words.
    pub why: String,
}

/// `GET` or `POST` `path` on the daemon at `url`: the status code and the
/// JSON body, or why no daemon answered.
async fn call(url: &str, path: &str, post: Option<(&str, Value)>) -> Result<(u16, Value)> {
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .context("cannot build the HTTP client")?;
    let url = format!("{}{path}", url.trim_end_matches('/'));
    let request = match post {
        Some((token, body)) => client.post(&url).bearer_auth(token).json(&body),
        None => client.get(&url),
    };
    let response = request.send().await.map_err(|e| {
        let mut why: &dyn std::error::Error = &e;
        while let Some(inner) = why.source() {
            why = inner;
        }
        NoDaemon {
            url: url.clone(),
            why: why.to_string(),
        }
    })?;
    let code = response.status().as_u16();
    let body = response
        .json::<Value>()
        .await
        .with_context(|| format!("{url} answered {code} with a body that is not JSON"))?;
    Ok((code, body))
}

/// `pause SERVICE` (`paused`) or `resume SERVICE`.
pub fn pause(a: &PauseArgs, paused: bool) -> Result<ExitCode> {
    let verb = if paused { "pause" } else { "resume" };
    let token = super::token(a.api_token_file.as_deref(), "VEDFOLNIR_API_TOKEN", "API")?
        .ok_or_else(|| {
            InvalidInput(format!(
                "{verb} needs the API's token: --api-token-file (VEDFOLNIR_API_TOKEN_FILE) or VEDFOLNIR_API_TOKEN"
            ))
        })?;
    let body = serde_json::json!({ "reason": a.reason });
    let path = format!("/api/v1/services/{}/{verb}", a.service);
    let (code, answer) =
        runtime()?.block_on(call(&a.api.url, &path, Some((token.as_str(), body))))?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&answer)?);
    }
    let error = || answer["error"].as_str().unwrap_or("").to_string();
    match code {
        200 => {
            if !a.json {
                let changed = answer["changed"].as_bool().unwrap_or(true);
                outln!(
                    "{}: {}",
                    a.service,
                    match (paused, changed) {
                        (true, true) => "paused: automatic scaling stops after the pass in flight",
                        (true, false) => "already paused",
                        (false, true) => "resumed: automatic scaling goes on at the next pass",
                        (false, false) => "was not paused",
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        404 => Err(EngineError::not_found(format!("{} ({})", error(), a.api.url)).into()),
        _ => Err(InvalidInput(format!(
            "the daemon refused to {verb} {}: {code} {}",
            a.service,
            error()
        ))
        .into()),
    }
}

/// `status [SERVICE]`: from the daemon, else from the state directory.
pub fn status(a: &StatusArgs) -> Result<ExitCode> {
    match runtime()?.block_on(call(&a.api.url, "/api/v1/status", None)) {
        Ok((200, status)) => {
            let services = only(&status["services"], a.service.as_deref())?;
            if a.json {
                let out = serde_json::json!({
                    "from": "daemon",
                    "lease": status["lease"],
                    "services": services,
                });
                outln!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                if let Some(line) = crate::daemon::lease_line(&status["lease"]) {
                    outln!("{line}");
                }
                out!("{}", render(&services, &a.api.url, SystemClock.now_ms()));
            }
            Ok(ExitCode::SUCCESS)
        }
        Ok((code, _)) => Err(anyhow::anyhow!(
            "{} answered {code} to /api/v1/status",
            a.api.url
        )),
        Err(e) if e.is::<NoDaemon>() => from_state_dir(a, e),
        Err(e) => Err(e),
    }
}

/// The services asked for, by name: one, or all.
fn only(services: &Value, service: Option<&str>) -> Result<Value> {
    let Some(name) = service else {
        return Ok(services.clone());
    };
    match services.get(name) {
        Some(s) => Ok(serde_json::json!({ name: s })),
        None => {
            let known: Vec<&str> = services
                .as_object()
                .map(|m| m.keys().map(String::as_str).collect())
                .unwrap_or_default();
            Err(EngineError::not_found(format!(
                "the daemon serves no service {name:?} (it serves: {})",
                known.join(", ")
            ))
            .into())
        }
    }
}

/// A JSON number for people ([`super::render::number`]).
fn short(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| v.to_string(), super::render::number)
}

/// What is left of a cooldown that ends at `ends` (ms since the epoch).
fn left(ends: &Value, now: TimestampMs) -> String {
    match ends.as_i64() {
        Some(end) if end > now => format!(
            "{} left",
            vedfolnir_core::format_elapsed((end - now) as u64)
        ),
        Some(_) => "over".into(),
        None => "none yet".into(),
    }
}

/// A service's scores beside the ones it scales at, its thresholds, and
/// what is left of each cooldown at `now`.
fn against_thresholds(v: &Value, now: TimestampMs) -> String {
    let mut s = String::new();
    if let Some(sc) = v["scores"].as_object() {
        let against = |score: &Value, at: &Value, verb: &str| match at.as_f64() {
            Some(_) => format!("{} ({verb} at {})", short(score), short(at)),
            None => short(score),
        };
        let at = &v["score_thresholds"];
        let _ = writeln!(
            s,
            "  scores: up {}, down {}",
            against(&sc["up"], &at["up"], "scales up"),
            against(&sc["down"], &at["down"], "scales down")
        );
    }
    let _ = writeln!(
        s,
        "  cooldowns: scale-up {}, scale-down {}",
        left(&v["cooldown_up_ends_ms"], now),
        left(&v["cooldown_down_ends_ms"], now)
    );
    let thresholds: Vec<String> = v["thresholds"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let key = t[0].as_str()?;
            Some(format!(
                "{key} {}",
                crate::policy::threshold_value(key, t[1].as_str()?)
            ))
        })
        .collect();
    if !thresholds.is_empty() {
        let _ = writeln!(s, "  thresholds: {}", thresholds.join(", "));
    }
    s
}

/// The daemon's status as text, a block per service, at `now`.
fn render(services: &Value, url: &str, now: TimestampMs) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "from the daemon at {url}");
    for (name, v) in services.as_object().into_iter().flatten() {
        let count = |k: &str| v[k].as_u64().map_or("?".into(), |n| n.to_string());
        let _ = writeln!(
            s,
            "\n{name}: {} running, {} ready, bounds {}-{}{}",
            count("replicas"),
            count("ready"),
            v["min_replicas"],
            v["max_replicas"],
            if v["paused"].as_bool() == Some(true) {
                "; PAUSED"
            } else {
                ""
            }
        );
        if let Some(d) = v["last_decision"].as_object() {
            let when = d["time_ms"].as_i64().map(format_time).unwrap_or_default();
            let _ = writeln!(
                s,
                "  last decision ({when}): {} {} -> {}{}: {}",
                d["direction"].as_str().unwrap_or("?"),
                d["from"],
                d["to"],
                if d["dry_run"].as_bool() == Some(true) {
                    " (dry run)"
                } else {
                    ""
                },
                d["summary"].as_str().unwrap_or("")
            );
        }
        s.push_str(&against_thresholds(v, now));
        for (signal, value) in v["signals"].as_object().into_iter().flatten() {
            match value.get("missing") {
                Some(why) => {
                    let _ = writeln!(s, "  {signal}: MISSING ({})", why.as_str().unwrap_or(""));
                }
                None => {
                    let _ = writeln!(s, "  {signal}: {}", short(value));
                }
            }
        }
        for e in v["errors"].as_array().into_iter().flatten() {
            let _ = writeln!(s, "  error: {}", e.as_str().unwrap_or(""));
        }
        let _ = writeln!(
            s,
            "  passes: {}, the last at {}",
            v["passes"],
            v["last_pass"].as_str().unwrap_or("-")
        );
    }
    s
}

/// No daemon answered: what the state directory keeps (paused, the
/// cooldown clocks, the last decision).
fn from_state_dir(a: &StatusArgs, unreachable: anyhow::Error) -> Result<ExitCode> {
    let dir = &a.state.state_dir;
    if !dir.is_dir() {
        return Err(unreachable.context(format!(
            "no state directory at {} to read instead (--state-dir or VEDFOLNIR_STATE_DIR)",
            dir.display()
        )));
    }
    let state = StateDir::read_only(dir);
    let now = SystemClock.now_ms();
    let names: Vec<String> = match &a.service {
        Some(s) => vec![s.clone()],
        None => std::fs::read_dir(dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                name.strip_suffix(".state.json").map(str::to_string)
            })
            .collect(),
    };
    let mut services = serde_json::Map::new();
    for name in names {
        let s = state.state(&name, now)?;
        services.insert(name, serde_json::to_value(&s)?);
    }
    if a.json {
        let out = serde_json::json!({ "from": "state-directory", "services": services });
        outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{unreachable:#}\nfrom the state directory {} (what the last run kept):",
        dir.display()
    );
    let ago = |t: &Value| {
        t.as_i64().map_or("never".into(), |t| {
            format!(
                "{} ago",
                vedfolnir_core::format_elapsed((now - t).max(0) as u64)
            )
        })
    };
    for (name, s) in &services {
        outln!(
            "\n{name}:{}\n  last scale-up: {}; last scale-down: {}",
            if s["paused"].as_bool() == Some(true) {
                " PAUSED"
            } else {
                ""
            },
            ago(&s["last_scale_up"]),
            ago(&s["last_scale_down"])
        );
        if let Some(d) = s["last_decision"].as_object() {
            outln!(
                "  last decision ({}): {} {} -> {}: {}",
                ago(&d["time_ms"]),
                d["direction"].as_str().unwrap_or("?"),
                d["from"],
                d["to"],
                d["summary"].as_str().unwrap_or("")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: TimestampMs = 1_800_000_000_000;

    #[test]
    fn the_status_sets_scores_beside_their_thresholds_and_says_what_is_left_of_each_cooldown() {
        let services = serde_json::json!({
            "web": {
                "replicas": 3, "ready": 3, "min_replicas": 2, "max_replicas": 5,
                "scores": { "up": 1.0, "down": 0.25510209933986244 },
                "score_thresholds": { "up": 3.0, "down": 5.0 },
                "cooldown_up_ends_ms": NOW + 133_000,
                "cooldown_down_ends_ms": NOW - 1,
                "signals": { "cpu": 0.5, "queue-depth": { "missing": "no source provides it" } },
                "passes": 4
            },
            "target": {
                "scores": { "up": 2.0, "down": 0.0 },
                "score_thresholds": { "up": null, "down": null },
                "cooldown_up_ends_ms": null
            }
        });
        let text = render(&services, "http://127.0.0.1:9464", NOW);
        assert!(
            text.contains("scores: up 1 (scales up at 3), down 0.255 (scales down at 5)"),
            "{text}"
        );
        assert!(
            text.contains("cooldowns: scale-up 2m13s left, scale-down over"),
            "{text}"
        );
        assert!(
            text.contains("queue-depth: MISSING (no source provides it)"),
            "{text}"
        );
        // A policy that names no threshold: its scores alone.
        assert!(text.contains("scores: up 2, down 0\n"), "{text}");
        assert!(
            text.contains("cooldowns: scale-up none yet, scale-down none yet"),
            "{text}"
        );
    }
}
