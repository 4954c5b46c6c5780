//! A repository in a local folder (also a mounted network share or drive).

use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::{Backend, BackendError, BackendResult, FileInfo, FileKind};

const TEMP_PREFIX: &str = ".tmp-";

pub struct LocalBackend {
    root: PathBuf,
    location: String,
}

impl LocalBackend {
    pub fn new(root: impl AsRef<Path>) -> Self {
        let root = root.as_ref().to_path_buf();
        let location = root.display().to_string();
        LocalBackend { root, location }
    }

    fn path(&self, kind: FileKind, name: &str) -> PathBuf {
        self.root.join(kind.path_of(name))
    }

    fn io_error(path: &Path, source: io::Error) -> BackendError {
        let path = path.display().to_string();
        match source.kind() {
            io::ErrorKind::NotFound => BackendError::NotFound { path },
            io::ErrorKind::StorageFull => BackendError::NoSpace { path },
            _ if source.raw_os_error() == Some(libc::EDQUOT) => BackendError::NoSpace { path },
            _ => BackendError::Io { path, source },
        }
    }

    fn write_durably(tmp: &Path, data: &[u8]) -> io::Result<()> {
        let mut file = fs::OpenOptions::new().write(true).create_new(true).open(tmp)?;
        file.write_all(data)?;
        file.sync_all()
    }
}

impl LocalBackend {
    fn remove_temp_files_in(dir: &Path) -> BackendResult<usize> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Self::io_error(dir, e)),
        };
        let mut removed = 0;
        for entry in entries {
            let entry = entry.map_err(|e| Self::io_error(dir, e))?;
            let path = entry.path();
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                removed += Self::remove_temp_files_in(&path)?;
            } else if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                match fs::remove_file(&path) {
                    Ok(()) => removed += 1,
                    // Renamed or removed by its writer meanwhile.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Self::io_error(&path, e)),
                }
            }
        }
        Ok(removed)
    }
}

impl Backend for LocalBackend {
    fn remove_incomplete(&self) -> BackendResult<usize> {
        Self::remove_temp_files_in(&self.root)
    }

    fn location(&self) -> &str {
        &self.location
    }

    fn create(&self) -> BackendResult<()> {
        for kind in FileKind::ALL {
            let dir = self.root.join(kind.folder());
            fs::create_dir_all(&dir).map_err(|e| Self::io_error(&dir, e))?;
        }
        for prefix in 0..=255u8 {
            let dir = self.root.join("data").join(format!("{prefix:02x}"));
            fs::create_dir_all(&dir).map_err(|e| Self::io_error(&dir, e))?;
        }
        Ok(())
    }

    /// Writes to a temporary name, syncs, then renames: a crash leaves either the
    /// whole file or a temporary file that `list` ignores.
    fn save(&self, kind: FileKind, name: &str, data: Bytes) -> BackendResult<()> {
        let path = self.path(kind, name);
        let dir = path.parent().unwrap_or(&self.root);
        if !dir.exists() {
            fs::create_dir_all(dir).map_err(|e| Self::io_error(dir, e))?;
        }
        let tmp = dir.join(format!("{TEMP_PREFIX}{}-{}", name, hex::encode(rand::random::<[u8; 6]>())));
        if let Err(e) = Self::write_durably(&tmp, &data) {
            let _ = fs::remove_file(&tmp);
            return Err(Self::io_error(&path, e));
        }
        fs::rename(&tmp, &path).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Self::io_error(&path, e)
        })
    }

    fn load(&self, kind: FileKind, name: &str) -> BackendResult<Bytes> {
        let path = self.path(kind, name);
        fs::read(&path).map(Bytes::from).map_err(|e| Self::io_error(&path, e))
    }

    fn load_range(&self, kind: FileKind, name: &str, offset: u64, length: u64) -> BackendResult<Bytes> {
        let path = self.path(kind, name);
        let read = || -> io::Result<Vec<u8>> {
            let mut file = fs::File::open(&path)?;
            // Check the range against the file before allocating: a hostile or
            // damaged length must give an error, not a huge allocation.
            let size = file.metadata()?.len();
            if offset.checked_add(length).is_none_or(|end| end > size) {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("range {offset}+{length} is past the end ({size} bytes)"),
                ));
            }
            file.seek(SeekFrom::Start(offset))?;
            let mut buf = Vec::with_capacity(length as usize);
            file.take(length).read_to_end(&mut buf)?;
            if (buf.len() as u64) < length {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file is shorter than expected"));
            }
            Ok(buf)
        };
        read().map(Bytes::from).map_err(|e| Self::io_error(&path, e))
    }

    fn size(&self, kind: FileKind, name: &str) -> BackendResult<Option<u64>> {
        let path = self.path(kind, name);
        match fs::metadata(&path) {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Self::io_error(&path, e)),
        }
    }

    fn list(&self, kind: FileKind) -> BackendResult<Vec<FileInfo>> {
        let mut out = Vec::new();
        let mut scan = |dir: &Path| -> BackendResult<()> {
            let entries = match fs::read_dir(dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(Self::io_error(dir, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| Self::io_error(dir, e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(TEMP_PREFIX) {
                    continue;
                }
                // Another process may rename or remove a file between the listing
                // and this look at it (a lock taken or released): it is not there.
                let meta = match entry.metadata() {
                    Ok(meta) => meta,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(Self::io_error(&entry.path(), e)),
                };
                if !meta.is_file() {
                    continue;
                }
                out.push(FileInfo { name, size: meta.len() });
            }
            Ok(())
        };
        match kind {
            FileKind::Config => {
                if let Some(size) = self.size(kind, "config")? {
                    out.push(FileInfo { name: "config".into(), size });
                }
            }
            FileKind::Pack => {
                let data = self.root.join("data");
                let subdirs = match fs::read_dir(&data) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
                    Err(e) => return Err(Self::io_error(&data, e)),
                };
                for sub in subdirs {
                    let sub = sub.map_err(|e| Self::io_error(&data, e))?;
                    if sub.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        scan(&sub.path())?;
                    }
                }
            }
            _ => scan(&self.root.join(kind.folder()))?,
        }
        Ok(out)
    }

    fn remove(&self, kind: FileKind, name: &str) -> BackendResult<()> {
        let path = self.path(kind, name);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Self::io_error(&path, e)),
        }
    }
}
