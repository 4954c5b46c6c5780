//! Storage account containers in the service's object store: where the ingest
//! station uploads an import job's files, and where adoption copies them from.
//!
//! ```text
//! containers/<storage account id>/<container id>/<job name>/<path>                   a whole file
//! containers/<storage account id>/<container id>/<job name>/.parts/<path>/<offset>   a part (offset: 20 digits)
//! containers/<storage account id>/<container id>/<job name>/.parts/<path>/size       the file's size
//! containers/<storage account id>/<container id>/<job name>/logs/<drive>.<kind>.log  a drive's ingest log
//! ```
//!
//! Uploads stream in parts like repository uploads (bounded memory, nothing
//! visible until complete); a whole file named by a content hash must hash to its
//! name. Packaging assembles parts that cover a file into the file.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::path::Path as StorePath;
use object_store::ObjectMeta;

use offsite_api::types::{ImportFile, ImportPart};

use crate::error::Failure;
use crate::storage::{VaultStorage, MAX_FILE_BYTES};

/// Ingest logs are text, at most this long.
pub const MAX_LOG_BYTES: usize = 16 * 1024 * 1024;
const PARTS: &str = ".parts";
const LOGS: &str = "logs";

/// The parts of one file: offset → (object, length).
type Parts = BTreeMap<u64, (StorePath, u64)>;

/// An object under a job's `.parts/` folder.
enum PartObject {
    /// `.parts/<path>/size`: the file's size.
    Size { path: String },
    /// `.parts/<path>/<offset>`: the file's bytes from `offset`.
    Part { path: String, offset: u64 },
}

/// Where one import job's files live.
#[derive(Debug, Clone)]
pub struct JobFolder {
    pub storage_account_id: String,
    pub container_id: String,
    pub job_name: String,
}

/// A file of the job that its parts do not cover yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incomplete {
    pub path: String,
    pub file_size: u64,
    /// Missing byte ranges, [start, end).
    pub missing: Vec<(u64, u64)>,
    /// Why, when it is not gaps: the assembled bytes did not match the name.
    pub reason: Option<String>,
}

/// What packaging did.
#[derive(Debug, Default)]
pub struct Packaged {
    pub assembled: Vec<String>,
    pub incomplete: Vec<Incomplete>,
}

/// Checks an ingested file's path: relative, without `.` or `..`, of the characters
/// repository paths use, and not in the service's own `logs/` or `.parts/`.
pub fn check_import_path(path: &str) -> Result<(), Failure> {
    let bad = |why: String| Failure::BadRequest(format!("'{path}' is not a path of an import job's files: {why}"));
    offsite_seeding::drive::validate_path(path).map_err(bad)?;
    if !path.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/')) {
        return Err(bad("use letters, digits, '-', '_', '.' and '/' only".into()));
    }
    let first = path.split('/').next().unwrap_or_default();
    if first == LOGS || first.starts_with('.') {
        return Err(bad(format!("'{first}/' is the service's own folder")));
    }
    Ok(())
}

/// A repository path of the seed at `root` of a job's files (`""`, or a
/// machine's folder when one drive set carried several machines).
pub fn seed_path(root: &str, path: &str) -> String {
    match root {
        "" => path.to_string(),
        root => format!("{root}/{path}"),
    }
}

/// Where the job's files hold a repository: `""` (its root has `config`), or
/// each top-level folder that has one, sorted.
pub fn seed_roots(files: &[ImportFile]) -> Vec<String> {
    if files.iter().any(|f| f.path == "config") {
        return vec![String::new()];
    }
    let mut roots: Vec<String> = files
        .iter()
        .filter_map(|f| f.path.strip_suffix("/config"))
        .filter(|folder| !folder.contains('/'))
        .map(str::to_string)
        .collect();
    roots.sort();
    roots
}

/// The content hash a file's name claims, if it is one (64 lowercase hex digits).
pub fn claimed_hash(path: &str) -> Option<&str> {
    let name = path.rsplit('/').next()?;
    (name.len() == 64 && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))).then_some(name)
}

/// The files of `list` (in path order) that `present` (in path order) lacks or
/// holds at another size: what the container still needs.
pub fn missing_from(list: &[ImportFile], present: &[ImportFile]) -> Vec<ImportFile> {
    let mut missing = Vec::new();
    let mut present = present.iter().peekable();
    for wanted in list {
        while present.next_if(|p| p.path < wanted.path).is_some() {}
        match present.peek() {
            Some(found) if found.path == wanted.path && found.size == wanted.size => {}
            _ => missing.push(wanted.clone()),
        }
    }
    missing
}

impl VaultStorage {
    fn job_root(&self, job: &JobFolder) -> String {
        let base = format!("containers/{}/{}/{}", job.storage_account_id, job.container_id, job.job_name);
        if self.prefix.is_empty() {
            base
        } else {
            format!("{}/{base}", self.prefix)
        }
    }

    fn job_key(&self, job: &JobFolder, path: &str) -> StorePath {
        StorePath::from(format!("{}/{path}", self.job_root(job)))
    }

    fn part_key(&self, job: &JobFolder, path: &str, offset: u64) -> StorePath {
        self.job_key(job, &format!("{PARTS}/{path}/{offset:020}"))
    }

    fn size_key(&self, job: &JobFolder, path: &str) -> StorePath {
        self.job_key(job, &format!("{PARTS}/{path}/size"))
    }

    /// Stores `length` bytes of `path` at `offset` (the file has `file_size`
    /// bytes): the whole file when they are all of it, else a part. Returns the
    /// bytes stored.
    pub async fn put_import_part(
        &self,
        job: &JobFolder,
        path: &str,
        offset: u64,
        file_size: u64,
        length: u64,
        mut body: impl Stream<Item = Result<Bytes, axum::Error>> + Unpin,
    ) -> Result<u64, Failure> {
        if file_size > MAX_FILE_BYTES {
            return Err(Failure::TooLarge(format!("files of an import job are at most {MAX_FILE_BYTES} bytes")));
        }
        if offset.checked_add(length).is_none_or(|end| end > file_size) {
            return Err(Failure::BadRequest(format!(
                "a part of {length} bytes at offset {offset} does not fit in a file of {file_size} bytes"
            )));
        }
        let whole = offset == 0 && length == file_size;
        if !whole {
            self.record_part_size(job, path, file_size).await?;
        }
        let key = if whole { self.job_key(job, path) } else { self.part_key(job, path, offset) };
        let mut upload = self.start_upload(&key).await?;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(err) => {
                    let _ = upload.writer.abort().await;
                    return Err(Failure::BadRequest(format!("the upload broke off: {err}")));
                }
            };
            if upload.total + chunk.len() as u64 > length {
                let _ = upload.writer.abort().await;
                return Err(Failure::BadRequest(format!("the body is longer than its {length} bytes")));
            }
            if let Err(err) = upload.write(self, chunk).await {
                let _ = upload.writer.abort().await;
                return Err(err);
            }
        }
        if upload.total != length {
            let _ = upload.writer.abort().await;
            return Err(Failure::BadRequest(format!(
                "the body has {} bytes, not the {length} announced: nothing was stored, retry",
                upload.total
            )));
        }
        if whole {
            if let Some(name) = claimed_hash(path) {
                if upload.hasher.finalize().to_hex().as_str() != name {
                    let _ = upload.writer.abort().await;
                    return Err(Failure::BadRequest(format!(
                        "the bytes of {path} do not hash to its name: the file was damaged on the drive or on the \
                         way; nothing was stored"
                    )));
                }
            }
        }
        upload.writer.finish().await.map_err(|e| self.failure(e))?;
        Ok(length)
    }

    /// Records a partial file's size beside its parts; parts of one file must agree.
    async fn record_part_size(&self, job: &JobFolder, path: &str, file_size: u64) -> Result<(), Failure> {
        let key = self.size_key(job, path);
        match self.read_whole(&key).await {
            Ok(bytes) => {
                let known = std::str::from_utf8(&bytes).ok().and_then(|t| t.trim().parse::<u64>().ok());
                match known {
                    Some(size) if size == file_size => return Ok(()),
                    Some(size) => {
                        return Err(Failure::Conflict(format!(
                            "earlier parts of {path} said the file has {size} bytes, this one says {file_size}"
                        )))
                    }
                    None => {}
                }
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(err) => return Err(self.failure(err)),
        }
        self.store.put(&key, Bytes::from(file_size.to_string()).into()).await.map_err(|e| self.failure(e))?;
        Ok(())
    }

    async fn list_under(&self, prefix: &StorePath) -> Result<Vec<ObjectMeta>, Failure> {
        self.store.list(Some(prefix)).try_collect().await.map_err(|e| self.failure(e))
    }

    /// The job's path of an object listed under its folder.
    fn relative(&self, job: &JobFolder, meta: &ObjectMeta) -> Option<String> {
        let root = format!("{}/", self.job_root(job));
        meta.location.as_ref().strip_prefix(&root).map(str::to_string)
    }

    /// The whole files of a job (not parts, not logs), by path.
    pub async fn import_files(&self, job: &JobFolder) -> Result<Vec<ImportFile>, Failure> {
        let root = StorePath::from(self.job_root(job));
        let mut files: Vec<ImportFile> = self
            .list_under(&root)
            .await?
            .iter()
            .filter_map(|meta| Some(ImportFile { path: self.relative(job, meta)?, size: meta.size }))
            .filter(|f| {
                let first = f.path.split('/').next().unwrap_or_default();
                first != LOGS && first != PARTS
            })
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    /// What an object listed under the job's `.parts/` folder is.
    fn part_object(&self, job: &JobFolder, meta: &ObjectMeta) -> Option<PartObject> {
        let relative = self.relative(job, meta)?;
        let (path, last) = relative.strip_prefix(&format!("{PARTS}/"))?.rsplit_once('/')?;
        let path = path.to_string();
        match (last, last.len(), last.parse::<u64>()) {
            ("size", ..) => Some(PartObject::Size { path }),
            (_, 20, Ok(offset)) => Some(PartObject::Part { path, offset }),
            _ => None,
        }
    }

    /// The parts stored and not yet assembled, by path and offset. A part is
    /// listed only once its upload is complete.
    pub async fn import_parts(&self, job: &JobFolder) -> Result<Vec<ImportPart>, Failure> {
        let prefix = self.job_key(job, PARTS);
        let mut parts: Vec<ImportPart> = self
            .list_under(&prefix)
            .await?
            .iter()
            .filter_map(|meta| match self.part_object(job, meta)? {
                PartObject::Part { path, offset } => Some(ImportPart { path, offset, length: meta.size }),
                PartObject::Size { .. } => None,
            })
            .collect();
        parts.sort_by(|a, b| (&a.path, a.offset).cmp(&(&b.path, b.offset)));
        Ok(parts)
    }

    /// Whether the job has parts not yet assembled.
    pub async fn has_parts(&self, job: &JobFolder) -> Result<bool, Failure> {
        let prefix = self.job_key(job, PARTS);
        let mut listing = self.store.list(Some(&prefix));
        match listing.next().await {
            None => Ok(false),
            Some(Ok(_)) => Ok(true),
            Some(Err(err)) => Err(self.failure(err)),
        }
    }

    /// Assembles every file whose parts cover it into the file (streamed,
    /// hash-checked), deleting its parts; names the files still incomplete.
    pub async fn package(&self, job: &JobFolder) -> Result<Packaged, Failure> {
        let prefix = self.job_key(job, PARTS);
        // path → (size marker, offset → part length)
        let mut files: BTreeMap<String, (Option<StorePath>, Parts)> = BTreeMap::new();
        for meta in self.list_under(&prefix).await? {
            match self.part_object(job, &meta) {
                Some(PartObject::Size { path }) => files.entry(path).or_default().0 = Some(meta.location.clone()),
                Some(PartObject::Part { path, offset }) => {
                    files.entry(path).or_default().1.insert(offset, (meta.location.clone(), meta.size));
                }
                None => {}
            }
        }
        let mut packaged = Packaged::default();
        for (path, (size_key, parts)) in files {
            let file_size = match &size_key {
                Some(key) => {
                    let bytes = self.read_whole(key).await.map_err(|e| self.failure(e))?;
                    std::str::from_utf8(&bytes).ok().and_then(|t| t.trim().parse::<u64>().ok())
                }
                None => None,
            };
            let Some(file_size) = file_size else {
                packaged.incomplete.push(Incomplete {
                    path,
                    file_size: 0,
                    missing: vec![],
                    reason: Some("its size was not recorded; send the whole file again".into()),
                });
                continue;
            };
            // A whole copy from another drive makes the parts redundant.
            let whole_key = self.job_key(job, &path);
            if let Ok(meta) = self.store.head(&whole_key).await {
                if meta.size == file_size {
                    self.delete_parts(size_key.as_ref(), &parts).await?;
                    continue;
                }
            }
            let mut missing = Vec::new();
            let mut cursor = 0u64;
            for (&offset, &(_, length)) in &parts {
                if offset > cursor {
                    missing.push((cursor, offset.min(file_size)));
                }
                cursor = cursor.max(offset + length);
            }
            if cursor < file_size {
                missing.push((cursor, file_size));
            }
            if !missing.is_empty() {
                packaged.incomplete.push(Incomplete { path, file_size, missing, reason: None });
                continue;
            }
            match self.assemble(&whole_key, &path, file_size, &parts).await? {
                Ok(()) => {
                    self.delete_parts(size_key.as_ref(), &parts).await?;
                    packaged.assembled.push(path);
                }
                Err(reason) => {
                    // The parts are wrong: drop them, so a repair drive starts afresh.
                    self.delete_parts(size_key.as_ref(), &parts).await?;
                    packaged.incomplete.push(Incomplete {
                        path,
                        file_size,
                        missing: vec![(0, file_size)],
                        reason: Some(reason),
                    });
                }
            }
        }
        Ok(packaged)
    }

    /// Streams the parts, in order and without overlaps, into the whole file.
    /// The inner error says why the bytes were refused.
    async fn assemble(
        &self,
        key: &StorePath,
        path: &str,
        file_size: u64,
        parts: &Parts,
    ) -> Result<Result<(), String>, Failure> {
        let mut upload = self.start_upload(key).await?;
        let result = async {
            for (&offset, (part_key, length)) in parts {
                let end = offset + length;
                if end <= upload.total {
                    continue;
                }
                let from = upload.total - offset;
                let options = object_store::GetOptions { range: Some((from..*length).into()), ..Default::default() };
                let mut stream =
                    self.store.get_opts(part_key, options).await.map_err(|e| self.failure(e))?.into_stream();
                let before = upload.total;
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| self.failure(e))?;
                    upload.write(self, chunk).await?;
                }
                // A read cut short is the storage's fault, not the part's: fail
                // (transient) and keep the parts, rather than judge them damaged.
                if upload.total - before != length - from {
                    return Err(Failure::Unavailable(format!(
                        "reading a part of {path} from the service's storage ended after {} of {} bytes; nothing \
                         was changed, retry",
                        upload.total - before,
                        length - from
                    )));
                }
            }
            Ok::<(), Failure>(())
        }
        .await;
        if let Err(err) = result {
            let _ = upload.writer.abort().await;
            return Err(err);
        }
        if upload.total != file_size {
            let _ = upload.writer.abort().await;
            return Ok(Err(format!("its parts hold {} bytes, not {file_size}", upload.total)));
        }
        if let Some(name) = claimed_hash(path) {
            if upload.hasher.finalize().to_hex().as_str() != name {
                let _ = upload.writer.abort().await;
                return Ok(Err("its parts put together do not hash to its name (damaged parts)".into()));
            }
        }
        upload.writer.finish().await.map_err(|e| self.failure(e))?;
        Ok(Ok(()))
    }

    async fn delete_parts(&self, size_key: Option<&StorePath>, parts: &Parts) -> Result<(), Failure> {
        for key in parts.values().map(|(k, _)| k).chain(size_key) {
            match self.store.delete(key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(err) => return Err(self.failure(err)),
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------- logs

    fn log_key(&self, job: &JobFolder, drive_id: &str, kind: &str) -> StorePath {
        self.job_key(job, &format!("{LOGS}/{drive_id}.{kind}.log"))
    }

    pub async fn put_log(&self, job: &JobFolder, drive_id: &str, kind: &str, text: Bytes) -> Result<(), Failure> {
        self.store.put(&self.log_key(job, drive_id, kind), text.into()).await.map_err(|e| self.failure(e))?;
        Ok(())
    }

    pub async fn get_log(&self, job: &JobFolder, drive_id: &str, kind: &str) -> Result<Bytes, Failure> {
        match self.read_whole(&self.log_key(job, drive_id, kind)).await {
            Ok(found) => Ok(found),
            Err(object_store::Error::NotFound { .. }) => Err(Failure::NotFound(format!(
                "drive {drive_id} has no {kind} log (yet): the datacenter writes it when it ingests the drive"
            ))),
            Err(err) => Err(self.failure(err)),
        }
    }

    /// The logs stored for the job: (drive id, kind) pairs.
    pub async fn logs(&self, job: &JobFolder) -> Result<Vec<(String, String)>, Failure> {
        let prefix = self.job_key(job, LOGS);
        let mut found: Vec<(String, String)> = self
            .list_under(&prefix)
            .await?
            .iter()
            .filter_map(|meta| {
                let name = meta.location.filename()?.strip_suffix(".log")?;
                let (drive, kind) = name.split_once('.')?;
                Some((drive.to_string(), kind.to_string()))
            })
            .collect();
        found.sort();
        Ok(found)
    }

    // ---------------------------------------------------------------- adoption

    /// The `config` of the seed at `root` of the job's files (`""` for a job
    /// carrying one repository, else a machine's folder), if there is one
    /// (bounded: configs are small).
    pub async fn seed_config(&self, job: &JobFolder, root: &str) -> Result<Option<Bytes>, Failure> {
        let key = self.job_key(job, &seed_path(root, "config"));
        match self.store.head(&key).await {
            Ok(meta) => {
                if meta.size > 64 * 1024 {
                    return Err(Failure::Conflict("the seed's config is larger than any repository config".into()));
                }
                Ok(Some(self.read_whole(&key).await.map_err(|e| self.failure(e))?))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(self.failure(err)),
        }
    }

    /// A machine repository's `config`, if it has one.
    pub async fn vault_config(&self, vault_id: &str, machine_id: &str) -> Result<Option<Bytes>, Failure> {
        let key = StorePath::from(format!("{}/config", self.root(vault_id, machine_id)));
        match self.read_whole(&key).await {
            Ok(found) => Ok(Some(found)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(self.failure(err)),
        }
    }

    /// Copies one file of the seed at `root` of the job's files (its path in
    /// `file` is the repository's) into the machine's repository (server side),
    /// unless a file of the same size is there. Returns whether it copied.
    pub async fn adopt_file(
        &self,
        job: &JobFolder,
        root: &str,
        vault_id: &str,
        machine_id: &str,
        file: &ImportFile,
    ) -> Result<bool, Failure> {
        let to = StorePath::from(format!("{}/{}", self.root(vault_id, machine_id), file.path));
        match self.store.head(&to).await {
            Ok(meta) if meta.size == file.size => return Ok(false),
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(err) => return Err(self.failure(err)),
        }
        self.store.copy(&self.job_key(job, &seed_path(root, &file.path)), &to).await.map_err(|e| self.failure(e))?;
        Ok(true)
    }

    /// Reads a file of the machine's repository whole, checking its bytes hash to
    /// its name; a damaged copy is removed. The inner error says what is wrong.
    pub async fn verify_vault_file(
        &self,
        vault_id: &str,
        machine_id: &str,
        path: &str,
    ) -> Result<Result<(), String>, Failure> {
        let Some(name) = claimed_hash(path) else { return Ok(Ok(())) };
        let key = StorePath::from(format!("{}/{path}", self.root(vault_id, machine_id)));
        let found = self.store.get(&key).await.map_err(|e| self.failure(e))?;
        let size = found.meta.size;
        let mut stream = found.into_stream();
        let mut hasher = blake3::Hasher::new();
        let mut read = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.failure(e))?;
            read += chunk.len() as u64;
            hasher.update(&chunk);
        }
        // A read cut short says nothing about the copy: fail (transient), keep it.
        if read != size {
            return Err(Failure::Unavailable(format!(
                "reading {path} back from the service's storage ended after {read} of its {size} bytes; retry"
            )));
        }
        if hasher.finalize().to_hex().as_str() == name {
            return Ok(Ok(()));
        }
        let _ = self.store.delete(&key).await;
        Ok(Err(format!("{path} does not hash to its name")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: u64) -> ImportFile {
        ImportFile { path: path.into(), size }
    }

    #[test]
    fn missing_files_are_those_absent_or_of_another_size() {
        let list = [file("config", 10), file("data/aa/aa", 100), file("data/bb/bb", 200), file("keys/k", 5)];
        let present = [file("config", 10), file("data/aa/aa", 99), file("extra", 1), file("keys/k", 5)];
        assert_eq!(missing_from(&list, &present), [file("data/aa/aa", 100), file("data/bb/bb", 200)]);
        assert_eq!(missing_from(&list, &list), []);
        assert_eq!(missing_from(&list, &[]), list);
    }
}
