//! What the daemon tells about itself: one [`Event`] type that logs and
//! counts together (as Vector's `internal_events` do), so a log line and a
//! `/metrics` series cannot drift apart; the [`metrics`] registry behind
//! `/metrics`; and the [`notifier`] posting actions to `WEBHOOK_URL`.
//!
//! The one-shot commands log without counting ([`Telemetry::log_only`]);
//! the daemon counts too ([`Telemetry::counting`]).

pub mod metrics;
pub mod notifier;

use std::sync::Arc;
use std::time::Duration;

use vedfolnir_core::model::{Direction, PolicyInput};

use crate::actuators::Outcome;
use crate::policy::Evaluation;
use metrics::{KindLabel, Metrics, OutcomeLabel, ServiceLabel, StageLabel};

/// How long each stage of one pass took, in the order of the controller's
/// diagram (`plan` is counted in `act`; `sweep` in `observe`).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Timings {
    /// Listing the target's replicas, and the sweep.
    pub observe: Duration,
    /// Reading the sources, and the sample history.
    pub collect: Duration,
    /// The policy (and its shadow) in the sandbox, and the guard rails.
    pub evaluate: Duration,
    /// Planning, and the scale when there is one.
    pub act: Duration,
    /// Writing the state.
    pub record: Duration,
}

impl Timings {
    /// Each stage by name.
    pub fn stages(&self) -> [(&'static str, Duration); 5] {
        [
            ("observe", self.observe),
            ("collect", self.collect),
            ("evaluate", self.evaluate),
            ("act", self.act),
            ("record", self.record),
        ]
    }

    /// The whole pass.
    pub fn total(&self) -> Duration {
        self.stages().iter().map(|(_, d)| *d).sum()
    }

    /// The stage that took longest.
    pub fn slowest(&self) -> (&'static str, Duration) {
        self.stages()
            .into_iter()
            .max_by_key(|(_, d)| *d)
            .expect("five stages")
    }

    /// `observe 3 ms, collect 1.02 s, ...`, for a log line.
    pub fn describe(&self) -> String {
        self.stages()
            .iter()
            .map(|(name, d)| format!("{name} {}", crate::clock::format_timing(*d)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What failed in a pass that stopped before it decided or recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The engine: listing, reading or scaling the target.
    Engine,
    /// Writing or reading the audit log.
    Audit,
    /// Reading or writing the state files.
    State,
    /// The evaluation task itself (not the policy: a policy's failure is a
    /// hold, not a failed pass).
    Evaluation,
}

impl Stage {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Engine => "engine",
            Stage::Audit => "audit",
            Stage::State => "state",
            Stage::Evaluation => "evaluation",
        }
    }
}

/// Something worth a log line and a count.
#[derive(Debug)]
pub enum Event<'a> {
    /// A pass evaluated its policy and the guard rails decided.
    Evaluated {
        /// The service.
        service: &'a str,
        /// What the policy saw.
        input: &'a PolicyInput,
        /// The live policy's evaluation.
        evaluation: &'a Evaluation,
        /// The shadow policy's, when there is one.
        shadow: Option<&'a Evaluation>,
        /// The live evaluation's wall time.
        elapsed: Duration,
        /// Decided by a dry run.
        dry_run: bool,
    },
    /// A scale finished (whatever its outcome).
    Acted {
        /// The service.
        service: &'a str,
        /// Which way.
        direction: Direction,
        /// How it ended.
        outcome: Outcome,
    },
    /// A request to the API's write endpoints, by its result (ok, failed,
    /// unauthorized, rate-limited, busy, not-found, disabled).
    ApiRequest {
        /// The service named in the path.
        service: &'a str,
        /// Its result.
        result: &'a str,
    },
    /// A policy file was (re)loaded, or failed to.
    Reloaded {
        /// The file.
        path: &'a str,
        /// Whether it serves now.
        ok: bool,
    },
    /// An automatic pass finished.
    Passed {
        /// The service.
        service: &'a str,
        /// How long each stage took.
        timings: &'a Timings,
        /// How its replicas' stats were read (the docker source).
        read_by: Option<&'a std::collections::BTreeMap<&'static str, u32>>,
        /// It started late.
        late: bool,
        /// The interval it was due at.
        interval: Duration,
    },
    /// A pass stopped: nothing was decided, or the decision not recorded.
    PassFailed {
        /// The service.
        service: &'a str,
        /// What failed.
        stage: Stage,
        /// Why, with its causes.
        error: &'a str,
    },
}

/// Where events go.
#[derive(Debug, Clone, Default)]
pub struct Telemetry {
    metrics: Option<Arc<Metrics>>,
    quiet: bool,
}

impl Telemetry {
    /// Log only (the one-shot commands).
    pub fn log_only() -> Telemetry {
        Telemetry::default()
    }

    /// Log, and count in `metrics` (the daemon).
    pub fn counting(metrics: Arc<Metrics>) -> Telemetry {
        Telemetry {
            metrics: Some(metrics),
            quiet: false,
        }
    }

    /// Neither log nor count: a replay reports its passes in its table.
    pub fn quiet() -> Telemetry {
        Telemetry {
            metrics: None,
            quiet: true,
        }
    }

    /// Log and count one event.
    pub fn emit(&self, event: Event<'_>) {
        if self.quiet {
            return;
        }
        match &event {
            Event::Evaluated {
                service,
                evaluation,
                ..
            } => {
                let d = &evaluation.decision;
                if let Some(f) = &evaluation.failure {
                    tracing::warn!(service = %service, kind = %f.kind, error = %f.message, "policy failed; holding");
                }
                tracing::debug!(service = %service, direction = %d.direction, from = d.current, to = d.target, "decided");
            }
            Event::Acted {
                service,
                direction,
                outcome,
            } => {
                tracing::info!(service = %service, direction = %direction, outcome = ?outcome, "scale finished");
            }
            Event::PassFailed {
                service,
                stage,
                error,
            } => {
                tracing::error!(service = %service, stage = stage.as_str(), error = %error, "pass failed; holding");
            }
            Event::ApiRequest { service, result } => {
                tracing::debug!(service = %service, result = %result, "API request");
            }
            Event::Passed {
                service,
                timings,
                interval,
                ..
            } => {
                let took = timings.total();
                if took > *interval {
                    let (stage, longest) = timings.slowest();
                    tracing::warn!(
                        service = %service,
                        took = %crate::clock::format_timing(took),
                        interval = %crate::clock::format_timing(*interval),
                        stages = %timings.describe(),
                        "pass took longer than its interval: {stage} took {}",
                        crate::clock::format_timing(longest)
                    );
                }
            }
            Event::Reloaded { path, ok } => {
                tracing::debug!(path = %path, ok, "policy file loaded");
            }
        }
        if let Some(m) = &self.metrics {
            count(m, &event);
        }
    }
}

fn count(m: &Metrics, event: &Event<'_>) {
    match event {
        Event::Evaluated {
            service,
            input,
            evaluation,
            shadow,
            elapsed,
            dry_run,
        } => count_evaluation(m, service, input, evaluation, *shadow, *elapsed, *dry_run),
        Event::Acted {
            service,
            direction,
            outcome,
        } => {
            m.actions
                .get_or_create(&OutcomeLabel {
                    service: service.to_string(),
                    direction: direction.to_string(),
                    outcome: outcome.as_str().into(),
                })
                .inc();
        }
        Event::ApiRequest { service, result } => {
            m.api_requests
                .get_or_create(&KindLabel {
                    service: service.to_string(),
                    kind: result.to_string(),
                })
                .inc();
        }
        Event::Reloaded { path, ok } => {
            m.reloads
                .get_or_create(&metrics::PathKindLabel {
                    path: path.to_string(),
                    kind: if *ok { "ok" } else { "error" }.into(),
                })
                .inc();
        }
        Event::Passed {
            service,
            timings,
            read_by,
            late,
            ..
        } => m.observe_pass(service, timings.total(), *late, *read_by),
        Event::PassFailed { service, stage, .. } => {
            m.pass_errors
                .get_or_create(&StageLabel {
                    service: service.to_string(),
                    stage: stage.as_str().into(),
                })
                .inc();
        }
    }
}

fn count_evaluation(
    m: &Metrics,
    service: &str,
    input: &PolicyInput,
    evaluation: &Evaluation,
    shadow: Option<&Evaluation>,
    elapsed: Duration,
    dry_run: bool,
) {
    let label = ServiceLabel {
        service: service.to_string(),
    };
    m.observe_signals(service, &input.signals);
    m.instance_count
        .get_or_create(&label)
        .set(f64::from(input.current_replicas));
    m.ready_replicas
        .get_or_create(&label)
        .set(f64::from(input.ready_replicas));
    m.evaluation_seconds
        .get_or_create(&label)
        .observe(elapsed.as_secs_f64());
    m.evaluations.get_or_create(&label).inc();
    match (&evaluation.recommendation, &evaluation.failure) {
        (Some(r), _) => {
            if r.reasons.iter().any(vedfolnir_sandbox::Cut::marks) {
                m.plugin_output_cuts.get_or_create(&label).inc();
            }
            m.scale_up_score.get_or_create(&label).set(r.scale_up_score);
            m.scale_down_score
                .get_or_create(&label)
                .set(r.scale_down_score);
        }
        (None, Some(f)) => {
            m.scale_up_score.remove(&label);
            m.scale_down_score.remove(&label);
            m.plugin_errors
                .get_or_create(&KindLabel {
                    service: service.to_string(),
                    kind: f.kind.to_string(),
                })
                .inc();
        }
        (None, None) => {}
    }
    let d = &evaluation.decision;
    m.decisions
        .get_or_create(&OutcomeLabel {
            service: service.to_string(),
            direction: d.direction.to_string(),
            outcome: if dry_run && d.is_scale() {
                "dry-run".into()
            } else {
                "decided".into()
            },
        })
        .inc();
    if let Some(sh) = shadow {
        let diverges = evaluation.diverges(sh);
        m.shadow_diverging
            .get_or_create(&label)
            .set(if diverges { 1.0 } else { 0.0 });
        if diverges {
            m.shadow_divergences.get_or_create(&label).inc();
        }
    }
}
