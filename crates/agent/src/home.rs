//! Where the agent keeps its files. The configuration (TOML, edited by people and
//! by `offsite agent …` commands) and the state (registration, passphrase, job
//! history: private, 0600) live in the usual places:
//! - as root: `/etc/offsite/agent.toml` and `/var/lib/offsite/agent/`;
//! - as a user: `$XDG_CONFIG_HOME/offsite/agent.toml` (`~/.config`) and
//!   `$XDG_STATE_HOME/offsite/agent/` (`~/.local/state`);
//! - or both inside one folder given by `--agent-home` / `OFFSITE_AGENT_HOME`.
//!
//! The local cache of the vault repository (sealed copies of its index,
//! snapshots and trees: only time is lost without it) is in `/var/cache/offsite/agent`
//! as root, `$XDG_CACHE_HOME/offsite/agent` (`~/.cache`) as a user, or
//! `state/cache` inside the `--agent-home` folder.

use std::path::{Path, PathBuf};

use offsite_engine::cache::CacheSettings;

use crate::error::{io_error, AgentResult};

#[derive(Debug, Clone)]
pub struct AgentHome {
    pub config_file: PathBuf,
    pub state_dir: PathBuf,
    /// The folder given with `--agent-home`, if one was.
    pub folder: Option<PathBuf>,
    /// Where the local cache of the vault repository is kept: `<state>/cache`
    /// unless `--cache-dir` says otherwise; `None` with `--no-cache`.
    pub cache_dir: Option<PathBuf>,
}

impl AgentHome {
    /// Both files in one folder (tests, portable installs, several agents on one host).
    pub fn in_folder(folder: &Path) -> AgentHome {
        AgentHome {
            config_file: folder.join("agent.toml"),
            state_dir: folder.join("state"),
            folder: Some(folder.to_path_buf()),
            cache_dir: Some(folder.join("state/cache")),
        }
    }

    /// A command to print as the next step for this agent: `offsite ROLE ARGS…`
    /// with `--agent-home DIR` after the role when this home was given that way,
    /// so that typed as printed it works on this agent's files and no other.
    /// `command` is `"agent backup --now"`, `"certgen export-cert --out F"`, …
    pub fn command(&self, command: &str) -> String {
        let (role, rest) = command.split_once(' ').unwrap_or((command, ""));
        let mut line = format!("offsite {role}");
        if let Some(folder) = &self.folder {
            line.push_str(" --agent-home ");
            line.push_str(&shell_word(&folder.display().to_string()));
        }
        if !rest.is_empty() {
            line.push(' ');
            line.push_str(rest);
        }
        line
    }

    /// The usual places for the current user.
    pub fn default_locations() -> AgentHome {
        if rustix::process::geteuid().is_root() {
            return AgentHome {
                config_file: PathBuf::from("/etc/offsite/agent.toml"),
                state_dir: PathBuf::from("/var/lib/offsite/agent"),
                folder: None,
                cache_dir: Some(PathBuf::from("/var/cache/offsite/agent")),
            };
        }
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
        let xdg = |var: &str, fallback: &str| {
            std::env::var_os(var).map(PathBuf::from).filter(|p| p.is_absolute()).unwrap_or_else(|| home.join(fallback))
        };
        AgentHome {
            config_file: xdg("XDG_CONFIG_HOME", ".config").join("offsite/agent.toml"),
            state_dir: xdg("XDG_STATE_HOME", ".local/state").join("offsite/agent"),
            folder: None,
            cache_dir: Some(xdg("XDG_CACHE_HOME", ".cache").join("offsite/agent")),
        }
    }

    /// The local repository cache's place and bound, unless it is turned off.
    pub fn cache_settings(&self) -> Option<CacheSettings> {
        self.cache_dir.as_ref().map(CacheSettings::at)
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

    /// Where this machine's measured throughputs are kept for the planner
    /// (`offsite_seeding::measured`): in the `--agent-home` folder, else in the
    /// user's state folder beside diskprep's journals
    /// (`$XDG_STATE_HOME/offsite/measured-rates.json`), so that the agent, diskprep,
    /// an ingest on this machine and `offsite plan` all find the same file.
    pub fn measured_rates_file(&self) -> PathBuf {
        use offsite_seeding::measured::MeasuredRates;
        if let Some(folder) = &self.folder {
            return folder.join(MeasuredRates::FILE_NAME);
        }
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
        std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| home.join(".local/state"))
            .join("offsite")
            .join(MeasuredRates::FILE_NAME)
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

/// `text` as one word a POSIX shell reads back unchanged: as it is when it holds
/// only characters no shell treats specially, else in single quotes.
pub fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | ':' | '@' | '%' | '+' | '=' | ',')
        });
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_steps_name_the_agent_home_they_were_given() {
        let home = AgentHome::in_folder(Path::new("/srv/agent two"));
        assert_eq!(home.command("agent backup --now"), "offsite agent --agent-home '/srv/agent two' backup --now");
        assert_eq!(home.command("diskprep"), "offsite diskprep --agent-home '/srv/agent two'");
        let usual = AgentHome { folder: None, ..home };
        assert_eq!(usual.command("agent backup --now"), "offsite agent backup --now");
    }

    #[test]
    fn shell_words_read_back_unchanged() {
        assert_eq!(shell_word("/tmp/a-b_c.d"), "/tmp/a-b_c.d");
        assert_eq!(shell_word("it's here"), "'it'\\''s here'");
        assert_eq!(shell_word(""), "''");
    }
}
