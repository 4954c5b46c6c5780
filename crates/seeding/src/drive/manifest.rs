//! The manifest: what a drive holds, written after its last data block and sealed in
//! the block framing with kind `mani`.
//!
//! The drives of a set carry one **stream**: the staging files concatenated in the
//! order diskprep gives them (metadata, then packs: `crate::staging::stream_order`).
//! Each drive holds the bytes `[stream_start, stream_end)`, cut into data blocks;
//! its manifest lists the parts
//! of files it holds, in stream order, and the BLAKE3 digest of every data block's
//! plaintext. A file may begin on one drive and end on the next.
//!
//! The reader checks every rule in `DriveManifest::check` before trusting a
//! manifest, even an authenticated one, so a bug in some writer cannot make the
//! ingest station write outside the container or misplace bytes. An authenticated
//! manifest is still the customer's: its drive key is theirs, so they can sign one
//! of millions of tiny entries. The reader decodes it from a stream of blocks,
//! checking its length against what the drive can need and its counts against
//! [`MAX_MANIFEST_PARTS`] and [`MAX_MANIFEST_PATH_BYTES`] before it allocates.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::header::DriveHeader;
use super::{
    DriveId, SetId, FORMAT_VERSION, MAX_IMPORT_JOB_CHARS, MAX_MANIFEST_BYTES, MAX_MANIFEST_PARTS,
    MAX_MANIFEST_PATH_BYTES, MAX_PATH_BYTES,
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriveManifest {
    pub version: u32,
    pub drive_id: DriveId,
    pub set_id: SetId,
    pub import_job: String,
    pub index: u32,
    /// True on the set's last drive: the stream ends here and every file is complete.
    pub last_in_set: bool,
    pub stream_start: u64,
    pub stream_end: u64,
    pub files: Vec<FilePart>,
    /// BLAKE3 of each data block's plaintext (block_size bytes, zero-padded).
    pub blocks: Vec<[u8; 32]>,
}

/// A part of one staging file held on this drive: bytes
/// `[offset_in_file, offset_in_file + length)` of the file at `path`, found at
/// `[stream_offset, stream_offset + length)` of the set's stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePart {
    pub path: String,
    /// The size of the whole file.
    pub file_size: u64,
    pub offset_in_file: u64,
    pub length: u64,
    pub stream_offset: u64,
}

impl FilePart {
    pub fn end_in_file(&self) -> u64 {
        self.offset_in_file.saturating_add(self.length)
    }

    pub fn stream_end(&self) -> u64 {
        self.stream_offset.saturating_add(self.length)
    }

    /// True when this part ends the file.
    pub fn completes_file(&self) -> bool {
        self.end_in_file() == self.file_size
    }
}

/// Checks a staging file's path: relative, `/`-separated, at most 4096 bytes, no
/// empty, `.` or `..` components, no NUL or backslash (a Windows ingest would take it
/// as a separator). The reason names the rule broken.
pub fn validate_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("the path is empty".into());
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(format!("the path has {} bytes, more than {MAX_PATH_BYTES}", path.len()));
    }
    if path.starts_with('/') {
        return Err("the path is absolute".into());
    }
    if path.contains('\0') {
        return Err("the path contains a NUL byte".into());
    }
    if path.contains('\\') {
        return Err("the path contains a backslash".into());
    }
    for component in path.split('/') {
        match component {
            "" => return Err("the path has an empty component".into()),
            "." | ".." => return Err(format!("the path has a '{component}' component")),
            _ => {}
        }
    }
    Ok(())
}

/// Upper bounds of the manifest's postcard encoding, so a writer can keep room for
/// it: a varint takes at most 5 bytes for a u32 and 10 for a u64 or a length.
pub(crate) mod bound {
    /// Everything but file parts and block digests: version (5), ids (32), the import
    /// job's length (10) and bytes, index (5), last_in_set (1), stream_start and
    /// stream_end (20), and the two sequence lengths (20).
    pub fn fixed(import_job_bytes: usize) -> u64 {
        93 + import_job_bytes as u64
    }

    /// One file part: the path's length (10) and bytes, four u64 (40).
    pub fn part(path_bytes: usize) -> u64 {
        50 + path_bytes as u64
    }

    /// One block digest.
    pub const BLOCK: u64 = 32;
}

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ManifestProblem {
    Damaged(String),
    BadPath {
        file: String,
        reason: String,
    },
    /// Beyond the format's limits: longer, or with more parts or path bytes, than
    /// any drive diskprep writes.
    TooLarge(String),
}

/// Why a manifest could not be decoded: what it says, or the drive under it.
#[derive(Debug)]
pub(crate) enum DecodeError {
    Problem(ManifestProblem),
    /// The bytes could not be read (the input's own error).
    Read(std::io::Error),
}

impl From<ManifestProblem> for DecodeError {
    fn from(problem: ManifestProblem) -> Self {
        DecodeError::Problem(problem)
    }
}

/// The most bytes of manifest a drive's header may announce: the fixed fields, a
/// digest per data block, and the most file parts and path bytes allowed, with
/// every varint at its widest (what the writer reserves, see [`bound`]).
pub(crate) fn max_encoded_len(header: &DriveHeader) -> u64 {
    bound::fixed(header.import_job.len())
        .saturating_add(header.data_blocks.saturating_mul(bound::BLOCK))
        .saturating_add(MAX_MANIFEST_PARTS.saturating_mul(bound::part(0)))
        .saturating_add(MAX_MANIFEST_PATH_BYTES)
        .min(MAX_MANIFEST_BYTES)
}

/// Checks the manifest's length in the (authenticated) header before any of it is
/// read: a manifest longer than its drive can need is refused unread. The reason
/// says by how much.
pub(crate) fn check_length(header: &DriveHeader) -> Result<(), String> {
    let max = max_encoded_len(header);
    if header.manifest.byte_length > max {
        return Err(format!(
            "it takes {} bytes, more than the {max} a drive of {} data blocks can need",
            header.manifest.byte_length, header.data_blocks
        ));
    }
    Ok(())
}

/// Reads the postcard encoding of a [`DriveManifest`] from a stream, field by
/// field, checking every count and length against what is left of the manifest
/// and the format's limits before it allocates for it: the station holds the
/// manifest it accepts and one block of input, never a claimed size.
struct Decoder<R> {
    input: R,
    /// Bytes of the manifest not read yet.
    left: u64,
}

impl<R: std::io::Read> Decoder<R> {
    fn damaged(reason: String) -> DecodeError {
        DecodeError::Problem(ManifestProblem::Damaged(reason))
    }

    fn bytes(&mut self, out: &mut [u8], what: &str) -> Result<(), DecodeError> {
        if out.len() as u64 > self.left {
            return Err(Self::damaged(format!("it ends inside {what}")));
        }
        self.input.read_exact(out).map_err(DecodeError::Read)?;
        self.left -= out.len() as u64;
        Ok(())
    }

    fn byte(&mut self, what: &str) -> Result<u8, DecodeError> {
        let mut one = [0u8];
        self.bytes(&mut one, what)?;
        Ok(one[0])
    }

    /// A varint of at most `bits` bits, as postcard writes it: 7 bits a byte, low
    /// bits first, the high bit set on every byte but the last.
    fn varint(&mut self, bits: u32, what: &str) -> Result<u64, DecodeError> {
        let max_bytes = bits.div_ceil(7);
        let mut value = 0u64;
        for i in 0..max_bytes {
            let byte = self.byte(what)?;
            value |= u64::from(byte & 0x7F) << (7 * i);
            if byte & 0x80 == 0 {
                let last_bits = bits - 7 * i;
                if last_bits < 7 && u32::from(byte) >> last_bits != 0 {
                    break;
                }
                return Ok(value);
            }
        }
        Err(Self::damaged(format!("{what} is not a {bits}-bit number")))
    }

    fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        Ok(self.varint(32, what)? as u32)
    }

    fn u64(&mut self, what: &str) -> Result<u64, DecodeError> {
        self.varint(64, what)
    }

    fn bool(&mut self, what: &str) -> Result<bool, DecodeError> {
        match self.byte(what)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(Self::damaged(format!("{what} is {other}, not a boolean"))),
        }
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        self.bytes(&mut out, what)?;
        Ok(out)
    }

    /// A string of at most `max` bytes; the length is checked before the bytes are read.
    fn string(&mut self, max: u64, what: &str) -> Result<String, DecodeError> {
        let len = self.u64(what)?;
        if len > max {
            return Err(Self::damaged(format!("{what} has {len} bytes, more than {max}")));
        }
        if len > self.left {
            return Err(Self::damaged(format!("{what} has {len} bytes, more than the manifest has left")));
        }
        let mut bytes = vec![0u8; len as usize];
        self.bytes(&mut bytes, what)?;
        String::from_utf8(bytes).map_err(|_| Self::damaged(format!("{what} is not UTF-8")))
    }

    fn manifest(&mut self) -> Result<DriveManifest, DecodeError> {
        let version = self.u32("the version")?;
        let drive_id = self.array("the drive id")?;
        let set_id = self.array("the set id")?;
        let import_job = self.string(4 * MAX_IMPORT_JOB_CHARS as u64, "the import job's name")?;
        let index = self.u32("the drive index")?;
        let last_in_set = self.bool("last_in_set")?;
        let stream_start = self.u64("stream_start")?;
        let stream_end = self.u64("stream_end")?;

        let parts = self.u64("the number of file parts")?;
        if parts > MAX_MANIFEST_PARTS {
            return Err(DecodeError::Problem(ManifestProblem::TooLarge(format!(
                "it lists {parts} file parts, more than the {MAX_MANIFEST_PARTS} a drive may hold"
            ))));
        }
        // A part takes at least 5 bytes (a path length and four numbers): room is
        // made for the parts the bytes left can hold, not for the count claimed.
        let mut files = Vec::with_capacity(parts.min(self.left / 5) as usize);
        let mut path_bytes = 0u64;
        for k in 0..parts {
            let path = self.string(MAX_PATH_BYTES as u64, &format!("the path of file part {k}"))?;
            path_bytes += path.len() as u64;
            if path_bytes > MAX_MANIFEST_PATH_BYTES {
                return Err(DecodeError::Problem(ManifestProblem::TooLarge(format!(
                    "its paths take more than the {MAX_MANIFEST_PATH_BYTES} bytes a drive may hold"
                ))));
            }
            files.push(FilePart {
                file_size: self.u64("a file size")?,
                offset_in_file: self.u64("an offset in a file")?,
                length: self.u64("a part length")?,
                stream_offset: self.u64("a stream offset")?,
                path,
            });
        }

        let count = self.u64("the number of block digests")?;
        if count > self.left / bound::BLOCK {
            return Err(Self::damaged(format!("it claims {count} block digests, more than the manifest has left")));
        }
        let mut blocks = Vec::with_capacity(count as usize);
        for _ in 0..count {
            blocks.push(self.array("a block digest")?);
        }
        if self.left != 0 {
            return Err(Self::damaged(format!("{} unexpected bytes after the manifest", self.left)));
        }
        Ok(DriveManifest {
            version,
            drive_id,
            set_id,
            import_job,
            index,
            last_in_set,
            stream_start,
            stream_end,
            files,
            blocks,
        })
    }
}

impl DriveManifest {
    /// Decodes the `length` bytes of an encoded manifest from `input` (see
    /// [`Decoder`]), refusing trailing bytes.
    pub(crate) fn decode_from(input: impl std::io::Read, length: u64) -> Result<DriveManifest, DecodeError> {
        Decoder { input, left: length }.manifest()
    }

    /// [`Self::decode_from`] over bytes in memory.
    #[cfg(test)]
    pub(crate) fn decode(bytes: &[u8]) -> Result<DriveManifest, ManifestProblem> {
        Self::decode_from(bytes, bytes.len() as u64).map_err(|e| match e {
            DecodeError::Problem(problem) => problem,
            DecodeError::Read(e) => ManifestProblem::Damaged(e.to_string()),
        })
    }

    /// Checks the manifest against its (authenticated) header and against itself.
    pub(crate) fn check(&self, header: &DriveHeader) -> Result<(), ManifestProblem> {
        let damaged = |reason: String| Err(ManifestProblem::Damaged(reason));
        if self.version != FORMAT_VERSION {
            return damaged(format!("manifest version {} instead of {FORMAT_VERSION}", self.version));
        }
        if self.drive_id != header.drive_id || self.set_id != header.set_id {
            return damaged("it names another drive or set than the header".into());
        }
        if self.import_job != header.import_job || self.index != header.index {
            return damaged("its import job or drive index differs from the header's".into());
        }
        let Some(stream_len) = self.stream_end.checked_sub(self.stream_start) else {
            return damaged(format!(
                "the stream ends at {} before it starts at {}",
                self.stream_end, self.stream_start
            ));
        };
        let blocks_needed = stream_len.div_ceil(u64::from(header.block_size));
        if blocks_needed != header.data_blocks || self.blocks.len() as u64 != header.data_blocks {
            return damaged(format!(
                "{} stream bytes, {} block digests and {} data blocks do not agree",
                stream_len,
                self.blocks.len(),
                header.data_blocks
            ));
        }

        let mut next = self.stream_start;
        let mut seen = HashSet::with_capacity(self.files.len());
        let last = self.files.len().saturating_sub(1);
        for (k, part) in self.files.iter().enumerate() {
            if let Err(reason) = validate_path(&part.path) {
                return Err(ManifestProblem::BadPath { file: part.path.clone(), reason });
            }
            let name = &part.path;
            if !seen.insert(part.path.as_str()) {
                return damaged(format!("{name} is listed twice"));
            }
            if part.stream_offset != next {
                return damaged(format!("{name} starts at stream offset {} instead of {next}", part.stream_offset));
            }
            let (Some(end_in_file), Some(stream_end)) =
                (part.offset_in_file.checked_add(part.length), part.stream_offset.checked_add(part.length))
            else {
                return damaged(format!("{name}: offsets overflow"));
            };
            if end_in_file > part.file_size {
                return damaged(format!("{name}: part ends at {end_in_file}, past the file's size {}", part.file_size));
            }
            if part.length == 0 && part.file_size != 0 {
                return damaged(format!("{name}: an empty part of a non-empty file"));
            }
            // Only the first part may continue a file begun on the previous drive,
            // and there is no previous drive when the stream starts at 0.
            if part.offset_in_file != 0 && (k != 0 || self.stream_start == 0) {
                return damaged(format!("{name} starts at {} in the file instead of 0", part.offset_in_file));
            }
            // Only the last part may be continued on the next drive.
            if end_in_file != part.file_size && (k != last || self.last_in_set) {
                return damaged(format!("{name} ends at {end_in_file} of {} bytes", part.file_size));
            }
            next = stream_end;
        }
        if next != self.stream_end {
            return damaged(format!("the file parts end at stream offset {next}, the stream at {}", self.stream_end));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drive::header::tests::sample_header;
    use crate::drive::header::ManifestLocation;
    use proptest::prelude::*;

    fn part(path: &str, file_size: u64, offset_in_file: u64, length: u64, stream_offset: u64) -> FilePart {
        FilePart { path: path.into(), file_size, offset_in_file, length, stream_offset }
    }

    /// A header and manifest that agree: 3 files over 10000 bytes of stream (3 blocks
    /// of 4096), the last file continued on the next drive.
    fn sample() -> (DriveHeader, DriveManifest) {
        let mut header = sample_header();
        header.finished = true;
        header.data_blocks = 3;
        header.manifest = ManifestLocation { first_block: 3, block_count: 1, byte_length: 500 };
        let manifest = DriveManifest {
            version: 1,
            drive_id: header.drive_id,
            set_id: header.set_id,
            import_job: header.import_job.clone(),
            index: header.index,
            last_in_set: false,
            stream_start: 0,
            stream_end: 10_000,
            files: vec![
                part("config", 100, 0, 100, 0),
                part("keys/ab", 0, 0, 0, 100),
                part("data/00/x", 20_000, 0, 9_900, 100),
            ],
            blocks: vec![[0; 32]; 3],
        };
        (header, manifest)
    }

    #[test]
    fn a_consistent_manifest_passes() {
        let (header, manifest) = sample();
        assert_eq!(manifest.check(&header), Ok(()));
        let encoded = postcard::to_stdvec(&manifest).unwrap();
        assert_eq!(DriveManifest::decode(&encoded), Ok(manifest));
    }

    #[test]
    fn inconsistent_manifests_are_refused() {
        let (header, good) = sample();
        type Change = Box<dyn Fn(&mut DriveManifest)>;
        let cases: Vec<(&str, Change)> = vec![
            ("version", Box::new(|m| m.version = 2)),
            ("drive", Box::new(|m| m.drive_id = [0; 16])),
            ("index", Box::new(|m| m.index = 1)),
            ("gap", Box::new(|m| m.files[1].stream_offset = 101)),
            ("past size", Box::new(|m| m.files[0].length = 101)),
            ("short stream", Box::new(|m| m.stream_end = 9_999)),
            ("too many blocks", Box::new(|m| m.stream_end = 20_000)),
            (
                "digests",
                Box::new(|m| {
                    m.blocks.pop();
                }),
            ),
            ("incomplete middle", Box::new(|m| m.files[0].file_size = 200)),
            ("continued first at stream 0", Box::new(|m| m.files[0].offset_in_file = 1)),
            ("twice", Box::new(|m| m.files[1].path = "config".into())),
            ("last in set incomplete", Box::new(|m| m.last_in_set = true)),
            ("empty part of a file", Box::new(|m| m.files[1].file_size = 5)),
            ("backwards", Box::new(|m| m.stream_start = 10_001)),
        ];
        for (what, change) in cases {
            let mut m = good.clone();
            change(&mut m);
            assert!(matches!(m.check(&header), Err(ManifestProblem::Damaged(_))), "{what} accepted");
        }
        let mut m = good.clone();
        m.files[2].path = "data/../../etc/passwd".into();
        assert!(matches!(m.check(&header), Err(ManifestProblem::BadPath { .. })));
    }

    /// The manifest's fields up to its count of file parts, as postcard writes them.
    fn prefix_claiming(parts: u64) -> Vec<u8> {
        let (header, _) = sample();
        postcard::to_stdvec(&(
            1u32,
            header.drive_id,
            header.set_id,
            header.import_job.clone(),
            header.index,
            false,
            0u64,
            10_000u64,
            parts,
        ))
        .unwrap()
    }

    #[test]
    fn more_file_parts_than_a_drive_may_hold_are_refused_before_they_are_read() {
        let bytes = prefix_claiming(MAX_MANIFEST_PARTS + 1);
        // The manifest claims to go on for a gigabyte; only its prefix is there.
        match DriveManifest::decode_from(&bytes[..], MAX_MANIFEST_BYTES) {
            Err(DecodeError::Problem(ManifestProblem::TooLarge(reason))) => {
                assert!(reason.contains(&format!("{} file parts", MAX_MANIFEST_PARTS + 1)), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        // At the limit the count is taken, and the missing parts are what is wrong.
        let bytes = prefix_claiming(MAX_MANIFEST_PARTS);
        assert!(matches!(DriveManifest::decode(&bytes), Err(ManifestProblem::Damaged(_))));
    }

    #[test]
    fn lengths_beyond_what_is_left_are_refused() {
        let (_, good) = sample();
        let mut bytes = postcard::to_stdvec(&good).unwrap();
        // The digest count is the last varint before the 3 digests.
        let at = bytes.len() - 3 * 32 - 1;
        assert_eq!(bytes[at], 3);
        bytes[at] = 4;
        let reason = match DriveManifest::decode(&bytes) {
            Err(ManifestProblem::Damaged(reason)) => reason,
            other => panic!("{other:?}"),
        };
        assert!(reason.contains("4 block digests"), "{reason}");
        bytes.push(0);
        assert!(matches!(DriveManifest::decode(&bytes), Err(ManifestProblem::Damaged(_))));
    }

    #[test]
    fn a_header_announcing_more_manifest_than_its_drive_can_need_is_refused() {
        let (mut header, _) = sample();
        header.manifest.byte_length = max_encoded_len(&header);
        assert_eq!(check_length(&header), Ok(()));
        header.manifest.byte_length += 1;
        assert!(check_length(&header).unwrap_err().contains("more than"));
    }

    #[test]
    fn path_rules() {
        for good in ["config", "data/00/abc", "keys/k", "a b/c"] {
            assert_eq!(validate_path(good), Ok(()), "{good}");
        }
        let long = "a".repeat(MAX_PATH_BYTES + 1);
        for bad in ["", "/etc", "a//b", "a/", "./a", "a/..", "..", "a\\b", "a\0b", long.as_str()] {
            assert!(validate_path(bad).is_err(), "{bad:?} accepted");
        }
    }

    fn arb_part() -> impl Strategy<Value = FilePart> {
        ("[a-z/.]{0,40}", any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
            |(path, file_size, offset_in_file, length, stream_offset)| FilePart {
                path,
                file_size,
                offset_in_file,
                length,
                stream_offset,
            },
        )
    }

    proptest! {
        /// The size bound the writer reserves is never exceeded, whatever the values.
        #[test]
        fn encoding_stays_within_the_bound(
            job in "\\PC{1,64}",
            files in proptest::collection::vec(arb_part(), 0..20),
            blocks in 0usize..50,
            index in any::<u32>(), start in any::<u64>(), end in any::<u64>(), version in any::<u32>(),
        ) {
            let manifest = DriveManifest {
                version, drive_id: [0xFF; 16], set_id: [0xFF; 16], import_job: job.clone(), index,
                last_in_set: true, stream_start: start, stream_end: end,
                blocks: vec![[0xFF; 32]; blocks], files: files.clone(),
            };
            let len = postcard::to_stdvec(&manifest).unwrap().len() as u64;
            let bound = bound::fixed(job.len()) + files.iter().map(|p| bound::part(p.path.len())).sum::<u64>()
                + bound::BLOCK * blocks as u64;
            prop_assert!(len <= bound, "{} > {}", len, bound);
        }

        /// The streaming decoder reads exactly what postcard writes.
        #[test]
        fn the_decoder_reads_what_postcard_writes(
            job in "\\PC{1,64}",
            files in proptest::collection::vec(arb_part(), 0..20),
            blocks in proptest::collection::vec(any::<[u8; 32]>(), 0..20),
            index in any::<u32>(), start in any::<u64>(), end in any::<u64>(), version in any::<u32>(),
            last in any::<bool>(),
        ) {
            let manifest = DriveManifest {
                version, drive_id: [7; 16], set_id: [9; 16], import_job: job, index,
                last_in_set: last, stream_start: start, stream_end: end, files, blocks,
            };
            let bytes = postcard::to_stdvec(&manifest).unwrap();
            prop_assert_eq!(DriveManifest::decode(&bytes), Ok(manifest));
        }

        /// Decoding and checking arbitrary bytes never panics.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let (header, _) = sample();
            if let Ok(m) = DriveManifest::decode(&bytes) {
                let _ = m.check(&header);
            }
        }

        /// Nor do mutations of a valid manifest's encoding.
        #[test]
        fn mutations_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
            let (header, manifest) = sample();
            let mut bytes = postcard::to_stdvec(&manifest).unwrap();
            for (at, value) in flips {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            if let Ok(m) = DriveManifest::decode(&bytes) {
                let _ = m.check(&header);
            }
        }
    }
}
