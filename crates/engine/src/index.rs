//! The in-memory index: where every blob of the repository is stored.
//!
//! Built by reading all index files at start. Memory is about 70 bytes per blob
//! (a 32-byte id key and a 20-byte location in a hash table), so roughly 70 MB per
//! TB of unique data at the default 1 MiB average chunk.

use std::collections::HashMap;

use crate::id::Id;
use crate::repofile::index::{IndexBlob, IndexFile, IndexPack};
use crate::repofile::BlobType;

/// Where one blob is: a pack (by its position in `packs`), an offset and lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    pub pack: u32,
    pub offset: u32,
    pub length: u32,
    pub raw_length: u32,
    pub blob_type: BlobType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackRecord {
    pub id: Id,
    pub size: u64,
}

#[derive(Debug, Default)]
pub struct MasterIndex {
    packs: Vec<PackRecord>,
    pack_positions: HashMap<Id, u32>,
    blobs: HashMap<Id, BlobLocation>,
    /// The index files this was built from.
    pub files: Vec<Id>,
}

impl MasterIndex {
    /// Adds the packs of one index file. A blob stored in two packs (two writers
    /// raced, or a crash before cleanup) keeps its first location.
    pub fn add_file(&mut self, file_id: Option<Id>, file: &IndexFile) {
        self.add_file_where(file_id, file, |_| true);
    }

    /// [`Self::add_file`] leaving out the packs `keep` rejects (packs the storage
    /// no longer holds); returns those left out.
    pub fn add_file_where(&mut self, file_id: Option<Id>, file: &IndexFile, keep: impl Fn(&Id) -> bool) -> Vec<Id> {
        if let Some(id) = file_id {
            self.files.push(id);
        }
        let mut left_out = Vec::new();
        for pack in &file.packs {
            if keep(&pack.id) {
                self.add_pack(pack);
            } else {
                left_out.push(pack.id);
            }
        }
        left_out
    }

    pub fn add_pack(&mut self, pack: &IndexPack) {
        let position = match self.pack_positions.get(&pack.id) {
            Some(&p) => p,
            None => {
                let p = self.packs.len() as u32;
                self.packs.push(PackRecord { id: pack.id, size: pack.size });
                self.pack_positions.insert(pack.id, p);
                p
            }
        };
        for blob in &pack.blobs {
            self.blobs.entry(blob.id).or_insert(BlobLocation {
                pack: position,
                offset: blob.offset,
                length: blob.length,
                raw_length: blob.raw_length,
                blob_type: blob.blob_type,
            });
        }
    }

    pub fn get(&self, id: &Id) -> Option<&BlobLocation> {
        self.blobs.get(id)
    }

    pub fn contains(&self, id: &Id) -> bool {
        self.blobs.contains_key(id)
    }

    pub fn pack(&self, position: u32) -> &PackRecord {
        &self.packs[position as usize]
    }

    pub fn has_pack(&self, id: &Id) -> bool {
        self.pack_positions.contains_key(id)
    }

    pub fn packs(&self) -> &[PackRecord] {
        &self.packs
    }

    /// The packs that hold at least one tree blob.
    pub fn tree_packs(&self) -> Vec<Id> {
        let mut positions: Vec<u32> =
            self.blobs.values().filter(|loc| loc.blob_type == BlobType::Tree).map(|loc| loc.pack).collect();
        positions.sort_unstable();
        positions.dedup();
        positions.into_iter().map(|p| self.packs[p as usize].id).collect()
    }

    pub fn blob_count(&self) -> usize {
        self.blobs.len()
    }

    pub fn blobs(&self) -> impl Iterator<Item = (&Id, &BlobLocation)> {
        self.blobs.iter()
    }

    /// The index's content grouped by pack, ready to be written as index files.
    pub fn to_index_packs(&self) -> Vec<IndexPack> {
        let mut packs: Vec<IndexPack> =
            self.packs.iter().map(|p| IndexPack { id: p.id, size: p.size, blobs: Vec::new() }).collect();
        for (id, loc) in &self.blobs {
            packs[loc.pack as usize].blobs.push(IndexBlob {
                blob_type: loc.blob_type,
                id: *id,
                offset: loc.offset,
                length: loc.length,
                raw_length: loc.raw_length,
            });
        }
        for pack in &mut packs {
            pack.blobs.sort_by_key(|b| b.offset);
        }
        packs
    }
}
