//! The staging location as diskprep sees it: a folder holding an engine repository
//! (`config`, `keys/…`, `data/xx/…`, `index/…`, `snapshots/…`), listed as regular
//! files in the set's stream order ([`stream_order`], `docs/DRIVE-FORMAT.md`), so
//! the listing fixes what every drive holds.
//!
//! Nothing is skipped silently: a symbolic link or a special file is an error (the
//! engine writes neither). Left out are only the staging marker
//! [`STAGING_MARKER`] at the root (the agent's bookkeeping, not repository data)
//! and the engine's incomplete temporary files, named exactly
//! `.tmp-<name>-<12 lowercase hex>` by `offsite_engine`'s local backend, which
//! never lists them either.

use std::cmp::Ordering;
use std::fs;
use std::path::{Path, PathBuf};

use crate::diskprep::DiskprepError;
use crate::drive::validate_path;
use crate::file_list::{self, ListingDigest};

/// The prefix the engine's local backend gives a file while writing it; it is
/// renamed to its real name once complete (`crates/engine/src/backend/local.rs`).
pub const ENGINE_TEMP_PREFIX: &str = ".tmp-";

/// The agent's marker file at the root of a staging location; it names the import
/// job and stays on the source machine.
pub const STAGING_MARKER: &str = "offsite-staging.json";

/// True for the engine's temporary names `.tmp-<name>-<12 lowercase hex>` (6 random
/// bytes, `crates/engine/src/backend/local.rs`); any other name is a real file.
pub fn is_engine_temp_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(ENGINE_TEMP_PREFIX) else {
        return false;
    };
    match rest.rsplit_once('-') {
        Some((inner, random)) => {
            !inner.is_empty()
                && random.len() == 12
                && random.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }
        None => false,
    }
}

/// The set's stream order: a repository's own files (`config`, `keys/`, `index/`,
/// `snapshots/`) before its packs, each group by path (byte order).
///
/// Why not plain path order: `index/` and `snapshots/` would then come after
/// every pack and land on the set's last drives, so a middle or last drive that
/// never arrives would take the index with it and no point could be read from
/// the drives that did arrive. Metadata first puts it on drive 0 (it is a small
/// share of a seed), and a drive that never arrives costs only the packs it held.
pub fn stream_order(a: &str, b: &str) -> Ordering {
    (is_pack_path(a), a).cmp(&(is_pack_path(b), b))
}

/// True for a pack's path, `…data/<2 hex>/<id>` (the repository at the root of
/// the set, or in a machine's folder of a multi-machine set).
pub fn is_pack_path(path: &str) -> bool {
    path.rsplit('/').nth(2) == Some("data")
}

/// One regular file of the staging location.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StagingFile {
    /// Relative to the staging root, `/`-separated.
    pub path: String,
    pub size: u64,
}

/// Every file of a staging location, in stream order ([`stream_order`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagingListing {
    pub root: PathBuf,
    pub files: Vec<StagingFile>,
    pub total_bytes: u64,
}

impl StagingListing {
    /// Lists the staging location at `root`: regular files only, in stream order.
    /// Refuses symbolic links, special files and names that are not UTF-8 or not
    /// valid drive paths.
    pub fn read(root: &Path) -> Result<StagingListing, DiskprepError> {
        let meta = match fs::metadata(root) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(DiskprepError::StagingMissing { path: root.to_path_buf() })
            }
            Err(e) => return Err(DiskprepError::io(root, e)),
        };
        if !meta.is_dir() {
            return Err(DiskprepError::StagingMissing { path: root.to_path_buf() });
        }
        let mut files = Vec::new();
        walk(root, "", &mut files)?;
        files.sort_by(|a, b| stream_order(&a.path, &b.path));
        let total_bytes = files.iter().map(|f| f.size).sum();
        Ok(StagingListing { root: root.to_path_buf(), files, total_bytes })
    }

    /// Builds a listing from known files (put in stream order here); for tests and repairs.
    pub fn from_files(root: &Path, mut files: Vec<StagingFile>) -> StagingListing {
        files.sort_by(|a, b| stream_order(&a.path, &b.path));
        let total_bytes = files.iter().map(|f| f.size).sum();
        StagingListing { root: root.to_path_buf(), files, total_bytes }
    }

    /// Hex BLAKE3 over every path and size, in path order (the file list's order,
    /// so the service can recompute it): equal digests mean the same stream
    /// (repository files are named by the hash of their bytes and never rewritten
    /// in place, so the same name and size means the same bytes, and the stream
    /// order follows from the paths).
    pub fn digest(&self) -> String {
        let mut digest = ListingDigest::default();
        for file in self.in_path_order() {
            digest.add(&file.path, file.size);
        }
        digest.finish()
    }

    /// The listing as the import job's file list (`crate::file_list`), in path order.
    pub fn file_list_text(&self) -> String {
        self.in_path_order().map(|f| file_list::line(&f.path, f.size)).collect()
    }

    fn in_path_order(&self) -> impl Iterator<Item = &StagingFile> {
        let mut files: Vec<&StagingFile> = self.files.iter().collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        files.into_iter()
    }

    /// True when the location holds an engine repository (it has `config`).
    pub fn is_repository(&self) -> bool {
        self.files.iter().any(|f| f.path == "config")
    }

    /// The repositories the location carries: `[""]` when it is one, else its
    /// top-level folders that are (`<folder>/config`): a folder holding several
    /// machines' staging locations, or an export job's spool.
    pub fn repositories(&self) -> Vec<&str> {
        if self.is_repository() {
            return vec![""];
        }
        let mut found: Vec<&str> = self.files.iter().filter_map(|f| f.path.strip_suffix("/config")).collect();
        found.retain(|folder| !folder.contains('/'));
        found.sort_unstable();
        found
    }

    /// Checks that the location carries repositories and nothing else: one
    /// repository, or top-level folders that each are one (a file beside them
    /// would be carried to no machine).
    pub fn check_repositories(&self) -> Result<Vec<&str>, DiskprepError> {
        if self.files.is_empty() {
            return Err(DiskprepError::StagingEmpty { path: self.root.clone() });
        }
        let repositories = self.repositories();
        if repositories.is_empty() {
            return Err(DiskprepError::NotARepository { path: self.root.clone() });
        }
        if repositories != [""] {
            let stray = self.files.iter().find(|f| match f.path.split_once('/') {
                Some((folder, _)) => !repositories.contains(&folder),
                None => true,
            });
            if let Some(stray) = stray {
                return Err(DiskprepError::StagingBadFile {
                    path: self.full_path(stray),
                    problem: format!(
                        "it is in none of the staging locations this folder holds ({})",
                        repositories.join(", ")
                    ),
                });
            }
        }
        Ok(repositories)
    }

    /// The file at `path`, if listed.
    pub fn get(&self, path: &str) -> Option<&StagingFile> {
        self.files.binary_search_by(|f| stream_order(&f.path, path)).ok().map(|i| &self.files[i])
    }

    /// The first difference between this listing and `other`, in stream order, as
    /// (path, what differs), for "the staging location changed" messages.
    pub fn first_difference(&self, other: &StagingListing) -> Option<(String, String)> {
        let (mut a, mut b) = (self.files.iter().peekable(), other.files.iter().peekable());
        loop {
            match (a.peek(), b.peek()) {
                (None, None) => return None,
                (Some(x), None) => return Some((x.path.clone(), "it is no longer there".into())),
                (None, Some(y)) => return Some((y.path.clone(), "it is new".into())),
                (Some(x), Some(y)) => match stream_order(&x.path, &y.path) {
                    Ordering::Less => return Some((x.path.clone(), "it is no longer there".into())),
                    Ordering::Greater => return Some((y.path.clone(), "it is new".into())),
                    Ordering::Equal if x.size != y.size => {
                        return Some((x.path.clone(), format!("its size changed from {} to {} bytes", x.size, y.size)))
                    }
                    Ordering::Equal => {
                        a.next();
                        b.next();
                    }
                },
            }
        }
    }

    /// The absolute path of a listed file.
    pub fn full_path(&self, file: &StagingFile) -> PathBuf {
        self.root.join(&file.path)
    }
}

fn walk(dir: &Path, prefix: &str, files: &mut Vec<StagingFile>) -> Result<(), DiskprepError> {
    let entries = fs::read_dir(dir).map_err(|e| DiskprepError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| DiskprepError::io(dir, e))?;
        let full = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            return Err(DiskprepError::StagingBadFile { path: full, problem: "its name is not UTF-8".into() });
        };
        let meta = fs::symlink_metadata(&full).map_err(|e| DiskprepError::io(&full, e))?;
        let kind = meta.file_type();
        let rel = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
        if kind.is_dir() {
            walk(&full, &rel, files)?;
        } else if kind.is_file() {
            // A marker at the root, or at the root of one machine's staging
            // location in a folder holding several.
            if is_engine_temp_name(&name) || (!prefix.contains('/') && name == STAGING_MARKER) {
                continue;
            }
            validate_path(&rel)
                .map_err(|reason| DiskprepError::StagingBadFile { path: full.clone(), problem: reason })?;
            files.push(StagingFile { path: rel, size: meta.len() });
        } else if kind.is_symlink() {
            return Err(DiskprepError::StagingBadFile { path: full, problem: "it is a symbolic link".into() });
        } else {
            return Err(DiskprepError::StagingBadFile {
                path: full,
                problem: "it is not a regular file (a device, socket or pipe)".into(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_regular_files_metadata_first_and_skips_engine_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("data/0a")).unwrap();
        fs::create_dir_all(root.join("keys")).unwrap();
        fs::write(root.join("config"), b"{}").unwrap();
        fs::write(root.join("keys/k"), b"key").unwrap();
        fs::write(root.join("data/0a/x"), vec![1u8; 100]).unwrap();
        fs::write(root.join("data/0a/.tmp-x-0123456789ab"), b"partial").unwrap();
        fs::write(root.join("data/empty"), b"").unwrap();
        fs::write(root.join("offsite-staging.json"), b"{}").unwrap();
        // Not the engine's pattern: a real file, listed.
        fs::write(root.join("keys/.tmp-odd"), b"k").unwrap();
        let listing = StagingListing::read(root).unwrap();
        let paths: Vec<_> = listing.files.iter().map(|f| f.path.as_str()).collect();
        // The stream: everything but packs first; the file list: path order.
        assert_eq!(paths, ["config", "data/empty", "keys/.tmp-odd", "keys/k", "data/0a/x"]);
        assert_eq!(listing.file_list_text(), "2 config\n100 data/0a/x\n0 data/empty\n1 keys/.tmp-odd\n3 keys/k\n");
        assert_eq!(listing.get("data/0a/x").unwrap().size, 100);
        assert_eq!(listing.total_bytes, 106);
        assert!(listing.is_repository());
        let digest = listing.digest();
        fs::write(root.join("keys/k"), b"key2").unwrap();
        let changed = StagingListing::read(root).unwrap();
        assert_ne!(changed.digest(), digest);
        assert_eq!(listing.first_difference(&changed).unwrap().0, "keys/k");

        std::os::unix::fs::symlink(root.join("config"), root.join("link")).unwrap();
        match StagingListing::read(root) {
            Err(DiskprepError::StagingBadFile { path, .. }) => assert!(path.ends_with("link")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(StagingListing::read(&root.join("nope")), Err(DiskprepError::StagingMissing { .. })));
    }

    #[test]
    fn a_folder_of_several_staging_locations_carries_each_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for machine in ["fs01", "fs02"] {
            fs::create_dir_all(root.join(machine).join("data/0a")).unwrap();
            fs::write(root.join(machine).join("config"), machine).unwrap();
            fs::write(root.join(machine).join("data/0a/x"), b"pack").unwrap();
            fs::write(root.join(machine).join(STAGING_MARKER), b"{}").unwrap();
        }
        let listing = StagingListing::read(root).unwrap();
        let paths: Vec<_> = listing.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["fs01/config", "fs02/config", "fs01/data/0a/x", "fs02/data/0a/x"]);
        assert_eq!(listing.check_repositories().unwrap(), ["fs01", "fs02"]);

        fs::create_dir_all(root.join("loose")).unwrap();
        fs::write(root.join("loose/notes.txt"), b"n").unwrap();
        match StagingListing::read(root).unwrap().check_repositories() {
            Err(DiskprepError::StagingBadFile { path, problem }) => {
                assert!(path.ends_with("loose/notes.txt"), "{path:?}");
                assert!(problem.contains("fs01, fs02"), "{problem}");
            }
            other => panic!("{other:?}"),
        }
        fs::remove_dir_all(root.join("fs01")).unwrap();
        fs::remove_dir_all(root.join("fs02")).unwrap();
        assert!(matches!(
            StagingListing::read(root).unwrap().check_repositories(),
            Err(DiskprepError::NotARepository { .. })
        ));
    }
}
