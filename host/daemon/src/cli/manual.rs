//! What is made from the command line's own definitions: shell completions
//! (`completions`), manual pages and the Markdown command reference
//! (`man`). All read [`args::command`], as parsing does, so none can drift
//! from `--help`.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{Context as _, Result};

use super::args::{self, ManArgs};

/// The program's name, as completions and manual pages call it.
const NAME: &str = "vedfolnir-autoscaler";

/// `completions SHELL`: the script, on stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<ExitCode> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut args::command(), NAME, &mut script);
    out!("{}", String::from_utf8_lossy(&script));
    Ok(ExitCode::SUCCESS)
}

/// `man`: the main page on stdout, every page into a folder, or the
/// Markdown reference.
pub fn man(a: &ManArgs) -> Result<ExitCode> {
    if a.markdown {
        out!("{}", reference());
        return Ok(ExitCode::SUCCESS);
    }
    let Some(dir) = &a.out else {
        let mut page = Vec::new();
        clap_mangen::Man::new(args::command())
            .render(&mut page)
            .context("cannot render the manual page")?;
        out!("{}", String::from_utf8_lossy(&page));
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    clap_mangen::generate_to(args::command(), dir)
        .with_context(|| format!("cannot write the manual pages to {}", dir.display()))?;
    let mut pages: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(NAME) && n.ends_with(".1"))
        .collect();
    pages.sort();
    outln!("wrote {} pages to {}", pages.len(), dir.display());
    Ok(ExitCode::SUCCESS)
}

/// Every command's `--help`, one section each, as one Markdown page.
pub fn reference() -> String {
    let mut cmd = args::command().disable_help_subcommand(true);
    cmd.build();
    let mut out = String::from(
        "# Command reference\n\n\
         Every command's `--help`, made from the same definitions by\n\
         `vedfolnir-autoscaler man --markdown > docs/commands.md` (a test\n\
         fails when this page and `--help` differ). Manual pages:\n\
         `vedfolnir-autoscaler man --out DIR`; completions:\n\
         `vedfolnir-autoscaler completions bash|zsh|fish|elvish|powershell`.\n",
    );
    section(&mut cmd, NAME, &mut out);
    out
}

fn section(cmd: &mut clap::Command, path: &str, out: &mut String) {
    let help = cmd.render_long_help().to_string();
    // Lines as `--help` prints them, less the indentation clap leaves on
    // blank ones (an editor would strip it, and the test then fail).
    let help: Vec<&str> = help.trim_end().lines().map(str::trim_end).collect();
    let _ = write!(out, "\n## `{path}`\n\n```text\n{}\n```\n", help.join("\n"));
    for sub in cmd.get_subcommands_mut().filter(|s| !s.is_hide_set()) {
        let path = format!("{path} {}", sub.get_name());
        section(sub, &path, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_reference_in_the_docs_is_what_help_prints() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/commands.md");
        let written = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            written == reference(),
            "docs/commands.md differs from the command line's help: run `cargo run -q -p vedfolnir-autoscaler -- man --markdown > docs/commands.md`"
        );
    }

    #[test]
    fn help_never_prints_an_environment_variables_value() {
        // Whatever the environment holds, the help names the variable only.
        let mut cmd = args::command();
        cmd.build();
        let run = cmd
            .find_subcommand_mut("run")
            .expect("run is a command")
            .render_long_help()
            .to_string();
        assert!(run.contains("[env: WEBHOOK_URL]"), "{run}");
        assert!(!run.contains("WEBHOOK_URL="), "{run}");
    }
}
