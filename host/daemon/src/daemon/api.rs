//! The daemon's HTTP server, on 127.0.0.1 by default:
//!
//! | method | path | |
//! |---|---|---|
//! | GET | `/` | the status page (HTML, refreshing itself): replicas over time, signals against thresholds, decisions, load errors |
//! | GET | `/health` | `ok` while the daemon runs |
//! | GET | `/metrics` | OpenMetrics |
//! | GET | `/api/v1/status` | per service: replicas, signals, scores, last decision, policy version, shadow, errors; failed files by path and stage |
//! | GET | `/api/v1/decisions?service=&limit=` | recent audit records, newest first |
//! | POST | `/api/v1/services/{service}/scale` | `{"replicas": N, "reason": "..."}`, bounded by min/max |
//! | POST | `/api/v1/services/{service}/pause` | stop automatic scaling (`{"reason": "..."}` optional) |
//! | POST | `/api/v1/services/{service}/resume` | resume it |
//! | POST | `/webhook/alertmanager` | Alertmanager notifications |
//!
//! Every POST needs `Authorization: Bearer <token>`, and is off (403) while
//! its token is not configured. The endpoints under `/api/v1` take the API
//! token (`--api-token-file` or `VEDFOLNIR_API_TOKEN`); the webhook takes its
//! own (`--alertmanager-token-file` or `VEDFOLNIR_ALERTMANAGER_TOKEN`), so
//! Alertmanager's credential cannot scale a service. The GET endpoints are
//! open to whoever reaches the listener. The API's POSTs are rate-limited
//! together: a burst of
//! `BURST`, then one per `REFILL`; beyond that, 429 with `Retry-After`.
//! A request runs in the service's loop between passes, so it never
//! overlaps an automatic scale.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use super::shared::{LoopCommand, Shared};
use crate::audit::{Actor, AuditRecord, Event};
use crate::controller::PassError;
use crate::controller::manual::{self, ManualError};
use crate::errors::chain;
use crate::telemetry::metrics::KindLabel;

/// What the handlers share: the daemon's state and the write endpoints'
/// rate limit.
#[derive(Debug)]
pub struct Api {
    shared: Arc<Shared>,
    limiter: Mutex<Limiter>,
}

impl std::ops::Deref for Api {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.shared
    }
}

/// Requests allowed at once.
pub const BURST: f64 = 5.0;
/// Time for one more.
pub const REFILL: Duration = Duration::from_secs(1);

/// A token bucket over the write endpoints.
#[derive(Debug)]
pub struct Limiter {
    tokens: f64,
    at: Instant,
}

impl Limiter {
    /// A full bucket at `now`.
    pub fn new(now: Instant) -> Limiter {
        Limiter {
            tokens: BURST,
            at: now,
        }
    }
}

impl Limiter {
    /// Take a token, or say how long until one is free.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let refilled = now.saturating_duration_since(self.at).as_secs_f64() / REFILL.as_secs_f64();
        self.tokens = (self.tokens + refilled).min(BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(REFILL.mul_f64(1.0 - self.tokens))
        }
    }
}

/// Compare without an early exit, so the time taken says nothing about
/// how much of a guess was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i % b.len().max(1)).copied().unwrap_or(0));
    }
    diff == 0
}

fn json(code: u16, body: serde_json::Value) -> Response {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response()
}

fn count(shared: &Api, service: &str, result: &str) {
    shared
        .telemetry
        .emit(crate::telemetry::Event::ApiRequest { service, result });
}

/// Rate limit, then the API token. `Err` is the refusal to send.
fn admit(shared: &Api, headers: &HeaderMap, service: &str) -> Result<(), Box<Response>> {
    if let Err(wait) = shared
        .limiter
        .lock()
        .expect("limiter lock")
        .take(crate::clock::monotonic())
    {
        count(shared, service, "rate-limited");
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        let mut r = json(
            429,
            serde_json::json!({ "error": format!("too many requests: at most {BURST} at once, then one per {}s; retry in {secs}s", REFILL.as_secs()) }),
        );
        r.headers_mut().insert(
            "retry-after",
            secs.to_string()
                .parse()
                .expect("a number is a header value"),
        );
        return Err(Box::new(r));
    }
    authorize(&API_WRITES, shared.options.api_token.as_deref(), headers).map_err(|refusal| {
        count(shared, service, refusal.result);
        tracing::warn!(service = %service, "API request refused: {}", refusal.result);
        refusal.response
    })
}

/// An endpoint behind a bearer token, for the words of its refusals.
struct Guarded {
    /// What it is, as a refusal names it.
    what: &'static str,
    /// "is" or "are", to agree with `what`.
    verb: &'static str,
    /// Where its token is configured.
    configured_by: &'static str,
}

const API_WRITES: Guarded = Guarded {
    what: "the API's write endpoints",
    verb: "are",
    configured_by: "--api-token-file or VEDFOLNIR_API_TOKEN",
};

const ALERTMANAGER_WEBHOOK: Guarded = Guarded {
    what: "the Alertmanager webhook",
    verb: "is",
    configured_by: "--alertmanager-token-file or VEDFOLNIR_ALERTMANAGER_TOKEN",
};

/// Why a request was refused (`result`: disabled, unauthorized), and the
/// response that says so.
struct Refusal {
    result: &'static str,
    response: Box<Response>,
}

/// Check the bearer token: 403 while no token is configured (the endpoint
/// is off), 401 without the right one. The comparison takes the same time
/// wherever the tokens differ.
fn authorize(endpoint: &Guarded, token: Option<&str>, headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(token) = token else {
        return Err(Refusal {
            result: "disabled",
            response: Box::new(json(
                403,
                serde_json::json!({ "error": format!("{} {} off: no token is configured ({})", endpoint.what, endpoint.verb, endpoint.configured_by) }),
            )),
        });
    };
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(g) if same(g.as_bytes(), token.as_bytes()) => Ok(()),
        other => {
            let mut r = json(
                401,
                serde_json::json!({ "error": if other.is_some() { "wrong token".to_string() } else { format!("{} need a bearer token (Authorization: Bearer <token>)", endpoint.what) } }),
            );
            r.headers_mut().insert(
                "www-authenticate",
                "Bearer realm=\"vedfolnir-autoscaler\""
                    .parse()
                    .expect("header value"),
            );
            Err(Refusal {
                result: "unauthorized",
                response: Box::new(r),
            })
        }
    }
}

/// Send a request to a service's loop, wait for its answer, and turn it
/// into a response. The request (`what`, in words) is audited as
/// `requested` before it is sent and `answered` with the status after, so
/// one the daemon dies under is on record: the next start finds it
/// unanswered and says so ([`crate::controller::reconcile`]).
async fn ask<T>(
    shared: &Api,
    service: &str,
    what: String,
    make: impl FnOnce(oneshot::Sender<T>, String) -> LoopCommand,
    respond: impl FnOnce(T) -> (u16, serde_json::Value),
) -> Response {
    let tx = match sender(shared, service) {
        Ok(tx) => tx,
        Err(refused) => return *refused,
    };
    let requested = AuditRecord {
        reasons: vec![what],
        ..AuditRecord::new(
            service,
            Event::Requested,
            Actor::Api,
            crate::clock::now_ms(),
        )
    };
    if let Err(e) = record(shared, requested.clone()).await {
        count(shared, service, "failed");
        return json(
            500,
            serde_json::json!({ "error": format!("cannot record the request: {e}") }),
        );
    }
    let (reply, answer) = oneshot::channel();
    let sent = tx.try_send(make(reply, requested.action_id.clone()));
    let (code, body) = if let Err(e) = sent {
        let (result, error) = match e {
            mpsc::error::TrySendError::Full(_) => (
                "busy",
                format!("{service} has too many requests waiting; retry later"),
            ),
            mpsc::error::TrySendError::Closed(_) => (
                "stopping",
                // The loop closed its channel: the daemon is stopping, or
                // the service's policy file was removed. The request was
                // recorded, and nothing was done.
                format!(
                    "{service}'s loop has stopped (the daemon is stopping, or its policy file was removed); nothing was done"
                ),
            ),
        };
        count(shared, service, result);
        (503, serde_json::json!({ "error": error }))
    } else {
        match answer.await {
            Ok(answer) => {
                let (code, body) = respond(answer);
                count(shared, service, if code < 300 { "ok" } else { "failed" });
                (code, body)
            }
            Err(_) => (
                503,
                serde_json::json!({ "error": format!("{service}'s loop stopped before answering") }),
            ),
        }
    };
    let answered = AuditRecord {
        event: Event::Answered,
        time_ms: crate::clock::now_ms(),
        reasons: vec![format!("HTTP {code}")],
        ..requested
    };
    if let Err(e) = record(shared, answered).await {
        tracing::warn!(service = %service, "cannot record the answer to an API request: {e}");
    }
    json(code, body)
}

/// The service's request channel; a refusal while the daemon stops or
/// when no policy scales the service.
fn sender(shared: &Api, service: &str) -> Result<mpsc::Sender<LoopCommand>, Box<Response>> {
    if shared.stopping.load(std::sync::atomic::Ordering::SeqCst) {
        count(shared, service, "stopping");
        return Err(Box::new(json(
            503,
            serde_json::json!({ "error": "the daemon is stopping; send the request again once it is back" }),
        )));
    }
    let tx = shared
        .commands
        .lock()
        .expect("commands lock")
        .get(service)
        .cloned();
    tx.ok_or_else(|| {
        count(shared, service, "not-found");
        Box::new(json(
            404,
            serde_json::json!({ "error": format!("no policy scales a service named {service:?}") }),
        ))
    })
}

/// Append one audit record off the async threads (it is fsynced).
async fn record(shared: &Api, r: AuditRecord) -> Result<(), String> {
    let audit = shared.audit.clone();
    match tokio::task::spawn_blocking(move || audit.append(&r)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(chain(&e)),
        Err(e) => Err(e.to_string()),
    }
}

/// An error as the API answers it: the engine's are 502, a refusal 409,
/// the rest 500.
fn error_reply(e: &ManualError) -> (u16, serde_json::Value) {
    let code = match e {
        ManualError::Refused { .. } | ManualError::Standby { .. } => 409,
        ManualError::Pass(PassError::Engine(_)) => 502,
        ManualError::Pass(_) => 500,
    };
    (code, serde_json::json!({ "error": chain(e) }))
}

/// A manual scale's outcome as the API answers it.
fn scale_reply(
    service: &str,
    answer: Result<manual::Outcome, ManualError>,
) -> (u16, serde_json::Value) {
    match answer {
        Err(e) => error_reply(&e),
        Ok(manual::Outcome::NothingToDo { at, .. }) => (
            200,
            serde_json::json!({ "service": service, "replicas": at, "result": "nothing to do: already there" }),
        ),
        Ok(manual::Outcome::WouldScale {
            decision, notes, ..
        }) => (
            200,
            serde_json::json!({ "service": service, "dry_run": true, "would_scale": { "from": decision.current, "to": decision.target }, "notes": notes }),
        ),
        Ok(manual::Outcome::Scaled { notes, report, .. }) => (
            if report.outcome == crate::actuators::Outcome::Succeeded {
                200
            } else {
                502
            },
            serde_json::json!({ "service": service, "notes": notes, "report": report }),
        ),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScaleBody {
    replicas: u32,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PauseBody {
    #[serde(default)]
    reason: Option<String>,
}

fn bad_body(e: impl std::fmt::Display) -> Response {
    json(
        400,
        serde_json::json!({ "error": format!("bad request body: {e}") }),
    )
}

async fn scale(
    State(shared): State<Arc<Api>>,
    Path(service): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = admit(&shared, &headers, &service) {
        return *r;
    }
    let b: ScaleBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return bad_body(format!(
                "{e} (expected {{\"replicas\": N, \"reason\": \"...\"}})"
            ));
        }
    };
    let what = format!(
        "scale to {}{}",
        b.replicas,
        b.reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default()
    );
    ask(
        &shared,
        &service,
        what,
        |reply, request| LoopCommand::Scale {
            replicas: b.replicas,
            reason: b.reason,
            request,
            reply,
        },
        |answer| scale_reply(&service, answer),
    )
    .await
}

async fn pause_or_resume(
    shared: Arc<Api>,
    service: String,
    headers: HeaderMap,
    body: axum::body::Bytes,
    paused: bool,
) -> Response {
    if let Err(r) = admit(&shared, &headers, &service) {
        return *r;
    }
    let b: PauseBody = if body.iter().all(u8::is_ascii_whitespace) {
        PauseBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => return bad_body(e),
        }
    };
    let what = format!(
        "{}{}",
        if paused { "pause" } else { "resume" },
        b.reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default()
    );
    ask(
        &shared,
        &service,
        what,
        |reply, request| LoopCommand::Pause {
            paused,
            reason: b.reason,
            request,
            reply,
        },
        |answer: Result<bool, PassError>| match answer {
            Ok(changed) => (
                200,
                serde_json::json!({ "service": service, "paused": paused, "changed": changed }),
            ),
            Err(e) => (500, serde_json::json!({ "error": chain(&e) })),
        },
    )
    .await
}

async fn pause(
    State(shared): State<Arc<Api>>,
    Path(service): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    pause_or_resume(shared, service, headers, body, true).await
}

async fn resume(
    State(shared): State<Arc<Api>>,
    Path(service): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    pause_or_resume(shared, service, headers, body, false).await
}

async fn status(State(shared): State<Arc<Api>>) -> Response {
    let lease = lease_view(&shared).await;
    let status = shared.status.lock().expect("status lock");
    let body = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "dry_run": shared.options.dry_run,
        "interval_ms": shared.options.interval.as_millis() as u64,
        "lease": lease,
        "services": status.services,
        "load_errors": status.load_errors.values().collect::<Vec<_>>(),
        "modules": status.modules,
        "missing_folders": status.missing_roots,
    });
    json(200, body)
}

/// The lease of the Swarm targets as the status shows it: this daemon's
/// role, the epoch, the holder; `null` while no Swarm target is served.
pub(crate) async fn lease_view(shared: &Shared) -> serde_json::Value {
    let Some(task) = shared.lease.lock().await.as_ref().map(|t| t.lease.clone()) else {
        return serde_json::Value::Null;
    };
    let role = task.role.borrow().clone();
    let holder = match &role {
        crate::lease::Role::Leader { .. } => Some(task.me.clone()),
        crate::lease::Role::Standby { holder, .. } => holder.clone(),
        crate::lease::Role::Unknown { .. } => None,
    };
    serde_json::json!({
        "name": task.config.name,
        "role": role.name(),
        "epoch": role.epoch(),
        "holder": holder,
        "me": task.me,
        "why": (role.fence(tokio::time::Instant::now()).is_none()).then(|| role.standing_by()),
        "duration_ms": task.config.duration.as_millis() as u64,
        "renew_ms": task.config.renew.as_millis() as u64,
    })
}

/// The lease in a line, for the page and the command line's `status`.
pub fn lease_line(v: &serde_json::Value) -> Option<String> {
    let name = v["name"].as_str()?;
    let epoch = v["epoch"].as_u64().map_or("-".into(), |e| e.to_string());
    Some(match v["role"].as_str() {
        Some("leader") => format!("lease {name}: this daemon leads (epoch {epoch}) and acts"),
        _ => format!(
            "lease {name}: {} (this daemon evaluates every pass and acts on nothing)",
            v["why"].as_str().unwrap_or("standby")
        ),
    })
}

#[derive(Debug, Deserialize)]
struct DecisionsQuery {
    service: Option<String>,
    limit: Option<usize>,
}

async fn decisions(State(shared): State<Arc<Api>>, Query(q): Query<DecisionsQuery>) -> Response {
    let audit = shared.audit.clone();
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let service = q.service.clone();
    match tokio::task::spawn_blocking(move || audit.recent(service.as_deref(), limit)).await {
        Ok(Ok(records)) => json(200, serde_json::json!({ "decisions": records })),
        Ok(Err(e)) => json(500, serde_json::json!({ "error": chain(&e) })),
        Err(e) => json(500, serde_json::json!({ "error": e.to_string() })),
    }
}

/// The status page: the status and the newest audit records, as HTML.
async fn page(State(shared): State<Arc<Api>>) -> Response {
    let (services, load_errors, missing_folders) = {
        let status = shared.status.lock().expect("status lock");
        (
            status
                .services
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            status.load_errors.values().cloned().collect(),
            status.missing_roots.clone(),
        )
    };
    let audit = shared.audit.clone();
    let (decisions, audit_error) =
        match tokio::task::spawn_blocking(move || audit.recent(None, 200)).await {
            Ok(Ok(records)) => (records, None),
            Ok(Err(e)) => (Vec::new(), Some(chain(&e))),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
    let body = super::page::render(&super::page::Snapshot {
        now: crate::clock::now_ms(),
        dry_run: shared.options.dry_run,
        interval_s: shared.options.interval.as_secs(),
        services,
        decisions,
        load_errors,
        missing_folders,
        lease: lease_line(&lease_view(&shared).await),
        audit_error,
    });
    axum::response::Html(body).into_response()
}

/// One replay at a time: each takes a sandbox and a core for up to seconds.
static REPLAYS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// `/replay/<service>`: the chart (SVG) of the service's policy replayed
/// on its last day's record (`simulate --history`).
async fn replay(State(shared): State<Arc<Api>>, Path(service): Path<String>) -> Response {
    let policy = {
        let status = shared.status.lock().expect("status lock");
        status.services.get(&service).map(|s| s.policy_file.clone())
    };
    let Some(policy) = policy else {
        return (
            StatusCode::NOT_FOUND,
            format!("no service {service:?} here\n"),
        )
            .into_response();
    };
    let Ok(_one) = REPLAYS.try_acquire() else {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            "a replay is running: try again in a few seconds\n",
        )
            .into_response();
    };
    let dir = shared.state.dir().to_path_buf();
    let now = crate::clock::now_ms();
    let chart = tokio::task::spawn_blocking(move || {
        crate::simulate::history::last_day_chart(&dir, &[policy.into()], &service, now)
    })
    .await;
    match chart {
        Ok(Ok(svg)) => ([(axum::http::header::CONTENT_TYPE, "image/svg+xml")], svg).into_response(),
        Ok(Err(e)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("cannot replay: {e:#}\n"),
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

/// Every route.
pub fn router(shared: Arc<Shared>) -> Router {
    let api = Arc::new(Api {
        shared,
        limiter: Mutex::new(Limiter::new(crate::clock::monotonic())),
    });
    Router::new()
        .route("/", get(page))
        .route("/metrics", get(metrics_handler))
        .route("/health", get(health))
        .route("/webhook/alertmanager", post(webhook_handler))
        .route("/api/v1/status", get(status))
        .route("/api/v1/decisions", get(decisions))
        .route("/replay/{service}", get(replay))
        .route("/api/v1/services/{service}/scale", post(scale))
        .route("/api/v1/services/{service}/pause", post(pause))
        .route("/api/v1/services/{service}/resume", post(resume))
        .with_state(api)
}

/// `ok` once every service's loop has reconciled the actions a stop
/// interrupted (what it found is written before it is ready); 503 naming
/// those still to, while their engine has not been reached.
async fn health(State(api): State<Arc<Api>>) -> Response {
    if !api.started.load(std::sync::atomic::Ordering::SeqCst) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: the policies are loading\n",
        )
            .into_response();
    }
    let pending: Vec<String> = {
        let reconciled = api.reconciled.lock().expect("reconciled lock");
        api.commands
            .lock()
            .expect("commands lock")
            .keys()
            .filter(|s| !reconciled.contains(*s))
            .cloned()
            .collect()
    };
    if pending.is_empty() {
        return "ok\n".into_response();
    }
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "starting: interrupted actions not yet reconciled for {} (its engine not reached yet)\n",
            pending.join(", ")
        ),
    )
        .into_response()
}

async fn metrics_handler(
    State(app): State<Arc<Api>>,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    (
        StatusCode::OK,
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.encode(),
    )
}

async fn webhook_handler(
    State(app): State<Arc<Api>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(refusal) = authorize(
        &ALERTMANAGER_WEBHOOK,
        app.options.alertmanager_token.as_deref(),
        &headers,
    ) {
        count_alerts(&app, refusal.result, 1);
        tracing::warn!("Alertmanager notification refused: {}", refusal.result);
        return *refusal.response;
    }
    let payload: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            count_alerts(&app, "invalid", 1);
            return (StatusCode::BAD_REQUEST, format!("not JSON: {e}\n")).into_response();
        }
    };
    match app.alerts.ingest(&payload) {
        Ok(n) => {
            for (kind, count) in [
                ("firing", n.firing),
                ("resolved", n.resolved),
                ("ignored", n.ignored),
            ] {
                count_alerts(&app, kind, count);
            }
            tracing::info!(
                firing = n.firing,
                resolved = n.resolved,
                ignored = n.ignored,
                "alertmanager notification"
            );
            (
                StatusCode::OK,
                serde_json::to_string(&n).expect("serializes") + "\n",
            )
                .into_response()
        }
        Err(e) => {
            count_alerts(&app, "invalid", 1);
            (StatusCode::UNPROCESSABLE_ENTITY, format!("{e}\n")).into_response()
        }
    }
}

/// `webhook_alerts{kind}`: alerts by what became of them, and refused or
/// invalid notifications.
fn count_alerts(app: &Api, kind: &str, n: u32) {
    app.metrics
        .webhook_alerts
        .get_or_create(&KindLabel {
            service: String::new(),
            kind: kind.into(),
        })
        .inc_by(u64::from(n));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_allows_a_burst_then_one_per_refill() {
        let t0 = crate::clock::monotonic();
        let mut l = Limiter {
            tokens: BURST,
            at: t0,
        };
        for _ in 0..5 {
            l.take(t0).unwrap();
        }
        let wait = l.take(t0).unwrap_err();
        assert!(wait <= REFILL && wait > Duration::ZERO, "{wait:?}");
        l.take(t0 + REFILL).unwrap();
        assert!(l.take(t0 + REFILL).is_err());
        // It refills to the burst, not beyond.
        let later = t0 + REFILL * 100;
        for _ in 0..5 {
            l.take(later).unwrap();
        }
        assert!(l.take(later).is_err());
    }

    const TOKEN: &str = "a-token-of-twenty-chars";

    /// The API of a daemon with no loop running, over real HTTP on
    /// 127.0.0.1; `stopping` as the stop signal leaves it.
    async fn serve(dir: &std::path::Path, stopping: bool) -> (Arc<Shared>, String) {
        let metrics = Arc::new(crate::telemetry::metrics::Metrics::new());
        let shared = Arc::new(Shared {
            telemetry: crate::telemetry::Telemetry::counting(metrics.clone()),
            metrics,
            alerts: Arc::default(),
            audit: crate::audit::AuditLog::in_dir(dir),
            state: crate::state::StateDir::open(dir).unwrap(),
            status: Mutex::default(),
            commands: Mutex::default(),
            reconciled: Mutex::default(),
            stopping: stopping.into(),
            started: true.into(),
            options: super::super::shared::RunOptions {
                policies: Vec::new(),
                interval: Duration::from_secs(15),
                listen: "127.0.0.1:0".parse().unwrap(),
                dry_run: false,
                api_token: Some(TOKEN.into()),
                alertmanager_token: None,
                webhook_url: None,
                lease: crate::lease::LeaseConfig::default(),
            },
            sources: crate::sources::Sources::new(),
            retiring: Mutex::default(),
            engines: Default::default(),
            lease: Default::default(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = router(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (shared, url)
    }

    async fn pause(url: &str) -> (u16, String) {
        let r = reqwest::Client::new()
            .post(format!("{url}/api/v1/services/web/pause"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    #[tokio::test]
    async fn a_request_while_the_daemon_stops_is_refused_and_said_so() {
        let dir = tempfile::tempdir().unwrap();
        let (_, url) = serve(dir.path(), true).await;
        let (code, body) = pause(&url).await;
        assert_eq!(code, 503, "{body}");
        assert!(
            body.contains("the daemon is stopping; send the request again"),
            "{body}"
        );
        // Refused before it was taken: nothing to audit.
        assert!(!dir.path().join("audit.jsonl").exists());
    }

    #[tokio::test]
    async fn a_request_to_a_loop_that_has_stopped_is_recorded_answered_and_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (shared, url) = serve(dir.path(), false).await;
        // The loop's channel, closed as a loop closes it when it stops.
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        shared.commands.lock().unwrap().insert("web".into(), tx);
        let (code, body) = pause(&url).await;
        assert_eq!(code, 503, "{body}");
        assert!(
            body.contains("web's loop has stopped") && body.contains("nothing was done"),
            "{body}"
        );
        let events: Vec<Event> = crate::audit::AuditLog::in_dir(dir.path())
            .records("web")
            .unwrap()
            .iter()
            .map(|r| r.event)
            .collect();
        assert_eq!(events, [Event::Requested, Event::Answered]);
    }

    #[tokio::test]
    async fn health_waits_for_every_loop_to_reconcile() {
        let dir = tempfile::tempdir().unwrap();
        let (shared, url) = serve(dir.path(), false).await;
        let get = || async {
            let r = reqwest::get(format!("{url}/health")).await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        };
        // Before the policies found at start have their loops: not ready.
        shared
            .started
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let (code, body) = get().await;
        assert_eq!(
            (code, body.as_str()),
            (503, "starting: the policies are loading\n")
        );
        shared
            .started
            .store(true, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(
            get().await,
            (200, "ok\n".into()),
            "no loop: nothing to wait for"
        );
        let (tx, _rx) = mpsc::channel(1);
        shared.commands.lock().unwrap().insert("web".into(), tx);
        let (code, body) = get().await;
        assert_eq!(code, 503, "{body}");
        assert!(body.contains("not yet reconciled for web"), "{body}");
        shared.reconciled.lock().unwrap().insert("web".into());
        assert_eq!(get().await, (200, "ok\n".into()));
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(same(b"s3cret", b"s3cret"));
        assert!(!same(b"s3cret", b"s3creT"));
        assert!(!same(b"s3cre", b"s3cret"));
        assert!(!same(b"s3cret!", b"s3cret"));
        assert!(!same(b"", b"s3cret"));
    }
}
