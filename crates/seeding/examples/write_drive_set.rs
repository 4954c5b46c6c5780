//! Writes a repository folder onto a set of drive image files, as diskprep writes a
//! staging location (and as an export job writes drives), without the service: for
//! benchmarks and manual tests of restoring from drives (`scripts/bench-export-restore`).
//!
//!     cargo run --release -p offsite-seeding --example write_drive_set -- <repository> <out dir> <drives>
//!
//! Draws an X25519 key pair, writes the secret to `<out dir>/drives.key` (64 hex
//! digits, as `offsite repo restore --drive-key` reads it) and the drives to
//! `<out dir>/drive-<index>-1.img`, sized so the repository fills `<drives>` of them.
//! Prints the image paths, one a line.

use std::path::PathBuf;
use std::time::Instant;

use offsite_seeding::diskprep::{prepare, DiskprepError, DrivePlan, DriveSupplier};
use offsite_seeding::drive::{DriveTarget, DEFAULT_BLOCK_SIZE, HEADER_REGION, TAG_LEN};
use offsite_seeding::staging::StagingListing;

struct Images {
    dir: PathBuf,
    size: u64,
}

impl DriveSupplier for Images {
    fn next_drive(&mut self, index: u32, _: u64) -> Result<Option<DriveTarget>, DiskprepError> {
        Ok(Some(DriveTarget::Image { path: self.dir.join(format!("drive-{index}-1.img")), size: self.size }))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: write_drive_set <repository> <out dir> <drives>";
    let repository = PathBuf::from(args.next().ok_or(usage)?);
    let out = PathBuf::from(args.next().ok_or(usage)?);
    let drives: u64 = args.next().ok_or(usage)?.parse()?;
    std::fs::create_dir_all(&out)?;
    let (secret, public) = offsite_api::import_key::generate_import_key();
    offsite_api::import_key::write_import_secret(&out.join("drives.key"), &secret)?;

    let total = StagingListing::read(&repository)?.total_bytes;
    let block = u64::from(DEFAULT_BLOCK_SIZE);
    // Room for the data, its share of the last block and the manifest, on each drive.
    let blocks = total.div_ceil(drives.max(1)).div_ceil(block) + 4;
    let size = HEADER_REGION + blocks * (block + TAG_LEN);
    let plan = DrivePlan {
        import_job: "export-bench".into(),
        staging: repository,
        import_public_key: public,
        block_size: DEFAULT_BLOCK_SIZE,
        journal: out.join("journal.json"),
    };
    let started = Instant::now();
    let set = prepare(&plan, &mut Images { dir: out, size }, &|_| {})?;
    eprintln!(
        "write_drive_set: {} bytes onto {} drives in {:.2} s",
        set.total_bytes,
        set.drives.len(),
        started.elapsed().as_secs_f64()
    );
    for drive in &set.drives {
        println!("{}", drive.path.display());
    }
    Ok(())
}
