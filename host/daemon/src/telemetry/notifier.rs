//! Notifications: each action (a scale's outcome, a dry run's "would
//! scale", pause, resume, reset, a shadow divergence) is posted to
//! `WEBHOOK_URL` as JSON with a Slack-compatible `text` field.
//!
//! Delivery never blocks evaluation: records go into a bounded queue that a
//! worker task drains; when the queue is full the notification is dropped
//! and counted. Each post has a timeout and is retried with backoff.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::metrics::{KindLabel, Metrics};
use crate::audit::{AuditObserver, AuditRecord, Event};

/// Notifications waiting beyond this many are dropped (and counted).
const QUEUE: usize = 256;

/// How notifications are delivered.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// One post's timeout.
    pub timeout: Duration,
    /// Posts per notification, the first included.
    pub attempts: u32,
    /// The wait before the first retry; doubled after each.
    pub backoff: Duration,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            timeout: Duration::from_secs(5),
            attempts: 3,
            backoff: Duration::from_millis(500),
        }
    }
}

/// The sending end; cheap to clone.
#[derive(Debug, Clone)]
pub struct Notifier {
    tx: mpsc::Sender<AuditRecord>,
    metrics: Arc<Metrics>,
}

/// Whether a record is an action worth a notification.
pub fn is_action(event: Event) -> bool {
    matches!(
        event,
        Event::ScaleFinished
            | Event::WouldScale
            | Event::Paused
            | Event::Resumed
            | Event::Reset
            | Event::ShadowDiverged
            | Event::AbandonedRemoved
            | Event::Unanswered
            | Event::Takeover
            | Event::LeaseLost
    )
}

/// Slack's mrkdwn needs `&`, `<` and `>` escaped in text; JSON escaping of
/// quotes, backslashes and control characters is serde_json's.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One line saying what happened.
pub fn text_of(r: &AuditRecord) -> String {
    let what = match r.event {
        Event::ScaleFinished => {
            let rep = r.report.as_ref();
            format!(
                "scale {} from {} to {}: {}, {} running",
                r.direction,
                r.from,
                r.to,
                rep.map(|p| format!("{:?}", p.outcome).to_lowercase())
                    .unwrap_or_default(),
                rep.map(|p| p.reached).unwrap_or(r.from)
            )
        }
        Event::WouldScale => format!(
            "dry run: would scale {} from {} to {}",
            r.direction, r.from, r.to
        ),
        Event::Paused => "automatic scaling paused".into(),
        Event::Resumed => "automatic scaling resumed".into(),
        Event::Reset => "cooldowns cleared".into(),
        Event::ShadowDiverged => "the shadow policy diverges".into(),
        Event::AbandonedRemoved => "abandoned replicas removed".into(),
        Event::Unanswered => "an API request was never answered".into(),
        Event::Takeover => "this daemon took over: it is the leader".into(),
        Event::LeaseLost => "this daemon lost the lease: it is standby".into(),
        Event::Requested | Event::Answered => format!("API request {:?}", r.event),
        Event::ScaleStarted | Event::Held => format!("{:?}", r.event),
    };
    let mut why = r.reasons.join("; ");
    if why.chars().count() > 400 {
        why = why.chars().take(399).collect::<String>() + "…";
    }
    slack_escape(&format!(
        "vedfolnir-autoscaler: {}: {what} (by {}){}{}",
        r.service,
        r.actor,
        if why.is_empty() { "" } else { "; " },
        why
    ))
}

/// The JSON posted: `text` for Slack-compatible receivers, and the record.
pub fn payload(r: &AuditRecord) -> serde_json::Value {
    let mut v = serde_json::to_value(r).expect("records serialize");
    if let Some(obj) = v.as_object_mut() {
        obj.insert("text".into(), text_of(r).into());
    }
    v
}

impl Notifier {
    /// Start the worker on the current runtime.
    pub fn start(
        url: String,
        delivery: Delivery,
        metrics: Arc<Metrics>,
    ) -> (Notifier, JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<AuditRecord>(QUEUE);
        let m = metrics.clone();
        let worker = tokio::spawn(async move {
            let client = match reqwest::Client::builder().timeout(delivery.timeout).build() {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "cannot build the webhook client; notifications are off");
                    return;
                }
            };
            while let Some(record) = rx.recv().await {
                let body = payload(&record);
                let mut wait = delivery.backoff;
                let mut last_error = String::new();
                let mut sent = false;
                for attempt in 1..=delivery.attempts.max(1) {
                    match client.post(&url).json(&body).send().await {
                        Ok(resp) if resp.status().is_success() => {
                            sent = true;
                            break;
                        }
                        Ok(resp) => last_error = format!("HTTP {}", resp.status()),
                        Err(e) => last_error = e.to_string(),
                    }
                    if attempt < delivery.attempts {
                        tokio::time::sleep(wait).await;
                        wait *= 2;
                    }
                }
                let kind = if sent { "sent" } else { "failed" };
                if !sent {
                    tracing::warn!(url = %url, action = %record.action_id, error = %last_error, "notification not delivered");
                }
                m.notifications
                    .get_or_create(&KindLabel {
                        service: record.service.clone(),
                        kind: kind.into(),
                    })
                    .inc();
            }
        });
        (Notifier { tx, metrics }, worker)
    }
}

impl AuditObserver for Notifier {
    /// Queue a notification for an action record; never waits.
    fn recorded(&self, record: &AuditRecord) {
        if !is_action(record.event) {
            return;
        }
        if self.tx.try_send(record.clone()).is_err() {
            tracing::warn!(action = %record.action_id, "notification queue full; dropped");
            self.metrics
                .notifications
                .get_or_create(&KindLabel {
                    service: record.service.clone(),
                    kind: "dropped".into(),
                })
                .inc();
        }
    }
}

/// How long queued notifications get to go out when the process stops.
pub const FLUSH_WITHIN: Duration = Duration::from_secs(5);

/// Wait for the worker to send what is queued (every sender must be gone,
/// so its queue ends), up to [`FLUSH_WITHIN`]; false when some were still
/// pending and are dropped.
pub async fn flush(worker: JoinHandle<()>) -> bool {
    tokio::time::timeout(FLUSH_WITHIN, worker).await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Actor;

    #[test]
    fn text_is_escaped_for_slack_and_the_payload_keeps_the_raw_reason() {
        let reason = "load test \"quoted\" <b>&</b>\nnext line";
        let r = AuditRecord {
            reasons: vec![reason.into()],
            ..AuditRecord::new("web", Event::Paused, Actor::Api, 1)
        };
        let text = text_of(&r);
        assert!(text.contains("&lt;b&gt;&amp;&lt;/b&gt;"), "{text}");
        assert!(!text.contains('<'), "{text}");
        let wire = serde_json::to_string(&payload(&r)).unwrap();
        let back: serde_json::Value = serde_json::from_str(&wire).unwrap();
        assert_eq!(back["reasons"][0], reason);
        assert_eq!(back["text"], text);
        assert_eq!(back["actor"], "api");
    }

    #[test]
    fn only_actions_are_notified() {
        assert!(is_action(Event::ScaleFinished));
        assert!(is_action(Event::WouldScale));
        assert!(!is_action(Event::ScaleStarted));
        assert!(!is_action(Event::Held));
    }
}
