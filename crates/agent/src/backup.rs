//! One online backup job: report it to the service, back up the protected paths
//! into the machine's repository, apply retention, publish the recovery points,
//! and record the outcome here and on the service.

use std::sync::Arc;

use time::OffsetDateTime;

use offsite_api::types::{JobKind, JobReport, JobState, RecoveryPoint, RecoveryPointSource};
use offsite_engine::archiver::{self, BackupOptions, SkippedItem};
use offsite_engine::id::Id;
use offsite_engine::progress::Progress;
use offsite_engine::repofile::snapshot::Snapshot;
use offsite_engine::repository::Repository;

use crate::config::AgentConfig;
use crate::error::{AgentError, AgentResult};
use crate::history::{self, JobRecord};
use crate::home::AgentHome;
use crate::offline::SeedProgress;
use crate::registration::{stored_passphrase, Registration};
use crate::throttle::Throttle;
use crate::vault_backend::VaultBackend;

/// What one backup did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackupRun {
    pub job_id: Option<String>,
    pub report: JobReport,
    pub snapshot_id: Option<String>,
    pub skipped: Vec<SkippedItem>,
    /// Recovery points removed by retention.
    pub expired_points: usize,
    pub recovered_packs: usize,
}

/// Snapshots tagged so came from an offline seed (the backup into staging tags them).
pub const OFFLINE_SEED_TAG: &str = "offline-seed";

pub fn recovery_points(repo: &Repository) -> AgentResult<Vec<RecoveryPoint>> {
    Ok(recovery_points_of(&repo.snapshots()?))
}

fn recovery_points_of(snapshots: &[(Id, Snapshot)]) -> Vec<RecoveryPoint> {
    snapshots
        .iter()
        .map(|(id, s)| RecoveryPoint {
            snapshot_id: id.to_hex(),
            time: s.time,
            size: s.summary.total_bytes,
            file_count: s.summary.files_new + s.summary.files_changed + s.summary.files_unmodified,
            source: if s.tags.iter().any(|t| t == OFFLINE_SEED_TAG) {
                RecoveryPointSource::OfflineSeed
            } else {
                RecoveryPointSource::Online
            },
        })
        .collect()
}

/// When the schedule runs the next backup after this one, for the service to show
/// (in local time, as the daemon reads the schedule).
fn next_scheduled(config: &AgentConfig) -> Option<OffsetDateTime> {
    let next = config.schedule.as_ref()?.next_after(&chrono::Local::now());
    OffsetDateTime::from_unix_timestamp(next.timestamp()).ok()
}

/// Runs a backup now. A failure after the job was reported is recorded as a failed
/// job (here and on the service) and returned.
pub fn backup_now(home: &AgentHome, progress: &Progress) -> AgentResult<BackupRun> {
    let config = AgentConfig::load(&home.config_file)?;
    let registration = Registration::load(home)?;
    if config.protect.is_empty() {
        return Err(AgentError::NothingProtected { protect: home.command("agent protect add PATH") });
    }
    let passphrase = stored_passphrase(home)?;
    let client = registration.client()?;
    let started = OffsetDateTime::now_utc();
    let mut report = JobReport {
        kind: JobKind::Backup,
        state: JobState::Running,
        started,
        finished: None,
        bytes_processed: 0,
        bytes_uploaded: 0,
        bytes_stored: 0,
        file_count: 0,
        message: None,
        errors: Vec::new(),
        next_backup: next_scheduled(&config),
    };
    // The job is announced beside the backup's start, so on a slow link its round
    // trips overlap the repository's opening. Reporting is best effort: a backup
    // must not fail because the job list could not be updated.
    let announced = report.clone();
    let (announcement, Work { result, backend, adopted }) = std::thread::scope(|scope| {
        let announcement = scope.spawn(|| {
            if let Err(err) = history::report_pending(home, &client, &registration.machine_id) {
                tracing::warn!(error = %err, "could not send earlier job reports");
            }
            client.create_job(&registration.machine_id, &announced)
        });
        let work = back_up(home, &registration, &client, &config, &passphrase, progress, &mut report);
        (announcement.join().expect("announcing the job does not panic"), work)
    });
    let job_id = match announcement {
        Ok(job) => Some(job.id),
        // The service knows this machine no longer (and the backup failed for it).
        // Recorded here as a failed job, so `status` says why nothing happened.
        Err(err) if matches!(err.status(), Some(401 | 403)) => {
            report.state = JobState::Failed;
            report.finished = Some(OffsetDateTime::now_utc());
            report.errors = vec![err.to_string()];
            history::append(home, &JobRecord { id: None, report, snapshot_id: None, reported: true })?;
            return Err(err.into());
        }
        Err(err) => {
            tracing::warn!(error = %err, "could not report the job start to the service; it will be sent later");
            None
        }
    };
    if let (Some(seed), Ok(_)) = (&adopted, &result) {
        report.message = Some(format!(
            "offline seed of import job {} adopted into the vault ({}, {} MiB); then {}",
            seed.import_job,
            offsite_api::size::plural(seed.files, "file"),
            seed.bytes.div_ceil(1 << 20),
            report.message.as_deref().unwrap_or("an incremental backup")
        ));
    }
    report.finished = Some(OffsetDateTime::now_utc());
    // Counted by the backend, so a failed run reports what it did send.
    if let Some(backend) = backend {
        let backend: Arc<VaultBackend> = backend;
        report.bytes_uploaded = backend.bytes_sent();
        report.bytes_stored = backend.bytes_stored();
    }
    let (snapshot_id, skipped, expired_points, recovered_packs) = match &result {
        Ok(done) => {
            report.state = if done.waiting {
                JobState::Waiting
            } else if done.skipped.is_empty() {
                JobState::Completed
            } else {
                JobState::CompletedWithWarnings
            };
            report.errors = done.skipped.iter().map(|s| format!("{}: {}", s.path, s.reason)).collect();
            (done.snapshot_id.clone(), done.skipped.clone(), done.expired_points, done.recovered_packs)
        }
        Err(err) => {
            report.state = JobState::Failed;
            report.errors = vec![err.to_string()];
            (None, Vec::new(), 0, 0)
        }
    };
    let points = result.as_ref().ok().and_then(|done| done.recovery_points.as_deref());
    let reported = publish(&client, &registration.machine_id, job_id.as_deref(), &report, points, &config);
    if !reported {
        tracing::warn!("could not report the job result to the service; it will be sent with the next job");
    }
    let record = JobRecord { id: job_id.clone(), report: report.clone(), snapshot_id: snapshot_id.clone(), reported };
    history::append(home, &record)?;
    result?;
    Ok(BackupRun { job_id, report, snapshot_id, skipped, expired_points, recovered_packs })
}

/// What the backup itself came to, and what it used.
struct Work {
    result: AgentResult<Done>,
    /// The vault's backend, when the backup reached it (for the bytes it sent).
    backend: Option<Arc<VaultBackend>>,
    /// The offline seed adopted before the backup.
    adopted: Option<crate::config::AdoptedSeed>,
}

/// The backup: into the vault, into the staging location, or nothing while the
/// offline seed travels.
fn back_up(
    home: &AgentHome,
    registration: &Registration,
    client: &offsite_api::Client,
    config: &AgentConfig,
    passphrase: &str,
    progress: &Progress,
    report: &mut JobReport,
) -> Work {
    let throttle = config.bandwidth.clone().map(|policy| Arc::new(Throttle::new(policy)));
    let mut backend = None;
    let mut adopted = None;
    let result = match &config.offline {
        // The seed is on its way: nothing large goes over the network until the
        // import job completes and the seed is adopted into the vault.
        Some(offline) if offline.staged_snapshot.is_some() => {
            match crate::offline::adopt_if_complete(home, registration, client) {
                Ok(SeedProgress::Adopted(seed)) => {
                    adopted = Some(seed);
                    // Offline seeding is over: this backup is the first incremental.
                    AgentConfig::load(&home.config_file).and_then(|config| {
                        run(home, registration, client, &config, passphrase, throttle, progress, report, &mut backend)
                    })
                }
                Ok(progress_now) => {
                    report.message = Some(match progress_now {
                        SeedProgress::NotYetCreated => crate::offline::drives_not_prepared_message(home, offline),
                        _ => crate::offline::waiting_message(&offline.import_job),
                    });
                    if let SeedProgress::Travelling(state) = progress_now {
                        tracing::info!(import_job = %offline.import_job, ?state, "the offline seed is travelling");
                    }
                    Ok(Done { waiting: true, ..Done::default() })
                }
                Err(err) => Err(err),
            }
        }
        Some(offline) => run_to_staging(home, config, offline, progress, report),
        None => run(home, registration, client, config, passphrase, throttle, progress, report, &mut backend),
    };
    Work { result, backend, adopted }
}

#[derive(Default)]
struct Done {
    snapshot_id: Option<String>,
    skipped: Vec<SkippedItem>,
    expired_points: usize,
    recovered_packs: usize,
    /// The backup did not run: the offline seed is still travelling.
    waiting: bool,
    /// The repository's recovery points after the run, for the service.
    recovery_points: Option<Vec<RecoveryPoint>>,
}

fn backup_options(config: &AgentConfig) -> BackupOptions {
    let mut options = BackupOptions::new(config.protect.iter().map(|p| p.path.clone()).collect());
    options.excludes = config.protect.iter().flat_map(|p| p.excludes.iter().cloned()).collect();
    options.scan_totals = true;
    options
}

fn describe(summary: &offsite_engine::repofile::snapshot::BackupSummary, report: &mut JobReport) {
    report.bytes_processed = summary.total_bytes;
    report.file_count = summary.files_new + summary.files_changed + summary.files_unmodified;
    report.message = Some(format!(
        "{} new, {} changed, {} unchanged files",
        summary.files_new, summary.files_changed, summary.files_unmodified
    ));
}

/// The initial full backup of offline seeding: into the staging location, not over
/// the network. Remembers the snapshot, so later backups wait for the import job.
fn run_to_staging(
    home: &AgentHome,
    config: &AgentConfig,
    offline: &crate::config::OfflineSeeding,
    progress: &Progress,
    report: &mut JobReport,
) -> AgentResult<Done> {
    let mut options = backup_options(config);
    // The snapshot inside is encrypted: only the agent can mark it as the seed, so
    // that its recovery point shows source "offline seed" once it is in the vault.
    options.tags.push(OFFLINE_SEED_TAG.to_string());
    // Timed from here: opening the staging location (its free-space check walks the
    // protected paths) is part of what the planner's staging step costs.
    let started = std::time::Instant::now();
    let staging = crate::offline::open_staging(home, offline, &options.paths)?;
    let outcome = archiver::backup(&staging, &options, progress)?;
    describe(&outcome.snapshot.summary, report);
    record_staging_rate(home, offline, outcome.snapshot.summary.bytes_read, started.elapsed().as_secs_f64());
    report.message = Some(format!(
        "offline backup into the staging location {} for import job {}: {}",
        offline.staging.display(),
        offline.import_job,
        report.message.as_deref().unwrap_or_default()
    ));
    let snapshot_id = outcome.snapshot_id.to_hex();
    let mut updated = config.clone();
    if let Some(o) = updated.offline.as_mut() {
        o.staged_snapshot = Some(snapshot_id.clone());
    }
    updated.save(&home.config_file)?;
    Ok(Done { snapshot_id: Some(snapshot_id), skipped: outcome.skipped, ..Done::default() })
}

/// Keeps the staging backup's throughput over the source for `offsite plan`: a
/// failure to keep it is logged, never the backup's.
fn record_staging_rate(home: &AgentHome, offline: &crate::config::OfflineSeeding, bytes_read: u64, seconds: f64) {
    use offsite_seeding::measured::{MeasuredRates, MeasuredStep, Measurement};
    let what = format!("staging backup for import job {}", offline.import_job);
    let Some(measurement) = Measurement::new(bytes_read, seconds, what) else { return };
    let path = home.measured_rates_file();
    if let Err(err) = MeasuredRates::record(&path, MeasuredStep::StagingBackup, measurement) {
        tracing::warn!("{err}");
    }
}

#[allow(clippy::too_many_arguments)]
fn run(
    home: &AgentHome,
    registration: &Registration,
    client: &offsite_api::Client,
    config: &AgentConfig,
    passphrase: &str,
    throttle: Option<Arc<Throttle>>,
    progress: &Progress,
    report: &mut JobReport,
    backend: &mut Option<Arc<VaultBackend>>,
) -> AgentResult<Done> {
    let cache = home.cache_settings();
    let vault = crate::repository::open_or_create(
        registration,
        Some(client),
        passphrase,
        &config.retry,
        throttle,
        cache.as_ref(),
    )?;
    *backend = Some(vault.backend.clone());
    let outcome = archiver::backup(&vault.repo, &backup_options(config), progress)?;
    describe(&outcome.snapshot.summary, report);

    let mut expired_points = 0;
    if !config.retention.is_empty() {
        let decisions = offsite_engine::retention::forget(&vault.repo, &config.retention.policy(), false)?;
        expired_points = decisions.iter().filter(|d| !d.keep).count();
        if expired_points > 0 {
            // Deleting wholly unused packs is free; rewriting mixed ones re-uploads
            // their live data, so it waits until they hold a tenth of the vault.
            let options = offsite_engine::prune::PruneOptions { max_unused_fraction: 0.1 };
            offsite_engine::prune::prune_with(&vault.repo, &options)?;
        }
    }
    Ok(Done {
        snapshot_id: Some(outcome.snapshot_id.to_hex()),
        skipped: outcome.skipped,
        expired_points,
        recovered_packs: outcome.recovered_packs,
        waiting: false,
        // Retention removed some: the snapshots listed under the backup's lock are
        // no longer the repository's.
        recovery_points: Some(match expired_points {
            0 => recovery_points_of(&outcome.snapshots),
            _ => recovery_points(&vault.repo)?,
        }),
    })
}

/// Tells the service the job's result, the machine's recovery points and its
/// protected items: three requests side by side, so one round trip on a slow link.
/// Best effort, as all reporting; returns whether the job's result was taken.
fn publish(
    client: &offsite_api::Client,
    machine_id: &str,
    job_id: Option<&str>,
    report: &JobReport,
    recovery_points: Option<&[RecoveryPoint]>,
    config: &AgentConfig,
) -> bool {
    std::thread::scope(|scope| {
        if let Some(points) = recovery_points {
            scope.spawn(move || {
                if let Err(err) = client.set_recovery_points(machine_id, points) {
                    tracing::warn!(error = %err, "could not publish the recovery points to the service");
                }
            });
            scope.spawn(move || {
                if let Err(err) = client.set_protected_items(machine_id, &config.protected_items()) {
                    tracing::warn!(error = %err, "could not publish the protected items to the service");
                }
            });
        }
        job_id.is_some_and(|id| client.update_job(machine_id, id, report).is_ok())
    })
}
