//! The ingest station's reading of one drive: every data block is verified
//! ([`DriveReader::verify_and_read`]) and each file part the drive holds is handed to
//! a [`PartUploader`] as a streaming body, with bounded memory.
//!
//! This thread reads and verifies blocks; [`UPLOADERS`] more run the uploader, one
//! part each, so the next part streams while the service finishes storing the
//! previous one. Each part's body is a bounded channel (a few MiB of blocks in
//! flight at most) read as a [`PartBody`], so an uploader such as an HTTP PUT
//! streams the body as the drive is read. If a bad block falls inside a part, its
//! [`PartBody`] fails with an I/O error, so the upload fails and the store keeps
//! nothing partial; the part is reported as not delivered, and its file as needing
//! a repair drive. Everything else is still delivered.
//!
//! An upload that fails for a passing reason ([`UploadError::Transient`]: the
//! service unreachable, overloaded, or its storage failing for longer than it
//! retries) is not the drive's fault: after the pass, those parts are read from
//! the drive again and re-sent, with the waits [`PartUploader::retry_policy`] gives,
//! so a sound drive is not sent back for repair because the network blinked.
//!
//! The report carries two plain-text logs, one item per line: a verbose log (every
//! part delivered, block counts) and an error log (every bad block with the file
//! ranges it held, every failed upload, and the command that re-sends what is
//! missing), empty when the drive is clean.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::io::Read;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use bytes::Bytes;
use tokio::sync::mpsc::{channel, Receiver, Sender};

use offsite_api::size::plural;

use crate::admission::{AdmissionError, Admitted};
use crate::drive::{BadBlock, BlockProblem, DriveError, DriveKey, DriveReader, FilePart, VerifyReport};

/// Blocks' bytes allowed in flight between the drive reader and each part's
/// uploader (at least one block).
const IN_FLIGHT_BYTES: usize = 4 * 1024 * 1024;

/// Parts uploading at once: two keep the drive streaming while the service
/// finishes storing a part (its hash check, its last write).
pub const UPLOADERS: usize = 2;

/// One part of one file to store: bytes `[offset_in_file, offset_in_file + length)`
/// of the file at `path` (relative to the container's repository root), whose
/// whole size is `file_size`. A file that spans drives arrives in several parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartToUpload {
    pub path: String,
    pub offset_in_file: u64,
    pub length: u64,
    pub file_size: u64,
}

impl From<&FilePart> for PartToUpload {
    fn from(part: &FilePart) -> Self {
        PartToUpload {
            path: part.path.clone(),
            offset_in_file: part.offset_in_file,
            length: part.length,
            file_size: part.file_size,
        }
    }
}

/// Why a part was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    /// Worth sending again later: the service was unreachable, overloaded or
    /// failed inside.
    #[error("{0}")]
    Transient(String),
    /// Sending it again would fail the same way (refused, or the body failed).
    #[error("{0}")]
    Permanent(String),
}

/// Stores parts (the CLI: an HTTP PUT streaming `body`). Called from several
/// threads at once, one part each.
pub trait PartUploader: Sync {
    /// Stores `part`, reading exactly `part.length` bytes from `body` (an empty
    /// file comes with an empty body). When `body` returns an error the part must
    /// not be stored, not even partly; return an error then.
    fn upload(&self, part: &PartToUpload, body: PartBody) -> Result<(), UploadError>;

    /// Whether the store holds this part already (a station stopped in the middle
    /// of the drive stored it): it is neither read nor sent again. The default
    /// knows of none.
    fn is_stored(&self, _part: &PartToUpload) -> bool {
        false
    }

    /// The waits before re-sending the parts whose upload failed transiently, one
    /// per round of re-sends; when they run out the parts are reported as not
    /// delivered. The default is [`STATION_RETRY`].
    fn retry_policy(&self) -> ExponentialBuilder {
        STATION_RETRY
    }
}

/// Re-sends of a transiently failed part after the first attempt, by default.
pub const UPLOAD_RETRIES: usize = 5;

/// The station's waits before each new attempt at anything that failed for a
/// passing reason: 2, 4, 8, 16 and 30 s, about a minute of outage on top of the
/// service's own retries of its storage.
pub const STATION_RETRY: ExponentialBuilder = ExponentialBuilder::new()
    .with_min_delay(Duration::from_secs(2))
    .with_max_delay(Duration::from_secs(30))
    .with_max_times(UPLOAD_RETRIES);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestProgress {
    /// Stream bytes of this drive read and verified so far.
    pub bytes_done: u64,
    /// Stream bytes this drive holds.
    pub bytes_total: u64,
    /// File bytes handed to the uploader so far.
    pub bytes_delivered: u64,
}

/// The outcome of ingesting one drive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestReport {
    /// Hex.
    pub drive_id: String,
    pub import_job: String,
    pub index: u32,
    pub last_in_set: bool,
    /// Parts sent and stored by this run.
    pub parts_delivered: usize,
    pub bytes_delivered: u64,
    /// Parts the store held already (an earlier, interrupted run), not sent again.
    pub parts_already_stored: usize,
    pub bytes_already_stored: u64,
    pub bad_blocks: Vec<BadBlock>,
    /// Parts not stored, with why.
    pub failed_parts: Vec<(PartToUpload, String)>,
    /// Files whose bytes on this drive did not all land, sorted: the files for
    /// `offsite diskprep --repair --files`.
    pub files_needing_repair: Vec<String>,
    pub verbose_log: String,
    /// Empty when the drive is clean.
    pub error_log: String,
}

impl IngestReport {
    /// Every block good and every part stored.
    pub fn is_clean(&self) -> bool {
        self.bad_blocks.is_empty() && self.failed_parts.is_empty()
    }
}

enum Message {
    Data(Bytes),
    /// The part cannot be completed (a bad block): fail the body.
    Fail(String),
}

/// The body of one part, fed by the drive-reading thread: exactly the part's
/// length, then the end, or an error if the part cannot be completed. Read it as a
/// [`futures::Stream`] of the drive's chunks (an async uploader, no copy) or
/// through [`Read`] (a blocking one, on a thread outside any async runtime).
pub struct PartBody {
    rx: Receiver<Message>,
    /// What [`Read`] has not handed out yet of the last chunk.
    current: Bytes,
    remaining: u64,
    delivered: Arc<AtomicU64>,
}

impl PartBody {
    /// Takes the next chunk that is still wanted, counting it as delivered.
    fn accept(&mut self, message: Option<Message>) -> std::io::Result<Bytes> {
        match message {
            Some(Message::Data(mut data)) => {
                data.truncate(self.remaining as usize);
                self.remaining -= data.len() as u64;
                self.delivered.fetch_add(data.len() as u64, Ordering::SeqCst);
                Ok(data)
            }
            Some(Message::Fail(reason)) => {
                self.remaining = 0;
                Err(std::io::Error::other(reason))
            }
            None => {
                self.remaining = 0;
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the drive reader stopped before the end of the part",
                ))
            }
        }
    }
}

impl futures::Stream for PartBody {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(message) => Poll::Ready(Some(self.accept(message))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Read for PartBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            if self.remaining == 0 || buf.is_empty() {
                return Ok(0);
            }
            let message = self.rx.blocking_recv();
            self.current = self.accept(message)?;
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// A part handed to an uploader thread.
struct Job {
    index: usize,
    part: PartToUpload,
    body: PartBody,
    delivered: Arc<AtomicU64>,
}

/// What an uploader thread says about one part.
struct Outcome {
    index: usize,
    result: Result<(), UploadError>,
    /// The uploader read the whole body.
    complete: bool,
}

/// The part the drive reader is feeding.
struct Current {
    index: usize,
    end_in_file: u64,
    next: u64,
    /// `None` once the part failed or its uploader stopped reading.
    tx: Option<Sender<Message>>,
}

/// Like [`ingest_drive`], for a drive [`crate::admission::admit`] admitted: refuses
/// it unless the header the key authenticates is the one admitted (same
/// fingerprint), so a drive swapped after the check is not read.
pub fn ingest_admitted(
    admitted: &Admitted,
    key: &DriveKey,
    uploader: &dyn PartUploader,
    progress: &(dyn Fn(&IngestProgress) + Sync),
) -> Result<IngestReport, AdmissionError> {
    Ok(open_admitted(admitted, key)?.ingest(uploader, progress))
}

/// An admitted drive unlocked by its key, its header authenticated as the admitted
/// one and its manifest read, and nothing of its data read yet. A station opens
/// the drive before it records anything against it on the service, so that a
/// wrong key or a swapped drive changes no state there.
pub struct OpenedDrive {
    reader: DriveReader,
}

/// Opens an admitted drive with `key`: the errors of [`DriveReader::open`] (a wrong
/// key among them), or [`AdmissionError::ChangedSinceAdmission`] when the
/// authenticated header is not the admitted one.
pub fn open_admitted(admitted: &Admitted, key: &DriveKey) -> Result<OpenedDrive, AdmissionError> {
    let reader = DriveReader::open(&admitted.path, key)?;
    if reader.fingerprint() != admitted.header.fingerprint {
        return Err(AdmissionError::ChangedSinceAdmission { path: admitted.path.display().to_string() });
    }
    Ok(OpenedDrive { reader })
}

impl OpenedDrive {
    /// Verifies every block and uploads every part, as [`ingest_drive`] does.
    pub fn ingest(self, uploader: &dyn PartUploader, progress: &(dyn Fn(&IngestProgress) + Sync)) -> IngestReport {
        ingest_reader(self.reader, uploader, progress)
    }
}

/// Reads the drive at `path` with `key` (taking its manifest from
/// `sealed_manifest` when given: diskprep's copy, for a drive whose own manifest
/// is damaged), verifies every block, and uploads every part it holds. Errors are
/// those of opening the drive (wrong key, not an offsite drive, damaged header or
/// manifest, truncated); bad blocks and failed uploads are in the report.
pub fn ingest_drive(
    path: &Path,
    key: &DriveKey,
    sealed_manifest: Option<&[u8]>,
    uploader: &dyn PartUploader,
    progress: &(dyn Fn(&IngestProgress) + Sync),
) -> Result<IngestReport, DriveError> {
    let reader = match sealed_manifest {
        Some(copy) => DriveReader::open_with_manifest(path, key, copy)?,
        None => DriveReader::open(path, key)?,
    };
    Ok(ingest_reader(reader, uploader, progress))
}

fn ingest_reader(
    mut reader: DriveReader,
    uploader: &dyn PartUploader,
    progress: &(dyn Fn(&IngestProgress) + Sync),
) -> IngestReport {
    let header = reader.header().clone();
    let manifest = reader.manifest().clone();
    let parts: Vec<PartToUpload> = manifest.files.iter().map(PartToUpload::from).collect();

    // Every part is read and sent once; those whose upload failed transiently are
    // read and sent again, after a wait, until they land or the waits run out.
    let mut delivered_bytes = 0u64;
    let stored_before: BTreeSet<usize> = (0..parts.len()).filter(|i| uploader.is_stored(&parts[*i])).collect();
    let to_send: BTreeSet<usize> = (0..parts.len()).filter(|i| !stored_before.contains(i)).collect();
    let first = read_pass(&mut reader, &parts, &to_send, uploader, progress, &mut delivered_bytes);
    let mut lost = first.lost;
    let mut report = first.report;
    let mut bad_blocks: BTreeMap<u64, BadBlock> =
        std::mem::take(&mut report.bad_blocks).into_iter().map(|b| (b.index, b)).collect();
    let mut uploaded: HashMap<usize, Outcome> = first.outcomes.into_iter().map(|o| (o.index, o)).collect();
    let mut sends: HashMap<usize, u32> = HashMap::new();
    let mut retries_log = String::new();
    let mut waits = uploader.retry_policy().build();
    for retry in 1.. {
        let pending: BTreeSet<usize> = uploaded
            .iter()
            .filter(|(index, outcome)| {
                !lost.contains(index) && matches!(outcome.result, Err(UploadError::Transient(_)))
            })
            .map(|(index, _)| *index)
            .collect();
        let Some(&example) = pending.first() else { break };
        let Some(delay) = waits.next() else { break };
        let reason = uploaded.get(&example).and_then(|o| o.result.as_ref().err()).map(|e| e.to_string());
        let _ = writeln!(
            retries_log,
            "re-sending {} after {} s (retry {retry}); {} offset {} failed: {}",
            plural(pending.len(), "part"),
            delay.as_secs_f64(),
            parts[example].path,
            parts[example].offset_in_file,
            reason.unwrap_or_default()
        );
        std::thread::sleep(delay);
        let quiet = |_: &IngestProgress| {};
        let again = read_pass(&mut reader, &parts, &pending, uploader, &quiet, &mut delivered_bytes);
        lost.extend(&again.lost);
        for block in again.report.bad_blocks {
            // A block that turned bad since the first pass.
            bad_blocks.entry(block.index).or_insert(block);
        }
        for index in &pending {
            *sends.entry(*index).or_insert(1) += 1;
        }
        uploaded.extend(again.outcomes.into_iter().map(|o| (o.index, o)));
    }
    report.bad_blocks = bad_blocks.into_values().collect();
    let block_reasons = bad_block_reasons(&report.bad_blocks);
    let mut failed_parts = Vec::new();
    let mut parts_delivered = 0;
    let mut bytes_delivered = 0;
    let mut bytes_already_stored = 0;
    let mut verbose = String::new();
    let _ = writeln!(
        verbose,
        "drive {} of import job {}, index {} of set {}{}",
        hex::encode(header.drive_id),
        header.import_job,
        header.index,
        hex::encode(header.set_id),
        if manifest.last_in_set { " (last in set)" } else { "" }
    );
    let _ = writeln!(
        verbose,
        "stream bytes {}..{}: {} in {} of {}",
        manifest.stream_start,
        manifest.stream_end,
        plural(parts.len(), "file part"),
        plural(report.data_blocks, "data block"),
        plural(header.block_size, "byte")
    );
    verbose.push_str(&retries_log);
    for (index, part) in parts.iter().enumerate() {
        if stored_before.contains(&index) {
            bytes_already_stored += part.length;
            let _ = writeln!(
                verbose,
                "stored already {} offset {} length {} (file size {})",
                part.path, part.offset_in_file, part.length, part.file_size
            );
            continue;
        }
        let outcome = uploaded.get(&index);
        let reason = if lost.contains(&index) {
            Some(block_reasons.get(part.path.as_str()).cloned().unwrap_or_else(|| "lost in a bad block".into()))
        } else {
            match outcome {
                None => Some("not uploaded".to_string()),
                Some(Outcome { result: Err(e), .. }) => Some(match sends.get(&index) {
                    Some(n) => format!("upload failed (sent {n} times): {e}"),
                    None => format!("upload failed: {e}"),
                }),
                Some(Outcome { complete: false, .. }) => Some("the uploader did not read the whole part".into()),
                Some(_) => None,
            }
        };
        match reason {
            None => {
                parts_delivered += 1;
                bytes_delivered += part.length;
                let _ = writeln!(
                    verbose,
                    "delivered {} offset {} length {} (file size {})",
                    part.path, part.offset_in_file, part.length, part.file_size
                );
            }
            Some(reason) => {
                let _ = writeln!(
                    verbose,
                    "not delivered {} offset {} length {}: {reason}",
                    part.path, part.offset_in_file, part.length
                );
                failed_parts.push((part.clone(), reason));
            }
        }
    }
    let _ = writeln!(
        verbose,
        "blocks: {} read, {} good, {} bad of {}; parts: {} delivered, {} stored already, {} not, of {}; {} \
         delivered",
        report.blocks_read,
        report.good_blocks,
        report.bad_blocks.len(),
        report.data_blocks,
        parts_delivered,
        stored_before.len(),
        failed_parts.len(),
        parts.len(),
        plural(bytes_delivered, "byte")
    );

    let files_needing_repair: Vec<String> =
        failed_parts.iter().map(|(p, _)| p.path.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let error_log = if report.bad_blocks.is_empty() && failed_parts.is_empty() {
        String::new()
    } else {
        error_log(
            &header.import_job,
            header.index,
            &header.drive_id,
            &report.bad_blocks,
            &failed_parts,
            &files_needing_repair,
        )
    };
    IngestReport {
        drive_id: hex::encode(header.drive_id),
        import_job: header.import_job.clone(),
        index: header.index,
        last_in_set: manifest.last_in_set,
        parts_delivered,
        bytes_delivered,
        parts_already_stored: stored_before.len(),
        bytes_already_stored,
        bad_blocks: report.bad_blocks,
        failed_parts,
        files_needing_repair,
        verbose_log: verbose,
        error_log,
    }
}

/// What one pass over the drive did.
struct Pass {
    report: VerifyReport,
    /// Parts whose bytes the drive reader could not all hand over (a bad block).
    lost: BTreeSet<usize>,
    outcomes: Vec<Outcome>,
}

/// Reads the blocks holding the `wanted` parts and uploads those parts, UPLOADERS
/// at a time; counts the file bytes handed over in `delivered_bytes`.
fn read_pass(
    reader: &mut DriveReader,
    parts: &[PartToUpload],
    wanted: &BTreeSet<usize>,
    uploader: &dyn PartUploader,
    progress: &(dyn Fn(&IngestProgress) + Sync),
    delivered_bytes: &mut u64,
) -> Pass {
    let index_of: HashMap<&str, usize> = parts.iter().enumerate().map(|(i, p)| (p.path.as_str(), i)).collect();
    let manifest = reader.manifest().clone();
    let stream_total = manifest.stream_end - manifest.stream_start;
    let queue_len = (IN_FLIGHT_BYTES / reader.header().block_size as usize).max(1);

    // Parts whose bytes the drive reader could not all hand over (a bad block).
    let mut lost: BTreeSet<usize> = BTreeSet::new();

    // A rendezvous: a part is handed over only to an idle uploader, so at most
    // UPLOADERS parts' blocks are in flight.
    let (jobs_tx, jobs_rx) = sync_channel::<Job>(0);
    let jobs_rx = Mutex::new(jobs_rx);
    let (report, outcomes) = std::thread::scope(|scope| {
        let uploads: Vec<_> = (0..UPLOADERS)
            .map(|_| {
                let jobs_rx = &jobs_rx;
                scope.spawn(move || {
                    let mut outcomes = Vec::new();
                    loop {
                        // A poisoned lock means another uploader panicked; the join below says so.
                        let Ok(job) = jobs_rx.lock().map_err(drop).and_then(|rx| rx.recv().map_err(drop)) else {
                            break;
                        };
                        let result = uploader.upload(&job.part, job.body);
                        let complete = job.delivered.load(Ordering::SeqCst) == job.part.length;
                        outcomes.push(Outcome { index: job.index, result, complete });
                    }
                    outcomes
                })
            })
            .collect();

        let mut current: Option<Current> = None;
        // Ends the part being fed; a part cut short fails its body.
        let close = |current: &mut Option<Current>, lost: &mut BTreeSet<usize>| {
            if let Some(done) = current.take() {
                if done.next < done.end_in_file {
                    lost.insert(done.index);
                    if let Some(tx) = done.tx {
                        let _ = tx.blocking_send(Message::Fail(format!(
                            "bytes from offset {} of the part were in a bad block of the drive",
                            done.next
                        )));
                    }
                }
            }
        };
        let report = reader.verify_and_read_parts(
            |index| wanted.contains(&index),
            |part, offset, bytes| {
                let Some(&index) = index_of.get(part.path.as_str()) else {
                    return Ok::<(), std::convert::Infallible>(());
                };
                if current.as_ref().map(|c| c.index) != Some(index) {
                    close(&mut current, &mut lost);
                    if offset != part.offset_in_file {
                        // Its first bytes were in a bad block: do not start the upload.
                        lost.insert(index);
                        current = Some(Current { index, end_in_file: part.end_in_file(), next: offset, tx: None });
                    } else {
                        let (tx, rx) = channel(queue_len);
                        let delivered = Arc::new(AtomicU64::new(0));
                        let body = PartBody {
                            rx,
                            current: Bytes::new(),
                            remaining: part.length,
                            delivered: delivered.clone(),
                        };
                        let job = Job { index, part: parts[index].clone(), body, delivered };
                        // The uploader thread only stops when this sender is dropped.
                        let tx = jobs_tx.send(job).ok().map(|_| tx);
                        current = Some(Current { index, end_in_file: part.end_in_file(), next: offset, tx });
                    }
                }
                let Some(feeding) = current.as_mut() else { return Ok(()) };
                if offset != feeding.next {
                    // A gap: a bad block lay inside this part.
                    lost.insert(index);
                    if let Some(tx) = feeding.tx.take() {
                        let _ = tx.blocking_send(Message::Fail(format!(
                            "bytes from offset {} of the part were in a bad block of the drive",
                            feeding.next
                        )));
                    }
                    feeding.next = feeding.end_in_file;
                    return Ok(());
                }
                feeding.next += bytes.len() as u64;
                if !bytes.is_empty() {
                    if let Some(tx) = &feeding.tx {
                        if tx.blocking_send(Message::Data(bytes.clone())).is_err() {
                            // The uploader stopped reading this body; its result says why.
                            feeding.tx = None;
                        }
                    }
                    *delivered_bytes += bytes.len() as u64;
                }
                if feeding.next == feeding.end_in_file {
                    // Complete: the body ends after exactly `length` bytes.
                    feeding.tx = None;
                }
                progress(&IngestProgress {
                    bytes_done: (part.stream_offset + (feeding.next - part.offset_in_file)) - manifest.stream_start,
                    bytes_total: stream_total,
                    bytes_delivered: *delivered_bytes,
                });
                Ok(())
            },
        );
        close(&mut current, &mut lost);
        drop(jobs_tx);
        let mut outcomes = Vec::new();
        for upload in uploads {
            match upload.join() {
                Ok(more) => outcomes.extend(more),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        (report, outcomes)
    });
    // The sink above never fails.
    let Ok(report) = report;
    Pass { report, lost, outcomes }
}

/// A short name for a block problem, for one-line log entries.
fn problem_name(problem: &BlockProblem) -> String {
    match problem {
        BlockProblem::Tampered => "tampered".into(),
        BlockProblem::DigestMismatch => "digest mismatch".into(),
        BlockProblem::Missing => "missing".into(),
        BlockProblem::Unreadable { error } => format!("unreadable ({error})"),
    }
}

/// For each file a bad block held bytes of: "bad block 3 (tampered), bad block 4 (missing)".
fn bad_block_reasons(bad: &[BadBlock]) -> BTreeMap<&str, String> {
    let mut reasons: BTreeMap<&str, String> = BTreeMap::new();
    for block in bad {
        for range in &block.affects {
            let entry = reasons.entry(range.path.as_str()).or_default();
            if !entry.is_empty() {
                entry.push_str(", ");
            }
            let _ = write!(entry, "bad block {} ({})", block.index, problem_name(&block.problem));
        }
    }
    reasons
}

fn error_log(
    import_job: &str,
    index: u32,
    drive_id: &[u8; 16],
    bad: &[BadBlock],
    failed: &[(PartToUpload, String)],
    repair: &[String],
) -> String {
    let mut log = String::new();
    let _ = writeln!(
        log,
        "drive {} of import job {import_job}, index {index}: {}, {} not delivered",
        hex::encode(drive_id),
        plural(bad.len(), "bad block"),
        plural(failed.len(), "part")
    );
    for block in bad {
        if block.affects.is_empty() {
            let _ = writeln!(
                log,
                "bad block {}: {}: holds no file bytes (padding)",
                block.index,
                problem_name(&block.problem)
            );
        }
        for range in &block.affects {
            let _ = writeln!(
                log,
                "bad block {}: {}: {} offset {} length {}",
                block.index,
                problem_name(&block.problem),
                range.path,
                range.offset_in_file,
                range.length
            );
        }
    }
    for (part, reason) in failed {
        let _ = writeln!(
            log,
            "not delivered: {} offset {} length {}: {reason}",
            part.path, part.offset_in_file, part.length
        );
    }
    if !repair.is_empty() {
        let _ = writeln!(
            log,
            "to re-send what is missing: offsite diskprep --repair --import-job {import_job} --files {}",
            repair.join(",")
        );
    }
    log
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(length: u64) -> (Sender<Message>, PartBody, Arc<AtomicU64>) {
        let (tx, rx) = channel(4);
        let delivered = Arc::new(AtomicU64::new(0));
        (tx, PartBody { rx, current: Bytes::new(), remaining: length, delivered: delivered.clone() }, delivered)
    }

    #[test]
    fn a_part_body_ends_after_its_length_and_fails_on_a_bad_block() {
        let (tx, mut reader, delivered) = body(5);
        tx.blocking_send(Message::Data(Bytes::from_static(b"abc"))).unwrap();
        tx.blocking_send(Message::Data(Bytes::from_static(b"de"))).unwrap();
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abcde");
        assert_eq!(delivered.load(Ordering::SeqCst), 5);

        let (tx, mut reader, _) = body(5);
        tx.blocking_send(Message::Data(Bytes::from_static(b"abc"))).unwrap();
        tx.blocking_send(Message::Fail("bad block 3".into())).unwrap();
        let err = reader.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("bad block 3"));
    }

    #[test]
    fn a_part_body_streams_the_drive_chunks_and_fails_when_the_reader_stops() {
        use futures::StreamExt;
        let (tx, stream, delivered) = body(4);
        tx.blocking_send(Message::Data(Bytes::from_static(b"ab"))).unwrap();
        tx.blocking_send(Message::Data(Bytes::from_static(b"cd"))).unwrap();
        let chunks: Vec<_> = futures::executor::block_on(stream.collect::<Vec<_>>());
        let chunks: Vec<Bytes> = chunks.into_iter().map(|c| c.unwrap()).collect();
        assert_eq!(chunks, [Bytes::from_static(b"ab"), Bytes::from_static(b"cd")]);
        assert_eq!(delivered.load(Ordering::SeqCst), 4);

        let (tx, stream, _) = body(4);
        tx.blocking_send(Message::Data(Bytes::from_static(b"ab"))).unwrap();
        drop(tx);
        let chunks: Vec<_> = futures::executor::block_on(stream.collect::<Vec<_>>());
        assert_eq!(chunks.len(), 2);
        let err = chunks[1].as_ref().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
