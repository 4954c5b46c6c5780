//! Offline seeding: the first backup travels on drives instead of the network.
//!
//! - [`import_job`]: the life cycle of an import job and of each of its drives,
//!   as states with their allowed transitions;
//! - [`export`]: the station's side of an export job (spooling the files it
//!   carries, before diskprep's writer puts them on drives);
//! - [`export_job`]: the life cycle of an export job (offline restore) and the
//!   drives it needs;
//! - [`application`]: the subscription's offline-seeding application identity
//!   (certgen's key pair and certificate, `OfflineApplicationParams.xml`);
//! - [`drive`]: the drive format (`docs/DRIVE-FORMAT.md`): header with key slots,
//!   blocks encrypted under a per-drive key, an authenticated manifest;
//! - [`drive_set`]: a set of drives read back as a repository (the engine's
//!   `Backend`, read-only), for restoring from export drives;
//! - [`staging`]: the staging location's files, in stream order;
//! - [`file_list`]: those files as the import job's file list, which the service
//!   checks the container against before the job completes;
//! - [`diskprep`]: copying a staging location onto a set of drives, with a journal
//!   to resume, and repair sets;
//! - [`admission`]: whether a drive presented at the datacenter is one its import job expects;
//! - [`ingest`]: reading a drive at the datacenter and handing its files to an uploader;
//! - [`station`]: the ingest station's protocol with the service around that reading
//!   (which job, drive states, logs, packaging), for any station;
//! - [`plan`]: the ship-or-upload planner (days over the network against days on
//!   drives, for the first backup and a full restore; whether the daily incremental
//!   fits the uplink), pure arithmetic shared by `offsite plan` and the portal;
//! - [`measured`]: the throughputs this machine measured (diskprep, ingest, the
//!   staging backup), kept in a small file for the planner.

#![forbid(unsafe_code)]

pub mod admission;
pub mod application;
pub mod custody;
pub mod diskprep;
pub mod drive;
pub mod drive_set;
pub mod export;
pub mod export_job;
pub mod file_list;
pub mod import_job;
pub mod ingest;
pub mod measured;
pub mod plan;
pub mod staging;
pub mod station;
pub mod wipe;
