//! Looking inside snapshots: list their files, compare two of them, and repository
//! statistics.

use serde::Serialize;

use crate::backend::FileKind;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::MasterIndex;
use crate::repofile::tree::{Node, NodeKind, Tree};
use crate::repository::Repository;

/// One entry of a listing.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Seconds since the epoch.
    pub mtime: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_target: Option<String>,
}

impl Entry {
    fn of(path: String, node: &Node) -> Self {
        Entry {
            path,
            kind: node.type_name(),
            size: node.size,
            mode: node.mode,
            uid: node.uid,
            gid: node.gid,
            mtime: node.mtime.seconds,
            link_target: match &node.kind {
                NodeKind::Symlink { target } => Some(String::from_utf8_lossy(target).into_owned()),
                _ => None,
            },
        }
    }
}

fn join(parent: &str, name: &str) -> String {
    format!("{}/{}", parent.trim_end_matches('/'), name)
}

/// Every entry at or below `path` ("/" for all) in the tree rooted at `root`.
pub fn list(repo: &Repository, index: &MasterIndex, root: &Id, path: &str, snapshot: &str) -> Result<Vec<Entry>> {
    let wanted: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let mut tree = repo.load_tree(index, root)?;
    let mut here = String::from("/");
    let mut out = Vec::new();
    for (i, component) in wanted.iter().enumerate() {
        let node = tree
            .find(component.as_bytes())
            .cloned()
            .ok_or_else(|| Error::PathNotFound { path: path.to_string(), snapshot: snapshot.to_string() })?;
        here = join(&here, component);
        match node.kind {
            NodeKind::Dir { subtree } => {
                if i + 1 == wanted.len() {
                    out.push(Entry::of(here.clone(), &node));
                }
                tree = repo.load_tree(index, &subtree)?;
            }
            _ if i + 1 == wanted.len() => return Ok(vec![Entry::of(here, &node)]),
            _ => return Err(Error::PathNotFound { path: path.to_string(), snapshot: snapshot.to_string() }),
        }
    }
    list_tree(repo, index, &tree, &here, &mut out)?;
    Ok(out)
}

fn list_tree(repo: &Repository, index: &MasterIndex, tree: &Tree, path: &str, out: &mut Vec<Entry>) -> Result<()> {
    for node in &tree.nodes {
        let child = join(path, &node.name_lossy());
        out.push(Entry::of(child.clone(), node));
        if let NodeKind::Dir { subtree } = &node.kind {
            let sub = repo.load_tree(index, subtree)?;
            list_tree(repo, index, &sub, &child, out)?;
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Added,
    Removed,
    /// Content differs.
    Modified,
    /// Same content, other metadata (mode, owner, times).
    Metadata,
}

impl Change {
    pub fn sign(self) -> char {
        match self {
            Change::Added => '+',
            Change::Removed => '-',
            Change::Modified => 'M',
            Change::Metadata => 'U',
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    pub path: String,
    pub change: Change,
}

/// What changed from the tree `a` to the tree `b`. Identical subtrees have equal ids
/// and are skipped without reading them.
pub fn diff(repo: &Repository, index: &MasterIndex, a: &Id, b: &Id) -> Result<Vec<Difference>> {
    let mut out = Vec::new();
    diff_trees(repo, index, Some(*a), Some(*b), "/", &mut out)?;
    Ok(out)
}

fn diff_trees(
    repo: &Repository,
    index: &MasterIndex,
    a: Option<Id>,
    b: Option<Id>,
    path: &str,
    out: &mut Vec<Difference>,
) -> Result<()> {
    if a == b {
        return Ok(());
    }
    let load = |id: Option<Id>| -> Result<Tree> {
        id.map(|id| repo.load_tree(index, &id)).transpose().map(Option::unwrap_or_default)
    };
    let (ta, tb) = (load(a)?, load(b)?);
    let names: std::collections::BTreeSet<&[u8]> =
        ta.nodes.iter().chain(tb.nodes.iter()).map(|n| n.name.as_slice()).collect();
    for name in names {
        let (na, nb) = (ta.find(name), tb.find(name));
        let child = join(path, &String::from_utf8_lossy(name));
        let subtree = |n: Option<&Node>| match n.map(|n| &n.kind) {
            Some(NodeKind::Dir { subtree }) => Some(*subtree),
            _ => None,
        };
        match (na, nb) {
            (Some(_), None) => out.push(Difference { path: child.clone(), change: Change::Removed }),
            (None, Some(_)) => out.push(Difference { path: child.clone(), change: Change::Added }),
            (Some(x), Some(y)) if x.is_dir() && y.is_dir() => {
                // A folder's own change is its metadata; its content shows below it.
                if (x.mode, x.uid, x.gid) != (y.mode, y.uid, y.gid) {
                    out.push(Difference { path: child.clone(), change: Change::Metadata });
                }
            }
            (Some(x), Some(y)) if x.type_name() != y.type_name() => {
                out.push(Difference { path: child.clone(), change: Change::Removed });
                out.push(Difference { path: child.clone(), change: Change::Added });
            }
            (Some(x), Some(y)) if x.kind != y.kind => {
                out.push(Difference { path: child.clone(), change: Change::Modified })
            }
            (Some(x), Some(y)) => {
                if (x.mode, x.uid, x.gid, x.mtime, x.size, &x.xattrs)
                    != (y.mode, y.uid, y.gid, y.mtime, y.size, &y.xattrs)
                {
                    out.push(Difference { path: child.clone(), change: Change::Metadata });
                }
            }
            (None, None) => {}
        }
        let (sa, sb) = (subtree(na), subtree(nb));
        if (sa.is_some() || sb.is_some()) && sa != sb {
            diff_trees(repo, index, sa, sb, &child, out)?;
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RepositoryStats {
    pub snapshots: usize,
    pub packs: usize,
    pub index_files: usize,
    pub blobs: usize,
    pub tree_blobs: usize,
    /// Bytes stored in packs.
    pub stored_bytes: u64,
    /// Plaintext bytes of all unique blobs.
    pub unique_bytes: u64,
    /// Bytes of all files of all snapshots, before deduplication.
    pub restore_bytes: u64,
    /// `restore_bytes / stored_bytes`: what deduplication and compression save.
    pub space_saving_ratio: f64,
}

pub fn stats(repo: &Repository) -> Result<RepositoryStats> {
    let index = repo.load_index()?;
    let snapshots = repo.snapshots()?;
    let mut s = RepositoryStats {
        snapshots: snapshots.len(),
        packs: index.packs().len(),
        index_files: repo.list_ids(FileKind::Index)?.len(),
        blobs: index.blob_count(),
        stored_bytes: index.packs().iter().map(|p| p.size).sum(),
        ..Default::default()
    };
    for (_, loc) in index.blobs() {
        s.unique_bytes += u64::from(loc.raw_length);
        if loc.blob_type == crate::repofile::BlobType::Tree {
            s.tree_blobs += 1;
        }
    }
    s.restore_bytes = snapshots.iter().map(|(_, snap)| snap.summary.total_bytes).sum();
    if s.stored_bytes > 0 {
        s.space_saving_ratio = s.restore_bytes as f64 / s.stored_bytes as f64;
    }
    Ok(s)
}
