//! Credentials and request bodies at the edge of the service: single-use vault
//! credentials, removed machines, secrets at rest, malformed JSON, and repository
//! uploads checked against their content-addressed names.

mod common;

use bytes::Bytes;
use common::{content_name, secret_of, Body, Reply, Service, Tenant};
use serde_json::json;

fn api(path: impl std::fmt::Display) -> String {
    format!("/api/v1{path}")
}

fn snippet(reply: &Reply) -> String {
    format!("HTTP {} {:?} {:.200}", reply.status, reply.content_type, reply.text())
}

/// A JSON error body, or a panic naming what came instead.
fn error_of(reply: &Reply) -> offsite_api::types::ErrorBody {
    reply.error_body().unwrap_or_else(|| panic!("not a JSON error body: {}", snippet(reply)))
}

fn register(service: &Service, secret: &str, name: &str) -> Reply {
    let body = Body::Json(json!({"name": name, "hostname": format!("{name}.example")}));
    service.call("POST", &api("/register"), Some(secret), &body)
}

#[test]
fn vault_credentials_register_one_machine_once() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let secret =
        service.client(&a.subscription_token).vault_credentials(&a.vault_id, Some(1)).unwrap().registration_secret;

    let first = register(&service, &secret, "web02");
    assert_eq!(first.status, 200, "{}", snippet(&first));
    let machine_id = first.json()["machine"]["id"].as_str().unwrap().to_string();

    for name in ["web02", "web03"] {
        let again = register(&service, &secret, name);
        assert_eq!(again.status, 401, "{}", snippet(&again));
        let error = error_of(&again);
        assert!(error.error.contains("already used"), "{}", error.error);
        assert_eq!(error.code, "unauthorized");
    }
    // One machine came of it.
    let machines = service.get_json(&api(format!("/vaults/{}/machines", a.vault_id)), &a.subscription_token);
    let names: Vec<&str> = machines.as_array().unwrap().iter().filter_map(|m| m["name"].as_str()).collect();
    assert_eq!(names.iter().filter(|n| **n == "web02").count(), 1, "{machines}");
    assert!(!names.contains(&"web03"), "{machines}");
    assert!(machines.to_string().contains(&machine_id));
}

#[test]
fn a_removed_machine_is_locked_out_and_its_points_stay() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let machine = Some(a.machine_token.as_str());
    assert_eq!(service.call("GET", &api("/whoami"), machine, &Body::Empty).status, 200);

    let removed =
        service.call("DELETE", &api(format!("/machines/{}", a.machine_id)), Some(&a.subscription_token), &Body::Empty);
    assert_eq!(removed.status, 200, "{}", snippet(&removed));
    assert!(removed.json()["removed"].is_string(), "the answer says when: {}", removed.text());

    for path in [
        api("/whoami"),
        api(format!("/machines/{}/recovery-points", a.machine_id)),
        api(format!("/machines/{}/repository/data/{}", a.machine_id, a.file_name)),
    ] {
        let reply = service.call("GET", &path, machine, &Body::Empty);
        assert_eq!(reply.status, 401, "GET {path}: {}", snippet(&reply));
        let error = error_of(&reply);
        assert!(error.error.contains("removed"), "GET {path}: {}", error.error);
    }
    // Nor may it write: neither its repository nor its job reports.
    let bytes = b"written after removal".to_vec();
    let writes = [
        (
            "PUT",
            api(format!("/machines/{}/repository/data/{}", a.machine_id, content_name(&bytes))),
            Body::Bytes(bytes),
        ),
        ("POST", api(format!("/machines/{}/jobs", a.machine_id)), Body::Json(json!(common::running_backup()))),
    ];
    for (method, path, body) in writes {
        let reply = service.call(method, &path, machine, &body);
        assert_eq!(reply.status, 401, "{method} {path}: {}", snippet(&reply));
        assert!(error_of(&reply).error.contains("removed"), "{method} {path}: {}", snippet(&reply));
    }
    // The typed client shows the same sentence.
    let err = service.client(&a.machine_token).whoami().unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert!(err.to_string().contains("removed"), "{err}");

    // Its subscription still sees the machine, marked removed, and its recovery points.
    let listed = service.get_json(&api(format!("/machines/{}", a.machine_id)), &a.subscription_token);
    assert!(listed["removed"].is_string(), "{listed}");
    let points = service.client(&a.subscription_token).recovery_points(&a.machine_id).unwrap();
    assert_eq!(points, a.recovery_points);
}

#[test]
fn a_machine_cannot_remove_itself() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let reply =
        service.call("DELETE", &api(format!("/machines/{}", a.machine_id)), Some(&a.machine_token), &Body::Empty);
    assert_eq!(reply.status, 403, "{}", snippet(&reply));
    assert_eq!(error_of(&reply).code, "forbidden");
    // Nothing happened: it still works and is not marked removed.
    let me = service.get_json(&api(format!("/machines/{}", a.machine_id)), &a.machine_token);
    assert!(me["removed"].is_null(), "{me}");
}

/// The database holds hashes of secrets, never the secrets: a copy of it gives no
/// working credential.
#[test]
fn secrets_are_not_stored_in_clear() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let b = service.tenant("bravo");
    let used = service.client(&a.subscription_token).vault_credentials(&a.vault_id, None).unwrap().registration_secret;
    assert_eq!(register(&service, &used, "web09").status, 200);

    // SQLite keeps recent writes in its write-ahead log: read every file of the database.
    let mut stored = Vec::new();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(service.data_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with("offsite.db") {
            stored.extend(std::fs::read(&path).unwrap());
            files.push(path);
        }
    }
    assert!(!files.is_empty(), "no database files in {}", service.data_dir().display());
    let holds = |needle: &str| stored.windows(needle.len()).any(|w| w == needle.as_bytes());
    // The ids are there (so this is the right database, write-ahead log included)…
    for id in [&a.machine_id, &b.subscription_id, &a.job_id, &b.storage_account_id] {
        assert!(holds(id), "{id} is not in {files:?}: are these the database files?");
    }
    // …and no secret is.
    let tenants: [&Tenant; 2] = [&a, &b];
    let mut secrets = vec![("operator", service.operator_token.clone()), ("used vault credentials", used)];
    for t in tenants {
        secrets.push(("subscription", t.subscription_token.clone()));
        secrets.push(("machine", t.machine_token.clone()));
        secrets.push(("unused vault credentials", t.spare_registration.clone()));
    }
    for (what, token) in &secrets {
        let secret = secret_of(token);
        assert!(secret.len() >= 32, "a {what} secret is only {} characters", secret.len());
        assert!(!holds(secret), "the {what} secret is in the database in clear");
        assert!(!holds(&secret[..32]), "half of the {what} secret is in the database in clear");
    }
}

/// Bodies that are not the JSON an endpoint takes are refused with the service's
/// own JSON error body, like every other refusal.
#[test]
fn malformed_json_bodies_get_a_json_error() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let path = api(format!("/subscriptions/{}/vaults", a.subscription_id));
    let cases: Vec<(&str, Body)> = vec![
        ("a number for a name", Body::Json(json!({"name": 5}))),
        ("a missing field", Body::Json(json!({}))),
        ("an array", Body::Json(json!(["main"]))),
        ("not JSON", Body::Raw("application/json", b"not json".to_vec())),
        ("truncated JSON", Body::Raw("application/json", br#"{"name": "ma"#.to_vec())),
        ("no body", Body::Raw("application/json", Vec::new())),
        ("another content type", Body::Raw("text/plain", br#"{"name": "plain"}"#.to_vec())),
        ("no content type", Body::Raw("", br#"{"name": "untyped"}"#.to_vec())),
    ];
    for (what, body) in cases {
        let reply = service.call("POST", &path, Some(&a.subscription_token), &body);
        assert!((400..500).contains(&reply.status), "{what}: {}", snippet(&reply));
        let error = error_of(&reply);
        assert!(!error.error.is_empty() && !error.code.is_empty(), "{what}: {error:?}");
    }
    // A body over the service's limit for JSON. The service answers before reading
    // it all and closes the connection, so the client may lose the answer while it
    // still sends: some of the tries must get it, and every answer is a 413.
    let huge = Body::Json(json!({"name": "x".repeat(2 << 20)}));
    let authorization = format!("Bearer {}", a.subscription_token);
    let answers: Vec<Reply> =
        (0..5).filter_map(|_| service.try_send("POST", &path, Some(&authorization), &huge, &[]).ok()).collect();
    assert!(!answers.is_empty(), "no answer to an oversized body in 5 tries");
    for reply in &answers {
        assert_eq!(reply.status, 413, "{}", snippet(reply));
        error_of(reply);
    }
    // A name of the wrong shape is the handler's own check.
    let reply = service.call("POST", &path, Some(&a.subscription_token), &Body::Json(json!({"name": "no spaces"})));
    assert_eq!(reply.status, 400, "{}", snippet(&reply));
    assert!(error_of(&reply).error.contains("not a valid vault name"));
    // None of it made a vault.
    let vaults = service.client(&a.subscription_token).list_vaults(&a.subscription_id).unwrap();
    assert_eq!(vaults.len(), 1, "{vaults:?}");
}

/// Every operation that takes JSON, given something else by a caller allowed to
/// call it, answers a 4xx JSON error (and registration is not used up by it).
/// Every documented operation that takes JSON: (method, template, path with A's
/// ids, the credential allowed to call it).
/// Operations on a tenant's resources that take JSON from the operator only.
const OPERATOR_JSON: &[&str] = &[
    "/api/v1/subscriptions/{subscription_id}/quota",
    "/api/v1/protection-requests/{request_id}/approve",
    "/api/v1/protection-requests/{request_id}/reject",
];

fn json_operations(service: &Service, a: &Tenant) -> Vec<(String, String, String, String)> {
    let doc = service.openapi();
    let mut found = Vec::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if operation["requestBody"]["content"].get("application/json").is_none() {
                continue;
            }
            let token = if template == "/api/v1/register" {
                &a.spare_registration
            } else if ["/api/v1/subscriptions", "/api/v1/datacenters"].contains(&template.as_str())
                || template.starts_with("/api/v1/portal-users")
                || template.starts_with("/api/v1/datacenters/")
                || OPERATOR_JSON.contains(&template.as_str())
            {
                &service.operator_token
            } else if template.starts_with("/api/v1/machines/") {
                &a.machine_token
            } else {
                &a.subscription_token
            };
            let path = template
                .replace("{subscription_id}", &a.subscription_id)
                .replace("{vault_id}", &a.vault_id)
                .replace("{machine_id}", &a.machine_id)
                .replace("{storage_account_id}", &a.storage_account_id)
                .replace("{job_id}", &a.job_id)
                .replace("{import_job_id}", &a.import_job_id)
                .replace("{drive_id}", &a.drive_id)
                .replace("{datacenter_id}", &a.datacenter_id)
                .replace("{user_id}", &a.portal_user_id)
                .replace("{request_id}", &a.protection_request_id)
                .replace("{export_job_id}", &a.export_job_id);
            assert!(!path.contains('{'), "{method} {template}: a path parameter this test does not fill");
            found.push((method.to_uppercase(), template.clone(), path, token.clone()));
        }
    }
    found
}

#[test]
fn every_json_endpoint_answers_malformed_bodies_with_a_json_error() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let mut checked = 0;
    for (method, template, path, token) in json_operations(&service, &a) {
        for body in [Body::Raw("application/json", b"not json".to_vec()), Body::Json(json!("a string"))] {
            let reply = service.call(&method, &path, Some(&token), &body);
            let ok = (400..500).contains(&reply.status) && reply.error_body().is_some();
            assert!(ok, "{method} {template} with {body:?}: {}", snippet(&reply));
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} JSON bodies checked");
    // The malformed registrations did not use the vault credentials up.
    assert_eq!(register(&service, &a.spare_registration, "web04").status, 200);
}

#[test]
fn an_upload_that_does_not_match_its_name_is_refused_and_invisible() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let machine = service.client(&a.machine_token);
    let meant = b"the bytes that were meant".to_vec();
    let name = content_name(&meant);
    let damaged = b"the bytes that arrived".to_vec();

    let path = api(format!("/machines/{}/repository/data/{name}", a.machine_id));
    let reply = service.call("PUT", &path, Some(&a.machine_token), &Body::Bytes(damaged));
    assert_eq!(reply.status, 400, "{}", snippet(&reply));
    assert!(error_of(&reply).error.contains("do not match"), "{}", reply.text());

    let listed = machine.list_files(&a.machine_id, "data").unwrap();
    assert!(listed.iter().all(|f| f.name != name), "{listed:?}");
    assert_eq!(machine.file_size(&a.machine_id, "data", &name).unwrap(), None);
    assert_eq!(service.call("GET", &path, Some(&a.machine_token), &Body::Empty).status, 404);

    // Damaged bytes sent under the name of a file that exists do not harm it.
    let existing = api(format!("/machines/{}/repository/data/{}", a.machine_id, a.file_name));
    let reply = service.call("PUT", &existing, Some(&a.machine_token), &Body::Bytes(meant.clone()));
    assert_eq!(reply.status, 400, "{}", snippet(&reply));
    let kept = machine.get_file(&a.machine_id, "data", &a.file_name, None).unwrap();
    assert!(kept.as_ref() == a.file_bytes.as_slice(), "the existing file changed");

    // Names that are not content hashes, and folders that do not exist.
    for (folder, bad) in [("data", "ABC"), ("data", "config"), ("config", name.as_str()), ("packs", name.as_str())] {
        let path = api(format!("/machines/{}/repository/{folder}/{bad}", a.machine_id));
        let reply = service.call("PUT", &path, Some(&a.machine_token), &Body::Bytes(meant.clone()));
        assert_eq!(reply.status, 400, "{folder}/{bad}: {}", snippet(&reply));
        error_of(&reply);
    }
}

#[test]
fn the_same_upload_twice_is_stored_once() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let machine = service.client(&a.machine_token);
    let bytes: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    let name = content_name(&bytes);
    for _ in 0..2 {
        machine.put_file(&a.machine_id, "index", &name, Bytes::from(bytes.clone())).expect("the upload succeeds");
    }
    let listed = machine.list_files(&a.machine_id, "index").unwrap();
    let ours: Vec<_> = listed.iter().filter(|f| f.name == name).collect();
    assert_eq!(ours.len(), 1, "{listed:?}");
    assert_eq!(ours[0].size, bytes.len() as u64);
    assert_eq!(machine.file_size(&a.machine_id, "index", &name).unwrap(), Some(bytes.len() as u64));
    assert!(machine.get_file(&a.machine_id, "index", &name, None).unwrap().as_ref() == bytes.as_slice());

    // The config is written once too: the same one again is fine, another is refused.
    machine.put_file(&a.machine_id, "config", "config", Bytes::from(a.config_bytes.clone())).unwrap();
    let other = machine.put_file(&a.machine_id, "config", "config", Bytes::from_static(b"{}")).unwrap_err();
    assert_eq!(other.status(), Some(409), "{other}");
    assert!(machine.get_file(&a.machine_id, "config", "config", None).unwrap().as_ref() == a.config_bytes.as_slice());
}

#[test]
fn ranged_reads_return_exactly_those_bytes() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let machine = service.client(&a.machine_token);
    let all = &a.file_bytes;
    let len = all.len() as u64;
    let path = api(format!("/machines/{}/repository/data/{}", a.machine_id, a.file_name));

    for (first, last) in [(0, 0), (100, 1099), (len - 1, len - 1), (0, len - 1), (4096, 12287)] {
        let range = format!("bytes={first}-{last}");
        let reply = service.send(
            "GET",
            &path,
            Some(&format!("Bearer {}", a.machine_token)),
            &Body::Empty,
            &[("range", &range)],
        );
        assert_eq!(reply.status, 206, "{range}: {}", snippet(&reply));
        assert!(reply.body == all[first as usize..=last as usize], "{range}: {} bytes back", reply.body.len());
        let typed = machine.get_file(&a.machine_id, "data", &a.file_name, Some((first, last - first + 1))).unwrap();
        assert!(typed.as_ref() == &all[first as usize..=last as usize], "{range} through the client");
    }
    // A range running past the end gives what there is.
    let range = format!("bytes={}-{}", len - 10, len + 10);
    let reply =
        service.send("GET", &path, Some(&format!("Bearer {}", a.machine_token)), &Body::Empty, &[("range", &range)]);
    assert_eq!(reply.status, 206, "{range}: {}", snippet(&reply));
    assert!(reply.body == all[len as usize - 10..], "{range}: {} bytes back", reply.body.len());
    // Without a range: the whole file, 200.
    let whole = service.call("GET", &path, Some(&a.machine_token), &Body::Empty);
    assert_eq!(whole.status, 200);
    assert!(whole.body == *all);
    // A range the service cannot serve is a 4xx JSON error, not a failure.
    for range in ["bytes=10-5", "bytes=abc", "items=0-1", &format!("bytes={len}-{}", len + 10)] {
        let reply =
            service.send("GET", &path, Some(&format!("Bearer {}", a.machine_token)), &Body::Empty, &[("range", range)]);
        assert!((400..500).contains(&reply.status), "{range}: {}", snippet(&reply));
        error_of(&reply);
    }
}

/// A 206 says which bytes it holds (RFC 9110 §15.3.7), and a range outside the file
/// is a 416 that names the file's length.
#[test]
fn partial_answers_say_which_bytes() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let len = a.file_bytes.len();
    let path = api(format!("/machines/{}/repository/data/{}", a.machine_id, a.file_name));
    let authorization = format!("Bearer {}", a.machine_token);
    let http = reqwest::blocking::Client::builder()
        .use_preconfigured_tls(offsite_api::tls::pinned_client_config(&service.server.fingerprint).unwrap())
        .build()
        .unwrap();
    let get = |range: &str| {
        http.get(format!("{}{path}", service.server.url))
            .header("authorization", &authorization)
            .header("range", range)
            .send()
            .unwrap()
    };
    let partial = get("bytes=10-19");
    assert_eq!(partial.status(), 206);
    let content_range = partial.headers().get("content-range").map(|v| v.to_str().unwrap().to_string());
    assert_eq!(content_range, Some(format!("bytes 10-19/{len}")));
    let outside = get(&format!("bytes={len}-{}", len + 10));
    assert_eq!(outside.status(), 416);
    let content_range = outside.headers().get("content-range").map(|v| v.to_str().unwrap().to_string());
    assert_eq!(content_range, Some(format!("bytes */{len}")));
}

/// Requests too big for the service: a JSON body over the limit on every JSON
/// endpoint is a 413 that says so; a header of 1 MiB and a request with
/// 500 headers are refused; and the service keeps serving others meanwhile.
#[test]
fn oversized_requests_are_refused_and_the_service_keeps_serving() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let huge = Body::Json(json!({"name": "x".repeat(2 << 20)}));
    let mut checked = 0;
    for (method, template, path, token) in json_operations(&service, &a) {
        let authorization = format!("Bearer {token}");
        // The service answers before reading it all and closes the connection, so
        // the client may lose the answer while it still sends (see above).
        let answers: Vec<Reply> =
            (0..5).filter_map(|_| service.try_send(&method, &path, Some(&authorization), &huge, &[]).ok()).collect();
        assert!(!answers.is_empty(), "{method} {template}: no answer to an oversized body in 5 tries");
        for reply in &answers {
            assert_eq!(reply.status, 413, "{method} {template}: {}", snippet(reply));
            let error = error_of(reply);
            assert!(error.code == "too_large" && error.error.contains("too large"), "{method} {template}: {error:?}");
        }
        checked += 1;
        // Someone else is served at once.
        assert_eq!(service.call("GET", "/api/v1/whoami", Some(&a.machine_token), &Body::Empty).status, 200);
    }
    assert!(checked >= 20, "only {checked} JSON endpoints checked");

    let whoami = "/api/v1/whoami";
    let bearer = format!("Bearer {}", a.subscription_token);
    let long = "y".repeat(1 << 20);
    let reply = service.try_send("GET", whoami, Some(&bearer), &Body::Empty, &[("x-padding", &long)]);
    if let Ok(reply) = &reply {
        assert!(matches!(reply.status, 400 | 413 | 431), "a 1 MiB header: {}", snippet(reply));
    }
    let names: Vec<String> = (0..500).map(|i| format!("x-header-{i}")).collect();
    let many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    let reply = service.try_send("GET", whoami, Some(&bearer), &Body::Empty, &many);
    if let Ok(reply) = &reply {
        assert!(matches!(reply.status, 400 | 413 | 431), "500 headers: {}", snippet(reply));
    }
    assert_eq!(service.call("GET", whoami, Some(&a.subscription_token), &Body::Empty).status, 200);
}

/// Vault credentials past their lifetime are refused with a 401 that says when
/// they expired, without repeating the credential; credentials still in time work.
#[test]
fn expired_vault_credentials_are_refused_saying_when() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let sub = service.client(&a.subscription_token);
    let short = sub.vault_credentials(&a.vault_id, Some(1)).unwrap().registration_secret;
    let long = sub.vault_credentials(&a.vault_id, Some(3)).unwrap().registration_secret;
    let service = service.restart_with_clock_offset(2 * 3600);
    let reply = register(&service, &short, "late");
    assert_eq!(reply.status, 401, "{}", snippet(&reply));
    let error = error_of(&reply);
    assert!(error.error.contains("expired at") && error.error.contains("download new ones"), "{}", error.error);
    assert!(!reply.text().contains(secret_of(&short)), "the refusal repeats the secret: {}", snippet(&reply));
    // A wrong secret is not repeated either.
    let wrong = format!("{}.{}", common::id_of(&short), "ab".repeat(32));
    let reply = register(&service, &wrong, "forged");
    assert_eq!(reply.status, 401, "{}", snippet(&reply));
    assert!(!reply.text().contains(secret_of(&wrong)), "{}", snippet(&reply));
    assert_eq!(register(&service, &long, "in-time").status, 200);
}

/// A management credential can be issued (for a while, or until revoked), listed
/// without its secret and revoked: from then on every request with it is refused
/// naming the revocation, and another tenant can neither see nor revoke it.
#[test]
fn a_revoked_management_credential_stops_working_at_once() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let b = service.tenant("bravo");
    let manager = service.client(&a.subscription_token);
    let issued = manager.issue_management_credential(&a.subscription_id, None).unwrap();
    let second = issued.management_credential.clone();
    assert!(second.starts_with(&format!("{}.", issued.credential.id)), "the id is the token's first part");
    assert_eq!((issued.credential.expires, issued.credential.revoked), (None, None));
    let path = api(format!("/subscriptions/{}/vaults", a.subscription_id));
    assert_eq!(service.call("GET", &path, Some(&second), &Body::Empty).status, 200);

    // Listed with the others, never with a secret.
    let listing = service.call(
        "GET",
        &api(format!("/subscriptions/{}/management-credentials", a.subscription_id)),
        Some(&a.subscription_token),
        &Body::Empty,
    );
    assert_eq!(listing.status, 200, "{}", snippet(&listing));
    assert!(listing.text().contains(&issued.credential.id), "{}", listing.text());
    assert!(!listing.text().contains(secret_of(&second)), "a secret is listed: {}", listing.text());
    assert_eq!(manager.management_credentials(&a.subscription_id).unwrap().len(), 3);

    // Another tenant cannot revoke it (nor learn that it exists); an unknown id is named.
    let (status, message) = refusal(
        service.client(&b.subscription_token).revoke_management_credential(&b.subscription_id, &issued.credential.id),
    );
    assert_eq!(status, 404, "{message}");
    assert!(!message.contains(&a.subscription_id), "{message}");
    let (status, message) = refusal(manager.revoke_management_credential(&a.subscription_id, "cred_nope"));
    assert!(status == 404 && message.contains("cred_nope"), "{message}");
    assert_eq!(service.call("GET", &path, Some(&second), &Body::Empty).status, 200, "still works");

    let revoked = manager.revoke_management_credential(&a.subscription_id, &issued.credential.id).unwrap();
    let when = revoked.revoked.expect("the answer says when");
    for (method, path, body) in [
        ("GET", path.clone(), Body::Empty),
        ("POST", path.clone(), Body::Json(json!({"name": "after-revocation"}))),
        ("GET", api(format!("/subscriptions/{}", a.subscription_id)), Body::Empty),
        ("POST", api(format!("/subscriptions/{}/management-credentials", a.subscription_id)), Body::Json(json!({}))),
    ] {
        let reply = service.call(method, &path, Some(&second), &body);
        assert_eq!(reply.status, 401, "{method} {path}: {}", snippet(&reply));
        assert!(error_of(&reply).error.contains("revoked"), "{method} {path}: {}", snippet(&reply));
    }
    // The first credential is untouched; revoking again keeps the first time.
    assert_eq!(service.call("GET", &path, Some(&a.subscription_token), &Body::Empty).status, 200);
    let again = manager.revoke_management_credential(&a.subscription_id, &issued.credential.id).unwrap();
    assert_eq!(again.revoked, Some(when));
    // Nothing was created with the revoked credential.
    let vaults = service.get_json(&path, &a.subscription_token);
    assert!(!vaults.to_string().contains("after-revocation"), "{vaults}");

    // Limited ones: 1 to 3650 days, and they say when they end.
    let day = manager.issue_management_credential(&a.subscription_id, Some(1)).unwrap().credential;
    let expires = day.expires.expect("an expiry").unix_timestamp() - day.created.unix_timestamp();
    assert!((86_000..=86_800).contains(&expires), "{expires} s");
    for days in [0, 3651] {
        let (status, message) = refusal(manager.issue_management_credential(&a.subscription_id, Some(days)));
        assert!(status == 400 && message.contains("1 to 3650 days"), "{days}: {message}");
    }
}

/// A credential cannot outlive the one that issued it: a management credential
/// valid for a day issues management credentials (asked for longer, or for no end)
/// and vault credentials that expire with it at the latest, and says so in the
/// answer; a shorter request is kept as asked. When the day is over, what it issued
/// stops working with it.
#[test]
fn a_credential_cannot_outlive_its_issuer() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let issue = |token: &str, body: serde_json::Value| {
        let path = api(format!("/subscriptions/{}/management-credentials", a.subscription_id));
        let reply = service.call("POST", &path, Some(token), &Body::Json(body));
        assert_eq!(reply.status, 201, "{}", snippet(&reply));
        reply.json()
    };
    let day = issue(&a.subscription_token, json!({"valid_days": 1}));
    let issuer = day["management_credential"].as_str().unwrap().to_string();
    let issuer_expires = day["credential"]["expires"].clone();
    assert!(issuer_expires.is_string(), "{day}");

    let mut minted = Vec::new();
    for body in [json!({}), json!({"valid_days": 30})] {
        let issued = issue(&issuer, body.clone());
        assert_eq!(issued["credential"]["expires"], issuer_expires, "{body}: {issued}");
        assert_eq!(issued["expires_with_issuer"], true, "{body}: the answer says why: {issued}");
        minted.push(issued["management_credential"].as_str().unwrap().to_string());
    }
    // A credential with no end issues as asked; so does a shorter request.
    let unlimited = issue(&a.subscription_token, json!({}));
    assert!(unlimited["credential"]["expires"].is_null(), "{unlimited}");
    assert_eq!(unlimited["expires_with_issuer"], false, "{unlimited}");
    let two_days = issue(&a.subscription_token, json!({"valid_days": 2}));
    let shorter = issue(two_days["management_credential"].as_str().unwrap(), json!({"valid_days": 1}));
    assert_eq!(shorter["expires_with_issuer"], false, "{shorter}");

    // Vault credentials too: 240 hours asked, the issuer's day given.
    let path = api(format!("/vaults/{}/credentials", a.vault_id));
    let reply = service.call("POST", &path, Some(&issuer), &Body::Json(json!({"valid_hours": 240})));
    assert_eq!(reply.status, 200, "{}", snippet(&reply));
    assert_eq!(reply.json()["expires"], issuer_expires, "{}", reply.text());
    assert_eq!(reply.json()["expires_with_issuer"], true, "{}", reply.text());
    let registration = reply.json()["registration_secret"].as_str().unwrap().to_string();

    // An application certificate it registers signs no longer than it works.
    let certificate = offsite_seeding::application::generate(&a.subscription_id).expect("a certificate");
    let path = api(format!("/subscriptions/{}/application/certificates", a.subscription_id));
    let upload =
        common::proven(&service.client(&issuer), &a.subscription_id, &certificate.cert_pem, &certificate.key_pem);
    let reply = service.call("POST", &path, Some(&issuer), &Body::Json(serde_json::to_value(&upload).unwrap()));
    assert_eq!(reply.status, 200, "{}", snippet(&reply));
    let listed = reply.json()["certificates"].as_array().unwrap().clone();
    let listed = listed.iter().find(|c| c["thumbprint"] == certificate.thumbprint.as_str()).expect("listed").clone();
    assert_eq!(listed["expires"], issuer_expires, "{listed}");
    let short_lived = offsite_api::application_auth::ApplicationIdentity {
        application_id: a.application.application_id.clone(),
        thumbprint: certificate.thumbprint.clone(),
        key_pem: certificate.key_pem.clone(),
    };
    let subscription_path = api(format!("/subscriptions/{}", a.subscription_id));
    let signed = |service: &Service, identity: &offsite_api::application_auth::ApplicationIdentity, offset: i64| {
        let at = time::OffsetDateTime::now_utc().unix_timestamp() + offset;
        let authorization = common::sign(identity, "GET", &subscription_path, at);
        service.send("GET", &subscription_path, Some(&authorization), &Body::Empty, &[])
    };
    assert_eq!(signed(&service, &short_lived, 0).status, 200);

    let service = service.restart_with_clock_offset(86_400 + 120);
    let reply = signed(&service, &short_lived, 86_400 + 120);
    assert_eq!(reply.status, 401, "{}", snippet(&reply));
    let error = error_of(&reply).error;
    assert!(error.contains("stopped signing") && error.contains("remove-cert"), "{error}");
    assert_eq!(signed(&service, &a.application, 86_400 + 120).status, 200, "the first certificate still signs");

    for token in minted.iter().chain([&issuer]) {
        let reply = service.call("GET", &api("/whoami"), Some(token), &Body::Empty);
        assert_eq!(reply.status, 401, "{}", snippet(&reply));
        let error = error_of(&reply).error;
        assert!(error.contains("management credential expired at"), "{error}");
        assert!(error.contains("offsite admin subscription issue-credential"), "{error}");
    }
    assert_eq!(register(&service, &registration, "late").status, 401);
    let unlimited = unlimited["management_credential"].as_str().unwrap();
    assert_eq!(service.call("GET", &api("/whoami"), Some(unlimited), &Body::Empty).status, 200);
}

/// One clock: on a service whose clock runs ahead, what it stamps (a credential's
/// creation) and what it computes (its expiry) agree, and both are the service's time.
#[test]
fn rows_are_stamped_by_the_services_clock() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let ahead = 30 * 86_400;
    let service = service.restart_with_clock_offset(ahead);
    let manager = service.client(&a.subscription_token);
    let day = manager.issue_management_credential(&a.subscription_id, Some(1)).unwrap().credential;
    let lasts = day.expires.expect("an expiry").unix_timestamp() - day.created.unix_timestamp();
    assert!((86_000..=86_800).contains(&lasts), "created and expiry on two clocks: {lasts} s apart");
    let system_now = time::OffsetDateTime::now_utc().unix_timestamp();
    let offset = day.created.unix_timestamp() - system_now;
    assert!((ahead - 600..=ahead + 600).contains(&offset), "created {offset} s from the system clock, not {ahead}");
}

/// A certificate removed from the offline-seeding application signs nothing from
/// then on; the application cannot remove certificates itself.
#[test]
fn a_removed_application_certificate_signs_nothing() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let manager = service.client(&a.subscription_token);
    let retired = offsite_seeding::application::generate(&a.subscription_id).unwrap();
    let upload = common::proven(&manager, &a.subscription_id, &retired.cert_pem, &retired.key_pem);
    manager.upload_application_certificate(&a.subscription_id, &upload).unwrap();
    let identity = offsite_api::application_auth::ApplicationIdentity {
        application_id: a.application.application_id.clone(),
        thumbprint: retired.thumbprint.clone(),
        key_pem: retired.key_pem.clone(),
    };
    let signed = service.app_client(&identity);
    assert!(signed.subscription(&a.subscription_id).is_ok(), "the new certificate signs");

    // Not by the application itself, even with its other certificate.
    let (status, _) = refusal(
        service.app_client(&a.application).remove_application_certificate(&a.subscription_id, &retired.thumbprint),
    );
    assert!(matches!(status, 403 | 404), "{status}");

    // Thumbprints are taken in either case.
    let lower = retired.thumbprint.to_ascii_lowercase();
    let app = manager.remove_application_certificate(&a.subscription_id, &lower).unwrap();
    assert!(app.certificates.iter().all(|c| c.thumbprint != retired.thumbprint), "{app:?}");
    assert!(app.certificates.iter().any(|c| c.thumbprint == a.application.thumbprint), "the others stay");
    let (status, _) = refusal(signed.subscription(&a.subscription_id));
    assert_eq!(status, 401);
    assert!(service.app_client(&a.application).subscription(&a.subscription_id).is_ok(), "the first still signs");
    let (status, message) = refusal(manager.remove_application_certificate(&a.subscription_id, &retired.thumbprint));
    assert!(status == 404 && message.contains(&retired.thumbprint), "{message}");
}

/// The status and message of a refused call.
fn refusal<T: std::fmt::Debug>(result: offsite_api::client::ApiResult<T>) -> (u16, String) {
    match result {
        Err(err) => (err.status().unwrap_or(0), err.to_string()),
        Ok(value) => panic!("expected a refusal, got {value:?}"),
    }
}

/// A machine's credential is what ransomware on the machine holds: it may remove
/// what prune and forget remove, but never the repository's config or key files,
/// without which none of its backups can be read.
#[test]
fn a_machine_cannot_remove_its_repositorys_config_or_keys() {
    let service = Service::start();
    let tenant = service.tenant("acme");
    let machine = service.client(&tenant.machine_token);
    let key_bytes = b"a key file, as the engine seals it".to_vec();
    let key_name = content_name(&key_bytes);
    machine.put_file(&tenant.machine_id, "keys", &key_name, Bytes::from(key_bytes.clone())).expect("a key file");

    for (folder, name) in [("config", "config"), ("keys", key_name.as_str())] {
        let err = machine.delete_file(&tenant.machine_id, folder, name).expect_err("removing it is refused");
        assert_eq!(err.status(), Some(403), "{folder}/{name}: {err}");
        assert!(err.to_string().contains("cannot be removed"), "{err}");
    }
    assert_eq!(machine.get_file(&tenant.machine_id, "config", "config", None).unwrap().to_vec(), tenant.config_bytes);
    assert_eq!(machine.get_file(&tenant.machine_id, "keys", &key_name, None).unwrap().to_vec(), key_bytes);
    // What prune removes still goes.
    machine.delete_file(&tenant.machine_id, "data", &tenant.file_name).expect("a pack is removed");
    assert_eq!(machine.file_size(&tenant.machine_id, "data", &tenant.file_name).unwrap(), None);
}

/// A flood of requests naming a revoked credential (its id with any secret) is
/// refused before Argon2, so it cannot take the slots a live credential's first
/// check needs: a fresh credential's first request during the flood is answered
/// about as fast as without it. (Before, each flood request ran Argon2 first; on
/// two cores a debug build's first check waited behind ~64 of them.)
#[test]
fn a_flood_naming_a_revoked_credential_does_not_starve_a_live_one() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let manager = service.client(&a.subscription_token);
    let revoked = manager.issue_management_credential(&a.subscription_id, None).unwrap();
    manager.revoke_management_credential(&a.subscription_id, &revoked.credential.id).unwrap();
    let id = revoked.management_credential.split_once('.').unwrap().0.to_string();

    // A fresh credential's first request (an Argon2 check), alone.
    let first_use = |service: &Service| {
        let fresh = manager.issue_management_credential(&a.subscription_id, None).unwrap().management_credential;
        let started = std::time::Instant::now();
        let reply = service.call("GET", "/api/v1/whoami", Some(&fresh), &Body::Empty);
        assert_eq!(reply.status, 200, "{}", snippet(&reply));
        started.elapsed()
    };
    let alone = first_use(&service);

    let stop = std::sync::atomic::AtomicBool::new(false);
    let refused = std::sync::atomic::AtomicU64::new(0);
    let during = std::thread::scope(|scope| {
        for n in 0..64u32 {
            let (service, id, stop, refused) = (&service, &id, &stop, &refused);
            scope.spawn(move || {
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    i += 1;
                    let token = format!("{id}.{:064x}", u64::from(n) << 32 | i);
                    let reply = service.call("GET", "/api/v1/whoami", Some(&token), &Body::Empty);
                    assert_eq!(reply.status, 401, "{}", snippet(&reply));
                    refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
        let during = first_use(&service);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        during
    });
    let refused = refused.into_inner();
    println!(
        "a fresh credential's first request: {alone:?} alone, {during:?} during a flood of {refused} refused requests"
    );
    assert!(refused > 64, "the flood ran: {refused} requests");
    assert!(
        during < alone * 4 + std::time::Duration::from_secs(2),
        "the first request waited {during:?} during the flood ({alone:?} alone)"
    );
}

/// `/metrics` on the service's address names routes, import job states and sign-in
/// activity: it is the operator's, and every other credential or none is refused.
#[test]
fn metrics_are_served_to_the_operator_credential_only() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let scrape = |token: Option<&str>| service.call("GET", "/metrics", token, &Body::Empty);
    let anonymous = scrape(None);
    assert_eq!(anonymous.status, 401, "{}", snippet(&anonymous));
    for token in [&a.subscription_token, &a.machine_token] {
        let refused = scrape(Some(token));
        assert_eq!(refused.status, 403, "{}", snippet(&refused));
        assert!(error_of(&refused).error.contains("--metrics-listen"), "{}", snippet(&refused));
    }
    let page = scrape(Some(&service.operator_token));
    assert_eq!(page.status, 200, "{}", snippet(&page));
    assert!(page.text().contains("offsite_import_jobs{state=\"creating\"} 1"), "{}", page.text());
}

/// With `metrics_listen` (`--metrics-listen`), a scraper on a private network reads
/// `/metrics` over plain HTTP without a credential on that address, which serves
/// nothing else; the service's own address still wants the operator's credential.
#[test]
fn a_metrics_listener_serves_metrics_alone_without_a_credential() {
    let service = Service::start_configured(|config| config.metrics_listen = Some("127.0.0.1:0".parse().unwrap()));
    let url = service.server.metrics_url.clone().expect("the metrics listener's URL");
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/metrics"), "{url}");
    let plain = reqwest::blocking::Client::new();
    let page = plain.get(&url).send().expect("an answer");
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().unwrap().contains("offsite_import_jobs{state=\"creating\"} 0"));
    let api = url.replace("/metrics", "/api/v1/whoami");
    let other = plain.get(&api).header("authorization", format!("Bearer {}", service.operator_token)).send().unwrap();
    assert_eq!(other.status().as_u16(), 404, "the metrics listener answered {api}");
    assert_eq!(service.call("GET", "/metrics", None, &Body::Empty).status, 401);
}

/// A datacenter's station credential is issued by the operator (for a while, or
/// until revoked), listed without its secret, says who it is, runs its
/// datacenter's station steps, and once revoked or expired is refused with a
/// sentence saying so and what to do.
#[test]
fn a_station_credential_works_until_revoked_or_expired() {
    let service = Service::start();
    let a = service.tenant("alpha");
    let operator = service.operator();
    let issued = operator.issue_station_credential(&a.datacenter_id, None).unwrap();
    let token = issued.station_credential.clone();
    assert!(token.starts_with(&format!("{}.", issued.credential.id)), "the id is the token's first part");
    assert_eq!(issued.credential.datacenter_id, a.datacenter_id);
    let whoami = service.get_json(&api("/whoami"), &token);
    assert_eq!(whoami["role"], "station", "{whoami}");
    assert_eq!(whoami["datacenter_id"], a.datacenter_id.as_str(), "{whoami}");
    let station = service.client(&token);
    assert_eq!(station.find_import_job(&a.import_job_name).unwrap().id, a.import_job_id);

    // Listed without secrets; only the operator issues, lists and revokes.
    let listing = service.call(
        "GET",
        &api(format!("/datacenters/{}/station-credentials", a.datacenter_id)),
        Some(&service.operator_token),
        &Body::Empty,
    );
    assert_eq!(listing.status, 200, "{}", snippet(&listing));
    assert!(listing.text().contains(&issued.credential.id), "{}", listing.text());
    assert!(!listing.text().contains(secret_of(&token)), "a secret is listed: {}", listing.text());
    for caller in [&a.subscription_token, &token] {
        let (status, _) = refusal(service.client(caller).issue_station_credential(&a.datacenter_id, None));
        assert_eq!(status, 403);
        let (status, _) =
            refusal(service.client(caller).revoke_station_credential(&a.datacenter_id, &issued.credential.id));
        assert_eq!(status, 403);
    }
    let (status, message) = refusal(operator.issue_station_credential("dc_nope", None));
    assert!(status == 404 && message.contains("dc_nope"), "{message}");
    for days in [0, 3651] {
        let (status, message) = refusal(operator.issue_station_credential(&a.datacenter_id, Some(days)));
        assert!(status == 400 && message.contains("1 to 3650 days"), "{days}: {message}");
    }

    // Revoked: refused at once, naming what to do.
    operator.revoke_station_credential(&a.datacenter_id, &issued.credential.id).unwrap();
    let reply = service.call("GET", &api(format!("/import-jobs/{}", a.import_job_id)), Some(&token), &Body::Empty);
    assert_eq!(reply.status, 401, "{}", snippet(&reply));
    let error = error_of(&reply).error;
    assert!(
        error.contains("station credential was revoked")
            && error.contains("offsite admin datacenter station-credential issue"),
        "{error}"
    );

    // For a day: refused once the day is over.
    let day = operator.issue_station_credential(&a.datacenter_id, Some(1)).unwrap();
    let lasts = day.credential.expires.expect("an expiry").unix_timestamp() - day.credential.created.unix_timestamp();
    assert!((86_000..=86_800).contains(&lasts), "{lasts} s");
    assert_eq!(
        service.client(&day.station_credential).find_import_job(&a.import_job_name).unwrap().id,
        a.import_job_id
    );
    let service = service.restart_with_clock_offset(2 * 86_400);
    let reply = service.call("GET", &api("/whoami"), Some(&day.station_credential), &Body::Empty);
    assert_eq!(reply.status, 401, "{}", snippet(&reply));
    let error = error_of(&reply).error;
    assert!(error.contains("station credential expired at") && error.contains("station-credential issue"), "{error}");
}
