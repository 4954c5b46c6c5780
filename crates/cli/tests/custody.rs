//! The chain of custody through the `offsite` binary: a whole seeding job
//! (diskprep on the source machine, shipping, the station receiving, ingesting
//! and wiping the drives) leaves a log that `offsite diskprep --verify-custody`
//! verifies, showing who handled each drive; an event removed from the service's
//! database, or altered there, is named and the command exits 18. Only the one
//! who handled a drive signs its event: another datacenter's station and the
//! application asking for a station's event are refused.

mod common;

use std::path::Path;

use common::service::Service;
use common::site::*;
use common::*;

use offsite_api::files::StationCredentials;
use offsite_api::types::CustodyEventKind;
use offsite_api::Client;
use offsite_seeding::custody::{CustodySigner, Recorder, StationKey};

/// diskprep on the source machine, where certgen left the application key.
fn diskprep(site: &Site, args: &[&str]) -> Cli {
    let mut all = vec!["diskprep", "--agent-home", utf8(&site.agent.home), "--staging", utf8(&site.staging)];
    all.extend_from_slice(args);
    offsite(all).env("XDG_STATE_HOME", site.root.join("source-state"))
}

fn sql(db: &Path, statement: &str) -> String {
    let out = std::process::Command::new("sqlite3").arg(db).arg(statement).output().expect("sqlite3 runs");
    assert!(out.status.success(), "sqlite3 {statement}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn verify(site: &Site) -> Run {
    diskprep(site, &["--verify-custody", "--json"]).run()
}

#[test]
fn a_seeding_job_leaves_a_verified_chain_and_tampering_is_named() {
    let scratch = temp();
    let root = scratch.path();
    let service = Service::start(root);
    let site = Site::new(&service, root);
    site.stage();

    let drives = [site.drive(1), site.drive(2), site.drive(3)];
    let prepared = site.prepare_two_drives_with(|args| diskprep(&site, args));
    let set = prepared["set"]["drives"].as_array().cloned().unwrap_or_default();
    assert!(set.len() >= 2, "the seed spans drives: {prepared}");
    let ids: Vec<String> = set.iter().map(|d| d["drive_id"].as_str().unwrap().to_string()).collect();
    site.ship_with("1Z999AA10123456784", |args| diskprep(&site, args)).ok();
    site.datacenter(&service, &["receive", "--job", JOB]).run().ok().stdout_has("custody: drive");
    for drive in &drives[..set.len()] {
        let done = site.ingest(&service, drive).ok().json();
        assert_eq!(done["drive_state"], "completed", "{done}");
    }
    // The first drive crypto-erased, the second overwritten, the rest destroyed.
    let wiped = site
        .datacenter(&service, &["wipe", "--drive", utf8(&drives[0]), "--method", "crypto-erase", "--yes", "--json"])
        .run()
        .ok()
        .json();
    assert_eq!(wiped["method"], "crypto-erase", "{wiped}");
    assert_eq!(wiped["bytes_written"], 65536, "{wiped}");
    let bytes = std::fs::read(&drives[0]).unwrap();
    assert!(bytes[..65536].iter().all(|b| *b == 0), "the header region is erased");
    site.datacenter(&service, &["wipe", "--drive", utf8(&drives[1]), "--method", "overwrite", "--yes"])
        .run()
        .ok()
        .stdout_has("wiped (method=overwrite");
    assert!(std::fs::read(&drives[1]).unwrap().iter().all(|b| *b == 0), "every byte is overwritten");
    for id in &ids[2..] {
        site.datacenter(&service, &["wipe", "--job", JOB, "--drive-id", id, "--method", "destroyed"]).run().ok();
    }
    // A wiped drive is no offsite drive any more: naming it by its path says so.
    site.datacenter(&service, &["wipe", "--drive", utf8(&drives[0]), "--method", "overwrite", "--yes"])
        .run()
        .fails()
        .stderr_has("--drive-id");

    // The whole chain verifies, and says who handled each drive when.
    let report = verify(&site).ok().json();
    assert_eq!(report["verified"], true, "{report}");
    let per_drive = 5; // prepared, shipped, received, ingested, wiped or destroyed
    assert_eq!(report["events"], per_drive * set.len(), "{report}");
    let shown = report["drives"].as_array().unwrap();
    assert_eq!(shown.len(), set.len(), "{report}");
    for (drive, id) in shown.iter().zip(&ids) {
        assert_eq!(drive["drive_id"], id.as_str());
        let kinds: Vec<&str> =
            drive["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
        let last = if drive["drive_id"] == ids[0].as_str() || drive["drive_id"] == ids[1].as_str() {
            "wiped"
        } else {
            "destroyed"
        };
        assert_eq!(kinds, ["prepared", "shipped", "received", "ingested", last], "{drive}");
        let handlers: Vec<&str> =
            drive["events"].as_array().unwrap().iter().map(|e| e["handler"].as_str().unwrap()).collect();
        assert!(handlers[0].contains("offline-seeding application"), "{handlers:?}");
        assert!(handlers[2].contains("station credential") && handlers[2].contains("ams1"), "{handlers:?}");
    }
    let text = diskprep(&site, &["--verify-custody"]).run().ok();
    let text = text.stdout_has("verified: every event is signed by its handler").stdout_has("method=crypto-erase");
    assert!(text.stdout.contains("by station credential"), "{}", text.stdout);

    // Removing an event in the service's database is named, with exit code 18.
    let db = service.data_dir.join("offsite.db");
    let backup = sql(&db, "SELECT quote(seq) FROM custody_events WHERE seq = 3");
    assert_eq!(backup, "3");
    sql(&db, "CREATE TABLE kept AS SELECT * FROM custody_events WHERE seq = 3");
    sql(&db, "DELETE FROM custody_events WHERE seq = 3");
    let broken = verify(&site).code(18).json();
    assert_eq!(broken["verified"], false, "{broken}");
    let messages: Vec<&str> =
        broken["problems"].as_array().unwrap().iter().map(|p| p["message"].as_str().unwrap()).collect();
    assert_eq!(messages, ["event 3 is missing: the log goes from event 2 to 4"], "{broken}");
    diskprep(&site, &["--verify-custody"]).run().code(18).stdout_has("problem: event 3 is missing");
    sql(&db, "INSERT INTO custody_events SELECT * FROM kept");
    verify(&site).ok();

    // Altering an event (a wipe's method) is named too.
    let wipe_seq = sql(&db, "SELECT seq FROM custody_events WHERE kind = 'wiped' ORDER BY seq LIMIT 1");
    sql(&db, &format!("UPDATE custody_events SET details = 'method=overwrite bytes=65536' WHERE seq = {wipe_seq}"));
    let altered = verify(&site).code(18).json();
    let messages: Vec<&str> =
        altered["problems"].as_array().unwrap().iter().map(|p| p["message"].as_str().unwrap()).collect();
    assert_eq!(
        messages,
        [format!("event {wipe_seq} was altered: its content does not match the hash it was signed with")],
        "{altered}"
    );
    // Re-hashing the altered event does not help: its signature no longer verifies.
    let log = application_client(&site).1.import_job_custody(&job_id(&site)).unwrap();
    let mut event = log.events.iter().find(|e| e.seq.to_string() == wipe_seq).unwrap().clone();
    event.hash = offsite_seeding::custody::event_hash(&event).unwrap();
    sql(&db, &format!("UPDATE custody_events SET hash = '{}' WHERE seq = {wipe_seq}", event.hash));
    let forged = verify(&site).code(18).json();
    let problems: Vec<&str> =
        forged["problems"].as_array().unwrap().iter().map(|p| p["problem"].as_str().unwrap()).collect();
    assert!(problems.contains(&"bad_signature") && problems.contains(&"broken_link"), "{forged}");

    // Only the handler signs its events.
    let (signer, app) = application_client(&site);
    let job = job_id(&site);
    let refused = Recorder::new(&app, &signer, &job).record(Some(&ids[0]), CustodyEventKind::Received, "").unwrap_err();
    assert!(refused.to_string().contains("datacenter's to record"), "{refused}");
    let other_key = root.join("fra1.importkey");
    service
        .admin(["datacenter", "add", "fra1", "--address", "Dock 1\\nFrankfurt", "--import-key-out", utf8(&other_key)])
        .run()
        .ok();
    let other = root.join("fra1.station-credentials");
    service.admin(["datacenter", "station-credential", "issue", "fra1", "--output", utf8(&other)]).run().ok();
    let creds = StationCredentials::read(&other).unwrap();
    let key = StationKey::from_hex(creds.signing_key.as_deref().expect("a signing key in the file")).unwrap();
    let signer = key.signer(creds.token.split('.').next().unwrap());
    let client = Client::new(&creds.endpoint(), &creds.token).unwrap();
    let refused = Recorder::new(&client, &signer, &job).record(Some(&ids[0]), CustodyEventKind::Wiped, "").unwrap_err();
    assert!(refused.to_string().contains("404") || refused.to_string().contains("not found"), "{refused}");
}

/// The application's signer and a client signing as it, from the agent's files.
fn application_client(site: &Site) -> (CustodySigner, Client) {
    let home = offsite_agent::AgentHome::in_folder(&site.agent.home);
    let (params, identity) = offsite_agent::offline_application::load_identity(&home, "contosostore").unwrap();
    let signer = offsite_api::application_auth::Signer::new(&identity).unwrap();
    (CustodySigner::Application(signer), Client::for_application(&params.service, &identity).unwrap())
}

fn job_id(site: &Site) -> String {
    application_client(site).1.find_import_job(JOB).unwrap().id
}
