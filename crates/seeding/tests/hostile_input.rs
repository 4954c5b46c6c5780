//! Hostile input to the seeding parsers: drive images (header, key slots,
//! manifest, blocks) that are random or corrupted, the diskprep journal and its
//! side files, `OfflineApplicationParams.xml`, certificate files and recovery
//! keys. None may panic; each answers with its typed error; a small input that
//! claims a huge size is refused without allocating it (the binary counts
//! allocations to prove it).
//!
//! `PROPTEST_CASES` raises the number of inputs per parser (the soak sets it).

mod common;

use std::path::Path;
use std::sync::OnceLock;

use common::*;
use offsite_api::files::XmlCredentialFile;
use offsite_seeding::application::{read_certificate, ApplicationError, OfflineApplicationParams};
use offsite_seeding::diskprep::journal::{digests_path, read_digests, Journal};
use offsite_seeding::diskprep::{prepare, resume, DiskprepError};
use offsite_seeding::drive::block::{block_offset, BlockCipher, BlockKind};
use offsite_seeding::drive::{
    new_set_id, peek_header_unauthenticated, DriveError, DriveHeader, DriveKey, DriveReader, DriveSpec, DriveTarget,
    DriveWriter, ManifestLocation, RecoveryKey, HEADER_REGION, MAX_MANIFEST_PARTS, TAG_LEN,
};
use offsite_testbed::allocation::{cases, is_counting, peak_during, CountingAllocator};
use proptest::prelude::*;
use x25519_dalek::StaticSecret;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn assert_bounded(what: &str, len: usize, peak: u64) {
    assert!(is_counting(), "this binary must count allocations");
    // The header region, one block, the manifest (at most what the image holds),
    // and a fixed allowance.
    let bound = 2 * 1024 * 1024 + 4 * len as u64;
    assert!(peak <= bound, "{what}: {peak} bytes allocated for a {len}-byte input");
}

/// A small finished drive of 64 KiB blocks and the key that opens it.
fn sample() -> &'static (Vec<u8>, [u8; 32]) {
    static SAMPLE: OnceLock<(Vec<u8>, [u8; 32])> = OnceLock::new();
    SAMPLE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join("staging");
        make_staging(&staging, 5, 10_000);
        // Keep it small: drop the large files.
        for entry in std::fs::read_dir(staging.join("data")).unwrap() {
            let folder = entry.unwrap().path();
            if !folder.is_dir() {
                continue;
            }
            for file in std::fs::read_dir(&folder).unwrap() {
                let file = file.unwrap().path();
                if file.metadata().unwrap().len() > 100_000 {
                    std::fs::remove_file(file).unwrap();
                }
            }
        }
        let (secret, public) = import_keys();
        let set = prepare(
            &plan(&staging, &dir.path().join("j.json"), public),
            &mut Images::new(dir.path(), 4 << 20),
            &|_| {},
        )
        .unwrap();
        assert_eq!(set.drives.len(), 1);
        (std::fs::read(&set.drives[0].path).unwrap(), secret.to_bytes())
    })
}

/// Everything the ingest station does with an image, with its allocation measured.
fn open_and_read(dir: &Path, image: &[u8]) -> Result<u64, DriveError> {
    let path = dir.join("hostile.img");
    std::fs::write(&path, image).unwrap();
    let shown = path.display().to_string();
    let key = DriveKey::Import(StaticSecret::from(sample().1));
    let (peeked, peak) = peak_during(|| peek_header_unauthenticated(&path).map(drop));
    assert_bounded("peek", image.len(), peak);
    let (result, peak) = peak_during(|| -> Result<u64, DriveError> {
        let mut reader = DriveReader::open(&path, &key)?;
        let report = reader.verify_and_read(|_, _, _| Ok::<(), DriveError>(()))?;
        Ok(report.good_blocks)
    });
    // Beyond the bound, the reader holds one block and what the image holds.
    assert_bounded("open and read", image.len(), peak);
    let errors = [peeked.err().map(|e| e.to_string()), result.as_ref().err().map(|e| e.to_string())];
    for text in errors.into_iter().flatten() {
        assert!(text.contains(&shown), "an error that does not name the drive: {text}");
    }
    result
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

/// A header body claiming `count` elements or bytes where a length goes, behind a
/// valid magic, version and checksum: the decoder must refuse it without
/// allocating what it claims.
#[test]
fn header_bodies_claiming_huge_lengths_are_refused_without_allocating() {
    let dir = tempfile::tempdir().unwrap();
    for claim in [&[0xFF, 0xFF, 0xFF, 0xFF, 0x0F][..], &[0xFF; 10][..], &[0x80, 0x80, 0x80, 0x80, 0x01][..]] {
        let mut body = vec![1u8; 32]; // drive id and set id
        body.extend_from_slice(claim); // the import job's length
        body.extend_from_slice(b"job");
        let mut image = b"OFFSITE-DRIVE\0\0\0".to_vec();
        image.extend_from_slice(&1u32.to_le_bytes());
        image.extend_from_slice(&(body.len() as u32).to_le_bytes());
        image.extend_from_slice(&body);
        image.resize(HEADER_REGION as usize + 10, 0);
        let image = with_valid_checksum(image);
        match open_and_read(dir.path(), &image) {
            Err(DriveError::HeaderDamaged { reason, .. }) => assert!(reason.contains("decode"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_sample_drive_reads_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = open_and_read(dir.path(), &sample().0).unwrap();
    assert!(blocks > 0);
}

/// What a customer holding a drive key can make: a finished drive whose manifest is
/// whatever `encode` returns for its header, sealed under the drive key (so it
/// authenticates), with no data blocks.
fn drive_with_manifest(dir: &Path, encode: impl FnOnce(&DriveHeader) -> Vec<u8>) -> (std::path::PathBuf, DriveKey) {
    use std::os::unix::fs::FileExt;
    let (secret, public) = import_keys();
    let path = dir.join("signed-by-its-customer.img");
    let target = DriveTarget::Image { path: path.clone(), size: 8 << 20 };
    let spec = DriveSpec { block_size: BS, ..DriveSpec::new(JOB, new_set_id(), 0, 0, public) };
    let (writer, _recovery) = DriveWriter::create(&target, spec).unwrap();
    let drive_key = writer.drive_key();
    writer.finish(true).unwrap();
    let key = DriveKey::Import(secret);
    let mut header = DriveReader::open(&path, &key).unwrap().header().clone();

    let encoded = encode(&header);
    let block_count = (encoded.len() as u64).div_ceil(u64::from(BS));
    header.capacity_blocks = block_count;
    header.manifest = ManifestLocation { first_block: 0, block_count, byte_length: encoded.len() as u64 };
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(HEADER_REGION + block_count * (u64::from(BS) + TAG_LEN)).unwrap();
    let cipher = BlockCipher::new(&drive_key, header.drive_id, header.set_id, BS);
    let mut block = vec![0u8; cipher.stride()];
    for (k, chunk) in encoded.chunks(BS as usize).enumerate() {
        block[..chunk.len()].copy_from_slice(chunk);
        block[chunk.len()..].fill(0);
        cipher.seal(k as u64, BlockKind::Manifest, &mut block).unwrap();
        file.write_all_at(&block, block_offset(BS, k as u64).unwrap()).unwrap();
    }
    let (region, _fingerprint) = header.encode_region(&drive_key).unwrap();
    file.write_all_at(&region, 0).unwrap();
    (path, key)
}

/// A postcard varint, as the manifest's numbers and lengths are written.
fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A customer controls its drive key, so it can sign a manifest of millions of
/// tiny entries (4 million empty files: 44 MB on the drive, 477 MB at peak once
/// decoded). The station refuses it, naming the drive, while holding little more
/// than the header and one block.
#[test]
fn an_authenticated_manifest_of_millions_of_tiny_entries_is_refused_within_a_small_bound() {
    let dir = tempfile::tempdir().unwrap();
    let entries: u64 = 4_000_000;
    assert!(entries > MAX_MANIFEST_PARTS);
    let (path, key) = drive_with_manifest(dir.path(), |header| {
        let mut m = Vec::with_capacity(48 << 20);
        varint(&mut m, 1);
        m.extend_from_slice(&header.drive_id);
        m.extend_from_slice(&header.set_id);
        varint(&mut m, header.import_job.len() as u64);
        m.extend_from_slice(header.import_job.as_bytes());
        varint(&mut m, u64::from(header.index));
        m.push(1); // the last drive of its set
        varint(&mut m, 0); // stream_start
        varint(&mut m, 0); // stream_end
        varint(&mut m, entries);
        for n in 0..entries {
            let name = format!("{n:x}");
            varint(&mut m, name.len() as u64);
            m.extend_from_slice(name.as_bytes());
            // An empty file: size, offset in the file, length, stream offset.
            m.extend_from_slice(&[0, 0, 0, 0]);
        }
        varint(&mut m, 0); // no block digests
        m
    });
    assert!(std::fs::metadata(&path).unwrap().len() > 40_000_000);

    let (result, peak) = peak_during(|| DriveReader::open(&path, &key).map(drop));
    assert!(is_counting(), "this binary must count allocations");
    let shown = path.display().to_string();
    match result {
        Err(err @ DriveError::ManifestTooLarge { .. }) => {
            let text = err.to_string();
            assert!(text.contains(&shown) && text.contains("4000000 file parts"), "{text}");
        }
        other => panic!("a manifest of {entries} entries: {other:?}"),
    }
    // The header region, one 64 KiB block and their bookkeeping.
    assert!(peak <= 1 << 20, "{peak} bytes allocated to refuse the manifest");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(48)))]

    #[test]
    fn random_images_are_refused_by_name(bytes in proptest::collection::vec(any::<u8>(), 0..70_000), magic in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = bytes;
        if magic && bytes.len() >= 24 {
            bytes[..16].copy_from_slice(b"OFFSITE-DRIVE\0\0\0");
            bytes[16..20].copy_from_slice(&1u32.to_le_bytes());
        }
        let bytes = with_valid_checksum(bytes);
        match open_and_read(dir.path(), &bytes) {
            Err(DriveError::NotADrive { .. } | DriveError::NewerFormat { .. } | DriveError::HeaderDamaged { .. } | DriveError::Truncated { .. } | DriveError::WrongKey { .. }) => {}
            other => prop_assert!(false, "random image: {:?}", other),
        }
    }

    #[test]
    fn corrupted_images_never_panic_and_stay_bounded(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        in_header in proptest::collection::vec((0usize..600, any::<u8>()), 0..4),
        fix_checksum in any::<bool>(),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut image = sample().0.clone();
        for (at, value) in edits {
            let i = at.index(image.len());
            image[i] ^= value | 1;
        }
        for (at, value) in in_header {
            image[at] ^= value;
        }
        if fix_checksum {
            image = with_valid_checksum(image);
        }
        if let Some(cut) = cut {
            image.truncate(cut.index(image.len()));
        }
        // Refused naming the drive, or read with a report; never a panic.
        let _ = open_and_read(dir.path(), &image);
    }

    #[test]
    fn offline_application_params_and_certificates_are_refused_by_name(
        bytes in proptest::collection::vec(any::<u8>(), 0..3000),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
    ) {
        let (r, peak) = peak_during(|| read_certificate(&bytes).map(drop));
        assert_bounded("certificate", bytes.len(), peak);
        if let Err(e) = r {
            prop_assert!(matches!(e, ApplicationError::NotACertificate(_)));
        }
        let text = String::from_utf8_lossy(&bytes);
        let (r, peak) = peak_during(|| OfflineApplicationParams::parse(&text).map(drop));
        assert_bounded("OfflineApplicationParams.xml", text.len(), peak);
        if let Err(e) = r {
            prop_assert!(!e.is_empty());
        }
        let mut valid = params_xml().into_bytes();
        for (at, value) in edits {
            let i = at.index(valid.len());
            valid[i] = value;
        }
        let _ = OfflineApplicationParams::parse(&String::from_utf8_lossy(&valid));
        if let Err(e) = String::from_utf8_lossy(&bytes).parse::<RecoveryKey>() {
            prop_assert!(e.to_string().contains("recovery key"), "{}", e);
        }
    }
}

fn params_xml() -> String {
    OfflineApplicationParams {
        service: offsite_api::files::ServiceEndpoint {
            url: "https://backup.example".into(),
            fingerprint: "ab".repeat(32),
        },
        subscription_id: "sub_1".into(),
        application_id: "app_1".into(),
        cert_thumbprint: "AB".repeat(32),
        storage_account: Some("acct".into()),
    }
    .to_xml()
}

/// A preparation stopped after its first drive: the journal to mutate.
struct Stopped {
    dir: tempfile::TempDir,
    journal: serde_json::Value,
}

fn stopped() -> Stopped {
    let dir = tempfile::tempdir().unwrap();
    let staging = dir.path().join("staging");
    make_staging(&staging, 9, 600_000);
    let (_, public) = import_keys();
    let journal = dir.path().join("j.json");
    let mut images = Images::new(dir.path(), 2 << 20);
    images.stop_at_call = Some(1);
    let err = prepare(&plan(&staging, &journal, public), &mut images, &|_| {}).unwrap_err();
    assert!(matches!(err, DiskprepError::Stopped { .. }), "{err}");
    let value = serde_json::from_slice(&std::fs::read(&journal).unwrap()).unwrap();
    Stopped { dir, journal: value }
}

/// Values that break assumptions: zero, one, the largest, and past them.
fn extreme() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(serde_json::json!(0)),
        Just(serde_json::json!(1)),
        Just(serde_json::json!(u32::MAX)),
        Just(serde_json::json!(u64::MAX)),
        Just(serde_json::json!(u64::MAX / 2)),
        Just(serde_json::json!(-1)),
        Just(serde_json::json!("zz")),
        Just(serde_json::json!(null)),
        Just(serde_json::json!([])),
        (0u64..10_000_000).prop_map(|n| serde_json::json!(n)),
    ]
}

/// Every leaf of a JSON value, as a JSON pointer.
fn leaves(value: &serde_json::Value, at: String, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => map.iter().for_each(|(k, v)| leaves(v, format!("{at}/{k}"), out)),
        serde_json::Value::Array(items) => {
            items.iter().enumerate().for_each(|(i, v)| leaves(v, format!("{at}/{i}"), out))
        }
        _ => out.push(at),
    }
}

fn shared_stopped() -> &'static std::sync::Mutex<Stopped> {
    static STOPPED: OnceLock<std::sync::Mutex<Stopped>> = OnceLock::new();
    STOPPED.get_or_init(|| std::sync::Mutex::new(stopped()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(32)))]

    /// A journal with one field set to an extreme value (or its text mangled): resume
    /// refuses it as damaged, or finishes the set; it never panics.
    #[test]
    fn edited_journals_are_refused_by_name_or_resumed(
        field in any::<prop::sample::Index>(),
        value in extreme(),
        mangle in proptest::option::of((any::<prop::sample::Index>(), any::<u8>())),
    ) {
        let stopped = shared_stopped().lock().unwrap_or_else(|e| e.into_inner());
        let run = tempfile::tempdir_in(stopped.dir.path()).unwrap();
        let mut journal = stopped.journal.clone();
        let mut fields = Vec::new();
        leaves(&journal, String::new(), &mut fields);
        let pointer = &fields[field.index(fields.len())];
        *journal.pointer_mut(pointer).unwrap() = value.clone();
        let mut text = serde_json::to_vec_pretty(&journal).unwrap();
        if let Some((at, byte)) = mangle {
            let i = at.index(text.len());
            text[i] = byte;
        }
        let path = run.path().join("j.json");
        std::fs::write(&path, &text).unwrap();
        // The side files of the original journal, next to the copy.
        let original = stopped.dir.path().join("j.json");
        for side in ["listing", "manifest-0", "digests-1"] {
            let from = original.with_extension(format!("json.{side}"));
            if from.exists() {
                std::fs::copy(&from, path.with_extension(format!("json.{side}"))).unwrap();
            }
        }
        let (result, peak) = peak_during(|| resume(&path, &mut Images::new(run.path(), 2 << 20), &|_| {}));
        prop_assert!(peak < 64 << 20, "{} bytes", peak);
        match result {
            Ok(set) => prop_assert!(!set.drives.is_empty()),
            Err(DiskprepError::JournalDamaged { path: named, reason }) => {
                prop_assert_eq!(named, path.clone(), "{}", reason);
            }
            Err(other) => {
                // Other refusals name their problem too (a changed staging location,
                // a drive that is not the one in progress, …).
                prop_assert!(!other.to_string().is_empty(), "{} = {:?}: {}", pointer, value, other);
            }
        }
    }
}

#[test]
fn a_digest_file_shorter_than_the_journal_claims_is_refused_without_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j.json");
    let digests = digests_path(&journal, 0);
    std::fs::write(&digests, [7u8; 64]).unwrap();
    for claimed in [3, u64::MAX / 32, u64::MAX] {
        let (r, peak) = peak_during(|| read_digests(&digests, claimed));
        assert_bounded("digests", 64, peak);
        assert!(matches!(r, Err(DiskprepError::JournalDamaged { .. })), "{claimed}: {r:?}");
    }
    assert_eq!(read_digests(&digests, 2).unwrap(), vec![[7u8; 32]; 2]);
    for garbage in [&b""[..], b"{", b"[]", b"{\"version\": 1}", &[0xFF; 100][..]] {
        std::fs::write(&journal, garbage).unwrap();
        let (r, peak) = peak_during(|| Journal::load(&journal));
        assert_bounded("journal", garbage.len(), peak);
        assert!(matches!(r, Err(DiskprepError::JournalDamaged { .. })), "{r:?}");
    }
}

/// A journal whose drives end past the stream it counts (or whose positions do not
/// fit the staging files) is refused as damaged: it once made resume subtract past
/// zero and panic.
#[test]
fn journal_positions_that_do_not_fit_the_staging_files_are_refused() {
    let stopped = shared_stopped().lock().unwrap_or_else(|e| e.into_inner());
    let edits: [(&str, serde_json::Value); 5] = [
        ("/total_bytes", serde_json::json!(0)),
        ("/drives/0/end/stream_offset", serde_json::json!(u64::MAX)),
        ("/drives/0/end/file", serde_json::json!(1_000_000)),
        ("/drives/0/end/offset_in_file", serde_json::json!(3)),
        ("/block_size", serde_json::json!(0)),
    ];
    for (pointer, value) in edits {
        let run = tempfile::tempdir_in(stopped.dir.path()).unwrap();
        let mut journal = stopped.journal.clone();
        *journal.pointer_mut(pointer).unwrap() = value;
        let path = run.path().join("j.json");
        std::fs::write(&path, serde_json::to_vec(&journal).unwrap()).unwrap();
        let original = stopped.dir.path().join("j.json.listing");
        std::fs::copy(original, run.path().join("j.json.listing")).unwrap();
        match resume(&path, &mut Images::new(run.path(), 2 << 20), &|_| {}) {
            Err(DiskprepError::JournalDamaged { path: named, reason }) => {
                assert_eq!(named, path);
                assert!(!reason.is_empty());
            }
            other => panic!("{pointer}: {other:?}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    /// A file list is outside input to the service: every line is a file or a named
    /// refusal, never a panic, and a line's allocation stays near its length.
    #[test]
    fn file_list_lines_are_files_or_refused_by_name(
        lines in proptest::collection::vec(
            prop_oneof![
                "[0-9]{1,25} [a-z/._-]{0,40}",
                any::<String>(),
                Just("18446744073709551616 data/x".to_string()),
                Just("1 ../x".to_string()),
            ],
            0..20,
        )
    ) {
        use offsite_seeding::file_list::{FileListError, FileListReader};
        let mut reader = FileListReader::new();
        for line in &lines {
            let ((), peak) = peak_during(|| match reader.read_line(line) {
                Ok(file) => assert!(line.ends_with(&file.path) && !file.path.is_empty()),
                Err(FileListError::Malformed { .. } | FileListError::BadPath { .. } | FileListError::OutOfOrder { .. }) => {}
                Err(FileListError::TooMany) => panic!("twenty lines are not too many"),
            });
            assert_bounded("file list line", line.len(), peak);
        }
    }
}

/// Sizes that add up past what a u64 holds are refused by line, never wrapped (a
/// hostile list could otherwise claim a small total).
#[test]
fn file_list_sizes_that_overflow_are_refused() {
    use offsite_seeding::file_list::{FileListError, FileListReader};
    let mut reader = FileListReader::new();
    reader.read_line("18446744073709551615 data/a").unwrap();
    match reader.read_line("1 data/b") {
        Err(FileListError::Malformed { line, .. }) => assert_eq!(line, 2),
        other => panic!("a total past u64 was taken: {other:?}"),
    }
}
