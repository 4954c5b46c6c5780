//! A datacenter's import key: an X25519 key pair. Drives for the datacenter are
//! encrypted to its public key (the service publishes it with the datacenter);
//! the secret is generated on the operator's machine, written to a file (64 hex
//! digits and a newline, mode 0600) and only ever read by ingest stations.

use std::path::Path;

use crate::files::{write_secret_file, FileError};

/// A fresh key pair: (secret, public).
pub fn generate_import_key() -> ([u8; 32], [u8; 32]) {
    let secret = x25519_dalek::StaticSecret::random_from_rng(rand::rngs::OsRng);
    let public = x25519_dalek::PublicKey::from(&secret);
    (secret.to_bytes(), public.to_bytes())
}

/// The public key of a secret.
pub fn public_key_of(secret: &[u8; 32]) -> [u8; 32] {
    x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(*secret)).to_bytes()
}

/// Parses 64 hex digits into a key; the all-zero key is refused (it is no key).
pub fn parse_key_hex(text: &str) -> Result<[u8; 32], String> {
    let text = text.trim();
    let bytes = hex::decode(text)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| "an import key is 64 hex digits (32 bytes)".to_string())?;
    if bytes == [0u8; 32] {
        return Err("the all-zero import key is not a key".into());
    }
    Ok(bytes)
}

/// Writes a new secret key file (64 hex digits and a newline, mode 0600); an
/// existing file is never overwritten, as it may hold the key of drives on the way.
pub fn write_import_secret(path: &Path, secret: &[u8; 32]) -> Result<(), FileError> {
    if path.symlink_metadata().is_ok() {
        return Err(FileError::Write {
            path: path.into(),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "the file exists: it may hold the import key of drives already prepared; choose another file",
            ),
        });
    }
    write_secret_file(path, &format!("{}\n", hex::encode(secret)))
}

/// Reads an import secret key file as [`write_import_secret`] writes it.
pub fn read_import_secret(path: &Path) -> Result<[u8; 32], FileError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|source| FileError::Read { path: path.into(), source })?;
    let mut bytes = Vec::new();
    file.take(1024).read_to_end(&mut bytes).map_err(|source| FileError::Read { path: path.into(), source })?;
    let invalid = |reason: String| FileError::Invalid { path: path.into(), what: "import secret key", reason };
    let text =
        std::str::from_utf8(&bytes).map_err(|_| invalid("it is not text: an import key is 64 hex digits".into()))?;
    parse_key_hex(text).map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_secret_reads_back_and_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dc.importkey");
        let (secret, public) = generate_import_key();
        assert_eq!(public_key_of(&secret), public);
        write_import_secret(&path, &secret).unwrap();
        assert_eq!(read_import_secret(&path).unwrap(), secret);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.len() == 65 && text.ends_with('\n'), "{text:?}");
        let again = write_import_secret(&path, &generate_import_key().0).unwrap_err();
        assert!(again.to_string().contains("exists"), "{again}");
        assert_eq!(read_import_secret(&path).unwrap(), secret, "the first key is kept");
    }

    #[test]
    fn bad_key_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad");
        std::fs::write(&path, "00".repeat(32)).unwrap();
        assert!(read_import_secret(&path).unwrap_err().to_string().contains("all-zero"));
        std::fs::write(&path, "xyz").unwrap();
        assert!(read_import_secret(&path).unwrap_err().to_string().contains("64 hex"));
    }
}
