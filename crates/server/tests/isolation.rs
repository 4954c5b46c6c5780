//! The tenant isolation matrix. Every operation comes from the service's own OpenAPI
//! document, so a new endpoint is covered the day it is added: its path parameters
//! are filled with tenant A's ids, it gets a body valid for its schema, and it is sent
//! with every kind of credential that must not reach A's data. Positive controls
//! send the same requests with A's own credentials, so the denials are shown to be
//! about who asks, not about broken requests.

mod common;

use std::cell::Cell;
use std::fmt::Write as _;

use common::{id_of, Body, Reply, Service, Tenant};
use serde_json::{json, Map, Value};

// ------------------------------------------------------------------ the world

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// Tenant A's subscription management credential.
    OwnSubscription,
    /// Tenant A's registered machine.
    OwnMachine,
    /// Tenant B's subscription management credential.
    OtherSubscription,
    /// Tenant B's registered machine.
    OtherMachine,
    /// Another machine in A's own vault: it may touch only its own records.
    SiblingMachine,
    /// Fresh, unused vault credentials of A's vault.
    Registration,
    Operator,
    NoCredential,
    NotAToken,
    /// The id of A's subscription credential with another secret.
    WrongSecret,
    /// The id of A's machine credential with another secret.
    WrongMachineSecret,
    /// A's real subscription credential, but not as a bearer token.
    NotBearer,
    /// Tenant A's offline-seeding application, signing its requests.
    OwnApplication,
    /// Tenant B's offline-seeding application.
    OtherApplication,
    /// A's application, with a request signed ten minutes ago.
    StaleApplication,
    /// A's application id and certificate thumbprint, signed with another key.
    ForgedApplication,
    /// The credential of a machine A removed from its vault.
    RemovedMachine,
    /// Vault credentials of A's that already registered a machine.
    UsedRegistration,
    /// A management credential of A's subscription that A revoked.
    RevokedSubscription,
    /// A's application signing with a certificate A removed from it.
    RemovedCertificate,
    /// A station credential of the datacenter A's import job is shipped to.
    OwnStation,
    /// A station credential of B's datacenter (another datacenter).
    OtherStation,
    /// A station credential of A's datacenter that the operator revoked.
    RevokedStation,
}

impl Who {
    fn label(self) -> &'static str {
        match self {
            Who::OwnSubscription => "A subscription",
            Who::OwnMachine => "A machine",
            Who::OtherSubscription => "B subscription",
            Who::OtherMachine => "B machine",
            Who::SiblingMachine => "A's other machine",
            Who::Registration => "A vault creds",
            Who::Operator => "operator",
            Who::NoCredential => "no credential",
            Who::NotAToken => "garbage token",
            Who::WrongSecret => "A sub id+bad secret",
            Who::WrongMachineSecret => "A mch id+bad secret",
            Who::NotBearer => "Basic scheme",
            Who::OwnApplication => "A application",
            Who::OtherApplication => "B application",
            Who::StaleApplication => "A app, stale time",
            Who::ForgedApplication => "A app, other key",
            Who::RemovedMachine => "A removed machine",
            Who::UsedRegistration => "A used vault creds",
            Who::RevokedSubscription => "A revoked sub cred",
            Who::RemovedCertificate => "A app, removed cert",
            Who::OwnStation => "A's DC station",
            Who::OtherStation => "B's DC station",
            Who::RevokedStation => "A's DC station, revoked",
        }
    }
}

/// Answers that are wrong today and reported: tolerated (marked KNOWN in the table)
/// so the rest of the matrix keeps guarding. Remove an entry once it is fixed.
const KNOWN_DEFECTS: &[(&str, &str, Who)] = &[];

const UNAUTHENTICATED: &[Who] = &[
    Who::NoCredential,
    Who::NotAToken,
    Who::WrongSecret,
    Who::WrongMachineSecret,
    Who::NotBearer,
    Who::StaleApplication,
    Who::ForgedApplication,
    Who::RemovedMachine,
    Who::UsedRegistration,
    Who::RevokedSubscription,
    Who::RemovedCertificate,
    Who::RevokedStation,
];

/// What a request must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Success,
    /// 403 or 404: refused, or A's resource is invisible.
    Denied,
    /// 401, 403 or 404 — never a success.
    Refused,
    Forbidden,
    /// 404: what another tenant hears of a resource.
    NotFound,
    Unauthorized,
    /// A request inside the caller's own data (mixed ids): anything but a server failure.
    NoFailure,
    /// 2xx, or 409: the request reached A's resource and was judged on its state
    /// (a step of a life cycle the generic requests cannot walk to).
    Reached,
    /// Not a status: A's data as it was (see `World::unchanged`).
    Unchanged,
}

impl Expect {
    fn accepts(self, status: u16) -> bool {
        match self {
            Expect::Success => (200..300).contains(&status),
            Expect::Denied => matches!(status, 403 | 404),
            Expect::Refused => matches!(status, 401 | 403 | 404),
            Expect::Forbidden => status == 403,
            Expect::NotFound => status == 404,
            Expect::Unauthorized => status == 401,
            Expect::NoFailure => status < 500,
            Expect::Reached => (200..300).contains(&status) || status == 409,
            Expect::Unchanged => false,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Expect::Success => "2xx",
            Expect::Denied => "403/404",
            Expect::Refused => "401/403/404",
            Expect::Forbidden => "403",
            Expect::NotFound => "404",
            Expect::Unauthorized => "401",
            Expect::NoFailure => "<500",
            Expect::Reached => "2xx/409",
            Expect::Unchanged => "A intact",
        }
    }
}

/// One documented operation.
#[derive(Debug, Clone)]
struct Operation {
    method: String,
    template: String,
    body: BodyKind,
    /// Required query parameters.
    query: Vec<String>,
}

#[derive(Debug, Clone)]
enum BodyKind {
    None,
    Json(Value),
    Octets,
    Text,
}

impl Operation {
    fn params(&self) -> Vec<&str> {
        self.template.split('/').filter_map(|part| part.strip_prefix('{')?.strip_suffix('}')).collect()
    }

    /// Names a resource of some tenant: the caller must own it to touch it.
    fn is_scoped(&self) -> bool {
        !self.params().is_empty()
    }

    fn is_read(&self) -> bool {
        matches!(self.method.as_str(), "GET" | "HEAD")
    }

    fn is_repository(&self) -> bool {
        self.template.contains("/repository/")
    }

    /// Whose credential a scoped operation is for, within one tenant.
    fn side(&self) -> Side {
        if SIGNER_SCOPED.iter().any(|(m, t)| *m == self.method && *t == self.template) {
            Side::Signers
        } else if OPERATOR_SCOPED.iter().any(|(m, t)| *m == self.method && *t == self.template) {
            Side::Operator
        } else if BOTH_SCOPED.iter().any(|(m, t)| *m == self.method && *t == self.template) || self.is_export_customer()
        {
            Side::Both
        } else if self.is_repository() {
            Side::Machine
        } else if self.template.starts_with("/api/v1/machines/{machine_id}") {
            if self.is_read() {
                Side::Both
            } else if (self.method == "DELETE" && self.template == "/api/v1/machines/{machine_id}")
                || self.template == "/api/v1/machines/{machine_id}/undelete"
            {
                // The subscription's: removing a machine, undoing what it removed.
                Side::Subscription
            } else {
                Side::Machine
            }
        } else {
            Side::Subscription
        }
    }

    /// An export job's customer's operation: its machines, not the vault's others.
    fn is_export_customer(&self) -> bool {
        EXPORT_CUSTOMER.iter().any(|(m, t)| *m == self.method && *t == self.template)
    }

    /// The tenant's offline-seeding application may call it.
    fn for_application(&self) -> bool {
        APPLICATION_ALLOWED.iter().any(|(m, t)| *m == self.method && *t == self.template)
    }

    /// The ingest station of the datacenter the tenant's import job is shipped to
    /// may call it (with a station credential of that datacenter).
    fn for_station(&self) -> bool {
        STATION_ALLOWED.iter().any(|(m, t)| *m == self.method && *t == self.template)
    }

    /// Names an import job: another datacenter's station hears it does not exist.
    fn names_import_job(&self) -> bool {
        self.params().iter().any(|p| matches!(*p, "import_job_id" | "import_job_name" | "export_job_id"))
    }

    fn has_leaf_and_parent(&self) -> bool {
        let params = self.params();
        params.iter().any(|p| LEAF.contains(p)) && params.iter().any(|p| !LEAF.contains(p) && *p != "folder")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Subscription,
    Machine,
    Both,
    /// The datacenter operator's steps on a tenant's resource.
    Operator,
    /// Signed custody events: only those who sign them with their own keys (the
    /// tenant's application, the station of its job's datacenter), not the
    /// subscription, its machines or the operator, who hold no key.
    Signers,
}

/// The drive A's export job has recorded (its station signs `written` for it).
const EXPORT_DRIVE: &str = "e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0";

/// Operations whose body is signed by the caller's own key (`World::send` signs
/// it for A's application and A's station).
const SIGNER_SCOPED: &[(&str, &str)] =
    &[("POST", "/api/v1/import-jobs/{import_job_id}/custody"), ("POST", "/api/v1/export-jobs/{export_job_id}/custody")];

/// Operations on a tenant's resources (or a datacenter's) that only the operator,
/// and for some the station of the job's datacenter (`STATION_ALLOWED`), may call.
const OPERATOR_SCOPED: &[(&str, &str)] = &[
    ("POST", "/api/v1/import-jobs/{import_job_id}/receive"),
    ("PUT", "/api/v1/import-jobs/{import_job_id}/drives/{drive_id}/state"),
    ("POST", "/api/v1/import-jobs/{import_job_id}/complete"),
    ("PUT", "/api/v1/import-jobs/{import_job_id}/files"),
    ("PUT", "/api/v1/import-jobs/{import_job_id}/drives/{drive_id}/logs/{kind}"),
    ("POST", "/api/v1/import-jobs/{import_job_id}/package"),
    ("GET", "/api/v1/datacenters/{datacenter_id}/export-jobs"),
    ("GET", "/api/v1/export-jobs/{export_job_id}/file"),
    ("POST", "/api/v1/export-jobs/{export_job_id}/begin"),
    ("POST", "/api/v1/export-jobs/{export_job_id}/drives"),
    ("POST", "/api/v1/export-jobs/{export_job_id}/ship"),
    ("POST", "/api/v1/protection-requests/{request_id}/approve"),
    ("POST", "/api/v1/protection-requests/{request_id}/reject"),
    ("POST", "/api/v1/datacenters/{datacenter_id}/station-credentials"),
    ("GET", "/api/v1/datacenters/{datacenter_id}/station-credentials"),
    ("DELETE", "/api/v1/datacenters/{datacenter_id}/station-credentials/{credential_id}"),
    // Storage quotas are the operator's to set (the subscription reads its own).
    ("PUT", "/api/v1/subscriptions/{subscription_id}/quota"),
    // A subscription's portal users are the operator's to manage.
    ("PUT", "/api/v1/portal-users/{user_id}/disabled"),
    ("PUT", "/api/v1/portal-users/{user_id}/password"),
    ("DELETE", "/api/v1/portal-users/{user_id}"),
];

/// What a station credential of the datacenter a tenant's import job is shipped
/// to may call on it: the station's protocol (find and read the job, record the
/// package's arrival, move drives on, list what the container holds, upload files
/// and logs, package), nothing of subscriptions, vaults, machines or storage.
const STATION_ALLOWED: &[(&str, &str)] = &[
    ("GET", "/api/v1/import-jobs/{import_job_id}"),
    ("GET", "/api/v1/import-jobs/by-name/{import_job_name}"),
    ("GET", "/api/v1/import-jobs/{import_job_id}/files"),
    ("GET", "/api/v1/import-jobs/{import_job_id}/parts"),
    ("POST", "/api/v1/import-jobs/{import_job_id}/receive"),
    ("PUT", "/api/v1/import-jobs/{import_job_id}/drives/{drive_id}/state"),
    ("PUT", "/api/v1/import-jobs/{import_job_id}/files"),
    ("PUT", "/api/v1/import-jobs/{import_job_id}/drives/{drive_id}/logs/{kind}"),
    ("POST", "/api/v1/import-jobs/{import_job_id}/package"),
    ("GET", "/api/v1/import-jobs/{import_job_id}/custody"),
    ("POST", "/api/v1/import-jobs/{import_job_id}/custody"),
    // An export job's station steps, and its view (without recovery keys).
    ("GET", "/api/v1/datacenters/{datacenter_id}/export-jobs"),
    ("GET", "/api/v1/export-jobs/{export_job_id}"),
    ("GET", "/api/v1/export-jobs/{export_job_id}/files"),
    ("GET", "/api/v1/export-jobs/{export_job_id}/file"),
    ("POST", "/api/v1/export-jobs/{export_job_id}/begin"),
    ("POST", "/api/v1/export-jobs/{export_job_id}/drives"),
    ("POST", "/api/v1/export-jobs/{export_job_id}/ship"),
    ("GET", "/api/v1/export-jobs/{export_job_id}/custody"),
    ("POST", "/api/v1/export-jobs/{export_job_id}/custody"),
];

/// Operations of an export job's customer: the subscription and the machines the
/// job carries (not another machine of the vault), and operators.
const EXPORT_CUSTOMER: &[(&str, &str)] = &[
    ("POST", "/api/v1/subscriptions/{subscription_id}/export-jobs"),
    ("POST", "/api/v1/subscriptions/{subscription_id}/export-jobs/preview"),
    ("GET", "/api/v1/export-jobs/{export_job_id}"),
    ("POST", "/api/v1/export-jobs/{export_job_id}/delivered"),
    ("POST", "/api/v1/export-jobs/{export_job_id}/complete"),
    ("POST", "/api/v1/export-jobs/{export_job_id}/cancel"),
    ("GET", "/api/v1/export-jobs/{export_job_id}/custody"),
    ("GET", "/api/v1/export-jobs/{export_job_id}/files"),
];

/// Operations on a subscription's resources every machine of the subscription may
/// call too (they are the subscription's, not one machine's: an agent waits for its
/// import job by name).
const BOTH_SCOPED: &[(&str, &str)] = &[
    ("GET", "/api/v1/import-jobs/by-name/{import_job_name}"),
    // Each machine sees the export jobs carrying it (another machine's: none).
    ("GET", "/api/v1/subscriptions/{subscription_id}/export-jobs"),
];

/// What a subscription's offline-seeding application may call on its resources:
/// offline seeding's steps, nothing of vaults, machines or repositories.
const APPLICATION_ALLOWED: &[(&str, &str)] = &[
    ("GET", "/api/v1/subscriptions/{subscription_id}"),
    ("GET", "/api/v1/subscriptions/{subscription_id}/storage-accounts"),
    ("GET", "/api/v1/storage-accounts/{storage_account_id}/containers"),
    ("POST", "/api/v1/subscriptions/{subscription_id}/import-jobs"),
    ("GET", "/api/v1/subscriptions/{subscription_id}/import-jobs"),
    ("GET", "/api/v1/import-jobs/{import_job_id}"),
    ("GET", "/api/v1/import-jobs/by-name/{import_job_name}"),
    ("PUT", "/api/v1/import-jobs/{import_job_id}/shipping"),
    ("POST", "/api/v1/import-jobs/{import_job_id}/drives"),
    ("GET", "/api/v1/import-jobs/{import_job_id}/drives/{drive_id}/logs/{kind}"),
    ("PUT", "/api/v1/import-jobs/{import_job_id}/file-list"),
    ("GET", "/api/v1/import-jobs/{import_job_id}/missing-files"),
    ("GET", "/api/v1/import-jobs/{import_job_id}/custody"),
    ("POST", "/api/v1/import-jobs/{import_job_id}/custody"),
];

/// The import job's steps, in the order of its life cycle, so the positive control
/// walks A's job: shipping, arrival, a drive transferring; then cancelled (last).
const IMPORT_JOB_STEPS: &[&str] = &[
    "/api/v1/import-jobs/{import_job_id}/file-list",
    "/api/v1/import-jobs/{import_job_id}/shipping",
    "/api/v1/import-jobs/{import_job_id}/drives",
    "/api/v1/import-jobs/{import_job_id}/receive",
    "/api/v1/import-jobs/{import_job_id}/drives/{drive_id}/state",
    "/api/v1/import-jobs/{import_job_id}/files",
    "/api/v1/import-jobs/{import_job_id}/drives/{drive_id}/logs/{kind}",
    "/api/v1/import-jobs/{import_job_id}/package",
    "/api/v1/import-jobs/{import_job_id}/complete",
    "/api/v1/import-jobs/{import_job_id}/cancel",
    "/api/v1/export-jobs/{export_job_id}/begin",
    "/api/v1/export-jobs/{export_job_id}/drives",
    "/api/v1/export-jobs/{export_job_id}/ship",
    "/api/v1/export-jobs/{export_job_id}/delivered",
    "/api/v1/export-jobs/{export_job_id}/complete",
    "/api/v1/export-jobs/{export_job_id}/cancel",
];

/// `complete` and `package` need every drive done, adoption a completed job: one
/// generic request cannot get there (tests/import_jobs.rs and tests/seeding.rs walk
/// it), so they may answer 409. So may creating the application, which every
/// tenant of these tests has already, and the missing files of a job whose file
/// list the walk may not have registered yet.
const REACHED_ONLY: &[&str] = &[
    "/api/v1/import-jobs/{import_job_id}/missing-files",
    "/api/v1/import-jobs/{import_job_id}/complete",
    "/api/v1/import-jobs/{import_job_id}/package",
    "/api/v1/machines/{machine_id}/adopt",
    "/api/v1/subscriptions/{subscription_id}/application",
    // An export job's steps follow its life cycle; a machine exports itself only.
    "/api/v1/subscriptions/{subscription_id}/export-jobs",
    "/api/v1/export-jobs/{export_job_id}/delivered",
    "/api/v1/export-jobs/{export_job_id}/complete",
    "/api/v1/export-jobs/{export_job_id}/cancel",
    "/api/v1/export-jobs/{export_job_id}/ship",
    // A request is decided once: the second decision finds it decided.
    "/api/v1/protection-requests/{request_id}/approve",
    "/api/v1/protection-requests/{request_id}/reject",
];

/// Path parameters naming the last resource of a path, under a parent resource.
const LEAF: &[&str] = &["job_id", "name", "credential_id", "thumbprint", "channel_id"];

/// A concrete request for an operation.
struct Request {
    variant: &'static str,
    path: String,
    body: Body,
}

/// A's data as A sees it: (path, status, body) per read.
type Snapshot = Vec<(String, u16, String)>;

/// One line of the result table.
struct Row {
    method: String,
    template: String,
    variant: &'static str,
    who: Who,
    status: u16,
    expected: Expect,
    problem: Option<String>,
    /// A failure listed in `KNOWN_DEFECTS`.
    known: Option<String>,
}

struct World {
    service: Service,
    a: Tenant,
    b: Tenant,
    /// The credential of a second machine in A's vault.
    sibling_token: String,
    /// A machine of A's vault that was removed, and the vault credentials it used.
    removed_token: String,
    /// A's management credential that A revoked.
    revoked_token: String,
    /// A's application with a certificate A removed.
    removed_certificate: offsite_api::application_auth::ApplicationIdentity,
    /// Station credentials of A's datacenter, of B's, and one of A's the operator revoked.
    own_station_token: String,
    /// The signing key A's station signs custody events with.
    own_station_key: offsite_seeding::custody::StationKey,
    other_station_token: String,
    revoked_station_token: String,
    used_registration: String,
    doc: Value,
    names: Cell<u32>,
    rows: Vec<Row>,
}

impl World {
    fn new() -> World {
        let service = Service::start();
        let a = service.tenant("alpha");
        let b = service.tenant("bravo");
        let secret = service.client(&a.subscription_token).vault_credentials(&a.vault_id, None).unwrap();
        let sibling = service.client(&secret.registration_secret).register("alpha-web02", "alpha-web02.example");
        let sibling_token = sibling.expect("a second machine registers").machine_credential;
        let used_registration = secret.registration_secret;
        let spare = service.client(&a.subscription_token).vault_credentials(&a.vault_id, None).unwrap();
        let old = service.client(&spare.registration_secret).register("alpha-old03", "alpha-old03.example");
        let old = old.expect("a third machine registers");
        let path = format!("/api/v1/machines/{}", old.machine.id);
        let removed = service.call("DELETE", &path, Some(&a.subscription_token), &Body::Empty);
        assert_eq!(removed.status, 200, "the third machine is removed: {}", removed.text());
        let removed_token = old.machine_credential;
        let manager = service.client(&a.subscription_token);
        let revoked = manager.issue_management_credential(&a.subscription_id, None).unwrap();
        manager.revoke_management_credential(&a.subscription_id, &revoked.credential.id).unwrap();
        let revoked_token = revoked.management_credential;
        let retired = offsite_seeding::application::generate(&a.subscription_id).expect("a certificate");
        let upload = common::proven(&manager, &a.subscription_id, &retired.cert_pem, &retired.key_pem);
        manager.upload_application_certificate(&a.subscription_id, &upload).unwrap();
        manager.remove_application_certificate(&a.subscription_id, &retired.thumbprint).unwrap();
        let removed_certificate = offsite_api::application_auth::ApplicationIdentity {
            application_id: a.application.application_id.clone(),
            thumbprint: retired.thumbprint,
            key_pem: retired.key_pem,
        };
        let operator = service.operator();
        let own_station_key = offsite_seeding::custody::StationKey::generate();
        let own_station_token = operator
            .issue_station_credential_with_key(&a.datacenter_id, None, Some(&own_station_key.public_hex()))
            .expect("a station credential")
            .station_credential;
        // A's export job has a drive written, so its station can sign `written`.
        let station = service.client(&own_station_token);
        station.begin_export(&a.export_job_id).expect("the export begins");
        let export_drive = offsite_api::types::ExportDrive {
            drive_id: EXPORT_DRIVE.into(),
            index: 0,
            fingerprint: "ab".repeat(32),
            bytes: 1,
            recovery_key: Some("3F2A9C01-00112233-44556677-8899AABB-CCDDEEFF-00112233-44556677-8899AABB".into()),
        };
        station.add_export_drive(&a.export_job_id, &export_drive).expect("a drive of the export");
        let other_station_token =
            operator.issue_station_credential(&b.datacenter_id, None).expect("a station credential").station_credential;
        let revoked = operator.issue_station_credential(&a.datacenter_id, Some(30)).expect("a station credential");
        operator.revoke_station_credential(&a.datacenter_id, &revoked.credential.id).expect("revoked");
        let revoked_station_token = revoked.station_credential;
        let doc = service.openapi();
        World {
            service,
            a,
            b,
            sibling_token,
            removed_token,
            revoked_token,
            removed_certificate,
            own_station_token,
            own_station_key,
            other_station_token,
            revoked_station_token,
            used_registration,
            doc,
            names: Cell::new(0),
            rows: Vec::new(),
        }
    }

    fn operations(&self) -> Vec<Operation> {
        let mut found = Vec::new();
        for (template, item) in self.doc["paths"].as_object().expect("the document has paths") {
            for method in ["get", "head", "post", "put", "patch", "delete"] {
                let Some(operation) = item.get(method) else { continue };
                let content = &operation["requestBody"]["content"];
                let body = if let Some(json) = content.get("application/json") {
                    BodyKind::Json(json["schema"].clone())
                } else if content.get("application/octet-stream").is_some() {
                    BodyKind::Octets
                } else if content.get("text/plain").is_some() {
                    BodyKind::Text
                } else if content.is_null() {
                    BodyKind::None
                } else {
                    panic!("{method} {template} takes a body of a kind this test cannot make: {content}")
                };
                let query = operation["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["in"] == "query" && p["required"] == true)
                    .filter_map(|p| p["name"].as_str().map(str::to_string))
                    .collect();
                found.push(Operation { method: method.to_uppercase(), template: template.clone(), body, query });
            }
        }
        assert!(found.len() >= 30, "the document lists only {} operations", found.len());
        found
    }

    fn authorization(&self, who: Who, method: &str, path: &str, body: &[u8]) -> Option<String> {
        let bearer = |token: &str| Some(format!("Bearer {token}"));
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        match who {
            Who::OwnApplication => Some(common::sign_body(&self.a.application, method, path, now, body)),
            Who::OtherApplication => Some(common::sign_body(&self.b.application, method, path, now, body)),
            Who::StaleApplication => Some(common::sign_body(&self.a.application, method, path, now - 600, body)),
            Who::ForgedApplication => {
                let other_key = offsite_seeding::application::generate("forger").expect("a key").key_pem;
                let forged = offsite_api::application_auth::ApplicationIdentity {
                    key_pem: other_key,
                    ..self.a.application.clone()
                };
                Some(common::sign_body(&forged, method, path, now, body))
            }
            Who::OwnSubscription => bearer(&self.a.subscription_token),
            Who::OwnMachine => bearer(&self.a.machine_token),
            Who::OtherSubscription => bearer(&self.b.subscription_token),
            Who::OtherMachine => bearer(&self.b.machine_token),
            Who::SiblingMachine => bearer(&self.sibling_token),
            Who::RemovedMachine => bearer(&self.removed_token),
            Who::RevokedSubscription => bearer(&self.revoked_token),
            Who::RemovedCertificate => Some(common::sign_body(&self.removed_certificate, method, path, now, body)),
            Who::UsedRegistration => bearer(&self.used_registration),
            Who::Registration => bearer(&self.a.spare_registration),
            Who::Operator => bearer(&self.service.operator_token),
            Who::OwnStation => bearer(&self.own_station_token),
            Who::OtherStation => bearer(&self.other_station_token),
            Who::RevokedStation => bearer(&self.revoked_station_token),
            Who::NoCredential => None,
            Who::NotAToken => bearer("not-a-token"),
            Who::WrongSecret => bearer(&format!("{}.{}", id_of(&self.a.subscription_token), "0".repeat(64))),
            Who::WrongMachineSecret => bearer(&format!("{}.{}", id_of(&self.a.machine_token), "f".repeat(64))),
            Who::NotBearer => Some(format!("Basic {}", self.a.subscription_token)),
        }
    }

    /// The requests for `op` against `owner`'s resources. `parent` supplies the ids
    /// of the resources above the last one (normally the owner too).
    fn requests(&self, op: &Operation, owner: &Tenant, parent: &Tenant) -> Vec<Request> {
        let folders: &[&'static str] = if op.params().contains(&"folder") { &["data", "config"] } else { &[""] };
        folders
            .iter()
            .map(|folder| {
                let mut path = op
                    .template
                    .split('/')
                    .map(|part| {
                        let Some(param) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) else {
                            return part.to_string();
                        };
                        match param {
                            "subscription_id" => parent.subscription_id.clone(),
                            "vault_id" => parent.vault_id.clone(),
                            "machine_id" => parent.machine_id.clone(),
                            "storage_account_id" => parent.storage_account_id.clone(),
                            "job_id" => owner.job_id.clone(),
                            "import_job_id" => parent.import_job_id.clone(),
                            "export_job_id" => parent.export_job_id.clone(),
                            "drive_id" => owner.drive_id.clone(),
                            "import_job_name" => parent.import_job_name.clone(),
                            "datacenter_id" => parent.datacenter_id.clone(),
                            "credential_id" if op.template.contains("/station-credentials/") => {
                                owner.spare_station_credential_id.clone()
                            }
                            "credential_id" => owner.spare_credential_id.clone(),
                            "thumbprint" => owner.spare_thumbprint.clone(),
                            "kind" => "error".to_string(),
                            "request_id" => parent.protection_request_id.clone(),
                            "channel_id" => owner.notification_channel_id.clone(),
                            "user_id" => parent.portal_user_id.clone(),
                            "folder" => folder.to_string(),
                            "name" if *folder == "config" => "config".to_string(),
                            "name" => owner.file_name.clone(),
                            other => panic!(
                                "{} {} has a path parameter `{other}` the isolation test does not know: \
                                 teach `World::requests` which resource of a tenant it names",
                                op.method, op.template
                            ),
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("/");
                let body = match &op.body {
                    BodyKind::None => Body::Empty,
                    BodyKind::Json(schema) => Body::Json(self.example(schema, "")),
                    BodyKind::Octets if *folder == "config" => Body::Bytes(owner.config_bytes.clone()),
                    BodyKind::Octets => Body::Bytes(owner.file_bytes.clone()),
                    // A file list with no file, which A's job may be given.
                    BodyKind::Text if op.template.ends_with("/file-list") => Body::Raw("text/plain", Vec::new()),
                    BodyKind::Text => Body::Raw("text/plain", b"probe log line\n".to_vec()),
                };
                let length = match &body {
                    Body::Bytes(bytes) => bytes.len(),
                    _ => 0,
                };
                let query: Vec<String> = op
                    .query
                    .iter()
                    .map(|name| {
                        let value = match name.as_str() {
                            "path" if op.template.starts_with("/api/v1/export-jobs/") => "config".to_string(),
                            "path" => {
                                self.names.set(self.names.get() + 1);
                                format!("seed/probe-{}", self.names.get())
                            }
                            "offset" => "0".to_string(),
                            "file_size" => length.to_string(),
                            "drive_id" => owner.drive_id.clone(),
                            // The header diskprep registered for that drive.
                            "fingerprint" => common::fingerprint_of(&owner.drive_id),
                            // The empty list's, the body the file-list upload is sent.
                            "digest" => offsite_seeding::file_list::ListingDigest::default().finish(),
                            // An export job's file: the config of the owner's machine.
                            "machine_id" => parent.machine_id.clone(),
                            other => panic!(
                                "{} {} has a query parameter `{other}` the isolation test does not know: teach \
                                 `World::requests` its value",
                                op.method, op.template
                            ),
                        };
                        format!("{name}={value}")
                    })
                    .collect();
                if !query.is_empty() {
                    path = format!("{path}?{}", query.join("&"));
                }
                Request { variant: if folder.is_empty() { "" } else { folder }, path, body }
            })
            .collect()
    }

    /// A value valid for `schema` (and for the handler's own checks, where a field's
    /// name says what it holds).
    fn example(&self, schema: &Value, field: &str) -> Value {
        if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
            let name = target.strip_prefix("#/components/schemas/").expect("references point at schemas");
            return self.example(&self.doc["components"]["schemas"][name], field);
        }
        if let Some(example) = schema.get("example") {
            return example.clone();
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            // A drive's new state: the step after the package's arrival.
            if field == "state" && values.contains(&json!("transferring")) {
                return json!("transferring");
            }
            return values[0].clone();
        }
        for key in ["oneOf", "anyOf", "allOf"] {
            if let Some(options) = schema.get(key).and_then(Value::as_array) {
                let first = options.iter().find(|o| o["type"] != "null").expect("a non-null alternative");
                return self.example(first, field);
            }
        }
        let kind = match &schema["type"] {
            Value::String(kind) => kind.as_str(),
            Value::Array(kinds) => kinds.iter().filter_map(Value::as_str).find(|k| *k != "null").unwrap_or("null"),
            _ if schema.get("properties").is_some() => "object",
            _ => panic!("a schema this test cannot fill: {schema}"),
        };
        match kind {
            "object" => {
                let properties = schema["properties"].as_object();
                // A certificate upload proves possession of its key over A's challenge.
                if properties.is_some_and(|p| p.contains_key("certificate") && p.contains_key("possession")) {
                    let certificate = offsite_seeding::application::generate("probe").expect("a cert");
                    let manager = self.service.client(&self.a.subscription_token);
                    let upload =
                        common::proven(&manager, &self.a.subscription_id, &certificate.cert_pem, &certificate.key_pem);
                    return serde_json::to_value(upload).expect("JSON");
                }
                let mut object = Map::new();
                for (name, property) in properties.into_iter().flatten() {
                    // A notification channel is an address or a webhook, not both.
                    if name == "email" && properties.is_some_and(|p| p.contains_key("webhook_url")) {
                        continue;
                    }
                    // A registration replaces no machine unless asked to.
                    if name == "replaces" {
                        continue;
                    }
                    object.insert(name.clone(), self.example(property, name));
                }
                Value::Object(object)
            }
            "array" => json!([self.example(&schema["items"], field)]),
            "integer" | "number" => json!(1),
            "boolean" => json!(true),
            "null" => Value::Null,
            "string" if schema["format"] == "date-time" => json!("2024-05-01T12:00:00Z"),
            "string" => {
                self.names.set(self.names.get() + 1);
                let n = self.names.get();
                match field {
                    "snapshot_id" => json!(common::content_name(format!("probe {n}").as_bytes())),
                    "hostname" => json!(format!("probe-{n}.example")),
                    "webhook_url" => json!(format!("https://hooks.example.com/probe-{n}")),
                    "path" => json!(format!("/srv/probe-{n}")),
                    "address" => json!(format!("{n} Probe Street\nTestville")),
                    // Portal users: an address, a long enough password, A's subscription.
                    "email" => json!(format!("probe-{n}@example.com")),
                    "password" => json!(format!("probe password number {n}")),
                    "subscription_id" => json!(self.a.subscription_id),
                    // Import jobs name A's storage and a datacenter.
                    "storage_account" => json!(self.a.storage_account_name),
                    "container" => json!(self.a.container_name),
                    "datacenter" => json!(self.a.datacenter_name),
                    // Adoption names A's import job.
                    "import_job" => json!(self.a.import_job_name),
                    // An export names A's machine.
                    "machine_id" => json!(self.a.machine_id),
                    "certificate" => json!(offsite_seeding::application::generate("probe").expect("a cert").cert_pem),
                    _ => json!(format!("probe-{n}")),
                }
            }
            other => panic!("a schema type this test cannot fill: {other}"),
        }
    }

    fn send(&self, op: &Operation, request: &Request, who: Who) -> Reply {
        let signed = self.signed_body(op, who);
        let body = signed.as_ref().unwrap_or(&request.body);
        let authorization = self.authorization(who, &op.method, &request.path, &body.bytes());
        self.service.send(&op.method, &request.path, authorization.as_deref(), body, &[])
    }

    /// The body of a signed operation as `who` signs it with its own key: a
    /// custody event after the last one of A's job's log, `prepared` by A's
    /// application, `received` by A's station. Others send the generic body.
    fn signed_body(&self, op: &Operation, who: Who) -> Option<Body> {
        use offsite_api::types::{CustodyEventKind, CustodyLog};
        use offsite_seeding::custody::{seal, CustodySigner, Draft};
        if op.side() != Side::Signers {
            return None;
        }
        let (signer, kind) = match who {
            // The application signs nothing of an export job: its generic body.
            Who::OwnApplication if op.template.starts_with("/api/v1/export-jobs/") => return None,
            Who::OwnApplication => {
                let signer = offsite_api::application_auth::Signer::new(&self.a.application).expect("A's key");
                (CustodySigner::Application(signer), CustodyEventKind::Prepared)
            }
            Who::OwnStation => {
                (self.own_station_key.signer(id_of(&self.own_station_token)), CustodyEventKind::Received)
            }
            _ => return None,
        };
        // An export job's drives are the station's: it signs `written`.
        let export = op.template.starts_with("/api/v1/export-jobs/");
        let (path, drive, kind) = match export {
            true => (
                format!("/api/v1/export-jobs/{}/custody", self.a.export_job_id),
                EXPORT_DRIVE,
                CustodyEventKind::Written,
            ),
            false => (format!("/api/v1/import-jobs/{}/custody", self.a.import_job_id), self.a.drive_id.as_str(), kind),
        };
        let log = self.service.call("GET", &path, Some(&self.service.operator_token), &Body::Empty);
        let log: CustodyLog = serde_json::from_str(&log.text()).expect("A's custody log");
        let now = time::OffsetDateTime::now_utc();
        let job_kind = if export { "export" } else { "import" };
        let draft = Draft::new(job_kind, &log.job_id, Some(drive.to_string()), kind, now, "probe");
        let event = seal(&draft, &log.events, &signer).expect("a sealed event");
        Some(Body::Json(serde_json::to_value(event).expect("JSON")))
    }

    /// Sends and records; checks the status, that refusals are JSON error bodies,
    /// and that no answer to anyone but A shows A's ids or secrets.
    fn check(&mut self, op: &Operation, request: &Request, who: Who, expected: Expect) -> Reply {
        let reply = self.send(op, request, who);
        let mut problem = None;
        if !expected.accepts(reply.status) {
            problem = Some(format!("expected {}: {}", expected.label(), snippet(&reply)));
        } else if !reply.is_success() && op.method != "HEAD" && reply.error_body().is_none() {
            problem = Some(format!("the refusal is not a JSON error body: {}", snippet(&reply)));
        } else if reply.error_body().is_some_and(|e| e.error.contains("   ")) {
            // A string literal continued without `\` keeps the next line's indentation.
            problem = Some(format!("the message has a run of spaces: {}", snippet(&reply)));
        } else if reply.is_success()
            && (matches!(who, Who::OtherSubscription | Who::OtherMachine | Who::OtherApplication | Who::OtherStation)
                || UNAUTHENTICATED.contains(&who))
        {
            let text = reply.text();
            if let Some(leak) = self.a.secrets_and_ids().into_iter().find(|id| text.contains(id)) {
                problem = Some(format!("the answer shows A's {leak}: {}", snippet(&reply)));
            }
        }
        let known = KNOWN_DEFECTS.iter().any(|(m, t, w)| *m == op.method && *t == op.template && *w == who);
        let (problem, known) = if known { (None, problem) } else { (problem, None) };
        if let Some(defect) = &known {
            eprintln!("known defect: {} {} as {}: {defect}", op.method, op.template, who.label());
        }
        self.rows.push(Row {
            method: op.method.clone(),
            template: op.template.clone(),
            variant: request.variant,
            who,
            status: reply.status,
            expected,
            problem,
            known,
        });
        reply
    }

    fn note(&mut self, op: &Operation, variant: &'static str, who: Who, problem: String) {
        self.rows.push(Row {
            method: op.method.clone(),
            template: op.template.clone(),
            variant,
            who,
            status: 0,
            expected: Expect::Unchanged,
            problem: Some(problem),
            known: None,
        });
    }

    /// Everything A has, as A and the operator see it.
    fn snapshot_of_a(&self) -> Snapshot {
        let a = &self.a;
        let sub = Some(a.subscription_token.as_str());
        let machine = Some(a.machine_token.as_str());
        let operator = Some(self.service.operator_token.as_str());
        let reads = [
            (format!("/subscriptions/{}", a.subscription_id), sub),
            (format!("/subscriptions/{}/vaults", a.subscription_id), sub),
            (format!("/subscriptions/{}/storage-accounts", a.subscription_id), sub),
            (format!("/storage-accounts/{}/containers", a.storage_account_id), sub),
            (format!("/vaults/{}", a.vault_id), sub),
            (format!("/vaults/{}/machines", a.vault_id), sub),
            (format!("/machines/{}", a.machine_id), sub),
            (format!("/machines/{}/protected-items", a.machine_id), sub),
            (format!("/machines/{}/recovery-points", a.machine_id), sub),
            (format!("/machines/{}/jobs", a.machine_id), sub),
            (format!("/machines/{}/jobs/{}", a.machine_id, a.job_id), sub),
            (format!("/subscriptions/{}/import-jobs", a.subscription_id), sub),
            (format!("/import-jobs/{}", a.import_job_id), sub),
            (format!("/import-jobs/by-name/{}", a.import_job_name), sub),
            (format!("/import-jobs/{}/files", a.import_job_id), sub),
            (format!("/import-jobs/{}/drives/{}/logs/error", a.import_job_id, a.drive_id), sub),
            (format!("/subscriptions/{}/application", a.subscription_id), sub),
            (format!("/machines/{}/repository/data", a.machine_id), machine),
            (format!("/machines/{}/repository/config", a.machine_id), machine),
            (format!("/machines/{}/repository/data/{}", a.machine_id, a.file_name), machine),
            (format!("/machines/{}/repository/config/config", a.machine_id), machine),
            ("/whoami".to_string(), machine),
            ("/subscriptions".to_string(), operator),
            ("/datacenters".to_string(), operator),
            (format!("/datacenters/{}/station-credentials", a.datacenter_id), operator),
        ];
        reads
            .into_iter()
            .map(|(path, token)| {
                let reply = self.service.call("GET", &format!("/api/v1{path}"), token, &Body::Empty);
                (path, reply.status, reply.text())
            })
            .collect()
    }

    /// Notes every change to A's data since `before`, then takes the new state as
    /// `before`, so that each change is blamed on the request that made it.
    fn unchanged(&mut self, before: &mut Snapshot, op: &Operation, variant: &'static str, who: Who) {
        let after = self.snapshot_of_a();
        for (then, now) in before.iter().zip(&after) {
            if then != now {
                let problem =
                    format!("A's {} changed: was {} {:.80}, now {} {:.80}", then.0, then.1, then.2, now.1, now.2);
                self.note(op, variant, who, problem);
            }
        }
        *before = after;
    }

    /// Panics with the whole table if any row failed (prints it anyway when
    /// `OFFSITE_PRINT_MATRIX` is set).
    fn finish(self, what: &str) {
        let failed = self.rows.iter().filter(|r| r.problem.is_some()).count();
        let print = std::env::var_os("OFFSITE_PRINT_MATRIX").is_some();
        if failed == 0 && !print {
            return;
        }
        let mut table = String::new();
        for row in &self.rows {
            let mark = match (&row.problem, &row.known) {
                (Some(_), _) => "FAIL",
                (None, Some(_)) => "KNOWN",
                (None, None) => "ok",
            };
            let status = if row.status == 0 { "-".to_string() } else { row.status.to_string() };
            let _ = write!(
                table,
                "{mark:5} {:6} {:62} {:6} {:20} {status:3} (want {})",
                row.method,
                row.template,
                row.variant,
                row.who.label(),
                row.expected.label()
            );
            if let Some(problem) = row.problem.as_ref().or(row.known.as_ref()) {
                let _ = write!(table, "  <- {problem}");
            }
            table.push('\n');
        }
        if failed == 0 {
            println!("{what}: all {} checks passed\n{table}", self.rows.len());
            return;
        }
        panic!("{what}: {failed} of {} checks failed\n{table}", self.rows.len());
    }
}

fn snippet(reply: &Reply) -> String {
    format!("HTTP {} {:.160}", reply.status, reply.text().replace('\n', " "))
}

/// The rule for an operation that names no tenant's resource.
fn unscoped(op: &Operation, who: Who) -> Expect {
    let authenticated_tenant = !matches!(who, Who::Registration | Who::Operator);
    match (op.method.as_str(), op.template.as_str()) {
        ("GET", "/api/v1/whoami") => {
            if who == Who::Registration {
                Expect::Refused
            } else {
                Expect::Success
            }
        }
        // A station lists no tenants, nor the datacenters.
        ("GET", "/api/v1/subscriptions") | ("GET", "/api/v1/datacenters") => {
            if who == Who::Registration {
                Expect::Refused
            } else if matches!(who, Who::OwnStation | Who::OtherStation) {
                Expect::Forbidden
            } else {
                Expect::Success
            }
        }
        ("POST", "/api/v1/subscriptions")
        | ("POST", "/api/v1/datacenters")
        | ("POST", "/api/v1/portal-users")
        | ("GET", "/api/v1/portal-users") => {
            if who == Who::Operator {
                Expect::Success
            } else {
                Expect::Forbidden
            }
        }
        // A subscription lists its own requests, the operator all of them.
        ("GET", "/api/v1/protection-requests") => match who {
            Who::Operator | Who::OwnSubscription | Who::OtherSubscription => Expect::Success,
            Who::Registration => Expect::Refused,
            _ => Expect::Forbidden,
        },
        ("POST", "/api/v1/register") => {
            if who == Who::Registration {
                Expect::Success
            } else if authenticated_tenant {
                Expect::Forbidden
            } else {
                Expect::Refused
            }
        }
        (method, path) => panic!(
            "{method} {path} names no resource of a tenant: decide who may call it and add its rule to \
             `unscoped` in isolation.rs"
        ),
    }
}

const OPERATOR_ONLY: &[(&str, &str)] = &[
    ("POST", "/api/v1/subscriptions"),
    ("POST", "/api/v1/datacenters"),
    ("POST", "/api/v1/portal-users"),
    ("GET", "/api/v1/portal-users"),
];

// ------------------------------------------------------------------ the tests

/// Tenant B's subscription and machine credentials, and another machine of A's
/// own vault, aimed at every operation on A's (first machine's) resources, are
/// refused, and A's data is the same afterwards.
#[test]
fn other_tenants_and_machines_reach_nothing_of_a() {
    let mut world = World::new();
    let mut before = world.snapshot_of_a();
    let (a, b) = (world.a.clone(), world.b.clone());
    for op in world.operations() {
        for who in
            [Who::OtherSubscription, Who::OtherMachine, Who::SiblingMachine, Who::OtherApplication, Who::OtherStation]
        {
            if !op.is_scoped() {
                for request in world.requests(&op, &a, &a) {
                    world.check(&op, &request, who, unscoped(&op, who));
                }
                continue;
            }
            let sibling_may = who == Who::SiblingMachine
                && op.side() == Side::Both
                && !op.params().contains(&"machine_id")
                && !op.is_export_customer();
            let expected = if sibling_may {
                Expect::Success
            } else if who == Who::OtherStation && op.names_import_job() {
                // Another datacenter's jobs are as invisible as another tenant's.
                Expect::NotFound
            } else {
                Expect::Denied
            };
            for request in world.requests(&op, &a, &a) {
                world.check(&op, &request, who, expected);
                if !op.is_read() {
                    world.unchanged(&mut before, &op, request.variant, who);
                }
            }
            // B's own machine or account, with A's job or file under it.
            if op.has_leaf_and_parent()
                && !matches!(who, Who::SiblingMachine | Who::OtherApplication | Who::OtherStation)
            {
                // (The `config` file has the same name everywhere: only `data` names A's file.)
                for mut request in world.requests(&op, &a, &b).into_iter().filter(|r| r.variant != "config") {
                    request.variant = "mixed";
                    let expected = if op.is_repository() && !op.is_read() && who == Who::OtherMachine {
                        Expect::NoFailure
                    } else {
                        Expect::Denied
                    };
                    world.check(&op, &request, who, expected);
                    if !op.is_read() {
                        world.unchanged(&mut before, &op, request.variant, who);
                    }
                }
            }
        }
    }
    // What B may call without naming a resource shows B's own things only.
    let op = Operation {
        method: "GET".into(),
        template: "/api/v1/subscriptions".into(),
        body: BodyKind::None,
        query: vec![],
    };
    let listed = world.service.get_json("/api/v1/subscriptions", &b.subscription_token);
    let ids: Vec<&str> = listed.as_array().unwrap().iter().filter_map(|s| s["id"].as_str()).collect();
    if ids != [b.subscription_id.as_str()] {
        world.note(&op, "", Who::OtherSubscription, format!("B lists more than its own subscription: {listed}"));
    }
    let whoami = world.service.get_json("/api/v1/whoami", &b.subscription_token);
    if whoami["subscription_id"] != b.subscription_id.as_str() {
        world.note(&op, "", Who::OtherSubscription, format!("whoami does not name B: {whoami}"));
    }
    // B's application sees B's subscription only, and is told it is B's application.
    let path = "/api/v1/subscriptions";
    let reply = world.service.send("GET", path, Some(&b.app_authorization("GET", path)), &Body::Empty, &[]);
    let ids: Vec<String> =
        reply.json().as_array().unwrap().iter().filter_map(|s| s["id"].as_str().map(str::to_string)).collect();
    if ids != [b.subscription_id.clone()] {
        world.note(&op, "", Who::OtherApplication, format!("B's application lists {ids:?}"));
    }
    let path = "/api/v1/whoami";
    let whoami = world.service.send("GET", path, Some(&b.app_authorization("GET", path)), &Body::Empty, &[]).json();
    if whoami["role"] != "application" || whoami["application_id"] != b.application.application_id.as_str() {
        world.note(&op, "", Who::OtherApplication, format!("whoami does not name B's application: {whoami}"));
    }
    let op = Operation {
        method: "ALL".into(),
        template: "(after the whole matrix)".into(),
        body: BodyKind::None,
        query: vec![],
    };
    world.unchanged(&mut before, &op, "", Who::OtherSubscription);
    world.finish("other tenants and machines");
}

/// Vault credentials register one machine and do nothing else: not even reading.
#[test]
fn vault_credentials_only_register() {
    let mut world = World::new();
    let mut before = world.snapshot_of_a();
    let a = world.a.clone();
    let mut register = None;
    for op in world.operations() {
        if op.method == "POST" && op.template == "/api/v1/register" {
            register = Some(op);
            continue;
        }
        let expected = if op.is_scoped() { Expect::Refused } else { unscoped(&op, Who::Registration) };
        for request in world.requests(&op, &a, &a) {
            world.check(&op, &request, Who::Registration, expected);
            if !op.is_read() {
                world.unchanged(&mut before, &op, request.variant, Who::Registration);
            }
        }
    }
    // All those refusals left the credentials unused: they still register a machine.
    let register = register.expect("the document lists POST /api/v1/register");
    for request in world.requests(&register, &a, &a) {
        let reply = world.check(&register, &request, Who::Registration, Expect::Success);
        if reply.is_success() {
            assert_eq!(reply.json()["machine"]["vault_id"], a.vault_id.as_str(), "{}", reply.text());
        }
    }
    world.finish("vault credentials");
}

/// No credential, a malformed one, a real credential id with a wrong secret, a
/// real credential in the wrong scheme, a removed machine's credential or used
/// vault credentials: 401 everywhere, before anything else.
#[test]
fn missing_or_wrong_credentials_get_401_everywhere() {
    let mut world = World::new();
    let mut before = world.snapshot_of_a();
    let a = world.a.clone();
    for op in world.operations() {
        for &who in UNAUTHENTICATED {
            for request in world.requests(&op, &a, &a) {
                let reply = world.check(&op, &request, who, Expect::Unauthorized);
                if reply.status == 401
                    && op.method != "HEAD"
                    && reply.error_body().is_none_or(|e| e.code != "unauthorized")
                {
                    world.note(
                        &op,
                        request.variant,
                        who,
                        format!("401 without code `unauthorized`: {}", snippet(&reply)),
                    );
                }
            }
        }
    }
    let op = Operation {
        method: "ALL".into(),
        template: "(after the whole matrix)".into(),
        body: BodyKind::None,
        query: vec![],
    };
    world.unchanged(&mut before, &op, "", Who::NoCredential);
    world.finish("missing or wrong credentials");
}

/// Creating subscriptions, datacenters and portal users is the operator's alone.
#[test]
fn operator_only_operations_refuse_everyone_else() {
    let mut world = World::new();
    let mut before = world.snapshot_of_a();
    let a = world.a.clone();
    let operations = world.operations();
    let operator_only: Vec<Operation> = OPERATOR_ONLY
        .iter()
        .map(|(method, template)| {
            let found = operations.iter().find(|op| op.method == *method && op.template == *template);
            found.unwrap_or_else(|| panic!("the document lists {method} {template}")).clone()
        })
        .collect();
    for op in &operator_only {
        for who in [
            Who::OwnSubscription,
            Who::OwnMachine,
            Who::OtherSubscription,
            Who::OtherMachine,
            Who::Registration,
            Who::OwnStation,
        ] {
            for request in world.requests(op, &a, &a) {
                world.check(op, &request, who, Expect::Forbidden);
                world.unchanged(&mut before, op, request.variant, who);
            }
        }
    }
    // The same requests from the operator succeed.
    for op in &operator_only {
        for request in world.requests(op, &a, &a) {
            world.check(op, &request, Who::Operator, Expect::Success);
        }
    }
    world.finish("operator-only operations");
}

/// The positive control: A's own credentials succeed on every operation of their
/// side, with the very requests the other tests send, and the other side of the
/// same tenant is refused (a machine does not manage its subscription; a
/// subscription does not read or write its machines' encrypted repositories).
#[test]
fn own_credentials_succeed_on_their_side() {
    let mut world = World::new();
    let a = world.a.clone();
    let mut operations = world.operations();
    // Reads first, then writes, then deletions, removing the machine last of all.
    let order = |op: &Operation| match op.method.as_str() {
        "GET" | "HEAD" => 0,
        "DELETE" if op.template == "/api/v1/machines/{machine_id}" => 3,
        "DELETE" => 2,
        _ => 1,
    };
    let step = |op: &Operation| IMPORT_JOB_STEPS.iter().position(|t| *t == op.template).unwrap_or(0);
    operations.sort_by_key(|op| (order(op), step(op)));
    let mut sides = (0, 0);
    for op in &operations {
        if !op.is_scoped() {
            for who in [
                Who::OwnSubscription,
                Who::OwnMachine,
                Who::OwnApplication,
                Who::Operator,
                Who::Registration,
                Who::OwnStation,
            ] {
                let expected = unscoped(op, who);
                if expected == Expect::Success || who != Who::Registration {
                    for request in world.requests(op, &a, &a) {
                        world.check(op, &request, who, expected);
                    }
                }
            }
            continue;
        }
        let (owners, others): (&[Who], &[Who]) = match op.side() {
            Side::Subscription => (&[Who::OwnSubscription], &[Who::OwnMachine]),
            Side::Machine => (&[Who::OwnMachine], &[Who::OwnSubscription]),
            Side::Both => (&[Who::OwnSubscription, Who::OwnMachine], &[]),
            Side::Operator => (&[Who::Operator], &[Who::OwnSubscription, Who::OwnMachine]),
            Side::Signers => (&[], &[Who::OwnSubscription, Who::OwnMachine, Who::Operator]),
        };
        // The application is an owner of what offline seeding needs, refused the rest.
        let (mut owners, mut others) = (owners.to_vec(), others.to_vec());
        if op.for_application() {
            owners.push(Who::OwnApplication);
        } else {
            others.push(Who::OwnApplication);
        }
        // So is the station of the job's datacenter, first: the operator then
        // repeats a step the station took, which the life cycle may refuse (409).
        // A signed custody event: the application's `prepared` comes before the
        // station's `received` in a drive's life.
        if op.for_station() && op.side() == Side::Signers {
            owners.push(Who::OwnStation);
        } else if op.for_station() {
            owners.insert(0, Who::OwnStation);
        } else {
            others.push(Who::OwnStation);
        }
        let success = if REACHED_ONLY.contains(&op.template.as_str()) { Expect::Reached } else { Expect::Success };
        let variants = world.requests(op, &a, &a).len();
        for variant in 0..variants {
            let request = world.requests(op, &a, &a).remove(variant);
            for &who in &others {
                world.check(op, &request, who, Expect::Denied);
            }
            // A repository's config is never removed, not even by its own machine:
            // without it none of the machine's backups can be read.
            let removes_config = op.method == "DELETE" && op.is_repository() && request.variant == "config";
            let expected = if removes_config { Expect::Forbidden } else { success };
            for &who in &owners {
                let repeats = who == Who::Operator && op.for_station() && !op.is_read();
                let expected = if repeats && expected == Expect::Success { Expect::Reached } else { expected };
                // Each owner its own request: bodies naming new things get fresh names.
                let request = world.requests(op, &a, &a).remove(variant);
                let reply = world.check(op, &request, who, expected);
                let text = op.template.ends_with("/logs/{kind}");
                if op.method == "GET" && !op.is_repository() && !text && reply.is_success() {
                    let _ = reply.json();
                }
                if op.method == "DELETE" && op.is_repository() && reply.is_success() {
                    let after = world.service.call("GET", &request.path, Some(&a.machine_token), &Body::Empty);
                    if after.status != 404 {
                        world.note(op, request.variant, who, format!("deleted, yet GET answers {}", snippet(&after)));
                    }
                }
                if who == Who::OwnSubscription {
                    sides.0 += 1;
                } else if who == Who::OwnMachine {
                    sides.1 += 1;
                }
            }
        }
    }
    assert!(sides.0 >= 15 && sides.1 >= 15, "positive controls per side: {sides:?}");
    // The removed machine is locked out.
    let locked = world.service.call("GET", "/api/v1/whoami", Some(&a.machine_token), &Body::Empty);
    assert_eq!(locked.status, 401, "{}", snippet(&locked));
    world.finish("own credentials");
}

/// Every status the service answers is one the document lists for that operation,
/// so generated clients know every answer they can get.
#[test]
fn every_answer_is_documented() {
    let world = World::new();
    let a = world.a.clone();
    let mut undocumented = std::collections::BTreeSet::new();
    for op in world.operations() {
        let responses = &world.doc["paths"][&op.template][op.method.to_lowercase()]["responses"];
        let documented: Vec<String> = responses.as_object().map(|r| r.keys().cloned().collect()).unwrap_or_default();
        let mut callers = vec![
            Who::NoCredential,
            Who::OtherSubscription,
            Who::OtherMachine,
            Who::OtherApplication,
            Who::StaleApplication,
            Who::Registration,
            Who::OtherStation,
            Who::RevokedStation,
        ];
        if op.is_read() {
            callers.extend([Who::OwnSubscription, Who::OwnMachine, Who::OwnApplication, Who::OwnStation]);
        }
        for who in callers {
            if who == Who::Registration && op.template == "/api/v1/register" {
                continue;
            }
            for request in world.requests(&op, &a, &a) {
                let status = world.send(&op, &request, who).status;
                if !documented.contains(&status.to_string()) {
                    undocumented.insert(format!(
                        "{:6} {:58} answers {status} (e.g. to {}); documents {documented:?}",
                        op.method,
                        op.template,
                        who.label()
                    ));
                }
            }
        }
    }
    let list: Vec<String> = undocumented.into_iter().collect();
    assert!(list.is_empty(), "{} undocumented answers:\n{}", list.len(), list.join("\n"));
}
