//! The datacenter's side of an export job (offline restore): the files the job
//! carries are fetched through the service into a spool folder, one folder per
//! machine (`<machine id>/<repository path>`), then written onto drives exactly as
//! diskprep writes a staging location ([`crate::diskprep::prepare_with`]), each
//! drive's key wrapped to the customer's export key. The files stay as stored:
//! sealed with the customer's repository keys, which the datacenter never has.
//!
//! Spooling is resumable: a file already in the spool at its size (and, for the
//! content-addressed ones, hashing to its name) is kept; a file is written under
//! the engine's temporary name and renamed once whole, so the spool never lists a
//! partial file.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use offsite_api::types::ExportFile;

use crate::drive::validate_path;
use crate::staging::ENGINE_TEMP_PREFIX;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("the export job names a file the station will not write: {path} ({reason})")]
    BadPath { path: String, reason: String },
    #[error("cannot write {path} into the spool: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("fetching {path} of machine {machine_id} failed: {reason}; run the export again to go on")]
    Fetch { machine_id: String, path: String, reason: String },
    #[error("{path} of machine {machine_id} arrived {problem}: the service's copy may be damaged; the operator should run `offsite server check`")]
    Damaged { machine_id: String, path: String, problem: String },
}

/// What a spooling pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpoolReport {
    pub fetched: usize,
    pub bytes_fetched: u64,
    /// Whole already (an earlier, interrupted run fetched them).
    pub kept: usize,
}

/// The content hash a repository file is named by, if it is one of those.
fn claimed_hash(path: &str) -> Option<&str> {
    let name = path.rsplit('/').next()?;
    (name.len() == 64 && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))).then_some(name)
}

/// Whether the file at `path` is `file` whole: its size, and its name's hash.
fn is_whole(path: &Path, file: &ExportFile) -> Result<Option<String>, std::io::Error> {
    let size = fs::metadata(path)?.len();
    if size != file.size {
        return Ok(Some(format!("with {size} of its {} bytes", file.size)));
    }
    if let Some(name) = claimed_hash(&file.path) {
        let mut hasher = blake3::Hasher::new();
        std::io::copy(&mut File::open(path)?, &mut hasher)?;
        if hasher.finalize().to_hex().as_str() != name {
            return Ok(Some("with bytes that do not hash to its name".into()));
        }
    }
    Ok(None)
}

/// Where `file` goes in the spool.
pub fn spool_path(root: &Path, file: &ExportFile) -> Result<PathBuf, ExportError> {
    let shown = format!("{}/{}", file.machine_id, file.path);
    validate_path(&shown).map_err(|reason| ExportError::BadPath { path: shown.clone(), reason })?;
    Ok(root.join(&file.machine_id).join(&file.path))
}

/// Fetches every file of `files` the spool at `root` lacks, with `fetch` (which
/// writes the file's bytes as the service stores them), and checks each.
pub fn spool(
    root: &Path,
    files: &[ExportFile],
    fetch: &dyn Fn(&ExportFile, &mut File) -> Result<(), String>,
    progress: &dyn Fn(u64),
) -> Result<SpoolReport, ExportError> {
    let mut report = SpoolReport::default();
    let mut done = 0u64;
    for file in files {
        let dest = spool_path(root, file)?;
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ExportError::Io { path, source }
        };
        if dest.exists() && is_whole(&dest, file).map_err(io(&dest))?.is_none() {
            report.kept += 1;
            done += file.size;
            progress(done);
            continue;
        }
        let folder = dest.parent().unwrap_or(root);
        fs::create_dir_all(folder).map_err(io(folder))?;
        let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("file");
        // The engine's temporary name, which a staging listing leaves out.
        let temp = folder.join(format!("{ENGINE_TEMP_PREFIX}{name}-{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff));
        let mut out = File::create(&temp).map_err(io(&temp))?;
        let fetched = fetch(file, &mut out).and_then(|()| out.flush().map_err(|e| e.to_string()));
        if let Err(reason) = fetched {
            let _ = fs::remove_file(&temp);
            return Err(ExportError::Fetch { machine_id: file.machine_id.clone(), path: file.path.clone(), reason });
        }
        out.sync_all().map_err(io(&temp))?;
        drop(out);
        if let Some(problem) = is_whole(&temp, file).map_err(io(&temp))? {
            let _ = fs::remove_file(&temp);
            return Err(ExportError::Damaged { machine_id: file.machine_id.clone(), path: file.path.clone(), problem });
        }
        fs::rename(&temp, &dest).map_err(io(&dest))?;
        report.fetched += 1;
        report.bytes_fetched += file.size;
        done += file.size;
        progress(done);
    }
    Ok(report)
}

/// A fresh export key pair: the agent keeps the secret (mode 0600) and registers
/// the public half with its request; drives are opened with the secret.
pub fn new_export_key() -> (x25519_dalek::StaticSecret, [u8; 32]) {
    let secret = x25519_dalek::StaticSecret::random_from_rng(rand::rngs::OsRng);
    let public = x25519_dalek::PublicKey::from(&secret).to_bytes();
    (secret, public)
}

/// Removes the spool once the drives are written: with the journal gone too, the
/// station keeps nothing of the customer's (the files are sealed anyway) and no
/// key that opens the drives.
pub fn remove_spool(root: &Path) -> Result<(), ExportError> {
    match fs::remove_dir_all(root) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(ExportError::Io { path: root.to_path_buf(), source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(machine: &str, path: &str, bytes: &[u8]) -> ExportFile {
        ExportFile { machine_id: machine.into(), path: path.into(), size: bytes.len() as u64 }
    }

    #[test]
    fn spooling_keeps_whole_files_fetches_the_rest_and_refuses_damage() {
        let dir = tempfile::tempdir().unwrap();
        let data = b"sealed pack bytes".to_vec();
        let name = blake3::hash(&data).to_hex().to_string();
        let pack = file("mch_1", &format!("data/{}/{name}", &name[..2]), &data);
        let config = file("mch_1", "config", b"{config}");
        let files = vec![config.clone(), pack.clone()];
        let contents = |f: &ExportFile| if f.path == "config" { b"{config}".to_vec() } else { data.clone() };
        let fetch = |f: &ExportFile, out: &mut File| out.write_all(&contents(f)).map_err(|e| e.to_string());
        let first = spool(dir.path(), &files, &fetch, &|_| {}).unwrap();
        assert_eq!((first.fetched, first.kept, first.bytes_fetched), (2, 0, data.len() as u64 + 8));
        assert_eq!(fs::read(dir.path().join("mch_1").join(&pack.path)).unwrap(), data);
        let again = spool(dir.path(), &files, &fetch, &|_| {}).unwrap();
        assert_eq!((again.fetched, again.kept), (0, 2));

        // A pack whose bytes do not hash to its name is refused, and not kept.
        fs::remove_file(dir.path().join("mch_1").join(&pack.path)).unwrap();
        let bad = |f: &ExportFile, out: &mut File| {
            let mut bytes = contents(f);
            bytes[0] ^= 1;
            out.write_all(&bytes).map_err(|e| e.to_string())
        };
        let err = spool(dir.path(), &files, &bad, &|_| {}).unwrap_err();
        assert!(err.to_string().contains("do not hash to its name"), "{err}");
        let listing = crate::staging::StagingListing::read(dir.path()).unwrap();
        assert_eq!(listing.files.len(), 1, "no partial file is listed: {:?}", listing.files);
        let escape = file("mch_1", "../../etc/passwd", b"x");
        assert!(matches!(spool(dir.path(), &[escape], &fetch, &|_| {}), Err(ExportError::BadPath { .. })));
    }
}
