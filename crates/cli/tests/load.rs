//! A bounded load test on the loopback interface: many agents back up at once to
//! one service while an ingest station ingests a seed's drives, on SQLite with a
//! local folder, on PostgreSQL with Azurite, and on one and on three replicas
//! (PostgreSQL, Azurite) behind HAProxy. Afterwards every agent's backup restores
//! equal to its source, the import job is completed, and no request was answered
//! with a server error.
//!
//! A service checks a credential with Argon2 at its first use and then remembers
//! it while it is used (for 25 h after its last use), each replica for itself.
//! One service has checked every client's credential before the timed part (at
//! registration); behind HAProxy every replica is made to check them beforehand
//! too, so one and three replicas are compared alike, except in one run of three
//! replicas that leaves each replica to check the credentials it meets during the
//! timed part, as replicas do on the first backups after they start.
//!
//! The figures (throughput, the latency of every request as the agents and the
//! station saw it, the service's peak memory, and behind HAProxy the PostgreSQL
//! connections each replica held) are printed as one line starting
//! `load figures:`; `scripts/bench-load` runs this test with more agents and data
//! and collects those lines for BENCHMARKS.md. Timings are never asserted: the
//! machines are shared.
//!
//! `OFFSITE_LOAD_AGENTS` (default 6) and `OFFSITE_LOAD_MIB` (MiB per agent,
//! default 4) size the load.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::service::{Agent, Service};
use common::site::*;
use common::*;
use offsite_testbed::ReplicaSet;
use serde_json::{json, Value};

fn setting(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text.parse().unwrap_or_else(|_| panic!("{name}={text} is not a whole number")),
        Err(_) => default,
    }
}

/// What one agent protects: mostly its own incompressible data, some text, and a
/// file every agent has (each machine has its own repository, so it is stored once
/// per machine: the service sees the full load).
fn source_for(root: &Path, agent: u64, mib: u64) -> PathBuf {
    let source = root.join(format!("source-{agent}"));
    let files = 4;
    std::fs::create_dir_all(source.join("data")).expect("a source folder");
    for file in 0..files {
        write_noise_file(&source.join(format!("data/part{file}.bin")), (mib << 20) / files, 1000 * agent + file);
    }
    write(&source.join("notes.txt"), &text(50_000, 7 + agent));
    write(&source.join("common/shared.bin"), &noise(256 << 10, 42));
    source
}

/// One request as the client logged it (`request answered`).
struct Request {
    micros: u64,
    status: u64,
    bytes_sent: u64,
}

/// Requests carrying more than this are uploads of repository files, whose time
/// is mostly the transfer: their latency is reported apart from the rest.
const UPLOAD_BYTES: u64 = 64 << 10;

fn requests(log: &str) -> Vec<Request> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|entry| entry["fields"]["message"] == "request answered")
        .filter_map(|entry| {
            let fields = &entry["fields"];
            Some(Request {
                micros: fields["micros"].as_u64()?,
                status: fields["status"].as_u64()?,
                bytes_sent: fields["bytes_sent"].as_u64()?,
            })
        })
        .collect()
}

fn percentile(sorted: &[u64], fraction: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() as f64) * fraction).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

const MIB: f64 = 1048576.0;

/// What serves the load, as the figures report it.
enum Servers<'a> {
    /// The one service process the test started.
    One(&'a Service),
    /// Replicas behind a balancer; `checked` when every replica is to check every
    /// client's credential before the timed part.
    Replicas { set: &'a ReplicaSet, checked: bool },
}

impl Servers<'_> {
    /// Each serving process's peak resident memory so far (VmHWM), in bytes.
    fn peak_memory(&self) -> Vec<u64> {
        match self {
            Servers::One(service) => vec![service.peak_memory_bytes().expect("the service's memory from /proc")],
            Servers::Replicas { set, .. } => (0..set.count())
                .map(|i| {
                    let pid = set.pid(i).expect("every replica runs");
                    common::service::peak_memory_of(pid).expect("a replica's memory from /proc")
                })
                .collect(),
        }
    }

    /// Until `done`, the PostgreSQL connections each replica holds, every 250 ms:
    /// the most each held at once (nothing for one service).
    fn peak_connections(&self, done: &AtomicBool) -> Vec<usize> {
        let Servers::Replicas { set, .. } = self else { return Vec::new() };
        let mut peak = vec![0; set.count()];
        while !done.load(Ordering::Relaxed) {
            let now = set.postgres_connections().expect("pg_stat_activity");
            peak.iter_mut().zip(now).for_each(|(peak, now)| *peak = (*peak).max(now));
            std::thread::sleep(Duration::from_millis(250));
        }
        peak
    }

    /// How many replicas the balancer spreads the load over (none without one).
    fn replicas(&self) -> Option<usize> {
        match self {
            Servers::One(_) => None,
            Servers::Replicas { set, .. } => Some(set.count()),
        }
    }

    /// The PostgreSQL connections each replica holds now (nothing for one service).
    fn connections(&self) -> Vec<usize> {
        match self {
            Servers::One(_) => Vec::new(),
            Servers::Replicas { set, .. } => set.postgres_connections().expect("pg_stat_activity"),
        }
    }

    /// Whether every replica checked every client's credential before the timed
    /// part (one service did, at registration).
    fn credentials_checked_beforehand(&self) -> bool {
        match self {
            Servers::One(_) => true,
            Servers::Replicas { checked, .. } => *checked,
        }
    }

    /// When asked to, has every replica check the credential of every agent and of
    /// the station: one request each, aimed at the replica itself.
    fn check_credentials(&self, agents: &[(Agent, PathBuf)], station: &Path) {
        let Servers::Replicas { set, checked: true } = self else { return };
        let station = offsite_api::files::StationCredentials::read(station).expect("the station credentials");
        let mut credentials = vec![(station.endpoint(), station.token)];
        for (agent, _) in agents {
            let home = offsite_agent::AgentHome::in_folder(&agent.home);
            let registration = offsite_agent::registration::Registration::load(&home).expect("a registration");
            credentials.push((registration.endpoint(), registration.machine_credential));
        }
        for (endpoint, token) in &credentials {
            for i in 0..set.count() {
                let replica = offsite_api::files::ServiceEndpoint {
                    url: format!("https://127.0.0.1:{}", set.port(i)),
                    fingerprint: endpoint.fingerprint.clone(),
                };
                let client = offsite_api::Client::new(&replica, token).expect("a client");
                client.whoami().unwrap_or_else(|e| panic!("replica {} refused a credential: {e}", i + 1));
            }
        }
    }
}

/// Runs the load against `service` (where the commands go), served by `servers`.
fn load(service: &Service, servers: Servers, root: &Path, backend: &str) {
    let agents = setting("OFFSITE_LOAD_AGENTS", 6);
    let mib = setting("OFFSITE_LOAD_MIB", 4);

    // A seed ready for the station: staged, on drives, shipped and received.
    let site = Site::new(service, root);
    site.stage();
    let prepared = site.prepare_two_drives();
    let drive_count = prepared["set"]["drives"].as_array().map_or(0, Vec::len) as u32;
    assert!(drive_count >= 2, "{prepared}");
    site.ship("1Z999AA10123456784").ok();
    site.datacenter(service, &["receive", "--job", JOB]).run().ok();

    // The agents, registered one after the other (registration is not the load).
    let machines: Vec<(Agent, PathBuf)> = (0..agents)
        .map(|n| {
            let source = source_for(root, n, mib);
            let agent = Agent::registered(root, &site.tenant, "main", &format!("load{n:02}"), &[&source]);
            (agent, source)
        })
        .collect();

    servers.check_credentials(&machines, &site.station);
    let logged = |cli: Cli| cli.env("RUST_LOG", "warn,offsite_api::request=debug").env("OFFSITE_LOG_FORMAT", "json");
    let started = Instant::now();
    let done = AtomicBool::new(false);
    let (backups, ingests, wall, peak_connections) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| servers.peak_connections(&done));
        let station = scope.spawn(|| {
            (1..=drive_count)
                .map(|n| {
                    logged(site.datacenter(
                        service,
                        &["ingest", "--drive", utf8(&site.drive(n)), "--import-key", utf8(&site.import_key), "--json"],
                    ))
                    .run()
                })
                .collect::<Vec<Run>>()
        });
        let running: Vec<_> = machines
            .iter()
            .map(|(agent, _)| scope.spawn(|| logged(agent.cmd(["backup", "--now", "--json"])).run()))
            .collect();
        let backups: Vec<Run> = running.into_iter().map(|t| t.join().expect("an agent thread")).collect();
        let ingests = station.join().expect("the station thread");
        // Before the sampler's last sleep.
        let wall = started.elapsed();
        done.store(true, Ordering::Relaxed);
        (backups, ingests, wall, sampler.join().expect("the sampler thread"))
    });
    let end_connections = servers.connections();

    let (mut latencies, mut uploads) = (Vec::new(), Vec::new());
    let mut server_errors = 0;
    let mut bytes_sent = 0;
    for run in backups.iter().chain(&ingests) {
        for request in requests(&run.stderr) {
            if request.bytes_sent > UPLOAD_BYTES {
                uploads.push(request.micros);
            } else {
                latencies.push(request.micros);
            }
            server_errors += usize::from(request.status >= 500);
        }
    }
    for run in &backups {
        assert_eq!(run.code, Some(0), "{run}");
        let report = run.json();
        assert_eq!(report["report"]["state"], "completed", "{report}");
        bytes_sent += report["report"]["bytes_uploaded"].as_u64().expect("bytes_uploaded");
    }
    let mut ingested = 0;
    for run in &ingests {
        assert_eq!(run.code, Some(0), "{run}");
        let report = run.json();
        assert_eq!(report["drive_state"], "completed", "{report}");
        ingested += report["bytes_delivered"].as_u64().expect("bytes_delivered");
    }
    assert_eq!(site.job_state(), "completed");
    assert_eq!(server_errors, 0, "the service answered {server_errors} requests with a server error under load");
    let peak_memory = servers.peak_memory();

    // Every backup restores equal to its source.
    for (n, (agent, source)) in machines.iter().enumerate() {
        agent.restore_equals(&root.join(format!("restored-{n}")), source);
    }

    latencies.sort_unstable();
    uploads.sort_unstable();
    assert!(latencies.len() as u64 >= agents * 5, "too few request lines were logged: {}", latencies.len());
    assert!(uploads.len() as u64 >= agents, "too few uploads were logged: {}", uploads.len());
    let ms = |sorted: &[u64], fraction: f64| percentile(sorted, fraction) as f64 / 1000.0;
    let seconds = wall.as_secs_f64();
    let figures = json!({
        "backend": backend,
        "agents": agents,
        "mib_per_agent": mib,
        "drives_ingested": ingests.len(),
        "wall_seconds": (seconds * 100.0).round() / 100.0,
        "backup_mib_sent": (bytes_sent as f64 / MIB * 10.0).round() / 10.0,
        "backup_mib_per_s": (bytes_sent as f64 / MIB / seconds * 10.0).round() / 10.0,
        "ingest_mib": (ingested as f64 / MIB * 10.0).round() / 10.0,
        "requests": latencies.len() + uploads.len(),
        "requests_per_s": ((latencies.len() + uploads.len()) as f64 / seconds).round(),
        "p50_ms": ms(&latencies, 0.50),
        "p99_ms": ms(&latencies, 0.99),
        "max_ms": ms(&latencies, 1.0),
        "uploads": uploads.len(),
        "upload_p50_ms": ms(&uploads, 0.50),
        "upload_p99_ms": ms(&uploads, 0.99),
        "replicas_behind_balancer": servers.replicas(),
        "credentials_checked_beforehand": servers.credentials_checked_beforehand(),
        "processes": peak_memory.len(),
        "service_peak_rss_mib": (peak_memory.iter().sum::<u64>() as f64 / MIB).round(),
        "largest_peak_rss_mib": (peak_memory.iter().copied().max().unwrap_or_default() as f64 / MIB).round(),
        "pg_connections_peak": peak_connections,
        "pg_connections_end": end_connections,
    });
    println!("load figures: {figures}");
}

#[test]
fn many_agents_and_an_ingest_at_once_on_sqlite() {
    let scratch = temp();
    let service = Service::start(scratch.path());
    load(&service, Servers::One(&service), scratch.path(), "sqlite+folder");
}

#[test]
fn many_agents_and_an_ingest_at_once_on_postgresql_and_azurite() {
    let scratch = temp();
    let (service, _postgres, _azurite) = Service::start_on_postgres_and_azurite(scratch.path());
    load(&service, Servers::One(&service), scratch.path(), "postgresql+azurite");
}

/// The load through HAProxy on `count` replicas sharing PostgreSQL and Azurite;
/// with `checked`, every replica checks every credential before the timed part.
fn load_on_replicas(count: usize, checked: bool, backend: &str) {
    let scratch = temp();
    let root = scratch.path();
    let offsite = Path::new(env!("CARGO_BIN_EXE_offsite"));
    let set = ReplicaSet::start(offsite, &root.join("replicas"), count, false)
        .expect("the replicas on PostgreSQL, Azurite and HAProxy (run scripts/test)");
    let service = Service::attached(root, &set.data_dir(0), &set.balancer().url());
    load(&service, Servers::Replicas { set: &set, checked }, root, backend);
}

#[test]
fn many_agents_and_an_ingest_at_once_behind_haproxy_on_1_replica() {
    load_on_replicas(1, true, "1 replica behind haproxy (pg+azurite)");
}

#[test]
fn many_agents_and_an_ingest_at_once_behind_haproxy_on_3_replicas() {
    load_on_replicas(3, true, "3 replicas behind haproxy (pg+azurite)");
}

#[test]
fn many_agents_and_an_ingest_at_once_behind_haproxy_on_3_replicas_checking_credentials_meanwhile() {
    load_on_replicas(3, false, "3 replicas behind haproxy, credentials checked during the load (pg+azurite)");
}

/// Many requests at once whose credential names a real id with a wrong secret: each
/// costs an Argon2 check (19 MiB). The service runs as many at once as it has cores,
/// in memory it keeps for them, so its memory does not grow with the flood (64 at
/// once grew it by 1.2 GiB before); every request is refused and the service
/// answers afterwards.
#[test]
fn a_flood_of_wrong_credentials_is_refused_without_growing_the_service() {
    let scratch = temp();
    let service = Service::start(scratch.path());
    let operator = offsite_api::files::OperatorCredentials::read(&service.operator).expect("operator credentials");
    let endpoint = operator.endpoint();
    let (id, _) = operator.token.split_once('.').expect("a token <id>.<secret>");
    // Warm up: the service's first requests allocate what it keeps.
    offsite_api::Client::new(&endpoint, &operator.token).unwrap().whoami().expect("the operator is known");
    let before = service.peak_memory_bytes().expect("the service's memory");

    let flood = 64;
    let refused = std::thread::scope(|scope| {
        let attempts: Vec<_> = (0..flood)
            .map(|n| {
                let token = format!("{id}.{n:064x}");
                let endpoint = endpoint.clone();
                scope.spawn(move || offsite_api::Client::new(&endpoint, &token).unwrap().whoami().err())
            })
            .collect();
        attempts.into_iter().filter_map(|a| a.join().expect("a request thread")).collect::<Vec<_>>()
    });
    assert_eq!(refused.len(), flood, "every wrong secret is refused");
    assert!(refused.iter().all(|e| e.status() == Some(401)), "{refused:?}");
    let grown = service.peak_memory_bytes().expect("the service's memory").saturating_sub(before);
    assert!(grown < 128 << 20, "the flood grew the service's peak memory by {} MiB", grown >> 20);
    offsite_api::Client::new(&endpoint, &operator.token).unwrap().whoami().expect("the service still answers");
    eprintln!("64 wrong credentials at once grew the service's peak memory by {} MiB", grown >> 20);
}
