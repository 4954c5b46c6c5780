//! What an export needs: the repository files a restore of chosen snapshots (or
//! of chosen paths within them) reads, so an export drive set carries those and
//! nothing more. Files are named as stored (they stay sealed with the
//! repository's keys); only the machine, which can open the snapshots, can say
//! which they are, and the service then copies them without reading them.
//!
//! A restore opens the repository (`config`, `keys/`), reads its index files
//! (all of them: they are small, and a restore reads every one it finds), the
//! chosen snapshots, the trees on the way to the chosen paths, and the trees and
//! data under them. Each blob is taken from the pack the index names for it.

use std::collections::{BTreeMap, HashSet};

use crate::backend::FileKind;
use crate::repofile::tree::NodeKind;
use crate::repository::Repository;
use crate::restorer::include_state;
use crate::{Error, Id, Result};

/// One repository file an export carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectedFile {
    pub kind: FileKind,
    pub name: String,
    pub size: u64,
}

impl SelectedFile {
    /// Its path in the repository (`data/ab/ab…`, `snapshots/…`, `config`).
    pub fn path(&self) -> String {
        self.kind.path_of(&self.name)
    }
}

/// The files, in repository-path order, and what they add up to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportSelection {
    pub files: Vec<SelectedFile>,
    /// Blobs the snapshots need that no stored pack holds (the restore will name
    /// them; an export cannot bring them either).
    pub missing_blobs: usize,
}

impl ExportSelection {
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// The files restoring `snapshots` (limited to `includes`, snapshot paths such
/// as `/srv/data`; empty for everything) reads.
pub fn select(repo: &Repository, snapshots: &[Id], includes: &[String]) -> Result<ExportSelection> {
    let stored = repo.load_index_of_stored()?;
    let index = &stored.index;
    let mut blobs: HashSet<Id> = HashSet::new();
    let mut chosen = Vec::new();
    for id in snapshots {
        let snapshot = repo.load_snapshot(id)?;
        chosen.push(*id);
        // (tree, its path in the snapshot)
        let mut stack = vec![(snapshot.tree, "/".to_string())];
        let mut walked: HashSet<(Id, String)> = HashSet::new();
        while let Some((tree_id, path)) = stack.pop() {
            if !walked.insert((tree_id, path.clone())) {
                continue;
            }
            blobs.insert(tree_id);
            let tree = repo.load_tree(index, &tree_id)?;
            for node in tree.nodes {
                let child = format!("{}/{}", path.trim_end_matches('/'), node.name_lossy());
                let (included, descend) = include_state(&child, includes);
                if !descend {
                    continue;
                }
                match node.kind {
                    NodeKind::Dir { subtree } => stack.push((subtree, child)),
                    NodeKind::File { content } if included => blobs.extend(content),
                    _ => {}
                }
            }
        }
    }
    let mut packs: BTreeMap<Id, u64> = BTreeMap::new();
    let mut missing_blobs = 0;
    for blob in &blobs {
        match index.get(blob) {
            Some(location) => {
                let pack = index.pack(location.pack);
                packs.insert(pack.id, stored.stored.get(&pack.id).copied().unwrap_or(pack.size));
            }
            None => missing_blobs += 1,
        }
    }
    let storage = repo.storage();
    let mut files = Vec::new();
    let config_size = storage
        .size(FileKind::Config, "config")?
        .ok_or_else(|| Error::Refused(format!("the repository at {} has no config file", repo.location())))?;
    files.push(SelectedFile { kind: FileKind::Config, name: "config".into(), size: config_size });
    for kind in [FileKind::Key, FileKind::Index] {
        for file in storage.list(kind)? {
            files.push(SelectedFile { kind, name: file.name, size: file.size });
        }
    }
    for id in chosen {
        let name = id.to_hex();
        let size = storage.size(FileKind::Snapshot, &name)?.unwrap_or(0);
        files.push(SelectedFile { kind: FileKind::Snapshot, name, size });
    }
    files.extend(packs.into_iter().map(|(id, size)| SelectedFile { kind: FileKind::Pack, name: id.to_hex(), size }));
    files.sort_by_key(|f| f.path());
    files.dedup_by(|a, b| a.path() == b.path());
    Ok(ExportSelection { files, missing_blobs })
}
