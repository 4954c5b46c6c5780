//! [`describe_target`]: what a drive path holds now, so the CLI can show it and ask
//! before formatting anything that is not empty. Reads only; never writes.

use std::path::Path;

use crate::drive::{peek_header_unauthenticated, PublicHeaderInfo, FOLDER_IMAGE_NAME};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// A block device.
    Device,
    /// An image file (or a path where one would be created).
    Image,
    /// A folder on a mounted drive; the drive is its `offsite-drive.img`.
    Folder,
}

/// What is at a target path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetDescription {
    pub kind: TargetKind,
    /// A device's or image's size; for a folder, the size of its drive image if it has one.
    pub size: Option<u64>,
    pub exists: bool,
    /// The header of the offsite drive found there, if any. Unauthenticated: show
    /// it ("holds drive 2 of import job X"), never trust it.
    pub holds_offsite_drive: Option<PublicHeaderInfo>,
    /// Nothing would be lost by formatting: a missing image, an empty folder, or a
    /// device or image whose first MiB reads as zeros.
    pub is_empty: bool,
}

/// Looks at a target path without changing it.
pub fn describe_target(path: &Path) -> TargetDescription {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return TargetDescription {
            kind: TargetKind::Image,
            size: None,
            exists: false,
            holds_offsite_drive: None,
            is_empty: true,
        };
    };
    if meta.is_dir() {
        let image = path.join(FOLDER_IMAGE_NAME);
        let empty = std::fs::read_dir(path).map(|mut entries| entries.next().is_none()).unwrap_or(false);
        return TargetDescription {
            kind: TargetKind::Folder,
            size: std::fs::metadata(&image).ok().map(|m| m.len()),
            exists: true,
            holds_offsite_drive: peek_header_unauthenticated(&image).ok(),
            is_empty: empty,
        };
    }
    let kind = if meta.file_type().is_block_device() { TargetKind::Device } else { TargetKind::Image };
    let (size, zero_start) = probe(path);
    TargetDescription {
        kind,
        // A device's metadata length is 0: its size comes from seeking to its end.
        size: if kind == TargetKind::Image { Some(meta.len()) } else { size },
        exists: true,
        holds_offsite_drive: peek_header_unauthenticated(path).ok(),
        is_empty: zero_start.unwrap_or(false),
    }
}

/// The size (by seeking to the end) and whether the first MiB is all zero; `None`
/// where the path cannot be read (then it is not called empty).
fn probe(path: &Path) -> (Option<u64>, Option<bool>) {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else { return (None, None) };
    let size = file.seek(SeekFrom::End(0)).ok();
    if file.seek(SeekFrom::Start(0)).is_err() {
        return (size, None);
    }
    let mut start = Vec::with_capacity(1 << 20);
    match file.take(1 << 20).read_to_end(&mut start) {
        Ok(_) => (size, Some(start.iter().all(|b| *b == 0))),
        Err(_) => (size, None),
    }
}
