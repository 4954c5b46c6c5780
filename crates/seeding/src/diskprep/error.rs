//! [`DiskprepError`]: one variant per problem the person running diskprep can act
//! on; each message names the thing (a path, a file, a drive) and says what to do.

use std::path::{Path, PathBuf};

use crate::drive::DriveError;

#[derive(Debug, thiserror::Error)]
pub enum DiskprepError {
    #[error("the staging location {path} does not exist or is not a folder; give the folder the agent's offline backup was written to")]
    StagingMissing { path: PathBuf },

    #[error(
        "the staging location {path} is empty; run the agent's first offline backup into it before preparing drives"
    )]
    StagingEmpty { path: PathBuf },

    #[error("the staging location {path} holds no offsite repository (there is no 'config' file); give the folder the agent's offline backup was written to")]
    NotARepository { path: PathBuf },

    #[error("cannot copy {path} from the staging location: {problem}; the staging location must hold only the repository's regular files: remove it")]
    StagingBadFile { path: PathBuf, problem: String },

    #[error("the staging location changed since the drives were started ({file}: {what}), so the drives would not fit together; restore the staging location as it was, or start a new preparation with a new journal")]
    StagingChanged { file: String, what: String },

    #[error("the file {file:?} is not in the staging location {staging}; name files as the ingest error log does (for example data/3f/3f…)")]
    UnknownFile { file: String, staging: PathBuf },

    #[error("no files to re-send were named; pass the files from the ingest error log")]
    NoFiles,

    #[error(
        "the drive at {path} is too small: it holds {size} bytes and needs at least {needed} bytes; use a larger drive"
    )]
    DriveTooSmall { path: PathBuf, size: u64, needed: u64 },

    #[error("the drive at {path} is not empty ({what}); confirm that it may be formatted, or use another drive")]
    DriveNotEmpty { path: PathBuf, what: String },

    #[error("formatting {path} was not confirmed: answer Yes, or pass --yes")]
    NotConfirmed { path: PathBuf },

    /// The drive supplier's own message (a failed question, a target it could not
    /// open), shown as is.
    #[error("{0}")]
    Supplier(String),

    #[error("the disk holding {path} is full; free space there (or choose another place for the journal) and run diskprep again with --resume")]
    DiskFull { path: PathBuf },

    #[error("the drive {path} ran out of space (the disk holding it is full); free space there and run diskprep again with --resume, or remove that drive (or its image file) and resume with another drive in its place")]
    DriveFull { path: PathBuf },

    #[error("cannot use {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    #[error("the diskprep journal {path} is damaged ({reason}); restore it from a copy, or start the preparation over with a new journal (the drives already written must be prepared again)")]
    JournalDamaged { path: PathBuf, reason: String },

    #[error("the diskprep journal {path} belongs to import job {found:?}, not {expected:?}; give the journal of this import job, or another journal path")]
    JournalOfAnotherJob { path: PathBuf, found: String, expected: String },

    #[error("the diskprep journal {path} holds an unfinished preparation; run with --resume to continue it")]
    JournalUnfinished { path: PathBuf },

    #[error("another diskprep is using the journal {path} right now (preparing this import job's drives); wait for it to finish, or stop it and run again with --resume")]
    JournalBusy { path: PathBuf },

    #[error("there is no diskprep journal at {path}; check the path, or start the preparation without --resume")]
    JournalMissing { path: PathBuf },

    #[error("stopped with {remaining_bytes} bytes still to copy; the drives written so far and the journal are kept: run again with --resume and the next drive")]
    Stopped { remaining_bytes: u64 },

    #[error(transparent)]
    Drive(DriveError),
}

impl DiskprepError {
    /// An I/O error on `path`; a full disk gets its own variant.
    pub(crate) fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        let path = path.as_ref().to_path_buf();
        if is_disk_full(&source) {
            return DiskprepError::DiskFull { path };
        }
        DiskprepError::Io { path, source }
    }
}

fn is_disk_full(e: &std::io::Error) -> bool {
    // 28 is ENOSPC and 122 EDQUOT on Linux.
    e.kind() == std::io::ErrorKind::StorageFull || matches!(e.raw_os_error(), Some(28) | Some(122))
}

/// Drive errors a user acts on differently (a small drive, a full disk) become
/// diskprep's own variants; the others keep the drive layer's message.
impl From<DriveError> for DiskprepError {
    fn from(e: DriveError) -> Self {
        match e {
            DriveError::DriveTooSmall { path, size, needed, .. } => {
                DiskprepError::DriveTooSmall { path: path.into(), size, needed }
            }
            DriveError::Io { path, source } if is_disk_full(&source) => DiskprepError::DriveFull { path: path.into() },
            DriveError::Io { path, source } => DiskprepError::Io { path: path.into(), source },
            other => DiskprepError::Drive(other),
        }
    }
}
