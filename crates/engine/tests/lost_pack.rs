//! A restore after packs were lost from the storage: every byte the other packs
//! hold comes back, in its place, and only the lost packs' bytes are missing.

mod common;

use std::fs;

use offsite_engine::id::Id;
use offsite_engine::index::MasterIndex;
use offsite_engine::repofile::tree::NodeKind;
use offsite_engine::Repository;

use common::*;

/// The content of the file named `name` under the tree `tree`.
fn content_of(repo: &Repository, index: &MasterIndex, tree: &Id, name: &[u8]) -> Option<Vec<Id>> {
    for node in repo.load_tree(index, tree).unwrap().nodes {
        match &node.kind {
            NodeKind::File { content } if node.name == name => return Some(content.clone()),
            NodeKind::Dir { subtree } => {
                if let Some(found) = content_of(repo, index, subtree, name) {
                    return Some(found);
                }
            }
            _ => {}
        }
    }
    None
}

#[test]
fn lost_packs_in_the_middle_of_a_file_cost_only_their_own_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let repo_dir = dir.path().join("repo");
    let repo = init_repo(&repo_dir);
    let source = dir.path().join("src");
    fs::create_dir_all(&source).unwrap();
    let want = noise(6 << 20, 11);
    fs::write(source.join("big.bin"), &want).unwrap();
    let outcome = backup(&repo, &[&source]);

    // Two packs of the middle of the file, with a stored one between them and
    // stored ones before and after: what lies between two lost blobs must still
    // find its place.
    let index = repo.load_index().unwrap();
    let content = content_of(&repo, &index, &outcome.snapshot.tree, b"big.bin").unwrap();
    let pack_at = |share: usize| index.get(&content[(content.len() - 1) * share / 4]).unwrap().pack;
    let (first, left, between, right, last) = (pack_at(0), pack_at(1), pack_at(2), pack_at(3), pack_at(4));
    let packs = [first, left, between, right, last];
    assert!(packs.windows(2).all(|w| w[0] != w[1]), "the file should span five packs at least: {packs:?}");
    let lost = [left, right];
    for pack in lost {
        let hex = index.pack(pack).id.to_hex();
        fs::remove_file(repo_dir.join("data").join(&hex[..2]).join(&hex)).unwrap();
    }

    // Which bytes of the file the lost packs held.
    let mut held = vec![false; want.len()];
    let mut at = 0usize;
    for id in &content {
        let location = index.get(id).unwrap();
        let end = at + location.raw_length as usize;
        if lost.contains(&location.pack) {
            held[at..end].iter_mut().for_each(|b| *b = true);
        }
        at = end;
    }

    let target = dir.path().join("restored");
    let (_, snapshot) = repo.find_snapshot("latest").unwrap();
    let options = offsite_engine::restorer::RestoreOptions { target, verify: true, ..Default::default() };
    let restored = offsite_engine::restorer::restore(&repo, &snapshot, &options, &Default::default()).unwrap();
    assert_eq!(restored.failures.len(), 1, "{:?}", restored.failures);
    let partial = restored.failures[0].partial.clone().expect("the readable bytes are kept");
    let got = fs::read(partial).unwrap();
    assert_eq!(got.len(), want.len());
    for (i, (got, want)) in got.iter().zip(&want).enumerate() {
        if held[i] {
            assert_eq!(*got, 0, "byte {i}, of a lost pack, is not left empty");
        } else {
            assert_eq!(got, want, "byte {i}, of a stored pack, was not restored");
        }
    }
}
