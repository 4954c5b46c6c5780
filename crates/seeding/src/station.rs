//! The ingest station's protocol with the service: which job a presented drive
//! belongs to, whether it may be ingested, the drive's states on the service
//! (`Specified → Received → Transferring → Completed | CompletedMoreInfo`), its
//! logs, resuming what an interrupted run stored, and packaging the job after its
//! last drive. [`Station`] carries it out over any [`StationService`]; the
//! `offsite datacenter` command is one station, and a daemon or a portal button
//! would be others with the same rules.
//!
//! Every state lives on the service, so several stations may ingest drives of one
//! job at once. A call that fails for a passing reason is tried again with the
//! station's waits ([`crate::ingest::STATION_RETRY`]): a station that has read a
//! whole drive should not stop for a blink of the network.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use backon::{BlockingRetryable, ExponentialBuilder};

use offsite_api::client::ApiResult;
use offsite_api::client::SourceDrive;
use offsite_api::size::plural;
use offsite_api::types::{
    DriveStateUpdate, ImportDriveState, ImportFile, ImportJobNote, ImportJobState, ImportJobView, ImportPart,
};
use offsite_api::{ApiError, Client};

use crate::admission::{self, AdmissionError, Admitted, RegisteredDrive, RegisteredJob};
use crate::drive::{peek_header_unauthenticated, DriveError, DriveKey};
use crate::ingest::{self, IngestProgress, IngestReport, PartBody, PartToUpload, PartUploader, UploadError};

/// The service calls a station makes (a station credential of the job's
/// datacenter, or the operator's). Errors are the
/// client's: they say whether they pass ([`ApiError::is_transient`]) and which
/// HTTP status refused ([`ApiError::status`]), which is all the station's rules
/// look at. A trait so that the rules can be tried without HTTP.
pub trait StationService: Sync {
    /// An import job by its name (404 when the service knows none).
    fn find_import_job(&self, name: &str) -> ApiResult<ImportJobView>;
    fn import_job(&self, job_id: &str) -> ApiResult<ImportJobView>;
    /// The job's package arrived.
    fn receive_import_job(&self, job_id: &str, note: &ImportJobNote) -> ApiResult<ImportJobView>;
    /// Moves one drive on; 409 when the drive's state does not allow it.
    fn set_import_drive_state(
        &self,
        job_id: &str,
        drive_id: &str,
        update: &DriveStateUpdate,
    ) -> ApiResult<ImportJobView>;
    /// Stores a drive's `error` or `verbose` log in the job's container.
    fn put_drive_log(&self, job_id: &str, drive_id: &str, kind: &str, text: &str) -> ApiResult<()>;
    /// The whole files the job's container holds.
    fn import_files(&self, job_id: &str) -> ApiResult<Vec<ImportFile>>;
    /// The parts of files the job's container holds, awaiting packaging.
    fn import_parts(&self, job_id: &str) -> ApiResult<Vec<ImportPart>>;
    /// Stores one part of a file from `drive`, streaming `body`; nothing of it is
    /// stored when `body` fails. The service takes it only from a drive registered
    /// with the job with this header fingerprint.
    fn put_import_file_part(
        &self,
        job_id: &str,
        drive: &SourceDrive,
        part: &PartToUpload,
        body: PartBody,
    ) -> ApiResult<()>;
    /// Assembles the ingested parts into files.
    fn package_import_job(&self, job_id: &str, note: &ImportJobNote) -> ApiResult<ImportJobView>;
}

impl StationService for Client {
    fn find_import_job(&self, name: &str) -> ApiResult<ImportJobView> {
        Client::find_import_job(self, name)
    }

    fn import_job(&self, job_id: &str) -> ApiResult<ImportJobView> {
        Client::import_job(self, job_id)
    }

    fn receive_import_job(&self, job_id: &str, note: &ImportJobNote) -> ApiResult<ImportJobView> {
        Client::receive_import_job(self, job_id, note)
    }

    fn set_import_drive_state(
        &self,
        job_id: &str,
        drive_id: &str,
        update: &DriveStateUpdate,
    ) -> ApiResult<ImportJobView> {
        Client::set_import_drive_state(self, job_id, drive_id, update)
    }

    fn put_drive_log(&self, job_id: &str, drive_id: &str, kind: &str, text: &str) -> ApiResult<()> {
        Client::put_drive_log(self, job_id, drive_id, kind, text)
    }

    fn import_files(&self, job_id: &str) -> ApiResult<Vec<ImportFile>> {
        Client::import_files(self, job_id)
    }

    fn import_parts(&self, job_id: &str) -> ApiResult<Vec<ImportPart>> {
        Client::import_parts(self, job_id)
    }

    fn put_import_file_part(
        &self,
        job_id: &str,
        drive: &SourceDrive,
        part: &PartToUpload,
        body: PartBody,
    ) -> ApiResult<()> {
        self.put_import_file(job_id, drive, &part.path, part.offset_in_file, part.file_size, body, part.length)
    }

    fn package_import_job(&self, job_id: &str, note: &ImportJobNote) -> ApiResult<ImportJobView> {
        Client::package_import_job(self, job_id, note)
    }
}

/// Why a drive is not ingested, or not wholly. Each message says what the
/// operator does next; only [`Refusal::Damaged`] recorded anything on the service.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Its header cannot be read: not an offsite drive, or a damaged one.
    #[error("{path}: {error}. Set the drive aside to return it")]
    Unreadable { path: String, error: DriveError },

    /// Its header names a job the service does not know.
    #[error(
        "drive {drive_id} claims import job '{job}', which this service does not know: it belongs to no job here. \
         Set it aside to ship it back"
    )]
    UnknownJob { drive_id: String, job: String },

    /// Not one of its job's drives as registered, or ingested already.
    #[error("{0}")]
    NotAdmitted(AdmissionError),

    /// Ingested already, and so is every other drive of the job: what is left
    /// is packaging (`command`), not this drive.
    #[error(
        "{error}. Every drive of import job {job} is done but the job is {}: `{command}` assembles its files, or \
         names what a repair drive must bring",
        state.name()
    )]
    AwaitingPackaging { error: AdmissionError, job: String, state: ImportJobState, command: String },

    /// The job's package was not recorded as arrived (`command` does it).
    #[error(
        "import job {job} is {}: its package was not received, so drive {drive_id} is not ingested. Record the \
         package's arrival first (`{command}`), then ingest the drive again",
        state.name()
    )]
    NotReceived { job: String, state: ImportJobState, drive_id: String, command: String },

    /// The station's side failed to open it (its key, this offsite's version, the
    /// device's path, a swap): the drive is not at fault and nothing was recorded.
    #[error(
        "drive {drive_id} could not be opened: {error}. Nothing was recorded against the drive; ingest it again \
         once that is put right"
    )]
    CannotOpen { drive_id: String, error: AdmissionError },

    /// The drive's own fault (a damaged header or manifest): it was marked
    /// completed-more-info with an error log, and goes back for repair.
    #[error("{reason}. The drive is marked completed-more-info; its error log is in the container")]
    Damaged { drive_id: String, reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum StationError {
    /// The drive is refused; the message says what to do with it. Boxed: it is
    /// the largest variant, and the others travel through every `?`.
    #[error(transparent)]
    Refused(Box<Refusal>),

    /// The service failed or refused (after the retries a passing failure gets).
    #[error(transparent)]
    Service(#[from] ApiError),

    /// The service admitted a drive its job does not list: the service is inconsistent.
    #[error("drive {drive_id} was admitted but is not listed in import job {job}")]
    NotListed { drive_id: String, job: String },

    /// Every drive is done but packaging failed: the job waits for `command`.
    #[error(
        "all drives are ingested, but packaging the job failed; finish it with `{command}` once the service is back"
    )]
    Packaging {
        command: String,
        #[source]
        error: ApiError,
    },
}

impl From<Refusal> for StationError {
    fn from(refusal: Refusal) -> Self {
        StationError::Refused(Box::new(refusal))
    }
}

/// A drive's ingest that ran to its end, cleanly or not.
#[derive(Debug)]
pub struct IngestOutcome {
    pub drive_id: String,
    /// The state the drive was given: `Completed` or `CompletedMoreInfo`.
    pub drive_state: ImportDriveState,
    /// The job afterwards (packaged when this was its last drive).
    pub job: ImportJobView,
    pub report: IngestReport,
    /// Why the job did not complete after its last drive ([`waiting_note`]).
    pub job_note: Option<String>,
}

impl IngestOutcome {
    /// Every block good and every part stored.
    pub fn is_clean(&self) -> bool {
        self.report.is_clean()
    }
}

/// A drive found to be one its job expects, the job's package received: it may
/// be opened and ingested.
#[derive(Debug)]
pub struct AdmittedDrive {
    job: ImportJobView,
    admitted: Admitted,
    /// Hex, as its header spells it.
    drive_id: String,
    /// Its state on the service when it was admitted.
    state: ImportDriveState,
}

impl AdmittedDrive {
    pub fn job(&self) -> &ImportJobView {
        &self.job
    }

    /// Hex.
    pub fn drive_id(&self) -> &str {
        &self.drive_id
    }
}

/// An ingest station over a service. Only the caller knows how to spell one of
/// its own commands (its credentials flag), so it says, for the next steps the
/// station's messages name.
pub struct Station<S> {
    service: S,
    retry: ExponentialBuilder,
    command: Box<dyn Fn(&str) -> String + Send + Sync>,
}

impl<S: StationService> Station<S> {
    /// A station whose next steps read `offsite datacenter …`, retrying with
    /// [`ingest::STATION_RETRY`].
    pub fn new(service: S) -> Station<S> {
        Station {
            service,
            retry: ingest::STATION_RETRY,
            command: Box::new(|rest| format!("offsite datacenter {rest}")),
        }
    }

    /// How to spell a station command given its subcommand and arguments
    /// (`package --job NAME`), for the next steps in messages.
    pub fn with_commands(self, command: impl Fn(&str) -> String + Send + Sync + 'static) -> Station<S> {
        Station { command: Box::new(command), ..self }
    }

    /// The waits before trying a call that failed for a passing reason again
    /// (uploads of parts included).
    pub fn with_retry(self, retry: ExponentialBuilder) -> Station<S> {
        Station { retry, ..self }
    }

    pub fn service(&self) -> &S {
        &self.service
    }

    /// Records the arrival of the job's package.
    pub fn receive(&self, job: &str, note: Option<String>) -> Result<ImportJobView, StationError> {
        let view = self.service.find_import_job(job)?;
        Ok(self.service.receive_import_job(&view.id, &ImportJobNote { message: note })?)
    }

    /// Assembles the job's ingested parts into its files (ingest does it after the
    /// last drive; this finishes a job whose packaging failed there).
    pub fn package(&self, job: &str) -> Result<ImportJobView, StationError> {
        let view = self.service.find_import_job(job)?;
        Ok(self.retrying(|| self.service.package_import_job(&view.id, &ImportJobNote::default()))?)
    }

    /// The job, its drives and timeline.
    pub fn status(&self, job: &str) -> Result<ImportJobView, StationError> {
        Ok(self.service.find_import_job(job)?)
    }

    /// Admits the drive at `path`, then opens it with `key` and ingests it
    /// ([`Station::admit`], [`Station::ingest_admitted`]).
    pub fn ingest(
        &self,
        path: &Path,
        key: &DriveKey,
        progress: &(dyn Fn(&IngestProgress) + Sync),
    ) -> Result<IngestOutcome, StationError> {
        let drive = self.admit(path)?;
        self.ingest_admitted(drive, key, progress)
    }

    /// Finds the job the drive's header names and checks the drive is one it
    /// expects and its package was received. Nothing is recorded on the service.
    pub fn admit(&self, path: &Path) -> Result<AdmittedDrive, StationError> {
        // Unauthenticated: only used to find the job; trusted after the key opens the drive.
        let peek = peek_header_unauthenticated(path)
            .map_err(|error| Refusal::Unreadable { path: path.display().to_string(), error })?;
        let drive_id = hex::encode(peek.drive_id);
        let job = match self.service.find_import_job(&peek.import_job) {
            Ok(job) => job,
            Err(err) if err.status() == Some(404) => {
                return Err(Refusal::UnknownJob { drive_id, job: peek.import_job }.into())
            }
            Err(err) => return Err(err.into()),
        };
        // The drive must be one of the job's, with the header diskprep registered,
        // not ingested already (another job's drive, an old set's, a replay).
        let admitted = match admission::check(path, peek, &registered(&job)) {
            Ok(admitted) => admitted,
            Err(error @ AdmissionError::AlreadyIngested { .. })
                if all_drives_done(&job)
                    && matches!(job.state, ImportJobState::Transferring | ImportJobState::Packaging) =>
            {
                return Err(Refusal::AwaitingPackaging {
                    error,
                    command: self.command(&format!("package --job {}", job.name)),
                    job: job.name,
                    state: job.state,
                }
                .into())
            }
            Err(error) => return Err(Refusal::NotAdmitted(error).into()),
        };
        let Some(listed) = job.drives.iter().find(|d| d.drive_id == admitted.drive_id()) else {
            return Err(StationError::NotListed { drive_id, job: job.name });
        };
        let state = listed.state;
        if matches!(job.state, ImportJobState::Creating | ImportJobState::Shipping) {
            return Err(Refusal::NotReceived {
                command: self.command(&format!("receive --job {}", job.name)),
                job: job.name,
                state: job.state,
                drive_id,
            }
            .into());
        }
        Ok(AdmittedDrive { job, admitted, drive_id, state })
    }

    /// Opens an admitted drive with `key`, moves it to Transferring, uploads what
    /// the job's container lacks of it, stores its logs, and moves it to Completed
    /// (or CompletedMoreInfo, with what a repair drive must bring). After the
    /// job's last drive, packages the job.
    pub fn ingest_admitted(
        &self,
        drive: AdmittedDrive,
        key: &DriveKey,
        progress: &(dyn Fn(&IngestProgress) + Sync),
    ) -> Result<IngestOutcome, StationError> {
        let AdmittedDrive { job, admitted, drive_id, state: listed } = drive;
        // The header checked at admission; ingest reads the drive only if its
        // authenticated header is this one.
        let source = SourceDrive { drive_id: drive_id.clone(), fingerprint: hex::encode(admitted.header.fingerprint) };
        let start_transfer = || -> Result<(), StationError> {
            if listed == ImportDriveState::Specified {
                self.set_drive_state(&job.id, &drive_id, ImportDriveState::Received, None)?;
            }
            if listed != ImportDriveState::Transferring {
                self.set_drive_state(&job.id, &drive_id, ImportDriveState::Transferring, None)?;
            }
            Ok(())
        };
        // The key is tried before anything is recorded on the service: a station
        // with the wrong key leaves the drive and the job as they were.
        let opened = match ingest::open_admitted(&admitted, key) {
            Ok(opened) => opened,
            Err(error) if is_stations_fault(&error) => return Err(Refusal::CannotOpen { drive_id, error }.into()),
            Err(error) => {
                // The drive's own fault (a damaged header or manifest): nothing of
                // it can land, and the drive goes back for repair.
                let reason = format!("drive {drive_id} could not be read: {error}");
                start_transfer()?;
                self.put_log(&job.id, &drive_id, "error", &format!("{reason}\n"))?;
                self.set_drive_state(&job.id, &drive_id, ImportDriveState::CompletedMoreInfo, Some(reason.clone()))?;
                return Err(Refusal::Damaged { drive_id, reason }.into());
            }
        };
        start_transfer()?;
        let uploader = ServiceUploader::new(self, &job.id, source)?;
        let report = opened.ingest(&uploader, progress);
        self.put_log(&job.id, &drive_id, "verbose", &report.verbose_log)?;
        if !report.error_log.is_empty() {
            self.put_log(&job.id, &drive_id, "error", &report.error_log)?;
        }
        let (drive_state, message) = match report.is_clean() {
            true => (ImportDriveState::Completed, None),
            false => (ImportDriveState::CompletedMoreInfo, Some(repair_note(&report))),
        };
        let mut view = self.set_drive_state(&job.id, &drive_id, drive_state, message)?;
        if all_drives_done(&view) && view.state != ImportJobState::Completed {
            view = self.retrying(|| self.service.package_import_job(&view.id, &ImportJobNote::default())).map_err(
                |error| StationError::Packaging {
                    command: self.command(&format!("package --job {}", job.name)),
                    error,
                },
            )?;
        }
        Ok(IngestOutcome { drive_id, drive_state, job_note: waiting_note(&view), job: view, report })
    }

    fn command(&self, rest: &str) -> String {
        (self.command)(rest)
    }

    /// Calls the service, trying again after the station's waits while it fails
    /// for a passing reason (unreachable, overloaded, its storage failing).
    fn retrying<T>(&self, call: impl FnMut() -> ApiResult<T>) -> ApiResult<T> {
        call.retry(self.retry)
            .sleep(std::thread::sleep)
            .when(|err| err.is_transient())
            .notify(|err, wait| {
                tracing::warn!(error = %err, "the service failed for a passing reason; trying again in {wait:?}")
            })
            .call()
    }

    fn put_log(&self, job_id: &str, drive_id: &str, kind: &str, text: &str) -> ApiResult<()> {
        self.retrying(|| self.service.put_drive_log(job_id, drive_id, kind, text))
    }

    /// Moves the drive to `state`, retrying. A retry answered 409 may be one whose
    /// first try landed (its answer was lost): when the drive is in that state
    /// already, that is what was asked.
    fn set_drive_state(
        &self,
        job_id: &str,
        drive_id: &str,
        state: ImportDriveState,
        message: Option<String>,
    ) -> ApiResult<ImportJobView> {
        let update = DriveStateUpdate { state, message };
        match self.retrying(|| self.service.set_import_drive_state(job_id, drive_id, &update)) {
            Err(err) if err.status() == Some(409) => {
                let view = self.service.import_job(job_id)?;
                match view.drives.iter().any(|d| d.drive_id == drive_id && d.state == state) {
                    true => Ok(view),
                    false => Err(err),
                }
            }
            other => other,
        }
    }
}

/// What the station knows of the job for [`admission::check`].
fn registered(job: &ImportJobView) -> RegisteredJob {
    RegisteredJob {
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
    }
}

/// Whether a drive that would not open is the station's fault (its key, this
/// offsite's version, the device's path or a swap), not the drive's: then
/// nothing is recorded against the drive, and it can be ingested again once that
/// is put right.
fn is_stations_fault(error: &AdmissionError) -> bool {
    matches!(
        error,
        AdmissionError::ChangedSinceAdmission { .. }
            | AdmissionError::Drive(
                DriveError::WrongKey { .. } | DriveError::NewerFormat { .. } | DriveError::Io { .. }
            )
    )
}

/// The drive's timeline note when it did not ingest cleanly.
fn repair_note(report: &IngestReport) -> String {
    format!(
        "{}, {} a repair drive: see the drive's error log",
        plural(report.bad_blocks.len(), "bad block"),
        match report.files_needing_repair.len() {
            1 => "1 file needs".to_string(),
            n => format!("{} need", plural(n, "file")),
        }
    )
}

/// What keeps a job whose drives are all done from completing: the last note of
/// its timeline (packaging names the files its container lacks).
pub fn waiting_note(job: &ImportJobView) -> Option<String> {
    if job.state != ImportJobState::Packaging || !all_drives_done(job) {
        return None;
    }
    job.timeline.iter().rev().find(|e| e.drive_id.is_none()).and_then(|e| e.message.clone())
}

fn all_drives_done(job: &ImportJobView) -> bool {
    job.drives.iter().all(|d| d.state.is_done())
}

/// Uploads each file part of a drive through the service, streaming.
struct ServiceUploader<'a, S> {
    station: &'a Station<S>,
    job_id: String,
    drive: SourceDrive,
    /// What the job's container held when the station started: whole files
    /// (path → size) and parts awaiting packaging (path, offset, length).
    whole_files: HashMap<String, u64>,
    stored_parts: HashSet<(String, u64, u64)>,
}

impl<'a, S: StationService> ServiceUploader<'a, S> {
    /// Lists what the job's container holds, so that a drive whose ingest was
    /// stopped half-way sends only what did not land.
    fn new(station: &'a Station<S>, job_id: &str, drive: SourceDrive) -> ApiResult<Self> {
        let whole_files = station.service.import_files(job_id)?.into_iter().map(|f| (f.path, f.size)).collect();
        let stored_parts =
            station.service.import_parts(job_id)?.into_iter().map(|p| (p.path, p.offset, p.length)).collect();
        Ok(ServiceUploader { station, job_id: job_id.to_string(), drive, whole_files, stored_parts })
    }
}

impl<S: StationService> PartUploader for ServiceUploader<'_, S> {
    fn upload(&self, part: &PartToUpload, body: PartBody) -> Result<(), UploadError> {
        self.station.service.put_import_file_part(&self.job_id, &self.drive, part, body).map_err(|e| {
            match e.is_transient() {
                true => UploadError::Transient(e.to_string()),
                false => UploadError::Permanent(e.to_string()),
            }
        })
    }

    fn is_stored(&self, part: &PartToUpload) -> bool {
        // Whole files are stored only once complete (and hash-checked when named
        // by their hash); parts likewise, so what is listed is whole.
        self.whole_files.get(&part.path) == Some(&part.file_size)
            || self.stored_parts.contains(&(part.path.clone(), part.offset_in_file, part.length))
    }

    fn retry_policy(&self) -> ExponentialBuilder {
        self.station.retry
    }
}
