//! `offsite`: the command-line face of every role. This crate only parses
//! arguments, asks for passphrases, shows progress and prints results; the work is
//! done by the role crates.

mod commands;
mod exit;
mod passphrase;
mod progress_bar;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "offsite",
    version,
    about = "Backups whose first copy travels on drives, then continues over the network"
)]
struct Cli {
    /// More log output (-v info, -vv debug); also set by RUST_LOG.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Work with a backup repository directly: init, backup, restore, check, prune…
    Repo(commands::repo::RepoArgs),
    /// Run the walkthrough on the embedded default, printing each step.
    Demo(commands::demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Repo(args) => commands::repo::run(args),
        Command::Demo(args) => commands::demo::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("offsite: {}", exit::describe(&err));
            exit::code_for(&err).into()
        }
    }
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}
