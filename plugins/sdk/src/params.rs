//! Typed access to a policy's parameters.
//!
//! The host passes only the parameters the policy file sets (already
//! checked against the declared kinds); an absent key takes the fallback,
//! which should be the default the policy declares in `describe`.

use crate::{ConfigError, Param, ParamValue};

/// The error an `evaluate` returns when its parameters fail the policy's
/// own checks: `invalid parameters: key: message; ...`.
pub fn invalid(errors: &[ConfigError]) -> String {
    let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
    format!("invalid parameters: {}", list.join("; "))
}

/// Read parameters by key, collecting every problem instead of stopping at
/// the first, so `validate_config` can report them all at once.
#[derive(Debug)]
pub struct Params<'a> {
    params: &'a [Param],
    errors: Vec<ConfigError>,
}

impl<'a> Params<'a> {
    /// Wrap the parameters the host passed.
    pub fn new(params: &'a [Param]) -> Self {
        Params {
            params,
            errors: Vec::new(),
        }
    }

    fn get(&self, key: &str) -> Option<&'a ParamValue> {
        self.params.iter().find(|p| p.key == key).map(|p| &p.value)
    }

    fn wrong(&mut self, key: &str, want: &str, found: &ParamValue) {
        self.errors.push(ConfigError {
            key: key.to_string(),
            message: format!("expected {want}, found {found}"),
        });
    }

    /// A number; `fallback` when absent, and an error recorded when it is
    /// another kind.
    pub fn number(&mut self, key: &str, fallback: f64) -> f64 {
        match self.get(key) {
            Some(ParamValue::Number(n)) => *n,
            None => fallback,
            Some(other) => {
                self.wrong(key, "a number", other);
                fallback
            }
        }
    }

    /// A duration in milliseconds.
    pub fn duration(&mut self, key: &str, fallback: u64) -> u64 {
        match self.get(key) {
            Some(ParamValue::Duration(ms)) => *ms,
            None => fallback,
            Some(other) => {
                self.wrong(key, "a duration", other);
                fallback
            }
        }
    }

    /// A text value.
    pub fn text(&mut self, key: &str, fallback: &str) -> String {
        match self.get(key) {
            Some(ParamValue::Text(t)) => t.clone(),
            None => fallback.to_string(),
            Some(other) => {
                self.wrong(key, "a string", other);
                fallback.to_string()
            }
        }
    }

    /// A signal, by its name (`cpu`, `requests-per-second`); an error is
    /// recorded, and the fallback used, for a name that is not one.
    pub fn signal(&mut self, key: &str, fallback: &str) -> crate::SignalId {
        let name = self.text(key, fallback);
        name.parse().unwrap_or_else(|e: crate::SignalNameError| {
            self.error(key, e.to_string());
            fallback.parse().unwrap_or(crate::SignalId::Cpu)
        })
    }

    /// A boolean.
    pub fn boolean(&mut self, key: &str, fallback: bool) -> bool {
        match self.get(key) {
            Some(ParamValue::Boolean(b)) => *b,
            None => fallback,
            Some(other) => {
                self.wrong(key, "true or false", other);
                fallback
            }
        }
    }

    /// Record a problem found while checking values.
    pub fn error(&mut self, key: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            key: key.to_string(),
            message: message.into(),
        });
    }

    /// Every problem recorded, or `Ok` when there was none.
    pub fn finish(self) -> Result<(), Vec<ConfigError>> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.errors)
        }
    }
}
