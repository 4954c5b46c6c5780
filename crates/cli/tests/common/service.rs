//! A real `offsite server run` for the end-to-end tests, and the tenants and agents
//! that talk to it through the `offsite` binary.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{offsite, Background, Cli};

/// Passphrase every test agent registers with (16+ characters).
pub const AGENT_PASSPHRASE: &str = "agent passphrase for tests";

pub struct Service {
    pub root: PathBuf,
    pub data_dir: PathBuf,
    pub operator: PathBuf,
    pub url: String,
    pub port: u16,
    extra: Vec<String>,
    env: Vec<(String, String)>,
    process: Option<Background>,
    /// A service started in this test's process instead (see [`Service::in_process`]).
    in_process: Option<(tokio::runtime::Runtime, offsite_server::Server)>,
    starts: u32,
}

impl Service {
    /// SQLite and a local storage folder under `root`.
    pub fn start(root: &Path) -> Service {
        Service::start_with(root, &[], &[])
    }

    /// On PostgreSQL and Azurite (both started for this test); keep the returned
    /// servers alive as long as the service.
    pub fn start_on_postgres_and_azurite(
        root: &Path,
    ) -> (Service, offsite_testbed::Postgres, offsite_testbed::Azurite) {
        let postgres = offsite_testbed::Postgres::start().expect("PostgreSQL for tests (run scripts/test)");
        let azurite = offsite_testbed::Azurite::start().expect("Azurite for tests (run scripts/test)");
        azurite.create_container("vaults").expect("a container");
        let mut env: Vec<(String, String)> = azurite.object_store_env();
        env.push(("RUST_LOG".into(), "warn".into()));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let db = postgres.url();
        let service = Service::start_with(root, &["--database-url", &db, "--storage", "az://vaults/offsite"], &env);
        (service, postgres, azurite)
    }

    /// A service this test runs some other way (replicas behind a balancer):
    /// commands go to `url` with the operator credentials at `operator`.
    pub fn attached(root: &Path, data_dir: &Path, url: &str) -> Service {
        Service {
            root: root.to_path_buf(),
            data_dir: data_dir.to_path_buf(),
            operator: data_dir.join("operator.credentials"),
            url: url.to_string(),
            port: url.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_default(),
            extra: Vec::new(),
            env: Vec::new(),
            process: None,
            in_process: None,
            starts: 0,
        }
    }

    /// With extra `server run` flags (`--database-url`, `--storage`) and environment.
    pub fn start_with(root: &Path, extra: &[&str], env: &[(&str, &str)]) -> Service {
        let mut service = Service {
            root: root.to_path_buf(),
            data_dir: root.join("server"),
            operator: root.join("server/operator.credentials"),
            url: String::new(),
            port: 0,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            process: None,
            in_process: None,
            starts: 0,
        };
        service.launch();
        service
    }

    /// In this process, on SQLite and a local storage folder that the service sees
    /// through `wrap` (the tests' fault-injecting store); `kill` stops it, `restart`
    /// is for [`Service::start`]. `clock_offset_seconds` moves its clock.
    pub fn in_process(root: &Path, wrap: Option<offsite_server::StorageWrapper>, clock_offset_seconds: i64) -> Service {
        let data_dir = root.join("server");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let mut config = offsite_server::ServerConfig::new(data_dir.clone());
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.wrap_storage = wrap;
        config.clock_offset_seconds = clock_offset_seconds;
        let server = rt.block_on(offsite_server::Server::start(config)).expect("the service starts");
        let url = server.url.clone();
        let port = url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port in the URL");
        Service {
            root: root.to_path_buf(),
            operator: server.operator_credentials.clone(),
            data_dir,
            url,
            port,
            extra: Vec::new(),
            env: Vec::new(),
            process: None,
            in_process: Some((rt, server)),
            starts: 1,
        }
    }

    fn launch(&mut self) {
        let listen = format!("127.0.0.1:{}", self.port);
        let mut args: Vec<String> =
            vec!["server".into(), "run".into(), "--data-dir".into(), self.data_dir.display().to_string()];
        args.extend(["--listen".into(), listen]);
        args.extend(self.extra.iter().cloned());
        let mut cli = offsite(&args);
        for (k, v) in &self.env {
            cli = cli.env(k, v);
        }
        self.starts += 1;
        let log = self.root.join(format!("server-{}.log", self.starts));
        let process = cli.spawn(&log);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = process.output();
            if let Some(line) = text.lines().find(|l| l.trim_start().starts_with("URL:")) {
                self.url = line.split_whitespace().last().unwrap_or_default().to_string();
                self.port = self.url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port in the URL");
                break;
            }
            assert!(Instant::now() < deadline, "the server did not start in 60 s:\n{text}");
            std::thread::sleep(Duration::from_millis(100));
        }
        self.process = Some(process);
    }

    /// Kills the service (SIGKILL), as a crash or a pulled plug would.
    pub fn kill(&mut self) {
        if let Some(process) = self.process.take() {
            process.kill_9();
        }
        if let Some((rt, server)) = self.in_process.take() {
            server.shutdown();
            rt.shutdown_background();
        }
    }

    /// Starts it again on the same port, data folder and certificate.
    pub fn restart(&mut self) {
        assert!(self.in_process.is_none(), "an in-process service cannot be restarted; start it again");
        self.kill();
        self.launch();
    }

    /// The service process's peak resident memory so far (VmHWM), in bytes.
    pub fn peak_memory_bytes(&self) -> Option<u64> {
        peak_memory_of(self.process.as_ref()?.id())
    }

    pub fn log(&self) -> String {
        self.process.as_ref().map(|p| p.output()).unwrap_or_default()
    }

    /// `offsite admin --operator-credentials … ARGS`
    pub fn admin<I, S>(&self, args: I) -> Cli
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut all: Vec<std::ffi::OsString> =
            vec!["admin".into(), "--operator-credentials".into(), self.operator.clone().into()];
        all.extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        offsite(all)
    }

    /// A new subscription with its publish settings in `root`.
    /// The usual customer of these tests: subscription `contoso` with vault `main`,
    /// and agent `fs01` registered to it protecting `root/source`, which `fill`
    /// writes first (the folder exists when it is called).
    pub fn customer(&self, root: &Path, fill: impl FnOnce(&Path)) -> Customer {
        let tenant = self.subscription("contoso");
        let vault_id = tenant.create_vault("main");
        let source = root.join("source");
        std::fs::create_dir_all(&source).unwrap();
        fill(&source);
        let agent = Agent::registered(root, &tenant, "main", "fs01", &[&source]);
        Customer { tenant, vault_id, agent, source }
    }

    pub fn subscription(&self, name: &str) -> Tenant {
        let publish = self.root.join(format!("{name}.publishsettings"));
        let run = self.admin(["subscription", "create", name, "-o", publish.to_str().unwrap(), "--json"]).run().ok();
        let id = run.json()["subscription"]["id"].as_str().expect("subscription id").to_string();
        Tenant { root: self.root.clone(), publish, id }
    }
}

/// [`Service::customer`]: a subscription, its vault and an agent protecting a tree.
pub struct Customer {
    pub tenant: Tenant,
    pub vault_id: String,
    pub agent: Agent,
    pub source: PathBuf,
}

/// A subscription, acting through its publish-settings file.
pub struct Tenant {
    pub root: PathBuf,
    pub publish: PathBuf,
    pub id: String,
}

impl Tenant {
    /// `offsite admin --publish-settings … ARGS`
    pub fn admin<I, S>(&self, args: I) -> Cli
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut all: Vec<std::ffi::OsString> =
            vec!["admin".into(), "--publish-settings".into(), self.publish.clone().into()];
        all.extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        offsite(all)
    }

    pub fn create_vault(&self, name: &str) -> String {
        let run = self.admin(["vault", "create", name, "--json"]).run().ok();
        run.json()["id"].as_str().expect("vault id").to_string()
    }

    /// Fresh vault credentials for `vault`, written into the tenant's folder.
    pub fn vault_credentials(&self, vault: &str, file_name: &str) -> PathBuf {
        let path = self.root.join(file_name);
        self.admin(["vault", "credentials", vault, "-o", path.to_str().unwrap()]).run().ok();
        path
    }
}

/// An agent with its own home folder.
pub struct Agent {
    pub home: PathBuf,
    pub passphrase_file: PathBuf,
}

impl Agent {
    pub fn new(root: &Path, name: &str) -> Agent {
        let home = root.join(format!("agent-{name}"));
        std::fs::create_dir_all(&home).unwrap();
        let passphrase_file = root.join(format!("{name}.passphrase"));
        std::fs::write(&passphrase_file, AGENT_PASSPHRASE).unwrap();
        Agent { home, passphrase_file }
    }

    /// `offsite agent --agent-home … ARGS`
    pub fn cmd<I, S>(&self, args: I) -> Cli
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut all: Vec<std::ffi::OsString> = vec!["agent".into(), "--agent-home".into(), self.home.clone().into()];
        all.extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        offsite(all).env_remove("OFFSITE_PASSWORD")
    }

    /// Registers with `credentials` under `name`.
    pub fn register(&self, credentials: &Path, name: &str) -> super::Run {
        self.register_with(credentials, name, &[])
    }

    /// `agent register` with more flags (`--pack-size 1`, say).
    pub fn register_with(&self, credentials: &Path, name: &str, more: &[&str]) -> super::Run {
        let mut args = vec![
            "register",
            "--vault-credentials",
            credentials.to_str().unwrap(),
            "--passphrase-file",
            self.passphrase_file.to_str().unwrap(),
            "--name",
            name,
        ];
        args.extend_from_slice(more);
        self.cmd(args).run()
    }

    /// A new agent registered to `vault` of `tenant`, protecting `paths`.
    pub fn registered(root: &Path, tenant: &Tenant, vault: &str, name: &str, paths: &[&Path]) -> Agent {
        Agent::registered_with(root, tenant, vault, name, paths, &[])
    }

    /// [`Agent::registered`] with more flags for `agent register`.
    pub fn registered_with(
        root: &Path,
        tenant: &Tenant,
        vault: &str,
        name: &str,
        paths: &[&Path],
        more: &[&str],
    ) -> Agent {
        let agent = Agent::new(root, name);
        let credentials = tenant.vault_credentials(vault, &format!("{name}.vaultcredentials"));
        agent.register_with(&credentials, name, more).ok();
        for path in paths {
            agent.cmd(["protect", "add", path.to_str().unwrap()]).run().ok();
        }
        agent
    }

    /// `agent offline configure` for import job `job` of `subscription`, staging
    /// into `staging`, with the tests' storage account and container.
    pub fn configure_offline(&self, staging: &Path, job: &str, subscription: &str) -> super::Run {
        self.cmd([
            "offline",
            "configure",
            "--staging",
            staging.to_str().unwrap(),
            "--import-job",
            job,
            "--subscription",
            subscription,
            "--storage-account",
            "contosostore",
            "--container",
            "seeds",
        ])
        .run()
    }

    /// Backs up now and returns the `--json` report.
    pub fn backup(&self) -> serde_json::Value {
        self.cmd(["backup", "--now", "--json"]).run().ok().json()
    }

    /// Restores the latest recovery point into `target` and checks that `source`
    /// came back byte for byte (with its metadata) at its place under `target`.
    pub fn restore_equals(&self, target: &Path, source: &Path) {
        self.cmd(["restore", "--target", target.to_str().unwrap()]).run().ok();
        super::assert_same_tree(source, &super::restored(target, source));
    }
}

/// Process `pid`'s peak resident memory so far (VmHWM), in bytes.
pub fn peak_memory_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
