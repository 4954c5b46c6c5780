//! Backups to an object store that fails, hangs, answers slowly, cuts reads short
//! and loses writes (testbed's `FaultyStore` over a local folder): the cloud
//! backend retries what is transient with backoff and finishes, stops with a clear
//! error on what is not (or when retries run out) and finishes when run again, and
//! nothing half written is taken for complete (check --read-data, restore equals).
//!
//! `OFFSITE_SOAK=1` raises the fault rate and repeats the backup over more rounds.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use object_store::local::LocalFileSystem;
use offsite_engine::archiver::{self, BackupOptions};
use offsite_engine::backend::{Backend, BackendError, CloudBackend, StoreRetry};
use offsite_engine::check::{self, CheckOptions};
use offsite_engine::progress::Progress;
use offsite_engine::{Error, Repository};
use offsite_testbed::{FaultKind, FaultPlan, FaultyStore};

use common::*;

fn soak() -> bool {
    std::env::var_os("OFFSITE_SOAK").is_some_and(|v| v != "0")
}

/// Quick retries for tests: the waits are what the policy is about, not their length.
fn test_retry(attempts: u32) -> StoreRetry {
    StoreRetry {
        backoff: backon::ExponentialBuilder::new()
            .with_min_delay(Duration::from_millis(10))
            .with_max_delay(Duration::from_millis(200))
            .with_max_times(attempts as usize - 1),
        call_timeout: Duration::from_secs(2),
    }
}

fn faulty_backend(folder: &Path, plan: FaultPlan, retry: StoreRetry) -> (FaultyStore, Arc<dyn Backend>) {
    std::fs::create_dir_all(folder).unwrap();
    let local = Arc::new(LocalFileSystem::new_with_prefix(folder).unwrap());
    let faulty = FaultyStore::new(local, plan);
    let backend = CloudBackend::with_store(faulty.as_store(), "repo", "faulty://store/repo", retry).unwrap();
    (faulty, Arc::new(backend))
}

fn try_backup(repo: &Repository, source: &Path) -> offsite_engine::Result<archiver::BackupOutcome> {
    archiver::backup(repo, &BackupOptions::new(vec![source.to_path_buf()]), &Progress::default())
}

fn assert_checks_and_restores(repo: &Repository, source: &Path, target: &Path) {
    let report = check::check(repo, CheckOptions { read_data: true }, &Progress::default()).unwrap();
    assert!(report.is_ok(), "check --read-data found damage: {:?}", report.errors);
    restore(repo, "latest", target);
    assert_same_tree(source, &restored_path(target, source));
}

#[test]
fn a_backup_through_a_faulty_store_retries_and_restores_equal_to_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    make_tree(&source, 7);
    let rate = if soak() { 0.15 } else { 0.06 };
    let mut plan = FaultPlan::uniform(0x00ff_517e, rate);
    plan.hang = Duration::from_secs(30);
    // One of each whatever the rolls: an early call hangs past the deadline, and
    // writes and reads of the backup are lost and cut short.
    plan.script = vec![(3, FaultKind::Timeout), (10, FaultKind::PartialWrite), (20, FaultKind::TruncatedRead)];
    let (faulty, backend) = faulty_backend(&dir.path().join("bucket"), plan, test_retry(10));

    let repo = Repository::init(backend.clone(), PASSPHRASE, test_options()).unwrap();
    let rounds = if soak() { 6 } else { 2 };
    for round in 0..rounds {
        std::fs::write(source.join(format!("round-{round}.bin")), noise(400_000, 900 + round)).unwrap();
        try_backup(&repo, &source).unwrap_or_else(|e| panic!("backup round {round} gave up: {e}"));
    }
    // Reads through the same faults: a fresh open, check and restore.
    let repo = Repository::open(backend, PASSPHRASE).unwrap();
    assert_checks_and_restores(&repo, &source, &dir.path().join("restore"));

    let counts = faulty.counts();
    eprintln!("faults injected: {counts}");
    assert!(counts.timeouts >= 1, "{counts}");
    assert!(counts.errors > 0 && counts.slow > 0, "{counts}");
    assert!(counts.truncated_reads > 0, "no read was cut short: {counts}");
    assert!(counts.partial_writes > 0, "no write was lost: {counts}");
}

#[test]
fn retries_that_run_out_stop_the_backup_clearly_and_a_rerun_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    make_tree(&source, 8);
    let plan = FaultPlan { error: 1.0, ..FaultPlan::none(1) };
    let (faulty, backend) = faulty_backend(&dir.path().join("bucket"), plan, test_retry(3));
    faulty.set_active(false);
    let repo = Repository::init(backend.clone(), PASSPHRASE, test_options()).unwrap();

    faulty.set_active(true);
    let err = try_backup(&repo, &source).expect_err("every call fails: the backup must stop");
    let message = err.to_string();
    assert!(message.contains("faulty://store/repo") && message.contains("failed 3 times"), "{message}");
    assert!(message.contains("run the command again"), "{message}");
    assert!(matches!(err, Error::Backend(BackendError::Remote { .. })), "{err:?}");

    faulty.set_active(false);
    try_backup(&repo, &source).unwrap();
    assert_checks_and_restores(&repo, &source, &dir.path().join("restore"));
}

#[test]
fn a_full_storage_is_not_retried_and_the_backup_finishes_once_there_is_space() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    make_tree(&source, 9);
    let (faulty, backend) = faulty_backend(&dir.path().join("bucket"), FaultPlan::none(2), test_retry(10));
    let repo = Repository::init(backend.clone(), PASSPHRASE, test_options()).unwrap();
    let calls_before = faulty.counts().calls;
    drop(faulty);

    // The same folder, now full from the first call of the backup on.
    let plan = FaultPlan::scripted((1..=10_000).map(|n| (n, FaultKind::StorageFull)).collect());
    let (full, full_backend) = faulty_backend(&dir.path().join("bucket"), plan, test_retry(10));
    let full_repo = Repository::open(full_backend, PASSPHRASE);
    let err = match full_repo {
        Err(err) => err,
        Ok(repo) => try_backup(&repo, &source).expect_err("a full storage must stop the backup"),
    };
    assert!(matches!(err, Error::Backend(BackendError::NoSpace { .. })), "{err:?}");
    assert!(err.to_string().contains("no space left") && err.to_string().contains("faulty://store/repo"), "{err}");
    // Not retried: one call per file tried, not ten.
    assert!(full.counts().storage_full <= 4, "a full storage was retried: {}", full.counts());
    assert!(calls_before > 0);

    try_backup(&repo, &source).unwrap();
    assert_checks_and_restores(&repo, &source, &dir.path().join("restore"));
}
