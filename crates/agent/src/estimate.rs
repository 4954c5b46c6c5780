//! `offsite agent offline estimate`: what a staging backup of the protected paths
//! would hold, measured without writing it. The repository's own chunking and
//! compression are used ([`offsite_engine::estimate`]): those of the staging
//! location when offline seeding is configured (its keys are a copy of the
//! vault's, read here on disk), else of the vault repository (its config and keys
//! read through the service; no cache kept). Nothing is written to either. The
//! reading rate is kept for the planner ([`crate::home::AgentHome::measured_rates_file`]),
//! unless a real staging backup measured it already.

use std::path::PathBuf;
use std::sync::Arc;

use offsite_engine::backend::{Backend, LocalBackend};
use offsite_engine::estimate::Estimate;
use offsite_engine::progress::Progress;
use offsite_engine::repository::Repository;
use offsite_seeding::measured::{MeasuredRates, Measurement};
use serde::Serialize;

use crate::config::AgentConfig;
use crate::error::{AgentError, AgentResult};
use crate::home::AgentHome;
use crate::registration::{stored_passphrase, Registration};

/// The estimate and what it was made with.
#[derive(Debug, Clone, Serialize)]
pub struct OfflineEstimate {
    #[serde(flatten)]
    pub estimate: Estimate,
    pub paths: Vec<PathBuf>,
    /// Whose chunking and compression: `staging location PATH` or `vault NAME`.
    pub repository: String,
    /// The measured-rates file the reading rate went into, when it did.
    pub rate_recorded_in: Option<PathBuf>,
}

/// Estimates a staging backup of the protected paths; `progress` counts what is read.
pub fn estimate(home: &AgentHome, progress: &Progress) -> AgentResult<OfflineEstimate> {
    let config = AgentConfig::load(&home.config_file)?;
    if config.protect.is_empty() {
        return Err(AgentError::NothingProtected { protect: home.command("agent protect add PATH") });
    }
    let passphrase = stored_passphrase(home)?;
    let staging = config.offline.as_ref().map(|o| o.staging.clone()).filter(|s| s.join("config").is_file());
    let (repo, repository) = match staging {
        Some(staging) => {
            let local: Arc<dyn Backend> = Arc::new(LocalBackend::new(staging.display().to_string()));
            let repo = match Repository::open(local, passphrase.as_bytes()) {
                Err(offsite_engine::Error::WrongPassphrase { .. }) => return Err(AgentError::WrongPassphrase),
                other => other?,
            };
            (repo, format!("staging location {}", staging.display()))
        }
        None => {
            let registration = Registration::load(home)?;
            let vault = crate::repository::open(&registration, &passphrase, &config.retry, None, None)?;
            (vault.repo, format!("vault {}", registration.vault_name))
        }
    };
    let paths: Vec<PathBuf> = config.protect.iter().map(|p| p.path.clone()).collect();
    let excludes: Vec<String> = config.protect.iter().flat_map(|p| p.excludes.iter().cloned()).collect();
    let estimate = offsite_engine::estimate::estimate(&repo, &paths, &excludes, progress)?;

    let what =
        format!("offline estimate of {}", if paths.len() == 1 { "the protected path" } else { "the protected paths" });
    let rate_recorded_in = Measurement::new(estimate.bytes, estimate.seconds, what).and_then(|measurement| {
        let path = home.measured_rates_file();
        match MeasuredRates::record_estimate(&path, measurement) {
            Ok(true) => Some(path),
            Ok(false) => None,
            Err(err) => {
                tracing::warn!("{err}");
                None
            }
        }
    });
    Ok(OfflineEstimate { estimate, paths, repository, rate_recorded_in })
}
