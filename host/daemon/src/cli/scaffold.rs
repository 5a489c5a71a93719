//! `plugin new NAME`: a policy crate that builds to a component and passes
//! its tests as written (the files docs/writing-a-policy.md walks through).
//! The crate depends on this checkout's SDK by path, or on the one `--sdk`
//! names (a git URL or a path), and carries this workspace's `Cargo.lock`,
//! so it builds with the dependency versions the SDK is tested with.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};

use super::InvalidInput;

/// Where the new crate's SDK comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sdk {
    /// A local checkout's `plugins/sdk`.
    Path(String),
    /// A git repository holding the workspace.
    Git(String),
}

impl Sdk {
    /// The `[dependencies]` line.
    fn dependency(&self) -> String {
        let quoted = |s: &str| toml::Value::String(s.to_string()).to_string();
        match self {
            Sdk::Path(p) => format!("vedfolnir-sdk = {{ path = {} }}", quoted(p)),
            Sdk::Git(url) => format!("vedfolnir-sdk = {{ git = {} }}", quoted(url)),
        }
    }

    /// The SDK `--sdk` names, or this checkout's.
    pub fn resolve(given: Option<&str>) -> Result<Sdk, InvalidInput> {
        match given {
            Some(url) if url.contains("://") || url.starts_with("git@") => {
                Ok(Sdk::Git(url.to_string()))
            }
            Some(path) => sdk_dir(Path::new(path)).ok_or_else(|| {
                InvalidInput(format!(
                    "--sdk {path}: no vedfolnir-sdk there (give a git URL, the path of a \
                     checkout, or the path of its plugins/sdk)"
                ))
            }),
            None => {
                let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/sdk");
                sdk_dir(&built).ok_or_else(|| {
                    InvalidInput(format!(
                        "this binary was built from {}, which is not there any more: give \
                         --sdk with the SDK's git URL or the path of a checkout",
                        built.display()
                    ))
                })
            }
        }
    }
}

/// The SDK crate at `path` (a checkout, or its `plugins/sdk`), absolute.
fn sdk_dir(path: &Path) -> Option<Sdk> {
    [path.join("plugins/sdk"), path.to_path_buf()]
        .into_iter()
        .find(|dir| {
            std::fs::read_to_string(dir.join("Cargo.toml"))
                .is_ok_and(|t| t.contains("name = \"vedfolnir-sdk\""))
        })
        .and_then(|dir| dir.canonicalize().ok())
        .map(|dir| Sdk::Path(dir.display().to_string()))
}

/// A policy name: lowercase kebab-case, as `describe` gives it.
fn check_name(name: &str) -> Result<(), InvalidInput> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && !name.contains("--")
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(InvalidInput(format!(
            "{name:?} is not a policy name: lowercase letters, digits and single '-' \
             (for example \"queue-only\")"
        )));
    }
    if [
        "std",
        "core",
        "alloc",
        "test",
        "proc-macro",
        "vedfolnir-sdk",
    ]
    .contains(&name)
    {
        return Err(InvalidInput(format!(
            "{name:?} is the name of a crate the policy builds with: choose another"
        )));
    }
    Ok(())
}

/// The Rust type for a policy name: `queue-only` is `QueueOnly`; a name
/// that would shadow a prelude type gets `Policy` added.
fn type_name(name: &str) -> String {
    let camel: String = name
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    const PRELUDE: &[&str] = &[
        "Params",
        "Held",
        "ConfigError",
        "Description",
        "Direction",
        "DurationMs",
        "Param",
        "ParamKind",
        "ParamSpec",
        "ParamValue",
        "Policy",
        "PolicyInput",
        "Reason",
        "Recommendation",
        "Sample",
        "SignalId",
        "SignalSpec",
        "SignalWindow",
        "TimestampMs",
    ];
    if PRELUDE.contains(&camel.as_str()) {
        camel + "Policy"
    } else {
        camel
    }
}

/// The files of a new policy crate named `name`, by path in its folder.
pub fn files(name: &str, sdk: &Sdk) -> Vec<(String, String)> {
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{crate}}", &name.replace('-', "_"))
            .replace("{{Type}}", &type_name(name))
            .replace("{{sdk}}", &sdk.dependency())
    };
    vec![
        (
            "Cargo.toml".into(),
            fill(include_str!("../../templates/policy/Cargo.toml.in")),
        ),
        (
            "Cargo.lock".into(),
            include_str!("../../../../Cargo.lock").into(),
        ),
        (
            "src/lib.rs".into(),
            fill(include_str!("../../templates/policy/lib.rs.in")),
        ),
        (
            "tests/golden.rs".into(),
            fill(include_str!("../../templates/policy/golden.rs.in")),
        ),
        (
            "scenarios.toml".into(),
            fill(include_str!("../../templates/policy/scenarios.toml.in")),
        ),
        (
            format!("{name}.toml"),
            fill(include_str!("../../templates/policy/policy.toml.in")),
        ),
        (".gitignore".into(), "/target\n".into()),
    ]
}

/// Write the crate into `dir`, which must not exist or be empty. The files
/// are written beside it first and moved in at once: a failure leaves
/// nothing behind.
pub fn write(dir: &Path, files: &[(String, String)]) -> Result<()> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_none();
        if !empty {
            return Err(InvalidInput(format!(
                "{} already exists and is not empty: plugin new never overwrites",
                dir.display()
            ))
            .into());
        }
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let staging = tempfile::Builder::new()
        .prefix(".plugin-new-")
        .tempdir_in(&parent)
        .with_context(|| format!("cannot create a folder in {}", parent.display()))?;
    for (path, text) in files {
        let at = staging.path().join(path);
        if let Some(folder) = at.parent() {
            std::fs::create_dir_all(folder)
                .with_context(|| format!("cannot create {}", folder.display()))?;
        }
        std::fs::write(&at, text).with_context(|| format!("cannot write {}", at.display()))?;
    }
    if dir.exists() {
        std::fs::remove_dir(dir).with_context(|| format!("cannot replace {}", dir.display()))?;
    }
    let staged = staging.keep();
    std::fs::rename(&staged, dir).map_err(|e| {
        let _ = std::fs::remove_dir_all(&staged);
        anyhow::Error::new(e).context(format!("cannot move the crate to {}", dir.display()))
    })
}

/// `plugin new NAME [--dir D] [--sdk URL|PATH]`.
pub fn run(name: &str, dir: Option<PathBuf>, sdk: Option<&str>) -> Result<ExitCode> {
    check_name(name)?;
    let sdk = Sdk::resolve(sdk)?;
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    let files = files(name, &sdk);
    write(&dir, &files)?;
    let wasm = format!(
        "target/wasm32-wasip2/release/{}.wasm",
        name.replace('-', "_")
    );
    outln!(
        "created {} (policy {name}, {})",
        dir.display(),
        sdk.dependency()
    );
    for (path, _) in &files {
        outln!("  {path}");
    }
    outln!(
        "next:\n  cd {}\n  cargo test                                   # the scenarios, natively\n  \
         rustup target add wasm32-wasip2              # once\n  \
         cargo build --target wasm32-wasip2 --release\n  \
         vedfolnir-autoscaler plugin check {wasm}\n  \
         vedfolnir-autoscaler plugin test {wasm} scenarios.toml\n  \
         vedfolnir-autoscaler validate {name}.toml",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue_only() -> Vec<(String, String)> {
        files(
            "queue-only",
            &Sdk::Path("/home/you/vedfolnir-autoscaler/plugins/sdk".into()),
        )
    }

    #[test]
    fn every_placeholder_is_filled() {
        for (path, text) in queue_only() {
            assert!(!text.contains("{{"), "{path}");
        }
        let files = queue_only();
        let lib = &files.iter().find(|(p, _)| p == "src/lib.rs").unwrap().1;
        assert!(lib.contains("pub struct QueueOnly;"), "{lib}");
        assert!(lib.contains("export_policy!(QueueOnly)"), "{lib}");
        let policy = &files
            .iter()
            .find(|(p, _)| p == "queue-only.toml")
            .unwrap()
            .1;
        assert!(policy.contains("release/queue_only.wasm"), "{policy}");
    }

    /// Each Rust and TOML snippet of docs/writing-a-policy.md is a piece of
    /// a file `plugin new queue-only` writes, so building and testing that
    /// crate (the integration test `plugin_new_builds_and_tests_out_of_the_box`)
    /// compiles and runs the docs as written.
    #[test]
    fn the_guide_s_snippets_are_what_plugin_new_writes() {
        let guide = include_str!("../../../../docs/writing-a-policy.md");
        let files = queue_only();
        let mut checked = 0;
        let mut lines = guide.lines();
        while let Some(line) = lines.next() {
            let Some(lang) = line.strip_prefix("```") else {
                continue;
            };
            let block: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
            if !["rust", "toml"].contains(&lang) {
                continue;
            }
            let block = block.join("\n");
            assert!(
                files.iter().any(|(_, text)| text.contains(&block)),
                "a ```{lang} snippet of docs/writing-a-policy.md is not in what \
                 `plugin new queue-only` writes:\n{block}"
            );
            checked += 1;
        }
        assert!(checked >= 5, "only {checked} snippets found");
    }

    #[test]
    fn names_are_checked_and_typed() {
        for bad in ["", "Queue", "queue_only", "-q", "q-", "q--x", "1q", "std"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        check_name("queue-only2").unwrap();
        assert_eq!(type_name("queue-only2"), "QueueOnly2");
        assert_eq!(type_name("policy"), "PolicyPolicy");
        assert_eq!(type_name("params"), "ParamsPolicy");
    }

    #[test]
    fn an_sdk_is_a_git_url_or_a_checkout_and_nothing_else() {
        assert_eq!(
            Sdk::resolve(Some("https://example.org/v.git")).ok(),
            Some(Sdk::Git("https://example.org/v.git".into()))
        );
        let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let Ok(Sdk::Path(p)) = Sdk::resolve(Some(checkout.to_str().unwrap())) else {
            panic!("the checkout's SDK");
        };
        assert!(p.ends_with("plugins/sdk"), "{p}");
        assert_eq!(Sdk::resolve(None).ok(), Sdk::resolve(Some(&p)).ok());
        assert!(Sdk::resolve(Some("/nonexistent")).is_err());
        // Quoted as TOML: the line reads back as the URL given.
        let url = "https://x/\"y'z";
        let line: toml::Table = Sdk::Git(url.into()).dependency().parse().unwrap();
        assert_eq!(line["vedfolnir-sdk"]["git"].as_str(), Some(url));
    }

    #[test]
    fn a_folder_in_use_is_refused_and_nothing_is_left_behind() {
        let tmp = tempfile::tempdir().unwrap();
        let taken = tmp.path().join("taken");
        std::fs::create_dir(&taken).unwrap();
        std::fs::write(taken.join("mine.txt"), "keep").unwrap();
        let err = write(&taken, &queue_only()).unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");
        assert_eq!(
            std::fs::read_to_string(taken.join("mine.txt")).unwrap(),
            "keep"
        );
        let fresh = tmp.path().join("fresh");
        write(&fresh, &queue_only()).unwrap();
        assert!(fresh.join("src/lib.rs").is_file());
        let names: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "staging folder left behind: {names:?}");
    }
}
