//! The replica set of `crates/cli/tests/replicas.rs` as a program, for a person
//! to try (`scripts/replicas`): PostgreSQL and Azurite from the testbed, then
//! `--count` (default 3) `offsite server run` replicas on them sharing one
//! certificate and one operator credentials file, behind HAProxy (TLS passed
//! through, round robin, `/healthz` checks):
//!
//! ```sh
//! cargo run -p offsite-testbed --example replicas -- --offsite target/debug/offsite \
//!     --work bench-work/replicas [--count 3] [--proxy-protocol]
//! ```
//!
//! It prints the balancer's URL, the operator credentials and each replica's log
//! and PID (kill one with `kill -9 PID` and watch the others carry on), then runs
//! until SIGINT or SIGTERM and stops everything.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use offsite_testbed::{free_port, Azurite, Haproxy, Postgres};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

struct Args {
    offsite: PathBuf,
    work: PathBuf,
    count: usize,
    proxy_protocol: bool,
}

fn parse() -> Result<Args, String> {
    let mut args = Args { offsite: PathBuf::new(), work: PathBuf::new(), count: 3, proxy_protocol: false };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match flag.as_str() {
            "--offsite" => args.offsite = PathBuf::from(value("--offsite")?),
            "--work" => args.work = PathBuf::from(value("--work")?),
            "--count" => {
                args.count =
                    value("--count")?.parse().ok().filter(|n| (1..=9).contains(n)).ok_or("--count is 1 to 9")?
            }
            "--proxy-protocol" => args.proxy_protocol = true,
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    if args.offsite.as_os_str().is_empty() || args.work.as_os_str().is_empty() {
        return Err("give --offsite PATH (the binary) and --work FOLDER".into());
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(err) => {
            eprintln!("replicas: {err}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("replicas: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    std::fs::create_dir_all(&args.work).map_err(|e| format!("{}: {e}", args.work.display()))?;
    let postgres = Postgres::start().map_err(|e| e.to_string())?;
    let azurite = Azurite::start().map_err(|e| e.to_string())?;
    azurite.create_container("vaults").map_err(|e| e.to_string())?;
    let ports: Vec<u16> = (0..args.count).map(|_| free_port()).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
    let balancer = Haproxy::start_with(&ports, args.proxy_protocol).map_err(|e| e.to_string())?;
    let mut replicas: Vec<Child> = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let data_dir = args.work.join(format!("replica-{}", i + 1));
        std::fs::create_dir_all(&data_dir).map_err(|e| e.to_string())?;
        if i > 0 {
            // The first replica's certificate and operator credentials, as
            // docs/OPERATIONS.md prescribes.
            let first = args.work.join("replica-1");
            std::fs::create_dir_all(data_dir.join("tls")).map_err(|e| e.to_string())?;
            for file in ["tls/service.crt", "tls/service.key", "operator.credentials"] {
                std::fs::copy(first.join(file), data_dir.join(file)).map_err(|e| format!("{file}: {e}"))?;
            }
        }
        let log = data_dir.join("server.log");
        let out = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(&args.offsite);
        cmd.args(["server", "run", "--data-dir"])
            .arg(&data_dir)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--public-url", &balancer.url()])
            .args(["--database-url", &postgres.url(), "--storage", "az://vaults/offsite"])
            .envs(azurite.object_store_env())
            .stdin(Stdio::null())
            .stdout(out.try_clone().map_err(|e| e.to_string())?)
            .stderr(out);
        if args.proxy_protocol {
            cmd.arg("--proxy-protocol");
        }
        // The replicas end with this program, however it ends.
        // SAFETY: prctl is async-signal-safe; nothing else runs in the child.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| format!("{}: {e}", args.offsite.display()))?;
        println!("replica {}: 127.0.0.1:{port}, pid {}, log {}", i + 1, child.id(), log.display());
        replicas.push(child);
        wait_for_port(*port, &log)?;
    }
    println!("balancer (HAProxy): {}", balancer.url());
    println!("operator credentials: {}", args.work.join("replica-1/operator.credentials").display());
    println!(
        "try: offsite admin --operator-credentials {} subscription list",
        args.work.join("replica-1/operator.credentials").display()
    );
    println!("running; Ctrl-C stops everything");
    while !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(200));
    }
    for mut child in replicas {
        let _ = child.kill();
        let _ = child.wait();
    }
    println!("stopped");
    Ok(())
}

/// Until the replica listens and has said so (its `URL:` line comes after its
/// certificate and operator credentials are written).
fn wait_for_port(port: u16, log: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(90);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let said = || std::fs::read_to_string(log).unwrap_or_default().lines().any(|l| l.trim_start().starts_with("URL:"));
    while TcpStream::connect_timeout(&addr, Duration::from_millis(250)).is_err() || !said() {
        if Instant::now() > deadline {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            return Err(format!("the replica on port {port} did not start in 90 s:\n{text}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
