//! Guard rails: the host's final say over a policy's untrusted advice.
//!
//! A plugin only recommends. These rules, run in this order, decide what
//! actually happens, and every rule that changes or blocks the outcome
//! pushes a [`GuardReason`] recording the value before and after:
//!
//! ```text
//!   paused? ──yes──> hold                                        paused
//!     │no
//!   current outside [min, max]? ──yes──> restore the bound   restore_bounds
//!     │no          (no cooldown, no data needed: bounds are config)
//!   policy failed (trap, timeout, oom, error)? ──yes──> hold  policy_failed
//!     │no
//!   recommendation malformed (non-finite score,
//!   direction disagrees with desired)? ──yes──> hold  invalid_recommendation
//!     │no
//!   recommends hold? ──yes──> hold                            policy_hold
//!     │no
//!   a required signal missing or stale? ──yes──> hold    missing_or_stale
//!     │no
//!   clamp desired to [min, max];                                  clamp
//!   limit the step (2 up, 1 down)                            limit_step
//!     │
//!   nothing left to change? ──yes──> hold                      no_change
//!     │no
//!   in cooldown for that direction? ──yes──> hold               cooldown
//!     │no
//!   scale
//! ```
//!
//! Each rule is a small function of its own (named on the right), and
//! [`decide`] runs them in this order.
//!
//! Cooldowns are separate per direction: a scale-up waits `cooldown_up`
//! after the last scale-up; a scale-down waits `cooldown_down` after the last
//! scale of either direction, so the service does not shrink right after it
//! grew (the oscillation the seed warns about). Only a successful scale
//! starts a cooldown: the caller records it in [`GuardState`] after the
//! actuator reports success.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::duration::{format_duration, format_elapsed};
use crate::model::{Direction, DurationMs, PolicyInput, Recommendation, SignalId, TimestampMs};

/// The guard-rail settings of one service, from its policy file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardConfig {
    /// Lower bound. Defaults to 2.
    pub min_replicas: u32,
    /// Upper bound. Defaults to 5.
    pub max_replicas: u32,
    /// Wait after a scale-up before the next scale-up. Defaults to 5 minutes.
    pub cooldown_up: DurationMs,
    /// Wait after any scale before a scale-down. Defaults to 10 minutes.
    pub cooldown_down: DurationMs,
    /// Most replicas added by one action. Defaults to 2.
    pub max_step_up: u32,
    /// Most replicas removed by one action. Defaults to 1.
    pub max_step_down: u32,
    /// A required signal whose newest sample is older than this is stale.
    /// Defaults to 1 minute (four missed 15 s evaluations).
    pub staleness: DurationMs,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            min_replicas: 2,
            max_replicas: 5,
            cooldown_up: 5 * 60_000,
            cooldown_down: 10 * 60_000,
            max_step_up: 2,
            max_step_down: 1,
            staleness: 60_000,
        }
    }
}

/// What the guard rails remember of a service between evaluations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GuardState {
    /// When the last successful scale-up finished.
    pub last_scale_up: Option<TimestampMs>,
    /// When the last successful scale-down finished.
    pub last_scale_down: Option<TimestampMs>,
    /// An operator paused automatic scaling.
    pub paused: bool,
}

impl GuardState {
    /// The state an input implies: the last scale-up and scale-down at
    /// `now` minus the input's time since them; not paused. Used where there
    /// is no stored state (snapshots, scenarios).
    pub fn implied_by(input: &PolicyInput) -> GuardState {
        GuardState {
            last_scale_up: input.since_last_scale_up.map(|d| input.now - d as i64),
            last_scale_down: input.since_last_scale_down.map(|d| input.now - d as i64),
            paused: false,
        }
    }

    /// Time since the last scale-up, as a policy input.
    pub fn since_last_scale_up(&self, now: TimestampMs) -> Option<DurationMs> {
        self.last_scale_up
            .map(|t| now.saturating_sub(t).max(0) as u64)
    }

    /// Time since the last scale-down, as a policy input.
    pub fn since_last_scale_down(&self, now: TimestampMs) -> Option<DurationMs> {
        self.last_scale_down
            .map(|t| now.saturating_sub(t).max(0) as u64)
    }

    /// When the last scale either way finished: what a scale-down's
    /// cooldown counts from.
    pub fn last_scale(&self) -> Option<TimestampMs> {
        self.last_scale_up.max(self.last_scale_down)
    }

    /// When each direction's cooldown ends (or ended): `(up, down)`; `None`
    /// for a direction that never started one. A scale-up waits
    /// `cooldown_up` after the last scale-up, a scale-down `cooldown_down`
    /// after the last scale either way.
    pub fn cooldowns_end(
        &self,
        config: &GuardConfig,
    ) -> (Option<TimestampMs>, Option<TimestampMs>) {
        let end = |t: Option<TimestampMs>, wait: DurationMs| {
            t.map(|t| t.saturating_add(wait.min(i64::MAX as u64) as i64))
        };
        (
            end(self.last_scale_up, config.cooldown_up),
            end(self.last_scale(), config.cooldown_down),
        )
    }
}

/// Why a policy produced no recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// The guest trapped (panic, unreachable, out-of-bounds access).
    Trap,
    /// The guest ran past its deadline.
    Timeout,
    /// The guest asked for more memory than its cap.
    OutOfMemory,
    /// The guest returned its own error.
    Guest,
    /// No usable policy: not loaded, failed to instantiate, or similar.
    Unavailable,
}

impl FailureKind {
    /// A stable lowercase label, for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Trap => "trap",
            FailureKind::Timeout => "timeout",
            FailureKind::OutOfMemory => "out-of-memory",
            FailureKind::Guest => "guest-error",
            FailureKind::Unavailable => "unavailable",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A policy evaluation that produced no recommendation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyFailure {
    /// The class of failure.
    pub kind: FailureKind,
    /// The detail, for operators.
    pub message: String,
}

/// The rule that produced a guard reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// Automatic scaling is paused.
    Paused,
    /// Current replicas below the minimum: restored.
    BelowMinimum,
    /// Current replicas above the maximum: restored.
    AboveMaximum,
    /// The policy failed.
    PolicyFailed,
    /// The recommendation was malformed.
    InvalidRecommendation,
    /// The policy recommends holding.
    PolicyHold,
    /// A required signal has no usable data.
    DataMissing,
    /// A required signal's newest sample is too old.
    DataStale,
    /// Desired clamped to the maximum.
    ClampedToMax,
    /// Desired clamped to the minimum.
    ClampedToMin,
    /// The step was limited.
    StepLimited,
    /// Nothing left to change after clamping.
    NoChange,
    /// A scale-up cooldown is running.
    CooldownUp,
    /// A scale-down cooldown is running.
    CooldownDown,
}

/// One guard-rail intervention, with the values before and after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardReason {
    /// Which rule.
    pub rule: Rule,
    /// The replica count before the rule applied, when it changed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<u32>,
    /// The replica count after the rule applied, when it changed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<u32>,
    /// One line for operators.
    pub message: String,
}

impl fmt::Display for GuardReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.rule.as_str(), self.message)
    }
}

impl Rule {
    /// The rule's stable kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Paused => "paused",
            Rule::BelowMinimum => "below-minimum",
            Rule::AboveMaximum => "above-maximum",
            Rule::PolicyFailed => "policy-failed",
            Rule::InvalidRecommendation => "invalid-recommendation",
            Rule::PolicyHold => "policy-hold",
            Rule::DataMissing => "data-missing",
            Rule::DataStale => "data-stale",
            Rule::ClampedToMax => "clamped-to-max",
            Rule::ClampedToMin => "clamped-to-min",
            Rule::StepLimited => "step-limited",
            Rule::NoChange => "no-change",
            Rule::CooldownUp => "cooldown-up",
            Rule::CooldownDown => "cooldown-down",
        }
    }
}

/// What the guard rails decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Replicas now.
    pub current: u32,
    /// What the policy wanted, when it produced a recommendation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommended: Option<u32>,
    /// What the host will scale to (equal to `current` for hold).
    pub target: u32,
    /// Which way.
    pub direction: Direction,
    /// Every guard-rail intervention, in order.
    pub reasons: Vec<GuardReason>,
}

impl Decision {
    /// True when the decision changes the replica count.
    pub fn is_scale(&self) -> bool {
        self.direction != Direction::Hold
    }
}

/// The signals a policy needs, for the missing/stale-data rule.
#[derive(Debug, Clone, Copy)]
pub struct Requirements<'a> {
    /// Signals the policy declared `required`.
    pub required: &'a [SignalId],
}

/// Apply the guard rails to one evaluation, rule by rule in the order the
/// module's diagram draws: the first rule that stops it decides, with every
/// intervention before it kept. Pure: `now` comes from `input`.
pub fn decide(
    config: &GuardConfig,
    state: &GuardState,
    input: &PolicyInput,
    requirements: Requirements<'_>,
    outcome: Result<&Recommendation, &PolicyFailure>,
) -> Decision {
    let current = input.current_replicas;
    let held = Decision {
        current,
        recommended: outcome.ok().map(|r| r.desired_replicas),
        target: current,
        direction: Direction::Hold,
        reasons: Vec::new(),
    };
    if let Some(reason) = paused(state) {
        return held.because(vec![reason]);
    }
    // Bounds are configuration, not metrics: restore them even when the
    // policy failed or the data is stale, and without waiting for a cooldown.
    if let Some((target, reason)) = restore_bounds(config, current) {
        return held.scaled_to(target).because(vec![reason]);
    }
    let rec = match outcome {
        Ok(rec) => rec,
        Err(failure) => return held.because(vec![policy_failed(failure)]),
    };
    if let Some(reason) = invalid_recommendation(rec, current).or_else(|| policy_hold(rec)) {
        return held.because(vec![reason]);
    }
    let data = missing_or_stale(config, input, requirements);
    if !data.is_empty() {
        return held.because(data);
    }
    let (target, mut reasons) = clamp(config, rec.desired_replicas);
    let (target, step) = limit_step(config, current, target);
    reasons.extend(step);
    let stop =
        no_change(current, target).or_else(|| cooldown(config, state, input.now, current, target));
    if let Some(reason) = stop {
        reasons.push(reason);
        return held.because(reasons);
    }
    held.scaled_to(target).because(reasons)
}

impl Decision {
    /// This decision, going to `target`.
    fn scaled_to(self, target: u32) -> Decision {
        Decision {
            target,
            direction: Direction::between(self.current, target),
            ..self
        }
    }

    /// This decision, with the rules' interventions that led to it.
    fn because(self, reasons: Vec<GuardReason>) -> Decision {
        Decision { reasons, ..self }
    }
}

impl GuardReason {
    /// An intervention that blocks, changing no count.
    fn new(rule: Rule, message: String) -> GuardReason {
        GuardReason {
            rule,
            from: None,
            to: None,
            message,
        }
    }

    /// An intervention that changes the count from `from` to `to`.
    fn change(rule: Rule, from: u32, to: u32, message: String) -> GuardReason {
        GuardReason {
            rule,
            from: Some(from),
            to: Some(to),
            message,
        }
    }
}

/// Rule 1: an operator paused automatic scaling.
fn paused(state: &GuardState) -> Option<GuardReason> {
    state.paused.then(|| {
        GuardReason::new(
            Rule::Paused,
            "automatic scaling is paused by an operator".into(),
        )
    })
}

/// Rule 2: a count outside `[min, max]` is restored to the bound it
/// crossed, whatever the policy said.
fn restore_bounds(config: &GuardConfig, current: u32) -> Option<(u32, GuardReason)> {
    let (rule, bound, side) = if current < config.min_replicas {
        (Rule::BelowMinimum, config.min_replicas, "below the minimum")
    } else if current > config.max_replicas {
        (Rule::AboveMaximum, config.max_replicas, "above the maximum")
    } else {
        return None;
    };
    let message = format!("{current} replicas is {side} {bound}: restoring it");
    Some((bound, GuardReason::change(rule, current, bound, message)))
}

/// Rule 3: the policy gave no recommendation.
fn policy_failed(failure: &PolicyFailure) -> GuardReason {
    GuardReason::new(
        Rule::PolicyFailed,
        format!(
            "policy failed ({}): {}; holding",
            failure.kind, failure.message
        ),
    )
}

/// Rule 4: a recommendation that cannot be trusted ([`malformed`]).
fn invalid_recommendation(rec: &Recommendation, current: u32) -> Option<GuardReason> {
    malformed(rec, current)
        .map(|problem| GuardReason::new(Rule::InvalidRecommendation, format!("{problem}; holding")))
}

/// Rule 5: the policy itself recommends holding.
fn policy_hold(rec: &Recommendation) -> Option<GuardReason> {
    (rec.direction == Direction::Hold)
        .then(|| GuardReason::new(Rule::PolicyHold, "the policy recommends holding".into()))
}

/// Rule 6: every required signal without a finite sample, or whose newest
/// is older than the staleness limit (all of them are named).
fn missing_or_stale(
    config: &GuardConfig,
    input: &PolicyInput,
    requirements: Requirements<'_>,
) -> Vec<GuardReason> {
    let mut reasons = Vec::new();
    for signal in requirements.required {
        let window = input.window(signal);
        let newest = window.and_then(|w| w.samples.iter().rev().find(|s| s.value.is_finite()));
        let Some(newest) = newest else {
            let why = window
                .and_then(|w| w.missing_reason.clone())
                .unwrap_or_else(|| "no finite sample".into());
            let message = format!("required signal {signal} is missing ({why}); holding");
            reasons.push(GuardReason::new(Rule::DataMissing, message));
            continue;
        };
        let age = input.now.saturating_sub(newest.at).max(0) as u64;
        if age > config.staleness {
            let message = format!(
                "required signal {signal} is stale: newest sample is {} old, limit {}; holding",
                format_elapsed(age),
                format_duration(config.staleness)
            );
            reasons.push(GuardReason::new(Rule::DataStale, message));
        }
    }
    reasons
}

/// Rule 7: the desired count, clamped to `[min, max]`.
fn clamp(config: &GuardConfig, desired: u32) -> (u32, Vec<GuardReason>) {
    let (min, max) = (config.min_replicas, config.max_replicas);
    let mut reasons = Vec::new();
    let mut target = desired;
    if target > max {
        let message = format!("desired {target} clamped to the maximum {max}");
        reasons.push(GuardReason::change(
            Rule::ClampedToMax,
            target,
            max,
            message,
        ));
        target = max;
    }
    if target < min {
        let message = format!("desired {target} clamped to the minimum {min}");
        reasons.push(GuardReason::change(
            Rule::ClampedToMin,
            target,
            min,
            message,
        ));
        target = min;
    }
    (target, reasons)
}

/// Rule 8: at most `max_step_up` replicas added, `max_step_down` removed,
/// by one action.
fn limit_step(config: &GuardConfig, current: u32, target: u32) -> (u32, Option<GuardReason>) {
    let (limited, message) = if target > current && target - current > config.max_step_up {
        (
            current + config.max_step_up,
            format!("scale-up step limited to {} per action", config.max_step_up),
        )
    } else if target < current && current - target > config.max_step_down {
        (
            current - config.max_step_down,
            format!(
                "scale-down step limited to {} per action",
                config.max_step_down
            ),
        )
    } else {
        return (target, None);
    };
    let reason = GuardReason::change(Rule::StepLimited, target, limited, message);
    (limited, Some(reason))
}

/// Rule 9: after the bounds, nothing is left to change.
fn no_change(current: u32, target: u32) -> Option<GuardReason> {
    (current == target).then(|| {
        GuardReason::new(
            Rule::NoChange,
            format!("already at {current} after the bounds; holding"),
        )
    })
}

/// Rule 10: the direction's cooldown is running. A scale-up waits
/// `cooldown_up` after the last scale-up; a scale-down `cooldown_down`
/// after the last scale either way.
fn cooldown(
    config: &GuardConfig,
    state: &GuardState,
    now: TimestampMs,
    current: u32,
    target: u32,
) -> Option<GuardReason> {
    let (rule, last, wait, what) = match Direction::between(current, target) {
        Direction::Up => (
            Rule::CooldownUp,
            state.last_scale_up,
            config.cooldown_up,
            "scale-up cooldown: last scale-up",
        ),
        Direction::Down => (
            Rule::CooldownDown,
            state.last_scale(),
            config.cooldown_down,
            "scale-down cooldown: last scale",
        ),
        Direction::Hold => return None,
    };
    let elapsed = now.saturating_sub(last?).max(0) as u64;
    (elapsed < wait).then(|| {
        let message = format!(
            "{what} {} ago, cooldown {}, {} left",
            format_elapsed(elapsed),
            format_duration(wait),
            format_elapsed(wait - elapsed)
        );
        GuardReason::change(rule, target, current, message)
    })
}

/// The guard rails' rule for an operator's request (`scale-up`,
/// `scale-down`, the API): `wanted` replicas, clamped to `[min, max]` with
/// the clamp recorded. No cooldown, step limit, data or pause rule applies:
/// an operator decides, and the bounds are the only guard. A request that
/// ends where the service already is holds (`no-change`).
pub fn manual(config: &GuardConfig, current: u32, wanted: u32) -> Decision {
    let mut reasons = Vec::new();
    let mut target = wanted;
    if target > config.max_replicas {
        reasons.push(GuardReason {
            rule: Rule::ClampedToMax,
            from: Some(target),
            to: Some(config.max_replicas),
            message: format!(
                "{target} is above max_replicas {}: clamped to {}",
                config.max_replicas, config.max_replicas
            ),
        });
        target = config.max_replicas;
    }
    if target < config.min_replicas {
        reasons.push(GuardReason {
            rule: Rule::ClampedToMin,
            from: Some(target),
            to: Some(config.min_replicas),
            message: format!(
                "{target} is below min_replicas {}: clamped to {}",
                config.min_replicas, config.min_replicas
            ),
        });
        target = config.min_replicas;
    }
    let direction = Direction::between(current, target);
    if direction == Direction::Hold {
        reasons.push(GuardReason {
            rule: Rule::NoChange,
            from: None,
            to: None,
            message: format!("already at {current} replica(s); nothing to do"),
        });
    }
    Decision {
        current,
        recommended: Some(wanted),
        target,
        direction,
        reasons,
    }
}

/// Why a recommendation cannot be trusted at all, if it cannot: a
/// non-finite or negative score, or a direction that disagrees with the
/// desired count. The guard rails hold on it; `plugin check` rejects it.
pub fn malformed(rec: &Recommendation, current: u32) -> Option<String> {
    for (name, score) in [
        ("scale-up-score", rec.scale_up_score),
        ("scale-down-score", rec.scale_down_score),
    ] {
        if !score.is_finite() {
            return Some(format!("{name} is {score}, not a finite number"));
        }
        if score < 0.0 {
            return Some(format!("{name} is negative ({score})"));
        }
    }
    let actual = Direction::between(current, rec.desired_replicas);
    if actual != rec.direction {
        return Some(format!(
            "direction {} disagrees with desired {} from current {current}",
            rec.direction, rec.desired_replicas
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Sample, SignalWindow};

    const NOW: TimestampMs = 1_800_000_000_000;
    const MIN: i64 = 60_000;

    fn input(current: u32) -> PolicyInput {
        PolicyInput {
            service: "vedfolnir".into(),
            now: NOW,
            current_replicas: current,
            ready_replicas: current,
            min_replicas: 2,
            max_replicas: 5,
            since_last_scale_up: None,
            since_last_scale_down: None,
            params: vec![],
            signals: vec![SignalWindow {
                signal: SignalId::Cpu,
                samples: vec![Sample {
                    at: NOW - 5_000,
                    value: 0.5,
                }],
                missing_reason: None,
            }],
        }
    }

    fn rec(current: u32, desired: u32) -> Recommendation {
        Recommendation {
            desired_replicas: desired,
            direction: Direction::between(current, desired),
            scale_up_score: 3.0,
            scale_down_score: 0.0,
            reasons: vec![],
        }
    }

    struct Case {
        name: &'static str,
        current: u32,
        outcome: Result<Recommendation, PolicyFailure>,
        state: GuardState,
        input: fn(PolicyInput) -> PolicyInput,
        expect_target: u32,
        expect_rules: &'static [Rule],
    }

    fn same(i: PolicyInput) -> PolicyInput {
        i
    }

    fn ago(ms: i64) -> Option<TimestampMs> {
        Some(NOW - ms)
    }

    fn cases() -> Vec<Case> {
        let failure = |kind| PolicyFailure {
            kind,
            message: "boom".into(),
        };
        vec![
            Case {
                name: "scales_up_when_nothing_blocks",
                current: 3,
                outcome: Ok(rec(3, 4)),
                state: GuardState::default(),
                input: same,
                expect_target: 4,
                expect_rules: &[],
            },
            Case {
                name: "clamps_desired_to_max_and_says_so",
                current: 4,
                outcome: Ok(rec(4, 9)),
                state: GuardState::default(),
                input: same,
                expect_target: 5,
                expect_rules: &[Rule::ClampedToMax],
            },
            Case {
                name: "clamps_desired_to_min_and_says_so",
                current: 3,
                outcome: Ok(rec(3, 0)),
                state: GuardState::default(),
                input: same,
                expect_target: 2,
                expect_rules: &[Rule::ClampedToMin],
            },
            Case {
                name: "limits_scale_up_to_two_per_action",
                current: 2,
                outcome: Ok(rec(2, 5)),
                state: GuardState::default(),
                input: same,
                expect_target: 4,
                expect_rules: &[Rule::StepLimited],
            },
            Case {
                name: "limits_scale_down_to_one_per_action",
                current: 5,
                outcome: Ok(rec(5, 2)),
                state: GuardState::default(),
                input: same,
                expect_target: 4,
                expect_rules: &[Rule::StepLimited],
            },
            Case {
                name: "cooldown_blocks_second_scale_up",
                current: 3,
                outcome: Ok(rec(3, 4)),
                state: GuardState {
                    last_scale_up: ago(4 * MIN),
                    ..Default::default()
                },
                input: same,
                expect_target: 3,
                expect_rules: &[Rule::CooldownUp],
            },
            Case {
                name: "scale_up_allowed_once_cooldown_has_passed",
                current: 3,
                outcome: Ok(rec(3, 4)),
                state: GuardState {
                    last_scale_up: ago(5 * MIN),
                    ..Default::default()
                },
                input: same,
                expect_target: 4,
                expect_rules: &[],
            },
            Case {
                name: "recent_scale_down_does_not_block_scale_up",
                current: 3,
                outcome: Ok(rec(3, 4)),
                state: GuardState {
                    last_scale_down: ago(MIN),
                    ..Default::default()
                },
                input: same,
                expect_target: 4,
                expect_rules: &[],
            },
            Case {
                name: "scale_down_waits_ten_minutes_after_a_scale_up",
                current: 4,
                outcome: Ok(rec(4, 3)),
                state: GuardState {
                    last_scale_up: ago(9 * MIN),
                    ..Default::default()
                },
                input: same,
                expect_target: 4,
                expect_rules: &[Rule::CooldownDown],
            },
            Case {
                name: "scale_down_waits_ten_minutes_after_a_scale_down",
                current: 4,
                outcome: Ok(rec(4, 3)),
                state: GuardState {
                    last_scale_down: ago(9 * MIN + 59_000),
                    ..Default::default()
                },
                input: same,
                expect_target: 4,
                expect_rules: &[Rule::CooldownDown],
            },
            Case {
                name: "scale_down_allowed_after_cooldown",
                current: 4,
                outcome: Ok(rec(4, 3)),
                state: GuardState {
                    last_scale_down: ago(10 * MIN),
                    last_scale_up: ago(60 * MIN),
                    ..Default::default()
                },
                input: same,
                expect_target: 3,
                expect_rules: &[],
            },
            Case {
                name: "policy_trap_means_hold",
                current: 3,
                outcome: Err(failure(FailureKind::Trap)),
                state: GuardState::default(),
                input: same,
                expect_target: 3,
                expect_rules: &[Rule::PolicyFailed],
            },
            Case {
                name: "policy_timeout_means_hold",
                current: 3,
                outcome: Err(failure(FailureKind::Timeout)),
                state: GuardState::default(),
                input: same,
                expect_target: 3,
                expect_rules: &[Rule::PolicyFailed],
            },
            Case {
                name: "non_finite_score_means_hold",
                current: 3,
                outcome: Ok(Recommendation {
                    scale_up_score: f64::NAN,
                    ..rec(3, 4)
                }),
                state: GuardState::default(),
                input: same,
                expect_target: 3,
                expect_rules: &[Rule::InvalidRecommendation],
            },
            Case {
                name: "infinite_score_means_hold",
                current: 3,
                outcome: Ok(Recommendation {
                    scale_down_score: f64::INFINITY,
                    ..rec(3, 2)
                }),
                state: GuardState::default(),
                input: same,
                expect_target: 3,
                expect_rules: &[Rule::InvalidRecommendation],
            },
            Case {
                name: "direction_that_disagrees_with_desired_means_hold",
                current: 3,
                outcome: Ok(Recommendation {
                    direction: Direction::Down,
                    ..rec(3, 4)
                }),
                state: GuardState::default(),
                input: same,
                expect_target: 3,
                expect_rules: &[Rule::InvalidRecommendation],
            },
            Case {
                name: "missing_required_signal_means_hold",
                current: 3,
                outcome: Ok(rec(3, 4)),
                state: GuardState::default(),
                input: |mut i| {
                    i.signals.clear();
                    i
                },
                expect_target: 3,
                expect_rules: &[Rule::DataMissing],
            },
            Case {
                name: "required_signal_with_only_nan_means_hold",
                current: 3,
                outcome: Ok(rec(3, 4)),
                state: GuardState::default(),
                input: |mut i| {
                    i.signals[0].samples[0].value = f64::NAN;
                    i
                },
                expect_target: 3,
                expect_rules: &[Rule::DataMissing],
            },
            Case {
                name: "stale_required_signal_means_hold",
                current: 3,
                outcome: Ok(rec(3, 4)),
                state: GuardState::default(),
                input: |mut i| {
                    i.signals[0].samples[0].at = NOW - 2 * MIN;
                    i
                },
                expect_target: 3,
                expect_rules: &[Rule::DataStale],
            },
            Case {
                name: "below_minimum_is_restored_even_without_data_or_policy",
                current: 1,
                outcome: Err(failure(FailureKind::Unavailable)),
                state: GuardState {
                    last_scale_up: ago(MIN),
                    ..Default::default()
                },
                input: |mut i| {
                    i.signals.clear();
                    i
                },
                expect_target: 2,
                expect_rules: &[Rule::BelowMinimum],
            },
            Case {
                name: "above_maximum_is_restored",
                current: 7,
                outcome: Ok(rec(7, 7)),
                state: GuardState::default(),
                input: same,
                expect_target: 5,
                expect_rules: &[Rule::AboveMaximum],
            },
            Case {
                name: "pause_holds_everything",
                current: 1,
                outcome: Ok(rec(1, 4)),
                state: GuardState {
                    paused: true,
                    ..Default::default()
                },
                input: same,
                expect_target: 1,
                expect_rules: &[Rule::Paused],
            },
            Case {
                name: "policy_hold_is_recorded",
                current: 3,
                outcome: Ok(rec(3, 3)),
                state: GuardState::default(),
                input: same,
                expect_target: 3,
                expect_rules: &[Rule::PolicyHold],
            },
            Case {
                name: "scale_up_at_maximum_is_no_change",
                current: 5,
                outcome: Ok(rec(5, 6)),
                state: GuardState::default(),
                input: same,
                expect_target: 5,
                expect_rules: &[Rule::ClampedToMax, Rule::NoChange],
            },
        ]
    }

    #[test]
    fn guard_rail_table() {
        let config = GuardConfig::default();
        let mut failures = Vec::new();
        for case in cases() {
            let input = (case.input)(input(case.current));
            let decision = decide(
                &config,
                &case.state,
                &input,
                Requirements {
                    required: &[SignalId::Cpu],
                },
                case.outcome.as_ref(),
            );
            let rules: Vec<Rule> = decision.reasons.iter().map(|r| r.rule).collect();
            if decision.target != case.expect_target || rules != case.expect_rules {
                failures.push(format!(
                    "{}: got target {} rules {:?}, want {} {:?}",
                    case.name, decision.target, rules, case.expect_target, case.expect_rules
                ));
            }
            assert_eq!(
                decision.direction,
                Direction::between(case.current, decision.target),
                "{}",
                case.name
            );
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn every_change_records_before_and_after() {
        let decision = decide(
            &GuardConfig::default(),
            &GuardState::default(),
            &input(2),
            Requirements { required: &[] },
            Ok(&rec(2, 9)),
        );
        let from_to: Vec<_> = decision
            .reasons
            .iter()
            .map(|r| (r.rule, r.from, r.to))
            .collect();
        assert_eq!(
            from_to,
            vec![
                (Rule::ClampedToMax, Some(9), Some(5)),
                (Rule::StepLimited, Some(5), Some(4))
            ]
        );
        assert_eq!(decision.recommended, Some(9));
        assert_eq!(decision.target, 4);
    }

    #[test]
    fn data_missing_reason_carries_the_source_reason() {
        let mut i = input(3);
        i.signals[0].samples.clear();
        i.signals[0].missing_reason = Some("prometheus: connection refused".into());
        let d = decide(
            &GuardConfig::default(),
            &GuardState::default(),
            &i,
            Requirements {
                required: &[SignalId::Cpu],
            },
            Ok(&rec(3, 4)),
        );
        assert!(
            d.reasons[0].message.contains("connection refused"),
            "{}",
            d.reasons[0].message
        );
    }

    #[test]
    fn a_manual_request_is_clamped_to_the_bounds_with_the_clamp_recorded() {
        let config = GuardConfig::default(); // min 2, max 5
        let d = manual(&config, 3, 9);
        assert_eq!((d.direction, d.target), (Direction::Up, 5));
        assert_eq!(d.reasons[0].rule, Rule::ClampedToMax);
        assert_eq!((d.reasons[0].from, d.reasons[0].to), (Some(9), Some(5)));
        assert!(d.reasons[0].message.contains("clamped to 5"));
        let d = manual(&config, 3, 0);
        assert_eq!((d.direction, d.target), (Direction::Down, 2));
        assert_eq!(d.reasons[0].rule, Rule::ClampedToMin);
        // No cooldown or step limit: an operator may jump.
        let d = manual(&config, 2, 5);
        assert_eq!(
            (d.direction, d.target, d.reasons.len()),
            (Direction::Up, 5, 0)
        );
        let d = manual(&config, 5, 7);
        assert_eq!(d.direction, Direction::Hold);
        assert_eq!(d.reasons.last().unwrap().rule, Rule::NoChange);
    }

    #[test]
    fn a_scale_down_cooldown_counts_from_the_last_scale_either_way() {
        let config = GuardConfig::default();
        let never = GuardState::default();
        assert_eq!(never.cooldowns_end(&config), (None, None));
        let state = GuardState {
            last_scale_up: Some(NOW - 2 * MIN),
            last_scale_down: Some(NOW - 30 * MIN),
            paused: false,
        };
        let (up, down) = state.cooldowns_end(&config);
        assert_eq!(up, Some(NOW + 3 * MIN));
        // From the scale-up two minutes ago, not the older scale-down.
        assert_eq!(down, Some(NOW + 8 * MIN));
        let only_down = GuardState {
            last_scale_up: None,
            ..state
        };
        assert_eq!(
            only_down.cooldowns_end(&config),
            (None, Some(NOW - 20 * MIN))
        );
    }

    fn config() -> GuardConfig {
        GuardConfig::default()
    }

    #[test]
    fn restore_bounds_table() {
        // (current, expected target and rule); bounds 2..=5.
        let table: &[(u32, Option<(u32, Rule)>)] = &[
            (0, Some((2, Rule::BelowMinimum))),
            (1, Some((2, Rule::BelowMinimum))),
            (2, None),
            (5, None),
            (6, Some((5, Rule::AboveMaximum))),
            (40, Some((5, Rule::AboveMaximum))),
        ];
        for (current, want) in table {
            let got = restore_bounds(&config(), *current);
            let got = got.map(|(t, r)| {
                assert_eq!((r.from, r.to), (Some(*current), Some(t)), "{current}");
                (t, r.rule)
            });
            assert_eq!(got, *want, "current {current}");
        }
    }

    #[test]
    fn clamp_table() {
        let table: &[(u32, u32, &[Rule])] = &[
            (0, 2, &[Rule::ClampedToMin]),
            (2, 2, &[]),
            (4, 4, &[]),
            (5, 5, &[]),
            (9, 5, &[Rule::ClampedToMax]),
        ];
        for (desired, target, rules) in table {
            let (got, reasons) = clamp(&config(), *desired);
            let got_rules: Vec<Rule> = reasons.iter().map(|r| r.rule).collect();
            assert_eq!(
                (got, got_rules.as_slice()),
                (*target, *rules),
                "desired {desired}"
            );
        }
        // Bounds that cross (min above max) end at the minimum, both said.
        let crossed = GuardConfig {
            min_replicas: 4,
            max_replicas: 3,
            ..config()
        };
        let (got, reasons) = clamp(&crossed, 9);
        assert_eq!(got, 4);
        assert_eq!(reasons.len(), 2);
    }

    #[test]
    fn limit_step_table() {
        // (current, target, limited); steps 2 up and 1 down.
        let table: &[(u32, u32, u32)] = &[
            (3, 4, 4),
            (3, 5, 5),
            (2, 5, 4),
            (5, 4, 4),
            (5, 2, 4),
            (3, 3, 3),
        ];
        for (current, target, limited) in table {
            let (got, reason) = limit_step(&config(), *current, *target);
            assert_eq!(got, *limited, "{current} -> {target}");
            assert_eq!(reason.is_some(), limited != target, "{current} -> {target}");
            if let Some(r) = reason {
                assert_eq!(
                    (r.rule, r.from, r.to),
                    (Rule::StepLimited, Some(*target), Some(got))
                );
            }
        }
    }

    #[test]
    fn cooldown_table() {
        // (last up, last down, current -> target, the rule that holds).
        type Row = (Option<i64>, Option<i64>, u32, u32, Option<Rule>);
        let table: &[Row] = &[
            (None, None, 3, 4, None),
            (None, None, 3, 2, None),
            (Some(4 * MIN), None, 3, 4, Some(Rule::CooldownUp)),
            (Some(5 * MIN), None, 3, 4, None),
            (Some(4 * MIN), None, 3, 2, Some(Rule::CooldownDown)),
            (Some(11 * MIN), None, 3, 2, None),
            (None, Some(9 * MIN), 3, 2, Some(Rule::CooldownDown)),
            (None, Some(MIN), 3, 4, None),
            (Some(MIN), Some(MIN), 3, 3, None),
        ];
        for (up, down, current, target, want) in table {
            let state = GuardState {
                last_scale_up: up.map(|a| NOW - a),
                last_scale_down: down.map(|a| NOW - a),
                paused: false,
            };
            let got = cooldown(&config(), &state, NOW, *current, *target);
            assert_eq!(
                got.as_ref().map(|r| r.rule),
                *want,
                "{up:?} {down:?} {current}->{target}"
            );
            if let Some(r) = got {
                assert_eq!((r.from, r.to), (Some(*target), Some(*current)));
                assert!(r.message.contains("left"), "{}", r.message);
            }
        }
    }

    #[test]
    fn the_blocking_rules_say_why_or_stay_silent() {
        let paused_state = GuardState {
            paused: true,
            ..GuardState::default()
        };
        assert_eq!(paused(&paused_state).map(|r| r.rule), Some(Rule::Paused));
        assert!(paused(&GuardState::default()).is_none());
        assert!(policy_hold(&rec(3, 4)).is_none());
        assert_eq!(
            policy_hold(&rec(3, 3)).map(|r| r.rule),
            Some(Rule::PolicyHold)
        );
        assert!(invalid_recommendation(&rec(3, 4), 3).is_none());
        let mut nan = rec(3, 4);
        nan.scale_up_score = f64::NAN;
        let r = invalid_recommendation(&nan, 3).unwrap();
        assert!(r.message.contains("scale-up-score is NaN"), "{}", r.message);
        assert!(no_change(3, 4).is_none());
        assert_eq!(no_change(3, 3).map(|r| r.rule), Some(Rule::NoChange));
        let failure = PolicyFailure {
            kind: FailureKind::Timeout,
            message: "past 100ms".into(),
        };
        assert_eq!(
            policy_failed(&failure).message,
            "policy failed (timeout): past 100ms; holding"
        );
    }

    #[test]
    fn missing_or_stale_names_every_required_signal_at_fault() {
        let required = [SignalId::Cpu, SignalId::QueueDepth];
        let needs = Requirements {
            required: &required,
        };
        // cpu fresh, queue-depth absent.
        let reasons = missing_or_stale(&config(), &input(3), needs);
        let rules: Vec<Rule> = reasons.iter().map(|r| r.rule).collect();
        assert_eq!(rules, [Rule::DataMissing]);
        assert!(
            reasons[0].message.contains("queue-depth"),
            "{}",
            reasons[0].message
        );
        // cpu two minutes old (limit one), queue-depth only NaN.
        let mut old = input(3);
        old.signals[0].samples[0].at = NOW - 2 * MIN;
        old.signals.push(SignalWindow {
            signal: SignalId::QueueDepth,
            samples: vec![Sample {
                at: NOW,
                value: f64::NAN,
            }],
            missing_reason: None,
        });
        let reasons = missing_or_stale(&config(), &old, needs);
        let rules: Vec<Rule> = reasons.iter().map(|r| r.rule).collect();
        assert_eq!(rules, [Rule::DataStale, Rule::DataMissing]);
        assert!(
            reasons[0].message.contains("2m old"),
            "{}",
            reasons[0].message
        );
        assert!(
            reasons[1].message.contains("no finite sample"),
            "{}",
            reasons[1].message
        );
        // Nothing required, nothing said.
        assert!(missing_or_stale(&config(), &old, Requirements { required: &[] }).is_empty());
    }
}
