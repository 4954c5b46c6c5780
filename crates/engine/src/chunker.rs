//! Content-defined chunking with FastCDC (2020), seeded per repository.
//!
//! `fastcdc`'s own `StreamCDC` drains and re-zeroes its whole buffer for every chunk
//! and copies each chunk out; at a gigabyte a second that is most of the cost. This
//! reader keeps one buffer, hands out borrowed slices (a chunk that already exists
//! in the repository is never copied), and compacts the buffer only when the unread
//! tail is shorter than a maximum chunk. The cut-point search itself is fastcdc's.

use std::io::{self, Read};

use fastcdc::v2020::{cut_gear, get_gear_with_seed, Normalization, MASKS};
use serde::{Deserialize, Serialize};

/// Chunk size bounds, stored in the repository config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
}

impl Default for ChunkerParams {
    /// 512 KiB / 1 MiB / 8 MiB: large enough to keep the index small (about 70 MB of
    /// memory per TB), small enough that a 1% change rewrites little.
    fn default() -> Self {
        ChunkerParams { min_size: 512 * 1024, avg_size: 1024 * 1024, max_size: 8 * 1024 * 1024 }
    }
}

impl ChunkerParams {
    pub fn validate(&self) -> Result<(), String> {
        use fastcdc::v2020::{AVERAGE_MAX, AVERAGE_MIN, MAXIMUM_MAX, MAXIMUM_MIN, MINIMUM_MAX, MINIMUM_MIN};
        let ok = (MINIMUM_MIN..=MINIMUM_MAX).contains(&self.min_size)
            && (AVERAGE_MIN..=AVERAGE_MAX).contains(&self.avg_size)
            && (MAXIMUM_MIN..=MAXIMUM_MAX).contains(&self.max_size)
            && self.min_size <= self.avg_size
            && self.avg_size <= self.max_size;
        if ok {
            Ok(())
        } else {
            Err(format!("chunk sizes {self:?} are out of range"))
        }
    }
}

/// Precomputed tables for one repository; cheap to share between threads.
pub struct ChunkerTables {
    params: ChunkerParams,
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
    mask_s: u64,
    mask_l: u64,
}

impl ChunkerTables {
    pub fn new(params: ChunkerParams, seed: u64) -> Self {
        let bits = fastcdc::v2020::logarithm2(params.avg_size);
        let normalization = Normalization::Level1.bits();
        let (gear, gear_ls) = get_gear_with_seed(seed);
        ChunkerTables {
            params,
            gear,
            gear_ls,
            mask_s: MASKS[(bits + normalization) as usize],
            mask_l: MASKS[(bits - normalization) as usize],
        }
    }

    /// A chunker over `reader`. `size_hint` (the file's size) keeps the buffer small
    /// for small files.
    pub fn chunker<R: Read>(&self, reader: R, size_hint: u64) -> Chunker<'_, R> {
        let full = 2 * self.params.max_size as usize;
        let initial = usize::try_from(size_hint.saturating_add(1)).unwrap_or(full).clamp(1, full);
        Chunker { tables: self, reader, buf: vec![0; initial], start: 0, end: 0, eof: false }
    }

    fn cut(&self, data: &[u8]) -> usize {
        let p = &self.params;
        let (_, len) = cut_gear(
            data,
            p.min_size as usize,
            p.avg_size as usize,
            p.max_size as usize,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear,
            &self.gear_ls,
        );
        len
    }
}

pub struct Chunker<'t, R> {
    tables: &'t ChunkerTables,
    reader: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
}

impl<R: Read> Chunker<'_, R> {
    /// The next chunk, or `None` at the end of the input.
    pub fn next_chunk(&mut self) -> io::Result<Option<&[u8]>> {
        self.fill()?;
        if self.start == self.end {
            return Ok(None);
        }
        let len = self.tables.cut(&self.buf[self.start..self.end]).max(1);
        let chunk = &self.buf[self.start..self.start + len];
        self.start += len;
        Ok(Some(chunk))
    }

    /// Ensures at least one maximum-size chunk is buffered, unless the input ends first.
    fn fill(&mut self) -> io::Result<()> {
        let max = self.tables.params.max_size as usize;
        if self.eof || self.end - self.start >= max {
            return Ok(());
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        loop {
            if self.end == self.buf.len() {
                if self.end - self.start >= max {
                    return Ok(());
                }
                // The file is larger than its size hint: grow to the full buffer.
                self.buf.resize(2 * max, 0);
            }
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn small() -> ChunkerParams {
        ChunkerParams { min_size: 256, avg_size: 1024, max_size: 4096 }
    }

    fn chunks(tables: &ChunkerTables, data: &[u8]) -> Vec<Vec<u8>> {
        let mut c = tables.chunker(data, data.len() as u64);
        let mut out = Vec::new();
        while let Some(chunk) = c.next_chunk().unwrap() {
            out.push(chunk.to_vec());
        }
        out
    }

    /// A reader that returns at most `step` bytes per call, like a pipe or socket.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    proptest! {
        #[test]
        fn chunks_concatenate_to_input_and_respect_bounds(len in 0usize..40_000, seed in any::<u64>(), step in 1usize..5000) {
            let data = pseudo_random(len, seed);
            let tables = ChunkerTables::new(small(), 42);
            let pieces = chunks(&tables, &data);
            prop_assert_eq!(pieces.concat(), data.clone());
            for (i, piece) in pieces.iter().enumerate() {
                prop_assert!(piece.len() <= 4096);
                if i + 1 < pieces.len() {
                    prop_assert!(piece.len() >= 256);
                }
            }
            // Cut points depend on content only, not on how reads are split, nor on a
            // wrong size hint.
            let mut trickled = tables.chunker(Trickle { data: &data, step }, 1);
            let mut again = Vec::new();
            while let Some(chunk) = trickled.next_chunk().unwrap() {
                again.push(chunk.to_vec());
            }
            prop_assert_eq!(again, pieces);
        }
    }

    #[test]
    fn an_insertion_only_changes_nearby_chunks() {
        let tables = ChunkerTables::new(small(), 7);
        let data = pseudo_random(200_000, 3);
        let mut edited = data.clone();
        edited.splice(100_000..100_000, b"inserted".iter().copied());
        let a = chunks(&tables, &data);
        let b = chunks(&tables, &edited);
        let shared = a.iter().filter(|c| b.contains(c)).count();
        assert!(shared + 3 >= a.len(), "only {shared} of {} chunks survived an insertion", a.len());
    }

    #[test]
    fn the_seed_moves_cut_points() {
        let data = pseudo_random(100_000, 5);
        let a = chunks(&ChunkerTables::new(small(), 1), &data);
        let b = chunks(&ChunkerTables::new(small(), 2), &data);
        assert_ne!(a, b);
    }
}
