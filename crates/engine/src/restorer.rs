//! Restore: recreate a snapshot's files, reading each pack once.
//!
//! The restorer first walks the snapshot's trees and plans, for every pack, which
//! blobs go to which files at which offsets. Packs are then read in parallel, one
//! ranged read per pack, and each blob is written to all its places with positioned
//! writes; this is why a restore costs little more than reading the packs. Metadata
//! (modes, owners, times, extended attributes) is applied last, folders deepest
//! first, so writing files never disturbs a folder's restored mtime.
//!
//! Damage never stops a restore: a file that needs an unreadable blob is reported
//! by name and everything else is restored. Each file is written under a marked
//! name beside its own, `NAME.offsite-partial`, and renamed to `NAME` only once
//! all its content is in place; so an existing file at the target is replaced
//! whole or not at all, and a file that could not be restored is never left under
//! its own name looking plausible. It stays as `NAME.offsite-partial`, at its full
//! size, holding every blob that could be read and zeros where one could not (or
//! is removed, when the snapshot itself has a file of that marked name).

use std::collections::HashMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rayon::prelude::*;

use crate::backend::FileKind;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::MasterIndex;
use crate::progress::Progress;
use crate::repofile::snapshot::Snapshot;
use crate::repofile::tree::{Node, NodeKind};
use crate::repofile::BlobType;
use crate::repository::{Repository, StoredIndex};

/// What to do when a file already exists at the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OverwritePolicy {
    /// Replace it.
    #[default]
    Always,
    /// Keep it when it is newer than the snapshot's copy.
    KeepNewer,
}

#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    pub target: PathBuf,
    /// Snapshot paths to restore (`/home/ann/docs`); empty restores everything.
    pub includes: Vec<String>,
    /// Read every restored file back and check it against the snapshot.
    pub verify: bool,
    pub overwrite: OverwritePolicy,
}

/// The suffix of a file that could not be restored whole (see the module's doc).
pub const PARTIAL_SUFFIX: &str = ".offsite-partial";

/// A path that could not be restored, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreFailure {
    pub path: String,
    pub reason: String,
    /// Where what could be read of this file was kept (`PATH.offsite-partial`),
    /// if anything was: nothing is left at `path` itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial: Option<String>,
}

impl RestoreFailure {
    fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        RestoreFailure { path: path.into(), reason: reason.into(), partial: None }
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RestoreOutcome {
    pub files: u64,
    pub dirs: u64,
    pub others: u64,
    pub bytes: u64,
    /// Existing newer files left alone under `KeepNewer`.
    pub kept: u64,
    /// Files read back and found equal to the snapshot (with `verify`).
    pub verified: u64,
    pub failures: Vec<RestoreFailure>,
}

struct PlannedFile {
    path: PathBuf,
    /// Where its content is written until it is complete: the marked name beside
    /// `path`, or `path` itself when the snapshot has a file of the marked name.
    work: PathBuf,
    node: Node,
    /// Another restored path this one is a hard link to.
    link_to: Option<usize>,
}

/// One place a blob's plaintext goes.
struct Placement {
    file: usize,
    offset: u64,
}

struct BlobPlan {
    id: Id,
    offset: u32,
    length: u32,
    raw_length: u32,
    places: Vec<Placement>,
}

#[derive(Default)]
struct Plan {
    files: Vec<PlannedFile>,
    dirs: Vec<(PathBuf, Node)>,
    others: Vec<(PathBuf, Node)>,
}

pub(crate) fn include_state(path: &str, includes: &[String]) -> (bool, bool) {
    if includes.is_empty() {
        return (true, true);
    }
    let within = |inc: &str, p: &str| p == inc || p.starts_with(&format!("{}/", inc.trim_end_matches('/')));
    let included = includes.iter().any(|inc| within(inc, path));
    let on_the_way = includes.iter().any(|inc| within(path, inc) || path == "/");
    (included, included || on_the_way)
}

/// A name from a tree must be a single path component: a tampered or hostile tree
/// must not write outside the target.
fn safe_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

struct Planner<'a> {
    repo: &'a Repository,
    index: &'a MasterIndex,
    /// Blobs of packs the index names but the storage no longer lists.
    lost_blobs: &'a HashMap<Id, u32>,
    includes: &'a [String],
    failures: Vec<RestoreFailure>,
    plan: Plan,
    links: HashMap<(u64, u64), usize>,
}

impl Planner<'_> {
    fn walk(&mut self, tree: &Id, snapshot_path: &str, target: &Path) {
        let tree = match self.repo.load_tree(self.index, tree) {
            Ok(tree) => tree,
            Err(Error::BlobNotFound(id)) if self.lost_blobs.contains_key(&id) => {
                let reason =
                    format!("the folder's listing (tree {}) was in a pack missing from the repository", id.short());
                self.failures.push(RestoreFailure::new(snapshot_path, reason));
                return;
            }
            Err(e) => {
                self.failures.push(RestoreFailure::new(snapshot_path, e.to_string()));
                return;
            }
        };
        let mut seen = std::collections::HashSet::new();
        for node in tree.nodes {
            let name_display = node.name_lossy();
            let child_snapshot_path = format!("{}/{}", snapshot_path.trim_end_matches('/'), name_display);
            if !safe_name(&node.name) {
                self.failures.push(RestoreFailure::new(child_snapshot_path, "unsafe file name in the snapshot"));
                continue;
            }
            // A second entry of one name (say a link, then a folder through it) is
            // not something a backup writes: only the first is restored.
            if !seen.insert(node.name.clone()) {
                self.failures.push(RestoreFailure::new(
                    child_snapshot_path,
                    "the snapshot's folder lists this name more than once: only the first entry is restored",
                ));
                continue;
            }
            let (included, descend) = include_state(&child_snapshot_path, self.includes);
            if !descend {
                continue;
            }
            let child_target = target.join(std::ffi::OsStr::from_bytes(&node.name));
            match &node.kind {
                NodeKind::Dir { subtree } => {
                    let subtree = *subtree;
                    self.walk(&subtree, &child_snapshot_path, &child_target);
                    self.plan.dirs.push((child_target, node));
                }
                _ if !included => {}
                NodeKind::File { .. } => {
                    let position = self.plan.files.len();
                    let link_to = if node.links > 1 {
                        let key = (node.device, node.inode);
                        let first = self.links.get(&key).copied();
                        if first.is_none() {
                            self.links.insert(key, position);
                        }
                        first
                    } else {
                        None
                    };
                    let work = partial_path(&child_target);
                    self.plan.files.push(PlannedFile { path: child_target, work, node, link_to });
                }
                _ => self.plan.others.push((child_target, node)),
            }
        }
    }
}

/// Restores a snapshot.
pub fn restore(
    repo: &Repository,
    snapshot: &Snapshot,
    options: &RestoreOptions,
    progress: &Progress,
) -> Result<RestoreOutcome> {
    // Checked against the storage's listing: a blob stored again after its pack
    // was lost is read from where it is now.
    let StoredIndex { index, lost_blobs, .. } = repo.load_index_of_stored()?;
    fs::create_dir_all(&options.target).map_err(|e| Error::io(&options.target, e))?;
    let mut planner = Planner {
        repo,
        index: &index,
        lost_blobs: &lost_blobs,
        includes: &options.includes,
        failures: Vec::new(),
        plan: Plan::default(),
        links: HashMap::new(),
    };
    planner.walk(&snapshot.tree, "/", &options.target);
    for include in &options.includes {
        let found =
            planner.plan.files.iter().any(|f| f.path.starts_with(options.target.join(include.trim_start_matches('/'))))
                || planner
                    .plan
                    .dirs
                    .iter()
                    .any(|(p, _)| p.starts_with(options.target.join(include.trim_start_matches('/'))))
                || planner
                    .plan
                    .others
                    .iter()
                    .any(|(p, _)| p.starts_with(options.target.join(include.trim_start_matches('/'))));
        if !found {
            return Err(Error::PathNotFound { path: include.clone(), snapshot: snapshot.tree.short() });
        }
    }
    let Planner { mut plan, mut failures, .. } = planner;
    // A snapshot may hold both `x` and `x.offsite-partial`: then `x` is written in
    // place (and removed if it cannot be restored) rather than over the other one.
    let planned: std::collections::HashSet<PathBuf> = plan
        .files
        .iter()
        .map(|f| f.path.clone())
        .chain(plan.dirs.iter().map(|(p, _)| p.clone()))
        .chain(plan.others.iter().map(|(p, _)| p.clone()))
        .collect();
    for file in &mut plan.files {
        if planned.contains(&file.work) {
            file.work = file.path.clone();
        }
    }
    let mut outcome = RestoreOutcome::default();
    progress.set_totals(plan.files.len() as u64, plan.files.iter().map(|f| f.node.size).sum());

    // Folders first (outermost first, as planned deepest last), so files have a home.
    for (path, _) in plan.dirs.iter().rev() {
        if let Err(e) = create_folder(path) {
            failures.push(RestoreFailure::new(path.display().to_string(), e.to_string()));
        }
    }
    outcome.dirs = plan.dirs.len() as u64;

    // Create every file at its final size, then fill them pack by pack.
    let failed: Mutex<HashMap<usize, String>> = Mutex::new(HashMap::new());
    let mut skip = vec![false; plan.files.len()];
    let mut created = vec![false; plan.files.len()];
    let mut packs: HashMap<u32, HashMap<Id, BlobPlan>> = HashMap::new();
    for (i, file) in plan.files.iter().enumerate() {
        if file.link_to.is_some() {
            continue;
        }
        if options.overwrite == OverwritePolicy::KeepNewer {
            if let Ok(existing) = fs::symlink_metadata(&file.path) {
                let newer = existing.modified().ok().and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok());
                if newer.is_some_and(|d| d.as_secs() as i64 > file.node.mtime.seconds) {
                    skip[i] = true;
                    outcome.kept += 1;
                    continue;
                }
            }
        }
        if let Err(e) = create_sized(&file.work, file.node.size) {
            failed.lock().unwrap_or_else(|p| p.into_inner()).insert(i, e.to_string());
            continue;
        }
        created[i] = true;
        let NodeKind::File { content } = &file.node.kind else { continue };
        let mut place = |id: &Id, offset: u64| {
            let loc = index.get(id).expect("placed blobs are in the index");
            let blob = packs.entry(loc.pack).or_default().entry(*id).or_insert_with(|| BlobPlan {
                id: *id,
                offset: loc.offset,
                length: loc.length,
                raw_length: loc.raw_length,
                places: Vec::new(),
            });
            blob.places.push(Placement { file: i, offset });
        };
        // A blob of a pack the storage lost is not read, but its length is known,
        // so what follows it still goes to its place. A blob no index names has
        // no known length: the blobs before the first such are placed from the
        // start, those after the last one from the end (the file's size is
        // known), so a partial file keeps all it can.
        let length_of = |id: &Id| index.get(id).map(|loc| loc.raw_length).or_else(|| lost_blobs.get(id).copied());
        if let Some(first_missing) = content.iter().find(|id| index.get(id).is_none()) {
            let reason = match lost_blobs.contains_key(first_missing) {
                true => format!("blob {} was in a pack missing from the repository", first_missing.short()),
                false => format!("blob {} is missing from the repository", first_missing.short()),
            };
            failed.lock().unwrap_or_else(|p| p.into_inner()).insert(i, reason);
        }
        let mut offset = 0u64;
        let mut unknown_length = false;
        for id in content {
            let Some(length) = length_of(id) else {
                unknown_length = true;
                break;
            };
            if index.get(id).is_some() {
                place(id, offset);
            }
            offset += u64::from(length);
        }
        if unknown_length {
            let mut end = file.node.size;
            for id in content.iter().rev() {
                let Some(length) = length_of(id) else { break };
                let Some(start) = end.checked_sub(u64::from(length)) else { break };
                if start < offset {
                    break;
                }
                if index.get(id).is_some() {
                    place(id, start);
                }
                end = start;
            }
        }
    }

    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).max(4);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Refused(format!("cannot start worker threads: {e}")))?;
    let mut work: Vec<(u32, Vec<BlobPlan>)> = packs
        .into_iter()
        .map(|(pack, blobs)| {
            let mut blobs: Vec<BlobPlan> = blobs.into_values().collect();
            blobs.sort_by_key(|b| b.offset);
            (pack, blobs)
        })
        .collect();
    work.sort_by_key(|(pack, _)| *pack);
    pool.install(|| {
        work.par_iter().for_each(|(pack, blobs)| {
            restore_pack(repo, &index, *pack, blobs, &plan.files, &failed, progress);
        })
    });

    let mut failed = failed.into_inner().unwrap_or_else(|p| p.into_inner());
    // Complete files take their own names; the others keep the marked one.
    let mut partial: HashMap<usize, PathBuf> = HashMap::new();
    for (i, file) in plan.files.iter().enumerate() {
        if file.link_to.is_some() || skip[i] || !created[i] {
            continue;
        }
        match failed.entry(i) {
            std::collections::hash_map::Entry::Occupied(_) => set_aside(file, &file.work, &mut partial, i),
            std::collections::hash_map::Entry::Vacant(slot) => {
                if file.work != file.path {
                    if let Err(e) = fs::rename(&file.work, &file.path) {
                        slot.insert(format!("cannot put the restored file in place: {e}"));
                        partial.insert(i, file.work.clone());
                    }
                }
            }
        }
    }
    // Hard links to files whose content is now in place.
    for (i, file) in plan.files.iter().enumerate() {
        if let Some(first) = file.link_to {
            if failed.contains_key(&first) {
                let reason =
                    format!("a hard link to {}, which could not be restored", plan.files[first].path.display());
                failed.insert(i, reason);
                continue;
            }
            let _ = fs::remove_file(&file.path);
            if let Err(e) = fs::hard_link(&plan.files[first].path, &file.path) {
                failed.insert(i, format!("cannot create hard link: {e}"));
            }
        }
    }
    for (path, node) in &plan.others {
        match create_special(path, node) {
            Ok(()) => outcome.others += 1,
            Err(e) => failures.push(RestoreFailure::new(path.display().to_string(), e.to_string())),
        }
    }

    // Metadata last: files and links, then folders deepest first.
    for (i, file) in plan.files.iter().enumerate() {
        if skip[i] || failed.contains_key(&i) {
            continue;
        }
        outcome.files += 1;
        outcome.bytes += file.node.size;
        if let Err(e) = apply_metadata(&file.path, &file.node) {
            tracing::debug!("metadata of {}: {e}", file.path.display());
        }
    }
    for (path, node) in &plan.others {
        let _ = apply_metadata(path, node);
    }
    for (path, node) in &plan.dirs {
        let _ = apply_metadata(path, node);
    }

    if options.verify {
        let results: Vec<(usize, std::result::Result<(), String>)> = pool.install(|| {
            plan.files
                .par_iter()
                .enumerate()
                .filter(|(i, _)| !skip[*i] && !failed.contains_key(i))
                .map(|(i, f)| (i, verify_file(repo, &index, f)))
                .collect()
        });
        for (i, result) in results {
            match result {
                Ok(()) => outcome.verified += 1,
                Err(reason) => {
                    failed.insert(i, format!("verification failed: {reason}"));
                    let file = &plan.files[i];
                    if file.link_to.is_none() {
                        set_aside(file, &file.path, &mut partial, i);
                    }
                }
            }
        }
    }

    let mut failed: Vec<(usize, String)> = failed.into_iter().collect();
    failed.sort();
    failures.extend(failed.into_iter().map(|(i, reason)| RestoreFailure {
        path: plan.files[i].path.display().to_string(),
        reason,
        partial: partial.get(&i).map(|p| p.display().to_string()),
    }));
    outcome.failures = failures;
    Ok(outcome)
}

/// `NAME.offsite-partial` beside `path`.
fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(PARTIAL_SUFFIX);
    path.with_file_name(name)
}

/// A file at `at` that is not the snapshot's content: kept under the marked name
/// when it may have one, removed otherwise. Never left under its own name.
fn set_aside(file: &PlannedFile, at: &Path, partial: &mut HashMap<usize, PathBuf>, i: usize) {
    let kept = file.work != file.path && (at == file.work || fs::rename(at, &file.work).is_ok());
    if kept {
        partial.insert(i, file.work.clone());
    } else if let Err(e) = fs::remove_file(at) {
        tracing::warn!("could not remove the incomplete {}: {e}", at.display());
    }
}

/// Creates one folder whose parent exists. Whatever else is in its place (a link
/// left in the target, which must never be followed out of it, or a file) is
/// replaced, as files replace what is in theirs.
fn create_folder(path: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => {
            fs::remove_file(path)?;
            fs::create_dir(path)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fs::create_dir(path),
        Err(e) => Err(e),
    }
}

fn create_sized(path: &Path, size: u64) -> std::io::Result<()> {
    // Remove first: the target may be a symlink or a read-only file from an earlier restore.
    match fs::symlink_metadata(path) {
        Ok(meta) if !meta.is_dir() => fs::remove_file(path)?,
        _ => {}
    }
    let file = fs::OpenOptions::new().write(true).create(true).truncate(true).open(path)?;
    file.set_len(size)
}

fn restore_pack(
    repo: &Repository,
    index: &MasterIndex,
    pack: u32,
    blobs: &[BlobPlan],
    files: &[PlannedFile],
    failed: &Mutex<HashMap<usize, String>>,
    progress: &Progress,
) {
    let pack_id = index.pack(pack).id;
    let fail_all = |blobs: &[BlobPlan], reason: String| {
        let mut failed = failed.lock().unwrap_or_else(|p| p.into_inner());
        for blob in blobs {
            for place in &blob.places {
                failed.entry(place.file).or_insert_with(|| reason.clone());
            }
        }
    };
    // Read runs of blobs that lie close together in one request each, at most
    // MAX_READ bytes, which bounds memory per thread.
    const GAP: u64 = 1 << 20;
    const MAX_READ: u64 = 8 << 20;
    let mut start = 0;
    while start < blobs.len() {
        let run_start = u64::from(blobs[start].offset);
        let mut end = start + 1;
        while end < blobs.len() {
            let previous_end = u64::from(blobs[end - 1].offset) + u64::from(blobs[end - 1].length);
            let this_end = u64::from(blobs[end].offset) + u64::from(blobs[end].length);
            if u64::from(blobs[end].offset) > previous_end + GAP || this_end - run_start > MAX_READ {
                break;
            }
            end += 1;
        }
        let run = &blobs[start..end];
        let first = u64::from(run[0].offset);
        let last = run.iter().map(|b| u64::from(b.offset) + u64::from(b.length)).max().unwrap_or(first);
        match repo.backend().load_range(FileKind::Pack, &pack_id.to_hex(), first, last - first) {
            Err(e) => fail_all(run, format!("pack {} unreadable: {e}", pack_id.short())),
            Ok(bytes) => {
                for blob in run {
                    let at = (u64::from(blob.offset) - first) as usize;
                    let sealed = &bytes[at..at + blob.length as usize];
                    match repo.open_blob(BlobType::Data, &blob.id, sealed, blob.raw_length) {
                        Err(e) => fail_all(std::slice::from_ref(blob), e.to_string()),
                        Ok(data) => {
                            for place in &blob.places {
                                let target = &files[place.file].work;
                                let written = fs::OpenOptions::new()
                                    .write(true)
                                    .open(target)
                                    .and_then(|f| f.write_all_at(&data, place.offset));
                                if let Err(e) = written {
                                    failed
                                        .lock()
                                        .unwrap_or_else(|p| p.into_inner())
                                        .entry(place.file)
                                        .or_insert_with(|| e.to_string());
                                }
                                progress.add_bytes(data.len() as u64);
                            }
                        }
                    }
                }
            }
        }
        start = end;
    }
}

fn create_special(path: &Path, node: &Node) -> std::io::Result<()> {
    use rustix::fs::{FileType, Mode};
    let _ = fs::remove_file(path);
    let mode = Mode::from_raw_mode(node.mode & 0o7777);
    match &node.kind {
        NodeKind::Symlink { target } => std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), path),
        NodeKind::Fifo => rustix::fs::mknodat(rustix::fs::CWD, path, FileType::Fifo, mode, 0).map_err(Into::into),
        NodeKind::CharDevice { rdev } => {
            rustix::fs::mknodat(rustix::fs::CWD, path, FileType::CharacterDevice, mode, *rdev).map_err(Into::into)
        }
        NodeKind::BlockDevice { rdev } => {
            rustix::fs::mknodat(rustix::fs::CWD, path, FileType::BlockDevice, mode, *rdev).map_err(Into::into)
        }
        // A socket only exists while its server runs; there is nothing to recreate.
        NodeKind::Socket => Ok(()),
        NodeKind::File { .. } | NodeKind::Dir { .. } => Ok(()),
    }
}

/// Owner (when permitted), mode, extended attributes and times, in that order: a
/// chown can clear set-id bits, and every change but the times updates the ctime.
fn apply_metadata(path: &Path, node: &Node) -> std::io::Result<()> {
    let is_link = matches!(node.kind, NodeKind::Symlink { .. });
    if rustix::process::geteuid().is_root() {
        let uid = rustix::fs::Uid::from_raw(node.uid);
        let gid = rustix::fs::Gid::from_raw(node.gid);
        let _ = rustix::fs::chownat(rustix::fs::CWD, path, Some(uid), Some(gid), rustix::fs::AtFlags::SYMLINK_NOFOLLOW);
    }
    if !is_link {
        fs::set_permissions(path, fs::Permissions::from_mode(node.mode & 0o7777))?;
    }
    for attr in &node.xattrs {
        let name = std::ffi::OsStr::from_bytes(&attr.name);
        if let Err(e) = xattr::set(path, name, &attr.value) {
            tracing::debug!("xattr {} on {}: {e}", attr.name.escape_ascii(), path.display());
        }
    }
    // Access times are not recorded (see docs/REPOSITORY.md): restore sets them to the mtime.
    let mtime = filetime::FileTime::from_unix_time(node.mtime.seconds, node.mtime.nanos);
    let atime = mtime;
    // utimensat without following links and without opening: opening a FIFO would block.
    filetime::set_symlink_file_times(path, atime, mtime)
}

fn verify_file(repo: &Repository, index: &MasterIndex, file: &PlannedFile) -> std::result::Result<(), String> {
    let NodeKind::File { content } = &file.node.kind else { return Ok(()) };
    let handle = fs::File::open(&file.path).map_err(|e| e.to_string())?;
    let actual = handle.metadata().map_err(|e| e.to_string())?.len();
    if actual != file.node.size {
        return Err(format!("size is {actual}, expected {}", file.node.size));
    }
    let mut offset = 0u64;
    let mut buf = Vec::new();
    for id in content {
        let loc = index.get(id).ok_or_else(|| format!("blob {} missing", id.short()))?;
        buf.resize(loc.raw_length as usize, 0);
        handle.read_exact_at(&mut buf, offset).map_err(|e| e.to_string())?;
        if repo.blob_id(&buf) != *id {
            return Err(format!("bytes at offset {offset} differ from the snapshot"));
        }
        offset += u64::from(loc.raw_length);
    }
    Ok(())
}
