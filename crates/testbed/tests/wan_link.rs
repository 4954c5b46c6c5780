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
fn the_throughput_series_counts_every_byte_and_never_beats_the_link() {
    // 8 Mbit/s up = 1 MB/s.
    let plan = WanLinkPlan { up: OneWay::new(5, 8), down: OneWay::unlimited(), window_bytes: 256 * 1024 };
    let link = WanLink::start(echo_server(), plan).unwrap();
    let data = bytes(1_500_000, 3);
    assert_eq!(round_trip(&link, &data), data);
    let up = link.up_throughput();
    assert_eq!(up.total(), 1_500_000);
    assert_eq!(link.down_throughput().total(), 1_500_000);

    // The link spaces chunks by their time on the wire: no second carries more
    // than a second at the rate, and the chunk that was leaving as it began.
    let second = Duration::from_secs(1);
    let busiest = up.busiest(second);
    assert!(busiest <= 1_000_000 + 16 * 1024 + 10_000, "{busiest} bytes in a second at 1 MB/s");
    // 1.5 s of sending at least: the windows of a second within it are half a second's worth of intervals.
    assert!(up.windows(second).len() >= 40, "{} windows", up.windows(second).len());
    assert_eq!(up.windows(Duration::from_secs(60)), [1_500_000], "a window longer than the transfer holds it all");

    // Cutting the series in two loses nothing.
    let middle = up.started + Duration::from_millis(700);
    let far = up.started + Duration::from_secs(3600);
    assert_eq!(up.between(up.started, middle).total() + up.between(middle, far).total(), 1_500_000);
    assert!(up.between(up.started, middle).total() < 1_500_000);
}

#[test]
fn consecutive_seconds_put_bytes_sent_apart_in_different_seconds() {
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

    let up = link.up_throughput().consecutive(Duration::from_secs(1));
    assert_eq!(up.iter().sum::<u64>(), 150_000, "up: {up:?}");
    let used: Vec<usize> = (0..up.len()).filter(|&i| up[i] > 0).collect();
    assert!(used.len() >= 2 && used[used.len() - 1] > used[0], "all in one second: {up:?}");
    let down = link.down_throughput().consecutive(Duration::from_secs(1));
    assert_eq!(down.iter().sum::<u64>(), 150_000, "down: {down:?}");
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
