//! What a first backup of some paths would store, found without storing anything:
//! the files are read, cut and hashed by the repository's own chunker and blob ids
//! (so duplicates are found exactly as a backup finds them), and each distinct
//! chunk is compressed as the saver would ([`BlobEncoder::sealed_len`]: zstd at the
//! repository's level, kept only when it pays) to count the bytes its blob would
//! take. Nothing is written: not a pack, not an index, not a lock.
//!
//! The figure leaves out what a backup adds around the data blobs (trees, pack
//! headers, index files, the snapshot): a few bytes per file and per chunk.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use crate::archiver::{absolute, Excludes, SkippedItem};
use crate::blob::BlobEncoder;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::progress::Progress;
use crate::repository::Repository;

/// What a first backup of the paths would hold.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    /// Regular files read (another name of a file already read counts once).
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    pub chunks: u64,
    pub unique_chunks: u64,
    /// Bytes of the distinct chunks: what is left after deduplication.
    pub unique_bytes: u64,
    /// Bytes the distinct chunks' blobs would take, compressed and sealed.
    pub stored_bytes: u64,
    /// Entries that could not be read; they are not counted.
    pub skipped: Vec<SkippedItem>,
    pub seconds: f64,
}

/// Reads `paths` (leaving out `excludes`, globs as a backup takes them) and counts
/// what a first backup into `repo` would store. `progress` counts files and bytes
/// read; its totals are set once the paths are listed.
pub fn estimate(repo: &Repository, paths: &[PathBuf], excludes: &[String], progress: &Progress) -> Result<Estimate> {
    let started = Instant::now();
    if paths.is_empty() {
        return Err(Error::Refused("no paths to estimate were given".into()));
    }
    let excludes = Excludes::new(excludes)?;
    let skipped = Mutex::new(Vec::new());
    let skip = |path: &Path, reason: String| {
        tracing::warn!("skipping {}: {reason}", path.display());
        progress.errors.fetch_add(1, Ordering::Relaxed);
        skipped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(SkippedItem { path: path.display().to_string(), reason });
    };

    // The files first, so that progress has totals (and an ETA).
    let mut files = Vec::new();
    let mut seen_links = HashSet::new();
    for path in paths {
        let path = absolute(path)?;
        if fs::symlink_metadata(&path).is_err() {
            return Err(Error::Refused(format!("the path {} does not exist; check it and run again", path.display())));
        }
        list_files(&path, &excludes, &mut files, &mut seen_links, &skip);
    }
    files.sort();
    progress.set_totals(files.len() as u64, files.iter().map(|(_, size)| size).sum());

    let seen: Mutex<HashSet<Id>> = Mutex::new(HashSet::new());
    let counts: [AtomicU64; 6] = Default::default();
    let [chunks, unique_chunks, unique_bytes, stored_bytes, read_files, read_bytes] = &counts;
    let level = repo.config().compression;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).max(2);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("offsite-estimate-{i}"))
        .build()
        .map_err(|e| Error::Refused(format!("cannot start worker threads: {e}")))?;
    pool.install(|| {
        files.par_iter().for_each_init(
            || BlobEncoder::new(level),
            |encoder, (path, _)| {
                let file = match fs::File::open(path) {
                    Ok(file) => file,
                    Err(e) => return skip(path, e.to_string()),
                };
                let size = file.metadata().map(|m| m.len()).unwrap_or(0);
                let mut chunker = repo.chunker_tables().chunker(file, size);
                let mut read = 0u64;
                loop {
                    let chunk = match chunker.next_chunk() {
                        Ok(Some(chunk)) => chunk,
                        Ok(None) => break,
                        Err(e) => return skip(path, e.to_string()),
                    };
                    let id = repo.blob_id(chunk);
                    let len = chunk.len() as u64;
                    read += len;
                    progress.add_bytes(len);
                    chunks.fetch_add(1, Ordering::Relaxed);
                    if seen.lock().unwrap_or_else(|p| p.into_inner()).insert(id) {
                        unique_chunks.fetch_add(1, Ordering::Relaxed);
                        unique_bytes.fetch_add(len, Ordering::Relaxed);
                        stored_bytes.fetch_add(encoder.sealed_len(chunk) as u64, Ordering::Relaxed);
                    }
                }
                progress.files_done.fetch_add(1, Ordering::Relaxed);
                read_files.fetch_add(1, Ordering::Relaxed);
                read_bytes.fetch_add(read, Ordering::Relaxed);
            },
        )
    });
    let [chunks, unique_chunks, unique_bytes, stored_bytes, files, bytes] = counts.map(AtomicU64::into_inner);
    let mut skipped = skipped.into_inner().unwrap_or_else(|p| p.into_inner());
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    let estimate = Estimate {
        files,
        bytes,
        chunks,
        unique_chunks,
        unique_bytes,
        stored_bytes,
        skipped,
        seconds: started.elapsed().as_secs_f64(),
    };
    tracing::info!(
        "estimate: {} files, {} bytes, {} unique, {} stored, in {:.1} s",
        estimate.files,
        estimate.bytes,
        estimate.unique_bytes,
        estimate.stored_bytes,
        estimate.seconds
    );
    Ok(estimate)
}

/// Regular files under `path` with their sizes; symbolic links are not followed,
/// and a file with several names is listed once, as a backup reads it once.
fn list_files(
    path: &Path,
    excludes: &Excludes,
    files: &mut Vec<(PathBuf, u64)>,
    seen_links: &mut HashSet<(u64, u64)>,
    skip: &dyn Fn(&Path, String),
) {
    if excludes.excluded(path) {
        return;
    }
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) => return skip(path, e.to_string()),
    };
    if meta.is_file() {
        if meta.nlink() <= 1 || seen_links.insert((meta.dev(), meta.ino())) {
            files.push((path.to_path_buf(), meta.len()));
        }
    } else if meta.is_dir() {
        let entries = match fs::read_dir(path) {
            Ok(entries) => entries,
            Err(e) => return skip(path, e.to_string()),
        };
        let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        children.sort();
        for child in children {
            list_files(&child, excludes, files, seen_links, skip);
        }
    }
}
