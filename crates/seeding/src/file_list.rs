//! The file list of a drive set: every file of the staging location it carries,
//! as diskprep registers it with the import job. The service checks the container
//! against it before the job completes, before a seed is adopted and in
//! `offsite server check`, so a file of which no part ever arrived (a damaged block
//! inside a file on one drive, a manifest that cannot be read, a drive that never
//! arrives) keeps the job from completing instead of going unnoticed.
//!
//! On the wire it is text, one line per file in path order:
//!
//! ```text
//! <size in bytes> <path>\n
//! ```
//!
//! and its digest is [`ListingDigest`] over the same (path, size) pairs, the one
//! [`crate::staging::StagingListing::digest`] gives: the service recomputes it from
//! what it received, so a list cut short at a line boundary is refused.

use crate::drive::validate_path;

/// The most files one import job's list may hold (a 64 TiB seed of 16 MiB packs
/// is four million files); the service keeps the list in its database.
pub const MAX_FILES: u64 = 8_000_000;

/// One file of the list.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ListedFile {
    pub path: String,
    pub size: u64,
}

/// A line of the list (with its newline).
pub fn line(path: &str, size: u64) -> String {
    format!("{size} {path}\n")
}

/// Why a line of a file list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileListError {
    #[error("line {line} of the file list is not '<size> <path>': {text:?}")]
    Malformed { line: u64, text: String },
    #[error("line {line} of the file list names a bad path {path:?}: {reason}")]
    BadPath { line: u64, path: String, reason: String },
    #[error("line {line} of the file list is out of order: {path:?} must come after {previous:?}")]
    OutOfOrder { line: u64, path: String, previous: String },
    #[error("the file list holds more than {MAX_FILES} files")]
    TooMany,
}

/// Reads a file list line by line, checking each line and the order as it goes.
#[derive(Debug, Default)]
pub struct FileListReader {
    lines: u64,
    previous: Option<String>,
    digest: ListingDigest,
    bytes: u64,
}

impl FileListReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// One line without its newline.
    pub fn read_line(&mut self, text: &str) -> Result<ListedFile, FileListError> {
        self.lines += 1;
        let line = self.lines;
        if line > MAX_FILES {
            return Err(FileListError::TooMany);
        }
        let malformed = || FileListError::Malformed { line, text: text.chars().take(200).collect() };
        let (size, path) = text.split_once(' ').ok_or_else(malformed)?;
        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed());
        }
        let size: u64 = size.parse().map_err(|_| malformed())?;
        validate_path(path).map_err(|reason| FileListError::BadPath { line, path: path.into(), reason })?;
        if let Some(previous) = &self.previous {
            if path <= previous.as_str() {
                return Err(FileListError::OutOfOrder { line, path: path.into(), previous: previous.clone() });
            }
        }
        // Sizes that add up past 16 EiB are no staging location's: refused, not wrapped.
        let bytes = self.bytes.checked_add(size).ok_or_else(malformed)?;
        self.previous = Some(path.to_string());
        self.digest.add(path, size);
        self.bytes = bytes;
        Ok(ListedFile { path: path.to_string(), size })
    }

    /// The files read, their bytes and the list's digest.
    pub fn finish(self) -> (u64, u64, String) {
        (self.lines, self.bytes, self.digest.finish())
    }
}

/// BLAKE3 over every (path, size) in order, each length-prefixed so no two lists
/// hash the same bytes.
#[derive(Debug, Clone)]
pub struct ListingDigest(blake3::Hasher);

impl Default for ListingDigest {
    fn default() -> Self {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"offsite staging listing v1\0");
        ListingDigest(hasher)
    }
}

impl ListingDigest {
    pub fn add(&mut self, path: &str, size: u64) {
        self.0.update(&(path.len() as u64).to_le_bytes());
        self.0.update(path.as_bytes());
        self.0.update(&size.to_le_bytes());
    }

    /// Hex.
    pub fn finish(&self) -> String {
        self.0.finalize().to_hex().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_back_with_the_listing_digest() {
        let mut reader = FileListReader::new();
        let a = reader.read_line(line("config", 120).trim_end()).unwrap();
        assert_eq!(a, ListedFile { path: "config".into(), size: 120 });
        reader.read_line("16777216 data/ab/ab01").unwrap();
        let (files, bytes, digest) = reader.finish();
        assert_eq!((files, bytes), (2, 16777336));
        let mut expected = ListingDigest::default();
        expected.add("config", 120);
        expected.add("data/ab/ab01", 16777216);
        assert_eq!(digest, expected.finish());
    }

    #[test]
    fn bad_lines_are_named() {
        let mut reader = FileListReader::new();
        assert!(matches!(reader.read_line("config"), Err(FileListError::Malformed { line: 1, .. })));
        assert!(matches!(reader.read_line("-1 config"), Err(FileListError::Malformed { .. })));
        assert!(matches!(reader.read_line("1 ../x"), Err(FileListError::BadPath { .. })));
        reader.read_line("1 keys/k").unwrap();
        assert!(matches!(reader.read_line("1 config"), Err(FileListError::OutOfOrder { .. })));
        assert!(matches!(reader.read_line("1 keys/k"), Err(FileListError::OutOfOrder { .. })));
    }
}
