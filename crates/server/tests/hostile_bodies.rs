//! Hostile request bodies. Every operation in the service's OpenAPI document that
//! takes a body is sent bodies generated from its schema with wrong types, extreme
//! numbers, huge, empty and odd strings, missing and unknown fields, deep nesting,
//! truncated JSON and random bytes, under each of tenant A's credentials (so the
//! body reaches the handler of whichever role the operation is for). Every answer
//! must be a success or a 4xx with the service's JSON error body naming the
//! problem; never a 5xx; and the service must keep answering.
//!
//! `PROPTEST_CASES` raises the number of requests (the soak sets it).

mod common;

use std::sync::OnceLock;

use common::{Body, Service, Tenant};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Map, Value};

struct World {
    service: Service,
    a: Tenant,
    doc: Value,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let service = Service::start();
        let a = service.tenant("alpha");
        let doc = service.openapi();
        World { service, a, doc }
    })
}

#[derive(Debug, Clone)]
enum Kind {
    Json(Value),
    Octets,
    Text,
}

#[derive(Debug, Clone)]
struct Operation {
    method: String,
    template: String,
    kind: Kind,
    query: Vec<String>,
}

/// Every operation that takes a body.
fn operations(doc: &Value) -> Vec<Operation> {
    let mut found = Vec::new();
    for (template, item) in doc["paths"].as_object().expect("paths") {
        for method in ["post", "put", "patch", "delete"] {
            let Some(operation) = item.get(method) else { continue };
            let content = &operation["requestBody"]["content"];
            let kind = if let Some(json) = content.get("application/json") {
                Kind::Json(json["schema"].clone())
            } else if content.get("application/octet-stream").is_some() {
                Kind::Octets
            } else if content.get("text/plain").is_some() {
                Kind::Text
            } else {
                continue;
            };
            let query = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query" && p["required"] == true)
                .filter_map(|p| p["name"].as_str().map(str::to_string))
                .collect();
            found.push(Operation { method: method.to_uppercase(), template: template.clone(), kind, query });
        }
    }
    found
}

/// The path with A's ids in it, so the request reaches the handler.
fn path_of(op: &Operation, a: &Tenant, length: usize) -> String {
    let mut path = op
        .template
        .split('/')
        .map(|part| {
            let Some(param) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) else { return part.to_string() };
            match param {
                "subscription_id" => a.subscription_id.clone(),
                "vault_id" => a.vault_id.clone(),
                "machine_id" => a.machine_id.clone(),
                "storage_account_id" => a.storage_account_id.clone(),
                "job_id" => a.job_id.clone(),
                "import_job_id" => a.import_job_id.clone(),
                "drive_id" => a.drive_id.clone(),
                "import_job_name" => a.import_job_name.clone(),
                "kind" => "error".into(),
                "folder" => "data".into(),
                "name" => a.file_name.clone(),
                // A parameter this test does not know: a made-up value still
                // reaches the body's parser.
                other => format!("probe-{other}"),
            }
        })
        .collect::<Vec<_>>()
        .join("/");
    let query: Vec<String> = op
        .query
        .iter()
        .map(|name| match name.as_str() {
            "path" => "seed/hostile".to_string(),
            "offset" => "0".to_string(),
            "file_size" => length.to_string(),
            "drive_id" => a.drive_id.clone(),
            other => format!("{other}=1"),
        })
        .zip(&op.query)
        .map(|(value, name)| if value.contains('=') { value } else { format!("{name}={value}") })
        .collect();
    if !query.is_empty() {
        path = format!("{path}?{}", query.join("&"));
    }
    path
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(target) => resolve(doc, &doc["components"]["schemas"][target.trim_start_matches("#/components/schemas/")]),
        None => schema,
    }
}

/// Hostile strings: empty, huge, control characters, path tricks, odd Unicode.
fn hostile_string() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(json!("")),
        Just(json!(" ")),
        Just(json!("x".repeat(100_000))),
        Just(json!("../../etc/passwd")),
        Just(json!("a\u{0}b\r\nc")),
        Just(json!("\u{202e}\u{fffd}\u{1F600}")),
        Just(json!("-1")),
        Just(json!("2024-13-45T99:99:99Z")),
        "\\PC{0,40}".prop_map(Value::String),
        "[a-z0-9_.-]{1,20}".prop_map(Value::String),
    ]
    .boxed()
}

fn hostile_number() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(json!(0)),
        Just(json!(-1)),
        Just(json!(i64::MIN)),
        Just(json!(u64::MAX)),
        Just(json!(1e308)),
        Just(json!(0.5)),
        Just(json!(4_294_967_296u64)),
        any::<i64>().prop_map(|n| json!(n)),
    ]
    .boxed()
}

/// A value of any JSON type, nested a little.
fn any_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![Just(Value::Null), any::<bool>().prop_map(Value::Bool), hostile_number(), hostile_string()];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

/// A value for `schema`: mostly of its type with hostile contents, sometimes
/// of another type; objects with fields dropped and unknown ones added.
fn for_schema(doc: &'static Value, schema: &'static Value, depth: u32) -> BoxedStrategy<Value> {
    let schema = resolve(doc, schema);
    if depth > 4 {
        return any_value();
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            let strategies: Vec<BoxedStrategy<Value>> = options.iter().map(|o| for_schema(doc, o, depth + 1)).collect();
            return proptest::strategy::Union::new(strategies).boxed();
        }
    }
    let typed: BoxedStrategy<Value> = if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let values = values.clone();
        prop_oneof![proptest::sample::select(values), hostile_string()].boxed()
    } else {
        let kind = match &schema["type"] {
            Value::String(kind) => kind.clone(),
            Value::Array(kinds) => {
                kinds.iter().filter_map(Value::as_str).find(|k| *k != "null").unwrap_or("null").to_string()
            }
            _ if schema.get("properties").is_some() => "object".into(),
            _ => "any".into(),
        };
        match kind.as_str() {
            "object" => {
                let properties: Vec<(String, &'static Value)> = schema["properties"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, property)| (name.clone(), property))
                    .collect();
                let fields: Vec<BoxedStrategy<Option<(String, Value)>>> = properties
                    .into_iter()
                    .map(|(name, property)| {
                        let value = for_schema(doc, property, depth + 1);
                        proptest::option::weighted(0.85, value.prop_map(move |v| (name.clone(), v))).boxed()
                    })
                    .collect();
                (fields, proptest::option::weighted(0.2, ("[a-z_]{1,10}", any_value())))
                    .prop_map(|(fields, extra)| {
                        let mut object: Map<String, Value> = fields.into_iter().flatten().collect();
                        if let Some((name, value)) = extra {
                            object.insert(name, value);
                        }
                        Value::Object(object)
                    })
                    .boxed()
            }
            "array" => {
                let items: &'static Value = &schema["items"];
                prop_oneof![
                    proptest::collection::vec(for_schema(doc, items, depth + 1), 0..3).prop_map(Value::Array),
                    Just(Value::Array(vec![Value::Null; 2000])),
                ]
                .boxed()
            }
            "integer" | "number" => hostile_number(),
            "boolean" => any::<bool>().prop_map(Value::Bool).boxed(),
            "string" => hostile_string(),
            _ => any_value(),
        }
    };
    prop_oneof![8 => typed, 1 => any_value()].boxed()
}

#[derive(Debug, Clone, Copy)]
enum Who {
    Subscription,
    Machine,
    Operator,
    Application,
}

/// The credential of `who`; an application signs the body it sends, so the
/// body's content, not its signature, is what is judged.
fn authorization(w: &World, who: Who, method: &str, path: &str, body: &[u8]) -> String {
    match who {
        Who::Subscription => format!("Bearer {}", w.a.subscription_token),
        Who::Machine => format!("Bearer {}", w.a.machine_token),
        Who::Operator => format!("Bearer {}", w.service.operator_token),
        Who::Application => {
            common::sign_body(&w.a.application, method, path, time::OffsetDateTime::now_utc().unix_timestamp(), body)
        }
    }
}

/// Sends one body and checks the answer; returns its status.
fn send(w: &World, op: &Operation, who: Who, body: &Body, length: usize) -> Result<u16, TestCaseError> {
    let path = path_of(op, &w.a, length);
    let auth = authorization(w, who, &op.method, &path, &body.bytes());
    let reply = w
        .service
        .try_send(&op.method, &path, Some(&auth), body, &[])
        .map_err(|e| TestCaseError::fail(format!("{} {path} as {who:?}: no answer: {e}", op.method)))?;
    let what = format!("{} {path} as {who:?} with {}", op.method, describe(body));
    prop_assert!(reply.status < 500, "{}: HTTP {} {}", what, reply.status, reply.text());
    if !reply.is_success() {
        prop_assert!((400..500).contains(&reply.status), "{}: HTTP {}", what, reply.status);
        let Some(error) = reply.error_body() else {
            return Err(TestCaseError::fail(format!(
                "{what}: HTTP {} without the JSON error body: {}",
                reply.status,
                reply.text()
            )));
        };
        prop_assert!(error.error.len() >= 10 && !error.code.is_empty(), "{}: a vague error {:?}", what, error);
    }
    Ok(reply.status)
}

fn describe(body: &Body) -> String {
    let text = match body {
        Body::Json(value) => value.to_string(),
        Body::Raw(kind, bytes) => {
            format!("{kind:?} {} bytes {:?}", bytes.len(), String::from_utf8_lossy(&bytes[..bytes.len().min(60)]))
        }
        Body::Bytes(bytes) => format!("{} bytes", bytes.len()),
        Body::Chunked(bytes) => format!("{} bytes, chunked", bytes.len()),
        Body::Empty => "no body".into(),
    };
    text.chars().take(300).collect()
}

/// What one case sends: a schema-directed JSON value, or JSON text cut short or
/// with bytes changed, or random bytes under a JSON, an octet or no content type.
#[derive(Debug, Clone)]
enum Payload {
    Value(Value),
    Text { value: Value, cut: prop::sample::Index, flip: Option<(prop::sample::Index, u8)> },
    Bytes { bytes: Vec<u8>, content_type: &'static str },
    Deep(usize),
}

fn payload(doc: &'static Value, op: &'static Operation) -> BoxedStrategy<Payload> {
    let schema_value = match &op.kind {
        Kind::Json(schema) => for_schema(doc, schema, 0),
        _ => any_value(),
    };
    prop_oneof![
        6 => schema_value.clone().prop_map(Payload::Value),
        2 => (schema_value, any::<prop::sample::Index>(), proptest::option::of((any::<prop::sample::Index>(), any::<u8>())))
            .prop_map(|(value, cut, flip)| Payload::Text { value, cut, flip }),
        2 => (proptest::collection::vec(any::<u8>(), 0..3000), prop_oneof![Just("application/json"), Just("application/octet-stream"), Just("text/plain"), Just("")])
            .prop_map(|(bytes, content_type)| Payload::Bytes { bytes, content_type }),
        1 => (100usize..5000).prop_map(Payload::Deep),
    ]
    .boxed()
}

fn body_of(payload: Payload) -> (Body, usize) {
    match payload {
        Payload::Value(value) => (Body::Json(value), 0),
        Payload::Text { value, cut, flip } => {
            let mut text = value.to_string().into_bytes();
            if let Some((at, byte)) = flip {
                let i = at.index(text.len());
                text[i] = byte;
            }
            text.truncate(cut.index(text.len() + 1));
            (Body::Raw("application/json", text), 0)
        }
        Payload::Bytes { bytes, content_type } => {
            let length = bytes.len();
            (Body::Raw(content_type, bytes), length)
        }
        Payload::Deep(depth) => {
            let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            (Body::Raw("application/json", text.into_bytes()), 0)
        }
    }
}

fn cases(default: u32) -> u32 {
    offsite_testbed::allocation::cases(default)
}

#[test]
fn hostile_bodies_get_4xx_with_a_named_problem_never_5xx() {
    let w = world();
    let ops: &'static Vec<Operation> = Box::leak(Box::new(operations(&w.doc)));
    assert!(ops.len() >= 15, "only {} operations take a body", ops.len());
    let doc: &'static Value = &w.doc;
    let whos = [Who::Subscription, Who::Machine, Who::Operator, Who::Application];
    // Each operation under each credential, then random ones.
    let per_op = cases(3).max(1);
    let statuses = std::sync::Mutex::new(std::collections::BTreeMap::<u16, u32>::new());
    for op in ops {
        // Statuses other than 401/403 show the credential got past authentication.
        let reached = std::sync::atomic::AtomicU32::new(0);
        for who in whos {
            // A runner per operation and credential: a runner counts its cases across runs.
            let mut runner = TestRunner::new(Config { cases: per_op, failure_persistence: None, ..Config::default() });
            runner
                .run(&payload(doc, op), |p| {
                    let (body, length) = body_of(p);
                    let status = send(w, op, who, &body, length)?;
                    if std::env::var("HOSTILE_TRACE").is_ok() {
                        eprintln!("{} {} {who:?}: {status}", op.method, op.template);
                    }
                    *statuses.lock().unwrap().entry(status).or_default() += 1;
                    if status != 401 && status != 403 {
                        reached.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Ok(())
                })
                .unwrap_or_else(|e| panic!("{} {}: {e}", op.method, op.template));
        }
        assert!(reached.into_inner() > 0, "{} {}: no credential got past authentication", op.method, op.template);
        // The service still answers.
        let reply = w.service.call("GET", "/api/v1/whoami", Some(&w.a.subscription_token), &Body::Empty);
        assert_eq!(reply.status, 200, "after {} {}: {}", op.method, op.template, reply.text());
    }
    let statuses = statuses.into_inner().unwrap();
    eprintln!("{} hostile bodies sent to {} operations: {statuses:?}", statuses.values().sum::<u32>(), ops.len());
}
