//! The `prometheus` source: each signal is a PromQL expression.
//!
//! A window is read with one range query over the window the policy needs
//! (so a restarted daemon, or a cron `check`, can judge a 15-minute
//! condition at once), and its freshness with one instant query of
//! `timestamp(<expr>)`: samples past the newest real one are Prometheus'
//! 5-minute lookback repeating it, and are dropped, so a stalled series
//! looks stale and not steady.
//!
//! The rule for "one value per service": the expression must return one
//! series (or a scalar). Several series are not averaged or summed behind
//! the operator's back; the signal is missing, with the label sets named,
//! and the fix (an aggregation such as `sum by (service)` or a tighter
//! selector) is the operator's. Empty results, NaN, infinities, error
//! answers, answers that are not JSON, HTTP failures and timeouts all make
//! the signal missing, with the reason; never 0.
//!
//! Services whose expressions differ only in their own `service="<name>"`
//! matcher are read together (a `Group`): one range query and one
//! timestamp query for all of them, the matcher widened to
//! `service=~"a|b|..."` and the answer split by the `service` label, so
//! ten thousand services cost two queries per signal per pass, not twenty
//! thousand (as prometheus-adapter batches). The answer serves the group's
//! other passes for [`GROUP_FRESH`]. An expression that aggregates the
//! label away (its answer has a series without a member's `service`) is
//! read per service from then on; a member missing from the answer is that
//! member's missing signal, not the others'.
//!
//! ```text
//!   expr holds service="<this service>" once ──> template ──> group (template, span)
//!     alone in it, or ungroupable ──> its own range + timestamp query
//!     a fresh answer asked for it ──> its series from that answer
//!     else (one fetch at a time per group) ──> range + timestamp query for every member
//! ```

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use serde_json::Value;
use vedfolnir_core::model::{Sample, SignalId, SignalWindow, TimestampMs};

use super::{Ask, MetricSource, Reading, SourceReport};
use crate::config::{Source, SourceKind};

/// Most bytes of one query's answer. One series over the longest window
/// at a 15 s step is a few hundred KiB; more is a query that selects far
/// too much.
pub const MAX_RESPONSE: usize = 8 << 20;

/// A Prometheus server.
#[derive(Debug, Clone)]
pub struct Prometheus {
    client: reqwest::Client,
    /// Base URL, without a trailing slash.
    pub url: String,
    /// Per-request timeout.
    pub timeout: Duration,
    /// The groups of services read together, shared by every pass.
    groups: Arc<Mutex<HashMap<GroupKey, Arc<Group>>>>,
}

/// How long a group's answer serves its other members' passes: well under
/// Prometheus' usual 15 s scrape interval, so a pass sees what a query of
/// its own would.
pub const GROUP_FRESH: Duration = Duration::from_secs(5);

/// The most services in one grouped query (the answer of a longer window
/// is split further to stay under [`MAX_RESPONSE`]).
pub const GROUP_MAX: usize = 1000;

/// An expression with its service's own matcher taken out.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Template {
    before: String,
    after: String,
}

impl Template {
    /// `expr` as a template, when it holds `service="<service>"` exactly
    /// once (and not as the tail of another label's name).
    fn of(expr: &str, service: &str) -> Option<Template> {
        let needle = format!("service=\"{service}\"");
        let at = expr.find(&needle)?;
        if expr.matches(&needle).count() != 1 {
            return None;
        }
        let label_before = expr[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        (!label_before).then(|| Template {
            before: expr[..at].to_string(),
            after: expr[at + needle.len()..].to_string(),
        })
    }

    /// The expression for all of `services` at once. Service names are
    /// letters, digits, `-`, `_` and `.` (checked when a file is read);
    /// the dot is escaped for the regular expression, and the backslash
    /// for PromQL's string.
    fn for_all(&self, services: &[&String]) -> String {
        let names: Vec<String> = services.iter().map(|s| s.replace('.', "\\\\.")).collect();
        format!(
            "{}service=~\"{}\"{}",
            self.before,
            names.join("|"),
            self.after
        )
    }
}

/// Which services are read together: the same template, the same window.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct GroupKey {
    template: Template,
    span_ms: u64,
}

/// Services read together, and their last answer.
#[derive(Debug, Default)]
struct Group {
    members: Mutex<BTreeSet<String>>,
    /// Held while fetching: one fetch at a time, the others wait for it.
    latest: tokio::sync::Mutex<Option<Fetched>>,
    /// Its answer lost the `service` label: read per service.
    ungroupable: std::sync::atomic::AtomicBool,
}

/// What was read of one series: its samples and the time of its newest
/// real sample (none within the lookback), or why not.
type Found = Result<(Vec<Sample>, Option<i64>), String>;

/// What one grouped fetch found, per member.
#[derive(Debug)]
struct Fetched {
    at: Instant,
    now: TimestampMs,
    step_s: u64,
    /// The members asked for.
    asked: BTreeSet<String>,
    /// Each member's samples and newest real sample, or why none; a member
    /// not here had no series.
    series: HashMap<String, Found>,
    /// Why the whole fetch failed (Prometheus down, an error answer).
    failed: Option<String>,
}

/// Range-query resolution.
pub const STEP_MS: u64 = 15_000;

impl Prometheus {
    /// A client for `url` (e.g. `http://127.0.0.1:9090`).
    pub fn new(url: &str, timeout: Duration) -> Prometheus {
        Prometheus {
            client: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .expect("a client without TLS builds"),
            url: url.trim_end_matches('/').to_string(),
            timeout,
            groups: Arc::default(),
        }
    }

    async fn get(&self, path: &str, params: &[(&str, String)]) -> Result<Value, String> {
        self.ask(path, params, false).await
    }

    /// A query, as a form body when `post` (a grouped query's selector can
    /// be longer than a URL may be).
    async fn ask(
        &self,
        path: &str,
        params: &[(&str, String)],
        post: bool,
    ) -> Result<Value, String> {
        let url = format!("{}{path}", self.url);
        let request = if post {
            self.client.post(&url).form(params)
        } else {
            self.client.get(&url).query(params)
        };
        let resp = request.send().await.map_err(|e| {
            if e.is_timeout() {
                format!(
                    "Prometheus at {} did not answer within {}",
                    self.url,
                    vedfolnir_core::format_duration(self.timeout.as_millis() as u64)
                )
            } else {
                format!(
                    "cannot reach Prometheus at {}: {}",
                    self.url,
                    crate::errors::chain(&e)
                )
            }
        })?;
        let status = resp.status();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("no content type")
            .to_string();
        let body = super::body_within(resp, MAX_RESPONSE)
            .await
            .map_err(|e| match e {
                super::BodyError::Read(e) if e.is_timeout() => {
                    format!("Prometheus at {} stopped answering mid-response", self.url)
                }
                super::BodyError::Read(e) => format!("reading Prometheus' answer: {e}"),
                too_large => format!(
                    "Prometheus at {} answered with {too_large}: narrow the query",
                    self.url
                ),
            })?;
        let json: Value = serde_json::from_slice(&body).map_err(|_| {
            let start: String = String::from_utf8_lossy(&body).chars().take(60).collect();
            format!(
                "Prometheus at {} answered HTTP {status} with something that is not JSON ({content_type}: {start:?})",
                self.url
            )
        })?;
        if json["status"] != "success" {
            return Err(format!(
                "Prometheus answered HTTP {status}, {}: {}",
                json["errorType"].as_str().unwrap_or("error"),
                json["error"].as_str().unwrap_or("(no message)")
            ));
        }
        Ok(json["data"].clone())
    }

    /// The window of `signal` from `expr` over `[now - span, now]`, read
    /// on its own.
    pub async fn window(
        &self,
        signal: &SignalId,
        expr: &str,
        now: TimestampMs,
        span_ms: u64,
    ) -> SignalWindow {
        let step_s = step_for(span_ms);
        let fetched = async {
            let data = self.range(expr, now, span_ms, step_s, false).await?;
            let samples = one_series(&data, "values")?;
            if samples.is_empty() {
                return Ok((samples, None));
            }
            // The newest real sample: later steps are lookback repeats.
            let newest = self
                .get("/api/v1/query", &newest_query(expr, now))
                .await
                .and_then(|d| one_series(&d, "value"))
                .map_err(|e| format!("reading its newest timestamp: {e}"))?;
            Ok((samples, newest_ms(&newest)))
        };
        finish(signal, expr, fetched.await, now, span_ms, step_s)
    }

    /// The window of `signal` for `service`: with the other services of
    /// its group when its expression can be grouped, else on its own.
    pub async fn window_for(
        &self,
        service: &str,
        signal: &SignalId,
        expr: &str,
        now: TimestampMs,
        span_ms: u64,
    ) -> SignalWindow {
        if let Some(template) = Template::of(expr, service) {
            let group = self.join(template.clone(), span_ms, service);
            if let Some(w) = self
                .grouped(&group, &template, service, signal, expr, (now, span_ms))
                .await
            {
                return w;
            }
        }
        self.window(signal, expr, now, span_ms).await
    }

    /// The group of `template` and `span_ms`, with `service` in it.
    fn join(&self, template: Template, span_ms: u64, service: &str) -> Arc<Group> {
        let key = GroupKey { template, span_ms };
        let group = self
            .groups
            .lock()
            .expect("groups lock")
            .entry(key)
            .or_default()
            .clone();
        group
            .members
            .lock()
            .expect("members lock")
            .insert(service.to_string());
        group
    }

    /// `service`'s window from its group's answer (fetched now, unless a
    /// fresh one covers it); `None` when it is to be read on its own.
    async fn grouped(
        &self,
        group: &Group,
        template: &Template,
        service: &str,
        signal: &SignalId,
        expr: &str,
        (now, span_ms): (TimestampMs, u64),
    ) -> Option<SignalWindow> {
        use std::sync::atomic::Ordering::Relaxed;
        let members = || group.members.lock().expect("members lock");
        if members().len() < 2 || group.ungroupable.load(Relaxed) {
            return None;
        }
        // One fetch at a time: a pass that waited here finds the answer
        // of the fetch it waited for.
        let mut latest = group.latest.lock().await;
        let fresh = latest
            .as_ref()
            .is_some_and(|f| f.at.elapsed() < GROUP_FRESH && f.asked.contains(service));
        if !fresh {
            // The window ends at the pass that fetches; the others share it.
            // Everyone who joined while this pass waited is asked for too.
            let asked: Vec<String> = members().iter().cloned().collect();
            match self.fetch_group(template, &asked, now, span_ms).await {
                Ok(f) => *latest = Some(f),
                Err(Ungroupable(why)) => {
                    group.ungroupable.store(true, Relaxed);
                    tracing::warn!(query = %expr, reason = %why, "this query is read per service from now on");
                    return None;
                }
            }
        }
        let f = latest.as_ref().expect("fetched above");
        let found = match (&f.failed, f.series.get(service)) {
            (Some(why), _) => Err(why.clone()),
            (None, Some(found)) => found.clone(),
            (None, None) => Ok((Vec::new(), None)),
        };
        Some(finish(signal, expr, found, f.now, span_ms, f.step_s))
    }

    /// One range query and one timestamp query for every member (in chunks
    /// of at most [`GROUP_MAX`], fewer for a long window), split by the
    /// `service` label.
    async fn fetch_group(
        &self,
        template: &Template,
        members: &[String],
        now: TimestampMs,
        span_ms: u64,
    ) -> Result<Fetched, Ungroupable> {
        let step_s = step_for(span_ms);
        let points = (span_ms / 1000 / step_s + 1) as usize;
        // About 40 bytes a point and 200 a series, under the bound.
        let chunk = (MAX_RESPONSE / (points * 40 + 200)).clamp(1, GROUP_MAX);
        let mut fetched = Fetched {
            at: crate::clock::monotonic(),
            now,
            step_s,
            asked: members.iter().cloned().collect(),
            series: HashMap::new(),
            failed: None,
        };
        for names in members.chunks(chunk) {
            let names: Vec<&String> = names.iter().collect();
            let expr = template.for_all(&names);
            // The range answer is split first: an expression that loses the
            // label is found before its timestamps are asked for.
            let data = match self.range(&expr, now, span_ms, step_s, true).await {
                Ok(d) => d,
                Err(why) => {
                    fetched.failed = Some(why);
                    break;
                }
            };
            let samples = by_service(&data, "values", &names)?;
            let newest = match self
                .ask("/api/v1/query", &newest_query(&expr, now), true)
                .await
            {
                Ok(d) => by_service(&d, "value", &names)?,
                Err(why) => {
                    fetched.failed = Some(format!("reading its newest timestamp: {why}"));
                    break;
                }
            };
            for (service, s) in samples {
                let t = match newest.get(&service) {
                    Some(Ok(v)) => Ok(newest_ms(v)),
                    Some(Err(e)) => Err(format!("reading its newest timestamp: {e}")),
                    None => Ok(None),
                };
                fetched
                    .series
                    .insert(service, s.and_then(|s| t.map(|t| (s, t))));
            }
        }
        Ok(fetched)
    }

    /// A range query over `[now - span, now]`.
    async fn range(
        &self,
        expr: &str,
        now: TimestampMs,
        span_ms: u64,
        step_s: u64,
        post: bool,
    ) -> Result<Value, String> {
        let start = now - span_ms as i64;
        let params = [
            ("query", expr.to_string()),
            ("start", seconds(start)),
            ("end", seconds(now)),
            ("step", format!("{step_s}s")),
        ];
        self.ask("/api/v1/query_range", &params, post).await
    }

    /// The one series of `expr` from `from` to `to` at a minute's step
    /// (`simulate --history`), in as many range queries as Prometheus'
    /// 11,000 points a query need.
    pub async fn minutes(
        &self,
        expr: &str,
        from: TimestampMs,
        to: TimestampMs,
    ) -> Result<Vec<Sample>, String> {
        const CHUNK_MS: i64 = 10_000 * 60_000;
        let mut out = Vec::new();
        let mut start = from;
        while start < to {
            let end = (start + CHUNK_MS).min(to);
            let span = (end - start) as u64;
            let data = self.range(expr, end, span, 60, false).await?;
            out.extend(
                one_series(&data, "values")?
                    .into_iter()
                    .filter(|s| s.at >= start && s.at < end),
            );
            start = end;
        }
        Ok(out)
    }

    /// Is the server up and ready?
    pub async fn ready(&self) -> Result<(), String> {
        self.get("/api/v1/status/buildinfo", &[]).await.map(|_| ())
    }
}

/// A grouped answer that cannot be split by service: the expression
/// aggregates the `service` label away.
#[derive(Debug)]
struct Ungroupable(String);

/// Seconds, as Prometheus takes a time.
fn seconds(ms: i64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

/// The range query's step: [`STEP_MS`], longer for a long window
/// (Prometheus answers at most 11,000 points per series: a forecast's three
/// days need 26 s).
fn step_for(span_ms: u64) -> u64 {
    (STEP_MS / 1000).max(span_ms.div_ceil(10_000 * 1000))
}

/// The time of the newest real sample, ms, from the answer of
/// [`newest_query`] (its value is a time in seconds).
fn newest_ms(answer: &[Sample]) -> Option<i64> {
    answer.last().map(|s| (s.value * 1000.0) as i64)
}

/// The instant query of `expr`'s newest real sample.
fn newest_query(expr: &str, now: TimestampMs) -> [(&'static str, String); 2] {
    [
        ("query", format!("timestamp({expr})")),
        ("time", seconds(now)),
    ]
}

/// A signal's window from what was read of it: the samples and the newest
/// real one's time, or why not.
fn finish(
    signal: &SignalId,
    expr: &str,
    read: Found,
    now: TimestampMs,
    span_ms: u64,
    step_s: u64,
) -> SignalWindow {
    let missing = |reason: String| SignalWindow {
        signal: signal.clone(),
        samples: vec![],
        missing_reason: Some(format!("prometheus {expr:?}: {reason}")),
    };
    let (mut samples, newest) = match read {
        Ok(r) => r,
        Err(e) => return missing(e),
    };
    if samples.is_empty() {
        return missing("no data in the window (empty result)".into());
    }
    match newest {
        Some(t) => samples.retain(|s| s.at <= t + step_s as i64 * 1000),
        None => return missing("no sample within Prometheus' lookback".into()),
    }
    if samples.iter().all(|s| !s.value.is_finite()) {
        let v = samples.last().map(|s| s.value).unwrap_or(f64::NAN);
        return missing(format!("the value is {v} (not a number)"));
    }
    // Older than an hour, 15-minute means, as the docker history keeps.
    if span_ms > vedfolnir_core::window::FINE_MS {
        let mut pairs: Vec<(i64, f64)> = samples.iter().map(|s| (s.at, s.value)).collect();
        vedfolnir_core::window::compact(
            &mut pairs,
            now - vedfolnir_core::window::FINE_MS as i64,
            vedfolnir_core::window::BUCKET_MS,
        );
        samples = pairs
            .into_iter()
            .map(|(at, value)| Sample { at, value })
            .collect();
    }
    SignalWindow {
        signal: signal.clone(),
        samples,
        missing_reason: None,
    }
}

/// A grouped answer split by the `service` label: each member's samples,
/// or why not (several series for one member). A series without a
/// member's `service` means the expression aggregated the label away.
fn by_service(
    data: &Value,
    key: &str,
    members: &[&String],
) -> Result<HashMap<String, Result<Vec<Sample>, String>>, Ungroupable> {
    let result = match (data["resultType"].as_str(), data["result"].as_array()) {
        (Some("matrix" | "vector"), Some(r)) => r,
        (other, _) => return Err(Ungroupable(format!("a grouped answer of type {other:?}"))),
    };
    let members: std::collections::HashSet<&str> = members.iter().map(|m| m.as_str()).collect();
    let mut out: HashMap<String, Vec<&Value>> = HashMap::new();
    for series in result {
        let service = series["metric"]["service"].as_str();
        match service.filter(|s| members.contains(s)) {
            Some(s) => out.entry(s.to_string()).or_default().push(series),
            None => {
                return Err(Ungroupable(format!(
                    "a series without a member's service label: {}",
                    series["metric"]
                )));
            }
        }
    }
    Ok(out
        .into_iter()
        .map(|(service, series)| {
            let one = serde_json::json!({
                "resultType": data["resultType"],
                "result": series,
            });
            (service, one_series(&one, key))
        })
        .collect())
}

impl MetricSource for Prometheus {
    fn kind(&self) -> SourceKind {
        SourceKind::Prometheus
    }

    /// Each signal's window from its expression, queried concurrently.
    fn read<'a>(&'a self, ask: &'a Ask<'a>) -> BoxFuture<'a, SourceReport> {
        Box::pin(async move {
            let queries = ask.signals.iter().filter_map(|s| match &s.source {
                Source::Prometheus { query } => {
                    Some(self.window_for(ask.service, &s.signal, query, ask.now, ask.span_ms))
                }
                _ => None,
            });
            SourceReport {
                readings: futures_util::future::join_all(queries)
                    .await
                    .into_iter()
                    .map(Reading::Window)
                    .collect(),
                ..Default::default()
            }
        })
    }
}

fn parse_value(pair: &Value) -> Result<Sample, String> {
    let t = pair[0]
        .as_f64()
        .ok_or_else(|| format!("a sample without a timestamp: {pair}"))?;
    let text = pair[1]
        .as_str()
        .ok_or_else(|| format!("a sample without a value: {pair}"))?;
    let value = match text {
        "NaN" => f64::NAN,
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other
            .parse()
            .map_err(|_| format!("a sample value that is not a number: {other:?}"))?,
    };
    Ok(Sample {
        at: (t * 1000.0).round() as i64,
        value,
    })
}

/// The samples of the one series in a query result (`key` is `values` for
/// a matrix, `value` for a vector), or why there is not exactly one.
pub fn one_series(data: &Value, key: &str) -> Result<Vec<Sample>, String> {
    match data["resultType"].as_str() {
        Some("scalar") => return Ok(vec![parse_value(&data["result"])?]),
        Some("matrix") | Some("vector") => {}
        other => return Err(format!("unexpected result type {other:?}")),
    }
    let result = data["result"]
        .as_array()
        .ok_or("a result that is not a list")?;
    match result.len() {
        0 => Ok(vec![]),
        1 => {
            let series = &result[0];
            match (&series[key], key) {
                (Value::Array(values), "values") => values.iter().map(parse_value).collect(),
                (pair, "value") => Ok(vec![parse_value(pair)?]),
                _ => Err(format!("a series without {key}")),
            }
        }
        n => {
            let labels: Vec<String> = result
                .iter()
                .take(3)
                .map(|s| s["metric"].to_string())
                .collect();
            Err(format!(
                "{n} series where one value per service is needed ({}{}); aggregate them (sum by (service) ...) or narrow the selector",
                labels.join(", "),
                if n > 3 { ", ..." } else { "" }
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_strings_are_kept_as_non_finite_not_zero() {
        let d = serde_json::json!({"resultType": "vector", "result": [
            {"metric": {}, "value": [1.5, "NaN"]}]});
        let s = one_series(&d, "value").unwrap();
        assert!(s[0].value.is_nan());
        assert_eq!(s[0].at, 1500);
        let d = serde_json::json!({"resultType": "matrix", "result": [
            {"metric": {}, "values": [[1, "+Inf"], [2, "-Inf"], [3, "0.25"]]}]});
        let s = one_series(&d, "values").unwrap();
        assert_eq!(s[0].value, f64::INFINITY);
        assert_eq!(s[1].value, f64::NEG_INFINITY);
        assert_eq!(s[2].value, 0.25);
    }

    #[test]
    fn several_series_are_refused_with_their_labels() {
        let d = serde_json::json!({"resultType": "vector", "result": [
            {"metric": {"service": "a"}, "value": [1, "1"]},
            {"metric": {"service": "b"}, "value": [1, "2"]}]});
        let e = one_series(&d, "value").unwrap_err();
        assert!(e.contains("2 series"), "{e}");
        assert!(e.contains(r#"{"service":"a"}"#), "{e}");
    }

    #[test]
    fn a_scalar_is_one_value_and_an_empty_vector_none() {
        let d = serde_json::json!({"resultType": "scalar", "result": [5, "3"]});
        assert_eq!(one_series(&d, "value").unwrap()[0].value, 3.0);
        let d = serde_json::json!({"resultType": "vector", "result": []});
        assert!(one_series(&d, "value").unwrap().is_empty());
        let d = serde_json::json!({"resultType": "vector", "result": [
            {"metric": {}, "value": [1, "many"]}]});
        assert!(one_series(&d, "value").unwrap_err().contains("\"many\""));
    }

    /// A one-file HTTP server on loopback answering every request with
    /// `answer(path_and_query)` after `delay`; returns its URL.
    fn serve(
        delay: Duration,
        answer: impl Fn(&str) -> (u16, &'static str, String) + Send + 'static,
    ) -> String {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                use std::io::Read as _;
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let mut h = String::new();
                let mut length = 0;
                while reader.read_line(&mut h).map(|n| n > 2).unwrap_or(false) {
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    h.clear();
                }
                let mut target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                // A form body (a grouped query) is answered as its query string.
                if length > 0 {
                    let mut body = vec![0; length];
                    let _ = reader.read_exact(&mut body);
                    target = format!("{target}?{}", String::from_utf8_lossy(&body));
                }
                std::thread::sleep(delay);
                let (status, ctype, body) = answer(&target);
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        url
    }

    const NOW: TimestampMs = 1_800_000_000_000;
    /// `simulate --history` reads days at a minute's step: in range queries
    /// of at most 10,000 points, none counted twice, every minute once.
    #[test]
    fn a_records_minutes_come_in_queries_prometheus_accepts_each_minute_once() {
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = asked.clone();
        let url = serve(Duration::ZERO, move |target| {
            let param = |k: &str| -> f64 {
                target
                    .split(['?', '&'])
                    .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                    .unwrap()
                    .trim_end_matches('s')
                    .parse()
                    .unwrap()
            };
            let (start, end, step) = (param("start"), param("end"), param("step"));
            log.lock().unwrap().push((end - start) / step);
            let mut values = Vec::new();
            let mut t = start;
            while t <= end {
                values.push(format!("[{t},\"{}\"]", t / 60.0));
                t += step;
            }
            (
                200,
                "application/json",
                matrix(&format!("[{}]", values.join(","))),
            )
        });
        let from = NOW - 8 * 86_400_000;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let p = Prometheus::new(&url, Duration::from_secs(5));
        let got = rt.block_on(p.minutes("load", from, NOW)).unwrap();
        assert_eq!(got.len(), 8 * 1440);
        assert!(got.windows(2).all(|w| w[1].at - w[0].at == 60_000));
        assert_eq!(got[0].at, from);
        assert_eq!(got[0].value, from as f64 / 60_000.0);
        let points = asked.lock().unwrap().clone();
        assert_eq!(points.len(), 2, "{points:?}");
        assert!(points.iter().all(|n| *n <= 10_000.0), "{points:?}");
    }

    fn matrix(values: &str) -> String {
        format!(
            r#"{{"status":"success","data":{{"resultType":"matrix","result":[{{"metric":{{"service":"web"}},"values":{values}}}]}}}}"#
        )
    }

    fn vector(t: f64, v: &str) -> String {
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[{t},"{v}"]}}]}}}}"#
        )
    }

    fn window_from(url: &str) -> SignalWindow {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let p = Prometheus::new(url, Duration::from_millis(300));
        rt.block_on(p.window(&SignalId::QueueDepth, "vedfolnir:queue_depth", NOW, 60_000))
    }

    fn reason(w: &SignalWindow) -> String {
        assert!(w.samples.is_empty(), "{w:?}");
        w.missing_reason.clone().expect("a reason")
    }

    #[test]
    fn a_days_long_window_asks_for_a_longer_step_and_arrives_as_bucket_means() {
        let day = 86_400_000u64;
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let log = seen.clone();
        let now = NOW as f64 / 1000.0;
        let url = serve(Duration::ZERO, move |path| {
            log.lock().unwrap().push(path.to_string());
            if path.starts_with("/api/v1/query_range") {
                // Every 26 s for three days, as Prometheus would answer.
                let n = (3 * day / 26_000) as i64;
                let values: Vec<String> = (0..=n)
                    .rev()
                    .map(|i| format!("[{},\"0.5\"]", now - (i * 26) as f64))
                    .collect();
                (
                    200,
                    "application/json",
                    matrix(&format!("[{}]", values.join(","))),
                )
            } else {
                (200, "application/json", vector(now, &now.to_string()))
            }
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let p = Prometheus::new(&url, Duration::from_secs(5));
        let w = rt.block_on(p.window(&SignalId::Cpu, "x", NOW, 3 * day));
        let paths = seen.lock().unwrap();
        // 3 days in at most 10,000 points: a 26 s step (Prometheus refuses
        // more than 11,000 points).
        assert!(paths[0].contains("step=26s"), "{}", paths[0]);
        // Older than an hour: 15-minute means; the last hour whole.
        let n = w.samples.len();
        assert!((71 * 4..=72 * 4 + 175).contains(&n), "{n}");
        assert!(w.samples.iter().all(|s| s.value == 0.5));
        assert!(w.samples.windows(2).all(|p| p[0].at < p[1].at));
    }

    #[test]
    fn a_good_answer_is_a_window_cut_at_the_newest_real_sample() {
        let now = NOW as f64 / 1000.0;
        let url = serve(Duration::ZERO, move |path| {
            if path.starts_with("/api/v1/query_range") {
                let values = format!(
                    "[[{},\"10\"],[{},\"12\"],[{},\"12\"],[{},\"12\"]]",
                    now - 45.0,
                    now - 30.0,
                    now - 15.0,
                    now
                );
                (200, "application/json", matrix(&values))
            } else {
                // The newest real sample is 31 s old: the last two steps
                // are Prometheus' lookback repeating it.
                (
                    200,
                    "application/json",
                    vector(now, &format!("{}", now - 31.0)),
                )
            }
        });
        let w = window_from(&url);
        assert_eq!(w.missing_reason, None);
        assert_eq!(
            w.samples
                .iter()
                .map(|s| (s.at, s.value))
                .collect::<Vec<_>>(),
            [(NOW - 45_000, 10.0), (NOW - 30_000, 12.0)]
        );
    }

    #[test]
    fn an_answer_larger_than_the_bound_is_refused_not_held() {
        let url = serve(Duration::ZERO, |_| {
            // Valid JSON, padded past the bound.
            let pad = " ".repeat(MAX_RESPONSE);
            (
                200,
                "application/json",
                format!("{{\"status\":\"success\"{pad}}}"),
            )
        });
        let r = reason(&window_from(&url));
        assert!(
            r.contains(&format!("more than {MAX_RESPONSE} bytes")),
            "{r}"
        );
        assert!(r.contains("narrow the query"), "{r}");
    }

    #[test]
    fn prometheus_down_is_missing_with_the_address() {
        // A port nothing listens on.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        drop(l);
        let r = reason(&window_from(&url));
        assert!(
            r.contains("cannot reach Prometheus at http://127.0.0.1:"),
            "{r}"
        );
        assert!(r.contains("vedfolnir:queue_depth"), "{r}");
    }

    #[test]
    fn a_slow_prometheus_is_cut_off_at_the_timeout() {
        let url = serve(Duration::from_secs(2), |_| {
            (200, "application/json", vector(1.0, "1"))
        });
        let started = crate::clock::Stopwatch::start();
        let r = reason(&window_from(&url));
        assert!(r.contains("did not answer within 300ms"), "{r}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn html_error_json_nan_and_several_series_are_missing_never_zero() {
        let cases: [(u16, &'static str, String, &str); 5] = [
            (
                200,
                "text/html",
                "<html><body>login</body></html>".into(),
                "not JSON (text/html: \"<html><body>login",
            ),
            (
                400,
                "application/json",
                r#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#.into(),
                "HTTP 400 Bad Request, bad_data: parse error at char 5",
            ),
            (
                200,
                "application/json",
                matrix(&format!("[[{},\"NaN\"]]", NOW / 1000)),
                "not a number",
            ),
            (
                200,
                "application/json",
                r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"instance":"a"},"values":[[1,"1"]]},{"metric":{"instance":"b"},"values":[[1,"2"]]}]}}"#.into(),
                "2 series where one value per service is needed",
            ),
            (
                200,
                "application/json",
                r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#.into(),
                "empty result",
            ),
        ];
        for (status, ctype, body, expected) in cases {
            let ts = vector(NOW as f64 / 1000.0, &format!("{}", NOW / 1000));
            let url = serve(Duration::ZERO, move |path| {
                if path.starts_with("/api/v1/query_range") {
                    (status, ctype, body.clone())
                } else {
                    (200, "application/json", ts.clone())
                }
            });
            let r = reason(&window_from(&url));
            assert!(r.contains(expected), "expected {expected:?} in {r:?}");
        }
    }

    /// The query a request asked, decoded.
    fn query_of(target: &str) -> String {
        let q = target.split("query=").nth(1).unwrap_or("");
        let q = q.split('&').next().unwrap_or("");
        let mut out = Vec::new();
        let bytes = q.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).unwrap()
    }

    /// A fake Prometheus holding `q{service=...}` for `services`: a range
    /// answer with one series per service asked for (the services in a
    /// `service=~"a|b"` or `service="a"` matcher), each with the service's
    /// number as its value, and their timestamps. `aggregate` answers as
    /// an expression that sums the label away would. Every query is logged.
    fn fake(
        services: &'static [&'static str],
        aggregate: bool,
    ) -> (String, Arc<Mutex<Vec<String>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let now = NOW as f64 / 1000.0;
        let url = serve(Duration::ZERO, move |target| {
            let query = query_of(target);
            log.lock().unwrap().push(query.clone());
            let asked: Vec<&str> = services
                .iter()
                .copied()
                .filter(|s| {
                    query.contains(&format!("service=\"{s}\""))
                        || query.split("service=~\"").nth(1).is_some_and(|r| {
                            r.split('"').next().unwrap().split('|').any(|n| n == *s)
                        })
                })
                .collect();
            let label = |s: &str| {
                if aggregate {
                    "{}".to_string()
                } else {
                    format!("{{\"service\":\"{s}\"}}")
                }
            };
            let value = |s: &str| s.trim_start_matches("app").to_string();
            let series: Vec<String> = asked
                .iter()
                .map(|s| {
                    if target.starts_with("/api/v1/query_range") {
                        format!(
                            "{{\"metric\":{},\"values\":[[{},\"{}\"],[{now},\"{}\"]]}}",
                            label(s),
                            now - 15.0,
                            value(s),
                            value(s)
                        )
                    } else {
                        format!("{{\"metric\":{},\"value\":[{now},\"{now}\"]}}", label(s))
                    }
                })
                .collect();
            let kind = if target.starts_with("/api/v1/query_range") {
                "matrix"
            } else {
                "vector"
            };
            (
                200,
                "application/json",
                format!(
                    "{{\"status\":\"success\",\"data\":{{\"resultType\":\"{kind}\",\"result\":[{}]}}}}",
                    series.join(",")
                ),
            )
        });
        (url, seen)
    }

    /// Each service's pass, in turn, on one source: (service, its window).
    fn passes(p: &Prometheus, order: &[&str]) -> Vec<(String, SignalWindow)> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        order
            .iter()
            .map(|s| {
                let expr = format!("q{{service=\"{s}\"}}");
                let w = rt.block_on(p.window_for(s, &SignalId::QueueDepth, &expr, NOW, 60_000));
                (s.to_string(), w)
            })
            .collect()
    }

    #[test]
    fn services_whose_queries_differ_only_in_their_label_share_one_query_pair() {
        let (url, seen) = fake(&["app1", "app2", "app3"], false);
        let p = Prometheus::new(&url, Duration::from_secs(5));
        let got = passes(&p, &["app1", "app2", "app3", "app1", "app2", "app3"]);
        for (service, w) in &got {
            assert_eq!(w.missing_reason, None, "{service}: {w:?}");
            let want: f64 = service.trim_start_matches("app").parse().unwrap();
            assert_eq!(w.samples.last().unwrap().value, want, "{service}: {w:?}");
        }
        let queries = seen.lock().unwrap().clone();
        // app1 alone: its own pair. app2 joins: one grouped pair for both.
        // app3 joins: one grouped pair for all three. Then the kept answer.
        assert_eq!(queries.len(), 6, "{queries:#?}");
        assert_eq!(queries[0], "q{service=\"app1\"}");
        assert_eq!(queries[2], "q{service=~\"app1|app2\"}");
        assert_eq!(queries[4], "q{service=~\"app1|app2|app3\"}");
        assert_eq!(queries[5], "timestamp(q{service=~\"app1|app2|app3\"})");
    }

    #[test]
    fn a_member_missing_from_the_grouped_answer_is_missing_alone() {
        // Prometheus holds app1 and app2; app9 has no series.
        let (url, _) = fake(&["app1", "app2"], false);
        let p = Prometheus::new(&url, Duration::from_secs(5));
        let got = passes(&p, &["app1", "app9", "app2"]);
        let reason = |s: &str| {
            got.iter()
                .find(|(n, _)| n == s)
                .unwrap()
                .1
                .missing_reason
                .clone()
        };
        assert_eq!(reason("app1"), None);
        assert_eq!(reason("app2"), None);
        let r = reason("app9").expect("app9 is missing");
        assert!(r.contains("empty result") && r.contains("app9"), "{r}");
    }

    #[test]
    fn an_expression_that_aggregates_the_label_away_is_read_per_service() {
        let (url, seen) = fake(&["app1", "app2"], true);
        let p = Prometheus::new(&url, Duration::from_secs(5));
        let got = passes(&p, &["app1", "app2", "app1", "app2"]);
        for (service, w) in &got {
            assert_eq!(w.missing_reason, None, "{service}: {w:?}");
        }
        let queries = seen.lock().unwrap().clone();
        // One grouped range query is tried, then only per-service ones.
        let grouped = queries.iter().filter(|q| q.contains("=~")).count();
        assert_eq!(grouped, 1, "{queries:#?}");
        assert!(
            queries.last().unwrap().contains("service=\"app2\""),
            "{queries:#?}"
        );
    }

    #[test]
    fn only_a_query_holding_its_own_service_matcher_once_is_a_template() {
        let t = Template::of("sum(rate(x{service=\"a.b\",job=\"j\"}[1m]))", "a.b").unwrap();
        assert_eq!(
            t.for_all(&[&"a.b".to_string(), &"c".to_string()]),
            r#"sum(rate(x{service=~"a\\.b|c",job="j"}[1m]))"#
        );
        assert_eq!(Template::of("x{my_service=\"a\"}", "a"), None);
        assert_eq!(
            Template::of("x{service=\"a\"} / y{service=\"a\"}", "a"),
            None
        );
        assert_eq!(Template::of("x{service=\"b\"}", "a"), None);
    }
}
