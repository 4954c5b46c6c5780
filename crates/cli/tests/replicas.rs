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

use common::service::{Agent, Service, Tenant};
use common::site::{Site, JOB};
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
        Replicas { set }
    }

    /// The service as its clients reach it: through the balancer, with the
    /// operator credentials the replicas share.
    fn service(&self, root: &Path) -> Service {
        Service::attached(root, &self.set.data_dir(0), &self.set.balancer().url())
    }

    fn launch(&mut self, i: usize) {
        self.set.launch(i).unwrap_or_else(|e| panic!("replica {} did not start: {e}", i + 1));
    }

    /// Kills replica `i` with SIGKILL, waits until HAProxy has taken it out,
    /// starts it again and waits until HAProxy has let it back in.
    fn kill_and_restart(&mut self, i: usize) {
        let (down, up) = (format!("replica{} is DOWN", i + 1), format!("replica{} is UP", i + 1));
        let count = |set: &offsite_testbed::ReplicaSet, what: &str| set.balancer().log().matches(what).count();
        let (downs, ups) = (count(&self.set, &down), count(&self.set, &up));
        self.set.kill(i);
        let out = wait_for(Duration::from_secs(10), || count(&self.set, &down) > downs);
        assert!(out, "HAProxy took replica {} out:\n{}", i + 1, self.set.balancer().log());
        self.launch(i);
        let back = wait_for(Duration::from_secs(20), || count(&self.set, &up) > ups);
        assert!(back, "HAProxy let replica {} back in:\n{}", i + 1, self.set.balancer().log());
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
    sign_in_from(fingerprint, port, password, IpAddr::from([127, 0, 0, 1])).0
}

/// A browser of the portal: HTTPS pinned to the service's certificate, no
/// redirects followed, from the loopback address `source`.
fn browser(fingerprint: &str, source: IpAddr) -> reqwest::blocking::Client {
    let tls = offsite_api::tls::pinned_client_config(fingerprint).expect("a pinned TLS config");
    reqwest::blocking::Client::builder()
        .local_address(source)
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .expect("an HTTP client")
}

/// [`sign_in`] from the loopback address `source` (another computer, as the
/// service sees it): the status, and the session cookie when it succeeded.
fn sign_in_from(fingerprint: &str, port: u16, password: &str, source: IpAddr) -> (u16, Option<String>) {
    let http = browser(fingerprint, source);
    let base = format!("https://127.0.0.1:{port}/portal/sign-in");
    let form = http.get(&base).send().expect("the sign-in form");
    let sign_in_cookie = cookie(&form, "offsite_sign_in").expect("the sign-in cookie");
    let body = form.text().unwrap();
    let at = body.find("name=\"csrf\" value=\"").expect("a CSRF field") + "name=\"csrf\" value=\"".len();
    let csrf = body[at..].split('"').next().unwrap_or_default().to_string();
    let fields = [("email", "it@contoso.example"), ("password", password), ("csrf", csrf.as_str())];
    let answer = http.post(&base).header("cookie", sign_in_cookie).form(&fields).send().expect("the sign-in");
    (answer.status().as_u16(), cookie(&answer, "offsite_session"))
}

/// The cookie `name` an answer sets, as a request sends it back (`name=value`).
fn cookie(answer: &reqwest::blocking::Response, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    answer
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&prefix))
        .and_then(|v| v.split(';').next())
        .map(str::to_string)
}

#[test]
fn three_replicas_behind_haproxy_serve_backups_revocations_and_a_replica_killed_mid_backup() {
    let scratch = temp();
    let root = scratch.path();
    let mut replicas = Replicas::start(root, 3, false);
    let service = replicas.service(root);

    // A subscription and three agents, each command landing on whichever
    // replica the balancer picks.
    let (tenant, agents) = contoso_with_agents(&service, root, 3, 3 << 20);

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
    // Then all back up and restore at once, through the three.
    std::thread::scope(|scope| {
        for (n, (agent, source)) in agents.iter().enumerate() {
            scope.spawn(move || {
                write(&source.join("docs/after.txt"), format!("changed on {n}").as_bytes());
                let report = agent.backup();
                assert_eq!(report["report"]["state"], "completed", "{report}");
                agent.restore_equals(&root.join(format!("restored-{n}")), source);
            });
        }
    });

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
    server_check(&replicas);
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
    let service = replicas.service(root);
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
        assert_eq!(sign_in_from(&fingerprint, balancer, "a wrong password, long enough", guesser).0, 303);
    }
    assert_eq!(sign_in_from(&fingerprint, balancer, PORTAL_PASSWORD, guesser).0, 429, "the guesser is locked out");
    assert_eq!(sign_in_from(&fingerprint, balancer, PORTAL_PASSWORD, colleague).0, 303, "another client is not");
}

/// A seed's whole way through the balancer while replicas die: the station
/// ingests the drives and the customer reads the job (the CLI, and a portal
/// session signed in on one replica and read on the others) while every replica
/// in turn is killed with SIGKILL and restarted; then the machine adopts its
/// seed while another replica dies. The job ends `completed` as on one replica,
/// the seed is adopted (only the change travels), it restores byte for byte, and
/// `server check` agrees.
#[test]
fn a_seed_ingested_and_adopted_through_the_balancer_while_replicas_are_killed() {
    let scratch = temp();
    let root = scratch.path();
    let mut replicas = Replicas::start(root, 3, false);
    let service = replicas.service(root);
    let site = Site::with_source(&service, root, 1, |source| {
        write_noise_file(&source.join("big.bin"), 10 << 20, 21);
        small_tree(&source.join("docs"));
    });
    site.stage();
    let prepared = site.prepare_two_drives();
    let drives = prepared["set"]["drives"].as_array().map_or(0, Vec::len) as u32;
    assert!(drives >= 2, "{prepared}");
    site.ship("1Z999AA10123456784").ok();
    site.datacenter(&service, &["receive", "--job", JOB]).run().ok();
    let job_id =
        site.diskprep(&["--status", "--json"]).run().ok().json()["id"].as_str().expect("the job's id").to_string();

    // A portal session signed in through replica 1 (sessions live in the database).
    service
        .admin(["portal-user", "create", "it@contoso.example", "--subscription", &site.tenant.id])
        .env("OFFSITE_PORTAL_PASSWORD", PORTAL_PASSWORD)
        .run()
        .ok();
    let fingerprint = offsite_api::files::PublishSettings::read(&site.tenant.publish).unwrap().service.fingerprint;
    let (status, session) =
        sign_in_from(&fingerprint, replicas.set.port(0), PORTAL_PASSWORD, IpAddr::from([127, 0, 0, 1]));
    let session = session.unwrap_or_else(|| panic!("no session after signing in ({status})"));
    let portal = browser(&fingerprint, IpAddr::from([127, 0, 0, 1]));
    let job_page = |port: u16| {
        portal
            .get(format!("https://127.0.0.1:{port}/portal/import-jobs/{job_id}"))
            .header("cookie", &session)
            .send()
            .ok()
            .filter(|answer| answer.status() == 200)
            .and_then(|answer| answer.text().ok())
    };

    // The station ingests every drive while each replica in turn dies and comes
    // back; the customer keeps reading the job through the balancer.
    let ingesting = std::sync::atomic::AtomicBool::new(true);
    let (site, service, ingesting) = (&site, &service, &ingesting);
    let (ingests, reads, killed_during_ingest) = std::thread::scope(|scope| {
        let station = scope.spawn(move || {
            let runs: Vec<Run> = (1..=drives).map(|n| site.ingest(service, &site.drive(n))).collect();
            ingesting.store(false, std::sync::atomic::Ordering::Relaxed);
            runs
        });
        let customer = scope.spawn(move || {
            let mut states = Vec::new();
            while ingesting.load(std::sync::atomic::Ordering::Relaxed) {
                states.push(site.job_state());
                std::thread::sleep(Duration::from_millis(200));
            }
            states
        });
        let mut killed = 0;
        for i in [1, 2, 0, 1, 2, 0] {
            if station.is_finished() {
                break;
            }
            replicas.kill_and_restart(i);
            killed += 1;
        }
        (station.join().unwrap(), customer.join().unwrap(), killed)
    });
    for run in &ingests {
        assert_eq!(run.code, Some(0), "{run}");
        assert_eq!(run.json()["drive_state"], "completed", "{run}");
    }
    assert!(killed_during_ingest >= 1, "no replica died during the ingest");
    assert!(reads.iter().all(|state| !state.is_empty()), "every read of the job answered: {reads:?}");
    assert_eq!(site.job_state(), "completed", "as on one replica");
    for i in 0..3 {
        let page = job_page(replicas.set.port(i)).unwrap_or_else(|| panic!("replica {} shows the job", i + 1));
        assert!(page.contains(JOB) && page.contains("completed"), "replica {}: {page}", i + 1);
    }

    // Adoption at the next backup, while replica 3 dies under it.
    write(&site.source.join("docs/after.txt"), b"changed after the seed");
    let adopted = std::thread::scope(|scope| {
        let backup = scope.spawn(|| site.agent.backup());
        std::thread::sleep(Duration::from_millis(300));
        replicas.kill_and_restart(2);
        backup.join().unwrap()
    });
    assert_eq!(adopted["report"]["state"], "completed", "{adopted}");
    let message = adopted["report"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("adopted"), "{adopted}");
    let sent = adopted["report"]["bytes_uploaded"].as_u64().unwrap_or(u64::MAX);
    assert!(sent < 1 << 20, "after adoption the backup sent {sent} bytes");
    site.agent.restore_equals(&root.join("restored"), &site.source);
    server_check(&replicas);
    eprintln!("{killed_during_ingest} replicas killed during the ingest; {} reads of the job", reads.len());
}

/// A rolling restart of the three replicas with a schema migration pending, and
/// PostgreSQL restarted, while agents back up without pause. Migration 0017 (the
/// packaging claims' two columns) is undone in the database first, so the
/// running replicas stand for the release before it (they do not package here):
/// the first replica restarted applies it, once, while the
/// others keep serving; a database that a newer release migrated further does
/// not stop a replica from starting (a previous-release replica restarting in
/// the middle of an upgrade). When PostgreSQL restarts, the replicas reconnect.
/// Every backup completes and restores byte for byte; `server check` agrees.
#[test]
fn a_rolling_restart_with_a_migration_pending_and_postgresql_restarted_under_load() {
    let scratch = temp();
    let root = scratch.path();
    let mut replicas = Replicas::start(root, 3, false);
    let service = replicas.service(root);
    let (_, agents) = contoso_with_agents(&service, root, 3, 2 << 20);

    // Any added migration would do; this one adds two columns to import_jobs.
    let pending = 17;
    let sql = |replicas: &mut Replicas, sql: &str| replicas.set.postgres().query(sql).expect("a query");
    sql(&mut replicas, &format!("DELETE FROM _sqlx_migrations WHERE version = {pending}"));
    sql(&mut replicas, "ALTER TABLE import_jobs DROP COLUMN packaging_claim, DROP COLUMN packaging_claimed");
    let applied = |replicas: &mut Replicas| {
        sql(replicas, &format!("SELECT count(*) FROM _sqlx_migrations WHERE version = {pending}")).trim().to_string()
    };

    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let stop = AtomicBool::new(false);
    let done: Vec<AtomicUsize> = agents.iter().map(|_| AtomicUsize::new(0)).collect();
    let backups = std::thread::scope(|scope| {
        let running: Vec<_> = agents
            .iter()
            .enumerate()
            .map(|(n, (agent, source))| {
                let (stop, done) = (&stop, &done[n]);
                scope.spawn(move || {
                    let mut reports = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        write(&source.join("docs/round.txt"), format!("agent {n}, round {}", reports.len()).as_bytes());
                        reports.push(agent.backup());
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    reports
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        // The roll: the first replica back migrates; the others serve meanwhile.
        replicas.kill_and_restart(0);
        assert_eq!(applied(&mut replicas), "1", "the first replica restarted applied the pending migration");
        replicas.kill_and_restart(1);
        // A newer release migrated further: a replica of this one still starts.
        sql(
            &mut replicas,
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                            VALUES (9999, 'a later release', true, '\\x00', 0)",
        );
        replicas.kill_and_restart(2);
        assert_eq!(applied(&mut replicas), "1", "applied once");
        // PostgreSQL goes away and comes back under the load: each agent then
        // completes two more backups (the replicas reconnected).
        let before: Vec<usize> = done.iter().map(|d| d.load(Ordering::Relaxed)).collect();
        replicas.set.postgres().restart().expect("PostgreSQL restarts");
        let after = wait_for(Duration::from_secs(120), || {
            done.iter().zip(&before).all(|(d, b)| d.load(Ordering::Relaxed) >= b + 2)
        });
        stop.store(true, Ordering::Relaxed);
        assert!(after, "the agents went on backing up after PostgreSQL restarted");
        running.into_iter().map(|r| r.join().unwrap()).collect::<Vec<_>>()
    });
    for (n, reports) in backups.iter().enumerate() {
        assert!(!reports.is_empty(), "agent {n} backed up");
        for report in reports {
            assert_eq!(report["report"]["state"], "completed", "agent {n}: {report}");
        }
    }
    // The migration's columns are back.
    sql(&mut replicas, "SELECT packaging_claim, packaging_claimed FROM import_jobs LIMIT 1");
    for (n, (agent, source)) in agents.iter().enumerate() {
        agent.restore_equals(&root.join(format!("restored-{n}")), source);
    }
    sql(&mut replicas, "DELETE FROM _sqlx_migrations WHERE version = 9999");
    server_check(&replicas);
    eprintln!("backups during the roll: {:?}", backups.iter().map(Vec::len).collect::<Vec<_>>());
}

/// Subscription contoso with vault "main" and `count` agents in it (fs00, fs01,
/// …), each protecting its own folder: `big` bytes of noise and a small tree,
/// packs of 1 MiB.
fn contoso_with_agents(service: &Service, root: &Path, count: u64, big: u64) -> (Tenant, Vec<(Agent, PathBuf)>) {
    let tenant = service.subscription("contoso");
    tenant.create_vault("main");
    let agents = (0..count)
        .map(|n| {
            let source = root.join(format!("source-{n}"));
            std::fs::create_dir_all(&source).unwrap();
            write_noise_file(&source.join("big.bin"), big, 40 + n);
            small_tree(&source.join("docs"));
            let agent =
                Agent::registered_with(root, &tenant, "main", &format!("fs{n:02}"), &[&source], &["--pack-size", "1"]);
            (agent, source)
        })
        .collect();
    (tenant, agents)
}

/// `offsite server check` on the replicas' database and object store.
fn server_check(replicas: &Replicas) {
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

/// `--database-max-connections` bounds the PostgreSQL connections a replica holds
/// (what lets more replicas share one PostgreSQL): six agents backing up at once
/// through a replica limited to 3 never see it hold more, and all complete.
#[test]
fn a_replica_holds_at_most_its_database_max_connections() {
    let scratch = temp();
    let root = scratch.path();
    let postgres = offsite_testbed::Postgres::start().expect("PostgreSQL for tests (run scripts/test)");
    let url = format!("{}?application_name=bounded-replica", postgres.url());
    let service = Service::start_with(root, &["--database-url", &url, "--database-max-connections", "3"], &[]);
    let (_, agents) = contoso_with_agents(&service, root, 6, 2 << 20);
    let held = || -> usize {
        let sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'bounded-replica'";
        postgres.query(sql).expect("a count").trim().parse().expect("a number")
    };
    let done = std::sync::atomic::AtomicBool::new(false);
    let most = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut most = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                most = most.max(held());
                std::thread::sleep(Duration::from_millis(50));
            }
            most
        });
        let runs: Vec<_> = agents.iter().map(|(agent, _)| scope.spawn(|| agent.backup())).collect();
        for run in runs {
            let report = run.join().unwrap();
            assert_eq!(report["report"]["state"], "completed", "{report}");
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        sampler.join().unwrap()
    });
    assert!((1..=3).contains(&most), "the replica held {most} connections at most");
    assert!(held() <= 3);
    eprintln!("six agents at once: the replica held {most} PostgreSQL connections at most");
}
