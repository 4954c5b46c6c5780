//! Retries of the service's own storage calls. object_store retries HTTP-level
//! faults below its trait; what still fails there (a fault that outlasted those
//! retries, a local disk hiccup, a store wrapper's fault) reaches this layer, which
//! calls again with bounded exponential backoff where a call can be repeated
//! safely: reads, listings, deletes, copies and single puts (whose payload is kept).
//!
//! Not retried here: a multipart upload's parts (their bytes stream through from
//! the client; the client retries the whole file, which is named by its content),
//! a stream that breaks after its first bytes (the reader sees the error), and
//! permanent answers (missing file, full storage, refused credentials).

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use backon::{BackoffBuilder, ExponentialBuilder, Retryable};
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions,
    PutPayload, PutResult,
};

/// Four calls again after the first, the waits doubling from 100 ms up to 3 s.
const RETRY: ExponentialBuilder = ExponentialBuilder::new()
    .with_min_delay(Duration::from_millis(100))
    .with_max_delay(Duration::from_secs(3))
    .with_max_times(4);

pub(crate) use offsite_engine::backend::{is_disk_full, is_storage_full};

fn is_transient(err: &object_store::Error) -> bool {
    matches!(err, object_store::Error::Generic { .. } | object_store::Error::JoinError { .. }) && !is_storage_full(err)
}

async fn retrying<T, F, Fut>(what: &str, call: F) -> object_store::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = object_store::Result<T>>,
{
    call.retry(RETRY)
        .sleep(tokio::time::sleep)
        .when(is_transient)
        .notify(|err, wait| tracing::warn!(error = %err, "storage: {what} failed; retrying in {wait:?}"))
        .await
}

/// The service's store with retries; see the module documentation.
#[derive(Debug)]
pub(crate) struct RetryingStore {
    inner: Arc<dyn ObjectStore>,
}

impl RetryingStore {
    pub(crate) fn new(inner: Arc<dyn ObjectStore>) -> RetryingStore {
        RetryingStore { inner }
    }
}

impl fmt::Display for RetryingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.inner)
    }
}

#[async_trait]
impl ObjectStore for RetryingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        retrying("a put", || self.inner.put_opts(location, payload.clone(), opts.clone())).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        retrying("starting an upload", || self.inner.put_multipart_opts(location, opts.clone())).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        retrying("a read", || self.inner.get_opts(location, options.clone())).await
    }

    async fn head(&self, location: &Path) -> object_store::Result<ObjectMeta> {
        retrying("a look-up", || self.inner.head(location)).await
    }

    async fn delete(&self, location: &Path) -> object_store::Result<()> {
        retrying("a delete", || self.inner.delete(location)).await
    }

    /// A listing that fails before its first item is started again; one that
    /// fails later reports the error (its first items were already handed out).
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let inner = self.inner.clone();
        let prefix = prefix.cloned();
        stream::once(async move {
            let mut waits = RETRY.build();
            loop {
                let mut listing = inner.list(prefix.as_ref());
                match listing.next().await {
                    Some(Err(err)) if is_transient(&err) => match waits.next() {
                        Some(wait) => {
                            tracing::warn!(error = %err, "storage: a listing failed; retrying in {wait:?}");
                            tokio::time::sleep(wait).await;
                        }
                        None => return stream::once(async move { Err(err) }).boxed(),
                    },
                    Some(first) => return stream::once(async move { first }).chain(listing).boxed(),
                    None => return stream::empty().boxed(),
                }
            }
        })
        .flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        retrying("a listing", || self.inner.list_with_delimiter(prefix)).await
    }

    async fn copy(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        retrying("a copy", || self.inner.copy(from, to)).await
    }

    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        retrying("a copy", || self.inner.copy_if_not_exists(from, to)).await
    }
}
