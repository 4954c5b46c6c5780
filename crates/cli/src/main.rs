//! `offsite`: the command-line face of every role. This crate only parses
//! arguments, asks for passphrases, shows progress and prints results; the work is
//! done by the role crates.

mod commands;
mod display;
mod exit;
mod passphrase;
mod progress_bar;
mod prompt;
mod seeding_display;

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
    /// The service: REST API, database and vault storage.
    Server(commands::server::ServerArgs),
    /// Administer the service: subscriptions, vaults, credentials, storage accounts, datacenters.
    Admin(commands::admin::AdminArgs),
    /// The backup agent of this machine: register, protect, schedule, back up, restore.
    Agent(commands::agent::AgentArgs),
    /// Prepare this machine for offline seeding: the application identity and its certificate.
    Certgen(commands::certgen::CertgenArgs),
    /// Copy a staging location onto encrypted drives, create the import job, ship.
    Diskprep(commands::diskprep::DiskprepArgs),
    /// The datacenter's ingest station: receive packages, ingest drives.
    Datacenter(commands::datacenter::DatacenterArgs),
    /// Run the walkthrough on the embedded default, printing each step.
    Demo(commands::demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("offsite: {}", exit::describe(&err));
            exit::code_for(&err).into()
        }
    }
}

/// Runs one command; the demo runs its steps through here, as a user types them.
fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Repo(args) => commands::repo::run(args),
        Command::Server(args) => commands::server::run(args),
        Command::Admin(args) => commands::admin::run(args),
        Command::Agent(args) => commands::agent::run(args),
        Command::Certgen(args) => commands::certgen::run(args),
        Command::Diskprep(args) => commands::diskprep::run(args),
        Command::Datacenter(args) => commands::datacenter::run(args),
        Command::Demo(args) => commands::demo::run(args),
    }
}

/// Parses and runs `offsite ARGS…` in this process (the demo's steps).
fn run_command_line(args: &[&str]) -> anyhow::Result<ExitCode> {
    let cli = Cli::try_parse_from(std::iter::once("offsite").chain(args.iter().copied()))?;
    dispatch(cli.command)
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}
