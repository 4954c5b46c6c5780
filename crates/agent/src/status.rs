//! `offsite agent status`: what this agent protects, when it runs next, and how
//! its recent jobs went, from local state (it works with the service down), and
//! what the vault keeps of what it removed, from the service.

use serde::Serialize;

use crate::config::{AgentConfig, Retention};
use crate::error::AgentResult;
use crate::history::{self, JobRecord};
use crate::home::AgentHome;
use crate::registration::Registration;

#[derive(Debug, Serialize)]
pub struct AgentStatus {
    pub service_url: String,
    pub vault: String,
    pub machine_id: String,
    pub machine_name: String,
    pub protected: Vec<String>,
    pub schedule: Option<String>,
    pub next_backup: Option<chrono::DateTime<chrono::Local>>,
    pub retention: Retention,
    /// The bandwidth limit in force now, e.g. "2 MiB/s"; none when unlimited.
    pub bandwidth_limit_now: Option<String>,
    pub last_backup: Option<JobRecord>,
    /// Offline seeding in progress, if configured.
    pub offline: Option<crate::config::OfflineSeeding>,
    /// The offline seed the vault took in, once offline seeding is over.
    pub adopted_seed: Option<crate::config::AdoptedSeed>,
    /// The import job carrying the seed, as the service reports it now; absent
    /// when there is none or the service cannot be reached (then `import_job_error`).
    pub import_job: Option<offsite_api::types::ImportJobView>,
    pub import_job_error: Option<String>,
    /// What this machine removed (forget, prune) that the vault keeps until its
    /// purge date, when the service could be asked (else `soft_deleted_error`).
    pub soft_deleted: Option<offsite_api::types::SoftDeleted>,
    pub soft_deleted_error: Option<String>,
    /// Newest first.
    pub jobs: Vec<JobRecord>,
}

pub fn status(home: &AgentHome, history_length: usize) -> AgentResult<AgentStatus> {
    let registration = Registration::load(home)?;
    let config = AgentConfig::load(&home.config_file)?;
    let mut jobs = history::read(home)?;
    jobs.reverse();
    let last_backup = jobs.iter().find(|j| j.report.kind == offsite_api::types::JobKind::Backup).cloned();
    jobs.truncate(history_length);
    let now = chrono::Local::now();
    let (import_job, import_job_error) = if config.offline.is_some() {
        match crate::offline::import_job(home) {
            Ok(job) => (job, None),
            Err(err) => (None, Some(err.to_string())),
        }
    } else {
        (None, None)
    };
    let (soft_deleted, soft_deleted_error) =
        match registration.client().and_then(|client| Ok(client.soft_deleted(&registration.machine_id)?)) {
            Ok(removed) => (Some(removed), None),
            Err(err) => (None, Some(err.to_string())),
        };
    Ok(AgentStatus {
        service_url: registration.service_url,
        vault: registration.vault_name,
        machine_id: registration.machine_id,
        machine_name: registration.machine_name,
        protected: config.protect.iter().map(|p| p.path.display().to_string()).collect(),
        schedule: config.schedule.as_ref().map(|s| s.to_string()),
        next_backup: config.schedule.as_ref().map(|s| s.next_after(&now)),
        retention: config.retention,
        bandwidth_limit_now: config.bandwidth.as_ref().and_then(|b| b.limit_at(&now)).map(|r| r.to_string()),
        last_backup,
        offline: config.offline.clone(),
        adopted_seed: config.adopted_seed.clone(),
        import_job,
        import_job_error,
        soft_deleted,
        soft_deleted_error,
        jobs,
    })
}
