//! What ingest stations upload into a job's container: the bytes drives hold of
//! each file (whole, or parts kept aside until packaging) and each drive's logs.

use bytes::Bytes;
use futures::Stream;

use offsite_api::types::{ImportFile, ImportPart};
use offsite_seeding::import_job::{DriveRecord, DriveState};

use super::{load_for_operator, load_managed, load_seeded, refused, Tracked};
use crate::container_storage::{check_import_path, MAX_LOG_BYTES};
use crate::error::{ApiResult, Failure};
use crate::principal::Principal;
use crate::state::AppState;

/// The most of a refused upload's body the service reads before answering.
pub(crate) const DRAIN_LIMIT: u64 = 64 * 1024 * 1024;

/// Where an uploaded part of a file belongs.
pub struct FilePart {
    /// The file's path in the staging repository, e.g. `data/3f/3f…`.
    pub path: String,
    /// Where the part goes in the file.
    pub offset: u64,
    /// The whole file's size.
    pub file_size: u64,
    /// The drive the bytes come from; it must be `transferring`.
    pub drive_id: String,
}

/// What an upload of `part` must satisfy before its body is stored: a path of the
/// job's files, a job being ingested, its drive transferring, a length. Returns the
/// drive (lowercase) and the length.
fn check_upload(tracked: &Tracked, part: &FilePart, length: Option<u64>) -> ApiResult<(String, u64)> {
    check_import_path(&part.path)?;
    tracked.job.check_accepts_uploads().map_err(refused)?;
    let wanted = part.drive_id.to_ascii_lowercase();
    let drive = tracked
        .job
        .drive(&wanted)
        .ok_or_else(|| Failure::not_found(format!("drive {} of import job '{}'", part.drive_id, tracked.row.name)))?;
    if drive.state() != DriveState::Transferring {
        return Err(Failure::Conflict(format!(
            "drive {} is {}: set it transferring before uploading its files",
            drive.drive_id,
            drive.state()
        )));
    }
    let length = length.ok_or_else(|| Failure::BadRequest("a file upload needs a Content-Length".into()))?;
    Ok((wanted, length))
}

/// Stores the bytes a drive holds of one file (the ingest station, operators): all
/// of it (stored as the file, checked against its content-hash name), or a part,
/// kept aside until the job is packaged. Streamed; nothing is visible until the
/// upload is complete. A refused upload's body is read (up to [`DRAIN_LIMIT`]) so
/// that the station, still sending, hears the answer.
pub async fn put_file(
    state: &AppState,
    principal: &Principal,
    import_job_id: &str,
    part: &FilePart,
    length: Option<u64>,
    mut body: impl Stream<Item = Result<Bytes, axum::Error>> + Unpin,
) -> ApiResult<()> {
    let tracked = load_for_operator(state, principal, import_job_id).await?;
    let (wanted, length) = match check_upload(&tracked, part, length) {
        Ok(checked) => checked,
        Err(failure) => {
            crate::unread_body::drain(&mut body, DRAIN_LIMIT).await;
            return Err(failure);
        }
    };
    let folder = tracked.row.folder();
    let started = std::time::Instant::now();
    let stored = state.storage.put_import_part(&folder, &part.path, part.offset, part.file_size, length, body).await?;
    metrics::counter!("offsite_bytes_in_total").increment(stored);
    // Ingest throughput: bytes from drives, and how long each file (part) took to arrive.
    metrics::counter!("offsite_ingest_bytes_total").increment(stored);
    metrics::histogram!("offsite_import_file_upload_seconds").record(started.elapsed().as_secs_f64());
    state.db.add_bytes_received(&tracked.row.id, &wanted, stored).await?;
    Ok(())
}

/// The whole files in the job's container (not parts awaiting packaging, not logs).
pub async fn files(state: &AppState, principal: &Principal, import_job_id: &str) -> ApiResult<Vec<ImportFile>> {
    let tracked = load_managed(state, principal, import_job_id).await?;
    state.storage.import_files(&tracked.row.folder()).await
}

/// The parts of files in the job's container that wait for packaging.
pub async fn parts(state: &AppState, principal: &Principal, import_job_id: &str) -> ApiResult<Vec<ImportPart>> {
    let tracked = load_managed(state, principal, import_job_id).await?;
    state.storage.import_parts(&tracked.row.folder()).await
}

fn check_log_kind(kind: &str) -> ApiResult<()> {
    match kind {
        "error" | "verbose" => Ok(()),
        other => Err(Failure::BadRequest(format!("'{other}' is not a kind of drive log (error, verbose)"))),
    }
}

fn drive_of<'a>(tracked: &'a Tracked, drive_id: &str) -> ApiResult<&'a DriveRecord> {
    let wanted = drive_id.to_ascii_lowercase();
    tracked
        .job
        .drive(&wanted)
        .ok_or_else(|| Failure::not_found(format!("drive {drive_id} of import job '{}'", tracked.row.name)))
}

/// Stores a drive's ingest log (operators): `error` or `verbose`, UTF-8 text of at
/// most [`MAX_LOG_BYTES`], kept in the job's container.
pub async fn put_drive_log(
    state: &AppState,
    principal: &Principal,
    import_job_id: &str,
    drive_id: &str,
    kind: &str,
    body: axum::body::Body,
) -> ApiResult<()> {
    let tracked = load_for_operator(state, principal, import_job_id).await?;
    check_log_kind(kind)?;
    let drive_id = drive_of(&tracked, drive_id)?.drive_id.clone();
    let bytes = axum::body::to_bytes(body, MAX_LOG_BYTES)
        .await
        .map_err(|_| Failure::TooLarge(format!("a drive log is at most {MAX_LOG_BYTES} bytes: keep its first part")))?;
    if std::str::from_utf8(&bytes).is_err() {
        return Err(Failure::BadRequest("a drive log is UTF-8 text".into()));
    }
    state.storage.put_log(&tracked.row.folder(), &drive_id, kind, bytes).await
}

/// A drive's ingest log, as stored (UTF-8 text).
pub async fn drive_log(
    state: &AppState,
    principal: &Principal,
    import_job_id: &str,
    drive_id: &str,
    kind: &str,
) -> ApiResult<Bytes> {
    let tracked = load_seeded(state, principal, import_job_id).await?;
    check_log_kind(kind)?;
    let drive_id = drive_of(&tracked, drive_id)?.drive_id.clone();
    state.storage.get_log(&tracked.row.folder(), &drive_id, kind).await
}
