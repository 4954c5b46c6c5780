//! Whether the service's database agrees with its storage (`offsite server check`).
//!
//! The database says what exists: machines and their recovery points, completed
//! import jobs, adopted seeds. The storage must hold it: each recovery point's
//! snapshot file, a config for every machine repository that has anything in it,
//! every file the service stored in a repository and no one removed (the ledger of
//! `db/repository_files.rs`: a pack deleted by hand is named),
//! the whole files of every completed import job, every file of an adopted seed.
//! Uploads a killed service left half-written (staged files of a local storage
//! folder, ingest parts of a job already completed) are named too. With
//! `read_data`, every content-named file is read and must hash to its name, which
//! is how a short or damaged file shows.
//!
//! The check only reads; it runs beside a live service or on a stopped one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use object_store::path::Path as StorePath;
use serde::Serialize;

use offsite_api::types::ImportJobState;
use offsite_engine::backend::FileKind;

use crate::container_storage::{claimed_hash, missing_from, seed_roots, JobFolder};
use crate::db::import_jobs::ImportJobRow;
use crate::db::Db;
use crate::error::Failure;
use crate::storage::{RepoFile, VaultStorage};
use crate::{ServerConfig, ServerError};
use offsite_api::size::plural;

/// One way the database and the storage disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Disagreement {
    /// The database lists a recovery point whose snapshot file is not stored.
    MissingSnapshot { vault: String, machine: String, snapshot: String },
    /// A machine's repository holds files but no `config`, so nothing in it can be read.
    RepositoryWithoutConfig { vault: String, machine: String, files: u64 },
    /// A completed import job is missing files its seed needs, or still has parts.
    IncompleteImportJob { import_job: String, problem: String },
    /// A seed recorded as adopted is not (all) in the machine's repository.
    MissingAdoptedFiles { vault: String, machine: String, import_job: String, missing: Vec<String> },
    /// Files the service stored in a machine's repository, and no one removed through
    /// the API since, are gone from the storage or of another size: the recovery
    /// points whose data lies in them cannot be restored.
    MissingRepositoryFiles { vault: String, machine: String, files: Vec<String>, recovery_points: u64 },
    /// A content-named file does not hash to its name (short or damaged).
    DamagedFile { location: String },
    /// An upload that never completed, left in the storage.
    PartialUpload { location: String, bytes: u64 },
}

impl std::fmt::Display for Disagreement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Disagreement::MissingSnapshot { vault, machine, snapshot } => write!(
                f,
                "machine {machine} (vault {vault}) has recovery point {snapshot} in the database, but its snapshot \
                 file is not in the storage"
            ),
            Disagreement::RepositoryWithoutConfig { vault, machine, files } => write!(
                f,
                "the repository of machine {machine} (vault {vault}) holds {} or recovery points but no config",
                plural(*files, "file")
            ),
            Disagreement::IncompleteImportJob { import_job, problem } => {
                write!(f, "import job {import_job} is completed, but {problem}")
            }
            Disagreement::MissingAdoptedFiles { vault, machine, import_job, missing } => write!(
                f,
                "machine {machine} (vault {vault}) adopted the seed of import job {import_job}, but {} of its files \
                 {} missing or of another size in the repository: {}",
                missing.len(),
                if missing.len() == 1 { "is" } else { "are" },
                shorten(missing)
            ),
            Disagreement::MissingRepositoryFiles { vault, machine, files, recovery_points } => write!(
                f,
                "machine {machine} (vault {vault}): {} the service stored in its repository {} gone from the storage \
                 or of another size: {}; those of its {} whose data lies in them cannot be restored",
                plural(files.len(), "file"),
                if files.len() == 1 { "is" } else { "are" },
                shorten(files),
                plural(*recovery_points, "recovery point")
            ),
            Disagreement::DamagedFile { location } => {
                write!(f, "{location} does not hash to its name: it is short or damaged")
            }
            Disagreement::PartialUpload { location, bytes } => {
                write!(f, "{location} ({bytes} bytes) is an upload that never completed")
            }
        }
    }
}

fn shorten(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(5).map(String::as_str).collect();
    let more = if names.len() > 5 { format!(", … ({} more)", names.len() - 5) } else { String::new() };
    format!("{}{more}", shown.join(", "))
}

/// What the check looked at and what it found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConsistencyReport {
    pub machines: u64,
    pub recovery_points: u64,
    pub import_jobs_completed: u64,
    pub adoptions: u64,
    /// Files read and hashed (with `read_data`).
    pub files_read: u64,
    pub disagreements: Vec<Disagreement>,
}

impl ConsistencyReport {
    pub fn agrees(&self) -> bool {
        self.disagreements.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Open(#[from] ServerError),
    #[error(transparent)]
    Database(#[from] crate::db::DbError),
    #[error("the storage could not be read: {0}")]
    Storage(String),
    #[error("cannot list the storage folder {path}: {source}")]
    Folder { path: PathBuf, source: std::io::Error },
}

impl From<Failure> for CheckError {
    fn from(failure: Failure) -> Self {
        CheckError::Storage(failure.public_message())
    }
}

/// Compares the database of `config` with its storage.
pub async fn check(config: &ServerConfig, read_data: bool) -> Result<ConsistencyReport, CheckError> {
    let db = crate::open_database(config).await?;
    let storage = crate::open_storage(config).await?;
    let mut checker = Checker { db, storage, read_data, report: ConsistencyReport::default() };
    checker.machines().await?;
    checker.import_jobs().await?;
    if let Some(folder) = crate::local_storage_folder(config) {
        for (path, bytes) in staged_uploads(&folder)? {
            let location = path.strip_prefix(&folder).unwrap_or(&path).display().to_string();
            checker.report.disagreements.push(Disagreement::PartialUpload { location, bytes });
        }
    }
    Ok(checker.report)
}

struct Checker {
    db: Db,
    storage: VaultStorage,
    read_data: bool,
    report: ConsistencyReport,
}

impl Checker {
    async fn machines(&mut self) -> Result<(), CheckError> {
        for subscription in self.db.subscriptions().await? {
            for vault in self.db.vaults_of(&subscription.id).await? {
                for machine in self.db.machines_of(&vault.id).await? {
                    self.machine(&vault.id, &machine.id).await?;
                }
            }
        }
        Ok(())
    }

    async fn machine(&mut self, vault: &str, machine: &str) -> Result<(), CheckError> {
        self.report.machines += 1;
        let points = self.db.recovery_points(machine).await?;
        self.report.recovery_points += points.len() as u64;
        let snapshots = self.storage.list(vault, machine, FileKind::Snapshot).await?;
        for point in &points {
            if !snapshots.iter().any(|s| s.name == point.snapshot_id) {
                self.report.disagreements.push(Disagreement::MissingSnapshot {
                    vault: vault.into(),
                    machine: machine.into(),
                    snapshot: point.snapshot_id.clone(),
                });
            }
        }
        let mut files = 0u64;
        let mut present: HashMap<(FileKind, String), u64> = HashMap::new();
        for kind in [FileKind::Key, FileKind::Pack, FileKind::Index, FileKind::Snapshot] {
            let listed = self.storage.list(vault, machine, kind).await?;
            files += listed.len() as u64;
            present.extend(listed.iter().map(|f| ((kind, f.name.clone()), f.size)));
            if self.read_data {
                for file in listed {
                    let path = kind.path_of(&file.name);
                    let key = format!("{}/{path}", self.storage.root(vault, machine));
                    self.verify(&key).await?;
                }
            }
        }
        let has_config = !self.storage.list(vault, machine, FileKind::Config).await?.is_empty();
        // What the service stored and no one removed must still be there.
        let mut gone = Vec::new();
        let now = self.db.clock().unix();
        for listed in self.db.repository_files(machine).await? {
            // Past its purge date it may be half purged: gone from the storage,
            // not yet from the ledger. The next purge round finishes it.
            if listed.purge_after.is_some_and(|due| due <= now) {
                continue;
            }
            let found = match listed.kind {
                FileKind::Config => has_config.then_some(listed.size),
                kind => present.get(&(kind, listed.name.clone())).copied(),
            };
            if found != Some(listed.size) {
                gone.push(listed.kind.path_of(&listed.name));
            }
        }
        if !gone.is_empty() {
            self.report.disagreements.push(Disagreement::MissingRepositoryFiles {
                vault: vault.into(),
                machine: machine.into(),
                files: gone,
                recovery_points: points.len() as u64,
            });
        }
        if !has_config && (files > 0 || !points.is_empty()) {
            self.report.disagreements.push(Disagreement::RepositoryWithoutConfig {
                vault: vault.into(),
                machine: machine.into(),
                files: files.max(points.len() as u64),
            });
        }
        for (job_id, _) in self.db.adopted_jobs_of(machine).await? {
            self.report.adoptions += 1;
            let Some(job) = self.db.import_job(&job_id).await? else { continue };
            let folder = job.folder();
            let mut missing = Vec::new();
            // The seed is what its file list says (the container may have lost files
            // too); jobs made before file lists have only their container.
            let seed = match job.file_list {
                Some(_) => self.db.import_file_list(&job.id).await?,
                None => self.storage.import_files(&folder).await?,
            };
            for file in seed {
                let Some(repo_file) = RepoFile::from_path(&file.path) else { continue };
                match self.storage.size(vault, machine, &repo_file).await {
                    Ok(size) if size == file.size => {}
                    Ok(_) | Err(Failure::NotFound(_)) => missing.push(file.path.clone()),
                    Err(other) => return Err(other.into()),
                }
            }
            if !missing.is_empty() {
                self.report.disagreements.push(Disagreement::MissingAdoptedFiles {
                    vault: vault.into(),
                    machine: machine.into(),
                    import_job: job.name.clone(),
                    missing,
                });
            }
        }
        Ok(())
    }

    async fn import_jobs(&mut self) -> Result<(), CheckError> {
        for subscription in self.db.subscriptions().await? {
            for job in self.db.import_jobs_of(&subscription.id).await? {
                if job.state == ImportJobState::Completed {
                    self.completed_job(&job).await?;
                }
            }
        }
        Ok(())
    }

    async fn completed_job(&mut self, job: &ImportJobRow) -> Result<(), CheckError> {
        self.report.import_jobs_completed += 1;
        let folder: JobFolder = job.folder();
        let mut problem = |problem: String| {
            self.report.disagreements.push(Disagreement::IncompleteImportJob { import_job: job.name.clone(), problem })
        };
        if self.storage.has_parts(&folder).await? {
            problem("parts of its files were never assembled into files (.parts/ is not empty)".into());
        }
        let files = self.storage.import_files(&folder).await?;
        if job.file_list.is_some() {
            let missing = missing_from(&self.db.import_file_list(&job.id).await?, &files);
            if !missing.is_empty() {
                let names: Vec<String> = missing.iter().map(|f| f.path.clone()).collect();
                problem(format!(
                    "its container lacks {} of the files its file list names (or holds them at another size): {}",
                    missing.len(),
                    shorten(&names)
                ));
            }
        }
        if files.is_empty() {
            problem("its container holds none of its files".into());
        } else if seed_roots(&files).is_empty() {
            problem("its seed has no repository config".into());
        }
        if self.read_data {
            for file in &files {
                let key = format!("{}/{}", folder_root(&self.storage, &folder), file.path);
                self.verify(&key).await?;
            }
        }
        Ok(())
    }

    /// Reads a content-named object whole and records it when it does not hash to its name.
    async fn verify(&mut self, key: &str) -> Result<(), CheckError> {
        let Some(name) = claimed_hash(key) else { return Ok(()) };
        let store_key = StorePath::from(key);
        let mut stream = match self.storage.store.get(&store_key).await {
            Ok(found) => found.into_stream(),
            Err(err) => return Err(CheckError::Storage(format!("{key}: {err}"))),
        };
        let mut hasher = blake3::Hasher::new();
        while let Some(chunk) = stream.next().await {
            hasher.update(&chunk.map_err(|e| CheckError::Storage(format!("{key}: {e}")))?);
        }
        self.report.files_read += 1;
        if hasher.finalize().to_hex().as_str() != name {
            self.report.disagreements.push(Disagreement::DamagedFile { location: key.to_string() });
        }
        Ok(())
    }
}

fn folder_root(storage: &VaultStorage, folder: &JobFolder) -> String {
    let base = format!("containers/{}/{}/{}", folder.storage_account_id, folder.container_id, folder.job_name);
    if storage.prefix.is_empty() {
        base
    } else {
        format!("{}/{base}", storage.prefix)
    }
}

/// The files a local storage folder's uploads were staged in (`<name>#<n>`, as
/// object_store writes them before renaming), with their sizes.
pub fn staged_uploads(folder: &Path) -> Result<Vec<(PathBuf, u64)>, CheckError> {
    let mut found = Vec::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(CheckError::Folder { path: dir, source }),
        };
        for entry in entries {
            let entry = entry.map_err(|source| CheckError::Folder { path: dir.clone(), source })?;
            let meta = entry.metadata().map_err(|source| CheckError::Folder { path: entry.path(), source })?;
            if meta.is_dir() {
                pending.push(entry.path());
            } else if is_staged_upload(&entry.file_name().to_string_lossy()) {
                found.push((entry.path(), meta.len()));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// `name#123`: object_store's local staging suffix (digits only).
fn is_staged_upload(file_name: &str) -> bool {
    file_name
        .split_once('#')
        .is_some_and(|(_, suffix)| !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_upload_names_are_recognised() {
        assert!(is_staged_upload(&format!("{}#0", "a".repeat(64))));
        assert!(is_staged_upload("config#12"));
        assert!(!is_staged_upload("config"));
        assert!(!is_staged_upload("name#abc"));
        assert!(!is_staged_upload("name#"));
    }
}
