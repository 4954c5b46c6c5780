//! `data/<xx>/<id>`: a pack of sealed blobs followed by its sealed header.
//!
//! ```text
//! blob 0 (sealed) | blob 1 (sealed) | … | header (sealed) | header length (u32 LE)
//! ```
//! The header lists every blob's type, id, stored length and plaintext length, in
//! order; offsets follow from the lengths. A pack can therefore be re-indexed from its
//! own tail, which is how an interrupted backup's packs are recovered.

use serde::{Deserialize, Serialize};

use super::{decode_versioned, encode_versioned, BlobType, DecodeError};
use crate::id::Id;

const VERSION: u8 = 1;

/// One blob as the pack header records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackBlob {
    pub blob_type: BlobType,
    pub id: Id,
    /// Bytes the sealed blob takes in the pack.
    pub length: u32,
    /// Bytes of the blob's plaintext (after decompression).
    pub raw_length: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackHeader {
    pub blobs: Vec<PackBlob>,
}

impl PackHeader {
    pub fn encode(&self) -> Vec<u8> {
        encode_versioned(VERSION, self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_versioned("pack header", VERSION, bytes)
    }

    /// Each blob with its offset in the pack.
    pub fn with_offsets(&self) -> impl Iterator<Item = (u64, &PackBlob)> {
        self.blobs.iter().scan(0u64, |offset, blob| {
            let at = *offset;
            *offset += u64::from(blob.length);
            Some((at, blob))
        })
    }

    /// Where the blobs end and the header begins.
    pub fn blobs_end(&self) -> u64 {
        self.blobs.iter().map(|b| u64::from(b.length)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn blob() -> impl Strategy<Value = PackBlob> {
        (any::<bool>(), any::<[u8; 32]>(), any::<u32>(), any::<u32>()).prop_map(|(tree, id, length, raw_length)| {
            PackBlob { blob_type: if tree { BlobType::Tree } else { BlobType::Data }, id: Id(id), length, raw_length }
        })
    }

    proptest! {
        #[test]
        fn header_round_trips(blobs in proptest::collection::vec(blob(), 0..50)) {
            let header = PackHeader { blobs };
            prop_assert_eq!(PackHeader::decode(&header.encode()).unwrap(), header);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = PackHeader::decode(&bytes);
        }
    }

    #[test]
    fn newer_version_is_named() {
        let mut bytes = PackHeader::default().encode();
        bytes[0] = 9;
        let err = PackHeader::decode(&bytes).unwrap_err().to_string();
        assert!(err.contains("newer"), "{err}");
    }
}
