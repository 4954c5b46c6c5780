//! Several replicas, proven (docs/OPERATIONS.md, "Several replicas behind a load
//! balancer"): three `offsite server run` on one PostgreSQL and one object store
//! (Azurite), sharing the certificate and operator credentials as OPERATIONS.md
//! prescribes, behind HAProxy (TLS passed through, round robin, health checks on
//! `/healthz`). Through the balancer: agents back up and restore at once; a
//! revoked credential is refused by every replica at once; a replica killed with
//! SIGKILL in the middle of backups costs nothing (every backup completes and
//! restores byte for byte), and it comes back; the portal's sign-in limit holds
//! over the three.

mod common;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::service::{Agent, Service};
use common::*;
use offsite_api::XmlCredentialFile;

/// The replica set (`offsite_testbed::ReplicaSet`) as this test uses it.
struct Replicas {
    set: offsite_testbed::ReplicaSet,
}

impl Replicas {
    fn start(root: &Path, count: usize, proxy_protocol: bool) -> Replicas {
        let offsite = Path::new(env!("CARGO_BIN_EXE_offsite"));
        let set = offsite_testbed::ReplicaSet::start(offsite, root, count, proxy_protocol)
            .expect("the replicas on PostgreSQL, Azurite and HAProxy (run scripts/test)");
        let replicas = Replicas { set };
        replicas.wait_until_balanced();
        replicas
    }

    fn launch(&mut self, i: usize) {
        self.set.launch(i).unwrap_or_else(|e| panic!("replica {} did not start: {e}", i + 1));
    }

    /// Until HAProxy's health checks have let every running replica in.
    fn wait_until_balanced(&self) {
        std::thread::sleep(Duration::from_millis(1500));
    }

    /// The publish settings `tenant` has, aimed at replica `i` alone (same
    /// certificate, so the pinned fingerprint holds).
    fn aimed_at(&self, file: &Path, i: usize) -> PathBuf {
        let text = std::fs::read_to_string(file).unwrap();
        let balancer = format!("127.0.0.1:{}", self.set.balancer().port());
        assert!(text.contains(&balancer), "the file names the balancer: {text}");
        let aimed = file.with_extension(format!("replica-{}", i + 1));
        std::fs::write(&aimed, text.replace(&balancer, &format!("127.0.0.1:{}", self.set.port(i)))).unwrap();
        aimed
    }
}

const PORTAL_PASSWORD: &str = "the portal password of contoso";

/// One sign-in at the replica on `port` as a browser does it (the form, its
/// cookie and token, the post): the answer's status (303 judged, 429 refused).
fn sign_in(fingerprint: &str, port: u16, password: &str) -> u16 {
    sign_in_from(fingerprint, port, password, IpAddr::from([127, 0, 0, 1]))
}

/// [`sign_in`] from the loopback address `source` (another computer, as the
/// service sees it).
fn sign_in_from(fingerprint: &str, port: u16, password: &str, source: IpAddr) -> u16 {
    let tls = offsite_api::tls::pinned_client_config(fingerprint).expect("a pinned TLS config");
    let http = reqwest::blocking::Client::builder()
        .local_address(source)
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .expect("an HTTP client");
    let base = format!("https://127.0.0.1:{port}/portal/sign-in");
    let form = http.get(&base).send().expect("the sign-in form");
    let cookie = form
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("offsite_sign_in="))
        .and_then(|v| v.split(';').next())
        .expect("the sign-in cookie")
        .to_string();
    let body = form.text().unwrap();
    let at = body.find("name=\"csrf\" value=\"").expect("a CSRF field") + "name=\"csrf\" value=\"".len();
    let csrf = body[at..].split('"').next().unwrap_or_default().to_string();
    let fields = [("email", "it@contoso.example"), ("password", password), ("csrf", csrf.as_str())];
    http.post(&base).header("cookie", cookie).form(&fields).send().expect("the sign-in").status().as_u16()
}

#[test]
fn three_replicas_behind_haproxy_serve_backups_revocations_and_a_replica_killed_mid_backup() {
    let scratch = temp();
    let root = scratch.path();
    let mut replicas = Replicas::start(root, 3, false);
    let service = Service::attached(root, &replicas.set.data_dir(0), &replicas.set.balancer().url());

    // A subscription and three agents, each command landing on whichever
    // replica the balancer picks.
    let tenant = service.subscription("contoso");
    tenant.create_vault("main");
    let mut agents = Vec::new();
    for n in 0..3u64 {
        let source = root.join(format!("source-{n}"));
        std::fs::create_dir_all(&source).unwrap();
        write_noise_file(&source.join("big.bin"), 3 << 20, 40 + n);
        small_tree(&source.join("docs"));
        let name = format!("fs0{n}");
        let agent = Agent::registered_with(root, &tenant, "main", &name, &[&source], &["--pack-size", "1"]);
        agents.push((agent, source));
    }

    // All back up at once while replica 2 is killed, then brought back.
    std::thread::scope(|scope| {
        let runs: Vec<_> = agents.iter().map(|(agent, _)| scope.spawn(|| agent.backup())).collect();
        std::thread::sleep(Duration::from_millis(700));
        assert!(runs.iter().all(|r| !r.is_finished()), "the backups are under way when the replica dies");
        replicas.set.kill(1);
        for run in runs {
            let report = run.join().unwrap();
            assert_eq!(report["report"]["state"], "completed", "{report}");
        }
    });
    let log = replicas.set.balancer().log();
    assert!(log.contains("replica2 is DOWN"), "HAProxy saw replica 2 die:\n{log}");
    replicas.launch(1);
    let back = wait_for(Duration::from_secs(10), || replicas.set.balancer().log().contains("replica2 is UP"));
    assert!(back, "HAProxy let replica 2 back in:\n{}", replicas.set.balancer().log());
    for (n, (agent, source)) in agents.iter().enumerate() {
        write(&source.join("docs/after.txt"), format!("changed on {n}").as_bytes());
        let report = agent.backup();
        assert_eq!(report["report"]["state"], "completed", "{report}");
        agent.restore_equals(&root.join(format!("restored-{n}")), source);
    }

    // A credential revoked through the balancer is refused by every replica, at once.
    let issued = root.join("second.publishsettings");
    let run = tenant.admin(["subscription", "issue-credential", "--output", utf8(&issued), "--json"]).run().ok().json();
    let id = run["credential"]["id"].as_str().expect("a credential id").to_string();
    for i in 0..3 {
        let aimed = replicas.aimed_at(&issued, i);
        offsite(["admin", "--publish-settings", utf8(&aimed), "vault", "list"]).run().ok();
    }
    tenant.admin(["subscription", "revoke-credential", &id]).run().ok();
    for i in 0..3 {
        let aimed = replicas.aimed_at(&issued, i);
        offsite(["admin", "--publish-settings", utf8(&aimed), "vault", "list"]).run().code(14);
    }

    // The portal's sign-in limit holds across replicas: five wrong passwords
    // spread over the three, then the right one is refused too.
    service
        .admin(["portal-user", "create", "it@contoso.example", "--subscription", &tenant.id])
        .env("OFFSITE_PORTAL_PASSWORD", PORTAL_PASSWORD)
        .run()
        .ok();
    let fingerprint = offsite_api::files::PublishSettings::read(&tenant.publish).unwrap().service.fingerprint;
    for attempt in 0..5 {
        let status = sign_in(&fingerprint, replicas.set.port(attempt % 3), "a wrong password, long enough");
        assert_eq!(status, 303, "attempt {attempt} is judged (and fails)");
    }
    for i in 0..3 {
        assert_eq!(sign_in(&fingerprint, replicas.set.port(i), PORTAL_PASSWORD), 429, "replica {} refuses", i + 1);
    }

    // The database agrees with the storage.
    let mut check = offsite([
        "server",
        "check",
        "--data-dir",
        utf8(&replicas.set.data_dir(0)),
        "--database-url",
        replicas.set.database_url(),
        "--storage",
        "az://vaults/offsite",
    ]);
    for (k, v) in replicas.set.env() {
        check = check.env(k, v);
    }
    check.run().ok();
}

/// Behind a TCP balancer every connection comes from the balancer; with the
/// PROXY protocol (HAProxy `send-proxy-v2`, `server run --proxy-protocol`) the
/// service counts the clients instead: wrong passwords from one client lock that
/// client out of the address, not another client.
#[test]
fn behind_haproxy_with_the_proxy_protocol_the_sign_in_limit_counts_clients() {
    let scratch = temp();
    let root = scratch.path();
    let replicas = Replicas::start(root, 1, true);
    let service = Service::attached(root, &replicas.set.data_dir(0), &replicas.set.balancer().url());
    let tenant = service.subscription("contoso");
    service
        .admin(["portal-user", "create", "it@contoso.example", "--subscription", &tenant.id])
        .env("OFFSITE_PORTAL_PASSWORD", PORTAL_PASSWORD)
        .run()
        .ok();
    let fingerprint = offsite_api::files::PublishSettings::read(&tenant.publish).unwrap().service.fingerprint;
    let balancer = replicas.set.balancer().port();
    let (guesser, colleague) = (IpAddr::from([127, 0, 0, 2]), IpAddr::from([127, 0, 0, 3]));
    for _ in 0..5 {
        assert_eq!(sign_in_from(&fingerprint, balancer, "a wrong password, long enough", guesser), 303);
    }
    assert_eq!(sign_in_from(&fingerprint, balancer, PORTAL_PASSWORD, guesser), 429, "the guesser is locked out");
    assert_eq!(sign_in_from(&fingerprint, balancer, PORTAL_PASSWORD, colleague), 303, "another client is not");
}
