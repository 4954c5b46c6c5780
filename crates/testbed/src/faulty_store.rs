//! An object store that misbehaves on purpose: [`FaultyStore`] wraps another
//! `ObjectStore` and, from a seeded RNG and a [`FaultPlan`], injects the faults a
//! real cloud shows above object_store's own HTTP retries: errors, calls that hang
//! and then time out, slow answers, reads whose stream ends early or breaks, and
//! writes that store nothing or fail after some parts. It counts what it injected
//! ([`FaultCounts`]), so a test can prove the faults happened.
//!
//! Faults can be switched off ([`FaultyStore::set_active`]) to verify the result
//! through the same store afterwards.

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, UploadPart,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The call fails at once, as a 5xx or a reset connection does.
    Error,
    /// The call hangs for [`FaultPlan::hang`], then fails as a request time-out.
    Timeout,
    /// The call answers correctly after [`FaultPlan::delay`].
    Slow,
    /// A read's stream ends early (half the time) or errors mid-way.
    TruncatedRead,
    /// A write stores nothing and fails; a multipart upload fails after some parts;
    /// a third of the time a single put is stored but reported failed (the answer
    /// was lost on the way back).
    PartialWrite,
    /// The call fails as a full disk does (permanent: must not be retried forever).
    StorageFull,
}

/// What to inject. Rates are per call, between 0 and 1; `script` fails chosen
/// calls (counted from 1 over every call of the store) whatever the rates say: a
/// fault that does not fit its call (a truncated read on a write) waits for the
/// first later call it fits.
#[derive(Debug, Clone)]
pub struct FaultPlan {
    pub seed: u64,
    pub error: f64,
    pub timeout: f64,
    pub slow: f64,
    pub truncated_read: f64,
    pub partial_write: f64,
    /// How long a timed-out call hangs before failing.
    pub hang: Duration,
    /// How long a slow call waits before answering.
    pub delay: Duration,
    /// (call number, fault) pairs.
    pub script: Vec<(u64, FaultKind)>,
}

impl FaultPlan {
    /// No faults at all (add a script or rates).
    pub fn none(seed: u64) -> FaultPlan {
        FaultPlan {
            seed,
            error: 0.0,
            timeout: 0.0,
            slow: 0.0,
            truncated_read: 0.0,
            partial_write: 0.0,
            hang: Duration::from_secs(2),
            delay: Duration::from_millis(200),
            script: Vec::new(),
        }
    }

    /// Every fault kind at `rate` (time-outs at a fifth of it: each costs a wait).
    pub fn uniform(seed: u64, rate: f64) -> FaultPlan {
        FaultPlan {
            error: rate,
            timeout: rate / 5.0,
            slow: rate,
            truncated_read: rate,
            partial_write: rate,
            ..FaultPlan::none(seed)
        }
    }

    /// Only the scripted faults.
    pub fn scripted(script: Vec<(u64, FaultKind)>) -> FaultPlan {
        FaultPlan { script, ..FaultPlan::none(0) }
    }
}

/// How many faults of each kind were injected, and how many calls were seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    pub calls: u64,
    pub errors: u64,
    pub timeouts: u64,
    pub slow: u64,
    pub truncated_reads: u64,
    pub partial_writes: u64,
    pub storage_full: u64,
}

impl FaultCounts {
    /// Faults of every kind together (slow answers included).
    pub fn total(&self) -> u64 {
        self.errors + self.timeouts + self.slow + self.truncated_reads + self.partial_writes + self.storage_full
    }
}

impl fmt::Display for FaultCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} calls: {} errors, {} time-outs, {} slow, {} truncated reads, {} partial writes, {} storage full",
            self.calls,
            self.errors,
            self.timeouts,
            self.slow,
            self.truncated_reads,
            self.partial_writes,
            self.storage_full
        )
    }
}

#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    slow: AtomicU64,
    truncated_reads: AtomicU64,
    partial_writes: AtomicU64,
    storage_full: AtomicU64,
}

impl Counters {
    fn count(&self, kind: FaultKind) {
        let counter = match kind {
            FaultKind::Error => &self.errors,
            FaultKind::Timeout => &self.timeouts,
            FaultKind::Slow => &self.slow,
            FaultKind::TruncatedRead => &self.truncated_reads,
            FaultKind::PartialWrite => &self.partial_writes,
            FaultKind::StorageFull => &self.storage_full,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What a call is, for choosing the faults that make sense for it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Call {
    Read,
    Write,
    Other,
}

struct Shared {
    inner: Arc<dyn ObjectStore>,
    plan: FaultPlan,
    rng: Mutex<StdRng>,
    /// Scripted faults not injected yet.
    script: Mutex<Vec<(u64, FaultKind)>>,
    active: AtomicBool,
    counters: Counters,
}

/// The fault-injecting wrapper; cheap to clone (clones share plan and counts).
#[derive(Clone)]
pub struct FaultyStore(Arc<Shared>);

impl fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({:?})", self.0.inner)
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.0.inner)
    }
}

const STORE: &str = "FaultyStore";

fn injected(what: &str) -> object_store::Error {
    object_store::Error::Generic { store: STORE, source: format!("injected fault: {what}").into() }
}

fn storage_full() -> object_store::Error {
    let io = std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device (injected)");
    object_store::Error::Generic { store: STORE, source: Box::new(io) }
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn ObjectStore>, plan: FaultPlan) -> FaultyStore {
        let rng = Mutex::new(StdRng::seed_from_u64(plan.seed));
        let script = Mutex::new(plan.script.clone());
        FaultyStore(Arc::new(Shared {
            inner,
            plan,
            rng,
            script,
            active: AtomicBool::new(true),
            counters: Counters::default(),
        }))
    }

    /// This store as the trait object the code under test takes.
    pub fn as_store(&self) -> Arc<dyn ObjectStore> {
        Arc::new(self.clone())
    }

    /// Turns injection on or off (calls are counted either way).
    pub fn set_active(&self, active: bool) {
        self.0.active.store(active, Ordering::SeqCst);
    }

    pub fn counts(&self) -> FaultCounts {
        let c = &self.0.counters;
        FaultCounts {
            calls: c.calls.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            timeouts: c.timeouts.load(Ordering::Relaxed),
            slow: c.slow.load(Ordering::Relaxed),
            truncated_reads: c.truncated_reads.load(Ordering::Relaxed),
            partial_writes: c.partial_writes.load(Ordering::Relaxed),
            storage_full: c.storage_full.load(Ordering::Relaxed),
        }
    }

    /// The fault for the next call, if any, counted.
    fn choose(&self, call: Call) -> Option<FaultKind> {
        let shared = &self.0;
        let n = shared.counters.calls.fetch_add(1, Ordering::Relaxed) + 1;
        if !shared.active.load(Ordering::SeqCst) {
            return None;
        }
        let plan = &shared.plan;
        let fits = |kind: FaultKind| match kind {
            FaultKind::TruncatedRead => call == Call::Read,
            FaultKind::PartialWrite => call == Call::Write,
            _ => true,
        };
        let scripted = {
            let mut script = shared.script.lock().unwrap_or_else(|e| e.into_inner());
            let due = script.iter().position(|(at, kind)| *at <= n && fits(*kind));
            due.map(|i| script.remove(i).1)
        };
        let fault = scripted.or_else(|| {
            let mut rng = shared.rng.lock().unwrap_or_else(|e| e.into_inner());
            let mut roll = rng.gen::<f64>();
            let candidates = [
                (FaultKind::Error, plan.error),
                (FaultKind::Timeout, plan.timeout),
                (FaultKind::Slow, plan.slow),
                (FaultKind::TruncatedRead, plan.truncated_read),
                (FaultKind::PartialWrite, plan.partial_write),
            ];
            for (kind, rate) in candidates.into_iter().filter(|(kind, _)| fits(*kind)) {
                if roll < rate {
                    return Some(kind);
                }
                roll -= rate;
            }
            None
        })?;
        shared.counters.count(fault);
        Some(fault)
    }

    /// Applies the faults every call shares; returns the fault left for the call.
    async fn before(&self, call: Call, what: &str) -> object_store::Result<Option<FaultKind>> {
        match self.choose(call) {
            Some(FaultKind::Error) => Err(injected(&format!("{what} failed"))),
            Some(FaultKind::StorageFull) => Err(storage_full()),
            Some(FaultKind::Timeout) => {
                tokio::time::sleep(self.0.plan.hang).await;
                Err(injected(&format!("{what} timed out after {:?}", self.0.plan.hang)))
            }
            Some(FaultKind::Slow) => {
                tokio::time::sleep(self.0.plan.delay).await;
                Ok(None)
            }
            other => Ok(other),
        }
    }

    fn random_below(&self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        self.0.rng.lock().unwrap_or_else(|e| e.into_inner()).gen_range(0..bound)
    }

    /// The same result, but its stream stops after some bytes: silently half the
    /// time (a short read), with an error otherwise.
    fn truncate(&self, result: GetResult) -> GetResult {
        let length = result.range.end - result.range.start;
        let keep = self.random_below(length);
        let fail = self.random_below(2) == 0;
        let GetResult { payload, meta, range, attributes } = result;
        let whole = GetResult { payload, meta: meta.clone(), range: range.clone(), attributes: attributes.clone() };
        let cut = whole.into_stream().scan(keep, |left, chunk| {
            if *left == 0 {
                return futures::future::ready(None);
            }
            let out = chunk.map(|bytes| {
                let take = (*left).min(bytes.len() as u64);
                *left -= take;
                bytes.slice(..take as usize)
            });
            futures::future::ready(Some(out))
        });
        let tail: BoxStream<'static, object_store::Result<Bytes>> = if fail {
            stream::once(async { Err(injected("the read broke off mid-way")) }).boxed()
        } else {
            stream::empty().boxed()
        };
        GetResult { payload: GetResultPayload::Stream(cut.chain(tail).boxed()), meta, range, attributes }
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        match self.before(Call::Write, &format!("put {location}")).await? {
            Some(FaultKind::PartialWrite) => {
                if self.random_below(3) == 0 {
                    self.0.inner.put_opts(location, payload, opts).await?;
                    Err(injected(&format!("put {location}: the answer was lost")))
                } else {
                    Err(injected(&format!("put {location} broke off; nothing stored")))
                }
            }
            _ => self.0.inner.put_opts(location, payload, opts).await,
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let fault = self.before(Call::Write, &format!("multipart upload of {location}")).await?;
        let inner = self.0.inner.put_multipart_opts(location, opts).await?;
        let fail_after = match fault {
            Some(FaultKind::PartialWrite) => Some(self.random_below(3) as usize),
            _ => None,
        };
        Ok(Box::new(FaultyUpload { inner, location: location.to_string(), parts: 0, fail_after }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        let fault = self.before(Call::Read, &format!("get {location}")).await?;
        let head = options.head;
        let result = self.0.inner.get_opts(location, options).await?;
        match fault {
            Some(FaultKind::TruncatedRead) if !head => Ok(self.truncate(result)),
            _ => Ok(result),
        }
    }

    async fn get_range(&self, location: &Path, range: Range<u64>) -> object_store::Result<Bytes> {
        let options = GetOptions { range: Some(range.into()), ..Default::default() };
        self.get_opts(location, options).await?.bytes().await
    }

    async fn head(&self, location: &Path) -> object_store::Result<ObjectMeta> {
        self.before(Call::Other, &format!("head {location}")).await?;
        self.0.inner.head(location).await
    }

    async fn delete(&self, location: &Path) -> object_store::Result<()> {
        self.before(Call::Other, &format!("delete {location}")).await?;
        self.0.inner.delete(location).await
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        // The fault is chosen now; a slow or hanging listing waits before its first item.
        let what = format!("list {}", prefix.map(|p| p.to_string()).unwrap_or_default());
        let inner = self.0.inner.list(prefix);
        let this = self.clone();
        stream::once(async move {
            match this.before(Call::Other, &what).await {
                Ok(_) => inner,
                Err(err) => stream::once(async move { Err(err) }).boxed(),
            }
        })
        .flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.before(Call::Other, "list with delimiter").await?;
        self.0.inner.list_with_delimiter(prefix).await
    }

    async fn copy(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.before(Call::Other, &format!("copy {from} to {to}")).await?;
        self.0.inner.copy(from, to).await
    }

    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.before(Call::Other, &format!("copy {from} to {to}")).await?;
        self.0.inner.copy_if_not_exists(from, to).await
    }

    async fn rename(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.before(Call::Other, &format!("rename {from} to {to}")).await?;
        self.0.inner.rename(from, to).await
    }

    async fn rename_if_not_exists(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.before(Call::Other, &format!("rename {from} to {to}")).await?;
        self.0.inner.rename_if_not_exists(from, to).await
    }
}

/// A multipart upload that fails its part number `fail_after` (and every later
/// one, and the completion), as a connection lost mid-upload does.
struct FaultyUpload {
    inner: Box<dyn MultipartUpload>,
    location: String,
    parts: usize,
    fail_after: Option<usize>,
}

impl fmt::Debug for FaultyUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyUpload({})", self.location)
    }
}

#[async_trait]
impl MultipartUpload for FaultyUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let part = self.parts;
        self.parts += 1;
        match self.fail_after {
            Some(limit) if part >= limit => {
                let what = format!("part {part} of {} broke off", self.location);
                Box::pin(async move { Err(injected(&what)) })
            }
            _ => self.inner.put_part(data),
        }
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        if self.fail_after.is_some() {
            let _ = self.inner.abort().await;
            return Err(injected(&format!("the upload of {} failed after {} parts", self.location, self.parts)));
        }
        self.inner.complete().await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.inner.abort().await
    }
}
