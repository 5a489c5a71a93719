//! What a replay reports: a row per policy ([`Row`]), the run's
//! [`Report`], and the table `simulate` prints of it (the results, the
//! churn of each policy, and notes on what the bounds or the plugin
//! decided).

use serde::Serialize;

use super::Options;

/// One policy's results.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The label in the table.
    pub policy: String,
    /// The plugin's name and version.
    pub plugin: String,
    /// The replica bounds this policy ran with: its file's, or the
    /// `--min-replicas`/`--max-replicas` given (a builtin's defaults
    /// otherwise). A row is only comparable with another of the same.
    pub min_replicas: u32,
    /// See `min_replicas`.
    pub max_replicas: u32,
    /// SLO-violation minutes.
    pub slo_violation_minutes: f64,
    /// Of those, the minutes the policy was at `max_replicas`: the bound,
    /// not the policy, decided them.
    pub violation_minutes_at_max: f64,
    /// Replica-hours (starting replicas included).
    pub replica_hours: f64,
    /// Scale actions.
    pub actions: u32,
    /// Actions reversing the previous one within 10 minutes.
    pub reversals: u32,
    /// Actions per simulated day.
    pub actions_per_day: f64,
    /// Reversals per simulated day.
    pub reversals_per_day: f64,
    /// Replicas created by scale-ups: each a container start, its caches
    /// cold.
    pub container_starts: u64,
    /// The mean time between two actions, minutes (none with fewer than
    /// two actions).
    pub mean_minutes_between_actions: Option<f64>,
    /// The most replicas at once.
    pub peak_replicas: u32,
    /// The mean p95, seconds.
    pub mean_p95: f64,
    /// Failed requests as a fraction of all.
    pub failed_fraction: f64,
    /// Evaluations run.
    pub evaluations: u64,
    /// Evaluations where the plugin failed (trap, timeout, error).
    pub failed_evaluations: u64,
    /// The mean replica count of each minute (`simulate --history`, to set
    /// beside the record's).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replicas_by_minute: Vec<f64>,
    /// Evaluations that took longer than the daemon's deadline by this
    /// machine's wall clock. A replay stops a policy by an instruction
    /// budget instead (so the rest of the report is the same on a busy
    /// machine); this count alone depends on the machine and its load.
    pub over_deadline_evaluations: u64,
    /// The fewest replica-hours a scaler that knew the load's level ahead
    /// (not its bursts) spends within this row's bounds with at most this
    /// row's SLO-violation minutes ([`vedfolnir_core::sim::foresight`]):
    /// what a forecast could be worth here. `None` when it cannot do as
    /// few violation minutes at any price.
    pub foresight_replica_hours: Option<f64>,
}

/// What a run printed.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Where the load came from.
    pub load: String,
    /// The simulated time, ms.
    pub duration_ms: u64,
    /// The evaluation interval, ms.
    pub interval_ms: u64,
    /// The model step, ms.
    pub step_ms: u64,
    /// One row per policy, in the order given.
    pub results: Vec<Row>,
    /// The fewest replica-hours any scaler could spend on this load without
    /// an SLO violation ([`vedfolnir_core::sim::least_replica_hours`], at `--min-replicas`
    /// or 1): how far above it each policy's are. `None` when no replica
    /// count meets the SLO.
    pub least_replica_hours: Option<f64>,
    /// Wall-clock time of the replay, ms.
    pub elapsed_ms: u64,
    /// The service's own record, when it was the load (`--history`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<super::history::HistoryReport>,
}

/// The results as a table.
pub fn table(report: &Report, options: &Options) -> String {
    use std::fmt::Write as _;
    let m = &options.model;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "load: {}\nsimulated {} at a {} step, evaluated every {}; replayed in {:.2}s",
        report.load,
        vedfolnir_core::format_duration(report.duration_ms),
        vedfolnir_core::format_duration(report.step_ms),
        vedfolnir_core::format_duration(report.interval_ms),
        report.elapsed_ms as f64 / 1000.0
    );
    let _ = writeln!(
        s,
        "service: {} req/s per replica ({} workers), start-up {}, timeout {}; SLO: p95 <= {}s and errors <= {}%\n",
        m.capacity,
        m.workers,
        vedfolnir_core::format_duration(m.startup_ms),
        vedfolnir_core::format_duration(m.timeout_ms),
        options.slo.p95,
        options.slo.error_rate * 100.0
    );
    let width = report
        .results
        .iter()
        .map(|r| r.policy.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let _ = writeln!(
        s,
        "{:<width$}  {:>8}  {:>14}  {:>13}  {:>7}  {:>15}  {:>5}  {:>9}  {:>8}",
        "policy",
        "replicas",
        "SLO-violation",
        "replica-hours",
        "actions",
        "reversals<=10m",
        "peak",
        "mean p95",
        "failed"
    );
    let _ = writeln!(
        s,
        "{:<width$}  {:>8}  {:>14}  {:>13}  {:>7}  {:>15}  {:>5}  {:>9}  {:>8}",
        "", "min-max", "minutes", "", "", "", "", "", "requests"
    );
    for r in &report.results {
        let _ = writeln!(
            s,
            "{:<width$}  {:>8}  {:>14.1}  {:>13.1}  {:>7}  {:>15}  {:>5}  {:>8.3}s  {:>7.3}%",
            r.policy,
            format!("{}-{}", r.min_replicas, r.max_replicas),
            r.slo_violation_minutes,
            r.replica_hours,
            r.actions,
            r.reversals,
            r.peak_replicas,
            r.mean_p95,
            r.failed_fraction * 100.0
        );
    }
    if let Some(least) = report.least_replica_hours {
        let _ = writeln!(
            s,
            "\nleast possible: {least:.1} replica-hours with no SLO violation (a scaler that knew the load \
             ahead and changed the count every step; no policy does with less)"
        );
    }
    foresight(&mut s, report, width);
    churn(&mut s, report, width);
    recorded(&mut s, report, width);
    notes(&mut s, report);
    s
}

/// With `--history`: what the model took from the service's record, and
/// how closely each replay followed the replicas it ran.
fn recorded(s: &mut String, report: &Report, width: usize) {
    use std::fmt::Write as _;
    let Some(h) = &report.history else { return };
    let width = width.max("against the record".len());
    let _ = writeln!(
        s,
        "\nrecord of {}: {} minutes from {} to {}{}{}",
        h.service,
        h.minutes,
        h.from,
        h.to,
        if h.filled_minutes > 0 {
            format!(
                ", {} without a load (each held the minute before)",
                h.filled_minutes
            )
        } else {
            String::new()
        },
        if h.skipped_lines > 0 {
            format!(
                ", {} unreadable line(s) skipped (first: {})",
                h.skipped_lines, h.skipped[0]
            )
        } else {
            String::new()
        }
    );
    let _ = writeln!(s, "{}", calibrated(&h.calibration));
    if let Some(rh) = h.recorded_replica_hours {
        let _ = writeln!(s, "the service ran {rh:.2} replica-hours");
    }
    let _ = writeln!(
        s,
        "\n{:<width$}  {:>13}  {:>24}  {:>30}",
        "against the record", "replica-hours", "minutes within 1 replica", "largest difference"
    );
    for r in &report.results {
        let (within, total, worst) = follows(&h.recorded_replicas, &r.replicas_by_minute);
        let worst = worst.map_or_else(
            || "-".into(),
            |(k, d)| {
                let at = h.from_ms + k as i64 * 60_000;
                format!("{d:.1} at {}", crate::clock::format_time(at))
            },
        );
        let _ = writeln!(
            s,
            "{:<width$}  {:>13.2}  {:>24}  {:>30}",
            r.policy,
            r.replica_hours,
            format!("{within} of {total}"),
            worst
        );
    }
}

/// What the model took from the record, and from how much of it.
fn calibrated(c: &super::history::Calibration) -> String {
    let or =
        |v: Option<String>, what: &str| v.unwrap_or_else(|| format!("not in the record ({what})"));
    format!(
        "calibrated: capacity {}, memory {}, start-up {}, interval {}",
        or(
            c.capacity.map(|v| format!(
                "{v:.1} req/s a replica (from {} busy minutes)",
                c.capacity_minutes
            )),
            "--capacity"
        ),
        or(
            c.memory_idle.zip(c.memory_busy).map(|(i, b)| format!(
                "{:.0}% + {:.0}% x CPU",
                i * 100.0,
                b * 100.0
            )),
            "the default"
        ),
        or(
            c.startup_ms.map(|v| format!(
                "{} (from {} scale-ups)",
                vedfolnir_core::format_duration(v),
                c.startup_scales
            )),
            "--startup"
        ),
        or(
            c.interval_ms.map(vedfolnir_core::format_duration),
            "--interval"
        ),
    )
}

/// How closely a replay's replicas a minute follow the record's: the
/// minutes within one replica, the minutes compared, and the largest
/// difference with its minute.
fn follows(recorded: &[Option<f64>], replayed: &[f64]) -> (usize, usize, Option<(usize, f64)>) {
    let mut within = 0;
    let mut total = 0;
    let mut worst: Option<(usize, f64)> = None;
    for (k, (rec, rep)) in recorded.iter().zip(replayed).enumerate() {
        let Some(rec) = rec else { continue };
        let d = (rec - rep).abs();
        total += 1;
        if d <= 1.0 {
            within += 1;
        }
        if worst.is_none_or(|(_, w)| d > w) {
            worst = Some((k, d));
        }
    }
    (within, total, worst)
}

/// What went wrong in the plugin, and what took longer than the daemon
/// would allow, per policy; where a bound, not a policy, decided.
fn notes(s: &mut String, report: &Report) {
    use std::fmt::Write as _;
    let bounds: std::collections::BTreeSet<(u32, u32)> = report
        .results
        .iter()
        .map(|r| (r.min_replicas, r.max_replicas))
        .collect();
    if bounds.len() > 1 {
        let _ = writeln!(
            s,
            "\nthe policies ran with different replica bounds (the column \"replicas\"): a row is \
             comparable only with one of the same bounds; --min-replicas and --max-replicas set them for all"
        );
    }
    for r in &report.results {
        if r.violation_minutes_at_max > 0.0 {
            let _ = writeln!(
                s,
                "\n{}: at its max_replicas ({}) for {:.1} of its {:.1} SLO-violation minutes: \
                 the bound, not the policy, decided those",
                r.policy, r.max_replicas, r.violation_minutes_at_max, r.slo_violation_minutes
            );
        }
    }
    for r in &report.results {
        if r.over_deadline_evaluations > 0 {
            let _ = writeln!(
                s,
                "\n{}: {} of {} evaluations took longer than the daemon's deadline on this machine \
                 (a replay budgets instructions instead, so they ran to completion here)",
                r.policy, r.over_deadline_evaluations, r.evaluations
            );
        }
        if r.failed_evaluations > 0 {
            let _ = writeln!(
                s,
                "\n{}: {} of {} evaluations failed in the plugin (each held)",
                r.policy, r.failed_evaluations, r.evaluations
            );
        }
    }
}

/// The level-foresight yardstick beside each policy's replica-hours: what
/// knowing the load's level ahead would have saved at its violation minutes.
fn foresight(s: &mut String, report: &Report, width: usize) {
    use std::fmt::Write as _;
    if report
        .results
        .iter()
        .all(|r| r.foresight_replica_hours.is_none())
    {
        return;
    }
    let _ = writeln!(
        s,
        "\n{:<width$}  {:>13}  {:>15}  {:>7}",
        "foresight", "replica-hours", "level foresight", "saving"
    );
    for r in &report.results {
        let (ahead, saving) = match r.foresight_replica_hours {
            Some(f) if r.replica_hours > 0.0 => (
                format!("{f:.1}"),
                format!("{:.0}%", (1.0 - f / r.replica_hours) * 100.0),
            ),
            _ => ("-".into(), "-".into()),
        };
        let _ = writeln!(
            s,
            "{:<width$}  {:>13.1}  {:>15}  {:>7}",
            r.policy, r.replica_hours, ahead, saving
        );
    }
    let _ = writeln!(
        s,
        "(level foresight: a scaler that knew each step's 10-minute level ahead, not its bursts, \
         at each policy's violation minutes and bounds)"
    );
}

/// The churn table: how often each policy acts, and what that costs in
/// container starts.
fn churn(s: &mut String, report: &Report, width: usize) {
    use std::fmt::Write as _;
    let _ = writeln!(
        s,
        "\n{:<width$}  {:>11}  {:>13}  {:>16}  {:>20}",
        "churn", "actions/day", "reversals/day", "container starts", "between actions"
    );
    for r in &report.results {
        let between = r.mean_minutes_between_actions.map_or_else(
            || "-".into(),
            |m| vedfolnir_core::format_elapsed((m * 60_000.0) as u64),
        );
        let _ = writeln!(
            s,
            "{:<width$}  {:>11.1}  {:>13.1}  {:>16}  {:>20}",
            r.policy, r.actions_per_day, r.reversals_per_day, r.container_starts, between
        );
    }
}
