//! The OpenAPI document the service serves: complete, consistent, and the same API
//! the router answers.

mod common;

use std::collections::BTreeSet;

use common::{Body, Service};
use serde_json::Value;

/// Every operation the service has today. The document may grow; it may not lose one.
const KNOWN: &[(&str, &str)] = &[
    ("get", "/api/v1/whoami"),
    ("get", "/api/v1/import-jobs/{import_job_id}/custody"),
    ("post", "/api/v1/import-jobs/{import_job_id}/custody"),
    ("post", "/api/v1/subscriptions"),
    ("get", "/api/v1/subscriptions"),
    ("get", "/api/v1/subscriptions/{subscription_id}"),
    ("post", "/api/v1/subscriptions/{subscription_id}/vaults"),
    ("get", "/api/v1/subscriptions/{subscription_id}/vaults"),
    ("get", "/api/v1/vaults/{vault_id}"),
    ("post", "/api/v1/vaults/{vault_id}/credentials"),
    ("get", "/api/v1/vaults/{vault_id}/machines"),
    ("post", "/api/v1/register"),
    ("get", "/api/v1/machines/{machine_id}"),
    ("delete", "/api/v1/machines/{machine_id}"),
    ("get", "/api/v1/machines/{machine_id}/protected-items"),
    ("put", "/api/v1/machines/{machine_id}/protected-items"),
    ("get", "/api/v1/machines/{machine_id}/recovery-points"),
    ("put", "/api/v1/machines/{machine_id}/recovery-points"),
    ("get", "/api/v1/machines/{machine_id}/jobs"),
    ("post", "/api/v1/machines/{machine_id}/jobs"),
    ("get", "/api/v1/machines/{machine_id}/jobs/{job_id}"),
    ("put", "/api/v1/machines/{machine_id}/jobs/{job_id}"),
    ("get", "/api/v1/machines/{machine_id}/repository/{folder}"),
    ("get", "/api/v1/machines/{machine_id}/repository/{folder}/{name}"),
    ("put", "/api/v1/machines/{machine_id}/repository/{folder}/{name}"),
    ("head", "/api/v1/machines/{machine_id}/repository/{folder}/{name}"),
    ("delete", "/api/v1/machines/{machine_id}/repository/{folder}/{name}"),
    ("post", "/api/v1/subscriptions/{subscription_id}/storage-accounts"),
    ("get", "/api/v1/subscriptions/{subscription_id}/storage-accounts"),
    ("post", "/api/v1/storage-accounts/{storage_account_id}/containers"),
    ("get", "/api/v1/storage-accounts/{storage_account_id}/containers"),
    ("post", "/api/v1/datacenters"),
    ("get", "/api/v1/datacenters"),
    ("post", "/api/v1/datacenters/{datacenter_id}/station-credentials"),
    ("get", "/api/v1/datacenters/{datacenter_id}/station-credentials"),
    ("delete", "/api/v1/datacenters/{datacenter_id}/station-credentials/{credential_id}"),
];

const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// Served without a credential, outside the documented API.
/// Outside the documented API: health and the document need no credential,
/// `/metrics` the operator's (tests/credentials.rs checks who else is refused).
const PUBLIC: &[&str] = &["/healthz", "/api/v1/openapi.json"];
const OUTSIDE_THE_API: &[&str] = &["/healthz", "/metrics", "/api/v1/openapi.json"];

fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("the document has paths") {
        for method in METHODS {
            if let Some(operation) = item.get(*method) {
                found.push((method.to_string(), path.clone(), operation.clone()));
            }
        }
    }
    found
}

/// Every `$ref` in the document, wherever it is.
fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("$ref", Value::String(target)) => out.push(target),
                    _ => refs(inner, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|inner| refs(inner, out)),
        _ => {}
    }
}

fn path_parameters(template: &str) -> Vec<&str> {
    template.split('/').filter_map(|part| part.strip_prefix('{')?.strip_suffix('}')).collect()
}

#[test]
fn the_document_is_openapi_3_and_lists_every_operation() {
    let service = Service::start();
    let reply = service.call("GET", "/api/v1/openapi.json", None, &Body::Empty);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        reply.content_type.as_deref().is_some_and(|t| t.starts_with("application/json")),
        "content type {:?}",
        reply.content_type
    );
    let doc = reply.json();
    let version = doc["openapi"].as_str().expect("an `openapi` version field");
    assert!(version.starts_with("3."), "OpenAPI version {version}");
    assert!(doc["info"]["title"].is_string(), "the document has a title");

    let documented: BTreeSet<(String, String)> =
        operations(&doc).into_iter().map(|(method, path, _)| (method, path)).collect();
    let missing: Vec<_> = KNOWN.iter().filter(|(m, p)| !documented.contains(&(m.to_string(), p.to_string()))).collect();
    assert!(missing.is_empty(), "operations the service has but its document lacks: {missing:?}");
    for outside in OUTSIDE_THE_API {
        assert!(doc["paths"].get(*outside).is_none(), "{outside} is not part of the documented API");
    }
    for (_, path, _) in operations(&doc) {
        assert!(path.starts_with("/api/v1/"), "{path} is outside /api/v1");
    }
}

#[test]
fn every_operation_needs_a_bearer_credential_and_documents_its_answers() {
    let service = Service::start();
    let doc = service.openapi();
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http", "{scheme}");
    assert_eq!(scheme["scheme"].as_str().map(str::to_ascii_lowercase).as_deref(), Some("bearer"), "{scheme}");

    let mut problems = Vec::new();
    for (method, path, operation) in operations(&doc) {
        let here = format!("{} {path}", method.to_uppercase());
        let security = operation["security"].as_array().cloned().unwrap_or_default();
        if !security.iter().any(|requirement| requirement.get("bearer").is_some()) {
            problems.push(format!("{here}: no `bearer` security requirement ({})", operation["security"]));
        }
        let responses = operation["responses"].as_object().cloned().unwrap_or_default();
        if responses.is_empty() {
            problems.push(format!("{here}: no documented response"));
        }
        if !responses.keys().any(|code| code.starts_with('2')) {
            problems.push(format!("{here}: no documented success response"));
        }
        let declared: Vec<&Value> = operation["parameters"]
            .as_array()
            .map(|params| params.iter().filter(|p| p["in"] == "path").collect())
            .unwrap_or_default();
        for name in path_parameters(&path) {
            match declared.iter().find(|p| p["name"] == name) {
                Some(param) if param["required"] == true => {}
                Some(_) => problems.push(format!("{here}: path parameter {name} is not marked required")),
                None => problems.push(format!("{here}: path parameter {name} is not declared")),
            }
        }
        for param in &declared {
            let name = param["name"].as_str().unwrap_or_default();
            if !path_parameters(&path).contains(&name) {
                problems.push(format!("{here}: declares path parameter {name} its path does not have"));
            }
        }
        if matches!(method.as_str(), "post" | "put") && operation.get("requestBody").is_none() {
            problems.push(format!("{here}: takes no documented request body"));
        }
    }
    assert!(problems.is_empty(), "the document is incomplete:\n{}", problems.join("\n"));
}

#[test]
fn the_main_types_are_schemas_and_every_reference_resolves() {
    let service = Service::start();
    let doc = service.openapi();
    let schemas = doc["components"]["schemas"].as_object().expect("components.schemas");
    for name in [
        "Vault",
        "Machine",
        "RecoveryPoint",
        "Job",
        "JobReport",
        "ErrorBody",
        "Subscription",
        "ProtectedItem",
        "StorageAccount",
        "Container",
        "Datacenter",
        "RepositoryFile",
        "WhoAmI",
    ] {
        assert!(schemas.contains_key(name), "components.schemas lacks {name}; it has {:?}", schemas.keys());
    }
    let error = &schemas["ErrorBody"];
    let required: Vec<&str> =
        error["required"].as_array().map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    assert!(required.contains(&"error") && required.contains(&"code"), "ErrorBody: {error}");

    let mut targets = Vec::new();
    refs(&doc, &mut targets);
    assert!(!targets.is_empty(), "the document references its schemas");
    for target in targets {
        let name = target.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("unexpected $ref {target}"));
        assert!(schemas.contains_key(name), "$ref {target} names no schema");
    }
}

/// The document and the router agree both ways: every documented operation is
/// routed (it asks for a credential rather than answering "no such route"), and a
/// documented path answers no method the document does not list.
#[test]
fn the_router_serves_exactly_what_the_document_lists() {
    let service = Service::start();
    let doc = service.openapi();
    let mut problems = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete: String = path
            .split('/')
            .map(|part| match part {
                "{folder}" => "data".to_string(),
                "{name}" => "0".repeat(64),
                p if p.starts_with('{') => "x_0123".to_string(),
                p => p.to_string(),
            })
            .collect::<Vec<_>>()
            .join("/");
        for method in ["get", "put", "post", "delete", "patch"] {
            let reply = service.call(&method.to_uppercase(), &concrete, None, &Body::Empty);
            let documented = item.get(method).is_some();
            if documented && reply.status != 401 {
                problems
                    .push(format!("{} {path}: documented, but answers {} without a credential", method, reply.status));
            }
            if documented && reply.error_body().is_none_or(|e| e.code != "unauthorized") {
                problems.push(format!("{method} {path}: 401 without a JSON error body: {:?}", reply.text()));
            }
            if !documented && reply.status != 405 {
                problems.push(format!("{method} {path}: not documented, but answers {}", reply.status));
            }
        }
        if item.get("head").is_some() {
            let reply = service.call("HEAD", &concrete, None, &Body::Empty);
            if reply.status != 401 {
                problems.push(format!("head {path}: documented, but answers {} without a credential", reply.status));
            }
        }
    }
    assert!(problems.is_empty(), "router and document disagree:\n{}", problems.join("\n"));
}

#[test]
fn health_and_the_document_need_no_credential_and_metrics_the_operators() {
    let service = Service::start();
    for path in PUBLIC {
        let reply = service.call("GET", path, None, &Body::Empty);
        assert_eq!(reply.status, 200, "GET {path}: {}", reply.text());
    }
    assert_eq!(service.call("GET", "/healthz", None, &Body::Empty).text().trim(), "ok");
    // The metrics count requests, so after a few there is something to show.
    let metrics = service.call("GET", "/metrics", Some(&service.operator_token), &Body::Empty).text();
    assert!(metrics.contains("offsite_http_requests_total"), "{metrics}");
}

/// Answers from outside the handlers — no such route, no such method — use the
/// same JSON error body as every other refusal, so clients can show the sentence.
#[test]
fn unknown_routes_and_methods_answer_a_json_error() {
    let service = Service::start();
    for (method, path, status) in [("GET", "/api/v1/no-such-thing", 404), ("PATCH", "/api/v1/whoami", 405)] {
        let reply = service.call(method, path, Some(&service.operator_token), &Body::Empty);
        assert_eq!(reply.status, status, "{method} {path}");
        assert!(reply.error_body().is_some(), "{method} {path}: {:?} {:?}", reply.content_type, reply.text());
    }
}
