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

use std::time::Duration;

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
        }
    }

    async fn get(&self, path: &str, params: &[(&str, String)]) -> Result<Value, String> {
        let url = format!("{}{path}", self.url);
        let resp = self
            .client
            .get(&url)
            .query(params)
            .send()
            .await
            .map_err(|e| {
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

    /// The window of `signal` from `expr` over `[now - span, now]`.
    pub async fn window(
        &self,
        signal: &SignalId,
        expr: &str,
        now: TimestampMs,
        span_ms: u64,
    ) -> SignalWindow {
        let missing = |reason: String| SignalWindow {
            signal: signal.clone(),
            samples: vec![],
            missing_reason: Some(format!("prometheus {expr:?}: {reason}")),
        };
        let secs = |ms: i64| format!("{:.3}", ms as f64 / 1000.0);
        let start = now - span_ms as i64;
        // Prometheus answers at most 11,000 points per series: a forecast's
        // days need a longer step (3 days: 26 s).
        let step_s = (STEP_MS / 1000).max(span_ms.div_ceil(10_000 * 1000));
        let data = match self
            .get(
                "/api/v1/query_range",
                &[
                    ("query", expr.to_string()),
                    ("start", secs(start)),
                    ("end", secs(now)),
                    ("step", format!("{step_s}s")),
                ],
            )
            .await
        {
            Ok(d) => d,
            Err(e) => return missing(e),
        };
        let mut samples = match one_series(&data, "values") {
            Ok(s) => s,
            Err(e) => return missing(e),
        };
        if samples.is_empty() {
            return missing("no data in the window (empty result)".into());
        }
        // The newest real sample: later steps are lookback repeats.
        let newest = match self
            .get(
                "/api/v1/query",
                &[("query", format!("timestamp({expr})")), ("time", secs(now))],
            )
            .await
            .and_then(|d| one_series(&d, "value"))
        {
            Ok(v) => v.last().map(|s| (s.value * 1000.0) as i64),
            Err(e) => return missing(format!("reading its newest timestamp: {e}")),
        };
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

    /// Is the server up and ready?
    pub async fn ready(&self) -> Result<(), String> {
        self.get("/api/v1/status/buildinfo", &[]).await.map(|_| ())
    }
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
                    Some(self.window(&s.signal, query, ask.now, ask.span_ms))
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
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let mut h = String::new();
                while reader.read_line(&mut h).map(|n| n > 2).unwrap_or(false) {
                    h.clear();
                }
                let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
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
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
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
}
