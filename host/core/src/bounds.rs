//! Bounds on what a policy may say.
//!
//! A recommendation's reasons go into the audit log on every pass, into
//! webhook bodies and onto the operator's terminal, so their size is the
//! host's business, not the policy's: a component returning one 12 MiB reason
//! would write 48 MB a minute into the audit log at a 15 s interval. The
//! memory cap alone does not stop a few large strings.
//!
//! [`OutputLimits::apply`] cuts a recommendation to the limits and says what
//! it cut; the cut is then marked by one more reason, with the trigger
//! [`OUTPUT_CUT`], so whoever reads the audit log knows the policy said more.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{Reason, Recommendation};

/// The trigger of the reason that marks a cut recommendation.
pub const OUTPUT_CUT: &str = "output-cut";

/// Most a policy may say in one recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputLimits {
    /// Most reasons kept; the rest are dropped.
    pub reasons: usize,
    /// Most bytes of one reason's message.
    pub message_bytes: usize,
    /// Most bytes of one reason's trigger.
    pub trigger_bytes: usize,
}

impl Default for OutputLimits {
    fn default() -> Self {
        OutputLimits {
            reasons: 64,
            message_bytes: 1024,
            trigger_bytes: 64,
        }
    }
}

/// What [`OutputLimits::apply`] cut.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cut {
    /// Reasons dropped past the limit.
    pub reasons_dropped: usize,
    /// Messages shortened.
    pub messages_shortened: usize,
    /// Triggers shortened.
    pub triggers_shortened: usize,
    /// The longest message before shortening, in bytes.
    pub longest_message: usize,
}

impl Cut {
    /// Nothing was cut.
    pub fn is_empty(&self) -> bool {
        self.reasons_dropped == 0 && self.messages_shortened == 0 && self.triggers_shortened == 0
    }

    /// Whether `reason` is the mark [`OutputLimits::apply`] adds.
    pub fn marks(reason: &Reason) -> bool {
        reason.trigger == OUTPUT_CUT
    }
}

impl fmt::Display for Cut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.reasons_dropped > 0 {
            parts.push(format!("{} reasons dropped", self.reasons_dropped));
        }
        if self.messages_shortened > 0 {
            parts.push(format!(
                "{} messages shortened (longest {} bytes)",
                self.messages_shortened, self.longest_message
            ));
        }
        if self.triggers_shortened > 0 {
            parts.push(format!("{} triggers shortened", self.triggers_shortened));
        }
        if parts.is_empty() {
            f.write_str("nothing cut")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

impl OutputLimits {
    /// Cut `rec` to these limits. When anything was cut, one more reason
    /// with the trigger [`OUTPUT_CUT`] says what (so a recommendation holds at
    /// most `reasons + 1` reasons).
    pub fn apply(&self, rec: &mut Recommendation) -> Cut {
        let mut cut = Cut::default();
        if rec.reasons.len() > self.reasons {
            cut.reasons_dropped = rec.reasons.len() - self.reasons;
            rec.reasons.truncate(self.reasons);
        }
        for reason in &mut rec.reasons {
            if reason.message.len() > self.message_bytes {
                cut.messages_shortened += 1;
                cut.longest_message = cut.longest_message.max(reason.message.len());
                shorten(&mut reason.message, self.message_bytes);
            }
            if reason.trigger.len() > self.trigger_bytes {
                cut.triggers_shortened += 1;
                shorten(&mut reason.trigger, self.trigger_bytes);
            }
        }
        if !cut.is_empty() {
            rec.reasons.push(Reason {
                trigger: OUTPUT_CUT.into(),
                observed: None,
                threshold: None,
                held_for: None,
                message: format!(
                    "the policy's output was cut to the host's limits ({} reasons, {} bytes a message, {} bytes a trigger): {cut}",
                    self.reasons, self.message_bytes, self.trigger_bytes
                ),
            });
        }
        cut
    }
}

/// Cut `text` to at most `max` bytes on a character boundary, ending in `…`
/// (which counts towards `max`). Returns whether it cut.
pub fn shorten(text: &mut String, max: usize) -> bool {
    if text.len() <= max {
        return false;
    }
    const MARK: &str = "…";
    let room = max.saturating_sub(MARK.len());
    let end = (0..=room.min(text.len()))
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    text.truncate(end);
    if max >= MARK.len() {
        text.push_str(MARK);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Direction;

    fn reason(trigger: &str, message: &str) -> Reason {
        Reason {
            trigger: trigger.into(),
            observed: Some(1.0),
            threshold: None,
            held_for: None,
            message: message.into(),
        }
    }

    fn rec(reasons: Vec<Reason>) -> Recommendation {
        Recommendation {
            desired_replicas: 3,
            direction: Direction::Hold,
            scale_up_score: 0.0,
            scale_down_score: 0.0,
            reasons,
        }
    }

    #[test]
    fn output_within_the_limits_is_untouched() {
        let mut r = rec(vec![reason("cpu-high", "cpu 0.9 over 0.7"); 64]);
        let before = r.clone();
        let cut = OutputLimits::default().apply(&mut r);
        assert!(cut.is_empty());
        assert_eq!(r, before);
    }

    #[test]
    fn extra_reasons_are_dropped_and_marked() {
        let mut r = rec(vec![reason("cpu-high", "x"); 1000]);
        let cut = OutputLimits::default().apply(&mut r);
        assert_eq!(cut.reasons_dropped, 936);
        assert_eq!(r.reasons.len(), 65);
        let mark = r.reasons.last().unwrap();
        assert!(Cut::marks(mark));
        assert!(
            mark.message.contains("936 reasons dropped"),
            "{}",
            mark.message
        );
    }

    #[test]
    fn a_long_message_is_shortened_on_a_character_boundary() {
        // 'é' is two bytes: the cut must not split it.
        let long = "é".repeat(6 << 20);
        let mut r = rec(vec![reason("cpu-high", &long)]);
        let cut = OutputLimits::default().apply(&mut r);
        assert_eq!(cut.messages_shortened, 1);
        assert_eq!(cut.longest_message, 12 << 20);
        let message = &r.reasons[0].message;
        assert!(message.len() <= 1024, "{}", message.len());
        assert!(message.ends_with('…'));
        assert!(r.reasons[1].message.contains("longest 12582912 bytes"));
    }

    #[test]
    fn a_long_trigger_is_shortened() {
        let mut r = rec(vec![reason(&"t".repeat(500), "fine")]);
        let limits = OutputLimits {
            trigger_bytes: 16,
            ..OutputLimits::default()
        };
        let cut = limits.apply(&mut r);
        assert_eq!(cut.triggers_shortened, 1);
        assert!(r.reasons[0].trigger.len() <= 16);
        assert_eq!(r.reasons[0].message, "fine");
    }

    #[test]
    fn limits_below_the_mark_still_hold() {
        let mut r = rec(vec![reason("abc", "abcdef")]);
        let limits = OutputLimits {
            reasons: 0,
            message_bytes: 1,
            trigger_bytes: 1,
        };
        let cut = limits.apply(&mut r);
        assert_eq!(cut.reasons_dropped, 1);
        assert_eq!(r.reasons.len(), 1, "only the mark");
        let mut text = "abcdef".to_string();
        assert!(shorten(&mut text, 2));
        assert!(text.len() <= 2, "{text:?}");
    }
}
