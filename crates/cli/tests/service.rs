//! End to end through the service: a subscription, a vault, a registered agent
//! backing up over HTTPS, incrementals that send only what changed, restores equal
//! to the source, retention. On SQLite + a local folder, and on PostgreSQL + Azurite.

mod common;

use std::path::Path;

use common::service::{Agent, Customer, Service};
use common::*;

/// The source tree: a large random file, small text files, nested folders.
fn source_tree(root: &Path) {
    std::fs::create_dir_all(root).unwrap();
    write_noise_file(&root.join("big.bin"), 24 << 20, 1);
    small_tree(&root.join("docs"));
    write(&root.join("nested/deeper/notes.txt"), &text(50_000, 2));
}

fn recovery_points(agent: &Agent) -> Vec<serde_json::Value> {
    agent.cmd(["recovery-points", "--json"]).run().ok().json().as_array().cloned().unwrap_or_default()
}

/// The whole online cycle against a running service.
fn online_cycle(service: &Service, scratch: &Path) {
    let source = scratch.join("source");
    source_tree(&source);
    let tenant = service.subscription("contoso");
    tenant.create_vault("main");
    let agent = Agent::registered(scratch, &tenant, "main", "web01", &[&source]);

    // The agent's secrets are private to its user: the registration (machine
    // credential), the passphrase, the job history; the state folder itself.
    use std::os::unix::fs::PermissionsExt;
    let state = agent.home.join("state");
    assert_eq!(std::fs::metadata(&state).unwrap().permissions().mode() & 0o777, 0o700);
    for file in ["registration.toml", "passphrase"] {
        let mode = std::fs::metadata(state.join(file)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file} has mode {mode:o}");
    }
    let registration = std::fs::read_to_string(state.join("registration.toml")).unwrap();
    assert!(registration.contains("machine_credential"), "{registration}");

    let first = agent.backup();
    assert_eq!(first["report"]["state"], "completed", "{first}");
    let first_sent = first["report"]["bytes_uploaded"].as_u64().unwrap();
    assert!(first_sent > 24 << 20, "the first backup sends everything ({first_sent} bytes)");
    let first_point = first["snapshot_id"].as_str().unwrap().to_string();

    // Change one small file and add one: only the change travels.
    write(&source.join("docs/changed.txt"), &text(20_000, 9));
    write(&source.join("nested/deeper/notes.txt"), &text(50_000, 3));
    let second = agent.backup();
    let second_sent = second["report"]["bytes_uploaded"].as_u64().unwrap();
    assert!(second_sent < 1 << 20, "an incremental after a 70 kB change sent {second_sent} bytes");

    let points = recovery_points(&agent);
    assert_eq!(points.len(), 2, "{points:?}");
    assert!(points.iter().all(|p| p["source"] == "online"));

    // The latest point equals the source now; the first equals it as it was.
    let target = scratch.join("restore-latest");
    agent.restore_equals(&target, &source);

    let old = scratch.join("restore-first");
    agent.cmd(["restore", "--point", &first_point[..12], "--target", old.to_str().unwrap()]).run().ok();
    let old_notes = std::fs::read(restored(&old, &source).join("nested/deeper/notes.txt")).unwrap();
    assert_eq!(old_notes, text(50_000, 2), "the first recovery point holds the first version");
    assert!(!restored(&old, &source).join("docs/changed.txt").exists());

    // Restoring to the original location keeps a file that is newer than the
    // recovery point's copy, unless told to overwrite.
    let notes = source.join("nested/deeper/notes.txt");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    write(&notes, b"edited after the last backup");
    let notes_path = notes.to_str().unwrap();
    agent.cmd(["restore", "--target", "/", "--path", notes_path]).run().ok();
    assert_eq!(std::fs::read(&notes).unwrap(), b"edited after the last backup", "a newer file was overwritten");
    agent.cmd(["restore", "--target", "/", "--path", notes_path, "--overwrite"]).run().ok();
    assert_eq!(std::fs::read(&notes).unwrap(), text(50_000, 3), "--overwrite restores the recovery point's copy");

    // Retention: one daily point kept; both backups are from today.
    agent.cmd(["retention", "set", "--daily", "1"]).run().ok();
    let third = agent.backup();
    assert_eq!(third["expired_points"], 2, "{third}");
    let points = recovery_points(&agent);
    assert_eq!(points.len(), 1, "{points:?}");
    assert_eq!(points[0]["snapshot_id"], third["snapshot_id"]);

    let history_mode = std::fs::metadata(state.join("jobs.jsonl")).unwrap().permissions().mode() & 0o777;
    assert_eq!(history_mode, 0o600);

    // The job history, here and on the service, has the three backups and two restores.
    let status = agent.cmd(["status", "--json"]).run().ok().json();
    let jobs = status["jobs"].as_array().unwrap();
    assert_eq!(jobs.iter().filter(|j| j["kind"] == "backup" && j["state"] == "completed").count(), 3, "{status}");
    assert_eq!(jobs.iter().filter(|j| j["kind"] == "restore").count(), 4, "{status}");

    // The service lists the machine with its last backup.
    let machines = tenant.admin(["machine", "list", "main", "--json"]).run().ok().json();
    assert_eq!(machines[0]["name"], "web01");
    assert!(machines[0]["last_backup"].is_string(), "{machines}");
}

#[test]
fn online_backups_on_sqlite_and_a_local_folder() {
    let scratch = temp();
    let service = Service::start(scratch.path());
    online_cycle(&service, scratch.path());
}

#[test]
fn online_backups_on_postgresql_and_azurite() {
    let scratch = temp();
    let (service, _postgres, _azurite) = Service::start_on_postgres_and_azurite(scratch.path());
    online_cycle(&service, scratch.path());
}

/// The daemon runs the scheduled backup at its time and stops cleanly on SIGTERM.
#[test]
fn the_daemon_backs_up_on_schedule() {
    let scratch = temp();
    let root = scratch.path();
    let service = Service::start(root);
    let source = root.join("source");
    small_tree(&source);
    let tenant = service.subscription("fabrikam");
    tenant.create_vault("main");
    let agent = Agent::registered(root, &tenant, "main", "db01", &[&source]);
    // A whole minute 10 to 70 s ahead, in the agent's local time (`date` reads the
    // same zone): far enough that setting the schedule cannot race past it.
    let output = std::process::Command::new("date").args(["-d", "+70 seconds", "+%H:%M"]).output().unwrap();
    let next_minute = String::from_utf8(output.stdout).unwrap().trim().to_string();
    agent.cmd(["schedule", "set", "--times", &next_minute]).run().ok();

    let daemon = agent.cmd(["run"]).spawn(&root.join("daemon.log"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(150);
    let status = loop {
        let status = agent.cmd(["status", "--json"]).run().ok().json();
        if status["last_backup"]["state"] == "completed" {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "no scheduled backup ran by {next_minute}:\n{}", daemon.output());
        std::thread::sleep(std::time::Duration::from_secs(1));
    };
    assert!(status["next_backup"].is_string(), "{status}");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(daemon.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let mut daemon = daemon;
    let ended = loop {
        if let Some(status) = daemon.try_wait() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "the daemon did not stop on SIGTERM");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(ended.success(), "the daemon exited with {ended}:\n{}", daemon.output());
    let points = recovery_points(&agent);
    assert_eq!(points.len(), 1, "{points:?}");
    let target = root.join("restored");
    agent.restore_equals(&target, &source);
}

/// A bandwidth limit holds the upload to it: 4 MiB at 1 MiB/s takes at least 3 s.
#[test]
fn bandwidth_limits_slow_the_upload() {
    let scratch = temp();
    let root = scratch.path();
    let service = Service::start(root);
    let source = root.join("source");
    std::fs::create_dir_all(&source).unwrap();
    write_noise_file(&source.join("random.bin"), 4 << 20, 5);
    let tenant = service.subscription("northwind");
    tenant.create_vault("main");
    let agent = Agent::registered(root, &tenant, "main", "files01", &[&source]);
    agent
        .cmd([
            "throttle",
            "set",
            "--work-days",
            "mon-sun",
            "--work-hours",
            "00:00-23:59",
            "--work-limit",
            "1MiB/s",
            "--other-limit",
            "1MiB/s",
        ])
        .run()
        .ok();
    let status = agent.cmd(["status", "--json"]).run().ok().json();
    assert_eq!(status["bandwidth_limit_now"], "1MiB/s", "{status}");
    let run = agent.cmd(["backup", "--now", "--json"]).run().ok();
    assert!(run.elapsed >= std::time::Duration::from_secs(3), "4 MiB at 1 MiB/s took {:?}", run.elapsed);
    let target = root.join("restored");
    agent.restore_equals(&target, &source);
}

/// Rotating publish settings: a second file is issued, works, and stops working
/// the moment it is revoked; the first keeps working.
#[test]
fn publish_settings_are_issued_and_revoked_through_admin() {
    let scratch = temp();
    let root = scratch.path();
    let service = Service::start(root);
    let tenant = service.subscription("contoso");
    tenant.admin(["vault", "create", "main"]).run().ok();
    let second = root.join("second.publishsettings");
    let issued = tenant
        .admin(["subscription", "issue-credential", "--output", utf8(&second), "--valid-days", "30", "--json"])
        .run()
        .ok()
        .json();
    let id = issued["credential"]["id"].as_str().expect("an id").to_string();
    assert!(issued["credential"]["expires"].is_string(), "{issued}");
    // Never overwritten.
    tenant
        .admin(["subscription", "issue-credential", "--output", utf8(&second)])
        .run()
        .fails()
        .stderr_has("exists already");
    let with_second = |args: &[&str]| {
        let mut all = vec!["admin", "--publish-settings", utf8(&second)];
        all.extend_from_slice(args);
        offsite(all).run()
    };
    with_second(&["vault", "list"]).ok().stdout_has("main");
    let listed = tenant.admin(["subscription", "credentials", "--json"]).run().ok().json();
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");

    let revoked = tenant.admin(["subscription", "revoke-credential", &id, "--json"]).run().ok().json();
    assert!(revoked["revoked"].is_string(), "{revoked}");
    with_second(&["vault", "list"]).fails().stderr_has("revoked");
    tenant.admin(["vault", "list"]).run().ok().stdout_has("main");
    tenant.admin(["subscription", "credentials"]).run().ok().stdout_has(&format!("{id}  issued")).stdout_has("revoked");
    tenant.admin(["subscription", "revoke-credential", "cred_unknown"]).run().fails().stderr_has("cred_unknown");
}

/// `agent restore` of a recovery point one of whose packs is gone: the files that
/// need it are listed on stderr with `--quiet` (and in the JSON), left as
/// `NAME.offsite-partial`, never under their own names; the rest is equal.
#[test]
fn an_agent_restore_with_a_missing_pack_lists_and_marks_what_it_could_not_restore() {
    let scratch = temp();
    let root = scratch.path();
    let service = Service::start(root);
    let Customer { agent, source, .. } = service.customer(root, |source| {
        write_noise_file(&source.join("big.bin"), 24 << 20, 4);
        small_tree(&source.join("docs"));
    });
    agent.backup();
    // The largest pack holds part of the large file only.
    let (pack, _) = stored_packs(&service.data_dir.join("storage")).into_iter().max_by_key(|(_, s)| *s).unwrap();
    std::fs::remove_file(&pack).unwrap();

    let target = root.join("restored");
    let run = agent.cmd(["restore", "--target", utf8(&target), "--quiet", "--json"]).run().code(3);
    let back = restored(&target, &source);
    let failures = run.json()["outcome"]["failures"].as_array().cloned().unwrap_or_default();
    let failed: Vec<&str> = failures.iter().filter_map(|f| f["path"].as_str()).collect();
    assert!(failed.contains(&back.join("big.bin").to_str().unwrap()), "the large file is not listed:\n{run}");
    for failure in &failures {
        let path = std::path::PathBuf::from(failure["path"].as_str().unwrap());
        assert!(
            run.stderr.contains(&format!("could not restore {}:", path.display())),
            "not listed with --quiet:\n{run}"
        );
        assert!(!path.exists(), "{} was left under its own name:\n{run}", path.display());
        let partial = format!("{}.offsite-partial", path.display());
        assert_eq!(failure["partial"].as_str(), Some(partial.as_str()), "{run}");
        let want = std::fs::metadata(source.join(path.strip_prefix(&back).unwrap())).unwrap().len();
        assert_eq!(std::fs::metadata(&partial).unwrap().len(), want);
    }
    // Everything else came back byte for byte.
    let mut compared = 0;
    for entry in walkdir(&source) {
        let at = back.join(entry.strip_prefix(&source).unwrap());
        if entry.symlink_metadata().unwrap().is_file() && !failed.contains(&at.to_str().unwrap()) {
            assert!(std::fs::read(&entry).unwrap() == std::fs::read(&at).unwrap(), "{} differs", at.display());
            compared += 1;
        }
    }
    assert!(compared > 0, "every file was lost to one pack:\n{run}");
}

fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            out.extend(walkdir(&path));
        }
        out.push(path);
    }
    out
}

/// The operator's account and quota commands through the binary: a portal user
/// disabled, enabled, given a new password and removed by address, each saying
/// what it did; a subscription's storage quota set with a unit, shown to the
/// subscription, a backup that does not fit refused naming it, and lifted.
#[test]
fn operators_manage_portal_users_and_storage_quotas_through_admin() {
    let scratch = temp();
    let root = scratch.path();
    let service = Service::start(root);
    let Customer { tenant, agent, .. } =
        service.customer(root, |source| write_noise_file(&source.join("big.bin"), 4 << 20, 7));

    let password = ("OFFSITE_PORTAL_PASSWORD", "a portal password long enough");
    service
        .admin(["portal-user", "create", "it@contoso.example", "--subscription", &tenant.id])
        .env(password.0, password.1)
        .run()
        .ok();
    service
        .admin(["portal-user", "disable", "it@contoso.example"])
        .run()
        .ok()
        .stdout_has("disabled: their sessions ended");
    let listed = service.admin(["portal-user", "list", "--json"]).run().ok().json();
    assert!(listed[0]["disabled"].is_string(), "{listed}");
    service.admin(["portal-user", "list"]).run().ok().stdout_has("disabled since");
    let enabled = service.admin(["portal-user", "enable", "IT@contoso.example", "--json"]).run().ok().json();
    assert!(enabled["disabled"].is_null(), "{enabled}");
    service
        .admin(["portal-user", "set-password", "it@contoso.example"])
        .env(password.0, "another long portal password")
        .run()
        .ok()
        .stdout_has("has a new password: their sessions ended");
    service.admin(["portal-user", "remove", "it@contoso.example"]).run().ok().stdout_has("removed");
    service
        .admin(["portal-user", "remove", "it@contoso.example"])
        .run()
        .fails()
        .stderr_has("no portal user 'it@contoso.example'")
        .stderr_has("offsite admin portal-user list");

    let set = service.admin(["subscription", "set-quota", &tenant.id, "1MiB", "--json"]).run().ok().json();
    assert_eq!(set["quota_bytes"], 1 << 20, "{set}");
    tenant.admin(["subscription", "quota"]).run().ok().stdout_has("storage quota 1.0 MiB (1048576 bytes)");
    tenant.admin(["subscription", "set-quota", &tenant.id, "none"]).run().fails().stderr_has("operator");
    service.admin(["subscription", "set-quota", &tenant.id, "lots"]).run().fails().stderr_has("not a size");
    agent
        .cmd(["backup", "--now"])
        .run()
        .fails()
        .stderr_has("storage quota")
        .stderr_has(&format!("offsite admin subscription set-quota {} BYTES", tenant.id));
    service.admin(["subscription", "set-quota", &tenant.id, "none"]).run().ok().stdout_has("storage quota none");
    agent.backup();
}
