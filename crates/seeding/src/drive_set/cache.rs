//! A small cache of decrypted data blocks shared by every reader of a drive set.
//!
//! The restorer reads a pack in runs of a few MiB, and runs (and packs) next to
//! each other on a drive share the block where one ends and the next begins. Only
//! such edge blocks are kept: a block a read used whole is not read again soon, and
//! keeping it would push the edges out. Memory is bounded by the slot count.

use std::collections::VecDeque;
use std::sync::Mutex;

use bytes::Bytes;

/// Bytes of plaintext the cache holds at most (at least two blocks, whatever their size).
pub const CACHE_BYTES: usize = 16 * 1024 * 1024;

/// Decrypted, checked blocks by (drive position, block index), least recently used first out.
pub(crate) struct BlockCache {
    slots: usize,
    entries: Mutex<VecDeque<(usize, u64, Bytes)>>,
}

impl BlockCache {
    pub(crate) fn new(block_size: u32) -> Self {
        let slots = (CACHE_BYTES / block_size.max(1) as usize).max(2);
        BlockCache { slots, entries: Mutex::new(VecDeque::with_capacity(slots)) }
    }

    pub(crate) fn get(&self, drive: usize, block: u64) -> Option<Bytes> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let at = entries.iter().position(|(d, b, _)| *d == drive && *b == block)?;
        let entry = entries.remove(at)?;
        let bytes = entry.2.clone();
        entries.push_back(entry);
        Some(bytes)
    }

    pub(crate) fn put(&self, drive: usize, block: u64, bytes: Bytes) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.iter().any(|(d, b, _)| *d == drive && *b == block) {
            return;
        }
        entries.push_back((drive, block, bytes));
        while entries.len() > self.slots {
            entries.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_a_bounded_number_of_blocks_least_recently_used_out() {
        let cache = BlockCache::new(8 * 1024 * 1024);
        assert_eq!(cache.slots, 2);
        cache.put(0, 1, Bytes::from_static(b"a"));
        cache.put(0, 2, Bytes::from_static(b"b"));
        assert_eq!(cache.get(0, 1).as_deref(), Some(&b"a"[..]));
        cache.put(1, 1, Bytes::from_static(b"c"));
        assert_eq!(cache.get(0, 2), None, "the least recently used went");
        assert_eq!(cache.get(0, 1).as_deref(), Some(&b"a"[..]));
        assert_eq!(cache.get(1, 1).as_deref(), Some(&b"c"[..]));
        assert_eq!(BlockCache::new(1024 * 1024).slots, 16);
    }
}
