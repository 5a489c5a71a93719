//! The status page at `/`: what the autoscaler is doing, without Grafana.
//! Server-rendered HTML with inline SVG, readable without JavaScript, and
//! refreshing itself every interval (`<meta http-equiv="refresh">`).
//!
//! For each service: its replicas over the last hours (the daemon's own
//! passes, with each scale marked), its signals beside the thresholds the
//! policy compares them with, the last decisions with their reasons and
//! guard rules, and whether it is paused or in a dry run. Then the policy
//! files and modules that failed to load, with the stage and message.
//!
//! Rendering is a pure function of a [`Snapshot`], so it is unit-tested
//! here; the API module serves it.

use std::fmt::Write as _;

use crate::audit::{AuditRecord, Event};
use crate::clock::format_time;
use crate::daemon::status::{LoadErrorView, ServiceStatus};
use crate::markup::escape;

/// How far back the replica chart looks.
pub const CHART_SPAN_MS: i64 = 6 * 3600 * 1000;

/// Everything the page shows, copied out of the daemon's state.
#[derive(Debug)]
pub struct Snapshot {
    /// The time the page is drawn.
    pub now: i64,
    /// Every pass decides but does not act.
    pub dry_run: bool,
    /// The time between passes, s (the page refreshes at this pace).
    pub interval_s: u64,
    /// By service.
    pub services: Vec<(String, ServiceStatus)>,
    /// The newest audit records, newest first.
    pub decisions: Vec<AuditRecord>,
    /// Files and modules that failed to load.
    pub load_errors: Vec<LoadErrorView>,
    /// Watched folders that are missing.
    pub missing_folders: Vec<String>,
    /// Set when the audit log could not be read.
    pub audit_error: Option<String>,
    /// The lease of the Swarm targets, in words (this daemon's role, the
    /// epoch, the holder); `None` without a Swarm target.
    pub lease: Option<String>,
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:70em}\
h1{font-size:1.4em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.2em .7em;text-align:left;border-bottom:1px solid #eee;vertical-align:top}\
.badge{display:inline-block;padding:0 .5em;border-radius:.3em;font-size:.85em;margin-left:.5em}\
.paused{background:#fde68a}.dry{background:#bfdbfe}.error{background:#fecaca}.ok{background:#bbf7d0}\
.missing{color:#b91c1c}.over{color:#b45309;font-weight:bold}small{color:#666}";

/// The whole page.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"refresh\" content=\"{}\"><title>Vedfolnir Autoscaler</title>\
<style>{STYLE}</style></head><body><h1>Vedfolnir Autoscaler</h1>\
<p>{} service(s){}; drawn {}, refreshed every {} s. \
<a href=\"/api/v1/status\">status JSON</a> · <a href=\"/api/v1/decisions\">decisions JSON</a> · <a href=\"/metrics\">metrics</a></p>",
        s.interval_s.max(1),
        s.services.len(),
        if s.dry_run {
            " <span class=\"badge dry\">dry run: decisions are audited, nothing is scaled</span>"
        } else {
            ""
        },
        format_time(s.now),
        s.interval_s.max(1),
    );
    if let Some(lease) = &s.lease {
        let _ = write!(out, "<p id=\"lease\">{}</p>", escape(lease));
    }
    if s.services.is_empty() {
        out.push_str("<p>No policy is serving a service yet.</p>");
    }
    for (name, status) in &s.services {
        service(&mut out, s, name, status);
    }
    load_errors(&mut out, s);
    out.push_str("</body></html>\n");
    out
}

fn service(out: &mut String, s: &Snapshot, name: &str, st: &ServiceStatus) {
    let _ = write!(
        out,
        "<section id=\"service-{id}\"><h2>{n}{paused}{dry}{failing}</h2>",
        id = escape(name),
        n = escape(name),
        paused = if st.paused {
            "<span class=\"badge paused\">paused</span>"
        } else {
            ""
        },
        dry = if s.dry_run {
            "<span class=\"badge dry\">dry run</span>"
        } else {
            ""
        },
        failing = if st.plugin.is_none() {
            "<span class=\"badge error\">policy not loaded</span>"
        } else {
            ""
        },
    );
    let plugin = st
        .plugin
        .as_ref()
        .map(|p| format!("{} {} ({})", p.name, p.version, p.source))
        .unwrap_or_else(|| "none loaded".into());
    let _ = write!(
        out,
        "<p>Replicas: <b>{}</b> running, {} ready, bounds {}–{}. Policy {}, from {}. Last pass {}. \
         <a href=\"/replay/{}\">Its policy replayed on its last day</a> (the model calibrated on \
         the service's own record).</p>",
        st.replicas.map(|r| r.to_string()).unwrap_or("?".into()),
        st.ready.map(|r| r.to_string()).unwrap_or("?".into()),
        st.min_replicas,
        st.max_replicas,
        escape(&plugin),
        escape(&st.policy_file),
        escape(st.last_pass.as_deref().unwrap_or("not yet")),
        escape(name),
    );
    let scales: Vec<&AuditRecord> = s
        .decisions
        .iter()
        .filter(|r| r.service == name && r.event == Event::ScaleFinished)
        .collect();
    out.push_str(&chart(st, &scales, s.now));
    pace(out, st);
    signals(out, st);
    if !st.errors.is_empty() {
        out.push_str("<p class=\"missing\">At the last pass:</p><ul>");
        for e in &st.errors {
            let _ = write!(out, "<li class=\"missing\">{}</li>", escape(e));
        }
        out.push_str("</ul>");
    }
    decisions(out, s, name);
    out.push_str("</section>");
}

/// How the passes keep to their interval, and how stats were read.
fn pace(out: &mut String, st: &ServiceStatus) {
    let p = &st.pace;
    if st.passes == 0 {
        return;
    }
    let slowest = p
        .stages_ms
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(stage, ms)| format!(", slowest stage {stage} {ms:.0} ms"))
        .unwrap_or_default();
    let read_by = p
        .stats_read_by
        .iter()
        .map(|(path, n)| format!("{n} by {path}"))
        .collect::<Vec<_>>()
        .join(", ");
    let late = if p.late > 0 {
        format!("<b class=\"missing\">{} late</b>", p.late)
    } else {
        "none late".into()
    };
    let _ = write!(
        out,
        "<p class=\"pace\">Passes: {} ({late}); pass time median {:.0} ms, p99 {:.0} ms, last {:.0} ms{}.{}</p>",
        st.passes,
        p.p50_ms,
        p.p99_ms,
        p.last_ms,
        escape(&slowest),
        if read_by.is_empty() {
            String::new()
        } else {
            format!(" Replica stats read: {}.", escape(&read_by))
        },
    );
}

fn signals(out: &mut String, st: &ServiceStatus) {
    out.push_str(
        "<table class=\"signals\"><tr><th>signal</th><th>now</th><th>compared with</th></tr>",
    );
    for (signal, value) in &st.signals {
        let id = signal
            .parse::<vedfolnir_core::model::SignalId>()
            .unwrap_or_else(|_| vedfolnir_core::model::SignalId::Custom(signal.clone()));
        let shown = match value.as_f64() {
            Some(v) => escape(&crate::policy::signal_value(&id, v)),
            None => format!(
                "<span class=\"missing\">missing: {}</span>",
                escape(value["missing"].as_str().unwrap_or("no sample"))
            ),
        };
        let related: Vec<String> = st
            .thresholds
            .iter()
            .filter(|(key, _)| crate::policy::relates(signal, key))
            .map(|(key, v)| {
                let over = match (value.as_f64(), v.parse::<f64>()) {
                    (Some(now), Ok(t)) if key.contains("-high.") && now > t => " class=\"over\"",
                    (Some(now), Ok(t)) if key.contains("-low.") && now < t => " class=\"over\"",
                    _ => "",
                };
                let shown = crate::policy::threshold_value(key, v);
                format!("<span{over}>{} {}</span>", escape(key), escape(&shown))
            })
            .collect();
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{shown}</td><td>{}</td></tr>",
            escape(signal),
            if related.is_empty() {
                "<small>(no threshold)</small>".to_string()
            } else {
                related.join(", ")
            }
        );
    }
    out.push_str("</table>");
}

fn decisions(out: &mut String, s: &Snapshot, name: &str) {
    let mine: Vec<&AuditRecord> = s
        .decisions
        .iter()
        .filter(|r| r.service == name && r.event != Event::ScaleStarted)
        .take(10)
        .collect();
    if let Some(e) = &s.audit_error {
        let _ = write!(
            out,
            "<p class=\"missing\">The audit log cannot be read: {}</p>",
            escape(e)
        );
    }
    if mine.is_empty() {
        out.push_str("<p><small>No decision recorded yet.</small></p>");
        return;
    }
    out.push_str("<table class=\"decisions\"><tr><th>time</th><th>what</th><th>by</th><th>reasons</th><th>guard rules</th></tr>");
    for r in mine {
        let what = match r.event {
            Event::ScaleFinished => format!(
                "scale {} {} → {}{}",
                r.direction,
                r.from,
                r.to,
                r.report
                    .as_ref()
                    .map(|rep| format!(" ({}, {} running)", rep.outcome.as_str(), rep.reached))
                    .unwrap_or_default()
            ),
            Event::WouldScale => format!("would scale {} {} → {}", r.direction, r.from, r.to),
            Event::Held => format!("hold at {}", r.from),
            other => format!("{other:?}").to_lowercase(),
        };
        let guard = r
            .guard
            .iter()
            .map(|g| g.rule.as_str().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&format_time(r.time_ms)),
            escape(&what),
            escape(&format!("{:?}", r.actor).to_lowercase()),
            r.reasons
                .iter()
                .map(|x| escape(x))
                .collect::<Vec<_>>()
                .join("<br>"),
            escape(&guard),
        );
    }
    out.push_str("</table>");
}

fn load_errors(out: &mut String, s: &Snapshot) {
    if s.load_errors.is_empty() && s.missing_folders.is_empty() {
        out.push_str("<h2>Policies</h2><p><span class=\"badge ok\">every policy file and module loaded</span></p>");
        return;
    }
    out.push_str("<h2 id=\"load-errors\">Policies that failed to load</h2><table><tr><th>file</th><th>stage</th><th>why</th><th>since</th></tr>");
    for e in &s.load_errors {
        let _ = write!(
            out,
            "<tr class=\"load-error\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&e.path),
            escape(&e.stage),
            escape(&e.message),
            escape(&e.since)
        );
    }
    for f in &s.missing_folders {
        let _ = write!(
            out,
            "<tr class=\"load-error\"><td>{}</td><td>folder</td><td>missing</td><td></td></tr>",
            escape(f)
        );
    }
    out.push_str("</table>");
}

/// The chart's size and how time and counts map onto it.
struct Frame {
    start: i64,
    now: i64,
    top: f64,
}

impl Frame {
    const W: f64 = 720.0;
    const H: f64 = 140.0;
    const LEFT: f64 = 34.0;
    const BOTTOM: f64 = 20.0;

    fn x(&self, t: i64) -> f64 {
        let span = (self.now - self.start).max(1) as f64;
        Self::LEFT + (t - self.start) as f64 / span * (Self::W - Self::LEFT - 8.0)
    }

    fn y(&self, n: u32) -> f64 {
        8.0 + (1.0 - f64::from(n) / self.top) * (Self::H - Self::BOTTOM - 8.0)
    }

    /// A step line through `points` (time, count), held to now.
    fn steps(&self, points: &[(i64, u32)]) -> String {
        let mut d = String::new();
        for (i, (t, n)) in points.iter().enumerate() {
            let (px, py) = (self.x(*t), self.y(*n));
            if i == 0 {
                let _ = write!(d, "M{px:.1},{py:.1}");
            } else {
                let _ = write!(d, " H{px:.1} V{py:.1}");
            }
        }
        let _ = write!(d, " H{:.1}", self.x(self.now));
        d
    }

    /// A triangle at a finished scale: pointing up for a scale-up.
    fn mark(&self, r: &AuditRecord) -> String {
        let (cx, cy) = (self.x(r.time_ms), self.y(r.to));
        let (tip, base) = if r.to >= r.from {
            (cy - 6.0, cy + 2.0)
        } else {
            (cy + 6.0, cy - 2.0)
        };
        format!(
            "<path class=\"scale\" d=\"M{:.1},{base:.1} L{cx:.1},{tip:.1} L{:.1},{base:.1} Z\" fill=\"#dc2626\"><title>{} {} → {}</title></path>",
            cx - 5.0,
            cx + 5.0,
            escape(&format_time(r.time_ms)),
            r.from,
            r.to
        )
    }

    /// How far back the chart starts, in words.
    fn span_words(&self) -> (String, String) {
        let hours = (self.now - self.start) as f64 / 3_600_000.0;
        if hours >= 1.0 {
            (format!("−{hours:.1} h"), format!("{hours:.1} hours"))
        } else {
            let minutes = hours * 60.0;
            (
                format!("−{minutes:.0} min"),
                format!("{minutes:.0} minutes"),
            )
        }
    }
}

/// The replicas over the last [`CHART_SPAN_MS`] as an SVG step line (ready
/// replicas dashed), each finished scale marked with a triangle.
pub fn chart(st: &ServiceStatus, scales: &[&AuditRecord], now: i64) -> String {
    let points: Vec<&(i64, u32, u32)> = st
        .history
        .iter()
        .filter(|(t, _, _)| *t >= now - CHART_SPAN_MS)
        .collect();
    let Some(first) = points.first() else {
        return "<p><small>No pass yet: the chart starts with the first.</small></p>".into();
    };
    let top = points
        .iter()
        .map(|p| p.1.max(p.2))
        .max()
        .unwrap_or(1)
        .max(st.max_replicas)
        .max(1);
    let f = Frame {
        start: first.0.min(now - 60_000),
        now,
        top: f64::from(top),
    };
    let (w, h, left) = (Frame::W, Frame::H, Frame::LEFT);
    let mut svg = format!(
        "<svg class=\"replicas\" role=\"img\" aria-label=\"replicas over time\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" xmlns=\"http://www.w3.org/2000/svg\" font-size=\"11\">"
    );
    for n in [0, st.min_replicas, st.max_replicas] {
        let y = f.y(n);
        let _ = write!(
            svg,
            "<line x1=\"{left}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{n}</text>",
            w - 8.0,
            left - 4.0,
            y + 4.0,
        );
    }
    let running: Vec<(i64, u32)> = points.iter().map(|p| (p.0, p.1)).collect();
    let ready: Vec<(i64, u32)> = points.iter().map(|p| (p.0, p.2)).collect();
    let _ = write!(
        svg,
        "<path d=\"{}\" fill=\"none\" stroke=\"#2563eb\" stroke-width=\"2\"/><path d=\"{}\" fill=\"none\" stroke=\"#16a34a\" stroke-dasharray=\"4 3\"/>",
        f.steps(&running),
        f.steps(&ready)
    );
    for r in scales.iter().filter(|r| r.time_ms >= f.start) {
        svg.push_str(&f.mark(r));
    }
    let (label, words) = f.span_words();
    let _ = write!(
        svg,
        "<text x=\"{left}\" y=\"{:.1}\">{label}</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">now</text></svg>\
<p><small>Replicas (blue: running, green dashed: ready, red: scales) over the last {words}.</small></p>",
        h - 4.0,
        w - 8.0,
        h - 4.0,
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(history: Vec<(i64, u32, u32)>) -> ServiceStatus {
        ServiceStatus {
            min_replicas: 1,
            max_replicas: 4,
            history: history.into(),
            signals: [
                ("cpu".to_string(), serde_json::json!(0.93)),
                (
                    "queue-depth".to_string(),
                    serde_json::json!({"missing": "no scrape <answer>"}),
                ),
            ]
            .into_iter()
            .collect(),
            thresholds: vec![
                ("cpu-high.threshold".into(), "0.7".into()),
                ("cpu-low.threshold".into(), "0.2".into()),
                ("queue-high.threshold".into(), "50".into()),
            ],
            ..ServiceStatus::default()
        }
    }

    #[test]
    fn a_parameter_relates_to_the_signal_its_name_starts_with() {
        assert!(crate::policy::relates("cpu", "cpu-high.threshold"));
        assert!(crate::policy::relates("cpu", "target.cpu"));
        assert!(crate::policy::relates(
            "response-time-p95",
            "latency-low.threshold"
        ));
        assert!(crate::policy::relates(
            "error-rate",
            "errors-high.threshold"
        ));
        assert!(!crate::policy::relates("cpu", "memory-high.threshold"));
        assert!(!crate::policy::relates("memory", "target.cpu"));
    }

    #[test]
    fn the_page_shows_signals_against_thresholds_and_a_service_without_a_policy() {
        let now = 10 * 3_600_000;
        let page = render(&Snapshot {
            now,
            dry_run: true,
            interval_s: 15,
            services: vec![
                (
                    "web".into(),
                    status(vec![(now - 600_000, 1, 1), (now - 300_000, 3, 2)]),
                ),
                ("<broken>".into(), ServiceStatus::default()),
            ],
            decisions: vec![],
            load_errors: vec![LoadErrorView {
                path: "/p/bad.toml".into(),
                stage: "config".into(),
                message: "unknown key `servce`".into(),
                since: "2026-01-01T00:00:00Z".into(),
            }],
            missing_folders: vec![],
            audit_error: None,
            lease: Some("lease l: standby: <b> leads (epoch 3)".into()),
        });
        assert!(page.contains("http-equiv=\"refresh\" content=\"15\""));
        assert!(page.contains("<p id=\"lease\">lease l: standby: &lt;b&gt; leads (epoch 3)</p>"));
        assert!(
            page.contains("<span class=\"over\">cpu-high.threshold 70%</span>"),
            "{page}"
        );
        assert!(
            page.contains("<span>cpu-low.threshold 20%</span>"),
            "in the unit of cpu"
        );
        assert!(page.contains("missing: no scrape &lt;answer&gt;"));
        assert!(page.contains("&lt;broken&gt;<span class=\"badge dry\">dry run</span><span class=\"badge error\">policy not loaded</span>"));
        assert!(page.contains("unknown key `servce`"));
        assert!(!page.contains("<broken>"), "names are escaped");
        // The chart steps from 1 to 3 running, and ends at now.
        let chart = chart(
            &status(vec![(now - 600_000, 1, 1), (now - 300_000, 3, 2)]),
            &[],
            now,
        );
        assert!(chart.matches(" V").count() >= 1, "{chart}");
        assert!(chart.contains("over the last 10 minutes"), "{chart}");
    }

    #[test]
    fn a_service_with_no_pass_yet_has_no_chart_but_a_note() {
        let c = chart(&status(vec![]), &[], 1_000_000);
        assert!(c.contains("No pass yet"));
    }
}
