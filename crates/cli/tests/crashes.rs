//! `kill -9` of each long operation at several points, chosen from what can be
//! seen happening (packs appearing in storage, packs being rewritten), then a
//! rerun: it finishes, `check --read-data` passes, the restore equals the source,
//! and the rerun sends again at most what was in flight at the kill. The service
//! itself is killed in the middle of an upload and restarted on the same data
//! folder. After every crash `offsite server check` must find that the service's
//! database agrees with its storage; a deliberately broken data folder proves
//! that it can disagree.
//!
//! Each operation is killed at `OFFSITE_CRASH_POINTS` points (default 2; the soak
//! sets more); each point waits for more progress than the one before, and every
//! rerun but the last is killed again, so one tree is crashed repeatedly.
//! (`interrupted.rs` covers one kill of `repo backup` with its locks, and prune
//! beside a live backup.)

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::service::{Agent, Customer, Service, AGENT_PASSPHRASE};
use common::*;

const MIB: u64 = 1 << 20;

/// How many kill points each operation gets.
fn crash_points() -> usize {
    std::env::var("OFFSITE_CRASH_POINTS").ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(2)
}

/// The `i`-th of `n` kill points over `1..=max` units of progress, strictly rising.
fn kill_point(i: usize, n: usize, max: usize) -> usize {
    1 + i * max.saturating_sub(1) / n.max(1)
}

/// Waits until `ready` holds while `job` runs. Returns false when the job ended
/// first (it was too quick to interrupt at that point).
fn reached_while_running(job: &mut Background, what: &str, mut ready: impl FnMut() -> bool) -> bool {
    let mut ended = None;
    let reached = wait_for(Duration::from_secs(240), || {
        ended = job.try_wait();
        ended.is_some() || ready()
    });
    assert!(reached, "`{}` did not reach {what} in 4 minutes:\n{}", job.shown, job.output());
    if let Some(status) = ended {
        assert_eq!(status.code(), Some(0), "`{}` failed before {what}:\n{}", job.shown, job.output());
        return false;
    }
    true
}

/// `offsite server check --json` on the service's data folder: must agree.
fn assert_service_agrees(service: &Service) {
    let run = offsite(["server", "check", "--json", "--read-data", "--data-dir", utf8(&service.data_dir)]).run();
    let report = run.json();
    assert_eq!(report["disagreements"], serde_json::json!([]), "the database and the storage disagree:\n{run}");
    let run = run.ok();
    assert!(json_u64(&run.json(), &["machines"]) >= 1, "{run}");
}

/// Packs of every repository under `dir` (a repository or a service's storage).
fn all_packs(dir: &Path) -> BTreeSet<(PathBuf, u64)> {
    stored_packs(dir).into_iter().collect()
}

fn bytes(packs: &BTreeSet<(PathBuf, u64)>) -> u64 {
    packs.iter().map(|(_, size)| size).sum()
}

// ---------------------------------------------------------------- repo backup

#[test]
fn repo_backup_killed_at_several_points_finishes_and_resends_at_most_what_was_in_flight() {
    let tmp = temp();
    let repo_dir = tmp.path().join("repo");
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..6 {
        write_noise_file(&src.join(format!("part-{i}.bin")), 8 * MIB, 300 + i);
    }
    let total = 48 * MIB;
    repo(&repo_dir, ["init", "--quiet", "--pack-size", "2"]).run().ok();
    // Packs in flight at a kill: one being filled per seal worker, one waiting, two
    // uploading; of 2 MiB each, with room for the packs' headers.
    let in_flight = (2 * num_cpus() as u64 + 4) * 2 * MIB;

    let points = crash_points();
    let mut survived = 0;
    let mut resent_max = 0;
    for i in 0..=points {
        let before = all_packs(&repo_dir);
        let args = ["backup", "--json", utf8(&src)];
        let last = i == points;
        let target = before.len() + kill_point(i, points, 20);
        if !last {
            let mut job = repo(&repo_dir, args).spawn(&tmp.path().join(format!("backup-{i}.log")));
            if !reached_while_running(&mut job, "more packs", || packs(&repo_dir).len() >= target) {
                continue;
            }
            job.kill_9();
            survived += 1;
            repo(&repo_dir, ["check"]).run().ok().stdout_has("no errors found");
            continue;
        }
        let run = repo(&repo_dir, args).run().ok();
        let out = run.json();
        let added = json_u64(&out, &["summary", "data_added_stored"]);
        let stored_before = bytes(&before);
        let resent = added.saturating_sub(total.saturating_sub(stored_before));
        resent_max = resent_max.max(resent);
        eprintln!("repo backup: {survived} kills survived; the last run stored {added} B, {resent} B of it again (bound {in_flight})");
        assert!(resent <= in_flight, "the rerun stored {resent} bytes again (bound {in_flight}):\n{run}");
        break;
    }
    assert!(survived >= 1, "no kill point was reached: the backup was too quick");
    repo(&repo_dir, ["check", "--read-data"]).run().ok();
    let target = tmp.path().join("restored");
    repo(&repo_dir, ["restore", "latest", "--target", utf8(&target)]).run().ok();
    assert_eq!(assert_same_tree(&src, &restored(&target, &src)), 6);
    eprintln!("repo backup: kill points survived {survived}, most bytes re-sent {resent_max}");
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

// ---------------------------------------------------------------- prune

#[test]
fn prune_killed_while_rewriting_packs_finishes_and_leaves_a_sound_repository() {
    let tmp = temp();
    let repo_dir = tmp.path().join("repo");
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    // Kept and dropped files backed up together share packs: prune must rewrite them.
    for i in 0..4 {
        write_noise_file(&src.join(format!("keep-{i}.bin")), 6 * MIB, 400 + i);
        write_noise_file(&src.join(format!("drop-{i}.bin")), 6 * MIB, 500 + i);
    }
    repo(&repo_dir, ["init", "--quiet", "--pack-size", "8"]).run().ok();
    repo(&repo_dir, ["backup", "--quiet", utf8(&src)]).run().ok();
    for i in 0..4 {
        std::fs::remove_file(src.join(format!("drop-{i}.bin"))).unwrap();
    }
    repo(&repo_dir, ["backup", "--quiet", utf8(&src)]).run().ok();
    repo(&repo_dir, ["forget", "--keep-last", "1"]).run().ok();
    let live = 24 * MIB;

    let points = crash_points();
    let mut survived = 0;
    // Pack bytes every run wrote, killed ones included.
    let mut all_written = 0;
    for i in 0..=points {
        let before = all_packs(&repo_dir);
        let new_packs = || all_packs(&repo_dir).difference(&before).count();
        let written_now = || bytes(&all_packs(&repo_dir).difference(&before).cloned().collect());
        if i < points {
            // Each killed run gets one rewritten pack further than nothing.
            let mut job = repo(&repo_dir, ["prune", "--json"]).spawn(&tmp.path().join(format!("prune-{i}.log")));
            if reached_while_running(&mut job, "rewritten packs", || new_packs() >= 1) {
                job.kill_9();
                survived += 1;
                all_written += written_now();
            }
            continue;
        }
        let run = repo(&repo_dir, ["prune", "--json"]).run().ok();
        let written = written_now();
        all_written += written;
        eprintln!(
            "prune: {survived} kills survived; the finishing run wrote {written} B of packs, all runs {all_written} B \
             (live data {live})"
        );
        // The rerun rewrites the live data at most once more, not once per kill.
        assert!(written <= live + 4 * MIB, "the rerun wrote {written} bytes of packs:\n{run}");
        break;
    }
    assert!(survived >= 1, "no kill point was reached: prune was too quick");
    // And the reruns keep what the killed runs rewrote: all of them together write
    // the live data about once, so kills again and again still converge.
    assert!(all_written <= live + 8 * MIB, "the runs wrote {all_written} bytes of packs for {live} of live data");
    let run = repo(&repo_dir, ["check", "--read-data", "--json"]).run().ok();
    assert_eq!(run.json()["warnings"], serde_json::json!([]), "a killed prune left packs nobody indexes:\n{run}");
    let target = tmp.path().join("restored");
    repo(&repo_dir, ["restore", "latest", "--target", utf8(&target)]).run().ok();
    assert_eq!(assert_same_tree(&src, &restored(&target, &src)), 4);
}

// ---------------------------------------------------------------- agent backup online

fn throttled(agent: &Agent, limit: &str) {
    agent
        .cmd([
            "throttle",
            "set",
            "--work-days",
            "mon,tue,wed,thu,fri,sat,sun",
            "--work-hours",
            "00:00-23:59",
            "--work-limit",
            limit,
            "--other-limit",
            limit,
        ])
        .run()
        .ok();
}

fn noise_tree(root: &Path, files: u64, mib: u64, seed: u64) -> u64 {
    std::fs::create_dir_all(root).unwrap();
    for i in 0..files {
        std::fs::create_dir_all(root.join(format!("dir{}", i % 2))).unwrap();
        write_noise_file(&root.join(format!("dir{}/file{i}.bin", i % 2)), mib * MIB, seed + i);
    }
    files * mib * MIB
}

#[test]
fn agent_backup_killed_at_several_points_resumes_and_the_service_agrees() {
    let tmp = temp();
    let root = tmp.path();
    let service = Service::start(root);
    let mut total = 0;
    let Customer { agent, source, .. } = service.customer(root, |source| {
        total = noise_tree(source, 6, 6, 600);
    });
    throttled(&agent, "16MiB/s");
    let storage = service.data_dir.join("storage");
    // What can be in flight: the two uploads and the packs being filled, of the
    // vault's pack size (16 MiB at most) each.
    let in_flight = 4 * 16 * MIB;

    let points = crash_points();
    let mut survived = 0;
    for i in 0..=points {
        let before = all_packs(&storage);
        let target = before.len() + kill_point(i, points, 3);
        if i < points {
            let mut job = agent.cmd(["backup", "--now", "--json"]).spawn(&root.join(format!("backup-{i}.log")));
            if reached_while_running(&mut job, "more packs", || stored_packs(&storage).len() >= target) {
                job.kill_9();
                survived += 1;
                assert_service_agrees_or_only_staged(&service);
            }
            continue;
        }
        agent.cmd(["throttle", "off"]).run().ok();
        let done = agent.backup();
        assert_eq!(done["report"]["state"], "completed", "{done}");
        let sent = json_u64(&done, &["report", "bytes_uploaded"]);
        let resent = sent.saturating_sub(total.saturating_sub(bytes(&before)));
        eprintln!(
            "agent backup: {survived} kills survived; the rerun sent {sent} B, {resent} B again (bound {in_flight})"
        );
        assert!(resent <= in_flight, "the rerun sent {resent} bytes again (bound {in_flight}): {done}");
        break;
    }
    assert!(survived >= 1, "no kill point was reached: the backup was too quick");
    agent.restore_equals(&root.join("restored"), &source);
    assert_service_agrees(&service);
}

/// Between crashes of a client, the service itself is alive: nothing it wrote may disagree.
fn assert_service_agrees_or_only_staged(service: &Service) {
    let run = offsite(["server", "check", "--json", "--data-dir", utf8(&service.data_dir)]).run();
    let report = run.json();
    let other: Vec<&serde_json::Value> = report["disagreements"]
        .as_array()
        .map(|all| all.iter().filter(|d| d["kind"] != "partial_upload").collect())
        .unwrap_or_default();
    assert!(other.is_empty(), "after a client was killed the service disagrees with itself:\n{run}");
}

// ---------------------------------------------------------------- the service killed

#[test]
fn the_service_killed_during_an_agent_backup_restarts_and_the_backup_finishes() {
    let tmp = temp();
    let root = tmp.path();
    let mut service = Service::start(root);
    let Customer { agent, source, .. } = service.customer(root, |source| {
        noise_tree(source, 6, 8, 700);
    });
    throttled(&agent, "8MiB/s");
    let storage = service.data_dir.join("storage");

    let points = crash_points();
    let mut job = agent.cmd(["backup", "--now", "--json"]).spawn(&root.join("backup.log"));
    let mut kills = 0;
    for i in 0..points {
        // Packs upload side by side at the shared limit and can finish together,
        // so the first kill point asks for no finished pack, only one in flight.
        let target = kill_point(i, points, 3) - 1;
        // An upload is in flight when a staged file is being written.
        let in_the_middle = || {
            stored_packs(&storage).len() >= target
                && offsite_server::consistency::staged_uploads(&storage).is_ok_and(|s| !s.is_empty())
        };
        if !reached_while_running(&mut job, "an upload in flight", in_the_middle) {
            break;
        }
        service.kill();
        kills += 1;
        let staged = offsite_server::consistency::staged_uploads(&storage).unwrap();
        // The check finds the half-written upload a killed service leaves.
        if !staged.is_empty() {
            let run = offsite(["server", "check", "--json", "--data-dir", utf8(&service.data_dir)]).run().code(1);
            assert!(run.stdout.contains("partial_upload"), "{run}");
        }
        service.restart();
    }
    assert!(kills >= 1, "the service was never killed in the middle of an upload");
    // The agent retries through the restarts and finishes.
    let deadline = Duration::from_secs(240);
    let finished = wait_for(deadline, || job.try_wait().is_some());
    assert!(finished, "the backup did not finish after the service came back:\n{}", job.output());
    let status = job.try_wait().unwrap();
    let output = job.output();
    if status.code() != Some(0) {
        // The retry window passed while the service was down: the next backup resumes.
        assert_eq!(status.code(), Some(13), "{output}");
        agent.cmd(["throttle", "off"]).run().ok();
        let done = agent.backup();
        assert_eq!(done["report"]["state"], "completed", "{done}");
    }
    eprintln!("service killed {kills} times during uploads; backup exit {:?}", status.code());
    agent.restore_equals(&root.join("restored"), &source);
    assert_service_agrees(&service);
}

// ---------------------------------------------------------------- server check

/// A data folder broken in each way the check names: it must say so, one by one.
#[test]
fn server_check_names_each_disagreement_of_a_broken_data_dir() {
    let tmp = temp();
    let root = tmp.path();
    let mut service = Service::start(root);
    let Customer { agent, .. } = service.customer(root, |source| {
        small_tree(source);
    });
    let done = agent.backup();
    assert_eq!(done["report"]["state"], "completed", "{done}");
    let storage = service.data_dir.join("storage");
    service.kill();
    let check = |read_data: bool| {
        let mut args = vec!["server", "check", "--json", "--data-dir", utf8(&service.data_dir)];
        if read_data {
            args.push("--read-data");
        }
        offsite(args).run()
    };
    let run = check(true).ok();
    assert_eq!(run.json()["disagreements"], serde_json::json!([]), "{run}");
    assert!(json_u64(&run.json(), &["files_read"]) > 0, "{run}");

    let vault_repo = find_dir(&storage.join("vaults"), "snapshots").parent().unwrap().to_path_buf();
    // A pack cut short: only reading finds it.
    let (pack, size) = stored_packs(&vault_repo).into_iter().max_by_key(|(_, s)| *s).unwrap();
    std::fs::File::options().write(true).open(&pack).unwrap().set_len(size / 2).unwrap();
    // Its size is not the one the service stored: found without reading.
    let pack_name = pack.file_name().unwrap().to_str().unwrap();
    assert_has(&check(false).code(1), "missing_repository_files", pack_name);
    let run = check(true).code(1);
    assert_has(&run, "damaged_file", pack_name);
    // A half-written upload left staged.
    let staged = pack.with_file_name(format!("{}#3", pack.file_name().unwrap().to_str().unwrap()));
    std::fs::write(&staged, b"half").unwrap();
    let run = check(false).code(1);
    assert_has(&run, "partial_upload", staged.file_name().unwrap().to_str().unwrap());
    // A recovery point whose snapshot file is gone.
    let snapshot = std::fs::read_dir(vault_repo.join("snapshots")).unwrap().next().unwrap().unwrap().path();
    let snapshot_id = snapshot.file_name().unwrap().to_str().unwrap().to_string();
    std::fs::remove_file(&snapshot).unwrap();
    let run = check(false).code(1);
    assert_has(&run, "missing_snapshot", &snapshot_id);
    // A repository without its config.
    std::fs::remove_file(vault_repo.join("config")).unwrap();
    let run = check(false).code(1);
    assert_has(&run, "repository_without_config", "");
    // Plain text names each one too.
    let text = offsite(["server", "check", "--data-dir", utf8(&service.data_dir)]).run().code(1);
    assert!(text.stdout.contains(&snapshot_id) && text.stdout.contains("no config"), "{text}");
    // The snapshot, the config and the short pack are also files the service stored.
    assert!(text.stdout.contains("gone from the storage"), "{text}");
    assert!(text.stderr.contains("disagree in 4 places"), "{text}");

    // Restarting the service removes the dead upload.
    service.restart();
    assert!(!staged.exists(), "the restarted service left a dead upload behind");
    // A folder that is not a service's data folder is refused, not found in agreement.
    offsite(["server", "check", "--data-dir", utf8(&root.join("nothing"))]).run().code(1).stderr_has("offsite.db");
}

fn assert_has(run: &Run, kind: &str, naming: &str) {
    let report = run.json();
    let found = report["disagreements"]
        .as_array()
        .is_some_and(|all| all.iter().any(|d| d["kind"] == kind && d.to_string().contains(naming)));
    assert!(found, "the check does not name a {kind} of {naming}:\n{run}");
}

fn find_dir(root: &Path, name: &str) -> PathBuf {
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            if entry.file_type().unwrap().is_dir() {
                if entry.file_name() == name {
                    return entry.path();
                }
                pending.push(entry.path());
            }
        }
    }
    panic!("no folder {name} under {}", root.display());
}

// ---------------------------------------------------------------- offline seeding

/// The drive capacity of the seeding test: a seed of ~40 MiB spans several drives.
const SEED_DRIVE: &str = "8MiB";
const SEED_DRIVES: u32 = 10;

fn journal_of(path: &Path) -> Option<serde_json::Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Bytes of the stream on finished drives, as the journal recorded them.
fn finished_stream(journal: &serde_json::Value) -> u64 {
    journal["drives"].as_array().and_then(|d| d.last()).and_then(|d| d["end"]["stream_offset"].as_u64()).unwrap_or(0)
}

/// Every byte of an import job's files in the service's storage, parts included.
fn container_bytes(storage: &Path) -> u64 {
    fn walk(dir: &Path) -> u64 {
        let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
        entries
            .flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => walk(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    }
    walk(&storage.join("containers"))
}

/// Staging backup, diskprep (prepare, then `--resume`), ingest and adoption, each
/// killed at its kill points and rerun; the service killed once in the middle of
/// an ingest's part upload. The seed restores byte for byte.
#[test]
fn offline_seeding_killed_at_every_step_finishes_and_the_service_agrees() {
    use common::site::*;
    let tmp = temp();
    let root = tmp.path();
    let mut service = Service::start(root);
    let site = Site::new(&service, root);
    write_noise_file(&site.source.join("more.bin"), 30 * MIB, 77);
    site.configure_offline();
    let points = crash_points();
    let storage = service.data_dir.join("storage");

    // 1. The backup into staging.
    let mut survived = [0usize; 4];
    for i in 0..=points {
        let before = all_packs(&site.staging);
        let target = before.len() + kill_point(i, points, 2);
        if i < points {
            let mut job = site.agent.cmd(["backup", "--now", "--json"]).spawn(&root.join(format!("stage-{i}.log")));
            if reached_while_running(&mut job, "staged packs", || packs(&site.staging).len() >= target) {
                job.kill_9();
                survived[0] += 1;
                continue;
            }
            // Too quick to interrupt here: this run staged the seed.
            break;
        }
        // A kill that landed after the killed run wrote its snapshot finds the seed
        // staged: the rerun then waits for the import job, as it should.
        let staged_before = files_in(&site.staging.join("snapshots")).len() == 1;
        let staged = site.agent.backup();
        let state = staged["report"]["state"].as_str().unwrap_or_default();
        assert!(state == "completed" || (state == "waiting" && staged_before), "{staged}");
        // A kill between the snapshot and the agent recording it leaves a snapshot
        // the rerun does not know: it backs up again, finds nothing new, and
        // records its own (the other one is a few KB, whole and harmless).
        let snapshots = if staged_before && state == "completed" { 2 } else { 1 };
        assert_eq!(files_in(&site.staging.join("snapshots")).len(), snapshots, "seed snapshots: {staged}");
        if snapshots == 2 {
            let message = staged["report"]["message"].as_str().unwrap_or_default();
            assert!(message.contains("0 new, 0 changed"), "{staged}");
        }
        assert_eq!(staged["report"]["bytes_uploaded"], 0, "the seed went over the network: {staged}");
        let written = bytes(&all_packs(&site.staging).difference(&before).cloned().collect());
        let total = 40 * MIB;
        let resent = written.saturating_sub(total.saturating_sub(bytes(&before)));
        eprintln!("staging backup: {} kills survived; the rerun wrote {written} B, {resent} B again", survived[0]);
        assert!(resent <= 4 * 16 * MIB, "the rerun wrote {resent} bytes again: {staged}");
        break;
    }
    repo(&site.staging, ["check", "--read-data"]).password(AGENT_PASSPHRASE).run().ok();

    // 2. diskprep, killed after finished drives, then resumed.
    let journal = root.join("seed.journal.json");
    let drives: Vec<PathBuf> = (1..=SEED_DRIVES).map(|n| site.drive(n)).collect();
    let mut done_at_kill = 0u64;
    let mut resent_max = 0u64;
    for i in 0..=points {
        let mut args: Vec<String> = vec!["--journal".into(), utf8(&journal).into(), "--yes".into(), "--json".into()];
        let next = match journal_of(&journal) {
            None => {
                args.extend(["--drive-size".into(), SEED_DRIVE.into(), "--block-size".into(), BLOCK_SIZE.into()]);
                0
            }
            Some(j) => {
                // Image files not yet created need their size; the journal has the rest.
                args.extend(["--resume".into(), "--drive-size".into(), SEED_DRIVE.into()]);
                let in_progress = j["in_progress"]["index"].as_u64().map(|k| k + 1);
                in_progress.unwrap_or(j["drives"].as_array().map_or(0, |d| d.len() as u64)) as usize
            }
        };
        for drive in &drives[next..] {
            args.extend(["--drive".into(), utf8(drive).into()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut job = site.diskprep(&args).spawn(&root.join(format!("diskprep-{i}.log")));
        let finished_before = journal_of(&journal).map_or(0, |j| j["drives"].as_array().map_or(0, Vec::len));
        let wanted = finished_before + kill_point(i, points, 2);
        let finished = || journal_of(&journal).is_some_and(|j| j["drives"].as_array().map_or(0, Vec::len) >= wanted);
        if i < points && reached_while_running(&mut job, "finished drives", finished) {
            job.kill_9();
            survived[1] += 1;
            done_at_kill = journal_of(&journal).as_ref().map_or(0, finished_stream);
            continue;
        }
        let wait = wait_for(Duration::from_secs(240), || job.try_wait().is_some());
        assert!(wait && job.try_wait().and_then(|s| s.code()) == Some(0), "diskprep failed:\n{}", job.output());
        let out = first_json(&job.output());
        let written = json_u64(&out, &["set", "bytes_written"]);
        let total = json_u64(&out, &["set", "total_bytes"]);
        let resent = written.saturating_sub(total - done_at_kill);
        resent_max = resent_max.max(resent);
        eprintln!("diskprep: {} kills survived; the last run wrote {written} B, {resent} B again", survived[1]);
        // Finished drives are never written again; the drive in progress at most
        // from its last checkpoint (each drive here is smaller than a checkpoint).
        assert!(resent <= 8 * MIB, "the resume wrote {resent} bytes again:\n{out}");
        break;
    }
    let drive_count = journal_of(&journal).map_or(0, |j| j["drives"].as_array().map_or(0, Vec::len));
    assert!(drive_count >= 3, "the seed must span drives");

    site.ship("1Z999AA10123456784").ok();
    site.datacenter(&service, &["receive", "--job", JOB]).run().ok();

    // 3. Ingest: the station killed, and once the service, in the middle of a drive.
    for (n, drive) in drives.iter().take(drive_count).enumerate() {
        let mut ingested = None;
        if n < points {
            let before = container_bytes(&storage);
            let mut job = offsite([
                "datacenter",
                "--operator-credentials",
                utf8(&service.operator),
                "ingest",
                "--drive",
                utf8(drive),
                "--import-key",
                utf8(&site.import_key),
                "--json",
            ])
            .spawn(&root.join(format!("ingest-{n}.log")));
            let some = (1 + n as u64) * MIB;
            if reached_while_running(&mut job, "stored bytes", || container_bytes(&storage) >= before + some) {
                survived[2] += 1;
                if n == 0 {
                    // The service dies under the upload and comes back; the station
                    // retries or stops, and is run again if it stopped.
                    service.kill();
                    service.restart();
                    assert!(wait_for(Duration::from_secs(240), || job.try_wait().is_some()), "{}", job.output());
                    if job.try_wait().and_then(|s| s.code()) == Some(0) {
                        ingested = Some(first_json(&job.output()));
                    }
                } else {
                    job.kill_9();
                }
            } else {
                ingested = Some(first_json(&job.output()));
            }
        }
        let done = ingested.unwrap_or_else(|| {
            let rerun = site.ingest(&service, drive);
            if rerun.code == Some(17) && rerun.stderr.contains("was ingested already (Completed)") {
                // The kill landed after the service recorded the drive complete: the
                // station refuses to send it again, and nothing more is delivered.
                return serde_json::json!({ "drive_state": "completed", "bytes_delivered": 0 });
            }
            rerun.ok().json()
        });
        assert_eq!(done["drive_state"], "completed", "{done}");
        let delivered = json_u64(&done, &["bytes_delivered"]);
        assert!(delivered <= 8 * MIB, "ingest of one drive delivered {delivered} bytes: {done}");
        // What the stopped run stored is not sent again.
        eprintln!("ingest of drive {n}: {delivered} B sent, {} B stored already", done["bytes_already_stored"]);
    }
    assert_eq!(site.job_state(), "completed");
    assert_service_agrees_or_only_staged(&service);

    // 4. Adoption: the agent killed as the seed's files arrive in its repository.
    let vaults = storage.join("vaults");
    let mut job = site.agent.cmd(["backup", "--now", "--json"]).spawn(&root.join("adopt.log"));
    if reached_while_running(&mut job, "adopted files", || !stored_packs(&vaults).is_empty()) {
        job.kill_9();
        survived[3] += 1;
    }
    let adopted = site.agent.backup();
    assert_eq!(adopted["report"]["state"], "completed", "{adopted}");
    let sent = json_u64(&adopted, &["report", "bytes_uploaded"]);
    assert!(sent < 2 * MIB, "after adoption the backup sent {sent} bytes: {adopted}");

    site.agent.restore_equals(&root.join("restored"), &site.source);
    assert_service_agrees(&service);
    eprintln!(
        "offline seeding kill points survived: staging {}, diskprep {}, ingest {}, adoption {}; diskprep re-wrote at most {resent_max} B",
        survived[0], survived[1], survived[2], survived[3]
    );
    assert!(survived[0] + survived[1] >= 1, "no kill point was reached");
}

/// The first JSON value in a background command's output (stdout and stderr together).
fn first_json(output: &str) -> serde_json::Value {
    let start = output.find('{').unwrap_or_else(|| panic!("no JSON in:\n{output}"));
    let mut values = serde_json::Deserializer::from_str(&output[start..]).into_iter::<serde_json::Value>();
    match values.next() {
        Some(Ok(value)) => value,
        other => panic!("no JSON ({other:?}) in:\n{output}"),
    }
}

// ---------------------------------------------------------------- locks of killed agents

/// The lock files in every repository under the service's storage.
fn stored_locks(storage: &Path) -> BTreeSet<String> {
    fn walk(dir: &Path, in_locks: bool, out: &mut BTreeSet<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().unwrap().is_dir() {
                walk(&entry.path(), name == "locks", out);
            } else if in_locks && name.len() == 64 {
                out.insert(name);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(storage, false, &mut out);
    out
}

/// Each killed agent backup leaves its lock; the next backup removes it (before,
/// they piled up, one per kill, and the agent had no way to remove them); `agent
/// unlock` removes what is stale.
#[test]
fn killed_agent_backups_leave_no_locks_behind() {
    let tmp = temp();
    let root = tmp.path();
    let service = Service::start(root);
    let Customer { agent, source, .. } = service.customer(root, |source| {
        noise_tree(source, 6, 4, 900);
    });
    throttled(&agent, "2MiB/s");
    let storage = service.data_dir.join("storage");

    let mut left = BTreeSet::new();
    for kill in 0..2 {
        let mut job = agent.cmd(["backup", "--now", "--json"]).spawn(&root.join(format!("backup-{kill}.log")));
        // This run holds a lock of its own, and the killed run's lock is gone.
        let taken = reached_while_running(&mut job, "its own lock", || {
            let now = stored_locks(&storage);
            now.len() == 1 && left.is_disjoint(&now)
        });
        assert!(taken, "the backup finished before it could be killed:\n{}", job.output());
        job.kill_9();
        left = stored_locks(&storage);
        assert_eq!(left.len(), 1, "after kill {kill}: {left:?}");
    }
    agent.cmd(["throttle", "off"]).run().ok();
    let done = agent.backup();
    assert_eq!(done["report"]["state"], "completed", "{done}");
    assert_eq!(stored_locks(&storage), BTreeSet::new(), "the backup left a killed run's lock");

    // `agent unlock` removes a killed run's lock, and only stale ones.
    throttled(&agent, "2MiB/s");
    std::fs::write(source.join("dir0/new.bin"), noise(12 << 20, 901)).unwrap();
    let mut job = agent.cmd(["backup", "--now", "--json"]).spawn(&root.join("backup-last.log"));
    assert!(reached_while_running(&mut job, "its lock", || stored_locks(&storage).len() == 1));
    let run = agent.cmd(["unlock", "--json"]).run().ok();
    assert_eq!(run.json(), serde_json::json!([]), "unlock removed a running backup's lock:\n{run}");
    let pid = job.id();
    job.kill_9();
    let run = agent.cmd(["unlock", "--json"]).run().ok();
    let removed = run.json();
    let removed = removed.as_array().unwrap_or_else(|| panic!("not a list:\n{run}"));
    assert_eq!(removed.len(), 1, "{run}");
    assert!(removed[0].as_str().unwrap_or_default().contains(&format!("backup (pid {pid}")), "{run}");
    assert_eq!(stored_locks(&storage), BTreeSet::new(), "{run}");
}
