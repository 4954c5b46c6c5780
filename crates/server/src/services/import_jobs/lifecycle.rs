//! The import job's life cycle as callers drive it: created with its drives,
//! shipped, received at the datacenter, its drives moved on, completed or closed.

use offsite_api::types::{
    CreateImportJob, DriveStateUpdate, ImportDriveState, ImportJobDriveSpec, ImportJobNote, ImportJobState,
    ImportJobView, ShippingDetails,
};
use offsite_seeding::import_job::{check_job_name, check_tracking_number, ImportJob, ImportJobError};

use super::*;
use crate::db::enum_text;
use crate::db::import_jobs::{DriveRow, EventRow, ImportJobRow, ShippingUpdate};
use crate::error::{ApiResult, Failure};
use crate::principal::Principal;
use crate::secrets;
use crate::services::subscriptions;
use crate::state::AppState;

/// Creates an import job in state `creating` with its drives `specified`.
pub async fn create(
    state: &AppState,
    principal: &Principal,
    subscription_id: &str,
    body: CreateImportJob,
) -> ApiResult<ImportJobView> {
    let subscription = subscriptions::seeded(state, principal, subscription_id).await?;
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
    let who = actor(principal);
    let mut job = ImportJob::new(&body.name, who.as_str(), now).map_err(|e| Failure::BadRequest(e.to_string()))?;
    let mut events = vec![EventRow {
        drive_id: None,
        state: enum_text(&job.state()),
        at: now.unix_timestamp(),
        actor: who.as_str().to_string(),
        message: None,
    }];
    for drive in &drives {
        job.add_drive(&drive.drive_id, drive.index, who.clone(), now).map_err(refused)?;
        events.push(EventRow {
            drive_id: Some(drive.drive_id.clone()),
            state: enum_text(&ImportDriveState::Specified),
            at: now.unix_timestamp(),
            actor: who.as_str().to_string(),
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
        state: job.state(),
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
    view(state, &row.id).await
}

/// The subscription's import jobs, oldest first (closing those past their deadline).
pub async fn list(state: &AppState, principal: &Principal, subscription_id: &str) -> ApiResult<Vec<ImportJobView>> {
    let subscription = subscriptions::seeded(state, principal, subscription_id).await?;
    let mut views = Vec::new();
    for row in state.db.import_jobs_of(&subscription.id).await? {
        expire(state, Tracked::load(state, &row.id).await?).await?;
        views.push(view(state, &row.id).await?);
    }
    Ok(views)
}

/// One import job with its drives and its whole timeline.
pub async fn get(state: &AppState, principal: &Principal, import_job_id: &str) -> ApiResult<ImportJobView> {
    let tracked = expire(state, load_readable_as_stored(state, principal, import_job_id).await?).await?;
    view(state, &tracked.row.id).await
}

/// Cancels a job (→ `closed`), while the life cycle allows it.
pub async fn cancel(
    state: &AppState,
    principal: &Principal,
    import_job_id: &str,
    note: ImportJobNote,
) -> ApiResult<ImportJobView> {
    let message = check_message(note.message)?;
    let mut tracked = load_managed(state, principal, import_job_id).await?;
    let message = Some(message.map_or_else(|| "cancelled".to_string(), |m| format!("cancelled: {m}")));
    let closed = tracked.job.advance(ImportJobState::Closed, actor(principal), state.now()).map_err(refused)?;
    tracked.record(vec![closed], message);
    tracked.store(state).await?;
    view(state, &tracked.row.id).await
}

/// Records the package's shipping details (→ `shipping`); may be given again to
/// correct them while the package travels. The drives must arrive within 14 days.
pub async fn ship(
    state: &AppState,
    principal: &Principal,
    import_job_id: &str,
    body: ShippingDetails,
) -> ApiResult<ImportJobView> {
    let mut tracked = expire(state, load_seeded_as_stored(state, principal, import_job_id).await?).await?;
    tracked.refuse_if_expired()?;
    let tracking_number =
        check_tracking_number(&body.tracking_number).map_err(|e| Failure::BadRequest(e.to_string()))?;
    let drive_count = tracked.job.drives.len();
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
    let shipped = tracked.job.ship(actor(principal), now).map_err(refused)?;
    tracked.record(shipped, None);
    let shipped_at = tracked.job.shipped_at.unwrap_or(now).unix_timestamp();
    tracked.change.shipping = Some(ShippingUpdate { details, shipped_at });
    tracked.store(state).await?;
    view(state, &tracked.row.id).await
}

/// Loads a job for its ingest station ([`load_for_station_as_stored`]), applying
/// its arrival deadline: an expired job takes no station step.
pub(crate) async fn load_for_station(state: &AppState, principal: &Principal, job_id: &str) -> ApiResult<Tracked> {
    let tracked = expire(state, load_for_station_as_stored(state, principal, job_id).await?).await?;
    tracked.refuse_if_expired()?;
    Ok(tracked)
}

/// Loads a job for the service operator alone: those who may read it hear that
/// only the operator may do this, everyone else that there is no such job.
pub(crate) async fn load_for_operator(state: &AppState, principal: &Principal, job_id: &str) -> ApiResult<Tracked> {
    let tracked = load_readable_as_stored(state, principal, job_id).await?;
    principal.require_operator()?;
    let tracked = expire(state, tracked).await?;
    tracked.refuse_if_expired()?;
    Ok(tracked)
}

/// The package arrived (its datacenter's station, operators): the job becomes `received`, and so does every
/// drive still `specified`.
pub async fn receive(
    state: &AppState,
    principal: &Principal,
    import_job_id: &str,
    note: ImportJobNote,
) -> ApiResult<ImportJobView> {
    let message = check_message(note.message)?;
    let mut tracked = load_for_station(state, principal, import_job_id).await?;
    let now = state.now();
    let received = tracked.job.receive(actor(principal), now).map_err(refused)?;
    tracked.record(received, message);
    tracked.store(state).await?;
    tracing::info!(job = %tracked.row.id, "import job received");
    view(state, &tracked.row.id).await
}

/// Moves one drive on (its datacenter's station, operators). The first drive `transferring` moves the job
/// from `received` to `transferring`; once every drive is done the job moves on to
/// `packaging`.
pub async fn set_drive_state(
    state: &AppState,
    principal: &Principal,
    import_job_id: &str,
    drive_id: &str,
    body: DriveStateUpdate,
) -> ApiResult<ImportJobView> {
    let mut tracked = load_for_station(state, principal, import_job_id).await?;
    let wanted = drive_id.to_ascii_lowercase();
    if tracked.job.drive(&wanted).is_none() {
        return Err(Failure::not_found(format!("drive {drive_id} of import job '{}'", tracked.row.name)));
    }
    // The message is checked after the job's state, as the API always answered.
    let message = check_message(body.message);
    let moved = tracked.job.set_drive(&wanted, body.state, actor(principal), state.now());
    if let Err(ImportJobError::NotReceived { state: job_state, .. }) = &moved {
        return Err(Failure::Conflict(format!(
            "import job '{}' is {job_state}: record the package's arrival first (POST /import-jobs/{}/receive)",
            tracked.row.name, tracked.row.id
        )));
    }
    let message = message?;
    tracked.record(moved.map_err(refused)?, message);
    tracked.store(state).await?;
    view(state, &tracked.row.id).await
}

/// The drives are packed to go back (operators): `packaging` → `completed`, once
/// the container holds every file of the job's file list whole.
pub async fn complete(
    state: &AppState,
    principal: &Principal,
    import_job_id: &str,
    note: ImportJobNote,
) -> ApiResult<ImportJobView> {
    let message = check_message(note.message)?;
    let mut tracked = load_for_operator(state, principal, import_job_id).await?;
    if tracked.job.state() == ImportJobState::Packaging && state.storage.has_parts(&tracked.row.folder()).await? {
        return Err(Failure::Conflict(format!(
            "import job '{}' has files the drives delivered only in part: package it (POST /import-jobs/{}/package) \
             to assemble them or to name what a repair drive must bring",
            tracked.row.name, tracked.row.id
        )));
    }
    if tracked.job.state() == ImportJobState::Packaging {
        if let Some(why) = what_keeps_from_completing(state, &tracked.row, &[]).await? {
            return Err(Failure::Conflict(why));
        }
    }
    let completed = tracked.job.advance(ImportJobState::Completed, actor(principal), state.now()).map_err(refused)?;
    tracked.record(vec![completed], message);
    tracked.store(state).await?;
    tracing::info!(job = %tracked.row.id, "import job completed");
    view(state, &tracked.row.id).await
}

/// An import job by its name (names are unique across the service): for the
/// operator, the job's subscription and its offline-seeding application, the
/// machines of that subscription (whose agents wait for it), and the ingest
/// station of the datacenter it is shipped to.
pub async fn find(state: &AppState, principal: &Principal, import_job_name: &str) -> ApiResult<ImportJobView> {
    let missing = || Failure::not_found(format!("import job '{import_job_name}'"));
    let row = state.db.import_job_named(import_job_name).await?.ok_or_else(missing)?;
    let machine_of_subscription =
        matches!(&principal, Principal::Machine { subscription_id, .. } if *subscription_id == row.subscription_id);
    if !(principal.seeds(&row.subscription_id) || machine_of_subscription || principal.ingests_at(&row.datacenter_id)) {
        return Err(missing());
    }
    let tracked = expire(state, Tracked::load(state, &row.id).await?).await?;
    view(state, &tracked.row.id).await
}

/// Adds a drive to a job, `specified` (a repair drive, which diskprep makes for
/// the files the ingest logs name). The same drive again changes nothing.
pub async fn add_drive(
    state: &AppState,
    principal: &Principal,
    import_job_id: &str,
    spec: ImportJobDriveSpec,
) -> ApiResult<ImportJobView> {
    let mut tracked = load_seeded(state, principal, import_job_id).await?;
    let drive = drive_row(&spec)?;
    let job_state = tracked.job.state();
    tracked.job.check_accepts_drives().map_err(refused)?;
    let rows = state.db.import_job_drives(&tracked.row.id).await?;
    if let Some(existing) = rows.iter().find(|d| d.drive_id == drive.drive_id) {
        if existing.index == drive.index && existing.fingerprint == drive.fingerprint {
            return view(state, &tracked.row.id).await;
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
    let who = actor(principal);
    let repair = job_state != ImportJobState::Creating;
    tracked.job.add_drive(&drive.drive_id, drive.index, who.clone(), now).map_err(refused)?;
    // The job must still be in the state this was decided in; the drive's row is
    // new, so its first event is written here rather than as a change of state.
    tracked.change.job_state = Some((job_state, job_state));
    tracked.change.events.push(EventRow {
        drive_id: Some(drive.drive_id.clone()),
        state: enum_text(&ImportDriveState::Specified),
        at: now.unix_timestamp(),
        actor: who.as_str().to_string(),
        message: Some(if repair { "repair drive added".into() } else { "drive added".into() }),
    });
    tracked.change.new_drives.push(drive.clone());
    tracked.store(state).await?;
    tracing::info!(job = %tracked.row.id, drive = %drive.drive_id, "drive added to import job");
    view(state, &tracked.row.id).await
}
