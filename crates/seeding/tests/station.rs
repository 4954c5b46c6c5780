//! The ingest station's rules over an in-memory service: drives prepared by
//! diskprep onto image files, ingested by a `Station` whose service keeps one
//! import job, records every call that changes something, and can lose answers,
//! conflict or fail on request.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::Mutex;

use common::*;
use offsite_api::client::{ApiResult, SourceDrive};
use offsite_api::types::{
    DriveStateUpdate, ImportDriveState, ImportFile, ImportJobDatacenter, ImportJobDrive, ImportJobEvent, ImportJobNote,
    ImportJobState, ImportJobView, ImportPart,
};
use offsite_api::ApiError;
use offsite_seeding::diskprep::{prepare, PreparedSet};
use offsite_seeding::drive::DriveKey;
use offsite_seeding::ingest::{PartBody, PartToUpload, STATION_RETRY};
use offsite_seeding::station::{waiting_note, Refusal, Station, StationError, StationService};
use x25519_dalek::StaticSecret;

const DRIVE: u64 = 3 * 1024 * 1024;
const JOB_ID: &str = "job-1";

/// One import job, kept as the service keeps it, with knobs for its failures.
struct FakeService {
    job: Mutex<ImportJobView>,
    /// Every call that changes something, in order ("state <drive> Transferring",
    /// "log <drive> verbose", "part …", "package").
    calls: Mutex<Vec<String>>,
    /// Parts stored: (path, offset, length) → bytes.
    parts: Mutex<BTreeMap<(String, u64, u64), Vec<u8>>>,
    /// The first change to this state is carried out, but its answer is lost.
    lose_answer_to: Mutex<Option<ImportDriveState>>,
    /// Changes to this state are answered 409 (someone moved the drive elsewhere).
    conflict_on: Option<ImportDriveState>,
    /// Packaging fails with this status.
    package_fails: Option<u16>,
}

fn drive(drive_id: &str, index: u32, fingerprint: Option<&str>) -> ImportJobDrive {
    ImportJobDrive {
        drive_id: drive_id.into(),
        index,
        state: ImportDriveState::Specified,
        fingerprint: fingerprint.map(str::to_string),
        logs: Vec::new(),
        data_bytes: None,
        bytes_received: 0,
    }
}

/// Drives registered without a header fingerprint.
fn drives(ids: &[&str]) -> Vec<ImportJobDrive> {
    ids.iter().enumerate().map(|(index, id)| drive(id, index as u32, None)).collect()
}

fn refused(status: u16, message: &str) -> ApiError {
    ApiError::Refused { status, code: "fake".into(), message: message.into() }
}

fn unreachable() -> ApiError {
    ApiError::Unreachable { url: "fake://service".into(), reason: "the answer was lost".into(), connected: true }
}

impl FakeService {
    /// The job `JOB` in `state`, with the set's drives `Specified`.
    fn new(set: &PreparedSet, state: ImportJobState) -> FakeService {
        let drives = set.drives.iter().map(|d| drive(&d.drive_id, d.index, Some(&d.fingerprint))).collect();
        FakeService::with_drives(drives, state)
    }

    fn with_drives(drives: Vec<ImportJobDrive>, state: ImportJobState) -> FakeService {
        let job = ImportJobView {
            id: JOB_ID.into(),
            name: JOB.into(),
            subscription_id: "sub-1".into(),
            state,
            storage_account: "account".into(),
            container: "container".into(),
            datacenter: ImportJobDatacenter { name: "ams1".into(), address: "Somewhere".into() },
            shipping: None,
            arrival_deadline: None,
            created: time::OffsetDateTime::UNIX_EPOCH,
            drives,
            timeline: Vec::new(),
            file_list: None,
        };
        FakeService {
            job: Mutex::new(job),
            calls: Mutex::default(),
            parts: Mutex::default(),
            lose_answer_to: Mutex::default(),
            conflict_on: None,
            package_fails: None,
        }
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn record(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }

    fn drive_state(&self, drive_id: &str) -> ImportDriveState {
        self.job.lock().unwrap().drives.iter().find(|d| d.drive_id == drive_id).unwrap().state
    }

    /// Puts a drive in `state` behind the station's back (another station did it).
    fn set(&self, drive_id: &str, state: ImportDriveState) {
        let mut job = self.job.lock().unwrap();
        job.drives.iter_mut().find(|d| d.drive_id == drive_id).unwrap().state = state;
    }

    /// The files assembled from the stored parts.
    fn files(&self) -> BTreeMap<String, Vec<u8>> {
        let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for ((path, offset, _), bytes) in self.parts.lock().unwrap().iter() {
            let file = files.entry(path.clone()).or_default();
            assert_eq!(file.len() as u64, *offset, "{path}");
            file.extend_from_slice(bytes);
        }
        files
    }
}

impl StationService for FakeService {
    fn find_import_job(&self, name: &str) -> ApiResult<ImportJobView> {
        let job = self.job.lock().unwrap();
        match job.name == name {
            true => Ok(job.clone()),
            false => Err(refused(404, "no such import job")),
        }
    }

    fn import_job(&self, job_id: &str) -> ApiResult<ImportJobView> {
        assert_eq!(job_id, JOB_ID);
        Ok(self.job.lock().unwrap().clone())
    }

    fn receive_import_job(&self, job_id: &str, _note: &ImportJobNote) -> ApiResult<ImportJobView> {
        assert_eq!(job_id, JOB_ID);
        self.record("receive".into());
        let mut job = self.job.lock().unwrap();
        if job.state != ImportJobState::Shipping {
            return Err(refused(409, "not shipping"));
        }
        job.state = ImportJobState::Received;
        Ok(job.clone())
    }

    fn set_import_drive_state(
        &self,
        job_id: &str,
        drive_id: &str,
        update: &DriveStateUpdate,
    ) -> ApiResult<ImportJobView> {
        use ImportDriveState::*;
        assert_eq!(job_id, JOB_ID);
        self.record(format!("state {drive_id} {:?}", update.state));
        if self.conflict_on == Some(update.state) {
            return Err(refused(409, "the drive moved elsewhere"));
        }
        let mut job = self.job.lock().unwrap();
        let drive = job.drives.iter_mut().find(|d| d.drive_id == drive_id).ok_or_else(|| refused(404, "no drive"))?;
        let allowed = matches!(
            (drive.state, update.state),
            (Specified, Received) | (Received, Transferring) | (Transferring, Completed | CompletedMoreInfo)
        );
        if !allowed {
            return Err(refused(409, &format!("{:?} cannot become {:?}", drive.state, update.state)));
        }
        drive.state = update.state;
        if update.state == Transferring && job.state == ImportJobState::Received {
            job.state = ImportJobState::Transferring;
        }
        let view = job.clone();
        let mut lose = self.lose_answer_to.lock().unwrap();
        if *lose == Some(update.state) {
            *lose = None;
            return Err(unreachable());
        }
        Ok(view)
    }

    fn put_drive_log(&self, job_id: &str, drive_id: &str, kind: &str, _text: &str) -> ApiResult<()> {
        assert_eq!(job_id, JOB_ID);
        self.record(format!("log {drive_id} {kind}"));
        Ok(())
    }

    fn import_files(&self, _job_id: &str) -> ApiResult<Vec<ImportFile>> {
        Ok(Vec::new())
    }

    fn import_parts(&self, _job_id: &str) -> ApiResult<Vec<ImportPart>> {
        let parts = self.parts.lock().unwrap();
        Ok(parts
            .keys()
            .map(|(path, offset, length)| ImportPart { path: path.clone(), offset: *offset, length: *length })
            .collect())
    }

    fn put_import_file_part(
        &self,
        job_id: &str,
        drive: &SourceDrive,
        part: &PartToUpload,
        mut body: PartBody,
    ) -> ApiResult<()> {
        assert_eq!(job_id, JOB_ID);
        let drive_id = drive.drive_id.as_str();
        // As the service does: only the registered header brings files.
        let registered = self.job.lock().unwrap().drives.iter().find(|d| d.drive_id == drive_id).cloned();
        let registered = registered.and_then(|d| d.fingerprint).expect("a part from a registered drive");
        assert_eq!(drive.fingerprint, registered, "a part sent with another header's fingerprint");
        assert_eq!(self.drive_state(drive_id), ImportDriveState::Transferring, "a part sent before Transferring");
        let mut bytes = Vec::new();
        body.read_to_end(&mut bytes).map_err(|e| refused(400, &e.to_string()))?;
        assert_eq!(bytes.len() as u64, part.length);
        self.parts.lock().unwrap().insert((part.path.clone(), part.offset_in_file, part.length), bytes);
        Ok(())
    }

    fn package_import_job(&self, job_id: &str, _note: &ImportJobNote) -> ApiResult<ImportJobView> {
        assert_eq!(job_id, JOB_ID);
        self.record("package".into());
        if let Some(status) = self.package_fails {
            return Err(refused(status, "packaging failed"));
        }
        let mut job = self.job.lock().unwrap();
        assert!(job.drives.iter().all(|d| d.state.is_done()), "packaged before every drive was done");
        job.state = ImportJobState::Completed;
        Ok(job.clone())
    }
}

/// A prepared set of several drives, with its staging files and the import key.
struct Set {
    _dir: tempfile::TempDir,
    set: PreparedSet,
    files: BTreeMap<String, Vec<u8>>,
    secret: StaticSecret,
}

fn prepared(seed: u64) -> Set {
    let dir = tempfile::tempdir().unwrap();
    let staging = dir.path().join("staging");
    let files = make_staging(&staging, seed, 1024 * 1024);
    let (secret, public) = import_keys();
    let mut images = Images::new(dir.path(), DRIVE);
    let set = prepare(&plan(&staging, &dir.path().join("j.json"), public), &mut images, &|_| {}).unwrap();
    assert!(set.drives.len() >= 2);
    Set { _dir: dir, set, files, secret }
}

impl Set {
    fn key(&self) -> DriveKey {
        DriveKey::Import(self.secret.clone())
    }
}

/// A station over `service` that spells its commands with a credentials file and
/// does not wait between tries.
fn station(service: FakeService) -> Station<FakeService> {
    let quick = STATION_RETRY
        .with_min_delay(std::time::Duration::from_millis(1))
        .with_max_delay(std::time::Duration::from_millis(1));
    Station::new(service)
        .with_commands(|rest| format!("offsite datacenter --operator-credentials creds.json {rest}"))
        .with_retry(quick)
}

fn refusal_of(result: Result<impl std::fmt::Debug, StationError>) -> Refusal {
    match result {
        Err(StationError::Refused(refusal)) => *refusal,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_clean_set_goes_through_the_drive_states_and_is_packaged_after_its_last_drive() {
    let set = prepared(31);
    let station = station(FakeService::new(&set.set, ImportJobState::Received));
    let count = set.set.drives.len();
    for (n, drive) in set.set.drives.iter().enumerate() {
        let before = station.service().calls().len();
        let outcome = station.ingest(&drive.path, &set.key(), &|_| {}).unwrap();
        assert!(outcome.is_clean(), "{}", outcome.report.error_log);
        assert_eq!(outcome.drive_id, drive.drive_id);
        assert_eq!(outcome.drive_state, ImportDriveState::Completed);
        let id = &drive.drive_id;
        let calls = station.service().calls()[before..].to_vec();
        let mut expected =
            vec![format!("state {id} Received"), format!("state {id} Transferring"), format!("log {id} verbose")];
        expected.push(format!("state {id} Completed"));
        let last = n + 1 == count;
        if last {
            expected.push("package".into());
        }
        assert_eq!(calls, expected, "drive {n}");
        assert_eq!(outcome.job.state, if last { ImportJobState::Completed } else { ImportJobState::Transferring });
        assert_eq!(outcome.job_note, None);
    }
    assert_eq!(station.service().files(), set.files);
}

#[test]
fn a_drive_of_a_job_not_received_is_refused_before_anything_is_recorded() {
    let set = prepared(32);
    let station = station(FakeService::new(&set.set, ImportJobState::Shipping));
    let refusal = refusal_of(station.ingest(&set.set.drives[0].path, &set.key(), &|_| {}));
    assert!(matches!(refusal, Refusal::NotReceived { state: ImportJobState::Shipping, .. }), "{refusal:?}");
    assert_eq!(
        refusal.to_string(),
        format!(
            "import job {JOB} is Shipping: its package was not received, so drive {} is not ingested. Record the \
             package's arrival first (`offsite datacenter --operator-credentials creds.json receive --job {JOB}`), \
             then ingest the drive again",
            set.set.drives[0].drive_id
        )
    );
    assert_eq!(station.service().calls(), Vec::<String>::new());
    assert_eq!(station.service().drive_state(&set.set.drives[0].drive_id), ImportDriveState::Specified);
}

#[test]
fn a_retried_state_change_whose_first_try_landed_counts_as_done() {
    let set = prepared(33);
    let service = FakeService::new(&set.set, ImportJobState::Received);
    *service.lose_answer_to.lock().unwrap() = Some(ImportDriveState::Transferring);
    let station = station(service);
    let drive = &set.set.drives[0];
    let outcome = station.ingest(&drive.path, &set.key(), &|_| {}).unwrap();
    assert_eq!(outcome.drive_state, ImportDriveState::Completed);
    let id = &drive.drive_id;
    let transfers = station.service().calls().iter().filter(|c| **c == format!("state {id} Transferring")).count();
    assert_eq!(transfers, 2, "the lost answer is retried, and its 409 taken as done");
    assert_eq!(station.service().drive_state(id), ImportDriveState::Completed);
}

#[test]
fn a_conflict_over_another_state_is_the_services_error_and_nothing_is_sent() {
    let set = prepared(34);
    let mut service = FakeService::new(&set.set, ImportJobState::Received);
    service.conflict_on = Some(ImportDriveState::Transferring);
    let station = station(service);
    let drive = &set.set.drives[0];
    match station.ingest(&drive.path, &set.key(), &|_| {}) {
        Err(StationError::Service(err)) => assert_eq!(err.status(), Some(409)),
        other => panic!("expected the service's 409, got {other:?}"),
    }
    assert_eq!(station.service().drive_state(&drive.drive_id), ImportDriveState::Received);
    assert!(station.service().files().is_empty());
    assert!(!station.service().calls().iter().any(|c| c.starts_with("log ")));
}

#[test]
fn packaging_that_fails_after_the_last_drive_names_the_command_that_finishes_it() {
    let set = prepared(35);
    let mut service = FakeService::new(&set.set, ImportJobState::Transferring);
    service.package_fails = Some(503);
    let (last, others) = set.set.drives.split_last().unwrap();
    for drive in others {
        service.set(&drive.drive_id, ImportDriveState::Completed);
    }
    let station = station(service);
    match station.ingest(&last.path, &set.key(), &|_| {}) {
        Err(err @ StationError::Packaging { .. }) => assert_eq!(
            err.to_string(),
            format!(
                "all drives are ingested, but packaging the job failed; finish it with `offsite datacenter \
                 --operator-credentials creds.json package --job {JOB}` once the service is back"
            )
        ),
        other => panic!("expected a packaging failure, got {other:?}"),
    }
    assert_eq!(station.service().drive_state(&last.drive_id), ImportDriveState::Completed);
    // A passing failure is tried again: once, and the policy's five more times.
    assert_eq!(station.service().calls().iter().filter(|c| *c == "package").count(), 6);
}

#[test]
fn a_drive_presented_again_once_all_are_done_points_at_packaging() {
    let set = prepared(36);
    let service = FakeService::new(&set.set, ImportJobState::Packaging);
    for drive in &set.set.drives {
        service.set(&drive.drive_id, ImportDriveState::Completed);
    }
    let station = station(service);
    let refusal = refusal_of(station.ingest(&set.set.drives[0].path, &set.key(), &|_| {}));
    assert!(matches!(refusal, Refusal::AwaitingPackaging { .. }), "{refusal:?}");
    assert!(
        refusal.to_string().ends_with(&format!(
            ". Every drive of import job {JOB} is done but the job is Packaging: `offsite datacenter \
             --operator-credentials creds.json package --job {JOB}` assembles its files, or names what a repair \
             drive must bring"
        )),
        "{refusal}"
    );
    assert_eq!(station.service().calls(), Vec::<String>::new());
}

#[test]
fn a_wrong_key_or_an_unknown_job_records_nothing() {
    let set = prepared(37);
    let station = station(FakeService::new(&set.set, ImportJobState::Received));
    let drive = &set.set.drives[0];
    let (other, _) = import_keys();
    let refusal = refusal_of(station.ingest(&drive.path, &DriveKey::Import(other), &|_| {}));
    assert!(matches!(refusal, Refusal::CannotOpen { .. }), "{refusal:?}");
    assert_eq!(station.service().calls(), Vec::<String>::new());
    assert_eq!(station.service().drive_state(&drive.drive_id), ImportDriveState::Specified);

    station.service().job.lock().unwrap().name = "another-job".into();
    let refusal = refusal_of(station.ingest(&drive.path, &set.key(), &|_| {}));
    assert!(matches!(&refusal, Refusal::UnknownJob { job, .. } if job == JOB), "{refusal:?}");
    assert_eq!(station.service().calls(), Vec::<String>::new());

    let refusal = refusal_of(station.ingest(Path::new("/nonexistent/drive.img"), &set.key(), &|_| {}));
    assert!(matches!(refusal, Refusal::Unreadable { .. }), "{refusal:?}");
}

#[test]
fn receive_and_package_by_name() {
    let station = station(FakeService::with_drives(drives(&["d0", "d1"]), ImportJobState::Shipping));
    assert_eq!(station.receive(JOB, Some("arrived".into())).unwrap().state, ImportJobState::Received);
    match station.receive("no-such-job", None) {
        Err(StationError::Service(err)) => assert_eq!(err.status(), Some(404)),
        other => panic!("expected a 404, got {other:?}"),
    }
    for drive in ["d0", "d1"] {
        station.service().set(drive, ImportDriveState::Completed);
    }
    assert_eq!(station.package(JOB).unwrap().state, ImportJobState::Completed);
    assert_eq!(station.status(JOB).unwrap().state, ImportJobState::Completed);
    assert_eq!(station.service().calls(), vec!["receive".to_string(), "package".to_string()]);
}

#[test]
fn a_job_waiting_after_its_last_drive_says_why_in_its_last_note() {
    let event = |drive_id: Option<&str>, message: &str| ImportJobEvent {
        drive_id: drive_id.map(str::to_string),
        state: "packaging".into(),
        at: time::OffsetDateTime::UNIX_EPOCH,
        actor: "operator".into(),
        message: Some(message.into()),
    };
    let service = FakeService::with_drives(drives(&["d0", "d1"]), ImportJobState::Packaging);
    let mut job = service.job.lock().unwrap().clone();
    job.timeline = vec![event(None, "data/ab/ab12 is missing"), event(Some("d1"), "a drive's note")];
    assert_eq!(waiting_note(&job), None, "drives are still to come");
    for drive in &mut job.drives {
        drive.state = ImportDriveState::CompletedMoreInfo;
    }
    assert_eq!(waiting_note(&job).as_deref(), Some("data/ab/ab12 is missing"));
    job.state = ImportJobState::Completed;
    assert_eq!(waiting_note(&job), None);
}
