//! Offline seeding on the agent's side: the first full backup goes into a staging
//! repository with the vault repository's identity, nothing large goes over the
//! network, and later backups wait for the import job.

mod common;

use std::time::Duration;

use common::service::{Agent, Customer, Service, AGENT_PASSPHRASE};
use common::tmpfs::Tmpfs;
use common::*;

fn configure(agent: &Agent, staging: &std::path::Path, job: &str) -> Run {
    agent.configure_offline(staging, job, "sub")
}

#[test]
fn the_first_backup_goes_to_staging_and_later_ones_wait_for_the_import_job() {
    let scratch = temp();
    let root = scratch.path();
    let service = Service::start(root);
    let Customer { vault_id, agent, source, .. } = service.customer(root, |source| {
        write_noise_file(&source.join("big.bin"), 6 << 20, 11);
        small_tree(&source.join("docs"));
    });
    let staging = root.join("staging");
    configure(&agent, &staging, "seed-2026-11").ok();

    // The staging repository has the vault repository's identity: the same config.
    let status = agent.cmd(["status", "--json"]).run().ok().json();
    let machine_id = status["machine_id"].as_str().unwrap().to_string();
    let vault_repo = service.data_dir.join("storage/vaults").join(&vault_id).join(&machine_id);
    assert_eq!(std::fs::read(staging.join("config")).unwrap(), std::fs::read(vault_repo.join("config")).unwrap());

    let first = agent.backup();
    assert_eq!(first["report"]["state"], "completed", "{first}");
    assert_eq!(first["report"]["bytes_uploaded"], 0, "the seed must not travel over the network: {first}");
    let message = first["report"]["message"].as_str().unwrap();
    assert!(message.contains("staging") && message.contains("seed-2026-11"), "{message}");
    let vault_data = vault_repo.join("data");
    let uploaded = std::fs::read_dir(&vault_data).map(|d| d.count()).unwrap_or(0);
    assert_eq!(uploaded, 0, "packs reached the vault");

    // The staging folder is a complete repository the same passphrase opens.
    let restore_target = root.join("from-staging");
    offsite(["repo", "--repo", utf8(&staging), "restore", "latest", "--target", utf8(&restore_target), "--verify"])
        .password(AGENT_PASSPHRASE)
        .run()
        .ok();
    assert_same_tree(&source, &restored(&restore_target, &source));

    // Until the import job completes, backups wait and send nothing. diskprep has
    // not created the job yet, so they say what prepares its drives.
    let not_prepared = format!(
        "Waiting for the drives of import job seed-2026-11: run `offsite diskprep --agent-home {} --staging {}` to \
         prepare them",
        utf8(&agent.home),
        utf8(&staging.canonicalize().unwrap())
    );
    let second = agent.backup();
    assert_eq!(second["report"]["state"], "waiting", "{second}");
    assert_eq!(second["report"]["message"], not_prepared.as_str());
    assert_eq!(second["report"]["bytes_uploaded"], 0);
    let status = agent.cmd(["status"]).run().ok();
    assert!(status.stdout.contains(&not_prepared), "{status}");
    let shown = agent.cmd(["offline", "show"]).run().ok();
    assert!(shown.stdout.contains(&not_prepared), "{shown}");
    let shown = agent.cmd(["offline", "show", "--json"]).run().ok().json();
    assert_eq!(shown["offline"]["staged_snapshot"], first["snapshot_id"], "{shown}");

    // A second configuration for another job is refused while one is active.
    configure(&agent, &root.join("other"), "seed-other").fails().stderr_has("already configured");

    // Cancelling sends later backups over the network again.
    agent.cmd(["offline", "cancel"]).run().ok();
    let online = agent.backup();
    assert_eq!(online["report"]["state"], "completed", "{online}");
    assert!(online["report"]["bytes_uploaded"].as_u64().unwrap() > 6 << 20, "{online}");
}

#[test]
fn a_staging_folder_that_is_not_empty_or_too_small_is_refused() {
    let scratch = temp();
    let root = scratch.path();
    let service = Service::start(root);
    let Customer { agent, .. } = service.customer(root, |source| {
        write_noise_file(&source.join("big.bin"), 30 << 20, 3);
    });

    let used = root.join("used");
    write(&used.join("someone-elses.txt"), b"data");
    configure(&agent, &used, "seed-1").fails().stderr_has("not empty");

    // A 16 MiB tmpfs cannot take 30 MiB: the backup says how much it needs.
    let small = root.join("small");
    let _tmpfs = Tmpfs::mount(&small, "16m");
    configure(&agent, &small, "seed-1").ok();
    agent.cmd(["backup", "--now"]).run().fails().stderr_has("may need up to 30 MiB").stderr_has("free space");
}

/// An agent user is answered in the agent's terms: a name the service would refuse
/// is refused where it is typed, before anything is written; a restore with no
/// recovery point names `offsite agent` commands, with the `--agent-home` given.
#[test]
fn an_agent_user_is_refused_early_and_pointed_to_agent_commands() {
    let scratch = temp();
    let root = scratch.path();
    let service = Service::start(root);
    let Customer { agent, .. } = service.customer(root, |source| {
        small_tree(source);
    });
    let home = utf8(&agent.home);

    // 'lj' passes the API's generic name check but not the service's rule for
    // import jobs (3 to 64 characters): refused here, the staging folder untouched.
    let staging = root.join("staging");
    for bad in ["lj", "seed.2026"] {
        configure(&agent, &staging, bad).code(1).stderr_has(&format!("'{bad}' is not a valid import job name"));
    }
    assert!(!staging.exists(), "a refused configuration created the staging folder");
    agent.cmd(["offline", "show"]).run().ok().stdout_has("offline seeding is not configured");

    // No recovery point yet: the hint is the agent's backup, not `offsite repo`.
    let target = root.join("restored");
    let none = agent.cmd(["restore", "--target", utf8(&target)]).run().code(1);
    let none = none
        .stderr_has("no recovery point yet")
        .stderr_has(&format!("`offsite agent --agent-home {home} backup --now`"));
    assert!(!none.stderr.contains("offsite repo"), "{none}");
    agent.backup();
    let unknown = agent.cmd(["restore", "--point", "deadbeef", "--target", utf8(&target)]).run().code(1);
    let unknown = unknown
        .stderr_has("no recovery point matches 'deadbeef'")
        .stderr_has(&format!("`offsite agent --agent-home {home} recovery-points`"));
    assert!(!unknown.stderr.contains("offsite repo"), "{unknown}");

    // A machine that is not registered is told to register this agent home.
    let other = Agent::new(root, "unregistered");
    other
        .cmd(["backup", "--now"])
        .run()
        .code(15)
        .stderr_has(&format!("`offsite agent --agent-home {} register --vault-credentials FILE`", utf8(&other.home)));
}

/// Bytes of the files under `dir` (recursively).
fn bytes_under(dir: &std::path::Path) -> u64 {
    listing(dir).values().map(|size| size.unwrap_or(0)).sum()
}

/// The staging location fills up while the backup writes (after the up-front space
/// check passed): the backup stops with one clear error naming the place and what
/// to do, the staging repository stays sound, and once space is freed the next
/// backup finishes and the staging copy restores equal to the source.
#[test]
fn a_staging_location_that_fills_during_the_backup_stops_clearly_and_finishes_after_space_is_freed() {
    let scratch = temp();
    let root = scratch.path();
    let service = Service::start(root);
    let Customer { agent, source, .. } = service.customer(root, |source| {
        for i in 0..6u64 {
            write_noise_file(&source.join(format!("part{i}.bin")), 16 << 20, 40 + i);
        }
    });
    let staging = root.join("staging");
    let tmpfs = Tmpfs::mount(&staging, "160m");
    configure(&agent, &staging, "seed-1").ok();

    let mut backup = agent.cmd(["backup", "--now"]).spawn(&root.join("backup.log"));
    // Once the first pack is written (the space check is behind it), the disk fills.
    assert!(wait_for(Duration::from_secs(60), || bytes_under(&staging.join("data")) > 0), "no pack was written");
    let filler = tmpfs.fill(0);
    let mut code = None;
    assert!(
        wait_for(Duration::from_secs(60), || {
            code = backup.try_wait();
            code.is_some()
        }),
        "the backup hung"
    );
    let log = backup.output();
    assert_ne!(code.and_then(|c| c.code()), Some(0), "the backup did not notice the full disk:\n{log}");
    assert!(log.contains("no space left") && log.contains(utf8(&staging)), "unclear:\n{log}");
    assert!(log.contains("free some space") && !log.contains("panicked"), "{log}");

    std::fs::remove_file(&filler).unwrap();
    let report = agent.backup();
    assert_eq!(report["report"]["state"], "completed", "{report}");
    repo(&staging, ["check", "--read-data"]).password(AGENT_PASSPHRASE).run().ok();
    let target = root.join("restored");
    repo(&staging, ["restore", "latest", "--target", utf8(&target)]).password(AGENT_PASSPHRASE).run().ok();
    assert_same_tree(&source, &restored(&target, &source));
}
