//! A TCP proxy that misbehaves on purpose: [`FaultyProxy`] listens on a loopback
//! port, forwards each connection to an upstream address (the offsite service,
//! Azurite, moto) and, per connection, from a seeded RNG and a [`NetworkPlan`]:
//! resets it after some bytes, closes it cleanly mid-stream, stalls it (no bytes
//! either way for a while, then a reset, as a middlebox that dropped the flow
//! does), or adds latency to every chunk it forwards. It works below TLS, so the
//! real client and server talk through it unchanged. It counts what it did.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What happens to one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetFault {
    /// Reset (RST) after a random number of bytes.
    Reset,
    /// Closed cleanly (FIN) after a random number of bytes, mid-stream.
    Close,
    /// After a random number of bytes nothing moves for [`NetworkPlan::stall`];
    /// then the connection is reset.
    Stall,
    /// Every forwarded chunk waits [`NetworkPlan::latency`].
    Latency,
}

/// Per-connection fault rates (0 to 1) and a script of (connection number from 1,
/// fault) that applies whatever the rates say.
#[derive(Debug, Clone)]
pub struct NetworkPlan {
    pub seed: u64,
    pub reset: f64,
    pub close: f64,
    pub stall: f64,
    pub latency: f64,
    /// How long a stalled connection hangs before it is reset.
    pub stall_for: Duration,
    /// The delay per chunk of a slow connection.
    pub latency_per_chunk: Duration,
    /// Faults strike within this many bytes of a connection's traffic.
    pub within_bytes: u64,
    pub script: Vec<(u64, NetFault)>,
}

impl NetworkPlan {
    pub fn none(seed: u64) -> NetworkPlan {
        NetworkPlan {
            seed,
            reset: 0.0,
            close: 0.0,
            stall: 0.0,
            latency: 0.0,
            stall_for: Duration::from_secs(2),
            latency_per_chunk: Duration::from_millis(20),
            within_bytes: 2 << 20,
            script: Vec::new(),
        }
    }

    /// Each fault kind at `rate` per connection.
    pub fn uniform(seed: u64, rate: f64) -> NetworkPlan {
        NetworkPlan { reset: rate, close: rate, stall: rate / 2.0, latency: rate, ..NetworkPlan::none(seed) }
    }
}

/// What the proxy did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetworkCounts {
    pub connections: u64,
    pub resets: u64,
    pub closes: u64,
    pub stalls: u64,
    pub slow: u64,
}

impl NetworkCounts {
    pub fn total(&self) -> u64 {
        self.resets + self.closes + self.stalls + self.slow
    }
}

impl std::fmt::Display for NetworkCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} connections: {} reset, {} closed mid-stream, {} stalled, {} slow",
            self.connections, self.resets, self.closes, self.stalls, self.slow
        )
    }
}

struct Shared {
    upstream: SocketAddr,
    plan: NetworkPlan,
    rng: Mutex<StdRng>,
    active: AtomicBool,
    stopped: AtomicBool,
    connections: AtomicU64,
    resets: AtomicU64,
    closes: AtomicU64,
    stalls: AtomicU64,
    slow: AtomicU64,
}

/// The running proxy; dropping it stops accepting (open connections end on their own).
pub struct FaultyProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl FaultyProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub fn start(upstream: SocketAddr, plan: NetworkPlan) -> std::io::Result<FaultyProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            rng: Mutex::new(StdRng::seed_from_u64(plan.seed)),
            plan,
            active: AtomicBool::new(true),
            stopped: AtomicBool::new(false),
            connections: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            closes: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
            slow: AtomicU64::new(0),
        });
        let accepting = shared.clone();
        thread::Builder::new().name("faulty-proxy".into()).spawn(move || {
            for client in listener.incoming() {
                if accepting.stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let connection = accepting.clone();
                let _ = thread::Builder::new().name("faulty-proxy-conn".into()).spawn(move || {
                    connection.serve(client);
                });
            }
        })?;
        Ok(FaultyProxy { addr, shared })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Turns injection on or off for new connections.
    pub fn set_active(&self, active: bool) {
        self.shared.active.store(active, Ordering::SeqCst);
    }

    pub fn counts(&self) -> NetworkCounts {
        let s = &self.shared;
        NetworkCounts {
            connections: s.connections.load(Ordering::Relaxed),
            resets: s.resets.load(Ordering::Relaxed),
            closes: s.closes.load(Ordering::Relaxed),
            stalls: s.stalls.load(Ordering::Relaxed),
            slow: s.slow.load(Ordering::Relaxed),
        }
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        // Wake the accepting thread so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Makes closing `stream` send a reset instead of a clean end.
fn reset_on_close(stream: &TcpStream) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt on a socket this process owns, with a correctly sized value.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// One direction of a connection; both share the byte budget left before the
/// fault and whether the connection was cut.
#[derive(Clone)]
struct Pump {
    fault: Option<NetFault>,
    budget: Arc<AtomicU64>,
    cut: Arc<AtomicBool>,
    latency: Duration,
    stall_for: Duration,
}

impl Shared {
    fn choose(&self) -> (Option<NetFault>, u64) {
        let n = self.connections.fetch_add(1, Ordering::Relaxed) + 1;
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let at = rng.gen_range(0..self.plan.within_bytes.max(1));
        if !self.active.load(Ordering::SeqCst) {
            return (None, at);
        }
        let scripted = self.plan.script.iter().find(|(c, _)| *c == n).map(|(_, f)| *f);
        let fault = scripted.or_else(|| {
            let mut roll = rng.gen::<f64>();
            for (fault, rate) in [
                (NetFault::Reset, self.plan.reset),
                (NetFault::Close, self.plan.close),
                (NetFault::Stall, self.plan.stall),
                (NetFault::Latency, self.plan.latency),
            ] {
                if roll < rate {
                    return Some(fault);
                }
                roll -= rate;
            }
            None
        });
        match fault {
            Some(NetFault::Reset) => self.resets.fetch_add(1, Ordering::Relaxed),
            Some(NetFault::Close) => self.closes.fetch_add(1, Ordering::Relaxed),
            Some(NetFault::Stall) => self.stalls.fetch_add(1, Ordering::Relaxed),
            Some(NetFault::Latency) => self.slow.fetch_add(1, Ordering::Relaxed),
            None => 0,
        };
        (fault, at)
    }

    fn serve(&self, client: TcpStream) {
        let Ok(upstream) = TcpStream::connect(self.upstream) else {
            reset_on_close(&client);
            return;
        };
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        let (fault, at) = self.choose();
        let pump = Pump {
            fault,
            budget: Arc::new(AtomicU64::new(at)),
            cut: Arc::new(AtomicBool::new(false)),
            latency: self.plan.latency_per_chunk,
            stall_for: self.plan.stall_for,
        };
        let (Ok(client2), Ok(upstream2)) = (client.try_clone(), upstream.try_clone()) else { return };
        let back = thread::spawn({
            let pump = pump.clone();
            move || pump.run(upstream2, client2)
        });
        pump.run(client, upstream);
        let _ = back.join();
    }
}

impl Pump {
    fn run(self, mut from: TcpStream, mut to: TcpStream) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => {
                    // A cut connection ends as it was cut (a reset stays a reset).
                    if !self.cut.load(Ordering::SeqCst) {
                        let _ = to.shutdown(Shutdown::Write);
                    }
                    return;
                }
                Ok(n) => n,
            };
            if self.cut.load(Ordering::SeqCst) {
                // The other direction cut (or stalls) the connection: nothing more moves.
                return;
            }
            if let Some(fault @ (NetFault::Reset | NetFault::Close | NetFault::Stall)) = self.fault {
                let left = self.budget.load(Ordering::SeqCst);
                if (n as u64) >= left {
                    let _ = to.write_all(&buf[..left as usize]);
                    self.budget.store(0, Ordering::SeqCst);
                    self.cut.store(true, Ordering::SeqCst);
                    if fault == NetFault::Stall {
                        thread::sleep(self.stall_for);
                    }
                    if fault == NetFault::Close {
                        let _ = to.shutdown(Shutdown::Both);
                        let _ = from.shutdown(Shutdown::Both);
                    } else {
                        // Linger 0 makes the last close of each socket send a reset;
                        // shutting down reading only wakes the other direction.
                        reset_on_close(&to);
                        reset_on_close(&from);
                        let _ = to.shutdown(Shutdown::Read);
                        let _ = from.shutdown(Shutdown::Read);
                    }
                    return;
                }
                self.budget.fetch_sub(n as u64, Ordering::SeqCst);
            }
            if self.fault == Some(NetFault::Latency) {
                thread::sleep(self.latency);
            }
            if to.write_all(&buf[..n]).is_err() {
                self.cut.store(true, Ordering::SeqCst);
                reset_on_close(&from);
                let _ = from.shutdown(Shutdown::Read);
                return;
            }
        }
    }
}
