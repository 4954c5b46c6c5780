//! Backends: where repository files live.
//!
//! A backend stores whole files under a [`FileKind`] and a name, with few verbs and
//! these contracts:
//! - `save` is atomic (a reader sees the whole file or none of it) and idempotent:
//!   repository files are named by the hash of their content, so saving the same name
//!   twice stores the same bytes and a retried save is always safe.
//! - `remove` of a missing file succeeds, so an interrupted prune can simply be rerun.
//! - `list` never shows a partly written file.
//!
//! [`open`] picks the implementation from a URL: a folder path, or `s3://`, `az://`,
//! `gs://` through the `object_store` crate.

mod cached;
mod cloud;
mod local;

use std::sync::Arc;

use bytes::Bytes;

pub use cached::CachedBackend;
pub use cloud::{is_disk_full, is_storage_full, open_object_store, CloudBackend, StoreRetry};
pub use local::LocalBackend;

/// The kinds of file in a repository; each lives in its own folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    Config,
    Key,
    Pack,
    Index,
    Snapshot,
    Lock,
}

impl FileKind {
    pub const ALL: [FileKind; 6] =
        [FileKind::Config, FileKind::Key, FileKind::Pack, FileKind::Index, FileKind::Snapshot, FileKind::Lock];

    /// The folder of this kind, relative to the repository root.
    pub fn folder(self) -> &'static str {
        match self {
            FileKind::Config => "",
            FileKind::Key => "keys",
            FileKind::Pack => "data",
            FileKind::Index => "index",
            FileKind::Snapshot => "snapshots",
            FileKind::Lock => "locks",
        }
    }

    /// Path of a file relative to the repository root. Packs are spread over 256
    /// subfolders by their first two hex digits, keeping folders small.
    pub fn path_of(self, name: &str) -> String {
        match self {
            FileKind::Config => "config".to_string(),
            FileKind::Pack if name.len() >= 2 => format!("data/{}/{}", &name[..2], name),
            _ => format!("{}/{}", self.folder(), name),
        }
    }

    /// The kind and name of a repository-relative path as [`Self::path_of`] writes
    /// it (`config`, `keys/<id>`, `data/ab/<ab…>`, `index/<id>`, …); `None` for any
    /// other path, so `path_of` of the answer gives `path` back.
    pub fn of_path(path: &str) -> Option<(FileKind, String)> {
        if path == "config" {
            return Some((FileKind::Config, "config".to_string()));
        }
        let (folder, rest) = path.split_once('/')?;
        let name = rest.rsplit('/').next()?;
        let kind = FileKind::ALL.into_iter().find(|k| *k != FileKind::Config && k.folder() == folder)?;
        (!name.is_empty() && kind.path_of(name) == path).then(|| (kind, name.to_string()))
    }
}

/// A file as listed by a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub name: String,
    pub size: u64,
}

/// What went wrong talking to storage. Every variant names the place.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{path} does not exist")]
    NotFound { path: String },
    #[error(
        "no space left on the device holding {path}: free some space and run the command again (finished work is kept)"
    )]
    NoSpace { path: String },
    #[error("cannot access {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("storage at {location} failed: {message}. Check the address, the network and the credentials")]
    Remote { location: String, message: String },
    #[error("'{url}' is not a storage location offsite understands: {reason}")]
    InvalidLocation { url: String, reason: String },
    /// A storage service (the offsite service) could not be reached in time.
    #[error(
        "cannot reach {location}: {message}. Check that it is running and that the address and the network are \
         right; finished work is kept, run again when it answers"
    )]
    Unreachable { location: String, message: String },
    /// A storage service answered no; its message says why and what to do.
    #[error("{location} refused: {message}")]
    Refused { location: String, status: u16, message: String },
    /// The storage can only be read (a set of drives): nothing was changed.
    #[error("{location} is read-only ({what}): it cannot {verb}; write to a repository folder or the service instead")]
    ReadOnly { location: String, what: &'static str, verb: &'static str },
    /// The file exists but (part of) it cannot be read: a damaged or absent piece of
    /// the storage, named in `reason`. Reading it again gives the same answer.
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: String, reason: String },
}

impl BackendError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, BackendError::NotFound { .. })
    }

    /// A copy, for telling every waiting thread about one failure with its kind
    /// intact (an I/O error keeps its kind and message).
    pub fn duplicate(&self) -> BackendError {
        use BackendError::*;
        match self {
            NotFound { path } => NotFound { path: path.clone() },
            NoSpace { path } => NoSpace { path: path.clone() },
            Io { path, source } => {
                Io { path: path.clone(), source: std::io::Error::new(source.kind(), source.to_string()) }
            }
            Remote { location, message } => Remote { location: location.clone(), message: message.clone() },
            InvalidLocation { url, reason } => InvalidLocation { url: url.clone(), reason: reason.clone() },
            Unreachable { location, message } => Unreachable { location: location.clone(), message: message.clone() },
            Refused { location, status, message } => {
                Refused { location: location.clone(), status: *status, message: message.clone() }
            }
            ReadOnly { location, what, verb } => ReadOnly { location: location.clone(), what, verb },
            Unreadable { path, reason } => Unreadable { path: path.clone(), reason: reason.clone() },
        }
    }
}

pub type BackendResult<T> = Result<T, BackendError>;

/// Storage for repository files. Implementations are blocking; call them from plain
/// threads (the engine's worker threads or `spawn_blocking`), never from async code.
pub trait Backend: Send + Sync {
    /// Where the repository lives, for messages.
    fn location(&self) -> &str;
    /// Prepares an empty location (creates folders where the backend has them).
    fn create(&self) -> BackendResult<()>;
    /// Stores a file atomically; see the module contract.
    fn save(&self, kind: FileKind, name: &str, data: Bytes) -> BackendResult<()>;
    /// Reads a whole file.
    fn load(&self, kind: FileKind, name: &str) -> BackendResult<Bytes>;
    /// Reads `length` bytes at `offset`.
    fn load_range(&self, kind: FileKind, name: &str, offset: u64, length: u64) -> BackendResult<Bytes>;
    /// The size of a file, or `None` when it does not exist.
    fn size(&self, kind: FileKind, name: &str) -> BackendResult<Option<u64>>;
    /// All complete files of a kind.
    fn list(&self, kind: FileKind) -> BackendResult<Vec<FileInfo>>;
    /// Removes a file; removing a missing file is not an error.
    fn remove(&self, kind: FileKind, name: &str) -> BackendResult<()>;
    /// Removes what interrupted saves left half written; returns how many. Only
    /// safe while no one else writes (prune calls it under its exclusive lock).
    fn remove_incomplete(&self) -> BackendResult<usize>;
}

/// Whether a repository URL names remote storage (`s3://`, `az://`, `gs://`, …)
/// rather than a local folder: remote repositories get a local cache.
pub fn is_remote(url: &str) -> bool {
    url.contains("://") && !url.starts_with("file://")
}

/// Opens the backend a repository URL names. `options` are extra `object_store`
/// settings (key, value) applied over the cloud's usual environment variables.
pub fn open(url: &str, options: &[(String, String)]) -> BackendResult<Arc<dyn Backend>> {
    if let Some(path) = url.strip_prefix("file://") {
        return Ok(Arc::new(LocalBackend::new(path)));
    }
    if url.contains("://") {
        return Ok(Arc::new(CloudBackend::open(url, options)?));
    }
    Ok(Arc::new(LocalBackend::new(url)))
}

#[cfg(test)]
mod tests {
    use super::FileKind;

    #[test]
    fn paths_parse_back_to_their_kind_and_name() {
        let id = "ab".to_string() + &"0".repeat(62);
        for kind in FileKind::ALL {
            let name = if kind == FileKind::Config { "config".to_string() } else { id.clone() };
            assert_eq!(FileKind::of_path(&kind.path_of(&name)), Some((kind, name)));
        }
        for bad in ["", "keys", "keys/", "data/cd/ab00", "data/ab", "other/x", "config/x", "index/a/b", "/config"] {
            assert_eq!(FileKind::of_path(bad), None, "{bad}");
        }
    }
}
