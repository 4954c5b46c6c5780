//! Chains of custody: a job's signed, hash-chained log of what happened to its
//! drives (docs/CUSTODY.md). Whoever may read the job reads its log; an event is
//! appended only by the one who handled the drive, signed with its own key: the
//! subscription's offline-seeding application (diskprep: `prepared`, `shipped`)
//! and the ingest station of the job's datacenter (`received`, `ingested`,
//! `written`, `returned`, `wiped`, `destroyed`). The rules of an event (its
//! encoding, hash, signature, place in the chain and in its drive's life) are
//! `offsite_seeding::custody`'s; this module checks who asks and stores it.
//!
//! The log is generic over the job's kind: import jobs' (`import`) and export
//! jobs' (`export`: the station records `written` and `shipped`) share the table.

use std::collections::BTreeSet;

use offsite_api::types::{CustodyEvent, CustodyKey, CustodyLog};
use offsite_seeding::custody::{self, CustodyReport, EXPORT, IMPORT, ZERO_HASH};

use crate::error::{ApiResult, Failure};
use crate::principal::Principal;
use crate::services::{exports, import_jobs};
use crate::state::AppState;

/// An import job's custody log with the keys its events name (those who may
/// read the job: its subscription and application, operators, the station of
/// its datacenter).
pub async fn import_log(state: &AppState, principal: &Principal, job_id: &str) -> ApiResult<CustodyLog> {
    let tracked = import_jobs::load_readable_as_stored(state, principal, job_id).await?;
    log_of(state, IMPORT, &tracked.row.id, &tracked.row.name).await
}

/// The log and [`custody::verify`]'s report on it, for the portal.
pub async fn import_report(
    state: &AppState,
    principal: &Principal,
    job_id: &str,
) -> ApiResult<(CustodyLog, CustodyReport)> {
    let log = import_log(state, principal, job_id).await?;
    let report = custody::verify_log(&log);
    Ok((log, report))
}

/// An export job's custody log (those who may read the job: its customer,
/// operators, the station of its datacenter).
pub async fn export_log(state: &AppState, principal: &Principal, job: &str) -> ApiResult<CustodyLog> {
    let subject = exports::custody_subject(state, principal, job).await?;
    log_of(state, EXPORT, &subject.id, &subject.name).await
}

/// The job a log belongs to, as its caller may see it.
pub struct CustodySubject {
    pub id: String,
    pub name: String,
    /// The job's drives: events name one of them.
    pub drive_ids: Vec<String>,
}

async fn log_of(state: &AppState, job_kind: &str, job_id: &str, job_name: &str) -> ApiResult<CustodyLog> {
    let events = state.db.custody_events(job_kind, job_id).await?;
    let actors: BTreeSet<&str> = events.iter().map(|e| e.actor.as_str()).collect();
    let mut keys = Vec::new();
    for actor in actors {
        if let Some(key) = state.db.custody_key(actor).await? {
            keys.push(key);
        }
    }
    Ok(CustodyLog {
        job_kind: job_kind.to_string(),
        job_id: job_id.to_string(),
        job_name: job_name.to_string(),
        events,
        keys,
    })
}

/// The actor `principal` signs as, and the key its events must verify under
/// (registered on first use for an application certificate).
async fn signer_of(
    state: &AppState,
    principal: &Principal,
    job_kind: &str,
    event: &CustodyEvent,
) -> ApiResult<(String, CustodyKey)> {
    let kind = event.kind.name();
    match principal {
        Principal::Application { application_id, thumbprint, subscription_id } => {
            let actor = custody::application_actor(application_id, thumbprint);
            if !custody::may_record(job_kind, &actor, event.kind) {
                return Err(Failure::Forbidden(format!(
                    "a '{kind}' event of an {job_kind} job is the datacenter's to record, signed by its station \
                     (offsite datacenter …); the application records 'prepared' and 'shipped' of import jobs"
                )));
            }
            if let Some(key) = state.db.custody_key(&actor).await? {
                return Ok((actor, key));
            }
            let (der, _) = state
                .db
                .application_certificate(application_id, thumbprint)
                .await?
                .ok_or_else(|| Failure::Forbidden(format!("certificate {thumbprint} is not registered")))?;
            let (key_kind, public) = crate::certificates::public_key(&der).ok_or_else(|| {
                Failure::Internal(format!("the public key of certificate {thumbprint} cannot be read"))
            })?;
            let key = CustodyKey {
                actor: actor.clone(),
                algorithm: match key_kind {
                    crate::certificates::KeyKind::EcdsaP256 => custody::ECDSA_P256,
                    crate::certificates::KeyKind::Ed25519 => custody::ED25519,
                }
                .into(),
                public_key: hex::encode(public),
                description: format!(
                    "offline-seeding application {application_id} of subscription {subscription_id} (certificate \
                     {}…)",
                    thumbprint.get(..16).unwrap_or(thumbprint)
                ),
                registered: state.now(),
            };
            state.db.insert_custody_key(&key).await?;
            // Two first uses at once: the key stored first is the one.
            let key = state.db.custody_key(&actor).await?.unwrap_or(key);
            Ok((actor, key))
        }
        Principal::Station { credential_id, .. } => {
            let actor = custody::station_actor(credential_id);
            if !custody::may_record(job_kind, &actor, event.kind) {
                return Err(Failure::Forbidden(format!(
                    "a '{kind}' event of an {job_kind} job is not the station's to record: it records what \
                     happens at the datacenter (the customer's offline-seeding application records 'prepared' \
                     and 'shipped' of import jobs)"
                )));
            }
            let key = state.db.custody_key(&actor).await?.ok_or_else(|| {
                Failure::Forbidden(format!(
                    "station credential {credential_id} has no signing key, so it cannot sign custody events: the \
                     operator issues a new one (offsite admin datacenter station-credential issue DATACENTER \
                     --output FILE), which writes a key into the station credentials file"
                ))
            })?;
            Ok((actor, key))
        }
        _ => Err(Failure::Forbidden(
            "custody events are signed by whoever handled the drive: the subscription's offline-seeding \
             application (offsite diskprep) or the ingest station of the job's datacenter (offsite datacenter, \
             with its station credentials)"
                .into(),
        )),
    }
}

/// Appends a signed event to an import job's custody log (see [`append`]).
pub async fn append_import(
    state: &AppState,
    principal: &Principal,
    job_id: &str,
    event: CustodyEvent,
) -> ApiResult<CustodyEvent> {
    let tracked = import_jobs::load_readable_as_stored(state, principal, job_id).await?;
    let subject = CustodySubject {
        id: tracked.row.id.clone(),
        name: tracked.row.name.clone(),
        drive_ids: tracked.drive_rows.iter().map(|d| d.drive_id.clone()).collect(),
    };
    append(state, principal, IMPORT, subject, event).await
}

/// Appends a signed event to an export job's custody log (see [`append`]).
pub async fn append_export(
    state: &AppState,
    principal: &Principal,
    job: &str,
    event: CustodyEvent,
) -> ApiResult<CustodyEvent> {
    let subject = exports::custody_subject(state, principal, job).await?;
    append(state, principal, EXPORT, subject, event).await
}

/// Appends a signed event to a job's custody log, after checking it: the
/// caller may touch the job and records this kind of event, the event names the
/// caller as its actor, its drive is one of the job's, its time is now (±5
/// minutes), its hash is its content's and its signature the actor's, it
/// follows the log's last event (409 when the log grew meanwhile: read it again
/// and sign the next one) and its drive's earlier events.
async fn append(
    state: &AppState,
    principal: &Principal,
    job_kind: &'static str,
    job: CustodySubject,
    event: CustodyEvent,
) -> ApiResult<CustodyEvent> {
    let (actor, key) = signer_of(state, principal, job_kind, &event).await?;
    if event.job_kind != job_kind || event.job_id != job.id {
        return Err(Failure::BadRequest(format!(
            "the event is for {} job {}, not for {job_kind} job {} ({})",
            event.job_kind, event.job_id, job.name, job.id
        )));
    }
    if event.actor != actor {
        return Err(Failure::Forbidden(format!(
            "the event names {} as its actor, but the request comes from {actor}: each signs its own events",
            event.actor
        )));
    }
    let Some(drive_id) = &event.drive_id else {
        return Err(Failure::BadRequest(format!("a custody event of an {job_kind} job names its drive (drive_id)")));
    };
    if !job.drive_ids.contains(drive_id) {
        return Err(Failure::BadRequest(format!(
            "drive {drive_id} is not one of {job_kind} job {}'s drives",
            job.name
        )));
    }
    let skew = event.at.unix_timestamp() - state.now().unix_timestamp();
    if skew.abs() > custody::MAX_SKEW_SECONDS {
        return Err(Failure::BadRequest(format!(
            "the event's time is {skew} seconds from the service's clock (at most {} are accepted): events are \
             recorded as they happen; set this computer's clock right",
            custody::MAX_SKEW_SECONDS
        )));
    }
    match custody::event_hash(&event) {
        Ok(hash) if hash == event.hash => {}
        Ok(_) => {
            return Err(Failure::BadRequest(
                "the event's hash is not the BLAKE3 hash of its canonical encoding (docs/CUSTODY.md)".into(),
            ))
        }
        Err(err) => return Err(Failure::BadRequest(err.to_string())),
    }
    if !custody::signature_verifies(&event, &key) {
        return Err(Failure::Forbidden(format!(
            "the event's signature does not verify under the key of {actor}: sign its hash with that key"
        )));
    }
    let events = state.db.custody_events(job_kind, &job.id).await?;
    let (seq, prev) = events.last().map(|l| (l.seq + 1, l.hash.as_str())).unwrap_or((1, ZERO_HASH));
    let grew = || {
        Failure::Conflict(format!(
            "the custody log of {job_kind} job {} has {} events now: read it again and sign event {} after its last \
             one",
            job.name,
            events.len(),
            events.len() + 1
        ))
    };
    if event.seq != seq || event.prev != prev {
        return Err(grew());
    }
    let before: Vec<&CustodyEvent> = events.iter().filter(|e| e.drive_id.as_ref() == Some(drive_id)).collect();
    if let Err(after) = custody::check_order(job_kind, &before, event.kind) {
        return Err(Failure::Conflict(format!(
            "drive {drive_id} was {} already: a '{}' event cannot follow it",
            after.name(),
            event.kind.name()
        )));
    }
    if !state.db.insert_custody_event(&event).await? {
        return Err(grew());
    }
    tracing::info!(job = %job.id, seq = event.seq, kind = event.kind.name(), actor = %actor, "custody event recorded");
    Ok(event)
}
