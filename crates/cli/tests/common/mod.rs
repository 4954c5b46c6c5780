//! Helpers for the end-to-end tests: run the real `offsite` binary in temporary
//! folders, generate source trees, and compare what comes back.
//!
//! Every assertion helper prints the command line, exit code, stdout and stderr when
//! it fails, so a red test says what the binary did.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod faults;
pub mod service;
pub mod site;
pub mod tmpfs;

/// The passphrase every test repository is created with.
pub const PASSWORD: &str = "correct horse battery staple";

/// Set by [`trace_every_command`]: every command runs with `RUST_LOG=trace` and
/// JSON logs, and [`Cli::run`] keeps what each one wrote to stderr.
static TRACING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static TRANSCRIPT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// From now on every `offsite` command of this test binary logs everything it can
/// (for the test that secrets never reach a log); see [`stderr_transcript`].
pub fn trace_every_command() {
    TRACING.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// The command line and stderr of every command run since [`trace_every_command`].
pub fn stderr_transcript() -> Vec<String> {
    TRANSCRIPT.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// uid and gid of `nobody`, used to make files unreadable when the tests run as root.
pub const NOBODY: u32 = 65534;

/// Variables of the runner's environment that would change what the binary does.
const CLEARED_ENV: [&str; 10] = [
    "OFFSITE_REPOSITORY",
    "OFFSITE_CONFIG",
    "OFFSITE_LISTEN",
    "OFFSITE_DATA_DIR",
    "OFFSITE_LOG_FORMAT",
    "OFFSITE_PASSWORD",
    "OFFSITE_PASSWORD_FILE",
    "OFFSITE_NEW_PASSWORD",
    "RUST_LOG",
    "RUST_BACKTRACE",
];

/// A command line for the `offsite` binary, not yet run.
pub struct Cli {
    cmd: Command,
    shown: String,
}

/// `offsite ARGS…` with `OFFSITE_PASSWORD` set, stdin empty (never a terminal) and the
/// runner's own `OFFSITE_*` variables removed.
pub fn offsite<I, S>(args: I) -> Cli
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_offsite"));
    let mut shown = String::from("offsite");
    for arg in args {
        shown.push(' ');
        shown.push_str(&arg.as_ref().to_string_lossy());
        cmd.arg(arg);
    }
    for name in CLEARED_ENV {
        cmd.env_remove(name);
    }
    cmd.env("OFFSITE_PASSWORD", PASSWORD).stdin(Stdio::null());
    if TRACING.load(std::sync::atomic::Ordering::SeqCst) {
        cmd.env("RUST_LOG", "trace").env("OFFSITE_LOG_FORMAT", "json");
    }
    Cli { cmd, shown }
}

/// `offsite repo --repo REPO ARGS…`
pub fn repo<I, S>(repo: impl AsRef<Path>, args: I) -> Cli
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut all: Vec<std::ffi::OsString> = vec!["repo".into(), "--repo".into(), repo.as_ref().into()];
    all.extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
    offsite(all)
}

impl Cli {
    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        self.shown = format!("{key}={} {}", value.as_ref().to_string_lossy(), self.shown);
        self.cmd.env(key, value);
        self
    }

    pub fn env_remove(mut self, key: &str) -> Self {
        self.shown = format!("(no {key}) {}", self.shown);
        self.cmd.env_remove(key);
        self
    }

    /// More arguments after those given.
    pub fn args(mut self, args: &[&str]) -> Self {
        for arg in args {
            self.shown.push(' ');
            self.shown.push_str(arg);
            self.cmd.arg(arg);
        }
        self
    }

    /// Runs it in this folder (relative paths it prints are relative to it).
    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.shown = format!("(in {}) {}", dir.display(), self.shown);
        self.cmd.current_dir(dir);
        self
    }

    /// Opens the repository with this passphrase instead of [`PASSWORD`].
    pub fn password(self, passphrase: &str) -> Self {
        self.env("OFFSITE_PASSWORD", passphrase)
    }

    /// Runs the binary as this user and group (the tests must be root to do so).
    pub fn run_as(mut self, uid: u32, gid: u32) -> Self {
        self.shown = format!("(as uid {uid}) {}", self.shown);
        self.cmd.uid(uid).gid(gid);
        self
    }

    /// Runs to completion and captures everything.
    pub fn run(mut self) -> Run {
        let started = Instant::now();
        let output = self.cmd.output().unwrap_or_else(|e| panic!("cannot start `{}`: {e}", self.shown));
        if TRACING.load(std::sync::atomic::Ordering::SeqCst) {
            let stderr = String::from_utf8_lossy(&output.stderr);
            TRANSCRIPT.lock().unwrap_or_else(|e| e.into_inner()).push(format!("$ {}\n{stderr}", self.shown));
        }
        Run {
            shown: self.shown,
            code: output.status.code(),
            signal: std::os::unix::process::ExitStatusExt::signal(&output.status),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            elapsed: started.elapsed(),
        }
    }

    /// Runs to completion with its stdout a pipe nobody reads (the reader closed it
    /// before the binary started, as `offsite … | head` ends up once head has
    /// read enough): every write to stdout fails with a broken pipe.
    pub fn run_into_closed_pipe(mut self) -> Run {
        let (reader, writer) = rustix::pipe::pipe().expect("make a pipe");
        drop(reader);
        self.shown = format!("{} | (closed)", self.shown);
        self.cmd.stdout(Stdio::from(writer));
        self.run()
    }

    /// Starts the binary in the background, its stdout and stderr going to `log`.
    pub fn spawn(mut self, log: &Path) -> Background {
        let file = fs::File::create(log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let child = self
            .cmd
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{}`: {e}", self.shown));
        Background { child: Some(child), shown: self.shown, log: log.to_path_buf() }
    }
}

/// The binary running in the background. Dropping it kills it, so a failing test
/// leaves no process behind (not even a stopped one).
pub struct Background {
    child: Option<Child>,
    pub shown: String,
    log: PathBuf,
}

impl Background {
    pub fn id(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The exit status, if it has ended.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().expect("running").try_wait().expect("wait for the child")
    }

    /// What it printed so far.
    pub fn output(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGKILL (`kill -9`) and waits for it to end.
    pub fn kill_9(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        child.kill().expect("kill the child");
        child.wait().expect("wait for the child")
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A finished run of the binary.
pub struct Run {
    pub shown: String,
    /// `None` when a signal ended it.
    pub code: Option<i32>,
    /// The signal that ended it.
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.signal {
            Some(signal) => writeln!(f, "`{}` was ended by signal {signal} after {:.1?}", self.shown, self.elapsed)?,
            None => writeln!(f, "`{}` exited with {:?} after {:.1?}", self.shown, self.code, self.elapsed)?,
        }
        writeln!(f, "--- stdout ---\n{}", self.stdout.trim_end())?;
        write!(f, "--- stderr ---\n{}\n--------------", self.stderr.trim_end())
    }
}

impl Run {
    fn assert_no_panic(&self) {
        assert!(
            self.code != Some(101) && !self.stderr.contains("panicked at"),
            "the binary panicked instead of reporting an error:\n{self}"
        );
    }

    /// Asserts exit code 0.
    #[track_caller]
    pub fn ok(self) -> Self {
        self.assert_no_panic();
        assert_eq!(self.code, Some(0), "expected success:\n{self}");
        self
    }

    /// Asserts this exact exit code.
    #[track_caller]
    pub fn code(self, expected: i32) -> Self {
        self.assert_no_panic();
        assert_eq!(self.code, Some(expected), "expected exit code {expected}:\n{self}");
        self
    }

    /// Asserts an ordinary failure: a non-zero exit code, not a signal and not a panic.
    #[track_caller]
    pub fn fails(self) -> Self {
        self.assert_no_panic();
        assert!(matches!(self.code, Some(c) if c != 0), "expected a failure:\n{self}");
        self
    }

    /// Asserts the end of a run whose stdout was closed: quiet (nothing on stderr)
    /// and the way other programs end there, by SIGPIPE.
    #[track_caller]
    pub fn ended_by_the_closed_pipe(self) -> Self {
        self.assert_no_panic();
        assert!(self.stderr.is_empty(), "a closed stdout must end the binary quietly:\n{self}");
        assert_eq!(self.signal, Some(13), "expected the end by SIGPIPE:\n{self}");
        self
    }

    /// Asserts that stderr contains `needle` (case-sensitive).
    #[track_caller]
    pub fn stderr_has(self, needle: &str) -> Self {
        assert!(self.stderr.contains(needle), "expected stderr to mention {needle:?}:\n{self}");
        self
    }

    /// Asserts that stdout contains `needle`.
    #[track_caller]
    pub fn stdout_has(self, needle: &str) -> Self {
        assert!(self.stdout.contains(needle), "expected stdout to mention {needle:?}:\n{self}");
        self
    }

    /// Asserts that stdout or stderr contains `needle`.
    #[track_caller]
    pub fn output_has(self, needle: &str) -> Self {
        assert!(
            self.stdout.contains(needle) || self.stderr.contains(needle),
            "expected the output to mention {needle:?}:\n{self}"
        );
        self
    }

    /// Parses stdout as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{self}"))
    }
}

/// Reads a field path such as `["summary", "files_new"]` as an unsigned number.
#[track_caller]
pub fn json_u64(value: &Value, path: &[&str]) -> u64 {
    let mut v = value;
    for key in path {
        v = &v[*key];
    }
    v.as_u64().unwrap_or_else(|| panic!("{} is not a number in:\n{value:#}", path.join(".")))
}

/// Reads a field path as a string.
#[track_caller]
pub fn json_str<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    let mut v = value;
    for key in path {
        v = &v[*key];
    }
    v.as_str().unwrap_or_else(|| panic!("{} is not a string in:\n{value:#}", path.join(".")))
}

/// A temporary folder for one test.
pub fn temp() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("offsite-e2e-").tempdir().expect("temporary folder")
}

pub fn utf8(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// Deterministic pseudo-random, incompressible bytes (xorshift64*).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; len];
    fill_noise(&mut out, &mut seed_state(seed));
    out
}

fn seed_state(seed: u64) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1
}

fn fill_noise(buf: &mut [u8], state: &mut u64) {
    let mut x = *state;
    let mut words = buf.chunks_exact_mut(8);
    for word in &mut words {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        word.copy_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    let rest = words.into_remainder();
    let tail = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
    rest.copy_from_slice(&tail[..rest.len()]);
    *state = x;
}

/// Writes `len` incompressible bytes to `path`, 1 MiB at a time.
pub fn write_noise_file(path: &Path, len: u64, seed: u64) {
    let mut file = fs::File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    let mut state = seed_state(seed);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        fill_noise(&mut buf[..n], &mut state);
        file.write_all(&buf[..n]).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        left -= n as u64;
    }
}

/// Compressible text, like source code or notes.
pub fn text(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: [&str; 12] =
        ["backup", "drive", "offsite", "restore", "fn", "let", "vault", "seed", "pack", "{", "}", ";\n"];
    let picks = noise(len / 2 + 1, seed);
    let mut out = Vec::with_capacity(len + 16);
    for p in picks {
        out.extend_from_slice(WORDS[p as usize % WORDS.len()].as_bytes());
        out.push(b' ');
        if out.len() >= len {
            break;
        }
    }
    out.truncate(len);
    out
}

pub fn write(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A small, varied source tree: text, incompressible data over several chunks, an
/// empty file, deep folders, an executable and a symlink.
pub fn small_tree(root: &Path) {
    write(&root.join("docs/readme.txt"), &text(10_000, 1));
    write(&root.join("docs/notes.md"), &text(3_000, 2));
    write(&root.join("docs/photo.bin"), &noise(200 << 10, 3));
    write(&root.join("media/big.bin"), &noise(3 << 20, 4));
    write(&root.join("empty.txt"), b"");
    write(&root.join("deep/a/b/c/leaf.txt"), &text(500, 5));
    write(&root.join("run.sh"), b"#!/bin/sh\necho hello\n");
    fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("docs/readme.txt", root.join("readme-link")).unwrap();
}

/// Where a backed-up source path lands under a restore target (snapshots keep
/// absolute paths).
pub fn restored(target: &Path, source: &Path) -> PathBuf {
    target.join(source.strip_prefix("/").expect("absolute source path"))
}

/// Compares two trees entry by entry: kinds, file bytes, permission bits, file
/// mtimes and symlink targets. Panics listing every difference; returns the number
/// of regular files compared.
#[track_caller]
pub fn assert_same_tree(expected: &Path, actual: &Path) -> usize {
    let mut problems = Vec::new();
    let mut files = 0;
    compare(expected, actual, Path::new(""), &mut problems, &mut files);
    assert!(
        problems.is_empty(),
        "{} differs from {}:\n  {}",
        actual.display(),
        expected.display(),
        problems.join("\n  ")
    );
    files
}

fn compare(expected: &Path, actual: &Path, rel: &Path, problems: &mut Vec<String>, files: &mut usize) {
    let (e, a) = (expected.join(rel), actual.join(rel));
    let shown = if rel.as_os_str().is_empty() { ".".to_string() } else { rel.display().to_string() };
    let em = fs::symlink_metadata(&e).unwrap_or_else(|err| panic!("{}: {err}", e.display()));
    let am = match fs::symlink_metadata(&a) {
        Ok(m) => m,
        Err(err) => {
            problems.push(format!("{shown}: missing ({err})"));
            return;
        }
    };
    if em.file_type() != am.file_type() {
        problems.push(format!("{shown}: {:?} became {:?}", em.file_type(), am.file_type()));
        return;
    }
    if !em.file_type().is_symlink() && em.mode() & 0o7777 != am.mode() & 0o7777 {
        problems.push(format!("{shown}: mode {:o} became {:o}", em.mode() & 0o7777, am.mode() & 0o7777));
    }
    if em.is_file() {
        *files += 1;
        let (eb, ab) = (fs::read(&e).unwrap(), fs::read(&a).unwrap());
        if eb != ab {
            let at = eb.iter().zip(&ab).position(|(x, y)| x != y).unwrap_or(eb.len().min(ab.len()));
            problems.push(format!("{shown}: content differs ({} vs {} bytes, first at {at})", eb.len(), ab.len()));
        }
        if (em.mtime(), em.mtime_nsec()) != (am.mtime(), am.mtime_nsec()) {
            problems.push(format!(
                "{shown}: mtime {}.{} became {}.{}",
                em.mtime(),
                em.mtime_nsec(),
                am.mtime(),
                am.mtime_nsec()
            ));
        }
    } else if em.file_type().is_symlink() {
        let (et, at) = (fs::read_link(&e).unwrap(), fs::read_link(&a).unwrap());
        if et != at {
            problems.push(format!("{shown}: link to {} became a link to {}", et.display(), at.display()));
        }
    } else if em.is_dir() {
        let names = |dir: &Path| -> std::collections::BTreeSet<std::ffi::OsString> {
            fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().file_name()).collect()
        };
        let (en, an) = (names(&e), names(&a));
        for extra in an.difference(&en) {
            problems.push(format!("{}: not in the source", rel.join(extra).display()));
        }
        for name in en {
            compare(expected, actual, &rel.join(name), problems, files);
        }
    }
}

/// Every file below `dir` with its size (folders as `None`), keyed by relative path:
/// compare two listings to show that a command changed nothing.
pub fn listing(dir: &Path) -> BTreeMap<String, Option<u64>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Option<u64>>) {
        let Ok(entries) = fs::read_dir(dir) else { return };
        for entry in entries {
            let entry = entry.unwrap();
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                out.insert(format!("{rel}/"), None);
                walk(root, &path, out);
            } else {
                out.insert(rel, Some(meta.len()));
            }
        }
    }
    let mut out = BTreeMap::new();
    if dir.exists() {
        out.insert(".".to_string(), None);
    }
    walk(dir, dir, &mut out);
    out
}

/// Asserts that the folder holds the same files with the same sizes as before.
#[track_caller]
pub fn assert_unchanged(dir: &Path, before: &BTreeMap<String, Option<u64>>, after_what: &Run) {
    let now = listing(dir);
    if &now != before {
        let added: Vec<_> = now.iter().filter(|(k, v)| before.get(*k) != Some(v)).collect();
        let removed: Vec<_> = before.iter().filter(|(k, v)| now.get(*k) != Some(v)).collect();
        panic!(
            "{} changed after a failed command\n  new or resized: {added:?}\n  gone or resized: {removed:?}\n{after_what}",
            dir.display()
        );
    }
}

/// The complete pack files of a local repository (temporary files excluded), with sizes.
pub fn packs(repo: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let Ok(subdirs) = fs::read_dir(repo.join("data")) else { return out };
    for sub in subdirs.flatten() {
        let Ok(entries) = fs::read_dir(sub.path()) else { continue };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if let Ok(meta) = entry.metadata() {
                if meta.is_file() {
                    out.push((entry.path(), meta.len()));
                }
            }
        }
    }
    out.sort();
    out
}

/// The complete pack files in the service's storage folder (uploads in progress,
/// named `<hash>#<n>` by the local object store, are left out), with sizes.
pub fn stored_packs(storage: &Path) -> Vec<(PathBuf, u64)> {
    fn walk(dir: &Path, in_data: bool, out: &mut Vec<(PathBuf, u64)>) {
        let Ok(entries) = fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            let name = entry.file_name().to_string_lossy().into_owned();
            if meta.is_dir() {
                walk(&path, in_data || name == "data", out);
            } else if in_data && name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                out.push((path, meta.len()));
            }
        }
    }
    let mut out = Vec::new();
    walk(storage, false, &mut out);
    out.sort();
    out
}

/// The names of the files in a repository folder such as `locks` or `snapshots`.
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.retain(|n| !n.starts_with('.'));
    names.sort();
    names
}

/// Creates a repository and backs `source` up into it once; returns the snapshot id.
pub fn init_and_backup(repo_dir: &Path, source: &Path, init_args: &[&str]) -> String {
    let mut args = vec!["init", "--quiet"];
    args.extend_from_slice(init_args);
    repo(repo_dir, args).run().ok();
    let run = repo(repo_dir, ["backup", "--json", utf8(source)]).run().ok();
    json_str(&run.json(), &["snapshot"]).to_string()
}

/// Flips every bit of the byte at `offset` in `path`.
pub fn flip_byte(path: &Path, offset: u64) {
    use std::os::unix::fs::FileExt;
    let file = fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, offset).unwrap();
    byte[0] ^= 0xff;
    file.write_all_at(&byte, offset).unwrap();
}

/// Polls `done` every few milliseconds until it holds or `limit` passes.
pub fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    done()
}
