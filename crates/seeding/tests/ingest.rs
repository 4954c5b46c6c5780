//! Ingest end to end: staging folders prepared onto image files by diskprep, read
//! back by `ingest_drive` into an in-memory store that assembles files from parts.

mod common;

use std::collections::BTreeMap;

use common::*;
use offsite_seeding::diskprep::{prepare, repair};
use offsite_seeding::drive::{block::block_offset, BlockProblem, DriveError, DriveKey, RecoveryKey, TAG_LEN};
use offsite_seeding::ingest::{ingest_drive, IngestReport};

const DRIVE: u64 = 3 * 1024 * 1024;

fn ingest_all(paths: &[std::path::PathBuf], secret: &x25519_dalek::StaticSecret, store: &Store) -> Vec<IngestReport> {
    paths.iter().map(|p| ingest_drive(p, &DriveKey::Import(secret.clone()), None, store, &|_| {}).unwrap()).collect()
}

#[test]
fn a_prepared_set_ingests_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let staging = dir.path().join("staging");
    let files = make_staging(&staging, 11, 4 * 1024 * 1024);
    let (secret, public) = import_keys();
    let mut images = Images::new(dir.path(), DRIVE);
    let set = prepare(&plan(&staging, &dir.path().join("j.json"), public), &mut images, &|_| {}).unwrap();
    assert!(set.drives.len() >= 3);

    let store = Store::default();
    let last = std::sync::Mutex::new(None);
    let mut reports = Vec::new();
    for drive in &set.drives {
        let report = ingest_drive(&drive.path, &DriveKey::Import(secret.clone()), None, &store, &|p| {
            assert!(p.bytes_done <= p.bytes_total);
            *last.lock().unwrap() = Some(p.clone());
        })
        .unwrap();
        let progress = last.lock().unwrap().take().unwrap();
        assert_eq!(progress.bytes_done, progress.bytes_total);
        assert_eq!(report.drive_id, drive.drive_id);
        assert_eq!(report.index, drive.index);
        assert_eq!(report.last_in_set, drive.last_in_set);
        assert!(report.is_clean(), "{}", report.error_log);
        assert!(report.error_log.is_empty());
        assert_eq!(report.bytes_delivered, drive.stream_end - drive.stream_start);
        assert_eq!(report.verbose_log.lines().filter(|l| l.starts_with("delivered ")).count(), report.parts_delivered);
        reports.push(report);
    }
    assert_eq!(store.files(), files);
    // Every empty file is uploaded exactly once, with an empty body.
    for (path, bytes) in &files {
        if bytes.is_empty() {
            assert_eq!(store.uploads().iter().filter(|u| &u.path == path).count(), 1, "{path}");
        }
    }
    // The big file spans drives: several parts.
    let big = files.iter().max_by_key(|(_, b)| b.len()).unwrap().0;
    assert!(store.uploads().iter().filter(|u| &u.path == big).count() >= 2);

    // The customer's recovery key and diskprep's manifest copy work too.
    let drive = &set.drives[1];
    let key: RecoveryKey = drive.recovery_key.parse().unwrap();
    let copy = std::fs::read(&drive.manifest_file).unwrap();
    let again = Store::default();
    let report = ingest_drive(&drive.path, &DriveKey::Recovery(key), Some(&copy), &again, &|_| {}).unwrap();
    assert!(report.is_clean());
    assert_eq!(report.parts_delivered, reports[1].parts_delivered);
}

#[test]
fn a_flipped_byte_names_its_block_and_file_and_a_repair_fills_the_gap() {
    let dir = tempfile::tempdir().unwrap();
    let staging = dir.path().join("staging");
    let files = make_staging(&staging, 12, 4 * 1024 * 1024);
    let (secret, public) = import_keys();
    let mut images = Images::new(dir.path(), DRIVE);
    let set = prepare(&plan(&staging, &dir.path().join("j.json"), public), &mut images, &|_| {}).unwrap();

    // Flip one byte in data block 5 of drive 0.
    let at = block_offset(BS, 5).unwrap() + 1000;
    let mut image = std::fs::read(&set.drives[0].path).unwrap();
    image[at as usize] ^= 0x40;
    std::fs::write(&set.drives[0].path, &image).unwrap();

    let store = Store::default();
    let paths: Vec<_> = set.drives.iter().map(|d| d.path.clone()).collect();
    let reports = ingest_all(&paths, &secret, &store);
    let report = &reports[0];
    assert!(!report.is_clean());
    assert_eq!(report.bad_blocks.len(), 1);
    let bad = &report.bad_blocks[0];
    assert_eq!((bad.index, &bad.problem), (5, &BlockProblem::Tampered));
    let affected: Vec<_> = bad.affects.iter().map(|r| r.path.clone()).collect();
    assert!(!affected.is_empty());
    assert_eq!(report.files_needing_repair, affected);
    assert!(report.error_log.contains(&format!("bad block 5: tampered: {}", affected[0])), "{}", report.error_log);
    let command = report.error_log.lines().last().unwrap();
    assert_eq!(
        command,
        format!(
            "to re-send what is missing: offsite diskprep --repair --import-job {JOB} --files {}",
            affected.join(",")
        )
    );
    assert!(reports[1..].iter().all(|r| r.is_clean()));
    // Every file the bad block did not touch landed intact; the touched ones were
    // not stored from this drive (nothing partial).
    for (path, bytes) in &files {
        if !affected.contains(path) {
            assert_eq!(store.files().get(path), Some(bytes), "{path}");
        }
    }
    for (part, reason) in &report.failed_parts {
        assert!(affected.contains(&part.path));
        assert!(reason.contains("bad block 5 (tampered)"), "{reason}");
        assert!(!store.uploads().contains(part));
    }

    // The repair set carries the named files whole; ingesting it completes them.
    let repair_set = repair(
        &plan(&staging, &dir.path().join("repair.json"), public),
        &report.files_needing_repair,
        &mut Images::new(&dir.path().join("."), DRIVE),
        &|_| {},
    )
    .unwrap();
    let repair_paths: Vec<_> = repair_set.drives.iter().map(|d| d.path.clone()).collect();
    let repaired = ingest_all(&repair_paths, &secret, &store);
    assert!(repaired.iter().all(|r| r.is_clean()));
    let delivered: std::collections::BTreeSet<_> = store.uploads().iter().map(|u| u.path.clone()).collect();
    assert!(affected.iter().all(|p| delivered.contains(p)));
    assert_eq!(store.files(), files);
}

#[test]
fn a_failed_upload_is_reported_for_repair_and_the_rest_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let staging = dir.path().join("staging");
    let files = make_staging(&staging, 13, 100_000);
    let (secret, public) = import_keys();
    let mut images = Images::new(dir.path(), 64 * 1024 * 1024);
    let set = prepare(&plan(&staging, &dir.path().join("j.json"), public), &mut images, &|_| {}).unwrap();
    assert_eq!(set.drives.len(), 1);
    let victim = files.keys().find(|p| p.starts_with("index/") && !files[*p].is_empty()).unwrap().clone();
    let store = Store::refusing(&victim);
    let report = ingest_drive(&set.drives[0].path, &DriveKey::Import(secret), None, &store, &|_| {}).unwrap();
    assert!(report.bad_blocks.is_empty());
    assert!(!report.is_clean());
    assert_eq!(report.files_needing_repair, vec![victim.clone()]);
    assert_eq!(report.failed_parts.len(), 1);
    assert!(report.failed_parts[0].1.contains("403"), "{}", report.failed_parts[0].1);
    assert!(report.error_log.contains(&format!("not delivered: {victim} offset 0")), "{}", report.error_log);
    assert_eq!(store.files().len(), files.len() - 1);
    // Refused for good: sending it again would not help.
    assert_eq!(store.attempts(&victim), 1);
}

/// A one-drive set of small files, its import secret, and a non-empty index file.
fn one_drive(
    dir: &std::path::Path,
    seed: u64,
) -> (std::path::PathBuf, x25519_dalek::StaticSecret, BTreeMap<String, Vec<u8>>, String) {
    let staging = dir.join("staging");
    let files = make_staging(&staging, seed, 100_000);
    let (secret, public) = import_keys();
    let mut images = Images::new(dir, 64 * 1024 * 1024);
    let set = prepare(&plan(&staging, &dir.join("j.json"), public), &mut images, &|_| {}).unwrap();
    assert_eq!(set.drives.len(), 1);
    let victim = files.keys().find(|p| p.starts_with("index/") && !files[*p].is_empty()).unwrap().clone();
    (set.drives[0].path.clone(), secret, files, victim)
}

#[test]
fn a_transiently_failed_upload_is_read_again_and_sent_again_and_the_drive_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    let (drive, secret, files, victim) = one_drive(dir.path(), 15);
    let store = Store::flaky(&victim, 3);
    let report = ingest_drive(&drive, &DriveKey::Import(secret), None, &store, &|_| {}).unwrap();
    assert!(report.is_clean(), "{}", report.error_log);
    assert_eq!(store.files(), files);
    assert_eq!(store.attempts(&victim), 4);
    // Only the failed part was sent again: every other file once.
    for path in files.keys().filter(|p| **p != victim) {
        assert_eq!(store.attempts(path), 1, "{path}");
    }
    assert_eq!(store.uploads().len(), files.len());
    assert_eq!(report.verbose_log.matches("re-sending 1 part ").count(), 3, "{}", report.verbose_log);
    assert!(report.verbose_log.contains(&format!("{victim} offset 0 failed: 503")), "{}", report.verbose_log);
}

#[test]
fn a_rerun_sends_only_the_parts_the_store_does_not_hold() {
    let dir = tempfile::tempdir().unwrap();
    let (drive, secret, files, victim) = one_drive(dir.path(), 17);
    let store = Store::refusing(&victim).remembering();
    let key = DriveKey::Import(secret);
    let first = ingest_drive(&drive, &key, None, &store, &|_| {}).unwrap();
    assert_eq!(first.files_needing_repair, vec![victim.clone()]);
    assert_eq!(first.parts_already_stored, 0);

    store.stop_failing();
    let again = ingest_drive(&drive, &key, None, &store, &|_| {}).unwrap();
    assert!(again.is_clean(), "{}", again.error_log);
    assert_eq!(store.files(), files);
    assert_eq!((again.parts_delivered, again.bytes_delivered), (1, files[&victim].len() as u64));
    assert_eq!(again.parts_already_stored, files.len() - 1);
    assert_eq!(again.bytes_already_stored + again.bytes_delivered, files.values().map(|f| f.len() as u64).sum::<u64>());
    for path in files.keys() {
        assert_eq!(store.attempts(path), if *path == victim { 2 } else { 1 }, "{path}");
    }
    assert_eq!(again.verbose_log.lines().filter(|l| l.starts_with("stored already ")).count(), files.len() - 1);
}

#[test]
fn an_upload_that_keeps_failing_transiently_is_given_up_after_the_retries() {
    let dir = tempfile::tempdir().unwrap();
    let (drive, secret, files, victim) = one_drive(dir.path(), 16);
    let store = Store::flaky(&victim, u32::MAX);
    let report = ingest_drive(&drive, &DriveKey::Import(secret), None, &store, &|_| {}).unwrap();
    assert_eq!(store.attempts(&victim), 1 + offsite_seeding::ingest::UPLOAD_RETRIES as u32);
    assert_eq!(report.files_needing_repair, vec![victim.clone()]);
    let sent = format!("sent {} times", 1 + offsite_seeding::ingest::UPLOAD_RETRIES);
    assert!(report.failed_parts[0].1.contains(&sent), "{}", report.failed_parts[0].1);
    assert!(report.failed_parts[0].1.contains("503"), "{}", report.failed_parts[0].1);
    assert_eq!(store.files().len(), files.len() - 1);
}

#[test]
fn opening_errors_are_the_readers() {
    let dir = tempfile::tempdir().unwrap();
    let staging = dir.path().join("staging");
    make_staging(&staging, 14, 1000);
    let (_, public) = import_keys();
    let mut images = Images::new(dir.path(), DRIVE);
    let set = prepare(&plan(&staging, &dir.path().join("j.json"), public), &mut images, &|_| {}).unwrap();
    let (other, _) = import_keys();
    let store = Store::default();
    match ingest_drive(&set.drives[0].path, &DriveKey::Import(other), None, &store, &|_| {}) {
        Err(DriveError::WrongKey { .. }) => {}
        other => panic!("{other:?}"),
    }
    let not_a_drive = dir.path().join("zeros.img");
    std::fs::write(&not_a_drive, vec![0u8; 200_000]).unwrap();
    let (secret, _) = import_keys();
    match ingest_drive(&not_a_drive, &DriveKey::Import(secret), None, &store, &|_| {}) {
        Err(DriveError::NotADrive { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert!(store.uploads().is_empty());
    let _ = TAG_LEN;
}
