//! The agent's own job history: one JSON line per finished job in the state
//! folder, so `offsite agent status` works even when the service is unreachable.

use std::io::Write;

use serde::{Deserialize, Serialize};

use offsite_api::types::JobReport;

use crate::error::{io_error, AgentResult};
use crate::home::AgentHome;

/// Lines kept when the file is rewritten.
const KEEP: usize = 500;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    /// The service's job id, when it could be reported.
    pub id: Option<String>,
    #[serde(flatten)]
    pub report: JobReport,
    pub snapshot_id: Option<String>,
    /// Whether the service has this final report; if not, the next job sends it.
    #[serde(default = "reported_by_default")]
    pub reported: bool,
}

fn reported_by_default() -> bool {
    true
}

pub fn append(home: &AgentHome, record: &JobRecord) -> AgentResult<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = home.history_file();
    let mut file =
        std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&path).map_err(io_error(&path))?;
    let line = serde_json::to_string(record).unwrap_or_default();
    writeln!(file, "{line}").map_err(io_error(&path))?;
    drop(file);
    let records = read(home)?;
    if records.len() > 2 * KEEP {
        let text: String = records[records.len() - KEEP..]
            .iter()
            .map(|r| serde_json::to_string(r).unwrap_or_default() + "\n")
            .collect();
        offsite_api::files::write_secret_file(&path, &text)?;
    }
    Ok(())
}

/// Sends the service the final reports it missed (it was down when a job ended),
/// so its job list does not keep a job "running" for ever. Best effort: what
/// still cannot be sent waits for the next job.
pub fn report_pending(home: &AgentHome, client: &offsite_api::Client, machine_id: &str) -> AgentResult<()> {
    let mut records = read(home)?;
    let mut changed = false;
    for record in records.iter_mut().filter(|r| !r.reported) {
        let sent = match &record.id {
            Some(id) => match client.update_job(machine_id, id, &record.report) {
                Ok(_) => true,
                // 409: the service already holds a final report for it.
                Err(err) => err.status() == Some(409),
            },
            None => match client.create_job(machine_id, &record.report) {
                Ok(job) => {
                    record.id = Some(job.id);
                    true
                }
                Err(_) => false,
            },
        };
        if !sent {
            break;
        }
        record.reported = true;
        changed = true;
    }
    if changed {
        let text: String = records.iter().map(|r| serde_json::to_string(r).unwrap_or_default() + "\n").collect();
        offsite_api::files::write_secret_file(&home.history_file(), &text)?;
    }
    Ok(())
}

/// All recorded jobs, oldest first. Unreadable lines (a crash mid-write) are skipped.
pub fn read(home: &AgentHome) -> AgentResult<Vec<JobRecord>> {
    let path = home.history_file();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(io_error(&path)(err)),
    };
    Ok(text.lines().filter_map(|line| serde_json::from_str(line).ok()).collect())
}
