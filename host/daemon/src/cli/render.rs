//! How the commands print: a decision with every reason, a scale report,
//! the docker source's readings.

use std::fmt::Write as _;

use vedfolnir_core::duration::format_elapsed;
use vedfolnir_core::model::{PolicyInput, Reason};

use crate::actuators::ScaleReport;
use crate::policy::{Evaluation, ReadyPolicy, verdict};
use crate::sources::docker::ServiceUsage;

/// A decision: the plugin's recommendation and reasons, the guard rails'
/// interventions, the verdict.
pub fn decision(policy: &ReadyPolicy, input: &PolicyInput, e: &Evaluation) -> String {
    let mut out = String::new();
    let id = policy.plugin.id();
    let _ = writeln!(out, "service {}  policy {id}", input.service);
    let _ = writeln!(
        out,
        "replicas {} (ready {}, min {}, max {})",
        input.current_replicas, input.ready_replicas, input.min_replicas, input.max_replicas
    );
    out.push_str(&judgement(policy, e));
    out
}

/// The plugin's recommendation with its scores (beside the ones it scales
/// at) and every reason, the guard rails' interventions, the verdict.
pub fn judgement(policy: &ReadyPolicy, e: &Evaluation) -> String {
    let mut out = String::new();
    match (&e.recommendation, &e.failure) {
        (Some(rec), _) => {
            let _ = writeln!(
                out,
                "\nrecommendation: {} to {}  (scores {})",
                rec.direction,
                rec.desired_replicas,
                (policy.score_thresholds).compare(rec.scale_up_score, rec.scale_down_score)
            );
            for r in &rec.reasons {
                let _ = writeln!(out, "  {}", reason_line(r));
            }
        }
        (None, Some(f)) => {
            let _ = writeln!(out, "\npolicy failed: {}: {}", f.kind, f.message);
        }
        (None, None) => {}
    }
    let d = &e.decision;
    let _ = writeln!(out, "\nguard rails:");
    if d.reasons.is_empty() {
        let _ = writeln!(out, "  (no intervention)");
    }
    for r in &d.reasons {
        let change = match (r.from, r.to) {
            (Some(a), Some(b)) => format!(" [{a} -> {b}]"),
            _ => String::new(),
        };
        let _ = writeln!(out, "  {}{change}: {}", r.rule.as_str(), r.message);
    }
    let _ = writeln!(out, "\ndecision: {}", verdict(d, "SCALE"));
    out
}

/// A number for people: whole numbers as they are, others to three
/// significant digits (`0.255`, not `0.25510209933986244`).
pub fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        return format!("{}", x as i64);
    }
    if !x.is_finite() || x.abs() >= 1000.0 {
        return format!("{x:.0}");
    }
    let digits = (2 - x.abs().log10().floor() as i32).clamp(0, 6) as usize;
    format!("{x:.digits$}")
}

fn reason_line(r: &Reason) -> String {
    let mut facts = Vec::new();
    if let Some(v) = r.observed {
        facts.push(format!("observed {}", number(v)));
    }
    if let Some(t) = r.threshold {
        facts.push(format!("threshold {}", number(t)));
    }
    if let Some(h) = r.held_for {
        facts.push(format!("held {}", format_elapsed(h)));
    }
    let facts = if facts.is_empty() {
        String::new()
    } else {
        format!("  ({})", facts.join(", "))
    };
    format!("{:<22} {}{facts}", r.trigger, r.message)
}

/// Print what a scale did, replica by replica (or as JSON).
pub fn print_report(report: &ScaleReport, json: bool) {
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(report).expect("reports serialize")
        );
        return;
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "scale {} -> {}: {:?}, {} replica(s) running ({})",
        report.from,
        report.to,
        report.outcome,
        report.reached,
        format_elapsed(report.duration_ms)
    );
    for c in &report.created {
        let _ = writeln!(out, "  created {c}");
    }
    for r in &report.removed {
        let _ = writeln!(out, "  removed {r}");
    }
    for f in &report.failed {
        let _ = writeln!(out, "  failed  {}: {}", f.name, f.reason);
    }
    if let Some(e) = &report.error {
        let _ = writeln!(out, "  error: {e}");
    }
    out!("{out}");
}

/// A fraction as a percentage, or "missing".
pub fn pct(v: Option<f64>) -> String {
    v.map(|v| format!("{:.1}%", v * 100.0))
        .unwrap_or_else(|| "missing".into())
}

/// How many replicas each path read (`cgroup-v1 (2), api (1)`), or `none`.
pub fn read_by(usage: &ServiceUsage) -> String {
    if usage.read_by.is_empty() {
        return "none".into();
    }
    usage
        .read_by
        .iter()
        .map(|(path, n)| format!("{path} ({n})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// OOM kills in the last hour, or "unknown" when the events were unreadable.
pub fn oom_kills(usage: &ServiceUsage) -> String {
    usage
        .oom_kills
        .map(|n| n.to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// A pass: the docker source's readings, then the decision.
pub fn check(
    policy: &ReadyPolicy,
    input: &PolicyInput,
    e: &Evaluation,
    usage: Option<&ServiceUsage>,
) -> String {
    let mut out = String::new();
    if let Some(usage) = usage {
        let _ = writeln!(
            out,
            "docker: cpu {} of limit, memory {} of limit, {} running, {} ready, {} OOM kill(s) in the last hour; stats read by {}",
            pct(usage.cpu),
            pct(usage.memory),
            usage.running,
            usage.ready,
            oom_kills(usage),
            read_by(usage)
        );
        for err in &usage.errors {
            let _ = writeln!(out, "  stats error: {err}");
        }
    }
    out.push_str(&decision(policy, input, e));
    out
}

#[cfg(test)]
mod tests {
    use super::number;

    #[test]
    fn numbers_are_said_to_three_significant_digits() {
        assert_eq!(number(0.25510209933986244), "0.255");
        assert_eq!(number(0.00475), "0.00475");
        assert_eq!(number(12.3456), "12.3");
        assert_eq!(number(2.0), "2");
        assert_eq!(number(0.0), "0");
        assert_eq!(number(1234.56), "1235");
        assert_eq!(number(-0.5), "-0.500");
    }
}
