//! `velostream completions SHELL` and `velostream man`: shell completion
//! scripts and the manual page, generated from the clap definitions so they
//! never drift from `--help`.

use std::io::Write;
use std::path::PathBuf;

use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;
use crate::{Error, Result};

/// Print a shell completion script.
///
/// bash: `source <(velostream completions bash)` or save it as
/// /etc/bash_completion.d/velostream; zsh: save it as `_velostream` in a
/// directory of $fpath; fish: save it as
/// ~/.config/fish/completions/velostream.fish.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Print the manual page (roff): `velostream man > velostream.1; man -l velostream.1`.
///
/// The page describes the command and, in one section each, every
/// subcommand with all its options. --out-dir writes it as velostream.1
/// there, plus one page per subcommand (velostream-produce.1, ...).
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write velostream.1 and one page per subcommand into this directory instead of stdout.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// Runs `velostream completions`.
pub fn run_completions(args: CompletionsArgs) -> Result<()> {
    let mut cmd = Cli::command();
    // Into memory first: clap_complete panics on a failed write.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "velostream", &mut script);
    write_stdout(&script, "writing the completion script")
}

/// Writes to stdout; a reader that went away (`| head`) is not an error.
fn write_stdout(bytes: &[u8], what: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::io(what, e)),
        _ => Ok(()),
    }
}

/// Runs `velostream man`.
pub fn run_man(args: ManArgs) -> Result<()> {
    let page = man_page()?;
    match args.out_dir {
        None => write_stdout(page.as_bytes(), "writing the man page"),
        Some(dir) => {
            let context = |what: String| move |e| Error::io(what, e);
            std::fs::create_dir_all(&dir)
                .map_err(context(format!("creating {}", dir.display())))?;
            clap_mangen::generate_to(Cli::command().name("velostream"), &dir)
                .map_err(context(format!("writing man pages into {}", dir.display())))?;
            // generate_to's velostream.1 has the top level only: write the full page.
            let main = dir.join("velostream.1");
            std::fs::write(&main, page).map_err(context(format!("writing {}", main.display())))?;
            eprintln!("wrote man pages into {}", dir.display());
            Ok(())
        }
    }
}

/// The whole manual as one roff page: the top-level page, then a section
/// per subcommand (synopsis, description, options).
pub fn man_page() -> Result<String> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut out = Vec::new();
    let render_err = |e| Error::io("rendering the man page", e);
    clap_mangen::Man::new(cmd.clone())
        .render(&mut out)
        .map_err(render_err)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("velostream {}", sub.get_name());
        let man = clap_mangen::Man::new(
            sub.clone()
                .bin_name(name.clone())
                .display_name(name.clone()),
        );
        let mut part = Vec::new();
        man.render_synopsis_section(&mut part).map_err(render_err)?;
        man.render_description_section(&mut part)
            .map_err(render_err)?;
        man.render_options_section(&mut part).map_err(render_err)?;
        let part = String::from_utf8_lossy(&part).into_owned();
        out.extend(format!(".SH \"{}\"\n", name.to_uppercase()).as_bytes());
        for line in part.lines() {
            // Demote the subcommand's own sections below its heading.
            let line = match line {
                ".SH SYNOPSIS" => continue,
                ".SH DESCRIPTION" => ".PP",
                ".SH OPTIONS" => ".SS Options",
                l => l,
            };
            out.extend(line.as_bytes());
            out.push(b'\n');
        }
    }
    String::from_utf8(out).map_err(|e| Error::Config(format!("man page is not UTF-8: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_man_page_names_every_subcommand_and_long_flag() {
        let page = man_page().unwrap();
        let cmd = Cli::command();
        for sub in cmd.get_subcommands() {
            let heading = format!(".SH \"VELOSTREAM {}\"", sub.get_name().to_uppercase());
            assert!(page.contains(&heading), "no {heading}");
            for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
                if let Some(long) = arg.get_long() {
                    // roff escapes '-' as '\-'.
                    let want = format!("\\-\\-{}", long.replace('-', "\\-"));
                    assert!(page.contains(&want), "{} --{long} missing", sub.get_name());
                }
            }
        }
    }
}
