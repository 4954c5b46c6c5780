//! ChromeDriver with Debian's Chromium, for the portal's browser tests: a WebDriver
//! server on a loopback port, killed on drop.

use std::path::PathBuf;
use std::process::Command;

use crate::process::ServerProcess;
use crate::{Error, Result};

#[derive(Debug)]
pub struct ChromeDriver {
    process: ServerProcess,
    browser: PathBuf,
}

/// Where Debian's packages `chromium-driver` and `chromium` put their programs
/// (`OFFSITE_CHROMEDRIVER` and `OFFSITE_CHROMIUM` override).
fn program(env: &str, candidates: &[&str], what: &str) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(env).map(PathBuf::from) {
        return Ok(path);
    }
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| Error::MissingDependency { what: what.to_string(), path: PathBuf::from(candidates[0]) })
}

impl ChromeDriver {
    pub fn start() -> Result<Self> {
        let driver = program(
            "OFFSITE_CHROMEDRIVER",
            &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
            "ChromeDriver (Debian package chromium-driver)",
        )?;
        let browser = program(
            "OFFSITE_CHROMIUM",
            &["/usr/bin/chromium", "/usr/lib/chromium/chromium"],
            "Chromium (Debian package chromium)",
        )?;
        let process = ServerProcess::start("ChromeDriver", "offsite-chromedriver-", |port, _dir| {
            let mut cmd = Command::new(&driver);
            cmd.arg(format!("--port={port}")).arg("--allowed-ips=127.0.0.1");
            cmd
        })?;
        Ok(ChromeDriver { process, browser })
    }

    /// The WebDriver endpoint, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.process.port())
    }

    /// The Chromium binary the session should run.
    pub fn browser(&self) -> &std::path::Path {
        &self.browser
    }
}
