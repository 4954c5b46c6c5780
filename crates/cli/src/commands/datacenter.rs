//! `offsite datacenter …`: the ingest station, run by the datacenter's operator.
//! It records a package's arrival, unlocks each drive with the datacenter's import
//! key, verifies every block against the manifest, streams the files into the
//! customer's storage account container through the service, writes an error and a
//! verbose log per drive into the container, and moves drive and job states on.
//! Several stations may ingest drives of one service at once: all state lives on
//! the service, and a drive's files are stored idempotently.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use backon::BlockingRetryable;
use clap::{Args, Subcommand};
use serde::Serialize;

use offsite_api::files::OperatorCredentials;
use offsite_api::types::{DriveStateUpdate, ImportDriveState, ImportJobNote, ImportJobState, ImportJobView};
use offsite_api::Client;
use offsite_seeding::admission::{self, RegisteredDrive, RegisteredJob};
use offsite_seeding::drive::{peek_header_unauthenticated, DriveError, DriveKey};
use offsite_seeding::ingest::{self, IngestProgress, IngestReport, PartBody, PartToUpload, PartUploader, UploadError};

use crate::display::plural;
use crate::exit::DRIVE_PROBLEM;
use crate::seeding_display;

#[derive(Args)]
pub struct DatacenterArgs {
    /// The operator credentials file (the server writes DATA_DIR/operator.credentials).
    #[arg(long, global = true, env = "OFFSITE_OPERATOR_CREDENTIALS")]
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
}

fn client(args: &DatacenterArgs) -> Result<Client> {
    let Some(path) = &args.operator_credentials else {
        bail!(
            "the ingest station needs the operator credentials: pass --operator-credentials FILE or set \
             OFFSITE_OPERATOR_CREDENTIALS"
        );
    };
    let creds = OperatorCredentials::read(path)?;
    Ok(Client::new(&creds.endpoint(), &creds.token)?)
}

/// `offsite datacenter [--operator-credentials FILE] REST`: a next step for this
/// station, with the credentials file it was given.
fn station_command(args: &DatacenterArgs, rest: &str) -> String {
    match &args.operator_credentials {
        Some(path) => format!(
            "offsite datacenter --operator-credentials {} {rest}",
            offsite_agent::home::shell_word(&path.display().to_string())
        ),
        None => format!("offsite datacenter {rest}"),
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
    let client = client(&args)?;
    match &args.command {
        DatacenterCommand::Receive { job, note } => {
            let view = client.find_import_job(job)?;
            let view = client.receive_import_job(&view.id, &ImportJobNote { message: note.clone() })?;
            show(args.json, &view)?;
        }
        DatacenterCommand::Package { job } => {
            let view = client.find_import_job(job)?;
            let view = retrying(|| client.package_import_job(&view.id, &ImportJobNote::default()))?;
            show(args.json, &view)?;
        }
        DatacenterCommand::Status { job } => show(args.json, &client.find_import_job(job)?)?,
        DatacenterCommand::Ingest { drive, import_key } => return ingest_command(&args, &client, drive, import_key),
    }
    Ok(ExitCode::SUCCESS)
}

/// Calls the service, trying again after the station's waits while it fails for
/// a passing reason (unreachable, overloaded, its storage failing): a station
/// that has read a whole drive should not stop for a blink of the network.
fn retrying<T>(call: impl FnMut() -> offsite_api::client::ApiResult<T>) -> offsite_api::client::ApiResult<T> {
    call.retry(ingest::STATION_RETRY)
        .sleep(std::thread::sleep)
        .when(|err| err.is_transient())
        .notify(|err, wait| {
            tracing::warn!(error = %err, "the service failed for a passing reason; trying again in {wait:?}")
        })
        .call()
}

/// Uploads each file part of a drive through the service, streaming.
struct ServiceUploader {
    client: Client,
    job_id: String,
    drive_id: String,
    /// What the job's container held when the station started: whole files
    /// (path → size) and parts awaiting packaging (path, offset, length).
    whole_files: HashMap<String, u64>,
    stored_parts: HashSet<(String, u64, u64)>,
}

impl ServiceUploader {
    /// Lists what the job's container holds, so that a drive whose ingest was
    /// stopped half-way sends only what did not land.
    fn new(client: &Client, job_id: &str, drive_id: &str) -> Result<ServiceUploader> {
        let whole_files = client.import_files(job_id)?.into_iter().map(|f| (f.path, f.size)).collect();
        let stored_parts = client.import_parts(job_id)?.into_iter().map(|p| (p.path, p.offset, p.length)).collect();
        Ok(ServiceUploader {
            client: client.clone(),
            job_id: job_id.to_string(),
            drive_id: drive_id.to_string(),
            whole_files,
            stored_parts,
        })
    }
}

impl PartUploader for ServiceUploader {
    fn upload(&self, part: &PartToUpload, body: PartBody) -> Result<(), UploadError> {
        self.client
            .put_import_file(
                &self.job_id,
                &self.drive_id,
                &part.path,
                part.offset_in_file,
                part.file_size,
                body,
                part.length,
            )
            .map_err(|e| match e.is_transient() {
                true => UploadError::Transient(e.to_string()),
                false => UploadError::Permanent(e.to_string()),
            })
    }

    fn is_stored(&self, part: &PartToUpload) -> bool {
        // Whole files are stored only once complete (and hash-checked when named
        // by their hash); parts likewise, so what is listed is whole.
        self.whole_files.get(&part.path) == Some(&part.file_size)
            || self.stored_parts.contains(&(part.path.clone(), part.offset_in_file, part.length))
    }
}

/// What keeps a job whose drives are all done from completing: the last note of
/// its timeline (packaging names the files its container lacks).
fn waiting_note(job: &ImportJobView) -> Option<String> {
    if job.state != ImportJobState::Packaging || !all_drives_done(job) {
        return None;
    }
    job.timeline.iter().rev().find(|e| e.drive_id.is_none()).and_then(|e| e.message.clone())
}

fn all_drives_done(job: &ImportJobView) -> bool {
    job.drives.iter().all(|d| d.state.is_done())
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

fn ingest_command(args: &DatacenterArgs, client: &Client, drive: &Path, import_key: &Path) -> Result<ExitCode> {
    let refuse = |message: String| -> Result<ExitCode> {
        eprintln!("offsite: {message}");
        Ok(ExitCode::from(DRIVE_PROBLEM))
    };
    // Unauthenticated: only used to find the job; trusted after the key opens the drive.
    let peek = match peek_header_unauthenticated(drive) {
        Ok(peek) => peek,
        Err(err) => return refuse(format!("{}: {err}. Set the drive aside to return it", drive.display())),
    };
    let drive_id = hex::encode(peek.drive_id);
    let job = match client.find_import_job(&peek.import_job) {
        Ok(job) => job,
        Err(err) if err.status() == Some(404) => {
            return refuse(format!(
                "drive {drive_id} claims import job '{}', which this service does not know: it belongs to no job \
                 here. Set it aside to ship it back",
                peek.import_job
            ))
        }
        Err(err) => return Err(err.into()),
    };
    // The drive must be one of the job's, with the header diskprep registered, not
    // ingested already (another job's drive, an old set's, a replay).
    let registered = RegisteredJob {
        name: job.name.clone(),
        drives: job
            .drives
            .iter()
            .map(|d| RegisteredDrive {
                drive_id: d.drive_id.clone(),
                fingerprint: d.fingerprint.clone(),
                done: d.state.is_done().then(|| d.state.name().to_string()),
            })
            .collect(),
    };
    let admitted = match admission::check(drive, peek, &registered) {
        Ok(admitted) => admitted,
        Err(err @ admission::AdmissionError::AlreadyIngested { .. })
            if all_drives_done(&job)
                && matches!(job.state, ImportJobState::Transferring | ImportJobState::Packaging) =>
        {
            return refuse(format!(
                "{err}. Every drive of import job {} is done but the job is {}: `{}` assembles its files, or names \
                 what a repair drive must bring",
                job.name,
                job.state.name(),
                station_command(args, &format!("package --job {}", job.name))
            ))
        }
        Err(err) => return refuse(err.to_string()),
    };
    let Some(listed) = job.drives.iter().find(|d| d.drive_id == admitted.drive_id()) else {
        bail!("drive {drive_id} was admitted but is not listed in import job {}", job.name);
    };
    if matches!(job.state, ImportJobState::Creating | ImportJobState::Shipping) {
        return refuse(format!(
            "import job {} is {}: its package was not received, so drive {drive_id} is not ingested. Record the \
             package's arrival first (`{}`), then ingest the drive again",
            job.name,
            job.state.name(),
            station_command(args, &format!("receive --job {}", job.name))
        ));
    }
    let secret = offsite_api::import_key::read_import_secret(import_key)?;
    let key = DriveKey::Import(x25519_dalek::StaticSecret::from(secret));
    let set_state = |state: ImportDriveState, message: Option<String>| {
        let update = DriveStateUpdate { state, message };
        match retrying(|| client.set_import_drive_state(&job.id, &drive_id, &update)) {
            // A retried change whose first try landed (its answer was lost): the
            // drive is in that state already, which is what was asked.
            Err(err) if err.status() == Some(409) => {
                let view = client.import_job(&job.id)?;
                match view.drives.iter().any(|d| d.drive_id == drive_id && d.state == state) {
                    true => Ok(view),
                    false => Err(err),
                }
            }
            other => other,
        }
    };
    let put_log = |kind: &str, text: &str| retrying(|| client.put_drive_log(&job.id, &drive_id, kind, text));
    let start_transfer = || -> Result<()> {
        if listed.state == ImportDriveState::Specified {
            set_state(ImportDriveState::Received, None)?;
        }
        if listed.state != ImportDriveState::Transferring {
            set_state(ImportDriveState::Transferring, None)?;
        }
        Ok(())
    };
    // The key is tried before anything is recorded on the service: a station
    // with the wrong key leaves the drive and the job as they were.
    let opened = match ingest::open_admitted(&admitted, &key) {
        Ok(opened) => opened,
        // The station's side (its key, this offsite's version, the device's path or
        // a swap): the drive is not at fault, so nothing is recorded against it and
        // it can be ingested again once that is put right.
        Err(
            err @ (admission::AdmissionError::ChangedSinceAdmission { .. }
            | admission::AdmissionError::Drive(
                DriveError::WrongKey { .. } | DriveError::NewerFormat { .. } | DriveError::Io { .. },
            )),
        ) => {
            return refuse(format!(
                "drive {drive_id} could not be opened: {err}. Nothing was recorded against the drive; ingest it \
                 again once that is put right"
            ))
        }
        Err(err) => {
            // The drive's own fault (a damaged header or manifest): nothing of it
            // can land, and the drive goes back for repair.
            let message = format!("drive {drive_id} could not be read: {err}");
            start_transfer()?;
            put_log("error", &format!("{message}\n"))?;
            set_state(ImportDriveState::CompletedMoreInfo, Some(message.clone()))?;
            return refuse(format!(
                "{message}. The drive is marked completed-more-info; its error log is in the container"
            ));
        }
    };
    start_transfer()?;
    let uploader = ServiceUploader::new(client, &job.id, &drive_id)?;
    let bar = crate::progress_bar::Counter::show("ingest", args.json);
    let progress = |p: &IngestProgress| bar.set(p.bytes_done, p.bytes_total);
    let report: IngestReport = opened.ingest(&uploader, &progress);
    drop(bar);
    put_log("verbose", &report.verbose_log)?;
    if !report.error_log.is_empty() {
        put_log("error", &report.error_log)?;
    }
    let clean = report.is_clean();
    let (state, message) = if clean {
        (ImportDriveState::Completed, None)
    } else {
        (
            ImportDriveState::CompletedMoreInfo,
            Some(format!(
                "{}, {} a repair drive: see the drive's error log",
                plural(report.bad_blocks.len(), "bad block"),
                match report.files_needing_repair.len() {
                    1 => "1 file needs".to_string(),
                    n => format!("{} need", plural(n, "file")),
                }
            )),
        )
    };
    let mut view = set_state(state, message)?;
    if all_drives_done(&view) && view.state != ImportJobState::Completed {
        view = retrying(|| client.package_import_job(&view.id, &ImportJobNote::default())).with_context(|| {
            format!(
                "all drives are ingested, but packaging the job failed; finish it with `{}` once the service is \
                 back",
                station_command(args, &format!("package --job {}", job.name))
            )
        })?;
    }
    let out = Ingested {
        import_job: job.name.clone(),
        drive_id: drive_id.clone(),
        drive_state: state,
        job_state: view.state,
        bytes_delivered: report.bytes_delivered,
        parts_delivered: report.parts_delivered,
        bytes_already_stored: report.bytes_already_stored,
        parts_already_stored: report.parts_already_stored,
        bad_blocks: report.bad_blocks.len(),
        files_needing_repair: report.files_needing_repair.clone(),
        job_note: waiting_note(&view),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "drive {drive_id} of import job {}: {} in {} delivered; drive {:?}, job {}",
            job.name,
            crate::display::human(report.bytes_delivered),
            plural(report.parts_delivered, "file part"),
            state,
            view.state.name()
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
            println!("import job {} is not complete: {note}", job.name);
        }
    }
    Ok(if clean { ExitCode::SUCCESS } else { ExitCode::from(DRIVE_PROBLEM) })
}
