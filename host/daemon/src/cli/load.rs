//! `load`: the seed's load test, as a bounded HTTP load generator. It
//! sends requests to the service through every ready replica (round-robin
//! over their published ports, as a proxy in front would, the list
//! refreshed every [`REFRESH`] so new replicas get their share and a
//! stopped one stops getting any; at the start it waits up to
//! [`READY_WAIT`] for one to be ready) or to one URL, at a fixed rate (open
//! loop: a slow service does not slow the arrivals) or with a fixed
//! number of requests in flight (closed loop), for a bounded time.
//!
//! Every request has a timeout, and the run ends at most one timeout after
//! its duration: a refused connection, a replica that dies mid-run or a
//! service that never answers are failures in the summary, never a hang.
//! Latencies go into an HDR histogram (`hdrhistogram`, the Rust port of
//! Gil Tene's HdrHistogram that wrk2 and Tokio's own benchmarks use): 3
//! significant digits from 1 µs to the timeout, in constant memory.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result};
use hdrhistogram::Histogram;

use super::InvalidInput;
use super::args::LoadArgs;
use crate::clock::Stopwatch;
use crate::config::{Overrides, PolicyFile, Source, Target};
use crate::engine::{self, Engine, EngineError, Readiness};

/// How often the list of ready replicas is read again.
pub const REFRESH: Duration = Duration::from_secs(2);

/// How long a run waits at its start for a ready replica (a service just
/// brought up, or one whose replicas the engine reports between states),
/// reading the list again every [`REFRESH`], before it refuses.
pub const READY_WAIT: Duration = Duration::from_secs(10);

/// The highest rate `load` sends at, requests per second.
pub const MAX_RATE: f64 = 5_000.0;

/// The most requests `load` keeps in flight (closed loop).
pub const MAX_CONCURRENCY: u32 = 512;

/// The longest run.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);

/// The longest timeout of one request.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// The most bytes of one answer read (the rest is not awaited).
const MAX_BODY: usize = 1 << 20;

/// How the requests arrive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// This many a second, whatever the answers (open loop).
    Rate(f64),
    /// This many in flight, each sent when one before it ends (closed loop).
    Concurrency(u32),
}

/// Where the requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The replica's name (or the URL's host and port).
    pub name: String,
    /// The URL requested.
    pub url: String,
}

/// What one run counted.
#[derive(Debug)]
pub struct Summary {
    /// Requests started.
    pub sent: u64,
    /// Answered 2xx or 3xx.
    pub served: u64,
    /// Answered otherwise, or not at all: by reason.
    pub failures: BTreeMap<String, u64>,
    /// Ticks when the in-flight limit was reached: not sent.
    pub skipped: u64,
    /// Latency of every answered request, µs.
    pub latency: Histogram<u64>,
    /// (sent, served, failed) per endpoint name.
    pub per_endpoint: BTreeMap<String, (u64, u64, u64)>,
    /// How long the run took, s.
    pub seconds: f64,
}

impl Summary {
    fn new(timeout: Duration) -> Summary {
        let high = (timeout.as_micros() as u64).max(2_000);
        Summary {
            sent: 0,
            served: 0,
            failures: BTreeMap::new(),
            skipped: 0,
            latency: Histogram::new_with_bounds(1, high, 3).expect("the bounds are valid"),
            per_endpoint: BTreeMap::new(),
            seconds: 0.0,
        }
    }

    /// Requests that failed, whatever the reason.
    pub fn failed(&self) -> u64 {
        self.failures.values().sum()
    }

    fn started(&mut self, endpoint: &str) {
        self.sent += 1;
        self.per_endpoint.entry(endpoint.to_string()).or_default().0 += 1;
    }

    fn ended(&mut self, endpoint: &str, result: &Result<Duration, String>) {
        let entry = self.per_endpoint.entry(endpoint.to_string()).or_default();
        match result {
            Ok(took) => {
                entry.1 += 1;
                self.served += 1;
                self.latency.saturating_record(took.as_micros() as u64);
            }
            Err(why) => {
                entry.2 += 1;
                *self.failures.entry(why.clone()).or_default() += 1;
            }
        }
    }

    fn answered_in(&mut self, took: Duration) {
        self.latency.saturating_record(took.as_micros() as u64);
    }

    /// The latency at quantile `q` in ms, when anything was answered.
    pub fn latency_ms(&self, q: f64) -> Option<f64> {
        (!self.latency.is_empty()).then(|| self.latency.value_at_quantile(q) as f64 / 1000.0)
    }

    /// The summary as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "sent": self.sent,
            "served": self.served,
            "failed": self.failed(),
            "failures": self.failures,
            "skipped": self.skipped,
            "seconds": self.seconds,
            "latency_ms": {
                "p50": self.latency_ms(0.5),
                "p95": self.latency_ms(0.95),
                "p99": self.latency_ms(0.99),
                "max": self.latency_ms(1.0),
            },
            "replicas": self.per_endpoint.iter().map(|(name, (sent, served, failed))| {
                serde_json::json!({"name": name, "sent": sent, "served": served, "failed": failed})
            }).collect::<Vec<_>>(),
        })
    }

    /// The summary as text.
    pub fn render(&self, what: &str) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "load: {} sent to {what} in {:.1} s ({:.1}/s): {} served, {} failed{}",
            self.sent,
            self.seconds,
            self.sent as f64 / self.seconds.max(1e-9),
            self.served,
            self.failed(),
            if self.skipped > 0 {
                format!(
                    ", {} not sent (the in-flight limit was reached)",
                    self.skipped
                )
            } else {
                String::new()
            }
        );
        for (why, n) in &self.failures {
            let _ = writeln!(out, "  failed: {n} x {why}");
        }
        match self.latency_ms(0.5) {
            Some(p50) => {
                let ms = |q| self.latency_ms(q).unwrap_or(0.0);
                let _ = writeln!(
                    out,
                    "  latency: p50 {p50:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                    ms(0.95),
                    ms(0.99),
                    ms(1.0)
                );
            }
            None => {
                let _ = writeln!(out, "  latency: nothing was answered");
            }
        }
        let _ = writeln!(
            out,
            "  {:<40} {:>8} {:>8} {:>8}",
            "replica", "sent", "served", "failed"
        );
        for (name, (sent, served, failed)) in &self.per_endpoint {
            let _ = writeln!(out, "  {name:<40} {sent:>8} {served:>8} {failed:>8}");
        }
        out
    }
}

/// Check the bounds: a run must say how fast and how long, within limits.
pub fn pace(args: &LoadArgs) -> Result<Pace, InvalidInput> {
    let pace = match (args.rate, args.concurrency) {
        (Some(rate), None) if rate > 0.0 && rate <= MAX_RATE => Pace::Rate(rate),
        (Some(rate), None) => {
            return Err(InvalidInput(format!(
                "--rate {rate}: give a rate above 0 and at most {MAX_RATE} requests a second"
            )));
        }
        (None, Some(c)) if (1..=MAX_CONCURRENCY).contains(&c) => Pace::Concurrency(c),
        (None, Some(c)) => {
            return Err(InvalidInput(format!(
                "--concurrency {c}: give 1 to {MAX_CONCURRENCY} requests in flight"
            )));
        }
        _ => {
            return Err(InvalidInput(
                "give either --rate (requests a second) or --concurrency (requests in flight)"
                    .into(),
            ));
        }
    };
    if args.duration.is_zero() || args.duration > MAX_DURATION {
        return Err(InvalidInput(format!(
            "--duration {}: give more than 0 and at most {}",
            vedfolnir_core::duration::format_duration(args.duration.as_millis() as u64),
            vedfolnir_core::duration::format_duration(MAX_DURATION.as_millis() as u64)
        )));
    }
    if args.timeout.is_zero() || args.timeout > MAX_TIMEOUT {
        return Err(InvalidInput(format!(
            "--timeout: give more than 0 and at most {} s",
            MAX_TIMEOUT.as_secs()
        )));
    }
    Ok(pace)
}

/// The service's ready replicas as endpoints: each one's published port
/// for `port` on 127.0.0.1, else its own address.
pub fn endpoints(replicas: &[engine::Replica], port: u16, path: &str) -> Vec<Endpoint> {
    replicas
        .iter()
        .filter(|r| r.readiness == Readiness::Ready)
        .filter_map(|r| {
            let addr = match r.published.iter().find(|(c, _)| *c == port) {
                Some((_, host)) => format!("127.0.0.1:{host}"),
                None => format!("{}:{port}", r.ip.as_deref()?),
            };
            Some(Endpoint {
                name: r.name.clone(),
                url: format!("http://{addr}{path}"),
            })
        })
        .collect()
}

/// Where the requests go, and how that list is kept current.
enum Targets {
    /// One URL.
    Url(Endpoint),
    /// The ready replicas of a service, read again every [`REFRESH`].
    Service(Box<Service>),
}

/// A service's replicas, and where on each the requests go.
struct Service {
    engine: Engine,
    target: Target,
    port: u16,
    path: String,
}

impl Targets {
    async fn list(&self) -> Result<Vec<Endpoint>, EngineError> {
        match self {
            Targets::Url(e) => Ok(vec![e.clone()]),
            Targets::Service(s) => Ok(endpoints(
                &engine::replicas(&s.engine, &s.target).await?,
                s.port,
                &s.path,
            )),
        }
    }
}

/// `load`: check the bounds, find the endpoints, send, print the summary.
/// Exit code 0 when anything was served.
pub fn run(args: &LoadArgs) -> Result<ExitCode> {
    let pace = pace(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let (targets, what) = targets(args).await?;
        let first = first_ready(&targets).await?;
        if first.is_empty() {
            return Err(InvalidInput(format!(
                "{what} has no ready replica to send load to after {}s (is it running? `health --policy` shows its replicas)",
                READY_WAIT.as_secs()
            ))
            .into());
        }
        let summary = send(targets, first, pace, args).await;
        if args.json {
            outln!("{}", serde_json::to_string_pretty(&summary.to_json())?);
        } else {
            out!("{}", summary.render(&what));
        }
        if summary.served == 0 {
            return Err(anyhow::anyhow!(
                "no request was served ({} sent, {} failed)",
                summary.sent,
                summary.failed()
            ));
        }
        Ok(ExitCode::SUCCESS)
    })
}

async fn targets(args: &LoadArgs) -> Result<(Targets, String)> {
    if let Some(url) = &args.url {
        let parsed =
            reqwest::Url::parse(url).map_err(|e| InvalidInput(format!("--url {url}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(InvalidInput(format!("--url {url}: give an http or https URL")).into());
        }
        let name = format!(
            "{}:{}",
            parsed.host_str().unwrap_or_default(),
            parsed.port_or_known_default().unwrap_or(80)
        );
        return Ok((
            Targets::Url(Endpoint {
                name,
                url: url.clone(),
            }),
            url.clone(),
        ));
    }
    let policy: &PathBuf = args
        .policy
        .as_ref()
        .ok_or_else(|| InvalidInput("give --policy (the service) or --url".into()))?;
    let file = PolicyFile::load(policy, &Overrides::default())?;
    let port = args
        .port
        .unwrap_or_else(|| scrape_port(&file).unwrap_or(8080));
    let path = if args.path.starts_with('/') {
        args.path.clone()
    } else {
        return Err(InvalidInput(format!("--path {}: start it with '/'", args.path)).into());
    };
    let engine = Engine::connect(file.target.docker_host.as_deref()).await?;
    let what = format!("service {}", file.service);
    Ok((
        Targets::Service(Box::new(Service {
            engine,
            target: file.target,
            port,
            path,
        })),
        what,
    ))
}

/// The container port the policy scrapes, when it scrapes.
fn scrape_port(file: &PolicyFile) -> Option<u16> {
    file.signals.iter().find_map(|s| match &s.source {
        Source::Scrape(s) => Some(s.endpoint.port),
        _ => None,
    })
}

/// What the sending loops share: the client, the tally, the endpoints
/// (kept current by a refresher), whose turn it is, the requests in flight.
struct Run {
    client: reqwest::Client,
    summary: Arc<Mutex<Summary>>,
    endpoints: Arc<Mutex<Vec<Endpoint>>>,
    turn: usize,
    tasks: tokio::task::JoinSet<()>,
    end: tokio::time::Instant,
    bar: Option<indicatif::ProgressBar>,
}

impl Run {
    /// Send one request to the next endpoint in turn.
    fn spawn(&mut self) {
        let to = {
            let list = self.endpoints.lock().expect("endpoints lock");
            self.turn = self.turn.wrapping_add(1);
            (!list.is_empty()).then(|| list[self.turn % list.len()].clone())
        };
        self.tasks
            .spawn(one(self.client.clone(), to, self.summary.clone()));
        tick(&self.bar, &self.summary);
    }

    /// Open loop: `rate` a second, whatever the answers; a tick that finds
    /// the in-flight limit reached is skipped (and counted).
    async fn at_rate(&mut self, rate: f64, timeout: Duration) {
        let cap = ((rate * timeout.as_secs_f64()).ceil() as usize + 1).min(20_000);
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        loop {
            ticker.tick().await;
            if tokio::time::Instant::now() >= self.end {
                break;
            }
            while self.tasks.try_join_next().is_some() {}
            if self.tasks.len() >= cap {
                self.summary.lock().expect("summary lock").skipped += 1;
                continue;
            }
            self.spawn();
        }
    }

    /// Closed loop: `n` in flight, each replaced when it ends.
    async fn in_flight(&mut self, n: u32) {
        for _ in 0..n {
            self.spawn();
        }
        while self.tasks.join_next().await.is_some() {
            if tokio::time::Instant::now() < self.end {
                self.spawn();
            }
        }
    }

    /// Wait at most `grace` for the requests in flight; those still
    /// running then are failures.
    async fn finish(mut self, grace: Duration) -> Summary {
        let deadline = tokio::time::sleep(grace);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                joined = self.tasks.join_next() => if joined.is_none() { break },
                _ = &mut deadline => break,
            }
        }
        let unfinished = self.tasks.len() as u64;
        self.tasks.abort_all();
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        let mut summary = self.summary.lock().expect("summary lock");
        if unfinished > 0 {
            *summary
                .failures
                .entry("no answer by the end of the run".into())
                .or_default() += unfinished;
        }
        std::mem::replace(&mut *summary, Summary::new(grace))
    }
}

/// The ready endpoints at the run's start: read until there is one, for
/// at most [`READY_WAIT`] (none, then).
async fn first_ready(targets: &Targets) -> Result<Vec<Endpoint>, EngineError> {
    let deadline = tokio::time::Instant::now() + READY_WAIT;
    loop {
        let list = targets.list().await?;
        if !list.is_empty() || tokio::time::Instant::now() + REFRESH > deadline {
            return Ok(list);
        }
        tokio::time::sleep(REFRESH).await;
    }
}

/// Send for the run's duration; wait at most one timeout for the
/// requests still in flight, and count those that did not end as failed.
async fn send(targets: Targets, first: Vec<Endpoint>, pace: Pace, args: &LoadArgs) -> Summary {
    let endpoints = Arc::new(Mutex::new(first));
    let refresher = {
        let endpoints = endpoints.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REFRESH).await;
                // An engine that does not answer keeps the last list.
                if let Ok(list) = targets.list().await {
                    *endpoints.lock().expect("endpoints lock") = list;
                }
            }
        })
    };
    let watch = Stopwatch::start();
    let mut run = Run {
        client: reqwest::Client::builder()
            .timeout(args.timeout)
            .connect_timeout(args.timeout)
            .pool_max_idle_per_host(64)
            .build()
            .expect("a client with timeouts builds"),
        summary: Arc::new(Mutex::new(Summary::new(args.timeout))),
        endpoints,
        turn: 0,
        tasks: tokio::task::JoinSet::new(),
        end: tokio::time::Instant::now() + args.duration,
        bar: progress(args),
    };
    match pace {
        Pace::Rate(rate) => run.at_rate(rate, args.timeout).await,
        Pace::Concurrency(n) => run.in_flight(n).await,
    }
    refresher.abort();
    let mut summary = run.finish(args.timeout + Duration::from_millis(500)).await;
    summary.seconds = watch.elapsed().as_secs_f64();
    summary
}

/// One request: counted as sent, then as served or failed (with why).
async fn one(client: reqwest::Client, to: Option<Endpoint>, summary: Arc<Mutex<Summary>>) {
    let Some(to) = to else {
        let mut s = summary.lock().expect("summary lock");
        s.started("(no ready replica)");
        s.ended("(no ready replica)", &Err("no ready replica".into()));
        return;
    };
    summary.lock().expect("summary lock").started(&to.name);
    let watch = Stopwatch::start();
    let result = match client.get(&to.url).send().await {
        Ok(resp) => {
            let status = resp.status();
            let read = crate::sources::body_within(resp, MAX_BODY).await;
            let took = watch.elapsed();
            if !status.is_success() && !status.is_redirection() {
                summary.lock().expect("summary lock").answered_in(took);
                Err(format!("HTTP {}", status.as_u16()))
            } else if read.is_err() {
                Err("the answer broke off".into())
            } else {
                Ok(took)
            }
        }
        Err(e) => Err(reason(&e)),
    };
    summary
        .lock()
        .expect("summary lock")
        .ended(&to.name, &result);
}

/// A transport failure, in a few words: the I/O error under it when there
/// is one (refused, reset), else what reqwest says it was.
fn reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
                std::io::ErrorKind::ConnectionReset => "connection reset".into(),
                std::io::ErrorKind::TimedOut => "timed out".into(),
                kind => format!("I/O error: {kind}"),
            };
        }
        cause = c.source();
    }
    if e.is_connect() {
        "cannot connect".into()
    } else {
        "connection broke off".into()
    }
}

fn progress(args: &LoadArgs) -> Option<indicatif::ProgressBar> {
    if args.json || args.quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return None;
    }
    let bar = indicatif::ProgressBar::new(args.duration.as_millis() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("load [{bar:30}] {percent:>3}% {msg}")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    Some(bar)
}

fn tick(bar: &Option<indicatif::ProgressBar>, summary: &Mutex<Summary>) {
    if let Some(bar) = bar {
        let s = summary.lock().expect("summary lock");
        bar.set_position(bar.elapsed().as_millis() as u64);
        bar.set_message(format!(
            "{} sent, {} served, {} failed",
            s.sent,
            s.served,
            s.failed()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(rate: Option<f64>, concurrency: Option<u32>, duration: Duration) -> LoadArgs {
        LoadArgs {
            policy: None,
            url: Some("http://127.0.0.1:1/".into()),
            path: "/".into(),
            port: None,
            rate,
            concurrency,
            duration,
            timeout: Duration::from_secs(2),
            json: false,
            quiet: true,
        }
    }

    #[test]
    fn a_run_without_a_bounded_rate_or_duration_is_refused() {
        let s = Duration::from_secs(1);
        assert_eq!(pace(&args(Some(10.0), None, s)).unwrap(), Pace::Rate(10.0));
        assert_eq!(pace(&args(None, Some(4), s)).unwrap(), Pace::Concurrency(4));
        for bad in [
            args(None, None, s),
            args(Some(0.0), None, s),
            args(Some(f64::INFINITY), None, s),
            args(Some(MAX_RATE * 2.0), None, s),
            args(None, Some(0), s),
            args(None, Some(MAX_CONCURRENCY + 1), s),
            args(Some(10.0), None, Duration::ZERO),
            args(Some(10.0), None, MAX_DURATION * 2),
        ] {
            assert!(pace(&bad).is_err(), "{bad:?} was accepted");
        }
    }

    fn replica(name: &str, readiness: Readiness, published: Vec<(u16, u16)>) -> engine::Replica {
        engine::Replica {
            ip: Some("172.17.0.9".into()),
            published,
            ..engine::Replica::running(name, readiness)
        }
    }

    #[test]
    fn only_ready_replicas_get_load_through_their_published_port() {
        let list = endpoints(
            &[
                replica("a", Readiness::Ready, vec![(8080, 32001)]),
                replica("b", Readiness::Starting, vec![(8080, 32002)]),
                replica("c", Readiness::Ready, vec![(9000, 32003)]),
            ],
            8080,
            "/burn?ms=5",
        );
        assert_eq!(
            list,
            vec![
                Endpoint {
                    name: "a".into(),
                    url: "http://127.0.0.1:32001/burn?ms=5".into()
                },
                Endpoint {
                    name: "c".into(),
                    url: "http://172.17.0.9:8080/burn?ms=5".into()
                },
            ]
        );
    }

    #[test]
    fn the_summary_counts_each_request_once_by_outcome_and_replica() {
        let mut s = Summary::new(Duration::from_secs(1));
        for i in 0..10u64 {
            s.started("a");
            s.ended("a", &Ok(Duration::from_millis(i + 1)));
        }
        s.started("b");
        s.ended("b", &Err("connection refused".into()));
        assert_eq!((s.sent, s.served, s.failed()), (11, 10, 1));
        assert_eq!(s.per_endpoint["a"], (10, 10, 0));
        assert_eq!(s.per_endpoint["b"], (1, 0, 1));
        let p50 = s.latency_ms(0.5).unwrap();
        assert!((4.9..=5.1).contains(&p50), "p50 {p50}");
        assert!((9.9..=10.1).contains(&s.latency_ms(1.0).unwrap()));
    }
}
