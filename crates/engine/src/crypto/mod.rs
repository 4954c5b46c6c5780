//! Cryptography: authenticated encryption of every stored object, the master key,
//! and the passphrase-derived key that wraps it.

mod kdf;
mod master_key;
mod seal;

pub use kdf::KdfParams;
pub use master_key::MasterKey;
pub use seal::{EncryptionKey, Purpose, SEAL_OVERHEAD};

/// Decryption failed: the data was changed, belongs to another repository, or the
/// key is wrong. AEAD cannot tell these apart, so callers name the object.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("authentication failed (the data was changed or the key is wrong)")]
    Authentication,
    #[error("sealed object is too short ({0} bytes)")]
    TooShort(usize),
    #[error("sealed object has unknown format version {0}")]
    UnknownVersion(u8),
    #[error("key derivation failed: {0}")]
    Kdf(String),
    #[error("the key file is malformed: {0}")]
    MalformedKeyFile(&'static str),
}
