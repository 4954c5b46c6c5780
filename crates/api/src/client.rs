//! A blocking client of the REST API, for the agent and the admin commands. It pins
//! the service certificate (see [`crate::tls`]) and sends one bearer credential, or
//! signs every request as an offline-seeding application
//! ([`crate::application_auth`]). It does not retry: callers know which operations
//! are safe to repeat.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::blocking::{RequestBuilder, Response};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::application_auth::{ApplicationIdentity, Signer};
use crate::files::ServiceEndpoint;
use crate::types::*;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "cannot reach the offsite service at {url}: {reason}. Check that it is running and that the address is right"
    )]
    Unreachable { url: String, reason: String },
    #[error("the service refused: {message} (HTTP {status})")]
    Refused { status: u16, code: String, message: String },
    #[error("the service at {url} answered something offsite cannot read: {reason}")]
    Protocol { url: String, reason: String },
    #[error("cannot set up a connection to {url}: {reason}")]
    Setup { url: String, reason: String },
}

impl ApiError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Worth retrying later: the service was down, overloaded or failed inside.
    /// A full storage backend (507) is not: it needs someone to act.
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::Unreachable { .. } => true,
            ApiError::Refused { status, .. } => *status == 429 || (*status >= 500 && *status != 507),
            _ => false,
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// How a client proves who it is.
#[derive(Clone)]
enum Auth {
    Bearer(String),
    /// Signs each request (the key never leaves the signer).
    Application(Arc<Signer>),
}

#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::blocking::Client,
    auth: Auth,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base", &self.base).finish_non_exhaustive()
    }
}

impl Client {
    /// A client of the service at `endpoint` presenting `token`.
    pub fn new(endpoint: &ServiceEndpoint, token: &str) -> ApiResult<Client> {
        Self::with_auth(endpoint, Auth::Bearer(token.to_string()))
    }

    /// A client of the service at `endpoint` that signs every request as the
    /// offline-seeding application `identity`.
    pub fn for_application(endpoint: &ServiceEndpoint, identity: &ApplicationIdentity) -> ApiResult<Client> {
        let signer = Signer::new(identity).map_err(|reason| ApiError::Setup { url: endpoint.url.clone(), reason })?;
        Self::with_auth(endpoint, Auth::Application(Arc::new(signer)))
    }

    fn with_auth(endpoint: &ServiceEndpoint, auth: Auth) -> ApiResult<Client> {
        let setup = |reason: String| ApiError::Setup { url: endpoint.url.clone(), reason };
        let mut builder = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(600))
            .user_agent(concat!("offsite/", env!("CARGO_PKG_VERSION")));
        if endpoint.url.starts_with("https://") {
            builder =
                builder.use_preconfigured_tls(crate::tls::pinned_client_config(&endpoint.fingerprint).map_err(setup)?);
        }
        let http = builder.build().map_err(|e| setup(e.to_string()))?;
        Ok(Client { base: endpoint.url.trim_end_matches('/').to_string(), http, auth })
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self.http.request(method, format!("{}/api/v1{}", self.base, path));
        match &self.auth {
            Auth::Bearer(token) => request.bearer_auth(token),
            // Signed in `send`, once the URL with its query is final.
            Auth::Application(_) => request,
        }
    }

    fn send(&self, request: RequestBuilder) -> ApiResult<Response> {
        let unreachable = |e: reqwest::Error| ApiError::Unreachable { url: self.base.clone(), reason: cause_chain(&e) };
        let response = match &self.auth {
            Auth::Bearer(_) => request.send().map_err(unreachable)?,
            Auth::Application(signer) => {
                let mut request =
                    request.build().map_err(|e| ApiError::Setup { url: self.base.clone(), reason: cause_chain(&e) })?;
                let url = request.url();
                let path_and_query = match url.query() {
                    Some(query) => format!("{}?{query}", url.path()),
                    None => url.path().to_string(),
                };
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0);
                let header = signer
                    .authorization(request.method().as_str(), &path_and_query, now)
                    .map_err(|reason| ApiError::Setup { url: self.base.clone(), reason })?;
                let mut value = reqwest::header::HeaderValue::from_str(&header)
                    .map_err(|e| ApiError::Setup { url: self.base.clone(), reason: e.to_string() })?;
                value.set_sensitive(true);
                request.headers_mut().insert(reqwest::header::AUTHORIZATION, value);
                self.http.execute(request).map_err(unreachable)?
            }
        };
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_default();
        let (code, message) = match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => (body.code, body.error),
            Err(_) => ("http_error".to_string(), format!("{} {}", status, text.chars().take(200).collect::<String>())),
        };
        Err(ApiError::Refused { status, code, message })
    }

    fn json<T: DeserializeOwned>(&self, response: Response) -> ApiResult<T> {
        let bytes =
            response.bytes().map_err(|e| ApiError::Unreachable { url: self.base.clone(), reason: cause_chain(&e) })?;
        serde_json::from_slice(&bytes).map_err(|e| ApiError::Protocol { url: self.base.clone(), reason: e.to_string() })
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> ApiResult<T> {
        let response = self.send(self.request(Method::GET, path))?;
        self.json(response)
    }

    pub fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> ApiResult<T> {
        let response = self.send(self.request(Method::POST, path).json(body))?;
        self.json(response)
    }

    pub fn put<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> ApiResult<T> {
        let response = self.send(self.request(Method::PUT, path).json(body))?;
        self.json(response)
    }

    pub fn delete(&self, path: &str) -> ApiResult<()> {
        self.send(self.request(Method::DELETE, path)).map(|_| ())
    }

    // ------------------------------------------------------------ repository files

    fn repo_path(machine_id: &str, folder: &str, name: &str) -> String {
        format!("/machines/{machine_id}/repository/{folder}/{name}")
    }

    pub fn put_file(&self, machine_id: &str, folder: &str, name: &str, data: Bytes) -> ApiResult<()> {
        let request = self
            .request(Method::PUT, &Self::repo_path(machine_id, folder, name))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(data);
        self.send(request).map(|_| ())
    }

    /// A whole file, or `length` bytes at `offset`.
    pub fn get_file(&self, machine_id: &str, folder: &str, name: &str, range: Option<(u64, u64)>) -> ApiResult<Bytes> {
        let mut request = self.request(Method::GET, &Self::repo_path(machine_id, folder, name));
        if let Some((offset, length)) = range {
            request = request.header(reqwest::header::RANGE, format!("bytes={}-{}", offset, offset + length - 1));
        }
        let response = self.send(request)?;
        response.bytes().map_err(|e| ApiError::Unreachable { url: self.base.clone(), reason: cause_chain(&e) })
    }

    pub fn file_size(&self, machine_id: &str, folder: &str, name: &str) -> ApiResult<Option<u64>> {
        match self.send(self.request(Method::HEAD, &Self::repo_path(machine_id, folder, name))) {
            Ok(response) => {
                let length = response
                    .headers()
                    .get(reqwest::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok());
                length.map(Some).ok_or_else(|| ApiError::Protocol {
                    url: self.base.clone(),
                    reason: "HEAD answered without a Content-Length".into(),
                })
            }
            Err(err) if err.status() == Some(StatusCode::NOT_FOUND.as_u16()) => Ok(None),
            Err(err) => Err(err),
        }
    }

    pub fn list_files(&self, machine_id: &str, folder: &str) -> ApiResult<Vec<RepositoryFile>> {
        self.get(&format!("/machines/{machine_id}/repository/{folder}"))
    }

    pub fn delete_file(&self, machine_id: &str, folder: &str, name: &str) -> ApiResult<()> {
        self.delete(&Self::repo_path(machine_id, folder, name))
    }

    // ------------------------------------------------------------ typed calls

    pub fn whoami(&self) -> ApiResult<WhoAmI> {
        self.get("/whoami")
    }

    pub fn create_subscription(&self, name: &str) -> ApiResult<SubscriptionCreated> {
        self.post("/subscriptions", &CreateSubscription { name: name.into() })
    }

    pub fn list_subscriptions(&self) -> ApiResult<Vec<Subscription>> {
        self.get("/subscriptions")
    }

    pub fn create_vault(&self, subscription_id: &str, name: &str) -> ApiResult<Vault> {
        self.post(&format!("/subscriptions/{subscription_id}/vaults"), &CreateVault { name: name.into() })
    }

    pub fn list_vaults(&self, subscription_id: &str) -> ApiResult<Vec<Vault>> {
        self.get(&format!("/subscriptions/{subscription_id}/vaults"))
    }

    pub fn vault_credentials(&self, vault_id: &str, valid_hours: Option<u32>) -> ApiResult<VaultCredentialsIssued> {
        self.post(&format!("/vaults/{vault_id}/credentials"), &CreateVaultCredentials { valid_hours })
    }

    pub fn register(&self, name: &str, hostname: &str) -> ApiResult<MachineRegistered> {
        self.post("/register", &RegisterMachine { name: name.into(), hostname: hostname.into() })
    }

    pub fn list_machines(&self, vault_id: &str) -> ApiResult<Vec<Machine>> {
        self.get(&format!("/vaults/{vault_id}/machines"))
    }

    pub fn machine(&self, machine_id: &str) -> ApiResult<Machine> {
        self.get(&format!("/machines/{machine_id}"))
    }

    pub fn remove_machine(&self, machine_id: &str) -> ApiResult<Machine> {
        let response = self.send(self.request(Method::DELETE, &format!("/machines/{machine_id}")))?;
        self.json(response)
    }

    pub fn set_protected_items(&self, machine_id: &str, items: &[ProtectedItem]) -> ApiResult<Vec<ProtectedItem>> {
        self.put(&format!("/machines/{machine_id}/protected-items"), &items)
    }

    pub fn set_recovery_points(&self, machine_id: &str, points: &[RecoveryPoint]) -> ApiResult<Vec<RecoveryPoint>> {
        self.put(&format!("/machines/{machine_id}/recovery-points"), &points)
    }

    pub fn recovery_points(&self, machine_id: &str) -> ApiResult<Vec<RecoveryPoint>> {
        self.get(&format!("/machines/{machine_id}/recovery-points"))
    }

    pub fn create_job(&self, machine_id: &str, report: &JobReport) -> ApiResult<Job> {
        self.post(&format!("/machines/{machine_id}/jobs"), report)
    }

    pub fn update_job(&self, machine_id: &str, job_id: &str, report: &JobReport) -> ApiResult<Job> {
        self.put(&format!("/machines/{machine_id}/jobs/{job_id}"), report)
    }

    pub fn jobs(&self, machine_id: &str) -> ApiResult<Vec<Job>> {
        self.get(&format!("/machines/{machine_id}/jobs"))
    }

    pub fn create_storage_account(&self, subscription_id: &str, name: &str) -> ApiResult<StorageAccount> {
        self.post(
            &format!("/subscriptions/{subscription_id}/storage-accounts"),
            &CreateStorageAccount { name: name.into() },
        )
    }

    pub fn list_storage_accounts(&self, subscription_id: &str) -> ApiResult<Vec<StorageAccount>> {
        self.get(&format!("/subscriptions/{subscription_id}/storage-accounts"))
    }

    pub fn create_container(&self, storage_account_id: &str, name: &str) -> ApiResult<Container> {
        self.post(&format!("/storage-accounts/{storage_account_id}/containers"), &CreateContainer { name: name.into() })
    }

    pub fn list_containers(&self, storage_account_id: &str) -> ApiResult<Vec<Container>> {
        self.get(&format!("/storage-accounts/{storage_account_id}/containers"))
    }

    /// Adds a datacenter (operators) with its X25519 import public key, 64 hex digits.
    pub fn add_datacenter(&self, name: &str, address: &str, import_public_key_hex: &str) -> ApiResult<Datacenter> {
        self.post(
            "/datacenters",
            &CreateDatacenter {
                name: name.into(),
                address: address.into(),
                import_public_key: import_public_key_hex.into(),
            },
        )
    }

    pub fn list_datacenters(&self) -> ApiResult<Vec<Datacenter>> {
        self.get("/datacenters")
    }

    // ------------------------------------------------------------ import jobs

    pub fn create_import_job(&self, subscription_id: &str, job: &CreateImportJob) -> ApiResult<ImportJobView> {
        self.post(&format!("/subscriptions/{subscription_id}/import-jobs"), job)
    }

    pub fn list_import_jobs(&self, subscription_id: &str) -> ApiResult<Vec<ImportJobView>> {
        self.get(&format!("/subscriptions/{subscription_id}/import-jobs"))
    }

    pub fn import_job(&self, import_job_id: &str) -> ApiResult<ImportJobView> {
        self.get(&format!("/import-jobs/{import_job_id}"))
    }

    pub fn cancel_import_job(&self, import_job_id: &str, note: &ImportJobNote) -> ApiResult<ImportJobView> {
        self.post(&format!("/import-jobs/{import_job_id}/cancel"), note)
    }

    pub fn set_import_job_shipping(&self, import_job_id: &str, shipping: &ShippingDetails) -> ApiResult<ImportJobView> {
        self.put(&format!("/import-jobs/{import_job_id}/shipping"), shipping)
    }

    /// The package arrived at the datacenter (operators).
    pub fn receive_import_job(&self, import_job_id: &str, note: &ImportJobNote) -> ApiResult<ImportJobView> {
        self.post(&format!("/import-jobs/{import_job_id}/receive"), note)
    }

    /// Moves one drive of a job on (operators).
    pub fn set_import_drive_state(
        &self,
        import_job_id: &str,
        drive_id: &str,
        update: &DriveStateUpdate,
    ) -> ApiResult<ImportJobView> {
        self.put(&format!("/import-jobs/{import_job_id}/drives/{drive_id}/state"), update)
    }

    /// Packaging → Completed (operators).
    pub fn complete_import_job(&self, import_job_id: &str, note: &ImportJobNote) -> ApiResult<ImportJobView> {
        self.post(&format!("/import-jobs/{import_job_id}/complete"), note)
    }

    /// An import job by its name (unique across the service).
    pub fn find_import_job(&self, name: &str) -> ApiResult<ImportJobView> {
        self.get(&format!("/import-jobs/by-name/{}", encode_segment(name)))
    }

    /// Adds a (repair) drive to a job; it starts `specified`.
    pub fn add_import_drive(&self, import_job_id: &str, spec: &ImportJobDriveSpec) -> ApiResult<ImportJobView> {
        self.post(&format!("/import-jobs/{import_job_id}/drives"), spec)
    }

    /// Uploads one part of an ingested file (operators): `length` bytes from
    /// `body`, at `offset` of the file `path` of `file_size` bytes, from drive
    /// `drive_id`. A part covering the whole file is stored as the file.
    #[allow(clippy::too_many_arguments)]
    pub fn put_import_file(
        &self,
        import_job_id: &str,
        drive_id: &str,
        path: &str,
        offset: u64,
        file_size: u64,
        body: impl std::io::Read + Send + 'static,
        length: u64,
    ) -> ApiResult<()> {
        let request = self
            .request(Method::PUT, &format!("/import-jobs/{import_job_id}/files"))
            .query(&[
                ("path", path.to_string()),
                ("offset", offset.to_string()),
                ("file_size", file_size.to_string()),
                ("drive_id", drive_id.to_string()),
            ])
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(reqwest::blocking::Body::sized(body, length));
        self.send(request).map(|_| ())
    }

    /// Stores a drive's ingest log (`kind` is `error` or `verbose`; operators).
    pub fn put_drive_log(&self, import_job_id: &str, drive_id: &str, kind: &str, text: &str) -> ApiResult<()> {
        let request = self
            .request(Method::PUT, &format!("/import-jobs/{import_job_id}/drives/{drive_id}/logs/{kind}"))
            .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(text.to_string());
        self.send(request).map(|_| ())
    }

    /// A drive's ingest log (`error` or `verbose`).
    pub fn drive_log(&self, import_job_id: &str, drive_id: &str, kind: &str) -> ApiResult<String> {
        let response = self
            .send(self.request(Method::GET, &format!("/import-jobs/{import_job_id}/drives/{drive_id}/logs/{kind}")))?;
        response.text().map_err(|e| ApiError::Unreachable { url: self.base.clone(), reason: cause_chain(&e) })
    }

    /// The whole files ingested into a job's container.
    pub fn import_files(&self, import_job_id: &str) -> ApiResult<Vec<ImportFile>> {
        self.get(&format!("/import-jobs/{import_job_id}/files"))
    }

    /// Assembles the ingested parts into files (operators): `completed` when every
    /// file is whole; otherwise the job waits for a repair drive (its timeline says
    /// which files and byte ranges are missing).
    pub fn package_import_job(&self, import_job_id: &str, note: &ImportJobNote) -> ApiResult<ImportJobView> {
        self.post(&format!("/import-jobs/{import_job_id}/package"), note)
    }

    /// Copies the seed of a completed import job into the machine's vault
    /// repository (the machine itself). Repeating it answers the first result.
    pub fn adopt_seed(&self, machine_id: &str, import_job_name: &str) -> ApiResult<Adoption> {
        self.post(&format!("/machines/{machine_id}/adopt"), &AdoptSeed { import_job: import_job_name.into() })
    }

    // ------------------------------------------------------------ applications

    /// Creates the subscription's offline-seeding application with its first certificate.
    pub fn create_application(&self, subscription_id: &str, certificate: &str) -> ApiResult<Application> {
        self.post(
            &format!("/subscriptions/{subscription_id}/application"),
            &UploadCertificate { certificate: certificate.into() },
        )
    }

    pub fn application(&self, subscription_id: &str) -> ApiResult<Application> {
        self.get(&format!("/subscriptions/{subscription_id}/application"))
    }

    /// Registers another certificate of the application (the manual path).
    pub fn upload_application_certificate(&self, subscription_id: &str, certificate: &str) -> ApiResult<Application> {
        self.post(
            &format!("/subscriptions/{subscription_id}/application/certificates"),
            &UploadCertificate { certificate: certificate.into() },
        )
    }

    pub fn subscription(&self, subscription_id: &str) -> ApiResult<Subscription> {
        self.get(&format!("/subscriptions/{subscription_id}"))
    }
}

/// A path segment with everything but unreserved characters percent-encoded.
fn encode_segment(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// reqwest's top-level message ("error sending request") hides the cause a user can
/// act on ("connection refused", "certificate fingerprint …"): show the whole chain.
fn cause_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = cause.source();
    }
    text
}
