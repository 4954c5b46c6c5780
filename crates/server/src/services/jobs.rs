//! Backup and restore jobs as agents report them: created when a job starts,
//! updated when it ends, listed for the machine, its subscription and operators.

use offsite_api::types::{Job, JobKind, JobReport, JobState, Machine, NotificationKind, Vault};

use crate::error::{ApiResult, Failure};
use crate::notify;
use crate::principal::Principal;
use crate::secrets;
use crate::services::machines::{machine_for, Access};
use crate::state::AppState;

const HISTORY: i64 = 200;

fn check(report: &JobReport) -> ApiResult<()> {
    let too_big = [report.bytes_processed, report.bytes_uploaded, report.bytes_stored, report.file_count]
        .iter()
        .any(|v| *v > i64::MAX as u64);
    if too_big || report.errors.len() > 1000 || report.message.as_ref().is_some_and(|m| m.len() > 4096) {
        return Err(Failure::BadRequest("the job report is out of range (numbers, at most 1000 errors)".into()));
    }
    Ok(())
}

async fn job_of(state: &AppState, machine_id: &str, job_id: &str) -> ApiResult<Job> {
    let missing = || Failure::not_found(format!("job {job_id}"));
    let job = state.db.job(job_id).await?.ok_or_else(missing)?;
    if job.machine_id != machine_id {
        return Err(missing());
    }
    Ok(job)
}

pub async fn list(state: &AppState, principal: &Principal, machine_id: &str) -> ApiResult<Vec<Job>> {
    let (machine, _) = machine_for(state, principal, machine_id, Access::Read).await?;
    Ok(state.db.jobs_of(&machine.id, HISTORY).await?)
}

/// A failed backup is news for the subscription.
async fn tell_if_failed(state: &AppState, machine: &Machine, vault: &Vault, job: &Job) {
    if job.report.kind != JobKind::Backup || job.report.state != JobState::Failed {
        return;
    }
    let reason = job.report.errors.first().cloned().unwrap_or_else(|| "no reason given".into());
    let event = notify::Event::new(
        format!("backup_failed:{}", job.id),
        NotificationKind::BackupFailed,
        format!("The backup of {} failed: {reason}", machine.name),
        serde_json::json!({ "machine_id": machine.id, "machine": machine.name, "job_id": job.id,
            "errors": job.report.errors }),
    );
    notify::publish(state, &vault.subscription_id, event).await;
}

pub async fn create(state: &AppState, principal: &Principal, machine_id: &str, report: JobReport) -> ApiResult<Job> {
    let (machine, vault) = machine_for(state, principal, machine_id, Access::Report).await?;
    check(&report)?;
    if let Some(next) = report.next_backup {
        state.db.set_next_backup(&machine.id, next).await?;
    }
    let job = Job { id: secrets::new_id("job"), machine_id: machine.id.clone(), report };
    state.db.insert_job(&job).await?;
    metrics::counter!("offsite_jobs_total", "kind" => format!("{:?}", job.report.kind), "state" => format!("{:?}", job.report.state)).increment(1);
    tell_if_failed(state, &machine, &vault, &job).await;
    Ok(job)
}

pub async fn get(state: &AppState, principal: &Principal, machine_id: &str, job_id: &str) -> ApiResult<Job> {
    let (machine, _) = machine_for(state, principal, machine_id, Access::Read).await?;
    job_of(state, &machine.id, job_id).await
}

/// Updates a running job; a finished job is final.
pub async fn update(
    state: &AppState,
    principal: &Principal,
    machine_id: &str,
    job_id: &str,
    report: JobReport,
) -> ApiResult<Job> {
    let (machine, vault) = machine_for(state, principal, machine_id, Access::Report).await?;
    check(&report)?;
    let mut job = job_of(state, &machine.id, job_id).await?;
    if job.report.state.is_finished() {
        return Err(Failure::Conflict(format!("job {job_id} has finished; its report is final")));
    }
    if report.kind != job.report.kind {
        return Err(Failure::BadRequest("a job cannot change its kind".into()));
    }
    if let Some(next) = report.next_backup {
        state.db.set_next_backup(&machine.id, next).await?;
    }
    job.report = JobReport { started: job.report.started, ..report };
    state.db.update_job(&job).await?;
    metrics::counter!("offsite_jobs_total", "kind" => format!("{:?}", job.report.kind), "state" => format!("{:?}", job.report.state)).increment(1);
    tell_if_failed(state, &machine, &vault, &job).await;
    Ok(job)
}
