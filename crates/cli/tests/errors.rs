//! Failures through the real binary: each must exit with the documented code, name
//! what is wrong in its message, and leave the repository exactly as it was.

mod common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use common::*;

/// A repository with one snapshot of a small tree, in `dir/repo`.
fn repository(dir: &Path) -> std::path::PathBuf {
    let repo_dir = dir.join("repo");
    let src = dir.join("src");
    small_tree(&src);
    init_and_backup(&repo_dir, &src, &[]);
    repo_dir
}

#[test]
fn wrong_passphrase_exits_12_and_changes_nothing() {
    let tmp = temp();
    let repo_dir = repository(tmp.path());
    let before = listing(&repo_dir);

    let run =
        repo(&repo_dir, ["snapshots"]).password("not the passphrase").run().code(12).stderr_has("wrong passphrase");
    assert_unchanged(&repo_dir, &before, &run);

    let run = repo(&repo_dir, ["backup", utf8(&tmp.path().join("src"))])
        .password("not the passphrase")
        .run()
        .code(12)
        .stderr_has("wrong passphrase");
    assert_unchanged(&repo_dir, &before, &run);

    // The same through --password-file.
    let file = tmp.path().join("wrong.txt");
    fs::write(&file, "also wrong\n").unwrap();
    let run = repo(&repo_dir, ["check", "--password-file", utf8(&file)]).run().code(12).stderr_has("wrong passphrase");
    assert_unchanged(&repo_dir, &before, &run);
}

#[test]
fn a_folder_that_is_not_a_repository_exits_10() {
    let tmp = temp();

    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let before = listing(&empty);
    let run =
        repo(&empty, ["snapshots"]).run().code(10).stderr_has("not an offsite repository").stderr_has(utf8(&empty));
    assert_unchanged(&empty, &before, &run);

    // Unrelated files, including a `config` that belongs to another program.
    let other = tmp.path().join("other");
    write(&other.join("notes.txt"), b"shopping list\n");
    write(&other.join("data/table.csv"), b"a,b\n1,2\n");
    write(&other.join("config"), b"[core]\n\trepositoryformatversion = 0\n");
    let before = listing(&other);
    for args in [&["snapshots"][..], &["backup", utf8(&empty)], &["check"]] {
        let run = repo(&other, args).run().code(10).stderr_has("not an offsite repository").stderr_has(utf8(&other));
        assert_unchanged(&other, &before, &run);
    }

    // A folder that does not exist is not created by looking at it.
    let missing = tmp.path().join("missing");
    let run = repo(&missing, ["snapshots"]).run().code(10).stderr_has("not an offsite repository");
    assert!(!missing.exists(), "looking at a missing repository created it:\n{run}");
}

/// ENGINE BUG (reported; crates/engine/src/repository.rs, `Repository::read_config`): the reason of
/// `NotARepository` is the Display of `ConfigError::NotOurs`, which repeats the
/// sentence: "X is not an offsite repository (not an offsite repository (its config
/// file is not offsite's)); …". Un-ignore once the message says it once.
#[test]
fn not_a_repository_message_says_it_once() {
    let tmp = temp();
    let other = tmp.path().join("other");
    write(&other.join("config"), b"[core]\n\tbare = false\n");
    let run = repo(&other, ["snapshots"]).run().code(10);
    assert_eq!(run.stderr.matches("not an offsite repository").count(), 1, "{run}");
}

#[test]
fn a_newer_format_version_asks_for_an_upgrade() {
    let tmp = temp();
    let repo_dir = repository(tmp.path());
    let config_path = repo_dir.join("config");
    let mut config: serde_json::Value = serde_json::from_slice(&fs::read(&config_path).unwrap()).unwrap();
    assert_eq!(config["version"], 1, "the config format changed: {config}");
    config["version"] = 99.into();
    fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    let before = listing(&repo_dir);

    for args in [&["snapshots"][..], &["backup", utf8(&tmp.path().join("src"))], &["prune"]] {
        let run = repo(&repo_dir, args).run().code(1).stderr_has("newer").stderr_has("upgrade").stderr_has("99");
        assert_unchanged(&repo_dir, &before, &run);
    }
}

#[test]
fn init_refuses_an_existing_repository() {
    let tmp = temp();
    let repo_dir = repository(tmp.path());
    let before = listing(&repo_dir);
    let run = repo(&repo_dir, ["init"]).run().fails().stderr_has("already holds");
    assert_unchanged(&repo_dir, &before, &run);
    // Even with another passphrase, and with other parameters.
    let run =
        repo(&repo_dir, ["init", "--pack-size", "1"]).password("another").run().fails().stderr_has("already holds");
    assert_unchanged(&repo_dir, &before, &run);
    repo(&repo_dir, ["snapshots"]).run().ok();
}

/// ENGINE BUG (reported): `Repository::init` treats any file named `config` as a
/// repository, so `init` on a folder whose `config` belongs to another program says
/// "… already holds an offsite repository", which is false. Refusing is right (it
/// must not mix a repository into someone else's folder), the reason is not.
#[test]
fn init_on_a_foreign_config_does_not_call_it_a_repository() {
    let tmp = temp();
    let other = tmp.path().join("other");
    write(&other.join("config"), b"[core]\n\tbare = false\n");
    let before = listing(&other);
    let run = repo(&other, ["init"]).run().fails();
    assert_unchanged(&other, &before, &run);
    assert!(!run.stderr.contains("already holds an offsite repository"), "{run}");
}

#[test]
fn an_unknown_snapshot_is_named() {
    let tmp = temp();
    let repo_dir = repository(tmp.path());
    let before = listing(&repo_dir);
    let target = tmp.path().join("target");

    let run =
        repo(&repo_dir, ["restore", "deadbeef", "--target", utf8(&target)]).run().fails().stderr_has("'deadbeef'");
    assert_unchanged(&repo_dir, &before, &run);
    assert!(!target.exists(), "a failed restore created its target:\n{run}");

    let run = repo(&repo_dir, ["ls", "0123abcd"]).run().fails().stderr_has("'0123abcd'");
    assert_unchanged(&repo_dir, &before, &run);
    let run = repo(&repo_dir, ["diff", "latest", "not-an-id"]).run().fails().stderr_has("'not-an-id'");
    assert_unchanged(&repo_dir, &before, &run);
    let run = repo(&repo_dir, ["backup", "--parent", "abcdef12", utf8(&tmp.path().join("src"))])
        .run()
        .fails()
        .stderr_has("'abcdef12'");
    assert_unchanged(&repo_dir, &before, &run);
}

#[test]
fn no_repository_given() {
    let run = offsite(["repo", "snapshots"]).run().fails().stderr_has("--repo");
    assert!(run.stderr.contains("OFFSITE_REPOSITORY"), "the message should name the variable too:\n{run}");
    // OFFSITE_REPOSITORY works in its place.
    let tmp = temp();
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    offsite(["repo", "snapshots"]).env("OFFSITE_REPOSITORY", &empty).run().code(10).stderr_has(utf8(&empty));
}

#[test]
fn a_missing_backup_path_is_named() {
    let tmp = temp();
    let repo_dir = repository(tmp.path());
    let before = listing(&repo_dir);
    let missing = tmp.path().join("no-such-folder");
    let run = repo(&repo_dir, ["backup", utf8(&missing)])
        .run()
        .fails()
        .stderr_has(utf8(&missing))
        .stderr_has("does not exist");
    assert_unchanged(&repo_dir, &before, &run);
    // One good path beside a missing one is refused too: nothing is half done.
    let run = repo(&repo_dir, ["backup", utf8(&tmp.path().join("src")), utf8(&missing)])
        .run()
        .fails()
        .stderr_has(utf8(&missing));
    assert_unchanged(&repo_dir, &before, &run);
}

#[test]
fn wrong_usage_exits_2() {
    offsite(["repo", "snapshots", "--no-such-flag"]).run().code(2).stderr_has("--no-such-flag");
    offsite(["repo", "frobnicate"]).run().code(2).stderr_has("frobnicate");
    offsite(["repo", "init", "--pack-size", "0"]).run().code(2).stderr_has("--pack-size");
    offsite(["repo", "backup"]).run().code(2).stderr_has("PATHS");
}

#[test]
fn a_missing_passphrase_is_explained() {
    let tmp = temp();
    let repo_dir = repository(tmp.path());
    let before = listing(&repo_dir);
    let run =
        repo(&repo_dir, ["snapshots"]).env_remove("OFFSITE_PASSWORD").run().fails().stderr_has("OFFSITE_PASSWORD");
    assert_unchanged(&repo_dir, &before, &run);

    // init asks before it creates anything.
    let fresh = tmp.path().join("fresh");
    let run = repo(&fresh, ["init"]).env_remove("OFFSITE_PASSWORD").run().fails().stderr_has("OFFSITE_PASSWORD");
    assert!(!fresh.exists(), "init without a passphrase created the repository folder:\n{run}");

    // An empty variable or file is no passphrase either.
    let run = repo(&repo_dir, ["snapshots"]).password("").run().fails().stderr_has("OFFSITE_PASSWORD");
    assert_unchanged(&repo_dir, &before, &run);
    let empty_file = tmp.path().join("empty-passphrase");
    fs::write(&empty_file, "\n").unwrap();
    let run = repo(&repo_dir, ["snapshots", "--password-file", utf8(&empty_file)])
        .run()
        .fails()
        .stderr_has(utf8(&empty_file));
    assert_unchanged(&repo_dir, &before, &run);
}

#[test]
fn forget_without_a_rule_refuses() {
    let tmp = temp();
    let repo_dir = repository(tmp.path());
    let before = listing(&repo_dir);
    for args in [&["forget"][..], &["forget", "--prune"], &["forget", "--keep-last", "0"]] {
        let run = repo(&repo_dir, args).run().fails().stderr_has("refuses");
        assert_unchanged(&repo_dir, &before, &run);
    }
    let run = repo(&repo_dir, ["snapshots", "--json"]).run().ok();
    assert_eq!(run.json().as_array().map(Vec::len), Some(1), "{run}");
}

#[test]
fn unreachable_object_storage_is_named() {
    let location = "s3://bucket/x";
    for args in [&["snapshots"][..], &["init"]] {
        let run = repo(location, args)
            .env("AWS_ENDPOINT", "http://127.0.0.1:1")
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", "x")
            .env("AWS_SECRET_ACCESS_KEY", "x")
            .env("AWS_REGION", "us-east-1")
            .run()
            .fails()
            .stderr_has(location);
        assert!(run.elapsed < Duration::from_secs(60), "took too long to give up:\n{run}");
    }
}

/// `offsite … | head`: once the reader has gone, the binary ends like any other
/// program there (by SIGPIPE), with nothing on stderr, not a panic.
#[test]
fn a_closed_stdout_ends_quietly() {
    let tmp = temp();
    let repo_dir = repository(tmp.path());
    offsite(["completions", "bash"]).run_into_closed_pipe().ended_by_the_closed_pipe();
    repo(&repo_dir, ["snapshots", "--json"]).run_into_closed_pipe().ended_by_the_closed_pipe();
    repo(&repo_dir, ["ls", "latest"]).run_into_closed_pipe().ended_by_the_closed_pipe();
}

/// The demo passes `--block-size`: diskprep's help lists it, and a size the drive
/// format cannot take is wrong usage, refused before any drive is touched.
#[test]
fn diskprep_documents_and_checks_its_block_size() {
    offsite(["diskprep", "--help"]).run().ok().stdout_has("--block-size").stdout_has("multiple of 4096");
    offsite(["diskprep", "--block-size", "1000", "--status"]).run().code(2).stderr_has("--block-size");
}

/// Every file that gives the service's URL is refused when the URL is `http://`
/// (no certificate pinning, the credential sent in clear): exit 1, naming the file,
/// the URL and what to do, before anything is sent.
#[test]
fn http_service_urls_are_refused_in_every_credential_and_params_file() {
    use offsite_api::files::{
        OperatorCredentials, PublishSettings, ServiceEndpoint, VaultCredentials, XmlCredentialFile,
    };
    let tmp = temp();
    let dir = tmp.path();
    // Port 9 (discard): a client that sent anything would fail to connect instead.
    let url = "http://127.0.0.1:9";
    let service = ServiceEndpoint { url: url.into(), fingerprint: "ab".repeat(32) };

    let publish = dir.join("clear.publishsettings");
    PublishSettings {
        service: service.clone(),
        subscription_id: "sub_1".into(),
        subscription_name: "one".into(),
        management_credential: "cred_1.secret".into(),
        expires: None,
    }
    .write(&publish)
    .unwrap();
    let vault = dir.join("clear.vaultcredentials");
    VaultCredentials {
        service: service.clone(),
        subscription_id: "sub_1".into(),
        vault_id: "vlt_1".into(),
        vault_name: "main".into(),
        expires: time::OffsetDateTime::now_utc() + time::Duration::days(1),
        registration_secret: "reg_1.secret".into(),
    }
    .write(&vault)
    .unwrap();
    let operator = dir.join("operator.credentials");
    OperatorCredentials { url: url.into(), fingerprint: "ab".repeat(32), token: "op_1.secret".into() }
        .write(&operator)
        .unwrap();
    let params = dir.join("OfflineApplicationParams.xml");
    write(
        &params,
        format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<OfflineApplicationParams SchemaVersion=\"1\">\
             <ServiceUrl>{url}</ServiceUrl><CertificateFingerprint>{}</CertificateFingerprint>\
             <SubscriptionId>sub_1</SubscriptionId><ApplicationId>app_1</ApplicationId>\
             <CertThumbprint>{}</CertThumbprint></OfflineApplicationParams>\n",
            "ab".repeat(32),
            "CD".repeat(32)
        )
        .as_bytes(),
    );
    // A machine's registration, as `agent register` keeps it in the state folder.
    let home = dir.join("agent");
    write(
        &home.join("state/registration.toml"),
        format!(
            "service_url = \"{url}\"\nfingerprint = \"{}\"\nsubscription_id = \"sub_1\"\nvault_id = \"vlt_1\"\n\
             vault_name = \"main\"\nmachine_id = \"mch_1\"\nmachine_name = \"web01\"\n\
             machine_credential = \"mch_1.secret\"\n",
            "ab".repeat(32)
        )
        .as_bytes(),
    );
    let fresh_home = dir.join("fresh-agent");
    let home_arg = utf8(&home);
    let registration = home.join("state/registration.toml");

    let cases: Vec<(&Path, Vec<&str>)> = vec![
        (&publish, vec!["admin", "--publish-settings", utf8(&publish), "vault", "list"]),
        (&operator, vec!["admin", "--operator-credentials", utf8(&operator), "datacenter", "list"]),
        (&operator, vec!["datacenter", "--operator-credentials", utf8(&operator), "status", "--job", "seed"]),
        (&vault, vec!["agent", "--agent-home", utf8(&fresh_home), "register", "--vault-credentials", utf8(&vault)]),
        (&registration, vec!["agent", "--agent-home", home_arg, "status"]),
        (
            &params,
            vec![
                "certgen",
                "--agent-home",
                home_arg,
                "add-agent-entries",
                "--subscription",
                "sub_1",
                "--params-file",
                utf8(&params),
                "--storage-account",
                "ingest",
            ],
        ),
    ];
    for (file, args) in cases {
        offsite(&args)
            .run()
            .code(1)
            .stderr_has(utf8(file))
            .stderr_has(url)
            .stderr_has("https://")
            .stderr_has("in clear");
    }
    // Nor does the service hand out files with such a URL: it does not start.
    let data = dir.join("server");
    offsite(["server", "run", "--data-dir", utf8(&data), "--listen", "127.0.0.1:0", "--public-url", url])
        .run()
        .code(1)
        .stderr_has(url)
        .stderr_has("--public-url https://");
}
