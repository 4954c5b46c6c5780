//! Blob encoding: compress (when it pays), then seal.
//!
//! The sealed plaintext starts with one byte saying how the rest is stored, so a
//! blob is self-describing: `0` raw, `1` zstd.

use crate::crypto::{EncryptionKey, Purpose, SEAL_OVERHEAD};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::repofile::BlobType;

const RAW: u8 = 0;
const ZSTD: u8 = 1;

/// Chunks smaller than this are stored raw: compression gains little and costs a frame.
const MIN_COMPRESSIBLE: usize = 64;

fn purpose(blob_type: BlobType) -> Purpose {
    match blob_type {
        BlobType::Data => Purpose::DataBlob,
        BlobType::Tree => Purpose::TreeBlob,
    }
}

/// A reusable zstd compressor per worker thread, saving a context allocation per blob.
pub struct BlobEncoder {
    compressor: Option<zstd::bulk::Compressor<'static>>,
    compressed: Vec<u8>,
}

impl BlobEncoder {
    /// `level` 0 turns compression off.
    pub fn new(level: i32) -> Self {
        let compressor = if level == 0 { None } else { zstd::bulk::Compressor::new(level).ok() };
        BlobEncoder { compressor, compressed: Vec::new() }
    }

    /// Appends the sealed form of `plaintext` to `out`; returns the sealed length.
    ///
    /// Incompressible data is detected by its result: when zstd saves less than 1/32,
    /// the raw bytes are stored instead, so reading never pays for useless decompression.
    pub fn seal_into(
        &mut self,
        key: &EncryptionKey,
        blob_type: BlobType,
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> usize {
        let before = out.len();
        let purpose = purpose(blob_type);
        if self.compress(plaintext) {
            key.seal_parts_into(purpose, &[&[ZSTD], &self.compressed], out);
        } else {
            key.seal_parts_into(purpose, &[&[RAW], plaintext], out);
        }
        out.len() - before
    }

    /// The length [`BlobEncoder::seal_into`] would return for `plaintext`, found by
    /// the same compress-if-it-pays decision, without sealing anything (estimates).
    pub fn sealed_len(&mut self, plaintext: &[u8]) -> usize {
        let body = if self.compress(plaintext) { self.compressed.len() } else { plaintext.len() };
        SEAL_OVERHEAD + 1 + body
    }

    /// Compresses `plaintext` into `self.compressed` and says whether storing that
    /// pays (saves at least 1/32).
    fn compress(&mut self, plaintext: &[u8]) -> bool {
        let Some(compressor) = self.compressor.as_mut().filter(|_| plaintext.len() >= MIN_COMPRESSIBLE) else {
            return false;
        };
        self.compressed.clear();
        self.compressed.reserve(zstd::zstd_safe::compress_bound(plaintext.len()));
        let limit = plaintext.len() - plaintext.len() / 32;
        matches!(compressor.compress_to_buffer(plaintext, &mut self.compressed), Ok(n) if n < limit)
    }
}

/// Opens, decompresses and verifies one blob: the plaintext must hash to `id`.
pub fn open_blob(
    key: &EncryptionKey,
    id_of: impl Fn(&[u8]) -> Id,
    blob_type: BlobType,
    id: &Id,
    sealed: &[u8],
    raw_length: u32,
) -> Result<Vec<u8>> {
    let what = || format!("{blob_type:?} blob {id}").to_lowercase();
    let plain = key.open(purpose(blob_type), sealed).map_err(|e| Error::damaged(what(), e))?;
    let (&marker, body) = plain.split_first().ok_or_else(|| Error::damaged(what(), "empty"))?;
    let data = match marker {
        RAW => body.to_vec(),
        ZSTD => zstd::bulk::decompress(body, raw_length as usize).map_err(|e| Error::damaged(what(), e))?,
        other => return Err(Error::damaged(what(), format!("unknown storage marker {other}"))),
    };
    if data.len() != raw_length as usize || id_of(&data) != *id {
        return Err(Error::damaged(what(), "content does not match its id"));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_len_is_what_sealing_stores() {
        let key = EncryptionKey::from_bytes([7; 32]);
        let text = b"the same line again and again\n".repeat(4000);
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let noise: Vec<u8> = (0..100_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        for level in [0, 3] {
            let mut encoder = BlobEncoder::new(level);
            for plaintext in [&text[..], &noise[..], &b"short"[..], &[][..]] {
                let mut out = Vec::new();
                let sealed = encoder.seal_into(&key, BlobType::Data, plaintext, &mut out);
                assert_eq!(encoder.sealed_len(plaintext), sealed, "level {level}, {} bytes", plaintext.len());
            }
        }
        // Compression pays on the text and not on the noise.
        let mut encoder = BlobEncoder::new(3);
        assert!(encoder.sealed_len(&text) < text.len() / 10);
        assert_eq!(encoder.sealed_len(&noise), noise.len() + 1 + SEAL_OVERHEAD);
    }
}
