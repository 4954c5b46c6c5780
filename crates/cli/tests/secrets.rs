//! Secrets never reach a log or an error message. The whole workflow runs through
//! the real binary with `RUST_LOG=trace` and JSON logs (the service, `admin`,
//! `agent register/backup/restore`, `certgen`, `diskprep`, the datacenter's
//! `receive` and `ingest`, a portal sign-in and sign-out), then every stderr and
//! every log is searched for every secret the workflow made or used: credential
//! tokens and their secret halves, passphrases, drive recovery keys, the import
//! key, the application's private key, the portal password and session cookie.
//! Commands given a bad credential must not echo it either.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::service::{Service, AGENT_PASSPHRASE};
use common::site::*;
use common::*;
use offsite_api::files::{OperatorCredentials, PublishSettings, VaultCredentials, XmlCredentialFile};

const PORTAL_PASSWORD: &str = "portal password nobody may log";

/// Every file under `dir` whose name satisfies `wanted`.
fn files_named(dir: &Path, wanted: &dyn Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() && !path.is_symlink() {
            found.extend(files_named(&path, wanted));
        } else if path.file_name().and_then(|n| n.to_str()).is_some_and(wanted) {
            found.push(path);
        }
    }
    found
}

/// A token and its secret half (`<id>.<secret>`): either must stay out of logs.
fn token_parts(what: &str, token: &str, secrets: &mut Vec<(String, String)>) {
    secrets.push((what.to_string(), token.to_string()));
    if let Some((_, secret)) = token.split_once('.') {
        secrets.push((format!("{what} (secret half)"), secret.to_string()));
    }
}

/// Signs in to the portal, opens a page, fails once with a wrong password and
/// signs out: the session cookie it was given, for the search.
fn portal_visit(service: &Service, publish: &Path) -> String {
    let endpoint = PublishSettings::read(publish).expect("publish settings").service;
    let tls = offsite_api::tls::pinned_client_config(&endpoint.fingerprint).expect("a pinned TLS config");
    let http = reqwest::blocking::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let url = |path: &str| format!("{}{path}", service.url);
    let form = http.get(url("/portal/sign-in")).send().unwrap();
    let cookie = form
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("offsite_sign_in="))
        .and_then(|c| c.split(';').next())
        .expect("the sign-in cookie")
        .to_string();
    let body = form.text().unwrap();
    let field = "name=\"csrf\" value=\"";
    let token = body[body.find(field).unwrap() + field.len()..].split('"').next().unwrap().to_string();
    let sign_in = |password: &str| {
        http.post(url("/portal/sign-in"))
            .header("cookie", &cookie)
            .form(&[("email", "it@contoso.example"), ("password", password), ("csrf", &token)])
            .send()
            .unwrap()
    };
    assert_eq!(sign_in("a wrong portal password").status(), 303);
    let signed = sign_in(PORTAL_PASSWORD);
    let session = signed
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("offsite_session="))
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_string();
    let page = http.get(url("/portal/")).header("cookie", &session).send().unwrap();
    assert_eq!(page.status(), 303, "the portal's home sends the user to their subscription");
    let home = page.headers()["location"].to_str().unwrap().to_string();
    let page = http.get(url(&home)).header("cookie", &session).send().unwrap().text().unwrap();
    let csrf = page[page.find(field).unwrap() + field.len()..].split('"').next().unwrap().to_string();
    let out = http.post(url("/portal/sign-out")).header("cookie", &session).form(&[("csrf", &csrf)]).send().unwrap();
    assert_eq!(out.status(), 303);
    session.trim_start_matches("offsite_session=").to_string()
}

#[test]
fn no_secret_reaches_a_log_or_an_error_message() {
    trace_every_command();
    let scratch = temp();
    let root = scratch.path();
    let service = Service::start(root);
    let site = Site::new(&service, root);

    // The portal: a user, a failed and a good sign-in, a page, sign-out.
    let password_file = root.join("portal.password");
    write(&password_file, PORTAL_PASSWORD.as_bytes());
    service
        .admin(["portal-user", "create", "it@contoso.example", "--subscription", &site.tenant.id])
        .env("OFFSITE_PORTAL_PASSWORD", PORTAL_PASSWORD)
        .run()
        .ok();
    let session = portal_visit(&service, &site.tenant.publish);

    // The offline seed, ingest, adoption and a restore.
    site.stage();
    let prepared = site.prepare_two_drives();
    site.ship("1Z999AA10123456784").ok();
    site.datacenter(&service, &["receive", "--job", JOB]).run().ok();
    let drives = prepared["set"]["drives"].as_array().cloned().unwrap_or_default();
    assert!(!drives.is_empty(), "{prepared}");
    for n in 1..=drives.len() {
        site.ingest(&service, &site.drive(n as u32)).ok();
    }
    let adopted = site.agent.backup();
    assert_eq!(adopted["report"]["state"], "completed", "{adopted}");
    site.agent.restore_equals(&root.join("restored"), &site.source);

    // Bad credentials: refused, and the refusal does not repeat them.
    let publish = PublishSettings::read(&site.tenant.publish).unwrap();
    let (id, secret) = publish.management_credential.split_once('.').unwrap();
    let forged_secret: String = secret.chars().rev().collect();
    let forged = PublishSettings { management_credential: format!("{id}.{forged_secret}"), ..publish };
    let forged_file = root.join("forged.publishsettings");
    write(&forged_file, forged.to_xml().as_bytes());
    let refused = offsite(["admin", "--publish-settings", utf8(&forged_file), "vault", "list"]).run().fails();
    let used = files_named(root, &|n| n == "fs01.vaultcredentials").pop().expect("the agent's vault credentials");
    let again = common::service::Agent::new(root, "again");
    let reused = again.register(&used, "again").fails();
    let mut errors = vec![("a forged management credential", refused, forged_secret.clone())];
    let used_secret = VaultCredentials::read(&used).unwrap().registration_secret;
    errors.push(("used vault credentials", reused, used_secret.clone()));
    for (what, run, secret) in &errors {
        let half = secret.split_once('.').map_or(secret.as_str(), |(_, s)| s);
        assert!(
            !run.stderr.contains(half) && !run.stdout.contains(half),
            "the error about {what} repeats the credential:\n{run}"
        );
    }

    // Every secret of the workflow.
    let mut secrets: Vec<(String, String)> = Vec::new();
    token_parts("the operator token", &OperatorCredentials::read(&service.operator).unwrap().token, &mut secrets);
    token_parts(
        "the management credential",
        &forged.management_credential.replace(&forged_secret, secret),
        &mut secrets,
    );
    token_parts("the forged management credential", &forged.management_credential, &mut secrets);
    for file in files_named(root, &|n| n.ends_with(".vaultcredentials")) {
        token_parts("vault credentials", &VaultCredentials::read(&file).unwrap().registration_secret, &mut secrets);
    }
    for file in files_named(root, &|n| n == "registration.toml") {
        let text = std::fs::read_to_string(&file).unwrap();
        let registration: toml::Value = toml::from_str(&text).unwrap();
        let token = registration["machine_credential"].as_str().unwrap();
        token_parts("a machine credential", token, &mut secrets);
    }
    for file in files_named(root, &|n| n == "application.key") {
        let pem = std::fs::read_to_string(&file).unwrap();
        for line in pem.lines().filter(|l| !l.starts_with("-----") && l.len() >= 16) {
            secrets.push(("the application's private key".into(), line.to_string()));
        }
    }
    let import_key = std::fs::read_to_string(&site.import_key).unwrap().trim().to_string();
    assert_eq!(import_key.len(), 64, "an import key is 32 bytes in hex");
    secrets.push(("the import key".into(), import_key));
    for drive in &drives {
        let key = drive["recovery_key"].as_str().expect("a recovery key").to_string();
        secrets.push(("a drive recovery key".into(), key.clone()));
        secrets.push(("a drive recovery key without dashes".into(), key.replace('-', "")));
    }
    secrets.push(("the agent passphrase".into(), AGENT_PASSPHRASE.into()));
    secrets.push(("the repository password".into(), PASSWORD.into()));
    secrets.push(("the portal password".into(), PORTAL_PASSWORD.into()));
    secrets.push(("a wrong portal password".into(), "a wrong portal password".into()));
    token_parts("the portal session cookie", &session, &mut secrets);
    assert!(secrets.len() >= 20, "only {} secrets gathered", secrets.len());

    // Every log: each command's stderr, the service's log, the agent's job history.
    // (The first line of each is the test's own rendering of the command line.)
    let mut logs: Vec<(String, String)> = stderr_transcript()
        .into_iter()
        .map(|t| {
            let (shown, stderr) = t.split_once('\n').unwrap_or((&t, ""));
            (shown.to_string(), stderr.to_string())
        })
        .collect();
    assert!(logs.len() >= 20, "only {} commands ran", logs.len());
    for file in files_named(root, &|n| n.ends_with(".log") || n.ends_with(".jsonl")) {
        logs.push((file.display().to_string(), std::fs::read_to_string(&file).unwrap_or_default()));
    }
    let traced: usize = logs.iter().map(|(_, text)| text.matches("\"level\":\"TRACE\"").count()).sum();
    let total: usize = logs.iter().map(|(_, text)| text.len()).sum();
    assert!(total > 10_000, "the logs hold only {total} bytes: is tracing on?");
    let mut leaks = Vec::new();
    for (what, secret) in &secrets {
        for (source, text) in &logs {
            if let Some(at) = text.find(secret.as_str()) {
                let start = text[..at].char_indices().rev().nth(120).map_or(0, |(i, _)| i);
                let line = &text[start..(at + secret.len() + 40).min(text.len())];
                leaks.push(format!("{what} in {source}: …{line}…"));
            }
        }
    }
    println!("searched {} bytes of logs ({traced} trace events) for {} secrets", total, secrets.len());
    assert!(leaks.is_empty(), "{} secrets in logs:\n{}", leaks.len(), leaks.join("\n"));
}
