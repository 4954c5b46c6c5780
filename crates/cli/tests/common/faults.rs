//! Running commands against a faulty service or network: run until done (each
//! failed run must have failed clearly), the soak switch, and checking the
//! service's copy of a machine's repository.

use std::path::Path;

use serde_json::Value;

use super::service::{Agent, Service, AGENT_PASSPHRASE};
use super::{repo, Run};

/// `OFFSITE_SOAK=1`: higher fault rates and more rounds.
pub fn soak() -> bool {
    std::env::var_os("OFFSITE_SOAK").is_some_and(|v| v != "0")
}

/// Runs `attempt` until it reports success, at most `limit` times; every failed
/// run must pass `clear`. Returns the last run and how many runs it took.
pub fn until_done(limit: u32, mut attempt: impl FnMut() -> (bool, Run), clear: impl Fn(&Run)) -> (Run, u32) {
    for n in 1..=limit {
        let (done, run) = attempt();
        if done {
            return (run, n);
        }
        clear(&run);
        eprintln!("run {n} stopped, running again: {}", run.stderr.trim());
    }
    panic!("not done after {limit} runs");
}

/// `agent backup --now --json`, and whether it completed.
pub fn backup_run(agent: &Agent) -> (bool, Run) {
    let run = agent.cmd(["backup", "--now", "--json"]).run();
    let report: Value = serde_json::from_str(&run.stdout).unwrap_or_default();
    let done = run.code == Some(0) && report["report"]["state"] == "completed";
    (done, run)
}

/// A failed backup names the service or its storage and did not panic.
pub fn clear_backup_failure(run: &Run) {
    let text = format!("{}{}", run.stdout, run.stderr);
    assert!(!text.contains("panicked"), "{run}");
    assert!(text.contains("storage") || text.contains("service") || text.contains("cannot reach"), "unclear: {run}");
}

/// `offsite repo check --read-data` straight on every machine repository in the
/// service's local storage folder; returns how many were checked.
pub fn check_service_copies(service: &Service) -> usize {
    let vaults = service.data_dir.join("storage/vaults");
    let mut checked = 0;
    for vault in std::fs::read_dir(&vaults).unwrap() {
        for machine in std::fs::read_dir(vault.unwrap().path()).unwrap() {
            let machine = machine.unwrap().path();
            check_read_data(&machine);
            checked += 1;
        }
    }
    assert!(checked > 0, "no machine repository under {}", vaults.display());
    checked
}

fn check_read_data(repository: &Path) {
    repo(repository, ["check", "--read-data"]).password(AGENT_PASSPHRASE).run().ok();
}
