//! A real load balancer: HAProxy (Debian's `haproxy`, installed by `scripts/test`)
//! in front of several `offsite server run` replicas, as docs/OPERATIONS.md sets
//! them up: TLS passed through (the replicas share one certificate), round robin,
//! and a health check of each replica's `/healthz` over HTTPS, so a replica that
//! dies is taken out of the rotation within a second (a connection it refuses
//! before then is retried on another replica).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::ServerProcess;
use crate::{io_error, Error, Result};

/// Where Debian installs the program.
const PROGRAM: &str = "/usr/sbin/haproxy";

/// A running HAProxy on a loopback port, killed on drop.
#[derive(Debug)]
pub struct Haproxy {
    process: ServerProcess,
}

impl Haproxy {
    /// Balances a free loopback port over the replicas listening on `backends`
    /// (loopback ports; they may start later: a replica joins once its health
    /// check passes twice).
    pub fn start(backends: &[u16]) -> Result<Self> {
        Self::start_with(backends, false)
    }

    /// [`Haproxy::start`], sending each replica a PROXY protocol v2 header with
    /// the client's address when `proxy_protocol` (for `server run
    /// --proxy-protocol`); health checks send one too.
    pub fn start_with(backends: &[u16], proxy_protocol: bool) -> Result<Self> {
        let program = PathBuf::from(PROGRAM);
        if !program.is_file() {
            return Err(Error::MissingDependency { what: "HAProxy (Debian package haproxy)".into(), path: program });
        }
        let process = ServerProcess::start("HAProxy", "offsite-haproxy-", |port, dir| {
            let config = dir.join("haproxy.cfg");
            // A failed write shows as HAProxy refusing to start, with its log.
            let _ = std::fs::write(&config, config_text(port, backends, proxy_protocol));
            let mut cmd = Command::new(&program);
            cmd.arg("-db").arg("-f").arg(&config);
            cmd
        })?;
        Ok(Haproxy { process })
    }

    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// The URL clients use: the balancer's, the replicas' `--public-url`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port())
    }

    /// HAProxy's own log (which replica went down or up, and when).
    pub fn log(&self) -> String {
        read_logs(self.process.dir())
    }
}

fn config_text(port: u16, backends: &[u16], proxy_protocol: bool) -> String {
    let mut text = format!(
        "global\n    maxconn 4096\n\ndefaults\n    mode tcp\n    timeout connect 2s\n    timeout client 300s\n    \
         timeout server 300s\n    retries 3\n    option redispatch\n    log stdout format raw local0\n\nfrontend offsite\n    bind 127.0.0.1:{port}\n    \
         default_backend replicas\n\nbackend replicas\n    balance roundrobin\n    option httpchk GET /healthz\n    \
         http-check expect status 200\n    default-server check check-ssl verify none inter 300ms fall 2 rise 2{}\n",
        if proxy_protocol { " send-proxy-v2 check-send-proxy" } else { "" }
    );
    for (i, backend) in backends.iter().enumerate() {
        text.push_str(&format!("    server replica{} 127.0.0.1:{backend}\n", i + 1));
    }
    text
}

fn read_logs(dir: &Path) -> String {
    let mut text = String::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten().filter(|e| e.file_name().to_string_lossy().ends_with(".log")) {
            text.push_str(
                &std::fs::read_to_string(entry.path()).map_err(io_error("reading HAProxy's log")).unwrap_or_default(),
            );
        }
    }
    text
}
