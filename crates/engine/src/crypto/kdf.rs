//! Passphrase to key: Argon2id with parameters stored in each key file.

use serde::{Deserialize, Serialize};

use super::{CryptoError, EncryptionKey};

/// Argon2id cost parameters. Stored beside the salt in every key file so that
/// stronger defaults later never lock out older key files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes: about a quarter of a second here, and costly to brute force.
    fn default() -> Self {
        KdfParams { memory_kib: 64 * 1024, iterations: 3, parallelism: 1 }
    }
}

impl KdfParams {
    /// Cheap parameters for tests only; never for real key files.
    pub fn insecure_for_tests() -> Self {
        KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 }
    }

    /// Refuses parameters a hostile key file could use to exhaust memory or time.
    pub fn is_sane(&self) -> bool {
        self.memory_kib >= 8
            && self.memory_kib <= 4 * 1024 * 1024
            && (1..=64).contains(&self.iterations)
            && (1..=16).contains(&self.parallelism)
    }

    pub fn derive(&self, passphrase: &[u8], salt: &[u8]) -> Result<EncryptionKey, CryptoError> {
        if !self.is_sane() {
            return Err(CryptoError::Kdf(format!("unreasonable parameters {self:?}")));
        }
        let params = argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
            .map_err(|e| CryptoError::Kdf(e.to_string()))?;
        let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = [0u8; 32];
        argon.hash_password_into(passphrase, salt, &mut out).map_err(|e| CryptoError::Kdf(e.to_string()))?;
        Ok(EncryptionKey::from_bytes(out))
    }
}
