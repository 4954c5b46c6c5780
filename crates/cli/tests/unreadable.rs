//! Files the backup cannot read: the backup finishes with exit code 3, names them,
//! and the snapshot holds everything else.
//!
//! Root reads files whatever their mode, so when the tests run as root the binary
//! runs as `nobody` for the backup.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::*;

#[test]
fn unreadable_entries_are_named_and_the_rest_is_saved() {
    let tmp = temp();
    let repo_dir = tmp.path().join("repo");
    let src = tmp.path().join("src");
    small_tree(&src);
    let secret = src.join("docs/secret.txt");
    write(&secret, b"for root's eyes only\n");
    let closed_dir = src.join("closed");
    write(&closed_dir.join("inside.txt"), b"cannot be listed\n");

    let as_root = rustix::process::geteuid().is_root();
    let as_nobody = |cli: Cli| if as_root { cli.run_as(NOBODY, NOBODY) } else { cli };
    if as_root {
        // nobody must reach the source and own the repository folder.
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir(&repo_dir).unwrap();
        std::os::unix::fs::chown(&repo_dir, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).unwrap();
    fs::set_permissions(&closed_dir, fs::Permissions::from_mode(0o000)).unwrap();

    as_nobody(repo(&repo_dir, ["init", "--quiet"])).run().ok();
    let run = as_nobody(repo(&repo_dir, ["backup", utf8(&src)]))
        .run()
        .code(3)
        .stderr_has(utf8(&secret))
        .stderr_has(utf8(&closed_dir))
        .stderr_has("incomplete");
    assert!(run.stdout.contains("snapshot") && run.stdout.contains("saved"), "no snapshot reported:\n{run}");

    // Same again as JSON: the skipped items are listed with their reasons.
    let run = as_nobody(repo(&repo_dir, ["backup", "--json", utf8(&src)])).run().code(3);
    let out = run.json();
    let skipped: Vec<&str> = out["skipped"]
        .as_array()
        .unwrap_or_else(|| panic!("no skipped list:\n{run}"))
        .iter()
        .map(|s| json_str(s, &["path"]))
        .collect();
    assert_eq!(skipped.len(), 2, "{run}");
    assert!(skipped.contains(&utf8(&secret)) && skipped.contains(&utf8(&closed_dir)), "{run}");
    assert_eq!(json_u64(&out, &["summary", "errors"]), 2, "{run}");

    // Both snapshots exist and list the readable files, not the unreadable ones.
    let run = repo(&repo_dir, ["snapshots", "--json"]).run().ok();
    assert_eq!(run.json().as_array().map(Vec::len), Some(2), "{run}");
    let run = repo(&repo_dir, ["ls", "--json", "latest"]).run().ok();
    let listed: Vec<String> =
        run.json().as_array().unwrap().iter().map(|e| json_str(e, &["path"]).to_string()).collect();
    for rel in ["docs/readme.txt", "docs/photo.bin", "media/big.bin", "empty.txt", "deep/a/b/c/leaf.txt"] {
        let path = format!("{}/{rel}", utf8(&src));
        assert!(listed.contains(&path), "{path} is not in the snapshot:\n{run}");
    }
    assert!(!listed.iter().any(|p| p.contains("secret.txt") || p.contains("closed")), "{run}");

    // And the readable files restore byte for byte.
    let target = tmp.path().join("restored");
    repo(&repo_dir, ["restore", "latest", "--target", utf8(&target), "--verify"]).run().ok();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).unwrap();
    fs::remove_file(&secret).unwrap();
    fs::set_permissions(&closed_dir, fs::Permissions::from_mode(0o755)).unwrap();
    fs::remove_dir_all(&closed_dir).unwrap();
    assert_eq!(assert_same_tree(&src, &restored(&target, &src)), 7);
}
