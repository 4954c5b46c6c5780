//! Hostile repository objects: every parser of what a backend hands back (pack
//! tails, index files, trees, snapshots, locks, key files, config, sealed files)
//! is fed random bytes, truncations, bit flips of valid objects and huge declared
//! lengths. None may panic, each must answer with its typed error, and none may
//! allocate more than a bound for a small input that claims a huge size (the
//! binary counts allocations to prove it).
//!
//! `PROPTEST_CASES` raises the number of inputs per parser (the soak sets it).

mod common;

use std::sync::Arc;

use bytes::Bytes;
use offsite_engine::backend::{self, Backend, FileKind};
use offsite_engine::crypto::{CryptoError, EncryptionKey, Purpose, SEAL_OVERHEAD};
use offsite_engine::id::Id;
use offsite_engine::pack_reader;
use offsite_engine::repofile::config::{ConfigError, RepositoryConfig};
use offsite_engine::repofile::index::IndexFile;
use offsite_engine::repofile::keyfile::KeyFile;
use offsite_engine::repofile::lock::LockFile;
use offsite_engine::repofile::pack::PackHeader;
use offsite_engine::repofile::snapshot::Snapshot;
use offsite_engine::repofile::tree::Tree;
use offsite_engine::repofile::DecodeError;
use offsite_engine::{Error, Repository};
use offsite_testbed::allocation::{cases, is_counting, peak_during, CountingAllocator};
use proptest::prelude::*;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// What a parser may hold at once for an input of `len` bytes: a fixed allowance
/// (serde pre-sizes a sequence to at most 1 MiB whatever its declared length) plus
/// a generous multiple of the input.
fn bound(len: usize) -> u64 {
    4 * 1024 * 1024 + 64 * len as u64
}

fn assert_bounded(what: &str, len: usize, peak: u64) {
    assert!(is_counting(), "this binary must count allocations");
    assert!(peak <= bound(len), "{what}: {peak} bytes allocated for a {len}-byte input");
}

/// A tiny repository, backed up once, whose files are mutated by the tests.
struct Fixture {
    _dir: tempfile::TempDir,
    backend: Arc<dyn Backend>,
    repo: Repository,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    std::fs::create_dir(&source).unwrap();
    std::fs::write(source.join("a"), common::noise(100_000, 1)).unwrap();
    std::fs::write(source.join("b"), b"small").unwrap();
    let repo_dir = dir.path().join("repo");
    let repo = common::init_repo(&repo_dir);
    common::backup(&repo, &[&source]);
    let backend = backend::open(repo_dir.to_str().unwrap(), &[]).unwrap();
    Fixture { _dir: dir, backend, repo }
}

fn stored(backend: &dyn Backend, kind: FileKind) -> Vec<(String, Bytes)> {
    backend.list(kind).unwrap().into_iter().map(|f| (f.name.clone(), backend.load(kind, &f.name).unwrap())).collect()
}

/// A postcard object: version byte 1, then a sequence claiming `count` elements,
/// then a few bytes.
fn huge_count(count: u64, tail: &[u8]) -> Vec<u8> {
    let mut out = vec![1u8];
    let mut v = count;
    loop {
        let byte = (v & 0x7F) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(tail);
    out
}

fn mutate(mut bytes: Vec<u8>, edits: &[(prop::sample::Index, u8)], cut: Option<prop::sample::Index>) -> Vec<u8> {
    if !bytes.is_empty() {
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] ^= value | 1;
        }
    }
    if let Some(cut) = cut {
        let keep = cut.index(bytes.len() + 1);
        bytes.truncate(keep);
    }
    bytes
}

fn edits() -> impl Strategy<Value = Vec<(prop::sample::Index, u8)>> {
    proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6)
}

fn garbage(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

/// A directory with a file, a subdirectory and a symlink, with extended attributes.
fn sample_tree() -> Tree {
    use offsite_engine::repofile::tree::{ExtendedAttribute, Node, NodeKind, Timestamp};
    let node = |name: &str, kind: NodeKind| Node {
        name: name.as_bytes().to_vec(),
        kind,
        size: 1234,
        mode: 0o100644,
        uid: 1000,
        gid: 1000,
        mtime: Timestamp { seconds: 1_700_000_000, nanos: 5 },
        ctime: Timestamp { seconds: 1_700_000_001, nanos: 6 },
        inode: 77,
        device: 2049,
        links: 1,
        xattrs: vec![ExtendedAttribute { name: b"user.a".to_vec(), value: b"v".to_vec() }],
    };
    Tree {
        nodes: vec![
            node("a", NodeKind::File { content: vec![Id([1; 32]), Id([2; 32])] }),
            node("d", NodeKind::Dir { subtree: Id([3; 32]) }),
            node("l", NodeKind::Symlink { target: b"../a".to_vec() }),
        ],
    }
}

/// Decodes with the binary decoders, checking the error is theirs and bounded.
fn decode_all(bytes: &[u8]) {
    let check = |what: &str, result: Result<(), DecodeError>, peak: u64| {
        if let Err(e) = result {
            let text = e.to_string();
            assert!(text.contains("malformed") || text.contains("newer"), "{what}: vague error {text}");
        }
        assert_bounded(what, bytes.len(), peak);
    };
    let (r, peak) = peak_during(|| PackHeader::decode(bytes).map(drop));
    check("pack header", r, peak);
    let (r, peak) = peak_during(|| IndexFile::decode(bytes).map(drop));
    check("index", r, peak);
    let (r, peak) = peak_during(|| Tree::decode(bytes).map(drop));
    check("tree", r, peak);
}

/// Parses with the JSON parsers, checking nothing panics and allocation is bounded.
fn parse_json_all(bytes: &[u8]) {
    let (r, peak) = peak_during(|| RepositoryConfig::parse(bytes).map(drop));
    assert_bounded("config", bytes.len(), peak);
    if let Err(e) = r {
        assert!(matches!(e, ConfigError::NotOurs | ConfigError::Newer(_) | ConfigError::Damaged(_)));
    }
    let (_, peak) = peak_during(|| serde_json::from_slice::<Snapshot>(bytes).map(drop));
    assert_bounded("snapshot", bytes.len(), peak);
    let (_, peak) = peak_during(|| serde_json::from_slice::<LockFile>(bytes).map(drop));
    assert_bounded("lock", bytes.len(), peak);
    let (_, peak) = peak_during(|| serde_json::from_slice::<KeyFile>(bytes).map(drop));
    assert_bounded("key file", bytes.len(), peak);
}

#[test]
fn huge_declared_counts_are_refused_without_allocating_them() {
    for count in [u64::from(u32::MAX), u64::MAX >> 1, 1 << 40, 1 << 20] {
        for tail in [&b""[..], &[0u8; 40][..], &[0xFF; 200][..]] {
            let bytes = huge_count(count, tail);
            decode_all(&bytes);
            assert!(PackHeader::decode(&bytes).is_err());
            assert!(IndexFile::decode(&bytes).is_err());
            assert!(Tree::decode(&bytes).is_err());
        }
    }
    // A tree node whose name claims 4 GiB.
    let mut bytes = huge_count(1, &[]);
    bytes.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, 0x0F, b'x']);
    decode_all(&bytes);
    assert!(Tree::decode(&bytes).is_err());
}

#[test]
fn a_sealed_object_of_any_length_opens_with_a_typed_error() {
    let key = EncryptionKey::from_bytes([3; 32]);
    for len in 0..=SEAL_OVERHEAD + 2 {
        let mut bytes = vec![1u8; len];
        let result = key.open(Purpose::Snapshot, &bytes);
        if len < SEAL_OVERHEAD {
            assert!(matches!(result, Err(CryptoError::TooShort(n)) if n == len));
        } else {
            assert!(matches!(result, Err(CryptoError::Authentication)));
        }
        if len > 0 {
            bytes[0] = 7;
            if len >= SEAL_OVERHEAD {
                assert!(matches!(key.open(Purpose::Snapshot, &bytes), Err(CryptoError::UnknownVersion(7))));
            }
        }
    }
}

/// A pack whose tail claims a header longer than the pack is refused by its size.
#[test]
fn a_pack_tail_claiming_a_huge_header_is_refused_by_the_packs_size() {
    let f = fixture();
    for claimed in [u32::MAX, u32::MAX / 2, 1 << 20, 100, 0] {
        let mut bytes = vec![0u8; 300];
        bytes.extend_from_slice(&claimed.to_le_bytes());
        let id = Id::of_stored(&bytes);
        f.backend.save(FileKind::Pack, &id.to_hex(), Bytes::from(bytes.clone())).unwrap();
        let (r, peak) = peak_during(|| pack_reader::read_header(&f.repo, &id, bytes.len() as u64));
        assert_bounded("pack tail", bytes.len(), peak);
        match r {
            Err(Error::Damaged { what, reason }) => {
                assert!(what.contains(&id.short()), "{what}");
                assert!(!reason.is_empty());
            }
            other => panic!("claimed {claimed}: {other:?}"),
        }
    }
}

#[test]
fn damaged_key_files_are_named_not_taken_for_a_wrong_passphrase() {
    let f = fixture();
    let keys = stored(f.backend.as_ref(), FileKind::Key);
    for (name, _) in &keys {
        f.backend.remove(FileKind::Key, name).unwrap();
    }
    let garbage = b"{\"not\": \"a key file\"".to_vec();
    let name = Id::of_stored(&garbage).to_hex();
    f.backend.save(FileKind::Key, &name, Bytes::from(garbage)).unwrap();
    match Repository::open(f.backend.clone(), common::PASSPHRASE) {
        Err(Error::Damaged { what, reason }) => {
            assert!(reason.contains(&name[..8]), "{what}: {reason}");
        }
        Err(other) => panic!("garbage key file: {other}"),
        Ok(_) => panic!("garbage key file opened the repository"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    #[test]
    fn random_bytes_never_panic_nor_allocate_unbounded(bytes in garbage(2048)) {
        decode_all(&bytes);
        parse_json_all(&bytes);
        let key = EncryptionKey::from_bytes([5; 32]);
        let (r, peak) = peak_during(|| key.open(Purpose::Index, &bytes).map(drop));
        assert_bounded("sealed file", bytes.len(), peak);
        prop_assert!(r.is_err());
    }

    #[test]
    fn random_bytes_after_a_valid_version_byte_never_panic(bytes in garbage(512)) {
        let mut versioned = vec![1u8];
        versioned.extend_from_slice(&bytes);
        decode_all(&versioned);
    }
}

/// The repository's real files, mutated: every reader answers with its typed error.
mod stored_files {
    use super::*;
    use std::sync::OnceLock;

    fn shared() -> &'static Fixture {
        static FIXTURE: OnceLock<Fixture> = OnceLock::new();
        FIXTURE.get_or_init(fixture)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases(64)))]

        /// A mutated or truncated pack: its header is refused as damaged, naming the
        /// pack, or (when the flip missed the header) read as before.
        #[test]
        fn mutated_packs_are_named(which in any::<prop::sample::Index>(), edits in edits(), cut in proptest::option::of(any::<prop::sample::Index>())) {
            let f = shared();
            let packs = stored(f.backend.as_ref(), FileKind::Pack);
            let (name, original) = &packs[which.index(packs.len())];
            let id: Id = name.parse().unwrap();
            let good = pack_reader::read_header(&f.repo, &id, original.len() as u64).unwrap();
            let bytes = mutate(original.to_vec(), &edits, cut);
            let changed = Id::of_stored(&bytes);
            f.backend.save(FileKind::Pack, &changed.to_hex(), Bytes::from(bytes.clone())).unwrap();
            let (r, peak) = peak_during(|| pack_reader::read_header(&f.repo, &changed, bytes.len() as u64));
            assert_bounded("pack", bytes.len(), peak);
            match r {
                Ok(header) => prop_assert_eq!(header, good, "a changed header was accepted"),
                Err(Error::Damaged { what, .. }) => prop_assert!(what.contains(&changed.short()), "{}", what),
                Err(other) => prop_assert!(false, "pack: {}", other),
            }
            if changed != id {
                f.backend.remove(FileKind::Pack, &changed.to_hex()).unwrap();
            }
        }

        /// Mutated index and snapshot files (stored under the name of their new
        /// content, as an attacker would) fail authentication, named.
        #[test]
        fn mutated_sealed_files_are_named(edits in edits(), cut in proptest::option::of(any::<prop::sample::Index>()), snapshot in any::<bool>()) {
            let f = shared();
            let kind = if snapshot { FileKind::Snapshot } else { FileKind::Index };
            let (name, original) = stored(f.backend.as_ref(), kind).remove(0);
            let bytes = mutate(original.to_vec(), &edits, cut);
            let changed = Id::of_stored(&bytes);
            prop_assume!(changed.to_hex() != name);
            f.backend.save(kind, &changed.to_hex(), Bytes::from(bytes.clone())).unwrap();
            let (r, peak) = peak_during(|| if snapshot {
                f.repo.load_snapshot(&changed).map(drop)
            } else {
                f.repo.load_index_file(&changed).map(drop)
            });
            assert_bounded("sealed file", bytes.len(), peak);
            f.backend.remove(kind, &changed.to_hex()).unwrap();
            match r {
                Err(Error::Damaged { what, .. }) => prop_assert!(what.contains(&changed.short()), "{}", what),
                other => prop_assert!(false, "{:?}", other.map(|_| ())),
            }
        }

        /// Mutated JSON files (config, key file) never panic and stay bounded; a
        /// mutated key file never opens the repository with another master key.
        #[test]
        fn mutated_json_files_never_panic(edits in edits(), cut in proptest::option::of(any::<prop::sample::Index>())) {
            let f = shared();
            let config = f.backend.load(FileKind::Config, "config").unwrap();
            parse_json_all(&mutate(config.to_vec(), &edits, cut));
            let (_, key) = stored(f.backend.as_ref(), FileKind::Key).remove(0);
            let bytes = mutate(key.to_vec(), &edits, cut);
            parse_json_all(&bytes);
            if let Ok(file) = serde_json::from_slice::<KeyFile>(&bytes) {
                // Only cheap parameters: a mutation of the test's 64 KiB can reach 99 KiB.
                if file.kdf.memory_kib < 1024 && file.kdf.iterations < 10 {
                    let (r, peak) = peak_during(|| file.unwrap(common::PASSPHRASE).map(drop));
                    assert_bounded("key file", bytes.len() + 1024 * 1024, peak);
                    if bytes != key.to_vec() {
                        prop_assert!(r.is_err() || serde_json::from_slice::<KeyFile>(&key).unwrap().sealed_master_key == file.sealed_master_key);
                    }
                }
            }
        }

        #[test]
        fn mutated_trees_never_panic(edits in edits(), cut in proptest::option::of(any::<prop::sample::Index>())) {
            let tree = sample_tree().encode();
            decode_all(&mutate(tree, &edits, cut));
            let index = IndexFile::default().encode();
            decode_all(&mutate(index, &edits, cut));
        }
    }
}
