//! Where a drive lives: a block device, an image file, or the image file
//! [`FOLDER_IMAGE_NAME`] inside a folder on a mounted drive, and how large it is.
//!
//! Formatting an image (or a folder's image) truncates it to zero before sizing it,
//! so nothing of an earlier image survives. A device keeps whatever lies beyond the
//! blocks written; only the header region is overwritten (see the spec).

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::{DriveError, FOLDER_IMAGE_NAME};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriveTarget {
    /// A block device such as `/dev/sdX`; its capacity is its size.
    Device(PathBuf),
    /// An image file, created (or truncated) and sized to `size` bytes.
    Image { path: PathBuf, size: u64 },
    /// An existing folder on a mounted drive; the drive is the image file
    /// `offsite-drive.img` inside it, sized to `size` bytes.
    Folder { path: PathBuf, size: u64 },
}

impl DriveTarget {
    /// The path of the file that holds the drive's bytes.
    pub fn file_path(&self) -> PathBuf {
        match self {
            DriveTarget::Device(path) | DriveTarget::Image { path, .. } => path.clone(),
            DriveTarget::Folder { path, .. } => path.join(FOLDER_IMAGE_NAME),
        }
    }

    /// The target a user names by `path`: a block device is a device; an existing
    /// folder is a folder target (its image sized to `size`, or to the size of the
    /// `offsite-drive.img` already in it); anything else is an image file of `size`
    /// bytes (an existing image keeps its size when `size` is not given). Nothing is
    /// written here: [`super::DriveWriter::create`] formats it.
    pub fn open_or_create(path: &Path, size: Option<u64>) -> Result<DriveTarget, DriveError> {
        use std::os::unix::fs::FileTypeExt;
        let need_size = |why: &str| {
            DriveError::InvalidSpec(format!(
                "the size of the drive image at {} is unknown ({why}): pass --drive-size (e.g. --drive-size 500GiB)",
                path.display()
            ))
        };
        match std::fs::metadata(path) {
            Ok(meta) if meta.file_type().is_block_device() => Ok(DriveTarget::Device(path.to_path_buf())),
            Ok(meta) if meta.is_dir() => {
                let existing = std::fs::metadata(path.join(FOLDER_IMAGE_NAME)).map(|m| m.len()).unwrap_or(0);
                let size = size.or((existing > 0).then_some(existing)).ok_or_else(|| {
                    need_size("the folder holds no drive image yet")
                })?;
                Ok(DriveTarget::Folder { path: path.to_path_buf(), size })
            }
            Ok(meta) if meta.is_file() => {
                let size = size.or((meta.len() > 0).then_some(meta.len())).ok_or_else(|| need_size("the image file is empty"))?;
                Ok(DriveTarget::Image { path: path.to_path_buf(), size })
            }
            Ok(_) => Err(DriveError::InvalidSpec(format!(
                "{} is neither a block device, an image file nor a folder; name a drive (/dev/sdX), an image file or a folder",
                path.display()
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let size = size.ok_or_else(|| need_size("the image file does not exist yet"))?;
                Ok(DriveTarget::Image { path: path.to_path_buf(), size })
            }
            Err(e) => Err(DriveError::io(path, e)),
        }
    }

    /// Opens the target for formatting and returns the file and its capacity in bytes.
    pub(crate) fn open_for_writing(&self) -> Result<(File, u64), DriveError> {
        let path = self.file_path();
        match self {
            DriveTarget::Device(_) => {
                let mut file =
                    OpenOptions::new().read(true).write(true).open(&path).map_err(|e| DriveError::io(&path, e))?;
                // A block device's metadata length is 0; seeking to its end gives its size.
                let size = file.seek(SeekFrom::End(0)).map_err(|e| DriveError::io(&path, e))?;
                Ok((file, size))
            }
            DriveTarget::Image { size, .. } | DriveTarget::Folder { size, .. } => {
                if let DriveTarget::Folder { path: folder, .. } = self {
                    if !folder.is_dir() {
                        return Err(DriveError::io(
                            folder,
                            std::io::Error::new(std::io::ErrorKind::NotFound, "not an existing folder"),
                        ));
                    }
                }
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&path)
                    .map_err(|e| DriveError::io(&path, e))?;
                file.set_len(*size).map_err(|e| DriveError::io(&path, e))?;
                Ok((file, *size))
            }
        }
    }
}

/// The file that holds a drive given as a path: the path itself for a device or an
/// image, `<folder>/offsite-drive.img` for a folder.
pub fn resolve_drive_path(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(FOLDER_IMAGE_NAME)
    } else {
        path.to_path_buf()
    }
}

/// Opens a drive for reading and returns the file, its resolved path and its size.
pub(crate) fn open_for_reading(path: &Path) -> Result<(File, PathBuf, u64), DriveError> {
    let path = resolve_drive_path(path);
    let mut file = File::open(&path).map_err(|e| DriveError::io(&path, e))?;
    let size = file.seek(SeekFrom::End(0)).map_err(|e| DriveError::io(&path, e))?;
    Ok((file, path, size))
}
