//! The workspace's own properties, checked on its source: no import cycle
//! between the modules of a crate, and no function over 80 lines, in every
//! crate of the workspace (the host's, the SDK, the plugins and their
//! fixtures, the test workload): its members are read from the root
//! `Cargo.toml`, so a new crate is held to the same rules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest function allowed, in lines (tests excepted).
const MAX_FUNCTION_LINES: usize = 80;

/// The workspace's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every crate of the workspace: the `members` of the root manifest.
fn crates() -> Vec<PathBuf> {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let value: toml::Value = toml::from_str(&manifest).unwrap();
    value["workspace"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| root().join(m.as_str().unwrap()))
        .collect()
}

/// Every source file of one crate, with its path under `src/` and its code
/// before any `#[cfg(test)]` (test modules are not held to these rules).
fn sources(krate: &Path) -> Vec<(PathBuf, String)> {
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
    let src = krate.join("src");
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

/// The modules of one level of a crate that refer to each other:
/// `crate::x` at the top, `super::x` between siblings in a folder.
fn graph(krate: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let files = sources(krate);
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
    let mut read = 0;
    for krate in crates() {
        let edges = graph(&krate);
        read += edges.len();
        let mut done = BTreeSet::new();
        for node in edges.keys() {
            if let Some(c) = cycle_from(&edges, node, &mut Vec::new(), &mut done) {
                panic!("an import cycle in {}: {}", krate.display(), c.join(" -> "));
            }
        }
    }
    assert!(read >= 20, "the graphs were not read: {read} edges");
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
            depth += lines[j].matches('{').count() as i64 - lines[j].matches('}').count() as i64;
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
    let mut seen = BTreeMap::new();
    for krate in crates() {
        let name = krate
            .strip_prefix(root())
            .unwrap_or(&krate)
            .display()
            .to_string();
        for (path, code) in sources(&krate) {
            for (f, n) in functions(&code) {
                *seen.entry(name.clone()).or_insert(0) += 1;
                if n > MAX_FUNCTION_LINES {
                    long.push(format!("{name}/src/{}:{f} ({n} lines)", path.display()));
                }
            }
        }
    }
    for krate in [
        "host/core",
        "host/sandbox",
        "host/daemon",
        "plugins/cost-aware",
    ] {
        assert!(
            seen.get(krate).is_some_and(|n| *n > 5),
            "{krate} not read: {seen:?}"
        );
    }
    assert!(long.is_empty(), "split these: {long:?}");
    let (name, n) = &functions("fn a() {\n    if x {\n    }\n}\nfn b();\n")[0];
    assert_eq!((name.as_str(), *n), ("a", 4));
}
