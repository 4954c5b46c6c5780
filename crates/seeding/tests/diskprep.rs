//! diskprep end to end on image files in temporary folders (64 KiB blocks): a
//! staging repository across several drives, stops and crashes resumed without
//! rewriting finished blocks, a changed staging location refused, repair sets, and
//! the user-facing refusals.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
use offsite_seeding::diskprep::journal::JournalLock;
use offsite_seeding::diskprep::{
    describe_target, prepare, prepare_with, repair, resume, resume_with, DiskprepError, PrepareOptions, TargetKind,
};
use offsite_seeding::drive::{DriveKey, DriveReader};
use offsite_seeding::staging::StagingListing;

const DRIVE: u64 = 3 * 1024 * 1024;

fn options() -> PrepareOptions {
    PrepareOptions { checkpoint_bytes: 256 * 1024, read_size: 100_000 }
}

#[test]
fn a_staging_location_spans_drives_and_reads_back_identical() {
    let dir = tempfile::tempdir().unwrap();
    let staging = dir.path().join("staging");
    let files = make_staging(&staging, 1, 4 * 1024 * 1024);
    let (secret, public) = import_keys();
    let plan = plan(&staging, &dir.path().join("journal.json"), public);
    let mut images = Images::new(dir.path(), DRIVE);
    let seen = AtomicU64::new(0);
    let set = prepare(&plan, &mut images, &|p| seen.store(p.bytes_done, Ordering::SeqCst)).unwrap();

    let listing = StagingListing::read(&staging).unwrap();
    assert_eq!(listing.files.len(), files.len(), "the engine's temp file is skipped");
    assert_eq!(set.staging_digest, listing.digest());
    assert_eq!(set.total_bytes, listing.total_bytes);
    assert_eq!(set.bytes_written, listing.total_bytes);
    assert_eq!(seen.load(Ordering::SeqCst), listing.total_bytes);
    assert!(set.drives.len() >= 3, "{} drives", set.drives.len());
    for (k, drive) in set.drives.iter().enumerate() {
        assert_eq!(drive.index as usize, k);
        assert_eq!(drive.last_in_set, k + 1 == set.drives.len());
        assert!(drive.bytes_used <= DRIVE);
        if k > 0 {
            assert_eq!(drive.stream_start, set.drives[k - 1].stream_end);
        }
        let mode = std::fs::metadata(&drive.manifest_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // The recovery key opens it too.
        let key: offsite_seeding::drive::RecoveryKey = drive.recovery_key.parse().unwrap();
        let reader = DriveReader::open(&drive.path, &DriveKey::Recovery(key)).unwrap();
        assert_eq!(hex::encode(reader.fingerprint()), drive.fingerprint);
    }
    let paths: Vec<_> = set.drives.iter().map(|d| d.path.clone()).collect();
    assert_eq!(read_back(&paths, &secret), files);
    let journal_mode = std::fs::metadata(&plan.journal).unwrap().permissions().mode();
    assert_eq!(journal_mode & 0o777, 0o600);

    // A finished journal gives its set back without asking for drives.
    let mut none = Images::new(dir.path(), DRIVE);
    none.stop_at_call = Some(0);
    let again = prepare(&plan, &mut none, &|_| {}).unwrap();
    assert_eq!(again.drives, set.drives);
    assert_eq!(again.bytes_written, 0);
    assert!(none.calls.is_empty());
}

#[test]
fn a_stop_is_resumable_and_an_unfinished_journal_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let staging = dir.path().join("staging");
    let files = make_staging(&staging, 2, 2 * 1024 * 1024);
    let (secret, public) = import_keys();
    let plan = plan(&staging, &dir.path().join("journal.json"), public);
    let mut images = Images::new(dir.path(), DRIVE);
    images.stop_at_call = Some(1);
    match prepare_with(&plan, &options(), &mut images, &|_| {}) {
        Err(DiskprepError::Stopped { remaining_bytes, .. }) => assert!(remaining_bytes > 0),
        other => panic!("{other:?}"),
    }
    let err = prepare(&plan, &mut Images::new(dir.path(), DRIVE), &|_| {}).unwrap_err();
    assert!(matches!(err, DiskprepError::JournalUnfinished { .. }), "{err}");
    assert!(err.to_string().contains("--resume"));

    let mut more = Images::new(dir.path(), DRIVE);
    let set = resume_with(&plan.journal, &options(), &mut more, &|_| {}).unwrap();
    assert_eq!(more.calls[0].0, 1, "the finished drive 0 is kept");
    assert_eq!(set.drives[0].path, images.given[0]);
    assert_eq!(set.bytes_written, set.total_bytes - set.drives[0].stream_end);
    let paths: Vec<_> = set.drives.iter().map(|d| d.path.clone()).collect();
    assert_eq!(read_back(&paths, &secret), files);
}

#[test]
fn a_second_run_on_a_journal_in_use_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let staging = dir.path().join("staging");
    let files = make_staging(&staging, 3, 2 * 1024 * 1024);
    let (secret, public) = import_keys();
    let plan = plan(&staging, &dir.path().join("journal.json"), public);

    // Another diskprep holds the journal: neither a new preparation nor a resume starts.
    let held = JournalLock::acquire(&plan.journal).unwrap();
    let mut images = Images::new(dir.path(), DRIVE);
    let err = prepare_with(&plan, &options(), &mut images, &|_| {}).unwrap_err();
    assert!(matches!(err, DiskprepError::JournalBusy { .. }), "{err}");
    assert!(err.to_string().contains(&plan.journal.display().to_string()), "{err}");
    assert!(images.calls.is_empty(), "no drive was asked for");
    assert!(!plan.journal.exists(), "nothing was written");
    drop(held);

    let mut images = Images::new(dir.path(), DRIVE);
    images.stop_at_call = Some(1);
    assert!(matches!(prepare_with(&plan, &options(), &mut images, &|_| {}), Err(DiskprepError::Stopped { .. })));
    let held = JournalLock::acquire(&plan.journal).unwrap();
    let err = resume_with(&plan.journal, &options(), &mut Images::new(dir.path(), DRIVE), &|_| {}).unwrap_err();
    assert!(matches!(err, DiskprepError::JournalBusy { .. }), "{err}");
    assert!(err.to_string().contains("wait for it to finish"), "{err}");

    // Once the other run is gone, the resume finishes the set.
    drop(held);
    let set = resume_with(&plan.journal, &options(), &mut Images::new(dir.path(), DRIVE), &|_| {}).unwrap();
    let paths: Vec<_> = set.drives.iter().map(|d| d.path.clone()).collect();
    assert_eq!(read_back(&paths, &secret), files);
}

#[test]
fn a_kill_mid_drive_resumes_from_the_checkpoint_without_rewriting_finished_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let staging = dir.path().join("staging");
    let files = make_staging(&staging, 3, 4 * 1024 * 1024);
    let (secret, public) = import_keys();
    let plan = plan(&staging, &dir.path().join("journal.json"), public);
    let total = StagingListing::read(&staging).unwrap().total_bytes;
    // Past the first drive, in the middle of the second.
    let killer = Killer { kill_after: DRIVE + 1024 * 1024, last: AtomicU64::new(0) };
    let mut images = Images::new(dir.path(), DRIVE);
    let killed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        prepare_with(&plan, &options(), &mut images, &|p| killer.check(p.bytes_done))
    }));
    assert!(killed.is_err(), "the progress callback kills the preparation");
    let killed_at = killer.last.load(Ordering::SeqCst);
    assert_eq!(images.given.len(), 2);
    let first_mtime = std::fs::metadata(&images.given[0]).unwrap().modified().unwrap();

    let mut more = Images::new(dir.path(), DRIVE);
    let set = resume_with(&plan.journal, &options(), &mut more, &|_| {}).unwrap();
    // The drive in progress was reopened, not replaced.
    assert_eq!(set.drives[1].path, images.given[1]);
    assert!(more.calls.iter().all(|(index, _)| *index >= 2), "{:?}", more.calls);
    // Only what followed the last completed checkpoint was written again (a
    // checkpoint is synced in the background, so that is at most about one
    // interval plus what was written during one sync of the drive): what drive 1
    // held at its checkpoint was kept, and nothing of drive 0 was written again.
    let rewritten = set.bytes_written - (total - killed_at);
    let on_drive_1 = killed_at - set.drives[1].stream_start;
    assert!(rewritten < on_drive_1, "rewrote {rewritten} of the {on_drive_1} bytes drive 1 held");
    assert!(set.bytes_written < total - set.drives[1].stream_start);
    assert_eq!(std::fs::metadata(&images.given[0]).unwrap().modified().unwrap(), first_mtime);
    let paths: Vec<_> = set.drives.iter().map(|d| d.path.clone()).collect();
    assert_eq!(read_back(&paths, &secret), files);
}

#[test]
fn a_pulled_drive_is_started_over_on_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let staging = dir.path().join("staging");
    let files = make_staging(&staging, 4, 1024 * 1024);
    let (secret, public) = import_keys();
    let plan = plan(&staging, &dir.path().join("journal.json"), public);
    let killer = Killer { kill_after: DRIVE / 2, last: AtomicU64::new(0) };
    let mut images = Images::new(dir.path(), DRIVE);
    let killed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        prepare_with(&plan, &options(), &mut images, &|p| killer.check(p.bytes_done))
    }));
    assert!(killed.is_err());
    std::fs::remove_file(&images.given[0]).unwrap();
    let mut more = Images::new(dir.path(), DRIVE);
    let set = resume(&plan.journal, &mut more, &|_| {}).unwrap();
    assert_eq!(more.calls[0], (0, set.total_bytes));
    assert_eq!(set.bytes_written, set.total_bytes);
    let paths: Vec<_> = set.drives.iter().map(|d| d.path.clone()).collect();
    assert_eq!(read_back(&paths, &secret), files);
}

#[test]
fn resume_refuses_a_changed_staging_location_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let staging = dir.path().join("staging");
    let files = make_staging(&staging, 5, 2 * 1024 * 1024);
    let (_, public) = import_keys();
    let plan = plan(&staging, &dir.path().join("journal.json"), public);
    let mut images = Images::new(dir.path(), DRIVE);
    images.stop_at_call = Some(1);
    assert!(matches!(prepare(&plan, &mut images, &|_| {}), Err(DiskprepError::Stopped { .. })));

    let victim = files.keys().find(|p| p.starts_with("snapshots/")).unwrap().clone();
    std::fs::write(staging.join(&victim), b"other").unwrap();
    match resume(&plan.journal, &mut Images::new(dir.path(), DRIVE), &|_| {}) {
        Err(DiskprepError::StagingChanged { file, what }) => {
            assert_eq!(file, victim);
            assert!(what.contains("size"), "{what}");
        }
        other => panic!("{other:?}"),
    }
    std::fs::write(staging.join(&victim), &files[&victim]).unwrap();
    std::fs::write(staging.join("snapshots/new"), b"new").unwrap();
    match resume(&plan.journal, &mut Images::new(dir.path(), DRIVE), &|_| {}) {
        Err(e @ DiskprepError::StagingChanged { .. }) => assert!(e.to_string().contains("snapshots/new"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn repair_writes_only_the_named_files() {
    let dir = tempfile::tempdir().unwrap();
    let staging = dir.path().join("staging");
    let files = make_staging(&staging, 6, 4 * 1024 * 1024);
    let (secret, public) = import_keys();
    let big = files.iter().max_by_key(|(_, b)| b.len()).unwrap().0.clone();
    let named = vec![big.clone(), "config".to_string(), "locks/empty-lock".to_string()];
    let plan = plan(&staging, &dir.path().join("repair.json"), public);
    let mut images = Images::new(dir.path(), DRIVE);
    let set = repair(&plan, &named, &mut images, &|_| {}).unwrap();
    assert_eq!(set.total_bytes, (files[&big].len() + files["config"].len()) as u64);
    assert!(set.drives.len() >= 2);
    let paths: Vec<_> = set.drives.iter().map(|d| d.path.clone()).collect();
    let back = read_back(&paths, &secret);
    let expected: std::collections::BTreeMap<_, _> =
        files.iter().filter(|(p, _)| named.contains(p)).map(|(p, b)| (p.clone(), b.clone())).collect();
    assert_eq!(back, expected);

    let other = common::plan(&staging, &dir.path().join("repair2.json"), public);
    match repair(&other, &["data/ff/nope".to_string()], &mut images, &|_| {}) {
        Err(DiskprepError::UnknownFile { file, .. }) => assert_eq!(file, "data/ff/nope"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(repair(&other, &[], &mut images, &|_| {}), Err(DiskprepError::NoFiles)));
}

#[test]
fn refusals_name_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let (_, public) = import_keys();
    let staging = dir.path().join("staging");
    let journal = dir.path().join("journal.json");
    let mut images = Images::new(dir.path(), DRIVE);
    let err = prepare(&plan(&staging, &journal, public), &mut images, &|_| {}).unwrap_err();
    assert!(matches!(err, DiskprepError::StagingMissing { .. }), "{err}");
    std::fs::create_dir_all(&staging).unwrap();
    let err = prepare(&plan(&staging, &journal, public), &mut images, &|_| {}).unwrap_err();
    assert!(matches!(err, DiskprepError::StagingEmpty { .. }), "{err}");
    std::fs::write(staging.join("other"), b"x").unwrap();
    let err = prepare(&plan(&staging, &journal, public), &mut images, &|_| {}).unwrap_err();
    assert!(matches!(err, DiskprepError::NotARepository { .. }), "{err}");

    make_staging(&staging, 7, 1000);
    let mut small = Images::new(dir.path(), 100 * 1024);
    match prepare(&plan(&staging, &journal, public), &mut small, &|_| {}) {
        Err(e @ DiskprepError::DriveTooSmall { needed, .. }) => {
            assert!(needed > 100 * 1024);
            assert!(e.to_string().contains(&needed.to_string()));
        }
        other => panic!("{other:?}"),
    }
    // The journal of another job is not taken over.
    let mut other_job = plan(&staging, &journal, public);
    other_job.import_job = "another-job".into();
    let err = prepare(&other_job, &mut images, &|_| {}).unwrap_err();
    assert!(matches!(err, DiskprepError::JournalOfAnotherJob { .. }), "{err}");

    let missing = describe_target(&dir.path().join("nothing.img"));
    assert!(!missing.exists && missing.is_empty && missing.kind == TargetKind::Image);
    let set = resume(&journal, &mut Images::new(dir.path(), DRIVE), &|_| {}).unwrap();
    let described = describe_target(&set.drives[0].path);
    assert_eq!(described.kind, TargetKind::Image);
    assert_eq!(described.size, Some(DRIVE));
    assert!(!described.is_empty);
    assert_eq!(described.holds_offsite_drive.unwrap().import_job, JOB);
    let folder = describe_target(dir.path());
    assert_eq!(folder.kind, TargetKind::Folder);
    assert!(!folder.is_empty);
}

/// A crash after a drive was finished on the drive but before the journal said so:
/// resume takes the finished drive as it is and goes on with the next one.
#[test]
fn a_drive_finished_before_the_journal_knew_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let staging = dir.path().join("staging");
    let files = make_staging(&staging, 8, 2 * 1024 * 1024);
    let (secret, public) = import_keys();
    let plan = plan(&staging, &dir.path().join("journal.json"), public);
    let saved = dir.path().join("journal-while-drive-0.json");
    let mut images = Images::new(dir.path(), DRIVE);
    images.stop_at_call = Some(1);
    let result = prepare_with(&plan, &options(), &mut images, &|p| {
        if p.drive_index == 0 {
            std::fs::copy(&plan.journal, &saved).unwrap();
        }
    });
    assert!(matches!(result, Err(DiskprepError::Stopped { .. })));
    // Back to the journal that still had drive 0 in progress.
    std::fs::copy(&saved, &plan.journal).unwrap();
    let mut more = Images::new(dir.path(), DRIVE);
    let set = resume_with(&plan.journal, &options(), &mut more, &|_| {}).unwrap();
    assert_eq!(set.drives[0].path, images.given[0]);
    assert_eq!(more.calls[0].0, 1);
    let paths: Vec<_> = set.drives.iter().map(|d| d.path.clone()).collect();
    assert_eq!(read_back(&paths, &secret), files);
    let copy = std::fs::read(&set.drives[0].manifest_file).unwrap();
    let key: offsite_seeding::drive::RecoveryKey = set.drives[0].recovery_key.parse().unwrap();
    DriveReader::open_with_manifest(&set.drives[0].path, &DriveKey::Recovery(key), &copy).unwrap();
}
