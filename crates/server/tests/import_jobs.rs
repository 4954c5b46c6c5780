//! Import jobs over the API: the whole life cycle with its timeline, unique names
//! and tracking numbers, transitions the life cycle refuses, tenant isolation, and
//! the arrival deadline (a service restarted with its clock 15 days ahead).

mod common;

use common::{new_job, register_file_list, Body, Reply, Service, SharedBackends};
use offsite_api::types::*;
use serde_json::json;

fn shipping(tracking_number: &str, drive_count: u32) -> ShippingDetails {
    ShippingDetails {
        carrier: "UPS".into(),
        tracking_number: tracking_number.into(),
        drive_count,
        ship_date: "2026-11-02".into(),
        return_address: "Ann Example\n2 Return Lane\nHometown".into(),
        contact: "ann@example.com".into(),
    }
}

fn refusal(service: &Service, method: &str, path: &str, token: &str, body: Body) -> (u16, String) {
    let reply: Reply = service.call(method, &format!("/api/v1{path}"), Some(token), &body);
    assert!(!reply.is_success(), "{method} {path} succeeded: {}", reply.text());
    let error = reply.error_body().unwrap_or_else(|| panic!("no JSON error body: {}", reply.text()));
    (reply.status, error.error)
}

/// The body of cancel, receive and complete without a note.
fn no_note() -> Body {
    Body::Json(json!({}))
}

/// (drive or "job", state, actor) of each timeline entry.
fn timeline(view: &ImportJobView) -> Vec<(String, String, String)> {
    view.timeline
        .iter()
        .map(|e| (e.drive_id.clone().unwrap_or_else(|| "job".into()), e.state.clone(), e.actor.clone()))
        .collect()
}

#[test]
fn an_import_job_walks_its_whole_life_and_keeps_its_timeline() {
    whole_life(&Service::start());
}

/// The same queries and transactions on PostgreSQL.
#[test]
fn an_import_job_walks_its_whole_life_on_postgresql() {
    let postgres = offsite_testbed::Postgres::start().expect("PostgreSQL for tests (run scripts/test)");
    whole_life(&Service::start_on(&postgres.url()));
}

fn whole_life(service: &Service) {
    let a = service.tenant("alpha");
    let sub = service.client(&a.subscription_token);
    let operator = service.operator();
    let op = service.operator_token.clone();
    let (d0, d1) = ("aa00000000000001", "AA00000000000002");

    let job = sub.create_import_job(&a.subscription_id, &new_job(&a, "alpha-seed-2", &[d0, d1])).unwrap();
    assert_eq!(job.state, ImportJobState::Creating);
    assert_eq!(job.storage_account, a.storage_account_name);
    assert_eq!(job.container, a.container_name);
    assert_eq!(job.datacenter.name, a.datacenter_name);
    assert!(job.datacenter.address.contains("Dock Road"), "{:?}", job.datacenter);
    assert!(job.shipping.is_none() && job.arrival_deadline.is_none());
    let d1 = d1.to_ascii_lowercase();
    let drive_ids: Vec<&str> = job.drives.iter().map(|d| d.drive_id.as_str()).collect();
    assert_eq!(drive_ids, [d0, d1.as_str()]);
    assert!(job.drives.iter().all(|d| d.state == ImportDriveState::Specified));

    let shipped = sub.set_import_job_shipping(&job.id, &shipping(" 1z999aa10123456784 ", 2)).unwrap();
    assert_eq!(shipped.state, ImportJobState::Shipping);
    let details = shipped.shipping.as_ref().unwrap();
    assert_eq!(details.tracking_number, "1Z999AA10123456784");
    let deadline = shipped.arrival_deadline.expect("a deadline once shipped");
    let from_now = deadline - time::OffsetDateTime::now_utc();
    assert!(from_now > time::Duration::days(13) && from_now <= time::Duration::days(14), "{deadline}");
    // Corrected details while the package travels: no new state, same deadline.
    let corrected = sub.set_import_job_shipping(&job.id, &shipping("1Z999AA10123456785", 2)).unwrap();
    assert_eq!(corrected.state, ImportJobState::Shipping);
    assert_eq!(corrected.shipping.unwrap().tracking_number, "1Z999AA10123456785");
    assert_eq!(corrected.arrival_deadline, Some(deadline));

    // The operator's steps are the operator's: the customer hears 403.
    for (method, path) in
        [("POST", format!("/import-jobs/{}/receive", job.id)), ("POST", format!("/import-jobs/{}/complete", job.id))]
    {
        let (status, _) = refusal(service, method, &path, &a.subscription_token, no_note());
        assert_eq!(status, 403, "{method} {path}");
    }
    let update = |state| DriveStateUpdate { state, message: None };
    let (status, _) = refusal(
        service,
        "PUT",
        &format!("/import-jobs/{}/drives/{d0}/state", job.id),
        &a.subscription_token,
        Body::Json(serde_json::to_value(update(ImportDriveState::Transferring)).unwrap()),
    );
    assert_eq!(status, 403);

    let received = operator.receive_import_job(&job.id, &ImportJobNote::default()).unwrap();
    assert_eq!(received.state, ImportJobState::Received);
    assert!(received.drives.iter().all(|d| d.state == ImportDriveState::Received));
    assert_eq!(received.arrival_deadline, None, "no deadline once received");

    let v = operator.set_import_drive_state(&job.id, d0, &update(ImportDriveState::Transferring)).unwrap();
    assert_eq!(v.state, ImportJobState::Transferring, "the first drive transferring moves the job");
    let v = operator.set_import_drive_state(&job.id, d0, &update(ImportDriveState::Completed)).unwrap();
    assert_eq!(v.state, ImportJobState::Transferring, "one drive is still to do");
    operator.set_import_drive_state(&job.id, &d1, &update(ImportDriveState::Transferring)).unwrap();
    let more_info = DriveStateUpdate {
        state: ImportDriveState::CompletedMoreInfo,
        message: Some("block 7 failed verification: see errors.log".into()),
    };
    let v = operator.set_import_drive_state(&job.id, &d1.to_ascii_uppercase(), &more_info).unwrap();
    assert_eq!(v.state, ImportJobState::Packaging, "every drive done moves the job to packaging");
    // Without a file list nothing says every file arrived: the job does not complete.
    let (status, message) = refusal(service, "POST", &format!("/import-jobs/{}/complete", job.id), &op, no_note());
    assert!(status == 409 && message.contains("no file list"), "{message}");
    register_file_list(&sub, &job.id, &[]);
    let done = operator.complete_import_job(&job.id, &ImportJobNote::default()).unwrap();
    assert_eq!(done.state, ImportJobState::Completed);
    let states: Vec<ImportDriveState> = done.drives.iter().map(|d| d.state).collect();
    assert_eq!(states, [ImportDriveState::Completed, ImportDriveState::CompletedMoreInfo]);

    // The customer reads the same job, its whole timeline in order, with actors.
    let seen = sub.import_job(&job.id).unwrap();
    let s = a.subscription_id.as_str();
    let expected: Vec<(String, String, String)> = [
        ("job", "creating", s),
        (d0, "specified", s),
        (&d1, "specified", s),
        ("job", "shipping", s),
        ("job", "received", "operator"),
        (d0, "received", "operator"),
        (&d1, "received", "operator"),
        (d0, "transferring", "operator"),
        ("job", "transferring", "operator"),
        (d0, "completed", "operator"),
        (&d1, "transferring", "operator"),
        (&d1, "completed_more_info", "operator"),
        ("job", "packaging", "operator"),
        ("job", "completed", "operator"),
    ]
    .iter()
    .map(|(d, st, who)| (d.to_string(), st.to_string(), who.to_string()))
    .collect();
    assert_eq!(timeline(&seen), expected);
    let note = seen.timeline.iter().find(|e| e.state == "completed_more_info").unwrap();
    assert_eq!(note.message.as_deref(), Some("block 7 failed verification: see errors.log"));
    assert!(seen.timeline.windows(2).all(|w| w[0].at <= w[1].at));
    // The list shows both jobs of the subscription: the fixture's and this one.
    let listed = sub.list_import_jobs(&a.subscription_id).unwrap();
    let mut names: Vec<&str> = listed.iter().map(|j| j.name.as_str()).collect();
    names.sort();
    assert_eq!(names, [a.import_job_name.as_str(), "alpha-seed-2"]);
    // A drive done may still be shipped back after completion.
    let back = operator.set_import_drive_state(&job.id, d0, &update(ImportDriveState::ShippedBack)).unwrap();
    assert_eq!(back.state, ImportJobState::Completed);
}

#[test]
fn a_job_read_while_its_drives_move_is_always_one_committed_state() {
    reads_during_changes(&Service::start());
}

#[test]
fn a_job_read_while_its_drives_move_is_always_one_committed_state_on_postgresql() {
    let postgres = offsite_testbed::Postgres::start().expect("PostgreSQL for tests (run scripts/test)");
    reads_during_changes(&Service::start_on(&postgres.url()));
}

/// An operator moves a dozen drives through ingest while the customer reads the
/// job over and over: every read succeeds, and in each one the job's and every
/// drive's state equal the last entry of its timeline (a read that mixed two
/// commits would not, and used to answer 500).
fn reads_during_changes(service: &Service) {
    let a = service.tenant("alpha");
    let sub = service.client(&a.subscription_token);
    let operator = service.operator();
    let ids: Vec<String> = (1..=12).map(|n| format!("cc{n:014}")).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let job = sub.create_import_job(&a.subscription_id, &new_job(&a, "alpha-busy", &id_refs)).unwrap();
    sub.set_import_job_shipping(&job.id, &shipping("1Z999AA10123456799", 12)).unwrap();
    operator.receive_import_job(&job.id, &ImportJobNote::default()).unwrap();

    let done = std::sync::atomic::AtomicBool::new(false);
    let reads = std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut reads = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let view = sub.import_job(&job.id).unwrap_or_else(|e| panic!("read {reads} failed: {e}"));
                let last_of = |drive: Option<&str>| {
                    view.timeline.iter().rev().find(|e| e.drive_id.as_deref() == drive).map(|e| e.state.clone())
                };
                let name = |state: serde_json::Value| state.as_str().map(str::to_string);
                assert_eq!(last_of(None), name(json!(view.state)), "{view:?}");
                for drive in &view.drives {
                    assert_eq!(last_of(Some(&drive.drive_id)), name(json!(drive.state)), "{view:?}");
                }
                reads += 1;
            }
            reads
        });
        let update = |state| DriveStateUpdate { state, message: None };
        for id in &ids {
            operator.set_import_drive_state(&job.id, id, &update(ImportDriveState::Transferring)).unwrap();
            operator.set_import_drive_state(&job.id, id, &update(ImportDriveState::Completed)).unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        reader.join().expect("the reader")
    });
    assert!(reads > 0);
    assert_eq!(sub.import_job(&job.id).unwrap().state, ImportJobState::Packaging);
}

#[test]
fn job_names_are_unique_and_what_a_job_names_must_exist() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let b = service.tenant("bravo");
    let path = format!("/subscriptions/{}/import-jobs", b.subscription_id);
    let post = |body: &CreateImportJob| {
        refusal(&service, "POST", &path, &b.subscription_token, Body::Json(serde_json::to_value(body).unwrap()))
    };
    // A's job name, from B: names are unique across the service.
    let (status, message) = post(&new_job(&b, &a.import_job_name, &["bb00000000000001"]));
    assert_eq!(status, 409, "{message}");
    assert!(message.contains("already exists") && message.contains("unique across the service"), "{message}");
    assert!(message.contains(&a.import_job_name), "{message}");

    let mut body = new_job(&b, "bravo-seed-2", &["bb00000000000001"]);
    body.storage_account = a.storage_account_name.clone();
    let (status, message) = post(&body);
    assert_eq!(status, 404, "A's storage account is not B's: {message}");
    assert!(message.contains(&a.storage_account_name) && !message.contains(&a.storage_account_id), "{message}");
    let mut body = new_job(&b, "bravo-seed-2", &["bb00000000000001"]);
    body.container = "no-such-container".into();
    let (status, message) = post(&body);
    assert_eq!((status, message.contains("no-such-container")), (404, true), "{message}");
    let mut body = new_job(&b, "bravo-seed-2", &["bb00000000000001"]);
    body.datacenter = "atlantis".into();
    let (status, message) = post(&body);
    assert_eq!((status, message.contains("atlantis")), (404, true), "{message}");
    let (status, message) = post(&new_job(&b, "bravo-seed-2", &[]));
    assert_eq!((status, message.contains("at least one drive")), (400, true), "{message}");
    let (status, message) = post(&new_job(&b, "bravo-seed-2", &["not hex"]));
    assert_eq!((status, message.contains("drive id")), (400, true), "{message}");
    let (status, message) = post(&new_job(&b, "bravo-seed-2", &["bb00000000000001", "BB00000000000001"]));
    assert_eq!((status, message.contains("twice")), (400, true), "{message}");
    let (status, message) = post(&new_job(&b, "a", &["bb00000000000001"]));
    assert_eq!((status, message.contains("not a valid import job name")), (400, true), "{message}");
    // Nothing of that was stored.
    let listed = service.client(&b.subscription_token).list_import_jobs(&b.subscription_id).unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
}

#[test]
fn tracking_numbers_are_unique_across_tenants_without_naming_the_other_job() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let b = service.tenant("bravo");
    service.client(&a.subscription_token).set_import_job_shipping(&a.import_job_id, &shipping("1Z999AA1", 1)).unwrap();

    let path = format!("/import-jobs/{}/shipping", b.import_job_id);
    let put = |details: ShippingDetails| {
        refusal(&service, "PUT", &path, &b.subscription_token, Body::Json(serde_json::to_value(details).unwrap()))
    };
    let (status, message) = put(shipping(" 1z999aa1 ", 1));
    assert_eq!(status, 409, "{message}");
    assert!(message.contains("already used by another import job"), "{message}");
    for leak in a.secrets_and_ids() {
        assert!(!message.contains(leak), "the refusal names A's {leak}: {message}");
    }
    let (status, message) = put(shipping("1Z999AA2", 3));
    assert_eq!((status, message.contains("has 1")), (400, true), "{message}");
    let mut bad_date = shipping("1Z999AA2", 1);
    bad_date.ship_date = "02/11/2026".into();
    let (status, message) = put(bad_date);
    assert_eq!((status, message.contains("YYYY-MM-DD")), (400, true), "{message}");
    let (status, message) = put(shipping("12", 1));
    assert_eq!((status, message.contains("tracking number")), (400, true), "{message}");
    // B's job is untouched; another number works.
    let b_client = service.client(&b.subscription_token);
    assert_eq!(b_client.import_job(&b.import_job_id).unwrap().state, ImportJobState::Creating);
    let shipped = b_client.set_import_job_shipping(&b.import_job_id, &shipping("1Z999AA2", 1)).unwrap();
    assert_eq!(shipped.state, ImportJobState::Shipping);
}

#[test]
fn transitions_the_life_cycle_refuses_are_named_and_change_nothing() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let op = service.operator_token.clone();
    let job = &a.import_job_id;
    let drive = &a.drive_id;
    let before = service.client(&a.subscription_token).import_job(job).unwrap();

    let (status, message) = refusal(&service, "POST", &format!("/import-jobs/{job}/complete"), &op, no_note());
    assert_eq!(status, 409, "{message}");
    assert!(message.contains("Creating") && message.contains("Completed"), "{message}");
    let (status, message) = refusal(&service, "POST", &format!("/import-jobs/{job}/receive"), &op, no_note());
    assert!(status == 409 && message.contains("Creating") && message.contains("Received"), "{message}");
    let state_path = format!("/import-jobs/{job}/drives/{drive}/state");
    let (status, message) = refusal(&service, "PUT", &state_path, &op, Body::Json(json!({"state": "transferring"})));
    assert!(status == 409 && message.contains("arrival"), "{message}");
    let after = service.client(&a.subscription_token).import_job(job).unwrap();
    assert_eq!(timeline(&after), timeline(&before), "refusals store nothing");

    let operator = service.operator();
    service.client(&a.subscription_token).set_import_job_shipping(job, &shipping("1Z999AA1", 1)).unwrap();
    operator.receive_import_job(job, &ImportJobNote::default()).unwrap();
    let (status, message) = refusal(&service, "PUT", &state_path, &op, Body::Json(json!({"state": "completed"})));
    assert_eq!(status, 409, "{message}");
    assert!(message.contains("Received") && message.contains("Completed") && message.contains(drive), "{message}");
    let (status, message) = refusal(
        &service,
        "PUT",
        &format!("/import-jobs/{job}/drives/ffff000000000000/state"),
        &op,
        Body::Json(json!({"state": "transferring"})),
    );
    assert!(status == 404 && message.contains("ffff000000000000"), "{message}");
    let (status, message) = refusal(&service, "PUT", &state_path, &op, Body::Json(json!({"state": "lost"})));
    assert_eq!(status, 400, "{message}");

    operator
        .set_import_drive_state(job, drive, &DriveStateUpdate { state: ImportDriveState::Transferring, message: None })
        .unwrap();
    operator
        .set_import_drive_state(job, drive, &DriveStateUpdate { state: ImportDriveState::Completed, message: None })
        .unwrap();
    // Packaging cannot be cancelled.
    let (status, message) =
        refusal(&service, "POST", &format!("/import-jobs/{job}/cancel"), &a.subscription_token, no_note());
    assert!(status == 409 && message.contains("Packaging") && message.contains("Closed"), "{message}");
    register_file_list(&service.client(&a.subscription_token), job, &[]);
    operator.complete_import_job(job, &ImportJobNote::default()).unwrap();
    let (status, message) = refusal(&service, "POST", &format!("/import-jobs/{job}/complete"), &op, no_note());
    assert!(status == 409 && message.contains("final"), "{message}");

    // A job is cancelled while the life cycle allows it, and stays closed.
    let sub = service.client(&a.subscription_token);
    let other = sub.create_import_job(&a.subscription_id, &new_job(&a, "alpha-seed-3", &["cc00000000000001"])).unwrap();
    let closed = sub
        .cancel_import_job(&other.id, &ImportJobNote { message: Some("drive failed before shipping".into()) })
        .unwrap();
    assert_eq!(closed.state, ImportJobState::Closed);
    let last = closed.timeline.last().unwrap();
    assert_eq!((last.state.as_str(), last.actor.as_str()), ("closed", a.subscription_id.as_str()));
    assert_eq!(last.message.as_deref(), Some("cancelled: drive failed before shipping"));
    let (status, message) = refusal(
        &service,
        "PUT",
        &format!("/import-jobs/{}/shipping", other.id),
        &a.subscription_token,
        Body::Json(serde_json::to_value(shipping("1Z999AA9", 1)).unwrap()),
    );
    assert!(status == 409 && message.contains("Closed"), "{message}");
}

#[test]
fn other_tenants_and_machines_see_404_on_every_import_job_endpoint() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let b = service.tenant("bravo");
    let job = &a.import_job_id;
    let drive = &a.drive_id;
    let create = serde_json::to_value(new_job(&a, "bravo-steals", &["dd00000000000001"])).unwrap();
    let ship = serde_json::to_value(shipping("1Z999AA7", 1)).unwrap();
    let requests: Vec<(&str, String, Body)> = vec![
        ("GET", format!("/subscriptions/{}/import-jobs", a.subscription_id), Body::Empty),
        ("POST", format!("/subscriptions/{}/import-jobs", a.subscription_id), Body::Json(create)),
        ("GET", format!("/import-jobs/{job}"), Body::Empty),
        ("POST", format!("/import-jobs/{job}/cancel"), no_note()),
        ("PUT", format!("/import-jobs/{job}/shipping"), Body::Json(ship)),
        ("POST", format!("/import-jobs/{job}/receive"), no_note()),
        ("PUT", format!("/import-jobs/{job}/drives/{drive}/state"), Body::Json(json!({"state": "transferring"}))),
        ("POST", format!("/import-jobs/{job}/complete"), no_note()),
    ];
    let before = service.client(&a.subscription_token).import_job(job).unwrap();
    for token in [&b.subscription_token, &b.machine_token, &a.machine_token] {
        for (method, path, body) in &requests {
            let (status, message) = refusal(&service, method, path, token, body.clone());
            assert_eq!(status, 404, "{method} {path}: {message}");
            assert!(!message.contains(&a.import_job_name), "{message}");
        }
    }
    // A job id that does not exist answers the same.
    let (status, _) = refusal(&service, "GET", "/import-jobs/imp_nothing", &b.subscription_token, Body::Empty);
    assert_eq!(status, 404);
    let after = service.client(&a.subscription_token).import_job(job).unwrap();
    assert_eq!(timeline(&after), timeline(&before));
    assert_eq!(after.state, ImportJobState::Creating);
    // B lists only its own.
    let listed = service.client(&b.subscription_token).list_import_jobs(&b.subscription_id).unwrap();
    assert_eq!(listed.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), [b.import_job_id.as_str()]);
}

#[test]
fn a_job_whose_drives_do_not_arrive_within_14_days_expires() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let sub = service.client(&a.subscription_token);
    let late = sub.create_import_job(&a.subscription_id, &new_job(&a, "alpha-late", &["ee00000000000001"])).unwrap();
    let arrived =
        sub.create_import_job(&a.subscription_id, &new_job(&a, "alpha-arrived", &["ee00000000000002"])).unwrap();
    sub.set_import_job_shipping(&late.id, &shipping("1Z999AA1", 1)).unwrap();
    sub.set_import_job_shipping(&a.import_job_id, &shipping("1Z999AA2", 1)).unwrap();
    sub.set_import_job_shipping(&arrived.id, &shipping("1Z999AA3", 1)).unwrap();
    service.operator().receive_import_job(&arrived.id, &ImportJobNote::default()).unwrap();
    let in_13_days = service.restart_with_clock_offset(13 * 86_400);
    let job = in_13_days.client(&a.subscription_token).import_job(&late.id).unwrap();
    assert_eq!(job.state, ImportJobState::Shipping, "not yet");

    let service = in_13_days.restart_with_clock_offset(15 * 86_400);
    let sub = service.client(&a.subscription_token);
    // New shipping details do not revive it.
    let (status, message) = refusal(
        &service,
        "PUT",
        &format!("/import-jobs/{}/shipping", a.import_job_id),
        &a.subscription_token,
        Body::Json(serde_json::to_value(shipping("1Z999AA4", 1)).unwrap()),
    );
    assert!(status == 409 && message.contains("expired") && message.contains("14 days"), "{message}");
    let expired = sub.import_job(&late.id).unwrap();
    assert_eq!(expired.state, ImportJobState::Closed);
    let last = expired.timeline.last().unwrap();
    assert_eq!(
        (last.state.as_str(), last.actor.as_str(), last.drive_id.as_deref()),
        ("closed", "service (deadline)", None)
    );
    assert!(last.message.as_deref().is_some_and(|m| m.contains("did not reach")), "{last:?}");
    // Reading again adds nothing; the listing agrees; the received job lives on.
    assert_eq!(sub.import_job(&late.id).unwrap().timeline.len(), expired.timeline.len());
    let listed = sub.list_import_jobs(&a.subscription_id).unwrap();
    let mut states: Vec<(&str, ImportJobState)> = listed.iter().map(|j| (j.name.as_str(), j.state)).collect();
    states.sort_by_key(|s| s.0);
    assert_eq!(
        states,
        [
            ("alpha-arrived", ImportJobState::Received),
            ("alpha-late", ImportJobState::Closed),
            (a.import_job_name.as_str(), ImportJobState::Closed),
        ]
    );
    // The operator cannot receive an expired job.
    let (status, message) =
        refusal(&service, "POST", &format!("/import-jobs/{}/receive", late.id), &service.operator_token, no_note());
    assert!(status == 409 && message.contains("expired") && message.contains("alpha-late"), "{message}");
}

/// Two replicas (no background work) read an overdue job at once, many times over:
/// every read answers 200 with the job closed, and it is closed once. Each read
/// finds the job due and tries to close it; the ones that lose the race read it
/// again (they answered 409 before).
#[test]
fn replicas_reading_an_overdue_job_at_once_close_it_once_and_all_answer() {
    let shared = SharedBackends::start();
    let first = shared.replica(0, false);
    let a = first.tenant("alpha");
    let sub = first.client(&a.subscription_token);
    let jobs: Vec<String> = (0..4)
        .map(|n| {
            let job = new_job(&a, &format!("alpha-overdue-{n}"), &[&format!("ee0000000000020{n}")]);
            let job = sub.create_import_job(&a.subscription_id, &job).unwrap();
            sub.set_import_job_shipping(&job.id, &shipping(&format!("1Z999AD{n}"), 1)).unwrap();
            job.id
        })
        .collect();
    drop(first);
    let replicas = [shared.replica(15 * 86_400, false), shared.replica(15 * 86_400, false)];
    let start = std::sync::Barrier::new(16);
    let reads: Vec<Reply> = std::thread::scope(|scope| {
        let running: Vec<_> = (0..16)
            .map(|n| {
                let (replica, job, token, start) = (&replicas[n % 2], &jobs[n / 4], &a.subscription_token, &start);
                scope.spawn(move || {
                    // Each thread's connection is open, and the credential verified
                    // (Argon2, once per replica), before they all ask at once.
                    replica.call("GET", "/api/v1/whoami", Some(token), &Body::Empty);
                    start.wait();
                    replica.call("GET", &format!("/api/v1/import-jobs/{job}"), Some(token), &Body::Empty)
                })
            })
            .collect();
        running.into_iter().map(|r| r.join().unwrap()).collect()
    });
    for reply in &reads {
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.json()["state"], "closed", "{}", reply.text());
    }
    for job in &jobs {
        let view = replicas[0].client(&a.subscription_token).import_job(job).unwrap();
        assert_eq!(view.timeline.iter().filter(|e| e.state == "closed").count(), 1, "{:?}", view.timeline);
    }
}

/// The service's clock jumping around the 14-day arrival deadline: a minute before
/// it the job still waits; a minute after it expires once, with the job and the
/// deadline named to whoever acts on it (shipping details, receiving, ingest); a
/// jump back does not revive it. A job received before its deadline is no longer
/// bound by it (its drives are at the datacenter): ingest goes on after the clock
/// passes the deadline.
#[test]
fn clock_jumps_around_the_deadline_expire_a_job_once_and_never_revive_it() {
    const DAY: i64 = 86_400;
    let service = Service::start();
    let a = service.tenant("alpha");
    let sub = service.client(&a.subscription_token);
    let late = sub.create_import_job(&a.subscription_id, &new_job(&a, "alpha-late", &["ee00000000000011"])).unwrap();
    let just_in =
        sub.create_import_job(&a.subscription_id, &new_job(&a, "alpha-just-in", &["ee00000000000012"])).unwrap();
    sub.set_import_job_shipping(&late.id, &shipping("1Z999AB1", 1)).unwrap();
    sub.set_import_job_shipping(&just_in.id, &shipping("1Z999AB2", 1)).unwrap();
    let deadline = sub.import_job(&late.id).unwrap().arrival_deadline.expect("a deadline once shipped");

    // A minute before: still waiting; the other package is received in time.
    let before = service.restart_with_clock_offset(14 * DAY - 60);
    assert_eq!(before.client(&a.subscription_token).import_job(&late.id).unwrap().state, ImportJobState::Shipping);
    before.operator().receive_import_job(&just_in.id, &ImportJobNote::default()).unwrap();

    // A minute after: expired, once; every step on it names the job and the deadline.
    let after = before.restart_with_clock_offset(14 * DAY + 60);
    let sub = after.client(&a.subscription_token);
    let expired = sub.import_job(&late.id).unwrap();
    assert_eq!(expired.state, ImportJobState::Closed);
    let closings = |view: &ImportJobView| view.timeline.iter().filter(|e| e.state == "closed").count();
    assert_eq!(closings(&expired), 1, "{:?}", expired.timeline);
    let deadline_text = expired.timeline.last().and_then(|e| e.message.clone()).unwrap_or_default();
    assert!(deadline_text.contains("did not reach"), "{deadline_text}");
    let named = |(status, message): (u16, String)| {
        assert_eq!(status, 409, "{message}");
        assert!(message.contains("alpha-late") && message.contains("expired"), "the job is not named: {message}");
        assert!(message.contains(&deadline.year().to_string()), "the deadline is not named: {message}");
    };
    named(refusal(
        &after,
        "PUT",
        &format!("/import-jobs/{}/shipping", late.id),
        &a.subscription_token,
        Body::Json(serde_json::to_value(shipping("1Z999AB3", 1)).unwrap()),
    ));
    named(refusal(&after, "POST", &format!("/import-jobs/{}/receive", late.id), &after.operator_token, no_note()));
    let ingest = Body::Json(json!({ "state": "transferring" }));
    named(refusal(
        &after,
        "PUT",
        &format!("/import-jobs/{}/drives/ee00000000000011/state", late.id),
        &after.operator_token,
        ingest,
    ));

    // The job received a minute before its deadline goes on being ingested.
    let update = DriveStateUpdate { state: ImportDriveState::Transferring, message: None };
    let moving = after.operator().set_import_drive_state(&just_in.id, "ee00000000000012", &update).unwrap();
    assert_eq!(moving.state, ImportJobState::Transferring, "{:?}", moving.timeline);

    // The clock jumps back: the expired job stays closed, its timeline unchanged.
    let back = after.restart_with_clock_offset(0);
    let again = back.client(&a.subscription_token).import_job(&late.id).unwrap();
    assert_eq!(again.state, ImportJobState::Closed);
    assert_eq!(again.timeline.len(), expired.timeline.len());
    named(refusal(&back, "POST", &format!("/import-jobs/{}/receive", late.id), &back.operator_token, no_note()));
    assert_eq!(back.client(&a.subscription_token).import_job(&just_in.id).unwrap().state, ImportJobState::Transferring);
}
