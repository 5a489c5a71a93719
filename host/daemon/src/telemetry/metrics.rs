//! The daemon's own `/metrics` (prometheus-client), per service.
//!
//! The signal gauges use the seed's names (`vedfolnir:cpu_usage_avg` ->
//! `vedfolnir_autoscaler_cpu_usage_avg`). A missing signal has no sample
//! (the series is removed), never 0; `vedfolnir_autoscaler_signal_missing`
//! is 1 for it instead.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use vedfolnir_core::model::{SignalId, SignalWindow};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabel {
    pub service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SignalLabel {
    pub service: String,
    pub signal: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub service: String,
    pub direction: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub service: String,
    pub kind: String,
}

type GaugeF = Gauge<f64, AtomicU64>;

/// Every metric the daemon exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    gauges: Vec<(SignalId, Family<ServiceLabel, GaugeF>)>,
    /// Current replicas (running).
    pub instance_count: Family<ServiceLabel, GaugeF>,
    /// Ready replicas.
    pub ready_replicas: Family<ServiceLabel, GaugeF>,
    /// The policy's scale-up score.
    pub scale_up_score: Family<ServiceLabel, GaugeF>,
    /// The policy's scale-down score.
    pub scale_down_score: Family<ServiceLabel, GaugeF>,
    /// 1 for each signal missing at the last pass.
    pub signal_missing: Family<SignalLabel, GaugeF>,
    /// Decisions by direction (up, down, hold).
    pub decisions: Family<OutcomeLabel, Counter>,
    /// Actions by direction and outcome.
    pub actions: Family<OutcomeLabel, Counter>,
    /// Plugin evaluation wall time.
    pub evaluation_seconds: Family<ServiceLabel, Histogram>,
    /// Plugin failures by kind (trap, timeout, out-of-memory, guest-error).
    pub plugin_errors: Family<KindLabel, Counter>,
    /// Live evaluations whose output the sandbox cut to its limits.
    pub plugin_output_cuts: Family<ServiceLabel, Counter>,
    /// Signals a source could not provide, by signal.
    pub source_errors: Family<KindLabel, Counter>,
    /// Passes that failed, by what failed.
    pub pass_errors: Family<StageLabel, Counter>,
    /// Alertmanager notifications received, by result.
    pub webhook_alerts: Family<KindLabel, Counter>,
    /// Policy (re)loads, by file and result (ok, error).
    pub reloads: Family<PathKindLabel, Counter>,
    /// Evaluation passes.
    pub evaluations: Family<ServiceLabel, Counter>,
    /// 1 for each policy file or module that fails to load, by path and
    /// stage (the last good version keeps serving).
    pub policy_load_error: Family<PathStageLabel, GaugeF>,
    /// 1 while the shadow policy decides differently from the live one.
    pub shadow_diverging: Family<ServiceLabel, GaugeF>,
    /// Passes where the shadow policy decided differently.
    pub shadow_divergences: Family<ServiceLabel, Counter>,
    /// Notifications to WEBHOOK_URL, by result (sent, failed, dropped).
    pub notifications: Family<KindLabel, Counter>,
    /// API requests that change something, by result (kind).
    pub api_requests: Family<KindLabel, Counter>,
    /// A whole pass's wall time.
    pub pass_seconds: Family<ServiceLabel, Histogram>,
    /// Passes that started late (more than a tenth of the interval after
    /// they were due).
    pub passes_late: Family<ServiceLabel, Counter>,
    /// Replicas whose stats the last pass read by each path (cgroup-v1,
    /// cgroup-v2, api).
    pub stats_replicas: Family<StatsPathLabel, GaugeF>,
    /// 1 while this daemon holds the lease of the Swarm targets, 0 while
    /// it stands by.
    pub leader: Family<LeaseLabel, GaugeF>,
    /// Times this daemon took the lease.
    pub lease_takeovers: Family<LeaseLabel, Counter>,
    /// Times this daemon lost the lease (taken by another, or not renewed
    /// in time).
    pub lease_lost: Family<LeaseLabel, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LeaseLabel {
    pub lease: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatsPathLabel {
    pub service: String,
    pub path: String,
}

/// The paths the docker source reads a replica's stats by.
pub const STATS_PATHS: [&str; 3] = ["cgroup-v1", "cgroup-v2", "api"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabel {
    pub service: String,
    pub stage: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PathKindLabel {
    pub path: String,
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PathStageLabel {
    pub path: String,
    pub stage: String,
}

/// The signals exported as gauges, with the seed's names.
const SIGNAL_GAUGES: &[(&str, &str)] = &[
    ("cpu", "cpu_usage_avg"),
    ("memory", "memory_usage_avg"),
    ("queue-depth", "queue_depth"),
    ("response-time-p95", "response_time_p95"),
    ("error-rate", "error_rate"),
];

fn evaluation_histogram() -> Histogram {
    // 10 µs .. ~0.3 s
    Histogram::new(exponential_buckets(0.00001, 2.0, 16))
}

fn pass_histogram() -> Histogram {
    // 1 ms .. ~65 s
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Register a family under its name and help text, and hand it back.
fn register<M>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M
where
    M: prometheus_client::registry::Metric + Clone,
{
    registry.register(name, help, metric.clone());
    metric
}

/// Registers families of the default kind under
/// `vedfolnir_autoscaler_<name>`.
struct Families<'a>(&'a mut Registry);

impl Families<'_> {
    fn add<M>(&mut self, name: &str, help: &str) -> M
    where
        M: prometheus_client::registry::Metric + Clone + Default,
    {
        register(
            self.0,
            &format!("vedfolnir_autoscaler_{name}"),
            help,
            M::default(),
        )
    }
}

/// Policy evaluation wall time, per service.
fn evaluation_family(r: &mut Registry) -> Family<ServiceLabel, Histogram> {
    register(
        r,
        "vedfolnir_autoscaler_plugin_evaluation_duration_seconds",
        "Wall time of one sandboxed policy evaluation",
        Family::new_with_constructor(evaluation_histogram as fn() -> Histogram),
    )
}

/// A pass's wall time, per service.
fn pass_family(r: &mut Registry) -> Family<ServiceLabel, Histogram> {
    register(
        r,
        "vedfolnir_autoscaler_pass_duration_seconds",
        "Wall time of one automatic pass (observe, collect, evaluate, act, record)",
        Family::new_with_constructor(pass_histogram as fn() -> Histogram),
    )
}

/// The signal gauges, with the seed's names.
fn signal_gauges(r: &mut Registry) -> Vec<(SignalId, Family<ServiceLabel, GaugeF>)> {
    SIGNAL_GAUGES
        .iter()
        .map(|(signal, name)| {
            let family = register(
                r,
                &format!("vedfolnir_autoscaler_{name}"),
                &format!("The {signal} signal at the last pass (absent while missing)"),
                Family::<ServiceLabel, GaugeF>::default(),
            );
            (signal.parse().expect("known signal"), family)
        })
        .collect()
}

impl Metrics {
    /// A registry with every metric registered.
    pub fn new() -> Metrics {
        let mut r = Registry::default();
        let gauges = signal_gauges(&mut r);
        let r = &mut Families(&mut r);
        Metrics {
            gauges,
            instance_count: r.add("instance_count", "Running replicas, read from the engine"),
            ready_replicas: r.add("ready_replicas", "Replicas running and healthy"),
            scale_up_score: r.add("scale_up_score", "The policy's scale-up score at the last pass"),
            scale_down_score: r.add("scale_down_score", "The policy's scale-down score at the last pass"),
            signal_missing: r.add("signal_missing", "1 when the signal was missing at the last pass"),
            decisions: r.add("decisions", "Decisions, by direction (outcome = decided, or dry-run)"),
            actions: r.add("actions", "Scale actions, by direction and outcome"),
            plugin_errors: r.add("plugin_errors", "Policy evaluations that failed, by kind"),
            plugin_output_cuts: r.add("plugin_output_cuts", "Evaluations whose output (reasons, messages, triggers) was cut to the sandbox's limits"),
            source_errors: r.add("source_errors", "Signals a source could not provide, by signal (kind)"),
            pass_errors: r.add("pass_errors", "Passes that failed, by what failed (stage: engine, audit, state, evaluation)"),
            webhook_alerts: r.add("webhook_alerts", "Alertmanager alerts received, by scaling_action (kind)"),
            reloads: r.add("reloads", "Policy file (re)loads after a change or SIGHUP, by path and result (kind: ok, error)"),
            evaluations: r.add("evaluations", "Evaluation passes"),
            policy_load_error: r.add("policy_load_error", "1 for a policy file or module that fails to load, by path and stage; the last good version keeps serving"),
            shadow_diverging: r.add("shadow_diverging", "1 while the shadow policy decides differently from the live one"),
            shadow_divergences: r.add("shadow_divergences", "Passes where the shadow policy decided differently from the live one"),
            notifications: r.add("notifications", "Notifications to WEBHOOK_URL, by result (kind: sent, failed, dropped)"),
            api_requests: r.add("api_requests", "API requests that change something, by result (kind)"),
            passes_late: r.add("passes_late", "Automatic passes that started more than a tenth of their interval after they were due"),
            stats_replicas: r.add("stats_replicas", "Replicas whose CPU and memory the last pass read by each path (cgroup-v1, cgroup-v2: the cgroup files; api: the engine's stats)"),
            leader: r.add("leader", "1 while this daemon holds the lease of the Swarm targets (it acts), 0 while it stands by"),
            lease_takeovers: r.add("lease_takeovers", "Times this daemon took the lease of the Swarm targets"),
            lease_lost: r.add("lease_lost", "Times this daemon lost the lease (another took it, or it could not renew in time)"),
            evaluation_seconds: evaluation_family(r.0),
            pass_seconds: pass_family(r.0),
            registry: std::mem::take(r.0),
        }
    }

    /// Publish a pass's signal windows: the value each pass read
    /// ([`SignalWindow::current`], as the status shows it), or no sample
    /// (and `signal_missing` 1) when it is missing, whatever history the
    /// window still holds from earlier runs.
    pub fn observe_signals(&self, service: &str, windows: &[SignalWindow]) {
        let label = ServiceLabel {
            service: service.to_string(),
        };
        for w in windows {
            let newest = w.current().ok();
            let missing = SignalLabel {
                service: service.to_string(),
                signal: w.signal.to_string(),
            };
            self.signal_missing
                .get_or_create(&missing)
                .set(if newest.is_none() { 1.0 } else { 0.0 });
            if newest.is_none() && w.missing_reason.is_some() {
                self.source_error(service, &w.signal.to_string());
            }
            if let Some((_, family)) = self.gauges.iter().find(|(s, _)| s == &w.signal) {
                match newest {
                    Some(value) => {
                        family.get_or_create(&label).set(value);
                    }
                    None => {
                        family.remove(&label);
                    }
                }
            }
        }
    }

    /// Publish one pass's duration and pace, and how its replicas' stats
    /// were read.
    pub fn observe_pass(
        &self,
        service: &str,
        elapsed: std::time::Duration,
        late: bool,
        read_by: Option<&std::collections::BTreeMap<&'static str, u32>>,
    ) {
        let label = ServiceLabel {
            service: service.to_string(),
        };
        self.pass_seconds
            .get_or_create(&label)
            .observe(elapsed.as_secs_f64());
        // Created at 0 so that a rate over it works from the first pass.
        let late_count = self.passes_late.get_or_create(&label);
        if late {
            late_count.inc();
        }
        if let Some(read_by) = read_by {
            for path in STATS_PATHS {
                let n = read_by.get(path).copied().unwrap_or(0);
                self.stats_replicas
                    .get_or_create(&StatsPathLabel {
                        service: service.to_string(),
                        path: path.to_string(),
                    })
                    .set(f64::from(n));
            }
        }
    }

    /// Count one signal a source could not provide.
    pub fn source_error(&self, service: &str, kind: &str) {
        self.source_errors
            .get_or_create(&KindLabel {
                service: service.to_string(),
                kind: kind.to_string(),
            })
            .inc();
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vedfolnir_core::model::Sample;

    #[test]
    fn a_missing_signal_with_history_from_earlier_runs_is_still_missing() {
        // A state directory's history still holds samples from earlier
        // `check` runs; this pass's read failed.
        let m = Metrics::new();
        let stale = |signal: SignalId, value: f64| SignalWindow {
            signal,
            samples: vec![Sample { at: 1, value }, Sample { at: 2, value }],
            missing_reason: Some("no replica answered".to_string()),
        };
        m.observe_signals(
            "web",
            &[
                stale(SignalId::ResponseTimeP95, 0.00475),
                stale(SignalId::ErrorRate, 0.0),
            ],
        );
        let text = m.encode();
        for (gauge, signal) in [
            ("response_time_p95", "response-time-p95"),
            ("error_rate", "error-rate"),
        ] {
            assert!(
                !text.contains(&format!("vedfolnir_autoscaler_{gauge}{{")),
                "{gauge}: {text}"
            );
            assert!(
                text.contains(&format!(
                    "vedfolnir_autoscaler_signal_missing{{service=\"web\",signal=\"{signal}\"}} 1.0"
                )),
                "{signal}: {text}"
            );
        }
    }

    #[test]
    fn a_missing_signal_has_no_sample_and_is_flagged() {
        let m = Metrics::new();
        let window = |signal: SignalId, v: Option<f64>| SignalWindow {
            signal,
            samples: v
                .map(|value| vec![Sample { at: 1, value }])
                .unwrap_or_default(),
            missing_reason: v.is_none().then(|| "prometheus down".to_string()),
        };
        m.observe_signals(
            "web",
            &[
                window(SignalId::Cpu, Some(0.5)),
                window(SignalId::QueueDepth, Some(60.0)),
            ],
        );
        let text = m.encode();
        assert!(
            text.contains("vedfolnir_autoscaler_queue_depth{service=\"web\"} 60.0"),
            "{text}"
        );
        // Then the queue goes missing: its gauge disappears, not 0.
        m.observe_signals(
            "web",
            &[
                window(SignalId::Cpu, Some(0.5)),
                window(SignalId::QueueDepth, None),
            ],
        );
        let text = m.encode();
        assert!(
            !text.contains("vedfolnir_autoscaler_queue_depth{"),
            "{text}"
        );
        assert!(
            text.contains(
                "vedfolnir_autoscaler_signal_missing{service=\"web\",signal=\"queue-depth\"} 1.0"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "vedfolnir_autoscaler_source_errors_total{service=\"web\",kind=\"queue-depth\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("vedfolnir_autoscaler_cpu_usage_avg{service=\"web\"} 0.5"),
            "{text}"
        );
    }

    /// Every `expr` in a Grafana dashboard, recursively.
    fn exprs(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                        _ => exprs(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn the_grafana_dashboard_references_only_metrics_that_exist() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let dashboard: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(root.join("deploy/grafana/resource-management.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(dashboard["uid"], "vedfolnir-scaling");
        let rules =
            std::fs::read_to_string(root.join("deploy/prometheus/rules/vedfolnir.rules.yml"))
                .unwrap();
        // Families show in the exposition once they have a series: give
        // each one.
        let m = Metrics::new();
        let signals: Vec<SignalWindow> = SIGNAL_GAUGES
            .iter()
            .map(|(name, _)| SignalWindow {
                signal: name.parse().unwrap(),
                samples: vec![Sample { at: 1, value: 1.0 }],
                missing_reason: None,
            })
            .collect();
        m.observe_signals("web", &signals);
        m.observe_signals(
            "web",
            &[SignalWindow {
                signal: SignalId::Custom("oom-kills".into()),
                samples: vec![],
                missing_reason: Some("down".into()),
            }],
        );
        let svc = ServiceLabel {
            service: "web".into(),
        };
        let outcome = OutcomeLabel {
            service: "web".into(),
            direction: "up".into(),
            outcome: "succeeded".into(),
        };
        let kind = KindLabel {
            service: "web".into(),
            kind: "trap".into(),
        };
        for g in [
            &m.instance_count,
            &m.ready_replicas,
            &m.scale_up_score,
            &m.scale_down_score,
        ] {
            g.get_or_create(&svc).set(1.0);
        }
        m.decisions.get_or_create(&outcome).inc();
        m.actions.get_or_create(&outcome).inc();
        m.evaluation_seconds.get_or_create(&svc).observe(0.001);
        m.plugin_errors.get_or_create(&kind).inc();
        m.pass_errors
            .get_or_create(&StageLabel {
                service: "web".into(),
                stage: "engine".into(),
            })
            .inc();
        m.webhook_alerts.get_or_create(&kind).inc();
        m.reloads
            .get_or_create(&PathKindLabel {
                path: "p".into(),
                kind: "ok".into(),
            })
            .inc();
        let exposed = m.encode();
        let mut all = Vec::new();
        exprs(&dashboard, &mut all);
        assert!(all.len() >= 12, "{all:?}");
        let mut checked = 0;
        for e in &all {
            let names = e
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .filter(|t| t.starts_with("vedfolnir"));
            for name in names {
                checked += 1;
                if name.contains(':') {
                    assert!(
                        rules.contains(&format!("- record: {name}\n")),
                        "{name} (in {e:?}) is not a recording rule"
                    );
                } else {
                    // The family, or a counter's or histogram's series.
                    let known = std::iter::once(name)
                        .chain(
                            ["_total", "_bucket", "_sum", "_count"]
                                .iter()
                                .filter_map(|suffix| name.strip_suffix(suffix)),
                        )
                        .any(|family| exposed.contains(&format!("# TYPE {family} ")));
                    assert!(
                        known,
                        "{name} (in {e:?}) is not a metric the daemon exposes"
                    );
                }
            }
        }
        assert!(checked >= 20, "{checked}");
    }
}
