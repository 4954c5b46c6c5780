//! The master key: the repository's secrets, stored only wrapped in key files.

use serde::{Deserialize, Serialize};

use super::EncryptionKey;
use crate::id::Id;

/// All secrets of one repository. Every passphrase's key file wraps the same master key.
#[derive(Clone, Serialize, Deserialize)]
pub struct MasterKey {
    /// Seals every object.
    #[serde(with = "hex_key")]
    encryption: [u8; 32],
    /// Keys the BLAKE3 hash that names blobs, so ids reveal nothing about content.
    #[serde(with = "hex_key")]
    blob_id: [u8; 32],
    /// Perturbs the chunker's gear table so chunk boundaries do not fingerprint files.
    chunker_seed: u64,
}

impl MasterKey {
    pub fn generate() -> Self {
        MasterKey { encryption: rand::random(), blob_id: rand::random(), chunker_seed: rand::random() }
    }

    pub fn encryption_key(&self) -> EncryptionKey {
        EncryptionKey::from_bytes(self.encryption)
    }

    pub fn chunker_seed(&self) -> u64 {
        self.chunker_seed
    }

    /// The id of a blob: BLAKE3 keyed with the repository's secret id key.
    pub fn blob_id(&self, plaintext: &[u8]) -> Id {
        Id(*blake3::keyed_hash(&self.blob_id, plaintext).as_bytes())
    }
}

mod hex_key {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(key: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(key))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&text, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}
