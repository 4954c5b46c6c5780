//! `config`: the repository's identity and parameters, in plain JSON.
//!
//! It is the one file readable without the passphrase, on purpose: any tool (the
//! ingest station, the service, an older offsite) can tell that a folder is an
//! offsite repository and which format version it has before asking for a key. It
//! holds nothing secret: the secrets (encryption key, blob-id key, chunker seed) are
//! in the master key.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::chunker::ChunkerParams;
use crate::id::Id;

pub const FORMAT_NAME: &str = "offsite-repository";
/// The newest repository format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepositoryConfig {
    pub format: String,
    pub version: u32,
    pub id: Id,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    pub chunker: ChunkerParams,
    /// Packs are closed once they reach this many bytes.
    pub pack_size: u32,
    /// zstd level for new blobs; 0 stores everything uncompressed.
    pub compression: i32,
}

/// Just enough of `config` to recognise it, parsed before the rest.
#[derive(Deserialize)]
struct ConfigHead {
    format: Option<String>,
    version: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("its config file is not offsite's")]
    NotOurs,
    #[error("the repository has format version {0}, newer than this offsite understands ({FORMAT_VERSION}); upgrade offsite")]
    Newer(u32),
    #[error("the config file is damaged: {0}")]
    Damaged(String),
}

impl RepositoryConfig {
    pub fn new(chunker: ChunkerParams, pack_size: u32, compression: i32) -> Self {
        RepositoryConfig {
            format: FORMAT_NAME.to_string(),
            version: FORMAT_VERSION,
            id: Id::random(),
            created: OffsetDateTime::now_utc(),
            chunker,
            pack_size,
            compression,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("config serialises")
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        let head: ConfigHead = serde_json::from_slice(bytes).map_err(|_| ConfigError::NotOurs)?;
        if head.format.as_deref() != Some(FORMAT_NAME) {
            return Err(ConfigError::NotOurs);
        }
        match head.version {
            Some(v) if v > FORMAT_VERSION => return Err(ConfigError::Newer(v)),
            Some(_) => {}
            None => return Err(ConfigError::Damaged("no version".into())),
        }
        let config: RepositoryConfig =
            serde_json::from_slice(bytes).map_err(|e| ConfigError::Damaged(e.to_string()))?;
        config.chunker.validate().map_err(ConfigError::Damaged)?;
        if !(1 << 20..=1 << 30).contains(&config.pack_size) {
            return Err(ConfigError::Damaged(format!("pack size {} out of range", config.pack_size)));
        }
        Ok(config)
    }
}
