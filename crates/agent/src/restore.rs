//! Restoring a recovery point, whole or in part, to its original place (`/`) or
//! another folder. Newer files already at the target are kept unless the caller
//! asks to overwrite them.

use std::path::PathBuf;
use std::sync::Arc;

use time::OffsetDateTime;

use offsite_api::types::{JobKind, JobReport, JobState};
use offsite_engine::progress::Progress;
use offsite_engine::restorer::{self, OverwritePolicy, RestoreOptions, RestoreOutcome};

use offsite_seeding::drive::DriveKey;
use offsite_seeding::drive_set::{DriveSetBackend, FillingBackend};

use crate::config::AgentConfig;
use crate::error::{AgentError, AgentResult};
use crate::history::{self, JobRecord};
use crate::home::AgentHome;
use crate::registration::{stored_passphrase, Registration};

#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// A snapshot id, a unique prefix of one, or `latest`.
    pub point: String,
    /// Paths inside the point; empty restores everything.
    pub paths: Vec<String>,
    pub target: PathBuf,
    pub overwrite: bool,
    pub verify: bool,
    /// Another passphrase than the stored one (restoring on another machine, or
    /// after the stored one was lost).
    pub passphrase: Option<String>,
    /// Restore from these export drives instead of the service.
    pub drives: Option<DriveSource>,
}

/// Export drives to restore from, and the keys that open them.
#[derive(Debug, Clone, Default)]
pub struct DriveSource {
    pub paths: Vec<PathBuf>,
    /// The export jobs whose keys (kept by `offsite agent export request`) open
    /// them: a job and its repair exports.
    pub export_jobs: Vec<String>,
    /// Recovery keys (one per drive), as the portal and `export status` show them.
    pub recovery_keys: Vec<String>,
    /// Read what the drives lack or have damaged from the service.
    pub fill_from_service: bool,
}

/// What came from elsewhere than the first set of drives.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Filled {
    /// Where from: "the service", "a repair export's drives", or both.
    pub from: String,
    pub files: Vec<String>,
    pub bytes: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreRun {
    pub snapshot_id: String,
    pub outcome: RestoreOutcome,
    /// Restoring from drives: what was filled from the drives of a later set
    /// (a repair export) or the service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filled: Option<Filled>,
}

/// The backend that filled what the first drive set lacked, and where from (for people).
type Filling = (Arc<FillingBackend>, String);

/// This machine's folder of a set of export drives, opened with the job's export
/// key or the recovery keys given.
pub fn open_drives(
    home: &AgentHome,
    registration: &Registration,
    source: &DriveSource,
) -> AgentResult<DriveSetBackend> {
    let keys = drive_keys(home, source)?;
    DriveSetBackend::open_within(&source.paths, &keys, &registration.machine_id)
        .map_err(|e| AgentError::Invalid(e.to_string()))
}

/// The keys that may open the drives: the export keys of the jobs named, the
/// recovery keys given.
fn drive_keys(home: &AgentHome, source: &DriveSource) -> AgentResult<Vec<DriveKey>> {
    let mut keys = Vec::new();
    for job in &source.export_jobs {
        keys.push(DriveKey::Import(crate::export::export_secret(home, job)?));
    }
    for text in &source.recovery_keys {
        let key = text.parse().map_err(|e| AgentError::Invalid(format!("--recovery-key: {e}")))?;
        keys.push(DriveKey::Recovery(key));
    }
    if keys.is_empty() {
        return Err(AgentError::Invalid(
            "say what opens the drives: --export-job NAME (the key kept when this machine requested it) or \
             --recovery-key KEY (shown with the job in the portal)"
                .into(),
        ));
    }
    Ok(keys)
}

/// The repository on export drives (this machine's folder of them), filled from
/// the service where asked.
fn drive_repository(
    home: &AgentHome,
    registration: &Registration,
    source: &DriveSource,
    passphrase: &str,
    config: &AgentConfig,
) -> AgentResult<(offsite_engine::Repository, Option<Filling>)> {
    let keys = drive_keys(home, source)?;
    let mut sets = DriveSetBackend::open_sets_within(&source.paths, &keys, &registration.machine_id)
        .map_err(|e| AgentError::Invalid(e.to_string()))?
        .into_iter()
        .map(Arc::new);
    let first = sets.next().expect("at least one drive was given");
    let from = match (sets.len() > 0, source.fill_from_service) {
        (true, true) => "a repair export's drives and the service",
        (true, false) => "a repair export's drives",
        _ => "the service",
    };
    // What the first set lacks comes from the next set (a repair export's
    // drives), then the next, then the service when asked.
    let mut fallback: Option<Arc<dyn offsite_engine::backend::Backend>> = match source.fill_from_service {
        true => Some(crate::repository::open(registration, passphrase, &config.retry, None, None)?.backend.clone()),
        false => None,
    };
    for set in sets.rev() {
        fallback = Some(match fallback {
            Some(next) => Arc::new(FillingBackend::new(set, next)),
            None => set,
        });
    }
    let Some(fallback) = fallback else {
        return Ok((offsite_engine::Repository::open(first, passphrase.as_bytes())?, None));
    };
    let filling = Arc::new(FillingBackend::new(first, fallback));
    let repo = offsite_engine::Repository::open(filling.clone(), passphrase.as_bytes())?;
    Ok((repo, Some((filling, from.to_string()))))
}

/// The engine names snapshots and `offsite repo` commands; an agent user has
/// recovery points and `offsite agent` commands.
fn in_agent_terms(home: &AgentHome, err: offsite_engine::Error) -> AgentError {
    use offsite_engine::Error;
    match err {
        Error::SnapshotNotFound(point) if point == "latest" => AgentError::Invalid(format!(
            "this machine has no recovery point yet: back up first (`{}`)",
            home.command("agent backup --now")
        )),
        Error::SnapshotNotFound(point) => AgentError::Invalid(format!(
            "no recovery point matches '{point}'; list them with `{}`",
            home.command("agent recovery-points")
        )),
        Error::AmbiguousSnapshot(point) => AgentError::Invalid(format!(
            "'{point}' matches several recovery points; give more digits of the id (`{}` lists them)",
            home.command("agent recovery-points")
        )),
        other => other.into(),
    }
}

pub fn restore(home: &AgentHome, request: &RestoreRequest, progress: &Progress) -> AgentResult<RestoreRun> {
    let config = AgentConfig::load(&home.config_file)?;
    let registration = Registration::load(home)?;
    let passphrase = match &request.passphrase {
        Some(p) => p.clone(),
        None => stored_passphrase(home)?,
    };
    let started = OffsetDateTime::now_utc();
    let (repo, filling) = match &request.drives {
        Some(source) => drive_repository(home, &registration, source, &passphrase, &config)?,
        None => {
            let vault = crate::repository::open(
                &registration,
                &passphrase,
                &config.retry,
                None,
                home.cache_settings().as_ref(),
            )?;
            (vault.repo, None)
        }
    };
    let (id, snapshot) = repo.find_snapshot(&request.point).map_err(|e| in_agent_terms(home, e))?;
    let options = RestoreOptions {
        target: request.target.clone(),
        includes: request.paths.clone(),
        verify: request.verify,
        overwrite: if request.overwrite { OverwritePolicy::Always } else { OverwritePolicy::KeepNewer },
    };
    let result = restorer::restore(&repo, &snapshot, &options, progress);
    let mut report = JobReport {
        kind: JobKind::Restore,
        state: JobState::Completed,
        started,
        finished: Some(OffsetDateTime::now_utc()),
        bytes_processed: 0,
        bytes_uploaded: 0,
        bytes_stored: 0,
        file_count: 0,
        message: Some(format!("recovery point {} to {}", id.short(), request.target.display())),
        errors: Vec::new(),
        next_backup: None,
    };
    match &result {
        Ok(outcome) => {
            report.bytes_processed = outcome.bytes;
            report.file_count = outcome.files;
            if !outcome.failures.is_empty() {
                report.state = JobState::CompletedWithWarnings;
                report.errors = outcome.failures.iter().map(|f| format!("{}: {}", f.path, f.reason)).collect();
            }
        }
        Err(err) => {
            report.state = JobState::Failed;
            report.errors = vec![err.to_string()];
        }
    }
    let job_id = match registration.client()?.create_job(&registration.machine_id, &report) {
        Ok(job) => Some(job.id),
        Err(err) => {
            tracing::warn!(error = %err, "could not report the restore to the service; it will be sent later");
            None
        }
    };
    let reported = job_id.is_some();
    history::append(home, &JobRecord { id: job_id, report, snapshot_id: Some(id.to_hex()), reported })?;
    let filled = filling.map(|(backend, from)| {
        let stats = backend.stats();
        Filled { from, files: stats.files, bytes: stats.bytes }
    });
    Ok(RestoreRun { snapshot_id: id.to_hex(), outcome: result?, filled })
}
