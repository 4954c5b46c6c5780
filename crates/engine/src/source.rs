//! Reading a file system entry's metadata into a tree node.

use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::repofile::tree::{ExtendedAttribute, Node, NodeKind, Timestamp};

pub(crate) fn timestamp(seconds: i64, nanos: i64) -> Timestamp {
    Timestamp { seconds, nanos: nanos.clamp(0, 999_999_999) as u32 }
}

/// The node for an entry, with `kind` filled in by the caller.
pub(crate) fn node_from_metadata(
    name: Vec<u8>,
    meta: &Metadata,
    kind: NodeKind,
    xattrs: Vec<ExtendedAttribute>,
) -> Node {
    Node {
        name,
        kind,
        size: if meta.is_file() { meta.len() } else { 0 },
        mode: meta.mode(),
        uid: meta.uid(),
        gid: meta.gid(),
        mtime: timestamp(meta.mtime(), meta.mtime_nsec()),
        ctime: timestamp(meta.ctime(), meta.ctime_nsec()),
        inode: meta.ino(),
        device: meta.dev(),
        links: meta.nlink(),
        xattrs,
    }
}

/// The kind of a non-regular, non-directory entry; `None` for regular files and dirs.
pub(crate) fn special_kind(path: &Path, meta: &Metadata) -> std::io::Result<Option<NodeKind>> {
    let ft = meta.file_type();
    Ok(Some(if ft.is_symlink() {
        use std::os::unix::ffi::OsStrExt;
        NodeKind::Symlink { target: std::fs::read_link(path)?.as_os_str().as_bytes().to_vec() }
    } else if ft.is_fifo() {
        NodeKind::Fifo
    } else if ft.is_socket() {
        NodeKind::Socket
    } else if ft.is_char_device() {
        NodeKind::CharDevice { rdev: meta.rdev() }
    } else if ft.is_block_device() {
        NodeKind::BlockDevice { rdev: meta.rdev() }
    } else {
        return Ok(None);
    }))
}

/// Extended attributes that can be read; unreadable ones are left out, as are all
/// of them on file systems without support.
pub(crate) fn read_xattrs(path: &Path) -> Vec<ExtendedAttribute> {
    use std::os::unix::ffi::OsStrExt;
    let Ok(names) = xattr::list(path) else { return Vec::new() };
    let mut out: Vec<ExtendedAttribute> = names
        .filter_map(|name| {
            let value = xattr::get(path, &name).ok().flatten()?;
            Some(ExtendedAttribute { name: name.as_bytes().to_vec(), value })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}
