//! A private PostgreSQL server: its own `initdb` cluster in a temporary directory,
//! listening on a free loopback port, removed again on drop.
//!
//! The programs come from Debian's `postgresql` package (which `scripts/test` installs):
//! the newest `/usr/lib/postgresql/<version>/bin` holding `initdb`, or the directory
//! named by `$OFFSITE_PG_BIN`.
//!
//! `initdb` and `postgres` refuse to run as root. Run as root (as tests are here), both
//! run as the `postgres` system user that the Debian package creates, and the temporary
//! directory is handed to that user; otherwise they run as the current user.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::process::free_port;
use crate::{io_error, Error, Result};

/// Where Debian installs each PostgreSQL major version's programs.
const DEBIAN_PG_ROOT: &str = "/usr/lib/postgresql";
/// Environment variable that names the directory of `initdb`, `postgres` and `psql`.
const BIN_ENV: &str = "OFFSITE_PG_BIN";
/// The system user that runs the server when we are root.
const SYSTEM_USER: &str = "postgres";

/// How long the server may take to accept connections (two shared cores, tests in parallel).
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// How long `Drop` waits for the server to shut down before killing it outright.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Tries per server: a port picked as free can be taken before the server binds it.
const ATTEMPTS: usize = 3;
/// How much of a log to quote in an error.
const LOG_TAIL_BYTES: u64 = 4096;

/// A running, private PostgreSQL server on a loopback port, with database
/// [`Self::DATABASE`] created and owned by superuser [`Self::USER`] (no password:
/// local and loopback connections are trusted). Dropping it shuts the server down,
/// waits for all its processes, and removes its data directory.
///
/// Do not keep one in a `static`: statics are never dropped, so the server would
/// outlive the test process.
#[derive(Debug)]
pub struct Postgres {
    /// The postmaster, leader of its own process group.
    child: Child,
    port: u16,
    bin: PathBuf,
    /// Holds the cluster, the Unix socket and the logs; removed on drop, which happens
    /// after `Drop::drop` has stopped the server.
    dir: TempDir,
    run_as: RunAs,
    restarts: u32,
}

impl Postgres {
    /// The superuser `initdb` creates; it needs no password.
    pub const USER: &'static str = "offsite";
    /// The database [`Self::start`] creates and [`Self::url`] points at.
    pub const DATABASE: &'static str = "offsite";

    /// Starts a server from the newest PostgreSQL under `/usr/lib/postgresql/*/bin`
    /// (installed by `scripts/test`), or from `$OFFSITE_PG_BIN` if that is set.
    pub fn start() -> Result<Self> {
        Self::start_with_bin(&bin_dir()?)
    }

    /// Starts a server from the PostgreSQL programs (`initdb`, `postgres`, `psql`) in `bin`.
    pub fn start_with_bin(bin: &Path) -> Result<Self> {
        for program in ["initdb", "postgres", "psql"] {
            let path = bin.join(program);
            if !path.is_file() {
                return Err(Error::MissingDependency {
                    what: format!("PostgreSQL's {program} (Debian package postgresql, or set ${BIN_ENV})"),
                    path,
                });
            }
        }
        let run_as = RunAs::detect()?;
        let dir = tempfile::Builder::new()
            .prefix("offsite-postgres-")
            .tempdir()
            .map_err(io_error("creating a temporary directory for PostgreSQL"))?;
        if let RunAs::User { uid, gid } = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .map_err(io_error(format!("handing {} to the {SYSTEM_USER} user", dir.path().display())))?;
        }
        initdb(bin, dir.path(), run_as)?;

        let mut attempt = 0;
        let (child, port) = loop {
            attempt += 1;
            let port = free_port()?;
            let log_path = dir.path().join(format!("server-{attempt}.log"));
            let mut child = spawn_postmaster(bin, dir.path(), run_as, port, &log_path)?;
            match wait_until_ready(&mut child, port, dir.path(), &log_path) {
                Ok(()) => break (child, port),
                Err(e) => {
                    stop(&mut child, &data_dir(dir.path()), STOP_TIMEOUT);
                    let clash = matches!(&e, Error::Exited { log, .. } if log.contains("Address already in use"));
                    if !(clash && attempt < ATTEMPTS) {
                        return Err(e);
                    }
                }
            }
        };
        // From here on, dropping `server` stops the postmaster.
        let server = Postgres { child, port, bin: bin.to_path_buf(), dir, run_as, restarts: 0 };
        server.create_database(Self::DATABASE)?;
        Ok(server)
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server at once (an immediate shutdown, as a crash or a failover
    /// ends it: every client loses its connections) and starts it again on the
    /// same port with the same data.
    pub fn restart(&mut self) -> Result<()> {
        stop(&mut self.child, &data_dir(self.dir.path()), STOP_TIMEOUT);
        self.restarts += 1;
        let log_path = self.dir.path().join(format!("server-restart-{}.log", self.restarts));
        let mut child = spawn_postmaster(&self.bin, self.dir.path(), self.run_as, self.port, &log_path)?;
        if let Err(e) = wait_until_ready(&mut child, self.port, self.dir.path(), &log_path) {
            stop(&mut child, &data_dir(self.dir.path()), STOP_TIMEOUT);
            return Err(e);
        }
        self.child = child;
        Ok(())
    }

    /// The process id of the postmaster, the parent of every other server process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The directory holding the server's Unix socket (`.s.PGSQL.<port>`), for clients
    /// that connect with `host=<this directory>`.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The directory of the PostgreSQL programs this server runs (`psql` is there too).
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// The URL of database [`Self::DATABASE`]:
    /// `postgres://offsite@127.0.0.1:<port>/offsite`.
    pub fn url(&self) -> String {
        self.database_url(Self::DATABASE)
    }

    /// The URL of database `name` on this server (which may not exist yet).
    pub fn database_url(&self, name: &str) -> String {
        format!("postgres://{}@127.0.0.1:{}/{name}", Self::USER, self.port)
    }

    /// Creates the empty database `name`, owned by [`Self::USER`], and returns its URL.
    /// Fails if it exists already, so each test that wants a database of its own
    /// gets a fresh one. Names are lowercase letters, digits and `_`, up to 63 bytes,
    /// not starting with a digit.
    pub fn create_database(&self, name: &str) -> Result<String> {
        validate_database_name(name)?;
        self.psql("postgres", &format!("CREATE DATABASE {name}"), &format!("creating database {name:?}"))?;
        Ok(self.database_url(name))
    }

    /// Runs one SQL statement in database [`Self::DATABASE`] with `psql` and returns
    /// its rows, one a line, fields separated by `|` (unaligned, no headers).
    pub fn query(&self, sql: &str) -> Result<String> {
        self.psql(Self::DATABASE, sql, "querying PostgreSQL")
    }

    /// Runs one SQL command in `database` with `psql`, stopping at the first error.
    fn psql(&self, database: &str, sql: &str, what: &str) -> Result<String> {
        let psql = self.bin.join("psql");
        let output = Command::new(&psql)
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.database_url(database))
            .arg("-c")
            .arg(sql)
            .env("PGCONNECT_TIMEOUT", "30")
            .stdin(Stdio::null())
            .output()
            .map_err(io_error(format!("{what}: running {}", psql.display())))?;
        if !output.status.success() {
            return Err(Error::Io {
                context: format!("{what}: psql failed ({})", output.status),
                source: std::io::Error::other(String::from_utf8_lossy(&output.stderr).trim().to_string()),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        stop(&mut self.child, &data_dir(self.dir.path()), STOP_TIMEOUT);
        // `dir` is dropped (and removed) after this, with the server already gone.
    }
}

/// Who runs `initdb` and `postgres`.
#[derive(Debug, Clone, Copy)]
enum RunAs {
    /// The current user, who is not root.
    Me,
    /// We are root: switch to this (unprivileged) user.
    User { uid: u32, gid: u32 },
}

impl RunAs {
    fn detect() -> Result<Self> {
        // SAFETY: geteuid(2) has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Ok(RunAs::Me);
        }
        match lookup_user(SYSTEM_USER) {
            Some((uid, gid)) if uid != 0 => Ok(RunAs::User { uid, gid }),
            _ => Err(Error::MissingDependency {
                what: format!(
                    "the {SYSTEM_USER} system user (Debian package postgresql creates it; \
                     as root, initdb and postgres must run as another user)"
                ),
                path: PathBuf::from("/etc/passwd"),
            }),
        }
    }

    /// A command for `program`, run as this user, in `dir`.
    fn command(self, program: &Path, dir: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(dir);
        if let RunAs::User { uid, gid } = self {
            // std also drops root's supplementary groups when it switches the uid.
            cmd.uid(uid).gid(gid);
        }
        cmd
    }
}

/// Starts the postmaster of the cluster in `dir` on loopback `port`, logging to `log_path`.
fn spawn_postmaster(bin: &Path, dir: &Path, run_as: RunAs, port: u16, log_path: &Path) -> Result<Child> {
    let postgres = bin.join("postgres");
    let log = File::create(log_path).map_err(io_error(format!("creating {}", log_path.display())))?;
    let log_err = log.try_clone().map_err(io_error(format!("duplicating {}", log_path.display())))?;
    let mut cmd = run_as.command(&postgres, dir);
    cmd.arg("-D")
        .arg(data_dir(dir))
        .args(["-h", "127.0.0.1", "-p"])
        .arg(port.to_string())
        .arg("-k")
        .arg(dir)
        // Throw-away data: never wait for the disk.
        .args(["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
        // Dynamic shared memory as files in the data directory rather than in
        // /dev/shm, so even a killed server leaves nothing outside it.
        .args(["-c", "dynamic_shared_memory_type=mmap"])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    // No process group of its own (unlike Azurite and moto): each server process
    // makes itself a session leader anyway, and staying in the test's group lets
    // a Ctrl-C reach the postmaster, which then shuts down cleanly.
    cmd.spawn().map_err(|source| Error::Spawn { server: "PostgreSQL", program: postgres.display().to_string(), source })
}

/// The cluster's data directory inside the server's temporary directory.
fn data_dir(dir: &Path) -> PathBuf {
    dir.join("data")
}

/// Creates the cluster: superuser [`Postgres::USER`], trusted local and loopback
/// connections, UTF-8 with the C locale (present everywhere, and fast).
fn initdb(bin: &Path, dir: &Path, run_as: RunAs) -> Result<()> {
    let initdb = bin.join("initdb");
    let output = run_as
        .command(&initdb, dir)
        .arg("-D")
        .arg(data_dir(dir))
        .args(["-U", Postgres::USER, "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"])
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Spawn { server: "PostgreSQL", program: initdb.display().to_string(), source })?;
    if output.status.success() {
        return Ok(());
    }
    let mut log = String::from_utf8_lossy(&output.stdout).into_owned();
    log.push_str(&String::from_utf8_lossy(&output.stderr));
    Err(Error::Exited { server: "PostgreSQL's initdb", status: output.status, log: tail(&log) })
}

/// Waits until the postmaster reports "ready" in its pid file (what `pg_ctl -w`
/// waits for) and its TCP port accepts connections.
fn wait_until_ready(child: &mut Child, port: u16, dir: &Path, log_path: &Path) -> Result<()> {
    let server = "PostgreSQL";
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let pid_file = data_dir(dir).join("postmaster.pid");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(io_error("checking on PostgreSQL"))? {
            return Err(Error::Exited { server, status, log: log_tail(log_path) });
        }
        if pid_file_says_ready(&pid_file, child.id())
            && TcpStream::connect_timeout(&addr, Duration::from_millis(250)).is_ok()
        {
            return Ok(());
        }
        if started.elapsed() > START_TIMEOUT {
            return Err(Error::Timeout { server, port, secs: START_TIMEOUT.as_secs(), log: log_tail(log_path) });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops the postmaster of the cluster in `data`: an immediate shutdown (SIGQUIT: it
/// ends its children, removes its shared memory and exits), or if that takes longer
/// than `timeout`, SIGKILL for it and its children and removal of its shared memory.
/// Returns once the postmaster is reaped.
fn stop(child: &mut Child, data: &Path, timeout: Duration) {
    let Ok(None) = child.try_wait() else { return };
    signal(child, libc::SIGQUIT);
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Every server process calls setsid(), so there is no process group to kill:
    // freeze the postmaster (no new children, and none reaped, so their pids stay
    // theirs), kill its children, then kill it.
    signal(child, libc::SIGSTOP);
    let shmid = sysv_shmid(&data.join("postmaster.pid"));
    for pid in children_of(child.id()) {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
    signal(child, libc::SIGKILL);
    let _ = child.wait();
    // The one piece of shared memory outside the data directory: the small System V
    // segment the postmaster keeps as an interlock, which only a clean exit removes.
    if let Some(shmid) = shmid {
        // SAFETY: IPC_RMID takes no buffer; the id is the one our server wrote down.
        unsafe {
            libc::shmctl(shmid, libc::IPC_RMID, std::ptr::null_mut());
        }
    }
}

/// The System V shared memory id in a postmaster's pid file (line 7: key, then id).
fn sysv_shmid(pid_file: &Path) -> Option<libc::c_int> {
    let text = std::fs::read_to_string(pid_file).ok()?;
    text.lines().nth(6)?.split_whitespace().nth(1)?.parse().ok()
}

/// Sends `signal` to the postmaster. Only call while it is unreaped: then its pid
/// cannot have been reused.
fn signal(child: &Child, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// The processes whose parent is `parent`, from `/proc`.
fn children_of(parent: u32) -> Vec<libc::pid_t> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|entry| {
            let name = entry.ok()?.file_name();
            let pid: libc::pid_t = name.to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(Path::new("/proc").join(&name).join("stat")).ok()?;
            // "pid (comm) state ppid ...": comm may hold spaces, so split after its ')'.
            let ppid: u32 = stat[stat.rfind(')')? + 1..].split_whitespace().nth(1)?.parse().ok()?;
            (ppid == parent).then_some(pid)
        })
        .collect()
}

/// Whether the postmaster `pid` wrote "ready" as the status line (the 8th) of its
/// pid file, as it does once it accepts connections.
fn pid_file_says_ready(pid_file: &Path, pid: u32) -> bool {
    let Ok(text) = std::fs::read_to_string(pid_file) else { return false };
    let lines: Vec<&str> = text.lines().collect();
    lines.len() >= 8 && lines[0].trim() == pid.to_string() && lines[7].trim() == "ready"
}

/// The directory of the PostgreSQL programs: `$OFFSITE_PG_BIN` if set, else the
/// newest version under `/usr/lib/postgresql` that has `initdb`.
fn bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(BIN_ENV).filter(|dir| !dir.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    newest_bin_dir(Path::new(DEBIAN_PG_ROOT)).ok_or_else(|| Error::MissingDependency {
        what: format!("PostgreSQL's initdb (Debian package postgresql, or set ${BIN_ENV})"),
        path: Path::new(DEBIAN_PG_ROOT).join("*/bin/initdb"),
    })
}

/// The `<root>/<version>/bin` with the highest version (`15`, `16`, `9.6`, ...) that
/// holds `initdb`.
fn newest_bin_dir(root: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(root).ok()?;
    entries
        .filter_map(|entry| {
            let name: OsString = entry.ok()?.file_name();
            let version: Vec<u32> = name.to_str()?.split('.').map(|part| part.parse().ok()).collect::<Option<_>>()?;
            let bin = root.join(&name).join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max()
        .map(|(_, bin)| bin)
}

/// Looks up a user's uid and primary gid in the system's user database.
fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let name = CString::new(name).ok()?;
    let mut buf: Vec<libc::c_char> = vec![0; 4096];
    loop {
        // SAFETY: an all-zero `passwd` (null pointers, zero ids) is a valid value.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call, and `buf.len()` is the size of
        // `buf`; the strings it fills in are not used.
        let rc = unsafe { libc::getpwnam_r(name.as_ptr(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        return (rc == 0 && !result.is_null()).then_some((pwd.pw_uid, pwd.pw_gid));
    }
}

/// PostgreSQL identifiers that need no quoting (and so cannot smuggle in SQL), and
/// that need no escaping in a URL path.
fn validate_database_name(name: &str) -> Result<()> {
    let invalid = |rule| Err(Error::InvalidName { kind: "database", name: name.to_string(), rule });
    if name.is_empty() || name.len() > 63 {
        return invalid("must be 1 to 63 characters long");
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        return invalid("only lowercase letters, digits and '_' are allowed");
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        return invalid("must not start with a digit");
    }
    Ok(())
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
        Ok(text) => tail(&text),
        Err(e) => format!("(could not read {}: {e})", path.display()),
    }
}

/// The end of `text`, at most [`LOG_TAIL_BYTES`], or a note that it is empty.
fn tail(text: &str) -> String {
    if text.trim().is_empty() {
        return "(no output)".to_string();
    }
    let limit = usize::try_from(LOG_TAIL_BYTES).unwrap_or(usize::MAX);
    let mut start = text.len().saturating_sub(limit);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_checked() {
        assert!(validate_database_name("offsite_test_1").is_ok());
        for bad in ["", "Upper", "1abc", "a-b", "a;drop", "a b", "a\"b", &"a".repeat(64)] {
            assert!(validate_database_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_newest_version_with_initdb_is_picked() {
        let root = tempfile::tempdir().expect("temp dir");
        for (version, has_initdb) in [("9.6", true), ("15", true), ("16", false), ("common", true)] {
            let bin = root.path().join(version).join("bin");
            std::fs::create_dir_all(&bin).expect("mkdir");
            if has_initdb {
                std::fs::write(bin.join("initdb"), "").expect("write initdb");
            }
        }
        assert_eq!(newest_bin_dir(root.path()), Some(root.path().join("15/bin")));
        assert_eq!(newest_bin_dir(&root.path().join("nothing-here")), None);
    }

    #[test]
    fn pid_file_status_is_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("postmaster.pid");
        let write = |status: &str| {
            std::fs::write(&file, format!("42\n/data\n1700000000\n5432\n/tmp\n127.0.0.1\n  1 2\n{status}\n"))
                .expect("write pid file")
        };
        write("starting");
        assert!(!pid_file_says_ready(&file, 42));
        write("ready   ");
        assert!(pid_file_says_ready(&file, 42));
        assert!(!pid_file_says_ready(&file, 43));
    }

    #[test]
    fn a_hung_server_is_killed_with_its_children() {
        let mut pg = Postgres::start().expect("start PostgreSQL");
        let children = children_of(pg.pid());
        assert!(!children.is_empty(), "no server processes besides the postmaster");
        let shmid = sysv_shmid(&data_dir(pg.dir.path()).join("postmaster.pid")).expect("shmid in postmaster.pid");
        // A frozen postmaster ignores SIGQUIT until the fallback kills it.
        signal(&pg.child, libc::SIGSTOP);
        stop(&mut pg.child, &data_dir(pg.dir.path()), Duration::from_millis(500));
        let deadline = Instant::now() + Duration::from_secs(10);
        // Killed children are reaped by init (or a subreaper), maybe not at once.
        while children.iter().any(|pid| Path::new(&format!("/proc/{pid}")).exists()) {
            assert!(Instant::now() < deadline, "children of the killed postmaster still there: {children:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: an all-zero shmid_ds is a valid buffer for IPC_STAT to fill.
        let mut info: libc::shmid_ds = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid, writable shmid_ds.
        let rc = unsafe { libc::shmctl(shmid, libc::IPC_STAT, &mut info) };
        assert_eq!(rc, -1, "shared memory segment {shmid} left behind");
        // Dropping `pg` now only removes its directory.
    }
}
