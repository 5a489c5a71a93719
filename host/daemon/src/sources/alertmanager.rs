//! The Alertmanager webhook receiver's book of firing alerts.
//!
//! Alerts carrying a `scaling_action` label (`scale_up`, `scale_up_urgent`,
//! `scale_down`) and a `service` label are kept while firing and dropped
//! when Alertmanager sends them resolved (webhook receivers send resolved
//! notifications by default). Each pass turns them into one signal value for
//! the service (`2` an urgent scale-up is firing, `1` a scale-up, `-1` only a
//! scale-down, `0` none), which the policy scores like any other signal: an
//! alert is advice to the policy, never a bypass of the guard rails.

use std::collections::HashMap;
use std::sync::Mutex;

use futures_util::future::BoxFuture;
use serde_json::Value;

use super::{Ask, MetricSource, Reading, SourceReport};
use crate::config::SourceKind;

/// What a firing alert asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalingAction {
    /// `scale_up`.
    Up,
    /// `scale_up_urgent`.
    UpUrgent,
    /// `scale_down`.
    Down,
}

impl ScalingAction {
    fn parse(s: &str) -> Option<ScalingAction> {
        match s {
            "scale_up" => Some(ScalingAction::Up),
            "scale_up_urgent" => Some(ScalingAction::UpUrgent),
            "scale_down" => Some(ScalingAction::Down),
            _ => None,
        }
    }
}

/// Firing scaling alerts, by fingerprint.
#[derive(Debug, Default)]
pub struct AlertBook {
    firing: Mutex<HashMap<String, (String, ScalingAction)>>,
}

/// What one notification did.
#[derive(Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Ingested {
    /// Firing scaling alerts recorded.
    pub firing: u32,
    /// Scaling alerts resolved.
    pub resolved: u32,
    /// Alerts without a usable `scaling_action` or `service` label.
    pub ignored: u32,
}

impl AlertBook {
    /// Take one Alertmanager webhook payload (version 4).
    pub fn ingest(&self, payload: &Value) -> Result<Ingested, String> {
        let alerts = payload["alerts"]
            .as_array()
            .ok_or("not an Alertmanager notification: no \"alerts\" list")?;
        let mut out = Ingested::default();
        let mut firing = self.firing.lock().expect("not poisoned");
        for a in alerts {
            let labels = &a["labels"];
            let action = labels["scaling_action"]
                .as_str()
                .and_then(ScalingAction::parse);
            let service = labels["service"].as_str();
            let (Some(action), Some(service)) = (action, service) else {
                out.ignored += 1;
                continue;
            };
            // Alertmanager's fingerprint, else the label set itself.
            let key = a["fingerprint"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| labels.to_string());
            match a["status"].as_str() {
                Some("firing") => {
                    firing.insert(key, (service.to_string(), action));
                    out.firing += 1;
                }
                Some("resolved") => {
                    firing.remove(&key);
                    out.resolved += 1;
                }
                _ => out.ignored += 1,
            }
        }
        Ok(out)
    }

    /// The signal value for `service` now.
    pub fn value(&self, service: &str) -> f64 {
        let firing = self.firing.lock().expect("not poisoned");
        let actions: Vec<ScalingAction> = firing
            .values()
            .filter(|(s, _)| s == service)
            .map(|(_, a)| *a)
            .collect();
        if actions.contains(&ScalingAction::UpUrgent) {
            2.0
        } else if actions.contains(&ScalingAction::Up) {
            1.0
        } else if actions.contains(&ScalingAction::Down) {
            -1.0
        } else {
            0.0
        }
    }
}

impl MetricSource for AlertBook {
    fn kind(&self) -> SourceKind {
        SourceKind::Alertmanager
    }

    /// The service's alert value now, for each signal routed here.
    fn read<'a>(&'a self, ask: &'a Ask<'a>) -> BoxFuture<'a, SourceReport> {
        let value = self.value(ask.service);
        Box::pin(async move {
            SourceReport {
                readings: ask
                    .signals
                    .iter()
                    .map(|s| Reading::Now(s.signal.clone(), Ok(value)))
                    .collect(),
                ..Default::default()
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alert(status: &str, fp: &str, service: &str, action: &str) -> Value {
        json!({"status": status, "fingerprint": fp,
               "labels": {"alertname": "X", "service": service, "scaling_action": action}})
    }

    #[test]
    fn firing_alerts_become_a_value_until_resolved() {
        let book = AlertBook::default();
        assert_eq!(book.value("web"), 0.0);
        let n = book
            .ingest(&json!({"alerts": [
                alert("firing", "a", "web", "scale_down"),
                alert("firing", "b", "other", "scale_up_urgent"),
                {"status": "firing", "labels": {"alertname": "NoAction", "service": "web"}},
            ]}))
            .unwrap();
        assert_eq!(
            n,
            Ingested {
                firing: 2,
                resolved: 0,
                ignored: 1
            }
        );
        assert_eq!(book.value("web"), -1.0);
        assert_eq!(book.value("other"), 2.0);
        book.ingest(&json!({"alerts": [alert("firing", "c", "web", "scale_up")]}))
            .unwrap();
        assert_eq!(book.value("web"), 1.0, "up wins over down");
        book.ingest(
            &json!({"alerts": [alert("resolved", "c", "web", "scale_up"),
                                          alert("resolved", "a", "web", "scale_down")]}),
        )
        .unwrap();
        assert_eq!(book.value("web"), 0.0);
        assert!(book.ingest(&json!({"receiver": "x"})).is_err());
    }
}
