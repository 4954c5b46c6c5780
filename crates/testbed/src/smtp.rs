//! A real SMTP server: aiosmtpd (PyPI) delivering into a Maildir, for the
//! notification tests.

use std::path::Path;
use std::process::Command;

use crate::process::ServerProcess;
use crate::{deps_dir, Error, Result};

/// A running aiosmtpd on a loopback port, killed on drop. It accepts any
/// message and stores each as a file of its Maildir.
#[derive(Debug)]
pub struct SmtpServer {
    process: ServerProcess,
}

impl SmtpServer {
    /// Starts aiosmtpd from the Python venv that `scripts/test` creates under
    /// [`deps_dir()`]`/venv`.
    pub fn start() -> Result<Self> {
        Self::start_with_deps(&deps_dir())
    }

    pub fn start_with_deps(deps: &Path) -> Result<Self> {
        let python = deps.join("venv/bin/python");
        let module = deps.join("venv/bin/aiosmtpd");
        if !module.is_file() {
            return Err(Error::MissingDependency {
                what: "aiosmtpd (PyPI package aiosmtpd)".to_string(),
                path: module,
            });
        }
        let process = ServerProcess::start("aiosmtpd SMTP server", "offsite-smtp-", |port, dir| {
            let mut cmd = Command::new(&python);
            cmd.args(["-m", "aiosmtpd", "-n", "-l"])
                .arg(format!("127.0.0.1:{port}"))
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(dir.join("maildir"));
            cmd
        })?;
        Ok(SmtpServer { process })
    }

    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// The URL offsite's `--smtp-url` takes for it (plain SMTP on loopback).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port())
    }

    /// Every message received so far, whole (headers and body).
    pub fn messages(&self) -> Vec<String> {
        let mut found = Vec::new();
        for folder in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.process.dir().join("maildir").join(folder)) else { continue };
            for entry in entries.flatten() {
                if let Ok(text) = std::fs::read_to_string(entry.path()) {
                    found.push(text);
                }
            }
        }
        found
    }
}
