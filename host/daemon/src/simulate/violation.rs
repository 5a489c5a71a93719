//! `--violations`: each stretch of consecutive steps that violated the
//! SLO, as one JSON line.

use vedfolnir_core::model::TimestampMs;
use vedfolnir_core::sim;

/// A stretch of consecutive steps that violated the SLO, for
/// `--violations`: where a policy let the service down, and how.
pub struct Violation {
    from: TimestampMs,
    to: TimestampMs,
    /// The replicas (and those ready) at its first step.
    replicas: u32,
    ready: u32,
    /// The load at its first step, and the highest during it.
    load: f64,
    peak_load: f64,
    worst_p95: f64,
    worst_error_rate: f64,
}

impl Violation {
    /// A stretch that starts with the step from `from` to `to`.
    pub fn start(from: TimestampMs, to: TimestampMs, obs: &sim::Observation) -> Violation {
        Violation {
            from,
            to,
            replicas: obs.replicas,
            ready: obs.ready,
            load: obs.load,
            peak_load: obs.load,
            worst_p95: obs.p95,
            worst_error_rate: obs.error_rate,
        }
    }

    /// The stretch goes on with a step that ends at `to`.
    pub fn extend(&mut self, to: TimestampMs, obs: &sim::Observation) {
        self.to = to;
        self.peak_load = self.peak_load.max(obs.load);
        self.worst_p95 = self.worst_p95.max(obs.p95);
        self.worst_error_rate = self.worst_error_rate.max(obs.error_rate);
    }

    /// The stretch as one JSON line of `--violations`, for `policy`, its
    /// time from the replay's start `start_ms`.
    pub fn line(&self, policy: &str, start_ms: TimestampMs) -> String {
        let round = |v: f64| (v * 1000.0).round() / 1000.0;
        serde_json::json!({
            "policy": policy,
            "from": crate::clock::format_time(self.from),
            "to": crate::clock::format_time(self.to),
            "from_s": (self.from - start_ms) / 1000,
            "minutes": round((self.to - self.from) as f64 / 60_000.0),
            "replicas": self.replicas,
            "ready": self.ready,
            "load": round(self.load),
            "peak_load": round(self.peak_load),
            "worst_p95": round(self.worst_p95),
            "worst_error_rate": round(self.worst_error_rate),
        })
        .to_string()
    }
}
