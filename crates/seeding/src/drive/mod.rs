//! The drive format, version 1 (`docs/DRIVE-FORMAT.md`): how diskprep puts a staging
//! location onto encrypted drives and how the ingest station reads it back.
//!
//! A drive is one byte container (a block device, an image file, or the image file
//! `offsite-drive.img` in a folder on a mounted drive). Its layout:
//!
//! ```text
//! 0 .. 64 KiB        header region: magic, version, header body, checksum, MAC
//! 64 KiB ..          block 0, block 1, …   each block_size bytes of ciphertext + 16-byte tag
//!                    data blocks (the drive's share of the set's stream), then the manifest
//! ```
//!
//! Every byte after the header is AES-256-GCM under a random per-drive key, which the
//! header holds wrapped twice: to the service's import key and to a recovery key the
//! customer keeps. A lost drive therefore shows only its header (ids, the import
//! job's name, the block size and how many blocks were written), never a file name or size.
//!
//! One file per idea:
//! - [`error`]: [`DriveError`], what went wrong and what to do;
//! - [`target`]: [`DriveTarget`], opening a device, image or folder with its capacity;
//! - [`recovery_key`]: [`RecoveryKey`], the key shown once to the customer;
//! - [`key_slot`]: wrapping the drive key to the import key and the recovery key, [`DriveKey`];
//! - [`header`]: the header region, its checksum and MAC, [`peek_header_unauthenticated`];
//! - [`block`]: block geometry, nonces and associated data, sealing and opening one block;
//! - [`manifest`]: [`DriveManifest`], file parts, path rules and the manifest's size bound;
//! - [`writer`]: [`DriveWriter`], used by diskprep;
//! - [`reader`]: [`DriveReader`], used by the ingest station.

pub mod block;
pub mod error;
pub mod header;
pub mod key_slot;
pub mod manifest;
pub mod reader;
pub mod recovery_key;
pub mod target;
pub mod writer;

pub use error::DriveError;
pub use header::{peek_header_unauthenticated, DriveHeader, ManifestLocation, PublicHeaderInfo};
pub use key_slot::{DriveKey, ImportSlot, RecoverySlot};
pub use manifest::{validate_path, DriveManifest, FilePart};
pub use reader::{BadBlock, BlockProblem, DriveReader, PartRange, VerifyReport};
pub use recovery_key::RecoveryKey;
pub use target::{resolve_drive_path, DriveTarget};
pub use writer::{new_set_id, DriveSpec, DriveSummary, DriveWriter, ResumeState};

/// The format version this code writes and the highest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// The first 16 bytes of every drive.
pub const MAGIC: [u8; 16] = *b"OFFSITE-DRIVE\0\0\0";

/// Bytes reserved for the header at the start of the drive; block 0 starts here.
pub const HEADER_REGION: u64 = 64 * 1024;

/// The block size diskprep uses unless told otherwise.
pub const DEFAULT_BLOCK_SIZE: u32 = 1024 * 1024;

/// Block sizes are multiples of this, between it and [`MAX_BLOCK_SIZE`].
pub const MIN_BLOCK_SIZE: u32 = 4096;

/// The largest block size: a reader holds one block in memory at a time, so this
/// bounds its memory whatever a header says.
pub const MAX_BLOCK_SIZE: u32 = 64 * 1024 * 1024;

/// Bytes the authentication tag adds to every block.
pub const TAG_LEN: u64 = 16;

/// The longest import job name, in characters.
pub const MAX_IMPORT_JOB_CHARS: usize = 64;

/// The longest path of a file in the manifest, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;

/// The largest manifest (encoded, before padding). Readers refuse larger ones before
/// allocating; writers stop taking data before the manifest would grow past it.
/// With 1 MiB blocks this allows drives of about 32 TiB.
pub const MAX_MANIFEST_BYTES: u64 = 1024 * 1024 * 1024;

/// The most file parts one drive's manifest may list: 32 TiB of the engine's default
/// 16 MiB packs. A customer holds its drive key and can sign any manifest, so the
/// station counts before it decodes: a part costs the station about 80 bytes of
/// memory for as few as 5 bytes on the drive.
pub const MAX_MANIFEST_PARTS: u64 = 1 << 21;

/// The most bytes all paths of one manifest may take together: 128 bytes for each
/// of [`MAX_MANIFEST_PARTS`] (a repository's paths take 72 or less).
pub const MAX_MANIFEST_PATH_BYTES: u64 = 1 << 28;

/// The name of the image file inside a folder target.
pub const FOLDER_IMAGE_NAME: &str = "offsite-drive.img";

/// Identifies one drive (random).
pub type DriveId = [u8; 16];

/// Identifies one preparation of one import job, shared by all its drives (random).
pub type SetId = [u8; 16];
