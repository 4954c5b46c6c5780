//! Vault storage: the service's object store (a local folder by default, or S3,
//! Azure Blob, GCS). Each registered machine's repository lives under
//! `vaults/<vault>/<machine>/` in the engine's own layout, so an operator can open it
//! with `offsite repo` and adoption can copy a staging repository file for file.
//!
//! Uploads stream through in parts and are hashed on the way: a repository file is
//! named by the BLAKE3 hash of its bytes, so a body that does not match its name is
//! refused and never becomes visible. Object stores publish an upload only when it
//! completes, so a retried or interrupted upload never leaves a partial file.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::{FutureExt, Stream, StreamExt, TryStreamExt};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, WriteMultipart};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use offsite_api::types::RepositoryFile;
use offsite_engine::backend::FileKind;

use crate::error::Failure;
use crate::retrying_store::is_storage_full;

/// Parts of this size are buffered, not whole packs (S3's minimum part size).
pub(crate) const PART_SIZE: usize = 5 * 1024 * 1024;
/// No repository file is larger than this; a bigger body is refused while it streams.
pub const MAX_FILE_BYTES: u64 = 1 << 30;
/// Repository config files are tiny; they are buffered to compare with what is stored.
const MAX_CONFIG_BYTES: u64 = 64 * 1024;
/// Parts beyond its first that uploads may keep in memory at once, service-wide.
const SPARE_PARTS: usize = 32;
/// Parts one upload may have in memory at most (its own one plus spare ones).
const PARTS_PER_UPLOAD: usize = 4;

#[derive(Clone)]
pub struct VaultStorage {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) prefix: String,
    location: String,
    spare_parts: Arc<Semaphore>,
}

/// A repository file's place, checked: the folder is one of the engine's and the
/// name is a content hash (or `config`).
#[derive(Debug, Clone)]
pub struct RepoFile {
    pub kind: FileKind,
    pub name: String,
}

impl RepoFile {
    pub fn parse(folder: &str, name: &str) -> Result<RepoFile, Failure> {
        let kind = folder_kind(folder)?;
        let valid = match kind {
            FileKind::Config => name == "config",
            _ => name.len() == 64 && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        };
        if !valid {
            return Err(Failure::BadRequest(format!(
                "'{name}' is not a repository file name for folder '{folder}' (64 lowercase hex digits, or 'config')"
            )));
        }
        Ok(RepoFile { kind, name: name.to_string() })
    }

    /// The file at a path relative to the repository root (`config`, `keys/…`,
    /// `data/ab/ab…`, `index/…`, `snapshots/…`), as a seed's files are named.
    pub fn from_path(path: &str) -> Option<RepoFile> {
        if path == "config" {
            return RepoFile::parse("config", "config").ok();
        }
        let (folder, rest) = path.split_once('/')?;
        let name = rest.rsplit('/').next()?;
        let file = RepoFile::parse(folder, name).ok()?;
        (file.kind.path_of(&file.name) == path).then_some(file)
    }
}

pub fn folder_kind(folder: &str) -> Result<FileKind, Failure> {
    Ok(match folder {
        "config" => FileKind::Config,
        "keys" => FileKind::Key,
        "data" => FileKind::Pack,
        "index" => FileKind::Index,
        "snapshots" => FileKind::Snapshot,
        "locks" => FileKind::Lock,
        other => {
            return Err(Failure::BadRequest(format!(
                "'{other}' is not a repository folder (config, keys, data, index, snapshots, locks)"
            )))
        }
    })
}

/// Streams a file's bytes through a hasher into a multipart upload, all or nothing:
/// the caller finishes it, or aborts it when the bytes are not what they claim.
///
/// Memory: an upload has one part in memory (filling, or on its way to the store)
/// and stops reading its body until that part is stored, unless it can take spare
/// parts from the service-wide budget, which it does only when the store is behind.
/// So a slow client costs one part, and a slow store at most the budget more,
/// however many uploads run (32 agents against Azurite took 1 GiB when every upload
/// could keep four parts in flight).
pub(crate) struct Upload {
    pub(crate) writer: WriteMultipart,
    pub(crate) hasher: blake3::Hasher,
    pub(crate) total: u64,
    spare_parts: Arc<Semaphore>,
    /// Spare parts this upload holds; given back when it ends.
    spares_held: Vec<OwnedSemaphorePermit>,
}

impl Upload {
    /// Hashes and queues `chunk`; the chunk itself goes to the store, not a copy.
    pub(crate) async fn write(&mut self, storage: &VaultStorage, chunk: Bytes) -> Result<(), Failure> {
        self.total += chunk.len() as u64;
        self.hasher.update(&chunk);
        match self.writer.wait_for_capacity(self.spares_held.len()).now_or_never() {
            Some(stored) => stored.map_err(|e| storage.failure(e))?,
            None => {
                // The store is behind: overlap with another part if the service has one spare.
                if self.spares_held.len() + 1 < PARTS_PER_UPLOAD {
                    if let Ok(spare) = self.spare_parts.clone().try_acquire_owned() {
                        self.spares_held.push(spare);
                    }
                }
                self.writer.wait_for_capacity(self.spares_held.len()).await.map_err(|e| storage.failure(e))?;
            }
        }
        self.writer.put(chunk);
        Ok(())
    }
}

impl VaultStorage {
    pub(crate) async fn start_upload(&self, key: &StorePath) -> Result<Upload, Failure> {
        let upload = self.store.put_multipart(key).await.map_err(|e| self.failure(e))?;
        Ok(Upload {
            writer: WriteMultipart::new_with_chunk_size(upload, PART_SIZE),
            hasher: blake3::Hasher::new(),
            total: 0,
            spare_parts: self.spare_parts.clone(),
            spares_held: Vec::new(),
        })
    }

    pub fn new(store: Arc<dyn ObjectStore>, prefix: String, location: String) -> Self {
        VaultStorage {
            store,
            prefix: prefix.trim_matches('/').to_string(),
            location,
            spare_parts: Arc::new(Semaphore::new(SPARE_PARTS)),
        }
    }

    pub fn location(&self) -> &str {
        &self.location
    }

    pub(crate) fn root(&self, vault_id: &str, machine_id: &str) -> String {
        let base = format!("vaults/{vault_id}/{machine_id}");
        if self.prefix.is_empty() {
            base
        } else {
            format!("{}/{base}", self.prefix)
        }
    }

    fn key(&self, vault_id: &str, machine_id: &str, file: &RepoFile) -> StorePath {
        StorePath::from(format!("{}/{}", self.root(vault_id, machine_id), file.kind.path_of(&file.name)))
    }

    pub(crate) fn failure(&self, err: object_store::Error) -> Failure {
        if let object_store::Error::NotFound { .. } = err {
            return Failure::not_found("the repository file");
        }
        if is_storage_full(&err) {
            return Failure::InsufficientStorage(format!(
                "the service's storage at {} is full: nothing was stored; retry after the operator frees space",
                self.location
            ));
        }
        Failure::Unavailable(format!("the service's storage failed: {err}. Retry later"))
    }

    /// Stores a streamed body as a repository file after checking it against its name.
    /// Returns the number of bytes stored.
    pub async fn put(
        &self,
        vault_id: &str,
        machine_id: &str,
        file: &RepoFile,
        mut body: impl Stream<Item = Result<Bytes, axum::Error>> + Unpin,
    ) -> Result<u64, Failure> {
        let key = self.key(vault_id, machine_id, file);
        if file.kind == FileKind::Config {
            return self.put_config(&key, body).await;
        }
        let mut upload = self.start_upload(&key).await?;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(err) => {
                    let _ = upload.writer.abort().await;
                    return Err(Failure::BadRequest(format!("the upload broke off: {err}")));
                }
            };
            if upload.total + chunk.len() as u64 > MAX_FILE_BYTES {
                let _ = upload.writer.abort().await;
                return Err(Failure::TooLarge(format!("repository files are at most {MAX_FILE_BYTES} bytes")));
            }
            if let Err(failure) = upload.write(self, chunk).await {
                let _ = upload.writer.abort().await;
                // The client is still sending: it should hear this answer (a full storage, say).
                crate::unread_body::drain(&mut body, MAX_FILE_BYTES.saturating_sub(upload.total)).await;
                return Err(failure);
            }
        }
        if upload.hasher.finalize().to_hex().as_str() != file.name {
            let _ = upload.writer.abort().await;
            return Err(Failure::BadRequest(format!(
                "the uploaded bytes do not match their name {}: the upload was damaged on the way; nothing was stored, retry",
                file.name
            )));
        }
        upload.writer.finish().await.map_err(|e| self.failure(e))?;
        Ok(upload.total)
    }

    /// The config is written once: a second, different config would make the
    /// repository unreadable, so it is refused; the same one again is accepted.
    async fn put_config(
        &self,
        key: &StorePath,
        mut body: impl Stream<Item = Result<Bytes, axum::Error>> + Unpin,
    ) -> Result<u64, Failure> {
        let mut data = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| Failure::BadRequest(format!("the upload broke off: {e}")))?;
            if (data.len() + chunk.len()) as u64 > MAX_CONFIG_BYTES {
                return Err(Failure::TooLarge(format!("a repository config is at most {MAX_CONFIG_BYTES} bytes")));
            }
            data.extend_from_slice(&chunk);
        }
        match self.read_whole(key).await {
            Ok(existing) => {
                if existing.as_ref() == data.as_slice() {
                    return Ok(data.len() as u64);
                }
                return Err(Failure::Conflict(
                    "this machine's repository already exists with another configuration".into(),
                ));
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(err) => return Err(self.failure(err)),
        }
        let size = data.len() as u64;
        self.store.put(key, Bytes::from(data).into()).await.map_err(|e| self.failure(e))?;
        Ok(size)
    }

    pub async fn size(&self, vault_id: &str, machine_id: &str, file: &RepoFile) -> Result<u64, Failure> {
        let key = self.key(vault_id, machine_id, file);
        Ok(self.store.head(&key).await.map_err(|e| self.failure(e))?.size)
    }

    /// A stream of the file's bytes (all, or `range`, cut at the end of the file),
    /// which bytes they are, and the file's size.
    pub async fn get(
        &self,
        vault_id: &str,
        machine_id: &str,
        file: &RepoFile,
        range: Option<Range<u64>>,
    ) -> Result<(Range<u64>, u64, impl Stream<Item = Result<Bytes, std::io::Error>>), Failure> {
        let key = self.key(vault_id, machine_id, file);
        let range = match range {
            Some(wanted) => {
                let size = self.store.head(&key).await.map_err(|e| self.failure(e))?.size;
                if wanted.start >= size {
                    return Err(Failure::RangeNotSatisfiable { size });
                }
                Some(wanted.start..wanted.end.min(size))
            }
            None => None,
        };
        let options = object_store::GetOptions { range: range.map(Into::into), ..Default::default() };
        let result = self.store.get_opts(&key, options).await.map_err(|e| self.failure(e))?;
        let (served, size) = (result.range.clone(), result.meta.size);
        let stream = match result.payload {
            object_store::GetResultPayload::File(file, _) => local_file_stream(file, served.clone()),
            object_store::GetResultPayload::Stream(stream) => stream,
        };
        Ok((served.clone(), size, whole_stream(stream, served.end - served.start)))
    }

    /// A small object's bytes (configs, size markers, logs), all of them: a read
    /// that comes back short is read again, and is an error (transient) if it
    /// stays short, never taken for the object.
    pub(crate) async fn read_whole(&self, key: &StorePath) -> Result<Bytes, object_store::Error> {
        let mut last = None;
        for _ in 0..3 {
            let found = self.store.get(key).await?;
            let size = found.meta.size;
            match found.bytes().await {
                Ok(bytes) if bytes.len() as u64 == size => return Ok(bytes),
                Ok(bytes) => last = Some(format!("a read of {key} ended after {} of its {size} bytes", bytes.len())),
                Err(err) => last = Some(err.to_string()),
            }
        }
        Err(object_store::Error::Generic { store: "vault storage", source: last.unwrap_or_default().into() })
    }

    pub async fn list(&self, vault_id: &str, machine_id: &str, kind: FileKind) -> Result<Vec<RepositoryFile>, Failure> {
        let root = self.root(vault_id, machine_id);
        if kind == FileKind::Config {
            let file = RepoFile { kind, name: "config".into() };
            return match self.store.head(&self.key(vault_id, machine_id, &file)).await {
                Ok(meta) => Ok(vec![RepositoryFile { name: "config".into(), size: meta.size }]),
                Err(object_store::Error::NotFound { .. }) => Ok(vec![]),
                Err(err) => Err(self.failure(err)),
            };
        }
        let prefix = StorePath::from(format!("{root}/{}", kind.folder()));
        let metas: Vec<object_store::ObjectMeta> =
            self.store.list(Some(&prefix)).try_collect().await.map_err(|e| self.failure(e))?;
        Ok(metas
            .into_iter()
            .filter_map(|meta| Some(RepositoryFile { name: meta.location.filename()?.to_string(), size: meta.size }))
            .filter(|file| RepoFile::parse(kind.folder(), &file.name).is_ok())
            .collect())
    }

    pub async fn delete(&self, vault_id: &str, machine_id: &str, file: &RepoFile) -> Result<(), Failure> {
        let key = self.key(vault_id, machine_id, file);
        match self.store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(self.failure(err)),
        }
    }
}

/// The stream of a read that should yield `expected` bytes; if the store's stream
/// ends early it ends with an error, so a client never takes a cut-off body for
/// the file (the response breaks off, and the client retries).
/// What one blocking read of a local file gives a response.
const LOCAL_READ: u64 = 1 << 20;

/// `range` of a file of folder storage, read `LOCAL_READ` at a time. By hand since
/// object_store streams a local file in 8 KiB reads, each on its own blocking task:
/// serving a restore cost the service more CPU than the TLS around it.
fn local_file_stream(
    file: std::fs::File,
    range: Range<u64>,
) -> futures::stream::BoxStream<'static, object_store::Result<Bytes>> {
    let failed = |source: Box<dyn std::error::Error + Send + Sync>| object_store::Error::Generic {
        store: "vault storage",
        source,
    };
    futures::stream::try_unfold((file, range.start), move |(file, at)| async move {
        if at >= range.end {
            return Ok(None);
        }
        let want = (range.end - at).min(LOCAL_READ);
        let read = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Seek, SeekFrom};
            let mut file = file;
            file.seek(SeekFrom::Start(at))?;
            let mut bytes = Vec::with_capacity(want as usize);
            (&mut file).take(want).read_to_end(&mut bytes)?;
            Ok::<_, std::io::Error>((file, bytes))
        });
        let (file, bytes) = read.await.map_err(|e| failed(e.into()))?.map_err(|e| failed(e.into()))?;
        // A file shorter than its listing: the stream ends, and `whole_stream` says so.
        if bytes.is_empty() {
            return Ok(None);
        }
        let next = at + bytes.len() as u64;
        Ok(Some((Bytes::from(bytes), (file, next))))
    })
    .boxed()
}

fn whole_stream(
    inner: futures::stream::BoxStream<'static, object_store::Result<Bytes>>,
    expected: u64,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::unfold((inner, 0u64, false), move |(mut inner, seen, done)| async move {
        if done {
            return None;
        }
        match inner.next().await {
            Some(Ok(bytes)) => {
                let seen = seen + bytes.len() as u64;
                Some((Ok(bytes), (inner, seen, false)))
            }
            Some(Err(err)) => Some((Err(std::io::Error::other(err)), (inner, seen, true))),
            None if seen < expected => {
                let err = format!("the storage's read ended after {seen} of {expected} bytes");
                Some((Err(std::io::Error::other(err)), (inner, seen, true)))
            }
            None => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_paths_name_their_files() {
        let hex = "ab".repeat(32);
        let pack = RepoFile::from_path(&format!("data/ab/{hex}")).unwrap();
        assert_eq!((pack.kind, pack.name.as_str()), (FileKind::Pack, hex.as_str()));
        assert_eq!(RepoFile::from_path("config").unwrap().kind, FileKind::Config);
        assert_eq!(RepoFile::from_path(&format!("keys/{hex}")).unwrap().kind, FileKind::Key);
        assert_eq!(RepoFile::from_path(&format!("snapshots/{hex}")).unwrap().kind, FileKind::Snapshot);
        // Not where the engine puts them, or not repository files at all.
        assert!(RepoFile::from_path(&format!("data/cd/{hex}")).is_none());
        assert!(RepoFile::from_path(&format!("data/{hex}")).is_none());
        assert!(RepoFile::from_path("logs/x.log").is_none());
        assert!(RepoFile::from_path("keys/short").is_none());
    }
}
