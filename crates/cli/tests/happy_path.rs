//! The whole life of a repository through the real binary: init, backup, list,
//! restore, diff, stats, check, forget + prune, and passphrase management.

mod common;

use std::fs;

use common::*;

#[test]
fn repository_life_cycle() {
    let tmp = temp();
    let repo_dir = tmp.path().join("repo");
    let src = tmp.path().join("src");
    small_tree(&src);
    let src_str = utf8(&src);

    repo(&repo_dir, ["init", "--pack-size", "1"]).run().ok().stdout_has("created repository");
    assert!(repo_dir.join("config").is_file(), "init wrote no config");

    // First backup: every file is new.
    let run = repo(&repo_dir, ["backup", "--json", src_str]).run().ok();
    let first = run.json();
    let first_id = json_str(&first, &["snapshot"]).to_string();
    assert_eq!(json_u64(&first, &["summary", "files_new"]), 7, "files_new:\n{run}");
    assert_eq!(json_u64(&first, &["summary", "errors"]), 0, "errors:\n{run}");
    assert_eq!(first["skipped"].as_array().map(Vec::len), Some(0), "skipped:\n{run}");

    // snapshots --json: one snapshot, with the backed-up path.
    let run = repo(&repo_dir, ["snapshots", "--json"]).run().ok();
    let list = run.json();
    let list = list.as_array().unwrap_or_else(|| panic!("not a list:\n{run}"));
    assert_eq!(list.len(), 1, "snapshot count:\n{run}");
    assert_eq!(json_str(&list[0], &["id"]), first_id);
    assert_eq!(list[0]["snapshot"]["paths"], serde_json::json!([src_str]), "paths:\n{run}");
    assert_rfc3339(json_str(&list[0], &["snapshot", "time"]));

    // ls --json latest: every file with its size and type.
    let run = repo(&repo_dir, ["ls", "--json", "latest"]).run().ok();
    let entries = run.json();
    let entries = entries.as_array().unwrap_or_else(|| panic!("not a list:\n{run}"));
    let find = |rel: &str| {
        let path = format!("{src_str}/{rel}");
        entries.iter().find(|e| e["path"] == path.as_str()).unwrap_or_else(|| panic!("ls does not list {path}:\n{run}"))
    };
    for (rel, size) in [("docs/readme.txt", 10_000), ("docs/photo.bin", 200 << 10), ("media/big.bin", 3 << 20)] {
        let entry = find(rel);
        assert_eq!(entry["type"], "file", "{rel}: {entry}");
        assert_eq!(json_u64(entry, &["size"]), size, "{rel}: {entry}");
    }
    assert_eq!(find("empty.txt")["size"], 0);
    assert_eq!(find("deep/a/b/c")["type"], "dir");
    assert_eq!(find("readme-link")["link_target"], "docs/readme.txt");

    // Restore with --verify gives the same bytes, modes and times.
    let target = tmp.path().join("restore-1");
    repo(&repo_dir, ["restore", "latest", "--target", utf8(&target), "--verify"])
        .run()
        .ok()
        .stdout_has("verified 7 files");
    assert_eq!(assert_same_tree(&src, &restored(&target, &src)), 7);

    // Change the tree: one file modified, one removed, one added.
    write(&src.join("docs/readme.txt"), &text(12_000, 99));
    fs::remove_file(src.join("docs/photo.bin")).unwrap();
    write(&src.join("docs/new.txt"), b"a new file\n");
    let run = repo(&repo_dir, ["backup", "--json", src_str]).run().ok();
    let second = run.json();
    let second_id = json_str(&second, &["snapshot"]).to_string();
    assert_ne!(first_id, second_id);
    assert_eq!(json_u64(&second, &["summary", "files_new"]), 1, "files_new:\n{run}");
    assert_eq!(json_u64(&second, &["summary", "files_changed"]), 1, "files_changed:\n{run}");
    assert_eq!(json_u64(&second, &["summary", "files_unmodified"]), 5, "files_unmodified:\n{run}");

    let run = repo(&repo_dir, ["diff", &first_id[..12], "latest"]).run().ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    for expected in [
        format!("M  {src_str}/docs/readme.txt"),
        format!("-  {src_str}/docs/photo.bin"),
        format!("+  {src_str}/docs/new.txt"),
    ] {
        assert!(lines.contains(&expected.as_str()), "diff lacks the line {expected:?}:\n{run}");
    }
    assert!(!run.stdout.contains("big.bin"), "diff lists an unchanged file:\n{run}");

    let run = repo(&repo_dir, ["stats", "--json"]).run().ok();
    let stats = run.json();
    assert_eq!(json_u64(&stats, &["snapshots"]), 2, "stats:\n{run}");
    assert!(json_u64(&stats, &["packs"]) > 0, "stats:\n{run}");

    repo(&repo_dir, ["check", "--read-data"]).run().ok().stdout_has("no errors found");

    // forget --keep-last 1 --prune: the newest snapshot remains and still restores.
    repo(&repo_dir, ["forget", "--keep-last", "1", "--prune"]).run().ok();
    let run = repo(&repo_dir, ["snapshots", "--json"]).run().ok();
    let list = run.json();
    let ids: Vec<&str> = list.as_array().unwrap().iter().map(|s| json_str(s, &["id"])).collect();
    assert_eq!(ids, [second_id.as_str()], "after forget:\n{run}");
    let target = tmp.path().join("restore-2");
    repo(&repo_dir, ["restore", "latest", "--target", utf8(&target), "--verify"]).run().ok();
    assert_eq!(assert_same_tree(&src, &restored(&target, &src)), 7);
    repo(&repo_dir, ["check", "--read-data"]).run().ok();

    // A second passphrase opens the repository too.
    let new_pass_file = tmp.path().join("second-passphrase.txt");
    fs::write(&new_pass_file, "a second, different passphrase\n").unwrap();
    repo(&repo_dir, ["key", "add", "--new-password-file", utf8(&new_pass_file)]).run().ok().stdout_has("added key");
    let with_new = |args: &[&str]| {
        repo(&repo_dir, args).env_remove("OFFSITE_PASSWORD").env("OFFSITE_PASSWORD_FILE", &new_pass_file).run()
    };
    let run = with_new(&["snapshots", "--json"]).ok();
    assert_eq!(run.json().as_array().map(Vec::len), Some(1), "{run}");
    let run = with_new(&["key", "list", "--json"]).ok();
    let keys = run.json();
    let keys = keys.as_array().unwrap_or_else(|| panic!("not a list:\n{run}"));
    assert_eq!(keys.len(), 2, "key list:\n{run}");
    let current: Vec<&serde_json::Value> = keys.iter().filter(|k| k["current"] == true).collect();
    assert_eq!(current.len(), 1, "exactly one key is the one in use:\n{run}");
    for key in keys {
        assert_rfc3339(json_str(key, &["created"]));
    }
    let old_key = keys.iter().find(|k| k["current"] == false).unwrap();
    let old_key_id = json_str(old_key, &["id"]).to_string();

    // The key in use cannot be removed, nor a key that does not exist.
    let current_id = json_str(current[0], &["id"]).to_string();
    with_new(&["key", "remove", &current_id]).fails().stderr_has(&current_id[..8]);
    with_new(&["key", "remove", "not-a-key"]).fails().stderr_has("'not-a-key'");
    assert_eq!(files_in(&repo_dir.join("keys")).len(), 2);

    // Remove the original passphrase while opened with the new one.
    with_new(&["key", "remove", &old_key_id]).ok().stdout_has(&old_key_id[..8]);
    assert_eq!(files_in(&repo_dir.join("keys")), [current_id.as_str()]);
    let before = listing(&repo_dir);
    let run = repo(&repo_dir, ["snapshots"]).run().code(12).stderr_has("wrong passphrase");
    assert_unchanged(&repo_dir, &before, &run);
    let run = with_new(&["key", "list", "--json"]).ok();
    assert_eq!(run.json().as_array().map(Vec::len), Some(1), "{run}");
}

/// Times in JSON output are RFC 3339, so scripts can parse them.
#[track_caller]
fn assert_rfc3339(text: &str) {
    let parsed = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339);
    assert!(parsed.is_ok(), "{text:?} is not an RFC 3339 time: {parsed:?}");
}
