//! Offline restore through the binary: the customer asks for its recovery points
//! on drives (sized first), the datacenter's station writes them onto two image
//! files keyed to the customer and keeps nothing, the drives are shipped; the
//! machine is lost, a replacement registers in its place with the vault
//! credentials and the passphrase, restores from the drives byte for byte, a
//! damaged drive is named and filled from the service, and the next backup of
//! the replacement sends only the change.

mod common;

use std::io::{Seek, SeekFrom, Write};

use common::service::{Agent, Service};
use common::site::*;
use common::*;

#[test]
fn an_export_restores_a_replacement_machine_on_sqlite_and_a_local_folder() {
    let scratch = temp();
    let service = Service::start(scratch.path());
    export_and_restore(&service, scratch.path());
}

#[test]
fn an_export_restores_a_replacement_machine_on_postgresql_and_azurite() {
    let scratch = temp();
    let (service, _postgres, _azurite) = Service::start_on_postgres_and_azurite(scratch.path());
    export_and_restore(&service, scratch.path());
}

fn export_and_restore(service: &Service, root: &std::path::Path) {
    // Packs of 1 MiB: a damaged block then spoils one pack, not the whole set.
    let site = Site::with_source(service, root, 1, |source| {
        write_noise_file(&source.join("big.bin"), 5 << 20, 31);
        small_tree(&source.join("docs"));
    });
    site.agent.backup();
    write(&site.source.join("docs/later.txt"), b"written before the second point");
    site.agent.backup();

    // Sized, then requested.
    let request = |more: &[&str]| {
        let mut args = vec!["export", "request", "--name", "fs01-restore", "--drive-size", "64MiB", "--json"];
        args.extend_from_slice(more);
        site.agent.cmd(args).run()
    };
    request(&[]).code(1).stderr_has("run again with --yes");
    let job = request(&["--yes"]).ok().json();
    assert_eq!(job["state"], "requested", "{job}");
    assert_eq!(job["sizing"]["drives_needed"], 1, "{job}");

    // The station writes two small image drives and forgets the job's keys.
    let (d1, d2, d3) = (root.join("x1.img"), root.join("x2.img"), root.join("x3.img"));
    let spool = root.join("spool");
    let written = site
        .datacenter(
            service,
            &[
                "export",
                "--job",
                "fs01-restore",
                "--drive",
                utf8(&d1),
                "--drive",
                utf8(&d2),
                "--drive",
                utf8(&d3),
                "--drive-size",
                "6MiB",
                "--spool",
                utf8(&spool),
                "--yes",
                "--json",
            ],
        )
        .run()
        .ok()
        .json();
    let drives = written["drives"].as_array().unwrap().len();
    assert!(drives >= 2, "the set spans drives: {written}");
    assert!(!spool.join("fs01-restore").exists(), "the spool and its journal (the recovery keys) are gone");
    site.datacenter(
        service,
        &["ship-export", "--job", "fs01-restore", "--carrier", "UPS", "--tracking-number", "1Z999AA10123456784"],
    )
    .run()
    .ok();
    // The customer verifies the drives' chain of custody: each written and
    // shipped by the datacenter's station, signed and chained.
    let custody = site.agent.cmd(["export", "custody", "fs01-restore", "--json"]).run().ok().json();
    assert_eq!(custody["verified"], true, "{custody}");
    assert_eq!(custody["events"].as_u64(), Some(2 * drives as u64), "{custody}");
    for drive in custody["drives"].as_array().unwrap() {
        let kinds: Vec<&str> =
            drive["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["written", "shipped"], "{drive}");
    }
    site.agent.cmd(["export", "custody", "fs01-restore"]).run().ok().stdout_has("verified: every event is signed");
    site.agent.cmd(["export", "delivered", "fs01-restore"]).run().ok();

    // The machine is lost. Its replacement: vault credentials and the passphrase.
    let replacement = Agent::new(root, "fs01-new");
    let credentials = site.tenant.vault_credentials("main", "fs01-new.vaultcredentials");
    replacement.register_with(&credentials, "fs01", &["--replaces", "fs01"]).ok();
    // Whoever still holds the lost machine cannot write to its repository.
    let old = site.agent.cmd(["backup", "--now"]).run();
    assert!(old.code != Some(0) && old.stderr.contains("credential"), "{old}");
    let status = replacement.cmd(["export", "status", "fs01-restore", "--json"]).run().ok().json();
    let keys: Vec<String> =
        status["drives"].as_array().unwrap().iter().map(|d| d["recovery_key"].as_str().unwrap().to_string()).collect();
    assert_eq!(keys.len(), drives);
    let from_drives = |target: &std::path::Path, more: &[&str]| {
        let mut args = vec!["restore", "--target", utf8(target)];
        for drive in [&d1, &d2, &d3].into_iter().take(drives) {
            args.extend(["--from-drive", utf8(drive)]);
        }
        for key in &keys {
            args.extend(["--recovery-key", key.as_str()]);
        }
        args.extend_from_slice(more);
        replacement.cmd(args).run()
    };
    let target = root.join("restored");
    from_drives(&target, &[]).ok();
    assert_same_tree(&site.source, &restored(&target, &site.source));

    // A damaged block in the middle of the first drive: named, the rest restored;
    // with the service's help, everything.
    {
        let mut image = std::fs::OpenOptions::new().write(true).open(&d1).unwrap();
        image.seek(SeekFrom::Start(65_536 + 2 * (1 << 20) + 100)).unwrap();
        image.write_all(b"ransomware was here").unwrap();
    }
    let damaged = root.join("restored-damaged");
    let run = from_drives(&damaged, &[]).code(3);
    assert!(run.stderr.contains("could not restore") && run.stderr.contains("block"), "{run}");
    let filled = root.join("restored-filled");
    from_drives(&filled, &["--fill-from-service"]).ok().stdout_has("filled from the service what");
    assert_same_tree(&site.source, &restored(&filled, &site.source));

    // Or by a repair export: the damaged files, named, come on a new drive, and
    // the two sets restore everything together.
    let mut repair = vec!["export", "repair", "fs01-restore", "--name", "fs01-repair", "--yes"];
    for drive in [&d1, &d2, &d3].into_iter().take(drives) {
        repair.extend(["--from-drive", utf8(drive)]);
    }
    for key in &keys {
        repair.extend(["--recovery-key", key.as_str()]);
    }
    let asked = replacement.cmd(repair.clone()).run().ok();
    asked.stdout_has("lack or hold damaged").stdout_has("block");
    let repair_job = replacement.cmd(["export", "status", "fs01-repair", "--json"]).run().ok().json();
    let carried = repair_job["sizing"]["files"].as_u64().unwrap();
    assert!(carried >= 1 && carried < job["sizing"]["files"].as_u64().unwrap(), "{repair_job}");
    let r1 = root.join("r1.img");
    let spool = root.join("spool");
    // One drive for what is repaired (a few packs of 1 MiB and the identity).
    let export = ["export", "--job", "fs01-repair", "--drive", utf8(&r1), "--drive-size", "16MiB", "--spool"];
    let mut export = export.to_vec();
    export.extend([utf8(&spool), "--yes", "--json"]);
    site.datacenter(service, &export).run().ok();
    let both = root.join("restored-repaired");
    // The first set given is read first: the original's drives, then the repair's.
    let mut args = vec!["restore", "--target", utf8(&both)];
    for drive in [&d1, &d2, &d3].into_iter().take(drives) {
        args.extend(["--from-drive", utf8(drive)]);
    }
    args.extend(["--from-drive", utf8(&r1), "--export-job", "fs01-repair"]);
    for key in &keys {
        args.extend(["--recovery-key", key.as_str()]);
    }
    replacement.cmd(args).run().ok().stdout_has("filled from a repair export's drives");
    assert_same_tree(&site.source, &restored(&both, &site.source));

    // The replacement goes on incrementally from the old machine's points.
    replacement.cmd(["protect", "add", utf8(&site.source)]).run().ok();
    write(&site.source.join("docs/after.txt"), b"the first change on the new machine");
    let report = replacement.backup();
    let sent = report["report"]["bytes_uploaded"].as_u64().unwrap();
    assert!(sent < 200_000, "the first backup of the replacement sends the change only: {sent} bytes\n{report}");
    replacement.cmd(["export", "complete", "fs01-restore"]).run().ok();
}
