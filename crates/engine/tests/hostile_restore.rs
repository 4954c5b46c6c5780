//! Restoring a hostile repository: trees written by someone who holds the key but
//! not our good intentions (or damaged ones), whose names try to climb out of the
//! restore target. Restore must never write outside the target, must restore the
//! honest entries and must name every bad one.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use offsite_engine::progress::Progress;
use offsite_engine::repofile::snapshot::{BackupSummary, Snapshot};
use offsite_engine::repofile::tree::{Node, NodeKind, Timestamp, Tree};
use offsite_engine::repofile::BlobType;
use offsite_engine::restorer::{self, RestoreOptions, RestoreOutcome};
use offsite_engine::saver::BlobSaver;
use offsite_engine::{Id, Repository};

/// What a hostile tree entry is made of.
enum Entry {
    File(&'static [u8]),
    Link(String),
    Dir(Vec<(Vec<u8>, Entry)>),
}

fn node(name: &[u8], kind: NodeKind, size: u64, mode: u32) -> Node {
    Node {
        name: name.to_vec(),
        kind,
        size,
        mode,
        uid: 0,
        gid: 0,
        mtime: Timestamp { seconds: 1_700_000_000, nanos: 0 },
        ctime: Timestamp::default(),
        inode: 0,
        device: 0,
        links: 1,
        xattrs: Vec::new(),
    }
}

fn save_tree(saver: &BlobSaver<'_>, entries: &[(Vec<u8>, Entry)]) -> offsite_engine::Result<Id> {
    let mut nodes = Vec::new();
    for (name, entry) in entries {
        nodes.push(match entry {
            Entry::File(bytes) => {
                let id = saver.save(BlobType::Data, bytes.to_vec())?;
                node(name, NodeKind::File { content: vec![id] }, bytes.len() as u64, 0o644)
            }
            Entry::Link(target) => node(name, NodeKind::Symlink { target: target.as_bytes().to_vec() }, 0, 0o777),
            Entry::Dir(children) => node(name, NodeKind::Dir { subtree: save_tree(saver, children)? }, 0, 0o755),
        });
    }
    saver.save(BlobType::Tree, Tree { nodes }.encode())
}

/// Stores a snapshot whose root folder holds `entries`, exactly as given.
fn hostile_snapshot(repo: &Repository, entries: Vec<(Vec<u8>, Entry)>) -> Snapshot {
    let index = repo.load_index().unwrap();
    let (tree, _, _) = BlobSaver::run(repo, &index, |saver| save_tree(saver, &entries)).unwrap();
    let snapshot = Snapshot {
        time: time::OffsetDateTime::now_utc(),
        tree,
        paths: vec!["/".into()],
        hostname: "hostile".into(),
        username: "mallory".into(),
        tags: Vec::new(),
        parent: None,
        program_version: "hostile".into(),
        summary: BackupSummary::default(),
    };
    repo.save_snapshot(&snapshot).unwrap();
    snapshot
}

fn restore(repo: &Repository, snapshot: &Snapshot, target: &Path) -> RestoreOutcome {
    let options = RestoreOptions { target: target.to_path_buf(), verify: true, ..Default::default() };
    restorer::restore(repo, snapshot, &options, &Progress::default()).expect("the restore runs")
}

fn failure_for<'a>(outcome: &'a RestoreOutcome, path: &str) -> Option<&'a str> {
    outcome.failures.iter().find(|f| f.path == path).map(|f| f.reason.as_str())
}

/// Everything under `dir`, as paths relative to it.
fn listing(dir: &Path) -> Vec<String> {
    let mut found: Vec<String> =
        common::walk_files(dir).into_iter().map(|p| p.strip_prefix(dir).unwrap().display().to_string()).collect();
    found.sort();
    found
}

#[test]
fn names_that_climb_out_of_the_target_are_refused_and_named() {
    let work = tempfile::tempdir().unwrap();
    let repo = common::init_repo(&work.path().join("repo"));
    let target = work.path().join("sandbox/target");
    let outside = work.path().join("sandbox");
    fs::create_dir_all(&target).unwrap();
    let escape = outside.join("escaped").display().to_string();
    let snapshot = hostile_snapshot(
        &repo,
        vec![
            (b"..".to_vec(), Entry::Dir(vec![(b"escaped".to_vec(), Entry::File(b"dot dot"))])),
            (b".".to_vec(), Entry::File(b"dot")),
            (b"".to_vec(), Entry::File(b"empty name")),
            (b"a/../../escaped".to_vec(), Entry::File(b"climbing")),
            (escape.clone().into_bytes(), Entry::File(b"absolute")),
            (b"nul\0name".to_vec(), Entry::File(b"nul")),
            (b"honest.txt".to_vec(), Entry::File(b"honest bytes")),
            (b"folder".to_vec(), Entry::Dir(vec![(b"..".to_vec(), Entry::File(b"nested dot dot"))])),
        ],
    );
    let outcome = restore(&repo, &snapshot, &target);

    assert_eq!(fs::read(target.join("honest.txt")).unwrap(), b"honest bytes");
    assert_eq!(listing(&outside), ["target/honest.txt"], "only the honest file is written");
    for bad in ["/..", "/.", "/", "/a/../../escaped", &format!("/{escape}"), "/nul\0name", "/folder/.."] {
        let reason =
            failure_for(&outcome, bad).unwrap_or_else(|| panic!("{bad:?} is not named among {:?}", outcome.failures));
        assert!(reason.contains("unsafe file name"), "{bad}: {reason}");
    }
}

#[test]
fn a_symlink_and_an_entry_of_the_same_name_never_lead_outside() {
    let work = tempfile::tempdir().unwrap();
    let repo = common::init_repo(&work.path().join("repo"));
    let outside = work.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    let target = work.path().join("target");
    let snapshot = hostile_snapshot(
        &repo,
        vec![
            // A link to a folder outside, then a folder of that name with a file in it.
            (b"door".to_vec(), Entry::Link(outside.display().to_string())),
            (b"door".to_vec(), Entry::Dir(vec![(b"planted".to_vec(), Entry::File(b"through the door"))])),
            // A link to a file outside, then a file of that name.
            (b"twin".to_vec(), Entry::Link(outside.join("twin").display().to_string())),
            (b"twin".to_vec(), Entry::File(b"written through the link?")),
        ],
    );
    let outcome = restore(&repo, &snapshot, &target);
    assert!(listing(&outside).is_empty(), "written outside the target: {:?}", listing(&outside));
    for twice in ["/door", "/twin"] {
        let reason = failure_for(&outcome, twice)
            .unwrap_or_else(|| panic!("{twice} is in the snapshot twice, yet not named: {:?}", outcome.failures));
        assert!(reason.contains("more than once"), "{twice}: {reason}");
    }
}

#[test]
fn a_symlink_left_in_the_target_is_replaced_not_followed() {
    let work = tempfile::tempdir().unwrap();
    let repo = common::init_repo(&work.path().join("repo"));
    let outside = work.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    let target = work.path().join("target");
    fs::create_dir_all(&target).unwrap();
    // An earlier restore (or anyone with access to the target) left links in it.
    symlink(&outside, target.join("door")).unwrap();
    symlink(outside.join("file"), target.join("file")).unwrap();
    let snapshot = hostile_snapshot(
        &repo,
        vec![
            (b"door".to_vec(), Entry::Dir(vec![(b"planted".to_vec(), Entry::File(b"through the door"))])),
            (b"file".to_vec(), Entry::File(b"a plain file")),
        ],
    );
    let outcome = restore(&repo, &snapshot, &target);
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert!(listing(&outside).is_empty(), "written outside the target: {:?}", listing(&outside));
    assert!(fs::symlink_metadata(target.join("door")).unwrap().is_dir());
    assert_eq!(fs::read(target.join("door/planted")).unwrap(), b"through the door");
    assert_eq!(fs::read(target.join("file")).unwrap(), b"a plain file");
}
