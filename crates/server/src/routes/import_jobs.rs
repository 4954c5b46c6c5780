//! Import jobs: the drives a customer ships instead of sending a first backup over
//! the network. Customers (their subscription credential) create a job with its
//! drive list, give the shipping details and may cancel; the datacenter operator
//! records the package's arrival, each drive's progress and the completion.
//!
//! Every change is decided by `offsite_seeding::import_job`'s state machine (which
//! refuses what the life cycle does not allow) and stored with its time and actor
//! in the job's timeline. A job whose drives do not arrive within
//! [`ARRIVAL_DEADLINE`] of the shipping details is closed the next time it is read.

use std::collections::HashSet;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use time::OffsetDateTime;
use utoipa_axum::{router::OpenApiRouter, routes};

use offsite_api::types::{
    CreateImportJob, DriveStateUpdate, ErrorBody, ImportDriveState, ImportFile, ImportFileListSummary,
    ImportJobDatacenter, ImportJobDrive, ImportJobDriveSpec, ImportJobEvent, ImportJobNote, ImportJobState,
    ImportJobView, ImportPart, ShippingDetails,
};
use offsite_seeding::import_job::{
    self as machine, check_job_name, check_tracking_number, DriveRecord, ImportJob, StateChange, ARRIVAL_DEADLINE,
};

use super::subscriptions::seeded;
use super::{ApiJson, ApiQuery};
use crate::auth::Principal;
use crate::container_storage::{check_import_path, missing_from, Incomplete, JobFolder, MAX_LOG_BYTES};
use crate::db::time_of;
use crate::error::{ApiResult, Failure};
use crate::import_jobs_db::{
    state_from, state_text, ChangeOutcome, DriveRow, EventRow, ImportJobChange, ImportJobRow, JobSnapshot,
    ShippingUpdate,
};
use crate::secrets;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_import_job, list_import_jobs))
        .routes(routes!(get_import_job))
        .routes(routes!(cancel_import_job))
        .routes(routes!(set_shipping))
        .routes(routes!(receive_import_job))
        .routes(routes!(set_drive_state))
        .routes(routes!(complete_import_job))
        .routes(routes!(find_import_job))
        .routes(routes!(add_drive))
        .routes(routes!(put_import_file, list_import_files))
        .routes(routes!(list_import_parts))
        .routes(routes!(put_file_list))
        .routes(routes!(list_missing_files))
        .routes(routes!(put_drive_log, get_drive_log))
        .routes(routes!(package_import_job))
}

/// The actor recorded for the deadline closing a job.
pub(crate) const DEADLINE_ACTOR: &str = "service (deadline)";
const MAX_DRIVES: usize = 1000;

// ------------------------------------------------------------------ state names

fn job_state_to_api(state: machine::ImportJobState) -> ImportJobState {
    use machine::ImportJobState as M;
    match state {
        M::Creating => ImportJobState::Creating,
        M::Shipping => ImportJobState::Shipping,
        M::Received => ImportJobState::Received,
        M::Transferring => ImportJobState::Transferring,
        M::Packaging => ImportJobState::Packaging,
        M::Completed => ImportJobState::Completed,
        M::Closed => ImportJobState::Closed,
    }
}

fn job_state_from_api(state: ImportJobState) -> machine::ImportJobState {
    use machine::ImportJobState as M;
    match state {
        ImportJobState::Creating => M::Creating,
        ImportJobState::Shipping => M::Shipping,
        ImportJobState::Received => M::Received,
        ImportJobState::Transferring => M::Transferring,
        ImportJobState::Packaging => M::Packaging,
        ImportJobState::Completed => M::Completed,
        ImportJobState::Closed => M::Closed,
    }
}

fn drive_state_to_api(state: machine::DriveState) -> ImportDriveState {
    use machine::DriveState as M;
    match state {
        M::Specified => ImportDriveState::Specified,
        M::Received => ImportDriveState::Received,
        M::Transferring => ImportDriveState::Transferring,
        M::Completed => ImportDriveState::Completed,
        M::CompletedMoreInfo => ImportDriveState::CompletedMoreInfo,
        M::NeverReceived => ImportDriveState::NeverReceived,
        M::ShippedBack => ImportDriveState::ShippedBack,
    }
}

fn drive_state_from_api(state: ImportDriveState) -> machine::DriveState {
    use machine::DriveState as M;
    match state {
        ImportDriveState::Specified => M::Specified,
        ImportDriveState::Received => M::Received,
        ImportDriveState::Transferring => M::Transferring,
        ImportDriveState::Completed => M::Completed,
        ImportDriveState::CompletedMoreInfo => M::CompletedMoreInfo,
        ImportDriveState::NeverReceived => M::NeverReceived,
        ImportDriveState::ShippedBack => M::ShippedBack,
    }
}

fn format_time(time: OffsetDateTime) -> String {
    time.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| time.to_string())
}

/// Who a change is recorded as.
fn actor(principal: &Principal) -> String {
    match principal {
        Principal::Operator => "operator".into(),
        Principal::Subscription { subscription_id } => subscription_id.clone(),
        Principal::Machine { machine_id, .. } => machine_id.clone(),
        Principal::Registration { credential_id, .. } => credential_id.clone(),
        Principal::Application { application_id, .. } => application_id.clone(),
    }
}

// ------------------------------------------------------------------ a job in memory

/// A stored job rebuilt as the state machine's values, collecting the changes a
/// request makes so they are stored together.
struct Tracked {
    row: ImportJobRow,
    job: ImportJob,
    drives: Vec<DriveRecord>,
    change: ImportJobChange,
}

impl Tracked {
    /// The job as one committed state of the database shows it (row, drives and
    /// timeline read in one snapshot, so a change committed meanwhile is wholly in
    /// it or not at all).
    async fn load(state: &AppState, job_id: &str) -> ApiResult<Tracked> {
        let snapshot = state
            .db
            .import_job_snapshot(job_id)
            .await?
            .ok_or_else(|| Failure::not_found(format!("import job {job_id}")))?;
        Self::assemble(snapshot)
    }

    /// The job as its rows and timeline say; they are written together, so a
    /// disagreement is a damaged database, not a race.
    fn assemble(snapshot: JobSnapshot) -> ApiResult<Tracked> {
        let JobSnapshot { row, drives: drive_rows, events } = snapshot;
        let mut job =
            ImportJob { name: row.name.clone(), history: Vec::new(), shipped_at: row.shipped_at.map(time_of) };
        let mut drives: Vec<DriveRecord> = drive_rows
            .iter()
            .map(|d| DriveRecord { drive_id: d.drive_id.clone(), index: d.index, history: Vec::new() })
            .collect();
        let bad = |e: sqlx::Error| Failure::Internal(format!("import job {}: {e}", row.id));
        for event in &events {
            let (at, actor) = (time_of(event.at), event.actor.clone());
            match &event.drive_id {
                None => {
                    let state = job_state_from_api(state_from(&event.state).map_err(bad)?);
                    job.history.push(StateChange { state, at, actor });
                }
                Some(id) => {
                    let state = drive_state_from_api(state_from(&event.state).map_err(bad)?);
                    if let Some(drive) = drives.iter_mut().find(|d| &d.drive_id == id) {
                        drive.history.push(StateChange { state, at, actor });
                    }
                }
            }
        }
        // The rows are what conditional updates check: they and the timeline agree.
        let stored_job = job_state_from_api(row.state);
        if job.state() != stored_job {
            return Err(Failure::Internal(format!(
                "import job {}: timeline ends {} but the job is {}",
                row.id,
                job.state(),
                stored_job
            )));
        }
        for (drive, stored) in drives.iter().zip(&drive_rows) {
            if drive.state() != drive_state_from_api(stored.state) {
                return Err(Failure::Internal(format!("import job {}: drive {} disagrees", row.id, drive.drive_id)));
            }
        }
        Ok(Tracked { row, job, drives, change: ImportJobChange::default() })
    }

    fn advance_job(
        &mut self,
        to: machine::ImportJobState,
        actor: &str,
        at: OffsetDateTime,
        message: Option<String>,
    ) -> ApiResult<()> {
        let from = job_state_to_api(self.job.state());
        self.job.advance(to, actor, at).map_err(|e| Failure::Conflict(e.to_string()))?;
        self.note_job(from, job_state_to_api(to), actor, at, message);
        Ok(())
    }

    fn note_job(
        &mut self,
        from: ImportJobState,
        to: ImportJobState,
        actor: &str,
        at: OffsetDateTime,
        message: Option<String>,
    ) {
        let first_from = self.change.job_state.map(|(f, _)| f).unwrap_or(from);
        self.change.job_state = Some((first_from, to));
        self.change.events.push(EventRow {
            drive_id: None,
            state: state_text(&to),
            at: at.unix_timestamp(),
            actor: actor.to_string(),
            message,
        });
    }

    fn advance_drive(
        &mut self,
        index: usize,
        to: machine::DriveState,
        actor: &str,
        at: OffsetDateTime,
        message: Option<String>,
    ) -> ApiResult<()> {
        let drive = &mut self.drives[index];
        let from = drive_state_to_api(drive.state());
        drive.advance(to, actor, at).map_err(|e| Failure::Conflict(e.to_string()))?;
        let drive_id = drive.drive_id.clone();
        let to = drive_state_to_api(to);
        match self.change.drives.iter_mut().find(|(id, _, _)| *id == drive_id) {
            Some(entry) => entry.2 = to,
            None => self.change.drives.push((drive_id.clone(), from, to)),
        }
        self.change.events.push(EventRow {
            drive_id: Some(drive_id),
            state: state_text(&to),
            at: at.unix_timestamp(),
            actor: actor.to_string(),
            message,
        });
        Ok(())
    }

    /// Closes the job if its drives are past their arrival deadline.
    fn expire_if_due(&mut self, now: OffsetDateTime) -> bool {
        let from = job_state_to_api(self.job.state());
        if !self.job.expire_if_due(now) {
            return false;
        }
        let deadline = self.job.arrival_deadline().map(format_time).unwrap_or_default();
        let message = format!("the drives did not reach the datacenter by {deadline}");
        self.note_job(from, ImportJobState::Closed, DEADLINE_ACTOR, now, Some(message));
        true
    }

    /// The refusal for a job its arrival deadline closed (now or earlier), naming
    /// the job and the deadline; every later step on it hears the same.
    fn refuse_if_expired(&self) -> ApiResult<()> {
        let closed_by_deadline = self.job.state() == machine::ImportJobState::Closed
            && self.job.history.last().is_some_and(|change| change.actor == DEADLINE_ACTOR);
        if !closed_by_deadline {
            return Ok(());
        }
        let deadline = self.job.arrival_deadline().map(format_time).unwrap_or_default();
        Err(Failure::Conflict(format!(
            "import job '{}' expired: its drives did not reach the datacenter by {deadline}, 14 days after the \
             shipping details. Create a new import job",
            self.row.name
        )))
    }

    /// Stores the collected changes.
    async fn store(&self, state: &AppState) -> ApiResult<()> {
        if self.change.is_empty() {
            return Ok(());
        }
        match state.db.apply_import_job_change(&self.row.id, &self.change).await? {
            ChangeOutcome::Stored => Ok(()),
            ChangeOutcome::Raced => Err(Failure::Conflict(format!(
                "import job '{}' changed while this request was deciding; read it again and retry",
                self.row.name
            ))),
            ChangeOutcome::TrackingNumberTaken => Err(tracking_number_taken()),
            ChangeOutcome::DriveTaken => Err(Failure::Conflict(format!(
                "import job '{}' got a drive with this id or index meanwhile; read it again",
                self.row.name
            ))),
        }
    }
}

fn tracking_number_taken() -> Failure {
    Failure::Conflict(
        "this tracking number is already used by another import job: tracking numbers are unique across all \
         import jobs; check the number on the carrier's receipt"
            .into(),
    )
}

/// Loads a job the caller manages, as stored. The subscription's offline-seeding
/// application sees the job but hears that this is not its to do.
async fn load_managed_as_stored(state: &AppState, principal: &Principal, job_id: &str) -> ApiResult<Tracked> {
    let tracked = load_seeded_as_stored(state, principal, job_id).await?;
    if !principal.manages(&tracked.row.subscription_id) {
        return Err(Failure::Forbidden(
            "the offline-seeding application may not do this: use the subscription's credential".into(),
        ));
    }
    Ok(tracked)
}

/// Loads a job the caller may use for offline seeding (its subscription, that
/// subscription's application, operators), as stored.
async fn load_seeded_as_stored(state: &AppState, principal: &Principal, job_id: &str) -> ApiResult<Tracked> {
    let missing = || Failure::not_found(format!("import job {job_id}"));
    let row = state.db.import_job(job_id).await?.ok_or_else(missing)?;
    if !principal.seeds(&row.subscription_id) {
        return Err(missing());
    }
    Tracked::load(state, &row.id).await
}

/// Applies the arrival deadline to a loaded job.
async fn expire(state: &AppState, mut tracked: Tracked) -> ApiResult<Tracked> {
    if tracked.expire_if_due(state.now()) {
        tracked.store(state).await?;
        tracked.change = ImportJobChange::default();
    }
    Ok(tracked)
}

/// Loads a job the caller manages, applying its arrival deadline first.
async fn load_managed(state: &AppState, principal: &Principal, job_id: &str) -> ApiResult<Tracked> {
    expire(state, load_managed_as_stored(state, principal, job_id).await?).await
}

/// Loads a job for offline seeding, applying its arrival deadline first.
async fn load_seeded(state: &AppState, principal: &Principal, job_id: &str) -> ApiResult<Tracked> {
    expire(state, load_seeded_as_stored(state, principal, job_id).await?).await
}

/// Where a job's files are in the object store.
pub(crate) fn folder_of(row: &ImportJobRow) -> JobFolder {
    JobFolder {
        storage_account_id: row.storage_account_id.clone(),
        container_id: row.container_id.clone(),
        job_name: row.name.clone(),
    }
}

/// The job as the API shows it, read again from the database, with the drives'
/// logs found in the container.
pub(super) async fn view(state: &AppState, job_id: &str) -> ApiResult<ImportJobView> {
    let JobSnapshot { row, drives, events } = state
        .db
        .import_job_snapshot(job_id)
        .await?
        .ok_or_else(|| Failure::not_found(format!("import job {job_id}")))?;
    // A job is still shown when the storage cannot list its logs.
    let logs = match state.storage.logs(&folder_of(&row)).await {
        Ok(logs) => logs,
        Err(err) => {
            tracing::warn!(job = %row.id, error = %err, "cannot list the import job's logs");
            Vec::new()
        }
    };
    Ok(view_of(row, drives, events, &logs))
}

fn view_of(
    row: ImportJobRow,
    drives: Vec<DriveRow>,
    events: Vec<EventRow>,
    logs: &[(String, String)],
) -> ImportJobView {
    let waiting = matches!(row.state, ImportJobState::Shipping);
    ImportJobView {
        id: row.id,
        name: row.name,
        subscription_id: row.subscription_id,
        state: row.state,
        storage_account: row.storage_account,
        container: row.container,
        datacenter: ImportJobDatacenter { name: row.datacenter, address: row.datacenter_address },
        shipping: row.shipping,
        arrival_deadline: row.shipped_at.filter(|_| waiting).map(|t| time_of(t) + ARRIVAL_DEADLINE),
        created: time_of(row.created),
        drives: drives
            .into_iter()
            .map(|d| ImportJobDrive {
                logs: logs.iter().filter(|(id, _)| *id == d.drive_id).map(|(_, kind)| kind.clone()).collect(),
                drive_id: d.drive_id,
                index: d.index,
                state: d.state,
                fingerprint: d.fingerprint,
                data_bytes: d.data_bytes,
                bytes_received: d.bytes_received,
            })
            .collect(),
        timeline: events
            .into_iter()
            .map(|e| ImportJobEvent {
                drive_id: e.drive_id,
                state: e.state,
                at: time_of(e.at),
                actor: e.actor,
                message: e.message,
            })
            .collect(),
        file_list: row.file_list,
    }
}

/// A drive id from a drive header: 8 to 64 hex digits, kept lowercase.
fn check_drive_id(id: &str) -> ApiResult<String> {
    let ok = (8..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit());
    if ok {
        Ok(id.to_ascii_lowercase())
    } else {
        Err(Failure::BadRequest(format!(
            "'{id}' is not a drive id: use the 8 to 64 hex digits of the drive header (diskprep prints them)"
        )))
    }
}

/// A drive of a job from its spec, `specified`.
fn drive_row(spec: &ImportJobDriveSpec) -> ApiResult<DriveRow> {
    let fingerprint = match &spec.fingerprint {
        None => None,
        Some(text) if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Some(text.to_ascii_lowercase())
        }
        Some(text) => {
            return Err(Failure::BadRequest(format!(
                "'{text}' is not a drive fingerprint: use the 64 hex digits diskprep prints"
            )))
        }
    };
    Ok(DriveRow {
        drive_id: check_drive_id(&spec.drive_id)?,
        index: spec.index,
        state: ImportDriveState::Specified,
        fingerprint,
        data_bytes: spec.data_bytes,
        bytes_received: 0,
    })
}

/// A note for the timeline: blank is none; at most 4000 characters.
fn check_message(message: Option<String>) -> ApiResult<Option<String>> {
    match message {
        Some(text) if text.len() > 4000 => {
            Err(Failure::BadRequest("the message must be at most 4000 characters".into()))
        }
        other => Ok(other.map(|t| t.trim().to_string()).filter(|t| !t.is_empty())),
    }
}

fn check_text(what: &str, value: &str, max: usize) -> ApiResult<String> {
    let value = value.trim();
    if value.is_empty() || value.len() > max {
        return Err(Failure::BadRequest(format!("the {what} must be 1 to {max} characters")));
    }
    Ok(value.to_string())
}

// ------------------------------------------------------------------ customers

/// Creates an import job in state `creating` with its drives `specified`.
#[utoipa::path(post, path = "/subscriptions/{subscription_id}/import-jobs", tag = "import-jobs", security(("bearer" = [])),
    params(("subscription_id" = String, Path)), request_body = CreateImportJob,
    responses((status = 200, body = ImportJobView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn create_import_job(
    State(state): State<AppState>,
    principal: Principal,
    Path(subscription_id): Path<String>,
    ApiJson(body): ApiJson<CreateImportJob>,
) -> ApiResult<Json<ImportJobView>> {
    let subscription = seeded(&state, &principal, &subscription_id).await?;
    check_job_name(&body.name).map_err(|e| Failure::BadRequest(e.to_string()))?;
    if body.drives.is_empty() {
        return Err(Failure::BadRequest(
            "an import job needs at least one drive: list the drives diskprep wrote".into(),
        ));
    }
    if body.drives.len() > MAX_DRIVES {
        return Err(Failure::BadRequest(format!("an import job holds at most {MAX_DRIVES} drives")));
    }
    let mut drives: Vec<DriveRow> = Vec::new();
    for spec in &body.drives {
        let drive = drive_row(spec)?;
        if drives.iter().any(|d| d.drive_id == drive.drive_id) {
            return Err(Failure::BadRequest(format!("drive {} is listed twice", drive.drive_id)));
        }
        if drives.iter().any(|d| d.index == spec.index) {
            return Err(Failure::BadRequest(format!("two drives have index {}", spec.index)));
        }
        drives.push(drive);
    }
    let account = state
        .db
        .storage_account_named(&body.storage_account)
        .await?
        .filter(|a| a.subscription_id == subscription.id)
        .ok_or_else(|| {
            Failure::not_found(format!("storage account '{}' in this subscription", body.storage_account))
        })?;
    let container = state.db.container_named(&account.id, &body.container).await?.ok_or_else(|| {
        Failure::not_found(format!("container '{}' in storage account '{}'", body.container, account.name))
    })?;
    let datacenter =
        state.db.datacenter_named(&body.datacenter).await?.ok_or_else(|| {
            Failure::not_found(format!("datacenter '{}' (GET /datacenters lists them)", body.datacenter))
        })?;
    let name_taken = || {
        Failure::Conflict(format!(
            "import job name '{}' already exists: names are unique across the service",
            body.name
        ))
    };
    if state.db.import_job_name_taken(&body.name).await? {
        return Err(name_taken());
    }

    // The state machine makes the first states; the rows copy them.
    let now = state.now();
    let who = actor(&principal);
    let job = ImportJob::new(&body.name, &who, now).map_err(|e| Failure::BadRequest(e.to_string()))?;
    let mut events = vec![EventRow {
        drive_id: None,
        state: state_text(&job_state_to_api(job.state())),
        at: now.unix_timestamp(),
        actor: who.clone(),
        message: None,
    }];
    for drive in &drives {
        let record = DriveRecord::new(&drive.drive_id, drive.index, &who, now);
        events.push(EventRow {
            drive_id: Some(record.drive_id.clone()),
            state: state_text(&drive_state_to_api(record.state())),
            at: now.unix_timestamp(),
            actor: who.clone(),
            message: None,
        });
    }
    let row = ImportJobRow {
        id: secrets::new_id("imp"),
        subscription_id: subscription.id,
        name: body.name.clone(),
        storage_account_id: account.id,
        storage_account: account.name,
        container_id: container.id,
        container: container.name,
        datacenter_id: datacenter.id,
        datacenter: datacenter.name,
        datacenter_address: datacenter.address,
        state: job_state_to_api(job.state()),
        created: now.unix_timestamp(),
        shipped_at: None,
        shipping: None,
        file_list: None,
    };
    match state.db.insert_import_job(&row, &drives, &events).await {
        Err(crate::db::DbError::Conflict(_)) => return Err(name_taken()),
        other => other?,
    }
    tracing::info!(job = %row.id, name = %row.name, drives = drives.len(), "import job created");
    Ok(Json(view(&state, &row.id).await?))
}

/// The subscription's import jobs, oldest first (closing those past their deadline).
#[utoipa::path(get, path = "/subscriptions/{subscription_id}/import-jobs", tag = "import-jobs", security(("bearer" = [])),
    params(("subscription_id" = String, Path)),
    responses((status = 200, body = Vec<ImportJobView>), (status = 404, body = ErrorBody)))]
pub(crate) async fn list_import_jobs(
    State(state): State<AppState>,
    principal: Principal,
    Path(subscription_id): Path<String>,
) -> ApiResult<Json<Vec<ImportJobView>>> {
    let subscription = seeded(&state, &principal, &subscription_id).await?;
    let mut views = Vec::new();
    for row in state.db.import_jobs_of(&subscription.id).await? {
        let id = row.id.clone();
        let mut tracked = Tracked::load(&state, &row.id).await?;
        if tracked.expire_if_due(state.now()) {
            tracked.store(&state).await?;
        }
        views.push(view(&state, &id).await?);
    }
    Ok(Json(views))
}

/// One import job with its drives and its whole timeline.
#[utoipa::path(get, path = "/import-jobs/{import_job_id}", tag = "import-jobs", security(("bearer" = [])),
    params(("import_job_id" = String, Path)),
    responses((status = 200, body = ImportJobView), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_import_job(
    State(state): State<AppState>,
    principal: Principal,
    Path(import_job_id): Path<String>,
) -> ApiResult<Json<ImportJobView>> {
    let tracked = load_seeded(&state, &principal, &import_job_id).await?;
    Ok(Json(view(&state, &tracked.row.id).await?))
}

/// Cancels a job (→ `closed`), while the life cycle allows it.
#[utoipa::path(post, path = "/import-jobs/{import_job_id}/cancel", tag = "import-jobs", security(("bearer" = [])),
    params(("import_job_id" = String, Path)), request_body = ImportJobNote,
    responses((status = 200, body = ImportJobView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn cancel_import_job(
    State(state): State<AppState>,
    principal: Principal,
    Path(import_job_id): Path<String>,
    ApiJson(note): ApiJson<ImportJobNote>,
) -> ApiResult<Json<ImportJobView>> {
    let message = check_message(note.message)?;
    let mut tracked = load_managed(&state, &principal, &import_job_id).await?;
    let message = Some(message.map_or_else(|| "cancelled".to_string(), |m| format!("cancelled: {m}")));
    tracked.advance_job(machine::ImportJobState::Closed, &actor(&principal), state.now(), message)?;
    tracked.store(&state).await?;
    Ok(Json(view(&state, &tracked.row.id).await?))
}

/// Records the package's shipping details (→ `shipping`); may be given again to
/// correct them while the package travels. The drives must arrive within 14 days.
#[utoipa::path(put, path = "/import-jobs/{import_job_id}/shipping", tag = "import-jobs", security(("bearer" = [])),
    params(("import_job_id" = String, Path)), request_body = ShippingDetails,
    responses((status = 200, body = ImportJobView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn set_shipping(
    State(state): State<AppState>,
    principal: Principal,
    Path(import_job_id): Path<String>,
    ApiJson(body): ApiJson<ShippingDetails>,
) -> ApiResult<Json<ImportJobView>> {
    let mut tracked = load_seeded_as_stored(&state, &principal, &import_job_id).await?;
    if tracked.expire_if_due(state.now()) {
        tracked.store(&state).await?;
    }
    tracked.refuse_if_expired()?;
    let tracking_number =
        check_tracking_number(&body.tracking_number).map_err(|e| Failure::BadRequest(e.to_string()))?;
    let drive_count = tracked.drives.len();
    if body.drive_count as usize != drive_count {
        return Err(Failure::BadRequest(format!(
            "the package holds {} drives but import job '{}' has {drive_count}: ship all of its drives together",
            body.drive_count, tracked.row.name
        )));
    }
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(body.ship_date.trim(), &date_format).map_err(|_| {
        Failure::BadRequest(format!("'{}' is not a ship date: use YYYY-MM-DD, e.g. 2026-11-02", body.ship_date))
    })?;
    let details = ShippingDetails {
        carrier: check_text("carrier", &body.carrier, 100)?,
        tracking_number,
        drive_count: body.drive_count,
        ship_date: body.ship_date.trim().to_string(),
        return_address: check_text("return address", &body.return_address, 1000)?,
        contact: check_text("contact", &body.contact, 200)?,
    };
    if state.db.tracking_number_taken(&details.tracking_number, &tracked.row.id).await? {
        return Err(tracking_number_taken());
    }
    let now = state.now();
    if tracked.job.state() != machine::ImportJobState::Shipping {
        tracked.advance_job(machine::ImportJobState::Shipping, &actor(&principal), now, None)?;
    }
    let shipped_at = tracked.job.shipped_at.unwrap_or(now).unix_timestamp();
    tracked.change.shipping = Some(ShippingUpdate { details, shipped_at });
    tracked.store(&state).await?;
    Ok(Json(view(&state, &tracked.row.id).await?))
}

// ------------------------------------------------------------------ the datacenter

/// Loads a job for the operator: another tenant hears "not found" like everywhere
/// else, the job's own subscription hears that only the operator may do this.
async fn load_for_operator(state: &AppState, principal: &Principal, job_id: &str) -> ApiResult<Tracked> {
    let mut tracked = load_managed_as_stored(state, principal, job_id).await?;
    principal.require_operator()?;
    if tracked.expire_if_due(state.now()) {
        tracked.store(state).await?;
        tracked.change = ImportJobChange::default();
    }
    tracked.refuse_if_expired()?;
    Ok(tracked)
}

/// The package arrived (operators): the job becomes `received`, and so does every
/// drive still `specified`.
#[utoipa::path(post, path = "/import-jobs/{import_job_id}/receive", tag = "import-jobs", security(("bearer" = [])),
    params(("import_job_id" = String, Path)), request_body = ImportJobNote,
    responses((status = 200, body = ImportJobView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub(crate) async fn receive_import_job(
    State(state): State<AppState>,
    principal: Principal,
    Path(import_job_id): Path<String>,
    ApiJson(note): ApiJson<ImportJobNote>,
) -> ApiResult<Json<ImportJobView>> {
    let message = check_message(note.message)?;
    let mut tracked = load_for_operator(&state, &principal, &import_job_id).await?;
    let now = state.now();
    let who = actor(&principal);
    tracked.advance_job(machine::ImportJobState::Received, &who, now, message)?;
    for index in 0..tracked.drives.len() {
        if tracked.drives[index].state() == machine::DriveState::Specified {
            tracked.advance_drive(index, machine::DriveState::Received, &who, now, None)?;
        }
    }
    tracked.store(&state).await?;
    tracing::info!(job = %tracked.row.id, "import job received");
    Ok(Json(view(&state, &tracked.row.id).await?))
}

/// Moves one drive on (operators). The first drive `transferring` moves the job
/// from `received` to `transferring`; once every drive is done the job moves on to
/// `packaging`.
#[utoipa::path(put, path = "/import-jobs/{import_job_id}/drives/{drive_id}/state", tag = "import-jobs",
    security(("bearer" = [])),
    params(("import_job_id" = String, Path), ("drive_id" = String, Path)), request_body = DriveStateUpdate,
    responses((status = 200, body = ImportJobView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn set_drive_state(
    State(state): State<AppState>,
    principal: Principal,
    Path((import_job_id, drive_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<DriveStateUpdate>,
) -> ApiResult<Json<ImportJobView>> {
    let mut tracked = load_for_operator(&state, &principal, &import_job_id).await?;
    let wanted = drive_id.to_ascii_lowercase();
    let index = tracked
        .drives
        .iter()
        .position(|d| d.drive_id == wanted)
        .ok_or_else(|| Failure::not_found(format!("drive {drive_id} of import job '{}'", tracked.row.name)))?;
    let job_state = tracked.job.state();
    if matches!(job_state, machine::ImportJobState::Creating | machine::ImportJobState::Shipping) {
        return Err(Failure::Conflict(format!(
            "import job '{}' is {job_state}: record the package's arrival first (POST /import-jobs/{}/receive)",
            tracked.row.name, tracked.row.id
        )));
    }
    let message = check_message(body.message)?;
    let now = state.now();
    let who = actor(&principal);
    let to = drive_state_from_api(body.state);
    tracked.advance_drive(index, to, &who, now, message)?;
    if to == machine::DriveState::Transferring && tracked.job.state() == machine::ImportJobState::Received {
        tracked.advance_job(machine::ImportJobState::Transferring, &who, now, None)?;
    }
    if tracked.job.state() == machine::ImportJobState::Transferring
        && tracked.drives.iter().all(|d| d.state().is_done())
    {
        tracked.advance_job(machine::ImportJobState::Packaging, &who, now, None)?;
    }
    tracked.store(&state).await?;
    Ok(Json(view(&state, &tracked.row.id).await?))
}

/// The drives are packed to go back (operators): `packaging` → `completed`, once
/// the container holds every file of the job's file list whole.
#[utoipa::path(post, path = "/import-jobs/{import_job_id}/complete", tag = "import-jobs", security(("bearer" = [])),
    params(("import_job_id" = String, Path)), request_body = ImportJobNote,
    responses((status = 200, body = ImportJobView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn complete_import_job(
    State(state): State<AppState>,
    principal: Principal,
    Path(import_job_id): Path<String>,
    ApiJson(note): ApiJson<ImportJobNote>,
) -> ApiResult<Json<ImportJobView>> {
    let message = check_message(note.message)?;
    let mut tracked = load_for_operator(&state, &principal, &import_job_id).await?;
    if tracked.job.state() == machine::ImportJobState::Packaging
        && state.storage.has_parts(&folder_of(&tracked.row)).await?
    {
        return Err(Failure::Conflict(format!(
            "import job '{}' has files the drives delivered only in part: package it (POST /import-jobs/{}/package) \
             to assemble them or to name what a repair drive must bring",
            tracked.row.name, tracked.row.id
        )));
    }
    if tracked.job.state() == machine::ImportJobState::Packaging {
        if let Some(why) = what_keeps_from_completing(&state, &tracked.row, &[]).await? {
            return Err(Failure::Conflict(why));
        }
    }
    tracked.advance_job(machine::ImportJobState::Completed, &actor(&principal), state.now(), message)?;
    tracked.store(&state).await?;
    tracing::info!(job = %tracked.row.id, "import job completed");
    Ok(Json(view(&state, &tracked.row.id).await?))
}

// ------------------------------------------------------------------ offline seeding

/// An import job by its name (names are unique across the service): for the
/// operator, the job's subscription and its offline-seeding application, and the
/// machines of that subscription (whose agents wait for it).
#[utoipa::path(get, path = "/import-jobs/by-name/{import_job_name}", tag = "import-jobs",
    security(("bearer" = []), ("offsite_app" = [])),
    params(("import_job_name" = String, Path)),
    responses((status = 200, body = ImportJobView), (status = 404, body = ErrorBody)))]
async fn find_import_job(
    State(state): State<AppState>,
    principal: Principal,
    Path(import_job_name): Path<String>,
) -> ApiResult<Json<ImportJobView>> {
    let missing = || Failure::not_found(format!("import job '{import_job_name}'"));
    let row = state.db.import_job_named(&import_job_name).await?.ok_or_else(missing)?;
    let machine_of_subscription =
        matches!(&principal, Principal::Machine { subscription_id, .. } if *subscription_id == row.subscription_id);
    if !(principal.seeds(&row.subscription_id) || machine_of_subscription) {
        return Err(missing());
    }
    let tracked = expire(&state, Tracked::load(&state, &row.id).await?).await?;
    Ok(Json(view(&state, &tracked.row.id).await?))
}

/// Adds a drive to a job, `specified` (a repair drive, which diskprep makes for
/// the files the ingest logs name). The same drive again changes nothing.
#[utoipa::path(post, path = "/import-jobs/{import_job_id}/drives", tag = "import-jobs",
    security(("bearer" = []), ("offsite_app" = [])),
    params(("import_job_id" = String, Path)), request_body = ImportJobDriveSpec,
    responses((status = 200, body = ImportJobView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn add_drive(
    State(state): State<AppState>,
    principal: Principal,
    Path(import_job_id): Path<String>,
    ApiJson(spec): ApiJson<ImportJobDriveSpec>,
) -> ApiResult<Json<ImportJobView>> {
    let mut tracked = load_seeded(&state, &principal, &import_job_id).await?;
    let drive = drive_row(&spec)?;
    let job_state = tracked.job.state();
    use machine::ImportJobState as J;
    if !matches!(job_state, J::Creating | J::Shipping | J::Received | J::Transferring | J::Packaging) {
        return Err(Failure::Conflict(format!(
            "import job '{}' is {job_state}: drives can no longer be added to it",
            tracked.row.name
        )));
    }
    let rows = state.db.import_job_drives(&tracked.row.id).await?;
    if let Some(existing) = rows.iter().find(|d| d.drive_id == drive.drive_id) {
        if existing.index == drive.index && existing.fingerprint == drive.fingerprint {
            return Ok(Json(view(&state, &tracked.row.id).await?));
        }
        return Err(Failure::Conflict(format!(
            "drive {} is already in import job '{}' (index {})",
            drive.drive_id, tracked.row.name, existing.index
        )));
    }
    if let Some(existing) = rows.iter().find(|d| d.index == drive.index) {
        return Err(Failure::Conflict(format!(
            "index {} of import job '{}' is drive {}: number a repair drive after the job's last drive",
            drive.index, tracked.row.name, existing.drive_id
        )));
    }
    if rows.len() >= MAX_DRIVES {
        return Err(Failure::BadRequest(format!("an import job holds at most {MAX_DRIVES} drives")));
    }
    let now = state.now();
    let who = actor(&principal);
    let repair = !matches!(job_state, J::Creating);
    tracked.drives.push(DriveRecord::new(&drive.drive_id, drive.index, &who, now));
    // The job must still be in the state this was decided in.
    let stored = job_state_to_api(job_state);
    tracked.change.job_state = Some((stored, stored));
    tracked.change.events.push(EventRow {
        drive_id: Some(drive.drive_id.clone()),
        state: state_text(&ImportDriveState::Specified),
        at: now.unix_timestamp(),
        actor: who,
        message: Some(if repair { "repair drive added".into() } else { "drive added".into() }),
    });
    tracked.change.new_drives.push(drive.clone());
    tracked.store(&state).await?;
    tracing::info!(job = %tracked.row.id, drive = %drive.drive_id, "drive added to import job");
    Ok(Json(view(&state, &tracked.row.id).await?))
}

/// Where an uploaded part belongs.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct FileQuery {
    /// The file's path in the staging repository, e.g. `data/3f/3f…` (relative, no `..`).
    path: String,
    /// Where the body goes in the file.
    offset: u64,
    /// The whole file's size.
    file_size: u64,
    /// The drive the bytes come from; it must be `transferring`.
    drive_id: String,
}

/// The raw bytes of a file part, for the OpenAPI document.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
struct PartBytes(Vec<u8>);

fn content_length(headers: &HeaderMap) -> ApiResult<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Failure::BadRequest("a file upload needs a Content-Length".into()))
}

/// The most of a refused upload's body the service reads before answering.
const DRAIN_LIMIT: u64 = 64 * 1024 * 1024;

/// What an upload of `query` must satisfy before its body is stored: a path of the
/// job's files, a job being ingested, its drive transferring, a length. Returns the
/// drive (lowercase) and the length.
fn check_upload(tracked: &Tracked, query: &FileQuery, headers: &HeaderMap) -> ApiResult<(String, u64)> {
    check_import_path(&query.path)?;
    let job_state = tracked.job.state();
    use machine::ImportJobState as J;
    if !matches!(job_state, J::Received | J::Transferring | J::Packaging) {
        return Err(Failure::Conflict(format!(
            "import job '{}' is {job_state}: files are uploaded while its drives are ingested",
            tracked.row.name
        )));
    }
    let wanted = query.drive_id.to_ascii_lowercase();
    let drive =
        tracked.drives.iter().find(|d| d.drive_id == wanted).ok_or_else(|| {
            Failure::not_found(format!("drive {} of import job '{}'", query.drive_id, tracked.row.name))
        })?;
    if drive.state() != machine::DriveState::Transferring {
        return Err(Failure::Conflict(format!(
            "drive {} is {}: set it transferring before uploading its files",
            drive.drive_id,
            drive.state()
        )));
    }
    Ok((wanted, content_length(headers)?))
}

/// Uploads the bytes a drive holds of one file (the ingest station, operators):
/// all of it (stored as the file, checked against its content-hash name), or a
/// part, kept aside until the job is packaged. Streamed; nothing is visible until
/// the upload is complete.
#[utoipa::path(put, path = "/import-jobs/{import_job_id}/files", tag = "import-jobs", security(("bearer" = [])),
    params(("import_job_id" = String, Path), FileQuery),
    request_body(content = PartBytes, content_type = "application/octet-stream"),
    responses((status = 201, description = "stored"), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 507, body = ErrorBody)))]
async fn put_import_file(
    State(state): State<AppState>,
    principal: Principal,
    Path(import_job_id): Path<String>,
    ApiQuery(query): ApiQuery<FileQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<StatusCode> {
    let tracked = load_for_operator(&state, &principal, &import_job_id).await?;
    let (wanted, length) = match check_upload(&tracked, &query, &headers) {
        Ok(checked) => checked,
        Err(failure) => {
            // The operator's station is still sending: it should hear this answer.
            crate::unread_body::drain(&mut body.into_data_stream(), DRAIN_LIMIT).await;
            return Err(failure);
        }
    };
    let folder = folder_of(&tracked.row);
    let started = std::time::Instant::now();
    let stored = state
        .storage
        .put_import_part(&folder, &query.path, query.offset, query.file_size, length, body.into_data_stream())
        .await?;
    metrics::counter!("offsite_bytes_in_total").increment(stored);
    // Ingest throughput: bytes from drives, and how long each file (part) took to arrive.
    metrics::counter!("offsite_ingest_bytes_total").increment(stored);
    metrics::histogram!("offsite_import_file_upload_seconds").record(started.elapsed().as_secs_f64());
    state.db.add_bytes_received(&tracked.row.id, &wanted, stored).await?;
    Ok(StatusCode::CREATED)
}

/// The whole files in the job's container (not parts awaiting packaging, not logs).
#[utoipa::path(get, path = "/import-jobs/{import_job_id}/files", tag = "import-jobs", security(("bearer" = [])),
    params(("import_job_id" = String, Path)),
    responses((status = 200, body = Vec<ImportFile>), (status = 404, body = ErrorBody)))]
async fn list_import_files(
    State(state): State<AppState>,
    principal: Principal,
    Path(import_job_id): Path<String>,
) -> ApiResult<Json<Vec<ImportFile>>> {
    let tracked = load_managed(&state, &principal, &import_job_id).await?;
    Ok(Json(state.storage.import_files(&folder_of(&tracked.row)).await?))
}

/// The parts of files in the job's container that wait for packaging: what an
/// ingest station stopped in the middle of a drive need not send again.
#[utoipa::path(get, path = "/import-jobs/{import_job_id}/parts", tag = "import-jobs", security(("bearer" = [])),
    params(("import_job_id" = String, Path)),
    responses((status = 200, body = Vec<ImportPart>), (status = 404, body = ErrorBody)))]
async fn list_import_parts(
    State(state): State<AppState>,
    principal: Principal,
    Path(import_job_id): Path<String>,
) -> ApiResult<Json<Vec<ImportPart>>> {
    let tracked = load_managed(&state, &principal, &import_job_id).await?;
    Ok(Json(state.storage.import_parts(&folder_of(&tracked.row)).await?))
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
        .drives
        .iter()
        .find(|d| d.drive_id == wanted)
        .ok_or_else(|| Failure::not_found(format!("drive {drive_id} of import job '{}'", tracked.row.name)))
}

/// Stores a drive's ingest log (operators): `error` names what is wrong or missing,
/// `verbose` what was done. Text, at most 16 MiB; kept in the job's container.
#[utoipa::path(put, path = "/import-jobs/{import_job_id}/drives/{drive_id}/logs/{kind}", tag = "import-jobs",
    security(("bearer" = [])),
    params(("import_job_id" = String, Path), ("drive_id" = String, Path), ("kind" = String, Path, description = "error or verbose")),
    request_body(content = String, content_type = "text/plain"),
    responses((status = 201, description = "stored"), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn put_drive_log(
    State(state): State<AppState>,
    principal: Principal,
    Path((import_job_id, drive_id, kind)): Path<(String, String, String)>,
    body: Body,
) -> ApiResult<StatusCode> {
    let tracked = load_for_operator(&state, &principal, &import_job_id).await?;
    check_log_kind(&kind)?;
    let drive_id = drive_of(&tracked, &drive_id)?.drive_id.clone();
    let bytes = axum::body::to_bytes(body, MAX_LOG_BYTES)
        .await
        .map_err(|_| Failure::TooLarge(format!("a drive log is at most {MAX_LOG_BYTES} bytes: keep its first part")))?;
    if std::str::from_utf8(&bytes).is_err() {
        return Err(Failure::BadRequest("a drive log is UTF-8 text".into()));
    }
    state.storage.put_log(&folder_of(&tracked.row), &drive_id, &kind, bytes).await?;
    Ok(StatusCode::CREATED)
}

/// A drive's ingest log, as text.
#[utoipa::path(get, path = "/import-jobs/{import_job_id}/drives/{drive_id}/logs/{kind}", tag = "import-jobs",
    security(("bearer" = []), ("offsite_app" = [])),
    params(("import_job_id" = String, Path), ("drive_id" = String, Path), ("kind" = String, Path, description = "error or verbose")),
    responses((status = 200, description = "the log", content_type = "text/plain"), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_drive_log(
    State(state): State<AppState>,
    principal: Principal,
    Path((import_job_id, drive_id, kind)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let tracked = load_seeded(&state, &principal, &import_job_id).await?;
    check_log_kind(&kind)?;
    let drive_id = drive_of(&tracked, &drive_id)?.drive_id.clone();
    let text = state.storage.get_log(&folder_of(&tracked.row), &drive_id, &kind).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

/// The timeline's sentence for the files a job still lacks after packaging: those
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

/// Packages the job once every drive is done (operators): parts that cover their
/// file are assembled into it. When every file is whole the job is `completed`;
/// otherwise it stays `packaging`, its timeline naming the missing byte ranges,
/// until a repair drive brings them and the job is packaged again.
#[utoipa::path(post, path = "/import-jobs/{import_job_id}/package", tag = "import-jobs", security(("bearer" = [])),
    params(("import_job_id" = String, Path)), request_body = ImportJobNote,
    responses((status = 200, body = ImportJobView, description = "completed, or packaging with the incomplete files named"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn package_import_job(
    State(state): State<AppState>,
    principal: Principal,
    Path(import_job_id): Path<String>,
    ApiJson(note): ApiJson<ImportJobNote>,
) -> ApiResult<Json<ImportJobView>> {
    let message = check_message(note.message)?;
    let mut tracked = load_for_operator(&state, &principal, &import_job_id).await?;
    let busy: Vec<String> = tracked
        .drives
        .iter()
        .filter(|d| !d.state().is_done())
        .map(|d| format!("{} ({})", d.drive_id, d.state()))
        .collect();
    if !busy.is_empty() {
        return Err(Failure::Conflict(format!(
            "import job '{}' still has drives being ingested or not received: {}. Finish their ingest first",
            tracked.row.name,
            busy.join(", ")
        )));
    }
    let who = actor(&principal);
    match tracked.job.state() {
        machine::ImportJobState::Transferring => {
            tracked.advance_job(machine::ImportJobState::Packaging, &who, state.now(), None)?;
            tracked.store(&state).await?;
            tracked.change = ImportJobChange::default();
        }
        machine::ImportJobState::Packaging => {}
        other => {
            return Err(Failure::Conflict(format!(
                "import job '{}' is {other}: it is packaged after its drives are ingested",
                tracked.row.name
            )))
        }
    }
    let packaged = state.storage.package(&folder_of(&tracked.row)).await?;
    let now = state.now();
    match what_keeps_from_completing(&state, &tracked.row, &packaged.incomplete).await? {
        None => {
            tracked.advance_job(machine::ImportJobState::Completed, &who, now, message)?;
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
    tracked.store(&state).await?;
    Ok(Json(view(&state, &tracked.row.id).await?))
}

/// The files of the job's file list its container does not hold whole, or
/// `None` when no file list was registered (then nothing can say the seed is whole).
pub(crate) async fn files_missing(state: &AppState, row: &ImportJobRow) -> ApiResult<Option<Vec<ImportFile>>> {
    if row.file_list.is_none() {
        return Ok(None);
    }
    let list = state.db.import_file_list(&row.id).await?;
    let present = state.storage.import_files(&folder_of(row)).await?;
    Ok(Some(missing_from(&list, &present)))
}

/// The one rule for `completed`: why the job cannot complete yet (no file list;
/// listed files not whole in the container; `incomplete`, the files packaging
/// could not assemble), or `None` when every file of its list is there.
async fn what_keeps_from_completing(
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

/// Where a job's file list is registered.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct FileListQuery {
    /// The list's digest as diskprep computed it from the staging location (64 hex
    /// digits): a list cut short or changed on the way does not match it.
    digest: String,
}

/// The most bytes a file list may have (8 million lines of long paths).
const MAX_FILE_LIST_BYTES: u64 = 1 << 30;

/// Registers the files the job's drive set carries (diskprep, once, before the job
/// completes): text, one line `<size> <path>` per file in path order. The job
/// completes only when its container holds every one of them whole; the same list
/// again changes nothing.
#[utoipa::path(put, path = "/import-jobs/{import_job_id}/file-list", tag = "import-jobs",
    security(("bearer" = []), ("offsite_app" = [])),
    params(("import_job_id" = String, Path), FileListQuery),
    request_body(content = String, content_type = "text/plain", description = "one line `<size> <path>` per file, in path order"),
    responses((status = 200, body = ImportJobView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn put_file_list(
    State(state): State<AppState>,
    principal: Principal,
    Path(import_job_id): Path<String>,
    ApiQuery(query): ApiQuery<FileListQuery>,
    body: Body,
) -> ApiResult<Json<ImportJobView>> {
    let tracked = load_seeded(&state, &principal, &import_job_id).await?;
    let name = &tracked.row.name;
    let mut stream = body.into_data_stream();
    let digest = query.digest.to_ascii_lowercase();
    let refusal = if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        Some(Failure::BadRequest(format!(
            "'{}' is not a file list digest: use the 64 hex digits diskprep computes",
            query.digest
        )))
    } else if matches!(tracked.job.state(), machine::ImportJobState::Completed | machine::ImportJobState::Closed)
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
            Ok(Json(view(&state, &tracked.row.id).await?))
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
    Ok(Json(view(&state, &tracked.row.id).await?))
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
#[utoipa::path(get, path = "/import-jobs/{import_job_id}/missing-files", tag = "import-jobs",
    security(("bearer" = []), ("offsite_app" = [])),
    params(("import_job_id" = String, Path)),
    responses((status = 200, body = Vec<ImportFile>), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the job has no file list")))]
async fn list_missing_files(
    State(state): State<AppState>,
    principal: Principal,
    Path(import_job_id): Path<String>,
) -> ApiResult<Json<Vec<ImportFile>>> {
    let tracked = load_seeded(&state, &principal, &import_job_id).await?;
    match files_missing(&state, &tracked.row).await? {
        Some(missing) => Ok(Json(missing)),
        None => Err(Failure::Conflict(no_file_list(&tracked.row.name))),
    }
}
