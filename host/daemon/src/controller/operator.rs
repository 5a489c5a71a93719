//! What an operator does to a service besides scaling it ([`super::manual`]
//! does that): pause and resume automatic scaling, and reset its cooldowns.
//! Each changes the state file and is audited when it changes something;
//! the daemon's API (`pause`, `resume`) and the command line (`reset`) call
//! these and print.

use vedfolnir_core::duration::format_elapsed;
use vedfolnir_core::model::TimestampMs;

use super::PassError;
use crate::audit::{Actor, Audit, AuditRecord, Event};
use crate::state::StateDir;

/// Who asks, how and when.
#[derive(Debug, Clone)]
pub struct Asked {
    /// The operator's channel: the API or the command line.
    pub actor: Actor,
    /// The API request's audit id, when it came through the API.
    pub request: Option<String>,
    /// The operator's reason, when given.
    pub reason: Option<String>,
    /// A dry run: recorded as one, production clocks untouched.
    pub dry_run: bool,
    /// When.
    pub now: TimestampMs,
}

/// Pause (`paused`) or resume automatic scaling; audited when it changes.
/// Whether it changed.
pub fn pause(
    state: &StateDir,
    audit: &dyn Audit,
    service: &str,
    paused: bool,
    asked: Asked,
) -> Result<bool, PassError> {
    let was = state.update(service, asked.now, |s| {
        std::mem::replace(&mut s.paused, paused)
    })?;
    if was == paused {
        return Ok(false);
    }
    let (verb, event) = if paused {
        ("paused", Event::Paused)
    } else {
        ("resumed", Event::Resumed)
    };
    let channel = match asked.actor {
        Actor::Api => "through the API",
        _ => "from the command line",
    };
    let mut reasons = vec![format!("automatic scaling {verb} {channel}")];
    reasons.extend(asked.reason);
    audit.append(&AuditRecord {
        reasons,
        dry_run: asked.dry_run,
        request: asked.request,
        ..AuditRecord::new(service, event, asked.actor, asked.now)
    })?;
    Ok(true)
}

/// Clear the service's cooldowns (the seed's `reset`; a dry run clears
/// only the dry-run clocks), audited; the audit log and sample history are
/// kept. What it cleared, in words: `cooldowns cleared (last scale-up 3m
/// ago, last scale-down never)`.
pub fn reset(
    state: &StateDir,
    audit: &dyn Audit,
    service: &str,
    asked: Asked,
) -> Result<String, PassError> {
    let now = asked.now;
    let before = state.reset_cooldowns(service, now, asked.dry_run)?;
    let ago = |t: Option<TimestampMs>| {
        t.map(|t| format!("{} ago", format_elapsed((now - t).max(0) as u64)))
            .unwrap_or_else(|| "never".into())
    };
    let what = format!(
        "{}cooldowns cleared (last scale-up {}, last scale-down {})",
        if asked.dry_run {
            "dry run: the dry-run "
        } else {
            ""
        },
        ago(before.last_scale_up),
        ago(before.last_scale_down)
    );
    let mut reasons = vec![what.clone()];
    reasons.extend(asked.reason);
    audit.append(&AuditRecord {
        reasons,
        dry_run: asked.dry_run,
        request: asked.request,
        ..AuditRecord::new(service, Event::Reset, asked.actor, now)
    })?;
    Ok(what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditLog;

    fn asked(now: TimestampMs) -> Asked {
        Asked {
            actor: Actor::Api,
            request: Some("req-1".into()),
            reason: Some("maintenance".into()),
            dry_run: false,
            now,
        }
    }

    #[test]
    fn pause_and_resume_are_audited_only_when_they_change_something() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let audit = AuditLog::in_dir(dir.path());
        assert!(pause(&state, &audit, "web", true, asked(1)).unwrap());
        assert!(!pause(&state, &audit, "web", true, asked(2)).unwrap());
        assert!(state.state("web", 3).unwrap().paused);
        assert!(pause(&state, &audit, "web", false, asked(4)).unwrap());
        let records = audit.records("web").unwrap();
        let events: Vec<Event> = records.iter().map(|r| r.event).collect();
        assert_eq!(events, [Event::Paused, Event::Resumed]);
        assert_eq!(
            records[0].reasons,
            ["automatic scaling paused through the API", "maintenance"]
        );
        assert_eq!(records[0].request.as_deref(), Some("req-1"));
    }

    #[test]
    fn a_reset_clears_the_cooldowns_and_says_what_they_were() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let audit = AuditLog::in_dir(dir.path());
        state
            .update("web", 0, |s| s.last_scale_up = Some(60_000))
            .unwrap();
        let done = reset(
            &state,
            &audit,
            "web",
            Asked {
                actor: Actor::Manual,
                reason: None,
                request: None,
                ..asked(240_000)
            },
        )
        .unwrap();
        assert_eq!(
            done,
            "cooldowns cleared (last scale-up 3m ago, last scale-down never)"
        );
        assert_eq!(state.state("web", 0).unwrap().last_scale_up, None);
        let records = audit.records("web").unwrap();
        assert_eq!(
            (records[0].event, records[0].actor),
            (Event::Reset, Actor::Manual)
        );
        // A dry run leaves the production clocks alone.
        state
            .update("web", 0, |s| s.last_scale_up = Some(60_000))
            .unwrap();
        let dry = Asked {
            dry_run: true,
            ..asked(240_000)
        };
        let done = reset(&state, &audit, "web", dry).unwrap();
        assert!(done.starts_with("dry run: the dry-run cooldowns"), "{done}");
        assert_eq!(state.state("web", 0).unwrap().last_scale_up, Some(60_000));
    }
}
