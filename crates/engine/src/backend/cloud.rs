//! Repositories in object storage (S3, Azure Blob, Google Cloud Storage) through the
//! `object_store` crate. Its async calls are driven by a small private runtime so the
//! rest of the engine stays plain threads.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{BackoffConfig, ObjectStore, RetryConfig};

use super::{Backend, BackendError, BackendResult, FileInfo, FileKind};

pub struct CloudBackend {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    location: String,
    runtime: tokio::runtime::Runtime,
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
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("offsite-storage")
            .enable_all()
            .build()
            .map_err(|e| BackendError::Io { path: url.to_string(), source: e })?;
        Ok(CloudBackend { store, prefix, location: url.to_string(), runtime })
    }

    fn key(&self, kind: FileKind, name: &str) -> StorePath {
        let relative = kind.path_of(name);
        if self.prefix.is_empty() {
            StorePath::from(relative)
        } else {
            StorePath::from(format!("{}/{}", self.prefix, relative))
        }
    }

    fn error(&self, key: &StorePath, err: object_store::Error) -> BackendError {
        match err {
            object_store::Error::NotFound { .. } => {
                BackendError::NotFound { path: format!("{}/{}", self.location, key) }
            }
            other => BackendError::Remote { location: self.location.clone(), message: other.to_string() },
        }
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

    fn save(&self, kind: FileKind, name: &str, data: Bytes) -> BackendResult<()> {
        let key = self.key(kind, name);
        self.runtime.block_on(self.store.put(&key, data.into())).map(|_| ()).map_err(|e| self.error(&key, e))
    }

    fn load(&self, kind: FileKind, name: &str) -> BackendResult<Bytes> {
        let key = self.key(kind, name);
        self.runtime.block_on(async { self.store.get(&key).await?.bytes().await }).map_err(|e| self.error(&key, e))
    }

    fn load_range(&self, kind: FileKind, name: &str, offset: u64, length: u64) -> BackendResult<Bytes> {
        let key = self.key(kind, name);
        if length == 0 {
            // object_store refuses an empty range outright ("Range started at 0 and
            // ended at 0"); answer as a file does: it must exist and hold the offset.
            let size = self.runtime.block_on(self.store.head(&key)).map_err(|e| self.error(&key, e))?.size;
            if offset > size {
                return Err(BackendError::Remote {
                    location: self.location.clone(),
                    message: format!("{key}: asked for 0 bytes at {offset}, but it holds only {size}"),
                });
            }
            return Ok(Bytes::new());
        }
        let bytes = self
            .runtime
            .block_on(self.store.get_range(&key, offset..offset + length))
            .map_err(|e| self.error(&key, e))?;
        if bytes.len() as u64 != length {
            return Err(BackendError::Remote {
                location: self.location.clone(),
                message: format!("{key}: asked for {length} bytes at {offset}, got {}", bytes.len()),
            });
        }
        Ok(bytes)
    }

    fn size(&self, kind: FileKind, name: &str) -> BackendResult<Option<u64>> {
        let key = self.key(kind, name);
        match self.runtime.block_on(self.store.head(&key)) {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(&key, e)),
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
            self.runtime.block_on(self.store.list(Some(&prefix)).try_collect()).map_err(|e| self.error(&prefix, e))?;
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
        match self.runtime.block_on(self.store.delete(&key)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(&key, e)),
        }
    }
}
