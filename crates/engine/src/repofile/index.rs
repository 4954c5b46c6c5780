//! `index/<id>`: which blobs live in which packs, at which offsets.
//!
//! An index file is written after its packs are safely stored, so everything it
//! names exists. `supersedes` lists index files this one replaces (written by prune
//! before it deletes them), so a crash between writing and deleting is harmless.

use serde::{Deserialize, Serialize};

use super::{decode_versioned, encode_versioned, BlobType, DecodeError};
use crate::id::Id;

const VERSION: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexBlob {
    pub blob_type: BlobType,
    pub id: Id,
    pub offset: u32,
    pub length: u32,
    pub raw_length: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexPack {
    pub id: Id,
    /// The pack file's total size, so `check` can spot a truncated pack cheaply.
    pub size: u64,
    pub blobs: Vec<IndexBlob>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexFile {
    pub supersedes: Vec<Id>,
    pub packs: Vec<IndexPack>,
}

impl IndexFile {
    pub fn encode(&self) -> Vec<u8> {
        encode_versioned(VERSION, self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_versioned("index", VERSION, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pack() -> impl Strategy<Value = IndexPack> {
        (
            any::<[u8; 32]>(),
            any::<u64>(),
            proptest::collection::vec((any::<[u8; 32]>(), any::<u32>(), any::<u32>(), any::<bool>()), 0..20),
        )
            .prop_map(|(id, size, blobs)| IndexPack {
                id: Id(id),
                size,
                blobs: blobs
                    .into_iter()
                    .map(|(id, offset, length, tree)| IndexBlob {
                        blob_type: if tree { BlobType::Tree } else { BlobType::Data },
                        id: Id(id),
                        offset,
                        length,
                        raw_length: length / 2,
                    })
                    .collect(),
            })
    }

    proptest! {
        #[test]
        fn index_round_trips(packs in proptest::collection::vec(pack(), 0..10), sup in proptest::collection::vec(any::<[u8; 32]>(), 0..3)) {
            let index = IndexFile { supersedes: sup.into_iter().map(Id).collect(), packs };
            prop_assert_eq!(IndexFile::decode(&index.encode()).unwrap(), index);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = IndexFile::decode(&bytes);
        }
    }
}
