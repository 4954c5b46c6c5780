//! Full disks the staging and storage tests do not cover: a drive that fills up
//! under diskprep, and the service's data folder (its SQLite database) filling up.
//! Each gives one clear error naming the place and what to do, loses nothing, and
//! the work finishes once there is room. (A staging location that fills during the
//! backup is in offline_staging.rs; a full vault storage in service_faults.rs.)

mod common;

use common::service::{Agent, Service};
use common::site::*;
use common::tmpfs::Tmpfs;
use common::*;

/// The first drive is an image file on a disk too small for it: diskprep stops
/// naming that drive and saying what to do, and the journal keeps what was done.
/// Resuming while the full drive is still there stops the same way; once it is
/// removed, `--resume` with another drive in its place finishes a set that
/// ingests, is adopted and restores equal to the source.
#[test]
fn a_drive_that_fills_up_stops_diskprep_clearly_and_resume_finishes_on_another_drive() {
    let scratch = temp();
    let root = scratch.path();
    let service = Service::start(root);
    let site = Site::new(&service, root);
    site.stage();
    let small = root.join("small-disk");
    let _tmpfs = Tmpfs::mount(&small, "2m");
    let full_drive = small.join("drive-1.img");
    let journal = root.join("seed.journal.json");
    let (drive2, drive3) = (site.drive(2), site.drive(3));
    let first = site
        .diskprep(&[
            "--journal",
            utf8(&journal),
            "--drive",
            utf8(&full_drive),
            "--drive",
            utf8(&drive2),
            "--drive",
            utf8(&drive3),
            "--drive-size",
            DRIVE_SIZE,
            "--block-size",
            BLOCK_SIZE,
            "--yes",
        ])
        .run()
        .fails();
    first
        .stderr_has(&format!("the drive {} ran out of space", full_drive.display()))
        .stderr_has("--resume")
        .stderr_has("another drive in its place");
    assert!(journal.exists(), "the journal was not kept");

    let resume = |first_drive: &std::path::Path| {
        site.diskprep(&[
            "--journal",
            utf8(&journal),
            "--resume",
            "--drive-size",
            DRIVE_SIZE,
            "--drive",
            utf8(first_drive),
            "--drive",
            utf8(&drive2),
            "--drive",
            utf8(&drive3),
            "--yes",
            "--json",
        ])
        .run()
    };
    // The full drive is still in place: the same clear stop.
    resume(&site.drive(1)).fails().stderr_has("ran out of space");
    std::fs::remove_file(&full_drive).expect("remove the full drive's image");
    let resumed = resume(&site.drive(1)).ok().json();
    let drives = resumed["set"]["drives"].as_array().map_or(0, Vec::len) as u32;
    assert!(drives >= 2, "{resumed}");

    site.ship("1Z999AA10123456784").ok();
    site.datacenter(&service, &["receive", "--job", JOB]).run().ok();
    for n in 1..=drives {
        let done = site.ingest(&service, &site.drive(n)).ok().json();
        assert_eq!(done["drive_state"], "completed", "{done}");
    }
    assert_eq!(site.job_state(), "completed");
    let adopted = site.agent.backup();
    assert_eq!(adopted["report"]["state"], "completed", "{adopted}");
    site.agent.restore_equals(&root.join("restored"), &site.source);
}

/// The service's data folder (its SQLite database) fills up: requests that must
/// write answer that the service's database is full (not an internal error), the
/// service keeps running and serving reads, nothing stored before is lost, and
/// once the operator frees space the same requests succeed.
#[test]
fn a_full_data_folder_refuses_writes_clearly_and_recovers_when_space_is_freed() {
    let scratch = temp();
    let root = scratch.path();
    let data_dir = root.join("server");
    let tmpfs = Tmpfs::mount(&data_dir, "48m");
    let storage = root.join("storage");
    let service = Service::start_with(root, &["--storage", utf8(&storage)], &[]);
    let tenant = service.subscription("contoso");
    tenant.create_vault("main");
    let source = root.join("source");
    small_tree(&source);
    let agent = Agent::registered(root, &tenant, "main", "web01", &[&source]);
    let first = agent.backup();
    assert_eq!(first["report"]["state"], "completed", "{first}");

    let filler = tmpfs.fill(0);
    let refused =
        service.admin(["subscription", "create", "fabrikam", "-o", utf8(&root.join("f.publishsettings"))]).run();
    let refused = refused.fails().stderr_has("database").stderr_has("full");
    assert!(!refused.stderr.contains("internal"), "a full disk was reported as an internal error:\n{refused}");
    // Reads still work, and what was stored is all there.
    let points = agent.cmd(["recovery-points", "--json"]).run().ok().json();
    assert_eq!(points.as_array().map_or(0, Vec::len), 1, "{points}");

    std::fs::remove_file(&filler).expect("remove the filler");
    service.admin(["subscription", "create", "fabrikam", "-o", utf8(&root.join("f.publishsettings"))]).run().ok();
    write(&source.join("new.txt"), &text(10_000, 3));
    let second = agent.backup();
    assert_eq!(second["report"]["state"], "completed", "{second}");
    agent.restore_equals(&root.join("restored"), &source);
}
