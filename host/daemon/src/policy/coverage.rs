//! Which of a plugin's signals some source provides: the docker source's
//! own (`config::DOCKER_SIGNALS` and `config::docker_extra_signals`), a
//! `[signals.<name>]` of the policy file, or (`slo-violation`) its `[slo]`. A required signal without one
//! would hold every pass, silently: an error. An optional one would be
//! missing on every pass: a note saying what the plugin's missing-data
//! rule then does, unless the file sets that rule itself (the operator has
//! said what its absence means).

use std::path::Path;

use vedfolnir_core::model::{Description, Param, SignalId};

use crate::config::{DOCKER_SIGNALS, Problem, SignalSource, docker_extra_signals};

/// The problems (required signals without a source) and the notes
/// (optional ones) of a plugin's declared signals against `routed`. `set`
/// are the parameters the file sets, `effective` those with the plugin's
/// defaults added.
pub fn check(
    path: &Path,
    plugin: &Description,
    set: &[Param],
    effective: &[Param],
    routed: &[SignalSource],
    slo: bool,
) -> (Vec<Problem>, Vec<Problem>) {
    let provided = |signal: &SignalId| {
        DOCKER_SIGNALS.contains(signal)
            || docker_extra_signals().contains(signal)
            || routed.iter().any(|r| &r.signal == signal)
            || (slo && signal.name() == vedfolnir_core::model::SLO_VIOLATION)
    };
    let (mut problems, mut notes) = (Vec::new(), Vec::new());
    for spec in plugin.signals.iter().filter(|s| !provided(&s.signal)) {
        let signal = &spec.signal;
        let at = |message: String| Problem {
            file: path.to_path_buf(),
            key: format!("signals.{signal}"),
            message,
        };
        if spec.required {
            problems.push(at(format!(
                "{} requires {signal}, but no source provides it (the docker source provides only \
                 cpu, memory, instance-count, oom-kills, cpu-throttled and memory-pressure), \
                 so every pass would hold: {}",
                plugin.name,
                how_to_route(signal)
            )));
        } else {
            let rule = format!("missing.{signal}");
            if set.iter().any(|p| p.key == rule) {
                continue;
            }
            notes.push(at(format!(
                "{} can read {signal}{}; no source provides it, so it is missing on every pass{}. \
                 To use it: {}",
                plugin.name,
                what_for(&spec.description),
                missing_rule(&rule, effective),
                how_to_route(signal)
            )));
        }
    }
    (problems, notes)
}

/// What the plugin says it reads the signal for (its `describe`), so the
/// operator can tell a signal it always reads from one a parameter
/// switches on (`tracked against target.queue-depth when set`): the
/// plugin's words, cut to [`WHAT_FOR_BYTES`] and kept to one line.
fn what_for(description: &str) -> String {
    let mut words: String = description
        .trim()
        .trim_end_matches('.')
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if words.is_empty() {
        return words;
    }
    vedfolnir_core::bounds::shorten(&mut words, WHAT_FOR_BYTES);
    format!(" ({words})")
}

/// Most of a plugin's description of a signal a note quotes.
const WHAT_FOR_BYTES: usize = 200;

/// What happens to a signal missing on every pass: the plugin's
/// `missing.<signal>` rule, `key`, when it declares one (threshold-score
/// does).
fn missing_rule(key: &str, effective: &[Param]) -> String {
    match effective.iter().find(|p| p.key == key) {
        Some(p) => format!(
            " and its missing-data rule {key} = {} applies (setting it in the file says so, \
             and this note goes)",
            p.value
        ),
        None => " (the plugin decides what that means; the host does not hold for it)".into(),
    }
}

/// The sources that could provide `signal`, as the file would route it.
fn how_to_route(signal: &SignalId) -> String {
    let mut ways = vec![
        "source = \"scrape\" (a metric each replica serves on its /metrics, with [scrape] port)"
            .to_string(),
        "source = \"prometheus\" (a PromQL query)".to_string(),
    ];
    if matches!(signal, SignalId::Custom(_)) {
        ways.push("source = \"alertmanager\" (firing scaling_action alerts)".into());
    }
    let routed = format!("add [signals.{signal}] with {}", ways.join(", or "));
    if signal.name() == vedfolnir_core::model::SLO_VIOLATION {
        format!(
            "set [slo] p95 = \"500ms\" and/or error_rate = 0.01 (each pass derives it from the \
             response-time-p95 and error-rate it read), or {routed}"
        )
    } else {
        routed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Source;
    use vedfolnir_core::model::{ParamValue, SignalSpec};

    fn plugin(signals: Vec<SignalSpec>) -> Description {
        let mut d = Description::new("queue-only", "0.1.0", "test");
        d.signals = signals;
        d
    }

    #[test]
    fn a_plugins_words_for_a_signal_are_quoted_on_one_line_and_bounded() {
        assert_eq!(what_for("  "), "");
        assert_eq!(what_for("scored."), " (scored)");
        assert_eq!(what_for("two\nlines\x1b[31m"), " (two lines [31m)");
        let long = what_for(&"x".repeat(10_000));
        assert!(long.len() <= WHAT_FOR_BYTES + 3, "{}", long.len());
        assert!(long.ends_with("…)"), "{long}");
    }

    #[test]
    fn a_required_signal_without_a_source_is_an_error_naming_the_sources() {
        let d = plugin(vec![SignalSpec {
            signal: SignalId::QueueDepth,
            required: true,
            description: String::new(),
        }]);
        let (problems, notes) = check(Path::new("p.toml"), &d, &[], &[], &[], false);
        assert!(notes.is_empty());
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, "signals.queue-depth");
        let text = problems[0].to_string();
        for word in ["requires queue-depth", "scrape", "prometheus", "would hold"] {
            assert!(text.contains(word), "{word}: {text}");
        }
        let routed = [SignalSource {
            signal: SignalId::QueueDepth,
            source: Source::Prometheus { query: "q".into() },
            required: None,
        }];
        assert_eq!(
            check(Path::new("p.toml"), &d, &[], &[], &routed, false),
            (vec![], vec![])
        );
    }

    #[test]
    fn an_optional_signal_without_a_source_is_a_note_with_its_missing_rule() {
        let d = plugin(vec![
            SignalSpec::optional(SignalId::Cpu, "docker provides it"),
            SignalSpec::optional(SignalId::ErrorRate, "scored"),
            SignalSpec::optional(SignalId::Custom("scaling-alerts".into()), "alerts"),
        ]);
        let rule = Param {
            key: "missing.error-rate".into(),
            value: ParamValue::Text("ignore".into()),
        };
        let (problems, notes) = check(
            Path::new("p.toml"),
            &d,
            &[],
            std::slice::from_ref(&rule),
            &[],
            false,
        );
        assert!(problems.is_empty());
        let keys: Vec<&str> = notes.iter().map(|n| n.key.as_str()).collect();
        assert_eq!(keys, ["signals.error-rate", "signals.scaling-alerts"]);
        assert!(
            notes[0]
                .message
                .contains("missing.error-rate = \"ignore\" applies"),
            "{}",
            notes[0]
        );
        assert!(
            notes[1].message.contains("the host does not hold"),
            "{}",
            notes[1]
        );
        assert!(notes[1].message.contains("alertmanager"), "{}", notes[1]);
        // The plugin's own words say what it reads each signal for.
        assert!(
            notes[0]
                .message
                .contains("queue-only can read error-rate (scored);"),
            "{}",
            notes[0]
        );
        assert!(!notes[0].message.contains("alertmanager"), "{}", notes[0]);
        // The file sets the rule itself: it has said what the absence
        // means, and that note goes; the other stays.
        let (_, notes) = check(
            Path::new("p.toml"),
            &d,
            std::slice::from_ref(&rule),
            std::slice::from_ref(&rule),
            &[],
            false,
        );
        let keys: Vec<&str> = notes.iter().map(|n| n.key.as_str()).collect();
        assert_eq!(keys, ["signals.scaling-alerts"]);
    }

    /// `slo-violation` comes from the file's `[slo]` when it has one; without
    /// it, the note says how to get it, [slo] first.
    #[test]
    fn an_slo_table_provides_slo_violation() {
        let d = plugin(vec![SignalSpec::optional(
            SignalId::Custom("slo-violation".into()),
            "the error budget's count",
        )]);
        let (_, notes) = check(Path::new("p.toml"), &d, &[], &[], &[], true);
        assert!(notes.is_empty(), "{notes:?}");
        let (_, notes) = check(Path::new("p.toml"), &d, &[], &[], &[], false);
        assert_eq!(notes.len(), 1);
        assert!(notes[0].message.contains("set [slo] p95"), "{}", notes[0]);
    }
}
