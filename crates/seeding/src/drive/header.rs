//! The header region: the first 64 KiB of a drive.
//!
//! ```text
//! offset   size  field
//! 0        16    magic "OFFSITE-DRIVE\0\0\0"
//! 16       4     format version, u32 little-endian (1)
//! 20       4     body length L, u32 little-endian (1 ..= 65448)
//! 24       L     body: DriveHeader, postcard
//! 24+L     32    checksum: BLAKE3(bytes 0 .. 24+L)
//! 56+L     32    MAC: BLAKE3-keyed(derive_key("offsite drive v1 header mac", drive key), bytes 0 .. 56+L)
//! 88+L ..  64 KiB  zero
//! ```
//!
//! The unkeyed checksum lets a reader tell an accidentally damaged header (a bad
//! sector, a flipped bit in a key slot) from a wrong key before it has the drive key;
//! the MAC, checked once a slot has given the drive key, makes the header
//! authenticated. Everything [`peek_header_unauthenticated`] returns is unauthenticated.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::key_slot::{ImportSlot, RecoverySlot};
use super::target::open_for_reading;
use super::{
    DriveError, DriveId, SetId, FORMAT_VERSION, HEADER_REGION, MAGIC, MAX_BLOCK_SIZE, MAX_IMPORT_JOB_CHARS,
    MAX_MANIFEST_BYTES, MIN_BLOCK_SIZE,
};

const MAC_CONTEXT: &str = "offsite drive v1 header mac";
/// Magic, version and body length.
const PREFIX_LEN: usize = 24;
/// Checksum and MAC.
const TRAILER_LEN: usize = 64;
/// The longest body that fits in the header region.
pub const MAX_BODY_LEN: usize = HEADER_REGION as usize - PREFIX_LEN - TRAILER_LEN;

/// The header body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriveHeader {
    pub drive_id: DriveId,
    pub set_id: SetId,
    pub import_job: String,
    /// This drive's place in its set, from 0.
    pub index: u32,
    pub block_size: u32,
    /// How many blocks fit on the drive after the header region.
    pub capacity_blocks: u64,
    /// Data blocks written; 0 until the drive is finished.
    pub data_blocks: u64,
    /// Where the manifest is; all zero until the drive is finished.
    pub manifest: ManifestLocation,
    pub finished: bool,
    pub import_slot: ImportSlot,
    pub recovery_slot: RecoverySlot,
}

/// Where the manifest lies: `block_count` blocks from block `first_block`, holding
/// `byte_length` bytes of encoded manifest followed by zero padding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestLocation {
    pub first_block: u64,
    pub block_count: u64,
    pub byte_length: u64,
}

/// What anyone can read from a drive without a key: enough for the datacenter to
/// match a drive to an import job before unlocking it. None of it is authenticated
/// until [`super::DriveReader::open`] succeeds, unless `fingerprint` matches the one
/// diskprep registered with the import job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicHeaderInfo {
    pub drive_id: DriveId,
    pub set_id: SetId,
    pub import_job: String,
    pub index: u32,
    pub finished: bool,
    pub block_size: u32,
    pub data_blocks: u64,
    /// BLAKE3 of the header bytes up to and including the MAC. It differs for every
    /// header a writer writes (the key slots are random), so diskprep can register it
    /// with the import job and the datacenter can check a drive is the one prepared.
    pub fingerprint: [u8; 32],
}

/// A header read from a drive, checksum verified, MAC not yet verified.
pub(crate) struct Parsed {
    pub header: DriveHeader,
    /// Bytes 0 .. 56+L: what the MAC covers.
    signed: Vec<u8>,
    mac: [u8; 32],
    /// BLAKE3 of bytes 0 .. 88+L. It changes with every header a writer writes (the
    /// key slots are random), so diskprep can register it with the import job and the
    /// datacenter can check a drive is the one prepared, before unlocking it.
    pub fingerprint: [u8; 32],
}

impl Parsed {
    /// Checks the MAC with the drive key a slot gave (constant-time comparison).
    pub fn mac_matches(&self, drive_key: &[u8; 32]) -> bool {
        let expected = blake3::keyed_hash(&blake3::derive_key(MAC_CONTEXT, drive_key), &self.signed);
        expected == blake3::Hash::from(self.mac)
    }
}

impl DriveHeader {
    /// The whole header region (64 KiB) with checksum and MAC under `drive_key`,
    /// and the fingerprint.
    pub fn encode_region(&self, drive_key: &[u8; 32]) -> Result<(Vec<u8>, [u8; 32]), DriveError> {
        let body =
            postcard::to_stdvec(self).map_err(|e| DriveError::InvalidSpec(format!("cannot encode the header: {e}")))?;
        if body.len() > MAX_BODY_LEN {
            return Err(DriveError::InvalidSpec(format!("the header body would take {} bytes", body.len())));
        }
        let mut region = Vec::with_capacity(HEADER_REGION as usize);
        region.extend_from_slice(&MAGIC);
        region.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        region.extend_from_slice(&(body.len() as u32).to_le_bytes());
        region.extend_from_slice(&body);
        let checksum = blake3::hash(&region);
        region.extend_from_slice(checksum.as_bytes());
        let mac = blake3::keyed_hash(&blake3::derive_key(MAC_CONTEXT, drive_key), &region);
        region.extend_from_slice(mac.as_bytes());
        let fingerprint = *blake3::hash(&region).as_bytes();
        region.resize(HEADER_REGION as usize, 0);
        Ok((region, fingerprint))
    }

    /// Checks the fields' values against each other and the format's limits; the
    /// reason names the first field that is wrong.
    pub(crate) fn check_fields(&self) -> Result<(), String> {
        check_import_job(&self.import_job)?;
        check_block_size(self.block_size)?;
        let bs = u64::from(self.block_size);
        let m = &self.manifest;
        if self.finished {
            if m.first_block != self.data_blocks {
                return Err(format!(
                    "the manifest starts at block {} instead of right after the {} data blocks",
                    m.first_block, self.data_blocks
                ));
            }
            if m.byte_length == 0 || m.byte_length > MAX_MANIFEST_BYTES {
                return Err(format!("manifest length {} is outside 1 ..= {MAX_MANIFEST_BYTES}", m.byte_length));
            }
            if m.block_count != m.byte_length.div_ceil(bs) {
                return Err(format!("{} manifest blocks cannot hold exactly {} bytes", m.block_count, m.byte_length));
            }
            let used = self.data_blocks.checked_add(m.block_count).ok_or("block counts overflow")?;
            if used > self.capacity_blocks {
                return Err(format!("{used} blocks used on a drive of {} blocks", self.capacity_blocks));
            }
        } else if self.data_blocks != 0 || *m != ManifestLocation::default() {
            return Err("an unfinished drive records data blocks or a manifest".into());
        }
        Ok(())
    }

    pub(crate) fn public_info(&self, fingerprint: [u8; 32]) -> PublicHeaderInfo {
        PublicHeaderInfo {
            drive_id: self.drive_id,
            set_id: self.set_id,
            import_job: self.import_job.clone(),
            index: self.index,
            finished: self.finished,
            block_size: self.block_size,
            data_blocks: self.data_blocks,
            fingerprint,
        }
    }
}

/// Import job names: 1 to 64 characters, no control characters (they are printed).
pub(crate) fn check_import_job(name: &str) -> Result<(), String> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_IMPORT_JOB_CHARS {
        return Err(format!("the import job name has {chars} characters; it must have 1 to {MAX_IMPORT_JOB_CHARS}"));
    }
    if name.chars().any(char::is_control) {
        return Err("the import job name contains control characters".into());
    }
    Ok(())
}

pub(crate) fn check_block_size(block_size: u32) -> Result<(), String> {
    // MIN_BLOCK_SIZE is a power of two (the mask keeps the workspace's Rust 1.85;
    // `is_multiple_of` came in 1.87).
    if !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size) || block_size & (MIN_BLOCK_SIZE - 1) != 0 {
        return Err(format!(
            "block size {block_size} is not a multiple of {MIN_BLOCK_SIZE} between {MIN_BLOCK_SIZE} and {MAX_BLOCK_SIZE}"
        ));
    }
    Ok(())
}

/// Reads and parses the header region of an open drive of `size` bytes; checks the
/// magic, version, lengths, checksum and field values, but not the MAC.
pub(crate) fn read_header(file: &mut File, path: &Path, size: u64) -> Result<Parsed, DriveError> {
    let shown = || path.display().to_string();
    let len = size.min(HEADER_REGION) as usize;
    let mut region = vec![0u8; len];
    file.seek(SeekFrom::Start(0)).and_then(|_| file.read_exact(&mut region)).map_err(|e| DriveError::io(path, e))?;
    parse_region(&region).map_err(|e| match e {
        ParseError::NotADrive => DriveError::NotADrive { path: shown() },
        ParseError::Newer(found) => DriveError::NewerFormat { path: shown(), found, supported: FORMAT_VERSION },
        ParseError::Truncated(needed) => DriveError::Truncated { path: shown(), size, needed, what: "header" },
        ParseError::Damaged(reason) => DriveError::HeaderDamaged { path: shown(), reason },
    })
}

enum ParseError {
    NotADrive,
    Newer(u32),
    Truncated(u64),
    Damaged(String),
}

/// `region` is the first min(size, 64 KiB) bytes of the drive.
fn parse_region(region: &[u8]) -> Result<Parsed, ParseError> {
    if region.len() < MAGIC.len() || region[..MAGIC.len()] != MAGIC {
        return Err(ParseError::NotADrive);
    }
    let (Some(version), Some(body_len)) = (read_u32(region, 16), read_u32(region, 20)) else {
        return Err(ParseError::Truncated(PREFIX_LEN as u64));
    };
    if version > FORMAT_VERSION {
        return Err(ParseError::Newer(version));
    }
    if version == 0 {
        return Err(ParseError::Damaged("format version 0 does not exist".into()));
    }
    let body_len = body_len as usize;
    if body_len == 0 || body_len > MAX_BODY_LEN {
        return Err(ParseError::Damaged(format!("header body length {body_len} is outside 1 ..= {MAX_BODY_LEN}")));
    }
    let body_end = PREFIX_LEN + body_len;
    let end = body_end + TRAILER_LEN;
    if region.len() < end {
        return Err(ParseError::Truncated(end as u64));
    }
    let checksum = blake3::hash(&region[..body_end]);
    if checksum.as_bytes()[..] != region[body_end..body_end + 32] {
        return Err(ParseError::Damaged("its checksum does not match: bytes of the header changed".into()));
    }
    let header: DriveHeader = match postcard::take_from_bytes(&region[PREFIX_LEN..body_end]) {
        Ok((header, [])) => header,
        Ok((_, rest)) => {
            return Err(ParseError::Damaged(format!("{} unexpected bytes after the header body", rest.len())))
        }
        Err(e) => return Err(ParseError::Damaged(format!("cannot decode the header body: {e}"))),
    };
    header.check_fields().map_err(ParseError::Damaged)?;
    let mut mac = [0u8; 32];
    mac.copy_from_slice(&region[body_end + 32..end]);
    Ok(Parsed {
        header,
        signed: region[..body_end + 32].to_vec(),
        mac,
        fingerprint: *blake3::hash(&region[..end]).as_bytes(),
    })
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let slice = bytes.get(at..at + 4)?;
    Some(u32::from_le_bytes(slice.try_into().ok()?))
}

/// Reads what the header says without a key: the drive id, set id, import job and
/// index, to match a received drive to its import job. NOT AUTHENTICATED: anyone can
/// write a header that claims anything. Trust it only after [`super::DriveReader::open`]
/// has verified the MAC, or when `fingerprint` equals the one registered for the job.
pub fn peek_header_unauthenticated(path: impl AsRef<Path>) -> Result<PublicHeaderInfo, DriveError> {
    let (mut file, path, size) = open_for_reading(path.as_ref())?;
    let parsed = read_header(&mut file, &path, size)?;
    Ok(parsed.header.public_info(parsed.fingerprint))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample_header() -> DriveHeader {
        DriveHeader {
            drive_id: [1; 16],
            set_id: [2; 16],
            import_job: "job-1".into(),
            index: 0,
            block_size: 4096,
            capacity_blocks: 100,
            data_blocks: 0,
            manifest: ManifestLocation::default(),
            finished: false,
            import_slot: ImportSlot { ephemeral_public: [3; 32], wrapped_key: [4; 32], tag: [5; 16] },
            recovery_slot: RecoverySlot { wrapped_key: [6; 32], tag: [7; 16] },
        }
    }

    fn parse(region: &[u8]) -> Result<Parsed, ParseError> {
        parse_region(region)
    }

    #[test]
    fn encodes_and_parses_back_with_its_mac() {
        let header = sample_header();
        let key = [9u8; 32];
        let (region, fingerprint) = header.encode_region(&key).unwrap();
        assert_eq!(region.len(), HEADER_REGION as usize);
        let Ok(parsed) = parse(&region) else { panic!("does not parse") };
        assert_eq!(parsed.header, header);
        assert_eq!(parsed.fingerprint, fingerprint);
        assert!(parsed.mac_matches(&key));
        assert!(!parsed.mac_matches(&[8u8; 32]));
    }

    #[test]
    fn a_flipped_bit_anywhere_before_the_mac_is_caught() {
        let header = sample_header();
        let (region, _) = header.encode_region(&[9u8; 32]).unwrap();
        let body_len = read_u32(&region, 20).unwrap() as usize;
        for at in 0..PREFIX_LEN + body_len + 32 {
            let mut bad = region.clone();
            bad[at] ^= 0x10;
            assert!(parse(&bad).is_err(), "flip at {at} not caught");
        }
    }

    #[test]
    fn unfinished_headers_record_nothing_finished_ones_are_consistent() {
        let mut h = sample_header();
        assert!(h.check_fields().is_ok());
        h.data_blocks = 1;
        assert!(h.check_fields().is_err());
        h.finished = true;
        h.manifest = ManifestLocation { first_block: 1, block_count: 1, byte_length: 4096 };
        assert!(h.check_fields().is_ok());
        h.manifest.byte_length = 4097;
        assert!(h.check_fields().is_err());
        h.manifest = ManifestLocation { first_block: 1, block_count: u64::MAX, byte_length: u64::MAX };
        assert!(h.check_fields().is_err());
        h.manifest = ManifestLocation { first_block: 1, block_count: 100, byte_length: 100 * 4096 };
        assert!(h.check_fields().is_err(), "past the capacity");
    }
}
