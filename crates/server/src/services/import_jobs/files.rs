//! What ingest stations upload into a job's container: the bytes drives hold of
//! each file (whole, or parts kept aside until packaging) and each drive's logs.

use bytes::Bytes;
use futures::Stream;

use offsite_api::types::{ImportFile, ImportPart};
use offsite_seeding::import_job::{DriveRecord, DriveState};

use super::{check_fingerprint, load_for_station, load_managed, load_seeded, refused, Tracked};
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
    /// The fingerprint of the drive's header as the station read it: it must be
    /// the one registered for the drive. `None` when the request had none.
    pub fingerprint: Option<String>,
}

/// What an upload of `part` must satisfy before its body is stored: a path of the
/// job's files, a job being ingested, a drive registered with the job whose header
/// is the one registered, that drive transferring, a length. Returns the drive
/// (lowercase) and the length.
fn check_upload(tracked: &Tracked, part: &FilePart, length: Option<u64>) -> ApiResult<(String, u64)> {
    check_import_path(&part.path)?;
    tracked.job.check_accepts_uploads().map_err(refused)?;
    let wanted = part.drive_id.to_ascii_lowercase();
    let drive = tracked.job.drive(&wanted).ok_or_else(|| {
        Failure::NotFound(format!(
            "drive {} is not registered with import job '{}': the service takes files only from the drives \
             registered with the job; set this drive aside to ship it back",
            part.drive_id, tracked.row.name
        ))
    })?;
    check_registered_header(tracked, &drive.drive_id, part.fingerprint.as_deref())?;
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

/// Only a drive diskprep registered with its header's fingerprint brings files,
/// and only with that header: a drive registered without one, an upload that
/// does not say which header it read, and another header are refused.
fn check_registered_header(tracked: &Tracked, drive_id: &str, given: Option<&str>) -> ApiResult<()> {
    let job = &tracked.row.name;
    let registered = tracked.drive_rows.iter().find(|d| d.drive_id == drive_id).and_then(|d| d.fingerprint.as_deref());
    let Some(registered) = registered else {
        return Err(Failure::Conflict(format!(
            "drive {drive_id} of import job '{job}' was registered without its header's fingerprint, so the service \
             takes no files from it: set it aside to ship it back, and send its files on a repair drive \
             (`offsite diskprep --repair` on the copy computer registers the new drive with its fingerprint)"
        )));
    };
    let Some(given) = given else {
        return Err(Failure::BadRequest(format!(
            "the upload from drive {drive_id} of import job '{job}' does not give the fingerprint of the drive's \
             header (query parameter `fingerprint`): ingest the drive with an `offsite datacenter` of this version"
        )));
    };
    if check_fingerprint(given)? != registered {
        return Err(Failure::Conflict(format!(
            "the header of drive {drive_id} (fingerprint {given}) is not the one diskprep registered for import job \
             '{job}': an old header of this drive (it was prepared again) or a forged one, so the service takes no \
             files from it; set it aside to ship it back"
        )));
    }
    Ok(())
}

/// Stores the bytes a drive holds of one file (its datacenter's station, operators): all
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
    let tracked = load_for_station(state, principal, import_job_id).await?;
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

/// Loads a job to list what its container holds: its managers, and the ingest
/// station of its datacenter (which skips what an earlier run stored).
async fn load_for_listing(state: &AppState, principal: &Principal, import_job_id: &str) -> ApiResult<Tracked> {
    match principal.is_station() {
        true => load_for_station(state, principal, import_job_id).await,
        false => load_managed(state, principal, import_job_id).await,
    }
}

/// The whole files in the job's container (not parts awaiting packaging, not logs).
pub async fn files(state: &AppState, principal: &Principal, import_job_id: &str) -> ApiResult<Vec<ImportFile>> {
    let tracked = load_for_listing(state, principal, import_job_id).await?;
    state.storage.import_files(&tracked.row.folder()).await
}

/// The parts of files in the job's container that wait for packaging.
pub async fn parts(state: &AppState, principal: &Principal, import_job_id: &str) -> ApiResult<Vec<ImportPart>> {
    let tracked = load_for_listing(state, principal, import_job_id).await?;
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

/// Stores a drive's ingest log (its datacenter's station, operators): `error` or `verbose`, UTF-8 text of at
/// most [`MAX_LOG_BYTES`], kept in the job's container.
pub async fn put_drive_log(
    state: &AppState,
    principal: &Principal,
    import_job_id: &str,
    drive_id: &str,
    kind: &str,
    body: axum::body::Body,
) -> ApiResult<()> {
    let tracked = load_for_station(state, principal, import_job_id).await?;
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
