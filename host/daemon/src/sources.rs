//! Where a metric enters: the sources a pass reads its signals from, each
//! behind [`MetricSource`].
//!
//! - [`docker`]: CPU, memory and CPU throttling against each replica's own
//!   limits, the running count, memory pressure, OOM kills (each replica's
//!   [`cgroup`] files, else the engine's stats and inspect; its events);
//! - [`prometheus`]: a PromQL expression per signal, read as a whole window;
//! - [`alertmanager`]: firing `scaling_action` alerts from the daemon's
//!   webhook.
//!
//! A source answers with [`Reading`]s: a value now (kept in the service's
//! sample history and windowed from there, so a window spans passes and
//! cron runs) or a whole window read at once. A signal a source cannot
//! read is missing with the reason, never 0. [`read`] routes each signal
//! of a policy to its source; [`Read::window`] assembles the windows the
//! policy sees.

pub mod alertmanager;
pub mod cgroup;
pub mod docker;
pub mod prometheus;
pub mod scrape;

use std::sync::Arc;

use futures_util::future::BoxFuture;
use vedfolnir_core::model::{SLO_VIOLATION, SignalId, SignalWindow, TimestampMs};

use crate::actuators::Observed;
use crate::config::{PolicyFile, SignalSource, SloSpec, Source, SourceKind};
use vedfolnir_core::history::History;

/// One signal as a source read it.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// A value now, or why there is none: kept in the sample history.
    Now(SignalId, Result<f64, String>),
    /// A whole window, read at once (a range query).
    Window(SignalWindow),
    /// A counter's rate over the replicas' last two scrapes (the signal's
    /// own value is its rate over the horizon): kept in the sample history
    /// as `<signal>@recent` for the minute record, whose minutes must each
    /// be their own load, never shown to a policy.
    Recent(SignalId, f64),
}

/// The suffix of a signal's [`Reading::Recent`] series in the sample
/// history and the minute record.
pub const RECENT_SUFFIX: &str = "@recent";

/// What a source is asked at one pass.
#[derive(Debug)]
pub struct Ask<'a> {
    /// The service.
    pub service: &'a str,
    /// The signals routed to this source, as the policy file configures
    /// them (the docker source also serves the signals no file routes).
    pub signals: Vec<&'a SignalSource>,
    /// The target's replicas, as the actuator saw them at this pass.
    pub observed: &'a Observed,
    /// The pass's time.
    pub now: TimestampMs,
    /// How much history the policy needs, ms.
    pub span_ms: u64,
}

/// What a source answered.
#[derive(Debug, Default)]
pub struct SourceReport {
    /// The signals it read (or why not).
    pub readings: Vec<Reading>,
    /// Problems worth an operator's eye (one replica's stats unreadable).
    pub errors: Vec<String>,
    /// The engine's view of the replicas (the docker source), shown by
    /// `check` and `report`.
    pub usage: Option<docker::ServiceUsage>,
}

/// A source of signals.
pub trait MetricSource: Send + Sync {
    /// Which kind it is (the `source` key of a policy file).
    fn kind(&self) -> SourceKind;
    /// The signals it provides unless a policy file routes them elsewhere.
    fn serves(&self) -> Vec<SignalId> {
        Vec::new()
    }
    /// Read the signals asked for.
    fn read<'a>(&'a self, ask: &'a Ask<'a>) -> BoxFuture<'a, SourceReport>;
}

/// The sources a service's passes read from.
#[derive(Clone, Default)]
pub struct Sources {
    list: Vec<Arc<dyn MetricSource>>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.list.iter().map(|s| s.kind()))
            .finish()
    }
}

impl Sources {
    /// No source at all.
    pub fn new() -> Sources {
        Sources::default()
    }

    /// These sources and `source` (replacing one of the same kind).
    pub fn with(mut self, source: Arc<dyn MetricSource>) -> Sources {
        self.list.retain(|s| s.kind() != source.kind());
        self.list.push(source);
        self
    }

    fn get(&self, kind: SourceKind) -> Option<&Arc<dyn MetricSource>> {
        self.list.iter().find(|s| s.kind() == kind)
    }
}

/// The signals of one pass, and what the sources said beside them.
#[derive(Debug, Default)]
pub struct Collected {
    /// One window per signal, in the order the sources were asked.
    pub windows: Vec<SignalWindow>,
    /// Problems the sources reported.
    pub errors: Vec<String>,
    /// The docker source's readings, when it ran.
    pub usage: Option<docker::ServiceUsage>,
    /// Sources that failed a signal this pass, with the signal.
    pub failed: Vec<(SourceKind, SignalId)>,
}

/// Why a signal is missing when its source is not configured here.
fn unconfigured(s: &SignalSource) -> String {
    match &s.source {
        Source::Docker => "the docker source is not configured".into(),
        Source::Prometheus { query } => format!(
            "prometheus source ({query}): no Prometheus configured (PROMETHEUS_URL or --prometheus-url)"
        ),
        Source::Alertmanager => {
            "alertmanager source needs the daemon's webhook (run), not a one-shot pass".into()
        }
        Source::Scrape(s) => format!("scrape source ({}): not configured", s.metric),
        Source::Model => "no model of the service (a replay's source)".into(),
    }
}

/// Which source each signal comes from: what each source serves unless
/// the file routes it elsewhere, then every signal the file routes.
fn routes(file: &PolicyFile, sources: &Sources) -> Vec<SignalSource> {
    let mut out: Vec<SignalSource> = Vec::new();
    for source in &sources.list {
        let config = match source.kind() {
            SourceKind::Model => Source::Model,
            _ => Source::Docker,
        };
        for signal in source.serves() {
            let taken = file.signals.iter().any(|r| r.signal == signal)
                || out.iter().any(|r| r.signal == signal);
            if !taken {
                out.push(SignalSource {
                    signal,
                    source: config.clone(),
                    required: None,
                });
            }
        }
    }
    out.extend(file.signals.iter().cloned());
    out
}

/// What the sources answered, before the values read now are windowed.
#[derive(Debug)]
pub struct Read {
    collected: Collected,
    /// The values read now.
    fresh: Vec<(SignalId, f64)>,
    /// The signals read now (or not), in the order read, with why not.
    pending: Vec<(SignalId, Option<String>)>,
    /// The recent rates ([`Reading::Recent`]), by their history names.
    recent: Vec<(SignalId, f64)>,
}

impl Read {
    /// With an `[slo]`: `slo-violation` (1 violated, 0 met) from the p95
    /// and error rate this pass read, as a value read now; missing, with
    /// why, when it read neither.
    fn derive_slo(&mut self, slo: &SloSpec) {
        let now = |signal: &SignalId| {
            self.fresh
                .iter()
                .find(|(s, _)| s == signal)
                .map(|(_, v)| *v)
                .filter(|v| v.is_finite())
                .or_else(|| {
                    self.collected
                        .windows
                        .iter()
                        .find(|w| &w.signal == signal)
                        .and_then(|w| w.current().ok())
                })
        };
        let violated = slo.violated(now(&SignalId::ResponseTimeP95), now(&SignalId::ErrorRate));
        let signal = SignalId::Custom(SLO_VIOLATION.into());
        match violated {
            Some(v) => {
                self.fresh.push((signal.clone(), if v { 1.0 } else { 0.0 }));
                self.pending.push((signal, None));
            }
            None => self.pending.push((
                signal,
                Some("the SLO cannot be judged: neither response-time-p95 nor error-rate was read this pass".into()),
            )),
        }
    }

    /// Whether any signal was read as a value now: its window comes from
    /// the sample history.
    pub fn needs_history(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The windows as read, when no value was read now.
    pub fn without_history(self) -> Collected {
        debug_assert!(self.pending.is_empty());
        self.collected
    }

    /// Keep the values read now in `history` (for `retention_ms`), and
    /// window them from it, first, in the order read.
    pub fn window(self, history: &mut History, now: TimestampMs, retention_ms: u64) -> Collected {
        let Read {
            mut collected,
            fresh,
            pending,
            recent,
        } = self;
        history.push(
            now,
            fresh.iter().chain(&recent).map(|(s, v)| (s, *v)),
            retention_ms,
        );
        let windowed: Vec<SignalWindow> = pending
            .into_iter()
            .filter(|(signal, _)| !collected.windows.iter().any(|w| &w.signal == signal))
            .map(|(signal, why)| SignalWindow {
                missing_reason: why,
                ..history.window(&signal)
            })
            .collect();
        collected.windows.splice(0..0, windowed);
        collected
    }
}

/// A source, and what it is asked.
type Asked<'a> = (&'a Arc<dyn MetricSource>, Ask<'a>);

/// A response body of at most `max` bytes, read chunk by chunk so a larger
/// one is refused before it is held: what a metric endpoint sends is
/// untrusted.
pub async fn body_within(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, BodyError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Read)? {
        if body.len() + chunk.len() > max {
            return Err(BodyError::TooLarge(max));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Why [`body_within`] gave up.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The connection failed or timed out mid-body.
    #[error("{0}")]
    Read(#[source] reqwest::Error),
    /// The body is larger than allowed.
    #[error("more than {0} bytes")]
    TooLarge(usize),
}

/// Ask every source for the signals routed to it.
pub async fn read(
    sources: &Sources,
    file: &PolicyFile,
    observed: &Observed,
    now: TimestampMs,
    span_ms: u64,
) -> Read {
    let routes = routes(file, sources);
    let mut out = Collected::default();
    let mut asks: Vec<Asked<'_>> = Vec::new();
    for kind in SourceKind::ALL {
        let signals: Vec<&SignalSource> =
            routes.iter().filter(|r| r.source.kind() == kind).collect();
        if signals.is_empty() {
            continue;
        }
        let Some(source) = sources.get(kind) else {
            for s in signals {
                out.failed.push((kind, s.signal.clone()));
                out.windows.push(SignalWindow {
                    signal: s.signal.clone(),
                    samples: vec![],
                    missing_reason: Some(unconfigured(s)),
                });
            }
            continue;
        };
        let ask = Ask {
            service: &file.service,
            signals,
            observed,
            now,
            span_ms,
        };
        asks.push((source, ask));
    }
    let reports =
        futures_util::future::join_all(asks.iter().map(|(source, ask)| source.read(ask))).await;
    let mut read = absorb(&asks, reports, out);
    if let Some(slo) = &file.slo {
        read.derive_slo(slo);
    }
    read
}

/// Take the sources' reports: windows as they are, the values read now
/// apart.
fn absorb(asks: &[Asked<'_>], reports: Vec<SourceReport>, mut out: Collected) -> Read {
    let mut fresh = Vec::new();
    let mut pending = Vec::new();
    let mut recent = Vec::new();
    for ((source, ask), report) in asks.iter().zip(reports) {
        out.errors.extend(report.errors);
        if report.usage.is_some() {
            out.usage = report.usage;
        }
        for reading in report.readings {
            match reading {
                Reading::Now(signal, Ok(v)) => {
                    fresh.push((signal.clone(), v));
                    pending.push((signal, None));
                }
                Reading::Now(signal, Err(why)) => {
                    out.failed.push((source.kind(), signal.clone()));
                    pending.push((signal, Some(why)));
                }
                Reading::Recent(signal, v) => recent.push((
                    SignalId::Custom(format!("{}{RECENT_SUFFIX}", signal.name())),
                    v,
                )),
                Reading::Window(w) => {
                    if let Some(reason) = &w.missing_reason {
                        tracing::warn!(service = %ask.service, signal = %w.signal, reason = %reason, "signal missing");
                        out.failed.push((source.kind(), w.signal.clone()));
                    }
                    out.windows.push(w);
                }
            }
        }
    }
    Read {
        collected: out,
        fresh,
        pending,
        recent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DOCKER_SIGNALS;
    use std::path::Path;

    /// A source that answers what it was built with.
    struct Fixed(SourceKind, Vec<Reading>);

    impl MetricSource for Fixed {
        fn kind(&self) -> SourceKind {
            self.0
        }
        fn serves(&self) -> Vec<SignalId> {
            DOCKER_SIGNALS.to_vec()
        }
        fn read<'a>(&'a self, _: &'a Ask<'a>) -> BoxFuture<'a, SourceReport> {
            Box::pin(async move {
                SourceReport {
                    readings: self.1.clone(),
                    ..Default::default()
                }
            })
        }
    }

    fn file(extra: &str) -> PolicyFile {
        let text = format!("service = \"web\"\nplugin = \"builtin:threshold-score\"\n{extra}");
        PolicyFile::parse(Path::new("web.toml"), &text, &Default::default()).unwrap()
    }

    #[tokio::test]
    async fn values_read_now_are_windowed_from_the_history_and_failures_named() {
        let docker = Fixed(
            SourceKind::Docker,
            vec![
                Reading::Now(SignalId::Cpu, Ok(0.5)),
                Reading::Now(SignalId::Memory, Err("stats unreadable".into())),
            ],
        );
        let sources = Sources::new().with(Arc::new(docker));
        let mut history = History::default();
        history.push(
            1_000,
            [(&SignalId::Cpu, 0.4), (&SignalId::Memory, 0.2)],
            60_000,
        );
        let got = read(&sources, &file(""), &Observed::default(), 2_000, 60_000)
            .await
            .window(&mut history, 2_000, 60_000);
        let cpu = got
            .windows
            .iter()
            .find(|w| w.signal == SignalId::Cpu)
            .unwrap();
        assert_eq!(cpu.samples.len(), 2);
        assert_eq!(cpu.missing_reason, None);
        let mem = got
            .windows
            .iter()
            .find(|w| w.signal == SignalId::Memory)
            .unwrap();
        assert_eq!(mem.missing_reason.as_deref(), Some("stats unreadable"));
        assert_eq!(got.failed, [(SourceKind::Docker, SignalId::Memory)]);
    }

    #[tokio::test]
    async fn a_signal_routed_to_a_source_not_configured_is_missing_never_zero() {
        let f = file("[signals.queue-depth]\nsource = \"prometheus\"\nquery = \"q\"\n");
        let got = read(&Sources::new(), &f, &Observed::default(), 1, 60_000)
            .await
            .without_history();
        let q = got
            .windows
            .iter()
            .find(|w| w.signal == SignalId::QueueDepth)
            .unwrap();
        assert!(q.samples.is_empty());
        assert!(
            q.missing_reason
                .as_deref()
                .unwrap()
                .contains("no Prometheus configured"),
            "{q:?}"
        );
        assert!(
            got.failed
                .contains(&(SourceKind::Prometheus, SignalId::QueueDepth))
        );
    }

    /// With `[slo]`, each pass derives `slo-violation` from the p95 and
    /// error rate it read: 1 past either bound, 0 within both, missing
    /// (never 0) when it read neither.
    #[tokio::test]
    async fn an_slo_table_derives_slo_violation_from_what_the_pass_read() {
        let f = file("[slo]\np95 = \"500ms\"\nerror_rate = 0.01\n");
        let pass = |readings: Vec<Reading>| {
            let f = f.clone();
            async move {
                let sources = Sources::new().with(Arc::new(Fixed(SourceKind::Docker, readings)));
                let mut history = History::default();
                let got = read(&sources, &f, &Observed::default(), 2_000, 60_000)
                    .await
                    .window(&mut history, 2_000, 60_000);
                got.windows
                    .into_iter()
                    .find(|w| w.signal.name() == SLO_VIOLATION)
                    .unwrap()
            }
        };
        let now = |p95: f64, errors: f64| {
            vec![
                Reading::Now(SignalId::ResponseTimeP95, Ok(p95)),
                Reading::Now(SignalId::ErrorRate, Ok(errors)),
            ]
        };
        let value = |w: &SignalWindow| w.samples.last().map(|s| s.value);
        assert_eq!(value(&pass(now(0.8, 0.0)).await), Some(1.0));
        assert_eq!(value(&pass(now(0.2, 0.05)).await), Some(1.0));
        assert_eq!(value(&pass(now(0.2, 0.0)).await), Some(0.0));
        // The p95 alone is judged when the error rate was not read.
        let p95_only = vec![
            Reading::Now(SignalId::ResponseTimeP95, Ok(0.7)),
            Reading::Now(SignalId::ErrorRate, Err("scrape failed".into())),
        ];
        assert_eq!(value(&pass(p95_only).await), Some(1.0));
        let neither = pass(vec![Reading::Now(SignalId::Cpu, Ok(0.5))]).await;
        assert!(neither.samples.is_empty(), "{neither:?}");
        assert!(
            neither
                .missing_reason
                .as_deref()
                .unwrap()
                .contains("cannot be judged"),
            "{neither:?}"
        );
    }

    #[test]
    fn a_bad_slo_table_is_refused_naming_each_key() {
        let problems = |extra: &str| {
            let text = format!("service = \"web\"\nplugin = \"builtin:cost-aware\"\n{extra}");
            match PolicyFile::parse(Path::new("web.toml"), &text, &Default::default()) {
                Ok(_) => String::new(),
                Err(e) => e.to_string(),
            }
        };
        let e = problems("[slo]\np95 = \"fast\"\nerror_rate = 2\nlatency = 1\n");
        assert!(e.contains("slo.p95"), "{e}");
        assert!(e.contains("slo.error_rate: 2 is not a fraction"), "{e}");
        assert!(e.contains("slo.latency"), "{e}");
        assert!(problems("[slo]\n").contains("give p95"));
        let both = problems(
            "[slo]\np95 = \"1s\"\n[signals.slo-violation]\nsource = \"prometheus\"\nquery = \"q\"\n",
        );
        assert!(
            both.contains("signals.slo-violation") && both.contains("not both"),
            "{both}"
        );
        assert_eq!(problems("[slo]\np95 = \"1s\"\n"), "");
    }
}
