//! Times `diskprep::prepare` of a staging folder onto one image file, for comparison
//! with a plain `cp -r` of the same folder to the same disk.
//!
//!     cargo run -p offsite-seeding --example diskprep_throughput -- <staging> <image> [block size] [checkpoint MiB]
//!
//! The image is sized to hold the whole staging location; the journal goes next to it.

use std::path::PathBuf;
use std::time::Instant;

use offsite_seeding::diskprep::{prepare_with, DiskprepError, DrivePlan, DriveSupplier, PrepareOptions};
use offsite_seeding::drive::{DriveTarget, DEFAULT_BLOCK_SIZE};
use offsite_seeding::staging::StagingListing;

struct One(Option<DriveTarget>);

impl DriveSupplier for One {
    fn next_drive(&mut self, _: u32, _: u64) -> Result<Option<DriveTarget>, DiskprepError> {
        Ok(self.0.take())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: diskprep_throughput <staging> <image> [block size] [checkpoint MiB]";
    let staging = PathBuf::from(args.next().ok_or(usage)?);
    let image = PathBuf::from(args.next().ok_or(usage)?);
    let block_size = match args.next() {
        Some(text) => text.parse()?,
        None => DEFAULT_BLOCK_SIZE,
    };
    let mut options = PrepareOptions::default();
    if let Some(text) = args.next() {
        options.checkpoint_bytes = text.parse::<u64>()? * 1024 * 1024;
    }
    let total = StagingListing::read(&staging)?.total_bytes;
    let size = total + total / 50 + 64 * 1024 * 1024;
    let journal = image.with_extension("journal.json");
    let _ = std::fs::remove_file(&journal);
    let plan = DrivePlan {
        import_job: "throughput".into(),
        staging,
        import_public_key: x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::random_from_rng(
            rand::rngs::OsRng,
        ))
        .to_bytes(),
        block_size,
        journal,
    };
    let started = Instant::now();
    let set = prepare_with(&plan, &options, &mut One(Some(DriveTarget::Image { path: image, size })), &|_| {})?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "diskprep: {} bytes onto {} drive(s) in {seconds:.2} s: {:.0} MB/s",
        set.total_bytes,
        set.drives.len(),
        set.total_bytes as f64 / seconds / 1e6
    );
    Ok(())
}
