//! One module per top-level command.

pub mod admin;
pub mod agent;
pub mod certgen;
pub mod datacenter;
pub mod demo;
pub mod diskprep;
pub mod docs;
mod export;
mod notifications;
pub mod plan;
mod protection;
pub mod repo;
pub mod server;
