//! Reading packs back: headers from their tails, and whole packs for checks.

use std::collections::HashMap;

use crate::backend::FileKind;
use crate::crypto::{Purpose, SEAL_OVERHEAD};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::MasterIndex;
use crate::repofile::index::{IndexBlob, IndexFile, IndexPack};
use crate::repofile::pack::PackHeader;
use crate::repository::Repository;

/// Most headers fit in this many tail bytes, so one read usually suffices.
const TAIL_GUESS: u64 = 64 * 1024;

/// Decodes a pack's header from its last bytes (`tail` must end at the pack's end).
pub fn parse_header(
    repo: &Repository,
    pack: &Id,
    size: u64,
    tail: &[u8],
) -> Result<std::result::Result<PackHeader, u64>> {
    let what = || format!("pack {}", pack.short());
    if tail.len() < 4 {
        return Err(Error::damaged(what(), "too short to hold a header"));
    }
    let len_bytes: [u8; 4] = tail[tail.len() - 4..].try_into().expect("four bytes");
    let header_len = u64::from(u32::from_le_bytes(len_bytes));
    if header_len + 4 > size || header_len < SEAL_OVERHEAD as u64 {
        return Err(Error::damaged(what(), format!("header length {header_len} does not fit a {size}-byte pack")));
    }
    if header_len + 4 > tail.len() as u64 {
        return Ok(Err(header_len + 4));
    }
    let sealed = &tail[tail.len() - 4 - header_len as usize..tail.len() - 4];
    let plain = repo.key().open(Purpose::PackHeader, sealed).map_err(|e| Error::damaged(what(), e))?;
    let header = PackHeader::decode(&plain).map_err(|e| Error::damaged(what(), e))?;
    if header.blobs_end() + header_len + 4 != size {
        return Err(Error::damaged(what(), "its header does not account for its size"));
    }
    Ok(Ok(header))
}

/// Reads and decodes the header of a stored pack.
pub fn read_header(repo: &Repository, pack: &Id, size: u64) -> Result<PackHeader> {
    let name = pack.to_hex();
    let first = TAIL_GUESS.min(size);
    let tail = repo.backend().load_range(FileKind::Pack, &name, size - first, first)?;
    match parse_header(repo, pack, size, &tail)? {
        Ok(header) => Ok(header),
        Err(needed) => {
            let tail = repo.backend().load_range(FileKind::Pack, &name, size - needed, needed)?;
            parse_header(repo, pack, size, &tail)?
                .map_err(|_| Error::damaged(format!("pack {}", pack.short()), "header length changed between reads"))
        }
    }
}

/// The index entry of a pack, from its header.
pub fn index_entry(pack: Id, size: u64, header: &PackHeader) -> IndexPack {
    IndexPack {
        id: pack,
        size,
        blobs: header
            .with_offsets()
            .map(|(offset, b)| IndexBlob {
                blob_type: b.blob_type,
                id: b.id,
                offset: offset as u32,
                length: b.length,
                raw_length: b.raw_length,
            })
            .collect(),
    }
}

/// Indexes packs that are stored but in no index file: those of an interrupted
/// backup. Their blobs become usable again, so nothing is uploaded twice. Packs
/// whose header cannot be read are left for `check` to report. Returns the packs
/// it indexed with their blobs.
pub fn index_unindexed_packs(repo: &Repository, index: &mut MasterIndex) -> Result<Vec<IndexPack>> {
    index_stray_packs(repo, index, &repo.stored_packs()?)
}

/// [`index_unindexed_packs`] given the packs the storage holds (id → size).
pub fn index_stray_packs(
    repo: &Repository,
    index: &mut MasterIndex,
    stored: &HashMap<Id, u64>,
) -> Result<Vec<IndexPack>> {
    let mut stray: Vec<(Id, u64)> =
        stored.iter().filter(|(id, _)| !index.has_pack(id)).map(|(id, size)| (*id, *size)).collect();
    if stray.is_empty() {
        return Ok(Vec::new());
    }
    stray.sort();
    let mut file = IndexFile::default();
    for (id, size) in stray {
        match read_header(repo, &id, size) {
            Ok(header) => file.packs.push(index_entry(id, size, &header)),
            Err(e) => tracing::warn!("leaving pack {} unindexed: {e}", id.short()),
        }
    }
    if file.packs.is_empty() {
        return Ok(Vec::new());
    }
    let id = repo.save_index(&file)?;
    index.add_file(Some(id), &file);
    tracing::info!("indexed {} packs left by an interrupted run", file.packs.len());
    Ok(file.packs)
}
