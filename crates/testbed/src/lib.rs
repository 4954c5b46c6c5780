//! Real object-storage servers for offsite's tests.
//!
//! Each `start` function launches a server on a free loopback port, waits until it
//! answers, and returns a handle that kills the server (and removes its temporary
//! directory) when dropped. Handles also hand out the `object_store` options needed to
//! reach the server, so tests exercise the same HTTP clients production uses.
//!
//! The server programs live in the repository's `.deps/` directory, which
//! `scripts/test` fills. A missing program is an error, never a silent skip: a test
//! that cannot reach its server must fail.

pub mod allocation;
mod azurite;
mod chromedriver;
mod faulty_proxy;
mod faulty_store;
mod haproxy;
mod http;
mod postgres;
mod process;
mod replica_set;
mod s3;
mod smtp;
mod wan_link;

use std::io;
use std::path::{Path, PathBuf};

pub use azurite::Azurite;
pub use chromedriver::ChromeDriver;
pub use faulty_proxy::{FaultyProxy, NetFault, NetworkCounts, NetworkPlan};
pub use faulty_store::{FaultCounts, FaultKind, FaultPlan, FaultyStore};
pub use haproxy::Haproxy;
pub use postgres::Postgres;
pub use process::free_port;
pub use replica_set::ReplicaSet;
pub use s3::S3Server;
pub use smtp::SmtpServer;
pub use wan_link::{LinkCounts, OneWay, Throughput, WanLink, WanLinkPlan};

/// Everything that can go wrong while starting or talking to a test server.
///
/// `Debug` prints the same message as `Display`, so a test's `.expect(..)` shows the
/// remedy ("run scripts/test ...") and the server's output rather than a struct dump.
#[derive(thiserror::Error)]
pub enum Error {
    /// A program or package that `scripts/test` installs is not there.
    #[error("{what} is missing (looked for {}): run scripts/test (it installs test dependencies)", path.display())]
    MissingDependency {
        /// What is missing, in words.
        what: String,
        /// Where it was expected.
        path: PathBuf,
    },
    /// The operating system refused to start the server program.
    #[error("could not start {server} ({program}): {source}; run scripts/test (it installs test dependencies)")]
    Spawn {
        server: &'static str,
        program: String,
        #[source]
        source: io::Error,
    },
    /// The server exited before it answered on its port.
    #[error("{server} exited during startup ({status}); its output ends with:\n{log}")]
    Exited { server: &'static str, status: std::process::ExitStatus, log: String },
    /// The server kept running but never answered on its port.
    #[error("{server} did not answer on 127.0.0.1:{port} within {secs} s; its output ends with:\n{log}")]
    Timeout { server: &'static str, port: u16, secs: u64, log: String },
    /// A local I/O operation (temporary directory, socket, log file) failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// A container or bucket name that the server would reject (checked up front so
    /// the name can never smuggle extra path or query parts into a request).
    #[error("invalid {kind} name {name:?}: {rule}")]
    InvalidName { kind: &'static str, name: String, rule: &'static str },
    /// The server answered a setup request with an error status.
    #[error("{what} failed with HTTP {status}: {body}")]
    Status { what: String, status: u16, body: String },
    /// `object_store` rejected the client configuration.
    #[error("building the object_store client failed: {0}")]
    ObjectStore(#[from] object_store::Error),
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Directory holding the installed test dependencies: `$OFFSITE_DEPS_DIR` if set,
/// else `<repo>/.deps` (where `scripts/test` installs them).
pub fn deps_dir() -> PathBuf {
    match std::env::var_os("OFFSITE_DEPS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => repo_root().join(".deps"),
    }
}

/// The repository root: two levels above this crate's manifest (crates/testbed).
fn repo_root() -> &'static Path {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.ancestors().nth(2).unwrap_or(manifest)
}

fn io_error(context: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_deps_dir_is_in_the_repository_root() {
        let root = super::repo_root();
        assert!(root.join("scripts/test").is_file(), "{} is not the repository root", root.display());
    }
}
