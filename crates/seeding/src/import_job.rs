//! The life cycle of an import job and of its drives, after the public import
//! services' model. States are enums and every change goes through
//! [`ImportJob::advance`] or [`DriveRecord::advance`], which refuse a transition
//! the life cycle does not allow, so a wrong state cannot be stored.
//!
//! Job: `Creating → Shipping → Received → Transferring → Packaging → Completed`,
//! or `Closed` (cancelled, or expired because the drives did not arrive within
//! [`ARRIVAL_DEADLINE`] of the shipping details).
//! Drive: `Specified → Received → Transferring → Completed | CompletedMoreInfo`,
//! `Specified → NeverReceived`, and any received drive may end `ShippedBack`.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

/// Drives must reach the datacenter within 14 days of the shipping details.
pub const ARRIVAL_DEADLINE: Duration = Duration::days(14);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ImportJobState {
    Creating,
    Shipping,
    Received,
    Transferring,
    Packaging,
    Completed,
    Closed,
}

impl ImportJobState {
    /// The states this one may move to.
    pub fn next_states(self) -> &'static [ImportJobState] {
        use ImportJobState::*;
        match self {
            Creating => &[Shipping, Closed],
            Shipping => &[Received, Closed],
            Received => &[Transferring, Closed],
            Transferring => &[Packaging, Closed],
            Packaging => &[Completed],
            Completed | Closed => &[],
        }
    }

    pub fn is_final(self) -> bool {
        self.next_states().is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DriveState {
    Specified,
    Received,
    Transferring,
    Completed,
    /// Ingested with errors: an error log in the container names what is missing.
    CompletedMoreInfo,
    NeverReceived,
    ShippedBack,
}

impl DriveState {
    pub fn next_states(self) -> &'static [DriveState] {
        use DriveState::*;
        match self {
            Specified => &[Received, NeverReceived],
            Received => &[Transferring, ShippedBack],
            Transferring => &[Completed, CompletedMoreInfo],
            Completed | CompletedMoreInfo => &[ShippedBack],
            NeverReceived | ShippedBack => &[],
        }
    }

    /// Ingest is over for this drive, well or not.
    pub fn is_done(self) -> bool {
        !matches!(self, DriveState::Specified | DriveState::Received | DriveState::Transferring)
    }
}

macro_rules! display_as_debug {
    ($($t:ty),*) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(self, f)
            }
        }
    )*};
}
display_as_debug!(ImportJobState, DriveState);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportJobError {
    #[error("import job '{job}' is {from} and cannot become {to} (from {from} it can become: {allowed})")]
    JobTransition { job: String, from: ImportJobState, to: ImportJobState, allowed: String },
    #[error("drive {drive} is {from} and cannot become {to} (from {from} it can become: {allowed})")]
    DriveTransition { drive: String, from: DriveState, to: DriveState, allowed: String },
    #[error("'{0}' is not a valid import job name: use 3 to 64 letters, digits, '-' or '_', starting with a letter or digit")]
    BadName(String),
    #[error("'{0}' is not a valid tracking number: use 4 to 40 letters, digits or '-'")]
    BadTrackingNumber(String),
}

/// One change of state, kept for the timeline people read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChange<S> {
    pub state: S,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who did it: a user, the datacenter operator, ingest station "dc1-ingest-2", "service".
    pub actor: String,
}

fn allowed<S: std::fmt::Display>(states: &[S]) -> String {
    if states.is_empty() {
        return "nothing, it is final".into();
    }
    states.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")
}

/// An import job as the service keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportJob {
    pub name: String,
    pub history: Vec<StateChange<ImportJobState>>,
    /// When shipping details were committed; the arrival deadline runs from here.
    #[serde(with = "time::serde::rfc3339::option")]
    pub shipped_at: Option<OffsetDateTime>,
}

impl ImportJob {
    pub fn new(name: &str, actor: &str, at: OffsetDateTime) -> Result<ImportJob, ImportJobError> {
        check_job_name(name)?;
        Ok(ImportJob {
            name: name.to_string(),
            history: vec![StateChange { state: ImportJobState::Creating, at, actor: actor.to_string() }],
            shipped_at: None,
        })
    }

    pub fn state(&self) -> ImportJobState {
        self.history.last().map(|c| c.state).unwrap_or(ImportJobState::Creating)
    }

    pub fn advance(&mut self, to: ImportJobState, actor: &str, at: OffsetDateTime) -> Result<(), ImportJobError> {
        let from = self.state();
        if !from.next_states().contains(&to) {
            return Err(ImportJobError::JobTransition {
                job: self.name.clone(),
                from,
                to,
                allowed: allowed(from.next_states()),
            });
        }
        if to == ImportJobState::Shipping {
            self.shipped_at = Some(at);
        }
        self.history.push(StateChange { state: to, at, actor: actor.to_string() });
        Ok(())
    }

    /// The time by which the drives must arrive, once shipping details exist.
    pub fn arrival_deadline(&self) -> Option<OffsetDateTime> {
        self.shipped_at.map(|t| t + ARRIVAL_DEADLINE)
    }

    /// Whether the job waits for drives past its deadline at `now` (callers pass
    /// the time, so tests and clock jumps are explicit).
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.state() == ImportJobState::Shipping && self.arrival_deadline().is_some_and(|d| now > d)
    }

    /// Closes an expired job; returns whether it did.
    pub fn expire_if_due(&mut self, now: OffsetDateTime) -> bool {
        if self.is_expired(now) {
            self.history.push(StateChange {
                state: ImportJobState::Closed,
                at: now,
                actor: "service (deadline)".into(),
            });
            return true;
        }
        false
    }
}

/// A drive of an import job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriveRecord {
    /// The drive id from its header, hex.
    pub drive_id: String,
    pub index: u32,
    pub history: Vec<StateChange<DriveState>>,
}

impl DriveRecord {
    pub fn new(drive_id: &str, index: u32, actor: &str, at: OffsetDateTime) -> DriveRecord {
        DriveRecord {
            drive_id: drive_id.to_string(),
            index,
            history: vec![StateChange { state: DriveState::Specified, at, actor: actor.to_string() }],
        }
    }

    pub fn state(&self) -> DriveState {
        self.history.last().map(|c| c.state).unwrap_or(DriveState::Specified)
    }

    pub fn advance(&mut self, to: DriveState, actor: &str, at: OffsetDateTime) -> Result<(), ImportJobError> {
        let from = self.state();
        if !from.next_states().contains(&to) {
            return Err(ImportJobError::DriveTransition {
                drive: self.drive_id.clone(),
                from,
                to,
                allowed: allowed(from.next_states()),
            });
        }
        self.history.push(StateChange { state: to, at, actor: actor.to_string() });
        Ok(())
    }
}

/// Import job names are how everything tracks a transfer; they appear on drives,
/// in paths and on shipping labels.
pub fn check_job_name(name: &str) -> Result<(), ImportJobError> {
    let ok = (3..=64).contains(&name.len())
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ImportJobError::BadName(name.to_string()))
    }
}

/// Carriers' tracking numbers: letters, digits and dashes.
pub fn check_tracking_number(number: &str) -> Result<String, ImportJobError> {
    let cleaned: String = number.trim().to_ascii_uppercase();
    let ok = (4..=40).contains(&cleaned.len()) && cleaned.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(cleaned)
    } else {
        Err(ImportJobError::BadTrackingNumber(number.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-01 09:00 UTC);

    #[test]
    fn a_job_walks_its_whole_life() {
        let mut job = ImportJob::new("seed-2026-11", "ann", T0).unwrap();
        for (state, actor) in [
            (ImportJobState::Shipping, "ann"),
            (ImportJobState::Received, "dc1 operator"),
            (ImportJobState::Transferring, "dc1-ingest-1"),
            (ImportJobState::Packaging, "dc1-ingest-1"),
            (ImportJobState::Completed, "dc1 operator"),
        ] {
            job.advance(state, actor, T0 + Duration::hours(1)).unwrap();
        }
        assert_eq!(job.state(), ImportJobState::Completed);
        assert_eq!(job.history.len(), 6);
        assert!(job.state().is_final());
    }

    #[test]
    fn skipping_or_going_back_is_refused_and_named() {
        let mut job = ImportJob::new("seed-1", "ann", T0).unwrap();
        let err = job.advance(ImportJobState::Transferring, "x", T0).unwrap_err().to_string();
        assert!(err.contains("Creating") && err.contains("Transferring") && err.contains("Shipping, Closed"), "{err}");
        job.advance(ImportJobState::Closed, "ann", T0).unwrap();
        let err = job.advance(ImportJobState::Shipping, "ann", T0).unwrap_err().to_string();
        assert!(err.contains("final"), "{err}");
        assert_eq!(job.state(), ImportJobState::Closed);
    }

    #[test]
    fn every_declared_transition_is_accepted_and_no_other() {
        use ImportJobState::*;
        let all = [Creating, Shipping, Received, Transferring, Packaging, Completed, Closed];
        for from in all {
            for to in all {
                let mut job = ImportJob::new("seed-1", "t", T0).unwrap();
                job.history[0].state = from;
                let ok = job.advance(to, "t", T0).is_ok();
                assert_eq!(ok, from.next_states().contains(&to), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn the_deadline_is_fourteen_days_after_shipping_details() {
        let mut job = ImportJob::new("seed-1", "ann", T0).unwrap();
        assert!(!job.is_expired(T0 + Duration::days(100)), "no deadline before shipping");
        job.advance(ImportJobState::Shipping, "ann", T0).unwrap();
        assert!(!job.is_expired(T0 + Duration::days(14)));
        assert!(job.is_expired(T0 + Duration::days(14) + Duration::seconds(1)));
        // A clock jumping back does not expire it.
        assert!(!job.expire_if_due(T0 - Duration::days(30)));
        assert!(job.expire_if_due(T0 + Duration::days(15)));
        assert_eq!(job.state(), ImportJobState::Closed);
        // A received job never expires.
        let mut job = ImportJob::new("seed-2", "ann", T0).unwrap();
        job.advance(ImportJobState::Shipping, "ann", T0).unwrap();
        job.advance(ImportJobState::Received, "dc", T0 + Duration::days(3)).unwrap();
        assert!(!job.is_expired(T0 + Duration::days(60)));
    }

    #[test]
    fn drives_follow_their_own_life_cycle() {
        let mut drive = DriveRecord::new("ab12", 0, "diskprep", T0);
        assert!(drive.advance(DriveState::Completed, "x", T0).is_err());
        for state in
            [DriveState::Received, DriveState::Transferring, DriveState::CompletedMoreInfo, DriveState::ShippedBack]
        {
            drive.advance(state, "dc", T0).unwrap();
        }
        assert!(drive.state().is_done());
        let mut lost = DriveRecord::new("cd34", 1, "diskprep", T0);
        lost.advance(DriveState::NeverReceived, "service", T0).unwrap();
        assert!(lost.advance(DriveState::Received, "dc", T0).is_err());
    }

    #[test]
    fn names_and_tracking_numbers_are_checked() {
        assert!(check_job_name("seed-2026_11").is_ok());
        for bad in ["", "ab", "-seed", "seed job", "a/b", &"x".repeat(65)] {
            assert!(check_job_name(bad).is_err(), "{bad}");
        }
        assert_eq!(check_tracking_number(" 1z999aa10123456784 ").unwrap(), "1Z999AA10123456784");
        assert!(check_tracking_number("12").is_err());
        assert!(check_tracking_number("12 34 56").is_err());
    }
}
