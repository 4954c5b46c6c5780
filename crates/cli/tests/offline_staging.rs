//! Offline seeding on the agent's side: the first full backup goes into a staging
//! repository with the vault repository's identity, nothing large goes over the
//! network, and later backups wait for the import job.

mod common;

use std::time::Duration;

use common::service::{Agent, Service, AGENT_PASSPHRASE};
use common::tmpfs::Tmpfs;
use common::*;

fn configure(agent: &Agent, staging: &std::path::Path, job: &str) -> Run {
    agent
        .cmd([
            "offline",
            "configure",
            "--staging",
            utf8(staging),
            "--import-job",
            job,
            "--subscription",
            "sub",
            "--storage-account",
            "contosostore",
            "--container",
            "seeds",
        ])
        .run()
}

#[test]
fn the_first_backup_goes_to_staging_and_later_ones_wait_for_the_import_job() {
    let scratch = temp();
    let root = scratch.path();
    let service = Service::start(root);
    let tenant = service.subscription("contoso");
    let vault_id = tenant.create_vault("main");
    let source = root.join("source");
    std::fs::create_dir_all(&source).unwrap();
    write_noise_file(&source.join("big.bin"), 6 << 20, 11);
    small_tree(&source.join("docs"));
    let agent = Agent::registered(root, &tenant, "main", "fs01", &[&source]);
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

    // Until the import job completes, backups wait and send nothing.
    let second = agent.backup();
    assert_eq!(second["report"]["state"], "waiting", "{second}");
    assert_eq!(second["report"]["message"], "Waiting for import job seed-2026-11 to complete");
    assert_eq!(second["report"]["bytes_uploaded"], 0);
    let status = agent.cmd(["status"]).run().ok();
    assert!(status.stdout.contains("Waiting for import job seed-2026-11 to complete"), "{status}");
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
    let tenant = service.subscription("contoso");
    tenant.create_vault("main");
    let source = root.join("source");
    std::fs::create_dir_all(&source).unwrap();
    write_noise_file(&source.join("big.bin"), 30 << 20, 3);
    let agent = Agent::registered(root, &tenant, "main", "fs01", &[&source]);

    let used = root.join("used");
    write(&used.join("someone-elses.txt"), b"data");
    configure(&agent, &used, "seed-1").fails().stderr_has("not empty");

    // A 16 MiB tmpfs cannot take 30 MiB: the backup says how much it needs.
    let small = root.join("small");
    let _tmpfs = Tmpfs::mount(&small, "16m");
    configure(&agent, &small, "seed-1").ok();
    agent.cmd(["backup", "--now"]).run().fails().stderr_has("may need up to 30 MiB").stderr_has("free space");
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
    let tenant = service.subscription("contoso");
    tenant.create_vault("main");
    let source = root.join("source");
    std::fs::create_dir_all(&source).unwrap();
    for i in 0..6u64 {
        write_noise_file(&source.join(format!("part{i}.bin")), 16 << 20, 40 + i);
    }
    let agent = Agent::registered(root, &tenant, "main", "fs01", &[&source]);
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
