//! What the service and its clients agree on: the JSON types of the REST API
//! ([`types`]), the credential files users download and hand to other machines
//! ([`files`]), certificate pinning ([`tls`]) and a blocking HTTP client ([`client`])
//! used by the agent and the admin commands, whose uploads a [`Pacer`] may pace
//! ([`pacing`]).

#![forbid(unsafe_code)]

pub mod application_auth;
pub mod client;
pub mod files;
pub mod import_key;
pub mod pacing;
pub mod possession;
pub mod size;
pub mod tls;
pub mod types;

pub use client::{ApiError, Client};
pub use files::XmlCredentialFile;
pub use pacing::Pacer;
