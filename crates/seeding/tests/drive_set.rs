//! A drive set read back as a repository: a real engine repository backed up,
//! written onto image files by diskprep (64 KiB blocks), then restored by the
//! engine's restorer through `DriveSetBackend`: whole, with a damaged block, with
//! a drive that never arrived, and filled from a copy of the repository.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use offsite_engine::archiver::{self, BackupOptions};
use offsite_engine::backend::{Backend, BackendError, FileKind, LocalBackend};
use offsite_engine::chunker::ChunkerParams;
use offsite_engine::crypto::KdfParams;
use offsite_engine::progress::Progress;
use offsite_engine::restorer::{self, RestoreOptions, RestoreOutcome};
use offsite_engine::{InitOptions, Repository};
use offsite_seeding::diskprep::{prepare, PreparedSet};
use offsite_seeding::drive::block::block_offset;
use offsite_seeding::drive::{DriveKey, DriveReader, RecoveryKey, HEADER_REGION, TAG_LEN};
use offsite_seeding::drive_set::{
    AbsentDrives, DamageCause, DriveSetBackend, DriveSetError, FillingBackend, Whereabouts,
};
use offsite_seeding::staging::StagingListing;
use x25519_dalek::StaticSecret;

const PASSPHRASE: &[u8] = b"drive set passphrase";

/// A backed-up source tree, its repository (the staging location) and a drive set of it.
struct Fixture {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    source: PathBuf,
    staging: PathBuf,
    set: PreparedSet,
    secret: StaticSecret,
}

impl Fixture {
    fn drives(&self) -> Vec<PathBuf> {
        self.set.drives.iter().map(|d| d.path.clone()).collect()
    }

    fn key(&self) -> DriveKey {
        DriveKey::Import(self.secret.clone())
    }

    /// The repository's files as stored, by path.
    fn repository_files(&self) -> BTreeMap<String, Vec<u8>> {
        let listing = StagingListing::read(&self.staging).unwrap();
        listing.files.iter().map(|f| (f.path.clone(), std::fs::read(self.staging.join(&f.path)).unwrap())).collect()
    }

    /// Each drive's manifest parts (path, offset, length, file size), by drive index.
    fn parts(&self) -> Vec<Vec<(String, u64, u64, u64)>> {
        self.set
            .drives
            .iter()
            .map(|d| {
                let reader = DriveReader::open(&d.path, &self.key()).unwrap();
                reader
                    .manifest()
                    .files
                    .iter()
                    .map(|p| (p.path.clone(), p.offset_in_file, p.length, p.file_size))
                    .collect()
            })
            .collect()
    }
}

/// Writes a tree of text (compressible) and noise files, backs it up with small
/// chunks and 1 MiB packs, and writes the repository onto drives of a size that
/// makes `drives` of them.
fn fixture(drives: u64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let source = root.join("source");
    for i in 0..12u64 {
        let folder = source.join(format!("text/{}", i % 3));
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join(format!("notes-{i}.txt")), text(20_000 + 9_000 * i as usize, i)).unwrap();
    }
    std::fs::create_dir_all(source.join("media")).unwrap();
    for i in 0..6u64 {
        std::fs::write(source.join(format!("media/noise-{i}.bin")), noise(150_000 + 120_000 * i as usize, 100 + i))
            .unwrap();
    }
    std::fs::write(source.join("big.bin"), noise(1_500_000, 7)).unwrap();
    std::fs::write(source.join("empty"), b"").unwrap();

    let staging = root.join("staging");
    let options = InitOptions {
        kdf: KdfParams::insecure_for_tests(),
        chunker: ChunkerParams { min_size: 4096, avg_size: 16384, max_size: 65536 },
        pack_size: 1 << 20,
        compression: 3,
    };
    let repo = Repository::init(Arc::new(LocalBackend::new(&staging)), PASSPHRASE, options).unwrap();
    archiver::backup(&repo, &BackupOptions::new(vec![source.clone()]), &Progress::default()).unwrap();

    let total = StagingListing::read(&staging).unwrap().total_bytes;
    // Equal drives (the first starts with the config, keys, index and snapshots); the last one holds what is left.
    let share = (total * 10 / (10 * drives - 5)).div_ceil(u64::from(BS));
    let size = HEADER_REGION + (share + 2) * (u64::from(BS) + TAG_LEN);
    let (secret, public) = import_keys();
    let plan = plan(&staging, &root.join("journal.json"), public);
    let set = prepare(&plan, &mut Images::new(&root, size), &|_| {}).unwrap();
    assert_eq!(set.drives.len() as u64, drives, "drive size {size} for {total} bytes");
    Fixture { _dir: dir, dir: root, source, staging, set, secret }
}

/// Text that compresses.
fn text(len: usize, seed: u64) -> Vec<u8> {
    let words = ["restore", "drive", "export", "vault", "block", "pack", "index", "\n", "offsite", "set"];
    noise(len, seed).iter().map(|b| words[*b as usize % words.len()]).collect::<Vec<_>>().join(" ").into_bytes()
}

/// Deterministic pseudo-random bytes.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

fn restore(backend: Arc<dyn Backend>, target: &Path) -> RestoreOutcome {
    let repo = Repository::open(backend, PASSPHRASE).unwrap();
    let (_, snapshot) = repo.find_snapshot("latest").unwrap();
    let options = RestoreOptions { target: target.to_path_buf(), verify: true, ..Default::default() };
    restorer::restore(&repo, &snapshot, &options, &Progress::default()).unwrap()
}

/// Every regular file of `source`, by path relative to it.
fn source_files(source: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![source.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.insert(path.strip_prefix(source).unwrap().to_path_buf(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// Checks the restore of `source` at `target`: every file not in `failed` is
/// byte-identical, every file in it is absent under its own name.
fn assert_restored(source: &Path, target: &Path, failed: &[String]) -> usize {
    let restored_root = target.join(source.strip_prefix("/").unwrap());
    let mut identical = 0;
    for (relative, bytes) in source_files(source) {
        let at = restored_root.join(&relative);
        if failed.iter().any(|f| Path::new(f) == at) {
            assert!(!at.exists(), "{} failed but is at its place", at.display());
        } else {
            assert_eq!(std::fs::read(&at).unwrap(), bytes, "{} differs", relative.display());
            identical += 1;
        }
    }
    identical
}

#[test]
fn a_two_drive_set_restores_byte_identical_through_the_engine() {
    let fx = fixture(2);
    let parts = fx.parts();
    let (path, _, length, size) = parts[0].last().unwrap().clone();
    assert!(length < size, "the last file of drive 0 continues on drive 1");
    assert_eq!(parts[1][0].0, path);

    let set = DriveSetBackend::open(&fx.drives(), &fx.key()).unwrap();
    assert!(set.is_complete());
    assert_eq!(set.drive_indexes(), vec![0, 1]);
    // Every repository file reads back as stored, whole and in ranges.
    for (path, bytes) in fx.repository_files() {
        let (kind, name) = FileKind::of_path(&path).unwrap();
        if kind == FileKind::Lock {
            continue;
        }
        assert_eq!(set.size(kind, &name).unwrap(), Some(bytes.len() as u64));
        assert_eq!(set.load(kind, &name).unwrap(), bytes, "{path}");
        if bytes.len() > 200_000 {
            let (offset, length) = (70_000u64, 130_000u64);
            let range = set.load_range(kind, &name, offset, length).unwrap();
            assert_eq!(range, bytes[offset as usize..(offset + length) as usize], "{path}");
        }
        assert_eq!(set.whereabouts(kind, &name), Whereabouts::Present { size: bytes.len() as u64 });
    }
    let packs = set.list(FileKind::Pack).unwrap();
    assert_eq!(packs.len(), fx.repository_files().keys().filter(|p| p.starts_with("data/")).count());
    assert_eq!(set.list(FileKind::Config).unwrap().len(), 1);
    assert!(set.list(FileKind::Lock).unwrap().is_empty());
    assert!(set.load(FileKind::Pack, &"ab".repeat(32)).unwrap_err().is_not_found());

    // Read-only, saying so.
    let err = set.save(FileKind::Snapshot, "x", bytes::Bytes::from_static(b"x")).unwrap_err();
    assert!(matches!(err, BackendError::ReadOnly { .. }), "{err}");
    assert!(err.to_string().contains("read-only"), "{err}");
    assert!(set.remove(FileKind::Pack, &packs[0].name).is_err());
    assert!(set.create().is_err());

    let set: Arc<dyn Backend> = Arc::new(set);
    let target = fx.dir.join("restored");
    let outcome = restore(set, &target);
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert_eq!(assert_restored(&fx.source, &target, &[]), source_files(&fx.source).len());

    // The recovery keys (one per drive) open the set as well.
    let keys: Vec<DriveKey> =
        fx.set.drives.iter().map(|d| DriveKey::Recovery(d.recovery_key.parse::<RecoveryKey>().unwrap())).collect();
    let set = DriveSetBackend::open_with_keys(&fx.drives(), &keys).unwrap();
    let report = set.verify();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.bad_blocks(), 0);
}

/// Where `path`'s only part lies on drive `drive`, a block wholly inside it.
fn block_inside(fx: &Fixture, drive: usize, path: &str) -> Option<u64> {
    let reader = DriveReader::open(&fx.set.drives[drive].path, &fx.key()).unwrap();
    let manifest = reader.manifest();
    let part = manifest.files.iter().find(|p| p.path == path)?;
    let bs = u64::from(BS);
    let block = (part.stream_offset - manifest.stream_start).div_ceil(bs);
    let lo = manifest.stream_start + block * bs;
    (lo + bs <= part.stream_end()).then_some(block)
}

fn flip_byte(image: &Path, at: u64) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().read(true).write(true).open(image).unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, at).unwrap();
    file.write_all_at(&[byte[0] ^ 0x40], at).unwrap();
}

#[test]
fn a_damaged_block_fails_only_its_files_and_a_copy_fills_it() {
    let fx = fixture(2);
    // A data pack wholly on drive 0 with a block wholly inside it.
    let parts = fx.parts();
    let (pack, block) = parts[0]
        .iter()
        .filter(|(path, offset, length, size)| path.starts_with("data/") && *offset == 0 && length == size)
        .find_map(|(path, ..)| block_inside(&fx, 0, path).map(|b| (path.clone(), b)))
        .expect("a pack holding a whole block");
    flip_byte(&fx.set.drives[0].path, block_offset(BS, block).unwrap() + 1000);

    let set = Arc::new(DriveSetBackend::open(&fx.drives(), &fx.key()).unwrap());
    let (kind, name) = FileKind::of_path(&pack).unwrap();
    let err = set.load(kind, &name).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, BackendError::Unreadable { .. }), "{message}");
    for expected in [pack.as_str(), &format!("data block {block} of drive 0"), "fails authentication"] {
        assert!(message.contains(expected), "{message} lacks {expected}");
    }
    // Reads that avoid the block still work, in the same file and elsewhere.
    assert_eq!(set.load_range(kind, &name, 0, 100).unwrap(), fx.repository_files()[&pack][..100]);

    let report = set.verify();
    assert_eq!(report.bad_blocks(), 1);
    assert_eq!(report.damaged_files.len(), 1, "{report:?}");
    assert_eq!(report.damaged_files[0].path, pack);
    assert!(
        matches!(report.damaged_files[0].ranges[0].cause, DamageCause::BadBlock { drive: 0, block: b, .. } if b == block)
    );

    let target = fx.dir.join("restored");
    let outcome = restore(set.clone(), &target);
    assert!(!outcome.failures.is_empty(), "the damaged pack held data of some file");
    for failure in &outcome.failures {
        assert!(failure.reason.contains(&format!("data block {block} of drive 0")), "{failure:?}");
        assert!(failure.reason.contains(&pack), "{failure:?}");
    }
    let failed: Vec<String> = outcome.failures.iter().map(|f| f.path.clone()).collect();
    let identical = assert_restored(&fx.source, &target, &failed);
    assert!(identical > 0);
    assert_eq!(identical + failed.len(), source_files(&fx.source).len());

    // With the repository's copy behind the drives, everything is restored and the fill counted.
    let filling = Arc::new(FillingBackend::new(set, Arc::new(LocalBackend::new(&fx.staging))));
    let target = fx.dir.join("filled");
    let outcome = restore(filling.clone(), &target);
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert_restored(&fx.source, &target, &[]);
    let stats = filling.stats();
    assert_eq!(stats.files, vec![pack]);
    assert!(stats.reads >= 1 && stats.bytes > 0, "{stats:?}");
}

#[test]
fn a_drive_that_never_arrives_is_named_and_the_rest_reads() {
    // Two drives, only drive 0 given: its files read, drive 1's are named missing.
    let fx = fixture(2);
    let parts = fx.parts();
    let set = DriveSetBackend::open(&fx.drives()[..1], &fx.key()).unwrap();
    assert!(!set.is_complete());
    assert_eq!(set.absent_drives(), vec![AbsentDrives { first: 1, last: None }]);
    let files = fx.repository_files();
    let on_drive = |d: usize, path: &str| parts[d].iter().any(|p| p.0 == path);
    let mut wholly_on_1 = 0;
    for (path, bytes) in &files {
        let (kind, name) = FileKind::of_path(path).unwrap();
        if kind == FileKind::Lock {
            continue;
        }
        let whereabouts = set.whereabouts(kind, &name);
        match (on_drive(0, path), on_drive(1, path)) {
            (true, false) => {
                assert_eq!(set.load(kind, &name).unwrap(), *bytes, "{path}");
                assert_eq!(whereabouts, Whereabouts::Present { size: bytes.len() as u64 });
            }
            (true, true) => {
                let err = set.load(kind, &name).unwrap_err().to_string();
                assert!(err.contains(path) && err.contains("drive 1"), "{err}");
                let Whereabouts::Partial { missing, .. } = whereabouts else { panic!("{whereabouts:?}") };
                assert_eq!(missing.len(), 1);
                assert_eq!(missing[0].2.first, 1);
                let held = parts[0].last().unwrap().2;
                assert_eq!(set.load_range(kind, &name, 0, held).unwrap(), bytes[..held as usize]);
            }
            (false, true) => {
                wholly_on_1 += 1;
                assert!(set.load(kind, &name).unwrap_err().is_not_found());
                assert_eq!(whereabouts, Whereabouts::OnAbsentDrives(AbsentDrives { first: 1, last: None }), "{path}");
            }
            (false, false) => unreachable!(),
        }
    }
    assert!(wholly_on_1 > 0);
    assert_eq!(set.whereabouts(FileKind::Pack, "00"), Whereabouts::NotInSet, "sorts before every pack, within drive 0");
    let report = set.verify();
    assert!(!report.is_clean());
    assert_eq!(report.bad_blocks(), 0);
    assert_eq!(report.damaged_files.len(), 1, "the file continuing on drive 1");
    assert_eq!(
        report.damaged_files[0].ranges[0].cause,
        DamageCause::AbsentDrives(AbsentDrives { first: 1, last: None })
    );
}

#[test]
fn a_middle_drive_that_never_arrives_fails_only_what_it_held() {
    let fx = fixture(3);
    let given = vec![fx.drives()[0].clone(), fx.drives()[2].clone()];
    let set = Arc::new(DriveSetBackend::open(&given, &fx.key()).unwrap());
    assert_eq!(set.absent_drives(), vec![AbsentDrives { first: 1, last: Some(1) }]);
    assert_eq!(set.absent_drives()[0].to_string(), "drive 1");
    let parts = fx.parts();
    // The metadata leads the stream, so drive 0 holds all of it and the points can
    // be read without drive 1.
    for path in fx.repository_files().keys().filter(|p| !p.starts_with("data/") && !p.starts_with("locks/")) {
        assert!(parts[0].iter().any(|p| &p.0 == path && p.1 == 0 && p.2 == p.3), "{path} is not wholly on drive 0");
    }
    for (path, ..) in &parts[1] {
        let (kind, name) = FileKind::of_path(path).unwrap();
        match set.whereabouts(kind, &name) {
            Whereabouts::Partial { missing, .. } => assert!(missing.iter().all(|m| m.2.to_string() == "drive 1")),
            Whereabouts::OnAbsentDrives(drives) => assert_eq!(drives.to_string(), "drive 1"),
            other => panic!("{path}: {other:?}"),
        }
    }

    let target = fx.dir.join("restored");
    let outcome = restore(set.clone(), &target);
    assert!(!outcome.failures.is_empty());
    for failure in &outcome.failures {
        let reason = &failure.reason;
        assert!(reason.contains("drive 1") || reason.contains("missing from the repository"), "{failure:?}");
    }
    let failed: Vec<String> = outcome.failures.iter().map(|f| f.path.clone()).collect();
    // Folder listings (tree packs) lie among the packs, wherever their ids put
    // them (diskprep has no key to tell them apart): when drive 1 held the root
    // folder's, nothing can be placed and the failure says why; otherwise the
    // files of the drives that arrived are restored.
    let repo = Repository::open(Arc::new(LocalBackend::new(&fx.staging)), PASSPHRASE).unwrap();
    let tree_packs: Vec<String> =
        repo.load_index().unwrap().tree_packs().iter().map(|id| FileKind::Pack.path_of(&id.to_hex())).collect();
    let (_, snapshot) = repo.find_snapshot("latest").unwrap();
    let root_pack = repo.load_index().unwrap().get(&snapshot.tree).map(|loc| loc.pack).unwrap();
    let root_pack = FileKind::Pack.path_of(&repo.load_index().unwrap().pack(root_pack).id.to_hex());
    assert!(tree_packs.contains(&root_pack));
    if failed == ["/"] {
        // The root folder's listing was on drive 1: wholly (its pack is lost) or
        // in the part of its pack that drive 1 held.
        assert!(parts[1].iter().any(|p| p.0 == root_pack), "{:?}", outcome.failures);
        let reason = &outcome.failures[0].reason;
        assert!(reason.contains("folder's listing") || reason.contains("drive 1"), "{reason}");
    } else {
        assert!(assert_restored(&fx.source, &target, &failed) > 0);
    }

    let filling = Arc::new(FillingBackend::new(set, Arc::new(LocalBackend::new(&fx.staging))));
    let outcome = restore(filling.clone(), &fx.dir.join("filled"));
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert_restored(&fx.source, &fx.dir.join("filled"), &[]);
    let filled = filling.stats();
    assert!(!filled.files.is_empty());
    assert!(filled.files.iter().all(|f| parts[1].iter().any(|p| &p.0 == f)), "only drive 1's files: {filled:?}");
}

#[test]
fn a_wrong_key_and_a_drive_of_another_set_are_refused() {
    let fx = fixture(2);
    let (other_secret, _) = import_keys();
    match DriveSetBackend::open(&fx.drives(), &DriveKey::Import(other_secret)) {
        Err(err @ DriveSetError::WrongKey { keys: 1, .. }) => {
            assert!(err.to_string().contains(&fx.drives()[0].display().to_string()), "{err}");
            assert!(!err.to_string().contains("import key"), "an export drive's user has no import key: {err}");
        }
        other => panic!("{other:?}"),
    }
    let (other, _) = import_keys();
    let keys = [DriveKey::Import(other), fx.key()];
    assert!(DriveSetBackend::open_with_keys(&fx.drives(), &keys).is_ok(), "the second key opens them");
    let recovery = [DriveKey::Recovery(fx.set.drives[0].recovery_key.parse().unwrap())];
    match DriveSetBackend::open_with_keys(&fx.drives(), &recovery) {
        Err(DriveSetError::WrongKey { path, .. }) => {
            assert_eq!(path, fx.drives()[1].display().to_string(), "drive 0's recovery key does not open drive 1")
        }
        other => panic!("{other:?}"),
    }

    // Another preparation of the same repository is another set.
    let images = fx.dir.join("second");
    std::fs::create_dir_all(&images).unwrap();
    let plan = plan(&fx.staging, &images.join("journal.json"), x25519_dalek::PublicKey::from(&fx.secret).to_bytes());
    let second =
        prepare(&plan, &mut Images::new(&images, std::fs::metadata(&fx.drives()[0]).unwrap().len()), &|_| {}).unwrap();
    let mixed = vec![fx.drives()[0].clone(), second.drives[1].path.clone()];
    match DriveSetBackend::open(&mixed, &fx.key()) {
        Err(err @ DriveSetError::OtherSet { .. }) => {
            let message = err.to_string();
            assert!(message.contains(&second.drives[1].path.display().to_string()), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let twice = vec![fx.drives()[0].clone(), fx.drives()[0].clone()];
    assert!(matches!(DriveSetBackend::open(&twice, &fx.key()), Err(DriveSetError::SameIndex { index: 0, .. })));
    assert!(matches!(DriveSetBackend::open(&[], &fx.key()), Err(DriveSetError::NoDrives)));
}
