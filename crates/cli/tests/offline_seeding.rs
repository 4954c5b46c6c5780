//! The whole offline-seeding path through the `offsite` binary, as the seed
//! document walks it: certgen, offline configure, the first backup into staging,
//! diskprep onto two image files, shipping details, the datacenter receiving and
//! ingesting the drives, adoption at the next backup, an incremental that sends
//! only the change, and a restore equal to the source. On SQLite + a local folder
//! and on PostgreSQL + Azurite; then the bad cases, each named.

mod common;

use std::path::{Path, PathBuf};

use common::service::{Agent, Service};
use common::site::*;
use common::*;

fn whole_path(service: &Service, scratch: &Path) {
    let site = Site::new(service, scratch);
    let staged = site.stage();

    // Later backups send nothing; before diskprep there is no import job to wait
    // for yet, and they say what prepares its drives.
    let waiting = site.agent.backup();
    assert_eq!(waiting["report"]["state"], "waiting", "{waiting}");
    let staging = site.staging.canonicalize().unwrap();
    let prepare = format!("offsite diskprep --agent-home {} --staging {}", utf8(&site.agent.home), utf8(&staging));
    assert_eq!(
        waiting["report"]["message"],
        format!("Waiting for the drives of import job {JOB}: run `{prepare}` to prepare them")
    );

    let prepared = site.prepare_two_drives();
    // Now the job exists, and backups wait for it.
    let waiting = site.agent.backup();
    assert_eq!(waiting["report"]["state"], "waiting", "{waiting}");
    assert_eq!(waiting["report"]["message"], format!("Waiting for import job {JOB} to complete"));
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

/// A printed next step, run as a user types it: split into words (the test's
/// paths hold no spaces), in `dir`.
fn typed(line: &str, dir: &Path) -> Cli {
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"offsite"), "not a command: {line}");
    offsite(&words[1..]).current_dir(dir)
}

/// The text between the first pair of backquotes after `after` in `text`.
fn quoted_after<'a>(text: &'a str, after: &str) -> &'a str {
    let start = text.find(after).unwrap_or_else(|| panic!("no {after:?} in:\n{text}")) + after.len();
    let rest = &text[start..];
    let open = rest.find('`').unwrap_or_else(|| panic!("no command after {after:?} in:\n{text}")) + 1;
    let close = rest[open..].find('`').expect("closing backquote") + open;
    &rest[open..close]
}

/// certgen on a second machine: the application exists, so it exits 16 with the
/// manual steps, and each step, typed as printed, works on that machine's files.
#[test]
fn certgen_on_a_second_machine_prints_steps_that_work_as_typed() {
    let scratch = temp();
    let root = scratch.path();
    let service = Service::start(root);
    let site = Site::new(&service, root);
    site.configure_offline();

    let second = root.join("agent-second");
    let params = root.join("second.xml");
    // certgen on the second machine, as its user types it.
    let create_application = || {
        offsite([
            "certgen",
            "--agent-home",
            utf8(&second),
            "create-application",
            "--subscription",
            &site.tenant.id,
            "--publish-settings",
            utf8(&site.tenant.publish),
            "--params-out",
            utf8(&params),
        ])
        .run()
    };
    let run = create_application().code(16);
    let step = |n: u32| -> String {
        let prefix = format!("  {n}. ");
        let line =
            run.stderr.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap_or_else(|| panic!("no step {n}:\n{run}"));
        line.trim_end_matches(" (or upload it in the portal)").to_string()
    };
    let home = format!("--agent-home {}", utf8(&second));
    for n in [1, 3] {
        assert!(
            step(n).starts_with(&format!("offsite certgen {home} ")),
            "step {n} does not name the agent home:\n{run}"
        );
    }
    let exported = typed(&step(1), root).run().ok();
    let thumbprint = run.stderr.split("(thumbprint ").nth(1).and_then(|t| t.split(')').next()).unwrap();
    exported.stdout_has(thumbprint);
    typed(&step(2), root).run().ok().stdout_has("certificate uploaded");
    typed(&step(3).replace("NAME", "contosostore"), root).run().ok();
    // With its certificate known, certgen on the second machine has nothing left to do.
    create_application().ok().stdout_has("already knows this machine's certificate");
}

/// diskprep on the source machine with `--agent-home`: its journal and shipping
/// file stay with the agent's files, counts agree with their nouns, and the next
/// step it prints works as typed.
#[test]
fn diskprep_with_an_agent_home_keeps_its_files_there_and_prints_steps_that_work() {
    let scratch = temp();
    let root = scratch.path();
    let service = Service::start(root);
    let site = Site::new(&service, root);
    site.stage();
    let elsewhere = root.join("xdg-state");
    let prepared = offsite([
        "diskprep",
        "--agent-home",
        utf8(&site.agent.home),
        "--staging",
        utf8(&site.staging),
        "--drive",
        utf8(&site.drive(1)),
        "--drive-size",
        "32MiB",
        "--block-size",
        BLOCK_SIZE,
        "--yes",
    ])
    .env("XDG_STATE_HOME", &elsewhere)
    .run()
    .ok()
    .stdout_has(&format!("prepared 1 drive for import job {JOB}:"));
    let journal = site.agent.home.join("diskprep").join(format!("{JOB}.journal.json"));
    assert!(journal.exists(), "no journal at {}:\n{prepared}", journal.display());
    assert!(!elsewhere.join("offsite").exists(), "diskprep wrote outside the agent home:\n{prepared}");

    let next = quoted_after(&prepared.stdout, "When the package is handed to the carrier, run ");
    assert_eq!(
        next,
        format!(
            "offsite diskprep --agent-home {} --staging {} --update-shipping",
            utf8(&site.agent.home),
            utf8(&site.staging)
        )
    );
    let shipped = typed(next, root)
        .env("XDG_STATE_HOME", &elsewhere)
        .args(&[
            "--carrier",
            "UPS",
            "--tracking-number",
            "1Z999AA10123456786",
            "--return-address",
            "Contoso\\n1 Main St",
            "--contact",
            "it@contoso.example",
            "--yes",
        ])
        .run()
        .ok()
        .stdout_has("(1 drive, shipped");
    assert!(site.agent.home.join("diskprep").join(format!("{JOB}.shipping.json")).exists(), "{shipped}");
    assert!(!elsewhere.join("offsite").exists(), "diskprep wrote outside the agent home:\n{shipped}");
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
    // `diskprep --status --json | head`: a reader that stops early ends it quietly.
    site.diskprep(&["--status", "--json"]).run_into_closed_pipe().ended_by_the_closed_pipe();
    site.ship("1Z999AA10123456785").ok();

    let operator = {
        use offsite_api::files::OperatorCredentials;
        let creds = OperatorCredentials::read(&service.operator).unwrap();
        offsite_api::Client::new(&creds.endpoint(), &creds.token).unwrap()
    };
    let states = || {
        let job = operator.find_import_job(JOB).unwrap();
        let drives: Vec<_> = job.drives.iter().map(|d| (d.drive_id.clone(), d.state)).collect();
        (job.state, drives, job.timeline.len())
    };

    // Ingest before the package is received: the drive is refused (17), told to
    // receive first with a command that works as printed, and nothing changes.
    let shipped = states();
    let receive = format!("offsite datacenter --station-credentials {} receive --job {JOB}", utf8(&site.station));
    site.ingest(&service, &site.drive(1)).code(17).stderr_has("was not received").stderr_has(&receive);
    assert_eq!(states(), shipped, "a refused drive changed the job");
    site.datacenter(&service, &["receive", "--job", JOB]).run().ok();

    // The wrong import key opens nothing and records nothing: the drive and the
    // job stay as they were.
    let received = states();
    let wrong_key = root.join("wrong.importkey");
    service
        .admin(["datacenter", "add", "ams2", "--address", "Elsewhere", "--import-key-out", utf8(&wrong_key)])
        .run()
        .ok();
    offsite([
        "datacenter",
        "--station-credentials",
        utf8(&site.station),
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
    assert_eq!(states(), received, "the wrong key changed the drive or the job");
    assert_eq!(site.job_state(), "received");
    // Another datacenter's station credential does not even see the job.
    let ams2_station = root.join("ams2.station-credentials");
    service.admin(["datacenter", "station-credential", "issue", "ams2", "--output", utf8(&ams2_station)]).run().ok();
    offsite(["datacenter", "--station-credentials", utf8(&ams2_station), "status", "--job", JOB])
        .run()
        .code(1)
        .stderr_has("does not exist, or you may not see it");

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

    // The station's wrong key was not the drive's fault: with the right key the
    // second drive ingests.
    let second = site.ingest(&service, &site.drive(2)).ok().json();
    assert_eq!(second["drive_state"], "completed", "{second}");
    // Any drive left is broken beyond reading, and the operator ships it back.
    // Every drive is then done, and the job waits for a repair drive.
    let job = operator.find_import_job(JOB).unwrap();
    for lost in job.drives.iter().filter(|d| d.state == offsite_api::types::ImportDriveState::Received) {
        let update = offsite_api::types::DriveStateUpdate {
            state: offsite_api::types::ImportDriveState::ShippedBack,
            message: Some("the drive does not spin up".into()),
        };
        operator.set_import_drive_state(&job.id, &lost.drive_id, &update).unwrap();
    }
    // A station given a done drive of that job says what to do next.
    site.ingest(&service, &site.drive(2)).code(17).stderr_has("ingested already").stderr_has(&format!(
        "`offsite datacenter --station-credentials {} package --job {JOB}` assembles its files",
        utf8(&site.station)
    ));
    let packaged = site.datacenter(&service, &["package", "--job", JOB, "--json"]).run().ok().json();
    assert_eq!(packaged["state"], "packaging", "{packaged}");
    let note = packaged["timeline"].as_array().and_then(|t| t.last()).map(|e| e["message"].to_string());
    assert!(note.as_deref().is_some_and(|n| n.contains("diskprep --repair")), "{packaged}");

    // The station's steps are recorded as its credential's, and revoking it
    // locks the station out at once (exit 14, the refused credential).
    let listed = service.admin(["datacenter", "station-credential", "list", "ams1", "--json"]).run().ok().json();
    let id = listed[0]["id"].as_str().expect("the station credential is listed").to_string();
    let job = operator.find_import_job(JOB).unwrap();
    assert!(job.timeline.iter().any(|e| e.actor == format!("station {id}")), "{:?}", job.timeline);
    service.admin(["datacenter", "station-credential", "revoke", "ams1", &id]).run().ok().stdout_has("revoked");
    site.datacenter(&service, &["status", "--job", JOB]).run().code(14).stderr_has("station credential was revoked");
}

/// One import job for two machines: their staging locations side by side in one
/// folder go onto one drive set; ingest keeps each machine's files in its own
/// folder of the container; each machine adopts only its own seed (matched by
/// its repository's config) and continues incrementally; both restore equal.
#[test]
fn two_machines_on_one_import_job_on_sqlite_and_a_local_folder() {
    let scratch = temp();
    let service = Service::start(scratch.path());
    two_machines_on_one_import_job(&service, scratch.path());
}

#[test]
fn two_machines_on_one_import_job_on_postgresql_and_azurite() {
    let scratch = temp();
    let (service, _postgres, _azurite) = Service::start_on_postgres_and_azurite(scratch.path());
    two_machines_on_one_import_job(&service, scratch.path());
}

fn two_machines_on_one_import_job(service: &Service, root: &Path) {
    let staging_root = root.join("staging");
    let mut first = Site::with_source(service, root, 1, |source| {
        write_noise_file(&source.join("first.bin"), 3 << 20, 31);
        small_tree(&source.join("docs"));
    });
    first.staging = staging_root.join("fs01");
    first.stage();

    let source = root.join("source-fs02");
    std::fs::create_dir_all(&source).unwrap();
    write_noise_file(&source.join("second.bin"), 3 << 20, 32);
    small_tree(&source.join("docs"));
    let second = Agent::registered_with(root, &first.tenant, "main", "fs02", &[&source], &["--pack-size", "1"]);
    second.configure_offline(&staging_root.join("fs02"), JOB, &first.tenant.id).ok();
    let staged = second.backup();
    assert_eq!(staged["report"]["state"], "completed", "{staged}");
    assert_eq!(staged["report"]["bytes_uploaded"], 0, "{staged}");

    let drives: Vec<PathBuf> = (1..=4).map(|n| first.drive(n)).collect();
    let diskprep = |extra: &[&str]| {
        let mut args = vec![
            "diskprep",
            "--staging",
            utf8(&staging_root),
            "--publish-settings",
            utf8(&first.tenant.publish),
            "--drive-size",
            DRIVE_SIZE,
            "--block-size",
            BLOCK_SIZE,
            "--yes",
        ];
        for drive in &drives {
            args.extend(["--drive", utf8(drive)]);
        }
        args.extend_from_slice(extra);
        offsite(args).env("XDG_STATE_HOME", root.join("copy-computer"))
    };
    // Anything else in the folder would go to no machine: refused, named.
    write(&staging_root.join("notes.txt"), b"not a staging location");
    diskprep(&[]).run().fails().stderr_has("notes.txt").stderr_has("move it out");
    assert!(!drives[0].exists(), "nothing is written before the folder is accepted");
    std::fs::remove_file(staging_root.join("notes.txt")).unwrap();

    let prepared = diskprep(&[]).run().ok();
    prepared.stdout_has(&format!("import job {JOB} carries the staging locations of 2 machines: fs01, fs02"));
    let job = first.diskprep(&["--status", "--json"]).run().ok().json();
    let listed = job["file_list"]["files"].as_u64().unwrap();
    let used = drives.iter().filter(|d| d.exists()).count();
    assert!(used >= 2, "the two seeds span drives");

    first.ship("1Z999AA10123456785").ok();
    first.datacenter(service, &["receive", "--job", JOB]).run().ok();
    for drive in drives.iter().take(used) {
        let done = first.ingest(service, drive).ok().json();
        assert_eq!(done["drive_state"], "completed", "{done}");
    }
    assert_eq!(first.job_state(), "completed");

    // Each machine adopts its own seed: only its change travels, and its points
    // are its own.
    for (agent, source, name) in [(&first.agent, &first.source, "fs01"), (&second, &source, "fs02")] {
        write(&source.join("docs/changed.txt"), &text(20_000, name.len() as u64));
        let next = agent.backup();
        assert_eq!(next["report"]["state"], "completed", "{name}: {next}");
        let message = next["report"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("adopted"), "{name}: {message}");
        let sent = next["report"]["bytes_uploaded"].as_u64().unwrap();
        assert!(sent < 1 << 20, "{name}: after adoption the incremental sent {sent} bytes");
        let points = agent.cmd(["recovery-points", "--json"]).run().ok().json();
        assert_eq!(points.as_array().map(Vec::len), Some(2), "{name}: {points}");
        agent.restore_equals(&root.join(format!("restored-{name}")), source);
    }
    assert!(listed > 0);
}
