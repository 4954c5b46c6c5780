//! Offline seeding on the service: the application identity and its signed
//! requests, datacenter import keys, the ingest upload of an import job's files
//! (whole files, parts, logs), packaging with a repair drive, and adoption of the
//! seed into a machine's vault repository (on the local folder and on Azurite).

mod common;

use common::{
    content_name, file_list, fingerprint_of, import_key, new_job, proven, register_file_list, sign, source_drive,
    unproven, Body, Service, SharedBackends, Tenant,
};
use offsite_api::types::*;
use offsite_api::Client;
use serde_json::json;
use std::time::Duration;

fn refused(result: Result<impl std::fmt::Debug, offsite_api::ApiError>) -> (u16, String, String) {
    let err = result.expect_err("the service refuses");
    (err.status().unwrap_or(0), err.code().unwrap_or_default().to_string(), err.to_string())
}

fn bytes(seed: u32, len: usize) -> Vec<u8> {
    (0..len as u32).map(|i| (i.wrapping_mul(2_654_435_761) ^ seed.wrapping_mul(40_503)) as u8).collect()
}

/// A repository data file's path in the staging layout, and its bytes.
fn data_file(seed: u32, len: usize) -> (String, Vec<u8>) {
    let data = bytes(seed, len);
    let name = content_name(&data);
    (format!("data/{}/{name}", &name[..2]), data)
}

fn put(
    client: &Client,
    job: &str,
    drive: &str,
    path: &str,
    offset: u64,
    file_size: u64,
    data: &[u8],
) -> Result<(), offsite_api::ApiError> {
    let body = futures::stream::iter([Ok(bytes::Bytes::copy_from_slice(data))]);
    client.put_import_file(job, &source_drive(drive), path, offset, file_size, body, data.len() as u64)
}

/// The files a repair drive must bring, as the customer's application hears it.
fn app_missing(service: &Service, tenant: &Tenant, job_id: &str) -> Vec<ImportFile> {
    service.app_client(&tenant.application).missing_import_files(job_id).expect("the missing files")
}

fn drive_state(client: &Client, job: &str, drive: &str, state: ImportDriveState) -> ImportJobView {
    client.set_import_drive_state(job, drive, &DriveStateUpdate { state, message: None }).expect("a drive state change")
}

fn shipping(tracking_number: &str, drive_count: u32) -> ShippingDetails {
    ShippingDetails {
        carrier: "DHL".into(),
        tracking_number: tracking_number.into(),
        drive_count,
        ship_date: "2026-11-02".into(),
        return_address: "1 Return Way".into(),
        contact: "ops@example.com".into(),
    }
}

/// A new import job of `tenant` with `drives` (ids) and the file list `files`
/// (path, size), shipped and received.
fn received_job(
    service: &Service,
    tenant: &Tenant,
    name: &str,
    drives: &[&str],
    files: &[(String, u64)],
) -> ImportJobView {
    let app = service.app_client(&tenant.application);
    let job = app
        .create_import_job(&tenant.subscription_id, &new_job(tenant, name, drives))
        .expect("the application creates an import job");
    register_file_list(&app, &job.id, files);
    app.set_import_job_shipping(&job.id, &shipping(&format!("TRK-{name}"), drives.len() as u32)).expect("shipping");
    service.operator().receive_import_job(&job.id, &ImportJobNote::default()).expect("received")
}

// ------------------------------------------------------------------ applications

#[test]
fn a_subscription_has_one_application_and_more_certificates_are_uploaded_by_hand() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let sub = service.client(&a.subscription_token);
    let app = sub.application(&a.subscription_id).unwrap();
    assert_eq!(app.id, a.application.application_id);
    // certgen's certificate and the fixture's spare one.
    let mut thumbprints: Vec<&str> = app.certificates.iter().map(|c| c.thumbprint.as_str()).collect();
    let mut expected = [a.application.thumbprint.as_str(), a.spare_thumbprint.as_str()];
    thumbprints.sort();
    expected.sort();
    assert_eq!(thumbprints, expected, "{app:?}");
    assert!(app.certificates.iter().all(|c| c.not_after.is_some()), "{app:?}");

    // A second application is refused with the manual path spelled out.
    let other = offsite_seeding::application::generate(&a.subscription_id).unwrap();
    let (status, code, message) = refused(sub.create_application(&a.subscription_id, &unproven(&other.cert_pem)));
    assert_eq!((status, code.as_str()), (409, "application_exists"), "{message}");
    for step in [
        "offsite admin application challenge",
        "offsite certgen export-cert --challenge",
        "offsite admin application upload-cert",
        "offsite certgen add-agent-entries",
    ] {
        assert!(message.contains(step), "{message}");
    }

    // The manual path: upload the certificate (DER in base64 here) with its proof,
    // then sign with its key.
    let text = offsite_api::application_auth::certificate_text(&other.cert_der);
    let app = sub
        .upload_application_certificate(&a.subscription_id, &proven(&sub, &a.subscription_id, &text, &other.key_pem))
        .unwrap();
    assert_eq!(app.certificates.len(), 3);
    assert!(app.certificates.iter().any(|c| c.thumbprint == other.thumbprint));
    let identity = offsite_api::application_auth::ApplicationIdentity {
        application_id: app.id.clone(),
        thumbprint: other.thumbprint.clone(),
        key_pem: other.key_pem.clone(),
    };
    let who = service.app_client(&identity).whoami().unwrap();
    assert_eq!(
        who,
        WhoAmI::Application {
            application_id: app.id.clone(),
            subscription_id: a.subscription_id.clone(),
            thumbprint: other.thumbprint.clone()
        }
    );
    let again = proven(&sub, &a.subscription_id, &text, &other.key_pem);
    let (status, _, message) = refused(sub.upload_application_certificate(&a.subscription_id, &again));
    assert_eq!(status, 409, "the same certificate twice: {message}");

    // Private keys, junk and unsupported keys are refused by name, and nothing is added.
    let (status, _, message) =
        refused(sub.upload_application_certificate(&a.subscription_id, &unproven(&other.key_pem)));
    assert!(status == 400 && message.contains("private key"), "{message}");
    let (status, _, message) = refused(sub.upload_application_certificate(&a.subscription_id, &unproven("hello")));
    assert!(status == 400 && message.contains("certificate"), "{message}");
    let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["x".into()]).unwrap().self_signed(&p384).unwrap();
    let (status, _, message) = refused(sub.upload_application_certificate(&a.subscription_id, &unproven(&cert.pem())));
    assert!(status == 400 && message.contains("ECDSA P-256 nor Ed25519"), "{message}");
    assert_eq!(sub.application(&a.subscription_id).unwrap().certificates.len(), 3);

    // A subscription without an application hears how to make one.
    let created = service.operator().create_subscription("lonely").unwrap();
    let lonely = service.client(&created.management_credential);
    let (status, _, message) = refused(lonely.application(&created.subscription.id));
    assert!(status == 404 && message.contains("offsite certgen"), "{message}");
}

/// Every certificate upload proves possession of its key: a signature over a
/// challenge the service gave this subscription, once. Without one, with another
/// key's, with a spent, unknown or other subscription's challenge, nothing is added;
/// a failed proof does not spend the challenge.
#[test]
fn a_certificate_upload_proves_possession_of_its_key() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let b = service.tenant("bravo");
    let sub = service.client(&a.subscription_token);
    let new = offsite_seeding::application::generate(&a.subscription_id).unwrap();
    let certificates = || sub.application(&a.subscription_id).unwrap().certificates.len();
    let before = certificates();

    let (status, _, message) =
        refused(sub.upload_application_certificate(&a.subscription_id, &unproven(&new.cert_pem)));
    assert!(status == 400 && message.contains("offsite certgen export-cert --challenge"), "{message}");

    // Signed with another key (someone who copied the certificate, not the key).
    let challenge = sub.certificate_challenge(&a.subscription_id).unwrap().challenge;
    let impostor = offsite_seeding::application::generate(&a.subscription_id).unwrap();
    let forged = UploadCertificate {
        certificate: new.cert_pem.clone(),
        possession: Some(offsite_api::possession::prove(&impostor.key_pem, &challenge, &new.thumbprint).unwrap()),
    };
    let (status, _, message) = refused(sub.upload_application_certificate(&a.subscription_id, &forged));
    assert!(status == 403 && message.contains("not made with the key"), "{message}");
    // The same challenge, signed over another certificate's thumbprint by the right key.
    let misbound = UploadCertificate {
        certificate: new.cert_pem.clone(),
        possession: Some(offsite_api::possession::prove(&new.key_pem, &challenge, &impostor.thumbprint).unwrap()),
    };
    assert_eq!(refused(sub.upload_application_certificate(&a.subscription_id, &misbound)).0, 403);
    assert_eq!(certificates(), before);

    // The failed proofs did not spend the challenge; the right one does, once.
    let proof = offsite_api::possession::prove(&new.key_pem, &challenge, &new.thumbprint).unwrap();
    let upload = UploadCertificate { certificate: new.cert_pem.clone(), possession: Some(proof) };
    sub.upload_application_certificate(&a.subscription_id, &upload).unwrap();
    assert_eq!(certificates(), before + 1);
    let third = offsite_seeding::application::generate(&a.subscription_id).unwrap();
    let replayed = UploadCertificate {
        certificate: third.cert_pem.clone(),
        possession: Some(offsite_api::possession::prove(&third.key_pem, &challenge, &third.thumbprint).unwrap()),
    };
    let (status, _, message) = refused(sub.upload_application_certificate(&a.subscription_id, &replayed));
    assert!(status == 403 && message.contains("used already"), "{message}");

    // A challenge made up, or given to another subscription, is refused too.
    for challenge in [
        "chl_0123456789abcdef",
        &service.client(&b.subscription_token).certificate_challenge(&b.subscription_id).unwrap().challenge,
    ] {
        let upload = UploadCertificate {
            certificate: third.cert_pem.clone(),
            possession: Some(offsite_api::possession::prove(&third.key_pem, challenge, &third.thumbprint).unwrap()),
        };
        let (status, _, message) = refused(sub.upload_application_certificate(&a.subscription_id, &upload));
        assert_eq!(status, 403, "{challenge}: {message}");
    }
    // Another subscription gets no challenge of A's.
    let (status, _, _) = refused(service.client(&b.subscription_token).certificate_challenge(&a.subscription_id));
    assert!(matches!(status, 403 | 404), "{status}");
    assert_eq!(certificates(), before + 1);
}

/// A certificate belongs to its application: the same certificate (one
/// technician's machine preparing seeds for two subscriptions) registers in both,
/// signs for each as that one's application, and removing it from one leaves the
/// other's; one subscription's registration neither blocks nor shows in another's.
#[test]
fn one_certificate_serves_two_subscriptions_without_either_seeing_the_other() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let b = service.tenant("bravo");
    let shared = offsite_seeding::application::generate("technician").unwrap();
    let mut identities = Vec::new();
    for tenant in [&a, &b] {
        let manager = service.client(&tenant.subscription_token);
        let upload = proven(&manager, &tenant.subscription_id, &shared.cert_pem, &shared.key_pem);
        let app = manager.upload_application_certificate(&tenant.subscription_id, &upload).unwrap();
        assert!(app.certificates.iter().any(|c| c.thumbprint == shared.thumbprint), "{app:?}");
        identities.push(offsite_api::application_auth::ApplicationIdentity {
            application_id: app.id,
            thumbprint: shared.thumbprint.clone(),
            key_pem: shared.key_pem.clone(),
        });
    }
    for (identity, tenant) in identities.iter().zip([&a, &b]) {
        match service.app_client(identity).whoami().unwrap() {
            WhoAmI::Application { subscription_id, .. } => assert_eq!(subscription_id, tenant.subscription_id),
            other => panic!("{other:?}"),
        }
    }
    // Each application's signature reaches its own subscription only.
    assert!(service.app_client(&identities[0]).subscription(&b.subscription_id).is_err());

    service
        .client(&a.subscription_token)
        .remove_application_certificate(&a.subscription_id, &shared.thumbprint)
        .unwrap();
    assert!(service.app_client(&identities[0]).whoami().is_err(), "A's registration is gone");
    assert!(service.app_client(&identities[1]).whoami().is_ok(), "B's stays");
    let b_view = service.client(&b.subscription_token).application(&b.subscription_id).unwrap();
    assert!(b_view.certificates.iter().any(|c| c.thumbprint == shared.thumbprint));
}

#[test]
fn signed_requests_are_checked_and_the_application_does_only_offline_seeding() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let b = service.tenant("bravo");
    let app = service.app_client(&a.application);

    // What offline seeding needs works.
    assert_eq!(app.subscription(&a.subscription_id).unwrap().id, a.subscription_id);
    assert_eq!(app.list_subscriptions().unwrap().len(), 1);
    assert_eq!(app.list_storage_accounts(&a.subscription_id).unwrap()[0].id, a.storage_account_id);
    assert_eq!(app.list_containers(&a.storage_account_id).unwrap()[0].id, a.container_id);
    assert!(!app.list_datacenters().unwrap().is_empty());
    assert_eq!(app.find_import_job(&a.import_job_name).unwrap().id, a.import_job_id);
    assert_eq!(app.list_import_jobs(&a.subscription_id).unwrap().len(), 1);
    assert!(app.drive_log(&a.import_job_id, &a.drive_id, "error").unwrap().contains("block 7"));

    // Nothing else: vaults, machines, repositories, cancelling, the operator's steps.
    assert!(matches!(refused(app.list_vaults(&a.subscription_id)).0, 403 | 404));
    assert!(matches!(refused(app.machine(&a.machine_id)).0, 403 | 404));
    assert!(matches!(refused(app.list_files(&a.machine_id, "data")).0, 403 | 404));
    assert!(matches!(refused(app.cancel_import_job(&a.import_job_id, &ImportJobNote::default())).0, 403 | 404));
    assert!(matches!(refused(app.receive_import_job(&a.import_job_id, &ImportJobNote::default())).0, 403 | 404));
    assert!(matches!(refused(app.import_files(&a.import_job_id)).0, 403 | 404));
    assert!(matches!(refused(app.create_vault(&a.subscription_id, "sneaky")).0, 403 | 404));
    // And nothing of another tenant.
    assert_eq!(refused(app.find_import_job(&b.import_job_name)).0, 404);
    assert_eq!(refused(app.import_job(&b.import_job_id)).0, 404);
    assert_eq!(refused(app.list_storage_accounts(&b.subscription_id)).0, 404);

    // The signature covers method, path with query, and time.
    let path = "/api/v1/datacenters";
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let ok = sign(&a.application, "GET", path, now);
    assert_eq!(service.send("GET", path, Some(&ok), &Body::Empty, &[]).status, 200);
    let other_path = sign(&a.application, "GET", "/api/v1/whoami", now);
    let reply = service.send("GET", path, Some(&other_path), &Body::Empty, &[]);
    assert_eq!(reply.status, 401, "{}", reply.text());
    let with_query = sign(&a.application, "GET", path, now);
    assert_eq!(service.send("GET", &format!("{path}?x=1"), Some(&with_query), &Body::Empty, &[]).status, 401);
    let other_method = sign(&a.application, "POST", path, now);
    assert_eq!(service.send("GET", path, Some(&other_method), &Body::Empty, &[]).status, 401);
    let stale = sign(&a.application, "GET", path, now - 301);
    let reply = service.send("GET", path, Some(&stale), &Body::Empty, &[]);
    assert!(reply.status == 401 && reply.text().contains("clock"), "{}", reply.text());
    let future = sign(&a.application, "GET", path, now + 400);
    assert_eq!(service.send("GET", path, Some(&future), &Body::Empty, &[]).status, 401);
    // Another key under A's application and thumbprint; B's certificate under A's application.
    let forger = offsite_seeding::application::generate("x").unwrap();
    let forged =
        offsite_api::application_auth::ApplicationIdentity { key_pem: forger.key_pem, ..a.application.clone() };
    assert_eq!(service.send("GET", path, Some(&sign(&forged, "GET", path, now)), &Body::Empty, &[]).status, 401);
    let mixed = offsite_api::application_auth::ApplicationIdentity {
        application_id: a.application.application_id.clone(),
        ..b.application.clone()
    };
    assert_eq!(service.send("GET", path, Some(&sign(&mixed, "GET", path, now)), &Body::Empty, &[]).status, 401);
    for garbage in ["OffsiteApp nonsense", "OffsiteApp a:b:c:d", "OffsiteApp ::1:"] {
        let reply = service.send("GET", path, Some(garbage), &Body::Empty, &[]);
        assert!(reply.status == 401 && reply.error_body().is_some(), "{garbage}: {}", reply.text());
    }
}

// ------------------------------------------------------------------ datacenters

#[test]
fn datacenters_carry_a_usable_import_key() {
    let service = Service::start();
    let operator = service.operator();
    let key = import_key();
    let dc = operator.add_datacenter("ams1", "1 Dock\nAmsterdam", &key).unwrap();
    assert_eq!(dc.import_public_key, key);
    assert!(operator.list_datacenters().unwrap().iter().any(|d| d.name == "ams1" && d.import_public_key == key));
    for bad in ["00".repeat(32), "abc".to_string(), "zz".repeat(32), "ab".repeat(33)] {
        let (status, _, message) = refused(operator.add_datacenter("bad1", "x", &bad));
        assert!(status == 400 && message.contains("import public key"), "{bad}: {message}");
    }
    let upper = operator.add_datacenter("fra1", "2 Dock", &key.to_ascii_uppercase()).unwrap();
    assert_eq!(upper.import_public_key, key, "kept lowercase");
    let reply = service.call(
        "POST",
        "/api/v1/datacenters",
        Some(&service.operator_token),
        &Body::Json(json!({"name": "nokey", "address": "x"})),
    );
    assert_eq!(reply.status, 400, "{}", reply.text());
}

// ------------------------------------------------------------------ ingest

#[test]
fn ingest_uploads_files_and_parts_packaging_waits_for_a_repair_drive() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let operator = service.operator();
    let sub = service.client(&a.subscription_token);
    let (d0, d1, d2) = ("aaaa0000aaaa0000", "bbbb1111bbbb1111", "cccc2222cccc2222");
    let (p1, f1) = data_file(1, 300_000);
    let (p2, f2) = data_file(2, 6 * 1024 * 1024 + 17); // over one 5 MiB part
    let (p3, f3) = data_file(3, 200_000);
    // A file wholly on one drive whose every block was damaged: no part of it arrives.
    let (p4, f4) = data_file(4, 50_000);
    let list: Vec<(String, u64)> = [("config".to_string(), &a.config_bytes), (p1.clone(), &f1), (p2.clone(), &f2)]
        .into_iter()
        .chain([(p3.clone(), &f3), (p4.clone(), &f4)])
        .map(|(path, data)| (path, data.len() as u64))
        .collect();
    let job = received_job(&service, &a, "alpha-big", &[d0, d1], &list);
    assert_eq!(job.drives[0].fingerprint, Some(fingerprint_of(d0)));
    assert_eq!(job.file_list.as_ref().map(|l| l.files), Some(5));
    let half2 = f2.len() / 2;
    let half3 = f3.len() / 2;

    // A drive not transferring takes no files.
    let (status, _, message) = refused(put(&operator, &job.id, d0, &p1, 0, f1.len() as u64, &f1));
    assert!(status == 409 && message.contains("transferring"), "{message}");
    drive_state(&operator, &job.id, d0, ImportDriveState::Transferring);

    put(&operator, &job.id, d0, "config", 0, a.config_bytes.len() as u64, &a.config_bytes).unwrap();
    put(&operator, &job.id, d0, &p1, 0, f1.len() as u64, &f1).unwrap();
    put(&operator, &job.id, d0, &p2, 0, f2.len() as u64, &f2[..half2]).unwrap();
    // A whole file whose bytes do not match its name is refused, and not stored.
    let (bad_path, _) = data_file(9, 1000);
    let (status, _, message) = refused(put(&operator, &job.id, d0, &bad_path, 0, 1000, &bytes(8, 1000)));
    assert!(status == 400 && message.contains("do not hash to its name"), "{message}");
    // Paths stay inside the job; parts inside their file; only the operator uploads.
    for bad in ["../escape", "/abs", "data/../x", "logs/x", ".parts/x", "a//b"] {
        let (status, _, message) = refused(put(&operator, &job.id, d0, bad, 0, 3, b"abc"));
        assert!(status == 400 && message.contains(&format!("'{bad}'")), "{bad}: {status} {message}");
    }
    let (status, _, _) = refused(put(&operator, &job.id, d0, "seed/x", 10, 12, b"abc"));
    assert_eq!(status, 400);
    assert_eq!(refused(put(&sub, &job.id, d0, "seed/x", 0, 3, b"abc")).0, 403);
    assert_eq!(refused(put(&operator, &job.id, "dddd3333dddd3333", "seed/x", 0, 3, b"abc")).0, 404);

    let files = sub.import_files(&job.id).unwrap();
    let listed: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    let mut expected = vec!["config", p1.as_str()];
    expected.sort();
    assert_eq!(listed, expected, "whole files only, not parts");
    assert_eq!(files.iter().find(|f| f.path == p1).unwrap().size, f1.len() as u64);
    // The parts are listed apart (what a station resuming the drive need not send).
    let parts = sub.import_parts(&job.id).unwrap();
    assert_eq!(parts, vec![ImportPart { path: p2.clone(), offset: 0, length: half2 as u64 }]);

    drive_state(&operator, &job.id, d0, ImportDriveState::Completed);
    drive_state(&operator, &job.id, d1, ImportDriveState::Transferring);
    put(&operator, &job.id, d1, &p2, half2 as u64, f2.len() as u64, &f2[half2..]).unwrap();
    put(&operator, &job.id, d1, &p3, 0, f3.len() as u64, &f3[..half3]).unwrap();

    // Logs: the operator writes them, the customer and its application read them, the job links them.
    operator.put_drive_log(&job.id, d1, "error", "block 12 damaged: file part missing\n").unwrap();
    operator.put_drive_log(&job.id, d1, "verbose", "copied 2 parts\n").unwrap();
    assert!(sub.drive_log(&job.id, d1, "error").unwrap().contains("block 12"));
    let app = service.app_client(&a.application);
    assert!(app.drive_log(&job.id, d1, "verbose").unwrap().contains("2 parts"));
    assert_eq!(refused(sub.put_drive_log(&job.id, d1, "error", "forged")).0, 403);
    assert_eq!(refused(operator.put_drive_log(&job.id, d1, "debug", "x")).0, 400);
    assert_eq!(refused(sub.drive_log(&job.id, d0, "error")).0, 404);
    let big = "x".repeat(16 * 1024 * 1024 + 1);
    assert_eq!(refused(operator.put_drive_log(&job.id, d1, "verbose", &big)).0, 413);
    let view = drive_state(&operator, &job.id, d1, ImportDriveState::CompletedMoreInfo);
    assert_eq!(view.drives[1].logs, vec!["error".to_string(), "verbose".to_string()]);
    assert!(view.drives[0].logs.is_empty());
    assert_eq!(view.state, ImportJobState::Packaging);

    // Completing by hand is refused while parts wait; packaging names what is missing.
    let (status, _, message) = refused(operator.complete_import_job(&job.id, &ImportJobNote::default()));
    assert!(status == 409 && message.contains("package"), "{message}");
    let view = operator.package_import_job(&job.id, &ImportJobNote::default()).unwrap();
    assert_eq!(view.state, ImportJobState::Packaging, "one file is incomplete");
    let note = view.timeline.last().and_then(|e| e.message.clone()).unwrap_or_default();
    let missing = format!("missing bytes {}-{} of {}", half3, f3.len() - 1, f3.len());
    assert!(note.contains(&p3) && note.contains(&missing) && note.contains("diskprep --repair"), "{note}");
    assert!(note.contains(&format!("{p4} ({} bytes: no drive delivered it)", f4.len())), "{note}");
    assert!(note.contains("2 files of the seed"), "{note}");
    assert!(!note.contains(&p2), "{note}");
    // What a repair drive must bring, from the file list: the customer's side asks.
    let wanted: Vec<(String, u64)> = app_missing(&service, &a, &job.id).into_iter().map(|f| (f.path, f.size)).collect();
    let mut expected = vec![(p3.clone(), f3.len() as u64), (p4.clone(), f4.len() as u64)];
    expected.sort();
    assert_eq!(wanted, expected, "in path order");
    let listed: Vec<String> = sub.import_files(&job.id).unwrap().into_iter().map(|f| f.path).collect();
    assert!(listed.contains(&p2) && !listed.contains(&p3), "{listed:?}");
    // Packaging took p2's parts into p2; p3's one part still waits.
    let parts = sub.import_parts(&job.id).unwrap();
    assert_eq!(parts, vec![ImportPart { path: p3.clone(), offset: 0, length: half3 as u64 }]);

    // The repair drive: the customer's application adds it, the datacenter ingests it.
    let spec =
        ImportJobDriveSpec { drive_id: d2.into(), index: 2, fingerprint: Some(fingerprint_of(d2)), data_bytes: None };
    let view = app.add_import_drive(&job.id, &spec).unwrap();
    assert_eq!(view.drives.len(), 3);
    assert_eq!(view.drives[2].state, ImportDriveState::Specified);
    assert!(view.timeline.iter().any(|e| e.drive_id.as_deref() == Some(d2) && e.state == "specified"));
    assert_eq!(app.add_import_drive(&job.id, &spec).unwrap().drives.len(), 3, "the same drive again changes nothing");
    let clash = ImportJobDriveSpec {
        drive_id: "eeee4444eeee4444".into(),
        index: 2,
        fingerprint: Some(fingerprint_of("eeee4444eeee4444")),
        data_bytes: None,
    };
    assert_eq!(refused(app.add_import_drive(&job.id, &clash)).0, 409);
    let (status, _, message) = refused(operator.package_import_job(&job.id, &ImportJobNote::default()));
    assert!(status == 409 && message.contains(d2), "a drive not yet done: {message}");
    drive_state(&operator, &job.id, d2, ImportDriveState::Received);
    drive_state(&operator, &job.id, d2, ImportDriveState::Transferring);
    put(&operator, &job.id, d2, &p3, half3 as u64, f3.len() as u64, &f3[half3..]).unwrap();
    drive_state(&operator, &job.id, d2, ImportDriveState::Completed);
    // The repair drive forgot p4: the job still does not complete, and still takes drives.
    let view = operator.package_import_job(&job.id, &ImportJobNote::default()).unwrap();
    assert_eq!(view.state, ImportJobState::Packaging, "{:?}", view.timeline.last());
    let (status, _, message) = refused(operator.complete_import_job(&job.id, &ImportJobNote::default()));
    assert!(status == 409 && message.contains(&p4), "{message}");
    let d3 = "dddd4444dddd4444";
    let spec =
        ImportJobDriveSpec { drive_id: d3.into(), index: 3, fingerprint: Some(fingerprint_of(d3)), data_bytes: None };
    app.add_import_drive(&job.id, &spec).unwrap();
    drive_state(&operator, &job.id, d3, ImportDriveState::Received);
    drive_state(&operator, &job.id, d3, ImportDriveState::Transferring);
    put(&operator, &job.id, d3, &p4, 0, f4.len() as u64, &f4).unwrap();
    drive_state(&operator, &job.id, d3, ImportDriveState::Completed);
    let view = operator.package_import_job(&job.id, &ImportJobNote::default()).unwrap();
    assert_eq!(view.state, ImportJobState::Completed, "{:?}", view.timeline.last());
    assert!(app_missing(&service, &a, &job.id).is_empty());
    let files = sub.import_files(&job.id).unwrap();
    for (path, data) in [(&p1, &f1), (&p2, &f2), (&p3, &f3), (&p4, &f4)] {
        let found = files.iter().find(|f| &f.path == path).unwrap_or_else(|| panic!("{path} in {files:?}"));
        assert_eq!(found.size, data.len() as u64);
    }
    assert_eq!(files.len(), 5, "{files:?}");
    // A completed job takes no more drives or files.
    let late = ImportJobDriveSpec {
        drive_id: "ffff5555ffff5555".into(),
        index: 4,
        fingerprint: Some(fingerprint_of("ffff5555ffff5555")),
        data_bytes: None,
    };
    assert_eq!(refused(app.add_import_drive(&job.id, &late)).0, 409);
    assert_eq!(refused(put(&operator, &job.id, d2, "seed/late", 0, 3, b"abc")).0, 409);
}

/// The file list diskprep registers is checked line by line and against its
/// digest, kept once, and what the job's completion is checked against.
#[test]
fn a_file_list_is_registered_once_and_checked() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let app = service.app_client(&a.application);
    let job = &a.import_job_id;
    let send = |text: &str, digest: &str| {
        service.call(
            "PUT",
            &format!("/api/v1/import-jobs/{job}/file-list?digest={digest}"),
            Some(&a.subscription_token),
            &Body::Bytes(text.as_bytes().to_vec()),
        )
    };
    let files = vec![("config".to_string(), 120), (format!("data/ab/{}", "ab".repeat(32)), 5000)];
    let (text, digest) = file_list(&files);

    // Cut short at a line boundary: the digest tells.
    let first_line = text.lines().next().unwrap().to_string() + "\n";
    let reply = send(&first_line, &digest);
    assert!(reply.status == 400 && reply.text().contains("does not match its digest"), "{}", reply.text());
    // Cut inside a line, out of order, a path outside the job, not a digest.
    let reply = send(text.trim_end(), &digest);
    assert!(reply.status == 400 && reply.text().contains("newline"), "{}", reply.text());
    let reversed: String = text.lines().rev().map(|l| format!("{l}\n")).collect();
    let reply = send(&reversed, &digest);
    assert!(reply.status == 400 && reply.text().contains("out of order"), "{}", reply.text());
    let reply = send("10 logs/x\n", &file_list(&[("logs/x".to_string(), 10)]).1);
    assert!(reply.status == 400 && reply.text().contains("'logs/x'"), "{}", reply.text());
    assert_eq!(send(&text, "abc").status, 400);
    assert!(app.import_job(job).unwrap().file_list.is_none(), "refusals store nothing");
    // Completing needs a list: without one nothing can say the seed is whole.
    let missing = refused(app.missing_import_files(job));
    assert!(missing.0 == 409 && missing.2.contains("no file list"), "{missing:?}");

    let view = app.put_import_file_list(job, &digest, text.clone()).unwrap();
    let summary = view.file_list.expect("the summary");
    assert_eq!((summary.files, summary.bytes, summary.digest.as_str()), (2, 5120, &*digest));
    // The same list again is fine; another is refused; other tenants do not see the job.
    assert!(app.put_import_file_list(job, &digest, text.clone()).is_ok());
    let (other_text, other_digest) = file_list(&files[..1]);
    let (status, _, message) = refused(app.put_import_file_list(job, &other_digest, other_text.clone()));
    assert!(status == 409 && message.contains("another file list"), "{message}");
    let b = service.tenant("bravo");
    assert_eq!(refused(service.client(&b.subscription_token).put_import_file_list(job, &digest, text)).0, 404);
    let wanted: Vec<String> = app.missing_import_files(job).unwrap().into_iter().map(|f| f.path).collect();
    assert_eq!(wanted, [files[0].0.clone(), files[1].0.clone()], "nothing arrived yet");
}

/// An upload refused before its body is stored (the drive is not transferring)
/// still has its body read, up to a bound, so the station hears the refusal rather
/// than a broken pipe, and its connection stays usable. A longer body than the
/// bound is answered with `Connection: close`, so the client's next request opens
/// a new connection instead of failing on the closed one.
#[test]
fn a_refused_upload_is_heard_and_the_next_request_succeeds() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let drive = "aaaa0000aaaa0000";
    let job = received_job(&service, &a, "alpha-close", &[drive], &[]);
    let auth = format!("Bearer {}", service.operator_token);
    let upload = |path: &str, data: &[u8]| {
        let query = format!(
            "path={path}&offset=0&file_size={}&drive_id={drive}&fingerprint={}",
            data.len(),
            fingerprint_of(drive)
        );
        service.send(
            "PUT",
            &format!("/api/v1/import-jobs/{}/files?{query}", job.id),
            Some(&auth),
            &Body::Bytes(data.to_vec()),
            &[],
        )
    };
    // Large enough that an answer before the body was read used to meet a broken pipe.
    let (path, data) = data_file(1, 4 * 1024 * 1024);
    for round in 0..5 {
        let reply = upload(&path, &data);
        assert_eq!(reply.status, 409, "round {round}: the drive is not transferring: {}", reply.text());
        assert!(reply.text().contains("set it transferring"), "round {round}: {}", reply.text());
        assert_eq!(reply.connection, None, "round {round}: the body was read, the connection is kept");
        // On the same pooled client.
        let next = service.call(
            "GET",
            &format!("/api/v1/import-jobs/{}", job.id),
            Some(&service.operator_token),
            &Body::Empty,
        );
        assert_eq!(next.status, 200, "round {round}: {}", next.text());
    }
    drive_state(&service.operator(), &job.id, drive, ImportDriveState::Transferring);
    let reply = upload(&path, &data);
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert_eq!(reply.connection, None, "an upload read whole keeps its connection");
}

#[test]
fn parts_that_do_not_hash_to_their_name_are_dropped_and_named() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let operator = service.operator();
    let d0 = "aaaa0000aaaa0000";
    let (path, data) = data_file(4, 10_000);
    let job = received_job(&service, &a, "alpha-bad", &[d0], &[(path.clone(), 10_000)]);
    drive_state(&operator, &job.id, d0, ImportDriveState::Transferring);
    put(&operator, &job.id, d0, &path, 0, 10_000, &data[..4000]).unwrap();
    put(&operator, &job.id, d0, &path, 4000, 10_000, &bytes(99, 6000)).unwrap();
    // Parts of one file agree on its size.
    assert_eq!(refused(put(&operator, &job.id, d0, &path, 4000, 9_999, &data[4000..9999])).0, 409);
    drive_state(&operator, &job.id, d0, ImportDriveState::Completed);
    let view = operator.package_import_job(&job.id, &ImportJobNote::default()).unwrap();
    assert_eq!(view.state, ImportJobState::Packaging);
    let note = view.timeline.last().and_then(|e| e.message.clone()).unwrap_or_default();
    assert!(note.contains(&path) && note.contains("do not hash to its name"), "{note}");
    assert!(service.client(&a.subscription_token).import_files(&job.id).unwrap().is_empty());
}

// ------------------------------------------------------------------ adoption

/// A completed import job of `tenant` holding `files` (path, bytes) plus `config`.
fn completed_job(
    service: &Service,
    tenant: &Tenant,
    name: &str,
    config: &[u8],
    files: &[(String, Vec<u8>)],
) -> ImportJobView {
    let operator = service.operator();
    let drive = "abcdabcdabcdabcd";
    let list: Vec<(String, u64)> = std::iter::once(("config".to_string(), config.len() as u64))
        .chain(files.iter().map(|(path, data)| (path.clone(), data.len() as u64)))
        .collect();
    let job = received_job(service, tenant, name, &[drive], &list);
    drive_state(&operator, &job.id, drive, ImportDriveState::Transferring);
    put(&operator, &job.id, drive, "config", 0, config.len() as u64, config).unwrap();
    for (path, data) in files {
        put(&operator, &job.id, drive, path, 0, data.len() as u64, data).unwrap();
    }
    drive_state(&operator, &job.id, drive, ImportDriveState::Completed);
    operator.put_drive_log(&job.id, drive, "verbose", "all good\n").unwrap();
    let view = operator.package_import_job(&job.id, &ImportJobNote::default()).unwrap();
    assert_eq!(view.state, ImportJobState::Completed);
    view
}

fn adoption_copies_the_seed_into_the_vault(service: &Service) {
    let a = service.tenant("alpha");
    let b = service.tenant("bravo");
    let machine = service.client(&a.machine_token);
    let (p1, f1) = data_file(11, 70_000);
    let (p2, f2) = data_file(12, 6 * 1024 * 1024);
    let (n3, f3) = {
        let data = bytes(13, 900);
        (content_name(&data), data)
    };
    let p3 = format!("snapshots/{n3}");
    let seed = vec![(p1.clone(), f1.clone()), (p2.clone(), f2.clone()), (p3.clone(), f3.clone())];

    // Not yet completed: the machine is told to wait.
    let (status, _, message) = refused(machine.adopt_seed(&a.machine_id, &a.import_job_name));
    assert!(
        status == 409 && message.contains("is creating") && message.contains("wait for it to complete"),
        "{message}"
    );

    let job = completed_job(service, &a, "alpha-seed2", &a.config_bytes, &seed);
    // Only the machine itself; not the subscription, not another tenant's machine.
    assert!(matches!(refused(service.client(&a.subscription_token).adopt_seed(&a.machine_id, &job.name)).0, 403 | 404));
    assert_eq!(refused(service.client(&b.machine_token).adopt_seed(&b.machine_id, &job.name)).0, 404);
    assert_eq!(refused(machine.adopt_seed(&a.machine_id, "no-such-job")).0, 404);

    // A storage quota the seed would pass refuses it before anything is copied.
    let quota_path = format!("/api/v1/subscriptions/{}/quota", a.subscription_id);
    let set_quota = |quota: serde_json::Value| {
        let body = Body::Json(json!({ "quota_bytes": quota }));
        assert_eq!(service.call("PUT", &quota_path, Some(&service.operator_token), &body).status, 200);
    };
    set_quota(json!(1_000_000));
    let (status, _, message) = refused(machine.adopt_seed(&a.machine_id, &job.name));
    assert!(status == 507 && message.contains("storage quota"), "{message}");
    assert_eq!(machine.list_files(&a.machine_id, "data").unwrap().len(), 1, "nothing of the seed was copied");
    set_quota(serde_json::Value::Null);

    let adoption = machine.adopt_seed(&a.machine_id, &job.name).unwrap();
    let total = a.config_bytes.len() + f1.len() + f2.len() + f3.len();
    assert_eq!(
        adoption,
        Adoption { import_job: job.name.clone(), files: 4, bytes: total as u64, already_adopted: false }
    );
    // The machine reads the seed through its repository, byte for byte; its own file is still there.
    let name1 = p1.rsplit('/').next().unwrap();
    assert_eq!(machine.get_file(&a.machine_id, "data", name1, None).unwrap().as_ref(), f1.as_slice());
    let name2 = p2.rsplit('/').next().unwrap();
    assert_eq!(machine.file_size(&a.machine_id, "data", name2).unwrap(), Some(f2.len() as u64));
    assert_eq!(machine.get_file(&a.machine_id, "snapshots", &n3, None).unwrap().as_ref(), f3.as_slice());
    assert_eq!(machine.get_file(&a.machine_id, "data", &a.file_name, None).unwrap().as_ref(), a.file_bytes.as_slice());
    assert_eq!(machine.list_files(&a.machine_id, "data").unwrap().len(), 3);
    // The logs stay in the container.
    assert!(machine.list_files(&a.machine_id, "logs").is_err());

    let again = machine.adopt_seed(&a.machine_id, &job.name).unwrap();
    assert_eq!(again, Adoption { already_adopted: true, ..adoption });

    // A seed of another repository is refused whole.
    let other = completed_job(service, &a, "alpha-foreign", b"{\"version\":2,\"id\":\"someone else\"}", &seed[..1]);
    let (status, _, message) = refused(machine.adopt_seed(&a.machine_id, &other.name));
    assert!(status == 409 && message.contains("belongs to another repository"), "{message}");
}

#[test]
fn adoption_copies_the_seed_into_the_vault_on_a_folder() {
    adoption_copies_the_seed_into_the_vault(&Service::start());
}

#[test]
fn adoption_copies_the_seed_into_the_vault_on_azurite() {
    let azurite = offsite_testbed::Azurite::start().expect("Azurite for tests (run scripts/test)");
    azurite.create_container("vaults").expect("a container");
    let options = azurite.object_store_env().into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
    adoption_copies_the_seed_into_the_vault(&Service::start_on_storage("az://vaults/offsite", options));
}

// ------------------------------------------------------------------ metrics

/// The value of the series `name` (with exactly these labels, in the order the
/// exporter writes them) in a Prometheus text page.
fn series(page: &str, name: &str) -> Option<f64> {
    page.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn metrics_count_import_jobs_and_drives_by_state_and_the_ingested_bytes() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let operator = service.operator();
    let scrape = || service.call("GET", "/metrics", Some(&service.operator_token), &Body::Empty).text();
    let before = scrape();
    let gauge = |page: &str, name: &str| series(page, name).unwrap_or_else(|| panic!("no {name} in:\n{page}"));
    assert_eq!(gauge(&before, "offsite_import_jobs{state=\"received\"}"), 0.0);
    assert_eq!(gauge(&before, "offsite_import_drives{state=\"transferring\"}"), 0.0);

    let (d0, d1) = ("aaaa0000aaaa0000", "bbbb1111bbbb1111");
    let job = received_job(&service, &a, "alpha-metrics", &[d0, d1], &[]);
    drive_state(&operator, &job.id, d0, ImportDriveState::Transferring);
    let (path, data) = data_file(7, 250_000);
    put(&operator, &job.id, d0, &path, 0, data.len() as u64, &data).unwrap();

    let after = scrape();
    assert_eq!(gauge(&after, "offsite_import_jobs{state=\"transferring\"}"), 1.0, "{after}");
    assert_eq!(gauge(&after, "offsite_import_jobs{state=\"received\"}"), 0.0);
    assert_eq!(gauge(&after, "offsite_import_drives{state=\"transferring\"}"), 1.0);
    assert_eq!(gauge(&after, "offsite_import_drives{state=\"received\"}"), 1.0);
    // Counters are the process's: other tests of this binary may add to them.
    let ingested =
        gauge(&after, "offsite_ingest_bytes_total") - series(&before, "offsite_ingest_bytes_total").unwrap_or(0.0);
    assert!(ingested >= data.len() as f64, "{ingested} bytes ingested, {} uploaded", data.len());
    assert!(gauge(&after, "offsite_import_file_upload_seconds_count") >= 1.0, "{after}");
    let route = "route=\"/api/v1/import-jobs/{import_job_id}/files\"";
    assert!(after.lines().any(|l| l.starts_with("offsite_http_requests_total") && l.contains(route)), "{after}");
}

/// A signed application request is accepted once, and only with the body it was
/// signed with: a replay (the same header again), or the header with another
/// body, is refused, and nothing is changed by either.
#[test]
fn a_signed_request_counts_once_and_only_with_its_body() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let path = format!("/api/v1/import-jobs/{}/shipping", a.import_job_id);
    let shipping = |tracking: &str| {
        json!({ "carrier": "UPS", "tracking_number": tracking, "drive_count": 1, "ship_date": "2026-11-02",
                "return_address": "Ann Example\n2 Return Lane", "contact": "ann@example.com" })
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let body = Body::Json(shipping("1Z0001"));
    let header = common::sign_body(&a.application, "PUT", &path, now, &body.bytes());
    let first = service.send("PUT", &path, Some(&header), &body, &[]);
    assert_eq!(first.status, 200, "{}", first.text());
    let replayed = service.send("PUT", &path, Some(&header), &body, &[]);
    assert_eq!(replayed.status, 401, "{}", replayed.text());
    assert!(replayed.text().contains("replay"), "{}", replayed.text());

    // A fresh signature over one body, sent with another.
    let signed_for = Body::Json(shipping("1Z0002"));
    let header = common::sign_body(&a.application, "PUT", &path, now, &signed_for.bytes());
    let swapped = service.send("PUT", &path, Some(&header), &Body::Json(shipping("1Z9999")), &[]);
    assert_eq!(swapped.status, 400, "{}", swapped.text());
    assert!(swapped.text().contains("signature covers"), "{}", swapped.text());
    let job = service.client(&a.subscription_token).import_job(&a.import_job_id).unwrap();
    assert_eq!(job.shipping.map(|s| s.tracking_number), Some("1Z0001".to_string()), "the swapped body changed nothing");
}

/// A certificate signs only within its validity, judged on the service's clock.
#[test]
fn a_certificate_signs_nothing_outside_its_validity() {
    let mut service = Service::start();
    let a = service.tenant("alpha");
    let path = "/api/v1/datacenters";
    // certgen's certificates are valid for two years from when they were made.
    for (offset, words) in [(-86_400, "not valid before"), (3 * 365 * 86_400, "expired")] {
        service = service.restart_with_clock_offset(offset);
        let at = time::OffsetDateTime::now_utc().unix_timestamp() + offset;
        let reply = service.send("GET", path, Some(&sign(&a.application, "GET", path, at)), &Body::Empty, &[]);
        assert_eq!(reply.status, 401, "{}", reply.text());
        assert!(reply.text().contains(words) && reply.text().contains(&a.application.thumbprint), "{}", reply.text());
    }
}

/// Only the drives registered with a job bring files into its container, and
/// only with the header diskprep registered for them: a drive registered without
/// a fingerprint is refused at once, and so is an upload from a drive the job
/// does not have, without the header's fingerprint, or with another header's.
#[test]
fn files_come_only_from_registered_drives_with_their_header() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let app = service.app_client(&a.application);
    let (d0, stranger) = ("aaaa1111aaaa1111", "dddd3333dddd3333");

    // Registering a drive without its fingerprint is refused, naming the drive.
    let mut job = CreateImportJob {
        name: "alpha-unprinted".into(),
        storage_account: a.storage_account_name.clone(),
        container: a.container_name.clone(),
        datacenter: a.datacenter_name.clone(),
        drives: vec![ImportJobDriveSpec { drive_id: d0.into(), index: 0, fingerprint: None, data_bytes: None }],
    };
    let (status, _, message) = refused(app.create_import_job(&a.subscription_id, &job));
    assert!(status == 400 && message.contains(d0) && message.contains("offsite diskprep"), "{message}");
    let spec = ImportJobDriveSpec { drive_id: stranger.into(), index: 1, fingerprint: None, data_bytes: None };
    let (status, _, message) = refused(app.add_import_drive(&a.import_job_id, &spec));
    assert!(status == 400 && message.contains(stranger), "{message}");
    job.drives[0].fingerprint = Some(fingerprint_of(d0));
    let job = app.create_import_job(&a.subscription_id, &job).unwrap();
    register_file_list(&app, &job.id, &[("seed/x".to_string(), 3)]);
    app.set_import_job_shipping(&job.id, &shipping("TRK-unprinted", 1)).unwrap();

    // The datacenter's station does the rest with its own credential.
    let station_token = service.operator().issue_station_credential(&a.datacenter_id, None).unwrap().station_credential;
    let station = service.client(&station_token);
    station.receive_import_job(&job.id, &ImportJobNote::default()).unwrap();
    drive_state(&station, &job.id, d0, ImportDriveState::Transferring);

    let (status, _, message) = refused(put(&station, &job.id, stranger, "seed/x", 0, 3, b"abc"));
    assert!(status == 404 && message.contains(stranger) && message.contains("not registered"), "{message}");
    let forged =
        offsite_api::client::SourceDrive { drive_id: d0.into(), fingerprint: fingerprint_of("another header") };
    let body = futures::stream::iter([Ok(bytes::Bytes::from_static(b"abc"))]);
    let (status, _, message) = refused(station.put_import_file(&job.id, &forged, "seed/x", 0, 3, body, 3));
    assert!(status == 409 && message.contains(d0) && message.contains("not the one diskprep registered"), "{message}");
    let reply = service.call(
        "PUT",
        &format!("/api/v1/import-jobs/{}/files?path=seed/x&offset=0&file_size=3&drive_id={d0}", job.id),
        Some(&station_token),
        &Body::Bytes(b"abc".to_vec()),
    );
    let text = reply.text();
    assert!(reply.status == 400 && text.contains(d0) && text.contains("fingerprint"), "{text}");
    assert!(station.import_files(&job.id).unwrap().is_empty(), "nothing refused was stored");

    // The registered drive with its header brings the file.
    put(&station, &job.id, d0, "seed/x", 0, 3, b"abc").unwrap();
    let files = station.import_files(&job.id).unwrap();
    assert_eq!(files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), ["seed/x"]);
}

// ------------------------------------------------------------------ packaging on several replicas

/// A received job whose one drive delivered `files` in two parts each and is
/// done, on the first of several replicas; the datacenter's station credential.
fn delivered_job(first: &Service, tenant: &Tenant, name: &str) -> (ImportJobView, String) {
    let station = first.operator().issue_station_credential(&tenant.datacenter_id, None).unwrap().station_credential;
    let drive = "abcdabcdabcdabcd";
    let files: Vec<(String, Vec<u8>)> = (0..12).map(|n| data_file(300 + n, 300_000)).collect();
    let list: Vec<(String, u64)> = files.iter().map(|(path, data)| (path.clone(), data.len() as u64)).collect();
    let job = received_job(first, tenant, name, &[drive], &list);
    let client = first.client(&station);
    drive_state(&client, &job.id, drive, ImportDriveState::Transferring);
    for (path, data) in &files {
        let (head, tail) = data.split_at(data.len() / 2);
        put(&client, &job.id, drive, path, 0, data.len() as u64, head).unwrap();
        put(&client, &job.id, drive, path, head.len() as u64, data.len() as u64, tail).unwrap();
    }
    drive_state(&client, &job.id, drive, ImportDriveState::Completed);
    (job, station)
}

/// The job's `completed` entries, and whether any entry says files are missing.
fn completions(view: &ImportJobView) -> (usize, bool) {
    let completed = view.timeline.iter().filter(|e| e.drive_id.is_none() && e.state == "completed").count();
    let missing =
        view.timeline.iter().any(|e| e.message.as_deref().is_some_and(|m| m.contains("not in the container")));
    (completed, missing)
}

/// Two stations (or a retried request) package one job on two replicas at once:
/// one request packages it, the other waits and answers the same outcome. Both
/// answer `completed`; the timeline has one completion and no false "missing".
#[test]
fn two_replicas_packaging_one_job_at_once_package_it_once() {
    let shared = SharedBackends::start();
    let first = shared.replica(0, false);
    let a = first.tenant("alpha");
    let (job, station) = delivered_job(&first, &a, "alpha-twice");
    let second = shared.replica(0, false);
    let start = std::sync::Barrier::new(2);
    let answers: Vec<_> = std::thread::scope(|scope| {
        let running: Vec<_> = [&first, &second]
            .into_iter()
            .map(|replica| {
                let (client, start, job_id) = (replica.client(&station), &start, &job.id);
                scope.spawn(move || {
                    client.whoami().expect("the station is known");
                    start.wait();
                    client.package_import_job(job_id, &ImportJobNote::default())
                })
            })
            .collect();
        running.into_iter().map(|r| r.join().unwrap()).collect()
    });
    for answer in &answers {
        let view = answer.as_ref().expect("both requests answer");
        assert_eq!(view.state, ImportJobState::Completed, "{:?}", view.timeline);
        assert_eq!(completions(view), (1, false), "{:?}", view.timeline);
    }
}

/// A replica that claimed a job's packaging died: a request on another replica
/// waits while the claim could still be renewed, and takes it over once it has
/// lapsed (here: a replica whose clock is past the claim's age limit); the
/// waiting request then answers that outcome.
#[test]
fn a_packaging_whose_replica_died_is_taken_over_once_its_claim_lapses() {
    use offsite_server::db::import_jobs::{PackagingClaimed, PACKAGING_CLAIM_SECONDS};
    let shared = SharedBackends::start();
    let first = shared.replica(0, false);
    let a = first.tenant("alpha");
    let (job, station) = delivered_job(&first, &a, "alpha-orphan");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dead = rt.block_on(async {
        let db = offsite_server::db::Db::connect(shared.database_url(), offsite_server::clock::Clock::new(0)).await;
        db.unwrap().claim_packaging(&job.id, "pkg_of_a_dead_replica").await.unwrap()
    });
    assert_eq!(dead, Some(PackagingClaimed::Free));
    std::thread::scope(|scope| {
        let waiting = scope.spawn(|| first.client(&station).package_import_job(&job.id, &ImportJobNote::default()));
        std::thread::sleep(Duration::from_secs(2));
        assert!(!waiting.is_finished(), "a live claim is waited for");
        let later = shared.replica(PACKAGING_CLAIM_SECONDS + 1, false);
        let view = later.client(&station).package_import_job(&job.id, &ImportJobNote::default()).unwrap();
        assert_eq!(view.state, ImportJobState::Completed, "{:?}", view.timeline);
        let waited = waiting.join().unwrap().expect("the waiting request answers");
        assert_eq!(waited.state, ImportJobState::Completed);
        assert_eq!(completions(&waited), (1, false), "{:?}", waited.timeline);
    });
}

/// The machine's adoption asked on two replicas at once (a retry after a lost
/// answer lands elsewhere): both copy what is missing, one records the
/// adoption, the other answers that record; the seed is served whole.
#[test]
fn an_adoption_asked_on_two_replicas_at_once_is_recorded_once() {
    let shared = SharedBackends::start();
    let first = shared.replica(0, false);
    let a = first.tenant("alpha");
    let seed: Vec<(String, Vec<u8>)> = (0..10).map(|n| data_file(500 + n, 400_000)).collect();
    let job = completed_job(&first, &a, "alpha-adopted-twice", &a.config_bytes, &seed);
    let second = shared.replica(0, false);
    let start = std::sync::Barrier::new(2);
    let answers: Vec<Adoption> = std::thread::scope(|scope| {
        let running: Vec<_> = [&first, &second]
            .into_iter()
            .map(|replica| {
                let (machine, start, a, job) = (replica.client(&a.machine_token), &start, &a, &job);
                scope.spawn(move || {
                    machine.whoami().expect("the machine is known");
                    start.wait();
                    machine.adopt_seed(&a.machine_id, &job.name).expect("both adoptions answer")
                })
            })
            .collect();
        running.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let fresh = answers.iter().filter(|answer| !answer.already_adopted).count();
    assert_eq!(fresh, 1, "one adoption recorded, the other answered with it: {answers:?}");
    assert_eq!(answers[0].files, answers[1].files);
    let machine = second.client(&a.machine_token);
    for (path, data) in &seed {
        let name = path.rsplit('/').next().unwrap();
        assert_eq!(&machine.get_file(&a.machine_id, "data", name, None).unwrap()[..], &data[..], "{path}");
    }
}
