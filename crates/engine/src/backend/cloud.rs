//! Repositories in object storage (S3, Azure Blob, Google Cloud Storage) through the
//! `object_store` crate. Its async calls are driven by a small private runtime so the
//! rest of the engine stays plain threads.

use std::sync::Arc;
use std::time::Duration;

use backon::{BlockingRetryable, ExponentialBuilder};
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{BackoffConfig, ObjectStore, RetryConfig};

use super::{Backend, BackendError, BackendResult, FileInfo, FileKind};

pub struct CloudBackend {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    location: String,
    retry: StoreRetry,
    runtime: tokio::runtime::Runtime,
}

/// How the backend retries what reaches it as transient (a failed or timed-out
/// call, a read that came back short) after object_store's own HTTP retries:
/// faults above the HTTP layer, and HTTP faults that outlasted those retries.
/// Permanent answers (missing file, full storage, refused credentials) are not
/// retried.
#[derive(Debug, Clone, Copy)]
pub struct StoreRetry {
    /// The waits between calls and how many calls are made again after the first.
    pub backoff: ExponentialBuilder,
    /// A call not answered in this time counts as failed (a hung connection).
    pub call_timeout: Duration,
}

impl Default for StoreRetry {
    /// Five calls in all, the waits doubling from 250 ms up to 10 s.
    fn default() -> Self {
        StoreRetry {
            backoff: ExponentialBuilder::new()
                .with_min_delay(Duration::from_millis(250))
                .with_max_delay(Duration::from_secs(10))
                .with_max_times(4),
            call_timeout: Duration::from_secs(600),
        }
    }
}

/// Why one attempt failed.
enum Attempt {
    Store(object_store::Error),
    /// The store answered with fewer bytes than it said it had.
    Short(String),
    TimedOut(Duration),
    /// Asked for bytes the file does not have (permanent).
    Beyond(String),
}

impl Attempt {
    /// Whether the same call may succeed a moment later.
    fn is_transient(&self) -> bool {
        match self {
            Attempt::Store(err) if is_storage_full(err) => false,
            Attempt::Store(object_store::Error::Generic { .. } | object_store::Error::JoinError { .. }) => true,
            Attempt::Store(_) | Attempt::Beyond(_) => false,
            Attempt::Short(_) | Attempt::TimedOut(_) => true,
        }
    }
}

impl From<object_store::Error> for Attempt {
    fn from(err: object_store::Error) -> Self {
        Attempt::Store(err)
    }
}

impl std::fmt::Display for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Attempt::Store(err) => write!(f, "{err}"),
            Attempt::Short(what) | Attempt::Beyond(what) => write!(f, "{what}"),
            Attempt::TimedOut(after) => write!(f, "no answer in {} s", after.as_secs_f64()),
        }
    }
}

/// ENOSPC (28 on Linux), however the error was made.
pub fn is_disk_full(err: &std::io::Error) -> bool {
    err.kind() == std::io::ErrorKind::StorageFull || err.raw_os_error() == Some(28)
}

/// Whether a store error says the storage is full: a local folder on a full disk,
/// or a store that passed the system's message on without its I/O error.
pub fn is_storage_full(err: &object_store::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(cause) = source {
        if cause.downcast_ref::<std::io::Error>().is_some_and(is_disk_full) {
            return true;
        }
        if cause.to_string().contains("No space left on device") {
            return true;
        }
        source = cause.source();
    }
    false
}

/// Transient faults (time-outs, 5xx, throttling) are retried inside `object_store`
/// with exponential backoff; this bounds how long before a failure is reported.
fn retry_policy() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
        max_retries: 5,
        retry_timeout: Duration::from_secs(90),
    }
}

/// object_store's config keys parse lowercase names (`aws_endpoint`); accept the
/// environment-variable spelling (`AWS_ENDPOINT`) of the same names too.
fn config_key<K: std::str::FromStr>(name: &str) -> Result<K, K::Err> {
    name.to_ascii_lowercase().parse()
}

/// The object store a cloud URL names and the prefix inside it, configured from the
/// cloud's usual environment variables plus `options`. The service uses this too, to
/// stream vault files without the blocking [`Backend`] in between.
pub fn open_object_store(url: &str, options: &[(String, String)]) -> BackendResult<(Arc<dyn ObjectStore>, String)> {
    let invalid = |reason: String| BackendError::InvalidLocation { url: url.to_string(), reason };
    let parsed = url::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
    let prefix = parsed.path().trim_matches('/').to_string();
    let store: Arc<dyn ObjectStore> = match parsed.scheme() {
        "s3" | "s3a" => {
            let mut builder = object_store::aws::AmazonS3Builder::from_env().with_url(url).with_retry(retry_policy());
            for (key, value) in options {
                builder = builder.with_config(config_key(key).map_err(|e| invalid(format!("{e}")))?, value);
            }
            Arc::new(builder.build().map_err(|e| invalid(e.to_string()))?)
        }
        "az" | "azure" | "abfs" | "abfss" => {
            let mut builder =
                object_store::azure::MicrosoftAzureBuilder::from_env().with_url(url).with_retry(retry_policy());
            for (key, value) in options {
                builder = builder.with_config(config_key(key).map_err(|e| invalid(format!("{e}")))?, value);
            }
            Arc::new(builder.build().map_err(|e| invalid(e.to_string()))?)
        }
        "gs" => {
            let mut builder =
                object_store::gcp::GoogleCloudStorageBuilder::from_env().with_url(url).with_retry(retry_policy());
            for (key, value) in options {
                builder = builder.with_config(config_key(key).map_err(|e| invalid(format!("{e}")))?, value);
            }
            Arc::new(builder.build().map_err(|e| invalid(e.to_string()))?)
        }
        other => return Err(invalid(format!("unknown scheme '{other}' (use a folder path, s3://, az:// or gs://)"))),
    };
    Ok((store, prefix))
}

impl CloudBackend {
    /// Opens `s3://bucket/prefix`, `az://container/prefix` or `gs://bucket/prefix`,
    /// configured from the cloud's usual environment variables plus `options`.
    pub fn open(url: &str, options: &[(String, String)]) -> BackendResult<Self> {
        let (store, prefix) = open_object_store(url, options)?;
        CloudBackend::with_store(store, &prefix, url, StoreRetry::default())
    }

    /// A repository under `prefix` in a store the caller made (tests wrap stores
    /// to inject faults); `location` names it in messages.
    pub fn with_store(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        location: &str,
        retry: StoreRetry,
    ) -> BackendResult<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("offsite-storage")
            .enable_all()
            .build()
            .map_err(|e| BackendError::Io { path: location.to_string(), source: e })?;
        Ok(CloudBackend {
            store,
            prefix: prefix.trim_matches('/').to_string(),
            location: location.to_string(),
            retry,
            runtime,
        })
    }

    fn key(&self, kind: FileKind, name: &str) -> StorePath {
        let relative = kind.path_of(name);
        if self.prefix.is_empty() {
            StorePath::from(relative)
        } else {
            StorePath::from(format!("{}/{}", self.prefix, relative))
        }
    }

    /// Runs `call` until it succeeds, fails permanently, or has failed as many
    /// times as `retry.backoff` allows, waiting longer after each failure.
    fn retrying<T, F, Fut>(&self, what: &str, key: &StorePath, mut call: F) -> BackendResult<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Attempt>>,
    {
        let mut attempts = 0u32;
        let outcome = (|| {
            attempts += 1;
            self.runtime.block_on(async {
                match tokio::time::timeout(self.retry.call_timeout, call()).await {
                    Ok(outcome) => outcome,
                    Err(_) => Err(Attempt::TimedOut(self.retry.call_timeout)),
                }
            })
        })
        .retry(self.retry.backoff)
        .sleep(std::thread::sleep)
        .when(Attempt::is_transient)
        .notify(|failure, wait| tracing::debug!(%key, ?wait, "storage call failed, retrying: {failure}"))
        .call();
        let failure = match outcome {
            Ok(value) => return Ok(value),
            Err(failure) => failure,
        };
        Err(match failure {
            Attempt::Store(object_store::Error::NotFound { .. }) => {
                BackendError::NotFound { path: format!("{}/{}", self.location, key) }
            }
            Attempt::Store(err) if is_storage_full(&err) => {
                BackendError::NoSpace { path: format!("{}/{}", self.location, key) }
            }
            failure if failure.is_transient() => BackendError::Remote {
                location: self.location.clone(),
                message: format!(
                    "{what} {key} failed {attempts} times, the last time with: {failure} (finished work is kept; \
                     run the command again when the storage answers)"
                ),
            },
            failure => {
                BackendError::Remote { location: self.location.clone(), message: format!("{what} {key}: {failure}") }
            }
        })
    }
}

impl Backend for CloudBackend {
    /// Object stores publish an object only when its upload completes: nothing
    /// half written is ever visible.
    fn remove_incomplete(&self) -> BackendResult<usize> {
        Ok(0)
    }

    fn location(&self) -> &str {
        &self.location
    }

    /// Buckets and containers are made by their owner; there are no folders to create.
    /// A listing proves the location is reachable and the credentials work.
    fn create(&self) -> BackendResult<()> {
        self.list(FileKind::Config).map(|_| ())
    }

    /// A retried save is safe: files are named by their content (see the module
    /// contract), so a save that landed but whose answer was lost stores the same bytes again.
    fn save(&self, kind: FileKind, name: &str, data: Bytes) -> BackendResult<()> {
        let key = self.key(kind, name);
        self.retrying("saving", &key, || async {
            self.store.put(&key, data.clone().into()).await?;
            Ok(())
        })
    }

    fn load(&self, kind: FileKind, name: &str) -> BackendResult<Bytes> {
        let key = self.key(kind, name);
        self.retrying("reading", &key, || async {
            let found = self.store.get(&key).await?;
            let size = found.meta.size;
            let bytes = found.bytes().await?;
            if bytes.len() as u64 != size {
                return Err(Attempt::Short(format!("the read ended after {} of its {size} bytes", bytes.len())));
            }
            Ok(bytes)
        })
    }

    fn load_range(&self, kind: FileKind, name: &str, offset: u64, length: u64) -> BackendResult<Bytes> {
        let key = self.key(kind, name);
        if length == 0 {
            // object_store refuses an empty range outright ("Range started at 0 and
            // ended at 0"); answer as a file does: it must exist and hold the offset.
            let size = self.retrying("reading", &key, || async { Ok(self.store.head(&key).await?.size) })?;
            if offset > size {
                return Err(BackendError::Remote {
                    location: self.location.clone(),
                    message: format!("{key}: asked for 0 bytes at {offset}, but it holds only {size}"),
                });
            }
            return Ok(Bytes::new());
        }
        self.retrying("reading", &key, || async {
            let bytes = self.store.get_range(&key, offset..offset + length).await?;
            if bytes.len() as u64 != length {
                let short = format!("asked for {length} bytes at {offset}, got {}", bytes.len());
                // A range past the end comes back short every time: damage, not a
                // fault worth waiting for.
                let size = self.store.head(&key).await?.size;
                if offset + length > size {
                    return Err(Attempt::Beyond(format!("{short}: the file holds only {size}")));
                }
                return Err(Attempt::Short(short));
            }
            Ok(bytes)
        })
    }

    fn size(&self, kind: FileKind, name: &str) -> BackendResult<Option<u64>> {
        let key = self.key(kind, name);
        match self.retrying("looking up", &key, || async { Ok(self.store.head(&key).await?.size) }) {
            Ok(size) => Ok(Some(size)),
            Err(BackendError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn list(&self, kind: FileKind) -> BackendResult<Vec<FileInfo>> {
        let folder = match kind {
            FileKind::Config => {
                return Ok(self
                    .size(kind, "config")?
                    .map(|size| FileInfo { name: "config".into(), size })
                    .into_iter()
                    .collect())
            }
            other => self.key(other, "").to_string(),
        };
        let prefix = StorePath::from(folder.trim_end_matches('/'));
        let metas: Vec<object_store::ObjectMeta> =
            self.retrying("listing", &prefix, || async { Ok(self.store.list(Some(&prefix)).try_collect().await?) })?;
        Ok(metas
            .into_iter()
            .filter_map(|meta| {
                let name = meta.location.filename()?.to_string();
                Some(FileInfo { name, size: meta.size })
            })
            .collect())
    }

    fn remove(&self, kind: FileKind, name: &str) -> BackendResult<()> {
        let key = self.key(kind, name);
        match self.retrying("removing", &key, || async { Ok(self.store.delete(&key).await?) }) {
            Ok(()) | Err(BackendError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
