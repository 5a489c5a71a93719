//! Reading a load trace from CSV.
//!
//! ```text
//! hour,cpu_load            first column: the time, its unit in its name
//! 0,0.474304627            (time or second(s), minute(s), hour(s));
//! 1,0.5414287256807484     one row per step, none missing;
//! ...                      the load column: --column, else `load`, else
//!                          the only other column
//! ```
//!
//! Every problem names the file and, where there is one, the line and the
//! column, and nothing is guessed: a gap in the time column, an empty,
//! negative or non-numeric load, a row with the wrong number of fields are
//! each an error (a missing row is not zero load).

use std::fmt;
use std::path::{Path, PathBuf};

use vedfolnir_core::sim::Trace;
use vedfolnir_sandbox::files;

/// A problem with a trace file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceError {
    /// The file.
    pub path: PathBuf,
    /// The 1-based line, when the problem is on one.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.path.display(), self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for TraceError {}

/// A trace read from a file, and what it was read as.
#[derive(Debug, Clone)]
pub struct TraceFile {
    /// The load at each step.
    pub trace: Trace,
    /// The column the load came from.
    pub column: String,
    /// The time column's unit, as named in the header.
    pub unit: &'static str,
}

/// The unit a time column's name gives, in milliseconds.
fn time_unit(name: &str) -> Option<(&'static str, u64)> {
    match name {
        "time" | "second" | "seconds" | "time_s" => Some(("second", 1000)),
        "minute" | "minutes" => Some(("minute", 60_000)),
        "hour" | "hours" => Some(("hour", 3_600_000)),
        _ => None,
    }
}

/// Read `path`; the load is `column`, or as the module explains.
pub fn read(path: &Path, column: Option<&str>) -> Result<TraceFile, TraceError> {
    let fail = |line: Option<usize>, message: String| TraceError {
        path: path.to_path_buf(),
        line,
        message,
    };
    let text = files::read_text(path, MAX_BYTES).map_err(|e| match e.kind() {
        std::io::ErrorKind::FileTooLarge => fail(
            None,
            format!("{e}: cut it, or keep one row per minute or hour"),
        ),
        _ => fail(None, format!("cannot read: {e}")),
    })?;
    parse(&text, column).map_err(|(line, message)| fail(line, message))
}

/// The largest trace file read: ten million per-second rows, about four
/// months.
pub const MAX_BYTES: u64 = 256 << 20;

/// An error with the line it is on, when it is on one.
type LineError = (Option<usize>, String);

/// Parse CSV text (see [`read`]); errors carry the line.
pub fn parse(text: &str, column: Option<&str>) -> Result<TraceFile, LineError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
    let Some((header_line, header)) = lines.next() else {
        return Err((
            None,
            "the file is empty: expected a header such as `time,load` and at least two rows".into(),
        ));
    };
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    let (unit, unit_ms) = time_unit(names[0]).ok_or_else(|| {
        (
            Some(header_line),
            format!(
                "the first column must be the time, named time, second, minute or hour (its unit); found {:?}",
                names[0]
            ),
        )
    })?;
    let index = load_column(&names, column).map_err(|m| (Some(header_line), m))?;
    let column = names[index].to_string();
    let mut times: Vec<f64> = Vec::new();
    let mut values = Vec::new();
    for (line, row) in lines {
        let (t, v) = row_values(row, &names, index, line)?;
        if v < 0.0 {
            return Err((Some(line), format!("{column} {v} is negative")));
        }
        check_step(&times, t, unit).map_err(|m| (Some(line), m))?;
        times.push(t);
        values.push(v);
    }
    if values.len() < 2 {
        return Err((
            None,
            format!("{} data row(s): a trace needs at least two", values.len()),
        ));
    }
    let step_ms = ((times[1] - times[0]) * unit_ms as f64).round() as u64;
    if step_ms == 0 {
        return Err((None, "the time step is under a millisecond".into()));
    }
    Ok(TraceFile {
        trace: Trace { step_ms, values },
        column,
        unit,
    })
}

/// Which column is the load: the one named, else `load`, else the only one.
fn load_column(names: &[&str], column: Option<&str>) -> Result<usize, String> {
    let others = &names[1..];
    let index = match column {
        Some(c) => others.iter().position(|n| *n == c).ok_or_else(|| {
            format!(
                "unknown column {c:?}; the columns are {}",
                others.join(", ")
            )
        })?,
        None => match others.iter().position(|n| *n == "load") {
            Some(i) => i,
            None if others.len() == 1 => 0,
            None if others.is_empty() => {
                return Err("no load column: expected a header such as `time,load`".into());
            }
            None => {
                return Err(format!(
                    "several columns ({}) and none is named load: choose one with --column",
                    others.join(", ")
                ));
            }
        },
    };
    Ok(index + 1)
}

/// A row's time and load; an empty, non-numeric or non-finite field is an
/// error naming the line.
fn row_values(
    row: &str,
    names: &[&str],
    index: usize,
    line: usize,
) -> Result<(f64, f64), LineError> {
    let fields: Vec<&str> = row.split(',').map(str::trim).collect();
    if fields.len() != names.len() {
        return Err((
            Some(line),
            format!(
                "{} fields where the header has {} ({})",
                fields.len(),
                names.len(),
                names.join(",")
            ),
        ));
    }
    let number = |i: usize| -> Result<f64, LineError> {
        let field = fields[i];
        if field.is_empty() {
            return Err((
                Some(line),
                format!("{} is empty (a missing value is not 0)", names[i]),
            ));
        }
        let v: f64 = field.parse().map_err(|_| {
            (
                Some(line),
                format!("{} {field:?} is not a number", names[i]),
            )
        })?;
        if !v.is_finite() {
            return Err((
                Some(line),
                format!("{} {field:?} is not a finite number", names[i]),
            ));
        }
        Ok(v)
    };
    Ok((number(0)?, number(index)?))
}

/// Rows must be in ascending time order with one step throughout.
fn check_step(times: &[f64], t: f64, unit: &str) -> Result<(), String> {
    let Some(&prev) = times.last() else {
        return Ok(());
    };
    let step = if times.len() >= 2 {
        times[1] - times[0]
    } else {
        t - prev
    };
    if t <= prev {
        return Err(format!(
            "time {t} does not follow {prev}: rows must be in ascending time order"
        ));
    }
    if ((t - prev) - step).abs() > 1e-6 * step.abs().max(1.0) {
        let missing = ((t - prev) / step).round() as i64 - 1;
        return Err(if missing >= 1 {
            format!(
                "time {t} follows {prev}: {missing} row(s) missing (the step is {step} {unit}s; rows must be complete)"
            )
        } else {
            format!("time {t} follows {prev}, but the step is {step} {unit}s")
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str, column: Option<&str>) -> (Option<usize>, String) {
        parse(text, column).unwrap_err()
    }

    #[test]
    fn the_shipped_trace_formats_are_read() {
        let t = parse("hour,cpu_load\n0,0.5\n1,0.75\n2,0.25\n", None).unwrap();
        assert_eq!(t.trace.step_ms, 3_600_000);
        assert_eq!(t.trace.values, vec![0.5, 0.75, 0.25]);
        assert_eq!((t.column.as_str(), t.unit), ("cpu_load", "hour"));
        let t = parse(
            "second,requests,context_tokens\n0,1,4808\n1,7,18150\n",
            Some("requests"),
        )
        .unwrap();
        assert_eq!(
            (t.trace.step_ms, t.trace.values.clone()),
            (1000, vec![1.0, 7.0])
        );
        let t = parse("time,load,other\n0,3,9\n15,4,9\n", None).unwrap();
        assert_eq!((t.trace.step_ms, t.column.as_str()), (15_000, "load"));
    }

    #[test]
    fn a_missing_row_is_an_error_naming_the_line() {
        let (line, msg) = err("hour,load\n0,1\n1,2\n3,2\n", None);
        assert_eq!(line, Some(4));
        assert!(msg.contains("1 row(s) missing"), "{msg}");
    }

    #[test]
    fn an_empty_value_is_missing_data_not_zero() {
        let (line, msg) = err("hour,load\n0,1\n1,\n", None);
        assert_eq!(line, Some(3));
        assert!(msg.contains("load is empty"), "{msg}");
    }

    #[test]
    fn negative_and_non_numeric_values_are_errors_naming_the_line() {
        let (line, msg) = err("hour,load\n0,1\n1,-3\n", None);
        assert_eq!((line, msg.as_str()), (Some(3), "load -3 is negative"));
        let (line, msg) = err("hour,load\n0,1\n1,lots\n", None);
        assert_eq!(line, Some(3));
        assert!(msg.contains("\"lots\" is not a number"), "{msg}");
        let (_, msg) = err("hour,load\n0,1\n1,NaN\n", None);
        assert!(msg.contains("not a finite number"), "{msg}");
    }

    #[test]
    fn an_empty_file_is_an_error() {
        let (line, msg) = err("", None);
        assert_eq!(line, None);
        assert!(msg.contains("empty"), "{msg}");
        let (_, msg) = err("hour,load\n", None);
        assert!(msg.contains("0 data row(s)"), "{msg}");
    }

    #[test]
    fn an_unknown_column_is_an_error_listing_the_columns() {
        let (line, msg) = err("second,requests,tokens\n0,1,2\n1,1,2\n", Some("load"));
        assert_eq!(line, Some(1));
        assert!(
            msg.contains("unknown column \"load\"") && msg.contains("requests, tokens"),
            "{msg}"
        );
        let (_, msg) = err("second,requests,tokens\n0,1,2\n1,1,2\n", None);
        assert!(msg.contains("choose one with --column"), "{msg}");
        let (_, msg) = err("day,load\n0,1\n1,1\n", None);
        assert!(msg.contains("\"day\""), "{msg}");
    }

    #[test]
    fn rows_must_agree_with_the_header_and_ascend() {
        let (line, msg) = err("hour,load\n0,1\n1,2,3\n", None);
        assert_eq!(line, Some(3));
        assert!(msg.contains("3 fields where the header has 2"), "{msg}");
        let (line, _) = err("hour,load\n0,1\n1,2\n1,2\n", None);
        assert_eq!(line, Some(4));
    }

    #[test]
    fn a_file_past_the_size_bound_is_refused_unparsed_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.csv");
        std::fs::write(&path, "hour,load\n0,1\n1,2\n").unwrap();
        assert!(read(&path, None).is_ok());
        // Sparse: the size without the disk.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(MAX_BYTES + 1)
            .unwrap();
        let e = read(&path, None).unwrap_err();
        assert_eq!(e.line, None);
        assert!(
            e.to_string()
                .starts_with(&format!("{}: larger than 256 MiB", path.display())),
            "{e}"
        );
    }
}
