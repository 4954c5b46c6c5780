//! A wide-area link in user space (`tc netem` is not available on these machines):
//! [`WanLink`] listens on a loopback port and forwards each connection to an
//! upstream address through two one-way links, up (client → upstream) and down,
//! each with a delay and a rate. Like a real uplink, a direction's rate is shared by
//! every connection through it: bytes leave in the order they arrived, one after
//! the other, and then take the delay to arrive. Bytes in flight are pipelined, so
//! a long transfer fills the link while a request/answer pays the round trip: what
//! an agent behind a thin, far link meets. It works below TLS.
//!
//! Each direction of a connection has a reader that stamps every chunk with the
//! time it arrives at the far end and a writer that hands it on at that time; at
//! most [`WanLinkPlan::window_bytes`] wait between them (the link's buffers), so a
//! sender is held back by TCP as on a real link, not buffered without end.
//!
//! Besides totals ([`WanLink::counts`]) the link keeps a time series of what
//! left each direction ([`WanLink::up_throughput`]), in intervals of
//! [`Throughput::RESOLUTION`]: the rate over every one-second window, say, that a
//! bandwidth limit must keep to.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// One direction of the link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OneWay {
    /// How long a byte takes to cross once it has left.
    pub delay: Duration,
    /// Bytes per second that can leave; `None` is unlimited.
    pub bytes_per_second: Option<u64>,
}

impl OneWay {
    /// `delay_ms` each way at `megabits` Mbit/s.
    pub fn new(delay_ms: u64, megabits: u64) -> OneWay {
        OneWay { delay: Duration::from_millis(delay_ms), bytes_per_second: Some(megabits * 1_000_000 / 8) }
    }

    /// No delay, no limit: loopback.
    pub fn unlimited() -> OneWay {
        OneWay { delay: Duration::ZERO, bytes_per_second: None }
    }

    /// How long `bytes` take to leave at this rate.
    fn serialization(&self, bytes: usize) -> Duration {
        match self.bytes_per_second {
            Some(rate) if rate > 0 => Duration::from_secs_f64(bytes as f64 / rate as f64),
            _ => Duration::ZERO,
        }
    }
}

/// Both directions of the link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WanLinkPlan {
    /// Client to upstream (the site's uplink).
    pub up: OneWay,
    /// Upstream to client.
    pub down: OneWay,
    /// Bytes one direction of a connection holds in flight at most.
    pub window_bytes: usize,
}

impl WanLinkPlan {
    /// A round trip of `2 × delay_ms`, `up_mbit` up and `down_mbit` down, e.g.
    /// `symmetric_delay(20, 20, 100)`: 40 ms round trip, 20 Mbit/s up, 100 down.
    pub fn symmetric_delay(delay_ms: u64, up_mbit: u64, down_mbit: u64) -> WanLinkPlan {
        WanLinkPlan {
            up: OneWay::new(delay_ms, up_mbit),
            down: OneWay::new(delay_ms, down_mbit),
            window_bytes: 4 << 20,
        }
    }
}

/// What crossed the link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkCounts {
    pub connections: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

/// When the link of one direction is free to send again: shared by every
/// connection through it.
type LinkClock = Arc<Mutex<Instant>>;

/// What left one direction of a [`WanLink`]: bytes per interval of
/// [`Throughput::RESOLUTION`], the first interval starting at `started`. A chunk
/// counts in the interval in which its last byte left the link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throughput {
    pub started: Instant,
    pub bytes: Vec<u64>,
}

impl Throughput {
    /// The length of an interval.
    pub const RESOLUTION: Duration = Duration::from_millis(10);

    fn new(started: Instant) -> Throughput {
        Throughput { started, bytes: Vec::new() }
    }

    fn add(&mut self, at: Instant, bytes: u64) {
        let index = (at.saturating_duration_since(self.started).as_nanos() / Self::RESOLUTION.as_nanos()) as usize;
        if self.bytes.len() <= index {
            self.bytes.resize(index + 1, 0);
        }
        self.bytes[index] += bytes;
    }

    pub fn total(&self) -> u64 {
        self.bytes.iter().sum()
    }

    /// What left from `from` to `to`, in whole intervals (those that start in the span).
    pub fn between(&self, from: Instant, to: Instant) -> Throughput {
        let index = |at: Instant| {
            let index = at.saturating_duration_since(self.started).as_nanos().div_ceil(Self::RESOLUTION.as_nanos());
            (index as usize).min(self.bytes.len())
        };
        let (first, last) = (index(from), index(to));
        Throughput {
            started: self.started + Self::RESOLUTION * first as u32,
            bytes: self.bytes[first..last.max(first)].to_vec(),
        }
    }

    /// Bytes in each window of `window` (a whole number of intervals, at least
    /// one), sliding by one interval, over the span from the first interval that
    /// carried bytes to the last: every window lies within that span, unless
    /// the span is shorter than `window`, when the one window is the span.
    /// Empty if nothing crossed.
    pub fn windows(&self, window: Duration) -> Vec<u64> {
        let Some(first) = self.bytes.iter().position(|&b| b > 0) else { return Vec::new() };
        let last = self.bytes.iter().rposition(|&b| b > 0).unwrap_or(first);
        let busy = &self.bytes[first..=last];
        let width = ((window.as_nanos() / Self::RESOLUTION.as_nanos()) as usize).max(1);
        if busy.len() <= width {
            return vec![busy.iter().sum()];
        }
        let mut sum: u64 = busy[..width].iter().sum();
        let mut sums = vec![sum];
        for i in width..busy.len() {
            sum = sum + busy[i] - busy[i - width];
            sums.push(sum);
        }
        sums
    }

    /// Bytes in consecutive windows of `window` from the start (the last one
    /// possibly unfinished): what an interface counter read every `window` shows.
    pub fn consecutive(&self, window: Duration) -> Vec<u64> {
        let width = ((window.as_nanos() / Self::RESOLUTION.as_nanos()) as usize).max(1);
        self.bytes.chunks(width).map(|chunk| chunk.iter().sum()).collect()
    }

    /// The most bytes that left in any window of `window` (see [`Throughput::windows`]).
    pub fn busiest(&self, window: Duration) -> u64 {
        self.windows(window).into_iter().max().unwrap_or(0)
    }
}

struct Shared {
    upstream: SocketAddr,
    plan: WanLinkPlan,
    up_free: LinkClock,
    down_free: LinkClock,
    stopped: AtomicBool,
    connections: AtomicU64,
    bytes_up: Arc<AtomicU64>,
    bytes_down: Arc<AtomicU64>,
    series_up: Arc<Mutex<Throughput>>,
    series_down: Arc<Mutex<Throughput>>,
}

/// The running link; dropping it stops accepting (open connections end on their own).
pub struct WanLink {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl WanLink {
    /// Listens on a free loopback port and forwards to `upstream` over `plan`.
    pub fn start(upstream: SocketAddr, plan: WanLinkPlan) -> std::io::Result<WanLink> {
        WanLink::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), upstream, plan)
    }

    /// Listens on `listen` (port 0: a free one) and forwards to `upstream` over
    /// `plan`: for the `wan-link` example, which a script points clients at.
    pub fn start_on(listen: SocketAddr, upstream: SocketAddr, plan: WanLinkPlan) -> std::io::Result<WanLink> {
        let listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        let now = Instant::now();
        let shared = Arc::new(Shared {
            upstream,
            plan,
            up_free: Arc::new(Mutex::new(now)),
            down_free: Arc::new(Mutex::new(now)),
            stopped: AtomicBool::new(false),
            connections: AtomicU64::new(0),
            bytes_up: Arc::new(AtomicU64::new(0)),
            bytes_down: Arc::new(AtomicU64::new(0)),
            series_up: Arc::new(Mutex::new(Throughput::new(now))),
            series_down: Arc::new(Mutex::new(Throughput::new(now))),
        });
        let accepting = shared.clone();
        thread::Builder::new().name("wan-link".into()).spawn(move || {
            for client in listener.incoming() {
                if accepting.stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let connection = accepting.clone();
                let _ = thread::Builder::new().name("wan-link-conn".into()).spawn(move || connection.serve(client));
            }
        })?;
        Ok(WanLink { addr, shared })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn counts(&self) -> LinkCounts {
        let s = &self.shared;
        LinkCounts {
            connections: s.connections.load(Ordering::Relaxed),
            bytes_up: s.bytes_up.load(Ordering::Relaxed),
            bytes_down: s.bytes_down.load(Ordering::Relaxed),
        }
    }

    /// What left the uplink (client → upstream) so far, interval by interval
    /// since the link started.
    pub fn up_throughput(&self) -> Throughput {
        self.shared.series_up.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// What left the downlink (upstream → client) so far.
    pub fn down_throughput(&self) -> Throughput {
        self.shared.series_down.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for WanLink {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        // Wake the accepting thread so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// A chunk on its way, with the time it reaches the far end (`None`: the sender
/// finished).
type InFlight = Option<(Instant, Vec<u8>)>;

impl Shared {
    fn serve(&self, client: TcpStream) {
        let Ok(upstream) = TcpStream::connect(self.upstream) else { return };
        self.connections.fetch_add(1, Ordering::Relaxed);
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        let (Ok(client2), Ok(upstream2)) = (client.try_clone(), upstream.try_clone()) else { return };
        let window = self.plan.window_bytes;
        let down = Direction {
            way: self.plan.down,
            free: self.down_free.clone(),
            counted: self.bytes_down.clone(),
            series: self.series_down.clone(),
        };
        let back = thread::spawn(move || down.carry(upstream2, client2, window));
        let up = Direction {
            way: self.plan.up,
            free: self.up_free.clone(),
            counted: self.bytes_up.clone(),
            series: self.series_up.clone(),
        };
        up.carry(client, upstream, window);
        let _ = back.join();
    }
}

/// One direction of one connection.
struct Direction {
    way: OneWay,
    free: LinkClock,
    counted: Arc<AtomicU64>,
    series: Arc<Mutex<Throughput>>,
}

/// Chunks read at once: small enough that the link's rate shapes the flow finely.
const CHUNK: usize = 16 * 1024;

impl Direction {
    /// Reads from `from`, sends over the link, writes to `to`, until `from` ends.
    fn carry(self, mut from: TcpStream, to: TcpStream, window: usize) {
        // The channel bounds what is in flight: `window` bytes in chunks.
        let (sender, receiver): (SyncSender<InFlight>, Receiver<InFlight>) = sync_channel((window / CHUNK).max(1));
        let delivering = thread::spawn(move || deliver(receiver, to));
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let leaves = {
                let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
                let leaves = (*free).max(Instant::now()) + self.way.serialization(n);
                *free = leaves;
                leaves
            };
            let arrives = leaves + self.way.delay;
            self.counted.fetch_add(n as u64, Ordering::Relaxed);
            self.series.lock().unwrap_or_else(|e| e.into_inner()).add(leaves, n as u64);
            if sender.send(Some((arrives, buf[..n].to_vec()))).is_err() {
                break;
            }
        }
        let _ = sender.send(None);
        let _ = delivering.join();
        let _ = from.shutdown(Shutdown::Read);
    }
}

/// Writes each chunk when it arrives; ends the far side's writing when the sender did.
fn deliver(receiver: Receiver<InFlight>, mut to: TcpStream) {
    while let Ok(Some((arrives, bytes))) = receiver.recv() {
        let now = Instant::now();
        if arrives > now {
            thread::sleep(arrives - now);
        }
        if to.write_all(&bytes).is_err() {
            return;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
