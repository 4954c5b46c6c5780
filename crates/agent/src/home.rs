//! Where the agent keeps its files. The configuration (TOML, edited by people and
//! by `offsite agent …` commands) and the state (registration, passphrase, job
//! history: private, 0600) live in the usual places:
//! - as root: `/etc/offsite/agent.toml` and `/var/lib/offsite/agent/`;
//! - as a user: `$XDG_CONFIG_HOME/offsite/agent.toml` (`~/.config`) and
//!   `$XDG_STATE_HOME/offsite/agent/` (`~/.local/state`);
//! - or both inside one folder given by `--agent-home` / `OFFSITE_AGENT_HOME`.

use std::path::{Path, PathBuf};

use crate::error::{io_error, AgentResult};

#[derive(Debug, Clone)]
pub struct AgentHome {
    pub config_file: PathBuf,
    pub state_dir: PathBuf,
}

impl AgentHome {
    /// Both files in one folder (tests, portable installs, several agents on one host).
    pub fn in_folder(folder: &Path) -> AgentHome {
        AgentHome { config_file: folder.join("agent.toml"), state_dir: folder.join("state") }
    }

    /// The usual places for the current user.
    pub fn default_locations() -> AgentHome {
        if rustix::process::geteuid().is_root() {
            return AgentHome {
                config_file: PathBuf::from("/etc/offsite/agent.toml"),
                state_dir: PathBuf::from("/var/lib/offsite/agent"),
            };
        }
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
        let xdg = |var: &str, fallback: &str| {
            std::env::var_os(var).map(PathBuf::from).filter(|p| p.is_absolute()).unwrap_or_else(|| home.join(fallback))
        };
        AgentHome {
            config_file: xdg("XDG_CONFIG_HOME", ".config").join("offsite/agent.toml"),
            state_dir: xdg("XDG_STATE_HOME", ".local/state").join("offsite/agent"),
        }
    }

    pub fn registration_file(&self) -> PathBuf {
        self.state_dir.join("registration.toml")
    }

    pub fn passphrase_file(&self) -> PathBuf {
        self.state_dir.join("passphrase")
    }

    pub fn history_file(&self) -> PathBuf {
        self.state_dir.join("jobs.jsonl")
    }

    /// Creates the state folder, private to the owner.
    pub fn ensure_state_dir(&self) -> AgentResult<()> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(&self.state_dir).map_err(io_error(&self.state_dir))?;
        std::fs::set_permissions(&self.state_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io_error(&self.state_dir))?;
        if let Some(parent) = self.config_file.parent() {
            std::fs::create_dir_all(parent).map_err(io_error(parent))?;
        }
        Ok(())
    }
}
