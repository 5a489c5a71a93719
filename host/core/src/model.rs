//! The policy data model, one Rust type per WIT type of
//! `vedfolnir:autoscaler/types@0.1.0` (see `wit/policy.wit` for the contract).
//!
//! Times are milliseconds since the Unix epoch and durations are
//! milliseconds, exactly as on the wire, so conversions at the sandbox seam
//! are field-for-field copies.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Milliseconds since the Unix epoch (UTC).
pub type TimestampMs = i64;
/// A length of time in milliseconds.
pub type DurationMs = u64;

/// One observation of a signal.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// When the value was observed.
    pub at: TimestampMs,
    /// The observed value; non-finite means "no observation".
    pub value: f64,
}

/// The name of the signal that is 1 while a service's SLO is violated and
/// 0 while it is met (its mean over a span is the share of the span in
/// violation): what an error budget is counted on.
pub const SLO_VIOLATION: &str = "slo-violation";

/// Which signal a window holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SignalId {
    /// CPU use as a fraction of the replicas' CPU limit.
    Cpu,
    /// Memory working set as a fraction of the replicas' memory limit.
    Memory,
    /// Jobs waiting in the queue.
    QueueDepth,
    /// 95th percentile response time in seconds.
    ResponseTimeP95,
    /// Failed requests as a fraction of all requests.
    ErrorRate,
    /// Running replicas as seen by the metrics source.
    InstanceCount,
    /// Any other named signal.
    Custom(String),
}

impl SignalId {
    /// The well-known signals, in the documented order.
    pub const WELL_KNOWN: [SignalId; 6] = [
        SignalId::Cpu,
        SignalId::Memory,
        SignalId::QueueDepth,
        SignalId::ResponseTimeP95,
        SignalId::ErrorRate,
        SignalId::InstanceCount,
    ];

    /// The name used in policy files, snapshots and metrics labels.
    pub fn name(&self) -> &str {
        match self {
            SignalId::Cpu => "cpu",
            SignalId::Memory => "memory",
            SignalId::QueueDepth => "queue-depth",
            SignalId::ResponseTimeP95 => "response-time-p95",
            SignalId::ErrorRate => "error-rate",
            SignalId::InstanceCount => "instance-count",
            SignalId::Custom(name) => name,
        }
    }
}

impl fmt::Display for SignalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A signal name that is neither well-known nor a valid custom name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid signal name {0:?}: use lowercase letters, digits and '-' (for example \"orders-per-second\")"
)]
pub struct SignalNameError(pub String);

impl FromStr for SignalId {
    type Err = SignalNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(id) = SignalId::WELL_KNOWN.iter().find(|id| id.name() == s) {
            return Ok(id.clone());
        }
        let valid = !s.is_empty()
            && s.len() <= 64
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if valid {
            Ok(SignalId::Custom(s.to_string()))
        } else {
            Err(SignalNameError(s.to_string()))
        }
    }
}

impl Serialize for SignalId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for SignalId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The recent history of one signal, oldest sample first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalWindow {
    /// The signal.
    pub signal: SignalId,
    /// Samples in ascending time order; empty when missing.
    pub samples: Vec<Sample>,
    /// Why the signal is missing or incomplete, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_reason: Option<String>,
}

impl SignalWindow {
    /// The value this pass read: the newest sample, unless the signal is
    /// missing (a reason is given, however much history the window still
    /// holds) or that sample is not finite; else why not. What the status
    /// and `/metrics` both show, so they never disagree.
    pub fn current(&self) -> Result<f64, &str> {
        if let Some(why) = &self.missing_reason {
            return Err(why);
        }
        match self.samples.last() {
            Some(s) if s.value.is_finite() => Ok(s.value),
            _ => Err("no sample"),
        }
    }
}

/// A parameter value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ParamValue {
    /// A plain number.
    Number(f64),
    /// A length of time in milliseconds.
    Duration(DurationMs),
    /// A yes/no switch.
    Boolean(bool),
    /// Free text.
    Text(String),
}

impl ParamValue {
    /// The kind of this value.
    pub fn kind(&self) -> ParamKind {
        match self {
            ParamValue::Number(_) => ParamKind::Number,
            ParamValue::Duration(_) => ParamKind::Duration,
            ParamValue::Boolean(_) => ParamKind::Boolean,
            ParamValue::Text(_) => ParamKind::Text,
        }
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Number(n) => write!(f, "{n}"),
            ParamValue::Duration(ms) => f.write_str(&crate::format_duration(*ms)),
            ParamValue::Boolean(b) => write!(f, "{b}"),
            ParamValue::Text(t) => write!(f, "{t:?}"),
        }
    }
}

/// The kind of value a parameter takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ParamKind {
    /// A plain number.
    Number,
    /// A duration such as "5m".
    Duration,
    /// true or false.
    Boolean,
    /// Free text.
    Text,
}

impl fmt::Display for ParamKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParamKind::Number => "a number",
            ParamKind::Duration => "a duration such as \"5m\"",
            ParamKind::Boolean => "true or false",
            ParamKind::Text => "a string",
        })
    }
}

/// One named parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Param {
    /// The key as written in the policy file.
    pub key: String,
    /// Its value.
    pub value: ParamValue,
}

/// How a policy describes a parameter it accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamSpec {
    /// The key as written in the policy file.
    pub key: String,
    /// The kind of value it takes.
    pub kind: ParamKind,
    /// The value used when the policy file does not set it.
    pub default: ParamValue,
    /// One line for operators.
    pub description: String,
}

impl ParamSpec {
    /// A parameter of `kind` with its default (taken from `default`).
    fn of(key: &str, default: ParamValue, description: &str) -> ParamSpec {
        ParamSpec {
            key: key.into(),
            kind: default.kind(),
            default,
            description: description.into(),
        }
    }

    /// A number parameter.
    pub fn number(key: &str, default: f64, description: &str) -> ParamSpec {
        ParamSpec::of(key, ParamValue::Number(default), description)
    }

    /// A duration parameter, its default in milliseconds.
    pub fn duration(key: &str, default: DurationMs, description: &str) -> ParamSpec {
        ParamSpec::of(key, ParamValue::Duration(default), description)
    }

    /// A text parameter.
    pub fn text(key: &str, default: &str, description: &str) -> ParamSpec {
        ParamSpec::of(key, ParamValue::Text(default.into()), description)
    }

    /// A yes/no parameter.
    pub fn boolean(key: &str, default: bool, description: &str) -> ParamSpec {
        ParamSpec::of(key, ParamValue::Boolean(default), description)
    }
}

/// How a policy describes a signal it reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalSpec {
    /// The signal.
    pub signal: SignalId,
    /// When true the host holds while it is missing or stale.
    pub required: bool,
    /// One line for operators.
    pub description: String,
}

impl SignalSpec {
    /// A signal the policy handles the absence of itself (`required: false`).
    pub fn optional(signal: SignalId, description: &str) -> SignalSpec {
        SignalSpec {
            signal,
            required: false,
            description: description.into(),
        }
    }
}

/// What a policy says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Description {
    /// Lowercase kebab-case name.
    pub name: String,
    /// The policy's own version.
    pub version: String,
    /// One paragraph for operators.
    pub summary: String,
    /// The signals it reads.
    pub signals: Vec<SignalSpec>,
    /// The parameters it accepts.
    pub params: Vec<ParamSpec>,
}

impl Description {
    /// A description with no signals and no parameters, to fill in.
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        summary: impl Into<String>,
    ) -> Description {
        Description {
            name: name.into(),
            version: version.into(),
            summary: summary.into(),
            signals: Vec::new(),
            params: Vec::new(),
        }
    }

    /// Every declared parameter at its default value.
    pub fn default_params(&self) -> Vec<Param> {
        self.params
            .iter()
            .map(|s| Param {
                key: s.key.clone(),
                value: s.default.clone(),
            })
            .collect()
    }
}

/// A configuration problem naming its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigError {
    /// The parameter key at fault.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Everything a policy knows about one service at one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyInput {
    /// The service.
    pub service: String,
    /// The evaluation time.
    pub now: TimestampMs,
    /// Replicas that exist now.
    pub current_replicas: u32,
    /// Replicas running and healthy now.
    pub ready_replicas: u32,
    /// Lower bound.
    pub min_replicas: u32,
    /// Upper bound.
    pub max_replicas: u32,
    /// Time since the last successful scale-up.
    pub since_last_scale_up: Option<DurationMs>,
    /// Time since the last successful scale-down.
    pub since_last_scale_down: Option<DurationMs>,
    /// The parameters the policy file sets (kind-checked); absent keys
    /// take the policy's declared defaults.
    pub params: Vec<Param>,
    /// One window per collected signal.
    pub signals: Vec<SignalWindow>,
}

impl PolicyInput {
    /// The window of `signal`, if the host collected it.
    pub fn window(&self, signal: &SignalId) -> Option<&SignalWindow> {
        self.signals.iter().find(|w| &w.signal == signal)
    }

    /// The value of parameter `key`, if set.
    pub fn param(&self, key: &str) -> Option<&ParamValue> {
        self.params.iter().find(|p| p.key == key).map(|p| &p.value)
    }

    /// This input with only the windows of `visible` signals: what a policy
    /// is handed, so it reads only what it declared (see
    /// [`visible_signals`]). Borrowed as it is when nothing is left out.
    pub fn only(&self, visible: &[SignalId]) -> std::borrow::Cow<'_, PolicyInput> {
        if self.signals.iter().all(|w| visible.contains(&w.signal)) {
            return std::borrow::Cow::Borrowed(self);
        }
        let mut input = self.clone();
        input.signals.retain(|w| visible.contains(&w.signal));
        std::borrow::Cow::Owned(input)
    }
}

/// The signals a policy may read: those it declares in `describe`, those
/// its parameters name (a text parameter whose value is a signal name, such
/// as predictive's `metric = "memory"` or target-tracking's `custom.signal =
/// "requests-per-second"`), and `routed`, the signals its policy file
/// routes to a source (`[signals.<name>]`). Every other window
/// is left out of its input, in the daemon, `evaluate`, `simulate` and the
/// scenario runners alike, so a policy that reads an undeclared signal
/// fails its tests instead of passing them on data the daemon would not
/// collect.
pub fn visible_signals<'a>(
    declared: &[SignalSpec],
    params: &[Param],
    routed: impl IntoIterator<Item = &'a SignalId>,
) -> Vec<SignalId> {
    let mut out: Vec<SignalId> = declared.iter().map(|s| s.signal.clone()).collect();
    let named = params.iter().filter_map(|p| match &p.value {
        ParamValue::Text(text) => text.parse::<SignalId>().ok(),
        _ => None,
    });
    for signal in named.chain(routed.into_iter().cloned()) {
        if !out.contains(&signal) {
            out.push(signal);
        }
    }
    out
}

/// Which way a recommendation or decision points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// More replicas.
    Up,
    /// Fewer replicas.
    Down,
    /// Keep the current count.
    Hold,
}

impl Direction {
    /// The direction from `current` to `desired`.
    pub fn between(current: u32, desired: u32) -> Direction {
        match desired.cmp(&current) {
            std::cmp::Ordering::Greater => Direction::Up,
            std::cmp::Ordering::Less => Direction::Down,
            std::cmp::Ordering::Equal => Direction::Hold,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Up => "up",
            Direction::Down => "down",
            Direction::Hold => "hold",
        })
    }
}

/// One reason behind a recommendation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    /// What fired, lowercase kebab-case.
    pub trigger: String,
    /// The value looked at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<f64>,
    /// The threshold compared against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// How long the condition held continuously, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_for: Option<DurationMs>,
    /// One line for operators.
    pub message: String,
}

impl Reason {
    /// A reason with only a trigger and a message.
    pub fn new(trigger: impl Into<String>, message: impl Into<String>) -> Reason {
        Reason {
            trigger: trigger.into(),
            observed: None,
            threshold: None,
            held_for: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.trigger, self.message)
    }
}

/// What a policy advises for one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// The replica count the policy wants.
    pub desired_replicas: u32,
    /// Which way that is.
    pub direction: Direction,
    /// The scale-up score.
    pub scale_up_score: f64,
    /// The scale-down score.
    pub scale_down_score: f64,
    /// Every reason.
    pub reasons: Vec<Reason>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_round_trip_and_custom_names_are_checked() {
        for id in SignalId::WELL_KNOWN {
            assert_eq!(id.name().parse::<SignalId>(), Ok(id.clone()));
        }
        assert_eq!(
            "orders-per-second".parse::<SignalId>(),
            Ok(SignalId::Custom("orders-per-second".into()))
        );
        for bad in ["", "CPU", "1abc", "a b", "x/y"] {
            assert!(bad.parse::<SignalId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_policy_sees_what_it_declares_routes_or_names_in_a_parameter() {
        let declared = [SignalSpec::optional(SignalId::Cpu, "x")];
        let params = [
            Param {
                key: "metric".into(),
                value: ParamValue::Text("memory".into()),
            },
            Param {
                key: "threshold".into(),
                value: ParamValue::Number(0.5),
            },
        ];
        let routed = [SignalId::Custom("orders".into())];
        let visible = visible_signals(&declared, &params, &routed);
        assert_eq!(
            visible,
            [
                SignalId::Cpu,
                SignalId::Memory,
                SignalId::Custom("orders".into())
            ]
        );
        let window = |signal: SignalId| SignalWindow {
            signal,
            samples: vec![],
            missing_reason: None,
        };
        let input = PolicyInput {
            service: "s".into(),
            now: 0,
            current_replicas: 1,
            ready_replicas: 1,
            min_replicas: 1,
            max_replicas: 2,
            since_last_scale_up: None,
            since_last_scale_down: None,
            params: vec![],
            signals: vec![window(SignalId::Cpu), window(SignalId::QueueDepth)],
        };
        let seen = input.only(&visible);
        assert!(matches!(seen, std::borrow::Cow::Owned(_)));
        assert_eq!(seen.signals.len(), 1);
        assert!(seen.window(&SignalId::QueueDepth).is_none());
        assert!(matches!(
            input.only(&[SignalId::Cpu, SignalId::QueueDepth]),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn direction_between_counts() {
        assert_eq!(Direction::between(3, 4), Direction::Up);
        assert_eq!(Direction::between(3, 2), Direction::Down);
        assert_eq!(Direction::between(3, 3), Direction::Hold);
    }
}
