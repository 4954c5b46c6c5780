//! One storage test suite, run against every backend (in the spirit of restic's
//! shared backend tests): the contract of `backend::Backend` is written down once,
//! as checks taking a `&dyn Backend`, and every backend must pass all of it — a local
//! folder, Azure Blob Storage (Azurite) and S3 (moto). A repository round trip through
//! the public engine API then runs on each of them.
//!
//! Each backend gets one `#[test]` that starts its server once and runs every check
//! in turn, each at its own location (its own folder, container or bucket). A failing
//! check does not stop the others; the test fails at the end, naming all failures. A
//! server that cannot start fails the test: nothing here is ever skipped.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use futures::TryStreamExt;
use object_store::ObjectStore;
use offsite_engine::backend::{self, Backend, BackendError, FileInfo, FileKind};
use offsite_engine::check::{check, CheckOptions};
use offsite_engine::progress::Progress;
use offsite_engine::repofile::BlobType;
use offsite_engine::retention::{self, RetentionPolicy};
use offsite_engine::{prune, Error, Id, Repository};
use offsite_testbed::{Azurite, S3Server};

// ---------------------------------------------------------------------------------
// The backends under test.
// ---------------------------------------------------------------------------------

/// A backend to run the suite against, and whatever keeps it alive.
enum Storage {
    Local(tempfile::TempDir),
    Azurite(Azurite),
    S3(S3Server),
}

/// The prefix inside a container or bucket where the cloud repositories live: not
/// the root, so the backends' prefix handling is exercised too.
const AZURE_PREFIX: &str = "some/prefix";
const S3_PREFIX: &str = "prefix";

impl Storage {
    fn name(&self) -> &'static str {
        match self {
            Storage::Local(_) => "local folder",
            Storage::Azurite(_) => "Azurite",
            Storage::S3(_) => "moto S3",
        }
    }

    /// The repository URL for one check. Every check has its own folder, container
    /// or bucket (named after `slug`), created here as needed.
    fn url(&self, slug: &str) -> String {
        let bucket = format!("offsite-{slug}");
        match self {
            Storage::Local(dir) => dir.path().join(slug).display().to_string(),
            Storage::Azurite(azurite) => {
                azurite.create_container(&bucket).expect("create Azurite container");
                format!("az://{bucket}/{AZURE_PREFIX}")
            }
            Storage::S3(s3) => {
                s3.create_bucket(&bucket).expect("create S3 bucket");
                format!("s3://{bucket}/{S3_PREFIX}")
            }
        }
    }

    /// The object_store options reaching the server, named as environment variables
    /// (`AWS_ENDPOINT`) or, with `lowercase`, as object_store's own keys.
    fn options(&self, lowercase: bool) -> Vec<(String, String)> {
        let options = match self {
            Storage::Local(_) => Vec::new(),
            Storage::Azurite(azurite) => azurite.object_store_env(),
            Storage::S3(s3) => s3.object_store_env(),
        };
        if lowercase {
            options.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect()
        } else {
            options
        }
    }

    /// Opens `url` the way the CLI does, through `backend::open`.
    fn open_url(&self, url: &str) -> Arc<dyn Backend> {
        backend::open(url, &self.options(false)).unwrap_or_else(|e| panic!("open {url}: {e}"))
    }

    /// Opens the location of the check `slug`.
    fn open(&self, slug: &str) -> Arc<dyn Backend> {
        self.open_url(&self.url(slug))
    }

    /// Every file stored under the location of `slug`, as a path relative to the
    /// repository root, read around the backend (file system or object_store client).
    fn stored_paths(&self, slug: &str) -> Vec<String> {
        let mut paths = match self {
            Storage::Local(dir) => {
                let root = dir.path().join(slug);
                walk_files(&root).iter().map(|p| p.strip_prefix(&root).unwrap().display().to_string()).collect()
            }
            Storage::Azurite(azurite) => {
                let store = azurite.azure_store(&format!("offsite-{slug}")).expect("Azure client");
                list_store(store, AZURE_PREFIX)
            }
            Storage::S3(s3) => {
                let store = s3.s3_store(&format!("offsite-{slug}")).expect("S3 client");
                list_store(store, S3_PREFIX)
            }
        };
        paths.sort();
        paths
    }
}

/// Keys under `prefix` in an object store, relative to `prefix`.
fn list_store(store: Arc<dyn ObjectStore>, prefix: &str) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let prefix_path = object_store::path::Path::from(prefix);
    let metas: Vec<object_store::ObjectMeta> =
        runtime.block_on(store.list(Some(&prefix_path)).try_collect()).expect("list the store");
    metas
        .into_iter()
        .map(|meta| meta.location.as_ref().strip_prefix(&format!("{prefix}/")).unwrap().to_string())
        .collect()
}

// ---------------------------------------------------------------------------------
// The runner: every check on one backend, failures collected.
// ---------------------------------------------------------------------------------

/// A contract check: gets a backend at a fresh, never used location.
type Check = fn(&dyn Backend);

const CONTRACT: &[(&str, Check)] = &[
    ("fresh", fresh_location_is_empty),
    ("save-load", save_then_load_every_kind),
    ("missing", missing_files_are_not_found),
    ("ranges", load_range_reads_exactly_the_asked_bytes),
    ("list", list_shows_exactly_the_saved_files),
    ("idempotent", saving_twice_is_idempotent),
    ("remove", removed_files_are_gone_and_removing_again_is_ok),
];

fn run_suite(storage: &Storage) {
    let suite_started = Instant::now();
    let mut failures = Vec::new();
    let mut run = |slug: &str, check: &dyn Fn()| {
        let started = Instant::now();
        let outcome = panic::catch_unwind(AssertUnwindSafe(check));
        let took = started.elapsed();
        match outcome {
            Ok(()) => eprintln!("{}: {slug} ok ({took:.1?})", storage.name()),
            Err(payload) => {
                let message = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "(no message)".into());
                eprintln!("{}: {slug} FAILED ({took:.1?})", storage.name());
                failures.push(format!("  {slug}: {message}"));
            }
        }
    };

    for (slug, check) in CONTRACT {
        run(slug, &|| {
            let url = storage.url(slug);
            let backend = storage.open_url(&url);
            assert_eq!(backend.location(), url, "location() names the URL it was opened with");
            check(backend.as_ref());
        });
    }
    run("neighbours", &|| {
        let url = storage.url("neighbours");
        neighbours_are_invisible(storage.open_url(&url).as_ref(), storage.open_url(&format!("{url}-next")).as_ref());
    });
    run("layout", &|| {
        let expected = save_one_of_each_kind(storage.open("layout").as_ref());
        assert_eq!(storage.stored_paths("layout"), expected, "files are not where docs/REPOSITORY.md puts them");
    });
    run("repository", &|| repository_round_trip(storage, "repository"));
    run("passphrase", &|| wrong_passphrase_is_refused(storage, "passphrase"));
    run("empty", &|| empty_location_is_not_a_repository(storage, "empty"));

    eprintln!("{}: suite took {:.1?}", storage.name(), suite_started.elapsed());
    assert!(failures.is_empty(), "{} fails the backend suite:\n{}", storage.name(), failures.join("\n"));
}

#[test]
fn local_folder_passes_the_backend_suite() {
    run_suite(&Storage::Local(tempfile::tempdir().unwrap()));
}

#[test]
fn azurite_passes_the_backend_suite() {
    run_suite(&Storage::Azurite(Azurite::start().expect("start Azurite")));
}

#[test]
fn moto_s3_passes_the_backend_suite() {
    run_suite(&Storage::S3(S3Server::start().expect("start moto")));
}

// ---------------------------------------------------------------------------------
// The contract checks, written once for every backend.
// ---------------------------------------------------------------------------------

/// A file named by the hash of its content, like every repository file but config.
fn file(len: usize, seed: u64) -> (String, Bytes) {
    let data = noise(len, seed);
    (Id::of_stored(&data).to_hex(), Bytes::from(data))
}

fn name_for(kind: FileKind, name: String) -> String {
    if kind == FileKind::Config {
        "config".to_string()
    } else {
        name
    }
}

fn sorted(mut files: Vec<FileInfo>) -> Vec<FileInfo> {
    files.sort_by(|a, b| a.name.cmp(&b.name));
    files
}

fn fresh_location_is_empty(b: &dyn Backend) {
    b.create().expect("create");
    b.create().expect("create again (an interrupted init is rerun)");
    for kind in FileKind::ALL {
        assert_eq!(b.list(kind).expect("list"), vec![], "{kind:?} of a new location");
    }
    assert_eq!(b.size(FileKind::Config, "config").expect("size"), None);
}

fn save_then_load_every_kind(b: &dyn Backend) {
    b.create().unwrap();
    const BIG: usize = (5 << 20) + 123;
    for (k, kind) in FileKind::ALL.into_iter().enumerate() {
        for (len, what) in [(0, "empty"), (1, "one byte"), (40_000, "small"), (BIG, "~5 MiB")] {
            let (name, data) = file(len, k as u64 * 10 + len as u64);
            let name = name_for(kind, name);
            b.save(kind, &name, data.clone()).unwrap_or_else(|e| panic!("save {what} {kind:?}: {e}"));
            let loaded = b.load(kind, &name).unwrap_or_else(|e| panic!("load {what} {kind:?}: {e}"));
            assert!(loaded == data, "{what} {kind:?}: loaded {} bytes differ from the {} saved", loaded.len(), len);
            assert_eq!(b.size(kind, &name).unwrap(), Some(len as u64), "size of {what} {kind:?}");
        }
    }
}

fn missing_files_are_not_found(b: &dyn Backend) {
    b.create().unwrap();
    // One file of each kind exists, so only the name is missing, not the folder.
    save_one_of_each_kind(b);
    for kind in FileKind::ALL {
        let (missing, _) = file(10, 1000 + kind as u64);
        // The only config is "config", which exists: remove it to ask for a missing one.
        let missing = if kind == FileKind::Config {
            b.remove(kind, "config").unwrap();
            "config".to_string()
        } else {
            missing
        };
        assert_eq!(b.size(kind, &missing).expect("size of a missing file"), None, "{kind:?}");
        match b.load(kind, &missing) {
            Ok(bytes) => panic!("load of a missing {kind:?} returned {} bytes", bytes.len()),
            Err(e) => assert!(e.is_not_found(), "load of a missing {kind:?}: not a NotFound error: {e:?}"),
        }
        match b.load_range(kind, &missing, 0, 1) {
            Ok(bytes) => panic!("load_range of a missing {kind:?} returned {} bytes", bytes.len()),
            Err(e) => assert!(e.is_not_found(), "load_range of a missing {kind:?}: not a NotFound error: {e:?}"),
        }
    }
}

fn load_range_reads_exactly_the_asked_bytes(b: &dyn Backend) {
    b.create().unwrap();
    let (name, data) = file(300_001, 7);
    let len = data.len() as u64;
    b.save(FileKind::Pack, &name, data.clone()).unwrap();
    for (offset, length) in [
        (0, 1),
        (0, 4096),
        (1, 10),
        (150_000, 33_333),
        (len - 4096, 4096),
        (len - 1, 1),
        (0, len),
        (12_345, len - 12_345),
    ] {
        let got = b
            .load_range(FileKind::Pack, &name, offset, length)
            .unwrap_or_else(|e| panic!("load_range({offset}, {length}) of a {len}-byte file: {e}"));
        let want = &data[offset as usize..(offset + length) as usize];
        assert!(got == want, "load_range({offset}, {length}): got {} bytes, not the asked ones", got.len());
    }
    // Nothing asked, nothing returned: at the start, inside, at the end, of an empty file.
    let (empty, no_data) = file(0, 8);
    b.save(FileKind::Pack, &empty, no_data).unwrap();
    for (name, offset) in [(&name, 0), (&name, 150_000), (&name, len), (&empty, 0)] {
        match b.load_range(FileKind::Pack, name, offset, 0) {
            Ok(bytes) => assert!(bytes.is_empty(), "load_range({offset}, 0) returned {} bytes", bytes.len()),
            Err(e) => panic!("load_range({offset}, 0) of a file that holds offset {offset}: {e}"),
        }
    }
    for (offset, length) in [(len - 10, 11), (len - 10, 4096), (len, 1), (len + 1000, 10)] {
        if let Ok(bytes) = b.load_range(FileKind::Pack, &name, offset, length) {
            panic!("load_range({offset}, {length}) past the end of a {len}-byte file returned {} bytes", bytes.len());
        }
    }
}

fn list_shows_exactly_the_saved_files(b: &dyn Backend) {
    b.create().unwrap();
    let mut expected: Vec<Vec<FileInfo>> = vec![Vec::new(); FileKind::ALL.len()];
    for (k, kind) in FileKind::ALL.into_iter().enumerate() {
        // Packs: enough of them to land in several data/<xx>/ folders.
        let count = match kind {
            FileKind::Config => 1,
            FileKind::Pack => 12,
            _ => 3,
        };
        for i in 0..count {
            let (name, data) = file(100 + 37 * i + k, (k * 100 + i) as u64);
            let name = name_for(kind, name);
            expected[k].push(FileInfo { name: name.clone(), size: data.len() as u64 });
            b.save(kind, &name, data).unwrap();
        }
    }
    let pack_folders: HashSet<_> = expected[2].iter().map(|f| &f.name[..2]).collect();
    assert!(pack_folders.len() > 1, "the packs should spread over several folders");
    for (k, kind) in FileKind::ALL.into_iter().enumerate() {
        let listed = sorted(b.list(kind).unwrap_or_else(|e| panic!("list {kind:?}: {e}")));
        assert_eq!(listed, sorted(expected[k].clone()), "list({kind:?})");
    }
}

fn saving_twice_is_idempotent(b: &dyn Backend) {
    b.create().unwrap();
    for kind in FileKind::ALL {
        let (name, data) = file(5000, 42 + kind as u64);
        let name = name_for(kind, name);
        b.save(kind, &name, data.clone()).unwrap();
        b.save(kind, &name, data.clone()).unwrap_or_else(|e| panic!("saving {kind:?} {name} again: {e}"));
        assert!(b.load(kind, &name).unwrap() == data, "{kind:?} changed by a second save");
        assert_eq!(b.list(kind).unwrap(), vec![FileInfo { name, size: data.len() as u64 }], "list({kind:?})");
    }
}

fn removed_files_are_gone_and_removing_again_is_ok(b: &dyn Backend) {
    b.create().unwrap();
    for kind in FileKind::ALL {
        let (keep, keep_data) = file(300, 500 + kind as u64);
        let (gone, gone_data) = file(400, 600 + kind as u64);
        let gone = name_for(kind, gone);
        if kind != FileKind::Config {
            b.save(kind, &keep, keep_data.clone()).unwrap();
        }
        b.save(kind, &gone, gone_data).unwrap();
        b.remove(kind, &gone).unwrap_or_else(|e| panic!("remove {kind:?}: {e}"));
        assert_eq!(b.size(kind, &gone).unwrap(), None, "size of a removed {kind:?}");
        assert!(b.load(kind, &gone).is_err_and(|e| e.is_not_found()), "load of a removed {kind:?}");
        let expected = if kind == FileKind::Config {
            vec![]
        } else {
            vec![FileInfo { name: keep.clone(), size: keep_data.len() as u64 }]
        };
        assert_eq!(b.list(kind).unwrap(), expected, "list({kind:?}) after remove");
        b.remove(kind, &gone).unwrap_or_else(|e| panic!("removing a removed {kind:?} again: {e}"));
        let (never, _) = file(1, 700 + kind as u64);
        b.remove(kind, &name_for(kind, never)).unwrap_or_else(|e| panic!("removing a never saved {kind:?}: {e}"));
    }
}

/// A repository whose location is a prefix of this one's (`<url>-next`) is not seen.
fn neighbours_are_invisible(b: &dyn Backend, next_door: &dyn Backend) {
    b.create().unwrap();
    next_door.create().unwrap();
    save_one_of_each_kind(next_door);
    for kind in FileKind::ALL {
        assert_eq!(
            b.list(kind).unwrap(),
            vec![],
            "{kind:?} files of {} show in {}",
            next_door.location(),
            b.location()
        );
    }
    let expected = save_one_of_each_kind(b);
    let listed: usize = FileKind::ALL.into_iter().map(|kind| next_door.list(kind).unwrap().len()).sum();
    assert_eq!(listed, expected.len(), "{} sees files of {}", next_door.location(), b.location());
}

/// Saves one file of each kind; returns their paths as docs/REPOSITORY.md lays them out.
fn save_one_of_each_kind(b: &dyn Backend) -> Vec<String> {
    b.create().unwrap();
    let mut paths = Vec::new();
    for kind in FileKind::ALL {
        let (name, data) = file(64, 9000 + kind as u64);
        let name = name_for(kind, name);
        b.save(kind, &name, data).unwrap();
        paths.push(match kind {
            FileKind::Config => "config".to_string(),
            FileKind::Key => format!("keys/{name}"),
            FileKind::Pack => format!("data/{}/{name}", &name[..2]),
            FileKind::Index => format!("index/{name}"),
            FileKind::Snapshot => format!("snapshots/{name}"),
            FileKind::Lock => format!("locks/{name}"),
        });
    }
    paths.sort();
    paths
}

// ---------------------------------------------------------------------------------
// Repositories through the public engine API.
// ---------------------------------------------------------------------------------

/// A small tree: text that compresses, random data (twice, to deduplicate), an empty
/// file, nested folders and a symlink. A few hundred KiB.
fn make_small_tree(root: &Path) {
    fs::create_dir_all(root.join("docs/notes")).unwrap();
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::write(root.join("docs/readme.txt"), text(30_000, 1)).unwrap();
    for i in 0..8u64 {
        fs::write(root.join(format!("docs/notes/note{i}.txt")), text(2_000 + 9_000 * i as usize, 10 + i)).unwrap();
    }
    fs::write(root.join("bin/random.bin"), noise(200_000, 2)).unwrap();
    fs::write(root.join("bin/copy.bin"), noise(200_000, 2)).unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    std::os::unix::fs::symlink("docs/readme.txt", root.join("readme-link")).unwrap();
}

fn assert_checks_out(repo: &Repository, when: &str) {
    let report = check(repo, CheckOptions { read_data: true }, &Progress::default())
        .unwrap_or_else(|e| panic!("check {when}: {e}"));
    assert!(report.is_ok(), "check {when}: {:?}", report.errors);
    assert!(report.blobs_read > 0, "check {when} read no data");
}

fn assert_restores(repo: &Repository, source: &Path, target: &Path) {
    let restored = restore(repo, "latest", target);
    assert!(restored.failures.is_empty(), "{:?}", restored.failures);
    assert_eq!(restored.verified, restored.files, "every restored file is verified");
    assert_same_tree(source, &restored_path(target, source));
}

/// The data blobs in the index, and the packs holding them.
fn data_blobs_and_packs(repo: &Repository) -> (BTreeSet<String>, BTreeSet<String>) {
    let index = repo.load_index().expect("load the index");
    index
        .blobs()
        .filter(|(_, location)| location.blob_type == BlobType::Data)
        .map(|(id, location)| (id.to_hex(), index.pack(location.pack).id.to_hex()))
        .unzip()
}

fn repository_round_trip(storage: &Storage, slug: &str) {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    make_small_tree(&source);
    let url = storage.url(slug);
    let repo = Repository::init(storage.open_url(&url), PASSPHRASE, test_options()).expect("init");

    let first = backup(&repo, &[&source]);
    assert!(first.skipped.is_empty(), "{:?}", first.skipped);
    assert!(first.snapshot.summary.data_added > 0);
    let (blobs, packs) = data_blobs_and_packs(&repo);
    assert!(!blobs.is_empty());

    // Only trees may be new (they record access times, which the first backup's reads
    // moved); no file is read again and no data blob or data pack is added.
    let second = backup(&repo, &[&source]);
    let s = &second.snapshot.summary;
    assert_eq!((s.files_new, s.files_changed, s.files_unmodified, s.bytes_read), (0, 0, 12, 0), "{s:?}");
    let (blobs_now, packs_now) = data_blobs_and_packs(&repo);
    assert_eq!(blobs_now, blobs, "an unchanged tree adds no data blobs");
    assert_eq!(packs_now, packs, "an unchanged tree adds no data packs");

    assert_restores(&repo, &source, &work.path().join("restore-1"));
    assert_checks_out(&repo, "after two backups");

    // New random data, then forget the first two snapshots: prune has data to free.
    fs::write(source.join("bin/random.bin"), noise(200_000, 3)).unwrap();
    let third = backup(&repo, &[&source]);
    assert!(third.snapshot.summary.data_added >= 200_000, "{:?}", third.snapshot.summary);
    let decisions =
        retention::forget(&repo, &RetentionPolicy { keep_last: 1, ..Default::default() }, false).expect("forget");
    assert_eq!(decisions.iter().filter(|d| !d.keep).count(), 2);
    assert_eq!(repo.snapshots().unwrap().len(), 1);
    let report = prune::prune(&repo).expect("prune");
    assert!(report.blobs_removed > 0, "prune freed nothing: {report:?}");
    assert!(report.bytes_after < report.bytes_before, "{report:?}");
    assert_eq!(repo.backend().list(FileKind::Lock).unwrap(), vec![], "locks are released");
    assert_checks_out(&repo, "after prune");

    // A new session on the same URL sees the pruned repository whole.
    let reopened = open_repo(storage.open_url(&url));
    assert_checks_out(&reopened, "after reopening");
    assert_restores(&reopened, &source, &work.path().join("restore-2"));
}

fn wrong_passphrase_is_refused(storage: &Storage, slug: &str) {
    let url = storage.url(slug);
    Repository::init(storage.open_url(&url), PASSPHRASE, test_options()).expect("init");
    match Repository::open(storage.open_url(&url), b"not the passphrase") {
        Ok(_) => panic!("a wrong passphrase opened {url}"),
        Err(Error::WrongPassphrase { location }) => assert_eq!(location, url),
        Err(other) => panic!("wrong passphrase for {url}: expected WrongPassphrase, got {other:?}"),
    }
    // The right one opens it, with option names in either spelling.
    let lowercase = backend::open(&url, &storage.options(true)).expect("open with lowercase option names");
    Repository::open(lowercase, PASSPHRASE).expect("open with the right passphrase");
    match Repository::init(storage.open_url(&url), PASSPHRASE, test_options()) {
        Ok(_) => panic!("init over the repository at {url} succeeded"),
        Err(Error::AlreadyInitialised { location }) => assert_eq!(location, url),
        Err(other) => panic!("init over {url}: expected AlreadyInitialised, got {other:?}"),
    }
}

fn empty_location_is_not_a_repository(storage: &Storage, slug: &str) {
    let url = storage.url(slug);
    match Repository::open(storage.open_url(&url), PASSPHRASE) {
        Ok(_) => panic!("opened a repository at the empty {url}"),
        Err(Error::NotARepository { location, .. }) => assert_eq!(location, url),
        Err(other) => panic!("empty {url}: expected NotARepository, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------
// Backends that cannot work.
// ---------------------------------------------------------------------------------

#[test]
fn unreachable_s3_fails_with_a_remote_error_naming_the_location() {
    let url = "s3://bucket/p";
    // Credentials are given so object_store does not go looking for instance metadata.
    let options: Vec<(String, String)> = [
        ("AWS_ENDPOINT", "http://127.0.0.1:1"),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let started = Instant::now();
    let storage = backend::open(url, &options).expect("opening does not connect yet");
    let err = match Repository::open(storage, PASSPHRASE) {
        Ok(_) => panic!("opened a repository at an unreachable endpoint"),
        Err(e) => e,
    };
    let took = started.elapsed();
    eprintln!("unreachable S3 failed after {took:.1?}: {err}");
    match &err {
        Error::Backend(BackendError::Remote { location, .. }) => assert_eq!(location, url),
        other => panic!("expected Error::Backend(BackendError::Remote), got {other:?}"),
    }
    assert!(err.to_string().contains(url), "the message does not name {url}: {err}");
    assert!(took < Duration::from_secs(30), "giving up on a refused connection took {took:?}");
}

#[test]
fn unknown_option_names_are_refused() {
    let options = [("AWS_NO_SUCH_SETTING".to_string(), "x".to_string())];
    match backend::open("s3://bucket/p", &options) {
        Ok(_) => panic!("an unknown option was accepted"),
        Err(e) => assert!(matches!(e, BackendError::InvalidLocation { .. }), "{e:?}"),
    }
}
