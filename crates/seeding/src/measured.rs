//! The throughputs this machine measured, for the planner: a finished diskprep,
//! an ingest, a staging backup (or `offsite agent offline estimate`'s reading of the
//! protected data) each record bytes and seconds in one small JSON file,
//! [`MeasuredRates::FILE_NAME`], in the user's state folder (or `--agent-home`);
//! `offsite plan` reads it and says which rates were measured and which assumed.
//! The latest measurement of each kind replaces the one before it.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::plan::Rate;

/// Below this many bytes a run's start-up (Argon2, opening drives, TLS) weighs more
/// than its throughput: such runs are not recorded.
pub const MIN_BYTES: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum MeasuredRatesError {
    #[error("cannot read or write the measured rates {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "the measured rates {} are damaged ({reason}): remove the file; the next diskprep or ingest measures again",
        path.display()
    )]
    Damaged { path: PathBuf, reason: String },
}

/// Which step a measurement is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeasuredStep {
    Diskprep,
    Ingest,
    StagingBackup,
}

/// One run: how many bytes in how long, when, and what it was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub bytes: u64,
    pub seconds: f64,
    #[serde(with = "time::serde::rfc3339")]
    pub measured: OffsetDateTime,
    /// What ran, for people: `diskprep of import job seed-1 (2 drives)`.
    pub what: String,
    /// Measured by `offsite agent offline estimate` (read, chunk, hash, compress;
    /// nothing written) rather than by the step itself.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub estimated: bool,
}

impl Measurement {
    /// A measurement of `bytes` in `seconds` now, or `None` when too small or too
    /// short to say anything ([`MIN_BYTES`]).
    pub fn new(bytes: u64, seconds: f64, what: impl Into<String>) -> Option<Measurement> {
        (bytes >= MIN_BYTES && seconds > 0.0 && seconds.is_finite()).then(|| Measurement {
            bytes,
            seconds,
            measured: OffsetDateTime::now_utc(),
            what: what.into(),
            estimated: false,
        })
    }

    pub fn rate(&self) -> Rate {
        Rate(self.bytes as f64 / self.seconds)
    }
}

/// The file's content: the latest measurement of each step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MeasuredRates {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diskprep: Option<Measurement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingest: Option<Measurement>,
    /// A staging backup's reading of the source, or an estimate's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staging_backup: Option<Measurement>,
}

impl MeasuredRates {
    pub const FILE_NAME: &'static str = "measured-rates.json";

    /// The rates in `path`; none when the file does not exist yet.
    pub fn load(path: &Path) -> Result<MeasuredRates, MeasuredRatesError> {
        match fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| MeasuredRatesError::Damaged { path: path.to_path_buf(), reason: e.to_string() }),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(MeasuredRates::default()),
            Err(source) => Err(MeasuredRatesError::Io { path: path.to_path_buf(), source }),
        }
    }

    pub fn get(&self, step: MeasuredStep) -> Option<&Measurement> {
        match step {
            MeasuredStep::Diskprep => self.diskprep.as_ref(),
            MeasuredStep::Ingest => self.ingest.as_ref(),
            MeasuredStep::StagingBackup => self.staging_backup.as_ref(),
        }
    }

    /// Records `measurement` as the latest of `step` in the file at `path`
    /// (creating its folder), written whole or not at all. A damaged file is
    /// replaced: it only held earlier measurements.
    pub fn record(path: &Path, step: MeasuredStep, measurement: Measurement) -> Result<(), MeasuredRatesError> {
        let mut rates = MeasuredRates::load(path).unwrap_or_default();
        match step {
            MeasuredStep::Diskprep => rates.diskprep = Some(measurement),
            MeasuredStep::Ingest => rates.ingest = Some(measurement),
            MeasuredStep::StagingBackup => rates.staging_backup = Some(measurement),
        }
        rates.save(path)
    }

    /// Records an estimate's reading rate as the staging backup's, unless a real
    /// staging backup measured it already (that one knows better).
    pub fn record_estimate(path: &Path, measurement: Measurement) -> Result<bool, MeasuredRatesError> {
        let mut rates = MeasuredRates::load(path).unwrap_or_default();
        if rates.staging_backup.as_ref().is_some_and(|m| !m.estimated) {
            return Ok(false);
        }
        rates.staging_backup = Some(Measurement { estimated: true, ..measurement });
        rates.save(path)?;
        Ok(true)
    }

    /// Both files' measurements, step by step the better one: a step's own over an
    /// estimate, else the newer (the user's state folder holds what diskprep and
    /// ingest measured without `--agent-home`, an agent's folder what its own runs did).
    pub fn merged(self, other: MeasuredRates) -> MeasuredRates {
        fn better(a: Option<Measurement>, b: Option<Measurement>) -> Option<Measurement> {
            match (a, b) {
                (Some(a), Some(b)) => Some(if (a.estimated, b.measured) > (b.estimated, a.measured) { b } else { a }),
                (a, b) => a.or(b),
            }
        }
        MeasuredRates {
            diskprep: better(self.diskprep, other.diskprep),
            ingest: better(self.ingest, other.ingest),
            staging_backup: better(self.staging_backup, other.staging_backup),
        }
    }

    fn save(&self, path: &Path) -> Result<(), MeasuredRatesError> {
        let io = |source| MeasuredRatesError::Io { path: path.to_path_buf(), source };
        if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(folder).map_err(io)?;
        }
        let text = serde_json::to_string_pretty(self).expect("measured rates serialise") + "\n";
        let tmp = path.with_extension("json.tmp");
        fs::write(&tmp, text).map_err(io)?;
        fs::rename(&tmp, path).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_step_keeps_its_latest_measurement() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/offsite").join(MeasuredRates::FILE_NAME);
        assert_eq!(MeasuredRates::load(&path).unwrap(), MeasuredRates::default());

        let first = Measurement::new(400 << 20, 2.0, "diskprep of import job a").unwrap();
        MeasuredRates::record(&path, MeasuredStep::Diskprep, first).unwrap();
        let second = Measurement::new(800 << 20, 2.0, "diskprep of import job b").unwrap();
        MeasuredRates::record(&path, MeasuredStep::Diskprep, second.clone()).unwrap();
        let ingest = Measurement::new(100 << 20, 1.0, "ingest").unwrap();
        MeasuredRates::record(&path, MeasuredStep::Ingest, ingest.clone()).unwrap();

        let rates = MeasuredRates::load(&path).unwrap();
        assert_eq!(rates.get(MeasuredStep::Diskprep), Some(&second));
        assert_eq!(rates.get(MeasuredStep::Ingest), Some(&ingest));
        assert_eq!(rates.get(MeasuredStep::StagingBackup), None);
        assert_eq!(second.rate(), Rate((400 << 20) as f64));
    }

    #[test]
    fn an_estimate_does_not_replace_a_real_staging_backup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MeasuredRates::FILE_NAME);
        let estimate = Measurement::new(64 << 20, 0.5, "estimate").unwrap();
        assert!(MeasuredRates::record_estimate(&path, estimate.clone()).unwrap());
        assert!(MeasuredRates::load(&path).unwrap().staging_backup.unwrap().estimated);

        let real = Measurement::new(64 << 20, 1.0, "staging backup").unwrap();
        MeasuredRates::record(&path, MeasuredStep::StagingBackup, real.clone()).unwrap();
        assert!(!MeasuredRates::record_estimate(&path, estimate).unwrap());
        let rates = MeasuredRates::load(&path).unwrap();
        assert_eq!(rates.staging_backup, Some(real));
    }

    #[test]
    fn merging_keeps_a_steps_own_measurement_then_the_newer() {
        let at = |seconds: i64, estimated: bool| Measurement {
            bytes: 1 << 30,
            seconds: 1.0,
            measured: OffsetDateTime::from_unix_timestamp(1_800_000_000 + seconds).unwrap(),
            what: format!("at {seconds}"),
            estimated,
        };
        let user = MeasuredRates { diskprep: Some(at(10, false)), ingest: Some(at(5, false)), staging_backup: None };
        let agent = MeasuredRates { diskprep: Some(at(20, false)), ingest: None, staging_backup: Some(at(30, true)) };
        let merged = user.clone().merged(agent.clone());
        assert_eq!(merged.diskprep, Some(at(20, false)), "the newer");
        assert_eq!(merged.ingest, Some(at(5, false)));
        assert_eq!(merged.staging_backup, Some(at(30, true)));
        let real = MeasuredRates { staging_backup: Some(at(1, false)), ..MeasuredRates::default() };
        assert_eq!(
            agent.merged(real).staging_backup,
            Some(at(1, false)),
            "a real staging backup beats a newer estimate"
        );
    }

    #[test]
    fn small_runs_and_damaged_files_are_not_taken_for_measurements() {
        assert!(Measurement::new(MIN_BYTES - 1, 1.0, "tiny").is_none());
        assert!(Measurement::new(MIN_BYTES, 0.0, "instant").is_none());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MeasuredRates::FILE_NAME);
        fs::write(&path, "{ not json").unwrap();
        let err = MeasuredRates::load(&path).unwrap_err().to_string();
        assert!(err.contains("damaged") && err.contains("remove the file"), "{err}");
        let fresh = Measurement::new(MIN_BYTES, 1.0, "diskprep").unwrap();
        MeasuredRates::record(&path, MeasuredStep::Diskprep, fresh.clone()).unwrap();
        assert_eq!(MeasuredRates::load(&path).unwrap().diskprep, Some(fresh));
    }
}
