//! The service's operations, one module per resource: what each caller may do, the
//! checks on what it sends, and the changes stored. Each operation takes the shared
//! state, the caller's [`Principal`](crate::principal::Principal) and plain
//! arguments, and returns the API's views. The API's routes and the portal's pages
//! both call these, so a page can do nothing the API would refuse that caller.
//!
//! Services use the database ([`crate::db`]) and the storage ([`crate::storage`]);
//! nothing here knows about requests, pages or cookies.

pub mod adoption;
pub mod applications;
pub mod custody;
pub mod datacenters;
pub mod exports;
pub mod import_jobs;
pub mod jobs;
pub mod machines;
pub mod notifications;
pub mod portal_users;
pub mod protection;
pub mod quotas;
pub mod registration;
pub mod repository;
pub mod storage_accounts;
pub mod subscriptions;
pub mod system;
pub mod vaults;

use crate::error::Failure;

/// Checks a resource name from a request body.
fn check_name(what: &str, name: &str) -> Result<(), Failure> {
    offsite_api::types::check_name(what, name).map_err(Failure::BadRequest)
}
