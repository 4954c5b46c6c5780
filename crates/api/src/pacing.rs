//! Paced uploads: a request body that goes onto the wire slice by slice, each
//! slice waiting for a [`Pacer`]'s leave just before it is handed to the
//! connection. A bandwidth limit then holds at the link, not only on average: a
//! 16 MiB file leaves at the limit rather than waiting for its turn and then
//! leaving at line rate. The agent's throttle is a `Pacer`; this crate only
//! knows the trait.

use std::io::{self, Read};
use std::sync::Arc;

use bytes::Bytes;

/// Says when the bytes of an upload may leave. Shared by every upload that
/// keeps to the same limit, so that together they keep to it.
pub trait Pacer: Send + Sync {
    /// The most bytes to send on one leave: small enough that a slice is a
    /// small part of a second at the rate in force.
    fn slice_len(&self) -> usize;

    /// Blocks the calling thread until `bytes` more may go onto the wire.
    fn pace(&self, bytes: usize);

    /// The slowest rate, in bytes per second, the pacer may hold uploads to
    /// (all of them together), or `None` if it never holds them back: an
    /// upload's time limit leaves room for its pacing.
    fn slowest_rate(&self) -> Option<u64>;
}

/// `data` as a request body that asks `pacer` before each slice.
pub(crate) struct PacedBody {
    data: Bytes,
    pacer: Arc<dyn Pacer>,
    /// Bytes handed on so far.
    sent: usize,
    /// Bytes paced so far: what may be handed on without asking again.
    paced: usize,
}

impl PacedBody {
    pub(crate) fn new(data: Bytes, pacer: Arc<dyn Pacer>) -> PacedBody {
        PacedBody { data, pacer, sent: 0, paced: 0 }
    }
}

impl Read for PacedBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.data.len() - self.sent;
        if left == 0 || buf.is_empty() {
            return Ok(0);
        }
        if self.sent == self.paced {
            let slice = self.pacer.slice_len().clamp(1, left);
            self.pacer.pace(slice);
            self.paced += slice;
        }
        let n = buf.len().min(self.paced - self.sent);
        buf[..n].copy_from_slice(&self.data[self.sent..self.sent + n]);
        self.sent += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records every leave asked for.
    struct Recorder {
        slice: usize,
        paced: Mutex<Vec<usize>>,
    }

    impl Pacer for Recorder {
        fn slice_len(&self) -> usize {
            self.slice
        }

        fn pace(&self, bytes: usize) {
            self.paced.lock().unwrap().push(bytes);
        }

        fn slowest_rate(&self) -> Option<u64> {
            None
        }
    }

    #[test]
    fn every_byte_is_paced_once_in_slices_before_it_is_read() {
        let data: Bytes = (0..100_000u32).map(|i| i as u8).collect::<Vec<u8>>().into();
        let recorder = Arc::new(Recorder { slice: 30_000, paced: Mutex::default() });
        let mut body = PacedBody::new(data.clone(), recorder.clone());
        let mut read = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = body.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            read.extend_from_slice(&buf[..n]);
            let paced: usize = recorder.paced.lock().unwrap().iter().sum();
            assert!(read.len() <= paced, "{} bytes read, {paced} paced", read.len());
        }
        assert_eq!(read, data);
        assert_eq!(*recorder.paced.lock().unwrap(), [30_000, 30_000, 30_000, 10_000]);
    }
}
