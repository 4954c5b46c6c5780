//! The agent's local repository cache through the binary and a real service:
//! an unchanged backup makes the same few requests whatever the size of the tree,
//! `agent cache info|clear`, `--no-cache`, and `repo cache` on a local folder.

mod common;

use std::path::Path;

use common::service::Service;
use common::*;
use serde_json::Value;

/// `folders` folders, ten to a parent, with two small files each.
fn wide_tree(root: &Path, folders: usize) {
    for i in 0..folders {
        let dir = root.join(format!("d{}/e{i}", i / 10));
        write(&dir.join("a.txt"), &text(200 + i % 300, i as u64));
        write(&dir.join("b.bin"), &noise(64 + i % 100, i as u64));
    }
}

/// How many requests the agent made (the API client logs each one answered).
fn requests_of(run: &Run) -> usize {
    run.stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|entry| entry["fields"]["message"] == "request answered")
        .count()
}

/// Requests an unchanged backup may add when a folder above the source changed
/// (the temporary folder's parent, whose mtime other tests move): its new tree's
/// pack and index file, whatever the size of the source.
const ABOVE_THE_SOURCE: usize = 2;

fn logged(cli: Cli) -> Cli {
    cli.env("RUST_LOG", "warn,offsite_api::request=debug").env("OFFSITE_LOG_FORMAT", "json")
}

#[test]
fn an_unchanged_backup_makes_the_same_few_requests_whatever_the_number_of_folders() {
    let mut unchanged = Vec::new();
    for folders in [100, 2_000] {
        let root = temp();
        let service = Service::start(root.path());
        let customer = service.customer(root.path(), |source| wide_tree(source, folders));
        let agent = &customer.agent;
        agent.cmd(["backup", "--now", "--json"]).run().ok();

        let second = logged(agent.cmd(["backup", "--now", "--json"])).run().ok();
        let requests = requests_of(&second);
        assert!(requests > 0, "the requests are counted:\n{second}");
        // Job start and end, open, lock, three listings, the snapshot, recovery
        // points and protected items: a fixed number, not one per folder.
        assert!(requests <= 30, "an unchanged backup of {folders} folders made {requests} requests");
        unchanged.push(requests);
        eprintln!("{folders} folders: an unchanged backup made {requests} requests");

        let info = agent.cmd(["cache", "info", "--json"]).run().ok().json();
        let cache = &info.as_array().expect("one cache per repository")[0];
        assert!(json_u64(cache, &["index_files"]) >= 1 && json_u64(cache, &["packs"]) >= 1, "{info}");
        assert!(json_u64(cache, &["snapshot_files"]) >= 2, "both snapshots cached: {info}");

        // Without the cache every folder's tree is a request of its own: what the
        // bound above would catch if the agent stopped using it.
        let uncached = logged(agent.cmd(["--no-cache", "backup", "--now", "--json"])).run().ok();
        assert!(requests_of(&uncached) > folders, "--no-cache made {} requests", requests_of(&uncached));

        // Emptied, the cache fills again at the next backup and the restore is equal.
        let cleared = agent.cmd(["cache", "clear", "--json"]).run().ok().json();
        assert!(json_u64(&cleared, &["cleared_bytes"]) > 0, "{cleared}");
        let refill = logged(agent.cmd(["backup", "--now", "--json"])).run().ok();
        assert!(requests_of(&refill) > requests, "a cold cache fetches the index, snapshots and trees again");
        let again = logged(agent.cmd(["backup", "--now", "--json"])).run().ok();
        assert!(requests_of(&again).abs_diff(requests) <= ABOVE_THE_SOURCE, "warm again: {}", requests_of(&again));

        let target = root.path().join("restored");
        agent.cmd(["restore", "--target", utf8(&target), "--verify"]).run().ok();
        assert_same_tree(&customer.source, &restored(&target, &customer.source));
    }
    assert!(unchanged[0].abs_diff(unchanged[1]) <= ABOVE_THE_SOURCE, "requests grew with the tree: {unchanged:?}");
}

#[test]
fn a_local_repository_has_no_cache_and_says_why() {
    let root = temp();
    let (repo_dir, source) = (root.path().join("repo"), root.path().join("source"));
    small_tree(&source);
    init_and_backup(&repo_dir, &source, &[]);
    repo(&repo_dir, ["cache", "info"]).run().ok().stdout_has("it is a local folder");
    let info = repo(&repo_dir, ["cache", "info", "--json"]).run().ok().json();
    assert!(info["cache"].is_null(), "{info}");
}
