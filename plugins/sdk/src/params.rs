//! Typed access to a policy's parameters.

use crate::{ConfigError, Param, ParamValue};

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

    fn wrong(&mut self, key: &str, want: &str) {
        let message = match self.get(key) {
            Some(v) => format!("expected {want}, found {v}"),
            None => "missing".to_string(),
        };
        self.errors.push(ConfigError {
            key: key.to_string(),
            message,
        });
    }

    /// A number; `fallback` (and an error recorded) when absent or not a number.
    pub fn number(&mut self, key: &str, fallback: f64) -> f64 {
        match self.get(key) {
            Some(ParamValue::Number(n)) => *n,
            _ => {
                self.wrong(key, "a number");
                fallback
            }
        }
    }

    /// A duration in milliseconds.
    pub fn duration(&mut self, key: &str, fallback: u64) -> u64 {
        match self.get(key) {
            Some(ParamValue::Duration(ms)) => *ms,
            _ => {
                self.wrong(key, "a duration");
                fallback
            }
        }
    }

    /// A text value.
    pub fn text(&mut self, key: &str, fallback: &str) -> String {
        match self.get(key) {
            Some(ParamValue::Text(t)) => t.clone(),
            _ => {
                self.wrong(key, "a string");
                fallback.to_string()
            }
        }
    }

    /// A boolean.
    pub fn boolean(&mut self, key: &str, fallback: bool) -> bool {
        match self.get(key) {
            Some(ParamValue::Boolean(b)) => *b,
            _ => {
                self.wrong(key, "true or false");
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
