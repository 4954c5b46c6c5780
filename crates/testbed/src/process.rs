//! Launching a server child process on a free port, waiting for it, and killing it.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::{io_error, Error, Result};

/// How long a server may take to answer. Generous: tests run in parallel on two cores,
/// and a cold Node or Python start can take several seconds there.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// Tries per server: a port picked as free can be taken by someone else before the
/// server binds it, and then the server exits and we try another port.
const ATTEMPTS: usize = 3;

/// How much of a server's output to quote in an error.
const LOG_TAIL_BYTES: u64 = 4096;

/// Ports handed out by this process. Never reused, so two servers started in parallel
/// tests cannot be given the same port between "probe" and "bind".
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A running server. Dropping it kills the server's whole process group, waits for
/// it, and then removes its temporary directory.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    child: Child,
    port: u16,
    /// Holds the server's data and log; only kept to be removed on drop, which happens
    /// after `Drop::drop` has killed the child.
    _dir: TempDir,
}

impl ServerProcess {
    /// The server's temporary directory (its data and log).
    pub(crate) fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// Starts a server. `command` builds the command line for a port and the server's
    /// temporary directory; its output goes to a log file in that directory.
    pub(crate) fn start(
        server: &'static str,
        dir_prefix: &str,
        mut command: impl FnMut(u16, &Path) -> Command,
    ) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(dir_prefix)
            .tempdir()
            .map_err(io_error(format!("creating a temporary directory for {server}")))?;

        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = free_port()?;
            let log_path = dir.path().join(format!("server-{attempt}.log"));
            let log = File::create(&log_path).map_err(io_error(format!("creating {}", log_path.display())))?;
            let log_err = log.try_clone().map_err(io_error(format!("duplicating {}", log_path.display())))?;

            let mut cmd = command(port, dir.path());
            let program = cmd.get_program().to_string_lossy().into_owned();
            cmd.stdin(Stdio::null())
                .stdout(log)
                .stderr(log_err)
                // Own process group, so Drop can kill anything the server forks.
                .process_group(0);
            let mut child = cmd.spawn().map_err(|source| {
                if source.kind() == std::io::ErrorKind::NotFound {
                    Error::MissingDependency {
                        what: format!("{program} (needed to run {server})"),
                        path: PathBuf::from(&program),
                    }
                } else {
                    Error::Spawn { server, program: program.clone(), source }
                }
            })?;
            match wait_until_listening(&mut child, server, port, &log_path) {
                Ok(()) => return Ok(ServerProcess { child, port, _dir: dir }),
                Err(e) => {
                    kill_group(&mut child);
                    let clash = matches!(&e, Error::Exited { log, .. } if looks_like_port_clash(log));
                    if !(clash && attempt < ATTEMPTS) {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// The loopback port the server listens on.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        kill_group(&mut self.child);
        // `_dir` is dropped (and removed) after this, with the server already dead.
    }
}

fn wait_until_listening(child: &mut Child, server: &'static str, port: u16, log_path: &Path) -> Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(io_error(format!("checking on {server}")))? {
            return Err(Error::Exited { server, status, log: log_tail(log_path) });
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(250)).is_ok() {
            return Ok(());
        }
        if started.elapsed() > START_TIMEOUT {
            return Err(Error::Timeout { server, port, secs: START_TIMEOUT.as_secs(), log: log_tail(log_path) });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills the child's process group and reaps the child.
fn kill_group(child: &mut Child) {
    // Only signal the group while our child is unreaped: its pid (= the group id)
    // cannot have been reused by then.
    if let Ok(None) = child.try_wait() {
        if let Ok(pgid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// A loopback port that is free now and that this process has not handed out before
/// (to any of the test servers: Azurite, S3, PostgreSQL).
pub fn free_port() -> Result<u16> {
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    let handed_out = handed_out.get_or_insert_with(HashSet::new);
    loop {
        let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(io_error("binding a probe socket on 127.0.0.1"))?;
        let port = listener.local_addr().map_err(io_error("reading the probe socket's port"))?.port();
        if handed_out.insert(port) {
            return Ok(port);
        }
    }
}

fn looks_like_port_clash(log: &str) -> bool {
    log.contains("EADDRINUSE") || log.contains("Address already in use")
}

/// The last few KiB of a log file, for error messages.
fn log_tail(path: &Path) -> String {
    let read = || -> std::io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) if text.trim().is_empty() => "(no output)".to_string(),
        Ok(text) => text,
        Err(e) => format!("(could not read {}: {e})", path.display()),
    }
}
