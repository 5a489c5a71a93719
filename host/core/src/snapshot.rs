//! Snapshots: a readable way to write one evaluation's input by hand.
//!
//! Used by `evaluate --input SNAPSHOT.json`, by the scenario files of
//! `plugin test`, and by the golden tests. Signal windows are written as
//! segments ("0.85 for 6m", oldest first) that are expanded into samples
//! every `step`, ending at `now`, so a scenario says what it means:
//!
//! ```json
//! { "current_replicas": 3,
//!   "signals": { "cpu": [ {"value": 0.5, "for": "10m"}, {"value": 0.85, "for": "6m"} ],
//!                "queue-depth": { "missing": "prometheus: connection refused" } } }
//! ```
//!
//! A value may be a number or one of the strings "NaN", "inf", "-inf"
//! (JSON and TOML have no literal for them, and testing them matters).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::duration::{DurationError, parse_duration};
use crate::model::{
    ConfigError, Param, ParamKind, ParamSpec, ParamValue, PolicyInput, Sample, SignalId,
    SignalWindow, TimestampMs,
};

/// The evaluation time used when a snapshot does not give one:
/// 2027-01-15T08:00:00Z. Fixed, so snapshot evaluations are reproducible.
pub const DEFAULT_NOW: TimestampMs = 1_800_000_000_000;

/// A sample value: a number, or "NaN" / "inf" / "-inf".
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// A finite number.
    Number(f64),
    /// A named non-finite value.
    Named(NonFinite),
}

/// The non-finite values a snapshot may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NonFinite {
    /// Not a number.
    NaN,
    /// Positive infinity.
    #[serde(rename = "inf")]
    Inf,
    /// Negative infinity.
    #[serde(rename = "-inf")]
    NegInf,
}

impl Value {
    fn get(self) -> f64 {
        match self {
            Value::Number(n) => n,
            Value::Named(NonFinite::NaN) => f64::NAN,
            Value::Named(NonFinite::Inf) => f64::INFINITY,
            Value::Named(NonFinite::NegInf) => f64::NEG_INFINITY,
        }
    }
}

/// A constant value over a stretch of time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    /// The value.
    pub value: Value,
    /// How long, e.g. "5m".
    #[serde(rename = "for")]
    pub duration: String,
}

/// One explicit sample, `ago` before `now`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgoSample {
    /// How long before `now`, e.g. "30s".
    pub ago: String,
    /// The value.
    pub value: Value,
}

/// How a snapshot writes one signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SeriesSpec {
    /// Segments, oldest first, sampled every `step`.
    Segments(Vec<Segment>),
    /// The long form.
    Detailed(DetailedSeries),
}

/// The long form of a signal: segments and/or explicit samples, or missing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetailedSeries {
    /// Segments, oldest first.
    #[serde(default)]
    pub segments: Vec<Segment>,
    /// Explicit samples, in any order.
    #[serde(default)]
    pub samples: Vec<AgoSample>,
    /// The sampling step for segments; defaults to the snapshot's step.
    #[serde(default)]
    pub step: Option<String>,
    /// The signal is missing, for this reason.
    #[serde(default)]
    pub missing: Option<String>,
    /// Shift the whole series into the past (to make it stale), e.g. "2m".
    #[serde(default)]
    pub ends_ago: Option<String>,
}

/// One evaluation's input, written by hand.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// The service; defaults to the policy file's.
    #[serde(default)]
    pub service: Option<String>,
    /// Evaluation time in ms since the epoch; defaults to [`DEFAULT_NOW`].
    #[serde(default)]
    pub now: Option<TimestampMs>,
    /// Replicas now.
    pub current_replicas: u32,
    /// Healthy replicas now; defaults to `current_replicas`.
    #[serde(default)]
    pub ready_replicas: Option<u32>,
    /// Time since the last scale-up, e.g. "20m"; absent means never.
    #[serde(default)]
    pub since_last_scale_up: Option<String>,
    /// Time since the last scale-down, e.g. "20m"; absent means never.
    #[serde(default)]
    pub since_last_scale_down: Option<String>,
    /// Sampling step for segments. Defaults to "15s".
    #[serde(default)]
    pub step: Option<String>,
    /// Signals by name (`cpu`, `memory`, `queue-depth`, `response-time-p95`,
    /// `error-rate`, `instance-count`, or a custom name).
    #[serde(default)]
    pub signals: BTreeMap<String, SeriesSpec>,
}

/// A snapshot that cannot be turned into an input. `key` is the path of the
/// offending field, such as `signals.cpu[1].for`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{key}: {message}")]
pub struct SnapshotError {
    /// Where in the snapshot.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// The service settings a snapshot is evaluated under.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The service name, unless the snapshot sets one.
    pub service: String,
    /// Lower bound.
    pub min_replicas: u32,
    /// Upper bound.
    pub max_replicas: u32,
    /// Effective parameters.
    pub params: Vec<Param>,
}

impl Snapshot {
    /// Expand into a [`PolicyInput`], reporting every problem at once.
    pub fn to_input(&self, frame: &Frame) -> Result<PolicyInput, Vec<SnapshotError>> {
        let mut errors = Vec::new();
        let mut dur = |key: &str, text: &str| -> Option<u64> {
            parse_duration(text)
                .map_err(|e: DurationError| {
                    errors.push(SnapshotError {
                        key: key.to_string(),
                        message: e.to_string(),
                    })
                })
                .ok()
        };
        let now = self.now.unwrap_or(DEFAULT_NOW);
        let step = match &self.step {
            Some(s) => dur("step", s).unwrap_or(15_000),
            None => 15_000,
        };
        let up = self
            .since_last_scale_up
            .as_deref()
            .and_then(|s| dur("since_last_scale_up", s));
        let down = self
            .since_last_scale_down
            .as_deref()
            .and_then(|s| dur("since_last_scale_down", s));
        let mut signals = Vec::new();
        for (name, spec) in &self.signals {
            let key = format!("signals.{name}");
            let signal: SignalId = match name.parse() {
                Ok(id) => id,
                Err(e) => {
                    errors.push(SnapshotError {
                        key,
                        message: format!("{e}"),
                    });
                    continue;
                }
            };
            match expand(spec, now, step, &key) {
                Ok((samples, missing_reason)) => signals.push(SignalWindow {
                    signal,
                    samples,
                    missing_reason,
                }),
                Err(mut e) => errors.append(&mut e),
            }
        }
        if step == 0 {
            errors.push(SnapshotError {
                key: "step".into(),
                message: "must be longer than 0".into(),
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(PolicyInput {
            service: self
                .service
                .clone()
                .unwrap_or_else(|| frame.service.clone()),
            now,
            current_replicas: self.current_replicas,
            ready_replicas: self.ready_replicas.unwrap_or(self.current_replicas),
            min_replicas: frame.min_replicas,
            max_replicas: frame.max_replicas,
            since_last_scale_up: up,
            since_last_scale_down: down,
            params: frame.params.clone(),
            signals,
        })
    }
}

/// Most samples one signal of a snapshot may expand to: a week at a
/// 15 s step is 40,320.
pub const MAX_SAMPLES: u64 = 100_000;

fn expand(
    spec: &SeriesSpec,
    now: TimestampMs,
    default_step: u64,
    key: &str,
) -> Result<(Vec<Sample>, Option<String>), Vec<SnapshotError>> {
    let detailed;
    let d = match spec {
        SeriesSpec::Segments(segments) => {
            detailed = DetailedSeries {
                segments: segments.clone(),
                ..Default::default()
            };
            &detailed
        }
        SeriesSpec::Detailed(d) => d,
    };
    let mut errors = Vec::new();
    let mut dur = |k: String, text: &str| {
        parse_duration(text)
            .map_err(|e| {
                errors.push(SnapshotError {
                    key: k,
                    message: e.to_string(),
                })
            })
            .ok()
    };
    let step = d
        .step
        .as_deref()
        .and_then(|s| dur(format!("{key}.step"), s))
        .unwrap_or(default_step)
        .max(1);
    let ends_ago = d
        .ends_ago
        .as_deref()
        .and_then(|s| dur(format!("{key}.ends_ago"), s))
        .unwrap_or(0);
    let end = now.saturating_sub(ends_ago.min(i64::MAX as u64) as i64);
    let lengths: Vec<Option<u64>> = d
        .segments
        .iter()
        .enumerate()
        .map(|(i, s)| dur(format!("{key}[{i}].for"), &s.duration))
        .collect();
    let explicit: Vec<Option<u64>> = d
        .samples
        .iter()
        .enumerate()
        .map(|(i, s)| dur(format!("{key}.samples[{i}].ago"), &s.ago))
        .collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut samples = if d.segments.is_empty() {
        Vec::new()
    } else {
        let lengths: Vec<u64> = lengths.iter().map(|l| l.unwrap_or(0)).collect();
        segment_samples(&d.segments, &lengths, step, end).map_err(|message| {
            vec![SnapshotError {
                key: key.to_string(),
                message,
            }]
        })?
    };
    for (sample, ago) in d.samples.iter().zip(&explicit) {
        samples.push(Sample {
            at: end.saturating_sub(ago.unwrap_or(0).min(i64::MAX as u64) as i64),
            value: sample.value.get(),
        });
    }
    samples.sort_by_key(|s| s.at);
    Ok((samples, d.missing.clone()))
}

/// The samples of consecutive segments (`lengths[i]` long each) ending at
/// `end`, one each `step` back from it: the newest segment covers offsets
/// `[0, len_n]`, the one before it `(len_n, len_n + len_{n-1}]`, and so on.
/// Refused past [`MAX_SAMPLES`], saying what to change.
fn segment_samples(
    segments: &[Segment],
    lengths: &[u64],
    step: u64,
    end: TimestampMs,
) -> Result<Vec<Sample>, String> {
    let total = lengths.iter().fold(0u64, |sum, l| sum.saturating_add(*l));
    let count = total / step + 1;
    if count > MAX_SAMPLES {
        return Err(format!(
            "{} at a step of {} is {count} samples, more than the {MAX_SAMPLES} a signal may have; shorten the segments or lengthen `step`",
            crate::duration::format_duration(total),
            crate::duration::format_duration(step),
        ));
    }
    let mut samples = Vec::with_capacity(count as usize);
    let mut offset = 0u64;
    while offset <= total {
        let mut boundary = 0u64;
        let mut value = segments[0].value;
        for (segment, len) in segments.iter().zip(lengths).rev() {
            boundary += len;
            if offset <= boundary {
                value = segment.value;
                break;
            }
        }
        samples.push(Sample {
            at: end.saturating_sub(offset as i64),
            value: value.get(),
        });
        offset += step;
    }
    Ok(samples)
}

/// A parameter value as written in a policy or scenario file, before its
/// kind is known.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RawParam {
    /// true/false.
    Boolean(bool),
    /// A number.
    Number(f64),
    /// A string: text, or a duration such as "5m".
    Text(String),
}

/// Check raw parameters against a policy's declared specs: unknown keys
/// (with the closest known key) and values of the wrong kind, every problem
/// at once. Returns only the parameters that were set, in spec order: a
/// policy applies its own declared defaults to the rest (see
/// [`effective_params`] for the full set, for display and audit).
pub fn resolve_params(
    specs: &[ParamSpec],
    raw: &BTreeMap<String, RawParam>,
) -> Result<Vec<Param>, Vec<ConfigError>> {
    let (params, errors) = resolve_params_partly(specs, raw);
    if errors.is_empty() {
        Ok(params)
    } else {
        Err(errors)
    }
}

/// [`resolve_params`], keeping what resolved beside the problems: the
/// parameters that were set and are good, and every problem, so the
/// checks that follow (the plugin's own, the signals) can still run on
/// the rest and report in the same run.
pub fn resolve_params_partly(
    specs: &[ParamSpec],
    raw: &BTreeMap<String, RawParam>,
) -> (Vec<Param>, Vec<ConfigError>) {
    let mut errors = Vec::new();
    for key in raw.keys() {
        if !specs.iter().any(|s| &s.key == key) {
            let hint = closest(key, specs.iter().map(|s| s.key.as_str()))
                .map(|k| format!(" (did you mean {k:?}?)"))
                .unwrap_or_default();
            errors.push(ConfigError {
                key: key.clone(),
                message: format!("unknown parameter{hint}"),
            });
        }
    }
    let mut params = Vec::new();
    for spec in specs {
        let Some(raw) = raw.get(&spec.key) else {
            continue;
        };
        let value = match (spec.kind, raw) {
            (ParamKind::Number, RawParam::Number(n)) if n.is_finite() => ParamValue::Number(*n),
            (ParamKind::Boolean, RawParam::Boolean(b)) => ParamValue::Boolean(*b),
            (ParamKind::Text, RawParam::Text(t)) => ParamValue::Text(t.clone()),
            (ParamKind::Duration, RawParam::Text(t)) => match parse_duration(t) {
                Ok(ms) => ParamValue::Duration(ms),
                Err(e) => {
                    errors.push(ConfigError {
                        key: spec.key.clone(),
                        message: e.to_string(),
                    });
                    continue;
                }
            },
            (kind, raw) => {
                errors.push(ConfigError {
                    key: spec.key.clone(),
                    message: format!("expected {kind}, found {}", describe_raw(raw)),
                });
                continue;
            }
        };
        params.push(Param {
            key: spec.key.clone(),
            value,
        });
    }
    (params, errors)
}

/// Every parameter with its effective value: the ones set, and the declared
/// default for the rest. For display and audit.
pub fn effective_params(specs: &[ParamSpec], set: &[Param]) -> Vec<Param> {
    specs
        .iter()
        .map(|spec| {
            set.iter()
                .find(|p| p.key == spec.key)
                .cloned()
                .unwrap_or_else(|| Param {
                    key: spec.key.clone(),
                    value: spec.default.clone(),
                })
        })
        .collect()
}

fn describe_raw(raw: &RawParam) -> String {
    match raw {
        RawParam::Boolean(b) => format!("{b}"),
        RawParam::Number(n) => format!("{n}"),
        RawParam::Text(t) => format!("{t:?}"),
    }
}

/// The known key closest to `key`, if one is close enough to be a typo.
pub fn closest<'a>(key: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    known
        .map(|k| (edit_distance(key, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Frame {
        Frame {
            service: "vedfolnir".into(),
            min_replicas: 2,
            max_replicas: 5,
            params: vec![],
        }
    }

    #[test]
    fn segments_expand_oldest_first_ending_at_now() {
        let snap: Snapshot = serde_json::from_str(
            r#"{"current_replicas": 3, "step": "1m",
                "signals": {"cpu": [{"value": 0.5, "for": "2m"}, {"value": 0.9, "for": "3m"}]}}"#,
        )
        .unwrap();
        let input = snap.to_input(&frame()).unwrap();
        let cpu = input.window(&SignalId::Cpu).unwrap();
        let values: Vec<f64> = cpu.samples.iter().map(|s| s.value).collect();
        // offsets 5m..0m: 5m,4m -> 0.5; 3m..0m -> 0.9
        assert_eq!(values, vec![0.5, 0.5, 0.9, 0.9, 0.9, 0.9]);
        assert_eq!(cpu.samples.last().unwrap().at, DEFAULT_NOW);
        assert_eq!(cpu.samples[0].at, DEFAULT_NOW - 300_000);
    }

    #[test]
    fn named_non_finite_values_and_missing_signals() {
        let snap: Snapshot = serde_json::from_str(
            r#"{"current_replicas": 3,
                "signals": {"cpu": [{"value": "NaN", "for": "1m"}],
                            "queue-depth": {"missing": "prometheus: connection refused"}}}"#,
        )
        .unwrap();
        let input = snap.to_input(&frame()).unwrap();
        assert!(
            input
                .window(&SignalId::Cpu)
                .unwrap()
                .samples
                .iter()
                .all(|s| s.value.is_nan())
        );
        let q = input.window(&SignalId::QueueDepth).unwrap();
        assert!(q.samples.is_empty());
        assert_eq!(
            q.missing_reason.as_deref(),
            Some("prometheus: connection refused")
        );
    }

    #[test]
    fn every_bad_duration_is_reported_with_its_key() {
        let snap: Snapshot = serde_json::from_str(
            r#"{"current_replicas": 3, "since_last_scale_up": "5 minutes",
                "signals": {"cpu": [{"value": 0.5, "for": "10"}], "Bad Name": [] }}"#,
        )
        .unwrap();
        let errors = snap.to_input(&frame()).unwrap_err();
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "since_last_scale_up",
                "signals.Bad Name",
                "signals.cpu[0].for"
            ]
        );
    }

    #[test]
    fn unknown_snapshot_field_is_rejected() {
        let err = serde_json::from_str::<Snapshot>(r#"{"current_replicas": 3, "curent": 1}"#)
            .unwrap_err();
        assert!(err.to_string().contains("curent"), "{err}");
    }

    fn specs() -> Vec<ParamSpec> {
        vec![
            ParamSpec {
                key: "cpu-up-threshold".into(),
                kind: ParamKind::Number,
                default: ParamValue::Number(0.7),
                description: String::new(),
            },
            ParamSpec {
                key: "up-window".into(),
                kind: ParamKind::Duration,
                default: ParamValue::Duration(300_000),
                description: String::new(),
            },
        ]
    }

    #[test]
    fn only_set_params_are_passed_and_durations_are_parsed() {
        let raw = BTreeMap::from([("up-window".to_string(), RawParam::Text("2m".into()))]);
        let params = resolve_params(&specs(), &raw).unwrap();
        assert_eq!(
            params,
            vec![Param {
                key: "up-window".into(),
                value: ParamValue::Duration(120_000)
            }]
        );
        let all = effective_params(&specs(), &params);
        assert_eq!(all[0].value, ParamValue::Number(0.7));
        assert_eq!(all[1].value, ParamValue::Duration(120_000));
    }

    #[test]
    fn params_report_every_problem_with_a_hint() {
        let raw = BTreeMap::from([
            ("cpu-up-treshold".to_string(), RawParam::Number(0.8)),
            ("up-window".to_string(), RawParam::Number(300.0)),
        ]);
        let errors = resolve_params(&specs(), &raw).unwrap_err();
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].key, "cpu-up-treshold");
        assert!(
            errors[0]
                .message
                .contains("did you mean \"cpu-up-threshold\""),
            "{}",
            errors[0].message
        );
        assert_eq!(errors[1].key, "up-window");
        assert!(
            errors[1].message.contains("expected a duration"),
            "{}",
            errors[1].message
        );
    }

    /// Found by the `snapshot` fuzz target: one segment 883888182 minutes
    /// long expanded to 3.5 billion samples and ran out of memory.
    #[test]
    fn a_segment_too_long_to_expand_is_refused_naming_the_signal() {
        let snap: Snapshot = serde_json::from_str(
            r#"{"current_replicas": 4, "signals": {"cpu": [{"value": 0.85, "for": "12m"}],
                "error-rate": [{"value": 0.01, "for": "883888182m"}]}}"#,
        )
        .unwrap();
        let errors = snap
            .to_input(&Frame {
                service: "web".into(),
                min_replicas: 2,
                max_replicas: 5,
                params: vec![],
            })
            .unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].key, "signals.error-rate");
        assert!(
            errors[0].message.contains("more than the 100000"),
            "{}",
            errors[0].message
        );
    }
}
