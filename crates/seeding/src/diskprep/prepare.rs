//! [`prepare()`] and [`resume()`]: the staging files, in stream order, as one stream
//! cut across as many drives as needed.
//!
//! A reader thread reads the files ahead with large sequential reads and hands the
//! buffers over a bounded channel (so memory stays at a few buffers), while this
//! thread seals and writes blocks: reading and encrypting overlap. Every
//! [`PrepareOptions::checkpoint_bytes`] a third thread syncs the drive in progress
//! (so the flush overlaps the writing of the next blocks) and then records in the
//! journal how many of its blocks are durable; [`resume()`] reopens that
//! drive and continues from there with the same drive key, rewriting at most the
//! blocks written after the last checkpoint. That is safe because the stream is
//! a function of the staging listing alone (ordered paths, sizes, and bytes that
//! never change: repository files are named by the hash of their bytes), so each
//! block index is rewritten with the very plaintext it held; `resume` refuses a
//! changed listing, and the writer refuses a block whose plaintext differs from
//! what an authenticating block at that index held.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use super::journal::{
    append_digests, digests_path, manifest_path, read_digests, write_private_atomically, FinishedDrive, InProgress,
    Journal, JournalLock, StreamPos, JOURNAL_VERSION,
};
use super::{DiskprepError, DrivePlan, DriveSupplier, PrepareOptions, PrepareProgress, PreparedDrive, PreparedSet};
use crate::drive::block::block_offset;
use crate::drive::{
    new_set_id, DriveError, DriveKey, DriveReader, DriveSpec, DriveWriter, FilePart, RecoveryKey, ResumeState, TAG_LEN,
};
use crate::staging::{StagingFile, StagingListing};

/// Prepares the drives of `plan` from its staging location, asking `supplier` for
/// each drive. A journal that already exists is not overwritten: a finished one
/// gives its set back, an unfinished one is refused ("run with --resume").
pub fn prepare(
    plan: &DrivePlan,
    supplier: &mut dyn DriveSupplier,
    progress: &dyn Fn(&PrepareProgress),
) -> Result<PreparedSet, DiskprepError> {
    prepare_with(plan, &PrepareOptions::default(), supplier, progress)
}

/// [`prepare()`] with explicit options. The staging location is one repository,
/// or a folder holding one repository per top-level folder (several machines'
/// staging locations for one import job, or an export job's spool), each carried
/// as stored.
pub fn prepare_with(
    plan: &DrivePlan,
    options: &PrepareOptions,
    supplier: &mut dyn DriveSupplier,
    progress: &dyn Fn(&PrepareProgress),
) -> Result<PreparedSet, DiskprepError> {
    let _lock = JournalLock::acquire(&plan.journal)?;
    if let Some(done) = existing_journal(plan)? {
        return Ok(done);
    }
    let listing = StagingListing::read(&plan.staging)?;
    listing.check_repositories()?;
    start(plan, listing, None, options, supplier, progress)
}

/// The set of a finished journal at the plan's path; an error for an unfinished
/// one or one of another job; `None` if there is no journal.
pub(crate) fn existing_journal(plan: &DrivePlan) -> Result<Option<PreparedSet>, DiskprepError> {
    let Some(journal) = Journal::load(&plan.journal)? else { return Ok(None) };
    if journal.import_job != plan.import_job {
        return Err(DiskprepError::JournalOfAnotherJob {
            path: plan.journal.clone(),
            found: journal.import_job,
            expected: plan.import_job.clone(),
        });
    }
    if !journal.finished {
        return Err(DiskprepError::JournalUnfinished { path: plan.journal.clone() });
    }
    Ok(Some(prepared_set(&journal, 0)))
}

/// Starts a new set carrying `listing` (all of the staging location, or a repair's files).
pub(crate) fn start(
    plan: &DrivePlan,
    listing: StagingListing,
    repair_files: Option<Vec<String>>,
    options: &PrepareOptions,
    supplier: &mut dyn DriveSupplier,
    progress: &dyn Fn(&PrepareProgress),
) -> Result<PreparedSet, DiskprepError> {
    // Check the settings before anything is written.
    crate::drive::header::check_import_job(&plan.import_job)
        .and_then(|_| crate::drive::header::check_block_size(plan.block_size))
        .map_err(|reason| DiskprepError::Drive(DriveError::InvalidSpec(reason)))?;
    let journal = Journal {
        version: JOURNAL_VERSION,
        import_job: plan.import_job.clone(),
        staging: plan.staging.clone(),
        import_public_key: hex::encode(plan.import_public_key),
        block_size: plan.block_size,
        repair_files,
        staging_digest: listing.digest(),
        total_bytes: listing.total_bytes,
        set_id: hex::encode(new_set_id()),
        drives: Vec::new(),
        in_progress: None,
        finished: false,
    };
    Journal::save_listing(&plan.journal, &listing.files)?;
    journal.save(&plan.journal)?;
    run(&plan.journal, journal, &listing, options, supplier, progress)
}

/// Continues the preparation recorded in the journal at `journal`: finished drives
/// are kept, the drive in progress is continued from its last checkpoint (or
/// started over on a new drive if its path is gone), and the rest follows. Refuses
/// if the staging location changed.
pub fn resume(
    journal: &Path,
    supplier: &mut dyn DriveSupplier,
    progress: &dyn Fn(&PrepareProgress),
) -> Result<PreparedSet, DiskprepError> {
    resume_with(journal, &PrepareOptions::default(), supplier, progress)
}

/// [`resume()`] with explicit options.
pub fn resume_with(
    path: &Path,
    options: &PrepareOptions,
    supplier: &mut dyn DriveSupplier,
    progress: &dyn Fn(&PrepareProgress),
) -> Result<PreparedSet, DiskprepError> {
    // Checked before taking the lock, so a wrong path leaves no lock file behind.
    match path.try_exists() {
        Ok(true) => {}
        Ok(false) => return Err(DiskprepError::JournalMissing { path: path.to_path_buf() }),
        Err(e) => return Err(DiskprepError::io(path, e)),
    }
    let _lock = JournalLock::acquire(path)?;
    let journal = Journal::load(path)?.ok_or_else(|| DiskprepError::JournalMissing { path: path.to_path_buf() })?;
    if journal.finished {
        return Ok(prepared_set(&journal, 0));
    }
    let mut listing = StagingListing::read(&journal.staging)?;
    if let Some(files) = &journal.repair_files {
        listing = match super::repair::subset(&listing, files) {
            Ok(subset) => subset,
            Err(DiskprepError::UnknownFile { file, .. }) => {
                return Err(DiskprepError::StagingChanged { file, what: "it is no longer there".into() })
            }
            Err(e) => return Err(e),
        };
    }
    if listing.digest() != journal.staging_digest {
        let recorded = StagingListing::from_files(&journal.staging, Journal::load_listing(path)?);
        let (file, what) = recorded
            .first_difference(&listing)
            .unwrap_or_else(|| ("(the listing)".into(), "its digest differs from the journal's".into()));
        return Err(DiskprepError::StagingChanged { file, what });
    }
    run(path, journal, &listing, options, supplier, progress)
}

fn prepared_set(journal: &Journal, bytes_written: u64) -> PreparedSet {
    PreparedSet {
        import_job: journal.import_job.clone(),
        set_id: journal.set_id.clone(),
        staging_digest: journal.staging_digest.clone(),
        drives: journal.drives.iter().map(|d| d.drive.clone()).collect(),
        total_bytes: journal.total_bytes,
        bytes_written,
    }
}

fn decode_hex<const N: usize>(path: &Path, what: &str, text: &str) -> Result<[u8; N], DiskprepError> {
    hex::decode(text).ok().and_then(|b| b.try_into().ok()).ok_or_else(|| DiskprepError::JournalDamaged {
        path: path.to_path_buf(),
        reason: format!("its {what} is not {N} bytes of hex"),
    })
}

/// Checks that the journal's settings and stream positions fit `listing`, the
/// drives one after the other: a damaged or edited journal is refused, naming
/// what is wrong, instead of writing drives that disagree with it.
fn check_positions(journal: &Journal, listing: &StagingListing) -> Result<(), String> {
    crate::drive::header::check_block_size(journal.block_size)?;
    if journal.total_bytes != listing.total_bytes {
        return Err(format!(
            "it counts {} stream bytes, the staging location's files {}",
            journal.total_bytes, listing.total_bytes
        ));
    }
    // The stream offset at which each file starts, and the stream's end.
    let mut starts = Vec::with_capacity(listing.files.len() + 1);
    let mut end = 0u64;
    for file in &listing.files {
        starts.push(end);
        end += file.size;
    }
    let in_stream = |p: &StreamPos| match listing.files.get(p.file) {
        Some(file) => {
            (p.offset_in_file < file.size || p.offset_in_file == 0)
                && p.stream_offset == starts[p.file] + p.offset_in_file
        }
        None => p.file == listing.files.len() && p.offset_in_file == 0 && p.stream_offset == end,
    };
    let mut previous = StreamPos::default();
    for (k, drive) in journal.drives.iter().enumerate() {
        if drive.drive.index as usize != k {
            return Err(format!("finished drive {k} is numbered {}", drive.drive.index));
        }
        if drive.start != previous || !in_stream(&drive.end) || drive.end.stream_offset < drive.start.stream_offset {
            return Err(format!("finished drive {k}'s place in the stream does not follow the drive before it"));
        }
        previous = drive.end;
    }
    Ok(())
}

/// A slice of a staging file read ahead by the reader thread; empty for an empty file.
struct Chunk {
    file: usize,
    offset: u64,
    data: Vec<u8>,
}

/// The drive being written.
struct Active {
    writer: DriveWriter,
    index: u32,
    recovery_key: String,
    start: StreamPos,
    /// Digests already in the digests side file.
    digests_saved: u64,
    since_checkpoint: u64,
}

struct Run<'a> {
    path: &'a Path,
    journal: Journal,
    listing: &'a StagingListing,
    options: &'a PrepareOptions,
    set_id: [u8; 16],
    import_public_key: [u8; 32],
    /// The next stream position to be taken.
    pos: StreamPos,
    active: Option<Active>,
    bytes_written: u64,
}

fn run(
    path: &Path,
    journal: Journal,
    listing: &StagingListing,
    options: &PrepareOptions,
    supplier: &mut dyn DriveSupplier,
    progress: &dyn Fn(&PrepareProgress),
) -> Result<PreparedSet, DiskprepError> {
    let set_id = decode_hex::<16>(path, "set id", &journal.set_id)?;
    let import_public_key = decode_hex::<32>(path, "import public key", &journal.import_public_key)?;
    check_positions(&journal, listing)
        .map_err(|reason| DiskprepError::JournalDamaged { path: path.to_path_buf(), reason })?;
    let pos = journal.drives.last().map_or(StreamPos { file: 0, offset_in_file: 0, stream_offset: 0 }, |d| d.end);
    let mut run =
        Run { path, journal, listing, options, set_id, import_public_key, pos, active: None, bytes_written: 0 };
    run.reopen_in_progress()?;
    if run.journal.finished {
        return Ok(prepared_set(&run.journal, 0));
    }

    let read_size = options.read_size.max(4096);
    let from = run.pos;
    let files = &listing.files;
    let root = listing.root.as_path();
    std::thread::scope(|scope| {
        // Three buffers in flight and one being read: the reader stays ahead of
        // the writer without the memory growing.
        let (tx, rx) = sync_channel::<Result<Chunk, DiskprepError>>(3);
        let (recycle_tx, recycle_rx) = sync_channel::<Vec<u8>>(4);
        scope.spawn(move || read_files(root, files, from, read_size, &tx, &recycle_rx));
        let (jobs_tx, jobs_rx) = sync_channel::<CheckpointJob>(1);
        let (done_tx, done_rx) = sync_channel(1);
        scope.spawn(move || sync_checkpoints(jobs_rx, done_tx));
        // Owned here: when this returns or unwinds, dropping `rx` stops the reader
        // and dropping the syncer's sender stops the syncer.
        let mut syncer = Syncer { jobs: jobs_tx, done: done_rx, in_flight: false };
        run.consume(rx, recycle_tx, &mut syncer, supplier, progress)?;
        run.finish_active(true, &mut syncer)
    })?;
    Ok(prepared_set(&run.journal, run.bytes_written))
}

/// A checkpoint for the syncer thread: make the drive's first `blocks` data
/// blocks durable, then save their digests, then the journal that counts them.
struct CheckpointJob {
    file: File,
    drive: std::path::PathBuf,
    blocks: u64,
    digests_file: std::path::PathBuf,
    digests_from: u64,
    digests: Vec<[u8; 32]>,
    journal: Journal,
    journal_path: std::path::PathBuf,
}

/// The syncer thread: checkpoints are synced here, so the drive's flush overlaps
/// the sealing and writing of the next blocks instead of stalling them.
fn sync_checkpoints(jobs: Receiver<CheckpointJob>, done: SyncSender<Result<u64, DiskprepError>>) {
    for job in jobs {
        let result = job
            .file
            .sync_all()
            .map_err(|e| DiskprepError::io(&job.drive, e))
            .and_then(|_| append_digests(&job.digests_file, job.digests_from, &job.digests))
            .and_then(|_| job.journal.save(&job.journal_path))
            .map(|_| job.blocks);
        if done.send(result).is_err() {
            return;
        }
    }
}

/// The main thread's side of the syncer: at most one checkpoint in flight, and
/// every other journal write waits for it ([`Run::settle`]), so an older
/// checkpoint never lands after a newer journal.
struct Syncer {
    jobs: SyncSender<CheckpointJob>,
    done: Receiver<Result<u64, DiskprepError>>,
    in_flight: bool,
}

impl Run<'_> {
    fn consume(
        &mut self,
        rx: Receiver<Result<Chunk, DiskprepError>>,
        recycle: SyncSender<Vec<u8>>,
        syncer: &mut Syncer,
        supplier: &mut dyn DriveSupplier,
        progress: &dyn Fn(&PrepareProgress),
    ) -> Result<(), DiskprepError> {
        let files = &self.listing.files;
        for chunk in rx {
            let chunk = chunk?;
            let file = &files[chunk.file];
            let mut data = chunk.data.as_slice();
            let mut offset = chunk.offset;
            loop {
                if self.active.is_none() {
                    self.new_drive(supplier, syncer)?;
                }
                let Some(active) = self.active.as_mut() else { unreachable!("a drive was just started") };
                if file.size == 0 {
                    match active.writer.write_file_part(&file.path, 0, 0, &[]) {
                        Ok(_) => {
                            self.pos = StreamPos { file: chunk.file + 1, offset_in_file: 0, ..self.pos };
                            break;
                        }
                        Err(DriveError::DriveFull { .. }) => {
                            self.finish_active(false, syncer)?;
                            continue;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                let fresh = active.writer.stream_position() == active.start.stream_offset;
                let took = active.writer.write_file_part(&file.path, file.size, offset, data)?;
                data = &data[took..];
                offset += took as u64;
                self.bytes_written += took as u64;
                let stream_offset = self.pos.stream_offset + took as u64;
                self.pos = if offset == file.size {
                    StreamPos { file: chunk.file + 1, offset_in_file: 0, stream_offset }
                } else {
                    StreamPos { file: chunk.file, offset_in_file: offset, stream_offset }
                };
                active.since_checkpoint += took as u64;
                if active.since_checkpoint >= self.options.checkpoint_bytes {
                    self.checkpoint(syncer)?;
                }
                if data.is_empty() {
                    break;
                }
                if took == 0 && fresh {
                    // The writer's minimum drive size guarantees a block: only a bug gets here.
                    return Err(DiskprepError::Drive(DriveError::InvalidSpec(format!(
                        "a new drive took no bytes of {}",
                        file.path
                    ))));
                }
                // The drive is full: finish it and give the rest to the next one.
                self.finish_active(false, syncer)?;
            }
            progress(&PrepareProgress {
                bytes_done: self.pos.stream_offset,
                bytes_total: self.journal.total_bytes,
                drive_index: self.active.as_ref().map_or(self.journal.drives.len() as u32, |a| a.index),
                current_file: file.path.clone(),
            });
            let _ = recycle.try_send(chunk.data);
        }
        Ok(())
    }

    /// Asks for the next drive, formats it, and records it as in progress.
    fn new_drive(&mut self, supplier: &mut dyn DriveSupplier, syncer: &mut Syncer) -> Result<(), DiskprepError> {
        self.settle(syncer, true)?;
        let index = self.journal.drives.len() as u32;
        let bytes_left = self.journal.total_bytes - self.pos.stream_offset;
        let Some(target) = supplier.next_drive(index, bytes_left)? else {
            return Err(DiskprepError::Stopped { remaining_bytes: bytes_left });
        };
        let spec = DriveSpec {
            import_job: self.journal.import_job.clone(),
            set_id: self.set_id,
            index,
            stream_start: self.pos.stream_offset,
            block_size: self.journal.block_size,
            import_public_key: self.import_public_key,
        };
        let (mut writer, recovery_key) = DriveWriter::create(&target, spec)?;
        // The header must be durable before the journal points at the drive, so a
        // resume always finds it.
        writer.sync()?;
        append_digests(&digests_path(self.path, index), 0, &[])?;
        self.journal.in_progress = Some(InProgress {
            index,
            drive_id: hex::encode(writer.drive_id()),
            drive_key: hex::encode(writer.drive_key()),
            recovery_key: recovery_key.to_string(),
            path: writer.path().to_path_buf(),
            start: self.pos,
            blocks_synced: 0,
        });
        self.journal.save(self.path)?;
        self.active = Some(Active {
            writer,
            index,
            recovery_key: recovery_key.to_string(),
            start: self.pos,
            digests_saved: 0,
            since_checkpoint: 0,
        });
        Ok(())
    }

    /// Starts a checkpoint of the drive in progress on the syncer thread: sync the
    /// drive, save the new block digests, then the journal counting the synced
    /// blocks (in that order, so the journal never counts a block that is not
    /// durable). If the previous checkpoint is still running, tries again later.
    fn checkpoint(&mut self, syncer: &mut Syncer) -> Result<(), DiskprepError> {
        self.settle(syncer, false)?;
        if syncer.in_flight {
            return Ok(());
        }
        let Some(active) = self.active.as_mut() else { return Ok(()) };
        active.writer.write_held_blocks()?;
        let blocks = active.writer.blocks_written();
        let mut journal = self.journal.clone();
        if let Some(in_progress) = journal.in_progress.as_mut() {
            in_progress.blocks_synced = blocks;
        }
        let job = CheckpointJob {
            file: active.writer.clone_file()?,
            drive: active.writer.path().to_path_buf(),
            blocks,
            digests_file: digests_path(self.path, active.index),
            digests_from: active.digests_saved,
            digests: active.writer.block_digests()[active.digests_saved as usize..blocks as usize].to_vec(),
            journal,
            journal_path: self.path.to_path_buf(),
        };
        if syncer.jobs.send(job).is_err() {
            return Err(syncer_gone(self.path));
        }
        syncer.in_flight = true;
        active.digests_saved = blocks;
        active.since_checkpoint = 0;
        Ok(())
    }

    /// Takes the result of the checkpoint in flight, waiting for it if `wait`.
    fn settle(&mut self, syncer: &mut Syncer, wait: bool) -> Result<(), DiskprepError> {
        if !syncer.in_flight {
            return Ok(());
        }
        let result = if wait {
            syncer.done.recv().map_err(|_| syncer_gone(self.path))
        } else {
            match syncer.done.try_recv() {
                Ok(result) => Ok(result),
                Err(std::sync::mpsc::TryRecvError::Empty) => return Ok(()),
                Err(std::sync::mpsc::TryRecvError::Disconnected) => Err(syncer_gone(self.path)),
            }
        };
        syncer.in_flight = false;
        let blocks = result??;
        if let Some(in_progress) = self.journal.in_progress.as_mut() {
            in_progress.blocks_synced = blocks;
        }
        Ok(())
    }

    fn finish_active(&mut self, last_in_set: bool, syncer: &mut Syncer) -> Result<(), DiskprepError> {
        self.settle(syncer, true)?;
        let Some(active) = self.active.take() else {
            return Err(DiskprepError::JournalDamaged {
                path: self.path.to_path_buf(),
                reason: "the set ends without a drive in progress".into(),
            });
        };
        let summary = active.writer.finish(last_in_set)?;
        let manifest_file = manifest_path(self.path, active.index);
        write_private_atomically(&manifest_file, &summary.sealed_manifest)?;
        let drive = PreparedDrive {
            index: active.index,
            drive_id: hex::encode(summary.drive_id),
            path: summary.path.clone(),
            fingerprint: hex::encode(summary.fingerprint),
            stream_start: summary.stream_start,
            stream_end: summary.stream_end,
            bytes_used: summary.bytes_used,
            recovery_key: active.recovery_key,
            last_in_set,
            file_parts: summary.file_parts,
            manifest_file,
        };
        self.journal.drives.push(FinishedDrive { drive, start: active.start, end: self.pos });
        self.journal.in_progress = None;
        self.journal.finished = last_in_set;
        self.journal.save(self.path)?;
        // Only the journal's block count made these digests matter.
        let _ = std::fs::remove_file(digests_path(self.path, active.index));
        Ok(())
    }

    /// Reopens the drive the journal has in progress and moves the stream position
    /// to its last checkpoint; if its path is gone (the drive was pulled), forgets
    /// it, so the supplier is asked for a new drive for that index.
    fn reopen_in_progress(&mut self) -> Result<(), DiskprepError> {
        let Some(in_progress) = self.journal.in_progress.clone() else { return Ok(()) };
        let damaged = |reason: String| DiskprepError::JournalDamaged { path: self.path.to_path_buf(), reason };
        if in_progress.index as usize != self.journal.drives.len() || in_progress.start != self.pos {
            return Err(damaged("the drive in progress does not follow the finished drives".into()));
        }
        if !in_progress.path.exists() {
            self.journal.in_progress = None;
            self.journal.save(self.path)?;
            return Ok(());
        }
        if let Ok(info) = crate::drive::peek_header_unauthenticated(&in_progress.path) {
            if info.finished && hex::encode(info.drive_id) == in_progress.drive_id {
                return self.adopt_finished(&in_progress);
            }
        }
        let bs = u64::from(self.journal.block_size);
        let upto = in_progress
            .blocks_synced
            .checked_mul(bs)
            .and_then(|n| n.checked_add(in_progress.start.stream_offset))
            .ok_or_else(|| damaged("its block count overflows".into()))?;
        let (parts, pos) = replay_parts(&self.listing.files, in_progress.start, upto).map_err(damaged)?;
        let digests = read_digests(&digests_path(self.path, in_progress.index), in_progress.blocks_synced)?;
        let state = ResumeState {
            drive_id: decode_hex::<16>(self.path, "drive id", &in_progress.drive_id)?,
            drive_key: decode_hex::<32>(self.path, "drive key", &in_progress.drive_key)?,
            stream_start: in_progress.start.stream_offset,
            blocks: in_progress.blocks_synced,
            parts,
            digests,
        };
        let writer = DriveWriter::resume(&in_progress.path, state)?;
        self.pos = pos;
        self.active = Some(Active {
            writer,
            index: in_progress.index,
            recovery_key: in_progress.recovery_key,
            start: in_progress.start,
            digests_saved: in_progress.blocks_synced,
            since_checkpoint: 0,
        });
        Ok(())
    }
}

fn syncer_gone(journal: &Path) -> DiskprepError {
    DiskprepError::JournalDamaged {
        path: journal.to_path_buf(),
        reason: "the thread writing checkpoints stopped; run again with --resume".into(),
    }
}

impl Run<'_> {
    /// The drive in progress was finished on the drive but the journal was not
    /// updated (a crash between the two): open it with its recovery key, check it,
    /// and record it as finished, with its manifest copied from the drive.
    fn adopt_finished(&mut self, in_progress: &InProgress) -> Result<(), DiskprepError> {
        let damaged = |reason: String| DiskprepError::JournalDamaged { path: self.path.to_path_buf(), reason };
        let key: RecoveryKey = in_progress.recovery_key.parse().map_err(|e: DriveError| damaged(e.to_string()))?;
        let reader = DriveReader::open(&in_progress.path, &DriveKey::Recovery(key))?;
        let header = reader.header().clone();
        let manifest = reader.manifest();
        let stride = u64::from(header.block_size) + TAG_LEN;
        let at = block_offset(header.block_size, header.manifest.first_block)
            .ok_or_else(|| damaged("the finished drive's manifest lies past any drive".into()))?;
        let sealed_len = header.manifest.block_count * stride;
        let mut sealed = vec![0u8; sealed_len as usize];
        let mut file = File::open(&in_progress.path).map_err(|e| DiskprepError::io(&in_progress.path, e))?;
        file.seek(SeekFrom::Start(at))
            .and_then(|_| file.read_exact(&mut sealed))
            .map_err(|e| DiskprepError::io(&in_progress.path, e))?;
        let Some(last) = manifest.files.last() else {
            return Err(damaged("the finished drive holds no file parts".into()));
        };
        let Some(last_index) = self.listing.files.iter().position(|f| f.path == last.path) else {
            return Err(DiskprepError::StagingChanged {
                file: last.path.clone(),
                what: "it is no longer there".into(),
            });
        };
        let end = if last.completes_file() {
            StreamPos { file: last_index + 1, offset_in_file: 0, stream_offset: manifest.stream_end }
        } else {
            StreamPos { file: last_index, offset_in_file: last.end_in_file(), stream_offset: manifest.stream_end }
        };
        let manifest_file = manifest_path(self.path, in_progress.index);
        write_private_atomically(&manifest_file, &sealed)?;
        let drive = PreparedDrive {
            index: in_progress.index,
            drive_id: in_progress.drive_id.clone(),
            path: in_progress.path.clone(),
            fingerprint: hex::encode(reader.fingerprint()),
            stream_start: manifest.stream_start,
            stream_end: manifest.stream_end,
            bytes_used: at + sealed_len,
            recovery_key: in_progress.recovery_key.clone(),
            last_in_set: manifest.last_in_set,
            file_parts: manifest.files.len(),
            manifest_file,
        };
        self.journal.drives.push(FinishedDrive { drive, start: in_progress.start, end });
        self.journal.in_progress = None;
        self.journal.finished = manifest.last_in_set;
        self.journal.save(self.path)?;
        let _ = std::fs::remove_file(digests_path(self.path, in_progress.index));
        self.pos = end;
        Ok(())
    }
}

/// The file parts a drive starting at `start` holds in its first `upto − start`
/// stream bytes, and the position after them: the same parts the writer recorded,
/// since the stream is deterministic. An empty file right at `upto` is left for
/// the resumed writer to record.
fn replay_parts(files: &[StagingFile], start: StreamPos, upto: u64) -> Result<(Vec<FilePart>, StreamPos), String> {
    let mut parts = Vec::new();
    let mut pos = start;
    while let Some(file) = files.get(pos.file) {
        if file.size == 0 {
            if pos.stream_offset >= upto {
                break;
            }
            parts.push(FilePart {
                path: file.path.clone(),
                file_size: 0,
                offset_in_file: 0,
                length: 0,
                stream_offset: pos.stream_offset,
            });
            pos.file += 1;
            continue;
        }
        if pos.stream_offset >= upto {
            break;
        }
        let Some(left) = file.size.checked_sub(pos.offset_in_file) else {
            return Err(format!("the drive in progress starts past the end of {}", file.path));
        };
        let take = left.min(upto - pos.stream_offset);
        parts.push(FilePart {
            path: file.path.clone(),
            file_size: file.size,
            offset_in_file: pos.offset_in_file,
            length: take,
            stream_offset: pos.stream_offset,
        });
        pos.stream_offset += take;
        pos.offset_in_file += take;
        if pos.offset_in_file == file.size {
            pos.file += 1;
            pos.offset_in_file = 0;
        }
    }
    if pos.stream_offset != upto {
        return Err(format!("its checkpoint at stream offset {upto} lies past the end of the stream"));
    }
    Ok((parts, pos))
}

/// The reader thread: reads the files from `from` on, in order, `read_size` bytes
/// at a time, and checks each has exactly its listed size.
fn read_files(
    root: &Path,
    files: &[StagingFile],
    from: StreamPos,
    read_size: usize,
    tx: &SyncSender<Result<Chunk, DiskprepError>>,
    recycled: &Receiver<Vec<u8>>,
) {
    for (index, file) in files.iter().enumerate().skip(from.file) {
        let start = if index == from.file { from.offset_in_file } else { 0 };
        let result = read_one(root, file, index, start, read_size, tx, recycled);
        match result {
            Ok(true) => {}
            // The consumer is gone (it failed or finished): stop.
            Ok(false) => return,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        }
    }
}

/// Sends one file's chunks; `Ok(false)` if the consumer hung up.
fn read_one(
    root: &Path,
    file: &StagingFile,
    index: usize,
    start: u64,
    read_size: usize,
    tx: &SyncSender<Result<Chunk, DiskprepError>>,
    recycled: &Receiver<Vec<u8>>,
) -> Result<bool, DiskprepError> {
    let full = root.join(&file.path);
    let changed = |what: String| DiskprepError::StagingChanged { file: file.path.clone(), what };
    let mut handle = match File::open(&full) {
        Ok(handle) => handle,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(changed("it is no longer there".into())),
        Err(e) => return Err(DiskprepError::io(&full, e)),
    };
    if file.size == 0 {
        let mut probe = [0u8; 1];
        if read_full(&mut handle, &mut probe).map_err(|e| DiskprepError::io(&full, e))? != 0 {
            return Err(changed("it is no longer empty".into()));
        }
        return Ok(tx.send(Ok(Chunk { file: index, offset: 0, data: Vec::new() })).is_ok());
    }
    handle.seek(SeekFrom::Start(start)).map_err(|e| DiskprepError::io(&full, e))?;
    let mut offset = start;
    while offset < file.size {
        let want = (file.size - offset).min(read_size as u64) as usize;
        let mut buffer = recycled.try_recv().unwrap_or_default();
        buffer.resize(want, 0);
        let got = read_full(&mut handle, &mut buffer).map_err(|e| DiskprepError::io(&full, e))?;
        if got < want {
            return Err(changed(format!("it is shorter than its listed {} bytes", file.size)));
        }
        if tx.send(Ok(Chunk { file: index, offset, data: buffer })).is_err() {
            return Ok(false);
        }
        offset += want as u64;
    }
    let mut probe = [0u8; 1];
    if read_full(&mut handle, &mut probe).map_err(|e| DiskprepError::io(&full, e))? != 0 {
        return Err(changed(format!("it grew past its listed {} bytes", file.size)));
    }
    Ok(true)
}

/// Reads until `buffer` is full or the file ends; returns the bytes read.
fn read_full(file: &mut File, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buffer.len() {
        match file.read(&mut buffer[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: u64) -> StagingFile {
        StagingFile { path: path.into(), size }
    }

    #[test]
    fn replay_cuts_parts_at_the_checkpoint() {
        let files = [file("a", 10), file("b", 0), file("c", 30), file("d", 0)];
        let start = StreamPos { file: 0, offset_in_file: 4, stream_offset: 100 };
        let (parts, pos) = replay_parts(&files, start, 120).unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!((parts[0].offset_in_file, parts[0].length), (4, 6));
        assert_eq!(parts[1].path, "b");
        assert_eq!((parts[2].path.as_str(), parts[2].length, parts[2].stream_offset), ("c", 14, 106));
        assert_eq!(pos, StreamPos { file: 2, offset_in_file: 14, stream_offset: 120 });
        // An empty file right at the checkpoint is left for the resumed writer.
        let (parts, pos) = replay_parts(&files, start, 106).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(pos, StreamPos { file: 1, offset_in_file: 0, stream_offset: 106 });
        assert!(replay_parts(&files, start, 200).is_err());
    }
}
