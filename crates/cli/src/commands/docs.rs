//! `offsite completions` and `offsite man`: shell completion scripts and man pages,
//! generated from the same clap definitions the binary parses with, so they never
//! drift from the flags.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use clap_complete::Shell;

#[derive(Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    shell: Shell,
}

#[derive(Args)]
pub struct ManArgs {
    /// The folder to write the pages into (created if missing), e.g. /usr/local/share/man/man1.
    #[arg(long)]
    out: PathBuf,
}

/// Prints the completion script of `shell` to stdout.
pub fn completions(args: CompletionsArgs, command: &mut clap::Command) -> Result<ExitCode> {
    let name = command.get_name().to_string();
    clap_complete::generate(args.shell, command, name, &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// Writes `offsite.1`, `offsite-server.1`, `offsite-server-run.1`, … into `--out`.
pub fn man(args: ManArgs, command: clap::Command) -> Result<ExitCode> {
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    // Building names each subcommand after its parents (`offsite-server-run`), which
    // is the page's title and file name; clap's `help` subcommand gets no page.
    let mut command = command.disable_help_subcommand(true);
    command.build();
    let written = write_pages(&command, &args.out)?;
    println!("wrote {written} man pages to {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

/// Writes the page of `command` and of each of its subcommands; how many.
fn write_pages(command: &clap::Command, out: &Path) -> Result<usize> {
    // Subcommands carry no version of their own: every page names the binary's.
    let page = clap_mangen::Man::new(command.clone()).source(concat!("offsite ", env!("CARGO_PKG_VERSION")));
    let path = out.join(page.get_filename());
    page.generate_to(out).with_context(|| format!("cannot write {}", path.display()))?;
    let mut written = 1;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        written += write_pages(sub, out)?;
    }
    Ok(written)
}
