//! Key slots: the drive key wrapped twice, so either of two keys unlocks the drive.
//!
//! - The import slot wraps it to the service's X25519 import public key (ECIES): a
//!   fresh ephemeral secret per drive, `shared = X25519(ephemeral, import_public)`,
//!   wrapping key `BLAKE3-derive_key("offsite drive v1 import slot",
//!   shared || ephemeral_public || import_public || drive_id)`.
//! - The recovery slot wraps it to the customer's [`RecoveryKey`]: wrapping key
//!   `BLAKE3-derive_key("offsite drive v1 recovery slot", recovery_key || drive_id)`.
//!
//! Both encrypt the 32-byte drive key with AES-256-GCM under the all-zero nonce with
//! the drive id as associated data. A zero nonce is safe because each wrapping key
//! encrypts exactly one message: it depends on the drive id (and, for the import
//! slot, on a fresh ephemeral secret), and a drive id is random and written once.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use serde::{Deserialize, Serialize};
use x25519_dalek::{EphemeralSecret, PublicKey, StaticSecret};

use super::{DriveError, DriveId, RecoveryKey};

const IMPORT_CONTEXT: &str = "offsite drive v1 import slot";
const RECOVERY_CONTEXT: &str = "offsite drive v1 recovery slot";

/// The drive key wrapped to the service's import public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportSlot {
    pub ephemeral_public: [u8; 32],
    pub wrapped_key: [u8; 32],
    pub tag: [u8; 16],
}

/// The drive key wrapped to the customer's recovery key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoverySlot {
    pub wrapped_key: [u8; 32],
    pub tag: [u8; 16],
}

/// How a reader unlocks a drive.
pub enum DriveKey {
    /// The service's import secret key (the datacenter's way in).
    Import(StaticSecret),
    /// The customer's recovery key for this drive.
    Recovery(RecoveryKey),
}

impl std::fmt::Debug for DriveKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DriveKey::Import(_) => "DriveKey::Import(<redacted>)",
            DriveKey::Recovery(_) => "DriveKey::Recovery(<redacted>)",
        })
    }
}

impl DriveKey {
    /// What this key is, for messages ("the import key does not open …").
    pub fn describe(&self) -> &'static str {
        match self {
            DriveKey::Import(_) => "import key",
            DriveKey::Recovery(_) => "recovery key",
        }
    }

    /// The drive key, if this key opens its slot.
    pub(crate) fn unwrap_drive_key(
        &self,
        drive_id: &DriveId,
        import: &ImportSlot,
        recovery: &RecoverySlot,
    ) -> Option<[u8; 32]> {
        match self {
            DriveKey::Import(secret) => unwrap_import(import, drive_id, secret),
            DriveKey::Recovery(key) => unwrap_recovery(recovery, drive_id, key),
        }
    }
}

fn import_wrapping_key(
    shared: &[u8; 32],
    ephemeral_public: &[u8; 32],
    import_public: &[u8; 32],
    drive_id: &DriveId,
) -> [u8; 32] {
    let mut material = Vec::with_capacity(32 * 3 + 16);
    material.extend_from_slice(shared);
    material.extend_from_slice(ephemeral_public);
    material.extend_from_slice(import_public);
    material.extend_from_slice(drive_id);
    blake3::derive_key(IMPORT_CONTEXT, &material)
}

fn recovery_wrapping_key(key: &RecoveryKey, drive_id: &DriveId) -> [u8; 32] {
    let mut material = [0u8; 48];
    material[..32].copy_from_slice(key.as_bytes());
    material[32..].copy_from_slice(drive_id);
    blake3::derive_key(RECOVERY_CONTEXT, &material)
}

fn wrap(wrapping_key: &[u8; 32], drive_id: &DriveId, drive_key: &[u8; 32]) -> Result<([u8; 32], [u8; 16]), DriveError> {
    let cipher = Aes256Gcm::new(wrapping_key.into());
    let mut buffer = *drive_key;
    let tag = cipher
        .encrypt_in_place_detached(Nonce::from_slice(&[0u8; 12]), drive_id, &mut buffer)
        .map_err(|_| DriveError::InvalidSpec("AES-GCM refused to wrap the drive key".into()))?;
    Ok((buffer, tag.into()))
}

fn unwrap(wrapping_key: &[u8; 32], drive_id: &DriveId, wrapped: &[u8; 32], tag: &[u8; 16]) -> Option<[u8; 32]> {
    let cipher = Aes256Gcm::new(wrapping_key.into());
    let mut buffer = *wrapped;
    cipher
        .decrypt_in_place_detached(Nonce::from_slice(&[0u8; 12]), drive_id, &mut buffer, Tag::from_slice(tag))
        .ok()?;
    Some(buffer)
}

/// Wraps the drive key to the import public key with a fresh ephemeral secret.
pub(crate) fn wrap_import(
    drive_key: &[u8; 32],
    drive_id: &DriveId,
    import_public: &[u8; 32],
) -> Result<ImportSlot, DriveError> {
    let ephemeral = EphemeralSecret::random_from_rng(rand::rngs::OsRng);
    let ephemeral_public = PublicKey::from(&ephemeral).to_bytes();
    let shared = ephemeral.diffie_hellman(&PublicKey::from(*import_public));
    // A low-order public key gives a shared secret anyone can compute: such a key is
    // not a real import key, and wrapping to it would protect nothing.
    if !shared.was_contributory() {
        return Err(DriveError::InvalidSpec(
            "the import public key is not a valid X25519 public key; download the service's import key again".into(),
        ));
    }
    let wrapping_key = import_wrapping_key(shared.as_bytes(), &ephemeral_public, import_public, drive_id);
    let (wrapped_key, tag) = wrap(&wrapping_key, drive_id, drive_key)?;
    Ok(ImportSlot { ephemeral_public, wrapped_key, tag })
}

fn unwrap_import(slot: &ImportSlot, drive_id: &DriveId, secret: &StaticSecret) -> Option<[u8; 32]> {
    let import_public = PublicKey::from(secret).to_bytes();
    let shared = secret.diffie_hellman(&PublicKey::from(slot.ephemeral_public));
    if !shared.was_contributory() {
        return None;
    }
    let wrapping_key = import_wrapping_key(shared.as_bytes(), &slot.ephemeral_public, &import_public, drive_id);
    unwrap(&wrapping_key, drive_id, &slot.wrapped_key, &slot.tag)
}

pub(crate) fn wrap_recovery(
    drive_key: &[u8; 32],
    drive_id: &DriveId,
    key: &RecoveryKey,
) -> Result<RecoverySlot, DriveError> {
    let (wrapped_key, tag) = wrap(&recovery_wrapping_key(key, drive_id), drive_id, drive_key)?;
    Ok(RecoverySlot { wrapped_key, tag })
}

fn unwrap_recovery(slot: &RecoverySlot, drive_id: &DriveId, key: &RecoveryKey) -> Option<[u8; 32]> {
    unwrap(&recovery_wrapping_key(key, drive_id), drive_id, &slot.wrapped_key, &slot.tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_slots_give_back_the_drive_key_and_only_to_their_key() {
        let drive_key = [7u8; 32];
        let drive_id = [3u8; 16];
        let secret = StaticSecret::random_from_rng(rand::rngs::OsRng);
        let public = PublicKey::from(&secret).to_bytes();
        let recovery = RecoveryKey::generate();
        let import = wrap_import(&drive_key, &drive_id, &public).unwrap();
        let rec = wrap_recovery(&drive_key, &drive_id, &recovery).unwrap();

        let by_import = DriveKey::Import(secret.clone());
        let by_recovery = DriveKey::Recovery(recovery.clone());
        assert_eq!(by_import.unwrap_drive_key(&drive_id, &import, &rec), Some(drive_key));
        assert_eq!(by_recovery.unwrap_drive_key(&drive_id, &import, &rec), Some(drive_key));

        // Bound to the drive id: the same slots under another id open nothing.
        assert_eq!(by_import.unwrap_drive_key(&[4u8; 16], &import, &rec), None);
        assert_eq!(by_recovery.unwrap_drive_key(&[4u8; 16], &import, &rec), None);

        let other = DriveKey::Import(StaticSecret::random_from_rng(rand::rngs::OsRng));
        assert_eq!(other.unwrap_drive_key(&drive_id, &import, &rec), None);
        let other = DriveKey::Recovery(RecoveryKey::generate());
        assert_eq!(other.unwrap_drive_key(&drive_id, &import, &rec), None);
    }

    #[test]
    fn a_low_order_import_key_is_refused() {
        let err = wrap_import(&[1u8; 32], &[2u8; 16], &[0u8; 32]).unwrap_err();
        assert!(matches!(err, DriveError::InvalidSpec(_)), "{err}");
    }
}
