//! The internals the benches in `tests/bench_*.rs` time directly (see
//! BENCHMARKS.md), where the whole binary would measure something else.

use std::io::Write as _;
use std::path::Path;

use vedfolnir_core::model::Direction;

use crate::actuators::{ScalePlan, ScaleReport};
use crate::audit::{Actor, AuditLog, AuditRecord, Event};

/// Write an `audit.jsonl` of about `bytes` into `dir` for `service`, as a
/// long-lived daemon leaves it: pairs of `scale-started` and
/// `scale-finished` records with the policy's reasons and inputs (about
/// 2 kB each), a `held` record after each pair, every tenth triple another
/// service's, and one scale left interrupted at the end. Returns the
/// records written.
pub fn write_audit_log(dir: &Path, service: &str, bytes: u64) -> usize {
    let path = AuditLog::in_dir(dir).path().to_path_buf();
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).expect("create the log"));
    let reasons: Vec<String> = (0..12)
        .map(|i| format!("cpu-tracking {i}: cpu 0.712 against target 0.600 per replica (x1.19); mean demand 5.93 replicas over 2m, sized for 6.41"))
        .collect();
    let inputs: std::collections::BTreeMap<String, serde_json::Value> = [
        "cpu",
        "memory",
        "queue-depth",
        "response-time-p95",
        "error-rate",
        "instance-count",
    ]
    .iter()
    .map(|s| {
        (
            (*s).to_string(),
            serde_json::json!({ "value": 0.4321, "age_ms": 1500, "samples": 240 }),
        )
    })
    .collect();
    let (mut written, mut n) = (0u64, 0usize);
    while written < bytes {
        let at = 1_700_000_000_000 + n as i64 * 60_000;
        let who = if (n / 3) % 10 == 9 { "other" } else { service };
        let event = match n % 3 {
            0 => Event::ScaleStarted,
            1 => Event::ScaleFinished,
            _ => Event::Held,
        };
        let mut r = AuditRecord {
            direction: if n % 6 < 3 {
                Direction::Up
            } else {
                Direction::Down
            },
            from: 4,
            to: 5,
            reasons: reasons.clone(),
            inputs: inputs.clone(),
            ..AuditRecord::new(who, event, Actor::Auto, at)
        };
        // A finish closes the start written just before it.
        r.action_id = format!("{who}-{}", n - n % 3);
        match event {
            Event::ScaleStarted => r.plan = Some(ScalePlan::counts(4, 5)),
            Event::ScaleFinished => r.report = Some(ScaleReport::new(4, 5)),
            _ => {}
        }
        let mut line = serde_json::to_vec(&r).expect("records serialize");
        line.push(b'\n');
        out.write_all(&line).expect("write the log");
        written += line.len() as u64;
        n += 1;
    }
    let open = AuditRecord {
        direction: Direction::Up,
        plan: Some(ScalePlan::counts(4, 6)),
        ..AuditRecord::new(service, Event::ScaleStarted, Actor::Auto, 1_800_000_000_000)
    };
    let mut line = serde_json::to_vec(&open).expect("records serialize");
    line.push(b'\n');
    out.write_all(&line).expect("write the log");
    out.flush().expect("write the log");
    n + 1
}

/// What starting read of the log before [`crate::audit::Summary`]: every
/// record of `service`, parsed whole. Returns how many.
pub fn read_audit_records(dir: &Path, service: &str) -> usize {
    AuditLog::in_dir(dir)
        .records(service)
        .expect("read the log")
        .len()
}

/// What starting reads of the log now (reconciliation, `report`).
/// Returns how many scales it finds interrupted.
pub fn read_audit_summary(dir: &Path, service: &str) -> usize {
    AuditLog::in_dir(dir)
        .summary(service)
        .expect("read the log")
        .interrupted
        .len()
}

/// What [`prometheus_fleet`] saw over its window.
#[derive(Debug, Default, Clone)]
pub struct FleetFigures {
    /// Services served.
    pub services: usize,
    /// Passes due in the window: services x window / interval.
    pub due: u64,
    /// Passes that finished in the window.
    pub done: u64,
    /// Of those, passes that started late.
    pub late: u64,
    /// Passes that failed.
    pub failed: u64,
    /// Passes whose live policy saw a signal missing.
    pub missing: u64,
    /// Each pass's wall time, ms.
    pub pass_ms: Vec<f64>,
    /// How long loading the policy files took.
    pub load: std::time::Duration,
}

/// When the fleet's passes run and are counted.
#[derive(Debug, Clone, Copy)]
pub struct FleetTimes {
    /// Between two passes of a service.
    pub interval: std::time::Duration,
    /// Run, uncounted, before the window.
    pub warmup: std::time::Duration,
    /// The passes counted.
    pub window: std::time::Duration,
}

/// An actuator of a fixed replica count that never scales: the engine is
/// not what the Prometheus fleet measures.
#[derive(Debug)]
struct Fixed(u32);

impl crate::actuators::Actuator for Fixed {
    fn describe(&self) -> String {
        format!("{} replicas in memory", self.0)
    }

    fn status(
        &self,
    ) -> futures_util::future::BoxFuture<
        '_,
        Result<crate::actuators::Observed, crate::engine::EngineError>,
    > {
        Box::pin(async move {
            Ok(crate::actuators::Observed {
                replicas: Vec::new(),
                running: self.0,
                ready: self.0,
                marks: None,
            })
        })
    }

    fn scale<'a>(
        &'a self,
        _: &'a ScalePlan,
        _: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<ScaleReport, crate::engine::EngineError>> {
        Box::pin(async { Err(crate::engine::EngineError::api("the fleet bench runs dry")) })
    }
}

/// Serve `policies` as the daemon's loops do, with the `prometheus` source
/// at `prometheus_url` and an in-memory actuator: policy files loaded on
/// every core, then one loop per service on a two-worker runtime, each a
/// `controller::pass` every `interval` (the real sources, sandbox, guard
/// rails, a state directory and an audit log in `dir`, counting
/// telemetry, a dry run). Counts the passes of the `window` after `warmup`;
/// `edge` is called as the window opens (`false`) and closes (`true`).
pub fn prometheus_fleet(
    policies: &[std::path::PathBuf],
    prometheus_url: &str,
    dir: &Path,
    FleetTimes {
        interval,
        warmup,
        window,
    }: FleetTimes,
    edge: std::sync::Arc<dyn Fn(bool) + Send + Sync>,
) -> FleetFigures {
    let sandbox = vedfolnir_sandbox::Sandbox::new(vedfolnir_sandbox::SandboxConfig::default())
        .expect("the default sandbox");
    let overrides = crate::config::Overrides::default();
    let watch = crate::clock::Stopwatch::start();
    let loaded: Vec<std::sync::Arc<crate::policy::ReadyPolicy>> =
        crate::daemon::load_all(&sandbox, policies, &overrides)
            .into_iter()
            .map(|(f, _, _, r)| {
                std::sync::Arc::new(r.unwrap_or_else(|e| panic!("{}: {e}", f.display())))
            })
            .collect();
    let load = watch.elapsed();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let times = FleetTimes {
        interval,
        warmup,
        window,
    };
    let mut figures = rt.block_on(fleet_loops(loaded, prometheus_url, dir, times, edge));
    figures.load = load;
    figures
}

/// What every loop of the fleet shares: its sources, state, audit log and
/// telemetry.
type FleetShared = (
    crate::sources::Sources,
    crate::state::StateDir,
    AuditLog,
    crate::telemetry::Telemetry,
);

/// One service's loop: a pass every interval from `start`, counted when it
/// was due within `window`.
async fn fleet_loop(
    policy: std::sync::Arc<crate::policy::ReadyPolicy>,
    shared: std::sync::Arc<FleetShared>,
    tally: std::sync::Arc<std::sync::Mutex<FleetFigures>>,
    start: tokio::time::Instant,
    (from, to): (tokio::time::Instant, tokio::time::Instant),
    interval: std::time::Duration,
) {
    let mut ticker = tokio::time::interval_at(start, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let due = ticker.tick().await;
        if due >= to {
            break;
        }
        let late = crate::controller::is_late(due.elapsed(), interval);
        let (sources, state, audit, telemetry) = &*shared;
        let cx = crate::controller::Context {
            actuator: &Fixed(2),
            sources,
            audit,
            state,
            clock: &crate::clock::SystemClock,
            telemetry,
            dry_run: true,
            evaluate: crate::controller::Evaluate::OffThread,
            late,
            standby: None,
        };
        let watch = crate::clock::Stopwatch::start();
        let pass = crate::controller::pass(&cx, &policy).await;
        if due < from {
            continue;
        }
        let mut t = tally.lock().expect("tally lock");
        t.pass_ms.push(watch.elapsed().as_secs_f64() * 1000.0);
        t.late += u64::from(late);
        match pass {
            Ok(p) => {
                t.done += 1;
                let missing = p.input.signals.iter().any(|w| w.missing_reason.is_some());
                t.missing += u64::from(missing);
            }
            Err(_) => t.failed += 1,
        }
    }
}

/// The loops of [`prometheus_fleet`], and their tally.
async fn fleet_loops(
    policies: Vec<std::sync::Arc<crate::policy::ReadyPolicy>>,
    prometheus_url: &str,
    dir: &Path,
    FleetTimes {
        interval,
        warmup,
        window,
    }: FleetTimes,
    edge: std::sync::Arc<dyn Fn(bool) + Send + Sync>,
) -> FleetFigures {
    use std::sync::{Arc, Mutex};
    let shared: Arc<FleetShared> = Arc::new((
        crate::sources::Sources::new().with(Arc::new(crate::sources::prometheus::Prometheus::new(
            prometheus_url,
            std::time::Duration::from_secs(5),
        ))),
        crate::state::StateDir::open(dir).expect("a state directory"),
        AuditLog::in_dir(dir),
        crate::telemetry::Telemetry::counting(Arc::new(crate::telemetry::metrics::Metrics::new())),
    ));
    let tally = Arc::new(Mutex::new(FleetFigures {
        services: policies.len(),
        due: policies.len() as u64 * (window.as_secs() / interval.as_secs().max(1)),
        ..FleetFigures::default()
    }));
    let start = tokio::time::Instant::now();
    let (from, to) = (start + warmup, start + warmup + window);
    let edges = tokio::spawn(async move {
        for (at, closing) in [(from, false), (to, true)] {
            tokio::time::sleep_until(at).await;
            let edge = edge.clone();
            let _ = tokio::task::spawn_blocking(move || edge(closing)).await;
        }
    });
    let loops: Vec<_> = policies
        .into_iter()
        .map(|policy| {
            let (shared, tally) = (shared.clone(), tally.clone());
            tokio::spawn(fleet_loop(
                policy,
                shared,
                tally,
                start,
                (from, to),
                interval,
            ))
        })
        .collect();
    for l in loops {
        let _ = l.await;
    }
    let _ = edges.await;
    tally.lock().expect("tally lock").clone()
}
