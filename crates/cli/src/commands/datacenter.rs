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

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use serde::Serialize;

use offsite_api::files::{OperatorCredentials, StationCredentials};
use offsite_api::types::{
    ExportDrive, ExportJobState, ExportShipment, ImportDriveState, ImportJobState, ImportJobView,
};
use offsite_api::Client;
use offsite_seeding::drive::DriveKey;
use offsite_seeding::ingest::IngestProgress;
use offsite_seeding::measured::{MeasuredStep, Measurement};
use offsite_seeding::station::{Station, StationError};

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
}

/// The station over the service the credentials name, spelling its next steps
/// with those credentials. Station credentials win when both are given (an
/// operator's environment may carry OFFSITE_OPERATOR_CREDENTIALS).
fn station(args: &DatacenterArgs) -> Result<Station<Client>> {
    let (flag, path, client) = match (&args.station_credentials, &args.operator_credentials) {
        (Some(path), _) => {
            let creds = StationCredentials::read(path)?;
            ("--station-credentials", path, Client::new(&creds.endpoint(), &creds.token)?)
        }
        (None, Some(path)) => {
            let creds = OperatorCredentials::read(path)?;
            ("--operator-credentials", path, Client::new(&creds.endpoint(), &creds.token)?)
        }
        (None, None) => bail!(
            "the ingest station needs the datacenter's station credentials: pass --station-credentials FILE or set \
             OFFSITE_STATION_CREDENTIALS (the operator makes the file with `offsite admin datacenter \
             station-credential issue DATACENTER --output FILE`)"
        ),
    };
    // The next steps the station names carry the credentials file it was given.
    let credentials = offsite_agent::home::shell_word(&path.display().to_string());
    Ok(Station::new(client).with_commands(move |rest| format!("offsite datacenter {flag} {credentials} {rest}")))
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
    let station = station(&args)?;
    match &args.command {
        DatacenterCommand::Receive { job, note } => {
            show(args.json, &station.receive(job, note.clone()).map_err(reported)?)?
        }
        DatacenterCommand::Package { job } => show(args.json, &station.package(job).map_err(reported)?)?,
        DatacenterCommand::Status { job } => show(args.json, &station.status(job).map_err(reported)?)?,
        DatacenterCommand::Ingest { drive, import_key } => return ingest_command(&args, &station, drive, import_key),
        DatacenterCommand::Export { job, drives, drive_size, spool, yes } => {
            let size = drive_size.as_deref().map(super::diskprep::parse_size).transpose()?;
            let drives = super::diskprep::Drives::new(drives.clone(), size, *yes, args.json);
            export_command(&args, &station, job, drives, spool)?
        }
        DatacenterCommand::ShipExport { job, carrier, tracking_number } => {
            let client = station.service();
            let found = client.export_job(job)?;
            let shipment = ExportShipment { carrier: carrier.clone(), tracking_number: tracking_number.clone() };
            let view = client.ship_export(&found.id, &shipment)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                println!("export job {} is shipping: {carrier} {tracking_number}", view.name);
            }
        }
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
        diskprep::prepare_export(&plan, &PrepareOptions::default(), &mut drives, &progress)
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
