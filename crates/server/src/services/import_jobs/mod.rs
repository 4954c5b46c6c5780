//! Import jobs: the drives a customer ships instead of sending a first backup over
//! the network. Customers (their subscription credential) create a job with its
//! drive list, give the shipping details and may cancel; the datacenter operator
//! records the package's arrival, each drive's progress and the completion.
//!
//! Every change is decided by `offsite_seeding::import_job`'s state machine (which
//! refuses what the life cycle does not allow) and stored with its time and actor
//! in the job's timeline. A job whose drives do not arrive within
//! [`ARRIVAL_DEADLINE`] of the shipping details is closed the next time it is read.
//!
//! - this module: a stored job loaded as the state machine's values ([`Tracked`]),
//!   with who may load it, and the job as the API shows it;
//! - [`lifecycle`]: creating, shipping, receiving, moving drives on, completing;
//! - [`files`]: the files and logs ingest stations upload;
//! - [`packaging`]: assembling parts into files, the file list, what is missing.

mod files;
mod lifecycle;
mod packaging;

pub use files::*;
pub use lifecycle::*;
pub use packaging::*;

use time::OffsetDateTime;

use offsite_api::types::{
    ImportDriveState, ImportJobDatacenter, ImportJobDrive, ImportJobDriveSpec, ImportJobEvent, ImportJobState,
    ImportJobView, NotificationKind,
};
use offsite_seeding::import_job::{
    Actor, CloseReason, DriveRecord, ImportJob, ImportJobError, StateChange, Transition, ARRIVAL_DEADLINE,
};

use crate::db::import_jobs::{ChangeOutcome, DriveRow, EventRow, ImportJobChange, ImportJobRow, JobSnapshot};
use crate::db::{enum_from, enum_text, time_of};
use crate::error::{ApiResult, Failure};
use crate::notify;
use crate::principal::Principal;
use crate::state::AppState;

pub(crate) const MAX_DRIVES: usize = 1000;

pub(crate) use crate::clock::format_time;

/// Who a change is recorded as.
pub(crate) fn actor(principal: &Principal) -> Actor {
    Actor::Named(match principal {
        Principal::Operator => "operator".into(),
        Principal::Subscription { subscription_id, .. } => subscription_id.clone(),
        Principal::Machine { machine_id, .. } => machine_id.clone(),
        Principal::Registration { credential_id, .. } => credential_id.clone(),
        Principal::Application { application_id, .. } => application_id.clone(),
        // The credential, not just "station": a datacenter may have several.
        Principal::Station { credential_id, .. } => format!("station {credential_id}"),
    })
}

/// A refusal of the life cycle, as the API answers it.
pub(crate) fn refused(err: ImportJobError) -> Failure {
    Failure::Conflict(err.to_string())
}

/// A stored job rebuilt as the life cycle's values, collecting the changes a
/// request makes so they are stored together.
pub(crate) struct Tracked {
    pub(crate) row: ImportJobRow,
    pub(crate) job: ImportJob,
    /// The drives as stored (fingerprints, sizes), in the job's order.
    pub(crate) drive_rows: Vec<DriveRow>,
    pub(crate) change: ImportJobChange,
}

impl Tracked {
    /// The job as one committed state of the database shows it (row, drives and
    /// timeline read in one snapshot, so a change committed meanwhile is wholly in
    /// it or not at all).
    pub(crate) async fn load(state: &AppState, job_id: &str) -> ApiResult<Tracked> {
        let snapshot = state
            .db
            .import_job_snapshot(job_id)
            .await?
            .ok_or_else(|| Failure::not_found(format!("import job {job_id}")))?;
        Self::assemble(snapshot)
    }

    /// The job as its rows and timeline say; they are written together, so a
    /// disagreement is a damaged database, not a race.
    pub(crate) fn assemble(snapshot: JobSnapshot) -> ApiResult<Tracked> {
        let JobSnapshot { row, drives: drive_rows, events } = snapshot;
        let drives = drive_rows
            .iter()
            .map(|d| DriveRecord { drive_id: d.drive_id.clone(), index: d.index, history: Vec::new() })
            .collect();
        let mut job =
            ImportJob { name: row.name.clone(), history: Vec::new(), shipped_at: row.shipped_at.map(time_of), drives };
        let bad = |e: sqlx::Error| Failure::Internal(format!("import job {}: {e}", row.id));
        for event in &events {
            let (at, actor) = (time_of(event.at), Actor::parse(&event.actor));
            match &event.drive_id {
                None => job.history.push(StateChange { state: enum_from(&event.state).map_err(bad)?, at, actor }),
                Some(id) => {
                    let state = enum_from(&event.state).map_err(bad)?;
                    if let Some(drive) = job.drives.iter_mut().find(|d| &d.drive_id == id) {
                        drive.history.push(StateChange { state, at, actor });
                    }
                }
            }
        }
        // The rows are what conditional updates check: they and the timeline agree.
        if job.state() != row.state {
            return Err(Failure::Internal(format!(
                "import job {}: timeline ends {} but the job is {}",
                row.id,
                job.state(),
                row.state
            )));
        }
        for (drive, stored) in job.drives.iter().zip(&drive_rows) {
            if drive.state() != stored.state {
                return Err(Failure::Internal(format!("import job {}: drive {} disagrees", row.id, drive.drive_id)));
            }
        }
        Ok(Tracked { row, job, drive_rows, change: ImportJobChange::default() })
    }

    /// Collects what an intent of the job did, to be stored with [`Tracked::store`];
    /// `message` goes with the first change (the one asked for, not its cascades).
    pub(crate) fn record(&mut self, transitions: Vec<Transition>, mut message: Option<String>) {
        for transition in transitions {
            let message = message.take();
            match transition {
                Transition::Job { from, to, at, actor } => self.note_job(from, to, &actor, at, message),
                Transition::Drive { drive_id, from, to, at, actor } => {
                    match self.change.drives.iter_mut().find(|(id, _, _)| *id == drive_id) {
                        Some(entry) => entry.2 = to,
                        None => self.change.drives.push((drive_id.clone(), from, to)),
                    }
                    self.change.events.push(EventRow {
                        drive_id: Some(drive_id),
                        state: enum_text(&to),
                        at: at.unix_timestamp(),
                        actor: actor.as_str().to_string(),
                        message,
                    });
                }
            }
        }
    }

    /// A job event: a change of state, or a note in the state it is in.
    pub(crate) fn note_job(
        &mut self,
        from: ImportJobState,
        to: ImportJobState,
        actor: &Actor,
        at: OffsetDateTime,
        message: Option<String>,
    ) {
        let first_from = self.change.job_state.map(|(f, _)| f).unwrap_or(from);
        self.change.job_state = Some((first_from, to));
        self.change.events.push(EventRow {
            drive_id: None,
            state: enum_text(&to),
            at: at.unix_timestamp(),
            actor: actor.as_str().to_string(),
            message,
        });
    }

    /// Closes the job if its drives are past their arrival deadline.
    pub(crate) fn expire_if_due(&mut self, now: OffsetDateTime) -> bool {
        let Some(closed) = self.job.expire_if_due(now) else { return false };
        let deadline = self.job.arrival_deadline().map(format_time).unwrap_or_default();
        self.record(vec![closed], Some(format!("the drives did not reach the datacenter by {deadline}")));
        true
    }

    /// The refusal for a job its arrival deadline closed (now or earlier), naming
    /// the job and the deadline; every later step on it hears the same.
    pub(crate) fn refuse_if_expired(&self) -> ApiResult<()> {
        if self.job.close_reason() != Some(CloseReason::ArrivalDeadlinePassed) {
            return Ok(());
        }
        let deadline = self.job.arrival_deadline().map(format_time).unwrap_or_default();
        Err(Failure::Conflict(format!(
            "import job '{}' expired: its drives did not reach the datacenter by {deadline}, 14 days after the \
             shipping details. Create a new import job",
            self.row.name
        )))
    }

    /// Tells the subscription of the steps it waits for: the package shipped and
    /// received, a drive that needs its attention.
    async fn notify(
        &self,
        state: &AppState,
        job: &Option<(ImportJobState, ImportJobState)>,
        drives: &[(String, ImportDriveState, ImportDriveState)],
    ) {
        let name = &self.row.name;
        let details = |extra: serde_json::Value| {
            let mut details = serde_json::json!({ "import_job_id": self.row.id, "import_job": name });
            if let (Some(object), serde_json::Value::Object(more)) = (details.as_object_mut(), extra) {
                object.extend(more);
            }
            details
        };
        let mut events = Vec::new();
        match job.map(|(_, to)| to) {
            Some(ImportJobState::Shipping) => events.push(notify::Event::new(
                format!("import_job:{}:shipping", self.row.id),
                NotificationKind::ImportJobShipped,
                format!("Import job {name}: the drives are on their way"),
                details(serde_json::json!({})),
            )),
            Some(ImportJobState::Received) => events.push(notify::Event::new(
                format!("import_job:{}:received", self.row.id),
                NotificationKind::ImportJobReceived,
                format!("Import job {name}: the datacenter received the drives"),
                details(serde_json::json!({})),
            )),
            Some(ImportJobState::Closed) if self.job.close_reason() == Some(CloseReason::ArrivalDeadlinePassed) => {
                let deadline = self.job.arrival_deadline().map(format_time).unwrap_or_default();
                events.push(notify::Event::new(
                    format!("import_job:{}:expired", self.row.id),
                    NotificationKind::ImportJobExpired,
                    format!("Import job {name} is closed: its drives did not reach the datacenter by {deadline}"),
                    details(serde_json::json!({ "arrival_deadline": deadline })),
                ))
            }
            _ => {}
        }
        for (drive_id, _, to) in drives.iter().filter(|(_, _, to)| *to == ImportDriveState::CompletedMoreInfo) {
            events.push(notify::Event::new(
                format!("import_job:{}:drive:{drive_id}:{}", self.row.id, enum_text(to)),
                NotificationKind::ImportDriveNeedsAttention,
                format!("Import job {name}: drive {drive_id} was read with errors; its log says what is missing"),
                details(serde_json::json!({ "drive_id": drive_id })),
            ));
        }
        for event in events {
            notify::publish(state, &self.row.subscription_id, event).await;
        }
    }

    /// Stores the collected changes; what is recorded after starts a new change.
    pub(crate) async fn store(&mut self, state: &AppState) -> ApiResult<()> {
        match self.apply(state).await? {
            ChangeOutcome::Stored => Ok(()),
            refused => Err(self.refusal(refused)),
        }
    }

    /// What a change that was not stored answers.
    fn refusal(&self, outcome: ChangeOutcome) -> Failure {
        match outcome {
            ChangeOutcome::TrackingNumberTaken => tracking_number_taken(),
            ChangeOutcome::DriveTaken => Failure::Conflict(format!(
                "import job '{}' got a drive with this id or index meanwhile; read it again",
                self.row.name
            )),
            // `Stored` is no refusal; callers pass the others.
            ChangeOutcome::Raced | ChangeOutcome::Stored => Failure::Conflict(format!(
                "import job '{}' changed while this request was deciding; read it again and retry",
                self.row.name
            )),
        }
    }

    /// Decides a change with `decide` (true when it recorded one) and stores it.
    /// When another request, on this replica or another, stored a change of the
    /// job first, reads the job again and decides anew (three times at most):
    /// for a decision any request may take on its own (a deadline's closing, the
    /// start of packaging), losing that race is no error. True when this call
    /// stored the change.
    pub(crate) async fn store_decided(
        &mut self,
        state: &AppState,
        mut decide: impl FnMut(&mut Tracked) -> ApiResult<bool>,
    ) -> ApiResult<bool> {
        for _ in 0..3 {
            if !decide(self)? {
                return Ok(false);
            }
            match self.apply(state).await? {
                ChangeOutcome::Stored => return Ok(true),
                ChangeOutcome::Raced => *self = Tracked::load(state, &self.row.id).await?,
                refused @ (ChangeOutcome::TrackingNumberTaken | ChangeOutcome::DriveTaken) => {
                    return Err(self.refusal(refused))
                }
            }
        }
        Ok(false)
    }

    /// Applies the collected changes, notifying once they are stored.
    async fn apply(&mut self, state: &AppState) -> ApiResult<ChangeOutcome> {
        if self.change.is_empty() {
            return Ok(ChangeOutcome::Stored);
        }
        let outcome = state.db.apply_import_job_change(&self.row.id, &self.change).await?;
        if matches!(outcome, ChangeOutcome::Stored) {
            let stored = std::mem::take(&mut self.change);
            self.notify(state, &stored.job_state, &stored.drives).await;
        }
        Ok(outcome)
    }
}

pub(crate) fn tracking_number_taken() -> Failure {
    Failure::Conflict(
        "this tracking number is already used by another import job: tracking numbers are unique across all \
         import jobs; check the number on the carrier's receipt"
            .into(),
    )
}

/// Loads a job the caller manages, as stored. The subscription's offline-seeding
/// application sees the job but hears that this is not its to do.
pub(crate) async fn load_managed_as_stored(
    state: &AppState,
    principal: &Principal,
    job_id: &str,
) -> ApiResult<Tracked> {
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
pub(crate) async fn load_seeded_as_stored(state: &AppState, principal: &Principal, job_id: &str) -> ApiResult<Tracked> {
    let missing = || Failure::not_found(format!("import job {job_id}"));
    let row = state.db.import_job(job_id).await?.ok_or_else(missing)?;
    if !principal.seeds(&row.subscription_id) {
        return Err(missing());
    }
    Tracked::load(state, &row.id).await
}

/// Loads a job for reading it (its view, by id or name): those who seed it, and
/// the ingest station of the datacenter it was shipped to, as stored.
pub(crate) async fn load_readable_as_stored(
    state: &AppState,
    principal: &Principal,
    job_id: &str,
) -> ApiResult<Tracked> {
    let missing = || Failure::not_found(format!("import job {job_id}"));
    let row = state.db.import_job(job_id).await?.ok_or_else(missing)?;
    if !(principal.seeds(&row.subscription_id) || principal.ingests_at(&row.datacenter_id)) {
        return Err(missing());
    }
    Tracked::load(state, &row.id).await
}

/// Loads a job for a step of the ingest station at the datacenter it was shipped
/// to (that datacenter's station credentials, operators), as stored. Its
/// subscription and application hear that this is the station's to do; everyone
/// else, another datacenter's station too, that there is no such job.
pub(crate) async fn load_for_station_as_stored(
    state: &AppState,
    principal: &Principal,
    job_id: &str,
) -> ApiResult<Tracked> {
    let missing = || Failure::not_found(format!("import job {job_id}"));
    let row = state.db.import_job(job_id).await?.ok_or_else(missing)?;
    if !principal.ingests_at(&row.datacenter_id) {
        if principal.seeds(&row.subscription_id) {
            return Err(Failure::Forbidden(format!(
                "only the ingest station of datacenter '{}' (its station credential) or the service operator may \
                 do this",
                row.datacenter
            )));
        }
        return Err(missing());
    }
    Tracked::load(state, &row.id).await
}

/// Closes the job if its drives are past their arrival deadline; true when this
/// call stored the closing. Replicas (and requests) that find the same job due at
/// once race to close it: one stores the closing, the others read the job again
/// as it now is instead of answering 409.
async fn close_if_due(state: &AppState, tracked: &mut Tracked) -> ApiResult<bool> {
    tracked.store_decided(state, |tracked| Ok(tracked.expire_if_due(state.now()))).await
}

/// Applies the arrival deadline to a loaded job.
pub(crate) async fn expire(state: &AppState, mut tracked: Tracked) -> ApiResult<Tracked> {
    close_if_due(state, &mut tracked).await?;
    Ok(tracked)
}

/// Closes every job whose drives are past their arrival deadline, so a job nobody
/// reads is closed and its subscription told on time (the maintenance round);
/// returns how many this call closed. On several replicas at once each job is
/// closed by one of them.
pub async fn expire_overdue(state: &AppState) -> ApiResult<u64> {
    let shipped_before = state.now().unix_timestamp() - ARRIVAL_DEADLINE.whole_seconds();
    let mut closed = 0;
    for (job_id, ..) in state.db.import_jobs_shipped_before(shipped_before).await? {
        if close_if_due(state, &mut Tracked::load(state, &job_id).await?).await? {
            tracing::info!(job = %job_id, "import job closed: its drives did not arrive by the deadline");
            closed += 1;
        }
    }
    Ok(closed)
}

/// Loads a job the caller manages, applying its arrival deadline first.
pub(crate) async fn load_managed(state: &AppState, principal: &Principal, job_id: &str) -> ApiResult<Tracked> {
    expire(state, load_managed_as_stored(state, principal, job_id).await?).await
}

/// Loads a job for offline seeding, applying its arrival deadline first.
pub(crate) async fn load_seeded(state: &AppState, principal: &Principal, job_id: &str) -> ApiResult<Tracked> {
    expire(state, load_seeded_as_stored(state, principal, job_id).await?).await
}

/// The job as the API shows it, read again from the database, with the drives'
/// logs found in the container.
pub async fn view(state: &AppState, job_id: &str) -> ApiResult<ImportJobView> {
    let JobSnapshot { row, drives, events } = state
        .db
        .import_job_snapshot(job_id)
        .await?
        .ok_or_else(|| Failure::not_found(format!("import job {job_id}")))?;
    // A job is still shown when the storage cannot list its logs.
    let logs = match state.storage.logs(&row.folder()).await {
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
pub(crate) fn check_drive_id(id: &str) -> ApiResult<String> {
    let ok = (8..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit());
    if ok {
        Ok(id.to_ascii_lowercase())
    } else {
        Err(Failure::BadRequest(format!(
            "'{id}' is not a drive id: use the 8 to 64 hex digits of the drive header (diskprep prints them)"
        )))
    }
}

/// A drive header's fingerprint: 64 hex digits, kept lowercase.
pub(crate) fn check_fingerprint(text: &str) -> ApiResult<String> {
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(Failure::BadRequest(format!("'{text}' is not a drive fingerprint: use the 64 hex digits diskprep prints")))
    }
}

/// A drive of a job from its spec, `specified`. Its header's fingerprint is
/// required: the service takes files only from drives registered with it.
pub(crate) fn drive_row(spec: &ImportJobDriveSpec) -> ApiResult<DriveRow> {
    let drive_id = check_drive_id(&spec.drive_id)?;
    let Some(fingerprint) = &spec.fingerprint else {
        return Err(Failure::BadRequest(format!(
            "drive {drive_id} has no fingerprint: every drive is registered with its header's fingerprint (64 hex \
             digits), so that only the drives diskprep wrote can bring files; run `offsite diskprep`, which \
             registers them"
        )));
    };
    let fingerprint = Some(check_fingerprint(fingerprint)?);
    Ok(DriveRow {
        drive_id,
        index: spec.index,
        state: ImportDriveState::Specified,
        fingerprint,
        data_bytes: spec.data_bytes,
        bytes_received: 0,
    })
}

/// A note for the timeline: blank is none; at most 4000 characters.
pub(crate) fn check_message(message: Option<String>) -> ApiResult<Option<String>> {
    match message {
        Some(text) if text.len() > 4000 => {
            Err(Failure::BadRequest("the message must be at most 4000 characters".into()))
        }
        other => Ok(other.map(|t| t.trim().to_string()).filter(|t| !t.is_empty())),
    }
}

pub(crate) fn check_text(what: &str, value: &str, max: usize) -> ApiResult<String> {
    let value = value.trim();
    if value.is_empty() || value.len() > max {
        return Err(Failure::BadRequest(format!("the {what} must be 1 to {max} characters")));
    }
    Ok(value.to_string())
}
