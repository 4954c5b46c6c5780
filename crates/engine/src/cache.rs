//! The local repository cache: copies of a remote repository's index files,
//! snapshots, key files and tree packs on this machine's disk, so that a backup
//! over a thin, far link reads the parent snapshot's trees locally instead of
//! asking for each one.
//!
//! The cache holds files exactly as the repository stores them (sealed: nothing
//! decrypted is ever written here), named by the BLAKE3 hash of their bytes as in
//! the repository. A name therefore fixes the content: an entry can be missing or
//! damaged, never out of date. Every read checks the entry against its name (a
//! pack once per process, then its blobs are authenticated by their seal when
//! opened); a damaged or truncated entry is removed and the caller fetches the
//! file again. Losing or deleting the cache only costs time.
//!
//! Layout, mirroring the repository's: `<root>/<repository id>/{keys,index,
//! snapshots,data/xx}/<name>`, with a `CACHEDIR.TAG` at the root so that backup
//! tools skip it. Entries are written to a temporary name and renamed, so several
//! processes can share one cache folder: they only ever write identical bytes
//! under one name. The cache is bounded: past its limit the least recently used
//! entries go first.
//!
//! [`crate::backend::CachedBackend`] puts a cache in front of a backend.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use serde::Serialize;

use crate::backend::FileKind;
use crate::id::Id;

/// The default bound on one repository's cache. Tree packs and the index of a
/// 10 TB repository are a few hundred MiB; the rest is headroom.
pub const DEFAULT_MAX_BYTES: u64 = 4 << 30;

/// Marks the cache root for backup tools (https://bford.info/cachedir/).
const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file marks offsite's repository cache; backup tools skip this folder.\n";

/// The kinds of repository file the cache keeps: all are named by their content.
/// (The config is not: it is read at every open, one small request.)
pub fn is_cached_kind(kind: FileKind) -> bool {
    matches!(kind, FileKind::Key | FileKind::Index | FileKind::Snapshot | FileKind::Pack)
}

/// Where caches live when no folder is given: `$XDG_CACHE_HOME/offsite`, else
/// `~/.cache/offsite`; `None` without a home folder.
pub fn default_root() -> Option<PathBuf> {
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from).filter(|p| p.is_absolute()) {
        return Some(xdg.join("offsite"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/offsite"))
}

/// Where a repository's cache lives and how large it may grow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    /// The folder holding one subfolder per repository id.
    pub root: PathBuf,
    pub max_bytes: u64,
}

impl CacheSettings {
    pub fn at(root: impl Into<PathBuf>) -> CacheSettings {
        CacheSettings { root: root.into(), max_bytes: DEFAULT_MAX_BYTES }
    }
}

/// What a cache folder holds, per kind of file.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct CacheUsage {
    /// The id of the repository cached.
    pub repository: String,
    pub folder: PathBuf,
    pub max_bytes: u64,
    pub files: u64,
    pub bytes: u64,
    pub index_files: u64,
    pub snapshot_files: u64,
    pub key_files: u64,
    pub packs: u64,
}

/// One repository's cache folder.
pub struct RepositoryCache {
    dir: PathBuf,
    max_bytes: u64,
    /// Bytes stored, as counted when opened plus what this process added since.
    bytes: AtomicU64,
    /// Packs checked against their names in this process, kept open for ranged reads.
    open_packs: Mutex<HashMap<Id, Arc<File>>>,
    /// Entries whose use was recorded (mtime set) in this process.
    touched: Mutex<HashSet<(FileKind, Id)>>,
}

impl std::fmt::Debug for RepositoryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepositoryCache").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl RepositoryCache {
    /// Opens (creating it when missing) the cache of repository `id` under `root`.
    pub fn open(root: &Path, id: &Id, max_bytes: u64) -> std::io::Result<RepositoryCache> {
        fs::create_dir_all(root)?;
        let tag = root.join("CACHEDIR.TAG");
        if !tag.exists() {
            write_atomically(&tag, CACHEDIR_TAG.as_bytes())?;
        }
        let dir = root.join(id.to_hex());
        fs::create_dir_all(&dir)?;
        let cache = RepositoryCache {
            dir,
            max_bytes,
            bytes: AtomicU64::new(0),
            open_packs: Mutex::new(HashMap::new()),
            touched: Mutex::new(HashSet::new()),
        };
        let bytes = cache.sweep();
        cache.bytes.store(bytes, Ordering::Relaxed);
        Ok(cache)
    }

    /// One walk of the folder at open: removes the temporary files of writers
    /// that were killed before renaming them (their process is gone from this
    /// host) and returns the bytes the entries hold.
    fn sweep(&self) -> u64 {
        let mut bytes = 0;
        let mut folders = vec![self.dir.clone()];
        while let Some(folder) = folders.pop() {
            let Ok(listing) = fs::read_dir(&folder) else { continue };
            for entry in listing.flatten() {
                let path = entry.path();
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    folders.push(path);
                    continue;
                }
                let name = entry.file_name();
                match name.to_str().and_then(temporary_writer) {
                    Some(pid) if !Path::new(&format!("/proc/{pid}")).exists() => {
                        let _ = fs::remove_file(&path);
                    }
                    Some(_) => {}
                    None => bytes += entry.metadata().map_or(0, |m| m.len()),
                }
            }
        }
        bytes
    }

    /// The folder of this repository's cache.
    pub fn folder(&self) -> &Path {
        &self.dir
    }

    fn path(&self, kind: FileKind, id: &Id) -> PathBuf {
        self.dir.join(kind.path_of(&id.to_hex()))
    }

    /// The whole file, when cached and intact. A damaged entry is removed.
    pub fn get(&self, kind: FileKind, id: &Id) -> Option<Bytes> {
        let path = self.path(kind, id);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!("cache entry {} unreadable, fetching it again: {e}", path.display());
                self.remove(kind, id);
                return None;
            }
        };
        if Id::of_stored(&bytes) != *id {
            tracing::warn!("cache entry {} is damaged; removed, fetching it again", path.display());
            self.remove(kind, id);
            return None;
        }
        self.touch(kind, id, &path);
        Some(Bytes::from(bytes))
    }

    /// `length` bytes at `offset` of a cached pack. The first read of a pack in
    /// this process checks the whole entry against its name; a damaged one is
    /// removed and `None` returned, as for a pack not cached.
    pub fn get_range(&self, id: &Id, offset: u64, length: u64) -> Option<Bytes> {
        let file = self.open_pack(id)?;
        let mut buffer = vec![0; usize::try_from(length).ok()?];
        match file.read_exact_at(&mut buffer, offset) {
            Ok(()) => Some(Bytes::from(buffer)),
            Err(e) => {
                // A pack checked whole cannot be short, unless something cut it since.
                tracing::warn!("cache entry of pack {} unreadable, fetching it again: {e}", id.short());
                self.remove(FileKind::Pack, id);
                None
            }
        }
    }

    /// Whether a pack is cached (not checked: [`Self::get_range`] checks).
    pub fn has_pack(&self, id: &Id) -> bool {
        self.path(FileKind::Pack, id).exists()
    }

    fn open_pack(&self, id: &Id) -> Option<Arc<File>> {
        if let Some(file) = lock(&self.open_packs).get(id) {
            return Some(file.clone());
        }
        let path = self.path(FileKind::Pack, id);
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!("cache entry {} unreadable, fetching it again: {e}", path.display());
                self.remove(FileKind::Pack, id);
                return None;
            }
        };
        let mut hasher = blake3::Hasher::new();
        if let Err(e) = hasher.update_reader(&mut file) {
            tracing::warn!("cache entry {} unreadable, fetching it again: {e}", path.display());
            self.remove(FileKind::Pack, id);
            return None;
        }
        if Id(*hasher.finalize().as_bytes()) != *id {
            tracing::warn!("cache entry {} is damaged; removed, fetching it again", path.display());
            self.remove(FileKind::Pack, id);
            return None;
        }
        self.touch(FileKind::Pack, id, &path);
        let file = Arc::new(file);
        lock(&self.open_packs).insert(*id, file.clone());
        Some(file)
    }

    /// Stores a file; best effort (a cache that cannot be written only costs time).
    pub fn put(&self, kind: FileKind, id: &Id, data: &[u8]) {
        let path = self.path(kind, id);
        if path.exists() {
            return;
        }
        if let Err(e) = path.parent().map_or(Ok(()), fs::create_dir_all).and_then(|()| write_atomically(&path, data)) {
            tracing::warn!("could not cache {}: {e}", path.display());
            return;
        }
        let total = self.bytes.fetch_add(data.len() as u64, Ordering::Relaxed) + data.len() as u64;
        if total > self.max_bytes {
            self.evict();
        }
    }

    /// Removes one entry, if present.
    pub fn remove(&self, kind: FileKind, id: &Id) {
        if kind == FileKind::Pack {
            lock(&self.open_packs).remove(id);
        }
        let path = self.path(kind, id);
        if let Ok(meta) = fs::metadata(&path) {
            if fs::remove_file(&path).is_ok() {
                let _ = self
                    .bytes
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| Some(b.saturating_sub(meta.len())));
            }
        }
    }

    /// Removes the entries of `kind` that `keep` rejects: files the repository no
    /// longer has (a listing, or the index, says which). Returns how many.
    pub fn retain(&self, kind: FileKind, keep: impl Fn(&Id) -> bool) -> usize {
        let mut removed = 0;
        for (id, _, _) in self.entries(kind) {
            if !keep(&id) {
                self.remove(kind, &id);
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::debug!("removed {removed} cache entries of {kind:?} that the repository no longer has");
        }
        removed
    }

    /// The entries of one kind: id, size, last use.
    fn entries(&self, kind: FileKind) -> Vec<(Id, u64, SystemTime)> {
        let base = self.dir.join(kind.folder());
        let mut folders = vec![base.clone()];
        if kind == FileKind::Pack {
            if let Ok(subfolders) = fs::read_dir(&base) {
                folders.extend(subfolders.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
            }
        }
        let mut out = Vec::new();
        for folder in folders {
            let Ok(listing) = fs::read_dir(&folder) else { continue };
            for entry in listing.flatten() {
                let Some(id) = entry.file_name().to_str().and_then(|n| n.parse::<Id>().ok()) else { continue };
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_file() {
                    out.push((id, meta.len(), meta.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
                }
            }
        }
        out
    }

    /// Counts what the folder holds.
    pub fn usage(&self) -> CacheUsage {
        let repository = self.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut usage =
            CacheUsage { repository, folder: self.dir.clone(), max_bytes: self.max_bytes, ..CacheUsage::default() };
        for kind in [FileKind::Key, FileKind::Index, FileKind::Snapshot, FileKind::Pack] {
            let entries = self.entries(kind);
            let count = entries.len() as u64;
            usage.files += count;
            usage.bytes += entries.iter().map(|e| e.1).sum::<u64>();
            match kind {
                FileKind::Key => usage.key_files = count,
                FileKind::Index => usage.index_files = count,
                FileKind::Snapshot => usage.snapshot_files = count,
                _ => usage.packs = count,
            }
        }
        usage
    }

    /// Records a use, so eviction keeps what is read: the entry's mtime, once per
    /// entry and process.
    fn touch(&self, kind: FileKind, id: &Id, path: &Path) {
        if lock(&self.touched).insert((kind, *id)) {
            if let Ok(file) = File::options().write(true).open(path) {
                let _ = file.set_modified(SystemTime::now());
            }
        }
    }

    /// Removes the least recently used entries until the cache is at 80% of its
    /// bound. Entries another process is reading stay readable to it (Unix keeps an
    /// open file until it is closed).
    fn evict(&self) {
        let mut entries: Vec<(FileKind, Id, u64, SystemTime)> = Vec::new();
        for kind in [FileKind::Key, FileKind::Index, FileKind::Snapshot, FileKind::Pack] {
            entries.extend(self.entries(kind).into_iter().map(|(id, size, used)| (kind, id, size, used)));
        }
        let mut total: u64 = entries.iter().map(|e| e.2).sum();
        self.bytes.store(total, Ordering::Relaxed);
        let target = self.max_bytes / 10 * 8;
        entries.sort_by_key(|e| e.3);
        let mut evicted = 0;
        for (kind, id, size, _) in entries {
            if total <= target {
                break;
            }
            self.remove(kind, &id);
            total = total.saturating_sub(size);
            evicted += 1;
        }
        tracing::debug!("cache over its bound of {} bytes: evicted {evicted} entries", self.max_bytes);
    }
}

/// The caches of every repository under `root` (a folder named by each
/// repository's id), for `cache info`; none when the folder does not exist.
pub fn caches_under(settings: &CacheSettings) -> std::io::Result<Vec<CacheUsage>> {
    let listing = match fs::read_dir(&settings.root) {
        Ok(listing) => listing,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in listing {
        let entry = entry?;
        let Some(id) = entry.file_name().to_str().and_then(|n| n.parse::<Id>().ok()) else { continue };
        if entry.file_type()?.is_dir() {
            out.push(RepositoryCache::open(&settings.root, &id, settings.max_bytes)?.usage());
        }
    }
    out.sort_by(|a, b| a.repository.cmp(&b.repository));
    Ok(out)
}

/// Removes the caches under `root` (of one repository, or of all); returns what
/// they held. The next run fetches what it needs again.
pub fn clear_caches(settings: &CacheSettings, repository: Option<&Id>) -> std::io::Result<Vec<CacheUsage>> {
    let mut cleared = Vec::new();
    for usage in caches_under(settings)? {
        if repository.is_none_or(|id| id.to_hex() == usage.repository) {
            fs::remove_dir_all(&usage.folder)?;
            cleared.push(usage);
        }
    }
    Ok(cleared)
}

/// Writes `data` to a temporary file beside `path` and renames it into place, so
/// a reader sees the whole file or none (and a crash leaves only a temporary).
fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("entry");
    let temp = path.with_file_name(format!(".{name}.{}.{:x}.tmp", std::process::id(), rand::random::<u32>()));
    let result = (|| {
        let mut file = File::create(&temp)?;
        file.write_all(data)?;
        fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// The process id in a temporary's name (`.NAME.PID.RANDOM.tmp`).
fn temporary_writer(name: &str) -> Option<u32> {
    let inner = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let mut parts = inner.rsplit('.');
    parts.next()?;
    parts.next()?.parse().ok()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
