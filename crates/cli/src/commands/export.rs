//! `offsite agent export …`: offline restore. The agent selects what its recovery
//! points need, shows the sizing (drives needed) before anything is committed,
//! and requests the export; the datacenter writes the drives and ships them; the
//! agent restores from them with `offsite agent restore --from-drive`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Subcommand;

use offsite_agent::export::{self, ExportRequest};
use offsite_agent::AgentHome;
use offsite_api::types::ExportJobView;

use crate::display::{human, plural, when};

#[derive(Subcommand)]
pub enum ExportCommand {
    /// Ask for recovery points on drives: sized first, requested when you confirm.
    Request {
        /// A recovery point id (or unique prefix), or `latest` (repeatable).
        #[arg(long, default_value = "latest")]
        point: Vec<String>,
        /// Only these paths of the points (repeatable); default everything.
        #[arg(long)]
        path: Vec<String>,
        /// The capacity of each drive (e.g. 10TB, 2TiB).
        #[arg(long, default_value = "10TB")]
        drive_size: String,
        /// The job's name [default: <machine>-export-<unix seconds>].
        #[arg(long)]
        name: Option<String>,
        /// The datacenter that writes the drives [default: the service's only one].
        #[arg(long)]
        datacenter: Option<String>,
        /// Where the drives go.
        #[arg(long)]
        return_address: Option<String>,
        /// Request without asking (in scripts).
        #[arg(long)]
        yes: bool,
    },
    /// A repair export (RepairExport): check the drives of a delivered job, name
    /// the files they lack or hold damaged, and ask for those on new drives
    /// (sized first, requested when you confirm). Restore then with both sets:
    /// `agent restore --from-drive …(both sets) --export-job JOB --export-job REPAIR`.
    Repair {
        /// The export job whose drives arrived.
        job: String,
        /// A drive of the job's set (repeat for each drive that arrived).
        #[arg(long = "from-drive", value_name = "PATH", required = true)]
        from_drive: Vec<PathBuf>,
        /// Open the drives with their recovery keys instead of the job's export key.
        #[arg(long)]
        recovery_key: Vec<String>,
        /// The repair job's name [default: <job>-repair-<unix seconds>].
        #[arg(long)]
        name: Option<String>,
        /// The capacity of each drive [default: the job's].
        #[arg(long)]
        drive_size: Option<String>,
        /// Request without asking (in scripts).
        #[arg(long)]
        yes: bool,
    },
    /// This machine's export jobs.
    List,
    /// One export job: state, drives (with their recovery keys), return shipment.
    Status { job: String },
    /// Verify the job's chain of custody (each drive written and shipped by the
    /// datacenter's station, signed and chained); exit 18 when it does not verify.
    Custody { job: String },
    /// The drives arrived.
    Delivered { job: String },
    /// The restore from the drives is done.
    Complete { job: String },
    /// Cancel before the drives leave the datacenter.
    Cancel { job: String },
}

/// Shows the summary, asks (`--yes` in scripts), and requests the export.
fn confirm_and_submit(
    home: &AgentHome,
    json: bool,
    yes: bool,
    prepared: export::PreparedExport,
    summary: &str,
) -> Result<ExportJobView> {
    if !json {
        println!("{summary}");
    }
    if !crate::prompt::confirm("Request it?", yes)? {
        bail!("nothing was requested: run again with --yes to request it ({summary})");
    }
    Ok(export::submit(home, prepared)?)
}

fn print_job(job: &ExportJobView) {
    println!("export job {} ({}): {}", job.name, job.id, job.state);
    println!(
        "  carries {} ({}) on {} of {}",
        plural(job.sizing.files as usize, "file"),
        human(job.sizing.bytes),
        plural(job.sizing.drives_needed as usize, "drive"),
        human(job.sizing.drive_size)
    );
    if let (Some(carrier), Some(tracking)) = (&job.carrier, &job.tracking_number) {
        println!("  return shipment: {carrier} {tracking}");
    }
    for drive in &job.drives {
        let key = drive.recovery_key.as_deref().unwrap_or("(shown to the customer only)");
        println!("  drive {} ({}): {}, recovery key {key}", drive.index + 1, drive.drive_id, human(drive.bytes));
    }
    for event in &job.timeline {
        let message = event.message.as_deref().map(|m| format!(" — {m}")).unwrap_or_default();
        println!("  {} {} by {}{message}", when(event.at), event.state, event.actor);
    }
}

pub fn run(home: &AgentHome, json: bool, command: ExportCommand) -> Result<ExitCode> {
    let show = |job: &ExportJobView| -> Result<()> {
        if json {
            println!("{}", serde_json::to_string_pretty(job)?);
        } else {
            print_job(job);
        }
        Ok(())
    };
    match command {
        ExportCommand::Request { point, path, drive_size, name, datacenter, return_address, yes } => {
            let drive_size = super::diskprep::parse_size(&drive_size)?;
            let wanted = ExportRequest { points: point, paths: path, drive_size, name, datacenter, return_address };
            let prepared = export::prepare(home, &wanted)?;
            let sizing = &prepared.sizing;
            let summary = format!(
                "export job {} would carry {} ({}) of {} on {} of {} from datacenter {}",
                prepared.request.name,
                plural(sizing.files as usize, "file"),
                human(sizing.bytes),
                plural(prepared.points.len(), "recovery point"),
                plural(sizing.drives_needed as usize, "drive"),
                human(sizing.drive_size),
                prepared.request.datacenter
            );
            let job = confirm_and_submit(home, json, yes, prepared, &summary)?;
            show(&job)?;
            if !json {
                println!(
                    "the drives' key is kept in {}; when they arrive: {}",
                    export::export_key_file(home, &job.name).display(),
                    home.command(&format!(
                        "agent restore --from-drive PATH --export-job {} --point latest --target FOLDER",
                        job.name
                    ))
                );
            }
        }
        ExportCommand::Repair { job, from_drive, recovery_key, name, drive_size, yes } => {
            let drive_size = drive_size.as_deref().map(super::diskprep::parse_size).transpose()?;
            let source = offsite_agent::restore::DriveSource {
                paths: from_drive,
                export_jobs: if recovery_key.is_empty() { vec![job.clone()] } else { Vec::new() },
                recovery_keys: recovery_key,
                fill_from_service: false,
            };
            let (prepared, needed) = export::prepare_repair(home, &job, &source, name, drive_size)?;
            let bytes: u64 = needed.iter().map(|f| f.size).sum();
            if !json {
                println!(
                    "the drives of export job {job} lack or hold damaged {} ({}):",
                    plural(needed.len(), "file"),
                    human(bytes)
                );
                for file in needed.iter().take(10) {
                    println!("  {}: {}", file.path, file.reason);
                }
                if needed.len() > 10 {
                    println!("  … and {} more", needed.len() - 10);
                }
            }
            let summary = format!(
                "repair export job {} would carry them on {} of {}",
                prepared.request.name,
                plural(prepared.sizing.drives_needed as usize, "drive"),
                human(prepared.sizing.drive_size)
            );
            let repair = confirm_and_submit(home, json, yes, prepared, &summary)?;
            show(&repair)?;
            if !json {
                println!(
                    "when its drives arrive, restore from both sets (one --from-drive for each drive of either): {}",
                    home.command(&format!(
                        "agent restore --from-drive PATH --export-job {job} --export-job {} --point latest \
                         --target FOLDER",
                        repair.name
                    ))
                );
            }
        }
        ExportCommand::List => {
            let jobs = export::list(home)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&jobs)?);
            } else if jobs.is_empty() {
                println!("no export jobs; ask for one with `{}`", home.command("agent export request"));
            } else {
                for job in &jobs {
                    println!("{} {} ({}, {})", job.name, job.state, human(job.sizing.bytes), when(job.created));
                }
            }
        }
        ExportCommand::Status { job } => show(&export::status(home, &job)?)?,
        ExportCommand::Custody { job } => {
            let log = export::custody(home, &job)?;
            let report = offsite_seeding::custody::verify_log(&log);
            let label = format!("export job {}", log.job_name);
            if !crate::seeding_display::print_custody(&label, report, None, json)? {
                return Ok(ExitCode::from(crate::exit::CUSTODY_BROKEN));
            }
        }
        ExportCommand::Delivered { job } => show(&export::step(home, &job, "delivered")?)?,
        ExportCommand::Complete { job } => show(&export::step(home, &job, "complete")?)?,
        ExportCommand::Cancel { job } => show(&export::step(home, &job, "cancel")?)?,
    }
    Ok(ExitCode::SUCCESS)
}
