//! Export selection: the files an export carries are enough to restore what was
//! chosen, from a repository holding nothing else, and no more than needed.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use offsite_engine::backend::{self, Backend};
use offsite_engine::export::{self, ExportSelection};
use offsite_engine::progress::Progress;
use offsite_engine::restorer::{self, RestoreOptions};
use offsite_engine::Repository;

/// A repository holding only the selected files, copied as stored.
fn copy_selection(from: &Repository, selection: &ExportSelection, to: &Path) -> Repository {
    let target = backend::open(to.to_str().unwrap(), &[]).unwrap();
    target.create().unwrap();
    for file in &selection.files {
        let bytes = from.storage().load(file.kind, &file.name).unwrap();
        assert_eq!(bytes.len() as u64, file.size, "{}", file.path());
        target.save(file.kind, &file.name, bytes).unwrap();
    }
    open_repo(target as Arc<dyn Backend>)
}

#[test]
fn a_selection_restores_what_was_chosen_and_carries_no_more() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    let (docs, media) = (source.join("docs"), source.join("media"));
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::create_dir_all(&media).unwrap();
    std::fs::write(docs.join("report.txt"), text(300_000, 1)).unwrap();
    std::fs::write(media.join("film.bin"), noise(12_000_000, 2)).unwrap();
    let repo = init_repo(&dir.path().join("repo"));
    let first = backup(&repo, &[&source]).snapshot_id;
    // A second point with new data the first does not need.
    std::fs::write(media.join("other.bin"), noise(2_000_000, 3)).unwrap();
    let second = backup(&repo, &[&source]).snapshot_id;

    let whole = export::select(&repo, &[first], &[]).unwrap();
    assert_eq!(whole.missing_blobs, 0);
    let kinds: Vec<_> = whole.files.iter().map(|f| f.path()).collect();
    assert!(kinds.contains(&"config".to_string()), "{kinds:?}");
    assert!(kinds.iter().any(|p| p.starts_with("keys/")), "{kinds:?}");
    assert!(kinds.contains(&format!("snapshots/{}", first.to_hex())), "{kinds:?}");
    assert!(!kinds.contains(&format!("snapshots/{}", second.to_hex())), "only the chosen point: {kinds:?}");
    let both = export::select(&repo, &[first, second], &[]).unwrap();
    assert!(
        both.bytes() > whole.bytes() + 1_500_000,
        "the second point's new data: {} vs {}",
        both.bytes(),
        whole.bytes()
    );

    // The first point, whole, from a repository holding only its selection.
    let copy = copy_selection(&repo, &whole, &dir.path().join("whole"));
    let target = dir.path().join("restored-whole");
    let (_, snapshot) = copy.find_snapshot(&first.to_hex()).unwrap();
    let options = RestoreOptions { target: target.clone(), verify: true, ..Default::default() };
    let outcome = restorer::restore(&copy, &snapshot, &options, &Progress::default()).unwrap();
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert_eq!(std::fs::read(restored_path(&target, &docs.join("report.txt"))).unwrap(), text(300_000, 1));
    assert_eq!(std::fs::read(restored_path(&target, &media.join("film.bin"))).unwrap(), noise(12_000_000, 2));

    // Only the documents: far smaller, and enough for them.
    let include = docs.to_str().unwrap().to_string();
    let part = export::select(&repo, &[first], std::slice::from_ref(&include)).unwrap();
    // Packs are the unit: the documents share packs with parts of the film (as
    // many as the saver had open while it read them), so the film is large.
    assert!(part.bytes() * 2 < whole.bytes(), "documents only: {} of {}", part.bytes(), whole.bytes());
    let copy = copy_selection(&repo, &part, &dir.path().join("part"));
    let target = dir.path().join("restored-part");
    let (_, snapshot) = copy.find_snapshot(&first.to_hex()).unwrap();
    let options =
        RestoreOptions { target: target.clone(), includes: vec![include], verify: true, ..Default::default() };
    let outcome = restorer::restore(&copy, &snapshot, &options, &Progress::default()).unwrap();
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert_eq!(std::fs::read(restored_path(&target, &docs.join("report.txt"))).unwrap(), text(300_000, 1));
    assert!(!restored_path(&target, &media.join("film.bin")).exists());
}
