//! A set of drives read back as a repository: [`DriveSetBackend`] implements the
//! engine's [`Backend`] over drives in the drive format (`docs/DRIVE-FORMAT.md`),
//! read-only, so the engine's restorer restores straight from export drives (or a
//! seed's drives) at the speed of the disks, without copying them first.
//!
//! - Opening unlocks every drive ([`DriveReader::open`]), checks that they belong
//!   to one set, and maps each repository path (`data/ab/<id>`, `index/<id>`, …)
//!   to its parts across the drives from their manifests.
//! - A read decrypts only the blocks covering the range asked for, each one
//!   authenticated and checked against its digest ([`DriveReader::read_data_block`]);
//!   edge blocks shared by neighbouring reads are cached ([`cache`]). Reads are
//!   positioned (`pread`), so the restorer's threads never wait on each other.
//! - Damage is named, never hidden: a read that needs a bad block fails with the
//!   drive, the block index, the problem and the file; a read that needs a drive
//!   that was not given names that drive's index. Every other read works.
//!
//! [`FillingBackend`] reads what the drives lack from another backend (the
//! service), counting what it fetched; [`DriveSetBackend::verify`] reads every
//! block once and lists the damage and the repository files it touches.

mod cache;
mod fill;
mod verify;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use offsite_engine::backend::{Backend, BackendError, BackendResult, FileInfo, FileKind};
use serde::Serialize;

use crate::drive::{BlockProblem, DriveError, DriveKey, DriveReader, SetId};
use crate::staging::stream_order;

pub use cache::CACHE_BYTES;
pub use fill::{FillStats, FillingBackend};
pub use verify::{DamageCause, DamagedFile, DamagedRange, DriveVerifyReport, SetVerifyReport};

/// Why a set of drives cannot be opened. Each message names the drive.
#[derive(Debug, thiserror::Error)]
pub enum DriveSetError {
    #[error("no drive given: name every drive of the set you have (--from-drive PATH, repeated)")]
    NoDrives,

    /// A drive could not be opened (not a drive, damaged header or manifest, …).
    #[error(transparent)]
    Drive(#[from] DriveError),

    #[error("no key given opens the drive at {path} ({keys} tried): it was prepared for another key (another export request or import job), or a key was mistyped; give the key of this drive set (the job's export key, or the drive's recovery key)")]
    WrongKey { path: String, keys: usize },

    #[error("the drive at {path} belongs to another drive set than the drive at {first_path} ({sets}): give only the drives of one set")]
    OtherSet { path: String, first_path: String, sets: String },

    #[error("the drives at {first} and {second} are both drive {index} of the set: the same drive given twice, or a copy; give each drive once")]
    SameIndex { index: u32, first: String, second: String },

    #[error("the drives of set {set} disagree: {reason}; the set cannot be trusted as a whole: read its drives one by one ('verify') and prepare it again")]
    Inconsistent { set: String, reason: String },
}

/// Drives of the set that were not given, by index: `first ..= last`, or from
/// `first` on when no drive given is the set's last (`last` unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AbsentDrives {
    pub first: u32,
    pub last: Option<u32>,
}

impl fmt::Display for AbsentDrives {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.last {
            Some(last) if last == self.first => write!(f, "drive {}", self.first),
            Some(last) => write!(f, "drives {} to {}", self.first, last),
            None => write!(f, "drive {} (or a later one)", self.first),
        }
    }
}

/// Where a repository file is, as far as the drives given can tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Whereabouts {
    /// Every byte of it is on the drives given.
    Present { size: u64 },
    /// Part of it is on the drives given; the ranges listed are on absent drives.
    Partial { size: u64, missing: Vec<(u64, u64, AbsentDrives)> },
    /// Not on the drives given; by the set's stream order ([`stream_order`]), it would
    /// lie on these absent drives, if the set holds it at all.
    OnAbsentDrives(AbsentDrives),
    /// Not in the set (the drives around its place in the order are all here).
    NotInSet,
}

/// One present drive.
struct SetDrive {
    reader: DriveReader,
    index: u32,
    /// The drive's path, for messages.
    shown: String,
    /// The first and last repository path of its manifest (stream order).
    first_path: String,
    last_path: String,
}

/// The bytes `[offset_in_file, offset_in_file + length)` of a file, on a drive.
#[derive(Debug, Clone)]
struct Piece {
    offset_in_file: u64,
    length: u64,
    /// Position in [`DriveSetBackend::drives`].
    drive: usize,
    stream_offset: u64,
}

impl Piece {
    fn end_in_file(&self) -> u64 {
        self.offset_in_file + self.length
    }
}

/// A repository file of the set: its size and its pieces on the drives given,
/// in file order (drives are in set order, and each holds one part of a file).
#[derive(Debug, Clone)]
struct SetFile {
    kind: FileKind,
    name: String,
    size: u64,
    pieces: Vec<Piece>,
}

/// A set of drives as a read-only repository backend. `Send + Sync`: every read is
/// a positioned read of an open drive, and the block cache has its own lock.
pub struct DriveSetBackend {
    location: String,
    set_id: SetId,
    import_job: String,
    /// The drives given, by index.
    drives: Vec<SetDrive>,
    /// Repository path → the file. Locks and paths that are no repository file are left out.
    files: BTreeMap<String, SetFile>,
    /// The index of the set's last drive, when one given says it is the last.
    last_index: Option<u32>,
    /// The folder of the set this backend reads (`open_within`), without the `/`.
    root: Option<String>,
    cache: cache::BlockCache,
}

impl fmt::Debug for DriveSetBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DriveSetBackend")
            .field("location", &self.location)
            .field("files", &self.files.len())
            .finish_non_exhaustive()
    }
}

impl DriveSetBackend {
    /// Opens the drives at `paths` (devices, image files, or folders holding
    /// `offsite-drive.img`, in any order) with `key`: every drive must open with
    /// it and belong to one set. Drives of the set that are missing are allowed:
    /// what they hold is reported missing by reads, [`Self::absent_drives`] and
    /// [`Self::whereabouts`].
    pub fn open(paths: &[PathBuf], key: &DriveKey) -> Result<DriveSetBackend, DriveSetError> {
        Self::open_with_keys(paths, std::slice::from_ref(key))
    }

    /// Like [`Self::open`], trying each of `keys` on each drive (recovery keys are
    /// one per drive): a drive that none opens is refused.
    pub fn open_with_keys(paths: &[PathBuf], keys: &[DriveKey]) -> Result<DriveSetBackend, DriveSetError> {
        if paths.is_empty() {
            return Err(DriveSetError::NoDrives);
        }
        let mut readers = Vec::with_capacity(paths.len());
        for path in paths {
            readers.push(open_one(path, keys)?);
        }
        Self::from_readers(readers)
    }

    /// A set of drives already opened.
    pub fn from_readers(readers: Vec<DriveReader>) -> Result<DriveSetBackend, DriveSetError> {
        Self::from_readers_within(readers, None)
    }

    /// Like [`Self::open_with_keys`], for drives that carry several repositories
    /// (an export job's, one folder per machine): the repository under `root/`.
    pub fn open_within(paths: &[PathBuf], keys: &[DriveKey], root: &str) -> Result<DriveSetBackend, DriveSetError> {
        if paths.is_empty() {
            return Err(DriveSetError::NoDrives);
        }
        let mut readers = Vec::with_capacity(paths.len());
        for path in paths {
            readers.push(open_one(path, keys)?);
        }
        Self::from_readers_within(readers, Some(root))
    }

    /// Like [`Self::open_within`], for drives of several sets (an export's drives
    /// and those of its repair export): one backend per set, in the order their
    /// first drives were given.
    pub fn open_sets_within(
        paths: &[PathBuf],
        keys: &[DriveKey],
        root: &str,
    ) -> Result<Vec<DriveSetBackend>, DriveSetError> {
        if paths.is_empty() {
            return Err(DriveSetError::NoDrives);
        }
        let mut sets: Vec<(SetId, Vec<DriveReader>)> = Vec::new();
        for path in paths {
            let reader = open_one(path, keys)?;
            let set = reader.header().set_id;
            match sets.iter_mut().find(|(id, _)| *id == set) {
                Some((_, readers)) => readers.push(reader),
                None => sets.push((set, vec![reader])),
            }
        }
        sets.into_iter().map(|(_, readers)| Self::from_readers_within(readers, Some(root))).collect()
    }

    /// [`Self::from_readers`], taking only the files under `root/` (when given),
    /// named without it.
    pub fn from_readers_within(
        readers: Vec<DriveReader>,
        root: Option<&str>,
    ) -> Result<DriveSetBackend, DriveSetError> {
        let Some(first) = readers.first() else { return Err(DriveSetError::NoDrives) };
        let set_id = first.header().set_id;
        let import_job = first.header().import_job.clone();
        let first_path = first.path().display().to_string();
        for reader in &readers[1..] {
            let header = reader.header();
            if header.set_id != set_id {
                let sets = format!(
                    "set {} of job {} against set {} of job {}",
                    hex::encode(header.set_id),
                    header.import_job,
                    hex::encode(set_id),
                    import_job
                );
                return Err(DriveSetError::OtherSet { path: reader.path().display().to_string(), first_path, sets });
            }
        }
        let set = hex::encode(set_id);
        let inconsistent = |reason: String| DriveSetError::Inconsistent { set: set.clone(), reason };
        let mut readers = readers;
        readers.sort_by_key(|r| r.header().index);
        for pair in readers.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            if a.header().index == b.header().index {
                return Err(DriveSetError::SameIndex {
                    index: a.header().index,
                    first: a.path().display().to_string(),
                    second: b.path().display().to_string(),
                });
            }
            if a.manifest().last_in_set {
                return Err(inconsistent(format!(
                    "drive {} says it is the set's last, yet drive {} was given",
                    a.header().index,
                    b.header().index
                )));
            }
            if b.header().index == a.header().index + 1 && a.manifest().stream_end != b.manifest().stream_start {
                return Err(inconsistent(format!(
                    "drive {} ends at stream byte {} but drive {} starts at {}",
                    a.header().index,
                    a.manifest().stream_end,
                    b.header().index,
                    b.manifest().stream_start
                )));
            }
            if a.header().block_size != b.header().block_size {
                return Err(inconsistent("the drives have different block sizes".into()));
            }
        }
        if readers[0].header().index == 0 && readers[0].manifest().stream_start != 0 {
            return Err(inconsistent("drive 0 does not start at the beginning of the stream".into()));
        }
        let last_index = readers.iter().find(|r| r.manifest().last_in_set).map(|r| r.header().index);

        let mut files: BTreeMap<String, SetFile> = BTreeMap::new();
        let mut drives = Vec::with_capacity(readers.len());
        for (position, reader) in readers.into_iter().enumerate() {
            let index = reader.header().index;
            for part in &reader.manifest().files {
                let path = match root {
                    Some(root) => match part.path.strip_prefix(root).and_then(|p| p.strip_prefix('/')) {
                        Some(inner) => inner,
                        None => continue,
                    },
                    None => part.path.as_str(),
                };
                let Some((kind, name)) = FileKind::of_path(path) else {
                    tracing::warn!("drive {index} holds {}, which is no repository file: left out", part.path);
                    continue;
                };
                if kind == FileKind::Lock {
                    // A lock copied with the repository is stale; the drives are never locked.
                    continue;
                }
                let piece = Piece {
                    offset_in_file: part.offset_in_file,
                    length: part.length,
                    drive: position,
                    stream_offset: part.stream_offset,
                };
                let file = files.entry(path.to_string()).or_insert_with(|| SetFile {
                    kind,
                    name,
                    size: part.file_size,
                    pieces: Vec::new(),
                });
                if file.size != part.file_size {
                    return Err(inconsistent(format!(
                        "{} has {} bytes on one drive and {} on drive {index}",
                        part.path, file.size, part.file_size
                    )));
                }
                if file.pieces.last().is_some_and(|p| p.end_in_file() > piece.offset_in_file) {
                    return Err(inconsistent(format!("drive {index} holds bytes of {} held before", part.path)));
                }
                if piece.length > 0 {
                    file.pieces.push(piece);
                }
            }
            let paths = &reader.manifest().files;
            let first_path = paths.first().map(|p| p.path.clone()).unwrap_or_default();
            let last_path = paths.last().map(|p| p.path.clone()).unwrap_or_default();
            drives.push(SetDrive { shown: reader.path().display().to_string(), reader, index, first_path, last_path });
        }
        let block_size = drives[0].reader.header().block_size;
        let given: Vec<String> = drives.iter().map(|d| format!("drive {}: {}", d.index, d.shown)).collect();
        let location = format!("drive set {} ({})", &set[..8], given.join(", "));
        Ok(DriveSetBackend {
            location,
            set_id,
            import_job,
            drives,
            files,
            last_index,
            root: root.map(str::to_string),
            cache: cache::BlockCache::new(block_size),
        })
    }

    /// The set's id.
    pub fn set_id(&self) -> SetId {
        self.set_id
    }

    /// The import (or export) job the set was prepared for.
    pub fn import_job(&self) -> &str {
        &self.import_job
    }

    /// The indexes of the drives given, in order.
    pub fn drive_indexes(&self) -> Vec<u32> {
        self.drives.iter().map(|d| d.index).collect()
    }

    /// The set's drives that were not given: gaps between the indexes given, and
    /// the drives after the last one given when none given is the set's last.
    pub fn absent_drives(&self) -> Vec<AbsentDrives> {
        let mut absent = Vec::new();
        let mut next = 0;
        for drive in &self.drives {
            if drive.index > next {
                absent.push(AbsentDrives { first: next, last: Some(drive.index - 1) });
            }
            next = drive.index + 1;
        }
        if self.last_index.is_none() {
            absent.push(AbsentDrives { first: next, last: None });
        }
        absent
    }

    /// True when every drive of the set was given.
    pub fn is_complete(&self) -> bool {
        self.absent_drives().is_empty()
    }

    /// The drives strictly between the given drives at positions `after` and
    /// `before` (`None`: the start, or the end of the set); `None` if there are none.
    fn absent_between(&self, after: Option<usize>, before: Option<usize>) -> Option<AbsentDrives> {
        let first = after.map_or(0, |p| self.drives[p].index + 1);
        let last = match before {
            Some(p) => Some(self.drives[p].index.checked_sub(1)?),
            None => self.last_index,
        };
        match last {
            Some(last) if last < first => None,
            _ => Some(AbsentDrives { first, last }),
        }
    }

    /// The absent drives holding the bytes of `file` before its piece `i` (or
    /// after its last piece, for `i = pieces.len()`).
    fn absent_for_gap(&self, file: &SetFile, i: usize) -> AbsentDrives {
        let after = match i.checked_sub(1).and_then(|j| file.pieces.get(j)) {
            Some(piece) => Some(piece.drive),
            // The file starts before its first piece: after the given drive before that one.
            None => file.pieces.first().and_then(|p| p.drive.checked_sub(1)),
        };
        let before = match file.pieces.get(i) {
            Some(piece) => Some(piece.drive),
            None => file.pieces.last().map(|p| p.drive + 1).filter(|p| *p < self.drives.len()),
        };
        // A gap lies on drives that were not given: the drives given hold every
        // byte of the stream between their first and last.
        self.absent_between(after, before).unwrap_or(AbsentDrives { first: 0, last: None })
    }

    /// The ranges of `file` on absent drives: (offset, length, drives).
    fn missing_ranges(&self, file: &SetFile) -> Vec<(u64, u64, AbsentDrives)> {
        let mut missing = Vec::new();
        let mut at = 0;
        for (i, piece) in file.pieces.iter().enumerate() {
            if piece.offset_in_file > at {
                missing.push((at, piece.offset_in_file - at, self.absent_for_gap(file, i)));
            }
            at = piece.end_in_file();
        }
        if at < file.size {
            missing.push((at, file.size - at, self.absent_for_gap(file, file.pieces.len())));
        }
        missing
    }

    /// Where the file `kind`/`name` is: on the drives given, partly, on an absent
    /// drive (found by the set's stream order, [`stream_order`]), or not in the set.
    pub fn whereabouts(&self, kind: FileKind, name: &str) -> Whereabouts {
        let path = kind.path_of(name);
        if let Some(file) = self.files.get(&path) {
            let missing = self.missing_ranges(file);
            return match missing.is_empty() {
                true => Whereabouts::Present { size: file.size },
                false => Whereabouts::Partial { size: file.size, missing },
            };
        }
        // The last given drive whose first path is at or before this one.
        let path = match &self.root {
            Some(root) => format!("{root}/{path}"),
            None => path,
        };
        let k = self.drives.iter().rposition(|d| stream_order(&d.first_path, &path).is_le());
        let next = k.map_or(0, |k| k + 1);
        if let Some(k) = k {
            if stream_order(&path, &self.drives[k].last_path).is_le() {
                return Whereabouts::NotInSet;
            }
        }
        match self.absent_between(k, (next < self.drives.len()).then_some(next)) {
            Some(absent) => Whereabouts::OnAbsentDrives(absent),
            None => Whereabouts::NotInSet,
        }
    }

    /// Every repository file of which a part is on an absent drive, with those
    /// parts. Files wholly on absent drives cannot be named: see
    /// [`Self::absent_drives`] and [`Self::whereabouts`].
    pub fn partly_absent_files(&self) -> Vec<DamagedFile> {
        self.files
            .iter()
            .filter_map(|(path, file)| {
                let ranges: Vec<DamagedRange> = self
                    .missing_ranges(file)
                    .into_iter()
                    .map(|(offset, length, drives)| DamagedRange {
                        offset,
                        length,
                        cause: DamageCause::AbsentDrives(drives),
                    })
                    .collect();
                (!ranges.is_empty()).then(|| DamagedFile { path: path.clone(), size: file.size, ranges })
            })
            .collect()
    }

    /// The plaintext of data block `block` of the drive at `drive`, from the cache or the drive.
    fn block(&self, drive: usize, block: u64, keep: bool) -> Result<Bytes, BlockProblem> {
        if let Some(bytes) = self.cache.get(drive, block) {
            return Ok(bytes);
        }
        let bytes = self.drives[drive].reader.read_data_block(block)?;
        if keep {
            self.cache.put(drive, block, bytes.clone());
        }
        Ok(bytes)
    }

    /// Bytes `[from, to)` of `file` (within `piece`), block by block, into `chunks`.
    fn read_piece(&self, path: &str, piece: &Piece, from: u64, to: u64, chunks: &mut Vec<Bytes>) -> BackendResult<()> {
        let drive = &self.drives[piece.drive];
        let manifest = drive.reader.manifest();
        let bs = u64::from(drive.reader.header().block_size);
        let stream_from = piece.stream_offset + (from - piece.offset_in_file);
        let stream_to = stream_from + (to - from);
        let first = (stream_from - manifest.stream_start) / bs;
        let last = (stream_to - 1 - manifest.stream_start) / bs;
        for index in first..=last {
            let lo = manifest.stream_start + index * bs;
            let hi = lo + bs;
            let (a, b) = (stream_from.max(lo), stream_to.min(hi));
            // Only an edge block, partly used, may be wanted again by the next read.
            let keep = a > lo || b < hi.min(manifest.stream_end);
            match self.block(piece.drive, index, keep) {
                Ok(block) => chunks.push(block.slice((a - lo) as usize..(b - lo) as usize)),
                Err(problem) => {
                    let held_from = piece.offset_in_file + (lo.max(piece.stream_offset) - piece.stream_offset);
                    let held_to =
                        piece.offset_in_file + (hi.min(piece.stream_offset + piece.length) - piece.stream_offset);
                    return Err(BackendError::Unreadable {
                        path: path.to_string(),
                        reason: format!(
                            "data block {index} of drive {} ({}) {problem}; it holds bytes {held_from}..{held_to} of this \
                             file",
                            drive.index, drive.shown
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    fn read(&self, path: &str, file: &SetFile, offset: u64, length: u64) -> BackendResult<Bytes> {
        let end = offset.checked_add(length).filter(|end| *end <= file.size).ok_or_else(|| BackendError::Io {
            path: path.to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("bytes {offset}..{} asked for, the file has {}", offset.saturating_add(length), file.size),
            ),
        })?;
        if length == 0 {
            return Ok(Bytes::new());
        }
        let mut chunks = Vec::new();
        let mut at = offset;
        for (i, piece) in file.pieces.iter().enumerate() {
            if piece.end_in_file() <= at {
                continue;
            }
            if piece.offset_in_file > at {
                return Err(self.absent_error(path, file, i, at, piece.offset_in_file.min(end)));
            }
            let to = piece.end_in_file().min(end);
            self.read_piece(path, piece, at, to, &mut chunks)?;
            at = to;
            if at == end {
                break;
            }
        }
        if at < end {
            return Err(self.absent_error(path, file, file.pieces.len(), at, end));
        }
        if chunks.len() == 1 {
            return Ok(chunks.remove(0));
        }
        let mut out = BytesMut::with_capacity(length as usize);
        for chunk in chunks {
            out.extend_from_slice(&chunk);
        }
        Ok(out.freeze())
    }

    fn absent_error(&self, path: &str, file: &SetFile, i: usize, from: u64, to: u64) -> BackendError {
        let drives = self.absent_for_gap(file, i);
        BackendError::Unreadable {
            path: path.to_string(),
            reason: format!(
                "bytes {from}..{to} of it are on {drives} of the set, which was not given: add that drive, or fill \
                 from the service"
            ),
        }
    }

    fn file(&self, kind: FileKind, name: &str) -> BackendResult<(String, &SetFile)> {
        let path = kind.path_of(name);
        match self.files.get(&path) {
            Some(file) if kind != FileKind::Lock => Ok((path, file)),
            _ => Err(BackendError::NotFound { path }),
        }
    }

    fn read_only(&self, verb: &'static str) -> BackendError {
        BackendError::ReadOnly { location: self.location.clone(), what: "a set of drives", verb }
    }
}

/// Opens one drive with the first of `keys` that opens it.
fn open_one(path: &Path, keys: &[DriveKey]) -> Result<DriveReader, DriveSetError> {
    for key in keys {
        match DriveReader::open(path, key) {
            Ok(reader) => return Ok(reader),
            Err(DriveError::WrongKey { .. }) => continue,
            Err(err) => return Err(err.into()),
        }
    }
    Err(DriveSetError::WrongKey { path: path.display().to_string(), keys: keys.len() })
}

impl Backend for DriveSetBackend {
    fn location(&self) -> &str {
        &self.location
    }

    fn create(&self) -> BackendResult<()> {
        Err(self.read_only("hold a new repository"))
    }

    fn save(&self, _kind: FileKind, _name: &str, _data: Bytes) -> BackendResult<()> {
        Err(self.read_only("store files"))
    }

    fn load(&self, kind: FileKind, name: &str) -> BackendResult<Bytes> {
        let (path, file) = self.file(kind, name)?;
        self.read(&path, file, 0, file.size)
    }

    fn load_range(&self, kind: FileKind, name: &str, offset: u64, length: u64) -> BackendResult<Bytes> {
        let (path, file) = self.file(kind, name)?;
        self.read(&path, file, offset, length)
    }

    fn size(&self, kind: FileKind, name: &str) -> BackendResult<Option<u64>> {
        Ok(self.file(kind, name).ok().map(|(_, file)| file.size))
    }

    fn list(&self, kind: FileKind) -> BackendResult<Vec<FileInfo>> {
        let prefix = match kind {
            FileKind::Config => "config".to_string(),
            other => format!("{}/", other.folder()),
        };
        Ok(self
            .files
            .range(prefix.clone()..)
            .take_while(|(path, _)| path.starts_with(&prefix))
            .filter(|(_, file)| file.kind == kind)
            .map(|(_, file)| FileInfo { name: file.name.clone(), size: file.size })
            .collect())
    }

    fn remove(&self, _kind: FileKind, _name: &str) -> BackendResult<()> {
        Err(self.read_only("remove files"))
    }

    fn remove_incomplete(&self) -> BackendResult<usize> {
        // Nothing is ever written to the drives, so nothing is half written.
        Ok(0)
    }
}
