//! Export requests (offline restore): the agent selects the repository files its
//! recovery points need (it alone can read the snapshots), asks the service to
//! size them, and requests the export with a fresh export key, whose secret stays
//! in the state folder: the drives the datacenter writes open with it (or with
//! the recovery keys the customer sees in the portal), not at the datacenter.

use std::path::PathBuf;

use offsite_api::types::{CreateExportJob, ExportJobView, ExportMachine, ExportSizing, ImportJobNote};

use crate::config::AgentConfig;
use crate::error::{io_error, AgentError, AgentResult};
use crate::home::AgentHome;
use crate::registration::{stored_passphrase, Registration};

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    /// Recovery point ids (or unique prefixes), or `latest`.
    pub points: Vec<String>,
    /// Paths inside the points; empty: everything.
    pub paths: Vec<String>,
    pub drive_size: u64,
    /// The job's name; default `<machine>-export-<unix seconds>`.
    pub name: Option<String>,
    /// The datacenter that writes the drives; default the service's only one.
    pub datacenter: Option<String>,
    pub return_address: Option<String>,
}

/// A request sized and ready to submit.
pub struct PreparedExport {
    pub request: CreateExportJob,
    pub sizing: ExportSizing,
    /// Snapshot ids, in full.
    pub points: Vec<String>,
    secret: x25519_dalek::StaticSecret,
}

/// Where the secret of a job's export key is kept.
pub fn export_key_file(home: &AgentHome, job: &str) -> PathBuf {
    home.state_dir.join("exports").join(format!("{job}.key"))
}

/// The secret of a job's export key, as saved by [`submit`].
pub fn export_secret(home: &AgentHome, job: &str) -> AgentResult<x25519_dalek::StaticSecret> {
    let path = export_key_file(home, job);
    let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => AgentError::Invalid(format!(
            "no export key for job {job} at {}: it was requested on another machine; open the drives with their \
             recovery keys (--recovery-key, shown with the job in the portal and by `offsite agent export status`)",
            path.display()
        )),
        _ => io_error(&path)(e),
    })?;
    let bytes = hex::decode(text.trim()).ok().and_then(|b| <[u8; 32]>::try_from(b).ok());
    let bytes = bytes.ok_or_else(|| AgentError::Config { path, reason: "not an export key (64 hex digits)".into() })?;
    Ok(x25519_dalek::StaticSecret::from(bytes))
}

/// Selects what the points need and has the service size it.
pub fn prepare(home: &AgentHome, wanted: &ExportRequest) -> AgentResult<PreparedExport> {
    let config = AgentConfig::load(&home.config_file)?;
    let registration = Registration::load(home)?;
    let passphrase = stored_passphrase(home)?;
    let client = registration.client()?;
    let vault =
        crate::repository::open(&registration, &passphrase, &config.retry, None, home.cache_settings().as_ref())?;
    let mut ids = Vec::new();
    for point in if wanted.points.is_empty() { vec!["latest".to_string()] } else { wanted.points.clone() } {
        let (id, _) = vault.repo.find_snapshot(&point).map_err(|e| {
            AgentError::Invalid(format!(
                "{e}; list the recovery points with `{}`",
                home.command("agent recovery-points")
            ))
        })?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    let selection = offsite_engine::export::select(&vault.repo, &ids, &wanted.paths)?;
    if selection.missing_blobs > 0 {
        tracing::warn!(missing = selection.missing_blobs, "the points need data the repository no longer holds");
    }
    let datacenter = match &wanted.datacenter {
        Some(name) => name.clone(),
        None => {
            let all = client.list_datacenters()?;
            match all.as_slice() {
                [only] => only.name.clone(),
                _ => {
                    return Err(AgentError::Invalid(format!(
                        "name the datacenter that writes the drives with --datacenter (one of: {})",
                        all.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", ")
                    )))
                }
            }
        }
    };
    let name = wanted.name.clone().unwrap_or_else(|| {
        let machine: String = registration
            .machine_name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' })
            .take(40)
            .collect();
        format!(
            "{}-export-{}",
            machine.trim_start_matches(['-', '_']),
            time::OffsetDateTime::now_utc().unix_timestamp()
        )
    });
    let (secret, public) = offsite_seeding::export::new_export_key();
    let points: Vec<String> = ids.iter().map(|id| id.to_hex()).collect();
    let request = CreateExportJob {
        name,
        datacenter,
        drive_size: wanted.drive_size,
        export_public_key: Some(hex::encode(public)),
        return_address: wanted.return_address.clone(),
        machines: vec![ExportMachine {
            machine_id: registration.machine_id.clone(),
            files: selection.files.iter().map(|f| f.path()).collect(),
            points: points.clone(),
        }],
    };
    let sizing = client.preview_export(&registration.subscription_id, &request)?;
    Ok(PreparedExport { request, sizing, points, secret })
}

/// A repair export (the seed service's RepairExport): the files of export job
/// `job` (this machine's) that the delivered drives in `source` do not hold
/// whole and sound, sized as a new export job of the same points. The files it
/// lacks are named with the reason, for the user to see before requesting.
pub fn prepare_repair(
    home: &AgentHome,
    job: &str,
    source: &crate::restore::DriveSource,
    name: Option<String>,
    drive_size: Option<u64>,
) -> AgentResult<(PreparedExport, Vec<RepairFile>)> {
    use offsite_seeding::drive_set::Whereabouts;

    let registration = Registration::load(home)?;
    let client = registration.client()?;
    let original = client.export_job(job)?;
    let files = client.export_files(&original.id)?;
    let drives = crate::restore::open_drives(home, &registration, source)?;
    let report = drives.verify();
    // Damage is named by the path inside the machine's folder or with it.
    let prefix = format!("{}/", registration.machine_id);
    let damaged: std::collections::BTreeMap<&str, String> = report
        .damaged_files
        .iter()
        .map(|f| {
            let path = f.path.strip_prefix(&prefix).unwrap_or(&f.path);
            let why = f.ranges.first().map(|r| r.cause.to_string()).unwrap_or_default();
            (path, why)
        })
        .collect();
    let mut needed = Vec::new();
    for file in files.iter().filter(|f| f.machine_id == registration.machine_id) {
        let Some((kind, name)) = offsite_engine::backend::FileKind::of_path(&file.path) else { continue };
        let reason = match (damaged.get(file.path.as_str()), drives.whereabouts(kind, &name)) {
            (Some(why), _) => why.clone(),
            (None, Whereabouts::Present { size }) if size == file.size => continue,
            (None, Whereabouts::Present { size }) => format!("the drives hold {size} of its {} bytes", file.size),
            (None, Whereabouts::Partial { missing, .. }) => {
                format!("part of it is on {}", missing.first().map(|m| m.2.to_string()).unwrap_or_default())
            }
            (None, Whereabouts::OnAbsentDrives(drives)) => format!("it is on {drives}, which was not given"),
            (None, Whereabouts::NotInSet) => "the drives do not hold it".into(),
        };
        needed.push(RepairFile { path: file.path.clone(), size: file.size, reason });
    }
    if needed.is_empty() {
        return Err(AgentError::Invalid(format!(
            "the drives hold every file of export job {} whole and sound: there is nothing to repair",
            original.name
        )));
    }
    // The repository's config and keys go along (a few KiB), so the repair set
    // is a repository's folder on its own, as every drive set is.
    let mut carried: Vec<String> = needed.iter().map(|f| f.path.clone()).collect();
    for file in files.iter().filter(|f| f.machine_id == registration.machine_id) {
        let identity = file.path == "config" || file.path.starts_with("keys/");
        if identity && !carried.contains(&file.path) {
            carried.push(file.path.clone());
        }
    }
    let datacenter = client
        .list_datacenters()?
        .into_iter()
        .find(|d| d.id == original.datacenter_id)
        .map(|d| d.name)
        .ok_or_else(|| AgentError::Invalid(format!("the datacenter of export job {} is gone", original.name)))?;
    let points = original
        .machines
        .iter()
        .find(|m| m.machine_id == registration.machine_id)
        .map(|m| m.points.clone())
        .unwrap_or_default();
    let (secret, public) = offsite_seeding::export::new_export_key();
    let request = CreateExportJob {
        name: name.unwrap_or_else(|| {
            format!("{}-repair-{}", original.name, time::OffsetDateTime::now_utc().unix_timestamp())
        }),
        datacenter,
        drive_size: drive_size.unwrap_or(original.sizing.drive_size),
        export_public_key: Some(hex::encode(public)),
        return_address: original.return_address.clone(),
        machines: vec![ExportMachine {
            machine_id: registration.machine_id.clone(),
            files: carried,
            points: points.clone(),
        }],
    };
    let sizing = client.preview_export(&registration.subscription_id, &request)?;
    Ok((PreparedExport { request, sizing, points, secret }, needed))
}

/// A file a repair export carries, and why the delivered drives could not give it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RepairFile {
    pub path: String,
    pub size: u64,
    pub reason: String,
}

/// Keeps the export key's secret, then requests the export.
pub fn submit(home: &AgentHome, prepared: PreparedExport) -> AgentResult<ExportJobView> {
    let registration = Registration::load(home)?;
    let path = export_key_file(home, &prepared.request.name);
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder).map_err(io_error(folder))?;
    }
    offsite_api::files::write_secret_file(&path, &hex::encode(prepared.secret.to_bytes()))?;
    match registration.client()?.request_export(&registration.subscription_id, &prepared.request) {
        Ok(job) => Ok(job),
        Err(err) => {
            let _ = std::fs::remove_file(&path);
            Err(err.into())
        }
    }
}

/// This machine's export jobs.
pub fn list(home: &AgentHome) -> AgentResult<Vec<ExportJobView>> {
    let registration = Registration::load(home)?;
    Ok(registration.client()?.export_jobs(&registration.subscription_id)?)
}

/// One export job by name or id.
pub fn status(home: &AgentHome, job: &str) -> AgentResult<ExportJobView> {
    Ok(Registration::load(home)?.client()?.export_job(job)?)
}

/// The job's chain of custody as the service stores it (verify it with
/// `offsite_seeding::custody::verify_log`).
pub fn custody(home: &AgentHome, job: &str) -> AgentResult<offsite_api::types::CustodyLog> {
    let client = Registration::load(home)?.client()?;
    let found = client.export_job(job)?;
    Ok(client.export_job_custody(&found.id)?)
}

/// The customer's steps: `delivered`, `complete`, `cancel`.
pub fn step(home: &AgentHome, job: &str, step: &str) -> AgentResult<ExportJobView> {
    let client = Registration::load(home)?.client()?;
    let found = client.export_job(job)?;
    Ok(client.export_step(&found.id, step, &ImportJobNote::default())?)
}
