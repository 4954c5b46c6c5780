//! The machine's repository in its vault, reached through the service's API: an
//! engine [`Backend`] whose verbs are HTTP requests. Transient failures (service
//! down, network gone, 5xx) are retried with backoff for a bounded time; since every
//! repository file is content-addressed, a retried upload is always safe. Uploads
//! are paced by the bandwidth throttle as they go onto the wire, slice by slice.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{BlockingRetryable, ExponentialBuilder};
use bytes::Bytes;

use offsite_api::{ApiError, Client, Pacer};
use offsite_engine::backend::{Backend, BackendError, BackendResult, FileInfo, FileKind};

use crate::throttle::Throttle;

/// The waits between calls: doubling from 0.5 s up to 15 s, for as long as the
/// retry window lasts (checked by the caller, since a call itself takes time).
pub(crate) const RETRY: ExponentialBuilder = ExponentialBuilder::new()
    .with_min_delay(Duration::from_millis(500))
    .with_max_delay(Duration::from_secs(15))
    .without_max_times();

pub struct VaultBackend {
    client: Client,
    machine_id: String,
    location: String,
    throttle: Arc<Throttle>,
    retry_for: Duration,
    /// Bytes of request bodies sent over the link, every attempt counted: a
    /// retried upload counts each time it was (or may have been) sent.
    sent: AtomicU64,
    /// Bytes of repository files the service stored (each file once).
    stored: AtomicU64,
    /// A call already waited out the retry window.
    gave_up: AtomicBool,
}

fn folder(kind: FileKind) -> &'static str {
    match kind {
        FileKind::Config => "config",
        other => other.folder(),
    }
}

impl VaultBackend {
    pub fn new(
        client: Client,
        machine_id: &str,
        vault_name: &str,
        throttle: Arc<Throttle>,
        retry_for: Duration,
    ) -> Self {
        let location = format!("the offsite service at {} (vault '{vault_name}')", client.url());
        VaultBackend {
            client,
            machine_id: machine_id.to_string(),
            location,
            throttle,
            retry_for,
            sent: AtomicU64::new(0),
            stored: AtomicU64::new(0),
            gave_up: AtomicBool::new(false),
        }
    }

    /// Bytes sent over the link so far, retries included. An attempt that failed
    /// after its connection was made counts its whole body (how much of it
    /// crossed is not known), so this may exceed the truth by the files in flight
    /// when the link broke; attempts that found no connection count nothing.
    pub fn bytes_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Bytes of repository files the service stored so far (each file once).
    pub fn bytes_stored(&self) -> u64 {
        self.stored.load(Ordering::Relaxed)
    }

    fn error(&self, kind: FileKind, name: &str, err: ApiError) -> BackendError {
        let location = self.location.clone();
        match err {
            ApiError::Refused { status: 404, .. } => {
                BackendError::NotFound { path: format!("{}/{}", folder(kind), name) }
            }
            ApiError::Refused { status, message, .. } => BackendError::Refused { location, status, message },
            ApiError::Unreachable { reason, .. } => BackendError::Unreachable { location, message: reason },
            other => BackendError::Remote { location, message: other.to_string() },
        }
    }

    /// Runs `call` until it succeeds, fails for good, or has failed transiently for
    /// longer than the retry window (doubling waits from 0.5 s up to 15 s). Once one
    /// call has waited out the whole window, later ones (removing the lock, saving
    /// the index of what was stored) try once: the user hears of the failure now,
    /// not after one window per call.
    fn with_retry<T>(&self, kind: FileKind, name: &str, call: impl FnMut() -> Result<T, ApiError>) -> BackendResult<T> {
        let started = Instant::now();
        let mut gave_up_now = false;
        let result = call
            .retry(RETRY)
            .sleep(std::thread::sleep)
            .when(|err| {
                let again = err.is_transient() && started.elapsed() < self.retry_for;
                gave_up_now = err.is_transient() && !again;
                again && !self.gave_up.load(Ordering::Relaxed)
            })
            .notify(|err, wait| {
                tracing::warn!(error = %err, "the service did not answer; retrying in {:.1} s", wait.as_secs_f64())
            })
            .call();
        if gave_up_now {
            self.gave_up.store(true, Ordering::Relaxed);
        }
        result.map_err(|err| self.error(kind, name, err))
    }
}

impl Backend for VaultBackend {
    fn location(&self) -> &str {
        &self.location
    }

    /// The service creates a machine's place at registration; a listing proves it
    /// answers and the credential works.
    fn create(&self) -> BackendResult<()> {
        self.list(FileKind::Config).map(|_| ())
    }

    fn save(&self, kind: FileKind, name: &str, data: Bytes) -> BackendResult<()> {
        let length = data.len() as u64;
        // Every attempt goes through the throttle and is counted: a retry crosses
        // the link again. While a limit is in force the body is paced slice by
        // slice, with the other uploads, so that the link keeps to the limit
        // rather than the average; without one it leaves at full speed, uncopied.
        self.with_retry(kind, name, || {
            let (machine, folder) = (&self.machine_id, folder(kind));
            let result = if self.throttle.current_limit().is_some() {
                let pacer: Arc<dyn Pacer> = self.throttle.clone();
                self.client.put_file_paced(machine, folder, name, data.clone(), pacer)
            } else {
                self.client.put_file(machine, folder, name, data.clone())
            };
            if result.as_ref().err().is_none_or(ApiError::may_have_sent_body) {
                self.sent.fetch_add(length, Ordering::Relaxed);
            }
            result
        })?;
        self.stored.fetch_add(length, Ordering::Relaxed);
        Ok(())
    }

    fn load(&self, kind: FileKind, name: &str) -> BackendResult<Bytes> {
        self.with_retry(kind, name, || self.client.get_file(&self.machine_id, folder(kind), name, None))
    }

    fn load_range(&self, kind: FileKind, name: &str, offset: u64, length: u64) -> BackendResult<Bytes> {
        if length == 0 {
            return Ok(Bytes::new());
        }
        let bytes = self.with_retry(kind, name, || {
            self.client.get_file(&self.machine_id, folder(kind), name, Some((offset, length)))
        })?;
        if bytes.len() as u64 != length {
            return Err(BackendError::Remote {
                location: self.location.clone(),
                message: format!("{name}: asked for {length} bytes at {offset}, got {}", bytes.len()),
            });
        }
        Ok(bytes)
    }

    fn size(&self, kind: FileKind, name: &str) -> BackendResult<Option<u64>> {
        self.with_retry(kind, name, || self.client.file_size(&self.machine_id, folder(kind), name))
    }

    fn list(&self, kind: FileKind) -> BackendResult<Vec<FileInfo>> {
        let files = self.with_retry(kind, "", || self.client.list_files(&self.machine_id, folder(kind)))?;
        Ok(files.into_iter().map(|f| FileInfo { name: f.name, size: f.size }).collect())
    }

    fn remove(&self, kind: FileKind, name: &str) -> BackendResult<()> {
        self.with_retry(kind, name, || self.client.delete_file(&self.machine_id, folder(kind), name))
    }

    /// The service's storage publishes uploads only when complete.
    fn remove_incomplete(&self) -> BackendResult<usize> {
        Ok(0)
    }
}
