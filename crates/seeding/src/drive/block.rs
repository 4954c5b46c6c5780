//! Blocks: the unit of encryption after the header region.
//!
//! Block `i` lies at byte `65536 + i * (block_size + 16)` and holds `block_size`
//! bytes of ciphertext followed by a 16-byte tag:
//!
//! ```text
//! AES-256-GCM(key = drive key, nonce = i as u64 LE || 4 zero bytes,
//!             aad = drive_id || set_id || i as u64 LE || kind)      kind = "data" or "mani"
//! ```
//!
//! Every drive has its own random key and a writer seals each block index exactly
//! once (see [`super::writer`]), so a nonce never repeats under one key. Binding the
//! index, the drive and the kind into the tag means a block moved to another index,
//! copied from another drive, or a data block offered as a manifest block fails
//! authentication, and is named by the index where it was found.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};

use super::{DriveError, DriveId, SetId, HEADER_REGION, TAG_LEN};

/// What a block holds; bound into its tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    Data,
    Manifest,
}

impl BlockKind {
    fn tag(self) -> &'static [u8; 4] {
        match self {
            BlockKind::Data => b"data",
            BlockKind::Manifest => b"mani",
        }
    }
}

/// Where block `index` starts, or `None` if that is past any possible drive.
pub fn block_offset(block_size: u32, index: u64) -> Option<u64> {
    index.checked_mul(u64::from(block_size) + TAG_LEN)?.checked_add(HEADER_REGION)
}

/// How many whole blocks fit on a drive of `capacity` bytes.
pub fn capacity_blocks(block_size: u32, capacity: u64) -> u64 {
    capacity.saturating_sub(HEADER_REGION) / (u64::from(block_size) + TAG_LEN)
}

/// Seals and opens the blocks of one drive.
///
/// AES-256-GCM comes from `ring`, whose assembly runs at several GB/s per core:
/// sealing is diskprep's bottleneck (the pure-Rust `aes-gcm` managed about a third
/// of that). The bytes are standard AES-GCM; a test checks them against `aes-gcm`.
/// Public for tools that build drives block by block (the hostile-drive tests).
pub struct BlockCipher {
    key: LessSafeKey,
    drive_id: DriveId,
    set_id: SetId,
    block_size: u32,
}

impl BlockCipher {
    pub fn new(drive_key: &[u8; 32], drive_id: DriveId, set_id: SetId, block_size: u32) -> Self {
        // A 32-byte key is always accepted for AES-256-GCM.
        let key = UnboundKey::new(&AES_256_GCM, drive_key).map(LessSafeKey::new);
        let Ok(key) = key else { unreachable!("AES-256-GCM takes any 32-byte key") };
        BlockCipher { key, drive_id, set_id, block_size }
    }

    /// Bytes a sealed block takes on the drive.
    pub fn stride(&self) -> usize {
        self.block_size as usize + TAG_LEN as usize
    }

    fn aad(&self, index: u64, kind: BlockKind) -> [u8; 44] {
        let mut aad = [0u8; 44];
        aad[..16].copy_from_slice(&self.drive_id);
        aad[16..32].copy_from_slice(&self.set_id);
        aad[32..40].copy_from_slice(&index.to_le_bytes());
        aad[40..].copy_from_slice(kind.tag());
        aad
    }

    fn nonce(index: u64) -> Nonce {
        let mut nonce = [0u8; 12];
        nonce[..8].copy_from_slice(&index.to_le_bytes());
        Nonce::assume_unique_for_key(nonce)
    }

    /// Encrypts `sealed[..block_size]` in place and writes the tag after it.
    /// `sealed` must be [`Self::stride`] bytes long.
    pub fn seal(&self, index: u64, kind: BlockKind, sealed: &mut [u8]) -> Result<(), DriveError> {
        let bs = self.block_size as usize;
        if sealed.len() != self.stride() {
            return Err(DriveError::InvalidSpec(format!(
                "a block buffer of {} bytes instead of {}",
                sealed.len(),
                self.stride()
            )));
        }
        let (plain, tag) = sealed.split_at_mut(bs);
        let computed = self
            .key
            .seal_in_place_separate_tag(Self::nonce(index), Aad::from(self.aad(index, kind)), plain)
            .map_err(|_| DriveError::InvalidSpec("AES-GCM refused to seal a block".into()))?;
        tag.copy_from_slice(computed.as_ref());
        Ok(())
    }

    /// Authenticates and decrypts a sealed block in place; on success the plaintext
    /// is `sealed[..block_size]`. False if the block is not this drive's block
    /// `index` of this kind, unchanged.
    pub fn open(&self, index: u64, kind: BlockKind, sealed: &mut [u8]) -> bool {
        if sealed.len() != self.stride() {
            return false;
        }
        // The buffer is ciphertext || tag, as ring expects.
        self.key.open_in_place(Self::nonce(index), Aad::from(self.aad(index, kind)), sealed).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(cipher: &BlockCipher, index: u64, kind: BlockKind, fill: u8) -> Vec<u8> {
        let mut buf = vec![fill; cipher.stride()];
        cipher.seal(index, kind, &mut buf).unwrap();
        buf
    }

    #[test]
    fn a_block_opens_only_at_its_index_kind_and_drive() {
        let cipher = BlockCipher::new(&[1; 32], [2; 16], [3; 16], 4096);
        let block = sealed(&cipher, 5, BlockKind::Data, 0xAA);
        let mut ok = block.clone();
        assert!(cipher.open(5, BlockKind::Data, &mut ok));
        assert!(ok[..4096].iter().all(|b| *b == 0xAA));

        assert!(!cipher.open(6, BlockKind::Data, &mut block.clone()));
        assert!(!cipher.open(5, BlockKind::Manifest, &mut block.clone()));
        let other_drive = BlockCipher::new(&[1; 32], [9; 16], [3; 16], 4096);
        assert!(!other_drive.open(5, BlockKind::Data, &mut block.clone()));
        let other_set = BlockCipher::new(&[1; 32], [2; 16], [9; 16], 4096);
        assert!(!other_set.open(5, BlockKind::Data, &mut block.clone()));
        let mut flipped = block.clone();
        flipped[100] ^= 1;
        assert!(!cipher.open(5, BlockKind::Data, &mut flipped));
        assert!(!cipher.open(5, BlockKind::Data, &mut block[..100].to_vec()));
    }

    /// The bytes are plain AES-256-GCM: the same as the `aes-gcm` crate's.
    #[test]
    fn blocks_are_standard_aes_gcm() {
        use aes_gcm::aead::{AeadInPlace, KeyInit};
        let cipher = BlockCipher::new(&[7; 32], [2; 16], [3; 16], 4096);
        let block = sealed(&cipher, 9, BlockKind::Manifest, 0x5A);
        let reference = aes_gcm::Aes256Gcm::new((&[7u8; 32]).into());
        let mut plain = vec![0x5Au8; 4096];
        let mut nonce = [0u8; 12];
        nonce[..8].copy_from_slice(&9u64.to_le_bytes());
        let tag = reference
            .encrypt_in_place_detached(
                aes_gcm::Nonce::from_slice(&nonce),
                &cipher.aad(9, BlockKind::Manifest),
                &mut plain,
            )
            .unwrap();
        assert_eq!(&block[..4096], &plain[..]);
        assert_eq!(&block[4096..], tag.as_slice());
    }

    #[test]
    fn geometry() {
        assert_eq!(block_offset(4096, 0), Some(65536));
        assert_eq!(block_offset(4096, 2), Some(65536 + 2 * 4112));
        assert_eq!(block_offset(4096, u64::MAX), None);
        assert_eq!(capacity_blocks(4096, 65536 + 3 * 4112 + 4111), 3);
        assert_eq!(capacity_blocks(4096, 1000), 0);
    }
}
