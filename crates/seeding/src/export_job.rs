//! The life cycle of an export job (offline restore: the service's copy of
//! recovery points goes back to the customer on drives), and how many drives it
//! takes.
//!
//! `Requested → Preparing → Shipping → Delivered → Completed`, or `Closed`
//! (cancelled before the drives leave). The station moves it to `Preparing` when
//! it starts writing and to `Shipping` with the return shipment; the customer
//! records `Delivered` and `Completed`.

use offsite_api::types::ExportJobState;

use crate::drive::block::capacity_blocks;
use crate::drive::DEFAULT_BLOCK_SIZE;
use crate::import_job::LifeCycle;

impl LifeCycle for ExportJobState {
    fn next_states(self) -> &'static [ExportJobState] {
        use ExportJobState::*;
        match self {
            Requested => &[Preparing, Closed],
            Preparing => &[Shipping, Closed],
            Shipping => &[Delivered],
            Delivered => &[Completed],
            Completed | Closed => &[],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportJobError {
    #[error("export job '{job}' is {from} and cannot become {to} (from {from} it can become: {allowed})")]
    Transition { job: String, from: ExportJobState, to: ExportJobState, allowed: String },
    #[error("a drive of {drive_size} bytes holds no data in the drive format: use drives of at least 64 MiB")]
    DriveTooSmall { drive_size: u64 },
}

/// Checks that `job` may move from `from` to `to`.
pub fn check_transition(job: &str, from: ExportJobState, to: ExportJobState) -> Result<(), ExportJobError> {
    if from.next_states().contains(&to) {
        return Ok(());
    }
    let allowed = from.next_states().iter().map(ToString::to_string).collect::<Vec<_>>();
    Err(ExportJobError::Transition {
        job: job.to_string(),
        from,
        to,
        allowed: if allowed.is_empty() { "nothing, it is final".into() } else { allowed.join(", ") },
    })
}

/// Drives of `drive_size` bytes that `bytes` of `files` files fill in the drive
/// format with its default block size: a header region, a 16-byte tag per block,
/// and a manifest per drive. The manifest is estimated from above (every path at
/// its longest plausible repository length, every file split across two drives),
/// so the count is never short.
pub fn drives_needed(files: u64, bytes: u64, drive_size: u64) -> Result<u32, ExportJobError> {
    let block = u64::from(DEFAULT_BLOCK_SIZE);
    let blocks_per_drive = capacity_blocks(DEFAULT_BLOCK_SIZE, drive_size);
    // A repository path is at most ~100 bytes (`<machine id>/data/ab/<64 hex>`);
    // a part costs its path, offsets and sizes, a block its 32-byte digest.
    const PART_BYTES: u64 = 128 + 3 * 10;
    if blocks_per_drive < 32 {
        return Err(ExportJobError::DriveTooSmall { drive_size });
    }
    let mut drives: u64 = 1;
    loop {
        let data_blocks = bytes.div_ceil(block);
        let manifest_bytes = (files + drives) * PART_BYTES + data_blocks * 32 + 1024;
        // Each drive carries its own manifest; at most every drive's whole.
        let manifest_blocks_per_drive = manifest_bytes.div_ceil(block);
        let usable = blocks_per_drive.saturating_sub(manifest_blocks_per_drive);
        if usable == 0 {
            return Err(ExportJobError::DriveTooSmall { drive_size });
        }
        let needed = data_blocks.div_ceil(usable).max(1);
        if needed <= drives {
            return Ok(u32::try_from(drives).unwrap_or(u32::MAX));
        }
        drives = needed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GB: u64 = 1_000_000_000;

    #[test]
    fn the_life_cycle_goes_forward_and_closes_only_before_shipping() {
        use ExportJobState::*;
        assert!(check_transition("j", Requested, Preparing).is_ok());
        assert!(check_transition("j", Preparing, Shipping).is_ok());
        assert!(check_transition("j", Shipping, Delivered).is_ok());
        assert!(check_transition("j", Delivered, Completed).is_ok());
        assert!(check_transition("j", Requested, Closed).is_ok());
        let refused = check_transition("j", Shipping, Closed).unwrap_err().to_string();
        assert!(refused.contains("is shipping and cannot become closed") && refused.contains("delivered"), "{refused}");
        assert!(check_transition("j", Completed, Closed).unwrap_err().to_string().contains("final"));
    }

    #[test]
    fn drives_are_counted_with_the_formats_overhead() {
        // 1.5 TB on 1 TB drives: two.
        assert_eq!(drives_needed(10_000, 1_500 * GB, 1_000 * GB).unwrap(), 2);
        // Exactly a drive's raw size does not fit one: the tags and header take room.
        assert_eq!(drives_needed(10, 1_000 * GB, 1_000 * GB).unwrap(), 2);
        // 99% of a drive fits one.
        assert_eq!(drives_needed(10, 990 * GB, 1_000 * GB).unwrap(), 1);
        // Nothing still takes a drive (it carries the config and keys).
        assert_eq!(drives_needed(0, 0, 1_000 * GB).unwrap(), 1);
        // 10 TiB on 10 TB drives.
        assert_eq!(drives_needed(5_000_000, 10 * (1 << 40), 10_000 * GB).unwrap(), 2);
        assert!(drives_needed(1, 1, 1024 * 1024).is_err());
    }
}
