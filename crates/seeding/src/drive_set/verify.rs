//! [`DriveSetBackend::verify`]: every block of every drive given read once, and
//! the damage named by repository file, before (or instead of) a restore.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::PathBuf;

use rayon::prelude::*;
use serde::Serialize;

use super::{AbsentDrives, DriveSetBackend};
use crate::drive::{BlockProblem, VerifyReport};

/// What reading the whole set found.
#[derive(Debug, Clone, Serialize)]
pub struct SetVerifyReport {
    /// Hex.
    pub set_id: String,
    /// Each drive given, in index order, with its blocks' report.
    pub drives: Vec<DriveVerifyReport>,
    /// Drives of the set that were not given.
    pub absent_drives: Vec<AbsentDrives>,
    /// Repository files with bytes that the drives given cannot deliver, by path:
    /// ranges in bad blocks, and ranges on absent drives. Files wholly on absent
    /// drives cannot be named (the drives given do not list them).
    pub damaged_files: Vec<DamagedFile>,
}

impl SetVerifyReport {
    /// Every drive of the set given, and every block of them good.
    pub fn is_clean(&self) -> bool {
        self.absent_drives.is_empty() && self.damaged_files.is_empty()
    }

    /// Bad blocks over all drives given.
    pub fn bad_blocks(&self) -> usize {
        self.drives.iter().map(|d| d.report.bad_blocks.len()).sum()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DriveVerifyReport {
    pub index: u32,
    pub path: PathBuf,
    pub report: VerifyReport,
}

/// A repository file (path as on the drives, `data/ab/<id>`) that cannot be read whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DamagedFile {
    pub path: String,
    pub size: u64,
    /// In file order.
    pub ranges: Vec<DamagedRange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DamagedRange {
    pub offset: u64,
    pub length: u64,
    pub cause: DamageCause,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum DamageCause {
    /// In data block `block` of drive `drive`, which is bad.
    BadBlock { drive: u32, block: u64, problem: BlockProblem },
    /// On drives of the set that were not given.
    AbsentDrives(AbsentDrives),
}

impl std::fmt::Display for DamageCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DamageCause::BadBlock { drive, block, problem } => {
                write!(f, "data block {block} of drive {drive} {problem}")
            }
            DamageCause::AbsentDrives(drives) => write!(f, "on {drives}, which was not given"),
        }
    }
}

impl DriveSetBackend {
    /// Reads every data block of every drive given once (drives side by side, each
    /// in order), authenticating it and checking its digest, and lists what is bad
    /// and which repository files it touches, together with the files partly on
    /// absent drives. Reads nothing else; the block cache is left alone.
    pub fn verify(&self) -> SetVerifyReport {
        let drives: Vec<DriveVerifyReport> = self
            .drives
            .par_iter()
            .map(|drive| {
                let Ok(report) = drive.reader.scan(|_| true, |_, _, _| Ok::<(), Infallible>(()));
                DriveVerifyReport { index: drive.index, path: drive.reader.path().to_path_buf(), report }
            })
            .collect();
        let mut damaged: BTreeMap<String, DamagedFile> =
            self.partly_absent_files().into_iter().map(|file| (file.path.clone(), file)).collect();
        for drive in &drives {
            for bad in &drive.report.bad_blocks {
                for range in &bad.affects {
                    let size = self.files.get(&range.path).map_or(0, |f| f.size);
                    let file = damaged.entry(range.path.clone()).or_insert_with(|| DamagedFile {
                        path: range.path.clone(),
                        size,
                        ranges: Vec::new(),
                    });
                    file.ranges.push(DamagedRange {
                        offset: range.offset_in_file,
                        length: range.length,
                        cause: DamageCause::BadBlock {
                            drive: drive.index,
                            block: bad.index,
                            problem: bad.problem.clone(),
                        },
                    });
                }
            }
        }
        let mut damaged_files: Vec<DamagedFile> = damaged.into_values().collect();
        for file in &mut damaged_files {
            file.ranges.sort_by_key(|r| r.offset);
        }
        SetVerifyReport { set_id: hex::encode(self.set_id), drives, absent_drives: self.absent_drives(), damaged_files }
    }
}
