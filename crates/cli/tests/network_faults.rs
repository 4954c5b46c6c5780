//! The real agent talking to the real service through testbed's `FaultyProxy`:
//! connections reset, closed mid-stream, stalled until cut, and slowed. The
//! backup retries and finishes (or stops clearly and finishes when run again), the
//! restore through the same network equals the source, and the service's copy
//! passes `repo check --read-data`.
//!
//! `OFFSITE_SOAK=1` raises the fault rate and the number of rounds.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use offsite_testbed::{FaultyProxy, NetFault, NetworkPlan};

use common::faults::*;
use common::service::{Agent, Customer, Service};
use common::*;

/// Points the agent's registration at `url` (the proxy) instead of the service.
fn route_agent_through(agent: &Agent, service: &Service, url: &str) {
    let path = agent.home.join("state/registration.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(&service.url), "{}:\n{text}", path.display());
    std::fs::write(&path, text.replace(&service.url, url)).unwrap();
}

#[test]
fn an_agent_backup_through_a_faulty_network_finishes_and_restores_equal() {
    let scratch = temp();
    let root = scratch.path();
    let service = Service::start(root);
    let Customer { agent, source, .. } = service.customer(root, |source| {
        write_noise_file(&source.join("big.bin"), 6 << 20, 81);
        small_tree(&source.join("docs"));
    });

    let upstream: SocketAddr = format!("127.0.0.1:{}", service.port).parse().unwrap();
    let mut plan = NetworkPlan::uniform(82, if soak() { 0.3 } else { 0.15 });
    plan.stall_for = Duration::from_millis(1500);
    plan.within_bytes = 1 << 20;
    // Whatever the rolls, the first connections are cut each way.
    plan.script = vec![(1, NetFault::Reset), (2, NetFault::Close), (3, NetFault::Stall), (4, NetFault::Latency)];
    let proxy = FaultyProxy::start(upstream, plan).expect("the proxy starts");
    route_agent_through(&agent, &service, &format!("https://{}", proxy.addr()));

    let rounds = if soak() { 5 } else { 2 };
    let mut runs = Vec::new();
    for round in 0..rounds {
        write(&source.join(format!("docs/round-{round}.txt")), &text(50_000, 83 + round));
        let (_, n) = until_done(4, || backup_run(&agent), clear_backup_failure);
        runs.push(n);
    }
    let target = root.join("restored");
    agent.cmd(["restore", "--target", utf8(&target), "--verify"]).run().ok();
    assert_same_tree(&source, &restored(&target, &source));
    let counts = proxy.counts();
    eprintln!("backups took {runs:?} runs; network faults: {counts}");
    assert!(counts.resets >= 1 && counts.closes >= 1 && counts.stalls >= 1 && counts.slow >= 1, "{counts}");

    check_service_copies(&service);
}

/// The job report tells what crossed the link apart from what was stored: a pack
/// whose upload the network cut is sent again, and `bytes_uploaded` counts it
/// twice while `bytes_stored` counts it once (before, `bytes_uploaded` counted
/// each file once: 37.9 MiB reported while 57.7 MiB crossed).
#[test]
fn the_job_report_counts_an_upload_sent_again_after_the_link_broke() {
    let scratch = temp();
    let root = scratch.path();
    let service = Service::start(root);
    let Customer { tenant, agent, .. } = service.customer(root, |source| {
        write_noise_file(&source.join("big.bin"), 24 << 20, 84);
    });

    // The agent's first connections are reset somewhere in their first 8 MiB: the
    // job's own requests are a few kB (they end first), the repository's are
    // almost all the first pack's upload.
    let upstream: SocketAddr = format!("127.0.0.1:{}", service.port).parse().unwrap();
    let mut plan = NetworkPlan::none(85);
    plan.within_bytes = 8 << 20;
    plan.script = vec![(1, NetFault::Reset), (2, NetFault::Reset), (3, NetFault::Reset)];
    let proxy = FaultyProxy::start(upstream, plan).expect("the proxy starts");
    route_agent_through(&agent, &service, &format!("https://{}", proxy.addr()));

    let done = agent.backup();
    assert_eq!(done["report"]["state"], "completed", "{done}");
    let uploaded = json_u64(&done, &["report", "bytes_uploaded"]);
    let stored = json_u64(&done, &["report", "bytes_stored"]);
    eprintln!("bytes_uploaded {uploaded}, bytes_stored {stored}");
    assert!(stored > 24 << 20, "the service stored less than the file: {done}");
    assert!(uploaded >= stored + (1 << 20), "the pack sent again is not counted: {done}");
    // The service keeps both figures.
    use offsite_api::XmlCredentialFile;
    let settings = offsite_api::files::PublishSettings::read(&tenant.publish).expect("publish settings");
    let client = offsite_api::Client::new(&settings.service, &settings.management_credential).expect("a client");
    let status = agent.cmd(["status", "--json"]).run().ok().json();
    let jobs = client.jobs(json_str(&status, &["machine_id"])).expect("the machine's jobs");
    let job = jobs.iter().find(|j| Some(j.id.as_str()) == done["job_id"].as_str()).expect("the backup's job");
    assert_eq!((job.report.bytes_uploaded, job.report.bytes_stored), (uploaded, stored), "{jobs:?}");
    check_service_copies(&service);
}
