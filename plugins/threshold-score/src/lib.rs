//! `threshold-score`: the documented default Vedfolnir scaling policy.
//!
//! Two weighted scores, each term counting only when its condition held for
//! its whole window (the seed's "for 5 minutes", which the original shell
//! implementation never enforced):
//!
//! | term            | condition          | weight | window |
//! |-----------------|--------------------|--------|--------|
//! | up: cpu-high    | cpu > 0.70         | 3      | 5m     |
//! | up: memory-high | memory > 0.80      | 3      | 5m     |
//! | up: queue-high  | queue depth > 50   | 2      | 5m     |
//! | up: latency-high| p95 > 3 s          | 2      | 5m     |
//! | up: errors-high | error rate > 0.05  | 4      | 2m     |
//! | down: cpu-low   | cpu < 0.20         | 2      | 15m    |
//! | down: memory-low| memory < 0.40      | 2      | 15m    |
//! | down: queue-low | queue depth < 10   | 1      | 15m    |
//! | down: latency-low| p95 < 1 s         | 1      | 15m    |
//! | down: above-min | replicas > min     | 1      | now    |
//!
//! The scale-up score is 0 to 14 (the seed's comment says 0-15; its weights
//! add up to 14), the scale-down score 0 to 7.
//!
//! Alertmanager alerts, when the policy file routes the `scaling-alerts`
//! signal from the daemon's webhook (`source = "alertmanager"`; 2 an urgent
//! scale-up alert is firing, 1 a scale-up, -1 only a scale-down, 0 none),
//! are three more terms, scored like the others so the guard rails still
//! decide: `alert-up` (>= 1, weight 3: acts alone), `alert-urgent` (>= 2,
//! weight 4: with alert-up reaches the urgent score 7), `alert-down` (<= -1,
//! weight 4: with above-min reaches 5). Without that signal they are not
//! scored and say nothing.
//!
//! Decision: scale up by `step.up` (or `step.up-urgent` when the up score
//! reaches `decision.urgent-score`) when the up score reaches
//! `decision.up-score` (3: "70% CPU or 80% memory" alone is enough); else
//! scale down by `step.down` when the down score reaches
//! `decision.down-score` (5: "20% CPU and 40% memory" with replicas above
//! the minimum) and no up term counts; else hold.
//!
//! Missing data is never zero. Each signal has a rule, `missing.<signal>`:
//! `hold` (the whole recommendation holds), `ignore` (the term counts in
//! neither score) or `last-value` (judge the window as it stood at the
//! newest finite sample, if that is within `missing.last-value-ttl`). The
//! reason names the rule that fired. Defaults: cpu and memory hold, the
//! others ignore (many deployments export no queue or latency metric).

use vedfolnir_sdk::duration::{Elapsed, Pretty};
use vedfolnir_sdk::prelude::*;

/// The policy.
pub struct ThresholdScore;

vedfolnir_sdk::export_policy!(ThresholdScore);

const MINUTE: u64 = 60_000;

/// One scored term over one signal. The parameter keys are static so
/// reading the configuration allocates nothing (it runs on every evaluation).
struct TermSpec {
    name: &'static str,
    threshold_key: &'static str,
    weight_key: &'static str,
    for_key: &'static str,
    signal: SignalId,
    above: bool,
    threshold: f64,
    weight: f64,
    window: u64,
    what: &'static str,
}

macro_rules! term {
    ($name:literal, $signal:expr, $above:expr, $threshold:expr, $weight:expr, $minutes:expr, $what:literal) => {
        TermSpec {
            name: $name,
            threshold_key: concat!($name, ".threshold"),
            weight_key: concat!($name, ".weight"),
            for_key: concat!($name, ".for"),
            signal: $signal,
            above: $above,
            threshold: $threshold,
            weight: $weight,
            window: $minutes * MINUTE,
            what: $what,
        }
    };
}

/// The signal the daemon's Alertmanager webhook feeds.
const ALERT_SIGNAL: &str = "scaling-alerts";

fn up_terms() -> [TermSpec; 7] {
    [
        term!(
            "cpu-high",
            SignalId::Cpu,
            true,
            0.70,
            3.0,
            5,
            "CPU fraction of the limit"
        ),
        term!(
            "memory-high",
            SignalId::Memory,
            true,
            0.80,
            3.0,
            5,
            "memory fraction of the limit"
        ),
        term!(
            "queue-high",
            SignalId::QueueDepth,
            true,
            50.0,
            2.0,
            5,
            "queued jobs"
        ),
        term!(
            "latency-high",
            SignalId::ResponseTimeP95,
            true,
            3.0,
            2.0,
            5,
            "p95 response time in seconds"
        ),
        term!(
            "errors-high",
            SignalId::ErrorRate,
            true,
            0.05,
            4.0,
            2,
            "error fraction of requests"
        ),
        term!(
            "alert-up",
            SignalId::Custom(ALERT_SIGNAL.into()),
            true,
            0.5,
            3.0,
            0,
            "firing scale-up alerts (1 scale_up, 2 scale_up_urgent)"
        ),
        term!(
            "alert-urgent",
            SignalId::Custom(ALERT_SIGNAL.into()),
            true,
            1.5,
            4.0,
            0,
            "firing scale_up_urgent alerts (2)"
        ),
    ]
}

fn down_terms() -> [TermSpec; 5] {
    [
        term!(
            "cpu-low",
            SignalId::Cpu,
            false,
            0.20,
            2.0,
            15,
            "CPU fraction of the limit"
        ),
        term!(
            "memory-low",
            SignalId::Memory,
            false,
            0.40,
            2.0,
            15,
            "memory fraction of the limit"
        ),
        term!(
            "queue-low",
            SignalId::QueueDepth,
            false,
            10.0,
            1.0,
            15,
            "queued jobs"
        ),
        term!(
            "latency-low",
            SignalId::ResponseTimeP95,
            false,
            1.0,
            1.0,
            15,
            "p95 response time in seconds"
        ),
        term!(
            "alert-down",
            SignalId::Custom(ALERT_SIGNAL.into()),
            false,
            -0.5,
            4.0,
            0,
            "firing scale_down alerts only (-1)"
        ),
    ]
}

/// The `missing.<signal>` keys, in the order of `signals()`.
const MISSING_KEYS: [&str; 6] = [
    "missing.cpu",
    "missing.memory",
    "missing.queue-depth",
    "missing.response-time-p95",
    "missing.error-rate",
    "missing.scaling-alerts",
];

fn signals() -> [SignalId; 6] {
    [
        SignalId::Cpu,
        SignalId::Memory,
        SignalId::QueueDepth,
        SignalId::ResponseTimeP95,
        SignalId::ErrorRate,
        SignalId::Custom(ALERT_SIGNAL.into()),
    ]
}

fn default_missing_rule(signal: &SignalId) -> &'static str {
    match signal {
        SignalId::Cpu | SignalId::Memory => "hold",
        _ => "ignore",
    }
}

/// What to do when a signal has no usable data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MissingRule {
    Hold,
    Ignore,
    LastValue,
}

impl MissingRule {
    fn parse(text: &str) -> Option<MissingRule> {
        match text {
            "hold" => Some(MissingRule::Hold),
            "ignore" => Some(MissingRule::Ignore),
            "last-value" => Some(MissingRule::LastValue),
            _ => None,
        }
    }
}

/// The effective configuration, read from parameters.
pub struct Config {
    up: Vec<Term>,
    down: Vec<Term>,
    above_min_weight: f64,
    up_score: f64,
    down_score: f64,
    urgent_score: f64,
    step_up: u32,
    step_up_urgent: u32,
    step_down: u32,
    max_gap: u64,
    last_value_ttl: u64,
    missing: Vec<(SignalId, MissingRule)>,
}

/// A term with the threshold, weight and window its parameters set.
type Term = (TermSpec, f64, f64, u64);

impl Config {
    fn read(p: &mut Params) -> Config {
        let up = read_terms(up_terms().into(), p);
        let down = read_terms(down_terms().into(), p);
        let above_min_weight = p.number("above-min.weight", 1.0);
        let [up_score, down_score, urgent_score] = [
            ("decision.up-score", 3.0),
            ("decision.down-score", 5.0),
            ("decision.urgent-score", 7.0),
        ]
        .map(|(key, default)| {
            let value = p.number(key, default);
            if value <= 0.0 {
                p.error(
                    key,
                    format!(
                        "must be above 0, found {value} (a score of 0 would scale on no evidence)"
                    ),
                );
            }
            value
        });
        let [step_up, step_up_urgent, step_down] = [
            ("step.up", 1.0),
            ("step.up-urgent", 2.0),
            ("step.down", 1.0),
        ]
        .map(|(key, default)| read_step(p, key, default));
        let max_gap = p.duration("max-sample-gap", MINUTE);
        if max_gap == 0 {
            p.error("max-sample-gap", "must be longer than 0");
        }
        Config {
            up,
            down,
            above_min_weight,
            up_score,
            down_score,
            urgent_score,
            step_up,
            step_up_urgent,
            step_down,
            max_gap,
            last_value_ttl: p.duration("missing.last-value-ttl", 2 * MINUTE),
            missing: read_missing(p),
        }
    }

    fn missing_rule(&self, signal: &SignalId) -> MissingRule {
        self.missing
            .iter()
            .find(|(s, _)| s == signal)
            .map(|(_, r)| *r)
            .unwrap_or(MissingRule::Hold)
    }
}

/// Each term's threshold, weight (not negative) and window.
fn read_terms(specs: Vec<TermSpec>, p: &mut Params) -> Vec<Term> {
    specs
        .into_iter()
        .map(|t| {
            let threshold = p.number(t.threshold_key, t.threshold);
            let weight = p.number(t.weight_key, t.weight);
            let window = p.duration(t.for_key, t.window);
            if weight < 0.0 {
                p.error(t.weight_key, "must not be negative");
            }
            (t, threshold, weight, window)
        })
        .collect()
}

/// A step: a whole number of replicas from 1 to 100.
fn read_step(p: &mut Params, key: &str, default: f64) -> u32 {
    let v = p.number(key, default);
    if v < 1.0 || v.fract() != 0.0 || v > 100.0 {
        p.error(
            key,
            format!("must be a whole number from 1 to 100, found {v}"),
        );
        default as u32
    } else {
        v as u32
    }
}

/// Each signal's `missing.<signal>` rule.
fn read_missing(p: &mut Params) -> Vec<(SignalId, MissingRule)> {
    signals()
        .iter()
        .zip(MISSING_KEYS)
        .map(|(s, key)| {
            let text = p.text(key, default_missing_rule(s));
            let rule = MissingRule::parse(&text).unwrap_or_else(|| {
                p.error(
                    key,
                    format!("must be \"hold\", \"ignore\" or \"last-value\", found {text:?}"),
                );
                MissingRule::Hold
            });
            (s.clone(), rule)
        })
        .collect()
}

impl Configured for ThresholdScore {
    type Config = Config;

    fn describe() -> Description {
        let params = term_params()
            .into_iter()
            .chain(decision_params())
            .chain(missing_params())
            .collect();
        Description {
            name: "threshold-score".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "The documented Vedfolnir policy: weighted scale-up (0-14) and scale-down (0-7) scores whose \
                      terms count only when their condition held for the whole window."
                .into(),
            signals: signals()
                .iter()
                .map(|s| SignalSpec {
                    signal: s.clone(),
                    required: false,
                    description: format!("scored; missing-data rule missing.{s}"),
                })
                .collect(),
            params,
        }
    }

    fn read(params: &mut Params) -> Config {
        Config::read(params)
    }

    fn decide(config: &Config, input: &PolicyInput) -> Result<Recommendation, String> {
        Ok(evaluate(config, input))
    }
}

/// Each term's threshold, weight and window.
fn term_params() -> Vec<ParamSpec> {
    let mut params = Vec::new();
    for t in up_terms().into_iter().chain(down_terms()) {
        let cmp = if t.above { "above" } else { "below" };
        params.push(number(
            &format!("{}.threshold", t.name),
            t.threshold,
            &format!("{} {cmp} which the term counts", t.what),
        ));
        params.push(number(
            &format!("{}.weight", t.name),
            t.weight,
            "points the term adds to its score",
        ));
        params.push(ParamSpec {
            key: format!("{}.for", t.name),
            kind: ParamKind::Duration,
            default: ParamValue::Duration(t.window),
            description: "how long the condition must hold, without a break, to count".into(),
        });
    }
    params
}

/// The scores it decides at and the steps it takes.
fn decision_params() -> Vec<ParamSpec> {
    vec![
        number(
            "above-min.weight",
            1.0,
            "points added to the down score while replicas are above the minimum",
        ),
        number(
            "decision.up-score",
            3.0,
            "up score at which to scale up (cpu or memory alone is enough)",
        ),
        number(
            "decision.down-score",
            5.0,
            "down score at which to scale down (cpu and memory low, above minimum)",
        ),
        number(
            "decision.urgent-score",
            7.0,
            "up score at which to scale up by step.up-urgent",
        ),
        number("step.up", 1.0, "replicas added by a normal scale-up"),
        number(
            "step.up-urgent",
            2.0,
            "replicas added by an urgent scale-up",
        ),
        number("step.down", 1.0, "replicas removed by a scale-down"),
    ]
}

/// What broken data is and the rule for each signal without usable data.
fn missing_params() -> Vec<ParamSpec> {
    let mut params = vec![
        ParamSpec {
            key: "max-sample-gap".into(),
            kind: ParamKind::Duration,
            default: ParamValue::Duration(MINUTE),
            description: "longest gap between samples (and age of the newest) before the data counts as broken".into(),
        },
        ParamSpec {
            key: "missing.last-value-ttl".into(),
            kind: ParamKind::Duration,
            default: ParamValue::Duration(2 * MINUTE),
            description: "how old the last value may be for the last-value missing-data rule"
                .into(),
        },
    ];
    for s in signals() {
        params.push(ParamSpec {
            key: format!("missing.{s}"),
            kind: ParamKind::Text,
            default: ParamValue::Text(default_missing_rule(&s).into()),
            description: format!("rule when {s} has no usable data: hold, ignore or last-value"),
        });
    }
    params
}

fn number(key: &str, default: f64, description: &str) -> ParamSpec {
    ParamSpec {
        key: key.into(),
        kind: ParamKind::Number,
        default: ParamValue::Number(default),
        description: description.into(),
    }
}

/// How one signal stands, after its missing-data rule.
enum Standing<'a> {
    /// Judge terms on these samples as of this time.
    Usable { samples: &'a [Sample], as_of: i64 },
    /// Count no term on this signal.
    Ignored,
    /// The whole recommendation must hold.
    Hold,
}

fn standing<'a>(
    config: &Config,
    input: &'a PolicyInput,
    signal: &SignalId,
    reasons: &mut Vec<Reason>,
) -> Standing<'a> {
    let window = input.window(signal);
    // The alert signal is optional: not routed, not scored, and silent.
    if window.is_none() && matches!(signal, SignalId::Custom(name) if name == ALERT_SIGNAL) {
        return Standing::Ignored;
    }
    let samples = window.map(|w| w.samples.as_slice()).unwrap_or(&[]);
    let problem = match held(samples, input.now, config.max_gap, |_| true) {
        Held::Observed { .. } => {
            return Standing::Usable {
                samples,
                as_of: input.now,
            };
        }
        Held::NoData => window
            .and_then(|w| w.missing_reason.clone())
            .unwrap_or_else(|| "no samples".into()),
        Held::Stale { age } => format!("newest sample is {} old", Elapsed(age)),
        Held::NonFinite => "newest sample is not a finite number".into(),
    };
    let rule = config.missing_rule(signal);
    let trigger = format!("{signal}-missing");
    match rule {
        MissingRule::Hold => {
            reasons.push(Reason::new(
                trigger,
                format!("{signal} missing ({problem}); rule hold"),
            ));
            Standing::Hold
        }
        MissingRule::Ignore => {
            reasons.push(Reason::new(
                trigger,
                format!(
                    "{signal} missing ({problem}); rule ignore: its terms count in neither score"
                ),
            ));
            Standing::Ignored
        }
        MissingRule::LastValue => match latest_within(samples, input.now, config.last_value_ttl) {
            Some(last) => {
                let idx = samples
                    .iter()
                    .rposition(|s| s.at == last.at)
                    .expect("sample found above");
                reasons.push(Reason {
                    observed: Some(last.value),
                    ..Reason::new(
                        trigger,
                        format!(
                            "{signal} missing ({problem}); rule last-value: judging as of the value from {} ago",
                            Elapsed((input.now - last.at).max(0) as u64)
                        ),
                    )
                });
                Standing::Usable {
                    samples: &samples[..=idx],
                    as_of: last.at,
                }
            }
            None => {
                reasons.push(Reason::new(
                    trigger,
                    format!(
                        "{signal} missing ({problem}); rule last-value, but no finite value within {}: holding",
                        Pretty(config.last_value_ttl)
                    ),
                ));
                Standing::Hold
            }
        },
    }
}

fn evaluate(config: &Config, input: &PolicyInput) -> Recommendation {
    let mut reasons = Vec::new();
    let standings: Vec<(SignalId, Standing)> = signals()
        .iter()
        .map(|s| (s.clone(), standing(config, input, s, &mut reasons)))
        .collect();
    let must_hold = standings.iter().any(|(_, st)| matches!(st, Standing::Hold));
    let up = score(config, &config.up, &standings, &mut reasons);
    let down = score(config, &config.down, &standings, &mut reasons)
        + above_min(config, input, &mut reasons);
    let scores = Scores { up, down };
    if must_hold {
        let why = format!("holding: a signal whose rule is hold is missing (up {up}, down {down})");
        return scores.hold(input, reasons, why);
    }
    if up >= config.up_score {
        return scale_up(config, input, scores, reasons);
    }
    if down >= config.down_score && up == 0.0 {
        return scale_down(config, input, scores, reasons);
    }
    let why = if down >= config.down_score {
        format!(
            "down score {down} reached {} but up score is {up}: never scale in under scale-up pressure",
            config.down_score
        )
    } else {
        format!(
            "up score {up} < {}, down score {down} < {}",
            config.up_score, config.down_score
        )
    };
    scores.hold(input, reasons, why)
}

/// The sum of the weights of the terms that held for their whole window,
/// each term that held at all said (counted, or pending).
fn score(
    config: &Config,
    terms: &[Term],
    standings: &[(SignalId, Standing)],
    reasons: &mut Vec<Reason>,
) -> f64 {
    let mut total = 0.0;
    for (t, threshold, weight, window) in terms {
        let Some((_, Standing::Usable { samples, as_of })) =
            standings.iter().find(|(s, _)| *s == t.signal)
        else {
            continue;
        };
        let th = *threshold;
        let h = if t.above {
            held(samples, *as_of, config.max_gap, |v| v > th)
        } else {
            held(samples, *as_of, config.max_gap, |v| v < th)
        };
        if !h.satisfied() {
            continue;
        }
        let held_for = h.held_for().unwrap_or(0);
        let counts = held_for >= *window;
        let cmp = if t.above { ">" } else { "<" };
        let (trigger, message) = if counts {
            total += weight;
            let message = format!(
                "{} {cmp} {th} for {} (window {}): +{weight}",
                t.signal,
                Elapsed(held_for),
                Pretty(*window)
            );
            (t.name.to_string(), message)
        } else {
            let message = format!(
                "{} {cmp} {th} for only {} of the {} window: not counted",
                t.signal,
                Elapsed(held_for),
                Pretty(*window)
            );
            (format!("{}-pending", t.name), message)
        };
        reasons.push(Reason {
            trigger,
            observed: h.latest(),
            threshold: Some(th),
            held_for: Some(held_for),
            message,
        });
    }
    total
}

/// The `above-min` term: its weight while replicas are above the minimum.
fn above_min(config: &Config, input: &PolicyInput, reasons: &mut Vec<Reason>) -> f64 {
    let current = input.current_replicas;
    if current <= input.min_replicas || config.above_min_weight <= 0.0 {
        return 0.0;
    }
    reasons.push(Reason {
        observed: Some(f64::from(current)),
        threshold: Some(f64::from(input.min_replicas)),
        ..Reason::new(
            "above-min",
            format!(
                "{current} replicas above the minimum {}: +{}",
                input.min_replicas, config.above_min_weight
            ),
        )
    });
    config.above_min_weight
}

/// The two scores of one evaluation.
#[derive(Clone, Copy)]
struct Scores {
    up: f64,
    down: f64,
}

impl Scores {
    /// A recommendation to go to `desired`, with the decision's reason last.
    fn recommend(self, desired: u32, direction: Direction, reasons: Vec<Reason>) -> Recommendation {
        Recommendation {
            desired_replicas: desired,
            direction,
            scale_up_score: self.up,
            scale_down_score: self.down,
            reasons,
        }
    }

    /// A hold, saying why.
    fn hold(self, input: &PolicyInput, mut reasons: Vec<Reason>, why: String) -> Recommendation {
        reasons.push(Reason::new("decision", why));
        self.recommend(input.current_replicas, Direction::Hold, reasons)
    }
}

/// The up score reached `decision.up-score`: up by `step.up`, or by
/// `step.up-urgent` at `decision.urgent-score`, short of the maximum.
fn scale_up(
    config: &Config,
    input: &PolicyInput,
    scores: Scores,
    mut reasons: Vec<Reason>,
) -> Recommendation {
    let (current, up) = (input.current_replicas, scores.up);
    if current >= input.max_replicas {
        let why = format!(
            "up score {up} >= {} but already at the maximum {}",
            config.up_score, input.max_replicas
        );
        return scores.hold(input, reasons, why);
    }
    let urgent = up >= config.urgent_score;
    let step = if urgent {
        config.step_up_urgent
    } else {
        config.step_up
    };
    let desired = current.saturating_add(step).min(input.max_replicas);
    let urgency = if urgent {
        format!(" (urgent, >= {})", config.urgent_score)
    } else {
        String::new()
    };
    reasons.push(Reason {
        observed: Some(up),
        threshold: Some(config.up_score),
        ..Reason::new(
            "decision",
            format!(
                "up score {up} >= {}{urgency}: scale up {current} -> {desired}",
                config.up_score,
            ),
        )
    });
    scores.recommend(desired, Direction::Up, reasons)
}

/// The down score reached `decision.down-score` with no up term counting:
/// down by `step.down`, short of the minimum.
fn scale_down(
    config: &Config,
    input: &PolicyInput,
    scores: Scores,
    mut reasons: Vec<Reason>,
) -> Recommendation {
    let (current, down) = (input.current_replicas, scores.down);
    if current <= input.min_replicas {
        let why = format!(
            "down score {down} >= {} but already at the minimum {}",
            config.down_score, input.min_replicas
        );
        return scores.hold(input, reasons, why);
    }
    let desired = current
        .saturating_sub(config.step_down)
        .max(input.min_replicas);
    reasons.push(Reason {
        observed: Some(down),
        threshold: Some(config.down_score),
        ..Reason::new(
            "decision",
            format!(
                "down score {down} >= {}: scale down {current} -> {desired}",
                config.down_score
            ),
        )
    });
    scores.recommend(desired, Direction::Down, reasons)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_scenarios_pass_and_the_defaults_validate() {
        vedfolnir_sdk::testing::check_policy::<ThresholdScore>(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scenarios.toml"
        ));
    }

    #[test]
    fn bad_values_are_reported_by_key() {
        let mut params: Vec<Param> = <ThresholdScore as Policy>::describe().default_params();
        for p in &mut params {
            match p.key.as_str() {
                "missing.cpu" => p.value = ParamValue::Text("zero".into()),
                "step.up" => p.value = ParamValue::Number(1.5),
                "decision.up-score" => p.value = ParamValue::Number(0.0),
                _ => {}
            }
        }
        let errors = ThresholdScore::validate_config(&params).unwrap_err();
        let mut keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        keys.sort();
        assert_eq!(keys, vec!["decision.up-score", "missing.cpu", "step.up"]);
    }
}
