//! The agent: a machine registered to a vault. It keeps its configuration
//! (protected items, schedule, retention, bandwidth limits) and its state
//! (registration, passphrase, job history) on the machine, backs up to its
//! repository in the vault through the service, and restores from it.
//!
//! - [`home`], [`config`], [`registration`], [`history`]: what lives on the machine;
//! - [`schedule`], [`throttle`]: when to run and how fast to send;
//! - [`vault_backend`], [`repository`]: the repository in the vault, over the API;
//! - [`backup`], [`restore`], [`daemon`], [`status`]: the operations;
//! - [`offline`], [`offline_application`], [`seed_check`]: offline seeding (staging, certgen's
//!   identity, adoption and the check of an adopted seed); [`estimate`]: what a staging
//!   backup would hold, measured without writing it.

#![forbid(unsafe_code)]

pub mod backup;
pub mod config;
pub mod daemon;
pub mod error;
pub mod estimate;
pub mod export;
pub mod history;
pub mod home;
pub mod offline;
pub mod offline_application;
pub mod registration;
pub mod repository;
pub mod restore;
pub mod schedule;
pub mod seed_check;
pub mod status;
pub mod throttle;
pub mod vault_backend;

pub use error::{AgentError, AgentResult};
pub use home::AgentHome;

/// This machine's host name, as recorded with its registration.
pub fn hostname() -> String {
    rustix::system::uname().nodename().to_string_lossy().into_owned()
}
