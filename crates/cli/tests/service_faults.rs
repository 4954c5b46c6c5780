//! End to end through the service when things go wrong: credentials that are used,
//! expired or revoked, wrong or weak passphrases, an unregistered agent, a service
//! that dies in the middle of a backup or is down when one starts, and a vault
//! storage that fills up. Each test drives the real `offsite` binary against a real
//! `offsite server run` and checks what happened and what the user is told.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::service::{Agent, Service, Tenant};
use common::tmpfs::Tmpfs;
use common::*;

const MIB: u64 = 1 << 20;

// ---------------------------------------------------------------- helpers

/// Writes incompressible files `name → MiB` under `root`.
fn random_tree(root: &Path, files: &[(&str, u64)], seed: u64) -> u64 {
    fs::create_dir_all(root).unwrap();
    let mut total = 0;
    for (i, (name, mib)) in files.iter().enumerate() {
        let path = root.join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        write_noise_file(&path, mib * MIB, seed + i as u64);
        total += mib * MIB;
    }
    total
}

/// Sets `[retry] network_seconds` in the agent's configuration file. The file already
/// has a `[retry]` table (the agent writes its defaults), so it is edited, not appended to.
fn set_network_retry(agent: &Agent, seconds: u64) {
    let path = agent.home.join("agent.toml");
    let mut config = offsite_agent::config::AgentConfig::load(&path).expect("the agent configuration");
    config.retry.network_seconds = seconds;
    config.save(&path).expect("save the agent configuration");
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.contains(&format!("network_seconds = {seconds}")), "{}:\n{text}", path.display());
}

/// The agent's own view of itself (`agent status --json`).
fn status(agent: &Agent) -> Value {
    agent.cmd(["status", "--json"]).run().ok().json()
}

fn machine_id(agent: &Agent) -> String {
    json_str(&status(agent), &["machine_id"]).to_string()
}

/// The machines of a vault as the subscription sees them.
fn machines(tenant: &Tenant, vault: &str) -> Vec<Value> {
    tenant.admin(["machine", "list", vault, "--json"]).run().ok().json().as_array().cloned().unwrap_or_default()
}

/// The subscription's own client (its publish settings), for what the CLI does not show.
fn tenant_client(tenant: &Tenant) -> offsite_api::Client {
    use offsite_api::XmlCredentialFile;
    let settings = offsite_api::files::PublishSettings::read(&tenant.publish).expect("publish settings");
    offsite_api::Client::new(&settings.service, &settings.management_credential).expect("a client")
}

/// The JSON document a background `--json` run printed after its log lines.
fn json_in_log(text: &str) -> Value {
    let start = text.find("\n{\n").map(|i| i + 1).or_else(|| text.starts_with("{\n").then_some(0));
    let end = text.rfind("\n}").map(|i| i + 2);
    match (start, end) {
        (Some(start), Some(end)) if start < end => serde_json::from_str(&text[start..end])
            .unwrap_or_else(|e| panic!("no JSON document in the output ({e}):\n{text}")),
        _ => panic!("no JSON document in the output:\n{text}"),
    }
}

/// Waits for a background run to end; panics with its output after `limit`.
fn wait_exit(job: &mut Background, limit: Duration) -> (Option<i32>, Duration) {
    let start = Instant::now();
    loop {
        if let Some(status) = job.try_wait() {
            return (status.code(), start.elapsed());
        }
        assert!(start.elapsed() < limit, "`{}` still runs after {limit:?}:\n{}", job.shown, job.output());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Makes a vault credentials file expired: its `<Expires>` element moved an hour into
/// the past.
fn expire(credentials: &Path) {
    let text = fs::read_to_string(credentials).unwrap();
    let start = text.find("<Expires>").expect("an <Expires> element") + "<Expires>".len();
    let end = start + text[start..].find("</Expires>").expect("</Expires>");
    let past = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let past = past.format(&time::format_description::well_known::Rfc3339).unwrap();
    let edited = format!("{}{}{}", &text[..start], past, &text[end..]);
    fs::write(credentials, edited).unwrap();
}

// ---------------------------------------------------------------- credentials

/// A vault credentials file registers one machine, once: a second machine using the
/// same file is refused and told why, and the first machine is not disturbed.
#[test]
fn reused_vault_credentials_are_refused_and_the_first_machine_keeps_working() {
    let scratch = temp();
    let root = scratch.path();
    let service = Service::start(root);
    let tenant = service.subscription("contoso");
    tenant.create_vault("main");
    let source = root.join("source");
    small_tree(&source);

    let credentials = tenant.vault_credentials("main", "shared.vaultcredentials");
    let first = Agent::new(root, "web01");
    first.register(&credentials, "web01").ok();
    first.cmd(["protect", "add", utf8(&source)]).run().ok();

    let second = Agent::new(root, "web02");
    second.register(&credentials, "web02").code(14).stderr_has("already used").stderr_has("download new ones");
    // The refused machine has no registration and the vault has one machine.
    second.cmd(["status"]).run().code(15).stderr_has("not registered");
    let listed = machines(&tenant, "main");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["name"], "web01");

    let report = first.backup();
    assert_eq!(report["report"]["state"], "completed", "{report}");
    let target = root.join("restore");
    first.restore_equals(&target, &source);
}

/// Expired vault credentials are refused by the agent itself, before it contacts
/// the service (here it is not even running), naming the file and what to do.
#[test]
fn expired_vault_credentials_are_refused_before_contacting_the_service() {
    let scratch = temp();
    let root = scratch.path();
    let mut service = Service::start(root);
    let tenant = service.subscription("contoso");
    tenant.create_vault("main");
    let credentials = tenant.vault_credentials("main", "old.vaultcredentials");
    expire(&credentials);
    service.kill();

    let agent = Agent::new(root, "web01");
    agent
        .register(&credentials, "web01")
        .code(14)
        .stderr_has(utf8(&credentials))
        .stderr_has("expired")
        .stderr_has("download new ones");
    agent.cmd(["status"]).run().code(15);
}

/// A machine removed by its subscription cannot back up any more; it is told so
/// and what to do. Its recovery points stay.
#[test]
fn a_removed_machine_is_refused_and_its_recovery_points_stay() {
    let scratch = temp();
    let root = scratch.path();
    let service = Service::start(root);
    let tenant = service.subscription("contoso");
    tenant.create_vault("main");
    let source = root.join("source");
    small_tree(&source);
    let agent = Agent::registered(root, &tenant, "main", "web01", &[&source]);
    let first = agent.backup();
    let point = json_str(&first, &["snapshot_id"]).to_string();
    let id = machine_id(&agent);

    tenant.admin(["machine", "remove", &id]).run().ok().stdout_has("removed");

    let run = agent.cmd(["backup", "--now", "--json"]).run();
    let run = run.code(14).stderr_has("removed").stderr_has("Register it again");
    assert!(run.elapsed < Duration::from_secs(30), "a refused credential is not retried:\n{run}");

    // The agent records the failed job; the service keeps the machine, marked removed,
    // with its recovery point.
    let status = status(&agent);
    let last = &status["last_backup"];
    assert_eq!(last["state"], "failed", "{status}");
    assert!(last["errors"][0].as_str().is_some_and(|e| e.contains("removed")), "{status}");

    let listed = machines(&tenant, "main");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0]["removed"].is_string(), "the machine shows as removed: {listed:?}");
    assert!(listed[0]["last_backup"].is_string(), "{listed:?}");
    tenant.admin(["machine", "list", "main"]).run().ok().stdout_has("removed");

    let points = tenant_client(&tenant)
        .recovery_points(&id)
        .expect("the subscription reads the removed machine's recovery points");
    assert_eq!(points.len(), 1, "{points:?}");
    assert_eq!(points[0].snapshot_id, point);
}

// ---------------------------------------------------------------- passphrases and registration

/// Restoring with another passphrase fails as a wrong passphrase and writes nothing.
#[test]
fn restore_with_a_wrong_passphrase_fails_and_writes_nothing() {
    let scratch = temp();
    let root = scratch.path();
    let service = Service::start(root);
    let tenant = service.subscription("contoso");
    tenant.create_vault("main");
    let source = root.join("source");
    small_tree(&source);
    let agent = Agent::registered(root, &tenant, "main", "web01", &[&source]);
    agent.backup();

    let wrong = root.join("wrong.passphrase");
    fs::write(&wrong, "a different long passphrase\n").unwrap();
    let target = root.join("target");
    fs::create_dir_all(&target).unwrap();
    let before = listing(&target);
    let run = agent
        .cmd(["restore", "--passphrase-file", utf8(&wrong), "--target", utf8(&target)])
        .run()
        .code(12)
        .stderr_has("wrong passphrase");
    assert_unchanged(&target, &before, &run);

    // The stored passphrase still restores.
    agent.restore_equals(&target, &source);
}

/// A passphrase shorter than 16 characters is refused at registration, naming the
/// minimum; nothing is registered and the credentials file stays usable.
#[test]
fn a_short_passphrase_is_refused_at_registration() {
    let scratch = temp();
    let root = scratch.path();
    let service = Service::start(root);
    let tenant = service.subscription("contoso");
    tenant.create_vault("main");
    let credentials = tenant.vault_credentials("main", "web01.vaultcredentials");

    let agent = Agent::new(root, "web01");
    fs::write(&agent.passphrase_file, "fifteen chars!!").unwrap();
    agent.register(&credentials, "web01").fails().stderr_has("at least 16 characters");
    agent.cmd(["status"]).run().code(15);
    assert!(machines(&tenant, "main").is_empty(), "a refused registration registered a machine");

    // The same credentials file, with a long enough passphrase, registers.
    fs::write(&agent.passphrase_file, "sixteen chars!!!").unwrap();
    agent.register(&credentials, "web01").ok();
    assert_eq!(machines(&tenant, "main").len(), 1);
}

/// An agent that was never registered says so and how to register.
#[test]
fn backup_on_an_unregistered_agent_says_to_register() {
    let scratch = temp();
    let agent = Agent::new(scratch.path(), "fresh");
    agent
        .cmd(["backup", "--now"])
        .run()
        .code(15)
        .stderr_has("not registered")
        .stderr_has(&format!("offsite agent --agent-home {} register --vault-credentials", utf8(&agent.home)));
}

// ---------------------------------------------------------------- the service goes away

/// The service dies in the middle of a backup: the backup fails soon with a message
/// that the service cannot be reached; once the service is back, the next backup
/// keeps the packs already stored instead of sending them again.
#[test]
fn a_backup_interrupted_by_the_service_dying_resumes_without_resending_packs() {
    let scratch = temp();
    let root = scratch.path();
    let mut service = Service::start(root);
    let tenant = service.subscription("contoso");
    tenant.create_vault("main");
    let source = root.join("source");
    let files: Vec<(String, u64)> = (0..8).map(|i| (format!("dir{}/file{i}.bin", i % 3), 25)).collect();
    let files: Vec<(&str, u64)> = files.iter().map(|(n, s)| (n.as_str(), *s)).collect();
    let total = random_tree(&source, &files, 70);
    let agent = Agent::registered(root, &tenant, "main", "web01", &[&source]);
    agent
        .cmd([
            "throttle",
            "set",
            "--work-days",
            "mon,tue,wed,thu,fri,sat,sun",
            "--work-hours",
            "00:00-23:59",
            "--work-limit",
            "24MiB/s",
            "--other-limit",
            "24MiB/s",
        ])
        .run()
        .ok();
    set_network_retry(&agent, 3);

    let storage = service.data_dir.join("storage");
    let mut job = agent.cmd(["backup", "--now", "--json"]).spawn(&root.join("backup-1.log"));
    let started = Instant::now();
    let mut ended = None;
    let three_packs = wait_for(Duration::from_secs(60), || {
        ended = job.try_wait();
        ended.is_some() || stored_packs(&storage).len() >= 3
    });
    assert!(ended.is_none(), "the backup ended before three packs were stored:\n{}", job.output());
    assert!(three_packs, "three packs were not stored in 60 s:\n{}", job.output());
    service.kill();
    let (code, after_kill) = wait_exit(&mut job, Duration::from_secs(30));
    let output = job.output();
    eprintln!("backup stopped {after_kill:.1?} after the kill ({:.1?} in all)", started.elapsed());
    assert_eq!(code, Some(13), "exit 13 says the service could not be reached:\n{output}");
    assert!(!output.contains("panicked"), "{output}");
    assert!(output.contains("cannot reach the offsite service"), "the message names the problem:\n{output}");
    assert!(output.contains("Check that it is running"), "the message says what to do:\n{output}");

    let kept = stored_packs(&storage);
    let kept_bytes: u64 = kept.iter().map(|(_, size)| size).sum();
    assert!(kept.len() >= 3, "{kept:?}");

    service.restart();
    agent.cmd(["throttle", "off"]).run().ok();
    let second = agent.backup();
    assert_eq!(second["report"]["state"], "completed", "{second}");
    let recovered = json_u64(&second, &["recovered_packs"]);
    assert!(recovered > 0, "the packs of the interrupted run were re-indexed: {second}");
    let sent = json_u64(&second, &["report", "bytes_uploaded"]);
    eprintln!(
        "{} packs ({} MiB) survived the kill; the second backup sent {} MiB of {} MiB and recovered {recovered} packs",
        kept.len(),
        kept_bytes / MIB,
        sent / MIB,
        total / MIB
    );
    assert!(
        sent < total - kept_bytes + 16 * MIB,
        "the second backup sent {sent} bytes although {kept_bytes} of {total} were already stored: {second}"
    );

    let target = root.join("restore");
    agent.restore_equals(&target, &source);

    // The service's job list holds the interrupted job's final report (sent by the
    // next run, since the service was down when it ended): nothing stays "running".
    let jobs = tenant_client(&tenant).jobs(&machine_id(&agent)).expect("jobs");
    let states: Vec<_> = jobs.iter().map(|j| j.report.state).collect();
    assert!(!states.contains(&offsite_api::types::JobState::Running), "{states:?}");
    assert!(states.contains(&offsite_api::types::JobState::Failed), "{states:?}");

    // The agent's job history: the completed backup (and the restore) after the failed one.
    let status = status(&agent);
    let backups: Vec<&Value> = status["jobs"].as_array().unwrap().iter().filter(|j| j["kind"] == "backup").collect();
    assert!(backups.len() >= 2, "{status}");
    assert_eq!(backups[0]["state"], "completed", "newest first: {status}");
    assert_eq!(backups[1]["state"], "failed", "{status}");
    let error = backups[1]["errors"][0].as_str().unwrap_or_default();
    assert!(error.contains("cannot reach the offsite service"), "the failed job keeps its error: {status}");
}

/// The service is down when a backup starts and comes back within the retry window:
/// the backup waits for it and completes.
#[test]
fn a_backup_waits_for_a_service_that_comes_back() {
    let scratch = temp();
    let root = scratch.path();
    let mut service = Service::start(root);
    let tenant = service.subscription("contoso");
    tenant.create_vault("main");
    let source = root.join("source");
    small_tree(&source);
    let agent = Agent::registered(root, &tenant, "main", "web01", &[&source]);
    set_network_retry(&agent, 60);

    service.kill();
    let mut job = agent.cmd(["backup", "--now", "--json"]).spawn(&root.join("backup.log"));
    std::thread::sleep(Duration::from_secs(3));
    assert!(job.try_wait().is_none(), "the backup gave up while the service was down:\n{}", job.output());
    service.restart();
    let (code, waited) = wait_exit(&mut job, Duration::from_secs(60));
    let output = job.output();
    assert_eq!(code, Some(0), "the backup completes once the service is back:\n{output}");
    eprintln!("the backup finished {waited:.1?} after the service restarted");
    let report = json_in_log(&output);
    assert_eq!(report["report"]["state"], "completed", "{report}");

    let status = status(&agent);
    assert_eq!(status["last_backup"]["state"], "completed", "{status}");
    let target = root.join("restore");
    agent.restore_equals(&target, &source);
}

// ---------------------------------------------------------------- the storage fills up

/// The service's storage fills up: the backup fails saying so (not retried as if
/// the service were down), the service keeps running, and once the data fits a new
/// backup completes and restores equal.
#[test]
fn a_full_storage_fails_the_backup_clearly_and_the_service_keeps_running() {
    let scratch = temp();
    let root = scratch.path();
    let storage_dir = root.join("small-storage");
    let _tmpfs = Tmpfs::mount(&storage_dir, "40m");
    let service = Service::start_with(root, &["--storage", utf8(&storage_dir)], &[]);
    let tenant = service.subscription("contoso");
    tenant.create_vault("main");
    // 81 MiB: twice what the storage holds.
    let source = root.join("source");
    let big: Vec<(String, u64)> = (0..7).map(|i| (format!("big/file{i}.bin"), 11)).collect();
    let mut files: Vec<(&str, u64)> = big.iter().map(|(n, s)| (n.as_str(), *s)).collect();
    files.push(("keep.bin", 4));
    random_tree(&source, &files, 90);
    write(&source.join("notes.txt"), &text(20_000, 91));
    let agent = Agent::registered(root, &tenant, "main", "web01", &[&source]);
    // A full storage needs someone to act: it must not be retried like a service
    // that is down (which this window would make take 10 s or more).
    set_network_retry(&agent, 10);

    let run = agent.cmd(["backup", "--now", "--json"]).run().fails();
    let run = run.stderr_has("the service's storage").stderr_has("is full").stderr_has("frees space");
    assert!(!run.stderr.contains("cannot reach"), "{run}");
    assert!(run.elapsed < Duration::from_secs(10), "a full storage was retried:\n{run}");
    eprintln!("the backup into a full storage failed after {:.1?}", run.elapsed);
    let status = status(&agent);
    assert_eq!(status["last_backup"]["state"], "failed", "{status}");

    // The service still answers.
    assert_eq!(machines(&tenant, "main").len(), 1);

    // With the big files gone the rest fits in what is left.
    fs::remove_dir_all(source.join("big")).unwrap();
    let report = agent.backup();
    assert_eq!(report["report"]["state"], "completed", "{report}");
    let target = root.join("restore");
    agent.restore_equals(&target, &source);
}
