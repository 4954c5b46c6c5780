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
    /// Ship the first backup on drives or upload it? Days each way, for it and a full restore.
    Plan(commands::plan::PlanArgs),
    /// Run the walkthrough on the embedded default, printing each step.
    Demo(commands::demo::DemoArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(commands::docs::CompletionsArgs),
    /// Write a man page for every command and subcommand.
    Man(commands::docs::ManArgs),
}

impl Command {
    /// The service and the agent daemon run for days under a supervisor that
    /// collects their stderr, so their logs default to JSON there.
    fn is_long_running(&self) -> bool {
        match self {
            Command::Server(args) => args.is_long_running(),
            Command::Agent(args) => args.is_long_running(),
            _ => false,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    end_quietly_when_stdout_closes();
    let format = match LogFormat::choose(
        std::env::var("OFFSITE_LOG_FORMAT").ok().as_deref(),
        cli.command.is_long_running(),
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
    ) {
        Ok(format) => format,
        Err(message) => {
            eprintln!("offsite: {message}");
            return ExitCode::from(2);
        }
    };
    init_logging(cli.verbose, format);
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
        Command::Plan(args) => commands::plan::run(args),
        Command::Demo(args) => commands::demo::run(args),
        Command::Completions(args) => commands::docs::completions(args, &mut <Cli as clap::CommandFactory>::command()),
        Command::Man(args) => commands::docs::man(args, <Cli as clap::CommandFactory>::command()),
    }
}

/// Parses and runs `offsite ARGS…` in this process (the demo's steps).
fn run_command_line(args: &[&str]) -> anyhow::Result<ExitCode> {
    let cli = Cli::try_parse_from(std::iter::once("offsite").chain(args.iter().copied()))?;
    dispatch(cli.command)
}

/// `offsite … | head` ends the way `cat` does when `head` stops reading: killed
/// by SIGPIPE, silently, instead of panicking with "failed printing to stdout:
/// Broken pipe". SIGPIPE stays ignored while the command works (Rust starts
/// programs so): a write to a closed socket or pipe mid-transfer, the service's
/// connection to PostgreSQL over a Unix socket say, is then an error the command
/// handles, not a signal that ends it without a word. Only a print to the closed
/// stdout, which `println!` turns into that panic, puts the default back and
/// raises the signal. (Resetting SIGPIPE for the whole run made an agent backup
/// die silently when the service it was sending to was killed.)
fn end_quietly_when_stdout_closes() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        // `println!`'s "failed printing to stdout: Broken pipe", clap_complete's
        // "failed to write completion file: … BrokenPipe": a reader went away.
        if message.contains("Broken pipe") || message.contains("BrokenPipe") {
            // SAFETY: setting SIGPIPE's disposition to its default installs no
            // handler code, and raising it ends the process at once.
            unsafe {
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                libc::raise(libc::SIGPIPE);
            }
        }
        report(info);
    }));
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogFormat {
    /// One JSON object a line, for journald, Docker and log collectors.
    Json,
    /// Lines for people.
    Text,
}

impl LogFormat {
    /// `OFFSITE_LOG_FORMAT` (json or text) wins; otherwise JSON for the
    /// long-running processes when stderr is not a terminal, text for the rest.
    fn choose(setting: Option<&str>, long_running: bool, stderr_is_terminal: bool) -> Result<LogFormat, String> {
        match setting.map(str::trim) {
            None | Some("") => Ok(if long_running && !stderr_is_terminal { LogFormat::Json } else { LogFormat::Text }),
            Some(value) if value.eq_ignore_ascii_case("json") => Ok(LogFormat::Json),
            Some(value) if value.eq_ignore_ascii_case("text") => Ok(LogFormat::Text),
            Some(other) => Err(format!("OFFSITE_LOG_FORMAT is '{other}': use json or text")),
        }
    }
}

fn init_logging(verbose: u8, format: LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

#[cfg(test)]
mod tests {
    use super::LogFormat;

    #[test]
    fn long_running_processes_log_json_unless_told_otherwise() {
        assert_eq!(LogFormat::choose(None, true, false), Ok(LogFormat::Json));
        assert_eq!(LogFormat::choose(None, true, true), Ok(LogFormat::Text));
        assert_eq!(LogFormat::choose(None, false, false), Ok(LogFormat::Text));
        assert_eq!(LogFormat::choose(Some("text"), true, false), Ok(LogFormat::Text));
        assert_eq!(LogFormat::choose(Some("JSON"), false, true), Ok(LogFormat::Json));
        let err = LogFormat::choose(Some("xml"), true, false).unwrap_err();
        assert!(err.contains("xml") && err.contains("json or text"), "{err}");
    }
}
