//! diskprep's library side: copying a staging location onto a set of encrypted
//! drives (`docs/DRIVE-FORMAT.md`), asking for the next drive when one is full,
//! and surviving interruptions through a journal. The CLI (`offsite diskprep`)
//! supplies the drives and shows progress; everything about what goes where
//! lives here.
//!
//! One file per idea:
//! - [`error`]: [`DiskprepError`], each message saying what to do;
//! - [`target_description`]: [`describe_target`], what a drive path holds now, so
//!   the CLI can ask before formatting anything that is not empty;
//! - [`journal`]: the journal file (plan, set, finished drives, the checkpoint of the
//!   drive in progress), written atomically with mode 0600;
//! - [`prepare`]: [`prepare()`] and [`resume`], the copy itself (a reader thread
//!   feeding the drive writer);
//! - [`repair`]: [`repair()`], a new set carrying only the named files.

pub mod error;
pub mod journal;
pub mod prepare;
pub mod repair;
pub mod target_description;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::drive::DriveTarget;

pub use error::DiskprepError;
pub use prepare::{prepare, prepare_with, resume, resume_with};
pub use repair::{repair, repair_with};
pub use target_description::{describe_target, TargetDescription, TargetKind};

/// What to prepare: which job, from where, for which datacenter, and where the
/// journal lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrivePlan {
    pub import_job: String,
    /// The staging location (the folder holding the repository).
    pub staging: PathBuf,
    /// The datacenter's X25519 import public key.
    pub import_public_key: [u8; 32],
    /// [`crate::drive::DEFAULT_BLOCK_SIZE`] unless testing.
    pub block_size: u32,
    /// The journal file; it holds recovery keys and is written with mode 0600.
    pub journal: PathBuf,
}

/// Hands out the drives of a set, one at a time (the CLI asks the user, or takes
/// `--drive` flags).
pub trait DriveSupplier {
    /// The target for drive `index` (from 0), with `bytes_left` of the stream still
    /// to copy. `None` means the user stopped: [`prepare()`] then returns
    /// [`DiskprepError::Stopped`] and the journal stays resumable.
    fn next_drive(&mut self, index: u32, bytes_left: u64) -> Result<Option<DriveTarget>, DiskprepError>;
}

/// Tuning of a preparation; the defaults suit real drives, tests use smaller ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrepareOptions {
    /// Stream bytes between checkpoints (a sync of the drive and a journal write):
    /// at most this much is written again after an interruption.
    pub checkpoint_bytes: u64,
    /// Bytes per read of a staging file (large sequential reads).
    pub read_size: usize,
}

impl Default for PrepareOptions {
    fn default() -> Self {
        PrepareOptions { checkpoint_bytes: 64 * 1024 * 1024, read_size: 4 * 1024 * 1024 }
    }
}

/// Where the copy stands, reported after every chunk written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrepareProgress {
    /// Stream bytes on drives so far (including those written before a resume).
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// The drive being written, from 0.
    pub drive_index: u32,
    /// The staging file being copied.
    pub current_file: String,
}

/// A finished set of drives, as the CLI registers it with the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreparedSet {
    pub import_job: String,
    /// Hex.
    pub set_id: String,
    /// [`crate::staging::StagingListing::digest`] of what the set carries.
    pub staging_digest: String,
    pub drives: Vec<PreparedDrive>,
    /// Stream bytes the set carries.
    pub total_bytes: u64,
    /// Stream bytes written by this call (less than `total_bytes` after a resume).
    pub bytes_written: u64,
}

/// One finished drive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreparedDrive {
    pub index: u32,
    /// Hex.
    pub drive_id: String,
    /// The file holding the drive (a folder target's image file).
    pub path: PathBuf,
    /// Hex BLAKE3 of the header as written; registered with the import job.
    pub fingerprint: String,
    pub stream_start: u64,
    pub stream_end: u64,
    pub bytes_used: u64,
    /// [`crate::drive::RecoveryKey`]'s display form; shown once to the customer.
    pub recovery_key: String,
    pub last_in_set: bool,
    pub file_parts: usize,
    /// The journal's side file holding the drive's sealed manifest.
    pub manifest_file: PathBuf,
}
