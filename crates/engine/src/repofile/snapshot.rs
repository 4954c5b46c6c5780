//! `snapshots/<id>`: one finished backup, sealed JSON. Written last, after every
//! pack and index it needs, so a snapshot that exists is complete.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::id::Id;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// The root tree: the backed-up paths, placed at their absolute locations.
    pub tree: Id,
    /// The absolute paths given to the backup.
    pub paths: Vec<String>,
    pub hostname: String,
    pub username: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// The snapshot whose metadata let unchanged files be skipped.
    #[serde(default)]
    pub parent: Option<Id>,
    pub program_version: String,
    pub summary: BackupSummary,
}

/// What one backup did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BackupSummary {
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unmodified: u64,
    pub dirs: u64,
    pub others: u64,
    /// Bytes of all files in the snapshot.
    pub total_bytes: u64,
    /// Bytes read from files (unchanged files are not read).
    pub bytes_read: u64,
    pub blobs_added: u64,
    /// Plaintext bytes of new blobs.
    pub data_added: u64,
    /// Stored bytes of new blobs (after compression and encryption).
    pub data_added_stored: u64,
    /// Items that could not be read and were left out.
    pub errors: u64,
    pub duration_seconds: f64,
}

impl Snapshot {
    /// Paths sorted, the key that finds a backup's parent among earlier snapshots.
    pub fn path_set(&self) -> Vec<String> {
        let mut paths = self.paths.clone();
        paths.sort();
        paths
    }
}
