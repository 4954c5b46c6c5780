//! Backups that are killed or still running: `kill -9` mid-backup must leave a
//! repository that checks clean and whose next backup reuses the stored packs, and a
//! running backup must keep prune out until it is gone.
//!
//! These tests need a backup that runs for a while: they generate
//! `OFFSITE_E2E_BIG_MB` MiB (default 64) of incompressible data in eight files.

mod common;

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

use common::*;

/// Generates the large source tree; returns its total size in bytes.
fn big_tree(src: &Path) -> u64 {
    let mib: u64 = std::env::var("OFFSITE_E2E_BIG_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(64);
    assert!(mib >= 64, "OFFSITE_E2E_BIG_MB must be at least 64: the tests wait for 10 packs of 4 MiB");
    std::fs::create_dir_all(src).unwrap();
    let per_file = (mib << 20) / 8;
    for i in 0..8 {
        write_noise_file(&src.join(format!("part-{i}.bin")), per_file, 1000 + i);
    }
    per_file * 8
}

/// Waits until `ready` holds while the backup still runs; panics if it ends first
/// (it was too quick to interrupt) or nothing happens for a long time.
fn wait_while_running(backup: &mut Background, what: &str, mut ready: impl FnMut() -> bool) {
    let mut exited = None;
    let reached = wait_for(Duration::from_secs(300), || {
        exited = backup.try_wait();
        exited.is_some() || ready()
    });
    assert!(
        exited.is_none(),
        "`{}` ended ({exited:?}) before {what}; give it more data (OFFSITE_E2E_BIG_MB). Its output:\n{}",
        backup.shown,
        backup.output()
    );
    assert!(reached, "`{}` did not reach {what} within 5 minutes. Its output:\n{}", backup.shown, backup.output());
}

fn kill_9(backup: Background) {
    let status = backup.kill_9();
    assert_eq!(status.signal(), Some(9), "the backup was not killed by SIGKILL: {status:?}");
}

#[test]
fn a_killed_backup_leaves_a_sound_repository_and_its_packs_are_reused() {
    let tmp = temp();
    let repo_dir = tmp.path().join("repo");
    let src = tmp.path().join("src");
    let total = big_tree(&src);
    repo(&repo_dir, ["init", "--quiet", "--pack-size", "4"]).run().ok();

    let mut child = repo(&repo_dir, ["backup", "--quiet", utf8(&src)]).spawn(&tmp.path().join("backup.log"));
    wait_while_running(&mut child, "10 packs were stored", || packs(&repo_dir).len() >= 10);
    let pid = child.id();
    kill_9(child);

    let left = packs(&repo_dir);
    let stored_before: u64 = left.iter().map(|(_, size)| size).sum();
    assert!(left.len() >= 10, "{left:?}");
    assert_eq!(files_in(&repo_dir.join("snapshots")), Vec::<String>::new(), "a killed backup wrote a snapshot");
    assert_eq!(files_in(&repo_dir.join("locks")).len(), 1, "the killed backup should have left its lock behind");

    // The repository is sound: the packs without an index are only warnings.
    repo(&repo_dir, ["check"]).run().ok().stdout_has("in no index").stdout_has("no errors found");
    // Taking its own lock, the check removed the one the killed process left.
    assert_eq!(files_in(&repo_dir.join("locks")), Vec::<String>::new(), "the killed backup's lock is still there");
    let run = repo(&repo_dir, ["snapshots", "--json"]).run().ok();
    assert_eq!(run.json(), serde_json::json!([]), "{run}");
    // The dead process's lock blocks nobody, not even an exclusive operation.
    repo(&repo_dir, ["forget", "--keep-last", "1", "--dry-run"]).run().ok();

    // The next backup indexes the stored packs instead of writing them again.
    let run = repo(&repo_dir, ["backup", "--json", utf8(&src)]).run().ok();
    let out = run.json();
    let recovered = json_u64(&out, &["recovered_packs"]);
    assert!(recovered > 0 && recovered <= left.len() as u64, "recovered {recovered} of {} packs:\n{run}", left.len());
    assert_eq!(json_u64(&out, &["summary", "total_bytes"]), total, "{run}");
    assert_eq!(json_u64(&out, &["summary", "files_new"]), 8, "{run}");
    let added = json_u64(&out, &["summary", "data_added_stored"]);
    let limit = total - stored_before * 8 / 10;
    assert!(
        added <= limit,
        "the second backup stored {added} bytes although {stored_before} of {total} were already in packs \
         (killed backup was pid {pid}):\n{run}"
    );

    repo(&repo_dir, ["check", "--read-data"]).run().ok();
    let run = repo(&repo_dir, ["check", "--json"]).run().ok();
    let report = run.json();
    assert_eq!(report["errors"], serde_json::json!([]), "{run}");
    assert_eq!(report["warnings"], serde_json::json!([]), "recovered packs should be indexed now:\n{run}");

    let target = tmp.path().join("restored");
    repo(&repo_dir, ["restore", "latest", "--target", utf8(&target)]).run().ok();
    assert_eq!(assert_same_tree(&src, &restored(&target, &src)), 8);
}

#[test]
fn a_running_backup_keeps_prune_out_until_it_is_gone() {
    let tmp = temp();
    let repo_dir = tmp.path().join("repo");
    let src = tmp.path().join("src");
    big_tree(&src);
    repo(&repo_dir, ["init", "--quiet", "--pack-size", "4"]).run().ok();
    let locks = repo_dir.join("locks");

    let mut child = repo(&repo_dir, ["backup", "--quiet", utf8(&src)]).spawn(&tmp.path().join("backup.log"));
    wait_while_running(&mut child, "its lock and first pack were stored", || {
        !files_in(&locks).is_empty() && !packs(&repo_dir).is_empty()
    });
    let pid = child.id();
    // Freeze it mid-backup: it holds its lock however fast this machine is.
    let raw_pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process(raw_pid, rustix::process::Signal::STOP).unwrap();
    assert!(child.try_wait().is_none(), "the backup ended before it could be stopped:\n{}", child.output());
    // SIGSTOP takes effect when the process returns to user space: a large write in
    // progress finishes first. Wait until every thread is stopped.
    let all_stopped = || {
        fs::read_dir(format!("/proc/{pid}/task")).is_ok_and(|tasks| {
            tasks.flatten().all(|t| {
                fs::read_to_string(t.path().join("stat"))
                    .map(|stat| stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('T')))
                    .unwrap_or(false)
            })
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !all_stopped() {
        assert!(std::time::Instant::now() < deadline, "the backup did not stop");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    let holder = format!("backup (pid {pid}");
    let before = listing(&repo_dir);
    let run = repo(&repo_dir, ["prune"]).run().code(11).stderr_has(&holder).stderr_has("unlock");
    assert_unchanged(&repo_dir, &before, &run);
    let run = repo(&repo_dir, ["forget", "--keep-last", "1"]).run().code(11).stderr_has(&holder);
    assert_unchanged(&repo_dir, &before, &run);
    // The lock of a live process is not stale: unlock leaves it.
    let run = repo(&repo_dir, ["unlock", "--json"]).run().ok();
    assert_eq!(run.json(), serde_json::json!([]), "unlock removed a live process's lock:\n{run}");
    assert_eq!(files_in(&locks).len(), 1);

    kill_9(child);
    let run = repo(&repo_dir, ["unlock", "--json"]).run().ok();
    let removed = run.json();
    let removed = removed.as_array().unwrap_or_else(|| panic!("not a list:\n{run}"));
    assert_eq!(removed.len(), 1, "{run}");
    assert!(removed[0].as_str().unwrap_or_default().contains(&holder), "{run}");
    assert_eq!(files_in(&locks), Vec::<String>::new(), "{run}");

    // With the holder gone, prune runs, and removes the packs no snapshot uses.
    let run = repo(&repo_dir, ["prune", "--json"]).run().ok();
    assert_eq!(packs(&repo_dir), Vec::new(), "prune left unused packs:\n{run}");
}

/// ENGINE GAP (reported): `LocalBackend::save` writes `.tmp-<name>-<random>` and
/// renames it; a backup killed in between leaves that file (up to a whole pack, one
/// per uploader thread) and nothing ever removes it: not the next backup, not prune,
/// not check. Seen after `kill -9` of a backup: `data/b6/.tmp-b6da…-c66a…`, 6.6 MB,
/// still there after `unlock` and `prune`. Prune holds the exclusive lock, so it
/// could remove them (at least those older than a few hours).
#[test]
fn prune_removes_what_a_killed_backup_left_half_written() {
    let tmp = temp();
    let repo_dir = tmp.path().join("repo");
    repo(&repo_dir, ["init", "--quiet"]).run().ok();
    // What a backup killed between writing and renaming a pack leaves, two days ago.
    let leftover = repo_dir.join(format!("data/ab/.tmp-ab{}-0123456789ab", "0".repeat(62)));
    write(&leftover, &noise(1 << 20, 7));
    let two_days_ago = std::time::SystemTime::now() - Duration::from_secs(2 * 86400);
    std::fs::File::options().write(true).open(&leftover).unwrap().set_modified(two_days_ago).unwrap();
    let run = repo(&repo_dir, ["prune"]).run().ok();
    assert!(!leftover.exists(), "prune left the half-written pack of a killed backup:\n{run}");
}
