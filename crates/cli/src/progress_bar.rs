//! Progress bars on a terminal, nothing in scripts: a thread polls the engine's
//! counters and draws them with indicatif.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use offsite_engine::progress::Progress;

use crate::display::plural;

pub struct Bar {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Bar {
    /// Shows `progress` under `label` when stderr is a terminal and not `quiet`.
    pub fn show(label: &'static str, progress: Arc<Progress>, quiet: bool) -> Bar {
        let stop = Arc::new(AtomicBool::new(false));
        if quiet || !std::io::stderr().is_terminal() {
            return Bar { stop, thread: None };
        }
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let bar = ProgressBar::new(0);
            let counting = ProgressStyle::with_template("{prefix} {spinner} {msg} {bytes} ({binary_bytes_per_sec})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            let known = ProgressStyle::with_template(
                "{prefix} [{bar:30}] {msg} {bytes}/{total_bytes} ({binary_bytes_per_sec}, ETA {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(counting);
            bar.set_prefix(label);
            let mut has_totals = false;
            while !flag.load(Ordering::Relaxed) {
                let (files, bytes, totals) = progress.read();
                if let Some((total_files, total_bytes)) = totals {
                    if !has_totals {
                        bar.set_style(known.clone());
                        has_totals = true;
                    }
                    bar.set_length(total_bytes.max(bytes));
                    bar.set_message(format!("{files}/{}", plural(total_files, "file")));
                } else {
                    bar.set_message(plural(files, "file"));
                }
                bar.set_position(bytes);
                std::thread::sleep(Duration::from_millis(100));
            }
            bar.finish_and_clear();
        });
        Bar { stop, thread: Some(thread) }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A bar for work that reports its own counts (diskprep, ingest): on a terminal
/// only, drawn by indicatif's own ticker.
pub struct Counter {
    bar: Option<ProgressBar>,
}

impl Counter {
    pub fn show(label: &'static str, quiet: bool) -> Counter {
        if quiet || !std::io::stderr().is_terminal() {
            return Counter { bar: None };
        }
        let bar = ProgressBar::new(0);
        let style = ProgressStyle::with_template(
            "{prefix} [{bar:30}] {bytes}/{total_bytes} ({binary_bytes_per_sec}, ETA {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(label);
        bar.enable_steady_tick(Duration::from_millis(200));
        Counter { bar: Some(bar) }
    }

    pub fn set(&self, done: u64, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total.max(done));
            bar.set_position(done);
        }
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
