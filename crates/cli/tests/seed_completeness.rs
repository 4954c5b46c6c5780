//! A seed is adopted only whole. Through the binary, on a staging location of files
//! of many sizes (1 MiB packs, so many of them lie wholly on one drive) written onto
//! a set of at least three drives, damage is placed (a) inside a file wholly on one
//! drive, (b) in a file spanning two drives, (c) in a drive's manifest, and (d) a
//! whole drive is never ingested. In every case the job does not complete, nothing
//! is adopted, and the repair drive (or the missing drive) completes it; then the
//! seed is adopted and the restore equals the source. Also: a seed whose staging
//! location lost a pack before diskprep copied it is refused at adoption, and
//! `offsite server check` names a pack deleted from a vault by hand.

mod common;

use std::path::{Path, PathBuf};

use common::service::Service;
use common::site::*;
use common::*;
use serde_json::Value;

const BLOCK: u64 = 262_144;
const REGION: u64 = 65_536;

/// A site whose repository closes packs at 1 MiB, protecting files of many sizes
/// (about 9 MiB), staged.
fn staged_site(service: &Service, root: &Path) -> Site {
    let site = Site::with_source(service, root, 1, |source| {
        let sizes = [0u64, 1, 700, 4096, 65_537, 300_000, 900_000, 1_600_000];
        for i in 0..24u64 {
            let dir = source.join(format!("dir{}", i % 3));
            std::fs::create_dir_all(&dir).unwrap();
            write_noise_file(&dir.join(format!("file-{i}.bin")), sizes[i as usize % sizes.len()], 100 + i);
        }
        small_tree(&source.join("docs"));
    });
    site.stage();
    site
}

/// One file of the set's stream: where it starts and how long it is.
#[derive(Debug, Clone)]
struct Placed {
    path: String,
    start: u64,
    size: u64,
}

/// The staging files in stream order (sorted by path, the marker left out), as
/// docs/DRIVE-FORMAT.md defines the stream.
fn stream_of(staging: &Path) -> Vec<Placed> {
    let mut files = Vec::new();
    let mut pending = vec![staging.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                pending.push(entry.path());
                continue;
            }
            let rel = entry.path().strip_prefix(staging).unwrap().to_string_lossy().replace('\\', "/");
            if rel != "offsite-staging.json" {
                files.push((rel, entry.metadata().unwrap().len()));
            }
        }
    }
    files.sort();
    let mut at = 0;
    files
        .into_iter()
        .map(|(path, size)| {
            let placed = Placed { path, start: at, size };
            at += size;
            placed
        })
        .collect()
}

/// The set diskprep prepared: each drive's image and stream range.
struct DriveSet {
    drives: Vec<(PathBuf, u64, u64)>,
}

impl DriveSet {
    fn of(prepared: &Value) -> DriveSet {
        let drives = prepared["set"]["drives"]
            .as_array()
            .unwrap_or_else(|| panic!("no drives: {prepared}"))
            .iter()
            .map(|d| {
                (PathBuf::from(json_str(d, &["path"])), json_u64(d, &["stream_start"]), json_u64(d, &["stream_end"]))
            })
            .collect();
        DriveSet { drives }
    }

    /// The drive holding stream byte `at`.
    fn drive_of(&self, at: u64) -> usize {
        self.drives.iter().position(|(_, start, end)| (*start..*end).contains(&at)).expect("a drive holds it")
    }

    /// Flips a byte of the sealed data block holding stream byte `at`.
    fn damage(&self, at: u64) {
        let (path, start, _) = &self.drives[self.drive_of(at)];
        let block = (at - start) / BLOCK;
        flip_byte(path, REGION + block * (BLOCK + 16) + 100);
    }

    /// Flips a byte of drive `index`'s first manifest block (after its data blocks).
    fn damage_manifest(&self, index: usize) {
        let (path, start, end) = &self.drives[index];
        let data_blocks = (end - start).div_ceil(BLOCK);
        flip_byte(path, REGION + data_blocks * (BLOCK + 16) + 10);
    }
}

/// A service, a staged site and its seed prepared on drives and shipped.
fn prepared_seed() -> (tempfile::TempDir, Service, Site, DriveSet) {
    let scratch = temp();
    let service = Service::start(scratch.path());
    let site = staged_site(&service, scratch.path());
    let set = prepare(&site);
    (scratch, service, site, set)
}

fn prepare(site: &Site) -> DriveSet {
    let mut args = Vec::new();
    let drives: Vec<String> = (1..=8).map(|n| utf8(&site.drive(n)).to_string()).collect();
    for drive in &drives {
        args.extend(["--drive", drive.as_str()]);
    }
    args.extend(["--drive-size", "3MiB", "--block-size", BLOCK_SIZE, "--yes", "--json"]);
    let prepared = site.diskprep(&args).run().ok().json();
    assert_eq!(prepared["import_job"]["file_list"]["files"].as_u64(), Some(stream_of(&site.staging).len() as u64));
    let set = DriveSet::of(&prepared);
    assert!(set.drives.len() >= 3, "the seed must span at least three drives: {prepared}");
    site.ship("1Z999AA10123456784").ok();
    set
}

/// Ingests the given drives of the set (by index) and returns the last report.
fn ingest_all(site: &Site, service: &Service, set: &DriveSet, which: &[usize]) -> Value {
    site.datacenter(service, &["receive", "--job", JOB]).run().ok();
    let mut last = Value::Null;
    for &i in which {
        last = site.ingest(service, &set.drives[i].0).json();
    }
    last
}

/// The job is not completed and the agent adopts nothing: it keeps waiting.
fn assert_not_adopted(site: &Site) {
    assert_ne!(site.job_state(), "completed");
    let waiting = site.agent.backup();
    assert_eq!(waiting["report"]["state"], "waiting", "{waiting}");
    let points = site.agent.cmd(["recovery-points", "--json"]).run().ok().json();
    assert_eq!(points.as_array().map(Vec::len), Some(0), "{points}");
}

/// The files the job's timeline names as missing, from `diskprep --status`.
fn named_missing(site: &Site) -> String {
    let shown = site.diskprep(&["--status", "--json"]).run().ok().json();
    shown["timeline"].as_array().and_then(|t| t.last()).map(|e| e["message"].to_string()).unwrap_or_default()
}

/// A repair drive with what the service misses (diskprep asks it), ingested; then
/// the job is completed, the seed adopted and the restore equals the source.
fn repair_and_adopt(site: &Site, service: &Service) {
    let repair = site.root.join("repair.img");
    let made = site
        .diskprep(&[
            "--repair",
            "--drive",
            utf8(&repair),
            "--drive-size",
            "16MiB",
            "--block-size",
            BLOCK_SIZE,
            "--yes",
            "--json",
        ])
        .run()
        .ok()
        .json();
    assert!(made["set"]["drives"].as_array().is_some_and(|d| d.len() == 1), "{made}");
    let done = site.ingest(service, &repair).ok().json();
    assert_eq!(done["job_state"], "completed", "{done}");
    adopt_and_restore(site);
}

fn adopt_and_restore(site: &Site) {
    assert_eq!(site.job_state(), "completed");
    let adopted = site.agent.backup();
    assert_eq!(adopted["report"]["state"], "completed", "{adopted}");
    let message = adopted["report"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("adopted"), "{message}");
    let target = site.root.join("restored");
    site.agent.cmd(["restore", "--target", utf8(&target), "--verify"]).run().ok();
    assert_same_tree(&site.source, &restored(&target, &site.source));
}

#[test]
fn damage_inside_a_file_wholly_on_one_drive_is_repaired_before_adoption() {
    let (_scratch, service, site, set) = prepared_seed();
    // A pack wholly on a drive that is neither the first nor the last, if any.
    let last = set.drives.len() - 1;
    let stream = stream_of(&site.staging);
    let victim = stream
        .iter()
        .filter(|f| f.path.starts_with("data/") && f.size > 2 * BLOCK)
        .find(|f| {
            let drive = set.drive_of(f.start);
            drive == set.drive_of(f.start + f.size - 1) && drive > 0 && drive < last
        })
        .cloned()
        .expect("a pack wholly on a middle drive");
    set.damage(victim.start + victim.size / 2);

    let last_report = ingest_all(&site, &service, &set, &(0..=last).collect::<Vec<_>>());
    assert_eq!(last_report["job_state"], "packaging", "a file of which nothing arrived keeps the job: {last_report}");
    assert!(named_missing(&site).contains(&victim.path), "{}", named_missing(&site));
    assert_not_adopted(&site);
    repair_and_adopt(&site, &service);
}

#[test]
fn damage_in_a_file_spanning_two_drives_is_repaired_before_adoption() {
    let (_scratch, service, site, set) = prepared_seed();
    let stream = stream_of(&site.staging);
    let victim = stream
        .iter()
        .find(|f| f.size > 0 && set.drive_of(f.start) != set.drive_of(f.start + f.size - 1))
        .cloned()
        .expect("a file spanning two drives");
    set.damage(victim.start);

    let all: Vec<usize> = (0..set.drives.len()).collect();
    let last_report = ingest_all(&site, &service, &set, &all);
    assert_eq!(last_report["job_state"], "packaging", "{last_report}");
    assert!(named_missing(&site).contains(&victim.path), "{}", named_missing(&site));
    assert_not_adopted(&site);
    repair_and_adopt(&site, &service);
}

#[test]
fn a_drive_whose_manifest_is_damaged_is_repaired_before_adoption() {
    let (_scratch, service, site, set) = prepared_seed();
    set.damage_manifest(1);

    site.datacenter(&service, &["receive", "--job", JOB]).run().ok();
    for (i, (drive, _, _)) in set.drives.iter().enumerate() {
        let run = site.ingest(&service, drive);
        if i == 1 {
            run.code(17).stderr_has("manifest");
        } else {
            run.ok();
        }
    }
    // Every file of which that drive held a part is named: those wholly on it too.
    let (_, start, end) = &set.drives[1];
    let held: Vec<Placed> = stream_of(&site.staging)
        .into_iter()
        .filter(|f| f.size > 0 && f.start < *end && f.start + f.size > *start)
        .collect();
    assert!(!held.is_empty());
    let named = named_missing(&site);
    for file in &held {
        assert!(named.contains(&file.path), "{} is not named: {named}", file.path);
    }
    assert_not_adopted(&site);
    repair_and_adopt(&site, &service);
}

#[test]
fn a_drive_never_ingested_keeps_the_job_until_it_is() {
    let (_scratch, service, site, set) = prepared_seed();
    let all_but_one: Vec<usize> = (0..set.drives.len()).filter(|i| *i != 1).collect();
    let last_report = ingest_all(&site, &service, &set, &all_but_one);
    assert_eq!(last_report["job_state"], "transferring", "{last_report}");
    // Packaging is refused while a drive is still to come; nothing is adopted.
    site.datacenter(&service, &["package", "--job", JOB]).run().fails().stderr_has("still has drives");
    assert_not_adopted(&site);
    // The drive arrives after all.
    let done = site.ingest(&service, &set.drives[1].0).ok().json();
    assert_eq!(done["job_state"], "completed", "{done}");
    adopt_and_restore(&site);
}

/// A pack lost from the staging location before diskprep copied it is not on any
/// drive nor in the file list, so the job completes; the agent's check of the
/// adopted repository finds the hole, records nothing and says what to do.
#[test]
fn a_seed_missing_a_pack_its_index_names_is_refused_at_adoption() {
    let scratch = temp();
    let service = Service::start(scratch.path());
    let site = staged_site(&service, scratch.path());
    let lost = stream_of(&site.staging).into_iter().find(|f| f.path.starts_with("data/")).expect("a pack");
    std::fs::remove_file(site.staging.join(&lost.path)).unwrap();
    let set = prepare(&site);
    let all: Vec<usize> = (0..set.drives.len()).collect();
    let last = ingest_all(&site, &service, &set, &all);
    assert_eq!(last["job_state"], "completed", "{last}");

    let name = lost.path.rsplit('/').next().unwrap();
    let refused = site.agent.cmd(["backup", "--now", "--json"]).run().fails();
    let cancel = format!("offsite agent --agent-home {} offline cancel", utf8(&site.agent.home));
    refused.stderr_has("not a complete repository").stderr_has(name).stderr_has(&cancel);
    let points = site.agent.cmd(["recovery-points", "--json"]).run().ok().json();
    assert_eq!(points.as_array().map(Vec::len), Some(0), "nothing recorded: {points}");
    // Asked again, the same answer; nothing stands on the broken seed.
    site.agent.cmd(["backup", "--now", "--json"]).run().fails().stderr_has("not a complete repository");

    // Sent over the network instead, everything restores.
    site.agent.cmd(["offline", "cancel"]).run().ok();
    let online = site.agent.backup();
    assert_eq!(online["report"]["state"], "completed", "{online}");
    let target = site.root.join("restored");
    site.agent.cmd(["restore", "--target", utf8(&target), "--verify"]).run().ok();
    assert_same_tree(&site.source, &restored(&target, &site.source));
}

/// `offsite server check` names a pack deleted from a vault behind the service's back.
#[test]
fn server_check_names_a_pack_deleted_from_a_vault_by_hand() {
    let scratch = temp();
    let service = Service::start(scratch.path());
    let site = Site::new(&service, scratch.path());
    site.agent.backup();
    let check = || offsite(["server", "check", "--json", "--data-dir", utf8(&service.data_dir)]).run();
    let agrees = check().ok().json();
    assert_eq!(agrees["disagreements"], serde_json::json!([]), "{agrees}");
    // The vault's packs: the machine's repository under the service's storage.
    let (pack, _) =
        stored_packs(&service.data_dir.join("storage").join("vaults")).into_iter().next().expect("a pack in the vault");
    std::fs::remove_file(&pack).unwrap();
    let name = pack.file_name().unwrap().to_string_lossy().to_string();
    let found = check().fails();
    let report = found.json();
    let text = report["disagreements"].to_string();
    assert!(text.contains(&name) && text.contains("missing_repository_files"), "{found}");
}
