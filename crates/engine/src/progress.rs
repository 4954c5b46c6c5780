//! Live counters of a long operation, updated by the engine's threads and read by
//! whoever shows progress (the CLI's bars, the agent's job status).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Progress {
    pub files_done: AtomicU64,
    pub bytes_done: AtomicU64,
    /// Totals, when a scan has counted them (`totals_known`).
    pub files_total: AtomicU64,
    pub bytes_total: AtomicU64,
    pub totals_known: AtomicBool,
    pub errors: AtomicU64,
}

impl Progress {
    pub fn add_file(&self, bytes: u64) {
        self.files_done.fetch_add(1, Ordering::Relaxed);
        self.bytes_done.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn add_bytes(&self, bytes: u64) {
        self.bytes_done.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn set_totals(&self, files: u64, bytes: u64) {
        self.files_total.store(files, Ordering::Relaxed);
        self.bytes_total.store(bytes, Ordering::Relaxed);
        self.totals_known.store(true, Ordering::Relaxed);
    }

    /// (files done, bytes done, totals if known)
    pub fn read(&self) -> (u64, u64, Option<(u64, u64)>) {
        let totals = self
            .totals_known
            .load(Ordering::Relaxed)
            .then(|| (self.files_total.load(Ordering::Relaxed), self.bytes_total.load(Ordering::Relaxed)));
        (self.files_done.load(Ordering::Relaxed), self.bytes_done.load(Ordering::Relaxed), totals)
    }
}
