//! The local repository cache, through the engine's public interface: requests a
//! second backup makes, damaged entries, a deleted cache, two processes sharing
//! one, a prune elsewhere, a full cache, a killed writer.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::*;
use offsite_engine::backend::{self, Backend, BackendResult, FileInfo, FileKind};
use offsite_engine::cache::CacheSettings;
use offsite_engine::check::{self, CheckOptions};
use offsite_engine::progress::Progress;
use offsite_engine::Repository;

/// A backend that counts the requests made of it, by verb, as a remote
/// storage would see them.
struct CountingBackend {
    inner: Arc<dyn Backend>,
    counts: Mutex<BTreeMap<&'static str, u64>>,
    total: AtomicU64,
}

impl CountingBackend {
    fn over(inner: Arc<dyn Backend>) -> Arc<CountingBackend> {
        Arc::new(CountingBackend { inner, counts: Mutex::new(BTreeMap::new()), total: AtomicU64::new(0) })
    }

    fn count(&self, verb: &'static str) {
        *self.counts.lock().unwrap().entry(verb).or_default() += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests since the last call, and their breakdown.
    fn take(&self) -> (u64, BTreeMap<&'static str, u64>) {
        (self.total.swap(0, Ordering::Relaxed), std::mem::take(&mut *self.counts.lock().unwrap()))
    }
}

impl Backend for CountingBackend {
    fn location(&self) -> &str {
        self.inner.location()
    }
    fn create(&self) -> BackendResult<()> {
        self.inner.create()
    }
    fn save(&self, kind: FileKind, name: &str, data: Bytes) -> BackendResult<()> {
        self.count("save");
        self.inner.save(kind, name, data)
    }
    fn load(&self, kind: FileKind, name: &str) -> BackendResult<Bytes> {
        self.count("load");
        self.inner.load(kind, name)
    }
    fn load_range(&self, kind: FileKind, name: &str, offset: u64, length: u64) -> BackendResult<Bytes> {
        self.count("load_range");
        self.inner.load_range(kind, name, offset, length)
    }
    fn size(&self, kind: FileKind, name: &str) -> BackendResult<Option<u64>> {
        self.count("size");
        self.inner.size(kind, name)
    }
    fn list(&self, kind: FileKind) -> BackendResult<Vec<FileInfo>> {
        self.count("list");
        self.inner.list(kind)
    }
    fn remove(&self, kind: FileKind, name: &str) -> BackendResult<()> {
        self.count("remove");
        self.inner.remove(kind, name)
    }
    fn remove_incomplete(&self) -> BackendResult<usize> {
        self.inner.remove_incomplete()
    }
}

/// A tree of `folders` folders (ten per parent folder level) with two small files each.
fn wide_tree(root: &Path, folders: usize) {
    for i in 0..folders {
        let dir = root.join(format!("d{}/e{}", i / 10, i));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("a.txt"), text(200 + i % 300, i as u64)).unwrap();
        fs::write(dir.join("b.bin"), noise(64 + i % 100, i as u64)).unwrap();
    }
}

/// A temporary folder with a source tree of `folders` folders, an empty
/// repository and a place for the cache: (folder, source, repository, cache).
fn site(folders: usize) -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (source, repo_dir, cache) = (dir.path().join("src"), dir.path().join("repo"), dir.path().join("cache"));
    wide_tree(&source, folders);
    init_repo(&repo_dir);
    (dir, source, repo_dir, cache)
}

fn storage(dir: &Path) -> Arc<dyn Backend> {
    backend::open(dir.to_str().unwrap(), &[]).unwrap()
}

fn open_cached(storage: Arc<dyn Backend>, cache: &Path) -> Repository {
    Repository::open_cached(storage, PASSPHRASE, Some(&CacheSettings::at(cache))).unwrap()
}

fn restore_and_compare(repo: &Repository, source: &Path, target: &Path) {
    let outcome = restore(repo, "latest", target);
    assert!(outcome.failures.is_empty(), "restore failed: {:?}", outcome.failures);
    assert_same_tree(source, &restored_path(target, source));
}

/// Every cache entry of one kind, as files.
fn cache_files(cache: &Path, folder: &str) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for repo_dir in fs::read_dir(cache).unwrap().flatten().filter(|e| e.path().is_dir()) {
        let dir = repo_dir.path().join(folder);
        if dir.exists() {
            files.extend(walk_files(&dir));
        }
    }
    files
}

#[test]
fn a_second_backup_makes_the_same_few_requests_whatever_the_number_of_folders() {
    let mut counts = Vec::new();
    for folders in [200, 2_000] {
        let dir = tempfile::tempdir().unwrap();
        let (source, repo_dir, cache) = (dir.path().join("src"), dir.path().join("repo"), dir.path().join("cache"));
        wide_tree(&source, folders);
        init_repo(&repo_dir);
        let counting = CountingBackend::over(storage(&repo_dir));
        let repo = open_cached(counting.clone(), &cache);
        backup(&repo, &[&source]);
        counting.take();

        let repo = open_cached(counting.clone(), &cache);
        backup(&repo, &[&source]);
        let (second, by_verb) = counting.take();
        counts.push(second);
        eprintln!("{folders} folders: {second} requests {by_verb:?}");
        // Open (config, keys, key file), lock (list, save, list, remove), list
        // index, packs and snapshots, save the snapshot: about a dozen.
        assert!(second <= 16, "an unchanged backup of {folders} folders made {second} requests: {by_verb:?}");
        assert_eq!(by_verb.get("load_range"), None, "no tree was fetched: {by_verb:?}");

        // The same backup without the cache asks for every folder's tree: what the
        // bound above would catch if the cache stopped working.
        let uncached = open_repo(counting.clone());
        backup(&uncached, &[&source]);
        let (without, _) = counting.take();
        assert!(without > folders as u64, "without the cache {without} requests for {folders} folders");
        restore_and_compare(&repo, &source, &dir.path().join("restored"));
    }
    // The folders above the source (the temporary folder's parent, whose mtime
    // other tests move) may need new trees: one pack and its index, whatever the size.
    assert!(counts[1] <= counts[0] + 2, "requests grew with the tree: {counts:?}");
}

#[test]
fn damaged_truncated_and_foreign_cache_entries_are_dropped_and_fetched_again() {
    let (dir, source, repo_dir, cache) = site(50);
    make_tree(&source.join("more"), 7);
    let repo = open_cached(storage(&repo_dir), &cache);
    backup(&repo, &[&source]);

    let packs = cache_files(&cache, "data");
    let indexes = cache_files(&cache, "index");
    let snapshots = cache_files(&cache, "snapshots");
    assert!(!packs.is_empty() && !indexes.is_empty() && !snapshots.is_empty(), "the backup filled the cache");
    let originals: Vec<(std::path::PathBuf, Vec<u8>)> =
        packs.iter().chain(&indexes).chain(&snapshots).map(|p| (p.clone(), fs::read(p).unwrap())).collect();
    // A flipped byte in a tree pack, a truncated index file, a snapshot holding
    // another file's bytes.
    let mut pack = fs::read(&packs[0]).unwrap();
    let middle = pack.len() / 2;
    pack[middle] ^= 0x40;
    fs::write(&packs[0], pack).unwrap();
    let index = fs::read(&indexes[0]).unwrap();
    fs::write(&indexes[0], &index[..index.len() / 2]).unwrap();
    fs::write(&snapshots[0], &index).unwrap();

    // A change, so the backup reads the parent's trees and writes new ones.
    fs::write(source.join("d0/e0/a.txt"), b"changed").unwrap();
    let repo = open_cached(storage(&repo_dir), &cache);
    let outcome = backup(&repo, &[&source]);
    assert_eq!(outcome.snapshot.summary.files_changed, 1, "the parent was used: one file read");
    restore_and_compare(&repo, &source, &dir.path().join("restored"));
    for (path, bytes) in originals {
        assert_eq!(fs::read(&path).unwrap(), bytes, "{} was fetched again, intact", path.display());
    }
    assert!(check::check(&repo, CheckOptions { read_data: true }, &Progress::default()).unwrap().is_ok());
}

#[test]
fn a_blob_damaged_in_a_cache_entry_already_checked_is_read_from_the_storage() {
    let (dir, source, repo_dir, cache) = site(30);
    let repo = open_cached(storage(&repo_dir), &cache);
    backup(&repo, &[&source]);
    // The first restore checks the cached tree packs whole and keeps them open;
    // then they are damaged under it.
    restore_and_compare(&repo, &source, &dir.path().join("first"));
    for pack in cache_files(&cache, "data") {
        let mut bytes = fs::read(&pack).unwrap();
        let damaged = bytes.len().saturating_sub(4);
        for byte in bytes.iter_mut().take(damaged) {
            *byte ^= 0x5a;
        }
        fs::OpenOptions::new().write(true).open(&pack).unwrap().write_all_at(&bytes, 0).unwrap();
    }
    restore_and_compare(&repo, &source, &dir.path().join("second"));
}

#[test]
fn a_deleted_cache_folder_is_rebuilt() {
    let (dir, source, repo_dir, cache) = site(40);
    backup(&open_cached(storage(&repo_dir), &cache), &[&source]);
    fs::remove_dir_all(&cache).unwrap();

    let counting = CountingBackend::over(storage(&repo_dir));
    let repo = open_cached(counting.clone(), &cache);
    backup(&repo, &[&source]);
    let (cold, _) = counting.take();
    let usage = repo.cache().unwrap().usage();
    assert!(usage.index_files > 0 && usage.snapshot_files > 0 && usage.packs > 0, "rebuilt: {usage:?}");
    backup(&open_cached(counting.clone(), &cache), &[&source]);
    let (warm, _) = counting.take();
    assert!(warm < cold, "the rebuilt cache is used: {warm} requests warm, {cold} cold");
    restore_and_compare(&repo, &source, &dir.path().join("restored"));
}

#[test]
fn two_processes_sharing_one_cache_folder_do_not_corrupt_it() {
    let dir = tempfile::tempdir().unwrap();
    let repo_dir = dir.path().join("repo");
    let cache = dir.path().join("cache");
    init_repo(&repo_dir);
    let sources: Vec<_> = (0..2).map(|i| dir.path().join(format!("src{i}"))).collect();
    for (i, source) in sources.iter().enumerate() {
        wide_tree(source, 60 + i * 10);
        make_tree(&source.join("more"), i as u64);
    }
    // Two repositories opened on one cache folder, as two processes would, each
    // backing up three times at once with the other.
    std::thread::scope(|scope| {
        for source in &sources {
            let (repo_dir, cache) = (&repo_dir, &cache);
            scope.spawn(move || {
                for round in 0..3 {
                    fs::write(source.join(format!("round{round}")), text(5000, round)).unwrap();
                    let repo = open_cached(storage(repo_dir), cache);
                    backup(&repo, &[source]);
                }
            });
        }
    });
    let repo = open_cached(storage(&repo_dir), &cache);
    for (i, source) in sources.iter().enumerate() {
        let target = dir.path().join(format!("restored{i}"));
        let (_, snapshot) = repo
            .snapshots()
            .unwrap()
            .into_iter()
            .rev()
            .find(|(_, s)| s.paths == [source.display().to_string()])
            .unwrap();
        let options =
            offsite_engine::restorer::RestoreOptions { target: target.clone(), verify: true, ..Default::default() };
        let outcome = offsite_engine::restorer::restore(&repo, &snapshot, &options, &Progress::default()).unwrap();
        assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
        assert_same_tree(source, &restored_path(&target, source));
    }
    // Every entry is whole: named by the hash of its bytes, no temporaries left.
    for folder in ["data", "index", "snapshots", "keys"] {
        for file in cache_files(&cache, folder) {
            let name = file.file_name().unwrap().to_str().unwrap().to_string();
            assert!(!name.ends_with(".tmp"), "temporary left: {}", file.display());
            assert_eq!(blake3::hash(&fs::read(&file).unwrap()).to_hex().as_str(), name, "{}", file.display());
        }
    }
}

#[test]
fn a_prune_by_another_machine_never_makes_a_backup_reference_removed_data() {
    let (dir, source, repo_dir, cache) = site(40);
    let repo = open_cached(storage(&repo_dir), &cache);
    backup(&repo, &[&source]);
    let cached_before = repo.cache().unwrap().usage();

    // Another machine, without this cache, backs up other data, forgets this
    // machine's snapshot and prunes: every pack and index file this cache holds is gone.
    let other = dir.path().join("other");
    make_tree(&other, 3);
    let elsewhere = open_repo(storage(&repo_dir));
    let ours = elsewhere.snapshots().unwrap();
    backup(&elsewhere, &[&other]);
    for (id, _) in ours {
        elsewhere.backend().remove(FileKind::Snapshot, &id.to_hex()).unwrap();
    }
    offsite_engine::prune::prune(&elsewhere).unwrap();
    drop(elsewhere);

    // This machine backs up the same tree again, its cache still full of what was pruned.
    let repo = open_cached(storage(&repo_dir), &cache);
    let outcome = backup(&repo, &[&source]);
    assert_eq!(outcome.snapshot.summary.files_unmodified, 0, "no parent survived the forget");
    let report = check::check(&repo, CheckOptions { read_data: true }, &Progress::default()).unwrap();
    assert!(report.is_ok(), "the new snapshot references only stored data: {:?}", report.errors);
    restore_and_compare(&repo, &source, &dir.path().join("restored"));
    let cached_after = repo.cache().unwrap().usage();
    let listed = |kind| {
        storage(&repo_dir).list(kind).unwrap().into_iter().map(|f| f.name).collect::<std::collections::HashSet<_>>()
    };
    let (packs, indexes) = (listed(FileKind::Pack), listed(FileKind::Index));
    for file in cache_files(&cache, "data") {
        assert!(packs.contains(file.file_name().unwrap().to_str().unwrap()), "pruned pack left in the cache");
    }
    for file in cache_files(&cache, "index") {
        assert!(indexes.contains(file.file_name().unwrap().to_str().unwrap()), "pruned index file left in the cache");
    }
    assert!(cached_before.index_files > 0 && cached_after.index_files > 0);
}

#[test]
fn a_pack_lost_from_the_storage_is_stored_again_not_referenced() {
    let dir = tempfile::tempdir().unwrap();
    let (source, repo_dir, cache) = (dir.path().join("src"), dir.path().join("repo"), dir.path().join("cache"));
    make_tree(&source, 11);
    init_repo(&repo_dir);
    backup(&open_cached(storage(&repo_dir), &cache), &[&source]);
    // Every pack removed by hand behind the repository's back (the index still names them).
    for pack in storage(&repo_dir).list(FileKind::Pack).unwrap() {
        storage(&repo_dir).remove(FileKind::Pack, &pack.name).unwrap();
    }
    fs::write(source.join("new.txt"), b"a new file").unwrap();
    let repo = open_cached(storage(&repo_dir), &cache);
    backup(&repo, &[&source]);
    restore_and_compare(&repo, &source, &dir.path().join("restored"));
}

#[test]
fn a_full_cache_evicts_and_keeps_working() {
    let (dir, source, repo_dir, cache) = site(300);
    let settings = CacheSettings { root: cache.clone(), max_bytes: 64 << 10 };
    for round in 0..3 {
        fs::write(source.join("changing"), text(10_000, round)).unwrap();
        let repo = Repository::open_cached(storage(&repo_dir), PASSPHRASE, Some(&settings)).unwrap();
        backup(&repo, &[&source]);
        let usage = repo.cache().unwrap().usage();
        // One entry may be larger than the bound: at most that one stays above it.
        assert!(usage.bytes <= settings.max_bytes + (1 << 20), "round {round}: {usage:?}");
    }
    let repo = Repository::open_cached(storage(&repo_dir), PASSPHRASE, Some(&settings)).unwrap();
    restore_and_compare(&repo, &source, &dir.path().join("restored"));
}

#[test]
fn a_writer_killed_mid_entry_leaves_a_cache_the_next_run_repairs() {
    let (dir, source, repo_dir, cache) = site(30);
    let repo = open_cached(storage(&repo_dir), &cache);
    backup(&repo, &[&source]);
    let index = cache_files(&cache, "index").pop().unwrap();
    // What kill -9 leaves: a temporary of a process that is gone, and (had the
    // rename happened without the data reaching the disk) a short entry.
    let dead_pid = 99_999_999; // above any pid_max
    let temporary =
        index.with_file_name(format!(".{}.{dead_pid}.1f.tmp", index.file_name().unwrap().to_str().unwrap()));
    fs::write(&temporary, b"half").unwrap();
    let whole = fs::read(&index).unwrap();
    fs::write(&index, &whole[..10]).unwrap();

    let repo = open_cached(storage(&repo_dir), &cache);
    assert!(!temporary.exists(), "the dead writer's temporary was removed");
    backup(&repo, &[&source]);
    assert_eq!(fs::read(&index).unwrap(), whole, "the short entry was fetched again");
    restore_and_compare(&repo, &source, &dir.path().join("restored"));
}
