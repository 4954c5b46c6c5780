//! Ransomware on the protected machine: an attacker holding the machine's state
//! folder (its credential, readable by root) does every destructive thing the API
//! lets that credential do, then the subscription brings everything back. What a
//! machine removes is only soft-deleted, its config and keys cannot be removed or
//! replaced, and planted garbage does not make the backups unreadable.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use common::service::{Agent, Service};
use common::*;
use offsite_api::Client;

/// The attacker's client: the machine's own credential and pinned certificate,
/// read from the agent's state folder as root would read it.
fn machine_client(agent: &Agent) -> (Client, String) {
    let text = std::fs::read_to_string(agent.home.join("state/registration.toml")).unwrap();
    let registration: toml::Value = toml::from_str(&text).unwrap();
    let field = |name: &str| registration[name].as_str().unwrap_or_else(|| panic!("{name} in {text}")).to_string();
    let endpoint = offsite_api::files::ServiceEndpoint { url: field("service_url"), fingerprint: field("fingerprint") };
    (Client::new(&endpoint, &field("machine_credential")).unwrap(), field("machine_id"))
}

const FOLDERS: [&str; 5] = ["snapshots", "index", "data", "keys", "locks"];

fn all_files(client: &Client, machine: &str) -> Vec<(&'static str, String)> {
    let mut files = Vec::new();
    for folder in FOLDERS {
        for file in client.list_files(machine, folder).unwrap() {
            files.push((folder, file.name));
        }
    }
    files
}

/// Bytes named by their BLAKE3 hash, as the service wants uploads named.
fn garbage(seed: u64) -> (String, Bytes) {
    let bytes = noise(4096, seed);
    (blake3::hash(&bytes).to_hex().to_string(), Bytes::from(bytes))
}

fn status_code(err: offsite_api::ApiError) -> u16 {
    err.status().unwrap_or_else(|| panic!("expected an HTTP refusal, got {err}"))
}

/// Every regular file below `dir` with its bytes.
fn contents(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                walk(root, &entry.path(), out);
            } else if kind.is_file() {
                let path = entry.path();
                out.insert(path.strip_prefix(root).unwrap().to_path_buf(), std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn a_compromised_machine_cannot_destroy_its_backups() {
    let scratch = temp();
    let root = scratch.path();
    let service = Service::start(root);
    let customer = service.customer(root, |source| {
        write_noise_file(&source.join("big.bin"), 3 << 20, 1);
        small_tree(&source.join("docs"));
    });
    let agent = &customer.agent;
    let tenant = &customer.tenant;

    // Three recovery points, each a different state of the source.
    let mut points = Vec::new();
    let mut states = Vec::new();
    for round in 0..3u64 {
        write(&customer.source.join(format!("docs/round-{round}.txt")), &text(30_000, round + 10));
        let point = agent.backup();
        assert_eq!(point["report"]["state"], "completed", "{point}");
        points.push(point["snapshot_id"].as_str().unwrap().to_string());
        states.push(contents(&customer.source));
    }
    let (client, machine) = machine_client(agent);
    let before: Vec<(&str, String)> =
        all_files(&client, &machine).into_iter().filter(|(folder, _)| *folder != "locks").collect();
    let size = |folder: &str, name: &str| client.file_size(&machine, folder, name).ok().flatten();
    let stored_before: u64 = before.iter().map(|(folder, name)| size(folder, name).unwrap()).sum();

    // The attack. Retention down to one point, through the agent itself: forget and prune.
    agent.cmd(["retention", "set", "--daily", "1"]).run().ok();
    let pruned = agent.backup();
    assert_eq!(pruned["report"]["state"], "completed", "{pruned}");
    // Every file the credential can list, removed; config and keys refused.
    for (folder, name) in all_files(&client, &machine) {
        match client.delete_file(&machine, folder, &name) {
            Ok(()) => assert!(folder != "keys", "a key file was removed"),
            Err(err) => assert_eq!((folder, status_code(err)), ("keys", 403)),
        }
    }
    let config = client.delete_file(&machine, "config", "config").expect_err("the config cannot be removed");
    assert_eq!(status_code(config), 403);
    let replaced = client.put_file(&machine, "config", "config", Bytes::from_static(b"{\"version\":1}"));
    assert_eq!(status_code(replaced.expect_err("the config cannot be replaced")), 409);
    // Garbage planted where the agent looks.
    for (folder, seed) in [("snapshots", 1), ("index", 2), ("data", 3)] {
        let (name, bytes) = garbage(seed);
        client.put_file(&machine, folder, &name, bytes).unwrap();
    }
    // To the machine, its backups are gone.
    for folder in ["snapshots", "index"] {
        let left: Vec<String> = client.list_files(&machine, folder).unwrap().into_iter().map(|f| f.name).collect();
        assert_eq!(left.len(), 1, "only the planted {folder} file is visible: {left:?}");
    }
    let gone = client.get_file(&machine, "snapshots", &points[0], None).expect_err("a removed snapshot is gone");
    assert_eq!(status_code(gone), 404);
    assert!(agent.cmd(["recovery-points", "--json"]).run().ok().json().as_array().unwrap().is_empty());

    // The subscription sees what was removed, and until when it is kept.
    let removed = tenant.admin(["machine", "soft-deleted", &machine, "--json"]).run().ok().json();
    let removed_points: Vec<&str> =
        removed["recovery_points"].as_array().unwrap().iter().map(|p| p["snapshot_id"].as_str().unwrap()).collect();
    for point in &points {
        assert!(removed_points.contains(&point.as_str()), "{point} is listed as soft-deleted: {removed}");
    }
    assert!(json_u64(&removed, &["bytes"]) >= stored_before, "every byte stored is kept: {removed}");
    let status = agent.cmd(["status"]).run().ok();
    assert!(status.to_string().contains("soft-deleted:"), "{status}");

    // It brings everything back; every recovery point restores byte for byte.
    let undeleted = tenant.admin(["machine", "undelete", &machine, "--json"]).run().ok().json();
    // The three, and the one the attacker's own backup made before pruning.
    let back = undeleted["recovery_points"].as_array().unwrap();
    assert_eq!(back.len(), 4, "{undeleted}");
    assert!(points.iter().all(|p| back.iter().any(|b| b == p)), "{undeleted}");
    for (point, state) in points.iter().zip(&states) {
        let target = root.join(format!("restored-{}", &point[..8]));
        agent.cmd(["restore", "--point", point, "--target", utf8(&target)]).run().ok();
        assert!(
            contents(&restored(&target, &customer.source)) == *state,
            "recovery point {point} restored different bytes"
        );
    }
    // Figure for docs/RELIABILITY.md: the share of the bytes stored before the
    // attack that the machine can read again.
    let recovered: u64 = before.iter().filter_map(|(folder, name)| size(folder, name)).sum();
    println!("bytes recoverable after the attack: {recovered} of {stored_before}");
    assert_eq!(recovered, stored_before, "every file stored before the attack is readable again");
}
