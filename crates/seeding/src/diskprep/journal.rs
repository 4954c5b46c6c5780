//! The diskprep journal: everything needed to finish an interrupted preparation
//! and to show its result again. A JSON file at [`super::DrivePlan::journal`] with
//! side files next to it:
//!
//! - `<journal>.listing`: the staging listing (paths and sizes) the set was started
//!   from, written once, so a changed staging location can be named by file;
//! - `<journal>.manifest-<index>`: each finished drive's sealed manifest
//!   ([`crate::drive::DriveSummary::sealed_manifest`]);
//! - `<journal>.digests-<index>`: the block digests of the drive in progress, 32
//!   bytes per synced block, appended at each checkpoint (so the JSON stays small
//!   and rewriting it every checkpoint stays cheap on a large drive).
//!
//! - `<journal>.lock`: held (an advisory `flock`) by the diskprep run using the
//!   journal, so a second run on the same journal is refused ([`JournalLock`]).
//!
//! The journal holds recovery keys and the drive key of the drive in progress, so
//! every file is created with mode 0600, and each is written atomically (temporary
//! file, fsync, rename, fsync of the folder): a crash leaves the old or the new
//! version, never a mix.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{DiskprepError, PreparedDrive};
use crate::staging::StagingFile;

pub const JOURNAL_VERSION: u32 = 1;

/// Held while a preparation uses a journal: a second diskprep on the same journal
/// (two windows on one copy computer, a script started twice) is refused instead of
/// interleaving its drives and checkpoints with the first. An advisory lock on
/// `<journal>.lock`, which the kernel drops when the process ends, so a killed run
/// never leaves a stale lock behind.
#[derive(Debug)]
pub struct JournalLock {
    _file: File,
}

impl JournalLock {
    /// Takes the lock of the journal at `journal`, without waiting.
    pub fn acquire(journal: &Path) -> Result<JournalLock, DiskprepError> {
        let path = side_file(journal, "lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| DiskprepError::io(&path, e))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(JournalLock { _file: file }),
            Err(rustix::io::Errno::WOULDBLOCK) => Err(DiskprepError::JournalBusy { path: journal.to_path_buf() }),
            Err(e) => Err(DiskprepError::io(&path, e.into())),
        }
    }
}

/// A place in the stream: the file (index in the listing), the offset in it, and
/// the stream offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StreamPos {
    pub file: usize,
    pub offset_in_file: u64,
    pub stream_offset: u64,
}

/// A finished drive: what the set reports, and where it starts and ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishedDrive {
    pub drive: PreparedDrive,
    pub start: StreamPos,
    pub end: StreamPos,
}

/// The drive in progress at its last checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InProgress {
    pub index: u32,
    /// Hex.
    pub drive_id: String,
    /// Hex; reused on resume (see `prepare.rs` on why that is safe).
    pub drive_key: String,
    pub recovery_key: String,
    /// The file holding the drive.
    pub path: PathBuf,
    pub start: StreamPos,
    /// Data blocks written and synced.
    pub blocks_synced: u64,
}

/// The journal's JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    pub version: u32,
    pub import_job: String,
    pub staging: PathBuf,
    /// Hex.
    pub import_public_key: String,
    pub block_size: u32,
    /// A repair set: the files it carries (all of the staging location otherwise).
    pub repair_files: Option<Vec<String>>,
    pub staging_digest: String,
    pub total_bytes: u64,
    /// Hex.
    pub set_id: String,
    pub drives: Vec<FinishedDrive>,
    pub in_progress: Option<InProgress>,
    pub finished: bool,
}

impl Journal {
    /// Reads the journal at `path`; `Ok(None)` when there is none.
    pub fn load(path: &Path) -> Result<Option<Journal>, DiskprepError> {
        let text = match fs::read(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(DiskprepError::io(path, e)),
        };
        let damaged = |reason: String| DiskprepError::JournalDamaged { path: path.to_path_buf(), reason };
        let journal: Journal = serde_json::from_slice(&text).map_err(|e| damaged(e.to_string()))?;
        if journal.version != JOURNAL_VERSION {
            return Err(damaged(format!("unknown journal version {}", journal.version)));
        }
        Ok(Some(journal))
    }

    /// Writes the journal atomically to `path`.
    pub fn save(&self, path: &Path) -> Result<(), DiskprepError> {
        let text = serde_json::to_vec_pretty(self)
            .map_err(|e| DiskprepError::JournalDamaged { path: path.to_path_buf(), reason: e.to_string() })?;
        write_private_atomically(path, &text)
    }

    /// Records the listing the set starts from (once, before any drive).
    pub fn save_listing(journal: &Path, files: &[StagingFile]) -> Result<(), DiskprepError> {
        let path = side_file(journal, "listing");
        let text = serde_json::to_vec(files)
            .map_err(|e| DiskprepError::JournalDamaged { path: path.clone(), reason: e.to_string() })?;
        write_private_atomically(&path, &text)
    }

    pub fn load_listing(journal: &Path) -> Result<Vec<StagingFile>, DiskprepError> {
        let path = side_file(journal, "listing");
        let text = fs::read(&path).map_err(|e| DiskprepError::io(&path, e))?;
        serde_json::from_slice(&text)
            .map_err(|e| DiskprepError::JournalDamaged { path, reason: format!("the listing: {e}") })
    }
}

fn side_file(journal: &Path, suffix: &str) -> PathBuf {
    let mut name = journal.as_os_str().to_os_string();
    name.push(format!(".{suffix}"));
    PathBuf::from(name)
}

/// The sealed manifest copy of finished drive `index`.
pub fn manifest_path(journal: &Path, index: u32) -> PathBuf {
    side_file(journal, &format!("manifest-{index}"))
}

/// The block digests of drive `index` while it is in progress.
pub fn digests_path(journal: &Path, index: u32) -> PathBuf {
    side_file(journal, &format!("digests-{index}"))
}

/// Makes the digest file at `path` hold its first `already` digests followed by
/// `new`, synced (`already = 0` starts it over).
pub fn append_digests(path: &Path, already: u64, new: &[[u8; 32]]) -> Result<(), DiskprepError> {
    let io = |e| DiskprepError::io(path, e);
    let mut file =
        OpenOptions::new().create(true).write(true).truncate(already == 0).mode(0o600).open(path).map_err(io)?;
    let at = already.checked_mul(32).ok_or_else(|| DiskprepError::JournalDamaged {
        path: path.to_path_buf(),
        reason: "too many block digests".into(),
    })?;
    file.seek(SeekFrom::Start(at)).map_err(io)?;
    let mut bytes = Vec::with_capacity(new.len() * 32);
    for digest in new {
        bytes.extend_from_slice(digest);
    }
    file.write_all(&bytes).map_err(io)?;
    file.set_len(at + bytes.len() as u64).map_err(io)?;
    file.sync_all().map_err(io)
}

/// The first `blocks` digests in the digest file at `path`.
pub fn read_digests(path: &Path, blocks: u64) -> Result<Vec<[u8; 32]>, DiskprepError> {
    let mut file = File::open(path).map_err(|e| DiskprepError::io(path, e))?;
    let len = file.metadata().map_err(|e| DiskprepError::io(path, e))?.len();
    let needed = blocks.checked_mul(32).filter(|n| *n <= len).ok_or_else(|| DiskprepError::JournalDamaged {
        path: path.to_path_buf(),
        reason: format!("it holds {len} bytes, fewer than the {blocks} block digests the journal counts"),
    })?;
    let mut bytes = vec![0u8; needed as usize];
    file.read_exact(&mut bytes).map_err(|e| DiskprepError::io(path, e))?;
    let mut digests = Vec::with_capacity(bytes.len() / 32);
    for chunk in bytes.chunks_exact(32) {
        let mut digest = [0u8; 32];
        digest.copy_from_slice(chunk);
        digests.push(digest);
    }
    Ok(digests)
}

/// Temporary file (mode 0600), fsync, rename over `path`, fsync of the folder.
pub fn write_private_atomically(path: &Path, bytes: &[u8]) -> Result<(), DiskprepError> {
    let tmp = side_file(path, "tmp");
    let result = (|| {
        let mut file = OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(DiskprepError::io(path, e));
    }
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    // A folder fsync makes the rename durable; some file systems refuse it, and
    // the data itself is already synced, so that is not an error.
    if let Ok(dir) = File::open(folder) {
        let _ = dir.sync_all();
    }
    Ok(())
}
