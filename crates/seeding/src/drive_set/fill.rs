//! [`FillingBackend`]: a drive set first, another backend (the service) for what
//! the drives lack or hold damaged, so one damaged or missing drive costs a
//! download of what it held, not the whole restore.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use offsite_engine::backend::{Backend, BackendError, BackendResult, FileInfo, FileKind};
use serde::Serialize;

use super::DriveSetBackend;

/// What a [`FillingBackend`] read from its second backend.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FillStats {
    /// Repository files of which something was filled, by path (`data/ab/<id>`).
    pub files: Vec<String>,
    /// Reads (whole files or ranges) filled.
    pub reads: u64,
    /// Bytes filled.
    pub bytes: u64,
}

#[derive(Default)]
struct Filled {
    files: BTreeSet<String>,
    reads: u64,
    bytes: u64,
}

/// Reads from a drive set and, for a file or range the drives lack (an absent
/// drive, a file not on them) or cannot deliver (a bad block), from `fallback`,
/// logging and counting each fill. Listings are the union of both. Read-only:
/// writes are refused, as they are by the drive set.
pub struct FillingBackend {
    drives: Arc<DriveSetBackend>,
    fallback: Arc<dyn Backend>,
    location: String,
    filled: Mutex<Filled>,
}

impl FillingBackend {
    pub fn new(drives: Arc<DriveSetBackend>, fallback: Arc<dyn Backend>) -> Self {
        let location = format!("{}, filled from {}", drives.location(), fallback.location());
        FillingBackend { drives, fallback, location, filled: Mutex::new(Filled::default()) }
    }

    /// The drive set read first.
    pub fn drives(&self) -> &Arc<DriveSetBackend> {
        &self.drives
    }

    /// What was filled so far.
    pub fn stats(&self) -> FillStats {
        let filled = self.filled.lock().unwrap_or_else(|p| p.into_inner());
        FillStats { files: filled.files.iter().cloned().collect(), reads: filled.reads, bytes: filled.bytes }
    }

    fn fill(
        &self,
        kind: FileKind,
        name: &str,
        from_drives: BackendError,
        read: impl FnOnce() -> BackendResult<Bytes>,
    ) -> BackendResult<Bytes> {
        let path = kind.path_of(name);
        match read() {
            Ok(bytes) => {
                tracing::info!(file = %path, bytes = bytes.len(), "filled from {}: {from_drives}", self.fallback.location());
                let mut filled = self.filled.lock().unwrap_or_else(|p| p.into_inner());
                filled.files.insert(path);
                filled.reads += 1;
                filled.bytes += bytes.len() as u64;
                Ok(bytes)
            }
            Err(err) if err.is_not_found() && from_drives.is_not_found() => Err(err),
            Err(err) => Err(BackendError::Unreadable {
                path,
                reason: format!("{from_drives}; and from {}: {err}", self.fallback.location()),
            }),
        }
    }

    fn read_only(&self, verb: &'static str) -> BackendError {
        BackendError::ReadOnly { location: self.location.clone(), what: "drives filled from another storage", verb }
    }
}

impl Backend for FillingBackend {
    fn location(&self) -> &str {
        &self.location
    }

    fn create(&self) -> BackendResult<()> {
        Err(self.read_only("hold a new repository"))
    }

    fn save(&self, _kind: FileKind, _name: &str, _data: Bytes) -> BackendResult<()> {
        Err(self.read_only("store files"))
    }

    fn load(&self, kind: FileKind, name: &str) -> BackendResult<Bytes> {
        match self.drives.load(kind, name) {
            Ok(bytes) => Ok(bytes),
            Err(err) => self.fill(kind, name, err, || self.fallback.load(kind, name)),
        }
    }

    fn load_range(&self, kind: FileKind, name: &str, offset: u64, length: u64) -> BackendResult<Bytes> {
        match self.drives.load_range(kind, name, offset, length) {
            Ok(bytes) => Ok(bytes),
            Err(err) => self.fill(kind, name, err, || self.fallback.load_range(kind, name, offset, length)),
        }
    }

    fn size(&self, kind: FileKind, name: &str) -> BackendResult<Option<u64>> {
        match self.drives.size(kind, name)? {
            Some(size) => Ok(Some(size)),
            None => self.fallback.size(kind, name),
        }
    }

    fn list(&self, kind: FileKind) -> BackendResult<Vec<FileInfo>> {
        // A name is the hash of the content, so both sides agree on its size.
        let mut all: BTreeMap<String, u64> =
            self.fallback.list(kind)?.into_iter().map(|info| (info.name, info.size)).collect();
        for info in self.drives.list(kind)? {
            all.insert(info.name, info.size);
        }
        Ok(all.into_iter().map(|(name, size)| FileInfo { name, size }).collect())
    }

    fn remove(&self, _kind: FileKind, _name: &str) -> BackendResult<()> {
        Err(self.read_only("remove files"))
    }

    fn remove_incomplete(&self) -> BackendResult<usize> {
        Ok(0)
    }
}
