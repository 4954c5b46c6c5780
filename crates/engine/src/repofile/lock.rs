//! `locks/<id>`: who is working on the repository, sealed JSON.
//!
//! Backups and checks take shared locks; prune and forget take an exclusive lock.
//! A lock is refreshed while its holder works, so one whose time is old, or whose
//! process is gone from this host, is stale and may be removed.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockFile {
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub exclusive: bool,
    pub hostname: String,
    pub username: String,
    pub pid: u32,
    /// What the holder is doing, for messages ("backup", "prune").
    pub operation: String,
}
