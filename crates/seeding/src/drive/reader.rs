//! [`DriveReader`]: unlocks a drive and reads it back, for the ingest station.
//!
//! [`DriveReader::open`] trusts nothing it has not checked: it parses the header
//! within its 64 KiB region, unwraps the drive key from a slot, verifies the header's
//! MAC, then authenticates, decodes and checks the manifest. Lengths are checked
//! against the format's limits and the drive's real size before anything is
//! allocated for them.
//!
//! [`DriveReader::verify_and_read`] then streams the data blocks one at a time:
//! each is authenticated, compared with its digest in the manifest, and its file
//! parts handed to a sink. A bad block does not stop it: the report names every bad
//! block and the file ranges it held, and every good part is still delivered.

use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::block::{block_offset, BlockCipher, BlockKind};
use super::header::{read_header, DriveHeader};
use super::manifest::{self, DecodeError, DriveManifest, FilePart, ManifestProblem};
use super::target::open_for_reading;
use super::{DriveError, DriveKey};

/// An unlocked drive with an authenticated header and manifest.
pub struct DriveReader {
    file: File,
    path: PathBuf,
    size: u64,
    header: DriveHeader,
    manifest: DriveManifest,
    cipher: BlockCipher,
    fingerprint: [u8; 32],
}

impl std::fmt::Debug for DriveReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriveReader").field("path", &self.path).field("header", &self.header).finish_non_exhaustive()
    }
}

/// What went wrong with one block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlockProblem {
    /// Fails authentication: its bytes changed, or it was moved from another index
    /// or copied from another drive.
    Tampered,
    /// The drive could not read it.
    Unreadable { error: String },
    /// Authenticates, but its plaintext does not match its digest in the manifest.
    DigestMismatch,
    /// The drive ends before it: the drive (or its image) is truncated.
    Missing,
}

impl std::fmt::Display for BlockProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlockProblem::Tampered => {
                f.write_str("fails authentication (corrupted, tampered with, or moved from another place or drive)")
            }
            BlockProblem::Unreadable { error } => write!(f, "cannot be read ({error})"),
            BlockProblem::DigestMismatch => f.write_str("does not match its digest in the manifest"),
            BlockProblem::Missing => f.write_str("is missing (the drive ends before it)"),
        }
    }
}

/// A range of one file that a bad block held, hence not delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRange {
    pub path: String,
    pub offset_in_file: u64,
    pub length: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadBlock {
    /// The data block's index on this drive.
    pub index: u64,
    pub problem: BlockProblem,
    /// The file ranges it held, in stream order.
    pub affects: Vec<PartRange>,
}

/// The outcome of [`DriveReader::verify_and_read`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub data_blocks: u64,
    /// Data blocks read: all of them, or those holding the parts asked for.
    pub blocks_read: u64,
    /// Of the blocks read, those that were good.
    pub good_blocks: u64,
    /// File bytes handed to the sink.
    pub bytes_delivered: u64,
    /// Every bad block, in index order.
    pub bad_blocks: Vec<BadBlock>,
}

impl VerifyReport {
    /// True when every block was good and every file part delivered.
    pub fn is_clean(&self) -> bool {
        self.bad_blocks.is_empty()
    }
}

impl DriveReader {
    /// Opens the drive at `path` (a device, an image file, or a folder holding
    /// `offsite-drive.img`) with `key`, reading the manifest from the drive.
    pub fn open(path: impl AsRef<Path>, key: &DriveKey) -> Result<DriveReader, DriveError> {
        Self::open_inner(path.as_ref(), key, None)
    }

    /// Like [`Self::open`], but takes the manifest from `sealed_manifest` (a copy of
    /// its blocks kept off the drive, [`super::DriveSummary::sealed_manifest`]),
    /// for a drive whose own manifest is lost or damaged. The copy is authenticated
    /// under the drive key exactly as if read from the drive.
    pub fn open_with_manifest(
        path: impl AsRef<Path>,
        key: &DriveKey,
        sealed_manifest: &[u8],
    ) -> Result<DriveReader, DriveError> {
        Self::open_inner(path.as_ref(), key, Some(sealed_manifest))
    }

    fn open_inner(path: &Path, key: &DriveKey, external: Option<&[u8]>) -> Result<DriveReader, DriveError> {
        let (mut file, path, size) = open_for_reading(path)?;
        let shown = path.display().to_string();
        let parsed = read_header(&mut file, &path, size)?;
        let header = &parsed.header;
        let drive_key = key
            .unwrap_drive_key(&header.drive_id, &header.import_slot, &header.recovery_slot)
            .ok_or_else(|| DriveError::WrongKey { path: shown.clone(), key: key.describe() })?;
        if !parsed.mac_matches(&drive_key) {
            return Err(DriveError::HeaderDamaged {
                path: shown,
                reason: "its MAC does not match: it was changed by someone without the drive key".into(),
            });
        }
        if !header.finished {
            return Err(DriveError::NotFinished { path: shown });
        }
        let cipher = BlockCipher::new(&drive_key, header.drive_id, header.set_id, header.block_size);
        let manifest = read_manifest(&mut file, &path, size, header, &cipher, external)?;
        let damaged = |reason: String| DriveError::ManifestDamaged { path: shown.clone(), reason };
        manifest.check(header).map_err(|problem| match problem {
            ManifestProblem::Damaged(reason) => damaged(reason),
            ManifestProblem::BadPath { file, reason } => {
                DriveError::BadPathInManifest { path: shown.clone(), file, reason }
            }
            ManifestProblem::TooLarge(reason) => DriveError::ManifestTooLarge { path: shown.clone(), reason },
        })?;
        Ok(DriveReader { file, path, size, header: parsed.header, manifest, cipher, fingerprint: parsed.fingerprint })
    }

    /// The authenticated header.
    pub fn header(&self) -> &DriveHeader {
        &self.header
    }

    /// The authenticated, checked manifest.
    pub fn manifest(&self) -> &DriveManifest {
        &self.manifest
    }

    /// The file read (a folder's image file, if a folder was given).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// BLAKE3 of the header as found (see [`super::PublicHeaderInfo::fingerprint`]).
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// Reads every data block in order, authenticates it, checks it against its
    /// digest, and hands each file part it holds to `sink(part, offset_in_file,
    /// bytes)` (a view of the block, which the sink may keep without a copy); an
    /// empty file is handed over once with no bytes. Bad blocks do not
    /// stop the reading: they are listed in the report with the file ranges they
    /// held, and everything else is delivered. Only an error from `sink` stops it.
    /// Holds one block in memory, and the ones the sink kept.
    pub fn verify_and_read<E>(
        &mut self,
        sink: impl FnMut(&FilePart, u64, &Bytes) -> Result<(), E>,
    ) -> Result<VerifyReport, E> {
        self.verify_and_read_parts(|_| true, sink)
    }

    /// Like [`DriveReader::verify_and_read`], for the manifest's parts whose index
    /// `wanted` accepts: only the blocks holding their bytes are read (the ingest
    /// station's retry of a failed upload, or its skip of parts stored already).
    pub fn verify_and_read_parts<E>(
        &mut self,
        wanted: impl Fn(usize) -> bool,
        sink: impl FnMut(&FilePart, u64, &Bytes) -> Result<(), E>,
    ) -> Result<VerifyReport, E> {
        self.scan(wanted, sink)
    }

    /// [`DriveReader::verify_and_read_parts`] through a shared reference: reads are
    /// positioned (`pread`), so several threads may read one drive at once.
    pub fn scan<E>(
        &self,
        wanted: impl Fn(usize) -> bool,
        mut sink: impl FnMut(&FilePart, u64, &Bytes) -> Result<(), E>,
    ) -> Result<VerifyReport, E> {
        let bs = u64::from(self.header.block_size);
        let data_blocks = self.header.data_blocks;
        let manifest = &self.manifest;
        let files = &manifest.files;
        let empty = Bytes::new();
        let mut report =
            VerifyReport { data_blocks, blocks_read: 0, good_blocks: 0, bytes_delivered: 0, bad_blocks: Vec::new() };
        // The first part not yet wholly handled; parts are contiguous in stream order.
        let mut cursor = 0;

        for index in 0..data_blocks {
            let lo = manifest.stream_start + index * bs;
            let hi = lo.saturating_add(bs).min(manifest.stream_end);
            let in_block = |j: usize| files.get(j).filter(|p| p.stream_offset < hi);
            let needed = (cursor..).map_while(|j| in_block(j).map(|p| (j, p))).any(|(j, part)| {
                part.length > 0 && lo.max(part.stream_offset) < hi.min(part.stream_end()) && wanted(j)
            });
            let mut block = empty.clone();
            let mut problem = None;
            if needed {
                // A fresh buffer for each block, so that what the sink keeps is never overwritten.
                match self.read_data_block(index) {
                    Ok(plaintext) => block = plaintext,
                    Err(bad) => problem = Some(bad),
                }
                report.blocks_read += 1;
            }
            let mut affects = Vec::new();
            let mut j = cursor;
            while let Some(part) = in_block(j) {
                if !wanted(j) {
                    // Not asked for: neither delivered nor reported.
                } else if part.length == 0 {
                    sink(part, part.offset_in_file, &empty)?;
                } else {
                    let from = lo.max(part.stream_offset);
                    let to = hi.min(part.stream_end());
                    if from < to {
                        let offset_in_file = part.offset_in_file + (from - part.stream_offset);
                        if problem.is_none() {
                            sink(part, offset_in_file, &block.slice((from - lo) as usize..(to - lo) as usize))?;
                            report.bytes_delivered += to - from;
                        } else {
                            affects.push(PartRange { path: part.path.clone(), offset_in_file, length: to - from });
                        }
                    }
                }
                if part.stream_end() <= hi {
                    cursor = j + 1;
                }
                j += 1;
            }
            match problem {
                None if needed => report.good_blocks += 1,
                None => {}
                Some(problem) => report.bad_blocks.push(BadBlock { index, problem, affects }),
            }
        }
        // Empty files at the very end of the stream lie in no block.
        for (j, part) in files.iter().enumerate().skip(cursor) {
            if part.length == 0 && wanted(j) {
                sink(part, part.offset_in_file, &empty)?;
            }
        }
        Ok(report)
    }

    /// Reads data block `index` (random access), authenticates it and checks it
    /// against its digest in the manifest: its plaintext, `block_size` bytes (the
    /// last block's zero padding included; the stream bytes it holds are
    /// `[stream_start + index × block_size, …)`, up to `stream_end`). An index past
    /// the drive's data blocks is [`BlockProblem::Missing`]. Positioned reads: safe
    /// to call from several threads at once.
    pub fn read_data_block(&self, index: u64) -> Result<Bytes, BlockProblem> {
        if index >= self.header.data_blocks {
            return Err(BlockProblem::Missing);
        }
        let mut buffer = vec![0u8; self.cipher.stride()];
        if let Some(problem) = read_block(&self.file, self.size, &self.cipher, index, &mut buffer) {
            return Err(problem);
        }
        let block_size = self.header.block_size as usize;
        buffer.truncate(block_size);
        let expected = self.manifest.blocks.get(index as usize).map(|d| blake3::Hash::from(*d));
        if expected != Some(blake3::hash(&buffer)) {
            return Err(BlockProblem::DigestMismatch);
        }
        Ok(Bytes::from(buffer))
    }
}

/// Reads and opens data block `index` into `buffer`; the problem if it is not good.
fn read_block(file: &File, size: u64, cipher: &BlockCipher, index: u64, buffer: &mut [u8]) -> Option<BlockProblem> {
    let Some(at) = block_offset_within(cipher, index, size) else {
        return Some(BlockProblem::Missing);
    };
    match file.read_exact_at(buffer, at) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Some(BlockProblem::Missing),
        Err(e) => return Some(BlockProblem::Unreadable { error: e.to_string() }),
    }
    if !cipher.open(index, BlockKind::Data, buffer) {
        return Some(BlockProblem::Tampered);
    }
    None
}

/// Where block `index` starts, if the whole block lies within a drive of `size` bytes.
fn block_offset_within(cipher: &BlockCipher, index: u64, size: u64) -> Option<u64> {
    let block_size = (cipher.stride() as u64 - super::TAG_LEN) as u32;
    let at = block_offset(block_size, index)?;
    at.checked_add(cipher.stride() as u64).filter(|end| *end <= size).map(|_| at)
}

/// Reads the manifest's blocks (from the drive, or from a copy kept elsewhere),
/// authenticates them, and returns the encoded manifest.
/// Reads, authenticates and decodes the manifest one block at a time: its length
/// is checked against what the drive can need before a byte of it is read, and the
/// decoder checks every count before it allocates (see `manifest::Decoder`).
fn read_manifest(
    file: &mut File,
    path: &Path,
    size: u64,
    header: &DriveHeader,
    cipher: &BlockCipher,
    external: Option<&[u8]>,
) -> Result<DriveManifest, DriveError> {
    let shown = || path.display().to_string();
    manifest::check_length(header).map_err(|reason| DriveError::ManifestTooLarge { path: shown(), reason })?;
    let location = header.manifest;
    let stride = cipher.stride() as u64;
    // check_fields bounded byte_length by MAX_MANIFEST_BYTES and block_count by it.
    let sealed_len = location.block_count * stride;
    let source = match external {
        Some(copy) => {
            if copy.len() as u64 != sealed_len {
                return Err(DriveError::ManifestDamaged {
                    path: shown(),
                    reason: format!("the copy of the manifest has {} bytes instead of {sealed_len}", copy.len()),
                });
            }
            SealedSource::Copy(copy)
        }
        None => {
            let at = block_offset(header.block_size, location.first_block).unwrap_or(u64::MAX);
            let end = at.saturating_add(sealed_len);
            if end > size {
                return Err(DriveError::Truncated { path: shown(), size, needed: end, what: "manifest" });
            }
            SealedSource::Drive { file, at }
        }
    };
    let plaintext = ManifestPlaintext {
        source,
        cipher,
        first_block: location.first_block,
        block_count: location.block_count,
        next: 0,
        block: vec![0u8; stride as usize],
        start: 0,
        end: 0,
        block_size: header.block_size as usize,
    };
    DriveManifest::decode_from(plaintext, location.byte_length).map_err(|err| match err {
        DecodeError::Problem(ManifestProblem::TooLarge(reason)) => {
            DriveError::ManifestTooLarge { path: shown(), reason }
        }
        DecodeError::Problem(ManifestProblem::Damaged(reason)) => DriveError::ManifestDamaged { path: shown(), reason },
        DecodeError::Problem(ManifestProblem::BadPath { file, reason }) => {
            DriveError::BadPathInManifest { path: shown(), file, reason }
        }
        DecodeError::Read(err) => match err.get_ref().and_then(|inner| inner.downcast_ref::<BlockFailed>()) {
            Some(BlockFailed(index)) => DriveError::ManifestDamaged {
                path: shown(),
                reason: format!("manifest block {index} fails authentication"),
            },
            None => DriveError::io(path, err),
        },
    })
}

/// Where the manifest's sealed blocks are read from.
enum SealedSource<'a> {
    /// The drive, from byte `at`.
    Drive { file: &'a mut File, at: u64 },
    /// A copy kept off the drive, exactly `block_count` sealed blocks.
    Copy(&'a [u8]),
}

/// A manifest block that fails authentication, as the error of a read.
#[derive(Debug)]
struct BlockFailed(u64);

impl std::fmt::Display for BlockFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "manifest block {} fails authentication", self.0)
    }
}

impl std::error::Error for BlockFailed {}

/// The manifest's plaintext as a stream: each sealed block is read and
/// authenticated when the decoder reaches it, so one block is held at a time.
struct ManifestPlaintext<'a> {
    source: SealedSource<'a>,
    cipher: &'a BlockCipher,
    first_block: u64,
    block_count: u64,
    /// Blocks opened so far.
    next: u64,
    block: Vec<u8>,
    /// The plaintext of the current block not handed out yet: `block[start..end]`.
    start: usize,
    end: usize,
    block_size: usize,
}

impl Read for ManifestPlaintext<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.start == self.end {
            if self.next == self.block_count || out.is_empty() {
                return Ok(0);
            }
            let stride = self.block.len();
            let offset = self.next as usize * stride;
            match &mut self.source {
                SealedSource::Copy(copy) => self.block.copy_from_slice(&copy[offset..offset + stride]),
                SealedSource::Drive { file, at } => {
                    file.seek(SeekFrom::Start(*at + offset as u64))?;
                    file.read_exact(&mut self.block)?;
                }
            }
            let index = self.first_block + self.next;
            if !self.cipher.open(index, BlockKind::Manifest, &mut self.block) {
                return Err(std::io::Error::new(ErrorKind::InvalidData, BlockFailed(index)));
            }
            self.next += 1;
            (self.start, self.end) = (0, self.block_size);
        }
        let n = out.len().min(self.end - self.start);
        out[..n].copy_from_slice(&self.block[self.start..self.start + n]);
        self.start += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drive::header::read_header;
    use crate::drive::writer::{new_set_id, DriveSpec, DriveWriter};
    use crate::drive::{DriveTarget, HEADER_REGION, TAG_LEN};
    use std::io::Write;
    use x25519_dalek::{PublicKey, StaticSecret};

    /// A finished drive, its drive key and its import secret.
    fn finished_drive(dir: &Path) -> (PathBuf, [u8; 32], StaticSecret) {
        let secret = StaticSecret::random_from_rng(rand::rngs::OsRng);
        let public = PublicKey::from(&secret).to_bytes();
        let target = DriveTarget::Image { path: dir.join("d.img"), size: HEADER_REGION + 20 * (4096 + TAG_LEN) };
        let spec = DriveSpec { block_size: 4096, ..DriveSpec::new("job", new_set_id(), 0, 0, public) };
        let (mut writer, _) = DriveWriter::create(&target, spec).unwrap();
        let key = writer.drive_key_for_tests();
        assert!(!writer.header_for_tests().finished);
        writer.write_file_part("config", 10_000, 0, &[7u8; 10_000]).unwrap();
        let summary = writer.finish(true).unwrap();
        (summary.path, key, secret)
    }

    fn header_of(path: &Path) -> DriveHeader {
        let mut file = File::open(path).unwrap();
        let size = file.seek(SeekFrom::End(0)).unwrap();
        let Ok(parsed) = read_header(&mut file, path, size) else { panic!("header does not parse") };
        parsed.header
    }

    /// Rewrites the drive's header as `original` with `change` applied, with a valid
    /// checksum and MAC, as only a holder of the drive key could.
    fn forge(path: &Path, key: &[u8; 32], original: &DriveHeader, change: impl FnOnce(&mut DriveHeader)) {
        let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        let mut header = original.clone();
        change(&mut header);
        let (region, _) = header.encode_region(key).unwrap();
        file.seek(SeekFrom::Start(0)).unwrap();
        file.write_all(&region).unwrap();
    }

    #[test]
    fn authenticated_but_absurd_lengths_are_refused_without_allocating() {
        let dir = tempfile::tempdir().unwrap();
        let (path, key, secret) = finished_drive(dir.path());
        let secret = DriveKey::Import(secret);
        assert!(DriveReader::open(&path, &secret).is_ok());
        let original = header_of(&path);

        // A manifest past the end of the drive: refused by its real size, not read.
        forge(&path, &key, &original, |h| {
            h.capacity_blocks = u64::MAX;
            h.data_blocks = u64::MAX / 2;
            h.manifest = ManifestLocation { first_block: u64::MAX / 2, block_count: 262_144, byte_length: 1 << 30 };
        });
        match DriveReader::open(&path, &secret) {
            Err(DriveError::Truncated { what: "manifest", .. }) => {}
            other => panic!("{other:?}"),
        }

        // A manifest longer than the format allows.
        forge(&path, &key, &original, |h| {
            h.manifest.byte_length = (1 << 30) + 1;
            h.manifest.block_count = h.manifest.byte_length.div_ceil(4096);
        });
        assert!(matches!(DriveReader::open(&path, &secret), Err(DriveError::HeaderDamaged { .. })));

        // A block size that would make the reader hold gigabytes.
        forge(&path, &key, &original, |h| h.block_size = !4095);
        assert!(matches!(DriveReader::open(&path, &secret), Err(DriveError::HeaderDamaged { .. })));
    }

    #[test]
    fn an_authenticated_header_that_disagrees_with_its_manifest_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (path, key, secret) = finished_drive(dir.path());
        let secret = DriveKey::Import(secret);
        let original = header_of(&path);
        forge(&path, &key, &original, |h| h.index = 5);
        assert!(matches!(DriveReader::open(&path, &secret), Err(DriveError::ManifestDamaged { .. })));
    }

    use crate::drive::ManifestLocation;
}
