//! Prune: free the space of data no snapshot needs.
//!
//! Under an exclusive lock: find every blob the snapshots use; delete packs with
//! none of them, rewrite packs that mix used and unused blobs, then write one index
//! for what remains. The order keeps the repository valid if prune is killed at any
//! moment: new packs and the new index are stored before any old index file or
//! pack is removed, so at worst some garbage remains for the next prune. A rerun
//! after a kill indexes the packs the killed run wrote and keeps them, so it goes
//! on from there instead of rewriting them again.

use std::collections::HashSet;

use serde::Serialize;

use crate::backend::FileKind;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::MasterIndex;
use crate::lock::RepositoryLock;
use crate::pack_reader::{index_unindexed_packs, read_header};
use crate::repofile::index::{IndexFile, IndexPack};
use crate::repofile::tree::NodeKind;
use crate::repository::Repository;
use crate::saver::BlobSaver;

#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    pub packs_kept: usize,
    pub packs_removed: usize,
    pub packs_repacked: usize,
    pub unindexed_packs_removed: usize,
    /// Half-written files of interrupted saves.
    pub incomplete_files_removed: usize,
    pub blobs_removed: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// The index, and every pack as the index files list it (once each, with all the
/// blobs it holds; the index keeps only one location of a blob stored twice).
fn packs_as_stored(repo: &Repository) -> Result<(MasterIndex, Vec<IndexPack>)> {
    let mut index = MasterIndex::default();
    let mut packs = Vec::new();
    let mut seen = HashSet::new();
    for (id, file) in repo.load_index_files()? {
        index.add_file(Some(id), &file);
        packs.extend(file.packs.into_iter().filter(|p| seen.insert(p.id)));
    }
    Ok((index, packs))
}

/// Every blob (trees and data) that a snapshot reaches.
fn used_blobs(repo: &Repository, index: &MasterIndex) -> Result<HashSet<Id>> {
    let mut used = HashSet::new();
    let snapshots = repo.snapshots_strict().map_err(|e| {
        Error::Refused(format!("prune stopped, nothing was deleted: {e}; remove or repair that snapshot first"))
    })?;
    let mut stack: Vec<Id> = snapshots.into_iter().map(|(_, s)| s.tree).collect();
    while let Some(tree_id) = stack.pop() {
        if !used.insert(tree_id) {
            continue;
        }
        // A tree that cannot be read means prune cannot know what is used: stop
        // rather than delete something a snapshot needs.
        let tree = repo.load_tree(index, &tree_id).map_err(|e| {
            Error::Refused(format!("prune stopped, nothing was deleted: {e}; run 'offsite repo check'"))
        })?;
        for node in tree.nodes {
            match node.kind {
                NodeKind::Dir { subtree } => stack.push(subtree),
                NodeKind::File { content } => used.extend(content),
                _ => {}
            }
        }
    }
    Ok(used)
}

/// How eagerly prune rewrites packs that mix used and unused blobs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PruneOptions {
    /// Leave mixed packs alone while their unused bytes stay under this fraction
    /// of the repository. Rewriting them means uploading their used blobs again,
    /// which over a slow link costs more than storing some garbage for a while.
    /// 0 rewrites every mixed pack.
    pub max_unused_fraction: f64,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions { max_unused_fraction: 0.0 }
    }
}

/// Prunes everything unused (every mixed pack is rewritten).
pub fn prune(repo: &Repository) -> Result<PruneReport> {
    prune_with(repo, &PruneOptions::default())
}

pub fn prune_with(repo: &Repository, options: &PruneOptions) -> Result<PruneReport> {
    let _lock = RepositoryLock::acquire(repo, true, "prune")?;
    let mut report = PruneReport::default();
    let (mut index, mut all_packs) = packs_as_stored(repo)?;
    // Packs an interrupted run left unindexed (a killed prune's rewritten packs
    // among them) count as what they hold, so a rerun keeps them instead of
    // writing them again: repeated kills converge.
    all_packs.extend(index_unindexed_packs(repo, &mut index)?);
    let used = used_blobs(repo, &index)?;

    // Which blobs each pack holds (its own list: a blob two packs hold is in both),
    // and whether each is used.
    let per_pack: Vec<Vec<(Id, bool)>> =
        all_packs.iter().map(|p| p.blobs.iter().map(|b| (b.id, used.contains(&b.id))).collect()).collect();
    let unused_in_pack: Vec<u64> = all_packs
        .iter()
        .map(|p| p.blobs.iter().filter(|b| !used.contains(&b.id)).map(|b| u64::from(b.length)).sum())
        .collect();
    let total: u64 = all_packs.iter().map(|p| p.size).sum();
    let mixed_unused: u64 = per_pack
        .iter()
        .zip(&unused_in_pack)
        .filter(|(blobs, _)| blobs.iter().any(|(_, u)| *u))
        .map(|(_, unused)| *unused)
        .sum();
    let rewrite_mixed = mixed_unused as f64 > options.max_unused_fraction * total as f64;
    let mut keep = MasterIndex::default();
    let mut repack = Vec::new();
    let mut remove = Vec::new();
    for (position, pack) in all_packs.iter().enumerate() {
        report.bytes_before += pack.size;
        let blobs = &per_pack[position];
        let used_count = blobs.iter().filter(|(_, u)| *u).count();
        if (used_count == blobs.len() && !blobs.is_empty()) || (used_count > 0 && !rewrite_mixed) {
            keep.add_pack(pack);
        } else if used_count == 0 {
            report.blobs_removed += blobs.len();
            remove.push(pack.id);
        } else {
            report.blobs_removed += blobs.len() - used_count;
            repack.push(position);
        }
    }

    // Rewrite the used blobs of mixed packs into new packs, but for those a kept
    // pack holds already (the saver knows `keep`).
    let (_, new_indexes, _) = BlobSaver::run(repo, &keep, |saver| {
        for &position in &repack {
            let pack = &all_packs[position];
            for blob in &pack.blobs {
                if used.contains(&blob.id) && saver.claim(&blob.id) {
                    let data = repo.read_blob(&index, blob.blob_type, &blob.id)?;
                    saver.submit(blob.blob_type, blob.id, data)?;
                }
            }
        }
        Ok(())
    })?;
    let mut final_index = keep;
    for id in &new_indexes {
        let file = repo.load_index_file(id)?;
        final_index.add_file(None, &file);
    }

    // One index for everything that remains, superseding all others.
    let old_indexes: Vec<Id> = repo.list_ids(FileKind::Index)?;
    let replacement = IndexFile { supersedes: old_indexes.clone(), packs: final_index.to_index_packs() };
    let replacement_id = repo.save_index(&replacement)?;
    for id in old_indexes.iter().filter(|id| **id != replacement_id) {
        repo.backend().remove(FileKind::Index, &id.to_hex())?;
    }

    // Only now is it safe to delete packs.
    for &position in &repack {
        repo.backend().remove(FileKind::Pack, &all_packs[position].id.to_hex())?;
    }
    for id in &remove {
        repo.backend().remove(FileKind::Pack, &id.to_hex())?;
    }
    // Packs in no index belong to interrupted backups; no snapshot can use them,
    // since snapshots are written after their index.
    for file in repo.backend().list(FileKind::Pack)? {
        let Ok(id) = file.name.parse::<Id>() else { continue };
        if !final_index.has_pack(&id) && !index.has_pack(&id) {
            // Readable or not, it is unreferenced; log what it held for the record.
            if let Ok(header) = read_header(repo, &id, file.size) {
                tracing::info!("removing unindexed pack {} with {} blobs", id.short(), header.blobs.len());
            }
            repo.backend().remove(FileKind::Pack, &id.to_hex())?;
            report.unindexed_packs_removed += 1;
        }
    }
    report.incomplete_files_removed = repo.backend().remove_incomplete()?;
    report.packs_kept = final_index.packs().len();
    report.packs_removed = remove.len();
    report.packs_repacked = repack.len();
    report.bytes_after = final_index.packs().iter().map(|p| p.size).sum();
    Ok(report)
}
