//! The agent's configuration file (TOML): what to protect, when, how long to keep
//! recovery points, and how much bandwidth to use. `offsite agent protect|schedule|
//! retention|throttle` edit it; people may too.
//!
//! ```toml
//! [[protect]]
//! path = "/srv/data"
//! excludes = ["*.tmp", "/srv/data/cache"]
//!
//! [schedule]
//! times = ["02:00", "13:30"]
//! days = ["mon", "tue", "wed", "thu", "fri"]
//!
//! [retention]
//! daily = 7
//! weekly = 4
//! monthly = 12
//! yearly = 3
//!
//! [bandwidth]
//! work_days = ["mon", "tue", "wed", "thu", "fri"]
//! work_start = "09:00"
//! work_end = "18:00"
//! work_limit = "2MiB/s"
//! other_limit = "unlimited"
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{io_error, AgentError, AgentResult};
use crate::schedule::Schedule;
use crate::throttle::BandwidthPolicy;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    #[serde(default)]
    pub protect: Vec<ProtectedPath>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    #[serde(default)]
    pub retention: Retention,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<BandwidthPolicy>,
    #[serde(default)]
    pub retry: RetryPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline: Option<OfflineSeeding>,
    /// certgen's entries: the offline-seeding application and its certificate
    /// thumbprint per user (`offsite certgen add-agent-entries`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_application: Option<crate::offline_application::ApplicationEntries>,
    /// The offline seed adopted into the vault, once it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopted_seed: Option<AdoptedSeed>,
}

/// What the vault took in from an offline seed: the end of offline seeding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdoptedSeed {
    pub import_job: String,
    /// The recovery point that came on drives.
    pub snapshot_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub adopted: time::OffsetDateTime,
    pub files: u64,
    pub bytes: u64,
}

/// Offline seeding, as the seed's scheduling page asks for it: the first full
/// backup goes to a staging location, travels on drives, and is loaded into the
/// vault by the import job named here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfflineSeeding {
    /// A folder here or on a mounted share: a repository of the vault's identity.
    pub staging: PathBuf,
    /// Unique across the service; how everything tracks the transfer.
    pub import_job: String,
    pub subscription_id: String,
    pub storage_account: String,
    pub container: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_settings: Option<PathBuf>,
    /// Set once the full backup is in the staging location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged_snapshot: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtectedPath {
    pub path: PathBuf,
    #[serde(default)]
    pub excludes: Vec<String>,
}

/// How many recovery points to keep, as the seed's agent counts them. All zero
/// keeps everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
}

impl Retention {
    pub fn policy(&self) -> offsite_engine::retention::RetentionPolicy {
        offsite_engine::retention::RetentionPolicy {
            keep_last: 0,
            keep_daily: self.daily,
            keep_weekly: self.weekly,
            keep_monthly: self.monthly,
            keep_yearly: self.yearly,
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Retention::default()
    }
}

/// How hard to try before a backup is reported failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// How long one request to the service may keep failing (service down,
    /// network gone) before the backup stops; finished packs are kept either way.
    pub network_seconds: u64,
    /// The daemon's retries of a failed scheduled backup, and the first delay
    /// (doubling each time).
    pub attempts: u32,
    pub first_delay_seconds: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { network_seconds: 120, attempts: 4, first_delay_seconds: 60 }
    }
}

impl RetryPolicy {
    /// The daemon's waits between runs of a failed scheduled backup: `attempts`
    /// runs in all, the waits doubling from `first_delay_seconds`.
    pub fn daemon_backoff(&self) -> backon::ExponentialBuilder {
        backon::ExponentialBuilder::new()
            .with_min_delay(std::time::Duration::from_secs(self.first_delay_seconds.max(1)))
            .without_max_delay()
            .with_max_times(self.attempts.max(1) as usize - 1)
    }
}

impl AgentConfig {
    /// Reads the configuration; a missing file is an empty configuration.
    pub fn load(path: &Path) -> AgentResult<AgentConfig> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(AgentConfig::default()),
            Err(err) => return Err(io_error(path)(err)),
        };
        toml::from_str(&text).map_err(|e| AgentError::Config { path: path.into(), reason: e.to_string() })
    }

    /// Writes the configuration atomically (a crash leaves the old or the new file).
    pub fn save(&self, path: &Path) -> AgentResult<()> {
        let text = toml::to_string_pretty(self)
            .map_err(|e| AgentError::Config { path: path.into(), reason: e.to_string() })?;
        let temp = path.with_extension("toml.tmp");
        std::fs::write(&temp, format!("# offsite agent configuration\n{text}")).map_err(io_error(&temp))?;
        std::fs::rename(&temp, path).map_err(io_error(path))
    }

    /// Adds (or replaces the excludes of) a protected path. The path must exist.
    pub fn protect(&mut self, path: &Path, excludes: Vec<String>) -> AgentResult<PathBuf> {
        let absolute = std::fs::canonicalize(path).map_err(io_error(path))?;
        for pattern in &excludes {
            globset::Glob::new(pattern)
                .map_err(|e| AgentError::Invalid(format!("exclude pattern '{pattern}' is not a valid glob: {e}")))?;
        }
        match self.protect.iter_mut().find(|p| p.path == absolute) {
            Some(existing) => existing.excludes = excludes,
            None => self.protect.push(ProtectedPath { path: absolute.clone(), excludes }),
        }
        self.protect.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(absolute)
    }

    /// Stops protecting a path; its recovery points stay until retention removes them.
    pub fn unprotect(&mut self, path: &Path) -> AgentResult<PathBuf> {
        let wanted = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let before = self.protect.len();
        self.protect.retain(|p| p.path != wanted && p.path != path);
        if self.protect.len() == before {
            return Err(AgentError::Invalid(format!(
                "{} is not protected (see `offsite agent protect list`)",
                path.display()
            )));
        }
        Ok(wanted)
    }

    pub fn protected_items(&self) -> Vec<offsite_api::types::ProtectedItem> {
        self.protect
            .iter()
            .map(|p| offsite_api::types::ProtectedItem {
                path: p.path.display().to_string(),
                excludes: p.excludes.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_config_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = AgentConfig::default();
        config.protect(dir.path(), vec!["*.tmp".into()]).unwrap();
        config.schedule = Some(Schedule::parse("02:00,13:30", "mon,fri").unwrap());
        config.retention = Retention { daily: 7, weekly: 4, monthly: 12, yearly: 2 };
        config.bandwidth = Some(BandwidthPolicy::default());
        let path = dir.path().join("agent.toml");
        config.save(&path).unwrap();
        assert_eq!(AgentConfig::load(&path).unwrap(), config);
    }

    #[test]
    fn unknown_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, "[retention]\ndayly = 3\n").unwrap();
        let err = AgentConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("dayly"), "{err}");
    }

    #[test]
    fn protecting_a_missing_path_fails_and_unprotect_names_unknown_paths() {
        let mut config = AgentConfig::default();
        assert!(config.protect(Path::new("/no/such/path"), vec![]).unwrap_err().to_string().contains("/no/such/path"));
        assert!(config.unprotect(Path::new("/tmp")).unwrap_err().to_string().contains("not protected"));
    }
}
