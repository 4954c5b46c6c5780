//! The user-space WAN link: bytes arrive intact and in order, a request and its
//! answer pay the round trip, and a direction's rate is shared by every connection
//! through it. Only lower bounds of time are asserted: a busy machine can make the
//! link slower, never faster.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use offsite_testbed::{OneWay, WanLink, WanLinkPlan};

/// An upstream that answers every connection with what it read, once the client
/// stopped sending.
fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            thread::spawn(move || {
                let mut all = Vec::new();
                let _ = stream.read_to_end(&mut all);
                let _ = stream.write_all(&all);
                let _ = stream.shutdown(Shutdown::Write);
            });
        }
    });
    addr
}

/// Sends `data` through the link and reads the echo back.
fn round_trip(link: &WanLink, data: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(link.addr()).unwrap();
    stream.write_all(data).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    stream.read_to_end(&mut back).unwrap();
    back
}

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

#[test]
fn a_small_request_pays_the_round_trip_and_arrives_intact() {
    let plan = WanLinkPlan { up: OneWay::new(50, 100), down: OneWay::new(50, 100), window_bytes: 1 << 20 };
    let link = WanLink::start(echo_server(), plan).unwrap();
    let started = Instant::now();
    let back = round_trip(&link, b"ping");
    assert_eq!(back, b"ping");
    assert!(started.elapsed() >= Duration::from_millis(100), "took {:?}", started.elapsed());
    let counts = link.counts();
    assert_eq!((counts.connections, counts.bytes_up, counts.bytes_down), (1, 4, 4));
}

#[test]
fn the_uplink_rate_holds_and_is_shared_by_connections() {
    // 8 Mbit/s up = 1 MB/s; downstream unlimited.
    let plan = WanLinkPlan { up: OneWay::new(5, 8), down: OneWay::unlimited(), window_bytes: 256 * 1024 };
    let link = WanLink::start(echo_server(), plan).unwrap();
    let started = Instant::now();
    let data = bytes(1_000_000, 7);
    assert_eq!(round_trip(&link, &data), data);
    assert!(started.elapsed() >= Duration::from_millis(950), "1 MB up took {:?}", started.elapsed());

    // Two connections at once share the one uplink: together they take as long.
    let started = Instant::now();
    thread::scope(|scope| {
        for seed in [1u8, 2] {
            let link = &link;
            scope.spawn(move || {
                let data = bytes(500_000, seed);
                assert_eq!(round_trip(link, &data), data);
            });
        }
    });
    assert!(started.elapsed() >= Duration::from_millis(950), "2 × 0.5 MB up took {:?}", started.elapsed());
    assert_eq!(link.counts().bytes_up, 2_000_000);
}

#[test]
fn the_series_counts_each_second_what_left_and_never_more_than_the_rate() {
    // 8 Mbit/s up = 1 MB/s, sent as fast as the client can: the link's buffers take a
    // window's worth at once, but the series counts bytes as they leave at the rate.
    let plan = WanLinkPlan { up: OneWay::new(5, 8), down: OneWay::unlimited(), window_bytes: 256 * 1024 };
    let link = WanLink::start(echo_server(), plan).unwrap();
    let data = bytes(2_500_000, 3);
    assert_eq!(round_trip(&link, &data), data);

    let series = link.series();
    assert_eq!(series.window, Duration::from_secs(1));
    assert_eq!(series.up.iter().sum::<u64>(), 2_500_000, "up: {:?}", series.up);
    assert_eq!(series.down.iter().sum::<u64>(), 2_500_000, "down: {:?}", series.down);
    // One 16 KiB chunk may finish leaving in the window after the one it began in.
    let most = 1_000_000 + 16 * 1024;
    assert!(series.up.iter().all(|&w| w <= most), "a second above 1 MB: {:?}", series.up);
    assert!(series.up.iter().filter(|&&w| w > 0).count() >= 3, "2.5 MB at 1 MB/s in under 3 s: {:?}", series.up);
}

#[test]
fn the_series_puts_bytes_sent_apart_in_different_seconds() {
    let plan = WanLinkPlan { up: OneWay::unlimited(), down: OneWay::unlimited(), window_bytes: 1 << 20 };
    let link = WanLink::start(echo_server(), plan).unwrap();
    let mut stream = TcpStream::connect(link.addr()).unwrap();
    stream.write_all(&bytes(100_000, 1)).unwrap();
    // Two instants 1.5 s apart can never share a 1 s window.
    thread::sleep(Duration::from_millis(1500));
    stream.write_all(&bytes(50_000, 2)).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    stream.read_to_end(&mut back).unwrap();
    assert_eq!(back.len(), 150_000);

    let series = link.series();
    assert_eq!(series.up.iter().sum::<u64>(), 150_000, "up: {:?}", series.up);
    let used: Vec<usize> = (0..series.up.len()).filter(|&i| series.up[i] > 0).collect();
    assert!(used.len() >= 2 && used[used.len() - 1] > used[0], "all in one second: {:?}", series.up);
    assert_eq!(series.down.iter().sum::<u64>(), 150_000, "down: {:?}", series.down);
}

#[test]
fn a_link_listens_where_it_is_told_and_reaches_an_upstream_started_later() {
    // A free port for the upstream, released before the link starts.
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let wanted = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let link = WanLink::start_on(wanted, upstream, WanLinkPlan::symmetric_delay(1, 100, 100)).unwrap();
    assert_eq!(link.addr(), wanted);
    let listener = TcpListener::bind(upstream).unwrap();
    thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut all = Vec::new();
        let _ = stream.read_to_end(&mut all);
        let _ = stream.write_all(&all);
    });
    assert_eq!(round_trip(&link, b"later"), b"later");
}
