//! A bandwidth limit holds on the wire, not only on average: two uploaders save
//! files through the agent's `VaultBackend` (real HTTP, the throttle shared)
//! through the testbed's user-space link to a small stand-in for the service,
//! and the link's time series shows what each second carried. Only upper bounds
//! of rate (lower bounds of time) are asserted: a busy machine can make the
//! upload slower, never faster.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use offsite_agent::throttle::{BandwidthPolicy, Rate, Throttle};
use offsite_agent::vault_backend::VaultBackend;
use offsite_api::files::ServiceEndpoint;
use offsite_api::Client;
use offsite_engine::backend::{Backend, FileKind};
use offsite_testbed::{OneWay, WanLink, WanLinkPlan};

/// The bodies of the PUT requests received, by path.
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// An HTTP/1.1 server that stores every PUT's body and answers 201, on as many
/// keep-alive connections as clients open.
fn stand_in_service() -> (SocketAddr, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Received::default();
    let storing = received.clone();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let storing = storing.clone();
            thread::spawn(move || serve(stream, &storing));
        }
    });
    (addr, received)
}

fn serve(stream: TcpStream, received: &Received) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = None;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse::<usize>().ok();
                }
            }
        }
        let Some(length) = length else {
            let _ = writer.write_all(b"HTTP/1.1 411 Length Required\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            return;
        };
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).unwrap();
        let path = request_line.split(' ').nth(1).unwrap_or_default().to_string();
        received.lock().unwrap().push((path, body));
        writer.write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n").unwrap();
    }
}

fn data(len: usize, seed: u8) -> Bytes {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 11) as u8).collect::<Vec<u8>>().into()
}

const KIB: usize = 1024;

#[test]
fn two_uploaders_keep_every_second_within_a_quarter_of_the_limit_on_the_wire() {
    // 512 KiB/s on a link eight times as fast (4 MiB/s up, 20 ms round trip):
    // without pacing a 1 MiB pack would cross in a quarter of a second, at
    // eight times the limit, however long it had waited for its turn.
    let limit: Rate = "512KiB/s".parse().unwrap();
    let (service, received) = stand_in_service();
    let plan = WanLinkPlan {
        up: OneWay { delay: Duration::from_millis(10), bytes_per_second: Some(4 << 20) },
        down: OneWay { delay: Duration::from_millis(10), bytes_per_second: None },
        window_bytes: 1 << 20,
    };
    let link = WanLink::start(service, plan).unwrap();
    let endpoint = ServiceEndpoint { url: format!("http://{}", link.addr()), fingerprint: String::new() };
    let client = Client::new(&endpoint, "machine-credential").unwrap();
    let policy = BandwidthPolicy { work_limit: Some(limit), other_limit: Some(limit), ..Default::default() };
    let throttle = Arc::new(Throttle::new(policy));
    let backend = VaultBackend::new(client, "m1", "vault", throttle, Duration::from_secs(30));

    // The engine's two uploaders: a pack each, then a small file each.
    let files = [
        [(FileKind::Pack, "aa01", data(1024 * KIB, 1)), (FileKind::Index, "ix01", data(128 * KIB, 2))],
        [(FileKind::Pack, "bb02", data(1024 * KIB, 3)), (FileKind::Snapshot, "sn02", data(64 * KIB, 4))],
    ];
    let total: usize = files.iter().flatten().map(|(_, _, bytes)| bytes.len()).sum();
    let started = Instant::now();
    thread::scope(|scope| {
        for uploader in &files {
            let backend = &backend;
            scope.spawn(move || {
                for (kind, name, bytes) in uploader {
                    backend.save(*kind, name, bytes.clone()).unwrap();
                }
            });
        }
    });
    let elapsed = started.elapsed();

    // Every file arrived whole, and each was counted once.
    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), 4);
    for (kind, name, bytes) in files.iter().flatten() {
        let path = format!("/api/v1/machines/m1/repository/{}/{name}", kind.folder());
        let body = received.iter().find(|(p, _)| *p == path).map(|(_, body)| body);
        assert!(body == Some(&bytes.to_vec()), "{path} arrived altered or not at all");
    }
    assert_eq!((backend.bytes_sent(), backend.bytes_stored()), (total as u64, total as u64));

    // The limit held on the link: no second carried more than a quarter over it
    // (the request lines and headers, a few hundred bytes each, included).
    let rate = limit.bytes_per_second() as f64;
    let up = link.up_throughput();
    assert!(up.total() >= total as u64);
    let busiest = up.busiest(Duration::from_secs(1));
    assert!(busiest as f64 <= 1.25 * rate, "{busiest} bytes crossed in one second at a limit of {limit}");
    // And the whole took at least the limit's time, less the 50 ms burst.
    let least = Duration::from_secs_f64(total as f64 / rate - 0.05);
    assert!(elapsed >= least - Duration::from_millis(20), "{total} bytes at {limit} took only {elapsed:?}");
    eprintln!(
        "{total} bytes at {limit}: {elapsed:?}; busiest second {:.3} × the limit, {} one-second windows",
        busiest as f64 / rate,
        up.windows(Duration::from_secs(1)).len()
    );
}
