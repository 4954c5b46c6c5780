//! The engine's error type: one variant per thing a user can do something about,
//! each message naming the object and the next step.

use crate::backend::BackendError;
use crate::id::Id;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{location} is not an offsite repository ({reason}); check the --repo address, or create one with 'offsite repo init'")]
    NotARepository { location: String, reason: String },
    #[error("{location} already holds an offsite repository; use it, or choose an empty location")]
    AlreadyInitialised { location: String },
    #[error("wrong passphrase for the repository at {location}: no key accepts it; check OFFSITE_PASSWORD or --password-file")]
    WrongPassphrase { location: String },
    #[error("the repository at {location} has format version {found}, newer than this offsite understands ({supported}); upgrade offsite")]
    NewerFormat { location: String, found: u32, supported: u32 },
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("{what} is damaged: {reason}")]
    Damaged { what: String, reason: String },
    #[error("no snapshot matches '{0}'; list them with 'offsite repo snapshots'")]
    SnapshotNotFound(String),
    #[error("'{0}' matches several snapshots; give more digits of the id")]
    AmbiguousSnapshot(String),
    #[error("the repository is locked by {holder}; wait for it to finish, or if that process is gone remove the lock with 'offsite repo unlock'")]
    Locked { holder: String },
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("blob {0} is missing from the index; run 'offsite repo check'")]
    BlobNotFound(Id),
    #[error("'{path}' is not in snapshot {snapshot}")]
    PathNotFound { path: String, snapshot: String },
    #[error("no key with id '{0}'; list keys with 'offsite repo key list'")]
    KeyNotFound(String),
    #[error("{0}")]
    Refused(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn damaged(what: impl Into<String>, reason: impl ToString) -> Self {
        Error::Damaged { what: what.into(), reason: reason.to_string() }
    }

    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io { path: path.as_ref().display().to_string(), source }
    }
}
