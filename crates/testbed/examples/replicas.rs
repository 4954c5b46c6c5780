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

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use offsite_testbed::ReplicaSet;

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
    let set =
        ReplicaSet::start(&args.offsite, &args.work, args.count, args.proxy_protocol).map_err(|e| e.to_string())?;
    for i in 0..args.count {
        let pid = set.pid(i).unwrap_or_default();
        println!("replica {}: 127.0.0.1:{}, pid {pid}, log {}", i + 1, set.port(i), set.log(i).display());
    }
    let credentials = set.data_dir(0).join("operator.credentials");
    println!("balancer (HAProxy): {}", set.balancer().url());
    println!("operator credentials: {}", credentials.display());
    println!("try: offsite admin --operator-credentials {} subscription list", credentials.display());
    println!("running; Ctrl-C stops everything");
    while !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(set);
    println!("stopped");
    Ok(())
}
