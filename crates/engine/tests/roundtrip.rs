//! Backup and restore through the engine's public API: bytes, metadata and
//! structure come back as they were.

mod common;

use std::fs;

use common::*;
use offsite_engine::archiver::{self, BackupOptions, ParentChoice};
use offsite_engine::browse;
use offsite_engine::check::{check, CheckOptions};
use offsite_engine::progress::Progress;
use offsite_engine::restorer::{restore as restore_with, RestoreOptions};
use proptest::prelude::*;

#[test]
fn every_kind_of_entry_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    make_tree(&source, 1);
    let repo = init_repo(&dir.path().join("repo"));
    let outcome = backup(&repo, &[&source]);
    assert!(outcome.skipped.is_empty(), "{:?}", outcome.skipped);
    assert_eq!(outcome.snapshot.summary.files_new, 25, "20 sources + big + random + duplicate + empty + hardlink");

    let target = dir.path().join("target");
    let restored = restore(&repo, "latest", &target);
    assert!(restored.failures.is_empty(), "{:?}", restored.failures);
    assert_eq!(restored.verified, restored.files);
    assert_same_tree(&source, &restored_path(&target, &source));

    let report = check(&repo, CheckOptions { read_data: true }, &Progress::default()).unwrap();
    assert!(report.is_ok(), "{:?}", report.errors);
}

#[test]
fn duplicate_content_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    fs::create_dir_all(&source).unwrap();
    let data = noise(2_000_000, 9);
    for i in 0..5 {
        fs::write(source.join(format!("copy{i}")), &data).unwrap();
    }
    let repo = init_repo(&dir.path().join("repo"));
    let outcome = backup(&repo, &[&source]);
    let s = &outcome.snapshot.summary;
    assert_eq!(s.total_bytes, 10_000_000);
    assert!(s.data_added < 2_100_000, "5 copies stored {} bytes", s.data_added);
}

#[test]
fn nothing_readable_without_the_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    fs::create_dir_all(&source).unwrap();
    fs::write(source.join("very-secret-name.txt"), b"very secret content that compresses well well well well").unwrap();
    let repo_dir = dir.path().join("repo");
    let repo = init_repo(&repo_dir);
    backup(&repo, &[&source]);
    for entry in walk_files(&repo_dir) {
        let bytes = fs::read(&entry).unwrap();
        for needle in [&b"very-secret-name"[..], b"very secret content", b"source"] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle), "{} leaks {:?}", entry.display(), needle);
        }
    }
}

#[test]
fn unchanged_files_are_not_read_again_and_changes_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    make_tree(&source, 2);
    let repo = init_repo(&dir.path().join("repo"));
    let first = backup(&repo, &[&source]);

    let second = backup(&repo, &[&source]);
    let s = &second.snapshot.summary;
    assert_eq!(s.bytes_read, 0, "an unchanged tree was read again");
    assert_eq!(s.files_new + s.files_changed, 0);
    assert_eq!(second.snapshot.parent, Some(first.snapshot_id));

    fs::write(source.join("src/file7.rs"), b"changed").unwrap();
    fs::write(source.join("added.txt"), b"added").unwrap();
    fs::remove_file(source.join("src/file8.rs")).unwrap();
    let third = backup(&repo, &[&source]);
    assert_eq!((third.snapshot.summary.files_changed, third.snapshot.summary.files_new), (1, 1));
    assert_eq!(third.snapshot.summary.bytes_read, 12);

    let index = repo.load_index().unwrap();
    let changes = browse::diff(&repo, &index, &second.snapshot.tree, &third.snapshot.tree).unwrap();
    let described: Vec<(char, String)> =
        changes.iter().map(|c| (c.change.sign(), c.path.rsplit('/').next().unwrap().to_string())).collect();
    assert!(described.contains(&('M', "file7.rs".into())), "{described:?}");
    assert!(described.contains(&('+', "added.txt".into())), "{described:?}");
    assert!(described.contains(&('-', "file8.rs".into())), "{described:?}");

    // Forcing a full read finds the same content, so it adds no data; only trees
    // can be new, as reading files updated their access times.
    let options = BackupOptions { parent: ParentChoice::None, ..BackupOptions::new(vec![source.clone()]) };
    let forced = archiver::backup(&repo, &options, &Progress::default()).unwrap();
    let s = &forced.snapshot.summary;
    assert!(s.bytes_read > 0);
    assert!(s.blobs_added <= s.dirs + 1, "{} blobs added for {} folders", s.blobs_added, s.dirs);
}

#[test]
fn excludes_leave_out_names_and_paths() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    make_tree(&source, 3);
    let repo = init_repo(&dir.path().join("repo"));
    let options = BackupOptions {
        excludes: vec!["*.bin".into(), format!("{}/src/nested", source.display())],
        ..BackupOptions::new(vec![source.clone()])
    };
    let outcome = archiver::backup(&repo, &options, &Progress::default()).unwrap();
    let index = repo.load_index().unwrap();
    let entries = browse::list(&repo, &index, &outcome.snapshot.tree, "/", "t").unwrap();
    assert!(entries.iter().all(|e| !e.path.ends_with(".bin")));
    assert!(entries.iter().all(|e| !e.path.contains("/nested")));
    assert!(entries.iter().any(|e| e.path.ends_with("file1.rs")));
}

#[test]
fn partial_restore_of_one_folder() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    make_tree(&source, 4);
    let repo = init_repo(&dir.path().join("repo"));
    backup(&repo, &[&source]);
    let (_, snapshot) = repo.find_snapshot("latest").unwrap();
    let target = dir.path().join("target");
    let wanted = format!("{}/src/nested", source.display());
    let options = RestoreOptions { target: target.clone(), includes: vec![wanted], verify: true, ..Default::default() };
    let outcome = restore_with(&repo, &snapshot, &options, &Progress::default()).unwrap();
    assert_eq!(outcome.files, 1);
    let base = restored_path(&target, &source);
    assert_eq!(
        fs::read(base.join("src/nested/deeper/big.txt")).unwrap(),
        fs::read(source.join("src/nested/deeper/big.txt")).unwrap()
    );
    assert!(!base.join("media").exists());

    let missing = RestoreOptions { target, includes: vec!["/no/such/path".into()], ..Default::default() };
    let err = restore_with(&repo, &snapshot, &missing, &Progress::default()).unwrap_err();
    assert!(err.to_string().contains("/no/such/path"), "{err}");
}

#[test]
fn several_paths_share_one_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("one/data"), dir.path().join("two/data"));
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    fs::write(a.join("x"), b"from one").unwrap();
    fs::write(b.join("x"), b"from two").unwrap();
    let repo = init_repo(&dir.path().join("repo"));
    backup(&repo, &[&a, &b]);
    let target = dir.path().join("target");
    restore(&repo, "latest", &target);
    assert_eq!(fs::read(restored_path(&target, &a).join("x")).unwrap(), b"from one");
    assert_eq!(fs::read(restored_path(&target, &b).join("x")).unwrap(), b"from two");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]
    #[test]
    fn generated_trees_round_trip(files in proptest::collection::vec((0usize..3, 0usize..200_000, any::<u64>(), any::<bool>()), 1..12)) {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source");
        for (i, (depth, len, seed, compressible)) in files.iter().enumerate() {
            let mut folder = source.clone();
            for d in 0..*depth {
                folder = folder.join(format!("d{d}"));
            }
            fs::create_dir_all(&folder).unwrap();
            let data = if *compressible { text(*len, *seed) } else { noise(*len, *seed) };
            fs::write(folder.join(format!("f{i}")), data).unwrap();
        }
        let repo = init_repo(&dir.path().join("repo"));
        backup(&repo, &[&source]);
        let target = dir.path().join("target");
        let outcome = restore(&repo, "latest", &target);
        prop_assert!(outcome.failures.is_empty());
        assert_same_tree(&source, &restored_path(&target, &source));
    }
}
