//! [`DriveError`]: one variant per problem a person can act on. Each message names
//! the drive (its path) and says what to do next. Problems with single blocks are
//! not errors: the reader lists them in its report and keeps going.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    #[error("{path} is not an offsite drive (it does not start with the OFFSITE-DRIVE header); check the drive path, or prepare the drive with 'offsite diskprep'")]
    NotADrive { path: String },

    #[error("the drive at {path} has format version {found}, newer than this offsite understands ({supported}); upgrade offsite")]
    NewerFormat { path: String, found: u32, supported: u32 },

    #[error("the header of the drive at {path} is damaged or tampered with ({reason}); the drive cannot be trusted: ask the customer to prepare it again")]
    HeaderDamaged { path: String, reason: String },

    #[error("the {key} does not open the drive at {path}: the drive was prepared for another key, the key was mistyped, or its key slot is damaged; try the other key (the customer's recovery key or the service's import key)")]
    WrongKey { path: String, key: &'static str },

    #[error("the drive at {path} was not finished: its preparation stopped before the manifest was written; finish or redo it with 'offsite diskprep'")]
    NotFinished { path: String },

    #[error("the drive at {path} is truncated: it holds {size} bytes but its {what} ends at byte {needed}; copy the whole drive, or read it with the copy of its manifest that diskprep kept")]
    Truncated { path: String, size: u64, needed: u64, what: &'static str },

    #[error("the manifest of the drive at {path} is damaged ({reason}); read the drive with the copy of its manifest that diskprep kept, or ask the customer to prepare it again")]
    ManifestDamaged { path: String, reason: String },

    #[error("the manifest of the drive at {path} is larger than any drive 'offsite diskprep' prepares ({reason}); the station does not read it: set the drive aside and ask the customer to prepare the drive again")]
    ManifestTooLarge { path: String, reason: String },

    #[error("the manifest of the drive at {path} names a bad file path {file:?} ({reason}); the drive cannot be trusted: ask the customer to prepare it again")]
    BadPathInManifest { path: String, file: String, reason: String },

    #[error("bad file path {file:?}: {reason}; staging files are named by relative paths with '/' between components")]
    BadPath { file: String, reason: String },

    #[error("the drive at {path} is too small: it holds {size} bytes, and a drive with block size {block_size} needs at least {needed} bytes; use a larger drive or image size")]
    DriveTooSmall { path: String, size: u64, needed: u64, block_size: u32 },

    #[error("the drive at {path} is full: not even the entry of the empty file {file:?} fits; finish this drive and continue on the next one")]
    DriveFull { path: String, file: String },

    #[error("invalid drive settings: {0}")]
    InvalidSpec(String),

    #[error("file parts given out of order: {0}; give each file's bytes in order, one file after the other")]
    OutOfOrder(String),

    #[error("an earlier write to the drive at {path} failed; this drive cannot be finished: prepare it again")]
    WriterFailed { path: String },

    #[error("the drive at {path} is not the drive in progress: its header names drive {found}, diskprep's journal drive {expected}; attach drive {expected} at {path} again, or free that path (remove the image, or use another device path) to start the drive over on a new one")]
    NotTheDriveInProgress { path: String, expected: String, found: String },

    #[error("cannot resume the drive at {path}: block {block} would now hold other bytes than before the interruption (a staging file changed); redo the preparation from the start with a new journal")]
    ResumeMismatch { path: String, block: u64 },

    #[error("invalid recovery key: {0}; a recovery key is 64 hexadecimal digits, usually written as 8 groups of 8")]
    InvalidRecoveryKey(String),

    #[error("cannot use the drive at {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

impl DriveError {
    pub(crate) fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        DriveError::Io { path: path.as_ref().display().to_string(), source }
    }
}
