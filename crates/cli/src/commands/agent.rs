//! `offsite agent …`: the backup agent of a machine registered to a vault.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;

use offsite_agent::config::{AgentConfig, Retention};
use offsite_agent::daemon::DaemonEvent;
use offsite_agent::registration::Registration;
use offsite_agent::restore::RestoreRequest;
use offsite_agent::schedule::{parse_days, Schedule, TimeOfDay};
use offsite_agent::throttle::{parse_limit, BandwidthPolicy};
use offsite_agent::AgentHome;
use offsite_engine::progress::Progress;

use crate::display::{human, plural, when};
use crate::exit::INCOMPLETE;
use crate::progress_bar::Bar;

#[derive(Args)]
pub struct AgentArgs {
    /// Keep the agent's configuration and state in this folder instead of the usual
    /// places (/etc/offsite + /var/lib/offsite/agent, or ~/.config + ~/.local/state).
    #[arg(long, global = true, env = "OFFSITE_AGENT_HOME")]
    agent_home: Option<PathBuf>,
    /// Print results as JSON.
    #[arg(long, global = true)]
    json: bool,
    /// No progress bars and no summaries; errors only.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Keep the local cache of the vault repository here [default: state/cache in
    /// --agent-home, /var/cache/offsite/agent as root, else ~/.cache/offsite/agent].
    #[arg(long, global = true, env = "OFFSITE_AGENT_CACHE_DIR", conflicts_with = "no_cache")]
    cache_dir: Option<PathBuf>,
    /// Read everything from the service, keeping no local cache.
    #[arg(long, global = true)]
    no_cache: bool,
    #[command(subcommand)]
    command: AgentCommand,
}

#[derive(Subcommand)]
enum AgentCommand {
    /// Register this machine to a vault with a vault credentials file.
    Register {
        #[arg(long)]
        vault_credentials: PathBuf,
        /// Read the encryption passphrase (16+ characters) from this file
        /// (otherwise OFFSITE_PASSWORD, or a prompt).
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
        /// The machine's name in the vault [default: the host name].
        #[arg(long)]
        name: Option<String>,
        /// The size in MiB at which the new repository closes a pack, 1 to 1024:
        /// smaller packs cost less to send again over a thin link that breaks.
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
        pack_size: u32,
        /// Replace a machine of the vault (its name or id): a lost or rebuilt
        /// server. This one takes over its recovery points and backs up
        /// incrementally from them; give that machine's passphrase. Its old
        /// credential stops working.
        #[arg(long, value_name = "MACHINE")]
        replaces: Option<String>,
    },
    /// What to back up.
    #[command(subcommand)]
    Protect(ProtectCommand),
    /// When scheduled backups run.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// How many recovery points to keep.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Bandwidth limits for work hours and other hours.
    #[command(subcommand)]
    Throttle(ThrottleCommand),
    /// Offline seeding: send the first full backup on drives through a staging location.
    #[command(subcommand)]
    Offline(OfflineCommand),
    /// Offline restore: recovery points on drives the datacenter writes and ships.
    #[command(subcommand)]
    Export(super::export::ExportCommand),
    /// Back up the protected paths now.
    Backup {
        /// Run now (scheduled backups run under `offsite agent run`).
        #[arg(long)]
        now: bool,
    },
    /// The daemon: run scheduled backups until stopped.
    Run,
    /// Registration, schedule, last and next backup, recent jobs.
    Status {
        /// How many recent jobs to show.
        #[arg(long, default_value_t = 10)]
        jobs: usize,
    },
    /// Recovery points in the vault.
    RecoveryPoints,
    /// Restore a recovery point, whole or in part.
    Restore {
        /// A recovery point id (or unique prefix), or `latest`.
        #[arg(long, default_value = "latest")]
        point: String,
        /// Restore only these paths of the point (repeatable).
        #[arg(long)]
        path: Vec<String>,
        /// Where to restore: `/` for the original location, or another folder.
        #[arg(long)]
        target: PathBuf,
        /// Replace existing files even when they are newer than the recovery point's.
        #[arg(long)]
        overwrite: bool,
        /// Read every restored file back and check it.
        #[arg(long)]
        verify: bool,
        /// Use this passphrase (e.g. restoring with the passphrase you kept safe).
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
        /// Restore from export drives (repeat for each drive of the set): a block
        /// device, an image file, or a folder holding offsite-drive.img.
        #[arg(long = "from-drive", value_name = "PATH")]
        from_drive: Vec<PathBuf>,
        /// The export job whose key (kept when this machine requested it) opens the
        /// drives; repeat for a job and its repair export, whose drives then fill
        /// what the first set lacks.
        #[arg(long, requires = "from_drive")]
        export_job: Vec<String>,
        /// A drive's recovery key, as the portal and `offsite agent export status`
        /// show it (repeat for each drive).
        #[arg(long, requires = "from_drive")]
        recovery_key: Vec<String>,
        /// Read what the drives lack or have damaged from the service.
        #[arg(long, requires = "from_drive")]
        fill_from_service: bool,
    },
    /// Remove the stale locks of this machine's repository in the vault (or all
    /// locks with --remove-all): backups killed on another host, or left by a
    /// crash. The next backup removes those of this host's killed runs by itself.
    Unlock {
        #[arg(long)]
        remove_all: bool,
    },
    /// The local cache of the vault repository (sealed copies of its index,
    /// snapshots and trees, so that backups over a thin link read them here).
    #[command(subcommand)]
    Cache(AgentCacheCommand),
}

#[derive(Subcommand)]
enum AgentCacheCommand {
    /// What the cache holds.
    Info,
    /// Empty the cache (the next backup fetches what it needs again).
    Clear,
}

#[derive(Subcommand)]
enum OfflineCommand {
    /// Send the next (first, full) backup to a staging location instead of the network.
    Configure {
        /// The staging location: an empty folder here or on a mounted share.
        #[arg(long)]
        staging: PathBuf,
        /// The import job's name: unique; everything tracks the transfer by it.
        #[arg(long)]
        import_job: String,
        #[arg(long)]
        subscription: String,
        #[arg(long)]
        storage_account: String,
        #[arg(long)]
        container: String,
        /// The subscription's publish-settings file (diskprep needs it on the copy computer).
        #[arg(long)]
        publish_settings: Option<PathBuf>,
    },
    /// The offline-seeding settings and where the seed is.
    Show,
    /// Measure what the staging backup of the protected paths would hold
    /// (deduplicated and compressed, as a backup stores it) without writing
    /// anything, and print the `offsite plan` line for it.
    Estimate {
        /// The site's upload rate, for the printed `offsite plan` line, e.g. 50Mbit/s.
        #[arg(long, value_parser = uplink_text)]
        uplink: Option<String>,
    },
    /// Stop offline seeding: later backups go over the network.
    Cancel,
}

#[derive(Subcommand)]
enum ProtectCommand {
    Add {
        path: PathBuf,
        /// Leave out matching entries (a name glob, or a path glob with '/'); repeatable.
        #[arg(long)]
        exclude: Vec<String>,
    },
    Remove {
        path: PathBuf,
    },
    List,
}

#[derive(Subcommand)]
enum ScheduleCommand {
    /// Set the times of day and days of the week.
    Set {
        /// Comma-separated times, e.g. 02:00,13:30.
        #[arg(long)]
        times: String,
        /// Comma-separated days (mon,tue,…) or `daily`.
        #[arg(long, default_value = "daily")]
        days: String,
    },
    Show,
    /// No scheduled backups.
    Clear,
}

#[derive(Subcommand)]
enum RetentionCommand {
    Set {
        #[arg(long, default_value_t = 0)]
        daily: u32,
        #[arg(long, default_value_t = 0)]
        weekly: u32,
        #[arg(long, default_value_t = 0)]
        monthly: u32,
        #[arg(long, default_value_t = 0)]
        yearly: u32,
    },
    Show,
}

#[derive(Subcommand)]
enum ThrottleCommand {
    Set {
        /// Work days, e.g. mon,tue,wed,thu,fri.
        #[arg(long, default_value = "mon,tue,wed,thu,fri")]
        work_days: String,
        /// Work hours, e.g. 09:00-18:00.
        #[arg(long, default_value = "09:00-18:00")]
        work_hours: String,
        /// Limit in work hours, e.g. 2MiB/s, or `unlimited`.
        #[arg(long, default_value = "unlimited")]
        work_limit: String,
        /// Limit outside work hours.
        #[arg(long, default_value = "unlimited")]
        other_limit: String,
    },
    Show,
    /// No limits.
    Off,
}

fn print<T: Serialize>(json: bool, value: &T, human: impl FnOnce(&T)) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        human(value);
    }
    Ok(())
}

fn read_passphrase(file: Option<&std::path::Path>, confirm: bool) -> Result<String> {
    let bytes = crate::passphrase::read(file, confirm)?;
    String::from_utf8(bytes).context("the passphrase must be UTF-8 text")
}

/// The command that prepares drives from this agent's staging location.
fn prepare_drives(home: &AgentHome, staging: &std::path::Path) -> String {
    home.command(&format!("diskprep --staging {}", offsite_agent::home::shell_word(&staging.display().to_string())))
}

/// A rate `offsite plan --uplink` takes, kept as typed for the printed line.
fn uplink_text(text: &str) -> Result<String, offsite_seeding::plan::PlanInputError> {
    offsite_seeding::plan::parse_rate(text).map(|_| text.trim().to_string())
}

/// `offsite plan` for what an estimate found, ready to type (with UPLINK to fill in
/// when the uplink was not given).
fn plan_command(home: &AgentHome, estimate: &offsite_engine::estimate::Estimate, uplink: Option<&str>) -> String {
    let uplink = uplink.map(offsite_agent::home::shell_word).unwrap_or_else(|| "UPLINK".to_string());
    home.command(&format!(
        "plan --size {} --source-size {} --uplink {uplink}",
        typed_size(estimate.stored_bytes),
        typed_size(estimate.bytes)
    ))
}

/// A size as `offsite plan` reads it, rounded up to two decimals of the largest
/// binary unit it reaches (`2.35GiB`), so that the plan never counts short.
fn typed_size(bytes: u64) -> String {
    let units = [("TiB", 1u64 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (name, size) in units {
        if bytes >= size {
            let hundredths = (bytes as u128 * 100).div_ceil(size as u128);
            let text = format!("{}.{:02}", hundredths / 100, hundredths % 100);
            return format!("{}{name}", text.trim_end_matches('0').trim_end_matches('.'));
        }
    }
    format!("{}", bytes.max(1))
}

/// The command that enters the shipping details on this machine.
fn update_shipping(home: &AgentHome) -> String {
    home.command("diskprep --update-shipping")
}

impl AgentArgs {
    /// Whether this is the daemon, which runs until stopped.
    pub fn is_long_running(&self) -> bool {
        matches!(self.command, AgentCommand::Run)
    }
}

pub fn run(args: AgentArgs) -> Result<ExitCode> {
    let mut home = match &args.agent_home {
        Some(folder) => AgentHome::in_folder(folder),
        None => AgentHome::default_locations(),
    };
    if args.no_cache {
        home.cache_dir = None;
    } else if let Some(dir) = &args.cache_dir {
        home.cache_dir = Some(dir.clone());
    }
    let json = args.json;
    let edit_config = |change: &mut dyn FnMut(&mut AgentConfig) -> Result<()>| -> Result<AgentConfig> {
        home.ensure_state_dir()?;
        let mut config = AgentConfig::load(&home.config_file)?;
        change(&mut config)?;
        config.save(&home.config_file)?;
        Ok(config)
    };
    match args.command {
        AgentCommand::Register { vault_credentials, passphrase_file, name, pack_size, replaces } => {
            let passphrase = read_passphrase(passphrase_file.as_deref(), true)?;
            let name = name.unwrap_or_else(offsite_agent::hostname);
            let init = offsite_engine::InitOptions { pack_size: pack_size << 20, ..Default::default() };
            let registration = offsite_agent::registration::register_with(
                &home,
                &vault_credentials,
                &passphrase,
                &name,
                init,
                replaces.as_deref(),
            )?;
            #[derive(Serialize)]
            struct Out<'a> {
                machine_id: &'a str,
                vault: &'a str,
                service_url: &'a str,
                state: PathBuf,
            }
            let out = Out {
                machine_id: &registration.machine_id,
                vault: &registration.vault_name,
                service_url: &registration.service_url,
                state: home.state_dir.clone(),
            };
            print(json, &out, |out| {
                println!("registered to vault '{}' as machine {} ({})", out.vault, out.machine_id, out.service_url);
                println!(
                    "KEEP YOUR PASSPHRASE SAFE, away from this machine: the service never receives it, and without it \
                     no one (not even the service) can read or restore these backups."
                );
            })?;
        }
        AgentCommand::Protect(ProtectCommand::Add { path, exclude }) => {
            let mut added = PathBuf::new();
            edit_config(&mut |config| {
                added = config.protect(&path, exclude.clone())?;
                Ok(())
            })?;
            if !args.quiet && !json {
                println!("protecting {}", added.display());
            }
        }
        AgentCommand::Protect(ProtectCommand::Remove { path }) => {
            edit_config(&mut |config| {
                config.unprotect(&path)?;
                Ok(())
            })?;
            if !args.quiet && !json {
                println!(
                    "no longer protecting {} (its recovery points stay until retention removes them)",
                    path.display()
                );
            }
        }
        AgentCommand::Protect(ProtectCommand::List) => {
            let config = AgentConfig::load(&home.config_file)?;
            print(json, &config.protect, |list| {
                for p in list {
                    if p.excludes.is_empty() {
                        println!("{}", p.path.display());
                    } else {
                        println!("{}  (excluding {})", p.path.display(), p.excludes.join(", "));
                    }
                }
            })?;
        }
        AgentCommand::Schedule(ScheduleCommand::Set { times, days }) => {
            let schedule = Schedule::parse(&times, &days)?;
            let config = edit_config(&mut |config| {
                config.schedule = Some(schedule.clone());
                Ok(())
            })?;
            if !args.quiet && !json {
                println!("backups scheduled at {}", schedule);
                if let Some(s) = &config.schedule {
                    println!("next backup: {}", s.next_after(&chrono::Local::now()).format("%Y-%m-%d %H:%M %Z"));
                }
            }
        }
        AgentCommand::Schedule(ScheduleCommand::Show) => {
            let config = AgentConfig::load(&home.config_file)?;
            print(json, &config.schedule, |s| match s {
                Some(s) => println!("{s}"),
                None => println!("no schedule: set one with `{}`", home.command("agent schedule set --times 02:00")),
            })?;
        }
        AgentCommand::Schedule(ScheduleCommand::Clear) => {
            edit_config(&mut |config| {
                config.schedule = None;
                Ok(())
            })?;
        }
        AgentCommand::Retention(RetentionCommand::Set { daily, weekly, monthly, yearly }) => {
            let retention = Retention { daily, weekly, monthly, yearly };
            edit_config(&mut |config| {
                config.retention = retention;
                Ok(())
            })?;
            if !args.quiet && !json {
                println!("keeping {daily} daily, {weekly} weekly, {monthly} monthly, {yearly} yearly recovery points");
            }
        }
        AgentCommand::Retention(RetentionCommand::Show) => {
            let config = AgentConfig::load(&home.config_file)?;
            print(json, &config.retention, |r| {
                if r.is_empty() {
                    println!("keeping every recovery point");
                } else {
                    println!("daily {}, weekly {}, monthly {}, yearly {}", r.daily, r.weekly, r.monthly, r.yearly);
                }
            })?;
        }
        AgentCommand::Throttle(ThrottleCommand::Set { work_days, work_hours, work_limit, other_limit }) => {
            let (start, end) = work_hours
                .split_once('-')
                .with_context(|| format!("work hours '{work_hours}' must look like 09:00-18:00"))?;
            let policy = BandwidthPolicy {
                work_days: parse_days(&work_days)?,
                work_start: start.trim().parse::<TimeOfDay>()?,
                work_end: end.trim().parse::<TimeOfDay>()?,
                work_limit: parse_limit(&work_limit)?,
                other_limit: parse_limit(&other_limit)?,
            };
            edit_config(&mut |config| {
                config.bandwidth = Some(policy.clone());
                Ok(())
            })?;
        }
        AgentCommand::Throttle(ThrottleCommand::Show) => {
            let config = AgentConfig::load(&home.config_file)?;
            print(json, &config.bandwidth, |b| match b {
                Some(b) => println!("{}", toml::to_string(b).unwrap_or_default()),
                None => println!("no bandwidth limits"),
            })?;
        }
        AgentCommand::Throttle(ThrottleCommand::Off) => {
            edit_config(&mut |config| {
                config.bandwidth = None;
                Ok(())
            })?;
        }
        AgentCommand::Offline(OfflineCommand::Configure {
            staging,
            import_job,
            subscription,
            storage_account,
            container,
            publish_settings,
        }) => {
            let settings = offsite_agent::config::OfflineSeeding {
                staging,
                import_job,
                subscription_id: subscription,
                storage_account,
                container,
                publish_settings,
                staged_snapshot: None,
            };
            let settings = offsite_agent::offline::configure(&home, settings)?;
            print(json, &settings, |s| {
                println!(
                    "offline seeding for import job {}: the next backup goes to the staging location {}",
                    s.import_job,
                    s.staging.display()
                );
                println!("then prepare drives from it with `{}`", prepare_drives(&home, &s.staging));
            })?;
        }
        AgentCommand::Offline(OfflineCommand::Show) => {
            let config = AgentConfig::load(&home.config_file)?;
            #[derive(Serialize)]
            struct OfflineShow {
                offline: Option<offsite_agent::config::OfflineSeeding>,
                adopted_seed: Option<offsite_agent::config::AdoptedSeed>,
                import_job: Option<offsite_api::types::ImportJobView>,
            }
            let import_job = if config.offline.is_some() || config.adopted_seed.is_some() {
                offsite_agent::offline::import_job(&home)?
            } else {
                None
            };
            let show =
                OfflineShow { offline: config.offline.clone(), adopted_seed: config.adopted_seed.clone(), import_job };
            print(json, &show, |show| {
                if let Some(job) = &show.import_job {
                    crate::seeding_display::print_job(job, Some(&update_shipping(&home)));
                }
                if let Some(seed) = &show.adopted_seed {
                    println!(
                        "seed adopted into the vault {}: {}, {}",
                        when(seed.adopted),
                        plural(seed.files, "file"),
                        human(seed.bytes)
                    );
                }
            })?;
            if json {
                return Ok(ExitCode::SUCCESS);
            }
            print(false, &config.offline, |o| match o {
                None if config.adopted_seed.is_some() => {
                    println!("offline seeding is over: backups go over the network")
                }
                None => println!("offline seeding is not configured: backups go over the network"),
                Some(o) => {
                    println!("import job:      {}", o.import_job);
                    println!("staging:         {}", o.staging.display());
                    println!("subscription:    {}", o.subscription_id);
                    println!("storage account: {} / container {}", o.storage_account, o.container);
                    match &o.staged_snapshot {
                        Some(id) => {
                            println!(
                                "seed:            recovery point {} is in the staging location",
                                &id[..12.min(id.len())]
                            );
                            let complete = show.import_job.as_ref().map(|j| j.state)
                                == Some(offsite_api::types::ImportJobState::Completed);
                            if complete {
                                println!(
                                    "status:          the import job is complete: the next backup adopts the seed"
                                );
                            } else if show.import_job.is_none() {
                                println!(
                                    "status:          {}",
                                    offsite_agent::offline::drives_not_prepared_message(&home, o)
                                );
                            } else {
                                println!("status:          {}", offsite_agent::offline::waiting_message(&o.import_job));
                            }
                        }
                        None => {
                            println!("seed:            not yet written: run `{}`", home.command("agent backup --now"))
                        }
                    }
                }
            })?;
        }
        AgentCommand::Export(command) => return super::export::run(&home, json, command),
        AgentCommand::Offline(OfflineCommand::Estimate { uplink }) => {
            let progress = Arc::new(Progress::default());
            let bar = Bar::show("estimate", progress.clone(), args.quiet || json);
            let result = offsite_agent::estimate::estimate(&home, &progress);
            drop(bar);
            let found = result?;
            #[derive(Serialize)]
            struct Out<'a> {
                #[serde(flatten)]
                found: &'a offsite_agent::estimate::OfflineEstimate,
                plan_command: String,
            }
            let out = Out { found: &found, plan_command: plan_command(&home, &found.estimate, uplink.as_deref()) };
            print(json, &out, |out| {
                if args.quiet {
                    return;
                }
                let e = &out.found.estimate;
                let share = |part: u64| if e.bytes == 0 { 0.0 } else { part as f64 * 100.0 / e.bytes as f64 };
                println!(
                    "a staging backup of {} would hold (chunking and compression of the {}):",
                    out.found.paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
                    out.found.repository
                );
                println!("  files:                {}", e.files);
                println!("  bytes:                {}", human(e.bytes));
                println!("  unique (deduplicated): {} ({:.1}%)", human(e.unique_bytes), share(e.unique_bytes));
                println!("  compressed, stored:   {} ({:.1}%)", human(e.stored_bytes), share(e.stored_bytes));
                let rate = if e.seconds > 0.0 { e.bytes as f64 / e.seconds / 1e6 } else { 0.0 };
                println!("  time taken:           {:.1} s ({rate:.0} MB/s read)", e.seconds);
                for item in &e.skipped {
                    eprintln!("skipped {}: {}", item.path, item.reason);
                }
                match &out.found.rate_recorded_in {
                    Some(path) => println!(
                        "Nothing was written; the reading rate was kept for the planner in {}.",
                        path.display()
                    ),
                    None => println!("Nothing was written."),
                }
                println!("Plan the transfer with:\n  {}", out.plan_command);
                if uplink.is_none() {
                    println!("(UPLINK: the site's upload rate, e.g. 50Mbit/s; or run this with --uplink RATE)");
                }
            })?;
            if !found.estimate.skipped.is_empty() {
                return Ok(ExitCode::from(INCOMPLETE));
            }
        }
        AgentCommand::Offline(OfflineCommand::Cancel) => {
            let previous = offsite_agent::offline::cancel(&home)?;
            if !args.quiet && !json {
                match previous {
                    Some(o) => println!(
                        "offline seeding for import job {} cancelled; the staging folder {} is left as it is",
                        o.import_job,
                        o.staging.display()
                    ),
                    None => println!("offline seeding was not configured"),
                }
            }
        }
        AgentCommand::Backup { now } => {
            if !now {
                bail!(
                    "say `{}` to back up now; scheduled backups run under `{}`",
                    home.command("agent backup --now"),
                    home.command("agent run")
                );
            }
            let progress = Arc::new(Progress::default());
            let bar = Bar::show("backup", progress.clone(), args.quiet || json);
            let result = offsite_agent::backup::backup_now(&home, &progress);
            drop(bar);
            let run = result?;
            print(json, &run, |run| {
                if !args.quiet {
                    println!(
                        "backup {:?}: recovery point {} ({}; {} sent)",
                        run.report.state,
                        run.snapshot_id.as_deref().map(|s| &s[..s.len().min(12)]).unwrap_or("-"),
                        run.report.message.as_deref().unwrap_or(""),
                        human(run.report.bytes_uploaded)
                    );
                    for item in &run.skipped {
                        eprintln!("skipped {}: {}", item.path, item.reason);
                    }
                    if run.expired_points > 0 {
                        println!("retention removed {}", plural(run.expired_points, "recovery point"));
                    }
                }
            })?;
            if !run.skipped.is_empty() {
                return Ok(ExitCode::from(INCOMPLETE));
            }
        }
        AgentCommand::Run => {
            let stop = Arc::new(AtomicBool::new(false));
            for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                signal_hook::flag::register(signal, stop.clone()).context("cannot listen for signals")?;
            }
            let quiet = args.quiet;
            offsite_agent::daemon::run(&home, &stop, |event| {
                match &event {
                    DaemonEvent::NoSchedule => tracing::warn!("no schedule is set; waiting for one"),
                    DaemonEvent::Waiting { next } => tracing::info!(next = %next, "waiting for the next backup"),
                    DaemonEvent::Started { attempt } => tracing::info!(attempt, "backup started"),
                    DaemonEvent::Finished(run) => tracing::info!(
                        state = ?run.report.state,
                        snapshot = run.snapshot_id.as_deref().unwrap_or("-"),
                        bytes_sent = run.report.bytes_uploaded,
                        "backup finished"
                    ),
                    DaemonEvent::Failed { attempt, error, retry_in } => {
                        tracing::error!(attempt, %error, retry_in = ?retry_in, "backup failed")
                    }
                }
                if !quiet {
                    match event {
                        DaemonEvent::Waiting { next } => {
                            println!("next backup at {}", next.format("%Y-%m-%d %H:%M:%S"))
                        }
                        DaemonEvent::Finished(run) => println!(
                            "backup {:?}: recovery point {}",
                            run.report.state,
                            run.snapshot_id.as_deref().unwrap_or("-")
                        ),
                        DaemonEvent::Failed { attempt, error, retry_in } => match retry_in {
                            Some(wait) => {
                                println!("backup attempt {attempt} failed: {error}; retrying in {} s", wait.as_secs())
                            }
                            None => println!("backup attempt {attempt} failed: {error}"),
                        },
                        _ => {}
                    }
                }
            })?;
        }
        AgentCommand::Status { jobs } => {
            let status = offsite_agent::status::status(&home, jobs)?;
            print(json, &status, |s| {
                println!("machine {} ({}) in vault '{}' at {}", s.machine_name, s.machine_id, s.vault, s.service_url);
                println!(
                    "protected: {}",
                    if s.protected.is_empty() { "nothing".into() } else { s.protected.join(", ") }
                );
                println!("schedule: {}", s.schedule.as_deref().unwrap_or("none"));
                match &s.next_backup {
                    Some(next) => println!("next backup: {}", next.format("%Y-%m-%d %H:%M %Z")),
                    None => println!("next backup: not scheduled"),
                }
                match &s.last_backup {
                    Some(job) => println!(
                        "last backup: {:?} at {}{}",
                        job.report.state,
                        when(job.report.started),
                        job.report.errors.first().map(|e| format!(" ({e})")).unwrap_or_default()
                    ),
                    None => println!("last backup: never"),
                }
                if let Some(o) = &s.offline {
                    match &o.staged_snapshot {
                        // diskprep has not created the job: there are drives to prepare.
                        Some(_) if s.import_job.is_none() && s.import_job_error.is_none() => println!(
                            "offline seeding: {}",
                            offsite_agent::offline::drives_not_prepared_message(&home, o)
                        ),
                        Some(_) => {
                            println!("offline seeding: {}", offsite_agent::offline::waiting_message(&o.import_job))
                        }
                        None => println!(
                            "offline seeding: the next backup goes to the staging location {} (import job {})",
                            o.staging.display(),
                            o.import_job
                        ),
                    }
                    match (&s.import_job, &s.import_job_error) {
                        (Some(job), _) => println!(
                            "import job {}: {}",
                            job.name,
                            crate::seeding_display::stage(job, Some(&update_shipping(&home)))
                        ),
                        (None, Some(err)) => println!("import job: unknown ({err})"),
                        (None, None) => println!(
                            "import job: not created yet (diskprep creates it from the staging location once the \
                             first backup is there)"
                        ),
                    }
                }
                match (&s.soft_deleted, &s.soft_deleted_error) {
                    (Some(removed), _) if removed.files > 0 => println!(
                        "soft-deleted: {} ({} files, {} recovery points) kept by the vault; the space returns from \
                         {} to {}",
                        offsite_api::size::ByteSize(removed.bytes),
                        removed.files,
                        removed.recovery_points.len(),
                        removed.next_purge.map(when).unwrap_or_default(),
                        removed.last_purge.map(when).unwrap_or_default()
                    ),
                    (Some(_), _) => println!("soft-deleted: nothing"),
                    (None, Some(err)) => println!("soft-deleted: unknown ({err})"),
                    (None, None) => {}
                }
                if let Some(seed) = &s.adopted_seed {
                    println!(
                        "offline seed: import job {} adopted {} (recovery point {})",
                        seed.import_job,
                        when(seed.adopted),
                        &seed.snapshot_id[..12.min(seed.snapshot_id.len())]
                    );
                }
                if let Some(limit) = &s.bandwidth_limit_now {
                    println!("bandwidth limit now: {limit}");
                }
                println!("recent jobs:");
                for job in &s.jobs {
                    println!(
                        "  {:?} {:?} started {} sent {}{}",
                        job.report.kind,
                        job.report.state,
                        when(job.report.started),
                        human(job.report.bytes_uploaded),
                        job.report.errors.first().map(|e| format!(": {e}")).unwrap_or_default()
                    );
                }
            })?;
        }
        AgentCommand::RecoveryPoints => {
            let registration = Registration::load(&home)?;
            let points = registration.client()?.recovery_points(&registration.machine_id)?;
            print(json, &points, |points| {
                if points.is_empty() {
                    println!("no recovery points yet");
                }
                for p in points {
                    println!(
                        "{}  {}  {}  {}  {:?}",
                        &p.snapshot_id[..12.min(p.snapshot_id.len())],
                        when(p.time),
                        plural(p.file_count, "file"),
                        human(p.size),
                        p.source
                    );
                }
            })?;
        }
        AgentCommand::Restore {
            point,
            path,
            target,
            overwrite,
            verify,
            passphrase_file,
            from_drive,
            export_job,
            recovery_key,
            fill_from_service,
        } => {
            let passphrase = match passphrase_file {
                Some(file) => Some(read_passphrase(Some(&file), false)?),
                None => None,
            };
            let drives = (!from_drive.is_empty()).then_some(offsite_agent::restore::DriveSource {
                paths: from_drive,
                export_jobs: export_job,
                recovery_keys: recovery_key,
                fill_from_service,
            });
            let request = RestoreRequest { point, paths: path, target, overwrite, verify, passphrase, drives };
            let progress = Arc::new(Progress::default());
            let bar = Bar::show("restore", progress.clone(), args.quiet || json);
            let result = offsite_agent::restore::restore(&home, &request, &progress);
            drop(bar);
            let run = result?;
            // Listed whatever --quiet or --json say: these files are not at the target.
            for f in &run.outcome.failures {
                eprintln!("offsite: could not restore {}", crate::display::restore_failure(f));
            }
            print(json, &run, |run| {
                if !args.quiet {
                    let o = &run.outcome;
                    println!(
                        "restored recovery point {} to {}: {}, {}{}",
                        &run.snapshot_id[..12],
                        request.target.display(),
                        plural(o.files, "file"),
                        human(o.bytes),
                        if o.kept > 0 { format!(", {} kept", plural(o.kept, "newer file")) } else { String::new() }
                    );
                    if let Some(filled) = run.filled.as_ref().filter(|f| !f.files.is_empty()) {
                        println!(
                            "filled from {} what the drives lacked: {} of {}",
                            filled.from,
                            human(filled.bytes),
                            plural(filled.files.len(), "file")
                        );
                    }
                }
            })?;
            if !run.outcome.failures.is_empty() {
                eprintln!(
                    "offsite: restore incomplete: {} items could not be restored (listed above)",
                    run.outcome.failures.len()
                );
                return Ok(ExitCode::from(INCOMPLETE));
            }
        }
        AgentCommand::Unlock { remove_all } => {
            let removed = offsite_agent::repository::unlock(&home, remove_all)?;
            let list: Vec<String> = removed.iter().map(|l| l.describe()).collect();
            print(json, &list, |list| {
                if !args.quiet {
                    for l in list {
                        println!("removed lock of {l}");
                    }
                    println!("{} locks removed", list.len());
                }
            })?;
        }
        AgentCommand::Cache(command) => {
            let Some(settings) = home.cache_settings() else {
                print(json, &serde_json::json!({ "cache": null, "reason": "--no-cache was given" }), |_| {
                    println!("no local cache: --no-cache was given")
                })?;
                return Ok(ExitCode::SUCCESS);
            };
            let folder = settings.root.display().to_string();
            match command {
                AgentCacheCommand::Info => {
                    let caches = offsite_engine::cache::caches_under(&settings)
                        .with_context(|| format!("cannot read the cache folder {folder}"))?;
                    print(json, &caches, |caches| {
                        if caches.is_empty() {
                            println!("the cache in {folder} is empty (the next backup fills it)");
                        }
                        caches.iter().for_each(super::repo::print_cache_usage);
                    })?;
                }
                AgentCacheCommand::Clear => {
                    let cleared = offsite_engine::cache::clear_caches(&settings, None)
                        .with_context(|| format!("cannot empty the cache folder {folder}"))?;
                    let bytes: u64 = cleared.iter().map(|u| u.bytes).sum();
                    print(json, &serde_json::json!({ "folder": folder, "cleared_bytes": bytes }), |_| {
                        if !args.quiet {
                            println!("emptied the cache in {folder}: {} freed", human(bytes));
                        }
                    })?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
