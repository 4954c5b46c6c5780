//! The manifest: what a drive holds, written after its last data block and sealed in
//! the block framing with kind `mani`.
//!
//! The drives of a set carry one **stream**: the staging files concatenated in the
//! order diskprep gives them (sorted by path). Each drive holds the bytes
//! `[stream_start, stream_end)`, cut into data blocks; its manifest lists the parts
//! of files it holds, in stream order, and the BLAKE3 digest of every data block's
//! plaintext. A file may begin on one drive and end on the next.
//!
//! The reader checks every rule in `DriveManifest::check` before trusting a
//! manifest, even an authenticated one, so a bug in some writer cannot make the
//! ingest station write outside the container or misplace bytes.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::header::DriveHeader;
use super::{DriveId, SetId, FORMAT_VERSION, MAX_PATH_BYTES};

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
    BadPath { file: String, reason: String },
}

impl DriveManifest {
    /// Decodes postcard bytes, refusing trailing bytes.
    pub(crate) fn decode(bytes: &[u8]) -> Result<DriveManifest, String> {
        match postcard::take_from_bytes::<DriveManifest>(bytes) {
            Ok((manifest, [])) => Ok(manifest),
            Ok((_, rest)) => Err(format!("{} unexpected bytes after the manifest", rest.len())),
            Err(e) => Err(format!("cannot decode the manifest: {e}")),
        }
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
