//! Packaging: the parts drives delivered assembled into whole files, the one rule
//! for `completed` (every file of the registered file list whole in the
//! container), and the file list itself.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;

use offsite_api::types::{ImportFile, ImportFileListSummary, ImportJobNote, ImportJobState, ImportJobView};

use super::files::DRAIN_LIMIT;
use offsite_seeding::import_job::Actor;

use super::{actor, check_message, load_for_station, load_seeded, refused, view, Tracked};
use crate::container_storage::{check_import_path, missing_from, Incomplete};
use crate::db::import_jobs::{ImportJobRow, PackagingClaimed, PACKAGING_RENEW_SECONDS};
use crate::error::{ApiResult, Failure};
use crate::principal::Principal;
use crate::state::AppState;

/// with parts missing (byte ranges named) and those of which nothing arrived.
fn incomplete_message(incomplete: &[Incomplete], missing: &[ImportFile]) -> String {
    let with_parts: HashSet<&str> = incomplete.iter().map(|file| file.path.as_str()).collect();
    let nothing_arrived: Vec<&ImportFile> = missing.iter().filter(|m| !with_parts.contains(m.path.as_str())).collect();
    let count = incomplete.len() + nothing_arrived.len();
    let mut lines: Vec<String> = incomplete
        .iter()
        .map(|file| {
            let mut line = file.path.clone();
            if !file.missing.is_empty() {
                let ranges: Vec<String> =
                    file.missing.iter().map(|(a, b)| format!("{a}-{}", b.saturating_sub(1))).collect();
                line.push_str(&format!(" (missing bytes {} of {})", ranges.join(", "), file.file_size));
            }
            if let Some(reason) = &file.reason {
                line.push_str(&format!(" ({reason})"));
            }
            line
        })
        .chain(nothing_arrived.iter().map(|file| format!("{} ({} bytes: no drive delivered it)", file.path, file.size)))
        .take(NAMED_FILES)
        .collect();
    if count > NAMED_FILES {
        lines.push(format!("and {} more", count - NAMED_FILES));
    }
    let files = if count == 1 { "1 file of the seed is".to_string() } else { format!("{count} files of the seed are") };
    format!(
        "{files} not in the container after ingest: {}. Send a repair drive with them: on the copy computer, \
         `offsite diskprep --repair` with the staging location and a new --drive (it asks the service which files \
         are missing), or `--files <path>,…` to name them",
        lines.join("; ")
    )
}

/// Packages the job once every drive is done (its datacenter's station, operators): parts that cover their
/// file are assembled into it. When every file is whole the job is `completed`;
/// otherwise it stays `packaging`, its timeline naming the missing byte ranges,
/// until a repair drive brings them and the job is packaged again.
///
/// One request packages a job at a time, on whichever replica: it claims the job
/// in the database and renews the claim while it works. Another request waits
/// for it (up to [`PACKAGING_WAIT`]) and answers the job as that one left it; a
/// claim its replica stopped renewing (it died) is taken over.
pub async fn package(
    state: &AppState,
    principal: &Principal,
    import_job_id: &str,
    note: ImportJobNote,
) -> ApiResult<ImportJobView> {
    let message = check_message(note.message)?;
    let tracked = load_for_station(state, principal, import_job_id).await?;
    let who = actor(principal);
    let job_id = tracked.row.id.clone();
    begin_packaging(state, tracked, &who).await?;
    let claim = PackagingClaim::wait_for(state, &job_id).await?;
    // A request this one waited for packaged the job: its outcome is the answer.
    let mut tracked = Tracked::load(state, &job_id).await?;
    let packaged = match (tracked.job.state(), claim.waited) {
        (ImportJobState::Packaging, false) => package_claimed(state, &mut tracked, &claim, who, message).await,
        _ => Ok(()),
    };
    claim.release(state).await;
    packaged?;
    view(state, &job_id).await
}

/// Moves the job to `packaging` (stored before the storage work: a packaging that
/// fails half-way is packaged again, from `packaging`); a request that loses the
/// race to another one's move reads the job again and finds it moved.
async fn begin_packaging(state: &AppState, mut tracked: Tracked, who: &Actor) -> ApiResult<()> {
    tracked
        .store_decided(state, |tracked| {
            let began = tracked.job.begin_packaging(who.clone(), state.now()).map_err(refused)?;
            let any = !began.is_empty();
            tracked.record(began, None);
            Ok(any)
        })
        .await?;
    Ok(())
}

/// Assembles the parts under a claim, renewing it while the storage works, and
/// records the outcome.
async fn package_claimed(
    state: &AppState,
    tracked: &mut Tracked,
    claim: &PackagingClaim,
    who: Actor,
    message: Option<String>,
) -> ApiResult<()> {
    let folder = tracked.row.folder();
    let work = state.storage.package(&folder);
    tokio::pin!(work);
    let mut renewals = tokio::time::interval(Duration::from_secs(PACKAGING_RENEW_SECONDS));
    renewals.tick().await;
    let packaged = loop {
        tokio::select! {
            packaged = &mut work => break packaged?,
            _ = renewals.tick() => claim.renew(state).await,
        }
    };
    let now = state.now();
    match what_keeps_from_completing(state, &tracked.row, &packaged.incomplete).await? {
        None => {
            let completed = tracked.job.advance(ImportJobState::Completed, who, now).map_err(refused)?;
            tracked.record(vec![completed], message);
            tracing::info!(job = %tracked.row.id, assembled = packaged.assembled.len(), "import job packaged and completed");
        }
        Some(why) => {
            let text = match message {
                Some(note) => format!("{note}: {why}"),
                None => why,
            };
            tracked.note_job(ImportJobState::Packaging, ImportJobState::Packaging, &who, now, Some(text));
            tracing::info!(job = %tracked.row.id, incomplete = packaged.incomplete.len(), "import job waits for a repair drive");
        }
    }
    tracked.store(state).await
}

/// How long a packaging request waits for another one packaging the same job.
const PACKAGING_WAIT: Duration = Duration::from_secs(120);

/// A job's packaging, claimed in the database by one request.
struct PackagingClaim {
    job_id: String,
    id: String,
    /// Another request packaged the job while this one waited for the claim.
    waited: bool,
}

impl PackagingClaim {
    /// Claims the job's packaging, waiting while another request holds it.
    async fn wait_for(state: &AppState, job_id: &str) -> ApiResult<PackagingClaim> {
        let id = crate::secrets::new_id("pkg");
        let started = tokio::time::Instant::now();
        let mut held = false;
        loop {
            match state.db.claim_packaging(job_id, &id).await? {
                Some(PackagingClaimed::Free) => {
                    return Ok(PackagingClaim { job_id: job_id.to_string(), id, waited: held });
                }
                Some(PackagingClaimed::TakenOver) => {
                    tracing::warn!(job = %job_id, "took over a packaging whose request stopped renewing its claim");
                    return Ok(PackagingClaim { job_id: job_id.to_string(), id, waited: false });
                }
                None => held = true,
            }
            if started.elapsed() > PACKAGING_WAIT {
                return Err(Failure::Conflict(format!(
                    "import job {job_id} is being packaged by another request, which has taken over {} s so far; \
                     its outcome will be in the job's timeline (offsite datacenter status)",
                    PACKAGING_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn renew(&self, state: &AppState) {
        match state.db.renew_packaging(&self.job_id, &self.id).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(job = %self.job_id, "another request took this packaging over"),
            Err(err) => tracing::warn!(job = %self.job_id, "could not renew the packaging claim: {err}"),
        }
    }

    /// Gives the claim up; one left behind (the database failing here) lapses.
    async fn release(self, state: &AppState) {
        if let Err(err) = state.db.release_packaging(&self.job_id, &self.id).await {
            tracing::warn!(job = %self.job_id, "could not release the packaging claim (it lapses): {err}");
        }
    }
}

/// The files of the job's file list its container does not hold whole, or
/// `None` when no file list was registered (then nothing can say the seed is whole).
pub async fn files_missing(state: &AppState, row: &ImportJobRow) -> ApiResult<Option<Vec<ImportFile>>> {
    if row.file_list.is_none() {
        return Ok(None);
    }
    let list = state.db.import_file_list(&row.id).await?;
    let present = state.storage.import_files(&row.folder()).await?;
    Ok(Some(missing_from(&list, &present)))
}

/// The one rule for `completed`: why the job cannot complete yet (no file list;
/// listed files not whole in the container; `incomplete`, the files packaging
/// could not assemble), or `None` when every file of its list is there.
pub(crate) async fn what_keeps_from_completing(
    state: &AppState,
    row: &ImportJobRow,
    incomplete: &[Incomplete],
) -> ApiResult<Option<String>> {
    Ok(match files_missing(state, row).await? {
        None => Some(no_file_list(&row.name)),
        Some(missing) if missing.is_empty() && incomplete.is_empty() => None,
        Some(missing) => Some(incomplete_message(incomplete, &missing)),
    })
}

/// Why a job without a file list cannot complete, and what to do.
fn no_file_list(job_name: &str) -> String {
    format!(
        "import job '{job_name}' has no file list, so the service cannot tell whether every file of the seed \
         arrived: run `offsite diskprep` again on the copy computer with the staging location to register it, then \
         package the job again"
    )
}

/// Most files a message names.
const NAMED_FILES: usize = 40;

/// The most bytes a file list may have (8 million lines of long paths).
const MAX_FILE_LIST_BYTES: u64 = 1 << 30;

/// Registers the files the job's drive set carries (diskprep, once, before the job
/// completes): text, one line `<size> <path>` per file in path order. The job
/// completes only when its container holds every one of them whole; the same list
/// again changes nothing.
pub async fn put_file_list(
    state: &AppState,
    principal: &Principal,
    import_job_id: &str,
    digest: &str,
    body: impl Stream<Item = Result<Bytes, axum::Error>> + Unpin,
) -> ApiResult<ImportJobView> {
    let tracked = load_seeded(state, principal, import_job_id).await?;
    let name = &tracked.row.name;
    let mut stream = body;
    let given = digest;
    let digest = given.to_ascii_lowercase();
    let refusal = if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        Some(Failure::BadRequest(format!(
            "'{given}' is not a file list digest: use the 64 hex digits diskprep computes"
        )))
    } else if matches!(tracked.job.state(), ImportJobState::Completed | ImportJobState::Closed)
        && tracked.row.file_list.is_none()
    {
        Some(Failure::Conflict(format!(
            "import job '{name}' is {}: its file list can no longer be registered",
            tracked.job.state()
        )))
    } else {
        None
    };
    if refusal.is_some() || tracked.row.file_list.is_some() {
        // The caller is still sending: it should hear the answer.
        crate::unread_body::drain(&mut stream, DRAIN_LIMIT).await;
    }
    if let Some(failure) = refusal {
        return Err(failure);
    }
    if let Some(existing) = &tracked.row.file_list {
        return if existing.digest == digest {
            view(state, &tracked.row.id).await
        } else {
            Err(another_file_list(name, existing))
        };
    }
    let (files, received) = read_file_list(&mut stream).await?;
    if received.digest != digest {
        return Err(Failure::BadRequest(format!(
            "the file list received ({}) does not match its digest {digest}: it was cut short or changed on the \
             way; nothing was stored, send it again",
            offsite_api::size::plural(received.files, "file")
        )));
    }
    if !state.db.insert_import_file_list(&tracked.row.id, &received, &files).await? {
        // Registered meanwhile (a retried request): the same list is fine.
        let stored = state.db.import_job(&tracked.row.id).await?.and_then(|row| row.file_list);
        if let Some(existing) = stored.filter(|existing| existing.digest != digest) {
            return Err(another_file_list(name, &existing));
        }
    }
    tracing::info!(job = %tracked.row.id, files = received.files, bytes = received.bytes, "import job file list registered");
    view(state, &tracked.row.id).await
}

fn another_file_list(name: &str, existing: &ImportFileListSummary) -> Failure {
    Failure::Conflict(format!(
        "import job '{name}' has another file list already ({}, digest {}…): a drive set's files do not change; \
         for another staging location create another import job",
        offsite_api::size::plural(existing.files, "file"),
        existing.digest.get(..12).unwrap_or(&existing.digest)
    ))
}

/// Reads a file list body: UTF-8 lines, each checked as it comes (the seeding
/// crate's format, and the service's rule for import paths); bounded.
async fn read_file_list(
    stream: &mut (impl futures::Stream<Item = Result<bytes::Bytes, axum::Error>> + Unpin),
) -> ApiResult<(Vec<ImportFile>, ImportFileListSummary)> {
    use futures::StreamExt;
    let mut reader = offsite_seeding::file_list::FileListReader::new();
    let mut files = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Failure::BadRequest(format!("the upload broke off: {e}")))?;
        total += chunk.len() as u64;
        if total > MAX_FILE_LIST_BYTES {
            return Err(Failure::TooLarge(format!("a file list is at most {MAX_FILE_LIST_BYTES} bytes")));
        }
        pending.extend_from_slice(&chunk);
        let mut start = 0;
        while let Some(end) = pending[start..].iter().position(|&b| b == b'\n') {
            let line = std::str::from_utf8(&pending[start..start + end])
                .map_err(|_| Failure::BadRequest("a file list is UTF-8 text".into()))?;
            let listed = reader.read_line(line).map_err(|e| Failure::BadRequest(e.to_string()))?;
            check_import_path(&listed.path)?;
            files.push(ImportFile { path: listed.path, size: listed.size });
            start += end + 1;
        }
        pending.drain(..start);
        if pending.len() > 8192 {
            return Err(Failure::BadRequest("a line of the file list is longer than any path".into()));
        }
    }
    if !pending.is_empty() {
        return Err(Failure::BadRequest("the file list must end with a newline: it was cut short".into()));
    }
    let (count, bytes, digest) = reader.finish();
    Ok((files, ImportFileListSummary { files: count, bytes, digest }))
}

/// The files of the job's file list that its container lacks (or holds at another
/// size): what a repair drive must bring. `diskprep --repair` asks for them.
pub async fn missing_files(state: &AppState, principal: &Principal, import_job_id: &str) -> ApiResult<Vec<ImportFile>> {
    let tracked = load_seeded(state, principal, import_job_id).await?;
    match files_missing(state, &tracked.row).await? {
        Some(missing) => Ok(missing),
        None => Err(Failure::Conflict(no_file_list(&tracked.row.name))),
    }
}
