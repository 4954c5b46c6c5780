//! The ship-or-upload planner through the binary: `offsite plan` (human, JSON,
//! measured rates, refused inputs) and `offsite agent offline estimate` (what a
//! staging backup would hold, measured without writing it, then checked against
//! the staging backup itself).

mod common;

use std::path::Path;

use common::service::{Customer, Service};
use common::*;
use serde_json::Value;

/// `offsite plan` with this agent home, and a user state folder of its own (the
/// user's measured rates are read from there too).
fn plan(home: &Path, args: &[&str]) -> Run {
    offsite(["plan", "--agent-home", utf8(home)]).env("XDG_STATE_HOME", home.join("user-state")).args(args).run()
}

fn close(value: &Value, expected: f64, tolerance: f64) -> bool {
    value.as_f64().is_some_and(|v| (v - expected).abs() <= tolerance)
}

#[test]
fn plan_weighs_the_network_against_drives_both_ways() {
    let scratch = temp();
    let run = plan(scratch.path(), &["--size", "10TiB", "--uplink", "20Mbit/s"]).ok();
    // 10 TiB at 20 Mbit/s × 0.9: 56.6 days; on drives: 0.85 + 0.64 + 3 + 0.64 days.
    let out = &run.stdout;
    assert!(out.contains("First backup") && out.contains("Full restore") && out.contains("Daily incremental"), "{run}");
    assert!(out.contains("56.6 days  at 20 Mbit/s (90% of it)"), "{run}");
    assert!(out.contains("5.12 days  2 drives"), "{run}");
    assert!(out.contains("recommended: on drives. The first backup on drives takes 5.12 days"), "{run}");
    assert!(out.contains("fits the uplink"), "{run}");
    assert!(out.contains("Rates assumed: staging backup 150 MB/s, diskprep 200 MB/s, ingest 200 MB/s"), "{run}");

    // At the link's full rate, the issue's figure: 51 days.
    plan(scratch.path(), &["--size", "10TiB", "--uplink", "20Mbit/s", "--network-efficiency", "1"])
        .ok()
        .stdout_has("50.9 days");

    let json = plan(scratch.path(), &["--size", "500GB", "--uplink", "1Gbit/s", "--downlink", "100Mbit/s", "--json"])
        .ok()
        .json();
    assert_eq!(json["initial_backup"]["recommended"], "network", "{json:#}");
    assert!(close(&json["initial_backup"]["network_days"], 500e9 / 112.5e6 / 86_400.0, 1e-9), "{json:#}");
    // The downlink is a tenth: the restore takes ten times as long over the network.
    assert!(close(&json["full_restore"]["network_days"], 500e9 / 11.25e6 / 86_400.0, 1e-9), "{json:#}");
    assert_eq!(json["initial_backup"]["drives_needed"], 1);
    assert_eq!(json["inputs"]["size"], 500_000_000_000u64);
    assert_eq!(json["daily_incremental"]["fits"], true);
    let sources: Vec<&str> = json["rates"].as_array().unwrap().iter().map(|r| r["source"].as_str().unwrap()).collect();
    assert_eq!(sources, ["assumed"; 4], "{json:#}");
}

#[test]
fn plan_uses_the_rates_this_machine_measured() {
    let scratch = temp();
    let home = scratch.path();
    // What a diskprep of 1 GB in 10 s and an ingest of 1 GB in 4 s record.
    std::fs::write(
        home.join("measured-rates.json"),
        r#"{
  "diskprep": { "bytes": 1000000000, "seconds": 10.0, "measured": "2026-12-08T10:00:00Z", "what": "diskprep of import job seed-1 (1 drive)" },
  "ingest": { "bytes": 1000000000, "seconds": 4.0, "measured": "2026-12-08T11:00:00Z", "what": "ingest of a drive of import job seed-1" }
}"#,
    )
    .unwrap();
    let json = plan(home, &["--size", "1TB", "--uplink", "50Mbit/s", "--ingest-rate", "1GB/s", "--json"]).ok().json();
    assert!(close(&json["inputs"]["prep_rate"], 100e6, 1e-6), "{json:#}");
    assert!(close(&json["inputs"]["ingest_rate"], 1e9, 1e-6), "a given rate wins over a measured one: {json:#}");
    let rates = json["rates"].as_array().unwrap();
    let origin = |step: &str| rates.iter().find(|r| r["step"] == step).unwrap()["source"].as_str().unwrap();
    assert_eq!(origin("diskprep"), "measured");
    assert_eq!(origin("ingest"), "given");
    assert_eq!(origin("staging backup"), "assumed");
    let steps = json["initial_backup"]["drive_steps"].as_array().unwrap();
    assert!(close(&steps[1]["days"], 1e12 / 100e6 / 86_400.0, 1e-9), "{json:#}");

    let run = plan(home, &["--size", "1TB", "--uplink", "50Mbit/s"]).ok();
    assert!(
        run.stdout.contains("diskprep 100 MB/s (diskprep of import job seed-1 (1 drive), 2026-12-08 10:00:00 UTC)"),
        "{run}"
    );
    assert!(run.stdout.contains("2.78 hours  at 100 MB/s (measured)"), "{run}");
}

#[test]
fn plan_names_a_daily_change_the_uplink_cannot_carry() {
    let scratch = temp();
    // 12 TiB × 1% = 122.9 GiB a day; 10 Mbit/s × 0.9 sends 90.5 GiB a day.
    let run = plan(scratch.path(), &["--size", "12TiB", "--uplink", "10Mbit/s", "--change-rate", "1%/day"]).ok();
    assert!(run.stdout.contains("122.9 GiB a day does NOT fit the uplink"), "{run}");
    assert!(run.stdout.contains("at least 13.6 Mbit/s"), "{run}");
    let json = plan(scratch.path(), &["--size", "12TiB", "--uplink", "10Mbit/s", "--json"]).ok().json();
    assert_eq!(json["daily_incremental"]["fits"], false);
    assert!(json["daily_incremental"]["share_of_day"].as_f64().unwrap() > 1.3, "{json:#}");
}

#[test]
fn plan_refuses_bad_input_naming_the_option_and_the_form() {
    let scratch = temp();
    let home = scratch.path();
    for (args, option, form) in [
        (["--size", "12XB", "--uplink", "50Mbit/s"], "--size", "12TiB"),
        (["--size", "12TiB", "--uplink", "fast"], "--uplink", "50Mbit/s"),
        (["--size", "0GB", "--uplink", "50Mbit/s"], "--size", "more than zero"),
    ] {
        let run = plan(home, &args).code(2);
        assert!(run.stderr.contains(option) && run.stderr.contains(form), "{run}");
        assert!(run.stdout.is_empty(), "{run}");
    }
    plan(home, &["--size", "1TB", "--uplink", "50Mbit/s", "--change-rate", "1"])
        .code(2)
        .stderr_has("--change-rate")
        .stderr_has("1%/day");
    plan(home, &["--size", "1TB", "--uplink", "50Mbit/s", "--shipping-days", "soon"])
        .code(2)
        .stderr_has("--shipping-days");
    plan(home, &["--uplink", "50Mbit/s"]).code(2).stderr_has("--size");
}

#[test]
fn an_offline_estimate_counts_what_the_staging_backup_then_holds_and_writes_nothing() {
    let scratch = temp();
    let root = scratch.path();
    let service = Service::start(root);
    let Customer { agent, source, .. } = service.customer(root, |source| {
        // 8 MiB of noise three times, 4 MiB of text twice, and a small tree.
        write_noise_file(&source.join("disk.img"), 8 << 20, 5);
        std::fs::create_dir_all(source.join("copies")).unwrap();
        for copy in ["a.img", "b.img"] {
            std::fs::copy(source.join("disk.img"), source.join("copies").join(copy)).unwrap();
        }
        write(&source.join("notes.txt"), &text(4 << 20, 9));
        write(&source.join("copies/notes.txt"), &text(4 << 20, 9));
        small_tree(&source.join("docs"));
    });
    let staging = root.join("staging");
    agent.configure_offline(&staging, "seed-estimate", "sub").ok();
    let staging_before = listing(&staging);
    let storage = service.data_dir.join("storage");
    let storage_before = listing(&storage);
    let source_before = listing(&source);

    let run = agent.cmd(["offline", "estimate", "--uplink", "50Mbit/s", "--json"]).run().ok();
    let json = run.json();
    assert_unchanged(&staging, &staging_before, &run);
    assert_unchanged(&storage, &storage_before, &run);
    assert_unchanged(&source, &source_before, &run);

    let bytes = json_u64(&json, &["bytes"]);
    let unique = json_u64(&json, &["unique_bytes"]);
    let stored = json_u64(&json, &["stored_bytes"]);
    assert!(bytes >= 3 * (8 << 20) + 2 * (4 << 20), "{json:#}");
    assert!(unique < bytes && bytes - unique >= 2 * (8 << 20) + (4 << 20), "the copies are counted once: {json:#}");
    assert!(stored <= unique, "{json:#}");
    assert!(stored < unique - (2 << 20), "the text compresses: {json:#}");
    assert!(json_str(&json, &["repository"]).starts_with("staging location"), "{json:#}");
    assert!(json["skipped"].as_array().unwrap().is_empty(), "{json:#}");
    let recorded = json_str(&json, &["rate_recorded_in"]);
    assert_eq!(Path::new(recorded), agent.home.join("measured-rates.json"));

    // The printed line runs as printed, and uses the rate the estimate measured.
    let line = json_str(&json, &["plan_command"]).to_string();
    assert!(line.starts_with("offsite plan --agent-home ") && line.ends_with("--uplink 50Mbit/s"), "{line}");
    let words: Vec<&str> = line.split_whitespace().skip(1).collect();
    let planned = offsite(&words).env("XDG_STATE_HOME", root.join("user-state")).run().ok();
    assert!(planned.stdout.contains("(measured by an estimate)"), "{planned}");

    // Human output: the figures and the line.
    let human = agent.cmd(["offline", "estimate"]).run().ok();
    for needle in
        ["files:", "unique (deduplicated):", "compressed, stored:", "time taken:", "offsite plan --agent-home"]
    {
        assert!(human.stdout.contains(needle), "{needle}: {human}");
    }
    assert!(human.stdout.contains("--uplink UPLINK"), "{human}");

    // The staging backup then holds what was estimated, plus its trees, pack
    // headers, index and snapshot; and it records the real staging backup's rate.
    let backup = agent.backup();
    assert_eq!(backup["report"]["state"], "completed", "{backup}");
    let packs: u64 = packs(&staging).iter().map(|(_, size)| size).sum();
    assert!(packs >= stored && packs <= stored + stored / 50 + (64 << 10), "packs {packs}, estimated {stored}");
    let rates: Value =
        serde_json::from_str(&std::fs::read_to_string(agent.home.join("measured-rates.json")).unwrap()).unwrap();
    assert!(rates["staging_backup"].get("estimated").is_none(), "a real staging backup's: {rates:#}");
    assert_eq!(rates["staging_backup"]["bytes"], bytes, "{rates:#}");
    assert!(rates["staging_backup"]["what"].as_str().unwrap().contains("seed-estimate"), "{rates:#}");
}
