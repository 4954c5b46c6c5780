//! [`repair()`]: a new set of drives carrying only the named staging files, whole,
//! to re-send what an ingest could not deliver (its error log names the files).
//! Whole files are simplest: repository files are at most about 1 GiB, and the
//! service replaces a file only with a complete upload.

use std::collections::BTreeSet;

use super::journal::JournalLock;
use super::prepare::{existing_journal, start};
use super::{DiskprepError, DrivePlan, DriveSupplier, PrepareOptions, PrepareProgress, PreparedSet};
use crate::staging::StagingListing;

/// Writes a new set (new set id, drives numbered from 0) holding only `files`
/// (paths relative to the staging location, as the ingest error log names them),
/// with its own journal at `plan.journal`; [`super::resume()`] continues it like any
/// preparation.
pub fn repair(
    plan: &DrivePlan,
    files: &[String],
    supplier: &mut dyn DriveSupplier,
    progress: &dyn Fn(&PrepareProgress),
) -> Result<PreparedSet, DiskprepError> {
    repair_with(plan, files, &PrepareOptions::default(), supplier, progress)
}

/// [`repair()`] with explicit options.
pub fn repair_with(
    plan: &DrivePlan,
    files: &[String],
    options: &PrepareOptions,
    supplier: &mut dyn DriveSupplier,
    progress: &dyn Fn(&PrepareProgress),
) -> Result<PreparedSet, DiskprepError> {
    let _lock = JournalLock::acquire(&plan.journal)?;
    if let Some(done) = existing_journal(plan)? {
        return Ok(done);
    }
    let listing = StagingListing::read(&plan.staging)?;
    let subset = subset(&listing, files)?;
    start(plan, subset, Some(subset_names(files)), options, supplier, progress)
}

fn subset_names(files: &[String]) -> Vec<String> {
    files.iter().map(|f| f.trim().to_string()).filter(|f| !f.is_empty()).collect::<BTreeSet<_>>().into_iter().collect()
}

/// The listing of only `files` (duplicates and surrounding spaces ignored); every
/// one must be in the staging location.
pub(crate) fn subset(listing: &StagingListing, files: &[String]) -> Result<StagingListing, DiskprepError> {
    let names = subset_names(files);
    if names.is_empty() {
        return Err(DiskprepError::NoFiles);
    }
    let mut chosen = Vec::with_capacity(names.len());
    for name in names {
        match listing.get(&name) {
            Some(file) => chosen.push(file.clone()),
            None => return Err(DiskprepError::UnknownFile { file: name, staging: listing.root.clone() }),
        }
    }
    Ok(StagingListing::from_files(&listing.root, chosen))
}
