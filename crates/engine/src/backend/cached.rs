//! A backend with a local [`RepositoryCache`] in front: a wrapper, like restic's
//! cache backend, so that no operation needs to know whether it is cached.
//!
//! - Key files, index files and snapshots are read from the cache when it has
//!   them, and cached when fetched or saved.
//! - Packs the repository marks as whole-cached ([`CachedBackend::cache_whole_packs`]:
//!   the packs holding tree blobs) are fetched whole on their first ranged read,
//!   one request instead of one per tree, and cached when saved. Other packs
//!   (file data) pass through.
//! - A listing is the repository's word on what exists: cached entries of that
//!   kind the listing lacks (removed by a prune, perhaps on another machine) leave
//!   the cache. Removals remove the cached copy too.
//!
//! The cache never decides what exists, only how fast it is read: every name comes
//! from the repository (a listing, or an index file listed there).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;

use super::{Backend, BackendResult, FileInfo, FileKind};
use crate::cache::{is_cached_kind, RepositoryCache};
use crate::id::Id;

pub struct CachedBackend {
    inner: Arc<dyn Backend>,
    cache: RepositoryCache,
    /// Packs read whole into the cache on first use.
    whole_packs: RwLock<HashSet<Id>>,
    /// One fetch per pack at a time: the walk's threads often want the same tree
    /// pack at once, and it should cross the link once.
    fetching: Mutex<HashMap<Id, Arc<Mutex<()>>>>,
}

impl CachedBackend {
    pub fn new(inner: Arc<dyn Backend>, cache: RepositoryCache) -> CachedBackend {
        CachedBackend { inner, cache, whole_packs: RwLock::new(HashSet::new()), fetching: Mutex::new(HashMap::new()) }
    }

    /// The backend under the cache: for reads that must see the repository itself
    /// (`check --read-data`).
    pub fn uncached(&self) -> &Arc<dyn Backend> {
        &self.inner
    }

    pub fn cache(&self) -> &RepositoryCache {
        &self.cache
    }

    /// Marks packs to be read whole into the cache (and cached when saved).
    pub fn cache_whole_packs(&self, packs: impl IntoIterator<Item = Id>) {
        self.whole_packs.write().unwrap_or_else(|p| p.into_inner()).extend(packs);
    }

    fn is_whole_pack(&self, id: &Id) -> bool {
        self.whole_packs.read().unwrap_or_else(|p| p.into_inner()).contains(id)
    }

    /// Whether a file of `kind` named `id` is kept whole in the cache: every
    /// cached kind but packs, and the packs marked so.
    fn keeps_whole(&self, kind: FileKind, id: &Id) -> bool {
        kind != FileKind::Pack || self.is_whole_pack(id)
    }

    /// The id a cached file has, when `kind` is cached and `name` is an id.
    fn cached_id(kind: FileKind, name: &str) -> Option<Id> {
        is_cached_kind(kind).then(|| name.parse().ok()).flatten()
    }

    /// Fetches a whole pack into the cache (once, whichever thread asks first).
    /// `false` when it could not be cached; the caller reads ranges instead.
    fn fetch_whole_pack(&self, id: &Id) -> BackendResult<bool> {
        let gate = self.fetching.lock().unwrap_or_else(|p| p.into_inner()).entry(*id).or_default().clone();
        let _turn = gate.lock().unwrap_or_else(|p| p.into_inner());
        let cached = if self.cache.has_pack(id) {
            true
        } else {
            let bytes = self.inner.load(FileKind::Pack, &id.to_hex())?;
            if Id::of_stored(&bytes) == *id {
                self.cache.put(FileKind::Pack, id, &bytes);
            } else {
                // Damaged in the repository: the reader's own checks name it.
                tracing::warn!("pack {} does not match its name; not cached", id.short());
            }
            self.cache.has_pack(id)
        };
        self.fetching.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
        if !cached {
            self.whole_packs.write().unwrap_or_else(|p| p.into_inner()).remove(id);
        }
        Ok(cached)
    }
}

impl Backend for CachedBackend {
    fn location(&self) -> &str {
        self.inner.location()
    }

    fn create(&self) -> BackendResult<()> {
        self.inner.create()
    }

    fn save(&self, kind: FileKind, name: &str, data: Bytes) -> BackendResult<()> {
        self.inner.save(kind, name, data.clone())?;
        if let Some(id) = Self::cached_id(kind, name) {
            if self.keeps_whole(kind, &id) {
                self.cache.put(kind, &id, &data);
            }
        }
        Ok(())
    }

    fn load(&self, kind: FileKind, name: &str) -> BackendResult<Bytes> {
        let Some(id) = Self::cached_id(kind, name) else { return self.inner.load(kind, name) };
        if let Some(bytes) = self.cache.get(kind, &id) {
            return Ok(bytes);
        }
        let bytes = self.inner.load(kind, name)?;
        if self.keeps_whole(kind, &id) && Id::of_stored(&bytes) == id {
            self.cache.put(kind, &id, &bytes);
        }
        Ok(bytes)
    }

    fn load_range(&self, kind: FileKind, name: &str, offset: u64, length: u64) -> BackendResult<Bytes> {
        let Some(id) = Self::cached_id(kind, name).filter(|_| kind == FileKind::Pack) else {
            return self.inner.load_range(kind, name, offset, length);
        };
        if let Some(bytes) = self.cache.get_range(&id, offset, length) {
            return Ok(bytes);
        }
        if self.is_whole_pack(&id) && self.fetch_whole_pack(&id)? {
            if let Some(bytes) = self.cache.get_range(&id, offset, length) {
                return Ok(bytes);
            }
        }
        self.inner.load_range(kind, name, offset, length)
    }

    fn size(&self, kind: FileKind, name: &str) -> BackendResult<Option<u64>> {
        self.inner.size(kind, name)
    }

    fn list(&self, kind: FileKind) -> BackendResult<Vec<FileInfo>> {
        let files = self.inner.list(kind)?;
        if is_cached_kind(kind) {
            let present: HashSet<&str> = files.iter().map(|f| f.name.as_str()).collect();
            self.cache.retain(kind, |id| present.contains(id.to_hex().as_str()));
        }
        Ok(files)
    }

    fn remove(&self, kind: FileKind, name: &str) -> BackendResult<()> {
        if let Some(id) = Self::cached_id(kind, name) {
            self.cache.remove(kind, &id);
        }
        self.inner.remove(kind, name)
    }

    fn remove_incomplete(&self) -> BackendResult<usize> {
        self.inner.remove_incomplete()
    }
}
