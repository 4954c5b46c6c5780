//! Admission at the ingest station: whether a drive presented there is one the
//! import job expects, decided from its header before anything of it is read or
//! uploaded, and confirmed once the drive is unlocked.
//!
//! The station knows the job's name and its registered drives (id, the header
//! fingerprint diskprep registered, whether it was ingested already). A drive
//! of another job, a drive of an earlier or abandoned preparation of the same job,
//! a drive sent again after it was ingested, and a header that is not the one
//! registered (an old header of the drive, or a forged one, or a drive registered
//! without a header) are each refused with their own [`AdmissionError`]. [`Admitted`] carries the header's fingerprint, and
//! [`crate::ingest::ingest_admitted`] refuses a drive whose authenticated header is
//! not the admitted one (the drive was swapped between the check and the reading).

use std::path::{Path, PathBuf};

use crate::drive::{peek_header_unauthenticated, DriveError, PublicHeaderInfo};

/// A drive the service has registered with the import job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredDrive {
    /// Hex.
    pub drive_id: String,
    /// Hex BLAKE3 of the header diskprep wrote. A drive registered without one
    /// (by a version before fingerprints) is not admitted.
    pub fingerprint: Option<String>,
    /// Its ingest has finished (completed, completed with more info) or it was
    /// sent back: presenting it again is a replay.
    pub done: Option<String>,
}

/// What the station knows of the import job it is ingesting for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredJob {
    pub name: String,
    pub drives: Vec<RegisteredDrive>,
}

/// A drive found to belong to the job, with the header that was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub path: PathBuf,
    pub header: PublicHeaderInfo,
    pub registered: RegisteredDrive,
}

impl Admitted {
    /// The drive id, hex.
    pub fn drive_id(&self) -> &str {
        &self.registered.drive_id
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    #[error("the drive at {path} (drive {drive_id}) belongs to import job '{claimed}', not to '{job}'; set it aside and ingest it with its own job, or ship it back")]
    OtherJob { path: String, drive_id: String, claimed: String, job: String },

    #[error("the drive at {path} (drive {drive_id}) is not one of import job {job}'s drives: a drive of an earlier or abandoned preparation of the job, or of another set; set it aside to ship it back")]
    NotInJob { path: String, drive_id: String, job: String },

    #[error("the header of the drive at {path} (drive {drive_id}) is not the one diskprep registered for import job {job}: an old header of this drive (it was prepared again) or a forged one; set it aside to ship it back")]
    NotTheRegisteredHeader { path: String, drive_id: String, job: String },

    #[error("drive {drive_id} at {path} was registered with import job {job} without its header's fingerprint, so the service takes no files from it: set it aside to ship it back, and send its files on a repair drive (`offsite diskprep --repair` on the copy computer registers the new drive with its fingerprint)")]
    NoRegisteredHeader { path: String, drive_id: String, job: String },

    #[error("drive {drive_id} at {path} of import job {job} was ingested already ({state}): it was sent again; set it aside to ship it back")]
    AlreadyIngested { path: String, drive_id: String, job: String, state: String },

    #[error("the drive at {path} changed between its admission and its reading: its authenticated header is not the one checked; ingest it again")]
    ChangedSinceAdmission { path: String },

    #[error(transparent)]
    Drive(#[from] DriveError),
}

/// Reads the drive's header at `path` (without a key) and checks it against `job`.
pub fn admit(path: &Path, job: &RegisteredJob) -> Result<Admitted, AdmissionError> {
    let header = peek_header_unauthenticated(path)?;
    check(path, header, job)
}

/// Checks an already read header against `job`.
pub fn check(path: &Path, header: PublicHeaderInfo, job: &RegisteredJob) -> Result<Admitted, AdmissionError> {
    let shown = path.display().to_string();
    let drive_id = hex::encode(header.drive_id);
    if header.import_job != job.name {
        return Err(AdmissionError::OtherJob {
            path: shown,
            drive_id,
            claimed: header.import_job.clone(),
            job: job.name.clone(),
        });
    }
    let Some(registered) = job.drives.iter().find(|d| d.drive_id.eq_ignore_ascii_case(&drive_id)) else {
        return Err(AdmissionError::NotInJob { path: shown, drive_id, job: job.name.clone() });
    };
    // Only the header diskprep registered brings files: the service refuses
    // uploads from any other, and from a drive registered without one.
    let Some(fingerprint) = &registered.fingerprint else {
        return Err(AdmissionError::NoRegisteredHeader { path: shown, drive_id, job: job.name.clone() });
    };
    if !fingerprint.eq_ignore_ascii_case(&hex::encode(header.fingerprint)) {
        return Err(AdmissionError::NotTheRegisteredHeader { path: shown, drive_id, job: job.name.clone() });
    }
    if let Some(state) = &registered.done {
        return Err(AdmissionError::AlreadyIngested {
            path: shown,
            drive_id,
            job: job.name.clone(),
            state: state.clone(),
        });
    }
    Ok(Admitted { path: path.to_path_buf(), header, registered: registered.clone() })
}
