//! Erasing a drive at the datacenter once its job is done with it, and saying
//! how, for its custody log's `wiped` (or `destroyed`) event.
//!
//! - **crypto-erase**: the header region (the first 65536 bytes: both key slots,
//!   docs/DRIVE-FORMAT.md) is overwritten with zeros and synced. Every block is
//!   sealed under the drive key, which only the slots held, so nothing on the
//!   drive can be read again, by the import key or the recovery key. Seconds, on
//!   any size of drive.
//! - **overwrite**: every byte of the image file or device is overwritten with
//!   zeros and synced. Hours on a large drive; for media leaving the datacenter's
//!   control.
//! - **destroyed**: the drive was physically destroyed (shredded, degaussed);
//!   nothing is written, the event records it.
//!
//! Afterwards the header is read again: a wipe is reported done only when no
//! offsite drive is found there any more.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::drive::{peek_header_unauthenticated, resolve_drive_path};

/// The header region of the drive format: both key slots are in it.
pub const HEADER_REGION: u64 = 65536;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WipeMethod {
    Overwrite,
    CryptoErase,
    Destroyed,
}

impl WipeMethod {
    pub fn name(self) -> &'static str {
        match self {
            WipeMethod::Overwrite => "overwrite",
            WipeMethod::CryptoErase => "crypto-erase",
            WipeMethod::Destroyed => "destroyed",
        }
    }

    pub fn parse(text: &str) -> Option<WipeMethod> {
        [WipeMethod::Overwrite, WipeMethod::CryptoErase, WipeMethod::Destroyed].into_iter().find(|m| m.name() == text)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WipeError {
    #[error("cannot wipe {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} still holds an offsite drive header after the wipe: it was not erased")]
    StillReadable { path: PathBuf },
}

/// What a wipe did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Wiped {
    pub method: WipeMethod,
    /// The image file or device written (none for `destroyed`).
    pub path: Option<PathBuf>,
    pub bytes_written: u64,
}

impl Wiped {
    /// The event's details: `method=crypto-erase bytes=65536`.
    pub fn details(&self) -> String {
        match self.method {
            WipeMethod::Destroyed => "method=destroyed".to_string(),
            method => format!("method={} bytes={}", method.name(), self.bytes_written),
        }
    }
}

/// Erases the drive at `path` (a device, an image file, or a folder holding
/// `offsite-drive.img`) with `method`; `destroyed` writes nothing.
pub fn wipe(path: Option<&Path>, method: WipeMethod) -> Result<Wiped, WipeError> {
    let Some(path) = path.filter(|_| method != WipeMethod::Destroyed) else {
        return Ok(Wiped { method, path: None, bytes_written: 0 });
    };
    let target = resolve_drive_path(path);
    let io = |source| WipeError::Io { path: target.clone(), source };
    let mut file = std::fs::OpenOptions::new().write(true).open(&target).map_err(io)?;
    // A device's size is where its end is; an image's is its length.
    let size = file.seek(SeekFrom::End(0)).map_err(io)?;
    let length = match method {
        WipeMethod::CryptoErase => size.min(HEADER_REGION),
        _ => size,
    };
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let zeros = vec![0u8; 1 << 20];
    let mut left = length;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        file.write_all(&zeros[..n]).map_err(io)?;
        left -= n as u64;
    }
    file.sync_all().map_err(io)?;
    drop(file);
    if peek_header_unauthenticated(&target).is_ok() {
        return Err(WipeError::StillReadable { path: target });
    }
    Ok(Wiped { method, path: Some(target), bytes_written: length })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_round_trip_their_names() {
        for method in [WipeMethod::Overwrite, WipeMethod::CryptoErase, WipeMethod::Destroyed] {
            assert_eq!(WipeMethod::parse(method.name()), Some(method));
        }
        assert_eq!(WipeMethod::parse("shred"), None);
    }

    #[test]
    fn crypto_erase_clears_the_header_region_only_and_overwrite_everything() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("d.img");
        std::fs::write(&image, vec![0xAB; 200_000]).unwrap();
        let done = wipe(Some(image.as_path()), WipeMethod::CryptoErase).unwrap();
        assert_eq!(done.bytes_written, HEADER_REGION);
        let bytes = std::fs::read(&image).unwrap();
        assert!(bytes[..65536].iter().all(|b| *b == 0) && bytes[65536..].iter().all(|b| *b == 0xAB));
        assert_eq!(done.details(), "method=crypto-erase bytes=65536");
        let done = wipe(Some(dir.path().join("d.img").as_path()), WipeMethod::Overwrite).unwrap();
        assert_eq!(done.bytes_written, 200_000);
        assert!(std::fs::read(&image).unwrap().iter().all(|b| *b == 0));
        assert_eq!(wipe(None, WipeMethod::Destroyed).unwrap().bytes_written, 0);
        let gone = dir.path().join("gone");
        assert!(matches!(wipe(Some(gone.as_path()), WipeMethod::Overwrite), Err(WipeError::Io { .. })));
    }
}
