//! An error with its causes on one line, as operators read it in logs,
//! messages and API answers.

/// `e` and each of its sources, joined by ": " (as `{:#}` prints an
/// `anyhow` chain).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}
