//! `offsite datacenter …`: the ingest station, run by the datacenter's operator
//! with the datacenter's station credentials (`offsite admin datacenter
//! station-credential issue`), which ingest that datacenter's jobs and nothing else.
//! It records a package's arrival, unlocks each drive with the datacenter's import
//! key, verifies every block against the manifest, streams the files into the
//! customer's storage account container through the service, writes an error and a
//! verbose log per drive into the container, and moves drive and job states on.
//! The rules are [`offsite_seeding::station`]'s; this is the conversation with the
//! operator: arguments, progress, what is printed and the exit code.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;

use offsite_api::files::{OperatorCredentials, StationCredentials};
use offsite_api::types::{
    CustodyEventKind, ExportDrive, ExportJobState, ExportShipment, ImportDriveState, ImportJobState, ImportJobView,
};
use offsite_api::Client;
use offsite_seeding::custody::{CustodySigner, Recorder, StationKey};
use offsite_seeding::drive::DriveKey;
use offsite_seeding::ingest::IngestProgress;
use offsite_seeding::measured::{MeasuredStep, Measurement};
use offsite_seeding::station::{Station, StationError};
use offsite_seeding::wipe::{WipeMethod, Wiped};

use crate::display::plural;
use crate::exit::DRIVE_PROBLEM;
use crate::seeding_display;

#[derive(Args)]
pub struct DatacenterArgs {
    /// The datacenter's station credentials file (`offsite admin datacenter
    /// station-credential issue` writes it).
    #[arg(long, global = true, env = "OFFSITE_STATION_CREDENTIALS", value_name = "FILE")]
    station_credentials: Option<PathBuf>,
    /// The operator credentials file instead (the server writes
    /// DATA_DIR/operator.credentials); a station needs only its station credentials.
    #[arg(long, global = true, env = "OFFSITE_OPERATOR_CREDENTIALS", value_name = "FILE")]
    operator_credentials: Option<PathBuf>,
    /// Print results as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: DatacenterCommand,
}

#[derive(Subcommand)]
enum DatacenterCommand {
    /// Record the arrival of an import job's package.
    Receive {
        #[arg(long)]
        job: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Unlock, verify and upload one drive into its job's storage container.
    Ingest {
        /// The drive: a block device, an image file, or a folder holding offsite-drive.img.
        #[arg(long)]
        drive: PathBuf,
        /// The datacenter's import secret key (written by `offsite admin datacenter add --import-key-out`).
        #[arg(long, env = "OFFSITE_IMPORT_KEY")]
        import_key: PathBuf,
    },
    /// Assemble an import job's ingested parts into its files, once every drive is
    /// done (ingest does it after the last drive; this finishes a job whose
    /// packaging failed there).
    Package {
        #[arg(long)]
        job: String,
    },
    /// An import job's drives and timeline.
    Status {
        #[arg(long)]
        job: String,
    },
    /// Write an export job's drives: fetch the files it carries through the service
    /// into a spool folder, write them onto drives as diskprep does (each drive's
    /// key wrapped to the customer's export key), record the drives with the job,
    /// then remove the spool. Run it again to resume.
    Export {
        /// The export job's name.
        #[arg(long)]
        job: String,
        /// A drive to write (repeat for more): a block device, an image file, or an
        /// empty folder; asked for at a terminal when more are needed.
        #[arg(long = "drive", value_name = "PATH")]
        drives: Vec<PathBuf>,
        /// The size of image files created for drives (e.g. 2TB, 64MiB).
        #[arg(long)]
        drive_size: Option<String>,
        /// The station's work folder; the job's spool and journal live in
        /// SPOOL/<job> until its drives are recorded.
        #[arg(long, default_value = "offsite-export-spool")]
        spool: PathBuf,
        /// Format drives that hold data without asking.
        #[arg(long)]
        yes: bool,
    },
    /// An export job's drives leave with the return shipment.
    ShipExport {
        #[arg(long)]
        job: String,
        #[arg(long)]
        carrier: String,
        #[arg(long)]
        tracking_number: String,
    },
    /// Erase a drive the datacenter is done with (or record its destruction),
    /// and sign the method into the job's chain of custody.
    Wipe {
        /// The drive: a block device, an image file, or a folder holding
        /// offsite-drive.img (its header names the job and the drive).
        #[arg(long)]
        drive: Option<PathBuf>,
        /// The import job, for a drive that cannot be read (`--method destroyed`).
        #[arg(long)]
        job: Option<String>,
        /// The drive's id, for a drive that cannot be read.
        #[arg(long)]
        drive_id: Option<String>,
        /// crypto-erase (the header region with both key slots: seconds),
        /// overwrite (every byte) or destroyed (nothing written: it was shredded).
        #[arg(long, value_parser = ["crypto-erase", "overwrite", "destroyed"])]
        method: String,
        /// Erase without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Record that drives were sent back to the customer, in the job's chain of custody.
    Return {
        #[arg(long)]
        job: String,
        /// The drive ids sent back [default: every drive of the job].
        #[arg(long = "drive-id")]
        drive_ids: Vec<String>,
        #[arg(long)]
        carrier: Option<String>,
        #[arg(long)]
        tracking_number: Option<String>,
    },
}

/// The station over the service the credentials name, spelling its next steps
/// with those credentials. Station credentials win when both are given (an
/// operator's environment may carry OFFSITE_OPERATOR_CREDENTIALS).
fn station(args: &DatacenterArgs) -> Result<(Station<Client>, Option<CustodySigner>)> {
    let (flag, path, client, signer) = match (&args.station_credentials, &args.operator_credentials) {
        (Some(path), _) => {
            let creds = StationCredentials::read(path)?;
            let signer = match &creds.signing_key {
                Some(key) => {
                    let key = StationKey::from_hex(key).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                    let credential_id = creds.token.split('.').next().unwrap_or_default();
                    Some(key.signer(credential_id))
                }
                None => None,
            };
            ("--station-credentials", path, Client::new(&creds.endpoint(), &creds.token)?, signer)
        }
        (None, Some(path)) => {
            let creds = OperatorCredentials::read(path)?;
            ("--operator-credentials", path, Client::new(&creds.endpoint(), &creds.token)?, None)
        }
        (None, None) => bail!(
            "the ingest station needs the datacenter's station credentials: pass --station-credentials FILE or set \
             OFFSITE_STATION_CREDENTIALS (the operator makes the file with `offsite admin datacenter \
             station-credential issue DATACENTER --output FILE`)"
        ),
    };
    // The next steps the station names carry the credentials file it was given.
    let credentials = offsite_agent::home::shell_word(&path.display().to_string());
    let station =
        Station::new(client).with_commands(move |rest| format!("offsite datacenter {flag} {credentials} {rest}"));
    Ok((station, signer))
}

/// Signs events into import jobs' custody logs as this station, when its
/// credentials carry a signing key; says once why not otherwise.
struct Custody {
    signer: Option<CustodySigner>,
    json: bool,
}

impl Custody {
    fn record(&self, client: &Client, job: &ImportJobView, drive_id: &str, kind: CustodyEventKind, details: &str) {
        let Some(signer) = &self.signer else { return };
        self.sign(Recorder::new(client, signer, &job.id), signer, drive_id, kind, details);
    }

    /// [`Self::record`] in an export job's log.
    fn record_export(&self, client: &Client, job_id: &str, drive_id: &str, kind: CustodyEventKind, details: &str) {
        let Some(signer) = &self.signer else { return };
        self.sign(Recorder::export(client, signer, job_id), signer, drive_id, kind, details);
    }

    fn sign(
        &self,
        recorder: Recorder<'_, Client>,
        signer: &CustodySigner,
        drive_id: &str,
        kind: CustodyEventKind,
        details: &str,
    ) {
        if let Err(err) = recorder.record(Some(drive_id), kind, details) {
            eprintln!(
                "offsite: warning: the custody event '{}' of drive {drive_id} was not recorded: {err}",
                kind.name()
            );
        } else if !self.json {
            println!("custody: drive {drive_id} {} (signed by {})", kind.name(), signer.actor());
        }
    }

    fn warn_unsigned(&self) {
        if self.signer.is_none() {
            eprintln!(
                "offsite: note: these credentials hold no custody signing key, so no custody event is recorded: \
                 run stations with station credentials issued by `offsite admin datacenter station-credential \
                 issue`"
            );
        }
    }
}

fn show(json: bool, view: &ImportJobView) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(view)?);
    } else {
        seeding_display::print_job(view, None);
    }
    Ok(())
}

pub fn run(args: DatacenterArgs) -> Result<ExitCode> {
    let (station, signer) = station(&args)?;
    let custody = Custody { signer, json: args.json };
    match &args.command {
        DatacenterCommand::Receive { job, note } => {
            let view = station.receive(job, note.clone()).map_err(reported)?;
            custody.warn_unsigned();
            let details = view.shipping.as_ref().map(|s| format!("tracking={}", s.tracking_number)).unwrap_or_default();
            for drive in &view.drives {
                custody.record(station.service(), &view, &drive.drive_id, CustodyEventKind::Received, &details);
            }
            show(args.json, &view)?
        }
        DatacenterCommand::Package { job } => show(args.json, &station.package(job).map_err(reported)?)?,
        DatacenterCommand::Status { job } => show(args.json, &station.status(job).map_err(reported)?)?,
        DatacenterCommand::Ingest { drive, import_key } => {
            return ingest_command(&args, &station, &custody, drive, import_key)
        }
        DatacenterCommand::Export { job, drives, drive_size, spool, yes } => {
            let size = drive_size.as_deref().map(super::diskprep::parse_size).transpose()?;
            let drives = super::diskprep::Drives::new(drives.clone(), size, *yes, args.json);
            export_command(&args, &station, &custody, job, drives, spool)?
        }
        DatacenterCommand::ShipExport { job, carrier, tracking_number } => {
            let client = station.service();
            let found = client.export_job(job)?;
            let shipment = ExportShipment { carrier: carrier.clone(), tracking_number: tracking_number.clone() };
            let view = client.ship_export(&found.id, &shipment)?;
            let details = format!("carrier={carrier} tracking={tracking_number}");
            for drive in &view.drives {
                custody.record_export(client, &view.id, &drive.drive_id, CustodyEventKind::Shipped, &details);
            }
            if args.json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                println!("export job {} is shipping: {carrier} {tracking_number}", view.name);
            }
        }
        DatacenterCommand::Wipe { drive, job, drive_id, method, yes } => {
            return wipe_command(&args, &station, &custody, drive.as_deref(), job, drive_id, method, *yes)
        }
        DatacenterCommand::Return { job, drive_ids, carrier, tracking_number } => {
            let Some(_) = &custody.signer else {
                custody.warn_unsigned();
                bail!("returning drives is recorded in the job's chain of custody, which needs a signing key");
            };
            let view = station.status(job).map_err(reported)?;
            let ids: Vec<String> = if drive_ids.is_empty() {
                view.drives.iter().map(|d| d.drive_id.clone()).collect()
            } else {
                drive_ids.iter().map(|d| d.to_ascii_lowercase()).collect()
            };
            let mut details = Vec::new();
            if let Some(carrier) = carrier {
                details.push(format!("carrier={carrier}"));
            }
            if let Some(tracking) = tracking_number {
                details.push(format!("tracking={tracking}"));
            }
            for id in &ids {
                if !view.drives.iter().any(|d| &d.drive_id == id) {
                    bail!("drive {id} is not one of import job {}'s drives", view.name);
                }
                custody.record(station.service(), &view, id, CustodyEventKind::Returned, &details.join(" "));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct WipedDrive {
    import_job: String,
    drive_id: String,
    #[serde(flatten)]
    wiped: Wiped,
}

/// `offsite datacenter wipe`: the drive must be one of its job's (the header
/// diskprep registered) and done with; it is erased, the header read again to
/// see it gone, and the method signed into the job's chain of custody.
#[allow(clippy::too_many_arguments)]
fn wipe_command(
    args: &DatacenterArgs,
    station: &Station<Client>,
    custody: &Custody,
    drive: Option<&Path>,
    job: &Option<String>,
    drive_id: &Option<String>,
    method: &str,
    yes: bool,
) -> Result<ExitCode> {
    let method = WipeMethod::parse(method).context("the method is crypto-erase, overwrite or destroyed")?;
    if custody.signer.is_none() {
        custody.warn_unsigned();
        bail!("a wipe is recorded in the job's chain of custody, which needs the station's signing key");
    }
    // Which drive: its header says, or the flags for one that cannot be read.
    let peeked = drive.map(offsite_seeding::drive::peek_header_unauthenticated);
    // A drive whose header cannot be read is not erased: nothing says it is the
    // job's (it may be wiped already). Its destruction can still be recorded.
    if let (Some(Err(err)), true) = (&peeked, method != WipeMethod::Destroyed) {
        bail!(
            "{}: {err}. Only a drive whose header names its job is erased (it may be wiped already); a drive that \
             cannot be read is recorded as destroyed once it is: --method destroyed --job NAME --drive-id ID",
            drive.map(|p| p.display().to_string()).unwrap_or_default()
        );
    }
    let (job_name, id, fingerprint) = match (&peeked, job, drive_id) {
        (Some(Ok(peek)), _, _) => (peek.import_job.clone(), hex::encode(peek.drive_id), Some(hex::encode(peek.fingerprint))),
        (_, Some(job), Some(id)) => (job.clone(), id.to_ascii_lowercase(), None),
        (Some(Err(err)), _, _) => bail!(
            "{}: {err}. A drive that cannot be read is named with --job NAME --drive-id ID (and --method destroyed              once it is destroyed)",
            drive.map(|p| p.display().to_string()).unwrap_or_default()
        ),
        (None, _, _) => bail!("name the drive: --drive PATH, or --job NAME --drive-id ID"),
    };
    if let (Some(given), Some(_)) = (drive_id, &fingerprint) {
        if given.to_ascii_lowercase() != id {
            bail!("the drive at the path is drive {id}, not {given}");
        }
    }
    let view = station.status(&job_name).map_err(reported)?;
    let registered =
        view.drives.iter().find(|d| d.drive_id == id).with_context(|| {
            format!("drive {id} is not one of import job {job_name}'s drives: it is not ours to wipe")
        })?;
    if let (Some(found), Some(expected)) = (&fingerprint, &registered.fingerprint) {
        if found != expected {
            bail!(
                "the drive at the path claims to be drive {id} of import job {job_name}, but its header is not the                  one diskprep registered: it is not that drive"
            );
        }
    }
    if !registered.state.is_done() && !matches!(view.state, ImportJobState::Closed) {
        bail!(
            "drive {id} of import job {job_name} is {}: it is not ingested yet, and wiping it would lose the seed",
            registered.state.name()
        );
    }
    let path = drive.filter(|_| method != WipeMethod::Destroyed);
    if let Some(path) = path {
        let question =
            format!("Everything on {} (drive {id} of import job {job_name}) will be erased.", path.display());
        if !crate::prompt::confirm(&question, yes)? {
            bail!("the drive was not wiped (answer Yes, or pass --yes in scripts)");
        }
    }
    let wiped = offsite_seeding::wipe::wipe(path, method)?;
    let kind = if method == WipeMethod::Destroyed { CustodyEventKind::Destroyed } else { CustodyEventKind::Wiped };
    let signer = custody.signer.as_ref().expect("checked above");
    let event = Recorder::new(station.service(), signer, &view.id).record(Some(&id), kind, &wiped.details())?;
    let out = WipedDrive { import_job: job_name.clone(), drive_id: id.clone(), wiped };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "drive {id} of import job {job_name}: {} ({}); custody event {} signed by {}",
            kind.name(),
            out.wiped.details(),
            event.seq,
            event.actor
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A station's error as the binary reports it: the service's own error where
/// there is one, so that its exit code (unreachable, refused credential) holds.
fn reported(err: StationError) -> anyhow::Error {
    let message = err.to_string();
    match err {
        StationError::Service(err) => err.into(),
        StationError::Packaging { error, .. } => anyhow::Error::new(error).context(message),
        err => err.into(),
    }
}

#[derive(Serialize)]
struct Ingested {
    import_job: String,
    drive_id: String,
    drive_state: ImportDriveState,
    job_state: ImportJobState,
    bytes_delivered: u64,
    parts_delivered: usize,
    /// What an earlier, interrupted ingest of this drive stored: not sent again.
    bytes_already_stored: u64,
    parts_already_stored: usize,
    bad_blocks: usize,
    files_needing_repair: Vec<String>,
    /// Why the job did not complete after the last drive (the files its container
    /// still lacks), as its timeline says.
    #[serde(skip_serializing_if = "Option::is_none")]
    job_note: Option<String>,
}

fn ingest_command(
    args: &DatacenterArgs,
    station: &Station<Client>,
    custody: &Custody,
    drive: &Path,
    import_key: &Path,
) -> Result<ExitCode> {
    let refused = |err: StationError| -> Result<ExitCode> {
        match err {
            StationError::Refused(refusal) => {
                eprintln!("offsite: {refusal}");
                Ok(ExitCode::from(DRIVE_PROBLEM))
            }
            err => Err(reported(err)),
        }
    };
    // Timed from here (admission, unlocking, reading, uploading, packaging after the
    // last drive): this station's ingest rate, for `offsite plan` on this machine.
    let started = std::time::Instant::now();
    let admitted = match station.admit(drive) {
        Ok(admitted) => admitted,
        Err(err) => return refused(err),
    };
    // The key is read once the drive is known to be one to ingest.
    let secret = offsite_api::import_key::read_import_secret(import_key)?;
    let key = DriveKey::Import(x25519_dalek::StaticSecret::from(secret));
    // The bar appears when the drive's reading starts, and goes when it is over.
    let bar = OnceLock::new();
    let progress = |p: &IngestProgress| {
        bar.get_or_init(|| crate::progress_bar::Counter::show("ingest", args.json)).set(p.bytes_done, p.bytes_total)
    };
    let job = admitted.job().name.clone();
    let outcome = station.ingest_admitted(admitted, &key, &progress);
    let seconds = started.elapsed().as_secs_f64();
    drop(bar);
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(err) => return refused(err),
    };
    let report = &outcome.report;
    if outcome.is_clean() {
        // This station's ingest rate, for `offsite plan` on this machine.
        let what = format!("ingest of a drive of import job {job}");
        let measurement = Measurement::new(report.bytes_delivered, seconds, what);
        super::plan::record_rate(None, MeasuredStep::Ingest, measurement);
    }
    let drive_id = &outcome.drive_id;
    let out = Ingested {
        import_job: job.clone(),
        drive_id: drive_id.clone(),
        drive_state: outcome.drive_state,
        job_state: outcome.job.state,
        bytes_delivered: report.bytes_delivered,
        parts_delivered: report.parts_delivered,
        bytes_already_stored: report.bytes_already_stored,
        parts_already_stored: report.parts_already_stored,
        bad_blocks: report.bad_blocks.len(),
        files_needing_repair: report.files_needing_repair.clone(),
        job_note: outcome.job_note.clone(),
    };
    let clean = outcome.is_clean();
    custody.warn_unsigned();
    let details = format!(
        "state={} parts={} bytes={} bad_blocks={} files_needing_repair={}",
        enum_name(&outcome.drive_state),
        report.parts_delivered + report.parts_already_stored,
        report.bytes_delivered + report.bytes_already_stored,
        report.bad_blocks.len(),
        report.files_needing_repair.len()
    );
    custody.record(station.service(), &outcome.job, drive_id, CustodyEventKind::Ingested, &details);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "drive {drive_id} of import job {job}: {} in {} delivered; drive {:?}, job {}",
            crate::display::human(report.bytes_delivered),
            plural(report.parts_delivered, "file part"),
            outcome.drive_state,
            outcome.job.state.name()
        );
        if report.parts_already_stored > 0 {
            println!(
                "{} in {} {} stored by an earlier run and not sent again",
                crate::display::human(report.bytes_already_stored),
                plural(report.parts_already_stored, "file part"),
                if report.parts_already_stored == 1 { "was" } else { "were" }
            );
        }
        if !clean {
            print!("{}", report.error_log);
        }
        if let Some(note) = &out.job_note {
            println!("import job {job} is not complete: {note}");
        }
    }
    Ok(if clean { ExitCode::SUCCESS } else { ExitCode::from(DRIVE_PROBLEM) })
}

#[derive(Serialize)]
struct Exported {
    export_job: String,
    files_fetched: usize,
    files_kept: usize,
    drives: Vec<ExportDrive>,
}

/// `datacenter export`: spool, write, record, forget.
fn export_command(
    args: &DatacenterArgs,
    station: &Station<Client>,
    custody: &Custody,
    name: &str,
    mut drives: super::diskprep::Drives,
    spool_root: &Path,
) -> Result<()> {
    use offsite_seeding::diskprep::{self, DrivePlan, PrepareOptions, PrepareProgress};
    use offsite_seeding::export;

    let client = station.service();
    let job = client.export_job(name)?;
    if !matches!(job.state, ExportJobState::Requested | ExportJobState::Preparing) {
        bail!("export job {name} is {}: its drives are written while it is requested or preparing", job.state);
    }
    let job = client.begin_export(&job.id)?;
    let work = spool_root.join(&job.name);
    let files_root = work.join("files");
    let journal = work.join("journal.json");
    let files = client.export_files(&job.id)?;
    let total: u64 = files.iter().map(|f| f.size).sum();
    let bar = crate::progress_bar::Counter::show("fetch", args.json);
    let fetch = |file: &offsite_api::types::ExportFile, out: &mut std::fs::File| -> Result<(), String> {
        let mut response = client.export_file(&job.id, &file.machine_id, &file.path).map_err(|e| e.to_string())?;
        response.copy_to(out).map(|_| ()).map_err(|e| e.to_string())
    };
    let spooled = export::spool(&files_root, &files, &fetch, &|done| bar.set(done, total))?;
    drop(bar);
    // The customer's export key; without one, a key no one keeps (the recovery
    // keys open the drives).
    let public = match &job.export_public_key {
        Some(hex_key) => {
            let bytes = hex::decode(hex_key).ok().and_then(|b| <[u8; 32]>::try_from(b).ok());
            bytes.ok_or_else(|| anyhow::anyhow!("export job {name} has an export key that is not 64 hex digits"))?
        }
        None => export::new_export_key().1,
    };
    let plan = DrivePlan {
        import_job: job.name.clone(),
        staging: files_root.clone(),
        import_public_key: public,
        block_size: offsite_seeding::drive::DEFAULT_BLOCK_SIZE,
        journal: journal.clone(),
    };
    let bar = crate::progress_bar::Counter::show("write", args.json);
    let progress = |p: &PrepareProgress| bar.set(p.bytes_done, p.bytes_total);
    let unfinished = journal.exists()
        && offsite_seeding::diskprep::journal::Journal::load(&journal).ok().flatten().is_some_and(|j| !j.finished);
    let set = if unfinished {
        diskprep::resume_with(&journal, &PrepareOptions::default(), &mut drives, &progress)
    } else {
        diskprep::prepare_with(&plan, &PrepareOptions::default(), &mut drives, &progress)
    };
    let set = match set {
        Ok(set) => set,
        Err(diskprep::DiskprepError::Stopped { remaining_bytes }) => bail!(
            "stopped with {} still to write; the drives written so far and the spool are kept: run this command \
             again with the next --drive to go on",
            crate::display::human(remaining_bytes)
        ),
        Err(other) => return Err(other.into()),
    };
    drop(bar);
    let mut recorded = Vec::new();
    for drive in &set.drives {
        let record = ExportDrive {
            drive_id: drive.drive_id.clone(),
            index: drive.index,
            fingerprint: drive.fingerprint.clone(),
            bytes: drive.bytes_used,
            recovery_key: Some(drive.recovery_key.clone()),
        };
        client.add_export_drive(&job.id, &record)?;
        recorded.push(ExportDrive { recovery_key: None, ..record });
    }
    custody.warn_unsigned();
    for drive in &recorded {
        let details = format!("drive {} of {} bytes={}", drive.index + 1, recorded.len(), drive.bytes);
        custody.record_export(client, &job.id, &drive.drive_id, CustodyEventKind::Written, &details);
    }
    // The journal holds the recovery keys: with it gone the station cannot open the drives.
    export::remove_spool(&work)?;
    let out = Exported {
        export_job: job.name.clone(),
        files_fetched: spooled.fetched,
        files_kept: spooled.kept,
        drives: recorded,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "export job {}: {} in {} written onto {}; recovery keys are with the customer only",
            job.name,
            crate::display::human(set.total_bytes),
            plural(files.len(), "file"),
            plural(set.drives.len(), "drive")
        );
        let credentials = match (&args.station_credentials, &args.operator_credentials) {
            (Some(path), _) => {
                format!("--station-credentials {}", offsite_agent::home::shell_word(&path.display().to_string()))
            }
            (None, Some(path)) => {
                format!("--operator-credentials {}", offsite_agent::home::shell_word(&path.display().to_string()))
            }
            (None, None) => String::new(),
        };
        println!(
            "next: offsite datacenter {credentials} ship-export --job {} --carrier CARRIER --tracking-number NUMBER",
            job.name
        );
    }
    Ok(())
}

/// An enum's wire spelling (`completed_more_info`).
fn enum_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}
