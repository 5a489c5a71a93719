//! Durations as people write them in Prometheus and Compose files: `250ms`,
//! `30s`, `5m`, `1h30m`, `2d`.

use thiserror::Error;

/// A duration string that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid duration {input:?}: {problem} (write it like \"30s\", \"5m\" or \"1h30m\")")]
pub struct DurationError {
    /// The text as given.
    pub input: String,
    /// What is wrong with it.
    pub problem: &'static str,
}

/// Parse a duration such as `"5m"` or `"1h30m"` into milliseconds.
///
/// Units: `ms`, `s`, `m`, `h`, `d`. A bare `0` is accepted; any other number
/// needs a unit, because a unit-less "300" is ambiguous between seconds and
/// milliseconds.
pub fn parse_duration(input: &str) -> Result<u64, DurationError> {
    let err = |problem| DurationError {
        input: input.to_string(),
        problem,
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(err("empty"));
    }
    if s == "0" {
        return Ok(0);
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(err("expected a number"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| err("number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let factor = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(err("missing unit")),
            _ => return Err(err("unknown unit")),
        };
        rest = &rest[unit_len..];
        total = number
            .checked_mul(factor)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| err("too large"))?;
    }
    Ok(total)
}

/// Format milliseconds the way `parse_duration` reads them: `4m59s`, `250ms`.
pub fn format_duration(ms: u64) -> String {
    Pretty(ms).to_string()
}

/// A measured duration (how long ago, how long a condition held, how much
/// of a wait is left), for people: [`format_duration`] to the nearest
/// second from one second up (`1m22s`, not `1m21s916ms`), milliseconds
/// below. A configured duration is shown exactly, with [`format_duration`].
pub fn format_elapsed(ms: u64) -> String {
    Elapsed(ms).to_string()
}

/// Displays milliseconds as [`format_elapsed`] does, without allocating:
/// `format!("held for {}", Elapsed(held_for))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(pub u64);

impl std::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0;
        if ms < 1_000 {
            return Pretty(ms).fmt(f);
        }
        Pretty(ms.saturating_add(500) / 1_000 * 1_000).fmt(f)
    }
}

/// Displays milliseconds as [`format_duration`] does, without allocating:
/// `format!("held {}", Pretty(ms))`. Policies write one per reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pretty(pub u64);

impl std::fmt::Display for Pretty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0;
        if ms == 0 {
            return f.write_str("0s");
        }
        let mut rest = ms;
        for (unit, size) in [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
        ] {
            if rest >= size {
                write!(f, "{}{unit}", rest / size)?;
                rest %= size;
            }
        }
        if rest > 0 {
            write!(f, "{rest}ms")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_time_is_said_to_the_second() {
        assert_eq!(format_elapsed(81_916), "1m22s");
        assert_eq!(format_elapsed(81_400), "1m21s");
        assert_eq!(format_elapsed(999), "999ms");
        assert_eq!(format_elapsed(59_600), "1m");
        assert_eq!(format_elapsed(0), "0s");
    }

    #[test]
    fn parses_the_units_operators_write() {
        for (text, ms) in [
            ("0", 0),
            ("250ms", 250),
            ("30s", 30_000),
            ("5m", 300_000),
            ("4m59s", 299_000),
            ("1h30m", 5_400_000),
            ("2d", 172_800_000),
        ] {
            assert_eq!(parse_duration(text), Ok(ms), "{text}");
        }
    }

    #[test]
    fn rejects_ambiguous_or_malformed_durations() {
        for text in ["", "300", "5x", "m5", "-5m", "5 m", "99999999999999999999d"] {
            assert!(parse_duration(text).is_err(), "{text} should be rejected");
        }
    }

    #[test]
    fn formatting_round_trips() {
        for ms in [0, 1, 999, 1_000, 299_000, 300_000, 5_400_250, 90_061_001] {
            assert_eq!(parse_duration(&format_duration(ms)), Ok(ms));
        }
        assert_eq!(format_duration(299_000), "4m59s");
    }
}
