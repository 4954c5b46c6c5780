//! Check: find and name every damaged or missing piece of a repository.
//!
//! Without `read_data` it checks structure: every index file opens, every indexed
//! pack exists with the recorded size, every snapshot opens, and every tree and data
//! blob a snapshot needs is indexed. With `read_data` it also reads every pack,
//! checks its bytes against its name, its header against the index, and opens and
//! verifies every blob.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use rayon::prelude::*;
use serde::Serialize;

use crate::backend::FileKind;
use crate::error::Result;
use crate::id::Id;
use crate::index::MasterIndex;
use crate::lock::RepositoryLock;
use crate::pack_reader::parse_header;
use crate::progress::Progress;
use crate::repofile::tree::NodeKind;
use crate::repofile::BlobType;
use crate::repository::Repository;

#[derive(Debug, Clone, Copy, Default)]
pub struct CheckOptions {
    pub read_data: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    /// Damage: each line names the file, blob or path concerned.
    pub errors: Vec<String>,
    /// Harmless oddities, such as packs left by an interrupted backup.
    pub warnings: Vec<String>,
    pub snapshots: usize,
    pub trees: usize,
    pub packs: usize,
    pub blobs_read: u64,
    pub bytes_read: u64,
}

impl CheckReport {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

pub fn check(repo: &Repository, options: CheckOptions, progress: &Progress) -> Result<CheckReport> {
    let _lock = RepositoryLock::acquire(repo, false, "check")?;
    let mut report = CheckReport::default();

    // Index files, one by one so a damaged one is named and the rest still count.
    let mut index = MasterIndex::default();
    for id in repo.list_ids(FileKind::Index)? {
        match repo.load_index_file(&id) {
            Ok(file) => index.add_file(Some(id), &file),
            Err(e) => report.errors.push(format!("index {}: {e}", id.short())),
        }
    }

    // Packs: present, and of the recorded size.
    let stored: HashMap<Id, u64> = repo.stored_packs()?;
    for pack in index.packs() {
        match stored.get(&pack.id) {
            None => report.errors.push(format!("pack {} is missing (the index lists it)", pack.id)),
            Some(&size) if size != pack.size => {
                report.errors.push(format!("pack {} has {size} bytes, the index says {}", pack.id, pack.size))
            }
            Some(_) => {}
        }
    }
    for id in stored.keys().filter(|id| !index.has_pack(id)) {
        report.warnings.push(format!(
            "pack {id} is in no index (left by an interrupted backup: the next backup reuses it, prune removes it if unused)"
        ));
    }
    report.packs = stored.len();

    // Snapshots and the trees they need.
    let mut roots = Vec::new();
    for id in repo.list_ids(FileKind::Snapshot)? {
        match repo.load_snapshot(&id) {
            Ok(snapshot) => roots.push((id, snapshot.tree)),
            Err(e) => report.errors.push(format!("snapshot {}: {e}", id.short())),
        }
    }
    report.snapshots = roots.len();
    let mut seen_trees = HashSet::new();
    for (snapshot, root) in roots {
        let mut stack = vec![(root, "/".to_string())];
        while let Some((tree_id, path)) = stack.pop() {
            if !seen_trees.insert(tree_id) {
                continue;
            }
            let tree = match repo.load_tree(&index, &tree_id) {
                Ok(tree) => tree,
                Err(e) => {
                    report.errors.push(format!(
                        "snapshot {}: folder {path}: tree {}: {e}",
                        snapshot.short(),
                        tree_id.short()
                    ));
                    continue;
                }
            };
            for node in tree.nodes {
                let child = format!("{}/{}", path.trim_end_matches('/'), node.name_lossy());
                match &node.kind {
                    NodeKind::Dir { subtree } => stack.push((*subtree, child)),
                    NodeKind::File { content } => {
                        for blob in content {
                            if !index.get(blob).is_some_and(|l| l.blob_type == BlobType::Data) {
                                report.errors.push(format!(
                                    "snapshot {}: {child}: data blob {} is not in the index",
                                    snapshot.short(),
                                    blob.short()
                                ));
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    report.trees = seen_trees.len();

    if options.read_data {
        read_all_packs(repo, &index, &stored, progress, &mut report);
    }
    Ok(report)
}

fn read_all_packs(
    repo: &Repository,
    index: &MasterIndex,
    stored: &HashMap<Id, u64>,
    progress: &Progress,
    report: &mut CheckReport,
) {
    // What the index expects in each pack, to compare with each pack's own header.
    let mut expected: HashMap<Id, Vec<(Id, u32, u32)>> = HashMap::new();
    for (blob, loc) in index.blobs() {
        expected.entry(index.pack(loc.pack).id).or_default().push((*blob, loc.offset, loc.length));
    }
    progress.set_totals(stored.len() as u64, stored.values().sum());
    let errors = Mutex::new(Vec::new());
    let counts = Mutex::new((0u64, 0u64));
    let packs: Vec<(&Id, &u64)> = stored.iter().collect();
    packs.par_iter().for_each(|(pack, &size)| {
        let mut problems = Vec::new();
        let mut blobs_read = 0;
        // The storage itself, never a cached copy: this is what check is for.
        match repo.storage().load(FileKind::Pack, &pack.to_hex()) {
            Err(e) => problems.push(format!("pack {pack}: {e}")),
            Ok(bytes) => {
                if Id::of_stored(&bytes) != **pack {
                    problems.push(format!("pack {pack}: its content does not match its name (damaged)"));
                }
                // Parse against the bytes actually read: the file may have changed since it was listed.
                match parse_header(repo, pack, bytes.len() as u64, &bytes) {
                    Ok(Ok(header)) => {
                        let mut in_header = HashMap::new();
                        for (offset, blob) in header.with_offsets() {
                            in_header.insert(blob.id, (offset as u32, blob.length));
                            let start = offset as usize;
                            let sealed = &bytes[start..start + blob.length as usize];
                            if let Err(e) = repo.open_blob(blob.blob_type, &blob.id, sealed, blob.raw_length) {
                                problems.push(format!("pack {pack}: {e}"));
                            }
                            blobs_read += 1;
                        }
                        for (blob, offset, length) in expected.get(*pack).into_iter().flatten() {
                            if in_header.get(blob) != Some(&(*offset, *length)) {
                                problems.push(format!(
                                    "pack {pack}: the index places blob {} where the pack has no such blob",
                                    blob.short()
                                ));
                            }
                        }
                    }
                    Ok(Err(_)) => problems.push(format!("pack {pack}: header could not be read")),
                    Err(e) => problems.push(format!("pack {pack}: {e}")),
                }
            }
        }
        progress.add_file(size);
        let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
        c.0 += blobs_read;
        c.1 += size;
        errors.lock().unwrap_or_else(|p| p.into_inner()).extend(problems);
    });
    let (blobs, bytes) = counts.into_inner().unwrap_or_else(|p| p.into_inner());
    report.blobs_read = blobs;
    report.bytes_read = bytes;
    let mut errors = errors.into_inner().unwrap_or_else(|p| p.into_inner());
    errors.sort();
    report.errors.extend(errors);
}
