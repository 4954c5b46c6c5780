//! Export jobs through the API: sized before they are made, only live files of
//! the customer's own machines, the station of the chosen datacenter reads the
//! files as stored and records its drives, and the life cycle is walked to its
//! end; recovery keys show to the customer only.

mod common;

use common::{Service, Tenant};
use offsite_api::types::*;

fn refused(result: Result<impl std::fmt::Debug, offsite_api::ApiError>) -> (u16, String) {
    let err = result.expect_err("the service refuses");
    (err.status().unwrap_or(0), err.to_string())
}

fn request(tenant: &Tenant, name: &str, files: Vec<String>) -> CreateExportJob {
    CreateExportJob {
        name: name.into(),
        datacenter: tenant.datacenter_name.clone(),
        drive_size: 1_000_000_000_000,
        export_public_key: Some("ab".repeat(32)),
        return_address: None,
        machines: vec![ExportMachine { machine_id: tenant.machine_id.clone(), files, points: vec!["p1".into()] }],
    }
}

#[test]
fn an_export_job_is_sized_written_by_its_station_and_walked_to_completion() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let b = service.tenant("bravo");
    let machine = service.client(&a.machine_token);
    let data_path = format!("data/{}/{}", &a.file_name[..2], a.file_name);

    // Sized first: the two files the machine's repository holds.
    let chosen = vec!["config".to_string(), data_path.clone()];
    let sizing = machine.preview_export(&a.subscription_id, &request(&a, "alpha-restore", chosen.clone())).unwrap();
    let bytes = (a.config_bytes.len() + a.file_bytes.len()) as u64;
    assert_eq!((sizing.files, sizing.bytes, sizing.drives_needed), (2, bytes, 1), "{sizing:?}");

    // Files the repository lacks, another tenant's machine, a tiny drive: refused by name.
    let (status, message) = refused(
        machine.preview_export(&a.subscription_id, &request(&a, "x-1", vec!["index/".to_string() + &"0".repeat(64)])),
    );
    assert!(status == 400 && message.contains("no such repository file"), "{message}");
    let mut foreign = request(&a, "x-2", vec![]);
    foreign.machines[0].machine_id = b.machine_id.clone();
    assert_eq!(refused(service.client(&a.subscription_token).request_export(&a.subscription_id, &foreign)).0, 404);
    let mut tiny = request(&a, "x-3", vec![]);
    tiny.drive_size = 1_000_000;
    assert!(refused(machine.preview_export(&a.subscription_id, &tiny)).1.contains("at least 64 MiB"));
    let (status, _) =
        refused(service.client(&b.machine_token).request_export(&a.subscription_id, &request(&a, "x-4", vec![])));
    assert_eq!(status, 404);

    let job = machine.request_export(&a.subscription_id, &request(&a, "alpha-restore", chosen)).unwrap();
    assert_eq!(job.state, ExportJobState::Requested);
    assert_eq!(job.machines[0].points, vec!["p1".to_string()]);
    assert_eq!(refused(machine.request_export(&a.subscription_id, &request(&a, "alpha-restore", vec![]))).0, 409);

    // The station of A's datacenter sees it; B's does not.
    let operator = service.operator();
    let station =
        service.client(&operator.issue_station_credential(&a.datacenter_id, None).unwrap().station_credential);
    let other = service.client(&operator.issue_station_credential(&b.datacenter_id, None).unwrap().station_credential);
    assert!(station.datacenter_export_jobs(&a.datacenter_id).unwrap().iter().any(|j| j.id == job.id));
    assert_eq!(refused(other.export_job(&job.id)).0, 404);
    assert_eq!(refused(other.begin_export(&job.id)).0, 404);
    // The customer cannot write drives.
    assert_eq!(refused(machine.begin_export(&job.id)).0, 403);

    // The station reads the files as stored.
    let job = station.begin_export(&job.id).unwrap();
    assert_eq!(job.state, ExportJobState::Preparing);
    let files = station.export_files(&job.id).unwrap();
    assert_eq!(files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), ["config", data_path.as_str()]);
    let read = station.export_file(&job.id, &a.machine_id, &data_path).unwrap().bytes().unwrap();
    assert_eq!(read.as_ref(), a.file_bytes.as_slice());
    assert_eq!(refused(station.export_file(&job.id, &a.machine_id, "snapshots/nope").map(|_| ())).0, 404);

    // Its drive, with the recovery key the customer alone is shown.
    let drive = ExportDrive {
        drive_id: "0123456789abcdef0123456789abcdef".into(),
        index: 0,
        fingerprint: "cd".repeat(32),
        bytes,
        recovery_key: Some("3F2A9C01-00112233-44556677-8899AABB-CCDDEEFF-00112233-44556677-8899AABB".into()),
    };
    let seen = station.add_export_drive(&job.id, &drive).unwrap();
    assert_eq!(seen.drives[0].recovery_key, None, "the station is not shown the key it wrote");
    station.add_export_drive(&job.id, &drive).unwrap();
    let (status, _) =
        refused(station.add_export_drive(&job.id, &ExportDrive { fingerprint: "ef".repeat(32), ..drive.clone() }));
    assert_eq!(status, 409);
    assert_eq!(machine.export_job(&job.id).unwrap().drives[0].recovery_key, drive.recovery_key);
    assert_eq!(
        service.client(&a.subscription_token).export_job("alpha-restore").unwrap().drives[0].recovery_key,
        drive.recovery_key
    );

    let shipment = ExportShipment { carrier: "UPS".into(), tracking_number: "1Z999AA10123456784".into() };
    let job = station.ship_export(&job.id, &shipment).unwrap();
    assert_eq!((job.state, job.tracking_number.as_deref()), (ExportJobState::Shipping, Some("1Z999AA10123456784")));
    let note = ImportJobNote::default();
    let (status, message) = refused(machine.export_step(&job.id, "cancel", &note));
    assert!(status == 409 && message.contains("is shipping and cannot become closed"), "{message}");
    assert_eq!(machine.export_step(&job.id, "delivered", &note).unwrap().state, ExportJobState::Delivered);
    let done = machine.export_step(&job.id, "complete", &note).unwrap();
    assert_eq!(done.state, ExportJobState::Completed);
    let states: Vec<ExportJobState> = done.timeline.iter().map(|e| e.state).collect();
    use ExportJobState::*;
    assert_eq!(states, [Requested, Preparing, Shipping, Delivered, Completed]);
    assert!(done.timeline[2].message.as_deref().is_some_and(|m| m.contains("UPS")), "{:?}", done.timeline);
}
