//! `offsite server run`: the service. Settings come from flags, then `OFFSITE_…`
//! environment variables, then the TOML file given with `--config`, then defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde::Deserialize;

use offsite_server::{Server, ServerConfig};

use crate::display::plural;

#[derive(Args)]
pub struct ServerArgs {
    #[command(subcommand)]
    command: ServerCommand,
}

#[derive(Subcommand)]
enum ServerCommand {
    /// Run the service until interrupted (SIGINT or SIGTERM).
    Run(Box<RunArgs>),
    /// Check that the database agrees with the storage: every recovery point's
    /// snapshot, machine repository config, completed import job and adopted seed
    /// is stored, and no upload was left half-written. Exits 1 naming each
    /// disagreement. Best run while the service is stopped: uploads in flight show
    /// as unfinished.
    Check(CheckArgs),
}

#[derive(Args, Default)]
struct CheckArgs {
    /// The TOML file `server run` uses (only the settings below are read from it).
    #[arg(long, env = "OFFSITE_CONFIG")]
    config: Option<PathBuf>,
    /// The service's data folder [default: as `server run`].
    #[arg(long, env = "OFFSITE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// sqlite://FILE or postgres://USER@HOST/DB [default: SQLite in the data folder].
    #[arg(long, env = "OFFSITE_DATABASE_URL")]
    database_url: Option<String>,
    /// Where vaults are stored: a folder, s3://, az:// or gs:// [default: DATA_DIR/storage].
    #[arg(long, env = "OFFSITE_STORAGE")]
    storage: Option<String>,
    /// Also read every content-named file and check that it hashes to its name
    /// (finds short and damaged files; reads the whole storage).
    #[arg(long)]
    read_data: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Default)]
struct RunArgs {
    /// A TOML file with any of the settings below (keys as the long flags, with '_').
    #[arg(long, env = "OFFSITE_CONFIG")]
    config: Option<PathBuf>,
    /// Address and port to listen on [default: 127.0.0.1:8443].
    #[arg(long, env = "OFFSITE_LISTEN")]
    listen: Option<SocketAddr>,
    /// Where the database, certificate, storage and operator credentials live
    /// [default: /var/lib/offsite/server as root, else ~/.local/share/offsite/server].
    #[arg(long, env = "OFFSITE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// sqlite://FILE or postgres://USER@HOST/DB [default: SQLite in the data folder].
    #[arg(long, env = "OFFSITE_DATABASE_URL")]
    database_url: Option<String>,
    /// PostgreSQL connections this replica holds at most; PostgreSQL's
    /// max_connections must exceed this times the replicas [default: 16].
    #[arg(long, env = "OFFSITE_DATABASE_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..))]
    database_max_connections: Option<u32>,
    /// Where vaults are stored: a folder, s3://, az:// or gs:// [default: DATA_DIR/storage].
    #[arg(long, env = "OFFSITE_STORAGE")]
    storage: Option<String>,
    /// PEM certificate (chain) to serve instead of the generated self-signed one.
    #[arg(long, env = "OFFSITE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "OFFSITE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The URL clients use, when it differs from the listening address.
    #[arg(long, env = "OFFSITE_PUBLIC_URL")]
    public_url: Option<String>,
    /// Seconds between rounds of background work: purging soft-deleted files
    /// whose window has passed, raising mass-deletion alerts [default: 60].
    #[arg(long, env = "OFFSITE_MAINTENANCE_INTERVAL", value_parser = clap::value_parser!(u64).range(1..))]
    maintenance_interval: Option<u64>,
    /// The SMTP relay notification e-mails go through: smtp://HOST:PORT (plain, a
    /// relay on a private network), smtp://USER:PASS@HOST:587?tls=required, or
    /// smtps://HOST:465 [default: none; e-mail channels cannot be added].
    #[arg(long, env = "OFFSITE_SMTP_URL")]
    smtp_url: Option<String>,
    /// The sender of notification e-mails [default: offsite@localhost].
    #[arg(long, env = "OFFSITE_SMTP_FROM")]
    smtp_from: Option<String>,
    /// Let webhooks call addresses of private networks (loopback, 10/8, 192.168/16,
    /// link-local…), e.g. a chat bridge inside the operator's network.
    #[arg(long, env = "OFFSITE_WEBHOOKS_TO_PRIVATE_ADDRESSES")]
    webhooks_to_private_addresses: bool,
    /// Also serve /metrics, without a credential and over plain HTTP, on this
    /// address (for a scraper on a private network); otherwise /metrics needs the
    /// operator credential.
    #[arg(long, env = "OFFSITE_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Read a PROXY protocol header (v1 or v2) at the start of every connection,
    /// as a TCP load balancer sends it (HAProxy: `send-proxy-v2`), and count the
    /// client it names in the per-source limits. Only behind such a balancer.
    #[arg(long, env = "OFFSITE_PROXY_PROTOCOL")]
    proxy_protocol: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    database_max_connections: Option<u32>,
    storage: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    public_url: Option<String>,
    maintenance_interval: Option<u64>,
    smtp_url: Option<String>,
    smtp_from: Option<String>,
    webhooks_to_private_addresses: Option<bool>,
    metrics_listen: Option<SocketAddr>,
    proxy_protocol: Option<bool>,
}

fn default_data_dir() -> PathBuf {
    if rustix::process::geteuid().is_root() {
        return PathBuf::from("/var/lib/offsite/server");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| home.join(".local/share"))
        .join("offsite/server")
}

impl ServerArgs {
    /// Whether this runs until stopped (every `server` command does).
    pub fn is_long_running(&self) -> bool {
        matches!(self.command, ServerCommand::Run(_))
    }
}

pub fn run(args: ServerArgs) -> Result<ExitCode> {
    match args.command {
        ServerCommand::Run(run) => serve(*run),
        ServerCommand::Check(check) => check_consistency(check),
    }
}

fn read_settings(path: Option<&PathBuf>) -> Result<FileSettings> {
    match path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("{} is not a valid configuration", path.display()))
        }
        None => Ok(FileSettings::default()),
    }
}

fn check_consistency(args: CheckArgs) -> Result<ExitCode> {
    let file = read_settings(args.config.as_ref())?;
    let mut config = ServerConfig::new(args.data_dir.or(file.data_dir).unwrap_or_else(default_data_dir));
    config.database_url = args.database_url.or(file.database_url);
    config.storage = args.storage.or(file.storage);
    if config.database_url.is_none() && !config.data_dir.join("offsite.db").exists() {
        anyhow::bail!(
            "{} holds no service database (offsite.db): give the --data-dir (or --database-url) of the service to check",
            config.data_dir.display()
        );
    }
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    let report = runtime.block_on(offsite_server::consistency::check(&config, args.read_data))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "checked {}, {}, {}, {}{}",
            plural(report.machines, "machine"),
            plural(report.recovery_points, "recovery point"),
            plural(report.import_jobs_completed, "completed import job"),
            plural(report.adoptions, "adoption"),
            if args.read_data { format!(", read {}", plural(report.files_read, "file")) } else { String::new() }
        );
        for disagreement in &report.disagreements {
            println!("DISAGREES: {disagreement}");
        }
        if report.agrees() {
            println!("the database agrees with the storage");
        }
    }
    if report.agrees() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("the database and the storage disagree in {}", plural(report.disagreements.len(), "place"));
        Ok(ExitCode::from(1))
    }
}

fn serve(args: RunArgs) -> Result<ExitCode> {
    let file = read_settings(args.config.as_ref())?;
    let mut config = ServerConfig::new(args.data_dir.or(file.data_dir).unwrap_or_else(default_data_dir));
    if let Some(listen) = args.listen.or(file.listen) {
        config.listen = listen;
    }
    config.database_url = args.database_url.or(file.database_url);
    config.database_max_connections = args.database_max_connections.or(file.database_max_connections);
    config.storage = args.storage.or(file.storage);
    config.tls_cert = args.tls_cert.or(file.tls_cert);
    config.tls_key = args.tls_key.or(file.tls_key);
    config.public_url = args.public_url.or(file.public_url);
    if let Some(seconds) = args.maintenance_interval.or(file.maintenance_interval) {
        config.maintenance_interval = Some(std::time::Duration::from_secs(seconds.max(1)));
    }
    config.smtp_url = args.smtp_url.or(file.smtp_url);
    if let Some(from) = args.smtp_from.or(file.smtp_from) {
        config.smtp_from = from;
    }
    config.webhooks_to_private_addresses =
        args.webhooks_to_private_addresses || file.webhooks_to_private_addresses.unwrap_or(false);
    config.metrics_listen = args.metrics_listen.or(file.metrics_listen);
    config.proxy_protocol = args.proxy_protocol || file.proxy_protocol.unwrap_or(false);

    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(async move {
        let server = Server::start(config).await?;
        println!("offsite service running");
        println!("  URL:                  {}", server.url);
        println!("  certificate SHA-256:  {}", server.fingerprint);
        println!("  database:             {}", server.database);
        println!("  storage:              {}", server.storage);
        println!("  operator credentials: {}", server.operator_credentials.display());
        if let Some(url) = &server.metrics_url {
            println!("  metrics:              {url}");
        }
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot listen for SIGTERM")?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        eprintln!("offsite service stopping");
        server.shutdown();
        server.wait().await.context("the service stopped with an error")?;
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    })
}
