//! A replay's seams: the simulator's model of the service behind the same
//! traits as the engine, so a replay runs the controller's own pass.
//!
//! - As an [`Actuator`], the model's replicas: a scale-up finishes when
//!   its new replicas are ready (the Docker actuator waits for health), so
//!   it moves the replay's clock to that moment, and the cooldown starts
//!   there; a scale-down finishes at once.
//! - As a [`MetricSource`], every signal of the model, windowed as the
//!   daemon keeps its history (long history only for the signals the
//!   plugin declares: a day of every signal would be copied into the
//!   sandbox for nothing).

use std::sync::Mutex;

use futures_util::future::BoxFuture;
use vedfolnir_core::history::Series;
use vedfolnir_core::model::DurationMs;
use vedfolnir_core::model::{SignalId, TimestampMs};
use vedfolnir_core::sim::{self, Observation, Service, Slo};
use vedfolnir_core::window::FINE_MS;

use crate::actuators::{Actuator, Observed, ScalePlan, ScaleReport};
use crate::clock::{Clock, ManualClock};
use crate::config::{Source, SourceKind};
use crate::engine::EngineError;
use crate::sources::{Ask, MetricSource, Reading, SourceReport};

/// The model of one service, its signal history and the replay's clock.
#[derive(Debug)]
pub struct Model {
    service: Mutex<Service>,
    /// The history of each of `signals`, as the daemon keeps one.
    history: Mutex<Vec<Series>>,
    /// How much history is kept (the policy's span, as the daemon keeps).
    span_ms: DurationMs,
    /// The model's signals ([`sim::signals`]).
    signals: [SignalId; 8],
    /// Which of them get long history.
    declared: Vec<bool>,
    /// The replay's virtual clock.
    pub clock: ManualClock,
}

impl Model {
    /// A model service, keeping `span_ms` of history; `declared` flags the
    /// signals of [`sim::signals`] the plugin declares.
    pub fn new(
        service: Service,
        span_ms: DurationMs,
        declared: Vec<bool>,
        now: TimestampMs,
    ) -> Model {
        Model {
            service: Mutex::new(service),
            history: Mutex::new(vec![Series::default(); sim::signals().len()]),
            span_ms,
            signals: sim::signals(),
            declared,
            clock: ManualClock::at(now),
        }
    }

    /// Advance the model by one step of `step_ms` ending at `t + step_ms`,
    /// and keep what it shows (its violation judged by `slo`).
    pub fn advance(&self, t: TimestampMs, step_ms: u64, load: f64, slo: Slo) -> Observation {
        let obs = self
            .service
            .lock()
            .expect("not poisoned")
            .advance(t, step_ms, load);
        let mut history = self.history.lock().expect("not poisoned");
        for (series, value) in history.iter_mut().zip(obs.values(slo)) {
            series.add(t + step_ms as i64, value, self.span_ms);
        }
        obs
    }
}

impl Actuator for Model {
    fn describe(&self) -> String {
        "the simulated service".into()
    }

    fn status(&self) -> BoxFuture<'_, Result<Observed, EngineError>> {
        let now = self.clock.now_ms();
        let service = self.service.lock().expect("not poisoned");
        let observed = Observed {
            replicas: vec![],
            running: service.replicas(),
            ready: service.ready(now),
            marks: None,
        };
        Box::pin(async move { Ok(observed) })
    }

    fn plan(&self, to: u32) -> BoxFuture<'_, Result<ScalePlan, EngineError>> {
        let from = self.service.lock().expect("not poisoned").replicas();
        Box::pin(async move { Ok(ScalePlan::counts(from, to)) })
    }

    fn scale<'a>(
        &'a self,
        plan: &'a ScalePlan,
        _action: &'a str,
    ) -> BoxFuture<'a, Result<ScaleReport, EngineError>> {
        let to = plan.to;
        let now = self.clock.now_ms();
        let mut service = self.service.lock().expect("not poisoned");
        let from = service.replicas();
        service.scale_to(to, now);
        if to > from {
            // The scale returns when the new replicas are ready.
            self.clock.set(service.all_ready_at(now));
        }
        let report = ScaleReport {
            reached: to,
            outcome: crate::actuators::Outcome::Succeeded,
            duration_ms: (self.clock.now_ms() - now).max(0) as u64,
            ..ScaleReport::new(from, to)
        };
        Box::pin(async move { Ok(report) })
    }
}

impl MetricSource for Model {
    fn kind(&self) -> SourceKind {
        SourceKind::Model
    }

    fn serves(&self) -> Vec<SignalId> {
        sim::signals().to_vec()
    }

    fn read<'a>(&'a self, ask: &'a Ask<'a>) -> BoxFuture<'a, SourceReport> {
        let history = self.history.lock().expect("not poisoned");
        // A signal the plugin does not declare (it is not handed it; its
        // window serves the guard rails and the status) gets its last hour:
        // a day of it would be copied for nothing.
        let readings = self
            .signals
            .iter()
            .zip(&self.declared)
            .zip(history.iter())
            .filter(|((s, _), _)| {
                ask.signals
                    .iter()
                    .any(|r| &r.signal == *s && r.source == Source::Model)
            })
            .map(|((s, long), series)| {
                let from = if *long {
                    i64::MIN
                } else {
                    ask.now - FINE_MS as i64
                };
                Reading::Window(series.window(s, from, ask.now))
            })
            .collect();
        Box::pin(async move {
            SourceReport {
                readings,
                ..Default::default()
            }
        })
    }
}
