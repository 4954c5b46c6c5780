//! Per-subscription storage quotas, through the API: set by the operator only,
//! counting every stored repository file of the subscription's machines (soft-
//! deleted ones too), refusing an upload that does not fit with 507 before
//! anything is stored, and never touching another tenant.

mod common;

use common::{content_name, Body, Reply, Service};
use serde_json::{json, Value};

fn snippet(reply: &Reply) -> String {
    format!("HTTP {} {:.400}", reply.status, reply.text())
}

/// Bytes no other file of these tests has.
fn noise(seed: u32, len: usize) -> Vec<u8> {
    (0..len as u32).map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 11) as u8).collect()
}

fn upload(service: &Service, machine_id: &str, token: &str, bytes: &[u8]) -> (String, Reply) {
    let name = content_name(bytes);
    let path = format!("/api/v1/machines/{machine_id}/repository/data/{name}");
    (name, service.call("PUT", &path, Some(token), &Body::Bytes(bytes.to_vec())))
}

#[test]
fn a_subscription_over_its_quota_gets_507_and_other_tenants_keep_uploading() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let b = service.tenant("bravo");
    let operator = service.operator_token.clone();
    let quota_path = format!("/api/v1/subscriptions/{}/quota", a.subscription_id);
    let quota_of = |token: &str| -> Value { service.get_json(&quota_path, token) };

    // What counts: the config and the pack every tenant of these tests stores.
    let start = quota_of(&a.subscription_token);
    assert!(start["quota_bytes"].is_null(), "{start}");
    let used = start["used_bytes"].as_u64().expect("used bytes");
    assert_eq!(used, (a.file_bytes.len() + a.config_bytes.len()) as u64, "{start}");

    // Only the operator sets it; another tenant cannot even see A's.
    let set = |token: &str, quota: Value| {
        service.call("PUT", &quota_path, Some(token), &Body::Json(json!({"quota_bytes": quota})))
    };
    assert_eq!(set(&a.subscription_token, json!(1)).status, 403);
    assert_eq!(set(&b.subscription_token, json!(1)).status, 403);
    assert_eq!(service.call("GET", &quota_path, Some(&b.subscription_token), &Body::Empty).status, 404);
    let reply = set(&operator, json!(used + 30_000));
    assert_eq!(reply.status, 200, "{}", snippet(&reply));
    assert_eq!(reply.json()["quota_bytes"], used + 30_000);

    // 20 000 bytes fit; 20 000 more do not, and nothing of them is stored.
    let (first, reply) = upload(&service, &a.machine_id, &a.machine_token, &noise(1, 20_000));
    assert_eq!(reply.status, 201, "{}", snippet(&reply));
    let refused_bytes = noise(2, 20_000);
    let (refused, reply) = upload(&service, &a.machine_id, &a.machine_token, &refused_bytes);
    assert_eq!(reply.status, 507, "{}", snippet(&reply));
    let error = reply.error_body().expect("a JSON error");
    assert_eq!(error.code, "storage_full");
    for part in [
        "subscription alpha",
        a.subscription_id.as_str(),
        "storage quota",
        &format!("({} bytes)", used + 30_000),
        "nothing was stored",
        &format!("offsite admin subscription set-quota {} BYTES", a.subscription_id),
    ] {
        assert!(error.error.contains(part), "the refusal names {part:?}: {}", error.error);
    }
    let path = format!("/api/v1/machines/{}/repository/data/{refused}", a.machine_id);
    assert_eq!(service.call("GET", &path, Some(&a.machine_token), &Body::Empty).status, 404, "nothing stored");
    assert_eq!(quota_of(&a.subscription_token)["used_bytes"], used + 20_000);

    // Another tenant is not affected.
    for seed in 3..6 {
        let (_, reply) = upload(&service, &b.machine_id, &b.machine_token, &noise(seed, 20_000));
        assert_eq!(reply.status, 201, "B keeps uploading: {}", snippet(&reply));
    }
    // A file A stores already takes no more room: a retried upload is accepted.
    let (_, reply) = upload(&service, &a.machine_id, &a.machine_token, &noise(1, 20_000));
    assert_eq!(reply.status, 201, "{}", snippet(&reply));

    // A soft-deleted file still occupies the storage: it counts until purged.
    let removed = format!("/api/v1/machines/{}/repository/data/{first}", a.machine_id);
    assert_eq!(service.call("DELETE", &removed, Some(&a.machine_token), &Body::Empty).status, 204);
    let after = quota_of(&a.subscription_token);
    assert_eq!(
        (after["used_bytes"].as_u64(), after["soft_deleted_bytes"].as_u64()),
        (Some(used + 20_000), Some(20_000))
    );
    let (_, reply) = upload(&service, &a.machine_id, &a.machine_token, &refused_bytes);
    assert_eq!(reply.status, 507, "{}", snippet(&reply));
    // Its same bytes again revive it, taking no new room.
    let (_, reply) = upload(&service, &a.machine_id, &a.machine_token, &noise(1, 20_000));
    assert_eq!(reply.status, 201, "{}", snippet(&reply));

    // An upload of undeclared length (chunked) is counted as it arrives and cut
    // off once it passes the quota, unstored.
    let chunked: Vec<u8> = noise(7, 40_000);
    let path = format!("/api/v1/machines/{}/repository/data/{}", a.machine_id, content_name(&chunked));
    let auth = format!("Bearer {}", a.machine_token);
    let reply = service.try_send("PUT", &path, Some(&auth), &Body::Chunked(chunked.clone()), &[]);
    // The service may answer before reading the whole body and close the
    // connection; when the answer arrives, it is the quota's.
    match reply {
        Ok(reply) => assert_eq!(reply.status, 507, "{}", snippet(&reply)),
        Err(broken) => eprintln!("the chunked upload's answer was lost: {broken}"),
    }
    assert_eq!(service.call("GET", &path, Some(&a.machine_token), &Body::Empty).status, 404, "nothing stored");
    assert_eq!(quota_of(&a.subscription_token)["used_bytes"], used + 20_000);

    // Lifted: A uploads again.
    let reply = set(&operator, Value::Null);
    assert_eq!(reply.status, 200, "{}", snippet(&reply));
    assert!(reply.json()["quota_bytes"].is_null());
    let (_, reply) = upload(&service, &a.machine_id, &a.machine_token, &refused_bytes);
    assert_eq!(reply.status, 201, "{}", snippet(&reply));
}
