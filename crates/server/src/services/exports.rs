//! Export jobs (offline restore): a customer asks for recovery points of one or
//! more machines of a vault on drives; a station of the chosen datacenter reads
//! the repository files they need through the service, writes them onto drives
//! in the drive format with each drive's key wrapped to the customer's export key
//! (and a recovery key only the customer sees), and ships them back.
//!
//! The service cannot read snapshots, so the files come from the agent, which
//! selected them for its recovery points (`offsite_engine::export::select`); a
//! request without files carries the machine's whole repository. Every file
//! named must be live in the machine's ledger; its size is the ledger's.

use bytes::Bytes;
use futures::Stream;

use offsite_api::types::{
    CreateExportJob, ExportDrive, ExportFile, ExportJobEvent, ExportJobState, ExportJobView, ExportMachineSummary,
    ExportShipment, ExportSizing,
};
use offsite_seeding::export_job::{check_transition, drives_needed, ExportJobError};
use offsite_seeding::import_job::check_job_name;

use crate::db::exports::{ExportEventRow, ExportFileRow, ExportJobRow, ExportTransition};
use crate::db::repository_files::is_listed_kind;
use crate::db::{time_of, DbError};
use crate::error::{ApiResult, Failure};
use crate::principal::Principal;
use crate::services::import_jobs::actor;
use crate::state::AppState;
use crate::storage::RepoFile;

/// Recovery points one request may name per machine.
const MAX_POINTS: usize = 10_000;

fn refused(err: ExportJobError) -> Failure {
    match err {
        ExportJobError::Transition { .. } => Failure::Conflict(err.to_string()),
        ExportJobError::DriveTooSmall { .. } => Failure::BadRequest(err.to_string()),
    }
}

fn missing(job: &str) -> Failure {
    Failure::not_found(format!("export job {job}"))
}

/// A request resolved against the database: the job and what it carries.
struct Resolved {
    job: ExportJobRow,
    files: Vec<ExportFileRow>,
    points: Vec<(String, String)>,
    sizing: ExportSizing,
}

async fn resolve(
    state: &AppState,
    principal: &Principal,
    subscription_id: &str,
    body: &CreateExportJob,
) -> ApiResult<Resolved> {
    let subscription = state
        .db
        .subscription(subscription_id)
        .await?
        .ok_or_else(|| Failure::not_found(format!("subscription {subscription_id}")))?;
    let machine_only = match principal {
        Principal::Machine { machine_id, subscription_id: own, .. } if own == &subscription.id => Some(machine_id),
        other if other.manages(&subscription.id) => None,
        _ => return Err(Failure::not_found(format!("subscription {subscription_id}"))),
    };
    check_job_name(&body.name).map_err(|e| Failure::BadRequest(e.to_string().replace("import job", "export job")))?;
    let datacenter = match state.db.datacenter(&body.datacenter).await? {
        Some(found) => found,
        None => state.db.datacenter_named(&body.datacenter).await?.ok_or_else(|| {
            Failure::BadRequest(format!("no datacenter '{}': name one of GET /datacenters", body.datacenter))
        })?,
    };
    if let Some(key) = &body.export_public_key {
        if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Failure::BadRequest(
                "export_public_key must be an X25519 public key in 64 hex digits (offsite agent export request makes one)"
                    .into(),
            ));
        }
    }
    if body.machines.is_empty() {
        return Err(Failure::BadRequest("name at least one machine to export".into()));
    }
    let mut vault_id: Option<String> = None;
    let mut files = Vec::new();
    let mut points = Vec::new();
    for part in &body.machines {
        let not_found = || Failure::not_found(format!("machine {}", part.machine_id));
        if machine_only.is_some_and(|own| own != &part.machine_id) {
            return Err(Failure::Forbidden("a machine exports its own recovery points only".into()));
        }
        let machine = state.db.machine(&part.machine_id).await?.ok_or_else(not_found)?;
        let vault = state.db.vault(&machine.vault_id).await?.ok_or_else(not_found)?;
        if vault.subscription_id != subscription.id {
            return Err(not_found());
        }
        match &vault_id {
            Some(first) if first != &vault.id => {
                return Err(Failure::BadRequest(
                    "an export job carries machines of one vault: make one job per vault".into(),
                ))
            }
            _ => vault_id = Some(vault.id.clone()),
        }
        if files.iter().any(|f: &ExportFileRow| f.machine_id == machine.id) {
            return Err(Failure::BadRequest(format!("machine {} is named twice", machine.id)));
        }
        if part.points.len() > MAX_POINTS {
            return Err(Failure::BadRequest(format!("at most {MAX_POINTS} recovery points per machine")));
        }
        let listed = state.db.repository_files(&machine.id).await?;
        let live = listed.iter().filter(|f| f.deleted.is_none() && is_listed_kind(f.kind));
        if part.files.is_empty() {
            files.extend(live.map(|f| ExportFileRow {
                machine_id: machine.id.clone(),
                path: f.kind.path_of(&f.name),
                size: f.size,
            }));
        } else {
            let sizes: std::collections::HashMap<String, u64> =
                live.map(|f| (f.kind.path_of(&f.name), f.size)).collect();
            let mut unknown = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for path in &part.files {
                let canonical = RepoFile::from_path(path).map(|f| f.kind.path_of(&f.name));
                match canonical.as_ref().and_then(|p| sizes.get(p).map(|size| (p, size))) {
                    Some((path, size)) if seen.insert(path.clone()) => {
                        files.push(ExportFileRow { machine_id: machine.id.clone(), path: path.clone(), size: *size })
                    }
                    Some(_) => {}
                    None => unknown.push(path.clone()),
                }
            }
            if !unknown.is_empty() {
                return Err(Failure::BadRequest(format!(
                    "machine {} has no such repository {} ({}{}): select the files again (offsite agent export \
                     request does)",
                    machine.id,
                    if unknown.len() == 1 { "file" } else { "files" },
                    unknown.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
                    if unknown.len() > 5 { ", …" } else { "" }
                )));
            }
        }
        points.extend(part.points.iter().map(|p| (machine.id.clone(), p.clone())));
    }
    let count = files.len() as u64;
    let bytes = files.iter().map(|f| f.size).sum();
    let drives = drives_needed(count, bytes, body.drive_size).map_err(refused)?;
    let sizing = ExportSizing { files: count, bytes, drive_size: body.drive_size, drives_needed: drives };
    let job = ExportJobRow {
        id: crate::secrets::new_id("exp"),
        name: body.name.clone(),
        subscription_id: subscription.id.clone(),
        vault_id: vault_id.unwrap_or_default(),
        datacenter_id: datacenter.id,
        state: ExportJobState::Requested,
        created: state.now().unix_timestamp(),
        drive_size: body.drive_size,
        export_public_key: body.export_public_key.as_ref().map(|k| k.to_ascii_lowercase()),
        return_address: body.return_address.clone(),
        carrier: None,
        tracking_number: None,
    };
    Ok(Resolved { job, files, points, sizing })
}

/// Sizes a request without making it (the seed service's PreviewExport).
pub async fn preview(
    state: &AppState,
    principal: &Principal,
    subscription_id: &str,
    body: CreateExportJob,
) -> ApiResult<ExportSizing> {
    Ok(resolve(state, principal, subscription_id, &body).await?.sizing)
}

/// Makes the export job, `Requested`.
pub async fn create(
    state: &AppState,
    principal: &Principal,
    subscription_id: &str,
    body: CreateExportJob,
) -> ApiResult<ExportJobView> {
    let resolved = resolve(state, principal, subscription_id, &body).await?;
    let event = ExportEventRow {
        state: ExportJobState::Requested,
        at: resolved.job.created,
        actor: actor(principal).as_str().to_string(),
        message: Some(format!(
            "{} files, {} bytes, {} of {} bytes",
            resolved.sizing.files,
            resolved.sizing.bytes,
            offsite_api::size::plural(resolved.sizing.drives_needed as usize, "drive"),
            resolved.sizing.drive_size
        )),
    };
    match state.db.insert_export_job(&resolved.job, &resolved.files, &resolved.points, &event).await {
        Err(DbError::Conflict(_)) => {
            return Err(Failure::Conflict(format!("an export job named '{}' exists: choose another name", body.name)))
        }
        other => other?,
    }
    tracing::info!(job = %resolved.job.id, name = %resolved.job.name, files = resolved.sizing.files,
        bytes = resolved.sizing.bytes, "export job requested");
    view(state, principal, resolved.job).await
}

/// Who may see a job: its subscription's managers, its machines, and the
/// stations of its datacenter.
fn may_see(principal: &Principal, job: &ExportJobRow, machines: &[String]) -> bool {
    match principal {
        Principal::Machine { machine_id, .. } => machines.contains(machine_id),
        Principal::Station { .. } => principal.ingests_at(&job.datacenter_id),
        other => other.manages(&job.subscription_id),
    }
}

/// The customer (whose recovery keys they are): the subscription and the job's machines.
fn is_customer(principal: &Principal, job: &ExportJobRow, machines: &[String]) -> bool {
    match principal {
        Principal::Machine { machine_id, .. } => machines.contains(machine_id),
        Principal::Subscription { subscription_id, .. } => subscription_id == &job.subscription_id,
        _ => false,
    }
}

async fn machines_of(state: &AppState, job_id: &str) -> ApiResult<Vec<String>> {
    let mut machines: Vec<String> =
        state.db.export_job_files(job_id).await?.into_iter().map(|f| f.machine_id).collect();
    machines.dedup();
    Ok(machines)
}

/// Loads a job the caller may see, by id or name.
async fn visible(state: &AppState, principal: &Principal, id_or_name: &str) -> ApiResult<(ExportJobRow, Vec<String>)> {
    let job = match state.db.export_job(id_or_name).await? {
        Some(job) => job,
        None => state.db.export_job_named(id_or_name).await?.ok_or_else(|| missing(id_or_name))?,
    };
    let machines = machines_of(state, &job.id).await?;
    if !may_see(principal, &job, &machines) {
        return Err(missing(id_or_name));
    }
    Ok((job, machines))
}

async fn view(state: &AppState, principal: &Principal, job: ExportJobRow) -> ApiResult<ExportJobView> {
    let files = state.db.export_job_files(&job.id).await?;
    let points = state.db.export_job_points(&job.id).await?;
    let mut machines: Vec<ExportMachineSummary> = Vec::new();
    for file in &files {
        match machines.last_mut() {
            Some(last) if last.machine_id == file.machine_id => {
                last.files += 1;
                last.bytes += file.size;
            }
            _ => machines.push(ExportMachineSummary {
                machine_id: file.machine_id.clone(),
                files: 1,
                bytes: file.size,
                points: Vec::new(),
            }),
        }
    }
    for (machine, point) in points {
        if let Some(summary) = machines.iter_mut().find(|m| m.machine_id == machine) {
            summary.points.push(point);
        }
    }
    let ids: Vec<String> = machines.iter().map(|m| m.machine_id.clone()).collect();
    let customer = is_customer(principal, &job, &ids);
    let mut drives = state.db.export_job_drives(&job.id).await?;
    if !customer {
        drives.iter_mut().for_each(|d| d.recovery_key = None);
    }
    let (count, bytes) = (files.len() as u64, files.iter().map(|f| f.size).sum());
    let sizing = ExportSizing {
        files: count,
        bytes,
        drive_size: job.drive_size,
        drives_needed: drives_needed(count, bytes, job.drive_size).unwrap_or(0),
    };
    let timeline = state
        .db
        .export_job_events(&job.id)
        .await?
        .into_iter()
        .map(|e| ExportJobEvent { state: e.state, at: time_of(e.at), actor: e.actor, message: e.message })
        .collect();
    Ok(ExportJobView {
        id: job.id,
        name: job.name,
        subscription_id: job.subscription_id,
        vault_id: job.vault_id,
        datacenter_id: job.datacenter_id,
        state: job.state,
        created: time_of(job.created),
        sizing,
        machines,
        export_public_key: job.export_public_key,
        return_address: job.return_address,
        carrier: job.carrier,
        tracking_number: job.tracking_number,
        drives,
        timeline,
    })
}

pub async fn get(state: &AppState, principal: &Principal, id_or_name: &str) -> ApiResult<ExportJobView> {
    let (job, _) = visible(state, principal, id_or_name).await?;
    view(state, principal, job).await
}

/// A subscription's export jobs (a machine sees those carrying it).
pub async fn list(state: &AppState, principal: &Principal, subscription_id: &str) -> ApiResult<Vec<ExportJobView>> {
    let allowed = match principal {
        Principal::Machine { subscription_id: own, .. } => own == subscription_id,
        other => other.manages(subscription_id),
    };
    if !allowed {
        return Err(Failure::not_found(format!("subscription {subscription_id}")));
    }
    let mut views = Vec::new();
    for job in state.db.export_jobs(Some(subscription_id)).await? {
        let machines = machines_of(state, &job.id).await?;
        if may_see(principal, &job, &machines) {
            views.push(view(state, principal, job).await?);
        }
    }
    Ok(views)
}

/// The jobs a datacenter's stations have to write or have written.
pub async fn list_at(state: &AppState, principal: &Principal, datacenter_id: &str) -> ApiResult<Vec<ExportJobView>> {
    if !principal.ingests_at(datacenter_id) {
        return Err(Failure::not_found(format!("datacenter {datacenter_id}")));
    }
    let mut views = Vec::new();
    for job in state.db.export_jobs(None).await?.into_iter().filter(|j| j.datacenter_id == datacenter_id) {
        views.push(view(state, principal, job).await?);
    }
    Ok(views)
}

/// The job's custody log subject, for those who may see the job.
pub async fn custody_subject(
    state: &AppState,
    principal: &Principal,
    id_or_name: &str,
) -> ApiResult<crate::services::custody::CustodySubject> {
    let (job, _) = visible(state, principal, id_or_name).await?;
    let drive_ids = state.db.export_job_drives(&job.id).await?.into_iter().map(|d| d.drive_id).collect();
    Ok(crate::services::custody::CustodySubject { id: job.id, name: job.name, drive_ids })
}

/// A job its datacenter's station works on.
async fn stationed(state: &AppState, principal: &Principal, id_or_name: &str) -> ApiResult<ExportJobRow> {
    let (job, _) = visible(state, principal, id_or_name).await?;
    if !principal.ingests_at(&job.datacenter_id) {
        return Err(Failure::Forbidden(format!(
            "only the stations of the export job's datacenter write its drives (datacenter {})",
            job.datacenter_id
        )));
    }
    Ok(job)
}

/// The files the job carries: for the station, what it writes, in order; for
/// the customer, what a repair export compares its drives with (a machine sees
/// its own files only).
pub async fn files(state: &AppState, principal: &Principal, id_or_name: &str) -> ApiResult<Vec<ExportFile>> {
    let (job, _) = visible(state, principal, id_or_name).await?;
    let own = |machine: &str| match principal {
        Principal::Machine { machine_id, .. } => machine_id == machine,
        _ => true,
    };
    Ok(state
        .db
        .export_job_files(&job.id)
        .await?
        .into_iter()
        .filter(|f| own(&f.machine_id))
        .map(|f| ExportFile { machine_id: f.machine_id, path: f.path, size: f.size })
        .collect())
}

/// One file's bytes, as stored, for the station.
pub async fn read_file(
    state: &AppState,
    principal: &Principal,
    id_or_name: &str,
    machine_id: &str,
    path: &str,
) -> ApiResult<(u64, impl Stream<Item = Result<Bytes, std::io::Error>>)> {
    let job = stationed(state, principal, id_or_name).await?;
    if !state.db.export_job_files(&job.id).await?.iter().any(|f| f.machine_id == machine_id && f.path == path) {
        return Err(Failure::not_found(format!("file {path} of machine {machine_id} in export job {}", job.name)));
    }
    let file = RepoFile::from_path(path).ok_or_else(|| Failure::not_found(format!("file {path}")))?;
    let (served, _, stream) = state.storage.get(&job.vault_id, machine_id, &file, None).await?;
    Ok((served.end - served.start, stream))
}

async fn transition(
    state: &AppState,
    principal: &Principal,
    job: &ExportJobRow,
    to: ExportJobState,
    message: Option<String>,
    shipment: Option<(String, String)>,
) -> ApiResult<()> {
    check_transition(&job.name, job.state, to).map_err(refused)?;
    let event = ExportEventRow {
        state: to,
        at: state.now().unix_timestamp(),
        actor: actor(principal).as_str().to_string(),
        message,
    };
    let moved = state.db.transition_export_job(&job.id, &ExportTransition { from: job.state, event, shipment }).await?;
    if !moved {
        return Err(Failure::Conflict(format!(
            "export job {} changed state while this request ran: read it again and retry",
            job.name
        )));
    }
    tracing::info!(job = %job.id, from = %job.state, %to, "export job moved on");
    Ok(())
}

/// A station begins writing the drives (`Requested → Preparing`); again while
/// `Preparing` it is a no-op (a resumed run).
pub async fn begin(
    state: &AppState,
    principal: &Principal,
    id_or_name: &str,
    note: Option<String>,
) -> ApiResult<ExportJobView> {
    let job = stationed(state, principal, id_or_name).await?;
    if job.state != ExportJobState::Preparing {
        transition(state, principal, &job, ExportJobState::Preparing, note, None).await?;
    }
    get(state, principal, &job.id).await
}

/// Records a drive the station wrote, with its recovery key (kept for the customer).
pub async fn add_drive(
    state: &AppState,
    principal: &Principal,
    id_or_name: &str,
    drive: ExportDrive,
) -> ApiResult<ExportJobView> {
    let job = stationed(state, principal, id_or_name).await?;
    if job.state != ExportJobState::Preparing {
        return Err(Failure::Conflict(format!(
            "export job {} is {}: drives are recorded while it is preparing",
            job.name, job.state
        )));
    }
    let hex = |text: &str, len: usize| text.len() == len && text.bytes().all(|b| b.is_ascii_hexdigit());
    let recovery = drive.recovery_key.clone().unwrap_or_default();
    let recovery_digits: String = recovery.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    let plain = |t: &str| (1..=64).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_hexdigit());
    if !plain(&drive.drive_id) || !hex(&drive.fingerprint, 64) || recovery_digits.len() != 64 {
        return Err(Failure::BadRequest(
            "a drive needs its id (hex, from its header), its header fingerprint (64 hex digits) and its recovery \
             key (64 hex digits)"
                .into(),
        ));
    }
    match state.db.insert_export_drive(&job.id, &drive, &recovery).await {
        Err(DbError::Conflict(what)) => {
            return Err(Failure::Conflict(format!("{what} was recorded with other details")))
        }
        other => other?,
    }
    get(state, principal, &job.id).await
}

/// The drives leave the datacenter (`Preparing → Shipping`).
pub async fn ship(
    state: &AppState,
    principal: &Principal,
    id_or_name: &str,
    body: ExportShipment,
) -> ApiResult<ExportJobView> {
    let job = stationed(state, principal, id_or_name).await?;
    let tracking = offsite_seeding::import_job::check_tracking_number(&body.tracking_number)
        .map_err(|e| Failure::BadRequest(e.to_string()))?;
    if body.carrier.trim().is_empty() || body.carrier.len() > 64 {
        return Err(Failure::BadRequest("name the carrier (1 to 64 characters)".into()));
    }
    if state.db.export_job_drives(&job.id).await?.is_empty() {
        return Err(Failure::Conflict(format!(
            "export job {} has no drives recorded: write them first (offsite datacenter export --job {} --drive PATH)",
            job.name, job.name
        )));
    }
    let message = Some(format!("{} {}", body.carrier.trim(), tracking));
    transition(state, principal, &job, ExportJobState::Shipping, message, Some((body.carrier.trim().into(), tracking)))
        .await?;
    get(state, principal, &job.id).await
}

/// The customer's steps: `delivered`, `completed`, and `cancel` (before shipping;
/// operators too).
pub async fn customer_step(
    state: &AppState,
    principal: &Principal,
    id_or_name: &str,
    to: ExportJobState,
    message: Option<String>,
) -> ApiResult<ExportJobView> {
    let (job, machines) = visible(state, principal, id_or_name).await?;
    let allowed = is_customer(principal, &job, &machines)
        || (to == ExportJobState::Closed && matches!(principal, Principal::Operator));
    if !allowed {
        return Err(Failure::Forbidden(format!("only the customer marks export job {} {to}", job.name)));
    }
    transition(state, principal, &job, to, message, None).await?;
    get(state, principal, &job.id).await
}
