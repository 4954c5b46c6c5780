//! The estimate of a first backup against the backup itself: the same files,
//! chunks and compressed blobs, and nothing written while estimating.

mod common;

use std::fs;

use common::*;
use offsite_engine::backend::FileKind;
use offsite_engine::estimate::estimate;
use offsite_engine::progress::Progress;

fn repository_files(repo: &offsite_engine::Repository) -> Vec<String> {
    let mut names = Vec::new();
    for kind in FileKind::ALL {
        names.extend(repo.backend().list(kind).unwrap().into_iter().map(|f| format!("{kind:?}/{}", f.name)));
    }
    names.sort();
    names
}

#[test]
fn an_estimate_counts_what_the_backup_then_stores_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    make_tree(&source, 7);
    // Three more copies of a compressible file and one of an incompressible one.
    let big = fs::read(source.join("src/nested/deeper/big.txt")).unwrap();
    for i in 0..3 {
        fs::write(source.join(format!("copy-{i}.txt")), &big).unwrap();
    }
    fs::write(source.join("media/third.bin"), noise(500_000, 207)).unwrap();
    fs::write(source.join("excluded.tmp"), noise(300_000, 9)).unwrap();
    let repo = init_repo(&dir.path().join("repo"));
    let before = repository_files(&repo);

    let progress = Progress::default();
    let excludes = vec!["*.tmp".to_string()];
    let estimated = estimate(&repo, std::slice::from_ref(&source), &excludes, &progress).unwrap();
    assert_eq!(repository_files(&repo), before, "the estimate wrote to the repository");
    assert!(estimated.skipped.is_empty(), "{:?}", estimated.skipped);

    // 20 sources, big, random, duplicate, third, 3 copies, the empty file; the hard
    // link is read once; the excluded file, links, fifo are not files read.
    assert_eq!(estimated.files, 28);
    assert_eq!(progress.read().0, 28);
    assert!(estimated.unique_bytes < estimated.bytes, "{estimated:?}");
    assert!(estimated.bytes - estimated.unique_bytes >= 3 * big.len() as u64 + 500_000, "{estimated:?}");
    assert!(estimated.stored_bytes < estimated.unique_bytes, "{estimated:?}");

    // The backup reads the same files and stores the same blobs, plus its trees.
    let mut options = offsite_engine::archiver::BackupOptions::new(vec![source.clone()]);
    options.excludes = excludes;
    let outcome = offsite_engine::archiver::backup(&repo, &options, &Progress::default()).unwrap();
    let summary = &outcome.snapshot.summary;
    assert_eq!(summary.bytes_read, estimated.bytes);
    let trees = summary.data_added - estimated.unique_bytes;
    assert!(trees > 0 && trees < 64 * 1024, "{trees} bytes of trees? {summary:?} {estimated:?}");
    let stored_trees = summary.data_added_stored - estimated.stored_bytes;
    assert!(stored_trees < 64 * 1024, "{stored_trees} stored bytes of trees? {summary:?} {estimated:?}");
}

#[test]
fn a_missing_path_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let repo = init_repo(&dir.path().join("repo"));
    let err = estimate(&repo, &[dir.path().join("nowhere")], &[], &Progress::default()).unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}
