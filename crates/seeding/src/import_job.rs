//! The life cycle of an import job and of its drives, after the public import
//! services' model. The states are the API's own ([`ImportJobState`],
//! [`DriveState`]); this module says which transitions exist and what each of the
//! job's intents does: every change goes through an [`ImportJob`] method, which
//! refuses what the life cycle does not allow and returns the [`Transition`]s to
//! store, so a wrong state cannot be stored and no caller has to know the cascades.
//!
//! Job: `Creating → Shipping → Received → Transferring → Packaging → Completed`,
//! or `Closed` (cancelled, or expired because the drives did not arrive within
//! [`ARRIVAL_DEADLINE`] of the shipping details).
//! Drive: `Specified → Received → Transferring → Completed | CompletedMoreInfo`,
//! `Specified → NeverReceived`, and any received drive may end `ShippedBack`.
//! The first drive transferring moves a received job to `Transferring`; once every
//! drive is done the job moves on to `Packaging`.

use time::{Duration, OffsetDateTime};

pub use offsite_api::types::{ImportDriveState as DriveState, ImportJobState};

/// Drives must reach the datacenter within 14 days of the shipping details.
pub const ARRIVAL_DEADLINE: Duration = Duration::days(14);

/// The transitions of a life cycle.
pub trait LifeCycle: Copy + PartialEq + std::fmt::Display + 'static {
    /// The states this one may move to.
    fn next_states(self) -> &'static [Self];

    fn is_final(self) -> bool {
        self.next_states().is_empty()
    }
}

impl LifeCycle for ImportJobState {
    fn next_states(self) -> &'static [ImportJobState] {
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
}

impl LifeCycle for DriveState {
    fn next_states(self) -> &'static [DriveState] {
        use DriveState::*;
        match self {
            Specified => &[Received, NeverReceived],
            Received => &[Transferring, ShippedBack],
            Transferring => &[Completed, CompletedMoreInfo],
            Completed | CompletedMoreInfo => &[ShippedBack],
            NeverReceived | ShippedBack => &[],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportJobError {
    #[error("import job '{job}' is {from} and cannot become {to} (from {from} it can become: {allowed})")]
    JobTransition { job: String, from: ImportJobState, to: ImportJobState, allowed: String },
    #[error("drive {drive} is {from} and cannot become {to} (from {from} it can become: {allowed})")]
    DriveTransition { drive: String, from: DriveState, to: DriveState, allowed: String },
    #[error("import job '{job}' has no drive {drive}")]
    UnknownDrive { job: String, drive: String },
    /// Drives move on only after the package's arrival is recorded.
    #[error("import job '{job}' is {state}: record the package's arrival first")]
    NotReceived { job: String, state: ImportJobState },
    #[error("import job '{job}' still has drives being ingested or not received: {}. Finish their ingest first", .drives.join(", "))]
    DrivesNotDone { job: String, drives: Vec<String> },
    #[error("import job '{job}' is {state}: it is packaged after its drives are ingested")]
    NotIngested { job: String, state: ImportJobState },
    #[error("import job '{job}' is {state}: drives can no longer be added to it")]
    ClosedToDrives { job: String, state: ImportJobState },
    #[error("import job '{job}' is {state}: files are uploaded while its drives are ingested")]
    ClosedToUploads { job: String, state: ImportJobState },
    #[error("'{0}' is not a valid import job name: use 3 to 64 letters, digits, '-' or '_', starting with a letter or digit")]
    BadName(String),
    #[error("'{0}' is not a valid tracking number: use 4 to 40 letters, digits or '-'")]
    BadTrackingNumber(String),
}

/// Who made a change: a person or credential, by name, or the service itself
/// when the arrival deadline passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Named(String),
    ArrivalDeadline,
}

impl Actor {
    /// How the deadline is written in a timeline.
    const DEADLINE: &'static str = "service (deadline)";

    /// The actor a stored timeline names.
    pub fn parse(stored: &str) -> Actor {
        match stored {
            Actor::DEADLINE => Actor::ArrivalDeadline,
            name => Actor::Named(name.to_string()),
        }
    }

    /// As a timeline shows it.
    pub fn as_str(&self) -> &str {
        match self {
            Actor::Named(name) => name,
            Actor::ArrivalDeadline => Actor::DEADLINE,
        }
    }
}

impl From<&str> for Actor {
    fn from(name: &str) -> Actor {
        Actor::Named(name.to_string())
    }
}

/// Why a job is `Closed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Its subscription cancelled it.
    Cancelled,
    /// Its drives did not reach the datacenter within [`ARRIVAL_DEADLINE`].
    ArrivalDeadlinePassed,
}

/// One change of state, kept for the timeline people read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange<S> {
    pub state: S,
    pub at: OffsetDateTime,
    pub actor: Actor,
}

/// A change an intent made, for the caller to store with its timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    Job { from: ImportJobState, to: ImportJobState, at: OffsetDateTime, actor: Actor },
    Drive { drive_id: String, from: DriveState, to: DriveState, at: OffsetDateTime, actor: Actor },
}

fn allowed<S: std::fmt::Display>(states: &[S]) -> String {
    if states.is_empty() {
        return "nothing, it is final".into();
    }
    states.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")
}

/// An import job as the service keeps it, with its drives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportJob {
    pub name: String,
    pub history: Vec<StateChange<ImportJobState>>,
    /// When shipping details were committed; the arrival deadline runs from here.
    pub shipped_at: Option<OffsetDateTime>,
    pub drives: Vec<DriveRecord>,
}

impl ImportJob {
    pub fn new(name: &str, actor: &str, at: OffsetDateTime) -> Result<ImportJob, ImportJobError> {
        check_job_name(name)?;
        Ok(ImportJob {
            name: name.to_string(),
            history: vec![StateChange { state: ImportJobState::Creating, at, actor: actor.into() }],
            shipped_at: None,
            drives: Vec::new(),
        })
    }

    pub fn state(&self) -> ImportJobState {
        self.history.last().map(|c| c.state).unwrap_or(ImportJobState::Creating)
    }

    /// Moves the job itself to `to`, if its life cycle allows it.
    pub fn advance(
        &mut self,
        to: ImportJobState,
        actor: Actor,
        at: OffsetDateTime,
    ) -> Result<Transition, ImportJobError> {
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
        self.history.push(StateChange { state: to, at, actor: actor.clone() });
        Ok(Transition::Job { from, to, at, actor })
    }

    /// The shipping details were given: the job is `Shipping` (given again while
    /// the package travels, they correct the first ones and change no state).
    pub fn ship(&mut self, actor: Actor, at: OffsetDateTime) -> Result<Vec<Transition>, ImportJobError> {
        if self.state() == ImportJobState::Shipping {
            return Ok(Vec::new());
        }
        Ok(vec![self.advance(ImportJobState::Shipping, actor, at)?])
    }

    /// The package arrived: the job is `Received`, and so is every drive still
    /// `Specified`.
    pub fn receive(&mut self, actor: Actor, at: OffsetDateTime) -> Result<Vec<Transition>, ImportJobError> {
        let mut done = vec![self.advance(ImportJobState::Received, actor.clone(), at)?];
        for index in 0..self.drives.len() {
            if self.drives[index].state() == DriveState::Specified {
                done.push(self.drives[index].advance(DriveState::Received, actor.clone(), at)?);
            }
        }
        Ok(done)
    }

    /// Moves one drive on. The first drive `Transferring` moves a received job to
    /// `Transferring`; once every drive is done the job moves on to `Packaging`.
    pub fn set_drive(
        &mut self,
        drive_id: &str,
        to: DriveState,
        actor: Actor,
        at: OffsetDateTime,
    ) -> Result<Vec<Transition>, ImportJobError> {
        let index = self.drive_index(drive_id)?;
        let state = self.state();
        if matches!(state, ImportJobState::Creating | ImportJobState::Shipping) {
            return Err(ImportJobError::NotReceived { job: self.name.clone(), state });
        }
        let mut done = vec![self.drives[index].advance(to, actor.clone(), at)?];
        if to == DriveState::Transferring && self.state() == ImportJobState::Received {
            done.push(self.advance(ImportJobState::Transferring, actor.clone(), at)?);
        }
        if self.state() == ImportJobState::Transferring && self.all_drives_done() {
            done.push(self.advance(ImportJobState::Packaging, actor, at)?);
        }
        Ok(done)
    }

    /// Packaging starts once every drive is done: a `Transferring` job becomes
    /// `Packaging`; a job packaging already stays so (packaged again after a
    /// repair drive).
    pub fn begin_packaging(&mut self, actor: Actor, at: OffsetDateTime) -> Result<Vec<Transition>, ImportJobError> {
        let busy: Vec<String> = self
            .drives
            .iter()
            .filter(|d| !d.state().is_done())
            .map(|d| format!("{} ({})", d.drive_id, d.state()))
            .collect();
        if !busy.is_empty() {
            return Err(ImportJobError::DrivesNotDone { job: self.name.clone(), drives: busy });
        }
        match self.state() {
            ImportJobState::Transferring => Ok(vec![self.advance(ImportJobState::Packaging, actor, at)?]),
            ImportJobState::Packaging => Ok(Vec::new()),
            state => Err(ImportJobError::NotIngested { job: self.name.clone(), state }),
        }
    }

    /// Adds a drive, `Specified` (a repair drive, once the job has shipped). No
    /// state changes: the drive is new, its first state is its creation.
    pub fn add_drive(
        &mut self,
        drive_id: &str,
        index: u32,
        actor: Actor,
        at: OffsetDateTime,
    ) -> Result<(), ImportJobError> {
        self.check_accepts_drives()?;
        self.drives.push(DriveRecord::new(drive_id, index, actor, at));
        Ok(())
    }

    /// Whether drives may still be added: until the job completes or closes.
    pub fn accepts_drives(&self) -> bool {
        !self.state().is_final()
    }

    /// Whether files may be uploaded into its container: while drives are ingested
    /// and until it completes.
    pub fn accepts_uploads(&self) -> bool {
        matches!(self.state(), ImportJobState::Received | ImportJobState::Transferring | ImportJobState::Packaging)
    }

    /// Refuses drives the job does not take now.
    pub fn check_accepts_drives(&self) -> Result<(), ImportJobError> {
        match self.accepts_drives() {
            true => Ok(()),
            false => Err(ImportJobError::ClosedToDrives { job: self.name.clone(), state: self.state() }),
        }
    }

    /// Refuses uploads the job does not take now.
    pub fn check_accepts_uploads(&self) -> Result<(), ImportJobError> {
        match self.accepts_uploads() {
            true => Ok(()),
            false => Err(ImportJobError::ClosedToUploads { job: self.name.clone(), state: self.state() }),
        }
    }

    pub fn all_drives_done(&self) -> bool {
        self.drives.iter().all(|d| d.state().is_done())
    }

    pub fn drive(&self, drive_id: &str) -> Option<&DriveRecord> {
        self.drives.iter().find(|d| d.drive_id == drive_id)
    }

    fn drive_index(&self, drive_id: &str) -> Result<usize, ImportJobError> {
        self.drives
            .iter()
            .position(|d| d.drive_id == drive_id)
            .ok_or_else(|| ImportJobError::UnknownDrive { job: self.name.clone(), drive: drive_id.to_string() })
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

    /// Closes an expired job; returns the change when it did.
    pub fn expire_if_due(&mut self, now: OffsetDateTime) -> Option<Transition> {
        if !self.is_expired(now) {
            return None;
        }
        self.advance(ImportJobState::Closed, Actor::ArrivalDeadline, now).ok()
    }

    /// Why the job is closed, when it is.
    pub fn close_reason(&self) -> Option<CloseReason> {
        let last = self.history.last().filter(|change| change.state == ImportJobState::Closed)?;
        Some(match last.actor {
            Actor::ArrivalDeadline => CloseReason::ArrivalDeadlinePassed,
            Actor::Named(_) => CloseReason::Cancelled,
        })
    }
}

/// A drive of an import job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveRecord {
    /// The drive id from its header, hex.
    pub drive_id: String,
    pub index: u32,
    pub history: Vec<StateChange<DriveState>>,
}

impl DriveRecord {
    pub fn new(drive_id: &str, index: u32, actor: Actor, at: OffsetDateTime) -> DriveRecord {
        DriveRecord {
            drive_id: drive_id.to_string(),
            index,
            history: vec![StateChange { state: DriveState::Specified, at, actor }],
        }
    }

    pub fn state(&self) -> DriveState {
        self.history.last().map(|c| c.state).unwrap_or(DriveState::Specified)
    }

    pub fn advance(&mut self, to: DriveState, actor: Actor, at: OffsetDateTime) -> Result<Transition, ImportJobError> {
        let from = self.state();
        if !from.next_states().contains(&to) {
            return Err(ImportJobError::DriveTransition {
                drive: self.drive_id.clone(),
                from,
                to,
                allowed: allowed(from.next_states()),
            });
        }
        self.history.push(StateChange { state: to, at, actor: actor.clone() });
        Ok(Transition::Drive { drive_id: self.drive_id.clone(), from, to, at, actor })
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
            job.advance(state, actor.into(), T0 + Duration::hours(1)).unwrap();
        }
        assert_eq!(job.state(), ImportJobState::Completed);
        assert_eq!(job.history.len(), 6);
        assert!(job.state().is_final());
    }

    #[test]
    fn skipping_or_going_back_is_refused_and_named() {
        let mut job = ImportJob::new("seed-1", "ann", T0).unwrap();
        let err = job.advance(ImportJobState::Transferring, "x".into(), T0).unwrap_err().to_string();
        assert!(err.contains("Creating") && err.contains("Transferring") && err.contains("Shipping, Closed"), "{err}");
        job.advance(ImportJobState::Closed, "ann".into(), T0).unwrap();
        let err = job.advance(ImportJobState::Shipping, "ann".into(), T0).unwrap_err().to_string();
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
                let ok = job.advance(to, "t".into(), T0).is_ok();
                assert_eq!(ok, from.next_states().contains(&to), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn the_deadline_is_fourteen_days_after_shipping_details() {
        let mut job = ImportJob::new("seed-1", "ann", T0).unwrap();
        assert!(!job.is_expired(T0 + Duration::days(100)), "no deadline before shipping");
        job.advance(ImportJobState::Shipping, "ann".into(), T0).unwrap();
        assert!(!job.is_expired(T0 + Duration::days(14)));
        assert!(job.is_expired(T0 + Duration::days(14) + Duration::seconds(1)));
        // A clock jumping back does not expire it.
        assert!(job.expire_if_due(T0 - Duration::days(30)).is_none());
        assert!(job.expire_if_due(T0 + Duration::days(15)).is_some());
        assert_eq!(job.close_reason(), Some(CloseReason::ArrivalDeadlinePassed));
        assert_eq!(job.state(), ImportJobState::Closed);
        // A received job never expires.
        let mut job = ImportJob::new("seed-2", "ann", T0).unwrap();
        job.advance(ImportJobState::Shipping, "ann".into(), T0).unwrap();
        job.advance(ImportJobState::Received, "dc".into(), T0 + Duration::days(3)).unwrap();
        assert!(!job.is_expired(T0 + Duration::days(60)));
    }

    #[test]
    fn drives_follow_their_own_life_cycle() {
        let mut drive = DriveRecord::new("ab12", 0, "diskprep".into(), T0);
        assert!(drive.advance(DriveState::Completed, "x".into(), T0).is_err());
        for state in
            [DriveState::Received, DriveState::Transferring, DriveState::CompletedMoreInfo, DriveState::ShippedBack]
        {
            drive.advance(state, "dc".into(), T0).unwrap();
        }
        assert!(drive.state().is_done());
        let mut lost = DriveRecord::new("cd34", 1, "diskprep".into(), T0);
        lost.advance(DriveState::NeverReceived, "service".into(), T0).unwrap();
        assert!(lost.advance(DriveState::Received, "dc".into(), T0).is_err());
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

    /// A job of two drives, received.
    fn received_job() -> ImportJob {
        let mut job = ImportJob::new("seed-9", "ann", T0).unwrap();
        job.add_drive("aa11", 0, "diskprep".into(), T0).unwrap();
        job.add_drive("bb22", 1, "diskprep".into(), T0).unwrap();
        job.ship("ann".into(), T0).unwrap();
        let done = job.receive("dc".into(), T0).unwrap();
        assert_eq!(done.len(), 3, "the job and both drives are received: {done:?}");
        job
    }

    #[test]
    fn the_first_drive_transferring_moves_the_job_and_the_last_done_drive_starts_packaging() {
        let mut job = received_job();
        let done = job.set_drive("aa11", DriveState::Transferring, "st".into(), T0).unwrap();
        assert_eq!(done.len(), 2, "{done:?}");
        assert!(matches!(
            done[1],
            Transition::Job { from: ImportJobState::Received, to: ImportJobState::Transferring, .. }
        ));
        job.set_drive("aa11", DriveState::Completed, "st".into(), T0).unwrap();
        assert_eq!(job.state(), ImportJobState::Transferring, "one drive is still not done");
        job.set_drive("bb22", DriveState::Transferring, "st".into(), T0).unwrap();
        let done = job.set_drive("bb22", DriveState::CompletedMoreInfo, "st".into(), T0).unwrap();
        assert!(matches!(done.last(), Some(Transition::Job { to: ImportJobState::Packaging, .. })), "{done:?}");
        assert_eq!(job.state(), ImportJobState::Packaging);
        // Packaging again (after a repair drive) changes no state.
        assert!(job.begin_packaging("st".into(), T0).unwrap().is_empty());
    }

    #[test]
    fn drives_of_a_job_not_received_do_not_move_and_unknown_drives_are_named() {
        let mut job = ImportJob::new("seed-8", "ann", T0).unwrap();
        job.add_drive("aa11", 0, "diskprep".into(), T0).unwrap();
        job.ship("ann".into(), T0).unwrap();
        let err = job.set_drive("aa11", DriveState::Received, "dc".into(), T0).unwrap_err();
        assert_eq!(err, ImportJobError::NotReceived { job: "seed-8".into(), state: ImportJobState::Shipping });
        assert_eq!(job.drive("aa11").unwrap().state(), DriveState::Specified, "nothing moved");
        let err = job.set_drive("ffff", DriveState::Received, "dc".into(), T0).unwrap_err();
        assert!(matches!(err, ImportJobError::UnknownDrive { .. }), "{err}");
    }

    #[test]
    fn packaging_waits_for_every_drive_and_names_the_busy_ones() {
        let mut job = received_job();
        job.set_drive("aa11", DriveState::Transferring, "st".into(), T0).unwrap();
        let err = job.begin_packaging("st".into(), T0).unwrap_err().to_string();
        assert!(err.contains("aa11 (Transferring)") && err.contains("bb22 (Received)"), "{err}");
        assert_eq!(job.state(), ImportJobState::Transferring);
    }

    #[test]
    fn uploads_and_drives_are_taken_only_while_the_life_cycle_allows() {
        let mut job = ImportJob::new("seed-7", "ann", T0).unwrap();
        assert!(!job.accepts_uploads() && job.accepts_drives());
        job.ship("ann".into(), T0).unwrap();
        assert!(!job.accepts_uploads());
        job.receive("dc".into(), T0).unwrap();
        assert!(job.accepts_uploads());
        let mut cancelled = ImportJob::new("seed-6", "ann", T0).unwrap();
        cancelled.advance(ImportJobState::Closed, "ann".into(), T0).unwrap();
        assert_eq!(cancelled.close_reason(), Some(CloseReason::Cancelled));
        assert!(!cancelled.accepts_drives() && !cancelled.accepts_uploads());
        let err = cancelled.add_drive("cc33", 0, "x".into(), T0).unwrap_err();
        assert!(matches!(err, ImportJobError::ClosedToDrives { .. }), "{err}");
    }

    #[test]
    fn the_deadline_actor_round_trips_through_its_stored_text() {
        assert_eq!(Actor::parse(Actor::ArrivalDeadline.as_str()), Actor::ArrivalDeadline);
        assert_eq!(Actor::parse("operator"), Actor::Named("operator".into()));
    }
}
