//! Locks left behind by processes that were killed: the next operation that takes
//! a lock removes those of this host's processes that are gone, and leaves other
//! hosts' locks alone; `unlock` removes what is stale.

mod common;

use std::fs;

use offsite_engine::lock::{self, RepositoryLock};
use offsite_engine::repofile::lock::LockFile;
use offsite_engine::Repository;

use common::*;

/// This host's name as the engine records it in locks.
fn this_host(repo: &Repository) -> String {
    let held = RepositoryLock::acquire(repo, false, "probe").unwrap();
    let locks = lock::list_locks(repo).unwrap();
    drop(held);
    assert_eq!(locks.len(), 1);
    locks[0].1.hostname.clone()
}

/// The pid of a process that has ended.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    pid
}

fn lock_of(hostname: &str, pid: u32, exclusive: bool, operation: &str) -> LockFile {
    LockFile {
        time: time::OffsetDateTime::now_utc(),
        exclusive,
        hostname: hostname.to_string(),
        username: "someone".into(),
        pid,
        operation: operation.into(),
    }
}

fn held_by(repo: &Repository) -> Vec<(String, u32, String)> {
    let mut locks: Vec<_> =
        lock::list_locks(repo).unwrap().into_iter().map(|(_, l)| (l.hostname, l.pid, l.operation)).collect();
    locks.sort();
    locks
}

#[test]
fn the_next_operation_removes_this_hosts_dead_locks_and_leaves_other_hosts_locks() {
    let dir = tempfile::tempdir().unwrap();
    let repo = init_repo(&dir.path().join("repo"));
    let source = dir.path().join("src");
    fs::create_dir_all(&source).unwrap();
    fs::write(source.join("a.txt"), noise(50_000, 1)).unwrap();
    let host = this_host(&repo);
    let dead = dead_pid();

    // A killed prune and a killed backup of this host; a backup running elsewhere.
    lock::save_lock(&repo, &lock_of(&host, dead, true, "prune")).unwrap();
    lock::save_lock(&repo, &lock_of(&host, dead, false, "backup")).unwrap();
    lock::save_lock(&repo, &lock_of("elsewhere.example", dead, false, "backup")).unwrap();
    assert_eq!(held_by(&repo).len(), 3);

    backup(&repo, &[&source]);
    assert_eq!(held_by(&repo), vec![("elsewhere.example".to_string(), dead, "backup".to_string())]);

    // The other host's lock is fresh: not stale, so `unlock` keeps it too; it
    // removes a dead process's lock of this host.
    assert!(lock::unlock(&repo, false).unwrap().is_empty());
    lock::save_lock(&repo, &lock_of(&host, dead, false, "check")).unwrap();
    let removed = lock::unlock(&repo, false).unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].operation, "check");
    assert_eq!(held_by(&repo).len(), 1);
}

#[test]
fn a_live_process_lock_of_this_host_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let repo = init_repo(&dir.path().join("repo"));
    let source = dir.path().join("src");
    fs::create_dir_all(&source).unwrap();
    fs::write(source.join("a.txt"), noise(10_000, 2)).unwrap();
    let host = this_host(&repo);
    // This test's own process is alive: its (shared) lock stays through a backup.
    lock::save_lock(&repo, &lock_of(&host, std::process::id(), false, "backup")).unwrap();
    backup(&repo, &[&source]);
    assert_eq!(held_by(&repo), vec![(host, std::process::id(), "backup".to_string())]);
}

#[test]
fn a_live_exclusive_lock_refuses_a_backup_which_leaves_no_lock_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let repo = init_repo(&dir.path().join("repo"));
    // A prune running on another host: its lock is fresh.
    lock::save_lock(&repo, &lock_of("elsewhere.example", 4242, true, "prune")).unwrap();
    let refused = RepositoryLock::acquire(&repo, false, "backup").err().expect("a backup waits for the prune");
    let said = refused.to_string();
    assert!(said.contains("prune") && said.contains("elsewhere.example"), "{said}");
    // The lock it wrote before it looked is gone again.
    assert_eq!(held_by(&repo), vec![("elsewhere.example".to_string(), 4242, "prune".to_string())]);
}

#[test]
fn a_backup_refuses_a_prune_and_two_backups_share() {
    let dir = tempfile::tempdir().unwrap();
    let repo = init_repo(&dir.path().join("repo"));
    lock::save_lock(&repo, &lock_of("elsewhere.example", 4242, false, "backup")).unwrap();
    assert!(RepositoryLock::acquire(&repo, true, "prune").is_err());
    let shared = RepositoryLock::acquire(&repo, false, "backup").expect("backups share the repository");
    assert_eq!(held_by(&repo).len(), 2);
    drop(shared);
    assert_eq!(held_by(&repo), vec![("elsewhere.example".to_string(), 4242, "backup".to_string())]);
}
