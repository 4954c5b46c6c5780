//! Offline seeding on the agent's side: the staging location. The first full
//! backup is written into a repository in the staging folder that has the vault
//! repository's identity (its `config` and key files are copied from the vault),
//! so the same passphrase opens it, the same chunking applies, and adopting it into
//! the vault later is a copy of files, not a re-encoding. Until the import job is
//! complete, scheduled backups send nothing large: they record that they wait.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::BlockingRetryable;

use offsite_engine::backend::{Backend, FileKind, LocalBackend};
use offsite_engine::repository::Repository;

use crate::config::{AgentConfig, OfflineSeeding};
use crate::error::{io_error, AgentError, AgentResult};
use crate::home::AgentHome;
use crate::registration::{stored_passphrase, Registration};

/// The message every backup records while the seed travels (the seed's wording).
pub fn waiting_message(import_job: &str) -> String {
    format!("Waiting for import job {import_job} to complete")
}

/// The message a backup records while the seed is in the staging location and
/// diskprep has not created the import job yet ([`SeedProgress::NotYetCreated`]):
/// there is no job to wait for, there are drives to prepare, with this command.
pub fn drives_not_prepared_message(home: &AgentHome, offline: &OfflineSeeding) -> String {
    let staging = crate::home::shell_word(&offline.staging.display().to_string());
    format!(
        "Waiting for the drives of import job {}: run `{}` to prepare them",
        offline.import_job,
        home.command(&format!("diskprep --staging {staging}"))
    )
}

/// Records the offline-seeding settings and prepares the staging repository.
pub fn configure(home: &AgentHome, settings: OfflineSeeding) -> AgentResult<OfflineSeeding> {
    // The service's rule, here where the name is first typed: not after the
    // staging backup is written and a drive formatted, when diskprep creates the job.
    offsite_seeding::import_job::check_job_name(&settings.import_job)
        .map_err(|e| AgentError::Invalid(e.to_string()))?;
    let registration = Registration::load(home)?;
    let mut config = AgentConfig::load(&home.config_file)?;
    if let Some(existing) = &config.offline {
        if existing.import_job != settings.import_job {
            return Err(AgentError::Invalid(format!(
                "offline seeding is already configured for import job '{}'; cancel it first ({})",
                existing.import_job,
                home.command("agent offline cancel")
            )));
        }
    }
    std::fs::create_dir_all(&settings.staging).map_err(io_error(&settings.staging))?;
    let staging = std::fs::canonicalize(&settings.staging).map_err(io_error(&settings.staging))?;
    let passphrase = stored_passphrase(home)?;
    prepare_staging(&registration, &passphrase, &config, &staging)?;
    let settings = OfflineSeeding { staging, ..settings };
    StagingMarker {
        import_job: settings.import_job.clone(),
        subscription_id: settings.subscription_id.clone(),
        storage_account: settings.storage_account.clone(),
        container: settings.container.clone(),
        service_url: registration.service_url.clone(),
        machine: registration.machine_name.clone(),
    }
    .write(&settings.staging)?;
    config.offline = Some(settings.clone());
    config.save(&home.config_file)?;
    Ok(settings)
}

/// The file in a staging location that names its import job, so that diskprep on
/// another computer (the copy computer) finds the job from the folder alone. It
/// holds no secret; diskprep leaves it off the drives.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StagingMarker {
    pub import_job: String,
    pub subscription_id: String,
    pub storage_account: String,
    pub container: String,
    pub service_url: String,
    /// The source machine's name in its vault.
    pub machine: String,
}

impl StagingMarker {
    pub const FILE_NAME: &'static str = "offsite-staging.json";

    pub fn write(&self, staging: &Path) -> AgentResult<()> {
        let path = staging.join(Self::FILE_NAME);
        let text = serde_json::to_string_pretty(self).map_err(|e| AgentError::Invalid(e.to_string()))?;
        std::fs::write(&path, text + "\n").map_err(io_error(&path))
    }

    /// The marker of a staging folder, or `None` when the folder has none.
    pub fn read(staging: &Path) -> AgentResult<Option<StagingMarker>> {
        let path = staging.join(Self::FILE_NAME);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(io_error(&path)(err)),
        };
        serde_json::from_str(&text).map(Some).map_err(|e| AgentError::Config { path, reason: e.to_string() })
    }

    /// The staging folders at `path`: itself if it is one, else its subfolders
    /// that are (a staging root shared by several machines or jobs).
    pub fn find(path: &Path) -> AgentResult<Vec<(PathBuf, StagingMarker)>> {
        if let Some(marker) = Self::read(path)? {
            return Ok(vec![(path.to_path_buf(), marker)]);
        }
        let mut found = Vec::new();
        for entry in std::fs::read_dir(path).map_err(io_error(path))? {
            let folder = entry.map_err(io_error(path))?.path();
            if folder.is_dir() {
                if let Some(marker) = Self::read(&folder)? {
                    found.push((folder, marker));
                }
            }
        }
        found.sort_by(|a, b| (&a.1.import_job, &a.0).cmp(&(&b.1.import_job, &b.0)));
        Ok(found)
    }
}

/// Stops offline seeding: later backups go over the network. The staging folder
/// is left as it is (it may be on its way already).
pub fn cancel(home: &AgentHome) -> AgentResult<Option<OfflineSeeding>> {
    let mut config = AgentConfig::load(&home.config_file)?;
    let previous = config.offline.take();
    config.save(&home.config_file)?;
    Ok(previous)
}

/// Copies the vault repository's identity (config and keys) into the staging
/// folder, unless it is already there; then proves the passphrase opens it.
fn prepare_staging(
    registration: &Registration,
    passphrase: &str,
    config: &AgentConfig,
    staging: &Path,
) -> AgentResult<()> {
    let vault = crate::repository::open_or_create(registration, None, passphrase, &config.retry, None, None)?;
    let local: Arc<dyn Backend> = Arc::new(LocalBackend::new(staging.display().to_string()));
    let has_config = local.size(FileKind::Config, "config")?.is_some();
    if has_config {
        let staged = Repository::read_config(local.as_ref())?;
        if staged.id != vault.repo.config().id {
            return Err(AgentError::Invalid(format!(
                "{} holds another repository: choose an empty staging folder",
                staging.display()
            )));
        }
    } else {
        if std::fs::read_dir(staging).map_err(io_error(staging))?.next().is_some() {
            return Err(AgentError::Invalid(format!(
                "the staging folder {} is not empty: choose an empty folder",
                staging.display()
            )));
        }
        local.create()?;
        let remote = vault.repo.backend();
        for key in remote.list(FileKind::Key)? {
            local.save(FileKind::Key, &key.name, remote.load(FileKind::Key, &key.name)?)?;
        }
        // The config last: a folder with a config is a complete repository.
        local.save(FileKind::Config, "config", remote.load(FileKind::Config, "config")?)?;
    }
    Repository::open(local, passphrase.as_bytes())?;
    Ok(())
}

/// Free bytes where `path` lives.
pub fn free_space(path: &Path) -> AgentResult<u64> {
    let stat = rustix::fs::statvfs(path).map_err(|e| io_error(path)(e.into()))?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Bytes of regular files under the protected paths: what a first backup may need
/// at most (before compression and deduplication).
pub fn protected_bytes(paths: &[PathBuf]) -> u64 {
    fn walk(path: &Path, total: &mut u64) {
        let Ok(meta) = std::fs::symlink_metadata(path) else { return };
        if meta.is_file() {
            *total += meta.len();
        } else if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(path) {
                for entry in entries.flatten() {
                    walk(&entry.path(), total);
                }
            }
        }
    }
    let mut total = 0;
    for path in paths {
        walk(path, &mut total);
    }
    total
}

/// Opens the staging repository after checking it has room for the backup.
pub fn open_staging(home: &AgentHome, settings: &OfflineSeeding, paths: &[PathBuf]) -> AgentResult<Repository> {
    let passphrase = stored_passphrase(home)?;
    let needed = protected_bytes(paths);
    let free = free_space(&settings.staging)?;
    if free < needed {
        return Err(AgentError::Invalid(format!(
            "the staging location {} has {} MiB free, and the first backup may need up to {} MiB (the size of \
             the protected data before compression): free space or choose a larger staging location",
            settings.staging.display(),
            free >> 20,
            needed.div_ceil(1 << 20)
        )));
    }
    let local: Arc<dyn Backend> = Arc::new(LocalBackend::new(settings.staging.display().to_string()));
    Ok(Repository::open(local, passphrase.as_bytes())?)
}

/// Where the seed is, as the service sees its import job.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum SeedProgress {
    /// The import job is on its way (its state now); backups keep waiting.
    Travelling(offsite_api::types::ImportJobState),
    /// diskprep has not created the import job yet.
    NotYetCreated,
    /// The seed was adopted into the vault just now.
    Adopted(crate::config::AdoptedSeed),
}

/// Asks the service how the import job is doing and, once it is complete, has the
/// service copy the seed from the container into this machine's vault repository
/// (server-side: the agent uploads nothing). After adoption offline seeding is
/// over: the configuration records the adopted seed and backups go online, as
/// incrementals against the seed's recovery point.
pub fn adopt_if_complete(
    home: &AgentHome,
    registration: &Registration,
    client: &offsite_api::Client,
) -> AgentResult<SeedProgress> {
    use offsite_api::types::ImportJobState;
    let mut config = AgentConfig::load(&home.config_file)?;
    let Some(offline) = config.offline.clone() else {
        return Err(AgentError::Invalid("offline seeding is not configured".into()));
    };
    let Some(snapshot_id) = offline.staged_snapshot.clone() else {
        return Err(AgentError::Invalid(format!(
            "the seed for import job {} is not in the staging location yet: run `{}`",
            offline.import_job,
            home.command("agent backup --now")
        )));
    };
    let job = match client.find_import_job(&offline.import_job) {
        Ok(job) => job,
        Err(err) if err.status() == Some(404) => return Ok(SeedProgress::NotYetCreated),
        Err(err) => return Err(err.into()),
    };
    match job.state {
        ImportJobState::Completed => {}
        ImportJobState::Closed => {
            return Err(AgentError::Invalid(format!(
                "import job {} was closed before it completed (cancelled, or the drives did not arrive within \
                 14 days of the shipping details): prepare and ship the staging location again with a new import \
                 job, or run `{}` to send the first backup over the network",
                offline.import_job,
                home.command("agent offline cancel")
            )))
        }
        state => return Ok(SeedProgress::Travelling(state)),
    }
    // Adoption may be asked again (the service resumes its copy, and answers an
    // adoption it recorded with that record): a call the service failed for a
    // passing reason, such as a replica dying under it, is made again within the
    // retry window, as the backup's own calls are.
    let window = Duration::from_secs(config.retry.network_seconds);
    let started = Instant::now();
    let adoption = (|| client.adopt_seed(&registration.machine_id, &offline.import_job))
        .retry(crate::vault_backend::RETRY)
        .sleep(std::thread::sleep)
        .when(|err| err.is_transient() && started.elapsed() < window)
        .notify(|err, wait| {
            tracing::warn!(error = %err, "adopting the seed: the service did not answer; retrying in {:.1} s", wait.as_secs_f64())
        })
        .call()?;
    // The service checked the files; the repository inside only this agent can read.
    // Through the cache: the seed's trees are what the first incremental reads.
    let cache = home.cache_settings();
    let vault = crate::repository::open(registration, &stored_passphrase(home)?, &config.retry, None, cache.as_ref())?;
    if let Err(problems) = crate::seed_check::verify(&vault.repo, &snapshot_id)? {
        crate::seed_check::withdraw(&vault.repo, &snapshot_id)?;
        return Err(crate::seed_check::refusal(home, &offline.import_job, &problems));
    }
    let adopted = crate::config::AdoptedSeed {
        import_job: offline.import_job.clone(),
        snapshot_id,
        adopted: time::OffsetDateTime::now_utc(),
        files: adoption.files,
        bytes: adoption.bytes,
    };
    config.offline = None;
    config.adopted_seed = Some(adopted.clone());
    config.save(&home.config_file)?;
    tracing::info!(import_job = %adopted.import_job, files = adopted.files, "offline seed adopted into the vault");
    Ok(SeedProgress::Adopted(adopted))
}

/// The import job of the configured offline seeding, as the service has it now
/// (`None` until diskprep creates it).
pub fn import_job(home: &AgentHome) -> AgentResult<Option<offsite_api::types::ImportJobView>> {
    let config = AgentConfig::load(&home.config_file)?;
    let Some(name) =
        config.offline.as_ref().map(|o| o.import_job.clone()).or(config.adopted_seed.map(|a| a.import_job))
    else {
        return Ok(None);
    };
    let client = Registration::load(home)?.client()?;
    match client.find_import_job(&name) {
        Ok(job) => Ok(Some(job)),
        Err(err) if err.status() == Some(404) => Ok(None),
        Err(err) => Err(err.into()),
    }
}
