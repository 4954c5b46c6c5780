//! `offsite diskprep …`: run on the copy computer, as the seed's disk preparation
//! tool. It finds the import job of a staging location, copies the staging
//! location onto encrypted drives (asking for another when one is full), creates
//! the import job on the service with its drive list, prints the datacenter's
//! shipping address, and records the shipping details. Every question has a flag,
//! so scripts run it unattended.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;

use offsite_agent::config::AgentConfig;
use offsite_agent::home::shell_word;
use offsite_agent::offline::StagingMarker;
use offsite_agent::AgentHome;
use offsite_api::application_auth::Signer as ApplicationSigner;
use offsite_api::files::PublishSettings;
use offsite_api::types::{
    CreateImportJob, CustodyEventKind, Datacenter, ImportJobDriveSpec, ImportJobView, ShippingDetails,
};
use offsite_api::{Client, XmlCredentialFile};
use offsite_seeding::custody::{CustodySigner, Recorder};
use offsite_seeding::diskprep::journal::Journal;
use offsite_seeding::diskprep::{
    self, describe_target, DiskprepError, DrivePlan, DriveSupplier, PrepareProgress, PreparedSet, TargetDescription,
    TargetKind,
};
use offsite_seeding::drive::{DriveTarget, DEFAULT_BLOCK_SIZE, MAX_BLOCK_SIZE, MIN_BLOCK_SIZE};
use offsite_seeding::measured::{MeasuredStep, Measurement};
use offsite_seeding::staging::StagingListing;

use crate::display::plural;
use crate::prompt;
use crate::seeding_display;

#[derive(Args)]
pub struct DiskprepArgs {
    /// The staging location (or a folder holding several staging locations).
    #[arg(long)]
    staging: Option<PathBuf>,
    /// The subscription's publish-settings file: needed when this is not the source machine.
    #[arg(long, env = "OFFSITE_PUBLISH_SETTINGS")]
    publish_settings: Option<PathBuf>,
    /// The agent's folder on the source machine (as `offsite agent --agent-home`).
    #[arg(long, env = "OFFSITE_AGENT_HOME")]
    agent_home: Option<PathBuf>,
    /// The import job, when the staging location holds several.
    #[arg(long, alias = "job")]
    import_job: Option<String>,
    /// A target drive: a block device (/dev/sdX), an image file, or an empty folder
    /// on a mounted drive; repeat for the next drives of the set.
    #[arg(long)]
    drive: Vec<PathBuf>,
    /// The size of image files to create, e.g. 500GiB or 64MiB.
    #[arg(long)]
    drive_size: Option<String>,
    /// Format drives and commit shipping details without asking.
    #[arg(long)]
    yes: bool,
    /// The datacenter to ship to (by name), when the service has several.
    #[arg(long)]
    datacenter: Option<String>,
    /// Continue an interrupted preparation from its journal.
    #[arg(long)]
    resume: bool,
    /// The journal file; the shipping details are kept beside it [default:
    /// DIR/diskprep/<import job>.journal.json with --agent-home DIR, else
    /// ~/.local/state/offsite/diskprep/<import job>.journal.json].
    #[arg(long)]
    journal: Option<PathBuf>,
    /// Bytes per encrypted block of the drive format: a multiple of 4096 from 4096
    /// to 67108864 (docs/DRIVE-FORMAT.md). Each block is sealed and verified on its
    /// own, and a damaged one sends the files it holds on a repair drive, so smaller
    /// blocks lose less to one bad sector; small image files (the demo's) need them.
    #[arg(long, default_value_t = DEFAULT_BLOCK_SIZE, value_parser = parse_block_size)]
    block_size: u32,
    /// Enter the shipping details of the import job.
    #[arg(long)]
    update_shipping: bool,
    /// Show the import job's status only.
    #[arg(long)]
    status: bool,
    /// Write a repair drive with the files an ingest error log names.
    #[arg(long)]
    repair: bool,
    /// Verify the import job's chain of custody (every signature, hash and link)
    /// and show who handled each drive when; exits 18 when it does not verify.
    #[arg(long)]
    verify_custody: bool,
    /// With --repair: the files to send again (comma-separated, as the error log lists
    /// them) [default: every file of the seed the service's container lacks].
    #[arg(long, value_delimiter = ',')]
    files: Vec<String>,
    #[command(flatten)]
    shipping: ShippingArgs,
    /// Print results as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ShippingArgs {
    #[arg(long)]
    carrier: Option<String>,
    #[arg(long)]
    tracking_number: Option<String>,
    /// How many drives the package holds [default: all of the job's].
    #[arg(long)]
    drive_count: Option<u32>,
    /// YYYY-MM-DD [default: today].
    #[arg(long)]
    ship_date: Option<String>,
    #[arg(long)]
    return_address: Option<String>,
    #[arg(long)]
    contact: Option<String>,
}

/// The import job diskprep works on and how it talks to the service.
struct Job {
    marker: StagingMarker,
    staging: Option<PathBuf>,
    /// The machines whose staging locations one drive set carries (several), or
    /// empty for one staging location.
    machines: Vec<String>,
    client: Client,
    /// The application's key, which signs custody events (on the source
    /// machine); publish settings hold no key, so a copy computer signs none.
    custody: Option<CustodySigner>,
}

impl Job {
    /// Signs an event of `kind` for each drive into the job's chain of custody;
    /// a failure is a warning (the drives and the job are as they should be).
    fn record_custody(&self, view: &ImportJobView, drives: &[(String, String)], kind: CustodyEventKind) {
        let Some(signer) = &self.custody else {
            eprintln!(
                "offsite: note: with publish settings diskprep holds no application key, so the drives' '{}' \
                 custody events are not recorded: run diskprep with the agent's files (--agent-home) where certgen \
                 left the application key",
                kind.name()
            );
            return;
        };
        let recorder = Recorder::new(&self.client, signer, &view.id);
        for (drive_id, details) in drives {
            if let Err(err) = recorder.record(Some(drive_id), kind, details) {
                eprintln!(
                    "offsite: warning: the custody event '{}' of drive {drive_id} was not recorded: {err}",
                    kind.name()
                );
            }
        }
    }
}

pub fn run(args: DiskprepArgs) -> Result<ExitCode> {
    let home = agent_home(&args);
    let job = find_job(&args, &home)?;
    if args.status {
        let view = job.client.find_import_job(&job.marker.import_job).with_context(|| {
            format!(
                "import job {} is not on the service yet: prepare its drives first (`{}`)",
                job.marker.import_job,
                next_step(&args, "--drive PATH")
            )
        })?;
        return show(&args, &view);
    }
    if args.update_shipping {
        return update_shipping(&args, &job);
    }
    if args.verify_custody {
        return verify_custody(&args, &job);
    }
    let Some(staging) = job.staging.clone() else {
        bail!("preparing drives needs the staging location: pass --staging PATH");
    };
    if args.repair {
        return repair(&args, &job, &staging);
    }
    prepare(&args, &job, &staging)
}

fn find_job(args: &DiskprepArgs, home: &AgentHome) -> Result<Job> {
    let on_source = AgentConfig::load(&home.config_file).ok().and_then(|c| c.offline);
    let mut machines = Vec::new();
    let (staging, marker) = match (&args.staging, &on_source) {
        (Some(path), _) => {
            let found = StagingMarker::find(path)?;
            if found.is_empty() {
                bail!(
                    "{} is not a staging location (no {}): give the folder `offsite agent offline configure --staging` named",
                    path.display(),
                    StagingMarker::FILE_NAME
                );
            }
            let mut names: Vec<String> = found.iter().map(|(_, m)| m.import_job.clone()).collect();
            names.dedup();
            let name = match (&args.import_job, names.len()) {
                (Some(name), _) if names.contains(name) => name.clone(),
                (Some(name), _) => bail!("no import job '{name}' in the staging location {}", path.display()),
                (None, 1) => names[0].clone(),
                (None, _) => {
                    let answer = prompt::ask(
                        &format!("The staging location holds import jobs {}; which one", names.join(", ")),
                        None,
                        "--import-job NAME",
                    )?;
                    if !names.contains(&answer) {
                        bail!("'{answer}' is not one of {}", names.join(", "));
                    }
                    answer
                }
            };
            let mut of_job: Vec<(PathBuf, StagingMarker)> =
                found.into_iter().filter(|(_, m)| m.import_job == name).collect();
            if of_job.len() == 1 {
                let (folder, marker) = of_job.remove(0);
                (Some(folder), marker)
            } else {
                machines = of_job.iter().map(|(_, m)| m.machine.clone()).collect();
                (Some(path.clone()), several_machines(path, &name, of_job)?)
            }
        }
        // On the source machine the agent knows its import job.
        (None, Some(offline)) => {
            let marker = StagingMarker::read(&offline.staging)?.with_context(|| {
                format!("the staging location {} has no {}", offline.staging.display(), StagingMarker::FILE_NAME)
            })?;
            (Some(offline.staging.clone()), marker)
        }
        (None, None) => bail!(
            "no import job here: pass --staging PATH (the staging location), and --publish-settings FILE when \
             this is not the source machine"
        ),
    };
    let client: (Client, Option<CustodySigner>) = match &args.publish_settings {
        Some(path) => {
            let settings = PublishSettings::read(path)?;
            if settings.subscription_id != marker.subscription_id {
                bail!(
                    "{} is for subscription {}, but import job {} belongs to subscription {}: use that \
                     subscription's publish settings",
                    path.display(),
                    settings.subscription_id,
                    marker.import_job,
                    marker.subscription_id
                );
            }
            (Client::new(&settings.service, &settings.management_credential)?, None)
        }
        None => {
            let (params, identity) = offsite_agent::offline_application::load_identity(home, &marker.storage_account)
                .map_err(|e| {
                anyhow::anyhow!("{e}. On a copy computer, pass the subscription's --publish-settings FILE")
            })?;
            let signer = ApplicationSigner::new(&identity).map_err(anyhow::Error::msg)?;
            (Client::for_application(&params.service, &identity)?, Some(CustodySigner::Application(signer)))
        }
    };
    let (client, custody) = client;
    Ok(Job { marker, staging, machines, client, custody })
}

/// One import job carrying the staging locations of several machines: `folder`
/// holds them (one subfolder each) and nothing else, and they agree on where
/// the seed goes. The drive set carries each as `<subfolder>/…`; each machine
/// adopts the one of its own repository.
fn several_machines(folder: &Path, name: &str, of_job: Vec<(PathBuf, StagingMarker)>) -> Result<StagingMarker> {
    let (first_folder, first) = &of_job[0];
    for (other_folder, other) in &of_job[1..] {
        let same = |a: &StagingMarker, b: &StagingMarker| {
            (&a.subscription_id, &a.storage_account, &a.container, &a.service_url)
                == (&b.subscription_id, &b.storage_account, &b.container, &b.service_url)
        };
        if !same(first, other) {
            bail!(
                "the staging locations {} and {} both name import job {name} but another subscription, storage                  account, container or service: configure the machines of one import job alike                  (`offsite agent offline configure`)",
                first_folder.display(),
                other_folder.display()
            );
        }
    }
    let ours: Vec<&PathBuf> = of_job.iter().map(|(f, _)| f).collect();
    for entry in std::fs::read_dir(folder).with_context(|| format!("cannot list {}", folder.display()))? {
        let entry = entry.with_context(|| format!("cannot list {}", folder.display()))?.path();
        if !ours.contains(&&entry) {
            bail!(
                "{} holds {}, which is not a staging location of import job {name}: a folder whose staging                  locations go onto one drive set holds only those; move it out, or give one staging location",
                folder.display(),
                entry.display()
            );
        }
    }
    Ok(first.clone())
}

fn show(args: &DiskprepArgs, view: &ImportJobView) -> Result<ExitCode> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(view)?);
    } else {
        seeding_display::print_job(view, Some(&next_step(args, "--update-shipping")));
    }
    Ok(ExitCode::SUCCESS)
}

/// The agent's files `--agent-home` names, or the default ones.
fn agent_home(args: &DiskprepArgs) -> AgentHome {
    args.agent_home.as_deref().map(AgentHome::in_folder).unwrap_or_else(AgentHome::default_locations)
}

/// Where the journal and the shipping details live on this computer: with the
/// agent's files when `--agent-home` names them, else in the user's state folder.
fn local_folder(args: &DiskprepArgs) -> PathBuf {
    if let Some(folder) = &args.agent_home {
        return folder.join("diskprep");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| home.join(".local/state"))
        .join("offsite/diskprep")
}

fn journal_path(args: &DiskprepArgs, import_job: &str, suffix: &str) -> Result<PathBuf> {
    if let Some(path) = &args.journal {
        return Ok(if suffix.is_empty() { path.clone() } else { path.with_extension(format!("{suffix}.json")) });
    }
    let folder = local_folder(args);
    std::fs::create_dir_all(&folder).with_context(|| format!("cannot create {}", folder.display()))?;
    let name =
        if suffix.is_empty() { format!("{import_job}.journal.json") } else { format!("{import_job}.{suffix}.json") };
    Ok(folder.join(name))
}

fn datacenter(wanted: Option<&str>, client: &Client) -> Result<Datacenter> {
    let all = client.list_datacenters()?;
    let names = || all.iter().map(|d| d.name.clone()).collect::<Vec<_>>().join(", ");
    let name = match (wanted, all.len()) {
        (Some(name), _) => name.to_string(),
        (None, 0) => bail!("the service has no datacenter to ship to: ask the operator to add one"),
        (None, 1) => all[0].name.clone(),
        (None, _) => prompt::ask(&format!("Ship to which datacenter ({})", names()), None, "--datacenter NAME")?,
    };
    let names = names();
    all.into_iter().find(|d| d.name == name).with_context(|| format!("no datacenter '{name}' (there are: {names})"))
}

fn import_key(datacenter: &Datacenter) -> Result<[u8; 32]> {
    let bytes = hex::decode(&datacenter.import_public_key)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .with_context(|| format!("datacenter {} has no valid import key: ask the operator", datacenter.name))?;
    Ok(bytes)
}

/// Drives from `--drive` flags first, then from questions on a terminal.
pub(super) struct Drives {
    given: std::vec::IntoIter<PathBuf>,
    size: Option<u64>,
    yes: bool,
    quiet: bool,
    /// Time spent finding, confirming and opening drives (waiting for the user
    /// included): not part of diskprep's measured throughput.
    supplying: std::time::Duration,
}

impl Drives {
    /// The drives given as `--drive` flags (then asked for at a terminal); image
    /// files made at `size`.
    pub(super) fn new(given: Vec<PathBuf>, size: Option<u64>, yes: bool, quiet: bool) -> Drives {
        Drives { given: given.into_iter(), size, yes, quiet, supplying: std::time::Duration::ZERO }
    }

    fn from_args(args: &DiskprepArgs) -> Result<Drives> {
        Ok(Drives {
            given: args.drive.clone().into_iter(),
            size: args.drive_size.as_deref().map(parse_size).transpose()?,
            yes: args.yes,
            quiet: args.json,
            supplying: std::time::Duration::ZERO,
        })
    }
}

impl DriveSupplier for Drives {
    fn next_drive(&mut self, index: u32, bytes_left: u64) -> Result<Option<DriveTarget>, DiskprepError> {
        let started = std::time::Instant::now();
        let drive = self.supply(index, bytes_left);
        self.supplying += started.elapsed();
        drive
    }
}

impl Drives {
    fn supply(&mut self, index: u32, bytes_left: u64) -> Result<Option<DriveTarget>, DiskprepError> {
        let failed = |e: anyhow::Error| DiskprepError::Supplier(crate::exit::describe(&e));
        let path = match self.given.next() {
            Some(path) => path,
            None if prompt::interactive() => {
                let answer = prompt::ask(
                    &format!(
                        "Drive {} is needed ({} still to copy): its path (/dev/sdX, an image file or an empty \
                         folder), or nothing to stop here and resume later",
                        index + 1,
                        crate::display::human(bytes_left)
                    ),
                    Some(""),
                    "--drive PATH",
                )
                .map_err(failed)?;
                if answer.is_empty() {
                    return Ok(None);
                }
                PathBuf::from(answer)
            }
            None => return Ok(None),
        };
        let described = describe_target(&path);
        if !self.quiet {
            eprintln!("drive {}: {}", index + 1, shown(&path, &described));
        }
        if !described.is_empty
            && !prompt::confirm(&format!("Everything on {} will be erased.", path.display()), self.yes)
                .map_err(failed)?
        {
            return Err(DiskprepError::NotConfirmed { path });
        }
        DriveTarget::open_or_create(&path, self.size).map(Some).map_err(|e| DiskprepError::Supplier(e.to_string()))
    }
}

/// What is on a target drive, in a line, before asking to format it.
fn shown(path: &Path, target: &TargetDescription) -> String {
    let kind = match target.kind {
        TargetKind::Device => "block device",
        TargetKind::Image => "image file",
        TargetKind::Folder => "folder",
    };
    let size = target.size.map(|s| format!(" ({})", crate::display::human(s))).unwrap_or_default();
    let holds = match (&target.holds_offsite_drive, target.exists, target.is_empty) {
        (Some(drive), _, _) => format!("holds offsite drive {} of import job {}", drive.index + 1, drive.import_job),
        (None, false, _) => "does not exist yet: it will be created".to_string(),
        (None, true, true) => "empty".to_string(),
        (None, true, false) => "holds data".to_string(),
    };
    format!("{kind} {}{size}, {holds}", path.display())
}

/// A block size the drive format takes, refused before any drive is formatted
/// (MIN_BLOCK_SIZE is a power of two; the mask keeps the workspace's Rust 1.85).
fn parse_block_size(text: &str) -> Result<u32, String> {
    let size: u32 = text.trim().parse().map_err(|_| format!("'{text}' is not a number of bytes"))?;
    if !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&size) || size & (MIN_BLOCK_SIZE - 1) != 0 {
        return Err(format!(
            "{size} is not a multiple of {MIN_BLOCK_SIZE} between {MIN_BLOCK_SIZE} and {MAX_BLOCK_SIZE}"
        ));
    }
    Ok(size)
}

/// A byte count with an optional unit (`64MiB`, `500GiB`, `2TB`).
pub(super) fn parse_size(text: &str) -> Result<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().with_context(|| format!("'{text}' is not a size: use e.g. 64MiB or 500GiB"))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        "TiB" | "T" => 1 << 40,
        "KB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        other => bail!("'{other}' is not a size unit: use KiB, MiB, GiB, TiB (or KB, MB, GB, TB)"),
    };
    number.checked_mul(factor).with_context(|| format!("{text} is too large"))
}

#[derive(Serialize)]
struct Prepared<'a> {
    set: &'a PreparedSet,
    import_job: &'a ImportJobView,
    journal: &'a Path,
}

fn prepare(args: &DiskprepArgs, job: &Job, staging: &Path) -> Result<ExitCode> {
    // Timed from here to the import job's registration, less the time spent on
    // drives' questions: this machine's diskprep rate, for `offsite plan`.
    let started = std::time::Instant::now();
    let name = &job.marker.import_job;
    // A staging location configured before the agent checked names: refused
    // before a drive is formatted, not when the service is asked to create the job.
    if let Err(err) = offsite_seeding::import_job::check_job_name(name) {
        let home = agent_home(args);
        bail!(
            "{err}. The staging location {} was configured with it: cancel offline seeding on the source machine \
             (`{}`) and configure it again with a valid --import-job",
            staging.display(),
            home.command("agent offline cancel")
        );
    }
    if let Ok(existing) = job.client.find_import_job(name) {
        let journal = journal_path(args, name, "")?;
        if existing.file_list.is_none() && Journal::load(&journal)?.is_some() {
            // Stopped between creating the job and registering its files: finish that.
            let view = register_file_list(job, &existing, &journal, staging)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                let files = view.file_list.as_ref().map_or(0, |l| l.files);
                println!("registered the file list of import job {name} ({}) with the service.", plural(files, "file"));
            }
            return Ok(ExitCode::SUCCESS);
        }
        bail!(
            "import job {name} already exists on the service ({}): its drives are prepared. Use \
             `{}` or `--status`, or `--repair --drive PATH` for a repair drive",
            existing.state.name(),
            next_step(args, "--update-shipping")
        );
    }
    let datacenter = datacenter(args.datacenter.as_deref(), &job.client)?;
    let plan = DrivePlan {
        import_job: name.clone(),
        staging: staging.to_path_buf(),
        import_public_key: import_key(&datacenter)?,
        block_size: args.block_size,
        journal: journal_path(args, name, "")?,
    };
    if !job.machines.is_empty() && !args.json {
        println!(
            "import job {name} carries the staging locations of {} machines: {}",
            job.machines.len(),
            job.machines.join(", ")
        );
    }
    let mut drives = Drives::from_args(args)?;
    let bar = crate::progress_bar::Counter::show("diskprep", args.json);
    let progress = |p: &PrepareProgress| bar.set(p.bytes_done, p.bytes_total);
    let set = if args.resume {
        diskprep::resume(&plan.journal, &mut drives, &progress)
    } else {
        diskprep::prepare(&plan, &mut drives, &progress)
    };
    drop(bar);
    let set = match set {
        Ok(set) => set,
        Err(DiskprepError::Stopped { remaining_bytes }) => bail!(
            "stopped with {} still to copy; the journal {} keeps the drive set: run again with --resume and the \
             next --drive",
            crate::display::human(remaining_bytes),
            plan.journal.display()
        ),
        Err(err) => return Err(err.into()),
    };
    let request = CreateImportJob {
        name: name.clone(),
        storage_account: job.marker.storage_account.clone(),
        container: job.marker.container.clone(),
        datacenter: datacenter.name.clone(),
        drives: set
            .drives
            .iter()
            .map(|d| ImportJobDriveSpec {
                drive_id: d.drive_id.clone(),
                index: d.index,
                fingerprint: Some(d.fingerprint.clone()),
                data_bytes: Some(d.stream_end - d.stream_start),
            })
            .collect(),
    };
    let view = job.client.create_import_job(&job.marker.subscription_id, &request)?;
    let view = register_file_list(job, &view, &plan.journal, staging)?;
    let working = started.elapsed().saturating_sub(drives.supplying);
    let what = format!("diskprep of import job {name} ({})", plural(set.drives.len(), "drive"));
    let measurement = Measurement::new(set.bytes_written, working.as_secs_f64(), what);
    super::plan::record_rate(args.agent_home.as_deref(), MeasuredStep::Diskprep, measurement);
    let prepared: Vec<(String, String)> = set
        .drives
        .iter()
        .map(|d| {
            let details =
                format!("drive {} of {} bytes={}", d.index + 1, set.drives.len(), d.stream_end - d.stream_start);
            (d.drive_id.clone(), details)
        })
        .collect();
    job.record_custody(&view, &prepared, CustodyEventKind::Prepared);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&Prepared { set: &set, import_job: &view, journal: &plan.journal })?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("prepared {} for import job {name}:", plural(set.drives.len(), "drive"));
    for drive in &set.drives {
        println!(
            "  drive {} ({}) at {}: {} used",
            drive.index + 1,
            drive.drive_id,
            drive.path.display(),
            crate::display::human(drive.bytes_used)
        );
        println!("    recovery key: {}", drive.recovery_key);
    }
    println!("Write the recovery keys down and keep them apart from the drives: they are shown only here.");
    println!("import job {name} created on the service ({}).", view.state.name());
    if let Some(list) = &view.file_list {
        println!(
            "Its file list is registered ({}, {}): the job completes only when every file has arrived whole.",
            plural(list.files, "file"),
            crate::display::human(list.bytes)
        );
    }
    println!("Ship all drives in one package to:\n{}\n", indent(&datacenter.address));
    if !args.yes && prompt::interactive() && prompt::confirm("Enter the shipping details now?", false)? {
        return update_shipping(args, job);
    }
    println!("When the package is handed to the carrier, run `{}`.", next_step(args, "--update-shipping"));
    Ok(ExitCode::SUCCESS)
}

/// Registers the set's files with the import job: the service completes the job
/// only when its container holds every one of them whole.
fn register_file_list(job: &Job, view: &ImportJobView, journal: &Path, staging: &Path) -> Result<ImportJobView> {
    let listing = StagingListing::from_files(staging, Journal::load_listing(journal)?);
    job.client
        .put_import_file_list(&view.id, &listing.digest(), listing.file_list_text())
        .with_context(|| format!("cannot register the file list of import job {}", view.name))
}

/// `offsite diskprep` with the options that chose this machine's import job
/// (agent home, staging location, publish settings, import job, journal), then
/// `rest`: a next step that works typed as printed.
fn next_step(args: &DiskprepArgs, rest: &str) -> String {
    let home = agent_home(args);
    let mut options = String::new();
    let paths =
        [("--staging", &args.staging), ("--publish-settings", &args.publish_settings), ("--journal", &args.journal)];
    for (flag, path) in paths {
        if let Some(path) = path {
            options.push_str(&format!(" {flag} {}", shell_word(&path.display().to_string())));
        }
    }
    if let Some(job) = &args.import_job {
        options.push_str(&format!(" --import-job {}", shell_word(job)));
    }
    home.command(&format!("diskprep{options} {rest}"))
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}

fn update_shipping(args: &DiskprepArgs, job: &Job) -> Result<ExitCode> {
    let name = &job.marker.import_job;
    let view = job.client.find_import_job(name).with_context(|| {
        format!(
            "import job {name} is not on the service: prepare its drives first (`{}`)",
            next_step(args, "--drive PATH")
        )
    })?;
    let s = &args.shipping;
    let today = crate::display::when(time::OffsetDateTime::now_utc())[..10].to_string();
    let drives = view.drives.len().to_string();
    let details = ShippingDetails {
        carrier: value(&s.carrier, "Carrier (e.g. UPS, DHL)", None, "--carrier")?,
        tracking_number: value(&s.tracking_number, "Tracking number", None, "--tracking-number")?,
        drive_count: match s.drive_count {
            Some(n) => n,
            None => prompt::ask("Number of drives", Some(&drives), "--drive-count")?
                .parse()
                .context("the number of drives must be a whole number")?,
        },
        ship_date: value(&s.ship_date, "Ship date (YYYY-MM-DD)", Some(&today), "--ship-date")?,
        return_address: value(&s.return_address, "Return address", None, "--return-address")?.replace("\\n", "\n"),
        contact: value(&s.contact, "Contact (name, email or phone)", None, "--contact")?,
    };
    if !args.json {
        println!("Shipping details for import job {name}:");
        println!("  carrier:         {}", details.carrier);
        println!("  tracking number: {}", details.tracking_number);
        println!("  drives:          {}", details.drive_count);
        println!("  ship date:       {}", details.ship_date);
        println!("  return address:  {}", details.return_address.replace('\n', ", "));
        println!("  contact:         {}", details.contact);
    }
    if !prompt::confirm("Commit these shipping details?", args.yes)? {
        bail!("the shipping details were not committed (answer Yes, or pass --yes in scripts)");
    }
    // A duplicate tracking number comes back as the service's 409, which names it.
    let updated = job.client.set_import_job_shipping(&view.id, &details)?;
    let shipped = format!("carrier={} tracking={}", details.carrier, details.tracking_number);
    let drives: Vec<(String, String)> = updated.drives.iter().map(|d| (d.drive_id.clone(), shipped.clone())).collect();
    job.record_custody(&updated, &drives, CustodyEventKind::Shipped);
    let stored = journal_path(args, name, "shipping")?;
    let text = serde_json::to_string_pretty(&details)?;
    std::fs::write(&stored, text + "\n").with_context(|| format!("cannot write {}", stored.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&updated)?);
    } else {
        println!("shipping details committed; stored in {}", stored.display());
        seeding_display::print_job(&updated, Some(&next_step(args, "--update-shipping")));
    }
    Ok(ExitCode::SUCCESS)
}

fn value(given: &Option<String>, question: &str, default: Option<&str>, flag: &str) -> Result<String> {
    match given {
        Some(v) => Ok(v.clone()),
        None => prompt::ask(question, default, flag),
    }
}

fn repair(args: &DiskprepArgs, job: &Job, staging: &Path) -> Result<ExitCode> {
    let name = &job.marker.import_job;
    let view = job.client.find_import_job(name)?;
    let files = if args.files.is_empty() {
        // The service knows the set's files and which of them its container lacks.
        let missing = job.client.missing_import_files(&view.id)?;
        if missing.is_empty() {
            bail!("import job {name} lacks no file of its seed: no repair drive is needed");
        }
        missing.into_iter().map(|f| f.path).collect()
    } else {
        args.files.clone()
    };
    let datacenter = datacenter(Some(&view.datacenter.name), &job.client)?;
    let plan = DrivePlan {
        import_job: name.clone(),
        staging: staging.to_path_buf(),
        import_public_key: import_key(&datacenter)?,
        block_size: args.block_size,
        journal: journal_path(args, name, "repair")?,
    };
    let mut drives = Drives::from_args(args)?;
    let set = diskprep::repair(&plan, &files, &mut drives, &|_| {})?;
    let first_index = view.drives.iter().map(|d| d.index + 1).max().unwrap_or(0);
    let mut last = view;
    for drive in &set.drives {
        let spec = ImportJobDriveSpec {
            drive_id: drive.drive_id.clone(),
            index: first_index + drive.index,
            fingerprint: Some(drive.fingerprint.clone()),
            data_bytes: Some(drive.stream_end - drive.stream_start),
        };
        last = job.client.add_import_drive(&last.id, &spec)?;
        let details = format!("repair drive bytes={}", drive.stream_end - drive.stream_start);
        job.record_custody(&last, &[(drive.drive_id.clone(), details)], CustodyEventKind::Prepared);
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&Prepared { set: &set, import_job: &last, journal: &plan.journal })?
        );
    } else {
        println!(
            "{} for import job {name} with {}:",
            plural(set.drives.len(), "repair drive"),
            plural(files.len(), "file")
        );
        for drive in &set.drives {
            println!("  {} at {}; recovery key {}", drive.drive_id, drive.path.display(), drive.recovery_key);
        }
        println!("Ship them to:\n{}", indent(&datacenter.address));
    }
    Ok(ExitCode::SUCCESS)
}

/// `--verify-custody`: the job's custody log from the service, verified here
/// (each hash, link and signature, under the keys the log lists), with who
/// handled each drive when. On the source machine the service's copy of this
/// application's key is also checked against the key certgen left here.
fn verify_custody(args: &DiskprepArgs, job: &Job) -> Result<ExitCode> {
    let name = &job.marker.import_job;
    let view = job.client.find_import_job(name)?;
    let log = job.client.import_job_custody(&view.id)?;
    let report = offsite_seeding::custody::verify_log(&log);
    let mut key_mismatch = None;
    if let Some(signer) = &job.custody {
        let actor = signer.actor();
        if let (Some(listed), CustodySigner::Application(app)) = (log.keys.iter().find(|k| k.actor == actor), signer) {
            if listed.public_key != hex::encode(app.public_key()) {
                key_mismatch = Some(format!(
                    "the service lists another key for {actor} than the application key on this computer: the \
                     events it signed cannot be trusted"
                ));
            }
        }
    }
    let verified = seeding_display::print_custody(&format!("import job {name}"), report, key_mismatch, args.json)?;
    Ok(if verified { ExitCode::SUCCESS } else { ExitCode::from(crate::exit::CUSTODY_BROKEN) })
}
