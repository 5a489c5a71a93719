//! The `scrape` source: each ready replica's own `/metrics` (Prometheus
//! text format), read directly, with no Prometheus server.
//!
//! A metric's `# TYPE` says how it becomes a signal:
//!
//! - a gauge is combined over the replicas (`sum` for a queue, `mean` for a
//!   utilisation, or `max`);
//! - a counter becomes a rate per second, summed over the replicas (a
//!   value lower than the one before is a counter reset: the replica
//!   restarted and counted from 0); with `total`, the ratio of the two
//!   counters' increases (errors over requests), missing when there was no
//!   request;
//! - a histogram gives the `quantile` (0.95) of the observations, over
//!   every replica, interpolated within its bucket as Prometheus'
//!   `histogram_quantile` does.
//!
//! Rates and quantiles are taken over the last [`HORIZON_MS`] (5 minutes),
//! as the recording rules in `deploy/prometheus` take them (`rate(...[5m])`),
//! so both sources read the same numbers. The source keeps each replica's
//! scrapes of that horizon between passes (the daemon's loop keeps its
//! sources; only the metrics asked for are kept); a replica with none (a
//! one-shot `check`, a new replica) is scraped twice, a second apart. A replica that
//! does not answer within the timeout, answers an error, or serves more
//! than [`MAX_BODY`] makes every signal read here missing, naming it: a
//! sum without it would understate the service, and 0 would lie.
//!
//! The text format is parsed here (about 80 lines, bounded): the crates
//! for it either pull in a date-time library and a regex engine for
//! timestamps this source ignores (`prometheus-parse`, last released in
//! 2023) or parse the whole OpenMetrics model (`openmetrics-parser`), and
//! neither bounds its input.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::BoxFuture;
use vedfolnir_core::model::{SignalId, TimestampMs};

use super::{Ask, MetricSource, Reading, SourceReport};
use crate::clock::Stopwatch;
use crate::config::{Aggregate, Endpoint, ScrapeSignal, Source, SourceKind};
use crate::engine::{Readiness, Replica};

/// The most a replica's metrics page may weigh.
pub const MAX_BODY: usize = 1 << 20;

/// The most series read from one page.
pub const MAX_SERIES: usize = 20_000;

/// The wait between two scrapes of a replica seen for the first time.
pub const FIRST_GAP: Duration = Duration::from_secs(1);

/// How far back rates and quantiles look.
pub const HORIZON_MS: i64 = 5 * 60_000;

/// The most scrapes kept per replica within the horizon.
pub const MAX_KEPT: usize = 64;

/// How a metric family is typed (`# TYPE`); untyped counts as a gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gauge,
    Counter,
    Histogram,
}

/// One page of metrics: each family's type, and every series' value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    kinds: HashMap<String, Kind>,
    /// (name, `le` label when there is one, value).
    series: Vec<(String, Option<f64>, f64)>,
}

impl Page {
    /// How many series the page holds.
    pub fn len(&self) -> usize {
        self.series.len()
    }
}

/// Parse the Prometheus text format, bounded to [`MAX_SERIES`] series.
pub fn parse(text: &str) -> Result<Page, String> {
    let mut page = Page::default();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                let kind = match kind {
                    "counter" => Kind::Counter,
                    "histogram" => Kind::Histogram,
                    _ => Kind::Gauge,
                };
                page.kinds.insert(name.to_string(), kind);
            }
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if page.series.len() >= MAX_SERIES {
            return Err(format!("more than {MAX_SERIES} series"));
        }
        page.series
            .push(series(line).map_err(|e| format!("line {}: {e}", n + 1))?);
    }
    Ok(page)
}

/// A label set's braces (named, so a line of code holds both or neither).
const BRACES: (char, char) = ('{', '}');

/// `name{labels} value [timestamp]`: the name, its `le`, the value.
fn series(line: &str) -> Result<(String, Option<f64>, f64), String> {
    let name_end = line
        .find(|c: char| c == BRACES.0 || c.is_whitespace())
        .ok_or("a series without a value")?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut le = None;
    if let Some(inner) = rest.strip_prefix(BRACES.0) {
        let (labels, after) = split_labels(inner)?;
        for (k, v) in labels {
            if k == "le" {
                le = Some(number(&v)?);
            }
        }
        rest = after;
    }
    let value = rest
        .split_whitespace()
        .next()
        .ok_or("a series without a value")?;
    Ok((name.to_string(), le, number(value)?))
}

/// A series' labels: (name, value).
type Labels = Vec<(String, String)>;

/// The labels up to the closing brace, and what follows it.
fn split_labels(s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    let mut chars = s.char_indices().peekable();
    loop {
        while chars
            .next_if(|(_, c)| *c == ',' || c.is_whitespace())
            .is_some()
        {}
        match chars.peek() {
            Some((i, c)) if *c == BRACES.1 => return Ok((labels, &s[i + 1..])),
            None => return Err("a label set without its closing brace".into()),
            _ => {}
        }
        let key: String =
            std::iter::from_fn(|| chars.next_if(|(_, c)| *c != '=').map(|x| x.1)).collect();
        if chars.next().map(|x| x.1) != Some('=') || chars.next().map(|x| x.1) != Some('"') {
            return Err(format!("label {key:?} without a quoted value"));
        }
        let mut value = String::new();
        loop {
            match chars.next().map(|x| x.1) {
                Some('\\') => value.push(chars.next().map(|x| x.1).unwrap_or('\\')),
                Some('"') => break,
                Some(c) => value.push(c),
                None => return Err(format!("label {key:?}'s value is not closed")),
            }
        }
        labels.push((key.trim().to_string(), value));
    }
}

fn number(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|_| format!("{s:?} is not a number")),
    }
}

impl Page {
    /// Only the families named (and their buckets): what is kept.
    fn only(self, names: &[&str]) -> Page {
        let wanted = |n: &str| {
            names
                .iter()
                .any(|m| n == *m || n.strip_prefix(m) == Some("_bucket"))
        };
        Page {
            kinds: self.kinds.into_iter().filter(|(n, _)| wanted(n)).collect(),
            series: self
                .series
                .into_iter()
                .filter(|(n, _, _)| wanted(n))
                .collect(),
        }
    }

    fn kind(&self, family: &str) -> Kind {
        self.kinds.get(family).copied().unwrap_or(Kind::Gauge)
    }

    /// The sum of every series named `name` (all label sets), if any.
    fn sum(&self, name: &str) -> Option<f64> {
        let mut found = None;
        for (n, _, v) in &self.series {
            if n == name {
                *found.get_or_insert(0.0) += v;
            }
        }
        found
    }

    /// A histogram's cumulative bucket counts by upper bound, summed over
    /// its label sets.
    fn buckets(&self, family: &str) -> Option<BTreeMap<Bound, f64>> {
        let name = format!("{family}_bucket");
        let mut out: BTreeMap<Bound, f64> = BTreeMap::new();
        for (n, le, v) in &self.series {
            if *n == name
                && let Some(le) = le
            {
                *out.entry(Bound(*le)).or_default() += v;
            }
        }
        (!out.is_empty()).then_some(out)
    }
}

/// A bucket's upper bound, ordered (bounds are never NaN in a valid page;
/// one that is sorts last).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bound(f64);

impl Eq for Bound {}

impl PartialOrd for Bound {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Bound {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// A counter's increase from `before` to `now`: a lower value is a reset.
fn increase(before: f64, now: f64) -> f64 {
    if now >= before { now - before } else { now }
}

/// One replica's page at a time.
#[derive(Debug, Clone)]
pub struct Snapshot {
    at: TimestampMs,
    page: Page,
}

/// The quantile `q` of cumulative bucket counts, as `histogram_quantile`.
fn quantile(q: f64, buckets: &BTreeMap<Bound, f64>) -> Option<f64> {
    let total = *buckets.values().last()?;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for (Bound(upper), count) in buckets {
        if *count >= rank {
            if upper.is_infinite() {
                return Some(lower);
            }
            let width = count - below;
            let into = if width > 0.0 {
                (rank - below) / width
            } else {
                1.0
            };
            return Some(lower + (upper - lower) * into);
        }
        (lower, below) = (*upper, *count);
    }
    Some(lower)
}

/// Each replica's scrapes within the horizon, oldest first, the newest
/// last.
type Histories<'a> = [Vec<&'a Snapshot>];

/// A signal from each replica's scrapes (a gauge reads the newest only).
pub fn signal(s: &ScrapeSignal, replicas: &Histories<'_>) -> Result<f64, String> {
    let newest = |h: &Vec<&Snapshot>| h.last().map(|n| n.page.kind(&s.metric));
    match replicas.first().and_then(newest) {
        None => Err("no ready replica to scrape".into()),
        Some(Kind::Gauge) => gauge(s, replicas),
        Some(Kind::Counter) => counter(s, replicas),
        Some(Kind::Histogram) => histogram(s, replicas),
    }
}

fn gauge(s: &ScrapeSignal, replicas: &Histories<'_>) -> Result<f64, String> {
    let values = replicas
        .iter()
        .map(|h| h.last()?.page.sum(&s.metric).filter(|v| v.is_finite()))
        .collect::<Option<Vec<f64>>>()
        .ok_or_else(|| format!("{} is not a finite value on every replica", s.metric))?;
    Ok(match s.aggregate {
        Aggregate::Sum => values.iter().sum(),
        Aggregate::Mean => values.iter().sum::<f64>() / values.len() as f64,
        Aggregate::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    })
}

/// Each replica's increase of `name` over its scrapes (each reset counted
/// as a restart from 0), and the seconds they span.
fn increases(name: &str, replicas: &Histories<'_>) -> Result<Vec<(f64, f64)>, String> {
    replicas
        .iter()
        .map(|h| {
            let (Some(first), Some(last)) = (h.first(), h.last()) else {
                return Err("no scrape".to_string());
            };
            let secs = (last.at - first.at) as f64 / 1000.0;
            if secs <= 0.0 {
                return Err("no earlier scrape to take a rate from".into());
            }
            let mut total = 0.0;
            for pair in h.windows(2) {
                let (Some(b), Some(n)) = (pair[0].page.sum(name), pair[1].page.sum(name)) else {
                    return Err(format!("{name} is missing from a replica's metrics"));
                };
                if !b.is_finite() || !n.is_finite() {
                    return Err(format!("{name} is not a finite value"));
                }
                total += increase(b, n);
            }
            Ok((total, secs))
        })
        .collect()
}

fn counter(s: &ScrapeSignal, replicas: &Histories<'_>) -> Result<f64, String> {
    let part = increases(&s.metric, replicas)?;
    let Some(total) = &s.total else {
        return Ok(part.iter().map(|(inc, secs)| inc / secs).sum());
    };
    let whole: f64 = increases(total, replicas)?.iter().map(|(inc, _)| inc).sum();
    if whole <= 0.0 {
        return Err(format!("no {total} in the last 5 minutes: no ratio"));
    }
    Ok(part.iter().map(|(inc, _)| inc).sum::<f64>() / whole)
}

fn histogram(s: &ScrapeSignal, replicas: &Histories<'_>) -> Result<f64, String> {
    let mut sum: BTreeMap<Bound, f64> = BTreeMap::new();
    for h in replicas {
        if h.len() < 2 {
            return Err("no earlier scrape to compare with".into());
        }
        for pair in h.windows(2) {
            let (Some(b), Some(n)) = (
                pair[0].page.buckets(&s.metric),
                pair[1].page.buckets(&s.metric),
            ) else {
                return Err(format!("{} has no buckets on a replica", s.metric));
            };
            for (le, count) in n {
                let was = b.get(&le).copied().unwrap_or(0.0);
                *sum.entry(le).or_default() += increase(was, count);
            }
        }
    }
    quantile(s.quantile, &sum)
        .ok_or_else(|| format!("no {} observed in the last 5 minutes", s.metric))
}

/// Where a replica serves its metrics: its own address, or the port it
/// publishes on this host.
fn address(r: &Replica, e: &Endpoint) -> Result<String, String> {
    if let Some(ip) = &r.ip {
        return Ok(format!("{ip}:{}", e.port));
    }
    match r.published.iter().find(|(c, _)| *c == e.port) {
        Some((_, host)) => Ok(format!("127.0.0.1:{host}")),
        None => Err(format!(
            "{} has no address to scrape (no network with an address, and port {} not published)",
            r.name, e.port
        )),
    }
}

/// The `scrape` source of one service: an HTTP client and each replica's
/// last page.
#[derive(Debug, Default)]
pub struct Scrape {
    client: reqwest::Client,
    /// Each replica's scrapes within the horizon, oldest first.
    kept: Mutex<HashMap<String, Vec<Snapshot>>>,
}

impl Scrape {
    /// One replica's page, bounded in time and size.
    async fn fetch(&self, r: &Replica, e: &Endpoint) -> Result<Page, String> {
        let at = address(r, e)?;
        let url = format!("http://{at}{}", e.path);
        let timeout = Duration::from_millis(e.timeout_ms);
        let fail = |why: String| format!("scrape of {} ({url}): {why}", r.name);
        let get = async {
            let resp = self
                .client
                .get(&url)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if !resp.status().is_success() {
                return Err(format!("HTTP {}", resp.status()));
            }
            let body = super::body_within(resp, MAX_BODY)
                .await
                .map_err(|e| e.to_string())?;
            parse(&String::from_utf8_lossy(&body))
        };
        match tokio::time::timeout(timeout, get).await {
            Ok(page) => page.map_err(fail),
            Err(_) => Err(fail(format!(
                "no answer within {}",
                vedfolnir_core::format_duration(e.timeout_ms)
            ))),
        }
    }

    /// Every ready replica's page now, and its oldest within the horizon:
    /// scraped again after [`FIRST_GAP`] when a replica has none and one of
    /// `metrics` is a counter or a histogram (a rate needs two).
    async fn pages(
        &self,
        ready: &[&Replica],
        e: &Endpoint,
        now: TimestampMs,
        metrics: &[&str],
    ) -> Result<Vec<Vec<Snapshot>>, String> {
        let fetch_all = || futures_util::future::join_all(ready.iter().map(|r| self.fetch(r, e)));
        let first: Vec<Page> = fetch_all().await.into_iter().collect::<Result<_, _>>()?;
        let mut kept = self.kept.lock().expect("not poisoned").clone();
        let rates = first
            .iter()
            .any(|p| metrics.iter().any(|m| p.kind(m) != Kind::Gauge));
        let current = if rates && ready.iter().any(|r| !kept.contains_key(&r.id)) {
            let watch = Stopwatch::start();
            tokio::time::sleep(FIRST_GAP).await;
            let second: Vec<Page> = fetch_all().await.into_iter().collect::<Result<_, _>>()?;
            let earlier = now - watch.elapsed_ms() as i64;
            for (r, page) in ready.iter().zip(first) {
                kept.entry(r.id.clone()).or_insert_with(|| {
                    vec![Snapshot {
                        at: earlier,
                        page: page.only(metrics),
                    }]
                });
            }
            second
        } else {
            first
        };
        let mut out = Vec::new();
        let mut next: HashMap<String, Vec<Snapshot>> = HashMap::new();
        for (r, page) in ready.iter().zip(current) {
            let mut history = kept.remove(&r.id).unwrap_or_default();
            history.retain(|s| s.at >= now - HORIZON_MS && s.at < now);
            let snapshot = Snapshot {
                at: now,
                page: page.only(metrics),
            };
            history.push(snapshot);
            let excess = history.len().saturating_sub(MAX_KEPT);
            history.drain(..excess);
            out.push(history.clone());
            next.insert(r.id.clone(), history);
        }
        // Replicas gone are forgotten.
        *self.kept.lock().expect("not poisoned") = next;
        Ok(out)
    }
}

impl MetricSource for Scrape {
    fn kind(&self) -> SourceKind {
        SourceKind::Scrape
    }

    /// Every signal routed here, from every ready replica's page.
    fn read<'a>(&'a self, ask: &'a Ask<'a>) -> BoxFuture<'a, SourceReport> {
        Box::pin(async move {
            let asked: Vec<(&SignalId, &ScrapeSignal)> = ask
                .signals
                .iter()
                .filter_map(|s| match &s.source {
                    Source::Scrape(sc) => Some((&s.signal, sc)),
                    _ => None,
                })
                .collect();
            let Some((_, first)) = asked.first() else {
                return SourceReport::default();
            };
            let ready: Vec<&Replica> = ask
                .observed
                .replicas
                .iter()
                .filter(|r| r.readiness == Readiness::Ready)
                .collect();
            let metrics: Vec<&str> = asked
                .iter()
                .flat_map(|(_, s)| std::iter::once(&s.metric).chain(&s.total))
                .map(String::as_str)
                .collect();
            let pages = self.pages(&ready, &first.endpoint, ask.now, &metrics).await;
            let mut report = SourceReport::default();
            for (signal, s) in asked {
                let value = match &pages {
                    Ok(p) if p.is_empty() => Err("no ready replica to scrape".to_string()),
                    Ok(p) => {
                        let histories: Vec<Vec<&Snapshot>> =
                            p.iter().map(|h| h.iter().collect()).collect();
                        signal_of(s, &histories)
                    }
                    Err(e) => Err(e.clone()),
                };
                if let (Ok(p), None) = (&pages, &s.total)
                    && let Some(rate) = recent_rate(s, p)
                {
                    report.readings.push(Reading::Recent(signal.clone(), rate));
                }
                report.readings.push(Reading::Now(signal.clone(), value));
            }
            if let Err(e) = pages {
                report.errors.push(e);
            }
            report
        })
    }
}

/// [`signal`], with the metric named in its error.
/// A counter's rate per second over each replica's last two scrapes,
/// summed: the load since the last pass, where its value is the horizon's
/// ([`Reading::Recent`]). None for another kind, or a replica without two.
fn recent_rate(s: &ScrapeSignal, pages: &[Vec<Snapshot>]) -> Option<f64> {
    let last_two: Vec<Vec<&Snapshot>> = pages
        .iter()
        .map(|h| h.iter().skip(h.len().saturating_sub(2)).collect())
        .collect();
    let newest = last_two.first()?.last()?;
    if newest.page.kind(&s.metric) != Kind::Counter {
        return None;
    }
    let parts = increases(&s.metric, &last_two).ok()?;
    Some(parts.iter().map(|(inc, secs)| inc / secs).sum())
}

fn signal_of(s: &ScrapeSignal, replicas: &Histories<'_>) -> Result<f64, String> {
    signal(s, replicas).map_err(|e| format!("scrape {}: {e}", s.metric))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test workload's page, as it serves it.
    fn page(queue: f64, requests: f64, errors: f64, buckets: [f64; 3]) -> Page {
        parse(&format!(
            "# HELP vedfolnir_queue_depth Items waiting.\n# TYPE vedfolnir_queue_depth gauge\nvedfolnir_queue_depth {queue}\n\
             # TYPE vedfolnir_request_duration_seconds histogram\n\
             vedfolnir_request_duration_seconds_bucket{{le=\"0.1\"}} {}\n\
             vedfolnir_request_duration_seconds_bucket{{le=\"1\"}} {}\n\
             vedfolnir_request_duration_seconds_bucket{{le=\"+Inf\"}} {}\n\
             vedfolnir_request_duration_seconds_sum 1\nvedfolnir_request_duration_seconds_count {}\n\
             # TYPE vedfolnir_errors_total counter\nvedfolnir_errors_total {errors}\n\
             # TYPE vedfolnir_requests_total counter\nvedfolnir_requests_total {requests}\n",
            buckets[0], buckets[1], buckets[2], buckets[2]
        ))
        .unwrap()
    }

    fn signal_for(metric: &str, total: Option<&str>, aggregate: Aggregate) -> ScrapeSignal {
        ScrapeSignal {
            metric: metric.into(),
            total: total.map(str::to_string),
            quantile: 0.95,
            aggregate,
            endpoint: Endpoint {
                port: 8080,
                path: "/metrics".into(),
                timeout_ms: 500,
            },
        }
    }

    fn at(at: TimestampMs, page: Page) -> Snapshot {
        Snapshot { at, page }
    }

    #[test]
    fn a_gauge_is_summed_or_averaged_over_the_replicas() {
        let (a, b) = (
            at(0, page(10.0, 0.0, 0.0, [0.0; 3])),
            at(0, page(30.0, 0.0, 0.0, [0.0; 3])),
        );
        let pairs = [vec![&a], vec![&b]];
        let sum = signal_for("vedfolnir_queue_depth", None, Aggregate::Sum);
        assert_eq!(signal(&sum, &pairs), Ok(40.0));
        let mean = signal_for("vedfolnir_queue_depth", None, Aggregate::Mean);
        assert_eq!(signal(&mean, &pairs), Ok(20.0));
    }

    /// The recent rate is the last two scrapes' alone, where the signal is
    /// the horizon's: a jump of load shows in it at once.
    #[test]
    fn a_counters_recent_rate_is_over_its_last_two_scrapes_only() {
        let rate = signal_for("vedfolnir_requests_total", None, Aggregate::Sum);
        // 5 req/s for 60 s, then 30 req/s for 2 s; a second replica at 1/s.
        let one = vec![
            at(0, page(0.0, 0.0, 0.0, [0.0; 3])),
            at(60_000, page(0.0, 300.0, 0.0, [0.0; 3])),
            at(62_000, page(0.0, 360.0, 0.0, [0.0; 3])),
        ];
        let two = vec![
            at(60_000, page(0.0, 10.0, 0.0, [0.0; 3])),
            at(62_000, page(0.0, 12.0, 0.0, [0.0; 3])),
        ];
        let pages = [one.clone(), two.clone()];
        assert_eq!(recent_rate(&rate, &pages), Some(31.0));
        let whole = signal(&rate, &[one.iter().collect(), two.iter().collect()]).unwrap();
        assert!((whole - (360.0 / 62.0 + 1.0)).abs() < 1e-9, "{whole}");
        // A gauge has none; nor a replica scraped once.
        let gauge = signal_for("vedfolnir_queue_depth", None, Aggregate::Sum);
        assert_eq!(recent_rate(&gauge, &pages), None);
        assert_eq!(recent_rate(&rate, &[one[2..].to_vec()]), None);
    }

    #[test]
    fn a_counter_is_a_rate_and_a_reset_is_a_reset_not_a_negative_rate() {
        let rate = signal_for("vedfolnir_requests_total", None, Aggregate::Sum);
        let (b1, n1) = (
            at(0, page(0.0, 100.0, 0.0, [0.0; 3])),
            at(10_000, page(0.0, 150.0, 0.0, [0.0; 3])),
        );
        // The second replica restarted: 500 before, 20 now (20 since).
        let (b2, n2) = (
            at(0, page(0.0, 500.0, 0.0, [0.0; 3])),
            at(10_000, page(0.0, 20.0, 0.0, [0.0; 3])),
        );
        let v = signal(&rate, &[vec![&b1, &n1], vec![&b2, &n2]]).unwrap();
        assert!((v - 7.0).abs() < 1e-9, "{v}");
        // A reset between kept scrapes: 100, 150, then 30 (restarted) is
        // 50 + 30 over 20 s, not 30 - 100.
        let n3 = at(20_000, page(0.0, 30.0, 0.0, [0.0; 3]));
        let v = signal(&rate, &[vec![&b1, &n1, &n3]]).unwrap();
        assert!((v - 4.0).abs() < 1e-9, "{v}");
        // Without an earlier scrape there is no rate: missing, not 0.
        assert!(signal(&rate, &[vec![&n1]]).is_err());
    }

    #[test]
    fn the_error_rate_is_failed_over_total_requests() {
        let ratio = signal_for(
            "vedfolnir_errors_total",
            Some("vedfolnir_requests_total"),
            Aggregate::Sum,
        );
        let (b, n) = (
            at(0, page(0.0, 100.0, 1.0, [0.0; 3])),
            at(15_000, page(0.0, 300.0, 11.0, [0.0; 3])),
        );
        assert_eq!(signal(&ratio, &[vec![&b, &n]]), Ok(0.05));
        // No request since: no ratio.
        let idle = at(30_000, page(0.0, 300.0, 11.0, [0.0; 3]));
        let e = signal(&ratio, &[vec![&n, &idle]]).unwrap_err();
        assert!(e.contains("no vedfolnir_requests_total"), "{e}");
    }

    #[test]
    fn a_histogram_gives_the_p95_of_the_requests_in_the_horizon() {
        let p95 = signal_for("vedfolnir_request_duration_seconds", None, Aggregate::Sum);
        // Since the last scrape: 80 requests under 0.1 s, 20 between 0.1 s
        // and 1 s. Before that, 1000 slow ones that must not count.
        let b = at(0, page(0.0, 0.0, 0.0, [0.0, 0.0, 1000.0]));
        let n = at(15_000, page(0.0, 0.0, 0.0, [80.0, 100.0, 1100.0]));
        let v = signal(&p95, &[vec![&b, &n]]).unwrap();
        // Rank 95 of 100 lies 15/20 into the 0.1..1 bucket.
        assert!((v - (0.1 + 0.9 * 0.75)).abs() < 1e-9, "{v}");
        let idle = at(30_000, page(0.0, 0.0, 0.0, [80.0, 100.0, 1100.0]));
        assert!(
            signal(&p95, &[vec![&n, &idle]]).is_err(),
            "no request, no p95"
        );
    }

    #[test]
    fn bad_pages_are_refused_with_the_line() {
        assert!(parse("a{le=\"0.1\" 3").unwrap_err().contains("line 1"));
        assert!(parse("ok 1\nbad value\n").unwrap_err().contains("line 2"));
        let many = "x 1\n".repeat(MAX_SERIES + 1);
        assert!(parse(&many).unwrap_err().contains("more than"));
        let p = parse("m{a=\"x,}\\\"y\",le=\"+Inf\"} 2 1700000000000\n").unwrap();
        assert_eq!(p.series, [("m".to_string(), Some(f64::INFINITY), 2.0)]);
    }

    fn replica(name: &str, ip: &str) -> Replica {
        Replica {
            ip: Some(ip.into()),
            ..Replica::running(name, Readiness::Ready)
        }
    }

    /// Serve `body` on 127.0.0.1 to every request; or never answer.
    async fn server(body: Option<&'static str>) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = conn.read(&mut buf).await;
                    match body {
                        Some(b) => {
                            let _ = conn
                                .write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}", b.len()).as_bytes())
                                .await;
                        }
                        None => tokio::time::sleep(Duration::from_secs(30)).await,
                    }
                });
            }
        });
        port
    }

    #[tokio::test]
    async fn a_replica_that_does_not_answer_makes_the_signal_missing_and_is_named() {
        let up = server(Some("# TYPE q gauge\nq 4\n")).await;
        let silent = server(None).await;
        let source = Scrape::default();
        let queue = |port| crate::config::SignalSource {
            signal: SignalId::QueueDepth,
            source: Source::Scrape(ScrapeSignal {
                metric: "q".into(),
                endpoint: Endpoint {
                    port,
                    path: "/metrics".into(),
                    timeout_ms: 300,
                },
                ..signal_for("q", None, Aggregate::Sum)
            }),
            required: None,
        };
        // One replica answering: its gauge (a gauge needs one scrape).
        let observed = crate::actuators::Observed {
            replicas: vec![replica("web-1", "127.0.0.1")],
            running: 1,
            ready: 1,
            marks: None,
        };
        let s = queue(up);
        let ask = Ask {
            service: "web",
            signals: vec![&s],
            observed: &observed,
            now: 10_000,
            span_ms: 60_000,
        };
        let got = source.read(&ask).await;
        assert_eq!(got.readings, [Reading::Now(SignalId::QueueDepth, Ok(4.0))]);
        // The replica goes silent: missing, with its name and the timeout.
        let s = queue(silent);
        let ask = Ask {
            signals: vec![&s],
            now: 25_000,
            ..ask
        };
        let got = source.read(&ask).await;
        let Reading::Now(_, Err(why)) = &got.readings[0] else {
            panic!("{:?}", got.readings);
        };
        assert!(
            why.contains("web-1") && why.contains("no answer within"),
            "{why}"
        );
        assert_eq!(got.errors.len(), 1);
    }
}
