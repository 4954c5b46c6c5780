//! The testbed's [`WanLink`] as a program, for scripts (`scripts/bench-wan`):
//!
//! ```sh
//! cargo run --release -p offsite-testbed --example wan-link -- \
//!     --upstream 127.0.0.1:8443 --delay-ms 20 --up-mbit 20 --down-mbit 100 \
//!     [--listen 127.0.0.1:0] [--port-file F] [--stats F] [--exit-on-stdin-close]
//! ```
//!
//! Listens on `--listen` (a free loopback port by default) and forwards every
//! connection to `--upstream` with `--delay-ms` each way and the given rate per
//! direction (Mbit/s, 10^6 bits; 0 or left out: unlimited). Prints
//! `listening on ADDR` and writes the port to `--port-file` once it accepts. Every
//! second and at exit (SIGTERM, SIGINT, or the end of stdin with
//! `--exit-on-stdin-close`) it rewrites `--stats`, a TSV of the bytes that left the
//! link in each 1 s window since it started:
//!
//! ```text
//! # wan-link upstream 127.0.0.1:8443 delay_ms 20 up_mbit 20 down_mbit 100 started_unix 1700000000.123
//! second<TAB>up_bytes<TAB>down_bytes
//! 0<TAB>1234<TAB>5678
//! ```
//!
//! While running, only windows that have ended are written; at exit, all of them.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use offsite_testbed::{OneWay, WanLink, WanLinkPlan};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

struct Args {
    listen: SocketAddr,
    upstream: SocketAddr,
    delay_ms: f64,
    up_mbit: f64,
    down_mbit: f64,
    window_kib: usize,
    port_file: Option<PathBuf>,
    stats: Option<PathBuf>,
    exit_on_stdin_close: bool,
}

const USAGE: &str = "usage: wan-link --upstream ADDR [--listen ADDR] [--delay-ms MS] [--up-mbit M] [--down-mbit M] \
[--window-kib K] [--port-file F] [--stats F] [--exit-on-stdin-close]";

fn parse() -> Result<Args, String> {
    let mut args = Args {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        upstream: SocketAddr::from(([127, 0, 0, 1], 0)),
        delay_ms: 0.0,
        up_mbit: 0.0,
        down_mbit: 0.0,
        window_kib: 4096,
        port_file: None,
        stats: None,
        exit_on_stdin_close: false,
    };
    let mut upstream = false;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--exit-on-stdin-close" {
            args.exit_on_stdin_close = true;
            continue;
        }
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.to_string());
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let bad = |what: &str| format!("{flag} {value}: not {what}");
        match flag.as_str() {
            "--listen" => args.listen = value.parse().map_err(|_| bad("an address"))?,
            "--upstream" => {
                args.upstream = value.parse().map_err(|_| bad("an address"))?;
                upstream = true;
            }
            "--delay-ms" => args.delay_ms = value.parse().map_err(|_| bad("a number"))?,
            "--up-mbit" => args.up_mbit = value.parse().map_err(|_| bad("a number"))?,
            "--down-mbit" => args.down_mbit = value.parse().map_err(|_| bad("a number"))?,
            "--window-kib" => args.window_kib = value.parse().map_err(|_| bad("a number"))?,
            "--port-file" => args.port_file = Some(value.into()),
            "--stats" => args.stats = Some(value.into()),
            _ => return Err(format!("unknown argument {flag}\n{USAGE}")),
        }
    }
    if !upstream {
        return Err(format!("--upstream is required\n{USAGE}"));
    }
    if [args.delay_ms, args.up_mbit, args.down_mbit].iter().any(|v| !v.is_finite() || *v < 0.0) {
        return Err("delays and rates must be numbers >= 0".into());
    }
    Ok(args)
}

fn one_way(delay_ms: f64, mbit: f64) -> OneWay {
    OneWay {
        delay: Duration::from_secs_f64(delay_ms / 1000.0),
        bytes_per_second: (mbit > 0.0).then(|| (mbit * 1_000_000.0 / 8.0).round() as u64),
    }
}

/// Bytes that left each direction in every second since the link started.
struct LinkSeries {
    up: Vec<u64>,
    down: Vec<u64>,
}

fn series(link: &WanLink) -> LinkSeries {
    let second = Duration::from_secs(1);
    LinkSeries { up: link.up_throughput().consecutive(second), down: link.down_throughput().consecutive(second) }
}

/// Writes the series to `path` through a temporary file, so a reader never sees half of it.
fn write_stats(path: &PathBuf, header: &str, series: &LinkSeries, windows: usize) -> std::io::Result<()> {
    let mut text = format!("{header}\nsecond\tup_bytes\tdown_bytes\n");
    for i in 0..windows {
        let up = series.up.get(i).copied().unwrap_or(0);
        let down = series.down.get(i).copied().unwrap_or(0);
        text.push_str(&format!("{i}\t{up}\t{down}\n"));
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("wan-link: {message}");
            return ExitCode::from(2);
        }
    };
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
    let plan = WanLinkPlan {
        up: one_way(args.delay_ms, args.up_mbit),
        down: one_way(args.delay_ms, args.down_mbit),
        window_bytes: args.window_kib.max(16) * 1024,
    };
    let started_unix = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
    let started = Instant::now();
    let link = match WanLink::start_on(args.listen, args.upstream, plan) {
        Ok(link) => link,
        Err(err) => {
            eprintln!("wan-link: cannot listen on {}: {err}", args.listen);
            return ExitCode::from(1);
        }
    };
    let header = format!(
        "# wan-link upstream {} delay_ms {} up_mbit {} down_mbit {} started_unix {started_unix:.3}",
        args.upstream, args.delay_ms, args.up_mbit, args.down_mbit
    );
    if let Some(path) = &args.port_file {
        let tmp = path.with_extension("tmp");
        if let Err(err) =
            std::fs::write(&tmp, format!("{}\n", link.addr().port())).and_then(|()| std::fs::rename(&tmp, path))
        {
            eprintln!("wan-link: cannot write {}: {err}", path.display());
            return ExitCode::from(1);
        }
    }
    println!("listening on {} -> {}", link.addr(), args.upstream);
    let _ = std::io::stdout().flush();
    if args.exit_on_stdin_close {
        std::thread::spawn(|| {
            let mut sink = [0u8; 4096];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            STOP.store(true, Ordering::SeqCst);
        });
    }

    let mut reported = 0usize;
    while !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
        let ended = (started.elapsed().as_secs_f64() / 1.0) as usize;
        if ended > reported {
            let series = series(&link);
            for i in reported..ended {
                println!(
                    "second {i}: up {} B, down {} B",
                    series.up.get(i).copied().unwrap_or(0),
                    series.down.get(i).copied().unwrap_or(0)
                );
            }
            let _ = std::io::stdout().flush();
            reported = ended;
            if let Some(path) = &args.stats {
                if let Err(err) = write_stats(path, &header, &series, ended) {
                    eprintln!("wan-link: cannot write {}: {err}", path.display());
                }
            }
        }
    }
    let series = series(&link);
    let windows = series.up.len().max(series.down.len()).max(reported);
    let counts = link.counts();
    println!(
        "stopped: {} connections, {} B up, {} B down, {windows} windows",
        counts.connections, counts.bytes_up, counts.bytes_down
    );
    if let Some(path) = &args.stats {
        if let Err(err) = write_stats(path, &header, &series, windows) {
            eprintln!("wan-link: cannot write {}: {err}", path.display());
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}
