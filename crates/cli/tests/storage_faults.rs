//! The real agent and ingest station against a service whose object store fails,
//! hangs, answers slowly, cuts reads short and loses writes (testbed's
//! `FaultyStore`, put under the service through `ServerConfig::wrap_storage`): a
//! backup, ingest and adoption each retry and finish, or stop with a clear error
//! and finish when run again; afterwards `repo check --read-data` passes on the
//! service's copy and the restore equals the source.
//!
//! `OFFSITE_SOAK=1` raises the fault rate.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use offsite_server::StorageWrapper;
use offsite_testbed::{FaultPlan, FaultyStore};
use serde_json::Value;

use common::faults::*;
use common::service::{Customer, Service};
use common::site::*;
use common::*;

fn plan(seed: u64) -> FaultPlan {
    let mut plan = FaultPlan::uniform(seed, if soak() { 0.12 } else { 0.05 });
    plan.hang = Duration::from_millis(800);
    plan.delay = Duration::from_millis(100);
    plan
}

/// A service in this process whose storage is `FaultyStore` over its local folder,
/// with injection off until the test turns it on.
fn faulty_service(root: &Path, plan: FaultPlan) -> (Service, FaultyStore) {
    let slot: Arc<Mutex<Option<FaultyStore>>> = Arc::default();
    let keep = slot.clone();
    let wrap = StorageWrapper(Arc::new(move |inner| {
        let faulty = FaultyStore::new(inner, plan.clone());
        faulty.set_active(false);
        *keep.lock().unwrap() = Some(faulty.clone());
        faulty.as_store()
    }));
    let service = Service::in_process(root, Some(wrap), 0);
    let faulty = slot.lock().unwrap().take().expect("the service wrapped its storage");
    (service, faulty)
}

#[test]
fn an_agent_backup_over_a_faulty_service_storage_finishes_and_restores_equal() {
    let scratch = temp();
    let root = scratch.path();
    let (service, faulty) = faulty_service(root, plan(61));
    let Customer { agent, source, .. } = service.customer(root, |source| {
        write_noise_file(&source.join("big.bin"), 6 << 20, 62);
        small_tree(&source.join("docs"));
    });

    faulty.set_active(true);
    let (_, runs) = until_done(4, || backup_run(&agent), clear_backup_failure);
    write(&source.join("docs/changed.txt"), &text(40_000, 63));
    let (_, more) = until_done(4, || backup_run(&agent), clear_backup_failure);
    // Restore through the faults too.
    agent.restore_equals(&root.join("restored"), &source);
    let counts = faulty.counts();
    eprintln!("backups took {runs} and {more} runs; faults injected: {counts}");
    assert!(counts.total() >= 5, "too few faults to prove anything: {counts}");

    faulty.set_active(false);
    check_service_copies(&service);
}

fn ingest_run(site: &Site, service: &Service, drive: &Path) -> (bool, Run) {
    let run = site.ingest(service, drive);
    let report: Value = serde_json::from_str(&run.stdout).unwrap_or_default();
    let done = run.code == Some(0) && report["drive_state"] == "completed";
    (done, run)
}

#[test]
fn ingest_and_adoption_over_a_faulty_service_storage_finish_and_restore_equal() {
    let scratch = temp();
    let root = scratch.path();
    let (service, faulty) = faulty_service(root, plan(71));
    let site = Site::new(&service, root);
    site.stage();
    let prepared = site.prepare_two_drives();
    let drives = prepared["set"]["drives"].as_array().cloned().unwrap_or_default();
    site.ship("1Z999AA10123456784").ok();
    site.datacenter(&service, &["receive", "--job", JOB]).run().ok();

    faulty.set_active(true);
    // Set when the station has ingested every drive but could not package the job.
    let package_next = std::cell::Cell::new(false);
    for n in 1..=drives.len() as u32 {
        let (done, runs) = until_done(
            5,
            || match package_next.get() {
                true => {
                    let run = site.datacenter(&service, &["package", "--job", JOB, "--json"]).run();
                    let view: Value = serde_json::from_str(&run.stdout).unwrap_or_default();
                    (run.code == Some(0) && view["state"] == "completed", run)
                }
                false => ingest_run(&site, &service, &site.drive(n)),
            },
            |run| {
                assert!(!run.stderr.contains("panicked"), "{run}");
                let report: Value = serde_json::from_str(&run.stdout).unwrap_or_default();
                // A transient storage fault must not be mistaken for a damaged
                // drive: the station sends the part again instead.
                assert_ne!(report["drive_state"], "completed_more_info", "a sound drive was marked for repair: {run}");
                // The next step the station names: `offsite datacenter
                // --operator-credentials FILE package --job NAME`.
                if run.stderr.contains("offsite datacenter") && run.stderr.contains(" package --job ") {
                    package_next.set(true);
                }
            },
        );
        if let Some(repair) =
            serde_json::from_str::<Value>(&done.stdout).ok().and_then(|r| r.get("files_needing_repair").cloned())
        {
            assert_eq!(repair, serde_json::json!([]), "{done}");
        }
        eprintln!("drive {n} ingested in {runs} runs: {}", done.stdout.trim());
    }
    assert_eq!(site.job_state(), "completed");

    write(&site.source.join("docs/changed.txt"), &text(30_000, 5));
    let (adopted, runs) = until_done(5, || backup_run(&site.agent), clear_backup_failure);
    eprintln!("adoption took {runs} runs: {}", adopted.stdout.trim());
    let target = root.join("restored");
    site.agent.cmd(["restore", "--target", utf8(&target), "--verify"]).run().ok();
    assert_same_tree(&site.source, &restored(&target, &site.source));
    let counts = faulty.counts();
    eprintln!("faults injected: {counts}");
    assert!(counts.total() >= 5, "too few faults to prove anything: {counts}");

    faulty.set_active(false);
    check_service_copies(&service);
}
