//! Opening this machine's repository in its vault.

use std::sync::Arc;
use std::time::Duration;

use offsite_engine::cache::CacheSettings;
use offsite_engine::repofile::lock::LockFile;
use offsite_engine::repository::{InitOptions, Repository};

use crate::config::{AgentConfig, RetryPolicy};
use crate::error::{AgentError, AgentResult};
use crate::home::AgentHome;
use crate::registration::{stored_passphrase, Registration};
use crate::throttle::Throttle;
use crate::vault_backend::VaultBackend;

/// The repository and the backend under it (for the bytes it sent).
pub struct VaultRepository {
    pub repo: Repository,
    pub backend: Arc<VaultBackend>,
}

fn backend(
    registration: &Registration,
    client: Option<&offsite_api::Client>,
    retry: &RetryPolicy,
    throttle: Option<Arc<Throttle>>,
) -> AgentResult<Arc<VaultBackend>> {
    let client = match client {
        Some(client) => client.clone(),
        None => registration.client()?,
    };
    Ok(Arc::new(VaultBackend::new(
        client,
        &registration.machine_id,
        &registration.vault_name,
        throttle.unwrap_or_else(|| Arc::new(Throttle::unlimited())),
        Duration::from_secs(retry.network_seconds),
    )))
}

/// Opens the machine's repository with `passphrase`, with a local cache of its
/// index, snapshots and trees in front when `cache` is given
/// ([`AgentHome::cache_settings`]).
pub fn open(
    registration: &Registration,
    passphrase: &str,
    retry: &RetryPolicy,
    throttle: Option<Arc<Throttle>>,
    cache: Option<&CacheSettings>,
) -> AgentResult<VaultRepository> {
    open_or_maybe_create(backend(registration, None, retry, throttle)?, passphrase, cache, None)
}

/// Opens the repository, creating it first when registration stopped before it was
/// made. Over `client`'s connections when given: a job's requests and the
/// repository's then share them (a new connection costs round trips).
pub fn open_or_create(
    registration: &Registration,
    client: Option<&offsite_api::Client>,
    passphrase: &str,
    retry: &RetryPolicy,
    throttle: Option<Arc<Throttle>>,
    cache: Option<&CacheSettings>,
) -> AgentResult<VaultRepository> {
    let backend = backend(registration, client, retry, throttle)?;
    open_or_maybe_create(backend, passphrase, cache, Some(InitOptions::default()))
}

/// [`open_or_create`], creating the repository with `init`.
pub fn open_or_create_with(
    registration: &Registration,
    passphrase: &str,
    retry: &RetryPolicy,
    throttle: Option<Arc<Throttle>>,
    init: InitOptions,
) -> AgentResult<VaultRepository> {
    open_or_maybe_create(backend(registration, None, retry, throttle)?, passphrase, None, Some(init))
}

fn open_or_maybe_create(
    backend: Arc<VaultBackend>,
    passphrase: &str,
    cache: Option<&CacheSettings>,
    create: Option<InitOptions>,
) -> AgentResult<VaultRepository> {
    // Opened first: the usual case costs no extra request for the config.
    let repo = match (Repository::open_cached(backend.clone(), passphrase.as_bytes(), cache), create) {
        (Ok(repo), _) => repo,
        (Err(offsite_engine::error::Error::NotARepository { .. }), Some(init)) => {
            let repo = Repository::init(backend.clone(), passphrase.as_bytes(), init)?;
            match cache {
                Some(settings) => repo.with_cache(settings),
                None => repo,
            }
        }
        (Err(offsite_engine::error::Error::WrongPassphrase { .. }), _) => return Err(AgentError::WrongPassphrase),
        (Err(other), _) => return Err(other.into()),
    };
    Ok(VaultRepository { repo, backend })
}

/// Removes the stale locks of the machine's repository (every lock with `all`):
/// those of runs on this host that were killed, and any older than
/// [`offsite_engine::lock::STALE_AFTER`]. Returns what was removed. The next
/// backup removes this host's dead runs' locks by itself; this is for the rest.
pub fn unlock(home: &AgentHome, all: bool) -> AgentResult<Vec<LockFile>> {
    let config = AgentConfig::load(&home.config_file)?;
    let registration = Registration::load(home)?;
    let passphrase = stored_passphrase(home)?;
    let vault = open(&registration, &passphrase, &config.retry, None, None)?;
    Ok(offsite_engine::lock::unlock(&vault.repo, all)?)
}
