//! The offsite backup engine.
//!
//! A repository is a set of encrypted, content-addressed files in a [`backend`]:
//! packs of deduplicated, compressed, sealed blobs; index files that say where each
//! blob lives; snapshots that name a root tree; key files that wrap the master key
//! under each passphrase. `docs/REPOSITORY.md` specifies the format.
//!
//! The layers, bottom up:
//! - [`backend`]: where files live (a folder, S3, Azure Blob, GCS);
//! - [`crypto`], [`chunker`], [`repofile`]: the format of every file;
//! - [`repository`], [`index`], [`saver`]: reading and writing blobs;
//! - [`cache`]: a remote repository's metadata on local disk;
//! - [`archiver`], [`restorer`], [`check`], [`retention`], [`prune`], [`browse`]:
//!   the operations the `offsite repo` commands expose;
//! - [`estimate`]: what a first backup would store, counted without writing.
//!
//! ```no_run
//! use offsite_engine::{backend, repository::{Repository, InitOptions}, archiver};
//! let storage = backend::open("/srv/backup", &[]).unwrap();
//! let repo = Repository::init(storage, b"a long passphrase", InitOptions::default()).unwrap();
//! let options = archiver::BackupOptions::new(vec!["/home".into()]);
//! let outcome = archiver::backup(&repo, &options, &Default::default()).unwrap();
//! println!("snapshot {}", outcome.snapshot_id);
//! ```
#![forbid(unsafe_code)]

pub mod archiver;
pub mod backend;
mod blob;
pub mod browse;
pub mod cache;
pub mod check;
pub mod chunker;
pub mod crypto;
pub mod error;
pub mod estimate;
pub mod export;
mod host;
pub mod id;
pub mod index;
pub mod lock;
pub mod pack_reader;
pub mod progress;
pub mod prune;
pub mod repofile;
pub mod repository;
pub mod restorer;
pub mod retention;
pub mod saver;
mod source;

pub use error::{Error, Result};
pub use id::Id;
pub use repository::{InitOptions, Repository};
