//! The Vedfolnir Autoscaler: the daemon, the command line and `simulate`,
//! as one library the `vedfolnir-autoscaler` binary runs ([`main`]).
//!
//! Its modules are private: the command line is the interface. [`fuzz`]
//! opens the parsers of untrusted input to the fuzz targets in `fuzz/`.
#![forbid(unsafe_code)]

/// `print!` for a command's output, that a closed reader does not panic
/// ([`console`]).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::console::write(format_args!($($arg)*))
    };
}

/// `outln!` for a command's output, that a closed reader does not panic
/// ([`console`]).
macro_rules! outln {
    () => {
        $crate::console::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::console::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

mod console;

// The pipeline, from where a metric enters to where the engine is touched
// (docs/architecture.md draws it):
mod actuators;
mod audit;
mod cli;
mod clock;
mod config;
mod controller;
mod daemon;
mod engine;
mod errors;
mod lease;
mod markup;
mod policy;
mod simulate;
mod sources;
mod state;
mod telemetry;

pub mod bench;
pub mod fuzz;

use std::process::ExitCode;

use clap::FromArgMatches as _;

/// Parse the command line, set up logging, run the command, and turn its
/// error into the exit code `main.rs` documents.
pub fn main() -> ExitCode {
    let matches = cli::args::command().get_matches();
    let cli = match cli::args::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(cli::exit_code_of(&e))
        }
    }
}

/// The tree's own properties, checked on its source: no import cycle
/// between the daemon's modules, and no function over 80 lines.
#[cfg(test)]
mod structure {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    /// Longest function allowed, in lines (tests excepted).
    const MAX_FUNCTION_LINES: usize = 80;

    /// Every source file, with its path under `src/` and its code before
    /// any `#[cfg(test)]` (test modules are not held to these rules).
    fn sources() -> Vec<(PathBuf, String)> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    out.push(p);
                }
            }
        }
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        walk(&src, &mut files);
        files.sort();
        files
            .into_iter()
            .filter(|p| p.file_name().is_some_and(|n| n != "tests.rs"))
            .map(|p| {
                let text = std::fs::read_to_string(&p).unwrap();
                let code = text.split("#[cfg(test)]").next().unwrap_or("").to_string();
                (p.strip_prefix(&src).unwrap().to_path_buf(), code)
            })
            .collect()
    }

    /// Code without comments, and with string and char literals emptied,
    /// so braces and paths inside them do not count.
    fn strip(code: &str) -> String {
        let mut out = String::with_capacity(code.len());
        let mut chars = code.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '/' if chars.peek() == Some(&'/') => {
                    for c in chars.by_ref() {
                        if c == '\n' {
                            out.push('\n');
                            break;
                        }
                    }
                }
                '"' => {
                    let mut escaped = false;
                    for c in chars.by_ref() {
                        if c == '\n' {
                            out.push('\n');
                        }
                        if !escaped && c == '"' {
                            break;
                        }
                        escaped = !escaped && c == '\\';
                    }
                    out.push_str("\"\"");
                }
                'r' if chars.peek() == Some(&'#') || chars.peek() == Some(&'"') => {
                    // A raw string: r"..." or r#"..."#.
                    let mut hashes = 0;
                    while chars.peek() == Some(&'#') {
                        chars.next();
                        hashes += 1;
                    }
                    if chars.peek() != Some(&'"') {
                        out.push('r');
                        continue;
                    }
                    chars.next();
                    let end: String = std::iter::once('"')
                        .chain(std::iter::repeat_n('#', hashes))
                        .collect();
                    let mut body = String::new();
                    for c in chars.by_ref() {
                        body.push(c);
                        if body.ends_with(&end) {
                            break;
                        }
                    }
                    out.extend(body.chars().filter(|c| *c == '\n'));
                    out.push_str("\"\"");
                }
                '\'' => {
                    // A char literal ('x', '\n', '{') or a lifetime ('a).
                    let rest: String = chars.clone().take(4).collect();
                    let len = if rest.starts_with('\\') {
                        rest.find('\'').map(|i| i + 1)
                    } else if rest.chars().nth(1) == Some('\'') {
                        Some(2)
                    } else {
                        None
                    };
                    match len {
                        Some(n) => {
                            for _ in 0..n {
                                chars.next();
                            }
                            out.push_str("' '");
                        }
                        None => out.push('\''),
                    }
                }
                c => out.push(c),
            }
        }
        out
    }

    /// The module a file is: its path without `.rs` (`main` is the crate).
    fn module(path: &Path) -> Vec<String> {
        path.with_extension("")
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect()
    }

    /// The modules of one level that refer to each other: `crate::x` at
    /// the top, `super::x` between siblings in a folder.
    fn graph() -> BTreeMap<String, BTreeSet<String>> {
        let files = sources();
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let names: BTreeSet<String> = files.iter().map(|(p, _)| module(p).join("::")).collect();
        for (path, code) in &files {
            let m = module(path);
            let code = strip(code);
            let words = code.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'));
            for w in words {
                let parts: Vec<&str> = w.split("::").collect();
                let target = match parts.as_slice() {
                    ["crate", x, ..] => x.to_string(),
                    ["super", x, ..] if m.len() > 1 => {
                        format!("{}::{x}", m[..m.len() - 1].join("::"))
                    }
                    _ => continue,
                };
                let from = if parts[0] == "crate" {
                    m[0].clone()
                } else {
                    m.join("::")
                };
                if names.contains(&target) && target != from && from != "main" {
                    edges.entry(from).or_default().insert(target);
                }
            }
        }
        edges
    }

    /// A cycle reachable from `start`, if any (depth-first).
    fn cycle_from(
        edges: &BTreeMap<String, BTreeSet<String>>,
        node: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == node) {
            let mut c = path[i..].to_vec();
            c.push(node.to_string());
            return Some(c);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(c) = cycle_from(edges, next, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }

    #[test]
    fn no_module_imports_another_that_imports_it_back() {
        let edges = graph();
        assert!(edges.len() >= 10, "the graph was not read: {edges:?}");
        let mut done = BTreeSet::new();
        for node in edges.keys() {
            if let Some(c) = cycle_from(&edges, node, &mut Vec::new(), &mut done) {
                panic!("an import cycle: {}", c.join(" -> "));
            }
        }
    }

    #[test]
    fn the_cycle_check_finds_a_cycle() {
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        edges.entry("a".into()).or_default().insert("b".into());
        edges.entry("b".into()).or_default().insert("c".into());
        edges.entry("c".into()).or_default().insert("a".into());
        let c = cycle_from(&edges, "a", &mut Vec::new(), &mut BTreeSet::new()).unwrap();
        assert_eq!(c, ["a", "b", "c", "a"]);
        assert!(
            strip(r#"let s = "crate::x {"; // crate::y }"#)
                .matches('{')
                .count()
                == 0
        );
    }

    /// Each function's name and length in lines.
    fn functions(code: &str) -> Vec<(String, usize)> {
        let code = strip(code);
        let lines: Vec<&str> = code.lines().collect();
        let mut out = Vec::new();
        let mut i = 0;
        while i < lines.len() {
            let t = lines[i].trim_start();
            let t = t
                .strip_prefix("pub ")
                .or_else(|| t.strip_prefix("pub(crate) "))
                .unwrap_or(t);
            let t = t.strip_prefix("async ").unwrap_or(t);
            let Some(rest) = t.strip_prefix("fn ") else {
                i += 1;
                continue;
            };
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let (mut depth, mut opened, mut j) = (0i64, false, i);
            while j < lines.len() {
                depth +=
                    lines[j].matches('{').count() as i64 - lines[j].matches('}').count() as i64;
                opened |= lines[j].contains('{');
                if (opened && depth <= 0) || (!opened && lines[j].trim_end().ends_with(';')) {
                    break;
                }
                j += 1;
            }
            out.push((name, j - i + 1));
            i = j + 1;
        }
        out
    }

    #[test]
    fn no_function_is_longer_than_80_lines() {
        let mut long = Vec::new();
        let mut seen = 0;
        for (path, code) in sources() {
            for (name, n) in functions(&code) {
                seen += 1;
                if n > MAX_FUNCTION_LINES {
                    long.push(format!("{}:{name} ({n} lines)", path.display()));
                }
            }
        }
        assert!(seen > 100, "only {seen} functions read");
        assert!(long.is_empty(), "split these: {long:?}");
        let (name, n) = &functions("fn a() {\n    if x {\n    }\n}\nfn b();\n")[0];
        assert_eq!((name.as_str(), *n), ("a", 4));
    }
}
