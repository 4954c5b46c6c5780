//! Tampering with drives, as the ingest station meets it: a flipped bit anywhere
//! on a drive, a block swapped between drives, a drive of another import job, a
//! replayed old drive, and a manifest edited (without the key) to match edited
//! data. Each is detected and named: the error or the report says which drive,
//! which block or region, and why. Everything goes through the station's public
//! path: [`admission::admit`], [`ingest::ingest_admitted`] / [`ingest::ingest_drive`].
//!
//! `PROPTEST_CASES` raises the number of flipped bits tried (the soak sets it).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::*;
use offsite_seeding::admission::{admit, AdmissionError, Admitted, RegisteredDrive, RegisteredJob};
use offsite_seeding::diskprep::{prepare, repair, PreparedSet};
use offsite_seeding::drive::{
    block::block_offset, BlockProblem, DriveError, DriveKey, DriveReader, HEADER_REGION, TAG_LEN,
};
use offsite_seeding::ingest::{ingest_admitted, ingest_drive, IngestReport};
use proptest::prelude::*;
use x25519_dalek::StaticSecret;

const DRIVE: u64 = 1536 * 1024;
const STRIDE: u64 = BS as u64 + TAG_LEN;

/// Where everything lies on one drive.
#[derive(Debug, Clone)]
struct Geometry {
    /// Bytes 0 .. covered: magic, version, body length, body (key slots included), checksum.
    covered: u64,
    /// The MAC: covered .. covered + 32; then zero padding to HEADER_REGION.
    mac_end: u64,
    data_blocks: u64,
    manifest_first: u64,
    manifest_blocks: u64,
    len: u64,
}

impl Geometry {
    fn of(path: &Path, secret: &StaticSecret) -> Geometry {
        let image = std::fs::read(path).unwrap();
        let body_len = u64::from(u32::from_le_bytes(image[20..24].try_into().unwrap()));
        let reader = DriveReader::open(path, &DriveKey::Import(secret.clone())).unwrap();
        let h = reader.header();
        Geometry {
            covered: 24 + body_len + 32,
            mac_end: 24 + body_len + 64,
            data_blocks: h.data_blocks,
            manifest_first: h.manifest.first_block,
            manifest_blocks: h.manifest.block_count,
            len: image.len() as u64,
        }
    }

    fn manifest_end(&self) -> u64 {
        block_offset(BS, self.manifest_first + self.manifest_blocks).unwrap()
    }

    /// What lies at byte `at`.
    fn region(&self, at: u64) -> Region {
        if at < self.covered {
            Region::Checksummed
        } else if at < self.mac_end {
            Region::Mac
        } else if at < HEADER_REGION {
            Region::Unused
        } else if at < self.manifest_end() {
            let block = (at - HEADER_REGION) / STRIDE;
            if block < self.data_blocks {
                Region::Data(block)
            } else {
                Region::Manifest(block)
            }
        } else {
            Region::Unused
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Region {
    /// The header's bytes under its checksum (and MAC): key slots among them.
    Checksummed,
    Mac,
    Data(u64),
    Manifest(u64),
    /// The header region's zero padding, and what follows the manifest.
    Unused,
}

/// One import job prepared onto image files, with what a clean ingest stores.
struct Fixture {
    _dir: tempfile::TempDir,
    secret: StaticSecret,
    public: [u8; 32],
    staging: PathBuf,
    set: PreparedSet,
    geometry: Vec<Geometry>,
    /// What ingesting each drive alone stores.
    clean: Vec<BTreeMap<String, Vec<u8>>>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join("staging");
        make_staging(&staging, 21, 200_000);
        let (secret, public) = import_keys();
        let mut images = Images::new(dir.path(), DRIVE);
        let set = prepare(&plan(&staging, &dir.path().join("j.json"), public), &mut images, &|_| {}).unwrap();
        assert!(set.drives.len() >= 3, "{} drives", set.drives.len());
        let geometry: Vec<_> = set.drives.iter().map(|d| Geometry::of(&d.path, &secret)).collect();
        let clean = set
            .drives
            .iter()
            .map(|d| {
                let store = Store::default();
                let report = ingest_drive(&d.path, &DriveKey::Import(secret.clone()), None, &store, &|_| {}).unwrap();
                assert!(report.is_clean());
                store.files()
            })
            .collect();
        Fixture { _dir: dir, secret, public, staging, set, geometry, clean }
    }

    fn key(&self) -> DriveKey {
        DriveKey::Import(self.secret.clone())
    }

    /// The job as the service registered it after diskprep.
    fn registered(&self, sets: &[&PreparedSet]) -> RegisteredJob {
        RegisteredJob {
            name: JOB.into(),
            drives: sets
                .iter()
                .flat_map(|s| s.drives.iter())
                .map(|d| RegisteredDrive {
                    drive_id: d.drive_id.clone(),
                    fingerprint: Some(d.fingerprint.clone()),
                    done: None,
                })
                .collect(),
        }
    }

    fn image(&self, drive: usize) -> Vec<u8> {
        std::fs::read(&self.set.drives[drive].path).unwrap()
    }
}

fn shared() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(Fixture::new)
}

fn write_image(dir: &Path, name: &str, image: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, image).unwrap();
    path
}

/// Ingests `image` as drive `drive` of the fixture and checks the outcome is the one
/// `region` calls for: refused naming the problem, a report naming the one bad
/// block (with every other file intact), or, for unused bytes, exactly a clean read.
fn check_flip(f: &Fixture, drive: usize, at: u64, image: &[u8]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = write_image(dir.path(), "flipped.img", image);
    let shown = path.display().to_string();
    let region = f.geometry[drive].region(at);
    let store = Store::default();
    let result = ingest_drive(&path, &f.key(), None, &store, &|_| {});
    match (region, result) {
        (Region::Checksummed, Err(e)) => {
            let named = matches!(&e,
                DriveError::NotADrive { path } | DriveError::NewerFormat { path, .. } |
                DriveError::HeaderDamaged { path, .. } if *path == shown);
            prop_assert!(named, "flip at {} ({:?}): {}", at, region, e);
        }
        (Region::Mac, Err(DriveError::HeaderDamaged { path, reason })) => {
            prop_assert_eq!(path, shown);
            prop_assert!(reason.contains("MAC"), "{}", reason);
        }
        (Region::Manifest(block), Err(DriveError::ManifestDamaged { path, reason })) => {
            prop_assert_eq!(path, shown);
            prop_assert!(reason.contains(&format!("manifest block {block} fails authentication")), "{}", reason);
        }
        (Region::Data(block), Ok(report)) => {
            prop_assert_eq!(report.bad_blocks.len(), 1, "flip at {}: {:?}", at, report.bad_blocks);
            let bad = &report.bad_blocks[0];
            prop_assert_eq!((bad.index, &bad.problem), (block, &BlockProblem::Tampered));
            prop_assert!(report.error_log.contains(&f.set.drives[drive].drive_id));
            prop_assert!(report.error_log.contains(&format!("bad block {block}: tampered")), "{}", report.error_log);
            // The block's files in stream order; the repair list is sorted by path.
            let mut affected: Vec<String> = bad.affects.iter().map(|r| r.path.clone()).collect();
            affected.sort();
            prop_assert!(!affected.is_empty());
            prop_assert_eq!(&report.files_needing_repair, &affected);
            let stored = store.files();
            for (file, bytes) in &f.clean[drive] {
                if !affected.contains(file) {
                    prop_assert_eq!(stored.get(file), Some(bytes), "{}", file);
                }
            }
        }
        (Region::Unused, Ok(report)) => {
            prop_assert!(report.is_clean(), "flip at {} in unused bytes: {}", at, report.error_log);
            prop_assert!(store.files() == f.clean[drive], "flip at {} changed what was stored", at);
        }
        (region, Ok(report)) => {
            prop_assert!(false, "flip at {} ({:?}) not detected: {:?}", at, region, report.bad_blocks)
        }
        (region, Err(e)) => prop_assert!(false, "flip at {} ({:?}): unexpected {}", at, region, e),
    }
    Ok(())
}

fn flipped(f: &Fixture, drive: usize, at: u64, bit: u8) -> Vec<u8> {
    let mut image = f.image(drive);
    image[at as usize] ^= 1 << (bit % 8);
    image
}

/// The first and last byte of every region of every drive, and a middle one.
#[test]
fn a_flipped_bit_in_each_region_of_each_drive_is_named_or_unused() {
    let f = shared();
    let mut regions_seen = std::collections::BTreeSet::new();
    for (drive, g) in f.geometry.iter().enumerate() {
        let manifest = block_offset(BS, g.manifest_first).unwrap();
        let mut points = vec![0, 16, 20, 24, 30, g.covered - 33, g.covered - 1, g.covered, g.mac_end - 1, g.mac_end];
        points.extend([HEADER_REGION - 1, HEADER_REGION, HEADER_REGION + STRIDE - 1, HEADER_REGION + BS as u64 + 3]);
        points.extend([manifest - 1, manifest, g.manifest_end() - 1]);
        points.extend([g.manifest_end(), g.len - 1].into_iter().filter(|p| *p < g.len));
        for at in points {
            regions_seen.insert(format!("{:?}", g.region(at)).split('(').next().unwrap().to_string());
            check_flip(f, drive, at, &flipped(f, drive, at, (at % 8) as u8)).unwrap();
        }
    }
    assert_eq!(regions_seen.len(), 5, "{regions_seen:?}");
}

#[derive(Debug, Clone, Copy)]
enum Aim {
    Header,
    Data,
    Manifest,
    Anywhere,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(offsite_testbed::allocation::cases(48)))]

    /// A bit flipped anywhere: in the header (magic, lengths, ids, key slots,
    /// checksum, MAC, padding), a data block, the manifest or the unused tail.
    #[test]
    fn a_flipped_bit_anywhere_is_named_or_lands_in_unused_bytes(
        drive in any::<prop::sample::Index>(),
        aim in prop_oneof![Just(Aim::Header), Just(Aim::Data), Just(Aim::Manifest), Just(Aim::Anywhere)],
        where_in in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let f = shared();
        let drive = drive.index(f.set.drives.len());
        let g = &f.geometry[drive];
        let (from, to) = match aim {
            Aim::Header => (0, HEADER_REGION),
            Aim::Data => (HEADER_REGION, block_offset(BS, g.manifest_first).unwrap()),
            Aim::Manifest => (block_offset(BS, g.manifest_first).unwrap(), g.manifest_end()),
            Aim::Anywhere => (0, g.len),
        };
        let at = from + where_in.index((to - from) as usize) as u64;
        check_flip(f, drive, at, &flipped(f, drive, at, bit))?;
    }
}

fn block_range(block: u64) -> std::ops::Range<usize> {
    let at = block_offset(BS, block).unwrap() as usize;
    at..at + STRIDE as usize
}

#[test]
fn a_block_swapped_between_drives_is_named_on_both() {
    let f = shared();
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b) = (f.image(0), f.image(1));
    let block = 3;
    let range = block_range(block);
    let from_a = a[range.clone()].to_vec();
    a[range.clone()].copy_from_slice(&b[range.clone()]);
    b[range].copy_from_slice(&from_a);
    for (drive, image) in [(0, a), (1, b)] {
        let path = write_image(dir.path(), &format!("swapped-{drive}.img"), &image);
        let store = Store::default();
        let report = ingest_drive(&path, &f.key(), None, &store, &|_| {}).unwrap();
        assert_eq!(report.bad_blocks.len(), 1, "drive {drive}");
        assert_eq!((report.bad_blocks[0].index, &report.bad_blocks[0].problem), (block, &BlockProblem::Tampered));
        assert!(report.error_log.contains(&format!("drive {}", f.set.drives[drive].drive_id)), "{}", report.error_log);
        assert!(report.error_log.contains(&format!("bad block {block}: tampered")), "{}", report.error_log);
        assert!(!report.files_needing_repair.is_empty());
    }
}

/// The station's whole path for one drive: admit, then ingest the admitted drive.
fn station(path: &Path, job: &RegisteredJob, key: &DriveKey) -> Result<IngestReport, AdmissionError> {
    let admitted = admit(path, job)?;
    ingest_admitted(&admitted, key, &Store::default(), &|_| {})
}

#[test]
fn the_station_admits_and_ingests_the_registered_drives() {
    let f = shared();
    let job = f.registered(&[&f.set]);
    for (drive, prepared) in f.set.drives.iter().enumerate() {
        let admitted = admit(&prepared.path, &job).unwrap();
        assert_eq!(admitted.drive_id(), prepared.drive_id);
        let store = Store::default();
        let report = ingest_admitted(&admitted, &f.key(), &store, &|_| {}).unwrap();
        assert!(report.is_clean());
        assert!(store.files() == f.clean[drive]);
    }
}

#[test]
fn a_drive_of_another_import_job_is_refused_before_it_is_read() {
    let f = shared();
    let dir = tempfile::tempdir().unwrap();
    // Another customer's job, prepared for the same datacenter (same import key).
    let mut other_plan = plan(&f.staging, &dir.path().join("other.json"), f.public);
    other_plan.import_job = "import-job-of-someone-else".into();
    let other = prepare(&other_plan, &mut Images::new(dir.path(), DRIVE), &|_| {}).unwrap();
    let job = f.registered(&[&f.set]);
    let path = &other.drives[0].path;
    match station(path, &job, &f.key()) {
        Err(e @ AdmissionError::OtherJob { .. }) => {
            let text = e.to_string();
            assert!(text.contains("import-job-of-someone-else") && text.contains(JOB), "{text}");
            assert!(text.contains(&other.drives[0].drive_id) && text.contains(&path.display().to_string()), "{text}");
        }
        other => panic!("a drive of another job: {other:?}"),
    }

    // Its header edited to claim this job (checksum recomputed, as anyone can):
    // its id is not one of this job's drives.
    let forged = claim(&std::fs::read(path).unwrap(), JOB, None);
    let forged_path = write_image(dir.path(), "claims-this-job.img", &forged);
    assert!(matches!(station(&forged_path, &job, &f.key()), Err(AdmissionError::NotInJob { .. })));

    // And claiming one of this job's drive ids: not the registered header.
    let id = hex::decode(&f.set.drives[1].drive_id).unwrap();
    let forged = claim(&std::fs::read(path).unwrap(), JOB, Some(&id));
    let forged_path = write_image(dir.path(), "claims-a-drive.img", &forged);
    match station(&forged_path, &job, &f.key()) {
        Err(e @ AdmissionError::NotTheRegisteredHeader { .. }) => {
            assert!(e.to_string().contains(&f.set.drives[1].drive_id), "{e}");
        }
        other => panic!("a forged drive id: {other:?}"),
    }
    // A drive registered without a fingerprint is not admitted at all (the
    // service would take no files from it either).
    let mut unfingerprinted = job.clone();
    unfingerprinted.drives.iter_mut().for_each(|d| d.fingerprint = None);
    match station(&forged_path, &unfingerprinted, &f.key()) {
        Err(e @ AdmissionError::NoRegisteredHeader { .. }) => {
            assert!(e.to_string().contains("offsite diskprep --repair"), "{e}");
        }
        other => panic!("a drive registered without a fingerprint: {other:?}"),
    }
    // Past admission, the key would still refuse a forged header: the import
    // slot is bound to the drive id, and the header's MAC cannot be recomputed
    // without the drive key.
    let unchecked = |path: &Path| -> Result<IngestReport, AdmissionError> {
        let header = offsite_seeding::drive::peek_header_unauthenticated(path)?;
        let registered = RegisteredDrive { drive_id: hex::encode(header.drive_id), fingerprint: None, done: None };
        let admitted = Admitted { path: path.to_path_buf(), header, registered };
        ingest_admitted(&admitted, &f.key(), &Store::default(), &|_| {})
    };
    match unchecked(&forged_path) {
        Err(AdmissionError::Drive(DriveError::WrongKey { path, .. })) => {
            assert_eq!(path, forged_path.display().to_string())
        }
        other => panic!("a forged drive id without fingerprints: {other:?}"),
    }
    let renamed = claim(&f.image(2), JOB, None);
    let renamed = {
        // This job's own drive, its header edited (the job name rewritten to itself
        // with a changed index byte would do the same): the MAC names it.
        let mut image = renamed;
        let body_len = u32::from_le_bytes(image[20..24].try_into().unwrap()) as usize;
        let index_at = 24 + 33 + JOB.len();
        image[index_at] ^= 0x01;
        let checksum = blake3::hash(&image[..24 + body_len]);
        image[24 + body_len..24 + body_len + 32].copy_from_slice(checksum.as_bytes());
        image
    };
    let renamed_path = write_image(dir.path(), "renumbered.img", &renamed);
    match unchecked(&renamed_path) {
        Err(AdmissionError::Drive(DriveError::HeaderDamaged { reason, .. })) => {
            assert!(reason.contains("MAC"), "{reason}")
        }
        other => panic!("a renumbered drive without fingerprints: {other:?}"),
    }
}

/// A header rewritten to claim `job` (and `drive_id`), with its checksum recomputed:
/// what someone without the drive key can do. The body is postcard: drive id (16),
/// set id (16), the job name as a length byte and bytes, then the rest.
fn claim(image: &[u8], job: &str, drive_id: Option<&[u8]>) -> Vec<u8> {
    let body_len = u32::from_le_bytes(image[20..24].try_into().unwrap()) as usize;
    let body = &image[24..24 + body_len];
    let old_len = body[32] as usize;
    let mut new_body = body[..32].to_vec();
    if let Some(id) = drive_id {
        new_body[..16].copy_from_slice(id);
    }
    new_body.push(job.len() as u8);
    new_body.extend_from_slice(job.as_bytes());
    new_body.extend_from_slice(&body[33 + old_len..]);
    let mut out = image[..20].to_vec();
    out.extend_from_slice(&(new_body.len() as u32).to_le_bytes());
    out.extend_from_slice(&new_body);
    out.extend_from_slice(blake3::hash(&out).as_bytes());
    // The MAC cannot be recomputed; keep the old one.
    out.extend_from_slice(&image[24 + body_len + 32..24 + body_len + 64]);
    out.resize(HEADER_REGION as usize, 0);
    out.extend_from_slice(&image[HEADER_REGION as usize..]);
    out
}

#[test]
fn a_replayed_old_drive_is_refused_and_named() {
    let f = shared();
    let dir = tempfile::tempdir().unwrap();
    // An earlier preparation of the same job, abandoned for the set that was registered.
    let earlier = prepare(
        &plan(&f.staging, &dir.path().join("earlier.json"), f.public),
        &mut Images::new(dir.path(), DRIVE),
        &|_| {},
    )
    .unwrap();
    let job = f.registered(&[&f.set]);
    let path = &earlier.drives[0].path;
    match station(path, &job, &f.key()) {
        Err(e @ AdmissionError::NotInJob { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&earlier.drives[0].drive_id) && text.contains("earlier"), "{text}");
        }
        other => panic!("a drive of an earlier set: {other:?}"),
    }

    // After a repair set: the repair drive is admitted; the original drive,
    // ingested already, sent again is refused as a replay.
    let files: Vec<String> = f.clean[0].keys().take(2).cloned().collect();
    let repair_dir = dir.path().join("repair");
    std::fs::create_dir(&repair_dir).unwrap();
    let repair_set = repair(
        &plan(&f.staging, &dir.path().join("repair.json"), f.public),
        &files,
        &mut Images::new(&repair_dir, DRIVE),
        &|_| {},
    )
    .unwrap();
    let mut job = f.registered(&[&f.set, &repair_set]);
    job.drives[0].done = Some("completed".into());
    let report = station(&repair_set.drives[0].path, &job, &f.key()).unwrap();
    assert!(report.is_clean());
    match station(&f.set.drives[0].path, &job, &f.key()) {
        Err(e @ AdmissionError::AlreadyIngested { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&f.set.drives[0].drive_id) && text.contains("completed"), "{text}");
        }
        other => panic!("a drive ingested already: {other:?}"),
    }

    // An older header of a registered drive (the drive prepared again under the
    // same id): its fingerprint is not the registered one.
    let mut job = f.registered(&[&f.set]);
    job.drives[1].fingerprint = Some(earlier.drives[1].fingerprint.clone());
    assert!(matches!(
        station(&f.set.drives[1].path, &job, &f.key()),
        Err(AdmissionError::NotTheRegisteredHeader { .. })
    ));
}

#[test]
fn a_drive_swapped_after_admission_is_not_read() {
    let f = shared();
    let dir = tempfile::tempdir().unwrap();
    let job = f.registered(&[&f.set]);
    let path = write_image(dir.path(), "slot.img", &f.image(0));
    let admitted = admit(&path, &job).unwrap();
    std::fs::write(&path, f.image(1)).unwrap();
    let store = Store::default();
    match ingest_admitted(&admitted, &f.key(), &store, &|_| {}) {
        Err(AdmissionError::ChangedSinceAdmission { path: named }) => assert_eq!(named, path.display().to_string()),
        other => panic!("{other:?}"),
    }
    assert!(store.uploads().is_empty());
}

/// Someone without the key edits a data block and the manifest to match it: the
/// manifest fails authentication (named by block), and read with diskprep's kept
/// copy of the manifest the edited data block is named.
#[test]
fn a_manifest_edited_to_match_edited_data_is_named() {
    let f = shared();
    let dir = tempfile::tempdir().unwrap();
    let g = &f.geometry[0];
    let mut image = f.image(0);
    let data = block_range(2);
    let manifest = block_range(g.manifest_first);
    // The same change in the data block's and the manifest's ciphertext (a digest
    // lies somewhere in the manifest; without the key it cannot be found or set).
    for k in 0..64 {
        image[data.start + 100 + k] ^= 0x5A;
        image[manifest.start + 100 + k] ^= 0x5A;
    }
    let path = write_image(dir.path(), "edited.img", &image);
    match ingest_drive(&path, &f.key(), None, &Store::default(), &|_| {}) {
        Err(e @ DriveError::ManifestDamaged { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&format!("manifest block {} fails authentication", g.manifest_first)), "{text}");
            assert!(text.contains(&path.display().to_string()), "{text}");
        }
        other => panic!("edited manifest: {other:?}"),
    }
    let copy = std::fs::read(&f.set.drives[0].manifest_file).unwrap();
    let report = ingest_drive(&path, &f.key(), Some(&copy), &Store::default(), &|_| {}).unwrap();
    assert_eq!(report.bad_blocks.len(), 1);
    assert_eq!((report.bad_blocks[0].index, &report.bad_blocks[0].problem), (2, &BlockProblem::Tampered));

    // Another drive's manifest (a valid one, for its own drive) spliced in: refused.
    let mut spliced = f.image(0);
    let other = f.image(1);
    let g1 = &f.geometry[1];
    let theirs = block_range(g1.manifest_first);
    let len = (g.manifest_blocks.min(g1.manifest_blocks) * STRIDE) as usize;
    spliced[manifest.start..manifest.start + len].copy_from_slice(&other[theirs.start..theirs.start + len]);
    let path = write_image(dir.path(), "spliced.img", &spliced);
    assert!(matches!(
        ingest_drive(&path, &f.key(), None, &Store::default(), &|_| {}),
        Err(DriveError::ManifestDamaged { .. })
    ));
}
