//! A running service for the API tests, and two tenants in it with one of every
//! resource, so a test can aim one tenant's credentials at the other's data.
//!
//! The service runs on a tokio runtime the fixture owns; tests talk to it from
//! their own thread with blocking HTTP clients (the typed `offsite_api::Client` for
//! setting up, a raw pinned-TLS `reqwest` client for requests whose exact status,
//! headers and body a test inspects).

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use offsite_api::application_auth::ApplicationIdentity;
use offsite_api::files::{OperatorCredentials, ServiceEndpoint};
use offsite_api::types::*;
use offsite_api::Client;
use offsite_server::{Server, ServerConfig};
use serde_json::Value;
use time::OffsetDateTime;

/// One HTTP answer, read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: Option<String>,
    /// The `Connection` header, if the answer had one.
    pub connection: Option<String>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("HTTP {} answered no JSON ({e}): {}", self.status, self.text()))
    }

    /// The service's error body, if the answer is one (JSON content type and shape).
    pub fn error_body(&self) -> Option<ErrorBody> {
        let json = self.content_type.as_deref().is_some_and(|t| t.starts_with("application/json"));
        json.then(|| serde_json::from_slice(&self.body).ok()).flatten()
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// What a raw request carries as its body.
#[derive(Debug, Clone)]
pub enum Body {
    Empty,
    Json(Value),
    Bytes(Vec<u8>),
    /// Bytes sent as-is with this content type, or none if it is empty (malformed bodies).
    Raw(&'static str, Vec<u8>),
    /// Bytes sent chunked, without a `Content-Length`.
    Chunked(Vec<u8>),
}

impl Body {
    /// The bytes sent (what a signed request's body hash covers).
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Body::Empty => Vec::new(),
            Body::Json(value) => serde_json::to_vec(value).expect("JSON serialises"),
            Body::Bytes(bytes) | Body::Raw(_, bytes) | Body::Chunked(bytes) => bytes.clone(),
        }
    }
}

/// A service on a temporary data folder, listening on a free loopback port.
pub struct Service {
    // Dropped in this order: the server handle, then the runtime (which stops the
    // server task), then the data folder.
    pub server: Server,
    rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    http: reqwest::blocking::Client,
    /// Opens a connection per request, for requests after which the service may
    /// close the connection.
    http_unpooled: reqwest::blocking::Client,
    pub operator_token: String,
    /// The database, when not the data folder's SQLite: a restart keeps it.
    database_url: Option<String>,
    /// The SMTP relay of notification e-mails, if any: a restart keeps it.
    smtp_url: Option<String>,
    /// The object store, when not the data folder's: a restart keeps it.
    storage: Option<(String, Vec<(String, String)>)>,
}

impl Service {
    pub fn start() -> Service {
        Service::start_in(tempfile::tempdir().expect("a temporary folder"), 0, None)
    }

    /// The same on another database (a `postgres://` URL).
    pub fn start_on(database_url: &str) -> Service {
        Service::start_in(tempfile::tempdir().expect("a temporary folder"), 0, Some(database_url.to_string()))
    }

    /// The same on another object store (`az://…`, with its options as
    /// `object_store` config keys).
    pub fn start_on_storage(storage: &str, options: Vec<(String, String)>) -> Service {
        Service::start_full(
            tempfile::tempdir().expect("a temporary folder"),
            0,
            None,
            Some((storage.into(), options)),
            None,
            |_| {},
        )
    }

    /// Stops this service and starts another on the same data folder whose clock
    /// runs `seconds` ahead (deadlines without waiting). Credentials stay valid.
    pub fn restart_with_clock_offset(self, seconds: i64) -> Service {
        let Service { server, rt, dir, http, http_unpooled, operator_token: _, database_url, smtp_url, storage } = self;
        drop((http, http_unpooled));
        server.shutdown();
        drop(server);
        drop(rt);
        Service::start_full(dir, seconds, database_url, storage, smtp_url, |_| {})
    }

    /// A service whose config `configure` changes first (its listen address and
    /// data folder are the fixture's).
    pub fn start_configured(configure: impl FnOnce(&mut ServerConfig)) -> Service {
        Service::start_full(tempfile::tempdir().expect("a temporary folder"), 0, None, None, None, configure)
    }

    fn start_in(dir: tempfile::TempDir, clock_offset_seconds: i64, database_url: Option<String>) -> Service {
        Service::start_full(dir, clock_offset_seconds, database_url, None, None, |_| {})
    }

    /// A service that sends notification e-mails through the SMTP relay at `url`.
    pub fn start_with_smtp(url: &str) -> Service {
        Service::start_full(
            tempfile::tempdir().expect("a temporary folder"),
            0,
            None,
            None,
            Some(url.to_string()),
            |_| {},
        )
    }

    fn start_full(
        dir: tempfile::TempDir,
        clock_offset_seconds: i64,
        database_url: Option<String>,
        storage: Option<(String, Vec<(String, String)>)>,
        smtp_url: Option<String>,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> Service {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let mut config = ServerConfig::new(dir.path().join("data"));
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.clock_offset_seconds = clock_offset_seconds;
        // Background work (purges, alerts) at once, not a minute later.
        config.maintenance_interval = Some(Duration::from_millis(200));
        config.database_url = database_url.clone();
        config.smtp_url = smtp_url.clone();
        // Webhook receivers of the tests listen on loopback.
        config.webhooks_to_private_addresses = true;
        if let Some((url, options)) = &storage {
            config.storage = Some(url.clone());
            config.storage_options = options.clone();
        }
        configure(&mut config);
        let server = rt.block_on(Server::start(config)).expect("the service starts");
        let operator = OperatorCredentials::read(&server.operator_credentials).expect("operator credentials");
        let client = |pooled: bool| {
            let tls = offsite_api::tls::pinned_client_config(&server.fingerprint).expect("a pinned TLS config");
            let builder =
                reqwest::blocking::Client::builder().use_preconfigured_tls(tls).timeout(Duration::from_secs(60));
            let builder = if pooled { builder } else { builder.pool_max_idle_per_host(0) };
            builder.build().expect("an HTTP client")
        };
        let (http, http_unpooled) = (client(true), client(false));
        Service {
            server,
            rt,
            dir,
            http,
            http_unpooled,
            operator_token: operator.token,
            database_url,
            smtp_url,
            storage,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn endpoint(&self) -> ServiceEndpoint {
        ServiceEndpoint { url: self.server.url.clone(), fingerprint: self.server.fingerprint.clone() }
    }

    /// The typed client presenting `token`.
    pub fn client(&self, token: &str) -> Client {
        Client::new(&self.endpoint(), token).expect("an API client")
    }

    pub fn operator(&self) -> Client {
        self.client(&self.operator_token)
    }

    /// The typed client signing as an offline-seeding application.
    pub fn app_client(&self, identity: &ApplicationIdentity) -> Client {
        Client::for_application(&self.endpoint(), identity).expect("an application client")
    }

    /// A raw request. `path` starts with `/` (e.g. `/api/v1/whoami`); `authorization`
    /// is the whole header value, if any.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        body: &Body,
        headers: &[(&str, &str)],
    ) -> Reply {
        self.exchange(&self.http, method, path, authorization, body, headers)
            .unwrap_or_else(|e| panic!("{method} {path}: no answer: {e}"))
    }

    /// [`Service::send`] on a connection of its own, with a transport failure as an
    /// error: for requests the service may answer before reading them whole.
    pub fn try_send(
        &self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        body: &Body,
        headers: &[(&str, &str)],
    ) -> Result<Reply, String> {
        self.exchange(&self.http_unpooled, method, path, authorization, body, headers)
    }

    fn exchange(
        &self,
        http: &reqwest::blocking::Client,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        body: &Body,
        headers: &[(&str, &str)],
    ) -> Result<Reply, String> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let mut request = http.request(method.clone(), format!("{}{path}", self.server.url));
        if let Some(value) = authorization {
            request = request.header(reqwest::header::AUTHORIZATION, value);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request = match body {
            Body::Empty => request,
            Body::Json(value) => request.json(value),
            Body::Bytes(bytes) => {
                request.header(reqwest::header::CONTENT_TYPE, "application/octet-stream").body(bytes.clone())
            }
            Body::Chunked(bytes) => request
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(reqwest::blocking::Body::new(std::io::Cursor::new(bytes.clone()))),
            Body::Raw("", bytes) => request.body(bytes.clone()),
            Body::Raw(content_type, bytes) => {
                request.header(reqwest::header::CONTENT_TYPE, *content_type).body(bytes.clone())
            }
        };
        let response = request.send().map_err(|e| format!("{e:?}"))?;
        let status = response.status().as_u16();
        let content_type =
            response.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let connection =
            response.headers().get(reqwest::header::CONNECTION).and_then(|v| v.to_str().ok()).map(str::to_string);
        let body = response.bytes().map_err(|e| format!("{e:?}"))?.to_vec();
        Ok(Reply { status, content_type, connection, body })
    }

    /// A raw request presenting a bearer token (or nothing).
    pub fn call(&self, method: &str, path: &str, token: Option<&str>, body: &Body) -> Reply {
        let header = token.map(|t| format!("Bearer {t}"));
        self.send(method, path, header.as_deref(), body, &[])
    }

    /// GET as `token`, which must succeed; the JSON answer.
    pub fn get_json(&self, path: &str, token: &str) -> Value {
        let reply = self.call("GET", path, Some(token), &Body::Empty);
        assert!(reply.is_success(), "GET {path}: HTTP {} {}", reply.status, reply.text());
        reply.json()
    }

    /// The OpenAPI document the service serves (no credential needed).
    pub fn openapi(&self) -> Value {
        let reply = self.call("GET", "/api/v1/openapi.json", None, &Body::Empty);
        assert_eq!(reply.status, 200, "the OpenAPI document: {}", reply.text());
        reply.json()
    }

    /// A subscription (by the operator) with one of every resource.
    pub fn tenant(&self, name: &str) -> Tenant {
        let created = self.operator().create_subscription(name).expect("the operator creates a subscription");
        let subscription_id = created.subscription.id.clone();
        let subscription_token = created.management_credential.clone();
        let sub = self.client(&subscription_token);

        let vault = sub.create_vault(&subscription_id, "main").expect("a vault");
        let registration = sub.vault_credentials(&vault.id, None).expect("vault credentials");
        let registered = self
            .client(&registration.registration_secret)
            .register(&format!("{name}-web01"), &format!("{name}-web01.example"))
            .expect("a machine registers");
        let machine_id = registered.machine.id.clone();
        let machine_token = registered.machine_credential.clone();
        let spare_registration =
            sub.vault_credentials(&vault.id, Some(2)).expect("more vault credentials").registration_secret;

        let machine = self.client(&machine_token);
        let config_bytes = format!("{{\"version\":2,\"id\":\"{name}-repository\"}}").into_bytes();
        machine.put_file(&machine_id, "config", "config", Bytes::from(config_bytes.clone())).expect("config upload");
        let file_bytes: Vec<u8> =
            (0..20_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ name.as_bytes()[0]).collect();
        let file_name = content_name(&file_bytes);
        machine.put_file(&machine_id, "data", &file_name, Bytes::from(file_bytes.clone())).expect("pack upload");

        let account =
            sub.create_storage_account(&subscription_id, &format!("{name}-ingest")).expect("a storage account");
        let container = sub.create_container(&account.id, &format!("{name}-drive-1")).expect("a container");

        let datacenter = self
            .operator()
            .add_datacenter(&format!("{name}-dc"), "1 Dock Road\nPortville", &import_key())
            .expect("a datacenter");
        // A station credential of the datacenter, never used: what the isolation matrix revokes.
        let spare_station_credential_id =
            self.operator().issue_station_credential(&datacenter.id, None).expect("a station credential").credential.id;
        let drive_id = blake3::hash(name.as_bytes()).to_hex()[..16].to_string();
        let import_job = sub
            .create_import_job(
                &subscription_id,
                &CreateImportJob {
                    name: format!("{name}-seed"),
                    storage_account: account.name.clone(),
                    container: container.name.clone(),
                    datacenter: datacenter.name.clone(),
                    drives: vec![ImportJobDriveSpec {
                        drive_id: drive_id.clone(),
                        index: 0,
                        fingerprint: Some(fingerprint_of(&drive_id)),
                        data_bytes: None,
                    }],
                },
            )
            .expect("an import job");

        self.operator()
            .put_drive_log(
                &import_job.id,
                &drive_id,
                "error",
                &format!("{name}: block 7 of drive {drive_id} is damaged\n"),
            )
            .expect("a drive log");
        let certificate = offsite_seeding::application::generate(&subscription_id).expect("a certificate");
        let upload = proven(&sub, &subscription_id, &certificate.cert_pem, &certificate.key_pem);
        let application = sub.create_application(&subscription_id, &upload).expect("an offline-seeding application");
        let application = ApplicationIdentity {
            application_id: application.id,
            thumbprint: certificate.thumbprint,
            key_pem: certificate.key_pem,
        };
        // A second certificate and a second management credential, never used:
        // what the isolation matrix removes and revokes.
        let spare_certificate = offsite_seeding::application::generate(&subscription_id).expect("a certificate");
        let upload = proven(&sub, &subscription_id, &spare_certificate.cert_pem, &spare_certificate.key_pem);
        sub.upload_application_certificate(&subscription_id, &upload).expect("a second certificate");
        let spare_thumbprint = spare_certificate.thumbprint;
        let spare_credential_id = sub
            .issue_management_credential(&subscription_id, None)
            .expect("a second management credential")
            .credential
            .id;

        let job = machine.create_job(&machine_id, &running_backup()).expect("a job");
        let protected_items = vec![ProtectedItem { path: format!("/srv/{name}"), excludes: vec!["*.tmp".into()] }];
        machine.set_protected_items(&machine_id, &protected_items).expect("protected items");
        let recovery_points = vec![recovery_point(name, 1), recovery_point(name, 2)];
        machine.set_recovery_points(&machine_id, &recovery_points).expect("recovery points");

        // A request to turn the vault's soft delete off: it waits for an operator.
        let weaken = ProtectionChange { soft_delete_days: Some(0), ..Default::default() };
        let requested = sub.change_vault_protection(&vault.id, &weaken).expect("a protection request");
        let protection_request_id = requested.request.expect("turning soft delete off is only requested").id;
        // A webhook (its deliveries fail and are retried: nothing listens there).
        let hook =
            CreateNotificationChannel { webhook_url: Some("http://127.0.0.1:9/hook".into()), ..Default::default() };
        let notification_channel_id =
            sub.add_notification_channel(&subscription_id, &hook).expect("a notification channel").channel.id;

        // A portal user of the subscription, never signed in: what the operator's
        // user changes (disable, new password, remove) act on.
        let staff = CreatePortalUser {
            email: format!("staff@{name}.example"),
            password: "a staff password long enough".into(),
            subscription_id: Some(subscription_id.clone()),
        };
        let portal_user_id = self.operator().create_portal_user(&staff).expect("a portal user").id;

        // An export of the machine's whole repository, asked for by the machine.
        let export = CreateExportJob {
            name: format!("{name}-export"),
            datacenter: datacenter.name.clone(),
            drive_size: 1_000_000_000_000,
            export_public_key: Some("11".repeat(32)),
            return_address: Some(format!("IT, {name}, 1 Main Street")),
            machines: vec![ExportMachine { machine_id: machine_id.clone(), files: vec![], points: vec![] }],
        };
        let export_job_id = machine.request_export(&subscription_id, &export).expect("an export job").id;

        Tenant {
            name: name.to_string(),
            export_job_id,
            portal_user_id,
            protection_request_id,
            notification_channel_id,
            subscription_id,
            subscription_token,
            vault_id: vault.id,
            machine_id,
            machine_token,
            spare_registration,
            storage_account_id: account.id,
            storage_account_name: account.name,
            container_id: container.id,
            container_name: container.name,
            datacenter_id: datacenter.id,
            datacenter_name: datacenter.name,
            spare_station_credential_id,
            import_job_id: import_job.id,
            import_job_name: import_job.name,
            drive_id,
            application,
            spare_thumbprint,
            spare_credential_id,
            job_id: job.id,
            file_name,
            file_bytes,
            config_bytes,
            protected_items,
            recovery_points,
        }
    }
}

/// Everything one tenant owns, and its credentials.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub name: String,
    pub subscription_id: String,
    /// The subscription's management credential (its publish settings).
    pub subscription_token: String,
    pub vault_id: String,
    pub machine_id: String,
    pub machine_token: String,
    /// Vault credentials for the tenant's vault, never used.
    pub spare_registration: String,
    pub storage_account_id: String,
    pub storage_account_name: String,
    pub container_id: String,
    pub container_name: String,
    /// A datacenter the operator added for this tenant's import job.
    pub datacenter_id: String,
    pub datacenter_name: String,
    /// A station credential of that datacenter (its id), never used.
    pub spare_station_credential_id: String,
    /// An import job in state `creating` with one drive, `drive_id`, registered
    /// with the header fingerprint [`fingerprint_of`] gives.
    pub import_job_id: String,
    pub import_job_name: String,
    pub drive_id: String,
    /// The subscription's offline-seeding application, with its key.
    pub application: ApplicationIdentity,
    /// Another certificate of the application, never used to sign.
    pub spare_thumbprint: String,
    /// Another management credential of the subscription (its id), never used.
    pub spare_credential_id: String,
    /// A running backup job of the machine.
    pub job_id: String,
    /// A `data` file of the machine's repository: its name and bytes.
    pub file_name: String,
    pub file_bytes: Vec<u8>,
    /// The machine's repository `config`.
    pub config_bytes: Vec<u8>,
    pub protected_items: Vec<ProtectedItem>,
    pub recovery_points: Vec<RecoveryPoint>,
    /// A pending request to weaken the vault's protection.
    pub protection_request_id: String,
    /// A webhook of the subscription.
    pub notification_channel_id: String,
    /// A portal user of the subscription (`staff@NAME.example`), never signed in.
    pub portal_user_id: String,
    /// An export job of the machine's repository, requested.
    pub export_job_id: String,
}

impl Tenant {
    /// The `Authorization` header of a request signed by this tenant's application.
    pub fn app_authorization(&self, method: &str, path_and_query: &str) -> String {
        sign(&self.application, method, path_and_query, OffsetDateTime::now_utc().unix_timestamp())
    }

    /// Every identifier and secret of this tenant: none may show up in an answer to
    /// another tenant.
    pub fn secrets_and_ids(&self) -> Vec<&str> {
        vec![
            &self.subscription_id,
            &self.subscription_token,
            &self.vault_id,
            &self.machine_id,
            &self.machine_token,
            &self.spare_registration,
            &self.storage_account_id,
            &self.container_id,
            &self.job_id,
            &self.file_name,
            &self.import_job_id,
            &self.import_job_name,
        ]
    }
}

/// The header fingerprint the tests register for drive `drive_id` (64 hex digits).
/// What the replicas of one service share: a PostgreSQL database and a storage
/// folder. Each replica has its own data folder (certificate, operator token).
pub struct SharedBackends {
    database_url: String,
    storage: tempfile::TempDir,
    _postgres: offsite_testbed::Postgres,
}

impl SharedBackends {
    pub fn start() -> SharedBackends {
        let postgres = offsite_testbed::Postgres::start().expect("PostgreSQL for tests (run scripts/test)");
        let storage = tempfile::tempdir().expect("a storage folder");
        SharedBackends { database_url: postgres.url(), storage, _postgres: postgres }
    }

    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// A replica whose clock runs `clock_offset_seconds` ahead; without
    /// `maintenance` it runs no background work (its requests still queue
    /// notifications for a replica that does).
    pub fn replica(&self, clock_offset_seconds: i64, maintenance: bool) -> Service {
        Service::start_full(
            tempfile::tempdir().expect("a temporary folder"),
            clock_offset_seconds,
            Some(self.database_url.clone()),
            Some((self.storage.path().display().to_string(), Vec::new())),
            None,
            |config| {
                if !maintenance {
                    config.maintenance_interval = None;
                }
            },
        )
    }
}

/// An import job of `tenant`'s storage account, container and datacenter with
/// `drives` (ids), each registered with its header fingerprint.
pub fn new_job(tenant: &Tenant, name: &str, drives: &[&str]) -> CreateImportJob {
    CreateImportJob {
        name: name.into(),
        storage_account: tenant.storage_account_name.clone(),
        container: tenant.container_name.clone(),
        datacenter: tenant.datacenter_name.clone(),
        drives: drives
            .iter()
            .enumerate()
            .map(|(i, id)| ImportJobDriveSpec {
                drive_id: id.to_string(),
                index: i as u32,
                fingerprint: Some(fingerprint_of(id)),
                data_bytes: None,
            })
            .collect(),
    }
}

pub fn fingerprint_of(drive_id: &str) -> String {
    blake3::hash(format!("the header of drive {drive_id}").as_bytes()).to_hex().to_string()
}

/// Drive `drive_id` as an ingest station names it when it uploads: with the
/// fingerprint registered for it.
pub fn source_drive(drive_id: &str) -> offsite_api::client::SourceDrive {
    offsite_api::client::SourceDrive { drive_id: drive_id.to_string(), fingerprint: fingerprint_of(drive_id) }
}

/// A fresh X25519 import public key, hex.
pub fn import_key() -> String {
    hex::encode(offsite_api::import_key::generate_import_key().1)
}

/// The `Authorization` header value of a request signed by `identity` at `unix_seconds`.
/// A certificate upload with its proof of possession: a fresh challenge from the
/// service, signed with `key_pem` (as certgen does).
pub fn proven(client: &Client, subscription_id: &str, certificate: &str, key_pem: &str) -> UploadCertificate {
    let challenge = client.certificate_challenge(subscription_id).expect("a challenge").challenge;
    let der = if certificate.contains("-----BEGIN") {
        offsite_seeding::application::read_certificate(certificate.as_bytes()).expect("a PEM certificate")
    } else {
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, certificate).expect("base64 DER")
    };
    let thumbprint = offsite_seeding::application::thumbprint(&der);
    let proof = offsite_api::possession::prove(key_pem, &challenge, &thumbprint).expect("a proof");
    UploadCertificate { certificate: certificate.to_string(), possession: Some(proof) }
}

/// A certificate upload without a proof (refused, unless something else is first).
pub fn unproven(certificate: &str) -> UploadCertificate {
    UploadCertificate { certificate: certificate.to_string(), possession: None }
}

pub fn sign(identity: &ApplicationIdentity, method: &str, path_and_query: &str, unix_seconds: i64) -> String {
    sign_body(identity, method, path_and_query, unix_seconds, &[])
}

/// [`sign`] for a request carrying `body`.
pub fn sign_body(
    identity: &ApplicationIdentity,
    method: &str,
    path_and_query: &str,
    unix_seconds: i64,
    body: &[u8],
) -> String {
    let signer = offsite_api::application_auth::Signer::new(identity).expect("an application key");
    signer.authorization(method, path_and_query, unix_seconds, body).expect("a signature")
}

/// The name a repository file's bytes must have.
pub fn content_name(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

pub fn running_backup() -> JobReport {
    JobReport {
        kind: JobKind::Backup,
        state: JobState::Running,
        started: OffsetDateTime::from_unix_timestamp(1_714_560_000).unwrap(),
        finished: None,
        bytes_processed: 0,
        bytes_uploaded: 0,
        bytes_stored: 0,
        file_count: 0,
        message: None,
        errors: vec![],
        next_backup: None,
    }
}

pub fn recovery_point(tenant: &str, n: u32) -> RecoveryPoint {
    RecoveryPoint {
        snapshot_id: content_name(format!("{tenant} snapshot {n}").as_bytes()),
        time: OffsetDateTime::from_unix_timestamp(1_714_560_000 + i64::from(n) * 86_400).unwrap(),
        size: 1000 * u64::from(n),
        file_count: 10 * u64::from(n),
        source: RecoveryPointSource::Online,
    }
}

/// The secret half of a `<id>.<secret>` token.
pub fn secret_of(token: &str) -> &str {
    token.split_once('.').expect("tokens are <id>.<secret>").1
}

/// The id half of a `<id>.<secret>` token.
pub fn id_of(token: &str) -> &str {
    token.split_once('.').expect("tokens are <id>.<secret>").0
}

/// The text and digest of a file list of (path, size), sorted by path.
pub fn file_list(files: &[(String, u64)]) -> (String, String) {
    let mut sorted: Vec<&(String, u64)> = files.iter().collect();
    sorted.sort();
    let mut digest = offsite_seeding::file_list::ListingDigest::default();
    let mut text = String::new();
    for (path, size) in sorted {
        digest.add(path, *size);
        text.push_str(&offsite_seeding::file_list::line(path, *size));
    }
    (text, digest.finish())
}

/// Registers a job's file list, as diskprep does.
pub fn register_file_list(client: &Client, job_id: &str, files: &[(String, u64)]) -> ImportJobView {
    let (text, digest) = file_list(files);
    client.put_import_file_list(job_id, &digest, text).expect("the file list is registered")
}
