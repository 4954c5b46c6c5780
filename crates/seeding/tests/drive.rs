//! The drive format end to end, on small image files (4 KiB blocks): round trips over
//! a set of drives with either key, what a lost drive reveals, and every kind of
//! damage the ingest station must name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use offsite_seeding::drive::{
    block::block_offset, new_set_id, peek_header_unauthenticated, BlockProblem, DriveError, DriveKey, DriveReader,
    DriveSpec, DriveSummary, DriveTarget, DriveWriter, RecoveryKey, VerifyReport, HEADER_REGION, TAG_LEN,
};
use proptest::prelude::*;
use rand::{Rng, RngCore, SeedableRng};
use x25519_dalek::{PublicKey, StaticSecret};

const BS: u32 = 4096;
const STRIDE: u64 = BS as u64 + TAG_LEN;
const MARKER: &[u8] = b"DISTINCTIVE-CONTENT-MARKER-7f3a";
const JOB: &str = "import-job-2026-11";

struct ImportKeys {
    secret: StaticSecret,
    public: [u8; 32],
}

fn import_keys() -> ImportKeys {
    let secret = StaticSecret::random_from_rng(rand::rngs::OsRng);
    let public = PublicKey::from(&secret).to_bytes();
    ImportKeys { secret, public }
}

fn drive_size(blocks: u64) -> u64 {
    HEADER_REGION + blocks * STRIDE
}

/// A staging location's worth of files, sorted by path as diskprep gives them; one
/// of them is empty and one carries the marker several times.
fn staging_files(seed: u64) -> Vec<(String, Vec<u8>)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut random = |len: usize| {
        let mut bytes = vec![0u8; len];
        rng.fill_bytes(&mut bytes);
        bytes
    };
    let hex = |n: u8| format!("{n:02x}{}", "ab".repeat(31));
    let mut marked = random(50_000);
    for at in [0, 20_000, 49_000] {
        marked[at..at + MARKER.len()].copy_from_slice(MARKER);
    }
    let mut files = vec![
        ("config".to_string(), b"{\"format\":\"offsite-repository\",\"version\":1}".to_vec()),
        (format!("keys/{}", hex(1)), random(500)),
        (format!("data/00/{}", hex(2)), random(30_000)),
        (format!("data/3f/{}", hex(3)), marked),
        (format!("index/{}", hex(4)), random(2_000)),
        ("locks/empty-file".to_string(), Vec::new()),
        (format!("snapshots/{}", hex(5)), random(1_000)),
    ];
    files.sort();
    files
}

struct Prepared {
    drives: Vec<(DriveSummary, RecoveryKey)>,
}

/// Writes `files` onto as many image files of `blocks` blocks as needed, offering
/// `chunk` bytes at a time, moving to the next drive whenever one takes less than
/// offered (as diskprep does).
fn prepare(dir: &Path, files: &[(String, Vec<u8>)], blocks: u64, chunk: usize, import_public: [u8; 32]) -> Prepared {
    let set_id = new_set_id();
    let new_drive = |index: u32, stream_start: u64| {
        let target = DriveTarget::Image { path: dir.join(format!("drive-{index}.img")), size: drive_size(blocks) };
        let spec = DriveSpec { block_size: BS, ..DriveSpec::new(JOB, set_id, index, stream_start, import_public) };
        DriveWriter::create(&target, spec).unwrap()
    };
    let mut drives = Vec::new();
    let (mut writer, mut recovery) = new_drive(0, 0);
    let mut next_drive = |full: DriveWriter, recovery: RecoveryKey| {
        let summary = full.finish(false).unwrap();
        let next = new_drive(summary.index + 1, summary.stream_end);
        drives.push((summary, recovery));
        next
    };
    for (path, data) in files {
        if data.is_empty() {
            loop {
                match writer.write_file_part(path, 0, 0, &[]) {
                    Ok(_) => break,
                    Err(DriveError::DriveFull { .. }) => (writer, recovery) = next_drive(writer, recovery),
                    Err(e) => panic!("{e}"),
                }
            }
            continue;
        }
        let mut offset = 0;
        while offset < data.len() {
            let end = (offset + chunk).min(data.len());
            let took = writer.write_file_part(path, data.len() as u64, offset as u64, &data[offset..end]).unwrap();
            offset += took;
            if offset < end {
                (writer, recovery) = next_drive(writer, recovery);
            }
        }
    }
    let last = writer.finish(true).unwrap();
    drives.push((last, recovery));
    Prepared { drives }
}

/// Reads every drive with the key `key_for` gives it and reassembles the files.
fn read_back(prepared: &Prepared, key_for: impl Fn(usize) -> DriveKey) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for (i, (summary, _)) in prepared.drives.iter().enumerate() {
        let mut reader = DriveReader::open(&summary.path, &key_for(i)).unwrap();
        let report = collect(&mut reader, &mut files);
        assert!(report.is_clean(), "{report:?}");
    }
    files
}

/// Delivers a drive's parts into `files` (each file sized from the manifest).
fn collect(reader: &mut DriveReader, files: &mut BTreeMap<String, Vec<u8>>) -> VerifyReport {
    reader
        .verify_and_read(|part, offset, bytes| {
            let file = files.entry(part.path.clone()).or_insert_with(|| vec![0u8; part.file_size as usize]);
            file[offset as usize..offset as usize + bytes.len()].copy_from_slice(bytes);
            Ok::<(), DriveError>(())
        })
        .unwrap()
}

/// Reads a drive, checking every delivered range against the original files;
/// returns the report and the ranges delivered (path, offset, length).
fn read_checked(
    reader: &mut DriveReader,
    original: &BTreeMap<String, Vec<u8>>,
) -> (VerifyReport, Vec<(String, u64, usize)>) {
    let mut delivered = Vec::new();
    let report = reader
        .verify_and_read(|part, offset, bytes| {
            let source = &original[&part.path];
            assert!(
                source[offset as usize..offset as usize + bytes.len()] == *bytes,
                "{} at {offset} differs",
                part.path
            );
            delivered.push((part.path.clone(), offset, bytes.len()));
            Ok::<(), DriveError>(())
        })
        .unwrap();
    (report, delivered)
}

fn originals(files: &[(String, Vec<u8>)]) -> BTreeMap<String, Vec<u8>> {
    files.iter().cloned().collect()
}

fn patch(path: &Path, at: u64, bytes: &[u8]) {
    let mut image = std::fs::read(path).unwrap();
    image[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
    std::fs::write(path, image).unwrap();
}

fn flip_bit(path: &Path, at: u64) {
    let mut image = std::fs::read(path).unwrap();
    image[at as usize] ^= 0x04;
    std::fs::write(path, image).unwrap();
}

fn block_at(index: u64) -> u64 {
    block_offset(BS, index).unwrap()
}

/// One drive large enough for all of `staging_files`.
fn single_drive(dir: &Path, keys: &ImportKeys) -> (DriveSummary, Vec<(String, Vec<u8>)>) {
    let files = staging_files(1);
    let mut prepared = prepare(dir, &files, 40, 7_000, keys.public);
    assert_eq!(prepared.drives.len(), 1);
    (prepared.drives.remove(0).0, files)
}

#[test]
fn round_trip_over_two_drives_with_the_import_key() {
    let dir = tempfile::tempdir().unwrap();
    let keys = import_keys();
    let files = staging_files(1);
    let prepared = prepare(dir.path(), &files, 16, 3_000, keys.public);
    assert_eq!(prepared.drives.len(), 2, "the files need two drives of 16 blocks");
    let (first, second) = (&prepared.drives[0].0, &prepared.drives[1].0);
    assert_eq!((first.index, first.last_in_set, second.index, second.last_in_set), (0, false, 1, true));
    assert_eq!(first.set_id, second.set_id);
    assert_ne!(first.drive_id, second.drive_id);
    assert_eq!(first.stream_start, 0);
    assert_eq!(first.stream_end, second.stream_start);
    assert_eq!(second.stream_end, files.iter().map(|(_, d)| d.len() as u64).sum::<u64>());

    // One file really spans the two drives.
    let key = DriveKey::Import(keys.secret.clone());
    let last_of_first = DriveReader::open(&first.path, &key).unwrap().manifest().files.last().cloned().unwrap();
    let first_of_second = DriveReader::open(&second.path, &key).unwrap().manifest().files[0].clone();
    assert_eq!(last_of_first.path, first_of_second.path);
    assert!(!last_of_first.completes_file());
    assert_eq!(first_of_second.offset_in_file, last_of_first.end_in_file());

    let read = read_back(&prepared, |_| DriveKey::Import(keys.secret.clone()));
    assert!(read == originals(&files), "files read back differ");
}

#[test]
fn round_trip_with_each_drives_recovery_key() {
    let dir = tempfile::tempdir().unwrap();
    let keys = import_keys();
    let files = staging_files(2);
    let prepared = prepare(dir.path(), &files, 16, 10_000, keys.public);
    assert_eq!(prepared.drives.len(), 2);
    // As the customer would type it back: from its printed form.
    let read = read_back(&prepared, |i| {
        DriveKey::Recovery(prepared.drives[i].1.to_string().replace('-', " ").parse().unwrap())
    });
    assert!(read == originals(&files), "files read back differ");
}

#[test]
fn a_folder_target_holds_the_image_file() {
    let dir = tempfile::tempdir().unwrap();
    let keys = import_keys();
    let spec = DriveSpec { block_size: BS, ..DriveSpec::new(JOB, new_set_id(), 0, 0, keys.public) };
    let target = DriveTarget::Folder { path: dir.path().to_path_buf(), size: drive_size(10) };
    let (mut writer, _) = DriveWriter::create(&target, spec).unwrap();
    assert_eq!(writer.write_file_part("config", 5, 0, b"hello").unwrap(), 5);
    let summary = writer.finish(true).unwrap();
    assert_eq!(summary.path, dir.path().join("offsite-drive.img"));
    assert_eq!(std::fs::metadata(&summary.path).unwrap().len(), drive_size(10));

    let mut reader = DriveReader::open(dir.path(), &DriveKey::Import(keys.secret)).unwrap();
    let mut files = BTreeMap::new();
    assert!(collect(&mut reader, &mut files).is_clean());
    assert_eq!(files["config"], b"hello");

    let missing = DriveTarget::Folder { path: dir.path().join("nope"), size: drive_size(10) };
    let spec = DriveSpec { block_size: BS, ..DriveSpec::new(JOB, new_set_id(), 0, 0, [9; 32]) };
    assert!(matches!(DriveWriter::create(&missing, spec), Err(DriveError::Io { .. })));
}

#[test]
fn a_lost_drive_reveals_no_file_name_and_no_content() {
    let dir = tempfile::tempdir().unwrap();
    let keys = import_keys();
    let files = staging_files(3);
    let prepared = prepare(dir.path(), &files, 16, 4_000, keys.public);
    for (summary, _) in &prepared.drives {
        let image = std::fs::read(&summary.path).unwrap();
        let contains = |needle: &[u8]| image.windows(needle.len()).any(|w| w == needle);
        assert!(!contains(MARKER), "content marker found in {}", summary.path.display());
        for (path, _) in &files {
            assert!(!contains(path.as_bytes()), "{path} found in {}", summary.path.display());
            let name = path.rsplit('/').next().unwrap();
            assert!(!contains(name.as_bytes()), "{name} found in {}", summary.path.display());
        }
        for folder in ["data/", "keys/", "snapshots", "index/", "config"] {
            assert!(!contains(folder.as_bytes()), "{folder} found in {}", summary.path.display());
        }
        // What it does show, by design: the import job's name in the header.
        assert!(contains(JOB.as_bytes()));
    }
}

#[test]
fn wrong_keys_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let keys = import_keys();
    let prepared = prepare(dir.path(), &staging_files(4), 16, 4_000, keys.public);
    let path = &prepared.drives[0].0.path;

    let other_import = DriveKey::Import(import_keys().secret);
    match DriveReader::open(path, &other_import) {
        Err(DriveError::WrongKey { key: "import key", .. }) => {}
        other => panic!("{other:?}"),
    }
    // The second drive's recovery key does not open the first drive.
    let other_recovery = DriveKey::Recovery(prepared.drives[1].1.clone());
    match DriveReader::open(path, &other_recovery) {
        Err(DriveError::WrongKey { key: "recovery key", .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_flipped_bit_in_a_data_block_names_that_block_and_everything_else_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let keys = import_keys();
    let (summary, files) = single_drive(dir.path(), &keys);
    let bad = 4;
    flip_bit(&summary.path, block_at(bad) + 1234);

    let mut reader = DriveReader::open(&summary.path, &DriveKey::Import(keys.secret)).unwrap();
    let (report, delivered) = read_checked(&mut reader, &originals(&files));
    assert_eq!(report.bad_blocks.len(), 1, "{report:?}");
    assert_eq!(report.bad_blocks[0].index, bad);
    assert_eq!(report.bad_blocks[0].problem, BlockProblem::Tampered);
    assert_eq!(report.good_blocks, report.data_blocks - 1);

    // Delivered and affected ranges together cover every byte of every file once.
    let affected: u64 = report.bad_blocks[0].affects.iter().map(|r| r.length).sum();
    assert_eq!(affected, u64::from(BS), "block {bad} lies inside the stream, so it held a whole block");
    let total: u64 = files.iter().map(|(_, d)| d.len() as u64).sum();
    assert_eq!(report.bytes_delivered + affected, total);
    for range in &report.bad_blocks[0].affects {
        assert!(!delivered.iter().any(|(p, o, l)| *p == range.path
            && *o < range.offset_in_file + range.length
            && range.offset_in_file < *o + *l as u64));
    }
    // The empty file is still delivered.
    assert!(delivered.iter().any(|(p, _, l)| p == "locks/empty-file" && *l == 0));
}

#[test]
fn a_changed_header_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let keys = import_keys();
    let (summary, _) = single_drive(dir.path(), &keys);
    let key = DriveKey::Import(keys.secret);
    let pristine = std::fs::read(&summary.path).unwrap();
    let body_len = u32::from_le_bytes(pristine[20..24].try_into().unwrap()) as u64;

    // A flipped bit in the body (the import job's first character): the checksum says so.
    flip_bit(&summary.path, 24 + 16 + 16 + 1);
    match DriveReader::open(&summary.path, &key) {
        Err(DriveError::HeaderDamaged { reason, .. }) => assert!(reason.contains("checksum"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // Changed on purpose, with the checksum recomputed: the MAC says so.
    let mut forged = pristine.clone();
    forged[24 + 16 + 16 + 1] = b'X';
    let checksum = blake3::hash(&forged[..24 + body_len as usize]);
    forged[24 + body_len as usize..56 + body_len as usize].copy_from_slice(checksum.as_bytes());
    std::fs::write(&summary.path, &forged).unwrap();
    match DriveReader::open(&summary.path, &key) {
        Err(DriveError::HeaderDamaged { reason, .. }) => assert!(reason.contains("MAC"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // A flipped bit in the MAC itself.
    std::fs::write(&summary.path, &pristine).unwrap();
    flip_bit(&summary.path, 56 + body_len + 3);
    assert!(matches!(DriveReader::open(&summary.path, &key), Err(DriveError::HeaderDamaged { .. })));
}

#[test]
fn a_flipped_bit_in_the_manifest_is_named_and_the_kept_copy_reads_the_drive() {
    let dir = tempfile::tempdir().unwrap();
    let keys = import_keys();
    let (summary, files) = single_drive(dir.path(), &keys);
    let key = DriveKey::Import(keys.secret);
    flip_bit(&summary.path, block_at(summary.data_blocks) + 10);
    match DriveReader::open(&summary.path, &key) {
        Err(DriveError::ManifestDamaged { reason, .. }) => {
            assert!(reason.contains(&format!("block {}", summary.data_blocks)), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    let mut reader = DriveReader::open_with_manifest(&summary.path, &key, &summary.sealed_manifest).unwrap();
    let mut read = BTreeMap::new();
    assert!(collect(&mut reader, &mut read).is_clean());
    assert!(read == originals(&files), "files read back differ");

    // A copy that is not this drive's manifest is refused too.
    let mut bad_copy = summary.sealed_manifest.clone();
    bad_copy[5] ^= 1;
    assert!(matches!(
        DriveReader::open_with_manifest(&summary.path, &key, &bad_copy),
        Err(DriveError::ManifestDamaged { .. })
    ));
    assert!(matches!(
        DriveReader::open_with_manifest(&summary.path, &key, &bad_copy[1..]),
        Err(DriveError::ManifestDamaged { .. })
    ));
}

#[test]
fn a_data_block_passed_off_as_manifest_fails() {
    let dir = tempfile::tempdir().unwrap();
    let keys = import_keys();
    let (summary, _) = single_drive(dir.path(), &keys);
    // Put data block 0 where the manifest's first block is.
    let image = std::fs::read(&summary.path).unwrap();
    let block0 = image[block_at(0) as usize..(block_at(0) + STRIDE) as usize].to_vec();
    patch(&summary.path, block_at(summary.data_blocks), &block0);
    assert!(matches!(
        DriveReader::open(&summary.path, &DriveKey::Import(keys.secret)),
        Err(DriveError::ManifestDamaged { .. })
    ));
}

#[test]
fn a_block_copied_from_another_drive_of_the_job_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let keys = import_keys();
    let prepared = prepare(dir.path(), &staging_files(5), 16, 4_000, keys.public);
    let (a, b) = (&prepared.drives[0].0, &prepared.drives[1].0);
    let k = 2;
    // Block k of the other drive, at the same index: only the drive binding differs.
    let other = std::fs::read(&b.path).unwrap();
    patch(&a.path, block_at(k), &other[block_at(k) as usize..(block_at(k) + STRIDE) as usize]);

    let mut reader = DriveReader::open(&a.path, &DriveKey::Import(keys.secret)).unwrap();
    let report = collect(&mut reader, &mut BTreeMap::new());
    let named: Vec<_> = report.bad_blocks.iter().map(|b| (b.index, b.problem.clone())).collect();
    assert_eq!(named, vec![(k, BlockProblem::Tampered)]);
}

#[test]
fn swapped_blocks_are_both_named() {
    let dir = tempfile::tempdir().unwrap();
    let keys = import_keys();
    let (summary, _) = single_drive(dir.path(), &keys);
    let image = std::fs::read(&summary.path).unwrap();
    let block = |i: u64| image[block_at(i) as usize..(block_at(i) + STRIDE) as usize].to_vec();
    let (one, three) = (block(1), block(3));
    patch(&summary.path, block_at(1), &three);
    patch(&summary.path, block_at(3), &one);

    let mut reader = DriveReader::open(&summary.path, &DriveKey::Import(keys.secret)).unwrap();
    let report = collect(&mut reader, &mut BTreeMap::new());
    let named: Vec<_> = report.bad_blocks.iter().map(|b| (b.index, b.problem.clone())).collect();
    assert_eq!(named, vec![(1, BlockProblem::Tampered), (3, BlockProblem::Tampered)]);
    assert!(report.bad_blocks.iter().all(|b| !b.affects.is_empty()));
}

#[test]
fn a_truncated_drive_is_named_and_its_missing_blocks_listed() {
    let dir = tempfile::tempdir().unwrap();
    let keys = import_keys();
    let (summary, files) = single_drive(dir.path(), &keys);
    let key = DriveKey::Import(keys.secret);
    // Cut in the middle of data block 5: blocks 5.. and the manifest are gone.
    let file = std::fs::OpenOptions::new().write(true).open(&summary.path).unwrap();
    file.set_len(block_at(5) + 100).unwrap();
    drop(file);

    match DriveReader::open(&summary.path, &key) {
        Err(DriveError::Truncated { what: "manifest", size, .. }) => assert_eq!(size, block_at(5) + 100),
        other => panic!("{other:?}"),
    }
    let mut reader = DriveReader::open_with_manifest(&summary.path, &key, &summary.sealed_manifest).unwrap();
    let (report, _) = read_checked(&mut reader, &originals(&files));
    let missing: Vec<u64> = report.bad_blocks.iter().map(|b| b.index).collect();
    assert_eq!(missing, (5..summary.data_blocks).collect::<Vec<_>>());
    assert!(report.bad_blocks.iter().all(|b| b.problem == BlockProblem::Missing));
    assert_eq!(report.good_blocks, 5);
    assert_eq!(report.bytes_delivered, 5 * u64::from(BS));

    // A header cut short.
    let file = std::fs::OpenOptions::new().write(true).open(&summary.path).unwrap();
    file.set_len(100).unwrap();
    drop(file);
    assert!(matches!(DriveReader::open(&summary.path, &key), Err(DriveError::Truncated { what: "header", .. })));
}

#[test]
fn not_a_drive_and_newer_versions_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let keys = import_keys();
    let (summary, _) = single_drive(dir.path(), &keys);
    let key = DriveKey::Import(keys.secret);
    let pristine = std::fs::read(&summary.path).unwrap();

    patch(&summary.path, 0, b"NTFS");
    assert!(matches!(DriveReader::open(&summary.path, &key), Err(DriveError::NotADrive { .. })));
    assert!(matches!(peek_header_unauthenticated(&summary.path), Err(DriveError::NotADrive { .. })));

    std::fs::write(&summary.path, &pristine).unwrap();
    patch(&summary.path, 16, &2u32.to_le_bytes());
    match DriveReader::open(&summary.path, &key) {
        Err(DriveError::NewerFormat { found: 2, supported: 1, .. }) => {}
        other => panic!("{other:?}"),
    }

    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "just a file").unwrap();
    assert!(matches!(DriveReader::open(&text, &key), Err(DriveError::NotADrive { .. })));
    let empty = dir.path().join("empty.img");
    std::fs::write(&empty, "").unwrap();
    assert!(matches!(DriveReader::open(&empty, &key), Err(DriveError::NotADrive { .. })));
}

#[test]
fn peek_shows_the_public_header_and_its_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let keys = import_keys();
    let prepared = prepare(dir.path(), &staging_files(6), 16, 4_000, keys.public);
    for (summary, _) in &prepared.drives {
        let info = peek_header_unauthenticated(&summary.path).unwrap();
        assert_eq!(
            (info.drive_id, info.set_id, info.import_job.as_str(), info.index, info.finished),
            (summary.drive_id, summary.set_id, JOB, summary.index, true)
        );
        assert_eq!(info.data_blocks, summary.data_blocks);
        assert_eq!(info.fingerprint, summary.fingerprint);
        let reader = DriveReader::open(&summary.path, &DriveKey::Import(keys.secret.clone())).unwrap();
        assert_eq!(reader.fingerprint(), summary.fingerprint);
        assert_eq!(reader.header().drive_id, summary.drive_id);
    }
}

#[test]
fn an_unfinished_drive_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let keys = import_keys();
    let target = DriveTarget::Image { path: dir.path().join("d.img"), size: drive_size(10) };
    let spec = DriveSpec { block_size: BS, ..DriveSpec::new(JOB, new_set_id(), 0, 0, keys.public) };
    let (mut writer, recovery) = DriveWriter::create(&target, spec).unwrap();
    writer.write_file_part("config", 9000, 0, &[1u8; 9000]).unwrap();
    drop(writer); // interrupted before finish()

    assert!(!peek_header_unauthenticated(target.file_path()).unwrap().finished);
    assert!(matches!(
        DriveReader::open(target.file_path(), &DriveKey::Recovery(recovery)),
        Err(DriveError::NotFinished { .. })
    ));
}

#[test]
fn a_drive_too_small_is_refused_with_the_size_needed() {
    let dir = tempfile::tempdir().unwrap();
    let keys = import_keys();
    let spec = DriveSpec { block_size: BS, ..DriveSpec::new(JOB, new_set_id(), 0, 0, keys.public) };
    let target = DriveTarget::Image { path: dir.path().join("d.img"), size: drive_size(2) };
    let needed = match DriveWriter::create(&target, spec.clone()) {
        Err(e @ DriveError::DriveTooSmall { .. }) => {
            assert!(e.to_string().contains("needs at least"), "{e}");
            let DriveError::DriveTooSmall { needed, size, .. } = e else { unreachable!() };
            assert_eq!(size, drive_size(2));
            needed
        }
        other => panic!("{other:?}"),
    };
    assert!(!target.file_path().exists(), "a refused image is not created");
    let target = DriveTarget::Image { path: dir.path().join("d.img"), size: needed };
    DriveWriter::create(&target, spec).unwrap();
}

#[test]
fn bad_specs_and_misuse_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let keys = import_keys();
    let target = DriveTarget::Image { path: dir.path().join("d.img"), size: drive_size(20) };
    let spec = DriveSpec { block_size: BS, ..DriveSpec::new(JOB, new_set_id(), 0, 0, keys.public) };
    for bad in [
        DriveSpec { import_job: "x".repeat(65), ..spec.clone() },
        DriveSpec { import_job: String::new(), ..spec.clone() },
        DriveSpec { block_size: 1000, ..spec.clone() },
        DriveSpec { block_size: 128 * 1024 * 1024, ..spec.clone() },
        DriveSpec { import_public_key: [0; 32], ..spec.clone() },
    ] {
        assert!(matches!(DriveWriter::create(&target, bad), Err(DriveError::InvalidSpec(_))));
    }

    let (mut writer, _) = DriveWriter::create(&target, spec).unwrap();
    for path in ["/etc/passwd", "../x", "a//b", "a/./b", ""] {
        assert!(matches!(writer.write_file_part(path, 1, 0, b"x"), Err(DriveError::BadPath { .. })), "{path}");
    }
    assert!(matches!(writer.write_file_part("a", 5, 0, b"too long"), Err(DriveError::OutOfOrder(_))));
    assert!(matches!(writer.write_file_part("a", 10, 3, b"x"), Err(DriveError::OutOfOrder(_))), "first drive");
    assert_eq!(writer.write_file_part("a", 10, 0, b"01234").unwrap(), 5);
    assert!(matches!(writer.write_file_part("a", 10, 6, b"x"), Err(DriveError::OutOfOrder(_))), "gap");
    assert!(matches!(writer.write_file_part("b", 1, 0, b"x"), Err(DriveError::OutOfOrder(_))), "a incomplete");
    assert_eq!(writer.write_file_part("a", 10, 5, b"56789").unwrap(), 5);
    assert_eq!(writer.write_file_part("b", 3, 0, b"bb").unwrap(), 2);
    assert!(matches!(writer.finish(true), Err(DriveError::OutOfOrder(_))), "the set cannot end inside b");
}

#[test]
fn a_drive_may_start_inside_a_file_but_only_with_its_first_part() {
    let dir = tempfile::tempdir().unwrap();
    let keys = import_keys();
    let target = DriveTarget::Image { path: dir.path().join("d.img"), size: drive_size(20) };
    let spec = DriveSpec { block_size: BS, ..DriveSpec::new(JOB, new_set_id(), 1, 1000, keys.public) };
    let (mut writer, _) = DriveWriter::create(&target, spec).unwrap();
    assert_eq!(writer.write_file_part("a", 1500, 1000, &[5u8; 500]).unwrap(), 500);
    assert!(matches!(writer.write_file_part("b", 10, 5, b"x"), Err(DriveError::OutOfOrder(_))));
    assert!(matches!(writer.write_file_part("a", 1500, 1500, b""), Ok(0)));
    assert!(matches!(writer.write_file_part("c", 0, 0, b""), Ok(0)));
    assert!(matches!(writer.write_file_part("c", 0, 0, b""), Ok(0)), "repeating an empty file is harmless");
    let summary = writer.finish(true).unwrap();
    assert_eq!((summary.stream_start, summary.stream_end), (1000, 1500));

    let mut reader = DriveReader::open(&summary.path, &DriveKey::Import(keys.secret)).unwrap();
    let mut got = Vec::new();
    let report = reader
        .verify_and_read(|part, offset, bytes| {
            got.push((part.path.clone(), offset, bytes.to_vec()));
            Ok::<(), DriveError>(())
        })
        .unwrap();
    assert!(report.is_clean());
    assert_eq!(got, vec![("a".to_string(), 1000, vec![5u8; 500]), ("c".to_string(), 0, Vec::new())]);
}

#[test]
fn a_sink_error_stops_reading_and_is_returned() {
    let dir = tempfile::tempdir().unwrap();
    let keys = import_keys();
    let (summary, _) = single_drive(dir.path(), &keys);
    let mut reader = DriveReader::open(&summary.path, &DriveKey::Import(keys.secret)).unwrap();
    let mut calls = 0;
    let result = reader.verify_and_read(|_, _, _| {
        calls += 1;
        if calls == 3 {
            Err("upload failed")
        } else {
            Ok(())
        }
    });
    assert_eq!(result, Err("upload failed"));
    assert_eq!(calls, 3);
}

#[test]
fn filling_drives_to_the_brim_never_fails_at_finish() {
    // Many small files with long paths make the manifest grow as fast as the data.
    let dir = tempfile::tempdir().unwrap();
    let keys = import_keys();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut files: Vec<(String, Vec<u8>)> = (0..300)
        .map(|n| {
            let path = format!("data/{n:04}/{}", "p".repeat(rng.gen_range(1..2000)));
            let mut bytes = vec![0u8; rng.gen_range(0..3000)];
            rng.fill_bytes(&mut bytes);
            (path, bytes)
        })
        .collect();
    files.sort();
    let prepared = prepare(dir.path(), &files, 12, 1_000, keys.public);
    assert!(prepared.drives.len() > 3);
    for (summary, _) in &prepared.drives {
        assert!(summary.bytes_used <= drive_size(12));
    }
    let read = read_back(&prepared, |_| DriveKey::Import(keys.secret.clone()));
    assert!(read == originals(&files), "files read back differ");
}

/// A valid two-file image and its import key, built once for the fuzz tests.
fn sample_image() -> &'static (Vec<u8>, [u8; 32]) {
    static SAMPLE: OnceLock<(Vec<u8>, [u8; 32])> = OnceLock::new();
    SAMPLE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let keys = import_keys();
        let files = vec![("a/one".to_string(), vec![1u8; 9_000]), ("b/two".to_string(), vec![2u8; 5_000])];
        let prepared = prepare(dir.path(), &files, 12, 4_000, keys.public);
        (std::fs::read(&prepared.drives[0].0.path).unwrap(), keys.secret.to_bytes())
    })
}

/// Opens and reads an image with the sample's import key; must never panic.
fn try_everything(dir: &Path, image: &[u8]) -> Result<VerifyReport, DriveError> {
    let path: PathBuf = dir.join("fuzz.img");
    std::fs::write(&path, image).unwrap();
    let _ = peek_header_unauthenticated(&path);
    let key = DriveKey::Import(StaticSecret::from(sample_image().1));
    let mut reader = DriveReader::open(&path, &key)?;
    reader.verify_and_read(|_, _, _| Ok::<(), DriveError>(()))
}

fn with_valid_checksum(mut image: Vec<u8>) -> Vec<u8> {
    if image.len() >= 24 {
        let body_len = u32::from_le_bytes(image[20..24].try_into().unwrap()) as usize;
        if let Some(end) = 24usize.checked_add(body_len).filter(|end| end + 32 <= image.len()) {
            let checksum = blake3::hash(&image[..end]);
            image[end..end + 32].copy_from_slice(checksum.as_bytes());
        }
    }
    image
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..70_000)) {
        let dir = tempfile::tempdir().unwrap();
        prop_assert!(try_everything(dir.path(), &bytes).is_err());
    }

    /// Garbage behind a valid magic, version and checksum reaches the body decoder.
    #[test]
    fn garbage_headers_never_panic(body_len in 0u32..70_000, body in proptest::collection::vec(any::<u8>(), 0..600), tail in 0usize..80_000) {
        let dir = tempfile::tempdir().unwrap();
        let mut image = b"OFFSITE-DRIVE\0\0\0".to_vec();
        image.extend_from_slice(&1u32.to_le_bytes());
        image.extend_from_slice(&body_len.to_le_bytes());
        image.extend_from_slice(&body);
        image.resize(image.len() + tail, 0);
        prop_assert!(try_everything(dir.path(), &with_valid_checksum(image)).is_err());
    }

    #[test]
    fn mutated_images_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        header_flips in proptest::collection::vec((0usize..400, any::<u8>()), 0..4),
        fix_checksum in any::<bool>(),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut image = sample_image().0.clone();
        for (at, value) in flips {
            let i = at.index(image.len());
            image[i] = value;
        }
        for (at, value) in header_flips {
            image[at] ^= value;
        }
        if fix_checksum {
            image = with_valid_checksum(image);
        }
        if let Some(cut) = cut {
            image.truncate(cut.index(image.len()));
        }
        // Either refused, or read with a report: both fine, as long as nothing panics.
        let _ = try_everything(dir.path(), &image);
    }
}
