//! Several `offsite server run` replicas on one PostgreSQL and one object store
//! (Azurite), behind [`Haproxy`], set up as docs/OPERATIONS.md prescribes: the
//! first replica makes the certificate and the operator credentials (and
//! migrates the database), the others start from copies of both. The replicas
//! test (`crates/cli/tests/replicas.rs`), the load test (`crates/cli/tests/load.rs`)
//! and `scripts/replicas` use it.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::free_port;
use crate::{io_error, Azurite, Error, Haproxy, Postgres, Result};

/// How long a replica may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// How long HAProxy takes to let a replica that listens in: `rise 2` checks
/// `inter 300ms` apart, and as much again.
const BALANCED_AFTER: Duration = Duration::from_millis(1500);

/// Running replicas; dropping the set kills them (and the servers under them).
pub struct ReplicaSet {
    offsite: PathBuf,
    work: PathBuf,
    ports: Vec<u16>,
    children: Vec<Option<Child>>,
    /// Each replica's log of its latest start.
    logs: Vec<PathBuf>,
    balancer: Haproxy,
    database_url: String,
    env: Vec<(String, String)>,
    proxy_protocol: bool,
    starts: u32,
    postgres: Postgres,
    _azurite: Azurite,
}

impl ReplicaSet {
    /// Starts `count` replicas of the `offsite` binary with their data folders
    /// under `work` (`replica-N`), behind a balancer that sends PROXY headers
    /// when `proxy_protocol` (and the replicas then read them); returns once the
    /// balancer sends to every replica.
    pub fn start(offsite: &Path, work: &Path, count: usize, proxy_protocol: bool) -> Result<ReplicaSet> {
        let postgres = Postgres::start()?;
        let azurite = Azurite::start()?;
        azurite.create_container("vaults")?;
        let mut env = azurite.object_store_env();
        if std::env::var_os("RUST_LOG").is_none() {
            env.push(("RUST_LOG".into(), "warn".into()));
        }
        let ports: Vec<u16> = (0..count).map(|_| free_port()).collect::<Result<_>>()?;
        let balancer = Haproxy::start_with(&ports, proxy_protocol)?;
        let mut set = ReplicaSet {
            offsite: offsite.to_path_buf(),
            work: work.to_path_buf(),
            children: (0..count).map(|_| None).collect(),
            logs: vec![PathBuf::new(); count],
            ports,
            balancer,
            database_url: postgres.url(),
            env,
            proxy_protocol,
            starts: 0,
            postgres,
            _azurite: azurite,
        };
        set.launch(0)?;
        let first = set.data_dir(0);
        for i in 1..count {
            let to = set.data_dir(i);
            std::fs::create_dir_all(to.join("tls")).map_err(io_error(format!("creating {}", to.display())))?;
            for file in ["tls/service.crt", "tls/service.key", "operator.credentials"] {
                std::fs::copy(first.join(file), to.join(file))
                    .map_err(io_error(format!("copying {file} of the first replica")))?;
            }
            set.launch(i)?;
        }
        // Until HAProxy's health checks (two passes, 300 ms apart) have let
        // every replica in.
        std::thread::sleep(BALANCED_AFTER);
        Ok(set)
    }

    pub fn balancer(&self) -> &Haproxy {
        &self.balancer
    }

    /// Replica `i`'s loopback port (from 0).
    pub fn port(&self, i: usize) -> u16 {
        self.ports[i]
    }

    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.work.join(format!("replica-{}", i + 1))
    }

    /// The database every replica runs on (each adds its own `application_name`
    /// to this URL in its `--database-url`, see [`Self::postgres_connections`]).
    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// The environment every replica runs with (the object store's credentials).
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// Replica `i`'s process id, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.children[i].as_ref().map(Child::id)
    }

    /// The log of replica `i`'s latest start.
    pub fn log(&self, i: usize) -> &Path {
        &self.logs[i]
    }

    /// Starts replica `i` (again) and waits until it listens and has said so: its
    /// `URL:` line comes after its certificate and operator credentials are written.
    pub fn launch(&mut self, i: usize) -> Result<()> {
        let data_dir = self.data_dir(i);
        std::fs::create_dir_all(&data_dir).map_err(io_error(format!("creating {}", data_dir.display())))?;
        self.starts += 1;
        let log_path = self.work.join(format!("replica-{}-{}.log", i + 1, self.starts));
        let log = std::fs::File::create(&log_path).map_err(io_error(format!("creating {}", log_path.display())))?;
        let log_err = log.try_clone().map_err(io_error("duplicating a replica's log"))?;
        let database_url = format!("{}?application_name={}", self.database_url, self.application_name(i));
        let mut cmd = Command::new(&self.offsite);
        cmd.args(["server", "run", "--data-dir"])
            .arg(&data_dir)
            .args(["--listen", &format!("127.0.0.1:{}", self.ports[i]), "--public-url", &self.balancer.url()])
            .args(["--database-url", &database_url, "--storage", "az://vaults/offsite"])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        // The runner's own settings are not the replicas'.
        for (name, _) in std::env::vars_os().filter(|(n, _)| n.to_string_lossy().starts_with("OFFSITE_")) {
            cmd.env_remove(name);
        }
        if self.proxy_protocol {
            cmd.arg("--proxy-protocol");
        }
        // The replicas end with the process that started them, however it ends.
        // SAFETY: prctl is async-signal-safe; nothing else runs in the child.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let program = self.offsite.display().to_string();
        let child = cmd.spawn().map_err(|source| Error::Spawn { server: "offsite server run", program, source })?;
        self.children[i] = Some(child);
        self.logs[i] = log_path.clone();
        let addr = SocketAddr::from(([127, 0, 0, 1], self.ports[i]));
        let said = || {
            std::fs::read_to_string(&log_path).unwrap_or_default().lines().any(|l| l.trim_start().starts_with("URL:"))
        };
        let started = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(250)).is_err() || !said() {
            if started.elapsed() > START_TIMEOUT {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(Error::Timeout {
                    server: "offsite server run",
                    port: self.ports[i],
                    secs: START_TIMEOUT.as_secs(),
                    log,
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// Kills replica `i` with SIGKILL, as a crash or a pulled plug would.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The PostgreSQL every replica runs on (to query it, or restart it under them).
    pub fn postgres(&mut self) -> &mut Postgres {
        &mut self.postgres
    }

    /// How many replicas the set has (running or not).
    pub fn count(&self) -> usize {
        self.ports.len()
    }

    /// The `application_name` replica `i` gives its PostgreSQL connections.
    pub fn application_name(&self, i: usize) -> String {
        format!("offsite-replica-{}", i + 1)
    }

    /// The PostgreSQL connections each replica holds now, idle or busy (replica 1
    /// first), counted in `pg_stat_activity` by their `application_name`.
    pub fn postgres_connections(&self) -> Result<Vec<usize>> {
        let rows = self.postgres.query(
            "SELECT application_name, count(*) FROM pg_stat_activity \
             WHERE application_name LIKE 'offsite-replica-%' GROUP BY application_name",
        )?;
        let mut counts = vec![0; self.count()];
        for row in rows.lines() {
            let Some((name, count)) = row.split_once('|') else { continue };
            if let Some(i) = (0..counts.len()).find(|&i| self.application_name(i) == name) {
                counts[i] = count.trim().parse().unwrap_or_default();
            }
        }
        Ok(counts)
    }
}

impl Drop for ReplicaSet {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}
