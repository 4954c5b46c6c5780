//! The whole offline-seeding path through the `offsite` binary, as the seed
//! document walks it: certgen, offline configure, the first backup into staging,
//! diskprep onto two image files, shipping details, the datacenter receiving and
//! ingesting the drives, adoption at the next backup, an incremental that sends
//! only the change, and a restore equal to the source. On SQLite + a local folder
//! and on PostgreSQL + Azurite; then the bad cases, each named.

mod common;

use std::path::Path;

use common::service::Service;
use common::site::*;
use common::*;

fn whole_path(service: &Service, scratch: &Path) {
    let site = Site::new(service, scratch);
    let staged = site.stage();

    // Later backups wait for the import job and send nothing.
    let waiting = site.agent.backup();
    assert_eq!(waiting["report"]["state"], "waiting", "{waiting}");
    assert_eq!(waiting["report"]["message"], format!("Waiting for import job {JOB} to complete"));

    let prepared = site.prepare_two_drives();
    let drives = prepared["set"]["drives"].as_array().cloned().unwrap_or_default();
    assert!(drives.len() >= 2, "the seed must span drives: {prepared}");
    assert_eq!(prepared["import_job"]["state"], "creating", "{prepared}");
    for drive in &drives {
        assert_eq!(drive["recovery_key"].as_str().map(|k| k.len()), Some(71), "{drive}");
    }

    site.ship("1Z999AA10123456784").ok().stdout_has("shipping details committed");
    assert_eq!(site.job_state(), "shipping");
    site.datacenter(service, &["receive", "--job", JOB]).run().ok();
    assert_eq!(site.job_state(), "received");
    for (i, _) in drives.iter().enumerate() {
        let done = site.ingest(service, &site.drive(i as u32 + 1)).ok().json();
        assert_eq!(done["drive_state"], "completed", "{done}");
    }
    assert_eq!(site.job_state(), "completed");
    let status = site.agent.cmd(["offline", "show"]).run().ok();
    assert!(status.stdout.contains("Completed"), "{status}");

    // Change a little, back up: the seed is adopted, only the change travels.
    write(&site.source.join("docs/changed.txt"), &text(30_000, 5));
    let incremental = site.agent.backup();
    assert_eq!(incremental["report"]["state"], "completed", "{incremental}");
    let sent = incremental["report"]["bytes_uploaded"].as_u64().unwrap();
    assert!(sent < 1 << 20, "after adoption the incremental sent {sent} bytes");
    let message = incremental["report"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("adopted"), "{message}");

    let points = site.agent.cmd(["recovery-points", "--json"]).run().ok().json();
    let points = points.as_array().cloned().unwrap_or_default();
    assert_eq!(points.len(), 2, "{points:?}");
    let seed = points.iter().find(|p| p["snapshot_id"] == staged["snapshot_id"]).expect("the seed's recovery point");
    assert_eq!(seed["source"], "offline_seed", "{seed}");

    let target = scratch.join("restored");
    site.agent.cmd(["restore", "--target", utf8(&target), "--verify"]).run().ok();
    assert_same_tree(&site.source, &restored(&target, &site.source));

    // Backups keep going online afterwards.
    let next = site.agent.backup();
    assert_eq!(next["report"]["state"], "completed", "{next}");
}

#[test]
fn offline_seeding_on_sqlite_and_a_local_folder() {
    let scratch = temp();
    let service = Service::start(scratch.path());
    whole_path(&service, scratch.path());
}

#[test]
fn offline_seeding_on_postgresql_and_azurite() {
    let scratch = temp();
    let (service, _postgres, _azurite) = Service::start_on_postgres_and_azurite(scratch.path());
    whole_path(&service, scratch.path());
}

/// The bad cases of the path, each refused or reported by name, nothing lost.
#[test]
fn bad_drives_and_bad_input_are_named() {
    let scratch = temp();
    let root = scratch.path();
    let service = Service::start(root);
    let site = Site::new(&service, root);
    site.stage();

    // certgen again: the application exists; the manual path is explained.
    let again = site
        .certgen(&[
            "create-application",
            "--subscription",
            &site.tenant.id,
            "--publish-settings",
            utf8(&site.tenant.publish),
            "--params-out",
            utf8(&root.join("second.xml")),
        ])
        .run();
    // This machine already has the registered certificate: nothing to do, said so.
    again.ok().stdout_has("already knows this machine's certificate");

    // Wrong publish settings: another subscription's.
    let other = service.subscription("fabrikam");
    offsite(["diskprep", "--staging", utf8(&site.staging), "--publish-settings", utf8(&other.publish), "--status"])
        .run()
        .fails()
        .stderr_has("belongs to subscription");

    site.prepare_two_drives();
    site.ship("1Z999AA10123456785").ok();

    // Ingest before the package is received: told to receive first.
    site.ingest(&service, &site.drive(1)).fails().stderr_has("receive");
    site.datacenter(&service, &["receive", "--job", JOB]).run().ok();

    // Not a drive at all.
    let junk = root.join("junk.img");
    write(&junk, &noise(1 << 20, 4));
    site.ingest(&service, &junk).code(17).stderr_has("not an offsite drive");

    // A flipped byte in a data block: the drive ends completed-more-info, the file
    // is named for a repair drive, the rest lands.
    flip_byte(&site.drive(1), 65536 + 1000);
    let damaged = site.ingest(&service, &site.drive(1)).code(17).json();
    assert_eq!(damaged["drive_state"], "completed_more_info", "{damaged}");
    let to_repair = damaged["files_needing_repair"].as_array().cloned().unwrap_or_default();
    assert!(!to_repair.is_empty(), "{damaged}");

    // The wrong import key opens nothing.
    let wrong_key = root.join("wrong.importkey");
    service
        .admin(["datacenter", "add", "ams2", "--address", "Elsewhere", "--import-key-out", utf8(&wrong_key)])
        .run()
        .ok();
    offsite([
        "datacenter",
        "--operator-credentials",
        utf8(&service.operator),
        "ingest",
        "--drive",
        utf8(&site.drive(2)),
        "--import-key",
        utf8(&wrong_key),
    ])
    .run()
    .code(17)
    .stderr_has("key")
    .stderr_has("Nothing was recorded against the drive");

    // The station's wrong key was not the drive's fault: with the right key the
    // second drive ingests.
    let second = site.ingest(&service, &site.drive(2)).ok().json();
    assert_eq!(second["drive_state"], "completed", "{second}");
    // Any drive left is broken beyond reading, and the operator ships it back.
    // Every drive is then done, and the job waits for a repair drive.
    let operator = {
        use offsite_api::files::OperatorCredentials;
        let creds = OperatorCredentials::read(&service.operator).unwrap();
        offsite_api::Client::new(&creds.endpoint(), &creds.token).unwrap()
    };
    let job = operator.find_import_job(JOB).unwrap();
    for lost in job.drives.iter().filter(|d| d.state == offsite_api::types::ImportDriveState::Received) {
        let update = offsite_api::types::DriveStateUpdate {
            state: offsite_api::types::ImportDriveState::ShippedBack,
            message: Some("the drive does not spin up".into()),
        };
        operator.set_import_drive_state(&job.id, &lost.drive_id, &update).unwrap();
    }
    // A station given a done drive of that job says what to do next.
    site.ingest(&service, &site.drive(2))
        .code(17)
        .stderr_has("ingested already")
        .stderr_has(&format!("`offsite datacenter package --job {JOB}` assembles its files"));
    let packaged = site.datacenter(&service, &["package", "--job", JOB, "--json"]).run().ok().json();
    assert_eq!(packaged["state"], "packaging", "{packaged}");
    let note = packaged["timeline"].as_array().and_then(|t| t.last()).map(|e| e["message"].to_string());
    assert!(note.as_deref().is_some_and(|n| n.contains("diskprep --repair")), "{packaged}");
}
