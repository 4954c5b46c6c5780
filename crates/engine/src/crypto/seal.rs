//! Sealing: AES-256-GCM under a fresh subkey per object.
//!
//! Layout of a sealed object: `version (1) || salt (24) || ciphertext || tag (16)`.
//! The subkey is `BLAKE3-keyed(encryption key, salt)` with a random 24-byte salt, and
//! every subkey encrypts exactly one message under the all-zero nonce. A nonce can
//! therefore only repeat under the same key if two 192-bit random salts collide,
//! which removes GCM's 2^32-messages-per-key limit on random 96-bit nonces. The
//! associated data is the object's purpose, so a tree can never be passed off as a
//! data blob, an index or a snapshot.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};

use super::CryptoError;

const VERSION: u8 = 1;
const SALT_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// Bytes a sealed object adds to its plaintext.
pub const SEAL_OVERHEAD: usize = 1 + SALT_LEN + TAG_LEN;

/// What a sealed object is; bound into its authentication tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    DataBlob,
    TreeBlob,
    PackHeader,
    Index,
    Snapshot,
    Lock,
    MasterKey,
}

impl Purpose {
    fn associated_data(self) -> &'static [u8] {
        match self {
            Purpose::DataBlob => b"offsite/data-blob",
            Purpose::TreeBlob => b"offsite/tree-blob",
            Purpose::PackHeader => b"offsite/pack-header",
            Purpose::Index => b"offsite/index",
            Purpose::Snapshot => b"offsite/snapshot",
            Purpose::Lock => b"offsite/lock",
            Purpose::MasterKey => b"offsite/master-key",
        }
    }
}

/// A 256-bit key that seals and opens objects.
#[derive(Clone)]
pub struct EncryptionKey([u8; 32]);

impl EncryptionKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        EncryptionKey(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn cipher_for(&self, salt: &[u8]) -> Aes256Gcm {
        let subkey = blake3::keyed_hash(&self.0, salt);
        Aes256Gcm::new(subkey.as_bytes().into())
    }

    /// Seals `plaintext`, appending the sealed object to `out` (packs append blob
    /// after blob into one buffer, so this avoids a copy per blob).
    pub fn seal_into(&self, purpose: Purpose, plaintext: &[u8], out: &mut Vec<u8>) {
        self.seal_parts_into(purpose, &[plaintext], out)
    }

    /// Seals the concatenation of `parts` without first copying them together.
    pub fn seal_parts_into(&self, purpose: Purpose, parts: &[&[u8]], out: &mut Vec<u8>) {
        let salt: [u8; SALT_LEN] = rand::random();
        let len: usize = parts.iter().map(|p| p.len()).sum();
        out.reserve(len + SEAL_OVERHEAD);
        out.push(VERSION);
        out.extend_from_slice(&salt);
        let start = out.len();
        for part in parts {
            out.extend_from_slice(part);
        }
        let tag = self
            .cipher_for(&salt)
            .encrypt_in_place_detached(&Nonce::default(), purpose.associated_data(), &mut out[start..])
            // aes-gcm only fails for plaintexts over 64 GiB; blobs are at most a few MiB.
            .expect("AES-GCM plaintext length limit exceeded");
        out.extend_from_slice(&tag);
    }

    pub fn seal(&self, purpose: Purpose, plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
        self.seal_into(purpose, plaintext, &mut out);
        out
    }

    /// Opens a sealed object, checking that it was sealed with this key for this purpose.
    pub fn open(&self, purpose: Purpose, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(CryptoError::TooShort(sealed.len()));
        }
        if sealed[0] != VERSION {
            return Err(CryptoError::UnknownVersion(sealed[0]));
        }
        let salt = &sealed[1..1 + SALT_LEN];
        let body = &sealed[1 + SALT_LEN..sealed.len() - TAG_LEN];
        let tag = Tag::from_slice(&sealed[sealed.len() - TAG_LEN..]);
        let mut plaintext = body.to_vec();
        self.cipher_for(salt)
            .decrypt_in_place_detached(&Nonce::default(), purpose.associated_data(), &mut plaintext, tag)
            .map_err(|_| CryptoError::Authentication)?;
        Ok(plaintext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> EncryptionKey {
        EncryptionKey::from_bytes([7; 32])
    }

    #[test]
    fn same_plaintext_seals_differently() {
        let a = key().seal(Purpose::DataBlob, b"same");
        let b = key().seal(Purpose::DataBlob, b"same");
        assert_ne!(a, b);
    }

    #[test]
    fn purpose_is_bound() {
        let sealed = key().seal(Purpose::TreeBlob, b"tree");
        assert!(matches!(key().open(Purpose::DataBlob, &sealed), Err(CryptoError::Authentication)));
        assert_eq!(key().open(Purpose::TreeBlob, &sealed).unwrap(), b"tree");
    }

    #[test]
    fn wrong_key_fails() {
        let sealed = key().seal(Purpose::Index, b"x");
        let other = EncryptionKey::from_bytes([8; 32]);
        assert!(other.open(Purpose::Index, &sealed).is_err());
    }

    proptest! {
        #[test]
        fn round_trip_and_any_flipped_bit_is_caught(data in proptest::collection::vec(any::<u8>(), 0..2048), bit in any::<usize>()) {
            let sealed = key().seal(Purpose::DataBlob, &data);
            prop_assert_eq!(sealed.len(), data.len() + SEAL_OVERHEAD);
            prop_assert_eq!(key().open(Purpose::DataBlob, &sealed).unwrap(), data);
            let mut tampered = sealed.clone();
            let bit = bit % (tampered.len() * 8);
            tampered[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(key().open(Purpose::DataBlob, &tampered).is_err());
        }

        #[test]
        fn arbitrary_input_never_panics(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = key().open(Purpose::Snapshot, &data);
        }
    }
}
