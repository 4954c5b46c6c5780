//! Backup: walk the given paths, store what changed, write a snapshot.
//!
//! Directories are walked in parallel (rayon), each file read and chunked by the
//! thread that found it; chunks are hashed there and only new ones go on to the
//! [`BlobSaver`] pipeline for compression, encryption and upload. A file whose size,
//! mtime, ctime and inode match the parent snapshot is not read at all.
//!
//! The snapshot's root tree places each backed-up path at its absolute location
//! (`/home/ann/docs` appears as `home/ann/docs`), so several paths never collide
//! and a restore to `/` puts everything back where it was.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use globset::{GlobSet, GlobSetBuilder};
use rayon::prelude::*;
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::MasterIndex;
use crate::lock::RepositoryLock;
use crate::progress::Progress;
use crate::repofile::snapshot::{BackupSummary, Snapshot};
use crate::repofile::tree::{Node, NodeKind, Tree};
use crate::repofile::BlobType;
use crate::repository::{Repository, StoredIndex};
use crate::saver::BlobSaver;
use crate::source;

/// Which snapshot's metadata decides what is unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ParentChoice {
    /// The latest snapshot of the same paths from this host.
    #[default]
    Latest,
    /// This snapshot (id, prefix or `latest`).
    Snapshot(String),
    /// Read everything.
    None,
}

#[derive(Debug, Clone)]
pub struct BackupOptions {
    pub paths: Vec<PathBuf>,
    /// Glob patterns: without a `/` they match a name anywhere, with one the whole path.
    pub excludes: Vec<String>,
    pub tags: Vec<String>,
    pub parent: ParentChoice,
    /// Count files and bytes first, so progress can show an ETA.
    pub scan_totals: bool,
    pub hostname: Option<String>,
}

impl BackupOptions {
    pub fn new(paths: Vec<PathBuf>) -> Self {
        BackupOptions {
            paths,
            excludes: Vec::new(),
            tags: Vec::new(),
            parent: ParentChoice::Latest,
            scan_totals: false,
            hostname: None,
        }
    }
}

/// An entry left out of the snapshot, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SkippedItem {
    pub path: String,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct BackupOutcome {
    pub snapshot_id: Id,
    pub snapshot: Snapshot,
    /// Unreadable entries; when not empty the backup is incomplete.
    pub skipped: Vec<SkippedItem>,
    /// Packs of an interrupted earlier run that were indexed and reused.
    pub recovered_packs: usize,
    /// The repository's snapshots, oldest first, as listed under the backup's lock
    /// and with the new one last: no forget can remove one while a backup holds
    /// its lock, so whoever publishes them needs no listing of its own.
    pub snapshots: Vec<(Id, Snapshot)>,
}

pub(crate) struct Excludes(GlobSet, GlobSet);

impl Excludes {
    pub(crate) fn new(patterns: &[String]) -> Result<Self> {
        let mut names = GlobSetBuilder::new();
        let mut paths = GlobSetBuilder::new();
        for pattern in patterns {
            let glob = globset::GlobBuilder::new(pattern.trim_end_matches('/'))
                .literal_separator(true)
                .build()
                .map_err(|e| Error::Refused(format!("exclude pattern '{pattern}' is not a valid glob: {e}")))?;
            if pattern.trim_end_matches('/').contains('/') {
                paths.add(glob);
            } else {
                names.add(glob);
            }
        }
        let build = |b: GlobSetBuilder| b.build().map_err(|e| Error::Refused(format!("exclude patterns: {e}")));
        Ok(Excludes(build(names)?, build(paths)?))
    }

    pub(crate) fn excluded(&self, path: &Path) -> bool {
        path.file_name().is_some_and(|name| self.0.is_match(name)) || self.1.is_match(path)
    }
}

/// Everything the walking threads share.
struct Walk<'a, 'r> {
    repo: &'r Repository,
    index: &'r MasterIndex,
    saver: &'a BlobSaver<'r>,
    excludes: &'a Excludes,
    progress: &'a Progress,
    skipped: Mutex<Vec<SkippedItem>>,
    /// Content of multiply-linked files already read, by (device, inode).
    hardlinks: Mutex<HashMap<(u64, u64), Vec<Id>>>,
    summary: Mutex<BackupSummary>,
}

impl Walk<'_, '_> {
    fn skip(&self, path: &Path, reason: impl ToString) {
        let reason = reason.to_string();
        tracing::warn!("skipping {}: {reason}", path.display());
        self.progress.errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.skipped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(SkippedItem { path: path.display().to_string(), reason });
    }

    fn count(&self, f: impl FnOnce(&mut BackupSummary)) {
        f(&mut self.summary.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn load_parent_tree(&self, parent: Option<&Node>) -> Option<Tree> {
        match parent?.kind {
            NodeKind::Dir { subtree } => match self.repo.load_tree(self.index, &subtree) {
                Ok(tree) => Some(tree),
                Err(e) => {
                    tracing::warn!("parent tree {} unreadable, reading files again: {e}", subtree.short());
                    None
                }
            },
            _ => None,
        }
    }

    /// Archives one entry; `None` when it is excluded or could not be read.
    /// `meta` is the entry's `lstat`, when the directory listing already has it.
    fn entry(&self, path: &Path, name: Vec<u8>, meta: Option<Metadata>, parent: Option<&Node>) -> Option<Node> {
        if self.excludes.excluded(path) {
            return None;
        }
        let meta = match meta.map_or_else(|| fs::symlink_metadata(path), Ok) {
            Ok(meta) => meta,
            Err(e) => {
                self.skip(path, e);
                return None;
            }
        };
        let result = if meta.is_dir() {
            self.dir(path, name, &meta, parent)
        } else if meta.is_file() {
            self.file(path, name, &meta, parent)
        } else {
            self.count(|s| s.others += 1);
            source::special_kind(path, &meta)
                .map(|kind| {
                    source::node_from_metadata(name, &meta, kind.unwrap_or(NodeKind::Fifo), source::read_xattrs(path))
                })
                .map_err(|e| Error::io(path, e))
        };
        match result {
            Ok(node) => Some(node),
            Err(Error::Io { source, .. }) => {
                self.skip(path, source);
                None
            }
            Err(e) => {
                self.skip(path, e);
                None
            }
        }
    }

    fn dir(&self, path: &Path, name: Vec<u8>, meta: &Metadata, parent: Option<&Node>) -> Result<Node> {
        // The listing's lstat is relative to the open directory (fstatat), cheaper
        // than resolving every full path again.
        let mut children: Vec<(OsString, Option<Metadata>)> = fs::read_dir(path)
            .map_err(|e| Error::io(path, e))?
            .map(|entry| entry.map(|e| (e.file_name(), e.metadata().ok())))
            .collect::<std::io::Result<_>>()
            .map_err(|e| Error::io(path, e))?;
        children.sort_by(|a, b| a.0.cmp(&b.0));
        let parent_tree = self.load_parent_tree(parent);
        let nodes: Vec<Node> = children
            .into_par_iter()
            .filter_map(|(child, meta)| {
                let child_path = path.join(&child);
                let child_name = child.into_vec();
                let previous = parent_tree.as_ref().and_then(|t| t.find(&child_name));
                self.entry(&child_path, child_name, meta, previous)
            })
            .collect();
        self.count(|s| s.dirs += 1);
        let subtree = self.saver.save(BlobType::Tree, Tree { nodes }.encode())?;
        Ok(source::node_from_metadata(name, meta, NodeKind::Dir { subtree }, source::read_xattrs(path)))
    }

    /// The previous node when the file is unchanged: same size, inode, mtime and
    /// ctime, and all its blobs still stored. Any change to content, mode, owner or
    /// extended attributes moves the ctime.
    fn unchanged<'p>(&self, previous: Option<&'p Node>, meta: &Metadata) -> Option<&'p Node> {
        let previous = previous?;
        let NodeKind::File { content } = &previous.kind else { return None };
        let same = previous.size == meta.len()
            && previous.inode == meta.ino()
            && previous.mtime == source::timestamp(meta.mtime(), meta.mtime_nsec())
            && previous.ctime == source::timestamp(meta.ctime(), meta.ctime_nsec());
        (same && content.iter().all(|id| self.saver.is_known(id))).then_some(previous)
    }

    fn file(&self, path: &Path, name: Vec<u8>, meta: &Metadata, previous: Option<&Node>) -> Result<Node> {
        if let Some(old) = self.unchanged(previous, meta) {
            self.count(|s| {
                s.files_unmodified += 1;
                s.total_bytes += meta.len();
            });
            self.progress.add_file(meta.len());
            // Unchanged ctime means unchanged extended attributes: no need to list them.
            return Ok(source::node_from_metadata(name, meta, old.kind.clone(), old.xattrs.clone()));
        }
        let xattrs = source::read_xattrs(path);
        let link_key = (meta.nlink() > 1).then(|| (meta.dev(), meta.ino()));
        if let Some(key) = link_key {
            if let Some(content) = self.hardlinks.lock().unwrap_or_else(|p| p.into_inner()).get(&key).cloned() {
                // Another name of a file already read in this run.
                self.progress.add_file(meta.len());
                self.count(|s| {
                    if previous.is_some() {
                        s.files_changed += 1
                    } else {
                        s.files_new += 1
                    }
                    s.total_bytes += meta.len();
                });
                return Ok(source::node_from_metadata(name, meta, NodeKind::File { content }, xattrs));
            }
        }
        let file = fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut chunker = self.repo.chunker_tables().chunker(file, meta.len());
        let mut content = Vec::new();
        let mut size = 0u64;
        while let Some(chunk) = chunker.next_chunk().map_err(|e| Error::io(path, e))? {
            let id = self.repo.blob_id(chunk);
            size += chunk.len() as u64;
            self.progress.add_bytes(chunk.len() as u64);
            if self.saver.claim(&id) {
                self.saver.submit(BlobType::Data, id, chunk.to_vec())?;
            }
            content.push(id);
        }
        self.progress.files_done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(key) = link_key {
            self.hardlinks.lock().unwrap_or_else(|p| p.into_inner()).insert(key, content.clone());
        }
        self.count(|s| {
            if previous.is_some() {
                s.files_changed += 1
            } else {
                s.files_new += 1
            }
            s.total_bytes += size;
            s.bytes_read += size;
        });
        let mut node = source::node_from_metadata(name, meta, NodeKind::File { content }, xattrs);
        // The file may have changed while it was read; record what was stored.
        node.size = size;
        Ok(node)
    }
}

/// The paths to back up, as a tree of absolute path components. A leaf is a path
/// given by the user; inner nodes are the folders above them.
#[derive(Default)]
struct PathTree {
    leaf: bool,
    children: BTreeMap<Vec<u8>, PathTree>,
}

impl PathTree {
    fn insert(&mut self, path: &Path) {
        let mut node = self;
        for component in path.components() {
            if let Component::Normal(name) = component {
                node = node.children.entry(name.as_bytes().to_vec()).or_default();
            }
        }
        node.leaf = true;
    }
}

impl Walk<'_, '_> {
    /// Builds the tree for a folder above the backed-up paths: only the listed
    /// children, with the real folder's metadata.
    fn synthetic(&self, path: &Path, paths: &PathTree, parent: Option<&Tree>) -> Result<Id> {
        let nodes: Vec<Node> = paths
            .children
            .par_iter()
            .filter_map(|(name, sub)| {
                let child_path = path.join(std::ffi::OsStr::from_bytes(name));
                let previous = parent.and_then(|t| t.find(name));
                if sub.leaf {
                    return self.entry(&child_path, name.clone(), None, previous);
                }
                let meta = match fs::metadata(&child_path) {
                    Ok(m) => m,
                    Err(e) => {
                        self.skip(&child_path, e);
                        return None;
                    }
                };
                let previous_tree = self.load_parent_tree(previous);
                match self.synthetic(&child_path, sub, previous_tree.as_ref()) {
                    Ok(subtree) => {
                        Some(source::node_from_metadata(name.clone(), &meta, NodeKind::Dir { subtree }, Vec::new()))
                    }
                    Err(e) => {
                        self.skip(&child_path, e);
                        None
                    }
                }
            })
            .collect();
        self.saver.save(BlobType::Tree, Tree { nodes }.encode())
    }
}

pub(crate) fn absolute(path: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
    // Normalise `.` and `..` lexically, as the user wrote them.
    let mut out = PathBuf::new();
    for component in abs.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Ok(out)
}

/// Counts files and bytes under the paths, for progress totals.
fn scan_totals(paths: &[PathBuf], excludes: &Excludes, progress: &Progress) {
    fn walk(path: &Path, excludes: &Excludes, files: &mut u64, bytes: &mut u64) {
        if excludes.excluded(path) {
            return;
        }
        let Ok(meta) = fs::symlink_metadata(path) else { return };
        if meta.is_dir() {
            if let Ok(entries) = fs::read_dir(path) {
                for entry in entries.flatten() {
                    walk(&entry.path(), excludes, files, bytes);
                }
            }
        } else if meta.is_file() {
            *files += 1;
            *bytes += meta.len();
        }
    }
    let (mut files, mut bytes) = (0, 0);
    for path in paths {
        walk(path, excludes, &mut files, &mut bytes);
    }
    progress.set_totals(files, bytes);
}

/// Finds the parent snapshot's root tree for this backup.
fn parent_snapshot(
    repo: &Repository,
    choice: &ParentChoice,
    snapshots: &[(Id, Snapshot)],
    paths: &[String],
    hostname: &str,
) -> Result<Option<(Id, Snapshot)>> {
    match choice {
        ParentChoice::None => Ok(None),
        ParentChoice::Snapshot(spec) => repo.find_snapshot(spec).map(Some),
        ParentChoice::Latest => {
            let mut wanted = paths.to_vec();
            wanted.sort();
            Ok(snapshots.iter().rev().find(|(_, s)| s.hostname == hostname && s.path_set() == wanted).cloned())
        }
    }
}

/// Backs up `options.paths` into a new snapshot.
pub fn backup(repo: &Repository, options: &BackupOptions, progress: &Progress) -> Result<BackupOutcome> {
    let started = Instant::now();
    if options.paths.is_empty() {
        return Err(Error::Refused("no paths to back up were given".into()));
    }
    let excludes = Excludes::new(&options.excludes)?;
    let mut paths = Vec::new();
    for path in &options.paths {
        let abs = absolute(path)?;
        fs::symlink_metadata(&abs).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                Error::Refused(format!("the backup path {} does not exist; check it and run again", abs.display()))
            }
            _ => Error::io(&abs, e),
        })?;
        paths.push(abs);
    }
    let path_strings: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let hostname = options.hostname.clone().unwrap_or_else(crate::host::hostname);

    let _lock = RepositoryLock::acquire(repo, false, "backup")?;
    // The storage's listing, not the index (nor a cache), says which packs exist:
    // blobs of a pack gone from the repository are stored again, never referenced.
    // The snapshots are listed beside it: on a remote repository each is a few
    // round trips, and they overlap.
    let (stored_index, snapshots) = std::thread::scope(|scope| {
        let snapshots = scope.spawn(|| repo.snapshots());
        (repo.load_index_of_stored(), snapshots.join().expect("listing the snapshots does not panic"))
    });
    let StoredIndex { mut index, stored, .. } = stored_index?;
    let mut snapshots = snapshots?;
    let recovered_packs = crate::pack_reader::index_stray_packs(repo, &mut index, &stored)?.len();
    let parent = parent_snapshot(repo, &options.parent, &snapshots, &path_strings, &hostname)?;
    // A parent whose root tree cannot be read (its pack lost) only costs reading
    // every file again, as an unreadable folder of it does.
    let parent_root = parent.as_ref().and_then(|(id, snap)| match repo.load_tree(&index, &snap.tree) {
        Ok(tree) => Some(tree),
        Err(e) => {
            tracing::warn!("parent snapshot {} unreadable, reading every file again: {e}", id.short());
            None
        }
    });

    let mut path_tree = PathTree::default();
    for path in &paths {
        path_tree.insert(path);
    }
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).max(2);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("offsite-walk-{i}"))
        .build()
        .map_err(|e| Error::Refused(format!("cannot start worker threads: {e}")))?;

    let (outcome, _indexes, totals) = std::thread::scope(|scope| {
        if options.scan_totals {
            // Counts beside the walk; the totals appear when it finishes.
            scope.spawn(|| scan_totals(&paths, &excludes, progress));
        }
        BlobSaver::run(repo, &index, |saver| {
            let walk = Walk {
                repo,
                index: &index,
                saver,
                excludes: &excludes,
                progress,
                skipped: Mutex::new(Vec::new()),
                hardlinks: Mutex::new(HashMap::new()),
                summary: Mutex::new(BackupSummary::default()),
            };
            let root = pool.install(|| walk.synthetic(Path::new("/"), &path_tree, parent_root.as_ref()))?;
            let summary = walk.summary.into_inner().unwrap_or_else(|p| p.into_inner());
            let skipped = walk.skipped.into_inner().unwrap_or_else(|p| p.into_inner());
            Ok((root, summary, skipped))
        })
    })?;
    let (root, mut summary, skipped) = outcome;
    summary.blobs_added = totals.blobs_added;
    summary.data_added = totals.data_added;
    summary.data_added_stored = totals.data_added_stored;
    summary.errors = skipped.len() as u64;
    summary.duration_seconds = started.elapsed().as_secs_f64();

    let snapshot = Snapshot {
        time: OffsetDateTime::now_utc(),
        tree: root,
        paths: path_strings,
        hostname,
        username: crate::host::username(),
        tags: options.tags.clone(),
        parent: parent.map(|(id, _)| id),
        program_version: env!("CARGO_PKG_VERSION").to_string(),
        summary,
    };
    let snapshot_id = repo.save_snapshot(&snapshot)?;
    snapshots.push((snapshot_id, snapshot.clone()));
    Ok(BackupOutcome { snapshot_id, snapshot, skipped, recovered_packs, snapshots })
}
