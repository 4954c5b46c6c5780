//! Measures the memory the in-memory index takes per blob, the figure behind
//! "peak RSS per TB of repository" in BENCHMARKS.md.
//!
//! `cargo run --release -p offsite-engine --example index_memory -- 1000000`
//! builds an index of that many blobs (one TB of unique data at the default 1 MiB
//! average chunk is about a million blobs) and prints the resident memory it added.

use offsite_engine::id::Id;
use offsite_engine::index::MasterIndex;
use offsite_engine::repofile::index::{IndexBlob, IndexFile, IndexPack};
use offsite_engine::repofile::BlobType;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let blobs: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let per_pack = 16u64;
    let before = rss_kib();
    let mut index = MasterIndex::default();
    let mut counter = 0u64;
    for pack in 0..blobs.div_ceil(per_pack) {
        let mut entry = IndexPack { id: id_from(u64::MAX - pack), size: 16 << 20, blobs: Vec::new() };
        for slot in 0..per_pack.min(blobs - counter) {
            entry.blobs.push(IndexBlob {
                blob_type: BlobType::Data,
                id: id_from(counter),
                offset: (slot as u32) << 20,
                length: 1 << 20,
                raw_length: 1 << 20,
            });
            counter += 1;
        }
        index.add_file(None, &IndexFile { supersedes: Vec::new(), packs: vec![entry] });
    }
    let after = rss_kib();
    let added = (after - before) * 1024;
    println!(
        "blobs: {}  packs: {}  index memory: {:.1} MiB  ({:.0} bytes per blob)",
        index.blob_count(),
        index.packs().len(),
        added as f64 / (1 << 20) as f64,
        added as f64 / blobs as f64
    );
}

fn id_from(n: u64) -> Id {
    Id(*blake3::hash(&n.to_le_bytes()).as_bytes())
}
