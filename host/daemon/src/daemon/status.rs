//! What `/api/v1/status` shows: each service's last pass, the policy
//! version in force, and the files and modules that failed to load.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;
use vedfolnir_core::model::TimestampMs;
use vedfolnir_core::snapshot::effective_params;

use crate::audit::{AuditRecord, Event, PluginRecord, Scores};
use crate::clock::{format_time, now_ms};
use crate::policy::{ReadyPolicy, ScoreThresholds};
use crate::state::LastDecision;

/// A failed policy file or module, as the status API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LoadErrorView {
    /// The file.
    pub path: String,
    /// The stage that failed.
    pub stage: String,
    /// Why.
    pub message: String,
    /// Since when (RFC 3339).
    pub since: String,
}

/// A `.wasm` file in a watched folder.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleView {
    /// What it is, when it passed every stage.
    pub plugin: Option<PluginRecord>,
    /// The stage and message, when it did not.
    pub error: Option<String>,
}

/// The shadow policy's last decision.
#[derive(Debug, Clone, Serialize)]
pub struct ShadowView {
    /// The shadow plugin.
    pub plugin: PluginRecord,
    /// Its decision's direction.
    pub direction: vedfolnir_core::Direction,
    /// Its target.
    pub target: u32,
    /// Its scores.
    pub scores: Option<Scores>,
    /// Whether it differs from the live decision.
    pub diverges: bool,
    /// Passes where it differed, since the daemon started.
    pub divergences: u64,
}

/// One service, as the status API shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServiceStatus {
    /// The policy file.
    pub policy_file: String,
    /// The live plugin: the policy version in force.
    pub plugin: Option<PluginRecord>,
    /// When that version was loaded.
    pub policy_loaded: String,
    /// Running replicas, at the last pass.
    pub replicas: Option<u32>,
    /// Ready replicas, at the last pass.
    pub ready: Option<u32>,
    /// Each signal's newest value, or why it is missing.
    pub signals: BTreeMap<String, serde_json::Value>,
    /// The live policy's scores.
    pub scores: Option<Scores>,
    /// The scores at which it scales, where its parameters name them.
    pub score_thresholds: ScoreThresholds,
    /// When the scale-up cooldown ends or ended (ms since the epoch), as
    /// the last pass saw the state; absent when no scale-up ever finished.
    pub cooldown_up_ends_ms: Option<TimestampMs>,
    /// When the scale-down cooldown (from the last scale either way) ends.
    pub cooldown_down_ends_ms: Option<TimestampMs>,
    /// The last decision ("would scale" in a dry run).
    pub last_decision: Option<LastDecision>,
    /// The shadow policy, when there is one.
    pub shadow: Option<ShadowView>,
    /// Automatic scaling paused.
    pub paused: bool,
    /// Passes run since the daemon started.
    pub passes: u64,
    /// When the last pass ran.
    pub last_pass: Option<String>,
    /// What went wrong at the last pass, and the policy file's load error.
    pub errors: Vec<String>,
    /// The policy's lower bound.
    pub min_replicas: u32,
    /// The policy's upper bound.
    pub max_replicas: u32,
    /// The policy's thresholds and targets (`*.threshold`, `target.*`),
    /// as the plugin reads them: what the signals are compared with.
    pub thresholds: Vec<(String, String)>,
    /// How its passes keep to their interval.
    pub pace: PaceView,
    /// (time, running, ready) at each pass of the last [`HISTORY_MS`], for
    /// the status page's chart; begun from the audit log
    /// ([`ServiceStatus::seed`]).
    #[serde(skip)]
    pub history: VecDeque<(TimestampMs, u32, u32)>,
}

/// How a service's passes keep to their interval, as the status shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PaceView {
    /// Passes that started late since the daemon started (see
    /// `controller::LATE_AFTER`).
    pub late: u64,
    /// The last pass's wall time, ms.
    pub last_ms: f64,
    /// Each stage of the last pass, ms, in the pass's order.
    pub stages_ms: Vec<(&'static str, f64)>,
    /// Pass wall time over the last [`PACE_POINTS`] passes: median, ms.
    pub p50_ms: f64,
    /// ... and 99th percentile, ms.
    pub p99_ms: f64,
    /// Replicas whose stats the last pass read by each path (`cgroup-v1`,
    /// `cgroup-v2`, `api`); empty without the docker source.
    pub stats_read_by: BTreeMap<&'static str, u32>,
    #[serde(skip)]
    recent: VecDeque<f32>,
}

/// How many passes the status's pass-time percentiles cover (an hour at a
/// 15 s interval).
pub const PACE_POINTS: usize = 240;

impl PaceView {
    /// Take one pass.
    pub fn record(
        &mut self,
        timings: &crate::telemetry::Timings,
        late: bool,
        read_by: Option<&BTreeMap<&'static str, u32>>,
    ) {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        self.late += u64::from(late);
        self.last_ms = ms(timings.total());
        self.stages_ms = timings.stages().map(|(n, d)| (n, ms(d))).to_vec();
        if self.recent.len() == PACE_POINTS {
            self.recent.pop_front();
        }
        self.recent.push_back(self.last_ms as f32);
        let mut sorted: Vec<f32> = self.recent.iter().copied().collect();
        sorted.sort_by(f32::total_cmp);
        let at = |q: f64| f64::from(sorted[((sorted.len() - 1) as f64 * q).round() as usize]);
        (self.p50_ms, self.p99_ms) = (at(0.5), at(0.99));
        self.stats_read_by = read_by.cloned().unwrap_or_default();
    }
}

/// How long the replica history of the status page is kept.
pub const HISTORY_MS: i64 = 12 * 3600 * 1000;

/// The most passes kept in it (12 h at a 15 s interval).
pub const HISTORY_POINTS: usize = 2880;

/// How many of a service's newest audit records a new loop reads to begin
/// its chart ([`ServiceStatus::seed`]).
pub const SEED_RECORDS: usize = 1000;

impl ServiceStatus {
    /// Begin an empty history with the replica counts the audit log
    /// recorded before `now`, so a restarted daemon's chart shows the hours
    /// before it rather than nothing: the count before the first finished
    /// scale of the last [`HISTORY_MS`], then what each reached (ready
    /// taken as running: the log does not record it). `records` are the
    /// service's newest, newest first ([`crate::audit::AuditLog::recent`]);
    /// when there are `limit` of them the log may go further back, and the
    /// history begins at the oldest, not at [`HISTORY_MS`] ago.
    pub fn seed(&mut self, records: &[AuditRecord], now: TimestampMs, limit: usize) {
        if !self.history.is_empty() {
            return;
        }
        let mut since = now - HISTORY_MS;
        if records.len() >= limit
            && let Some(oldest) = records.last()
        {
            since = since.max(oldest.time_ms);
        }
        let mut scales: Vec<(TimestampMs, u32, u32)> = records
            .iter()
            .filter(|r| r.event == Event::ScaleFinished && !r.dry_run)
            .filter(|r| r.time_ms >= since && r.time_ms < now)
            .filter_map(|r| {
                Some((
                    r.time_ms,
                    r.report.as_ref()?.from,
                    r.report.as_ref()?.reached,
                ))
            })
            .collect();
        scales.reverse();
        let Some(&(_, before, _)) = scales.first() else {
            return;
        };
        self.record(since, before, before);
        for (at, _, reached) in scales {
            self.record(at, reached, reached);
        }
    }

    /// Record a pass's replica counts, dropping what is too old. A run of
    /// passes with the same counts keeps only its first and last point:
    /// the chart is a step line, so nothing between them is lost, and a
    /// steady service holds two points instead of one per pass (ten
    /// thousand services would otherwise hold 2,880 each after 12 hours).
    pub fn record(&mut self, at: TimestampMs, running: u32, ready: u32) {
        let n = self.history.len();
        let same = |p: &(TimestampMs, u32, u32)| (p.1, p.2) == (running, ready);
        if n >= 2 && same(&self.history[n - 2]) && same(&self.history[n - 1]) {
            self.history[n - 1].0 = at;
        } else {
            self.history.push_back((at, running, ready));
        }
        let cutoff = at - HISTORY_MS;
        while self.history.len() > HISTORY_POINTS
            || self.history.front().is_some_and(|(t, _, _)| *t < cutoff)
        {
            // A run that began before the cutoff and goes on after it
            // begins at the cutoff.
            let crosses = self.history.len() >= 2
                && self.history[1].0 >= cutoff
                && (self.history[0].1, self.history[0].2) == (self.history[1].1, self.history[1].2);
            if crosses && self.history.len() <= HISTORY_POINTS {
                self.history[0].0 = cutoff;
                break;
            }
            self.history.pop_front();
        }
    }
}

/// What the status API shows.
#[derive(Debug, Default, Serialize)]
pub struct Status {
    /// By service.
    pub services: BTreeMap<String, ServiceStatus>,
    /// Policy files and modules that failed, by path.
    pub load_errors: BTreeMap<String, LoadErrorView>,
    /// `.wasm` files in the watched folders.
    pub modules: BTreeMap<String, ModuleView>,
    /// Policy folders that are missing.
    pub missing_roots: Vec<String>,
}

impl Status {
    /// A policy version now serves its service.
    pub fn policy_loaded(&mut self, policy: &ReadyPolicy) {
        let s = self
            .services
            .entry(policy.file.service.clone())
            .or_default();
        s.policy_file = policy.file.path.display().to_string();
        s.plugin = Some(PluginRecord::from(&**policy.plugin.id()));
        s.policy_loaded = format_time(now_ms());
        s.min_replicas = policy.file.guard.min_replicas;
        s.max_replicas = policy.file.guard.max_replicas;
        s.score_thresholds = policy.score_thresholds;
        s.thresholds = effective_params(&policy.plugin.description().params, &policy.params)
            .into_iter()
            .filter(|p| p.key.ends_with(".threshold") || p.key.starts_with("target."))
            .map(|p| (p.key, p.value.to_string()))
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actuators::{Outcome, ScaleReport};
    use crate::audit::Actor;
    use vedfolnir_core::model::Direction;

    const HOUR: i64 = 3_600_000;

    fn finished(at: TimestampMs, from: u32, reached: u32, dry_run: bool) -> AuditRecord {
        AuditRecord {
            direction: Direction::between(from, reached),
            from,
            to: reached,
            dry_run,
            report: Some(ScaleReport {
                from,
                to: reached,
                reached,
                outcome: Outcome::Succeeded,
                created: vec![],
                removed: vec![],
                failed: vec![],
                error: None,
                duration_ms: 1,
            }),
            ..AuditRecord::new("web", Event::ScaleFinished, Actor::Auto, at)
        }
    }

    #[test]
    fn a_new_loop_begins_its_chart_with_the_scales_the_audit_log_recorded() {
        let now = 100 * HOUR;
        // Newest first, as AuditLog::recent gives them.
        let records = vec![
            finished(now - HOUR, 4, 3, false),
            AuditRecord::new("web", Event::Held, Actor::Auto, now - 2 * HOUR),
            finished(now - 3 * HOUR, 5, 6, true),
            finished(now - 4 * HOUR, 2, 4, false),
            finished(now - 20 * HOUR, 1, 2, false),
        ];
        let mut s = ServiceStatus::default();
        s.seed(&records, now, SEED_RECORDS);
        let want = [
            (now - HISTORY_MS, 2, 2),
            (now - 4 * HOUR, 4, 4),
            (now - HOUR, 3, 3),
        ];
        assert_eq!(s.history.iter().copied().collect::<Vec<_>>(), want);
        // Only an empty history is seeded.
        s.seed(&[finished(now - HOUR, 9, 9, false)], now, SEED_RECORDS);
        assert_eq!(s.history.len(), 3);
        // With as many records as asked for, the log may go further back:
        // the history begins at the oldest one read.
        let mut cut = ServiceStatus::default();
        cut.seed(&records[..4], now, 4);
        assert_eq!(cut.history.front(), Some(&(now - 4 * HOUR, 2, 2)));
        // No finished scale in the window: nothing to draw yet.
        let mut none = ServiceStatus::default();
        none.seed(&records[4..], now, SEED_RECORDS);
        assert!(none.history.is_empty());
    }

    #[test]
    fn a_steady_service_keeps_two_points_and_the_steps_between_changes() {
        let mut s = ServiceStatus::default();
        for i in 0..100 {
            s.record(i * 15_000, 2, 2);
        }
        assert_eq!(
            s.history.iter().copied().collect::<Vec<_>>(),
            [(0, 2, 2), (99 * 15_000, 2, 2)]
        );
        // A change, then steady again: each run by its ends.
        s.record(100 * 15_000, 3, 2);
        s.record(101 * 15_000, 3, 3);
        s.record(102 * 15_000, 3, 3);
        s.record(103 * 15_000, 3, 3);
        assert_eq!(
            s.history.iter().copied().collect::<Vec<_>>(),
            [
                (0, 2, 2),
                (99 * 15_000, 2, 2),
                (100 * 15_000, 3, 2),
                (101 * 15_000, 3, 3),
                (103 * 15_000, 3, 3)
            ]
        );
        // Twelve hours on, the run still shows from the cutoff.
        let later = 103 * 15_000 + HISTORY_MS + 60_000;
        s.record(later, 3, 3);
        assert_eq!(
            s.history.iter().copied().collect::<Vec<_>>(),
            [(later - HISTORY_MS, 3, 3), (later, 3, 3)]
        );
    }
}
