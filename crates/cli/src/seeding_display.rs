//! How import jobs read on a terminal: the job's state, its drives and its
//! timeline, as `diskprep --status`, `agent offline show` and `datacenter` show them.

use offsite_api::types::{ImportJobState, ImportJobView};

use crate::display::{plural, when};

/// One line: the state and what it means for the customer. `update_shipping` is
/// the command that enters the shipping details, as the reader would type it
/// (`None` at the datacenter, which waits for the customer's).
pub fn stage(job: &ImportJobView, update_shipping: Option<&str>) -> String {
    let creating = match update_shipping {
        Some(command) => format!("drives prepared; enter the shipping details (`{command}`)"),
        None => "drives prepared; waiting for the customer's shipping details".to_string(),
    };
    let meaning = match job.state {
        ImportJobState::Creating => creating.as_str(),
        ImportJobState::Shipping => "the package is on its way to the datacenter",
        ImportJobState::Received => "the datacenter received the package",
        ImportJobState::Transferring => "the datacenter is copying the drives into the storage account",
        ImportJobState::Packaging => "the drives are copied; the datacenter is packing them to ship them back",
        ImportJobState::Completed => "the seed is in the storage account; the next backup adopts it into the vault",
        ImportJobState::Closed => "closed (cancelled or expired)",
    };
    let deadline = match (job.state, job.arrival_deadline) {
        (ImportJobState::Shipping, Some(deadline)) => format!(" (drives must arrive by {})", when(deadline)),
        _ => String::new(),
    };
    format!("{}: {meaning}{deadline}", job.state.name())
}

/// The job, its drives and its timeline; `update_shipping` as for [`stage`].
pub fn print_job(job: &ImportJobView, update_shipping: Option<&str>) {
    println!("import job {} ({})", job.name, job.id);
    println!("  state:       {}", stage(job, update_shipping));
    println!("  destination: storage account {} / container {}", job.storage_account, job.container);
    println!("  datacenter:  {}", job.datacenter.name);
    if let Some(shipping) = &job.shipping {
        println!(
            "  shipping:    {} tracking {} ({}, shipped {})",
            shipping.carrier,
            shipping.tracking_number,
            plural(shipping.drive_count, "drive"),
            shipping.ship_date
        );
    }
    for drive in &job.drives {
        println!("  drive {} {}: {:?}", drive.index, drive.drive_id, drive.state);
    }
    println!("  timeline:");
    for event in &job.timeline {
        let what = match &event.drive_id {
            Some(drive) => format!("drive {} → {}", &drive[..8.min(drive.len())], event.state),
            None => format!("job → {}", event.state),
        };
        let note = event.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
        println!("    {}  {what} by {}{note}", when(event.at), event.actor);
    }
}

/// Prints a job's chain of custody as verified (`job`: "import job NAME" or
/// "export job NAME"), every drive's events with who handled them, and each
/// problem; `--json` prints the report. True when it verifies.
pub fn print_custody(
    job: &str,
    mut report: offsite_seeding::custody::CustodyReport,
    key_mismatch: Option<String>,
    json: bool,
) -> anyhow::Result<bool> {
    let verified = report.verified() && key_mismatch.is_none();
    if json {
        #[derive(serde::Serialize)]
        struct Problem {
            #[serde(flatten)]
            problem: offsite_seeding::custody::CustodyProblem,
            message: String,
        }
        #[derive(serde::Serialize)]
        struct Out<'a> {
            job_kind: &'a str,
            job_id: &'a str,
            verified: bool,
            events: usize,
            head: &'a str,
            problems: Vec<Problem>,
            #[serde(skip_serializing_if = "Option::is_none")]
            key_mismatch: Option<String>,
            drives: &'a [offsite_seeding::custody::DriveCustody],
        }
        let problems = std::mem::take(&mut report.problems)
            .into_iter()
            .map(|problem| Problem { message: problem.to_string(), problem })
            .collect();
        let out = Out {
            job_kind: &report.job_kind,
            job_id: &report.job_id,
            verified,
            events: report.events,
            head: &report.head,
            problems,
            key_mismatch,
            drives: &report.drives,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(verified);
    }
    println!("chain of custody of {job}: {}", plural(report.events, "event"));
    for drive in &report.drives {
        println!("drive {}:", drive.drive_id);
        for h in &drive.events {
            let who = if h.handler.is_empty() { h.actor.clone() } else { h.handler.clone() };
            let mark = if h.verified { "" } else { "  <- does not verify" };
            let details = if h.details.is_empty() { String::new() } else { format!(" ({})", h.details) };
            println!("  {:>4}  {}  {:<10} by {who}{details}{mark}", h.seq, when(h.at), h.kind.name());
        }
    }
    for problem in &report.problems {
        println!("problem: {problem}");
    }
    if let Some(mismatch) = &key_mismatch {
        println!("problem: {mismatch}");
    }
    if verified {
        println!("verified: every event is signed by its handler and chained to the one before (head {})", report.head);
    } else {
        println!("the chain of custody does NOT verify");
    }
    Ok(verified)
}
