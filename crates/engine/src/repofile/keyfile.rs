//! `keys/<id>`: one passphrase's wrapping of the master key.
//!
//! Argon2id turns the passphrase and a random salt into a key that seals the master
//! key. Adding a passphrase adds a key file; removing one deletes it. The master key
//! itself never changes, so no data is re-encrypted.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::crypto::{CryptoError, KdfParams, MasterKey, Purpose};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyFile {
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    pub hostname: String,
    pub username: String,
    pub kdf: KdfParams,
    pub salt: String,
    /// The master key, sealed under the passphrase-derived key, in hex.
    pub sealed_master_key: String,
}

impl KeyFile {
    pub fn create(master: &MasterKey, passphrase: &[u8], kdf: KdfParams) -> Result<Self, CryptoError> {
        let salt: [u8; 32] = rand::random();
        let wrapping = kdf.derive(passphrase, &salt)?;
        let plaintext = serde_json::to_vec(master).expect("master key serialises");
        Ok(KeyFile {
            created: OffsetDateTime::now_utc(),
            hostname: crate::host::hostname(),
            username: crate::host::username(),
            kdf,
            salt: hex::encode(salt),
            sealed_master_key: hex::encode(wrapping.seal(Purpose::MasterKey, &plaintext)),
        })
    }

    /// Unwraps the master key; fails with `Authentication` for a wrong passphrase.
    pub fn unwrap(&self, passphrase: &[u8]) -> Result<MasterKey, CryptoError> {
        let salt = hex::decode(&self.salt).map_err(|_| CryptoError::MalformedKeyFile("its salt is not hex"))?;
        let sealed = hex::decode(&self.sealed_master_key)
            .map_err(|_| CryptoError::MalformedKeyFile("its sealed master key is not hex"))?;
        let wrapping = self.kdf.derive(passphrase, &salt)?;
        let plaintext = wrapping.open(Purpose::MasterKey, &sealed)?;
        serde_json::from_slice(&plaintext).map_err(|_| CryptoError::Authentication)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("key file serialises")
    }
}
