//! The write pipeline: new blobs in, packs and index files out.
//!
//! ```text
//! callers ──submit──▶ [bounded queue] ──▶ seal workers (compress + encrypt, one per core)
//!                                            │ append to the open data or tree pack
//!                                            ▼
//!                         full pack ──▶ [bounded queue] ──▶ uploaders ──▶ backend
//!                                                               │ every 32 packs
//!                                                               ▼
//!                                                          index file
//! ```
//! Memory is bounded by the queue lengths times the largest chunk and pack, whatever
//! the amount of data. An index file is written only after its packs are stored, so
//! a crash leaves at most some packs without an index; `index_stray_packs`
//! indexes them from their own headers at the next backup instead of writing them again.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use crossbeam_channel::{bounded, Receiver, Sender};

use crate::backend::FileKind;
use crate::blob::BlobEncoder;
use crate::crypto::Purpose;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::MasterIndex;
use crate::repofile::index::{IndexFile, IndexPack};
use crate::repofile::pack::{PackBlob, PackHeader};
use crate::repofile::BlobType;
use crate::repository::Repository;

/// Packs per index file: an interrupted backup loses at most this many packs'
/// worth of index, and recovers even those from the packs' headers.
const PACKS_PER_INDEX: usize = 32;

struct OpenPack {
    bytes: Vec<u8>,
    header: PackHeader,
}

struct FinishedPack {
    bytes: Vec<u8>,
    header: PackHeader,
}

struct Job {
    blob_type: BlobType,
    id: Id,
    data: Vec<u8>,
}

/// Counters of what the pipeline stored.
#[derive(Debug, Default)]
pub struct SaverStats {
    pub blobs_added: AtomicU64,
    pub data_added: AtomicU64,
    pub data_added_stored: AtomicU64,
    pub packs_written: AtomicU64,
}

/// Takes new blobs and stores them in packs. Shared by all threads of one operation.
pub struct BlobSaver<'r> {
    repo: &'r Repository,
    index: &'r MasterIndex,
    claimed: Mutex<HashSet<Id>>,
    jobs: Mutex<Option<Sender<Job>>>,
    open_packs: [Mutex<OpenPack>; 2],
    finished: Mutex<Option<Sender<FinishedPack>>>,
    failure: Mutex<Option<Error>>,
    pending_index: Mutex<Vec<IndexPack>>,
    written_indexes: Mutex<Vec<Id>>,
    pub stats: SaverStats,
}

impl<'r> BlobSaver<'r> {
    /// Runs `body` with a saver, then flushes everything it stored and writes the
    /// last index file. Packs stored before a failure are still indexed, so the
    /// next run reuses them. Returns `body`'s result, the index files written and
    /// what was stored.
    pub fn run<T>(
        repo: &'r Repository,
        index: &'r MasterIndex,
        body: impl FnOnce(&BlobSaver<'r>) -> Result<T>,
    ) -> Result<(T, Vec<Id>, SaverTotals)> {
        let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let (jobs, job_queue) = bounded::<Job>(workers * 2);
        let (finished, upload_queue) = bounded::<FinishedPack>(1);
        let saver = BlobSaver {
            repo,
            index,
            claimed: Mutex::new(HashSet::new()),
            jobs: Mutex::new(Some(jobs)),
            open_packs: [Mutex::new(Self::empty_pack(repo)), Mutex::new(Self::empty_pack(repo))],
            finished: Mutex::new(Some(finished)),
            failure: Mutex::new(None),
            pending_index: Mutex::new(Vec::new()),
            written_indexes: Mutex::new(Vec::new()),
            stats: SaverStats::default(),
        };
        let result = std::thread::scope(|scope| {
            let saver = &saver;
            let sealers: Vec<_> = (0..workers)
                .map(|_| {
                    let queue = job_queue.clone();
                    scope.spawn(move || saver.seal_worker(queue))
                })
                .collect();
            let uploaders: Vec<_> = (0..2)
                .map(|_| {
                    let queue = upload_queue.clone();
                    scope.spawn(move || saver.uploader(queue))
                })
                .collect();
            drop((job_queue, upload_queue));
            let result = body(saver);
            // Shut down in pipeline order: no more jobs, sealers drain, open packs
            // are closed, uploaders drain.
            drop(lock(&saver.jobs).take());
            sealers.into_iter().for_each(join);
            saver.flush_open_packs();
            drop(lock(&saver.finished).take());
            uploaders.into_iter().for_each(join);
            result
        });
        let stored = saver.take_failure();
        saver.write_pending_index(true)?;
        if let Some(err) = stored {
            return Err(err);
        }
        let value = result?;
        let totals = SaverTotals {
            blobs_added: saver.stats.blobs_added.load(Ordering::Relaxed),
            data_added: saver.stats.data_added.load(Ordering::Relaxed),
            data_added_stored: saver.stats.data_added_stored.load(Ordering::Relaxed),
            packs_written: saver.stats.packs_written.load(Ordering::Relaxed),
        };
        let written = std::mem::take(&mut *lock(&saver.written_indexes));
        Ok((value, written, totals))
    }

    fn empty_pack(repo: &Repository) -> OpenPack {
        OpenPack {
            bytes: Vec::with_capacity(repo.config().pack_size as usize + (1 << 20)),
            header: PackHeader::default(),
        }
    }

    fn slot(blob_type: BlobType) -> usize {
        match blob_type {
            BlobType::Data => 0,
            BlobType::Tree => 1,
        }
    }

    /// True when the caller should store this blob: it is in neither the index
    /// nor the pipeline. Exactly one caller gets `true` for each new id.
    pub fn claim(&self, id: &Id) -> bool {
        !self.index.contains(id) && lock(&self.claimed).insert(*id)
    }

    /// Whether the repository has, or will have, this blob.
    pub fn is_known(&self, id: &Id) -> bool {
        self.index.contains(id) || lock(&self.claimed).contains(id)
    }

    /// Queues a claimed blob for sealing and packing. Blocks while the queue is full.
    pub fn submit(&self, blob_type: BlobType, id: Id, data: Vec<u8>) -> Result<()> {
        self.check_failure()?;
        let sender = lock(&self.jobs).clone().ok_or_else(|| Error::Refused("the write pipeline is closed".into()))?;
        sender.send(Job { blob_type, id, data }).map_err(|_| self.failure_or_closed())
    }

    /// Stores a blob unless it exists; returns its id. Used for trees.
    pub fn save(&self, blob_type: BlobType, data: Vec<u8>) -> Result<Id> {
        let id = self.repo.blob_id(&data);
        if self.claim(&id) {
            self.submit(blob_type, id, data)?;
        }
        Ok(id)
    }

    fn check_failure(&self) -> Result<()> {
        match lock(&self.failure).as_ref() {
            Some(Error::Backend(e)) => Err(Error::Backend(e.duplicate())),
            Some(e) => Err(Error::Refused(format!("storing data failed: {e}"))),
            None => Ok(()),
        }
    }

    fn failure_or_closed(&self) -> Error {
        self.take_failure().unwrap_or_else(|| Error::Refused("the write pipeline stopped".into()))
    }

    fn take_failure(&self) -> Option<Error> {
        lock(&self.failure).take()
    }

    fn fail(&self, err: Error) {
        let mut slot = lock(&self.failure);
        if slot.is_none() {
            *slot = Some(err);
        }
    }

    fn seal_worker(&self, queue: Receiver<Job>) {
        let mut encoder = BlobEncoder::new(self.repo.config().compression);
        let mut sealed = Vec::new();
        for job in queue {
            sealed.clear();
            let length = encoder.seal_into(self.repo.key(), job.blob_type, &job.data, &mut sealed);
            self.stats.blobs_added.fetch_add(1, Ordering::Relaxed);
            self.stats.data_added.fetch_add(job.data.len() as u64, Ordering::Relaxed);
            self.stats.data_added_stored.fetch_add(length as u64, Ordering::Relaxed);
            let full = {
                let mut pack = lock(&self.open_packs[Self::slot(job.blob_type)]);
                pack.bytes.extend_from_slice(&sealed);
                pack.header.blobs.push(PackBlob {
                    blob_type: job.blob_type,
                    id: job.id,
                    length: length as u32,
                    raw_length: job.data.len() as u32,
                });
                if pack.bytes.len() >= self.repo.config().pack_size as usize {
                    Some(std::mem::replace(&mut *pack, Self::empty_pack(self.repo)))
                } else {
                    None
                }
            };
            if let Some(pack) = full {
                self.finish_pack(pack);
            }
        }
    }

    /// Seals the header onto a pack and hands it to the uploaders.
    fn finish_pack(&self, pack: OpenPack) {
        let OpenPack { mut bytes, header } = pack;
        let header_start = bytes.len();
        self.repo.key().seal_into(Purpose::PackHeader, &header.encode(), &mut bytes);
        let header_len = (bytes.len() - header_start) as u32;
        bytes.extend_from_slice(&header_len.to_le_bytes());
        let sender = lock(&self.finished).clone();
        if sender.map(|s| s.send(FinishedPack { bytes, header })).is_none_or(|sent| sent.is_err()) {
            self.fail(Error::Refused("the upload pipeline stopped".into()));
        }
    }

    fn flush_open_packs(&self) {
        for slot in &self.open_packs {
            let pack =
                std::mem::replace(&mut *lock(slot), OpenPack { bytes: Vec::new(), header: PackHeader::default() });
            if !pack.header.blobs.is_empty() {
                self.finish_pack(pack);
            }
        }
    }

    fn uploader(&self, queue: Receiver<FinishedPack>) {
        for pack in queue {
            if lock(&self.failure).is_some() {
                continue;
            }
            let id = Id::of_stored(&pack.bytes);
            let size = pack.bytes.len() as u64;
            if pack.header.blobs.iter().any(|b| b.blob_type == BlobType::Tree) {
                // Later backups read these trees: keep the pack in the local cache.
                self.repo.note_tree_pack(id);
            }
            if let Err(e) = self.repo.backend().save(FileKind::Pack, &id.to_hex(), Bytes::from(pack.bytes)) {
                self.fail(e.into());
                continue;
            }
            self.stats.packs_written.fetch_add(1, Ordering::Relaxed);
            lock(&self.pending_index).push(crate::pack_reader::index_entry(id, size, &pack.header));
            if let Err(e) = self.write_pending_index(false) {
                self.fail(e);
            }
        }
    }

    /// Writes an index file for the stored packs once enough have gathered, or
    /// for all of them with `force`.
    fn write_pending_index(&self, force: bool) -> Result<()> {
        let packs = {
            let mut pending = lock(&self.pending_index);
            if pending.is_empty() || (!force && pending.len() < PACKS_PER_INDEX) {
                return Ok(());
            }
            std::mem::take(&mut *pending)
        };
        let id = self.repo.save_index(&IndexFile { supersedes: Vec::new(), packs })?;
        lock(&self.written_indexes).push(id);
        Ok(())
    }
}

/// What one run of the pipeline stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaverTotals {
    pub blobs_added: u64,
    pub data_added: u64,
    pub data_added_stored: u64,
    pub packs_written: u64,
}

/// Locks a mutex, ignoring poisoning: a panicking thread is re-raised by `join`.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn join(handle: std::thread::ScopedJoinHandle<'_, ()>) {
    if let Err(panic) = handle.join() {
        std::panic::resume_unwind(panic);
    }
}
