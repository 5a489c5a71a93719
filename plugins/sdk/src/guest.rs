//! The component side: wit-bindgen bindings and the conversions between the
//! WIT types and the SDK's model. Used only by [`crate::export_policy!`].

#[allow(missing_docs, unused_qualifications, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "policy",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "__export_policy_bindings",
        default_bindings_module: "vedfolnir_sdk::guest::bindings",
    });
}

use bindings::vedfolnir::autoscaler::{host, types as wit};

use crate::Policy;

/// `describe`, converted.
pub fn describe<P: Policy>() -> wit::Description {
    let d = P::describe();
    wit::Description {
        name: d.name,
        version: d.version,
        summary: d.summary,
        signals: d
            .signals
            .into_iter()
            .map(|s| wit::SignalSpec {
                signal: signal_to_wit(s.signal),
                required: s.required,
                description: s.description,
            })
            .collect(),
        params: d
            .params
            .into_iter()
            .map(|p| wit::ParamSpec {
                key: p.key,
                kind: match p.kind {
                    crate::ParamKind::Number => wit::ParamKind::Number,
                    crate::ParamKind::Duration => wit::ParamKind::Duration,
                    crate::ParamKind::Boolean => wit::ParamKind::Boolean,
                    crate::ParamKind::Text => wit::ParamKind::Text,
                },
                default: value_to_wit(p.default),
                description: p.description,
            })
            .collect(),
    }
}

/// `validate-config`, converted.
pub fn validate_config<P: Policy>(params: Vec<wit::Param>) -> Result<(), Vec<wit::ConfigError>> {
    let params: Vec<crate::Param> = params.into_iter().map(param_from_wit).collect();
    P::validate_config(&params).map_err(|errors| {
        errors
            .into_iter()
            .map(|e| wit::ConfigError {
                key: e.key,
                message: e.message,
            })
            .collect()
    })
}

/// `evaluate`, converted.
pub fn evaluate<P: Policy>(input: wit::PolicyInput) -> Result<wit::Recommendation, String> {
    let input = crate::PolicyInput {
        service: input.service,
        now: input.now,
        current_replicas: input.current_replicas,
        ready_replicas: input.ready_replicas,
        min_replicas: input.min_replicas,
        max_replicas: input.max_replicas,
        since_last_scale_up: input.since_last_scale_up,
        since_last_scale_down: input.since_last_scale_down,
        params: input.params.into_iter().map(param_from_wit).collect(),
        signals: input
            .signals
            .into_iter()
            .map(|w| crate::SignalWindow {
                signal: signal_from_wit(w.signal),
                samples: w
                    .timestamps
                    .into_iter()
                    .zip(w.values)
                    .map(|(at, value)| crate::Sample { at, value })
                    .collect(),
                missing_reason: w.missing_reason,
            })
            .collect(),
    };
    let rec = P::evaluate(&input)?;
    Ok(wit::Recommendation {
        desired_replicas: rec.desired_replicas,
        direction: match rec.direction {
            crate::Direction::Up => wit::Direction::Up,
            crate::Direction::Down => wit::Direction::Down,
            crate::Direction::Hold => wit::Direction::Hold,
        },
        scale_up_score: rec.scale_up_score,
        scale_down_score: rec.scale_down_score,
        reasons: rec
            .reasons
            .into_iter()
            .map(|r| wit::Reason {
                trigger: r.trigger,
                observed: r.observed,
                threshold: r.threshold,
                held_for: r.held_for,
                message: r.message,
            })
            .collect(),
    })
}

fn signal_to_wit(s: crate::SignalId) -> wit::SignalId {
    match s {
        crate::SignalId::Cpu => wit::SignalId::Cpu,
        crate::SignalId::Memory => wit::SignalId::Memory,
        crate::SignalId::QueueDepth => wit::SignalId::QueueDepth,
        crate::SignalId::ResponseTimeP95 => wit::SignalId::ResponseTimeP95,
        crate::SignalId::ErrorRate => wit::SignalId::ErrorRate,
        crate::SignalId::InstanceCount => wit::SignalId::InstanceCount,
        crate::SignalId::Custom(name) => wit::SignalId::Custom(name),
    }
}

fn signal_from_wit(s: wit::SignalId) -> crate::SignalId {
    match s {
        wit::SignalId::Cpu => crate::SignalId::Cpu,
        wit::SignalId::Memory => crate::SignalId::Memory,
        wit::SignalId::QueueDepth => crate::SignalId::QueueDepth,
        wit::SignalId::ResponseTimeP95 => crate::SignalId::ResponseTimeP95,
        wit::SignalId::ErrorRate => crate::SignalId::ErrorRate,
        wit::SignalId::InstanceCount => crate::SignalId::InstanceCount,
        wit::SignalId::Custom(name) => crate::SignalId::Custom(name),
    }
}

fn value_to_wit(v: crate::ParamValue) -> wit::ParamValue {
    match v {
        crate::ParamValue::Number(n) => wit::ParamValue::Number(n),
        crate::ParamValue::Duration(ms) => wit::ParamValue::Duration(ms),
        crate::ParamValue::Boolean(b) => wit::ParamValue::Boolean(b),
        crate::ParamValue::Text(t) => wit::ParamValue::Text(t),
    }
}

fn param_from_wit(p: wit::Param) -> crate::Param {
    crate::Param {
        key: p.key,
        value: match p.value {
            wit::ParamValue::Number(n) => crate::ParamValue::Number(n),
            wit::ParamValue::Duration(ms) => crate::ParamValue::Duration(ms),
            wit::ParamValue::Boolean(b) => crate::ParamValue::Boolean(b),
            wit::ParamValue::Text(t) => crate::ParamValue::Text(t),
        },
    }
}
