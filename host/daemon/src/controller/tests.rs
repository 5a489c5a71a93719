//! The controller on in-memory fakes: an actuator that counts replicas in a
//! variable, a source that answers what it is told, a manual clock, and a
//! scripted policy ([`Scripted`], behind the policy seam) that answers
//! what each test tells it, so each decision path of a pass is tested
//! directly. Some tests run the real documented policy
//! (`builtin:threshold-score`) in the real sandbox, where the bounds drive
//! the scale, since a bound is restored whatever the policy says.

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use futures_util::future::BoxFuture;
use vedfolnir_core::guard::Rule;
use vedfolnir_core::model::{Direction, SignalId};

use super::manual::{self, Request, Wanted};
use super::*;
use crate::actuators::{Outcome, ScalePlan};
use crate::audit::AuditLog;
use crate::clock::ManualClock;
use crate::config::{PolicyFile, SourceKind};
use crate::engine::Replica;
use crate::sources::{Ask, MetricSource, Reading, SourceReport};
use crate::state::StateDir;
use crate::telemetry::metrics::Metrics;

/// What the fake engine does when asked to scale.
#[derive(Debug, Clone, Copy)]
enum Behaviour {
    /// Reach the target.
    Obey,
    /// Answer an error, change nothing.
    Fail,
    /// Stop at this many replicas.
    StopAt(u32),
}

/// Replicas in a variable, and abandoned containers in a list.
#[derive(Debug)]
struct FakeActuator {
    running: Mutex<u32>,
    behaviour: Behaviour,
    scales: Mutex<Vec<u32>>,
    abandoned: Mutex<Vec<Replica>>,
}

impl FakeActuator {
    fn new(running: u32, behaviour: Behaviour) -> FakeActuator {
        FakeActuator {
            running: Mutex::new(running),
            behaviour,
            scales: Mutex::new(Vec::new()),
            abandoned: Mutex::new(Vec::new()),
        }
    }

    fn running(&self) -> u32 {
        *self.running.lock().unwrap()
    }
}

impl Actuator for FakeActuator {
    fn describe(&self) -> String {
        "fake service web".into()
    }

    fn status(&self) -> BoxFuture<'_, Result<Observed, EngineError>> {
        let running = self.running();
        let replicas = self.abandoned.lock().unwrap().clone();
        Box::pin(async move {
            Ok(Observed {
                replicas,
                running,
                ready: running,
                marks: None,
            })
        })
    }

    fn scale<'a>(
        &'a self,
        plan: &'a ScalePlan,
        _action: &'a str,
    ) -> BoxFuture<'a, Result<ScaleReport, EngineError>> {
        let to = plan.to;
        Box::pin(async move {
            self.scales.lock().unwrap().push(to);
            let from = self.running();
            let reached = match self.behaviour {
                Behaviour::Fail => return Err(EngineError::api("the engine said no")),
                Behaviour::Obey => to,
                Behaviour::StopAt(n) => n,
            };
            *self.running.lock().unwrap() = reached;
            Ok(ScaleReport {
                reached,
                outcome: if reached == to {
                    Outcome::Succeeded
                } else {
                    Outcome::Partial
                },
                error: (reached != to).then(|| "stopped half-way".to_string()),
                ..ScaleReport::new(from, to)
            })
        })
    }

    fn remove_abandoned<'a>(
        &'a self,
        abandoned: &'a [Replica],
    ) -> BoxFuture<'a, Vec<(String, Result<(), EngineError>)>> {
        let mut left = self.abandoned.lock().unwrap();
        left.retain(|r| !abandoned.iter().any(|a| a.id == r.id));
        let removed = abandoned.iter().map(|r| (r.name.clone(), Ok(()))).collect();
        Box::pin(async move { removed })
    }
}

/// A container of the service in `state`, created by the autoscaler or not.
fn container(name: &str, state: &str, ours: bool) -> Replica {
    Replica {
        id: format!("id-{name}"),
        name: name.into(),
        number: None,
        created: 0,
        state: state.into(),
        readiness: crate::engine::Readiness::Down,
        oom_killed: false,
        started_at: String::new(),
        ip: None,
        published: vec![],
        ours,
        action: None,
    }
}

/// A docker-kind source answering fixed CPU and memory, or failing.
struct FakeSource {
    cpu: Result<f64, String>,
}

impl MetricSource for FakeSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Docker
    }

    fn serves(&self) -> Vec<SignalId> {
        vec![SignalId::Cpu, SignalId::Memory]
    }

    fn read<'a>(&'a self, ask: &'a Ask<'a>) -> BoxFuture<'a, SourceReport> {
        Box::pin(async move {
            let readings = ask
                .signals
                .iter()
                .map(|s| match &s.signal {
                    SignalId::Cpu => Reading::Now(SignalId::Cpu, self.cpu.clone()),
                    other => Reading::Now(other.clone(), Ok(0.3)),
                })
                .collect();
            SourceReport {
                readings,
                errors: self.cpu.clone().err().into_iter().collect(),
                usage: None,
            }
        })
    }
}

/// The documented policy with `extra` TOML (bounds default to 2..5).
fn policy(extra: &str) -> Arc<ReadyPolicy> {
    static PLUGIN: OnceLock<vedfolnir_sandbox::Plugin> = OnceLock::new();
    let text = format!("service = \"web\"\nplugin = \"builtin:threshold-score\"\n{extra}");
    let file = PolicyFile::parse(Path::new("web.toml"), &text, &Default::default()).unwrap();
    let plugin = PLUGIN.get_or_init(|| {
        let sandbox = vedfolnir_sandbox::Sandbox::new(Default::default()).unwrap();
        crate::policy::load_plugin(&sandbox, &file.plugin).unwrap()
    });
    Arc::new(ReadyPolicy::with_plugin(file, Arc::new(plugin.clone())).unwrap())
}

/// A policy's code that answers what it is told: go to a count, or fail.
#[derive(Debug)]
struct Scripted {
    id: Arc<vedfolnir_sandbox::PluginId>,
    description: vedfolnir_core::model::Description,
    answer: Mutex<Result<u32, vedfolnir_core::guard::FailureKind>>,
    calls: Mutex<u32>,
}

impl Scripted {
    fn new() -> Arc<Scripted> {
        Arc::new(Scripted {
            id: Arc::new(vedfolnir_sandbox::PluginId {
                source: "scripted".into(),
                name: "scripted".into(),
                version: "1".into(),
                digest: "0".repeat(64),
            }),
            description: vedfolnir_core::model::Description::new("scripted", "1", "as told"),
            answer: Mutex::new(Err(vedfolnir_core::guard::FailureKind::Unavailable)),
            calls: Mutex::new(0),
        })
    }

    /// From the next evaluation on, recommend `n` replicas.
    fn wants(&self, n: u32) {
        *self.answer.lock().unwrap() = Ok(n);
    }

    /// From the next evaluation on, fail this way.
    fn fails(&self, kind: vedfolnir_core::guard::FailureKind) {
        *self.answer.lock().unwrap() = Err(kind);
    }
}

impl crate::policy::Evaluator for Scripted {
    fn id(&self) -> &Arc<vedfolnir_sandbox::PluginId> {
        &self.id
    }

    fn description(&self) -> &vedfolnir_core::model::Description {
        &self.description
    }

    fn validate_config(
        &self,
        _: &[vedfolnir_core::model::Param],
    ) -> Result<Result<(), Vec<vedfolnir_core::model::ConfigError>>, vedfolnir_sandbox::EvalError>
    {
        Ok(Ok(()))
    }

    fn evaluate(
        &self,
        input: &PolicyInput,
    ) -> Result<vedfolnir_core::model::Recommendation, vedfolnir_sandbox::EvalError> {
        *self.calls.lock().unwrap() += 1;
        match *self.answer.lock().unwrap() {
            Ok(n) => Ok(vedfolnir_core::model::Recommendation {
                desired_replicas: n,
                direction: Direction::between(input.current_replicas, n),
                scale_up_score: 1.0,
                scale_down_score: 0.0,
                reasons: vec![vedfolnir_core::model::Reason::new(
                    "scripted",
                    format!("told to want {n}"),
                )],
            }),
            Err(kind) => Err(vedfolnir_sandbox::EvalError {
                kind,
                plugin: self.id.clone(),
                call: "evaluate",
                message: "told to fail".into(),
            }),
        }
    }

    fn over_deadline(&self) -> u64 {
        0
    }
}

/// A policy file with `extra` TOML (bounds default to 2..5) run by a
/// scripted policy.
fn scripted(extra: &str) -> (Arc<ReadyPolicy>, Arc<Scripted>) {
    let text = format!("service = \"web\"\nplugin = \"builtin:threshold-score\"\n{extra}");
    let file = PolicyFile::parse(Path::new("web.toml"), &text, &Default::default()).unwrap();
    let code = Scripted::new();
    let policy = ReadyPolicy::with_plugin(file, code.clone()).unwrap();
    (Arc::new(policy), code)
}

/// Everything a pass works with, on fakes.
struct World {
    _dir: tempfile::TempDir,
    actuator: FakeActuator,
    sources: Sources,
    audit: AuditLog,
    state: StateDir,
    clock: ManualClock,
    telemetry: Telemetry,
    metrics: Arc<Metrics>,
    dry_run: bool,
}

impl World {
    fn new(running: u32, behaviour: Behaviour) -> World {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::new());
        World {
            actuator: FakeActuator::new(running, behaviour),
            sources: Sources::new().with(Arc::new(FakeSource { cpu: Ok(0.3) })),
            audit: AuditLog::in_dir(dir.path()),
            state: StateDir::open(dir.path()).unwrap(),
            clock: ManualClock::at(1_700_000_000_000),
            telemetry: Telemetry::counting(metrics.clone()),
            metrics,
            dry_run: false,
            _dir: dir,
        }
    }

    fn cx(&self) -> Context<'_> {
        Context {
            actuator: &self.actuator,
            sources: &self.sources,
            audit: &self.audit,
            state: &self.state,
            clock: &self.clock,
            telemetry: &self.telemetry,
            dry_run: self.dry_run,
            evaluate: Evaluate::OffThread,
            late: false,
            standby: None,
        }
    }

    fn events(&self) -> Vec<Event> {
        self.audit
            .records("web")
            .unwrap()
            .iter()
            .map(|r| r.event)
            .collect()
    }

    fn state(&self) -> ServiceState {
        self.state.state("web", 0).unwrap()
    }
}

#[tokio::test]
async fn a_bound_is_restored_audited_before_and_after_and_starts_its_cooldown() {
    let w = World::new(1, Behaviour::Obey);
    let p = pass(&w.cx(), &policy("")).await.unwrap();
    assert_eq!(p.report.unwrap().outcome, Outcome::Succeeded);
    assert_eq!(w.actuator.running(), 2);
    assert_eq!(w.events(), [Event::ScaleStarted, Event::ScaleFinished]);
    let s = w.state();
    assert!(s.last_scale_up.is_some());
    assert_eq!(s.last_decision.unwrap().to, 2);
}

#[tokio::test]
async fn a_failed_scale_starts_no_cooldown() {
    let w = World::new(1, Behaviour::Fail);
    let p = pass(&w.cx(), &policy("")).await.unwrap();
    let report = p.report.unwrap();
    assert_eq!((report.outcome, report.reached), (Outcome::Failed, 1));
    assert!(report.error.unwrap().contains("the engine said no"));
    assert_eq!(w.events(), [Event::ScaleStarted, Event::ScaleFinished]);
    assert_eq!(w.state().last_scale_up, None);
    assert!(
        w.metrics
            .encode()
            .contains("actions_total{service=\"web\",direction=\"up\",outcome=\"failed\"} 1")
    );
}

#[tokio::test]
async fn a_partial_scale_is_audited_as_partial_and_starts_its_cooldown() {
    let w = World::new(1, Behaviour::StopAt(2));
    pass(&w.cx(), &policy("min_replicas = 3")).await.unwrap();
    let records = w.audit.records("web").unwrap();
    let finished = records.last().unwrap();
    let report = finished.report.as_ref().unwrap();
    assert_eq!((report.outcome, report.reached), (Outcome::Partial, 2));
    assert_eq!(finished.action_id, records[0].action_id);
    assert!(w.state().last_scale_up.is_some(), "the count moved");
}

#[tokio::test]
async fn a_dry_run_judges_an_interrupted_scale_but_leaves_it_open() {
    let mut w = World::new(3, Behaviour::Obey);
    let started = crate::audit::AuditRecord {
        direction: Direction::Up,
        from: 2,
        to: 3,
        ..crate::audit::AuditRecord::new("web", Event::ScaleStarted, Actor::Manual, 5)
    };
    w.audit.append(&started).unwrap();
    w.dry_run = true;
    let judged = reconcile::reconcile(&w.cx(), "web").await.unwrap();
    assert_eq!(judged.len(), 1);
    assert!(judged[0].dry_run);
    assert!(reconcile::describe(&judged[0]).contains("leaves it open"));
    assert_eq!(
        w.events(),
        [Event::ScaleStarted],
        "a dry run writes nothing"
    );
    assert!(w.state().last_scale_up.is_none(), "nor starts a cooldown");
    // A real run then finishes it, once.
    w.dry_run = false;
    let done = reconcile::reconcile(&w.cx(), "web").await.unwrap();
    assert_eq!(done.len(), 1);
    assert!(!done[0].dry_run);
    assert_eq!(w.events(), [Event::ScaleStarted, Event::ScaleFinished]);
}

#[tokio::test]
async fn an_intent_without_an_outcome_is_reconciled_once() {
    let w = World::new(3, Behaviour::Obey);
    let started = crate::audit::AuditRecord {
        direction: Direction::Up,
        from: 2,
        to: 3,
        ..crate::audit::AuditRecord::new("web", Event::ScaleStarted, Actor::Manual, 5)
    };
    w.audit.append(&started).unwrap();
    let done = reconcile::reconcile(&w.cx(), "web").await.unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].report.as_ref().unwrap().outcome, Outcome::Succeeded);
    assert!(
        reconcile::reconcile(&w.cx(), "web")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(w.events(), [Event::ScaleStarted, Event::ScaleFinished]);
    assert!(w.state().last_scale_up.is_some(), "it moved the count");
}

#[tokio::test]
async fn an_interrupted_intent_without_a_plan_never_reads_as_more_than_it_asked() {
    // Written before intents carried a plan; the engine shows 5 now
    // (another scale added more): this one reached its 4, no more, and it
    // is not "partial".
    let w = World::new(5, Behaviour::Obey);
    let started = crate::audit::AuditRecord {
        direction: Direction::Up,
        from: 3,
        to: 4,
        ..crate::audit::AuditRecord::new("web", Event::ScaleStarted, Actor::Manual, 5)
    };
    w.audit.append(&started).unwrap();
    let done = reconcile::reconcile(&w.cx(), "web").await.unwrap();
    let report = done[0].report.as_ref().unwrap();
    assert_eq!((report.reached, report.outcome), (4, Outcome::Succeeded));
    assert!(
        report.error.as_deref().unwrap().contains("5 running"),
        "{report:?}"
    );
    // One that moved nothing failed; one part of the way is partial.
    for (running, reached, outcome) in [(2, 3, Outcome::Failed), (4, 4, Outcome::Partial)] {
        let r = ScaleReport::judged_by_count(&ScalePlan::counts(3, 5), running);
        assert_eq!((r.reached, r.outcome), (reached, outcome), "{running}");
    }
}

#[tokio::test]
async fn an_api_request_the_daemon_died_under_is_closed_with_what_became_of_it() {
    let w = World::new(2, Behaviour::Obey);
    let request = |at, what: &str| crate::audit::AuditRecord {
        reasons: vec![what.into()],
        ..crate::audit::AuditRecord::new("web", Event::Requested, Actor::Api, at)
    };
    // One never reached the loop; one started a scale before the kill.
    let lost = request(10, "scale to 4");
    w.audit.append(&lost).unwrap();
    let ran = request(20, "scale to 3");
    w.audit.append(&ran).unwrap();
    let started = crate::audit::AuditRecord {
        direction: Direction::Up,
        from: 2,
        to: 3,
        plan: Some(ScalePlan::counts(2, 3)),
        request: Some(ran.action_id.clone()),
        ..crate::audit::AuditRecord::new("web", Event::ScaleStarted, Actor::Api, 21)
    };
    w.audit.append(&started).unwrap();
    // Answered: left alone.
    let fine = request(30, "pause");
    w.audit.append(&fine).unwrap();
    w.audit
        .append(&crate::audit::AuditRecord {
            event: Event::Answered,
            ..fine.clone()
        })
        .unwrap();
    let done = reconcile::reconcile(&w.cx(), "web").await.unwrap();
    let closed: Vec<_> = done
        .iter()
        .filter(|r| r.event == Event::Unanswered)
        .collect();
    assert_eq!(closed.len(), 2, "{done:?}");
    assert_eq!(closed[0].action_id, lost.action_id);
    assert!(
        closed[0].reasons[0].contains("not carried out"),
        "{:?}",
        closed[0]
    );
    assert!(
        closed[1].reasons[0].contains(&started.action_id),
        "{:?}",
        closed[1]
    );
    // Once.
    let again = reconcile::reconcile(&w.cx(), "web").await.unwrap();
    assert!(again.is_empty(), "{again:?}");
}

#[tokio::test]
async fn an_intent_records_its_plan_before_the_engine_is_changed() {
    let w = World::new(1, Behaviour::Obey);
    pass(&w.cx(), &policy("")).await.unwrap();
    let records = w.audit.records("web").unwrap();
    let started = records
        .iter()
        .find(|r| r.event == Event::ScaleStarted)
        .unwrap();
    assert_eq!(started.plan, Some(ScalePlan::counts(1, 2)));
    let finished = records
        .iter()
        .find(|r| r.event == Event::ScaleFinished)
        .unwrap();
    assert_eq!(finished.plan, None, "said once, in the intent");
}

#[tokio::test]
async fn abandoned_replicas_are_swept_at_each_pass_and_audited_but_not_in_a_dry_run() {
    let leftovers = || {
        vec![
            container("web-4", "created", true),
            container("web-5", "exited", true),
            // Not ours, or ours and restarting: left alone.
            container("web-1", "exited", false),
            container("web-6", "restarting", true),
        ]
    };
    let mut w = World::new(2, Behaviour::Obey);
    w.dry_run = true;
    *w.actuator.abandoned.lock().unwrap() = leftovers();
    pass(&w.cx(), &policy("")).await.unwrap();
    assert_eq!(
        w.actuator.abandoned.lock().unwrap().len(),
        4,
        "a dry run changes nothing"
    );
    assert!(!w.events().contains(&Event::AbandonedRemoved));

    w.dry_run = false;
    pass(&w.cx(), &policy("")).await.unwrap();
    let left: Vec<String> = w
        .actuator
        .abandoned
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.name.clone())
        .collect();
    assert_eq!(left, ["web-1", "web-6"]);
    let records = w.audit.records("web").unwrap();
    let swept = records
        .iter()
        .find(|r| r.event == Event::AbandonedRemoved)
        .unwrap();
    assert_eq!(swept.reasons.len(), 2);
    assert!(swept.reasons[0].contains("web-4") && swept.reasons[0].contains("created"));
    // Once: the next pass finds nothing to sweep.
    pass(&w.cx(), &policy("")).await.unwrap();
    let sweeps = w
        .audit
        .records("web")
        .unwrap()
        .iter()
        .filter(|r| r.event == Event::AbandonedRemoved)
        .count();
    assert_eq!(sweeps, 1);
}

#[tokio::test]
async fn a_dry_run_announces_a_restore_once_and_moves_only_its_own_clocks() {
    let mut w = World::new(1, Behaviour::Obey);
    w.dry_run = true;
    let policy = policy("");
    for _ in 0..4 {
        let p = pass(&w.cx(), &policy).await.unwrap();
        assert_eq!(p.evaluation.decision.direction, Direction::Up);
        assert!(p.report.is_none());
        w.clock.set(w.clock.now_ms() + 15_000);
    }
    assert_eq!(w.events(), [Event::WouldScale]);
    assert!(
        w.actuator.scales.lock().unwrap().is_empty(),
        "nothing acted"
    );
    let s = w.state();
    assert_eq!(s.last_scale_up, None);
    assert!(s.dry_run.last_scale_up.is_some());
    assert!(s.last_decision.unwrap().dry_run);
}

#[tokio::test]
async fn a_paused_service_holds_even_below_its_minimum() {
    let w = World::new(1, Behaviour::Obey);
    w.state.update("web", 0, |s| s.paused = true).unwrap();
    let p = pass(&w.cx(), &policy("")).await.unwrap();
    let d = &p.evaluation.decision;
    assert_eq!(d.direction, Direction::Hold);
    assert_eq!(d.reasons[0].rule, Rule::Paused);
    assert!(w.actuator.scales.lock().unwrap().is_empty());
    assert!(w.events().is_empty());
}

#[tokio::test]
async fn a_failing_source_holds_and_is_counted_against_its_signal() {
    let mut w = World::new(3, Behaviour::Obey);
    w.sources = Sources::new().with(Arc::new(FakeSource {
        cpu: Err("docker stats unreadable: web-1 gone".into()),
    }));
    let p = pass(
        &w.cx(),
        &policy("[signals.cpu]\nsource = \"docker\"\nrequired = true\n"),
    )
    .await
    .unwrap();
    assert_eq!(p.evaluation.decision.direction, Direction::Hold);
    let cpu = p.input.window(&SignalId::Cpu).unwrap();
    assert!(
        cpu.missing_reason
            .as_deref()
            .unwrap()
            .contains("web-1 gone")
    );
    assert_eq!(p.collected.failed, [(SourceKind::Docker, SignalId::Cpu)]);
    // Held, and audited as such since a source reported an error.
    assert_eq!(w.events(), [Event::Held]);
    let m = w.metrics.encode();
    assert!(
        m.contains("source_errors_total{service=\"web\",kind=\"cpu\"} 1"),
        "{m}"
    );
    // No pass failed: the family has no series.
    assert!(
        !m.lines()
            .any(|l| l.starts_with("vedfolnir_autoscaler_pass_errors_total")),
        "{m}"
    );
}

/// A source down for hours is a `held` record when it begins, when what
/// fails changes, and hourly while it lasts, not one every pass.
#[tokio::test]
async fn a_hold_on_a_failure_is_recorded_when_it_begins_and_hourly_while_it_lasts() {
    let mut w = World::new(3, Behaviour::Obey);
    let failing = || -> Sources {
        Sources::new().with(Arc::new(FakeSource {
            cpu: Err("docker stats unreadable: web-1 gone".into()),
        }))
    };
    w.sources = failing();
    let policy = policy("[signals.cpu]\nsource = \"docker\"\nrequired = true\n");
    let start = w.clock.now_ms();
    let at = |w: &World, ms: i64| w.clock.set(start + ms);
    for k in 0..4 {
        at(&w, k * 15_000);
        pass(&w.cx(), &policy).await.unwrap();
    }
    assert_eq!(w.events(), [Event::Held]);
    let held = w.state().held.unwrap();
    assert_eq!((held.cause.as_str(), held.unrecorded), ("docker cpu", 3));
    at(&w, HELD_REPEAT_MS);
    pass(&w.cx(), &policy).await.unwrap();
    assert_eq!(w.events(), [Event::Held, Event::Held]);
    let records = w.audit.records("web").unwrap();
    let again = records[1].reasons.join("; ");
    assert!(
        again.contains("held on docker cpu for 1h (3 passes since the last record of it)"),
        "{again}"
    );
    // Over: nothing recorded, nothing kept; failing again is a new hold.
    w.sources = Sources::new().with(Arc::new(FakeSource { cpu: Ok(0.3) }));
    at(&w, HELD_REPEAT_MS + 15_000);
    pass(&w.cx(), &policy).await.unwrap();
    assert_eq!((w.events().len(), w.state().held), (2, None));
    w.sources = failing();
    at(&w, HELD_REPEAT_MS + 30_000);
    pass(&w.cx(), &policy).await.unwrap();
    assert_eq!(w.events().len(), 3);
}

#[tokio::test]
async fn a_manual_request_is_clamped_by_the_guard_rule_and_audited_with_it() {
    let w = World::new(3, Behaviour::Obey);
    let policy = policy("");
    let request = Request {
        actor: Actor::Api,
        wanted: Wanted::To(9),
        reason: Some("load test".into()),
        request: None,
    };
    let outcome = manual::scale(&w.cx(), &policy.file, request).await.unwrap();
    let manual::Outcome::Scaled { report, notes, .. } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!((report.reached, w.actuator.running()), (5, 5));
    assert!(notes[0].contains("clamped to 5"), "{notes:?}");
    let records = w.audit.records("web").unwrap();
    let started = &records[0];
    assert_eq!(started.guard[0].rule, Rule::ClampedToMax);
    assert_eq!(
        (started.guard[0].from, started.guard[0].to),
        (Some(9), Some(5))
    );
    assert_eq!(started.reasons[..2], ["api up to 5", "load test"]);
    assert!(w.state().last_scale_up.is_some());
}

#[tokio::test]
async fn a_manual_request_in_a_dry_run_changes_nothing_but_its_clocks() {
    let mut w = World::new(3, Behaviour::Obey);
    w.dry_run = true;
    let request = Request {
        actor: Actor::Manual,
        wanted: Wanted::Down(None),
        reason: None,
        request: None,
    };
    let outcome = manual::scale(&w.cx(), &policy("").file, request)
        .await
        .unwrap();
    assert!(
        matches!(outcome, manual::Outcome::WouldScale { .. }),
        "{outcome:?}"
    );
    assert_eq!(w.actuator.running(), 3);
    assert_eq!(w.events(), [Event::WouldScale]);
    let s = w.state();
    assert_eq!(s.last_scale_down, None);
    assert!(s.dry_run.last_scale_down.is_some());
}

#[tokio::test]
async fn a_manual_request_the_wrong_way_is_refused() {
    let w = World::new(3, Behaviour::Obey);
    let request = Request {
        actor: Actor::Manual,
        wanted: Wanted::Up(Some(2)),
        reason: None,
        request: None,
    };
    let e = manual::scale(&w.cx(), &policy("").file, request)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("use scale-down"), "{e}");
    assert!(w.events().is_empty());
}

#[tokio::test]
async fn an_evaluation_does_not_hold_the_async_worker() {
    // On a one-thread runtime, another task runs while the evaluation
    // does only if the evaluation is off that thread. The policy spins to
    // its 50 ms deadline, so the evaluation is still running when it is
    // first awaited (a builtin one can be done by then, and the runtime
    // never yields: the test raced).
    let w = World::new(3, Behaviour::Obey);
    let spinning = vedfolnir_plugin_artifacts::fixture("loop-forever");
    let file = PolicyFile::parse(
        Path::new("web.toml"),
        &format!("service = \"web\"\nplugin = {spinning:?}\n"),
        &Default::default(),
    )
    .unwrap();
    let sandbox = vedfolnir_sandbox::Sandbox::new(Default::default()).unwrap();
    let plugin = sandbox.load_file(Path::new(spinning)).unwrap();
    let policy = Arc::new(ReadyPolicy::with_plugin(file, Arc::new(plugin)).unwrap());
    let ticks = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let t = ticks.clone();
    let ticker = tokio::spawn(async move {
        loop {
            t.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::task::yield_now().await;
        }
    });
    let input = input_for(
        &policy,
        &GuardState::default(),
        &Observed {
            replicas: vec![],
            running: 3,
            ready: 3,
            marks: None,
        },
        vec![],
        w.clock.now_ms(),
    );
    let before = ticks.load(std::sync::atomic::Ordering::SeqCst);
    evaluate(Evaluate::OffThread, &policy, input).await.unwrap();
    ticker.abort();
    assert!(ticks.load(std::sync::atomic::Ordering::SeqCst) > before);
}

#[tokio::test]
async fn an_unwritable_audit_log_stops_a_scale_before_the_engine_is_touched() {
    let w = World::new(1, Behaviour::Obey);
    std::fs::create_dir(w.audit.path()).unwrap();
    let e = pass(&w.cx(), &policy("")).await.unwrap_err();
    assert_eq!(e.stage(), Stage::Audit, "{e}");
    assert!(e.to_string().contains("cannot open the audit log"), "{e}");
    assert!(w.actuator.scales.lock().unwrap().is_empty());
    assert_eq!(w.actuator.running(), 1);
    // Counted by what failed, as the daemon's loop does.
    w.telemetry.emit(telemetry::Event::PassFailed {
        service: "web",
        stage: e.stage(),
        error: &e.to_string(),
    });
    let m = w.metrics.encode();
    assert!(
        m.contains("pass_errors_total{service=\"web\",stage=\"audit\"} 1"),
        "{m}"
    );
}

#[tokio::test]
async fn an_engine_that_cannot_list_the_target_fails_the_pass_at_the_engine() {
    /// An engine that is not there.
    struct Gone;
    impl Actuator for Gone {
        fn describe(&self) -> String {
            "gone".into()
        }
        fn status(&self) -> BoxFuture<'_, Result<Observed, EngineError>> {
            Box::pin(async { Err(EngineError::not_found("no such service")) })
        }
        fn scale<'a>(
            &'a self,
            _: &'a ScalePlan,
            _: &'a str,
        ) -> BoxFuture<'a, Result<ScaleReport, EngineError>> {
            Box::pin(async { Err(EngineError::not_found("no such service")) })
        }
    }
    let w = World::new(1, Behaviour::Obey);
    let cx = Context {
        actuator: &Gone,
        ..w.cx()
    };
    let e = pass(&cx, &policy("")).await.unwrap_err();
    assert_eq!(e.stage(), Stage::Engine);
    assert!(w.events().is_empty());
}

/// A judged input whose decision goes `from` -> `to`, the policy failed
/// or not.
fn judged(from: u32, to: u32, failed: bool) -> Judged {
    use vedfolnir_core::guard::{Decision, FailureKind, PolicyFailure};
    let input = input_for(
        &policy(""),
        &GuardState::default(),
        &Observed {
            replicas: vec![],
            running: from,
            ready: from,
            marks: None,
        },
        vec![],
        0,
    );
    Judged {
        input,
        evaluation: Evaluation {
            recommendation: None,
            failure: failed.then(|| PolicyFailure {
                kind: FailureKind::Trap,
                message: "unreachable".into(),
            }),
            decision: Decision {
                current: from,
                recommended: None,
                target: to,
                direction: Direction::between(from, to),
                reasons: vec![],
            },
        },
        shadow: None,
        elapsed: Duration::ZERO,
    }
}

#[test]
fn the_plan_acts_announces_or_stays_quiet() {
    let state = ServiceState::default();
    let quiet = Collected::default();
    let troubled = Collected {
        errors: vec!["web-1: stats unreadable".into()],
        ..Default::default()
    };
    // As a pass plans: what a hold would be on, then the plan.
    let decide = |dry_run: bool, j: Judged, state: &ServiceState, collected: &Collected| {
        let held = held_cause(&j, collected);
        plan(dry_run, &j, state, held.as_deref(), 0)
    };
    // Live: a scale acts; a hold is quiet unless something failed.
    assert_eq!(
        decide(false, judged(2, 3, false), &state, &quiet),
        Plan::Act
    );
    assert_eq!(
        decide(false, judged(2, 2, false), &state, &quiet),
        Plan::Quiet
    );
    assert_eq!(
        decide(false, judged(2, 2, true), &state, &quiet),
        Plan::Announce(Event::Held)
    );
    assert_eq!(
        decide(false, judged(2, 2, false), &state, &troubled),
        Plan::Announce(Event::Held)
    );
    // A dry run announces a would-scale, once while it repeats.
    assert_eq!(
        decide(true, judged(2, 3, false), &state, &quiet),
        Plan::Announce(Event::WouldScale)
    );
    let announced = ServiceState {
        last_decision: Some(LastDecision {
            time_ms: 0,
            direction: Direction::Up,
            from: 2,
            to: 3,
            actor: Actor::Auto,
            dry_run: true,
            summary: String::new(),
        }),
        ..Default::default()
    };
    assert_eq!(
        decide(true, judged(2, 3, false), &announced, &quiet),
        Plan::Quiet
    );
    assert_eq!(
        decide(true, judged(2, 4, false), &announced, &quiet),
        Plan::Announce(Event::WouldScale),
        "another would-scale is announced"
    );
}

// Each decision path of a pass, through the scripted policy.

#[tokio::test]
async fn path_a_recommended_scale_up_is_acted_on_audited_and_starts_its_cooldown() {
    let w = World::new(3, Behaviour::Obey);
    let (policy, code) = scripted("");
    code.wants(4);
    let p = pass(&w.cx(), &policy).await.unwrap();
    assert_eq!(p.report.unwrap().outcome, Outcome::Succeeded);
    assert_eq!(w.actuator.running(), 4);
    assert_eq!(w.events(), [Event::ScaleStarted, Event::ScaleFinished]);
    let started = &w.audit.records("web").unwrap()[0];
    assert!(
        started.reasons.iter().any(|r| r.contains("told to want 4")),
        "{:?}",
        started.reasons
    );
    assert_eq!(w.state().last_scale_up, Some(w.clock.now_ms()));
}

#[tokio::test]
async fn path_a_recommended_scale_down_is_acted_on_and_starts_the_scale_down_cooldown() {
    let w = World::new(4, Behaviour::Obey);
    let (policy, code) = scripted("");
    code.wants(3);
    pass(&w.cx(), &policy).await.unwrap();
    assert_eq!(*w.actuator.scales.lock().unwrap(), [3]);
    let s = w.state();
    assert_eq!((s.last_scale_down.is_some(), s.last_scale_up), (true, None));
}

#[tokio::test]
async fn path_a_recommended_hold_is_quiet() {
    let w = World::new(3, Behaviour::Obey);
    let (policy, code) = scripted("");
    code.wants(3);
    let p = pass(&w.cx(), &policy).await.unwrap();
    assert!(p.report.is_none());
    assert_eq!(p.evaluation.decision.reasons[0].rule, Rule::PolicyHold);
    assert!(w.events().is_empty(), "{:?}", w.events());
    assert!(w.actuator.scales.lock().unwrap().is_empty());
    assert_eq!(w.state().last_decision.unwrap().direction, Direction::Hold);
}

#[tokio::test]
async fn path_the_guard_stage_limits_the_step_and_clamps_to_the_maximum() {
    let w = World::new(2, Behaviour::Obey);
    let (policy, code) = scripted("");
    code.wants(9);
    let p = pass(&w.cx(), &policy).await.unwrap();
    // 9 clamped to the maximum 5, then the step to 2 a scale-up.
    let rules: Vec<Rule> = p
        .evaluation
        .decision
        .reasons
        .iter()
        .map(|r| r.rule)
        .collect();
    assert_eq!(rules, [Rule::ClampedToMax, Rule::StepLimited]);
    assert_eq!(w.actuator.running(), 4);
    let started = &w.audit.records("web").unwrap()[0];
    assert_eq!(started.guard.len(), 2, "the audit keeps the interventions");
}

#[tokio::test]
async fn path_a_scale_up_in_its_cooldown_is_held_by_the_guard_stage() {
    let w = World::new(3, Behaviour::Obey);
    let (policy, code) = scripted("");
    code.wants(4);
    pass(&w.cx(), &policy).await.unwrap();
    code.wants(5);
    w.clock.set(w.clock.now_ms() + 60_000);
    let p = pass(&w.cx(), &policy).await.unwrap();
    assert!(p.report.is_none());
    let last = p.evaluation.decision.reasons.last().unwrap();
    assert_eq!(last.rule, Rule::CooldownUp);
    assert!(last.message.contains("4m left"), "{}", last.message);
    assert_eq!(*w.actuator.scales.lock().unwrap(), [4]);
    // Past the cooldown, it scales.
    w.clock.set(w.clock.now_ms() + 5 * 60_000);
    pass(&w.cx(), &policy).await.unwrap();
    assert_eq!(*w.actuator.scales.lock().unwrap(), [4, 5]);
}

#[tokio::test]
async fn path_a_failing_policy_holds_recorded_when_it_begins_and_again_after_the_repeat() {
    let w = World::new(3, Behaviour::Obey);
    let (policy, code) = scripted("");
    code.fails(vedfolnir_core::guard::FailureKind::Trap);
    let p = pass(&w.cx(), &policy).await.unwrap();
    assert_eq!(p.evaluation.decision.reasons[0].rule, Rule::PolicyFailed);
    assert_eq!(w.events(), [Event::Held]);
    // The same cause on the next passes: not recorded again...
    for _ in 0..3 {
        w.clock.set(w.clock.now_ms() + 15_000);
        pass(&w.cx(), &policy).await.unwrap();
    }
    assert_eq!(w.events(), [Event::Held]);
    // ...until the repeat, which says for how long and how many passes.
    w.clock.set(w.clock.now_ms() + HELD_REPEAT_MS);
    pass(&w.cx(), &policy).await.unwrap();
    assert_eq!(w.events(), [Event::Held, Event::Held]);
    let again = w.audit.records("web").unwrap().pop().unwrap();
    assert!(
        again
            .reasons
            .iter()
            .any(|r| r.contains("held on policy trap") && r.contains("3 passes")),
        "{:?}",
        again.reasons
    );
    // Another cause is recorded at once.
    code.fails(vedfolnir_core::guard::FailureKind::Timeout);
    w.clock.set(w.clock.now_ms() + 15_000);
    pass(&w.cx(), &policy).await.unwrap();
    assert_eq!(w.events().len(), 3);
    assert!(w.actuator.scales.lock().unwrap().is_empty());
}

#[tokio::test]
async fn path_a_dry_run_announces_a_would_scale_once_and_touches_nothing() {
    let mut w = World::new(3, Behaviour::Obey);
    w.dry_run = true;
    let (policy, code) = scripted("");
    code.wants(4);
    pass(&w.cx(), &policy).await.unwrap();
    w.clock.set(w.clock.now_ms() + 15_000);
    pass(&w.cx(), &policy).await.unwrap();
    assert_eq!(w.events(), [Event::WouldScale], "announced once");
    assert!(w.actuator.scales.lock().unwrap().is_empty());
    let s = w.state();
    assert_eq!(s.last_scale_up, None, "production clocks untouched");
    assert!(s.last_decision.unwrap().dry_run);
}

#[tokio::test]
async fn path_a_standby_evaluates_but_records_and_changes_nothing() {
    let w = World::new(3, Behaviour::Obey);
    let (policy, code) = scripted("");
    code.wants(5);
    let cx = Context {
        standby: Some("daemon b leads"),
        ..w.cx()
    };
    let p = pass(&cx, &policy).await.unwrap();
    assert_eq!(*code.calls.lock().unwrap(), 1, "it evaluated");
    assert!(p.evaluation.decision.is_scale(), "and would scale");
    assert!(p.report.is_none());
    assert!(w.events().is_empty());
    assert!(w.actuator.scales.lock().unwrap().is_empty());
}

#[tokio::test]
async fn path_a_paused_service_holds_whatever_the_policy_says() {
    let w = World::new(3, Behaviour::Obey);
    let mut s = w.state();
    s.paused = true;
    w.state.save("web", &s).unwrap();
    let (policy, code) = scripted("");
    code.wants(5);
    let p = pass(&w.cx(), &policy).await.unwrap();
    assert_eq!(p.evaluation.decision.reasons[0].rule, Rule::Paused);
    assert!(p.report.is_none());
    assert!(w.actuator.scales.lock().unwrap().is_empty());
}

#[tokio::test]
async fn path_a_shadow_divergence_is_audited_when_it_starts_or_changes_by_any_pass() {
    let w = World::new(3, Behaviour::Obey);
    let (live, code) = scripted("");
    let shadow = Scripted::new();
    let mut policy = (*live).clone();
    policy.shadow = Some(crate::policy::Shadow {
        plugin: shadow.clone(),
        params: vec![],
        required: vec![],
        visible: vec![],
    });
    let policy = Arc::new(policy);
    let diverged = |w: &World| {
        w.events()
            .iter()
            .filter(|e| **e == Event::ShadowDiverged)
            .count()
    };
    // Both hold: nothing.
    code.wants(3);
    shadow.wants(3);
    assert!(!pass(&w.cx(), &policy).await.unwrap().diverged());
    assert_eq!(diverged(&w), 0);
    // The shadow would scale up: recorded once while it lasts.
    shadow.wants(4);
    for _ in 0..3 {
        w.clock.set(w.clock.now_ms() + 15_000);
        assert!(pass(&w.cx(), &policy).await.unwrap().diverged());
    }
    assert_eq!(diverged(&w), 1);
    let record = w
        .audit
        .records("web")
        .unwrap()
        .into_iter()
        .find(|r| r.event == Event::ShadowDiverged)
        .unwrap();
    assert_eq!((record.from, record.to), (3, 4));
    assert!(
        record.reasons[0].contains("decides hold to 3"),
        "{:?}",
        record.reasons
    );
    // It changes: recorded again; they agree: over, and a new one is new.
    shadow.wants(5);
    pass(&w.cx(), &policy).await.unwrap();
    assert_eq!(diverged(&w), 2);
    shadow.wants(3);
    pass(&w.cx(), &policy).await.unwrap();
    assert_eq!(w.state().diverging, None);
    shadow.wants(5);
    pass(&w.cx(), &policy).await.unwrap();
    assert_eq!(diverged(&w), 3);
    assert!(
        w.actuator.scales.lock().unwrap().is_empty(),
        "a shadow never acts"
    );
}
