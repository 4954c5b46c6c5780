//! Shared fixtures: repositories with cheap keys, generated trees, tree comparison.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use offsite_engine::archiver::{self, BackupOptions, BackupOutcome};
use offsite_engine::backend::{self, Backend};
use offsite_engine::chunker::ChunkerParams;
use offsite_engine::crypto::KdfParams;
use offsite_engine::progress::Progress;
use offsite_engine::restorer::{self, RestoreOptions, RestoreOutcome};
use offsite_engine::{InitOptions, Repository};

pub const PASSPHRASE: &[u8] = b"correct horse battery staple";

/// Small chunks and packs so small trees still make many of both.
pub fn test_options() -> InitOptions {
    InitOptions {
        kdf: KdfParams::insecure_for_tests(),
        chunker: ChunkerParams { min_size: 4096, avg_size: 16384, max_size: 65536 },
        pack_size: 1 << 20,
        compression: 3,
    }
}

pub fn init_repo(dir: &Path) -> Repository {
    let backend = backend::open(dir.to_str().unwrap(), &[]).unwrap();
    Repository::init(backend, PASSPHRASE, test_options()).unwrap()
}

pub fn open_repo(backend: Arc<dyn Backend>) -> Repository {
    Repository::open(backend, PASSPHRASE).unwrap()
}

pub fn backup(repo: &Repository, paths: &[&Path]) -> BackupOutcome {
    let options = BackupOptions::new(paths.iter().map(|p| p.to_path_buf()).collect());
    archiver::backup(repo, &options, &Progress::default()).unwrap()
}

pub fn restore(repo: &Repository, spec: &str, target: &Path) -> RestoreOutcome {
    let (_, snapshot) = repo.find_snapshot(spec).unwrap();
    let options = RestoreOptions { target: target.to_path_buf(), verify: true, ..Default::default() };
    restorer::restore(repo, &snapshot, &options, &Progress::default()).unwrap()
}

/// Where a source path lands under a restore target.
pub fn restored_path(target: &Path, source: &Path) -> PathBuf {
    target.join(source.strip_prefix("/").unwrap())
}

/// Deterministic pseudo-random bytes.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
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

/// Text that compresses, like source code.
pub fn text(len: usize, seed: u64) -> Vec<u8> {
    let words = ["fn", "let", "match", "offsite", "drive", "import", "job", "vault", "{", "}", ";", "\n"];
    let picks = noise(len / 3 + 1, seed);
    let mut out = Vec::with_capacity(len);
    for p in picks {
        out.extend_from_slice(words[p as usize % words.len()].as_bytes());
        out.push(b' ');
        if out.len() >= len {
            break;
        }
    }
    out.truncate(len);
    out
}

/// A tree with every kind of entry the engine keeps.
pub fn make_tree(root: &Path, seed: u64) {
    fs::create_dir_all(root.join("src/nested/deeper")).unwrap();
    fs::create_dir_all(root.join("empty")).unwrap();
    fs::create_dir_all(root.join("media")).unwrap();
    for i in 0..20u64 {
        fs::write(root.join(format!("src/file{i}.rs")), text(1000 + (i as usize * 997) % 20000, seed + i)).unwrap();
    }
    fs::write(root.join("src/nested/deeper/big.txt"), text(300_000, seed + 100)).unwrap();
    fs::write(root.join("media/random.bin"), noise(500_000, seed + 200)).unwrap();
    fs::write(root.join("media/duplicate.bin"), noise(500_000, seed + 200)).unwrap();
    fs::write(root.join("zero-length"), b"").unwrap();
    fs::set_permissions(root.join("src/file1.rs"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::set_permissions(root.join("src/file2.rs"), fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("src/file1.rs", root.join("link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", root.join("dangling")).unwrap();
    fs::hard_link(root.join("src/file3.rs"), root.join("hardlink.rs")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let _ = xattr::set(root.join("src/file4.rs"), "user.offsite.test", b"kept");
    let old = filetime::FileTime::from_unix_time(1_500_000_000, 123_456_789);
    filetime::set_file_mtime(root.join("src/file5.rs"), old).unwrap();
}

/// Asserts two trees are equal in names, types, content, modes, mtimes (files),
/// symlink targets, extended attributes and hard-link structure.
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    let mut inode_pairs = std::collections::HashMap::new();
    compare(expected, actual, &mut inode_pairs);
}

fn compare(a: &Path, b: &Path, links: &mut std::collections::HashMap<u64, u64>) {
    let names = |p: &Path| {
        let mut v: Vec<_> = fs::read_dir(p).unwrap().map(|e| e.unwrap().file_name()).collect();
        v.sort();
        v
    };
    assert_eq!(names(a), names(b), "entries of {} differ", b.display());
    for name in names(a) {
        let (pa, pb) = (a.join(&name), b.join(&name));
        let (ma, mb) = (fs::symlink_metadata(&pa).unwrap(), fs::symlink_metadata(&pb).unwrap());
        assert_eq!(ma.file_type(), mb.file_type(), "type of {}", pb.display());
        if ma.file_type().is_symlink() {
            assert_eq!(fs::read_link(&pa).unwrap(), fs::read_link(&pb).unwrap(), "target of {}", pb.display());
            continue;
        }
        assert_eq!(ma.mode(), mb.mode(), "mode of {}", pb.display());
        assert_eq!(ma.uid(), mb.uid(), "owner of {}", pb.display());
        if ma.is_dir() {
            compare(&pa, &pb, links);
            assert_eq!(ma.mtime(), mb.mtime(), "mtime of folder {}", pb.display());
        } else if ma.is_file() {
            assert_eq!(fs::read(&pa).unwrap(), fs::read(&pb).unwrap(), "content of {}", pb.display());
            assert_eq!((ma.mtime(), ma.mtime_nsec()), (mb.mtime(), mb.mtime_nsec()), "mtime of {}", pb.display());
            let xa: Vec<_> = xattr::list(&pa).map(|l| l.collect()).unwrap_or_default();
            let xb: Vec<_> = xattr::list(&pb).map(|l| l.collect()).unwrap_or_default();
            assert_eq!(xa, xb, "extended attributes of {}", pb.display());
            if ma.nlink() > 1 {
                let expected = links.entry(ma.ino()).or_insert(mb.ino());
                assert_eq!(*expected, mb.ino(), "{} should be a hard link", pb.display());
                assert_eq!(ma.nlink(), mb.nlink(), "link count of {}", pb.display());
            }
        }
    }
}

/// Every file below `dir`, recursively.
pub fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk_files(&path));
        } else {
            out.push(path);
        }
    }
    out
}
