//! What is on disk: one module per repository file type. `docs/REPOSITORY.md` is
//! the prose specification of these formats; change both together.

pub mod config;
pub mod index;
pub mod keyfile;
pub mod lock;
pub mod pack;
pub mod snapshot;
pub mod tree;

use serde::{Deserialize, Serialize};

/// The two kinds of blob. Data blobs hold file content; tree blobs hold directories.
/// They are kept in separate packs so trees can be read without touching data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BlobType {
    Data,
    Tree,
}

/// A binary object (pack header, index, tree) could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("{what} has format version {found}, newer than this offsite understands ({supported}); upgrade offsite")]
    NewerVersion { what: &'static str, found: u8, supported: u8 },
}

/// Decodes a postcard-encoded object whose first byte is its format version.
pub(crate) fn decode_versioned<T: serde::de::DeserializeOwned>(
    what: &'static str,
    supported: u8,
    bytes: &[u8],
) -> Result<T, DecodeError> {
    let (&version, rest) = bytes.split_first().ok_or(DecodeError::Malformed { what, reason: "empty".into() })?;
    if version > supported {
        return Err(DecodeError::NewerVersion { what, found: version, supported });
    }
    if version == 0 {
        return Err(DecodeError::Malformed { what, reason: "version 0".into() });
    }
    let (value, remaining) =
        postcard::take_from_bytes(rest).map_err(|e| DecodeError::Malformed { what, reason: e.to_string() })?;
    if !remaining.is_empty() {
        return Err(DecodeError::Malformed { what, reason: format!("{} trailing bytes", remaining.len()) });
    }
    Ok(value)
}

/// Encodes an object as its version byte followed by postcard.
pub(crate) fn encode_versioned<T: Serialize>(version: u8, value: &T) -> Vec<u8> {
    let mut out = vec![version];
    // Serialising plain data structures into a Vec cannot fail.
    out.extend(postcard::to_stdvec(value).expect("postcard encoding into memory"));
    out
}
