//! [`DriveWriter`]: formats a drive and fills it with a share of the set's stream,
//! for diskprep.
//!
//! Order of writes, so an interrupted preparation is never mistaken for a finished
//! drive: [`DriveWriter::create`] writes an unfinished header; data blocks follow as
//! they fill; [`DriveWriter::finish`] pads and writes the last data block, writes the
//! manifest, syncs, and only then rewrites the header as finished and syncs again.
//!
//! Nonces: `create` draws a fresh drive key, and the writer seals each block index
//! exactly once (a block is sealed only when full, or at `finish`, and the writer
//! never goes back). So no two plaintexts ever meet one nonce under one key. A
//! preparation that is redone starts over with `create`, hence a new key.
//!
//! Resuming ([`DriveWriter::resume`]) keeps the drive key and rewrites the indexes
//! from the last synced block on. That is safe only because diskprep's stream is
//! deterministic (the same staging files, same sizes, same order): every index is
//! rewritten with the very plaintext it held before. The writer checks it: blocks
//! found on the drive after the resume point that still authenticate have their
//! plaintext digest remembered, and sealing a different plaintext at such an index
//! is refused ([`DriveError::ResumeMismatch`]) before anything is written.
//!
//! Batches: full blocks wait in memory until [`BATCH_BYTES`] of them are ready; then
//! they are hashed and sealed in parallel (rayon) and written with one write, as they
//! lie next to each other on the drive. Hashing and sealing are diskprep's CPU work;
//! on one thread they held it to about half the speed of a plain copy.
//!
//! Room for the manifest: the writer takes data only while the data blocks plus an
//! upper bound of the manifest's encoded size (which grows with every file part and
//! every block) still fit, so `finish` never runs out of space.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rand::RngCore;
use rayon::prelude::*;

use super::block::{block_offset, capacity_blocks, BlockCipher, BlockKind};
use super::header::{check_block_size, check_import_job, read_header, DriveHeader, ManifestLocation};
use super::key_slot::{wrap_import, wrap_recovery};
use super::manifest::{bound, check_length, validate_path, DriveManifest, FilePart, ManifestProblem};
use super::{
    DriveError, DriveId, DriveTarget, RecoveryKey, SetId, DEFAULT_BLOCK_SIZE, FORMAT_VERSION, MAX_MANIFEST_BYTES,
    MAX_MANIFEST_PARTS, MAX_MANIFEST_PATH_BYTES, MAX_PATH_BYTES,
};

/// Plaintext gathered before a batch of blocks is sealed and written (at least one
/// block): large enough to keep every core busy, small enough to stay in cache.
const BATCH_BYTES: usize = 8 * 1024 * 1024;

/// What a drive is for: which job, which set and place in it, where in the stream
/// it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveSpec {
    pub import_job: String,
    /// Shared by all drives of one preparation ([`new_set_id`]).
    pub set_id: SetId,
    /// Place in the set, from 0.
    pub index: u32,
    /// Where this drive starts in the set's stream: 0 on the first drive, the
    /// previous drive's [`DriveSummary::stream_end`] after it.
    pub stream_start: u64,
    /// [`DEFAULT_BLOCK_SIZE`] unless testing.
    pub block_size: u32,
    /// The service's X25519 import public key.
    pub import_public_key: [u8; 32],
}

impl DriveSpec {
    /// A spec with the default block size.
    pub fn new(
        import_job: impl Into<String>,
        set_id: SetId,
        index: u32,
        stream_start: u64,
        import_public_key: [u8; 32],
    ) -> Self {
        DriveSpec {
            import_job: import_job.into(),
            set_id,
            index,
            stream_start,
            block_size: DEFAULT_BLOCK_SIZE,
            import_public_key,
        }
    }
}

/// A fresh random set id, for the first drive of a preparation.
pub fn new_set_id() -> SetId {
    let mut id = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut id);
    id
}

/// What a finished drive holds.
#[derive(Clone)]
pub struct DriveSummary {
    /// The file that holds the drive (a folder target's image file).
    pub path: PathBuf,
    pub drive_id: DriveId,
    pub set_id: SetId,
    pub import_job: String,
    pub index: u32,
    pub last_in_set: bool,
    pub stream_start: u64,
    /// Where the next drive of the set starts in the stream.
    pub stream_end: u64,
    pub file_parts: usize,
    pub data_blocks: u64,
    pub manifest_blocks: u64,
    /// Bytes from the start of the drive to the end of the manifest.
    pub bytes_used: u64,
    /// BLAKE3 of the header as written (see [`super::PublicHeaderInfo::fingerprint`]):
    /// register it with the import job so the datacenter can tell this drive from
    /// any other that claims its ids.
    pub fingerprint: [u8; 32],
    /// The manifest's blocks exactly as written on the drive (still encrypted under
    /// the drive key). Keep it off the drive (diskprep's journal, the import job): it
    /// lets [`super::DriveReader::open_with_manifest`] read a drive whose tail,
    /// manifest included, was lost.
    pub sealed_manifest: Vec<u8>,
}

/// Shows the sealed manifest's length only: it can be tens of megabytes.
impl std::fmt::Debug for DriveSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriveSummary")
            .field("path", &self.path)
            .field("drive_id", &hex::encode(self.drive_id))
            .field("set_id", &hex::encode(self.set_id))
            .field("import_job", &self.import_job)
            .field("index", &self.index)
            .field("last_in_set", &self.last_in_set)
            .field("stream", &(self.stream_start..self.stream_end))
            .field("file_parts", &self.file_parts)
            .field("data_blocks", &self.data_blocks)
            .field("manifest_blocks", &self.manifest_blocks)
            .field("bytes_used", &self.bytes_used)
            .field("fingerprint", &hex::encode(self.fingerprint))
            .field("sealed_manifest_len", &self.sealed_manifest.len())
            .finish()
    }
}

/// Writes one drive. Give it the files' bytes in stream order with
/// [`Self::write_file_part`], then call [`Self::finish`].
pub struct DriveWriter {
    file: File,
    path: PathBuf,
    header: DriveHeader,
    drive_key: [u8; 32],
    cipher: BlockCipher,
    /// Room for a batch of sealed blocks, one stride each: the first `batched` slots
    /// hold full blocks of plaintext not yet written, and the next slot's first
    /// `filled` bytes the block being filled.
    batch: Vec<u8>,
    batched: usize,
    filled: usize,
    blocks_written: u64,
    digests: Vec<[u8; 32]>,
    stream_start: u64,
    /// Stream bytes taken so far (written or buffered).
    stream_len: u64,
    parts: Vec<FilePart>,
    paths: HashSet<String>,
    /// Bytes of all paths in `parts`, within [`MAX_MANIFEST_PATH_BYTES`].
    path_bytes: u64,
    /// Upper bound of the manifest's encoding without the block digests.
    manifest_bound: u64,
    /// Set when a write failed: the drive's state is unknown, so it cannot be finished.
    failed: bool,
    /// After a resume: the plaintext digests of the blocks found on the drive from
    /// `resealed_from` on (written before the interruption, after the last sync).
    /// Those indexes may be sealed again only with the same plaintext.
    resealed_from: u64,
    resealed: Vec<[u8; 32]>,
}

/// What a resumed writer starts from: the state of a drive at its last sync, as
/// diskprep's journal recorded it.
#[derive(Clone)]
pub struct ResumeState {
    pub drive_id: DriveId,
    pub drive_key: [u8; 32],
    /// Where the drive starts in the set's stream.
    pub stream_start: u64,
    /// Data blocks written and synced ([`DriveWriter::sync`]).
    pub blocks: u64,
    /// The file parts those blocks hold, in stream order, covering exactly
    /// `blocks × block_size` stream bytes (an empty file at the very end is not included).
    pub parts: Vec<FilePart>,
    /// The plaintext digest of each of those blocks ([`DriveWriter::block_digests`]).
    pub digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for ResumeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResumeState")
            .field("drive_id", &hex::encode(self.drive_id))
            .field("stream_start", &self.stream_start)
            .field("blocks", &self.blocks)
            .field("parts", &self.parts.len())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for DriveWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriveWriter")
            .field("path", &self.path)
            .field("import_job", &self.header.import_job)
            .field("index", &self.header.index)
            .field("stream_len", &self.stream_len)
            .finish_non_exhaustive()
    }
}

/// The smallest drive for `block_size` and this import job: the header region, one
/// data block, and a manifest holding one file with the longest allowed path.
/// A batch buffer for `cipher`'s blocks: [`BATCH_BYTES`] of plaintext, at least one block.
fn batch_buffer(cipher: &BlockCipher) -> Vec<u8> {
    let stride = cipher.stride();
    let blocks = (BATCH_BYTES / stride).max(1);
    vec![0u8; blocks * stride]
}

fn minimum_size(block_size: u32, import_job: &str) -> u64 {
    let manifest = bound::fixed(import_job.len()) + bound::part(MAX_PATH_BYTES) + bound::BLOCK;
    let blocks = 1 + manifest.div_ceil(u64::from(block_size));
    block_offset(block_size, blocks).unwrap_or(u64::MAX)
}

impl DriveWriter {
    /// Formats the target: draws a drive id, a drive key and a recovery key, and
    /// overwrites the header region with an unfinished header. Returns the writer
    /// and the recovery key, which must be shown to the customer now: it is stored
    /// nowhere else.
    pub fn create(target: &DriveTarget, spec: DriveSpec) -> Result<(DriveWriter, RecoveryKey), DriveError> {
        check_import_job(&spec.import_job).map_err(DriveError::InvalidSpec)?;
        check_block_size(spec.block_size).map_err(DriveError::InvalidSpec)?;
        let path = target.file_path();
        let needed = minimum_size(spec.block_size, &spec.import_job);
        let too_small = |size: u64| DriveError::DriveTooSmall {
            path: path.display().to_string(),
            size,
            needed,
            block_size: spec.block_size,
        };
        // Refuse a too small image before truncating anything.
        if let DriveTarget::Image { size, .. } | DriveTarget::Folder { size, .. } = target {
            if *size < needed {
                return Err(too_small(*size));
            }
        }

        let mut drive_id = [0u8; 16];
        let mut drive_key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut drive_id);
        rand::rngs::OsRng.fill_bytes(&mut drive_key);
        let recovery_key = RecoveryKey::generate();
        let import_slot = wrap_import(&drive_key, &drive_id, &spec.import_public_key)?;
        let recovery_slot = wrap_recovery(&drive_key, &drive_id, &recovery_key)?;

        let (file, capacity) = target.open_for_writing()?;
        if capacity < needed {
            return Err(too_small(capacity));
        }
        let header = DriveHeader {
            drive_id,
            set_id: spec.set_id,
            import_job: spec.import_job.clone(),
            index: spec.index,
            block_size: spec.block_size,
            capacity_blocks: capacity_blocks(spec.block_size, capacity),
            data_blocks: 0,
            manifest: ManifestLocation::default(),
            finished: false,
            import_slot,
            recovery_slot,
        };
        let cipher = BlockCipher::new(&drive_key, drive_id, spec.set_id, spec.block_size);
        let mut writer = DriveWriter {
            batch: batch_buffer(&cipher),
            batched: 0,
            cipher,
            file,
            path,
            drive_key,
            filled: 0,
            blocks_written: 0,
            digests: Vec::new(),
            stream_start: spec.stream_start,
            stream_len: 0,
            parts: Vec::new(),
            paths: HashSet::new(),
            path_bytes: 0,
            manifest_bound: bound::fixed(header.import_job.len()),
            failed: false,
            resealed_from: 0,
            resealed: Vec::new(),
            header,
        };
        let (region, _) = writer.header.encode_region(&writer.drive_key)?;
        writer.write_at(0, &region)?;
        Ok((writer, recovery_key))
    }

    /// Reopens an unfinished drive to continue it from `state` (see the module
    /// documentation for why reusing the drive key is safe). The drive at `path`
    /// (the file that holds it: a folder target's image file) must carry the
    /// header of `state.drive_id`, authenticated by `state.drive_key`, unfinished.
    /// Nothing is written here; the next byte taken has stream offset
    /// `state.stream_start + state.blocks × block_size`.
    pub fn resume(path: &Path, state: ResumeState) -> Result<DriveWriter, DriveError> {
        let shown = path.display().to_string();
        let mut file =
            std::fs::OpenOptions::new().read(true).write(true).open(path).map_err(|e| DriveError::io(path, e))?;
        let size = file.seek(SeekFrom::End(0)).map_err(|e| DriveError::io(path, e))?;
        let parsed = read_header(&mut file, path, size)?;
        let header = parsed.header.clone();
        if header.drive_id != state.drive_id {
            return Err(DriveError::NotTheDriveInProgress {
                path: shown,
                expected: hex::encode(state.drive_id),
                found: hex::encode(header.drive_id),
            });
        }
        if !parsed.mac_matches(&state.drive_key) {
            return Err(DriveError::HeaderDamaged {
                path: shown,
                reason: "its MAC does not match the drive key diskprep recorded".into(),
            });
        }
        if header.finished {
            return Err(DriveError::InvalidSpec(format!(
                "the drive at {shown} is already finished; it cannot be resumed"
            )));
        }
        if capacity_blocks(header.block_size, size) < header.capacity_blocks {
            return Err(DriveError::Truncated {
                path: shown,
                size,
                needed: block_offset(header.block_size, header.capacity_blocks).unwrap_or(u64::MAX),
                what: "capacity",
            });
        }
        let bs = u64::from(header.block_size);
        let inconsistent =
            |reason: String| DriveError::InvalidSpec(format!("cannot resume the drive at {shown}: {reason}"));
        if state.digests.len() as u64 != state.blocks || state.blocks > header.capacity_blocks {
            return Err(inconsistent(format!("{} block digests for {} blocks", state.digests.len(), state.blocks)));
        }
        let stream_len = state.blocks.checked_mul(bs).ok_or_else(|| inconsistent("too many blocks".into()))?;
        let mut next = state.stream_start;
        let mut paths = HashSet::with_capacity(state.parts.len());
        let mut manifest_bound = bound::fixed(header.import_job.len());
        let path_bytes: u64 = state.parts.iter().map(|part| part.path.len() as u64).sum();
        if state.parts.len() as u64 > MAX_MANIFEST_PARTS || path_bytes > MAX_MANIFEST_PATH_BYTES {
            return Err(inconsistent(format!(
                "{} file parts with {path_bytes} bytes of paths, more than a drive holds",
                state.parts.len()
            )));
        }
        for (k, part) in state.parts.iter().enumerate() {
            validate_path(&part.path).map_err(|reason| DriveError::BadPath { file: part.path.clone(), reason })?;
            let well_placed = part.stream_offset == next
                && part.end_in_file() <= part.file_size
                && (part.length > 0 || part.file_size == 0)
                && (part.offset_in_file == 0 || (k == 0 && state.stream_start > 0))
                && (part.completes_file() || k + 1 == state.parts.len());
            if !well_placed || !paths.insert(part.path.clone()) {
                return Err(inconsistent(format!("the file part {:?} does not follow the previous ones", part.path)));
            }
            manifest_bound += bound::part(part.path.len());
            next = part.stream_end();
        }
        if next != state.stream_start + stream_len {
            return Err(inconsistent(format!(
                "the file parts cover {} stream bytes, the {} blocks {stream_len}",
                next - state.stream_start,
                state.blocks
            )));
        }

        let cipher = BlockCipher::new(&state.drive_key, header.drive_id, header.set_id, header.block_size);
        // Remember what the interrupted run wrote after the last sync (see the
        // module documentation): every block from there on that still authenticates.
        let mut resealed = Vec::new();
        let mut buffer = vec![0u8; cipher.stride()];
        let mut index = state.blocks;
        while index < header.capacity_blocks {
            let at = block_offset(header.block_size, index).unwrap_or(u64::MAX);
            let read = file.seek(SeekFrom::Start(at)).and_then(|_| std::io::Read::read_exact(&mut file, &mut buffer));
            if read.is_err() || !cipher.open(index, BlockKind::Data, &mut buffer) {
                break;
            }
            resealed.push(*blake3::hash(&buffer[..bs as usize]).as_bytes());
            index += 1;
        }

        Ok(DriveWriter {
            batch: batch_buffer(&cipher),
            batched: 0,
            cipher,
            file,
            path: path.to_path_buf(),
            drive_key: state.drive_key,
            filled: 0,
            blocks_written: state.blocks,
            digests: state.digests,
            stream_start: state.stream_start,
            stream_len,
            parts: state.parts,
            paths,
            path_bytes,
            manifest_bound,
            failed: false,
            resealed_from: state.blocks,
            resealed,
            header,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The drive key. Only diskprep's journal may keep it (so an interrupted drive
    /// can be resumed); it is never shown.
    pub fn drive_key(&self) -> [u8; 32] {
        self.drive_key
    }

    pub fn set_id(&self) -> SetId {
        self.header.set_id
    }

    pub fn index(&self) -> u32 {
        self.header.index
    }

    /// Data blocks written so far (full blocks; the blocks of a batch not yet full,
    /// and a partial last block, are held in memory until more data or `finish`).
    pub fn blocks_written(&self) -> u64 {
        self.blocks_written
    }

    /// The file parts taken so far, in stream order (the last one may still be
    /// growing, and may end inside the block held in memory).
    pub fn parts(&self) -> &[FilePart] {
        &self.parts
    }

    /// The block size in bytes.
    pub fn block_size(&self) -> u32 {
        self.header.block_size
    }

    /// The plaintext digests of the data blocks written so far, in index order.
    pub fn block_digests(&self) -> &[[u8; 32]] {
        &self.digests
    }

    /// A second handle on the drive, so diskprep can sync it from another thread
    /// while this one keeps writing (a sync makes durable every write that
    /// returned before it started).
    pub(crate) fn clone_file(&self) -> Result<File, DriveError> {
        self.file.try_clone().map_err(|e| DriveError::io(&self.path, e))
    }

    /// Seals and writes the full blocks held in memory now, without waiting for
    /// their batch to fill (a checkpoint counts only written blocks).
    pub fn write_held_blocks(&mut self) -> Result<(), DriveError> {
        self.check_usable()?;
        self.seal_and_write_batch()
    }

    /// Writes the full blocks held in memory, makes every data block written so far
    /// durable and returns how many there are: a checkpoint from which [`Self::resume`] can continue.
    pub fn sync(&mut self) -> Result<u64, DriveError> {
        self.check_usable()?;
        self.seal_and_write_batch()?;
        self.sync_file()?;
        Ok(self.blocks_written)
    }

    /// For tests that forge authenticated headers.
    #[cfg(test)]
    pub(crate) fn drive_key_for_tests(&self) -> [u8; 32] {
        self.drive_key
    }

    #[cfg(test)]
    pub(crate) fn header_for_tests(&self) -> &DriveHeader {
        &self.header
    }

    pub fn drive_id(&self) -> DriveId {
        self.header.drive_id
    }

    /// The stream offset the next byte taken will have.
    pub fn stream_position(&self) -> u64 {
        self.stream_start + self.stream_len
    }

    fn bs(&self) -> u64 {
        u64::from(self.header.block_size)
    }

    /// The most stream bytes this drive can hold in total if its manifest, without
    /// block digests, takes at most `manifest_bound` bytes; `None` if not even the
    /// manifest fits. Data and manifest blocks must fit in the capacity, and the
    /// manifest must stay within [`MAX_MANIFEST_BYTES`].
    fn max_stream_len(&self, manifest_bound: u64) -> Option<u64> {
        let bs = self.bs();
        let capacity = self.header.capacity_blocks;
        let fits = |data_blocks: u64| {
            let Some(manifest) = data_blocks.checked_mul(bound::BLOCK).and_then(|d| d.checked_add(manifest_bound))
            else {
                return false;
            };
            manifest <= MAX_MANIFEST_BYTES
                && data_blocks.checked_add(manifest.div_ceil(bs)).is_some_and(|total| total <= capacity)
        };
        if !fits(0) {
            return None;
        }
        // `fits` only gets harder as blocks are added: binary search the largest.
        let (mut lo, mut hi) = (0u64, capacity);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if fits(mid) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo.checked_mul(bs)
    }

    /// Stream bytes the next [`Self::write_file_part`] will surely take, whether it
    /// continues the current file or starts a new one with the longest allowed path.
    /// Writing until a call takes less than offered never leaves too little room for
    /// the manifest; this number only helps to decide when to change drives.
    pub fn remaining(&self) -> u64 {
        if self.failed {
            return 0;
        }
        if !self.takes_another_part(MAX_PATH_BYTES) {
            return 0;
        }
        self.max_stream_len(self.manifest_bound + bound::part(MAX_PATH_BYTES))
            .map_or(0, |max| max.saturating_sub(self.stream_len))
    }

    /// Whether the manifest may list one more file part with a path of `path_len`
    /// bytes: readers refuse more parts or path bytes than the format allows.
    fn takes_another_part(&self, path_len: usize) -> bool {
        (self.parts.len() as u64) < MAX_MANIFEST_PARTS && self.path_bytes + path_len as u64 <= MAX_MANIFEST_PATH_BYTES
    }

    /// Appends bytes `[offset_in_file, offset_in_file + data.len())` of the file at
    /// `path` (whose whole size is `file_size`) to the stream. Takes as much of
    /// `data` as fits and returns how many bytes it took: fewer than offered means
    /// the drive is full; finish it and give the rest to the next drive.
    ///
    /// Files come one after the other, each from offset 0 to its end; only the
    /// first file of a drive (not of the set) may start where the previous drive
    /// stopped. An empty file is recorded with empty `data`, or refused with
    /// [`DriveError::DriveFull`] when not even its entry fits.
    pub fn write_file_part(
        &mut self,
        path: &str,
        file_size: u64,
        offset_in_file: u64,
        data: &[u8],
    ) -> Result<usize, DriveError> {
        self.check_usable()?;
        validate_path(path).map_err(|reason| DriveError::BadPath { file: path.to_string(), reason })?;
        let end_in_file = offset_in_file.checked_add(data.len() as u64).filter(|end| *end <= file_size);
        if end_in_file.is_none() {
            return Err(DriveError::OutOfOrder(format!(
                "{path}: {} bytes at offset {offset_in_file} lie past the file's size {file_size}",
                data.len()
            )));
        }
        let continues = match self.parts.last() {
            Some(last) if last.path == path => {
                if last.file_size != file_size {
                    return Err(DriveError::OutOfOrder(format!(
                        "{path}: the file's size changed from {} to {file_size}",
                        last.file_size
                    )));
                }
                if offset_in_file != last.end_in_file() {
                    return Err(DriveError::OutOfOrder(format!(
                        "{path}: bytes at offset {offset_in_file} do not continue the part ending at {}",
                        last.end_in_file()
                    )));
                }
                true
            }
            Some(last) => {
                if !last.completes_file() {
                    return Err(DriveError::OutOfOrder(format!(
                        "{path} starts while {} has {} of its {} bytes",
                        last.path,
                        last.end_in_file(),
                        last.file_size
                    )));
                }
                if self.paths.contains(path) {
                    return Err(DriveError::OutOfOrder(format!("{path} is given twice")));
                }
                if offset_in_file != 0 {
                    return Err(DriveError::OutOfOrder(format!(
                        "{path} starts at offset {offset_in_file}; only a drive's first file may continue the previous drive's last"
                    )));
                }
                false
            }
            None => {
                if offset_in_file != 0 && self.stream_start == 0 {
                    return Err(DriveError::OutOfOrder(format!(
                        "{path} starts at offset {offset_in_file} on the first drive of the set"
                    )));
                }
                false
            }
        };
        if data.is_empty() && (continues || file_size > 0) {
            return Ok(0);
        }

        let manifest_bound =
            if continues { self.manifest_bound } else { self.manifest_bound + bound::part(path.len()) };
        let room = continues || self.takes_another_part(path.len());
        let Some(max) = self.max_stream_len(manifest_bound).filter(|max| room && *max >= self.stream_len) else {
            if data.is_empty() {
                return Err(DriveError::DriveFull { path: self.path.display().to_string(), file: path.to_string() });
            }
            return Ok(0);
        };
        let take = (max - self.stream_len).min(data.len() as u64) as usize;
        if take == 0 && !data.is_empty() {
            return Ok(0);
        }
        let stream_offset = self.stream_position();
        if stream_offset.checked_add(take as u64).is_none() {
            return Err(DriveError::InvalidSpec(format!("the stream passes 2^64 bytes at {path}")));
        }

        match self.parts.last_mut() {
            Some(last) if continues => last.length += take as u64,
            _ => {
                self.parts.push(FilePart {
                    path: path.to_string(),
                    file_size,
                    offset_in_file,
                    length: take as u64,
                    stream_offset,
                });
                self.paths.insert(path.to_string());
                self.path_bytes += path.len() as u64;
                self.manifest_bound = manifest_bound;
            }
        }
        self.stream_len += take as u64;

        let bs = self.header.block_size as usize;
        let stride = self.cipher.stride();
        let mut rest = &data[..take];
        while !rest.is_empty() {
            let n = (bs - self.filled).min(rest.len());
            let at = self.batched * stride + self.filled;
            self.batch[at..at + n].copy_from_slice(&rest[..n]);
            self.filled += n;
            rest = &rest[n..];
            if self.filled == bs {
                self.batched += 1;
                self.filled = 0;
                if (self.batched + 1) * stride > self.batch.len() {
                    self.seal_and_write_batch()?;
                }
            }
        }
        Ok(take)
    }

    /// Pads and writes the last data block, writes the manifest, and marks the
    /// drive finished (syncing before and after, so a finished header never
    /// precedes its data on the drive). `last_in_set` says no drive follows; then
    /// the last file must be complete.
    pub fn finish(mut self, last_in_set: bool) -> Result<DriveSummary, DriveError> {
        self.check_usable()?;
        if let Some(last) = self.parts.last() {
            if last_in_set && !last.completes_file() {
                return Err(DriveError::OutOfOrder(format!(
                    "the set ends while {} has {} of its {} bytes",
                    last.path,
                    last.end_in_file(),
                    last.file_size
                )));
            }
        }
        if self.filled > 0 {
            let bs = self.header.block_size as usize;
            let slot = self.batched * self.cipher.stride();
            self.batch[slot + self.filled..slot + bs].fill(0);
            self.batched += 1;
            self.filled = 0;
        }
        self.seal_and_write_batch()?;

        let data_blocks = self.blocks_written;
        let manifest = DriveManifest {
            version: FORMAT_VERSION,
            drive_id: self.header.drive_id,
            set_id: self.header.set_id,
            import_job: self.header.import_job.clone(),
            index: self.header.index,
            last_in_set,
            stream_start: self.stream_start,
            stream_end: self.stream_position(),
            files: std::mem::take(&mut self.parts),
            blocks: std::mem::take(&mut self.digests),
        };
        let encoded = postcard::to_stdvec(&manifest)
            .map_err(|e| DriveError::InvalidSpec(format!("cannot encode the manifest: {e}")))?;
        let bs = self.bs();
        let location = ManifestLocation {
            first_block: data_blocks,
            block_count: (encoded.len() as u64).div_ceil(bs),
            byte_length: encoded.len() as u64,
        };
        let mut finished = self.header.clone();
        finished.data_blocks = data_blocks;
        finished.manifest = location;
        finished.finished = true;
        // The reserve makes these hold; checking them means a bug can only ever
        // produce an error here, never a drive the reader refuses.
        finished
            .check_fields()
            .map_err(|reason| DriveError::InvalidSpec(format!("the finished header is invalid: {reason}")))?;
        check_length(&finished)
            .map_err(|reason| DriveError::InvalidSpec(format!("the manifest is too large: {reason}")))?;
        manifest.check(&finished).map_err(|problem| {
            DriveError::InvalidSpec(match problem {
                ManifestProblem::Damaged(reason) => format!("the manifest is invalid: {reason}"),
                ManifestProblem::BadPath { file, reason } => format!("the manifest has a bad path {file:?}: {reason}"),
                ManifestProblem::TooLarge(reason) => format!("the manifest is too large: {reason}"),
            })
        })?;

        let stride = self.cipher.stride();
        let mut sealed_manifest = Vec::with_capacity(location.block_count as usize * stride);
        let mut block = vec![0u8; stride];
        for (k, chunk) in encoded.chunks(bs as usize).enumerate() {
            block[..chunk.len()].copy_from_slice(chunk);
            block[chunk.len()..].fill(0);
            self.cipher.seal(data_blocks + k as u64, BlockKind::Manifest, &mut block)?;
            sealed_manifest.extend_from_slice(&block);
        }
        let manifest_at = self.block_position(data_blocks)?;
        self.write_at(manifest_at, &sealed_manifest)?;
        self.sync_file()?;

        let (region, fingerprint) = finished.encode_region(&self.drive_key)?;
        self.write_at(0, &region)?;
        self.sync_file()?;

        Ok(DriveSummary {
            path: self.path.clone(),
            drive_id: finished.drive_id,
            set_id: finished.set_id,
            import_job: finished.import_job.clone(),
            index: finished.index,
            last_in_set,
            stream_start: manifest.stream_start,
            stream_end: manifest.stream_end,
            file_parts: manifest.files.len(),
            data_blocks,
            manifest_blocks: location.block_count,
            bytes_used: manifest_at + sealed_manifest.len() as u64,
            fingerprint,
            sealed_manifest,
        })
    }

    fn check_usable(&self) -> Result<(), DriveError> {
        if self.failed {
            return Err(DriveError::WriterFailed { path: self.path.display().to_string() });
        }
        Ok(())
    }

    fn block_position(&self, index: u64) -> Result<u64, DriveError> {
        block_offset(self.header.block_size, index)
            .ok_or_else(|| DriveError::InvalidSpec(format!("block {index} lies past any drive")))
    }

    /// Hashes and seals the batch's full blocks as the next data blocks, in
    /// parallel, and writes them with one write (consecutive indexes lie next to
    /// each other). Nothing is written if one of them would change a block an
    /// interrupted run already sealed at its index.
    fn seal_and_write_batch(&mut self) -> Result<(), DriveError> {
        let count = self.batched;
        if count == 0 {
            return Ok(());
        }
        let bs = self.header.block_size as usize;
        let stride = self.cipher.stride();
        let first = self.blocks_written;
        let cipher = &self.cipher;
        let sealed: Result<Vec<[u8; 32]>, DriveError> = self.batch[..count * stride]
            .par_chunks_mut(stride)
            .enumerate()
            .map(|(k, slot)| {
                let digest = *blake3::hash(&slot[..bs]).as_bytes();
                cipher.seal(first + k as u64, BlockKind::Data, slot).map(|()| digest)
            })
            .collect();
        let digests = match sealed {
            Ok(digests) => digests,
            Err(e) => {
                self.failed = true;
                return Err(e);
            }
        };
        for (k, digest) in digests.iter().enumerate() {
            let index = first + k as u64;
            let before = index.checked_sub(self.resealed_from).and_then(|j| self.resealed.get(j as usize));
            if before.is_some_and(|before| before != digest) {
                self.failed = true;
                return Err(DriveError::ResumeMismatch { path: self.path.display().to_string(), block: index });
            }
        }
        let at = self.block_position(first)?;
        let batch = std::mem::take(&mut self.batch);
        let written = self.write_at(at, &batch[..count * stride]);
        self.batch = batch;
        written?;
        self.digests.extend(digests);
        self.blocks_written += count as u64;
        self.batched = 0;
        // The block being filled (after a flush before the batch was full) moves to the first slot.
        let partial = count * stride;
        self.batch.copy_within(partial..partial + self.filled, 0);
        Ok(())
    }

    fn write_at(&mut self, at: u64, bytes: &[u8]) -> Result<(), DriveError> {
        let result = self.file.seek(SeekFrom::Start(at)).and_then(|_| self.file.write_all(bytes));
        result.map_err(|e| {
            self.failed = true;
            DriveError::io(&self.path, e)
        })
    }

    fn sync_file(&mut self) -> Result<(), DriveError> {
        self.file.sync_all().map_err(|e| {
            self.failed = true;
            DriveError::io(&self.path, e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drive::{DriveKey, DriveReader, HEADER_REGION, TAG_LEN};
    use proptest::prelude::*;
    use x25519_dalek::{PublicKey, StaticSecret};

    fn keys() -> (StaticSecret, [u8; 32]) {
        let secret = StaticSecret::random_from_rng(rand::rngs::OsRng);
        let public = PublicKey::from(&secret).to_bytes();
        (secret, public)
    }

    fn spec(public: [u8; 32], block_size: u32) -> DriveSpec {
        DriveSpec { block_size, ..DriveSpec::new("job", new_set_id(), 0, 0, public) }
    }

    #[test]
    fn the_minimum_size_holds_one_file_with_the_longest_path() {
        let dir = tempfile::tempdir().unwrap();
        let (_, public) = keys();
        let needed = minimum_size(4096, "job");
        let target = DriveTarget::Image { path: dir.path().join("d.img"), size: needed - 1 };
        match DriveWriter::create(&target, spec(public, 4096)) {
            Err(DriveError::DriveTooSmall { needed: n, .. }) => assert_eq!(n, needed),
            other => panic!("{other:?}"),
        }
        let target = DriveTarget::Image { path: dir.path().join("d.img"), size: needed };
        let (mut writer, _) = DriveWriter::create(&target, spec(public, 4096)).unwrap();
        assert!(writer.remaining() >= 4096);
        let path = "p".repeat(MAX_PATH_BYTES);
        let data = vec![1u8; 4096];
        assert_eq!(writer.write_file_part(&path, 4096, 0, &data).unwrap(), 4096);
        writer.finish(true).unwrap();
    }

    /// A drive takes file parts up to the number a reader accepts, then is full: a
    /// drive diskprep writes is never one the station refuses as too large.
    #[test]
    fn a_drive_takes_as_many_file_parts_as_a_reader_accepts_and_no_more() {
        let dir = tempfile::tempdir().unwrap();
        let (secret, public) = keys();
        let target = DriveTarget::Image { path: dir.path().join("d.img"), size: 256 << 20 };
        let (mut writer, _) = DriveWriter::create(&target, spec(public, 65536)).unwrap();
        for n in 0..MAX_MANIFEST_PARTS {
            writer.write_file_part(&format!("{n:x}"), 0, 0, &[]).unwrap();
        }
        assert_eq!(writer.remaining(), 0);
        assert!(matches!(writer.write_file_part("one-more", 0, 0, &[]), Err(DriveError::DriveFull { .. })));
        assert_eq!(writer.write_file_part("one-more", 1, 0, &[7]).unwrap(), 0, "a file with bytes is not taken either");
        let summary = writer.finish(true).unwrap();
        assert_eq!(summary.file_parts as u64, MAX_MANIFEST_PARTS);
        let reader = DriveReader::open(&summary.path, &DriveKey::Import(secret)).unwrap();
        assert_eq!(reader.manifest().files.len() as u64, MAX_MANIFEST_PARTS);
    }

    /// The stream a finished drive holds, every block verified.
    fn read_back(path: &Path, secret: StaticSecret) -> Vec<u8> {
        let mut reader = DriveReader::open(path, &DriveKey::Import(secret)).unwrap();
        let mut back = Vec::new();
        let report = reader
            .verify_and_read(|_, _, bytes| {
                back.extend_from_slice(bytes);
                Ok::<(), DriveError>(())
            })
            .unwrap();
        assert!(report.is_clean());
        back
    }

    /// The resume state of a drive holding the one file `data`, checkpointed after `blocks` blocks.
    fn resume_state(writer: &DriveWriter, blocks: u64, data: &[u8]) -> ResumeState {
        let bs = writer.bs();
        ResumeState {
            drive_id: writer.drive_id(),
            drive_key: writer.drive_key(),
            stream_start: 0,
            blocks,
            parts: vec![FilePart {
                path: "data/f".into(),
                file_size: data.len() as u64,
                offset_in_file: 0,
                length: blocks * bs,
                stream_offset: 0,
            }],
            digests: writer.block_digests()[..blocks as usize].to_vec(),
        }
    }

    #[test]
    fn a_resumed_drive_continues_from_its_synced_blocks_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let (secret, public) = keys();
        let target = DriveTarget::Image { path: dir.path().join("d.img"), size: HEADER_REGION + 40 * (4096 + TAG_LEN) };
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let (mut writer, _) = DriveWriter::create(&target, spec(public, 4096)).unwrap();
        writer.write_file_part("data/f", data.len() as u64, 0, &data[..30_000]).unwrap();
        assert_eq!(writer.sync().unwrap(), 7);
        let state = resume_state(&writer, 5, &data);
        // Interrupted: blocks 5 and 6 were written after the checkpoint at 5.
        drop(writer);

        let mut resumed = DriveWriter::resume(&target.file_path(), state.clone()).unwrap();
        assert_eq!(resumed.stream_position(), 5 * 4096);
        resumed.write_file_part("data/f", data.len() as u64, 5 * 4096, &data[5 * 4096..]).unwrap();
        let summary = resumed.finish(true).unwrap();
        assert_eq!(read_back(&summary.path, secret), data);

        // A finished drive, or another drive, is not resumed.
        assert!(DriveWriter::resume(&target.file_path(), state.clone()).is_err());
        let other = DriveTarget::Image { path: dir.path().join("o.img"), size: HEADER_REGION + 40 * (4096 + TAG_LEN) };
        let (_other_writer, _) = DriveWriter::create(&other, spec(public, 4096)).unwrap();
        match DriveWriter::resume(&other.file_path(), state) {
            Err(DriveError::NotTheDriveInProgress { .. }) => {}
            e => panic!("{e:?}"),
        }
    }

    /// Blocks wait in a batch; a sync in the middle of a block writes the full
    /// ones and keeps the partial one, and what reads back is what went in.
    #[test]
    fn a_sync_inside_a_block_keeps_the_partial_block() {
        let dir = tempfile::tempdir().unwrap();
        let (secret, public) = keys();
        let target = DriveTarget::Image { path: dir.path().join("d.img"), size: HEADER_REGION + 40 * (4096 + TAG_LEN) };
        let data: Vec<u8> = (0..70_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let (mut writer, _) = DriveWriter::create(&target, spec(public, 4096)).unwrap();
        let mut offset = 0;
        for (k, piece) in data.chunks(6_000).enumerate() {
            assert_eq!(writer.write_file_part("data/f", data.len() as u64, offset, piece).unwrap(), piece.len());
            offset += piece.len() as u64;
            if k % 3 == 1 {
                assert_eq!(writer.sync().unwrap(), offset / 4096, "after {offset} bytes");
            }
        }
        let summary = writer.finish(true).unwrap();
        assert_eq!(read_back(&summary.path, secret), data);
    }

    /// Sealing other plaintext at an index the interrupted run already sealed
    /// would reuse a nonce: refused.
    #[test]
    fn a_resumed_drive_refuses_changed_bytes_at_an_index_already_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let (_, public) = keys();
        let target = DriveTarget::Image { path: dir.path().join("d.img"), size: HEADER_REGION + 40 * (4096 + TAG_LEN) };
        let data = vec![1u8; 40_000];
        let (mut writer, _) = DriveWriter::create(&target, spec(public, 4096)).unwrap();
        writer.write_file_part("data/f", data.len() as u64, 0, &data[..20_000]).unwrap();
        writer.sync().unwrap();
        let state = resume_state(&writer, 2, &data);
        drop(writer);
        let before = std::fs::read(target.file_path()).unwrap();
        let mut resumed = DriveWriter::resume(&target.file_path(), state).unwrap();
        let changed = vec![2u8; 40_000 - 2 * 4096];
        // Taken into the batch; refused when the batch is sealed, before it is written.
        let taken = resumed.write_file_part("data/f", data.len() as u64, 2 * 4096, &changed);
        let refused = taken.and_then(|_| resumed.sync());
        match refused {
            Err(DriveError::ResumeMismatch { block: 2, .. }) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(std::fs::read(target.file_path()).unwrap(), before, "nothing was written");
        assert!(matches!(resumed.finish(true), Err(DriveError::WriterFailed { .. })));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Writing files until the drive takes less than offered, then finishing,
        /// never fails for lack of room, and `remaining()` bytes are always taken.
        #[test]
        fn remaining_is_honoured_and_finish_always_fits(
            blocks in 3u64..40,
            files in proptest::collection::vec((1usize..300, 0usize..9000), 1..60),
            chunk in 1usize..10_000,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let (secret, public) = keys();
            let size = (HEADER_REGION + blocks * (4096 + TAG_LEN)).max(minimum_size(4096, "job"));
            let target = DriveTarget::Image { path: dir.path().join("d.img"), size };
            let (mut writer, _) = DriveWriter::create(&target, spec(public, 4096)).unwrap();
            let mut full = false;
            'files: for (n, (path_len, file_size)) in files.iter().enumerate() {
                let path = format!("{n:04}{}", "x".repeat(*path_len));
                let data = vec![n as u8; *file_size];
                if data.is_empty() {
                    match writer.write_file_part(&path, 0, 0, &[]) {
                        Ok(_) => continue,
                        Err(DriveError::DriveFull { .. }) => break,
                        Err(e) => panic!("{e}"),
                    }
                }
                let mut offset = 0;
                while offset < data.len() {
                    let remaining = writer.remaining();
                    let end = (offset + chunk).min(data.len());
                    let took = writer.write_file_part(&path, data.len() as u64, offset as u64, &data[offset..end]).unwrap();
                    prop_assert!(took as u64 >= remaining.min((end - offset) as u64), "remaining {} but took {}", remaining, took);
                    offset += took;
                    if offset < end {
                        full = true;
                        break 'files;
                    }
                }
            }
            let summary = writer.finish(false).unwrap();
            prop_assert!(summary.bytes_used <= size);
            if full {
                // A full drive leaves less than one block plus a manifest block unused.
                prop_assert!(size - summary.bytes_used < 3 * (4096 + TAG_LEN) + (size - HEADER_REGION) % (4096 + TAG_LEN));
            }
            let mut reader = DriveReader::open(&summary.path, &DriveKey::Import(secret)).unwrap();
            let report = reader.verify_and_read(|_, _, _| Ok::<(), DriveError>(())).unwrap();
            prop_assert!(report.is_clean());
        }
    }
}
