//! An open repository: its backend, config and keys, and the sealed files in it.

use std::sync::Arc;

use bytes::Bytes;

use crate::backend::{Backend, CachedBackend, FileInfo, FileKind};
use crate::blob::open_blob;
use crate::cache::{CacheSettings, RepositoryCache};
use crate::chunker::{ChunkerParams, ChunkerTables};
use crate::crypto::{CryptoError, EncryptionKey, KdfParams, MasterKey, Purpose};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::MasterIndex;
use crate::repofile::config::{ConfigError, RepositoryConfig, FORMAT_VERSION};
use crate::repofile::index::IndexFile;
use crate::repofile::keyfile::KeyFile;
use crate::repofile::snapshot::Snapshot;
use crate::repofile::tree::Tree;
use crate::repofile::BlobType;

/// Choices fixed when a repository is created.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub kdf: KdfParams,
    pub chunker: ChunkerParams,
    /// Target pack size in bytes.
    pub pack_size: u32,
    /// zstd level; 0 disables compression.
    pub compression: i32,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            kdf: KdfParams::default(),
            chunker: ChunkerParams::default(),
            pack_size: 16 << 20,
            compression: 3,
        }
    }
}

pub struct Repository {
    /// The backend every operation uses: `cache` when there is one.
    backend: Arc<dyn Backend>,
    /// The local cache in front of the storage, for remote repositories.
    cache: Option<Arc<CachedBackend>>,
    config: RepositoryConfig,
    master: MasterKey,
    key: EncryptionKey,
    key_file: Id,
    tables: ChunkerTables,
}

/// [`Repository::load_index_of_stored`]: the index, checked against the storage.
pub struct StoredIndex {
    pub index: MasterIndex,
    /// The packs the storage lists, with their sizes.
    pub stored: std::collections::HashMap<Id, u64>,
    /// Packs index files name that the storage does not hold.
    pub lost: Vec<Id>,
    /// The raw lengths of blobs that only lost packs held: a restore cannot read
    /// them but still knows where in a file what follows them goes.
    pub lost_blobs: std::collections::HashMap<Id, u32>,
}

/// One key file as `key list` shows it.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub id: Id,
    pub file: KeyFile,
    /// The key that opened this session.
    pub current: bool,
}

impl Repository {
    /// Creates a repository at an empty location.
    pub fn init(backend: Arc<dyn Backend>, passphrase: &[u8], options: InitOptions) -> Result<Self> {
        if backend.size(FileKind::Config, "config")?.is_some() {
            return Err(match Self::read_config(backend.as_ref()) {
                Err(Error::NotARepository { location, reason }) => Error::Refused(format!(
                    "{location} is not empty ({reason}); choose an empty location for a new repository"
                )),
                _ => Error::AlreadyInitialised { location: backend.location().to_string() },
            });
        }
        options.chunker.validate().map_err(Error::Refused)?;
        backend.create()?;
        let master = MasterKey::generate();
        let key_file = KeyFile::create(&master, passphrase, options.kdf).map_err(|e| Error::Refused(e.to_string()))?;
        let key_bytes = key_file.to_bytes();
        let key_id = Id::of_stored(&key_bytes);
        backend.save(FileKind::Key, &key_id.to_hex(), Bytes::from(key_bytes))?;
        // The config goes last: a location with a config is a complete repository.
        let config = RepositoryConfig::new(options.chunker, options.pack_size, options.compression);
        backend.save(FileKind::Config, "config", Bytes::from(config.to_bytes()))?;
        Ok(Self::assemble(backend, config, master, key_id))
    }

    /// Reads a repository's config without a passphrase.
    pub fn read_config(backend: &dyn Backend) -> Result<RepositoryConfig> {
        let location = backend.location().to_string();
        let bytes = match backend.load(FileKind::Config, "config") {
            Ok(bytes) => bytes,
            Err(e) if e.is_not_found() => {
                return Err(Error::NotARepository { location, reason: "it has no config file".into() })
            }
            Err(e) => return Err(e.into()),
        };
        RepositoryConfig::parse(&bytes).map_err(|e| match e {
            ConfigError::NotOurs => Error::NotARepository { location, reason: e.to_string() },
            ConfigError::Newer(found) => Error::NewerFormat { location, found, supported: FORMAT_VERSION },
            ConfigError::Damaged(reason) => Error::damaged(format!("the config of {location}"), reason),
        })
    }

    /// Opens a repository with one of its passphrases.
    pub fn open(backend: Arc<dyn Backend>, passphrase: &[u8]) -> Result<Self> {
        Self::open_cached(backend, passphrase, None)
    }

    /// Opens a repository with a local cache in front of its storage (see
    /// [`crate::cache`]), or without one when `cache` is `None`. A cache folder
    /// that cannot be made only costs time: the repository opens without it.
    pub fn open_cached(backend: Arc<dyn Backend>, passphrase: &[u8], cache: Option<&CacheSettings>) -> Result<Self> {
        // The config and the key files' listing side by side: one round trip, not two.
        let (config, keys) = std::thread::scope(|scope| {
            let keys = scope.spawn(|| backend.list(FileKind::Key));
            let config = Self::read_config(backend.as_ref());
            (config, keys.join().expect("the key listing does not panic"))
        });
        let config = config?;
        let cached = cache.and_then(|settings| Self::cache_in_front(&backend, &config, settings));
        let backend = cached.clone().map_or(backend, |c| c as Arc<dyn Backend>);
        let mut repo = Self::open_with_keys(backend, config, keys?, passphrase)?;
        repo.cache = cached;
        Ok(repo)
    }

    /// Puts a cache in front of an open repository's storage (after `init`).
    pub fn with_cache(mut self, settings: &CacheSettings) -> Self {
        if self.cache.is_none() {
            if let Some(cached) = Self::cache_in_front(&self.backend, &self.config, settings) {
                self.backend = cached.clone();
                self.cache = Some(cached);
            }
        }
        self
    }

    fn cache_in_front(
        backend: &Arc<dyn Backend>,
        config: &RepositoryConfig,
        settings: &CacheSettings,
    ) -> Option<Arc<CachedBackend>> {
        match RepositoryCache::open(&settings.root, &config.id, settings.max_bytes) {
            Ok(cache) => Some(Arc::new(CachedBackend::new(backend.clone(), cache))),
            Err(e) => {
                tracing::warn!("working without a local cache: cannot use {}: {e}", settings.root.display());
                None
            }
        }
    }

    fn open_with_keys(
        backend: Arc<dyn Backend>,
        config: RepositoryConfig,
        keys: Vec<FileInfo>,
        passphrase: &[u8],
    ) -> Result<Self> {
        if keys.is_empty() {
            return Err(Error::damaged(format!("the repository at {}", backend.location()), "it has no key files"));
        }
        // Key files that could not even be tried: when no other key file could, the
        // passphrase is not what is wrong, and saying so would mislead.
        let mut unusable = Vec::new();
        let mut tried = false;
        for info in keys {
            let short = info.name.get(..8).unwrap_or(&info.name).to_string();
            let bytes = match backend.load(FileKind::Key, &info.name) {
                Ok(bytes) => bytes,
                Err(e) => {
                    unusable.push(format!("keys/{short}: {e}"));
                    continue;
                }
            };
            let file = match serde_json::from_slice::<KeyFile>(&bytes) {
                Ok(file) => file,
                Err(e) => {
                    unusable.push(format!("keys/{short} is not a key file ({e})"));
                    continue;
                }
            };
            match file.unwrap(passphrase) {
                Ok(master) => {
                    let id = info.name.parse().unwrap_or_else(|_| Id::of_stored(&bytes));
                    return Ok(Self::assemble(backend, config, master, id));
                }
                Err(CryptoError::Authentication) => tried = true,
                Err(other) => {
                    tracing::warn!("key file {} is unusable: {other}", info.name);
                    unusable.push(format!("keys/{short}: {other}"));
                }
            }
        }
        if !tried {
            return Err(Error::damaged(
                format!("the key files of the repository at {}", backend.location()),
                format!("none can be used: {}; restore a key file from a copy", unusable.join("; ")),
            ));
        }
        for problem in &unusable {
            tracing::warn!("{problem}");
        }
        Err(Error::WrongPassphrase { location: backend.location().to_string() })
    }

    fn assemble(backend: Arc<dyn Backend>, config: RepositoryConfig, master: MasterKey, key_file: Id) -> Self {
        let tables = ChunkerTables::new(config.chunker, master.chunker_seed());
        let key = master.encryption_key();
        Repository { backend, cache: None, config, master, key, key_file, tables }
    }

    /// The storage as every operation uses it (through the cache, when there is one).
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The storage itself, never the cache: for reads that must see what the
    /// repository holds (`check --read-data`).
    pub fn storage(&self) -> &Arc<dyn Backend> {
        self.cache.as_ref().map_or(&self.backend, |c| c.uncached())
    }

    /// The local cache, when the repository was opened with one.
    pub fn cache(&self) -> Option<&RepositoryCache> {
        self.cache.as_deref().map(CachedBackend::cache)
    }

    /// Tells the cache that a pack holds trees: it is kept whole in the cache.
    pub(crate) fn note_tree_pack(&self, pack: Id) {
        if let Some(cache) = &self.cache {
            cache.cache_whole_packs([pack]);
        }
    }

    pub fn location(&self) -> &str {
        self.backend.location()
    }

    pub fn config(&self) -> &RepositoryConfig {
        &self.config
    }

    pub(crate) fn key(&self) -> &EncryptionKey {
        &self.key
    }

    pub(crate) fn chunker_tables(&self) -> &ChunkerTables {
        &self.tables
    }

    /// The id a blob with this plaintext has in this repository.
    pub fn blob_id(&self, plaintext: &[u8]) -> Id {
        self.master.blob_id(plaintext)
    }

    /// Seals and stores a file named by the hash of its stored bytes.
    pub(crate) fn save_sealed(&self, kind: FileKind, purpose: Purpose, plaintext: &[u8]) -> Result<Id> {
        let sealed = self.key.seal(purpose, plaintext);
        let id = Id::of_stored(&sealed);
        self.backend.save(kind, &id.to_hex(), Bytes::from(sealed))?;
        Ok(id)
    }

    /// Loads a sealed file, checking its name against its content and opening it.
    pub(crate) fn load_sealed(&self, kind: FileKind, purpose: Purpose, id: &Id) -> Result<Vec<u8>> {
        let bytes = self.backend.load(kind, &id.to_hex())?;
        let what = || format!("{} {}", kind.folder().trim_end_matches('s'), id.short());
        if Id::of_stored(&bytes) != *id {
            return Err(Error::damaged(what(), "its content does not match its name"));
        }
        self.key.open(purpose, &bytes).map_err(|e| Error::damaged(what(), e))
    }

    pub fn save_index(&self, file: &IndexFile) -> Result<Id> {
        self.save_sealed(FileKind::Index, Purpose::Index, &file.encode())
    }

    pub fn load_index_file(&self, id: &Id) -> Result<IndexFile> {
        let plain = self.load_sealed(FileKind::Index, Purpose::Index, id)?;
        IndexFile::decode(&plain).map_err(|e| Error::damaged(format!("index {}", id.short()), e))
    }

    /// Reads every readable index file (see [`Self::load_readable_index_files`]).
    pub fn load_index(&self) -> Result<MasterIndex> {
        let mut index = MasterIndex::default();
        for (id, file) in &self.load_readable_index_files()? {
            index.add_file(Some(*id), file);
        }
        self.tell_cache(&index);
        Ok(index)
    }

    /// The index of what the storage holds: index entries of packs it no longer
    /// lists are left out, so a blob is never placed in a pack that is gone (a
    /// backup stores such blobs again; a restore finds them where they were stored
    /// again). One listing more than [`Self::load_index`].
    pub fn load_index_of_stored(&self) -> Result<StoredIndex> {
        // The pack listing beside the index files: their round trips overlap.
        let (stored, files) = std::thread::scope(|scope| {
            let stored = scope.spawn(|| self.stored_packs());
            let files = self.load_readable_index_files();
            (stored.join().expect("the pack listing does not panic"), files)
        });
        let (stored, files) = (stored?, files?);
        let mut index = MasterIndex::default();
        let mut lost = std::collections::BTreeSet::new();
        for (id, file) in &files {
            lost.extend(index.add_file_where(Some(*id), file, |pack| stored.contains_key(pack)));
        }
        let mut lost_blobs = std::collections::HashMap::new();
        for pack in files.iter().flat_map(|(_, file)| &file.packs).filter(|pack| lost.contains(&pack.id)) {
            for blob in pack.blobs.iter().filter(|blob| index.get(&blob.id).is_none()) {
                lost_blobs.insert(blob.id, blob.raw_length);
            }
        }
        let lost: Vec<Id> = lost.into_iter().collect();
        if let Some(first) = lost.first() {
            tracing::warn!(
                "{} indexed packs are missing from the repository (the first: {}); run 'check'",
                lost.len(),
                first.short()
            );
        }
        self.tell_cache(&index);
        Ok(StoredIndex { index, stored, lost, lost_blobs })
    }

    fn tell_cache(&self, index: &MasterIndex) {
        if let Some(cache) = &self.cache {
            // Tree packs are read whole into the cache; cached packs no index
            // file names any more (pruned) leave it.
            cache.cache_whole_packs(index.tree_packs());
            cache.cache().retain(FileKind::Pack, |id| index.has_pack(id));
        }
    }

    /// Every index file as stored, read in parallel; a damaged one is an error.
    pub fn load_index_files(&self) -> Result<Vec<(Id, IndexFile)>> {
        let ids = self.list_ids(FileKind::Index)?;
        fetch_concurrently(&ids, |id| self.load_index_file(id).map(|f| (*id, f))).into_iter().collect()
    }

    /// Every index file but the damaged ones, which are left out with a warning:
    /// for backups and restores, which stay correct without them (a backup stores
    /// again what only they indexed; a restore names what it then cannot find).
    /// A file whose bytes fail authentication was not written with this
    /// repository's keys: one planted by whoever held the machine's credential
    /// must not make every backup before it unreadable. Prune and check use
    /// [`Self::load_index_files`], which fails on them.
    pub fn load_readable_index_files(&self) -> Result<Vec<(Id, IndexFile)>> {
        let ids = self.list_ids(FileKind::Index)?;
        let loaded = fetch_concurrently(&ids, |id| (*id, self.load_index_file(id)));
        let mut files = Vec::with_capacity(loaded.len());
        for (id, result) in loaded {
            match result {
                Ok(file) => files.push((id, file)),
                // Removed between listing and loading (a concurrent prune): not damage.
                Err(Error::Backend(e)) if e.is_not_found() => {}
                Err(Error::Damaged { what, reason }) => {
                    tracing::warn!("leaving out {what}: it is damaged ({reason}); run 'offsite repo check'")
                }
                Err(other) => return Err(other),
            }
        }
        Ok(files)
    }

    /// The ids of all files of a kind (names that are not ids are ignored).
    pub fn list_ids(&self, kind: FileKind) -> Result<Vec<Id>> {
        Ok(self.backend.list(kind)?.into_iter().filter_map(|f| f.name.parse().ok()).collect())
    }

    /// The packs stored, with their sizes (one listing).
    pub fn stored_packs(&self) -> Result<std::collections::HashMap<Id, u64>> {
        Ok(self
            .backend
            .list(FileKind::Pack)?
            .into_iter()
            .filter_map(|f| Some((f.name.parse().ok()?, f.size)))
            .collect())
    }

    pub fn save_snapshot(&self, snapshot: &Snapshot) -> Result<Id> {
        let json = serde_json::to_vec(snapshot).expect("snapshot serialises");
        self.save_sealed(FileKind::Snapshot, Purpose::Snapshot, &json)
    }

    pub fn load_snapshot(&self, id: &Id) -> Result<Snapshot> {
        let plain = self.load_sealed(FileKind::Snapshot, Purpose::Snapshot, id)?;
        serde_json::from_slice(&plain).map_err(|e| Error::damaged(format!("snapshot {}", id.short()), e))
    }

    /// All readable snapshots, oldest first. A damaged snapshot file is left out
    /// with a warning, so one bad file never stops backups, listings or restores of
    /// the others; `check` names it and `snapshots_strict` refuses it.
    pub fn snapshots(&self) -> Result<Vec<(Id, Snapshot)>> {
        let (good, damaged) = self.load_all_snapshots()?;
        for (id, err) in damaged {
            tracing::warn!("leaving out snapshot {}: {err}; run 'offsite repo check'", id.short());
        }
        Ok(good)
    }

    /// All snapshots, failing on the first damaged one: for operations such as prune
    /// that must know everything the snapshots use.
    pub fn snapshots_strict(&self) -> Result<Vec<(Id, Snapshot)>> {
        let (good, mut damaged) = self.load_all_snapshots()?;
        match damaged.pop() {
            Some((_, err)) => Err(err),
            None => Ok(good),
        }
    }

    /// Readable snapshots, oldest first, and the damaged ones with their errors.
    #[allow(clippy::type_complexity)]
    pub fn load_all_snapshots(&self) -> Result<(Vec<(Id, Snapshot)>, Vec<(Id, Error)>)> {
        let ids = self.list_ids(FileKind::Snapshot)?;
        let loaded: Vec<(Id, Result<Snapshot>)> = fetch_concurrently(&ids, |id| (*id, self.load_snapshot(id)));
        let mut good = Vec::new();
        let mut damaged = Vec::new();
        for (id, result) in loaded {
            match result {
                Ok(snapshot) => good.push((id, snapshot)),
                // Removed between listing and loading (a concurrent forget): not damage.
                Err(Error::Backend(e)) if e.is_not_found() => {}
                Err(Error::Backend(e)) => return Err(e.into()),
                Err(e) => damaged.push((id, e)),
            }
        }
        good.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        Ok((good, damaged))
    }

    /// Finds a snapshot by full id, unique id prefix, or `latest`.
    pub fn find_snapshot(&self, spec: &str) -> Result<(Id, Snapshot)> {
        if spec == "latest" {
            return self.snapshots()?.pop().ok_or_else(|| Error::SnapshotNotFound(spec.to_string()));
        }
        if spec.is_empty() || !spec.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::SnapshotNotFound(spec.to_string()));
        }
        let spec_lower = spec.to_ascii_lowercase();
        let matches: Vec<Id> =
            self.list_ids(FileKind::Snapshot)?.into_iter().filter(|id| id.to_hex().starts_with(&spec_lower)).collect();
        match matches.as_slice() {
            [] => Err(Error::SnapshotNotFound(spec.to_string())),
            [id] => Ok((*id, self.load_snapshot(id)?)),
            _ => Err(Error::AmbiguousSnapshot(spec.to_string())),
        }
    }

    /// Reads, decrypts, decompresses and verifies one blob.
    pub fn read_blob(&self, index: &MasterIndex, blob_type: BlobType, id: &Id) -> Result<Vec<u8>> {
        let loc = index.get(id).ok_or(Error::BlobNotFound(*id))?;
        let pack = index.pack(loc.pack);
        let name = pack.id.to_hex();
        let sealed = self.backend.load_range(FileKind::Pack, &name, loc.offset.into(), loc.length.into())?;
        match open_blob(&self.key, |d| self.blob_id(d), blob_type, id, &sealed, loc.raw_length) {
            // A cached copy damaged since it was checked: drop it, ask the storage.
            Err(Error::Damaged { .. }) if self.cache().is_some_and(|c| c.has_pack(&pack.id)) => {
                tracing::warn!(
                    "blob {} of cached pack {} is damaged; reading it from the storage",
                    id.short(),
                    pack.id.short()
                );
                self.cache().expect("cache present").remove(FileKind::Pack, &pack.id);
                let sealed = self.storage().load_range(FileKind::Pack, &name, loc.offset.into(), loc.length.into())?;
                open_blob(&self.key, |d| self.blob_id(d), blob_type, id, &sealed, loc.raw_length)
            }
            other => other,
        }
    }

    pub(crate) fn open_blob(&self, blob_type: BlobType, id: &Id, sealed: &[u8], raw_length: u32) -> Result<Vec<u8>> {
        open_blob(&self.key, |d| self.blob_id(d), blob_type, id, sealed, raw_length)
    }

    pub fn load_tree(&self, index: &MasterIndex, id: &Id) -> Result<Tree> {
        let bytes = self.read_blob(index, BlobType::Tree, id)?;
        Tree::decode(&bytes).map_err(|e| Error::damaged(format!("tree {}", id.short()), e))
    }

    /// Adds a passphrase: a new key file wrapping the same master key.
    pub fn add_key(&self, passphrase: &[u8], kdf: KdfParams) -> Result<Id> {
        let file = KeyFile::create(&self.master, passphrase, kdf).map_err(|e| Error::Refused(e.to_string()))?;
        let bytes = file.to_bytes();
        let id = Id::of_stored(&bytes);
        self.backend.save(FileKind::Key, &id.to_hex(), Bytes::from(bytes))?;
        Ok(id)
    }

    pub fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        let mut keys = Vec::new();
        for info in self.backend.list(FileKind::Key)? {
            let Ok(id) = info.name.parse::<Id>() else { continue };
            let bytes = self.backend.load(FileKind::Key, &info.name)?;
            let file: KeyFile =
                serde_json::from_slice(&bytes).map_err(|e| Error::damaged(format!("key {}", id.short()), e))?;
            keys.push(KeyInfo { id, file, current: id == self.key_file });
        }
        keys.sort_by_key(|k| k.file.created);
        Ok(keys)
    }

    /// Removes a passphrase by key id or unique prefix. The key in use and the last
    /// key cannot be removed, so the repository can never be locked out by mistake.
    pub fn remove_key(&self, spec: &str) -> Result<Id> {
        let keys = self.list_keys()?;
        let matches: Vec<&KeyInfo> =
            keys.iter().filter(|k| k.id.to_hex().starts_with(&spec.to_ascii_lowercase())).collect();
        let key = match matches.as_slice() {
            [one] if !spec.is_empty() => *one,
            _ => return Err(Error::KeyNotFound(spec.to_string())),
        };
        if key.current {
            return Err(Error::Refused(format!(
                "key {} is the one this command was opened with; open the repository with another passphrase to remove it",
                key.id.short()
            )));
        }
        self.backend.remove(FileKind::Key, &key.id.to_hex())?;
        Ok(key.id)
    }
}

/// Requests in flight at once when many small files are fetched (index files,
/// snapshots): over a far link each one waits a round trip, so the waits should
/// overlap, far beyond the number of cores.
const FETCH_CONCURRENCY: usize = 16;

/// `fetch` applied to every item on up to [`FETCH_CONCURRENCY`] threads; results
/// in the order of `items`. Cached files answer at once, so this costs little
/// when nothing crosses the network.
pub(crate) fn fetch_concurrently<I: Sync, T: Send>(items: &[I], fetch: impl Fn(&I) -> T + Sync) -> Vec<T> {
    let threads = FETCH_CONCURRENCY.min(items.len());
    if threads <= 1 {
        return items.iter().map(&fetch).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<Option<T>> = std::iter::repeat_with(|| None).take(items.len()).collect();
    let slots = std::sync::Mutex::new(&mut results);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let value = fetch(item);
                slots.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(value);
            });
        }
    });
    results.into_iter().map(|r| r.expect("every item fetched")).collect()
}
