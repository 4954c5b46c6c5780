//! Repository locks: many readers and backups at once, or one pruner alone.
//!
//! A lock file is rewritten every few minutes while its holder works. A lock older
//! than [`STALE_AFTER`], or held by a process that no longer exists on this host,
//! is stale: it no longer blocks anyone and `unlock` removes it. Taking a lock also
//! removes the locks of this host's processes that are gone (a killed backup,
//! prune or agent), so kills do not pile locks up; another host's locks are left to
//! that host, or to `unlock`.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use time::OffsetDateTime;

use crate::backend::FileKind;
use crate::crypto::Purpose;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::repofile::lock::LockFile;
use crate::repository::Repository;

const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);
pub const STALE_AFTER: time::Duration = time::Duration::minutes(30);

/// A held lock; dropping it removes the lock file.
pub struct RepositoryLock<'r> {
    repo: &'r Repository,
    current: std::sync::Arc<std::sync::Mutex<Id>>,
    stop: Option<mpsc::Sender<()>>,
    refresher: Option<JoinHandle<()>>,
}

impl LockFile {
    /// Whether this lock still counts.
    pub fn is_stale(&self, now: OffsetDateTime) -> bool {
        now - self.time > STALE_AFTER || self.holder_is_gone_from_this_host()
    }

    /// Whether it was taken on this host by a process that no longer exists: its
    /// holder was killed (or lost its lock file's removal).
    pub fn holder_is_gone_from_this_host(&self) -> bool {
        self.hostname == crate::host::hostname() && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }

    pub fn describe(&self) -> String {
        format!(
            "{} (pid {} on {}, by {}, since {})",
            self.operation,
            self.pid,
            self.hostname,
            self.username,
            self.time.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
        )
    }
}

impl LockFile {
    /// A lock of this process, as of now.
    fn of_this_process(exclusive: bool, operation: &str) -> Self {
        LockFile {
            time: OffsetDateTime::now_utc(),
            exclusive,
            hostname: crate::host::hostname(),
            username: crate::host::username(),
            pid: std::process::id(),
            operation: operation.to_string(),
        }
    }
}

/// Stores a lock file as it is given; [`RepositoryLock::acquire`] is how a process
/// takes a lock.
pub fn save_lock(repo: &Repository, lock: &LockFile) -> Result<Id> {
    repo.save_sealed(FileKind::Lock, Purpose::Lock, &serde_json::to_vec(lock).expect("lock serialises"))
}

fn write_lock(repo: &Repository, exclusive: bool, operation: &str) -> Result<Id> {
    save_lock(repo, &LockFile::of_this_process(exclusive, operation))
}

/// Removes the locks left by processes of this host that are gone; returns them.
/// Best effort: a lock that cannot be removed is only logged, since it blocks no one.
fn remove_locks_of_dead_processes_here(repo: &Repository, locks: &[(Id, LockFile)]) -> Vec<Id> {
    let mut removed = Vec::new();
    for (id, lock) in locks.iter().filter(|(_, lock)| lock.holder_is_gone_from_this_host()) {
        match repo.backend().remove(FileKind::Lock, &id.to_hex()) {
            Ok(()) => {
                tracing::info!("removed the lock {} left by a process that is gone: {}", id.short(), lock.describe());
                removed.push(*id);
            }
            Err(e) => tracing::warn!("could not remove the stale lock {}: {e}", id.short()),
        }
    }
    removed
}

/// Every lock file that can be read, with its id.
pub fn list_locks(repo: &Repository) -> Result<Vec<(Id, LockFile)>> {
    read_locks(repo, repo.list_ids(FileKind::Lock)?)
}

/// The lock files of `ids`, read side by side: each is a round trip on a remote
/// repository, and a backup waits for them before it starts.
fn read_locks(repo: &Repository, ids: Vec<Id>) -> Result<Vec<(Id, LockFile)>> {
    let read = crate::repository::fetch_concurrently(&ids, |id| repo.load_sealed(FileKind::Lock, Purpose::Lock, id));
    let mut out = Vec::new();
    for (id, plain) in ids.into_iter().zip(read) {
        match plain {
            Ok(plain) => {
                if let Ok(lock) = serde_json::from_slice::<LockFile>(&plain) {
                    out.push((id, lock));
                }
            }
            // Removed while we listed: its holder finished.
            Err(Error::Backend(e)) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

fn conflict_among(locks: Vec<(Id, LockFile)>, exclusive: bool) -> Option<LockFile> {
    let now = OffsetDateTime::now_utc();
    locks.into_iter().find(|(_, lock)| !lock.is_stale(now) && (exclusive || lock.exclusive)).map(|(_, lock)| lock)
}

impl<'r> RepositoryLock<'r> {
    /// Takes a shared (`exclusive = false`) or exclusive lock, or says who holds one.
    pub fn acquire(repo: &'r Repository, exclusive: bool, operation: &str) -> Result<Self> {
        // Written first, then every other lock read: of two processes taking locks
        // together, at least one sees the other's file and backs off. Two round
        // trips, whatever else is in the repository.
        let id = write_lock(repo, exclusive, operation)?;
        let others: Vec<Id> = repo.list_ids(FileKind::Lock)?.into_iter().filter(|other| *other != id).collect();
        let others = read_locks(repo, others)?;
        let removed = remove_locks_of_dead_processes_here(repo, &others);
        let others = others.into_iter().filter(|(other, _)| !removed.contains(other)).collect();
        if let Some(holder) = conflict_among(others, exclusive) {
            let _ = repo.backend().remove(FileKind::Lock, &id.to_hex());
            return Err(Error::Locked { holder: holder.describe() });
        }
        let current = std::sync::Arc::new(std::sync::Mutex::new(id));
        let (stop, stopped) = mpsc::channel::<()>();
        let backend = repo.backend().clone();
        let key = repo.key().clone();
        let shared = current.clone();
        let operation = operation.to_string();
        let refresher = std::thread::Builder::new()
            .name("offsite-lock".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(REFRESH_EVERY) {
                    let file = LockFile::of_this_process(exclusive, &operation);
                    let sealed = key.seal(Purpose::Lock, &serde_json::to_vec(&file).expect("lock serialises"));
                    let new_id = Id::of_stored(&sealed);
                    if backend.save(FileKind::Lock, &new_id.to_hex(), bytes::Bytes::from(sealed)).is_ok() {
                        let mut guard = shared.lock().unwrap_or_else(|p| p.into_inner());
                        let _ = backend.remove(FileKind::Lock, &guard.to_hex());
                        *guard = new_id;
                    }
                }
            })
            .map_err(|e| Error::io("lock refresher thread", e))?;
        Ok(RepositoryLock { repo, current, stop: Some(stop), refresher: Some(refresher) })
    }
}

impl Drop for RepositoryLock<'_> {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(handle) = self.refresher.take() {
            let _ = handle.join();
        }
        let id = *self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = self.repo.backend().remove(FileKind::Lock, &id.to_hex()) {
            tracing::warn!("could not remove lock {}: {e}", id.short());
        }
    }
}

/// Removes stale locks, or every lock with `all`. Returns what was removed.
pub fn unlock(repo: &Repository, all: bool) -> Result<Vec<LockFile>> {
    let now = OffsetDateTime::now_utc();
    let mut removed = Vec::new();
    for (id, lock) in list_locks(repo)? {
        if all || lock.is_stale(now) {
            repo.backend().remove(FileKind::Lock, &id.to_hex())?;
            removed.push(lock);
        }
    }
    Ok(removed)
}
