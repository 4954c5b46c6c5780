//! A blocking client of the REST API, for the agent and the admin commands. It pins
//! the service certificate (see [`crate::tls`]) and sends one bearer credential, or
//! signs every request as an offline-seeding application
//! ([`crate::application_auth`]). It retries only reads whose connection failed
//! before an answer (a replica dying behind a load balancer takes its connections
//! with it); everything else is left to callers, who know which operations are
//! safe to repeat.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use reqwest::blocking::{RequestBuilder, Response};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::application_auth::{ApplicationIdentity, Signer};
use crate::files::ServiceEndpoint;
use crate::pacing::{PacedBody, Pacer};
use crate::types::*;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "cannot reach the offsite service at {url}: {reason}. Check that it is running and that the address is right"
    )]
    Unreachable {
        url: String,
        reason: String,
        /// A connection was made before it failed, so (part of) a request body may
        /// have crossed the link; false when no connection could be opened.
        connected: bool,
    },
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

    /// Whether a request's body may have been sent (in part or whole) before it
    /// failed: anything but a connection that could not be opened, or a request
    /// that could not be built.
    pub fn may_have_sent_body(&self) -> bool {
        match self {
            ApiError::Unreachable { connected, .. } => *connected,
            ApiError::Setup { .. } => false,
            ApiError::Refused { .. } | ApiError::Protocol { .. } => true,
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

/// The waits before sending a read again whose connection failed: a little
/// longer than a load balancer's health checks take to notice a dead replica.
const READ_RETRY_WAITS: [Duration; 3] =
    [Duration::from_millis(200), Duration::from_millis(600), Duration::from_millis(1500)];

/// How many uploads a paced upload's time limit assumes share its pace (the
/// agent runs two uploaders, and index and snapshot files go beside them).
const PACE_SHARERS: f64 = 8.0;

/// A bound on that time limit, which reqwest adds to the current instant.
const LONGEST_PACED_UPLOAD: Duration = Duration::from_secs(366 * 24 * 3600);

/// HTTP/2 receive windows: what may be in flight towards the client on one stream
/// and on the whole connection. 32 MiB covers 1 Gbit/s at 250 ms round trip; it
/// bounds buffering, it is not allocated.
pub const H2_STREAM_WINDOW: u32 = 8 << 20;
pub const H2_CONNECTION_WINDOW: u32 = 32 << 20;
/// The largest HTTP/2 frame a peer may send: at the protocol's default (16 KiB) a
/// pack's 8 MiB are 512 frames, each a wake-up on both sides.
pub const H2_MAX_FRAME: u32 = 256 << 10;

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
    /// For streamed uploads: the blocking client reads a streamed body 8 KiB at a
    /// time and hands each piece to its own thread, which costs more than the
    /// copy itself at disk speed; this one sends the caller's chunks as they are.
    streaming: reqwest::Client,
    runtime: Arc<OnceLock<Result<StreamingRuntime, String>>>,
    auth: Auth,
}

/// The runtime that drives streamed uploads, started on the first one.
struct StreamingRuntime(Option<tokio::runtime::Runtime>);

impl Drop for StreamingRuntime {
    fn drop(&mut self) {
        // A plain drop panics when the last client goes away inside async code.
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base", &self.base).finish_non_exhaustive()
    }
}

/// The drive an ingested part comes from: its id and the fingerprint of its
/// header as the station read it, which the service checks against the one
/// diskprep registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceDrive {
    /// Hex.
    pub drive_id: String,
    /// 64 hex digits.
    pub fingerprint: String,
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
        let user_agent = concat!("offsite/", env!("CARGO_PKG_VERSION"));
        // HTTP/2 where the service offers it (over TLS): the requests a job issues
        // side by side share one connection, so a slow link costs one handshake and
        // one round trip per batch, not per request. The receive windows are sized
        // for a long, fat link from the first byte (an adaptive window starts at
        // 64 KiB and took seconds to open at 200 ms: restores got slower).
        let mut builder = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(600))
            .http2_initial_stream_window_size(H2_STREAM_WINDOW)
            .http2_initial_connection_window_size(H2_CONNECTION_WINDOW)
            .http2_max_frame_size(H2_MAX_FRAME)
            .user_agent(user_agent);
        // Streamed uploads get a time limit per request, from their length.
        let mut streaming = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .http2_initial_stream_window_size(H2_STREAM_WINDOW)
            .http2_initial_connection_window_size(H2_CONNECTION_WINDOW)
            .http2_max_frame_size(H2_MAX_FRAME)
            .user_agent(user_agent);
        if endpoint.url.starts_with("https://") {
            let mut tls = crate::tls::pinned_client_config(&endpoint.fingerprint).map_err(setup)?;
            tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            builder = builder.use_preconfigured_tls(tls.clone());
            streaming = streaming.use_preconfigured_tls(tls);
        }
        let http = builder.build().map_err(|e| setup(e.to_string()))?;
        let streaming = streaming.build().map_err(|e| setup(e.to_string()))?;
        Ok(Client {
            base: endpoint.url.trim_end_matches('/').to_string(),
            http,
            streaming,
            runtime: Arc::new(OnceLock::new()),
            auth,
        })
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    /// The URL of an API path such as `/whoami`.
    fn api_url(&self, path: &str) -> String {
        format!("{}/api/v1{}", self.base, path)
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, self.api_url(path))
    }

    /// The Authorization header for a request to `url`: the bearer credential, or
    /// the application's signature over the method, the final path and query, and the body.
    /// `body`: what the request carries (applications send no streamed bodies:
    /// the signature covers the body's hash).
    fn authorization(
        &self,
        method: &Method,
        url: &reqwest::Url,
        body: &[u8],
    ) -> ApiResult<reqwest::header::HeaderValue> {
        let setup = |reason: String| ApiError::Setup { url: self.base.clone(), reason };
        let text = match &self.auth {
            Auth::Bearer(token) => format!("Bearer {token}"),
            Auth::Application(signer) => {
                let path_and_query = match url.query() {
                    Some(query) => format!("{}?{query}", url.path()),
                    None => url.path().to_string(),
                };
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0);
                signer.authorization(method.as_str(), &path_and_query, now, body).map_err(setup)?
            }
        };
        let mut value = reqwest::header::HeaderValue::from_str(&text).map_err(|e| setup(e.to_string()))?;
        value.set_sensitive(true);
        Ok(value)
    }

    fn unreachable(&self, err: &reqwest::Error) -> ApiError {
        ApiError::Unreachable { url: self.base.clone(), reason: cause_chain(err), connected: !err.is_connect() }
    }

    fn send(&self, request: RequestBuilder) -> ApiResult<Response> {
        let request =
            request.build().map_err(|e| ApiError::Setup { url: self.base.clone(), reason: cause_chain(&e) })?;
        // A read is sent again when its connection failed before any answer: behind
        // a load balancer, a replica that dies cuts the connections it held, and
        // the balancer sends new ones elsewhere once its health checks notice.
        let read = matches!(*request.method(), Method::GET | Method::HEAD);
        for wait in READ_RETRY_WAITS {
            let Some(copy) = read.then(|| request.try_clone()).flatten() else { break };
            match self.send_once(copy) {
                Err(ApiError::Unreachable { reason, .. }) => {
                    tracing::debug!(url = %request.url(), "no answer ({reason}); trying again in {wait:?}");
                    std::thread::sleep(wait);
                }
                answered => return answered,
            }
        }
        self.send_once(request)
    }

    /// Signs and sends one request (an application's signature, with its nonce,
    /// is made for each attempt).
    fn send_once(&self, mut request: reqwest::blocking::Request) -> ApiResult<Response> {
        let body = request.body().and_then(|b| b.as_bytes()).unwrap_or_default();
        let authorization = self.authorization(request.method(), request.url(), body)?;
        request.headers_mut().insert(reqwest::header::AUTHORIZATION, authorization);
        let method = request.method().clone();
        let path = request.url().path().to_string();
        // A streamed body (a paced upload) states its length in the header.
        let sent = match request.body().and_then(|b| b.as_bytes()) {
            Some(bytes) => bytes.len() as u64,
            None => request
                .headers()
                .get(reqwest::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or(0),
        };
        let started = std::time::Instant::now();
        let response = self.http.execute(request).map_err(|e| self.unreachable(&e))?;
        // One line per request (until the answer's headers): the load test's
        // latency figures come from these, and they help an operator see a slow service.
        tracing::debug!(
            target: "offsite_api::request",
            method = %method,
            path,
            status = response.status().as_u16(),
            bytes_sent = sent,
            micros = started.elapsed().as_micros() as u64,
            "request answered"
        );
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        Err(refusal(status, &response.text().unwrap_or_default()))
    }

    fn json<T: DeserializeOwned>(&self, response: Response) -> ApiResult<T> {
        let bytes = response.bytes().map_err(|e| self.unreachable(&e))?;
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

    /// Like [`Client::put_file`], but the body goes onto the wire in slices, each
    /// one after `pacer` let it go (see [`crate::pacing`]): a bandwidth limit
    /// holds at the link, and uploads running at once share it. Costs a copy
    /// of the body in small pieces; without a limit, use `put_file`.
    pub fn put_file_paced(
        &self,
        machine_id: &str,
        folder: &str,
        name: &str,
        data: Bytes,
        pacer: Arc<dyn Pacer>,
    ) -> ApiResult<()> {
        let length = data.len() as u64;
        let mut request = self
            .request(Method::PUT, &Self::repo_path(machine_id, folder, name))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, length);
        // The time limit covers the pacing too: the usual ten minutes, and time
        // for the whole body at the slowest pace, several times over since the
        // uploads running at once share it.
        if let Some(rate) = pacer.slowest_rate().filter(|&rate| rate > 0) {
            let paced = Duration::try_from_secs_f64(length as f64 * PACE_SHARERS / rate as f64)
                .map_or(LONGEST_PACED_UPLOAD, |paced| paced.min(LONGEST_PACED_UPLOAD));
            request = request.timeout(Duration::from_secs(600) + paced);
        }
        let request = request.body(reqwest::blocking::Body::sized(PacedBody::new(data, pacer), length));
        self.send(request).map(|_| ())
    }

    /// A whole file, or `length` bytes at `offset`.
    pub fn get_file(&self, machine_id: &str, folder: &str, name: &str, range: Option<(u64, u64)>) -> ApiResult<Bytes> {
        let mut request = self.request(Method::GET, &Self::repo_path(machine_id, folder, name));
        if let Some((offset, length)) = range {
            request = request.header(reqwest::header::RANGE, format!("bytes={}-{}", offset, offset + length - 1));
        }
        let response = self.send(request)?;
        response.bytes().map_err(|e| self.unreachable(&e))
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

    /// Issues another management credential of the subscription (for a new
    /// publish-settings file; the old ones keep working until revoked).
    pub fn issue_management_credential(
        &self,
        subscription_id: &str,
        valid_days: Option<u32>,
    ) -> ApiResult<ManagementCredentialIssued> {
        let path = format!("/subscriptions/{subscription_id}/management-credentials");
        self.post(&path, &IssueManagementCredential { valid_days })
    }

    pub fn management_credentials(&self, subscription_id: &str) -> ApiResult<Vec<ManagementCredential>> {
        self.get(&format!("/subscriptions/{subscription_id}/management-credentials"))
    }

    /// Revokes a management credential: every request with it is refused from now on.
    pub fn revoke_management_credential(
        &self,
        subscription_id: &str,
        credential_id: &str,
    ) -> ApiResult<ManagementCredential> {
        let path = format!("/subscriptions/{subscription_id}/management-credentials/{credential_id}");
        let response = self.send(self.request(Method::DELETE, &path))?;
        self.json(response)
    }

    /// Issues a credential for one of the datacenter's ingest stations (operators),
    /// returned once.
    pub fn issue_station_credential(
        &self,
        datacenter_id: &str,
        valid_days: Option<u32>,
    ) -> ApiResult<StationCredentialIssued> {
        self.issue_station_credential_with_key(datacenter_id, valid_days, None)
    }

    /// Like [`Client::issue_station_credential`], registering the Ed25519 public key
    /// (64 hex digits) the station signs custody events with.
    pub fn issue_station_credential_with_key(
        &self,
        datacenter_id: &str,
        valid_days: Option<u32>,
        signing_key: Option<&str>,
    ) -> ApiResult<StationCredentialIssued> {
        let body = IssueStationCredential { valid_days, signing_key: signing_key.map(str::to_string) };
        self.post(&format!("/datacenters/{datacenter_id}/station-credentials"), &body)
    }

    /// An import job's custody log, with the keys its events name.
    pub fn import_job_custody(&self, import_job_id: &str) -> ApiResult<crate::types::CustodyLog> {
        self.get(&format!("/import-jobs/{import_job_id}/custody"))
    }

    /// Appends a signed event to an import job's custody log; 409 when the log
    /// grew meanwhile (read it again and sign the next event).
    pub fn append_import_job_custody(
        &self,
        import_job_id: &str,
        event: &crate::types::CustodyEvent,
    ) -> ApiResult<crate::types::CustodyEvent> {
        self.post(&format!("/import-jobs/{import_job_id}/custody"), event)
    }

    /// An export job's custody log, with the keys its events name.
    pub fn export_job_custody(&self, export_job_id: &str) -> ApiResult<crate::types::CustodyLog> {
        self.get(&format!("/export-jobs/{export_job_id}/custody"))
    }

    /// Appends a signed event to an export job's custody log (its station); 409
    /// when the log grew meanwhile.
    pub fn append_export_job_custody(
        &self,
        export_job_id: &str,
        event: &crate::types::CustodyEvent,
    ) -> ApiResult<crate::types::CustodyEvent> {
        self.post(&format!("/export-jobs/{export_job_id}/custody"), event)
    }

    pub fn station_credentials(&self, datacenter_id: &str) -> ApiResult<Vec<StationCredential>> {
        self.get(&format!("/datacenters/{datacenter_id}/station-credentials"))
    }

    /// Revokes a station credential: every request with it is refused from now on.
    pub fn revoke_station_credential(&self, datacenter_id: &str, credential_id: &str) -> ApiResult<StationCredential> {
        let path = format!("/datacenters/{datacenter_id}/station-credentials/{credential_id}");
        let response = self.send(self.request(Method::DELETE, &path))?;
        self.json(response)
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
        self.post("/register", &RegisterMachine { name: name.into(), hostname: hostname.into(), replaces: None })
    }

    /// Registers as the replacement of a machine of the vault (its id or name):
    /// this machine takes over its repository and recovery points.
    pub fn register_replacing(&self, name: &str, hostname: &str, replaces: &str) -> ApiResult<MachineRegistered> {
        let body = RegisterMachine { name: name.into(), hostname: hostname.into(), replaces: Some(replaces.into()) };
        self.post("/register", &body)
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

    /// What the machine removed that the service still keeps, until when.
    pub fn soft_deleted(&self, machine_id: &str) -> ApiResult<SoftDeleted> {
        self.get(&format!("/machines/{machine_id}/soft-deleted"))
    }

    /// Brings back soft-deleted recovery points (all, when none is named).
    pub fn undelete(&self, machine_id: &str, recovery_points: &[String]) -> ApiResult<Undeleted> {
        self.post(&format!("/machines/{machine_id}/undelete"), &Undelete { recovery_points: recovery_points.to_vec() })
    }

    pub fn vault_protection(&self, vault_id: &str) -> ApiResult<VaultProtection> {
        self.get(&format!("/vaults/{vault_id}/protection"))
    }

    /// Changes a vault's protection; a weakening becomes a request an operator decides.
    pub fn change_vault_protection(
        &self,
        vault_id: &str,
        change: &ProtectionChange,
    ) -> ApiResult<ProtectionChangeOutcome> {
        self.put(&format!("/vaults/{vault_id}/protection"), change)
    }

    /// Requests to weaken protection: the subscription's own, or every pending one
    /// for an operator.
    pub fn protection_requests(&self) -> ApiResult<Vec<ProtectionRequest>> {
        self.get("/protection-requests")
    }

    /// An operator's decision on a request.
    pub fn decide_protection_request(
        &self,
        request_id: &str,
        approve: bool,
        note: Option<&str>,
    ) -> ApiResult<ProtectionRequest> {
        let verb = if approve { "approve" } else { "reject" };
        let decision = ProtectionDecision { note: note.map(str::to_string) };
        self.post(&format!("/protection-requests/{request_id}/{verb}"), &decision)
    }

    pub fn add_notification_channel(
        &self,
        subscription_id: &str,
        channel: &CreateNotificationChannel,
    ) -> ApiResult<NotificationChannelCreated> {
        self.post(&format!("/subscriptions/{subscription_id}/notification-channels"), channel)
    }

    pub fn notification_channels(&self, subscription_id: &str) -> ApiResult<Vec<NotificationChannel>> {
        self.get(&format!("/subscriptions/{subscription_id}/notification-channels"))
    }

    pub fn remove_notification_channel(&self, subscription_id: &str, channel_id: &str) -> ApiResult<()> {
        self.delete(&format!("/subscriptions/{subscription_id}/notification-channels/{channel_id}"))
    }

    /// The subscription's most recent messages, newest first, with their delivery.
    pub fn notifications(&self, subscription_id: &str) -> ApiResult<Vec<Notification>> {
        self.get(&format!("/subscriptions/{subscription_id}/notifications"))
    }

    pub fn alerts(&self, subscription_id: &str) -> ApiResult<Vec<Alert>> {
        self.get(&format!("/subscriptions/{subscription_id}/alerts"))
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

    // ------------------------------------------------------------ portal users

    pub fn create_portal_user(&self, user: &CreatePortalUser) -> ApiResult<PortalUser> {
        self.post("/portal-users", user)
    }

    pub fn list_portal_users(&self) -> ApiResult<Vec<PortalUser>> {
        self.get("/portal-users")
    }

    /// Disables a portal user (operators): no sign-in, and their sessions end;
    /// or enables one again.
    pub fn set_portal_user_disabled(&self, user_id: &str, disabled: bool) -> ApiResult<PortalUser> {
        self.put(&format!("/portal-users/{user_id}/disabled"), &SetPortalUserDisabled { disabled })
    }

    /// Gives a portal user a new password (operators); their sessions end.
    pub fn set_portal_user_password(&self, user_id: &str, password: &str) -> ApiResult<PortalUser> {
        self.put(&format!("/portal-users/{user_id}/password"), &SetPortalUserPassword { password: password.into() })
    }

    /// Removes a portal user (operators); their sessions end. Answers the user removed.
    pub fn remove_portal_user(&self, user_id: &str) -> ApiResult<PortalUser> {
        let response = self.send(self.request(Method::DELETE, &format!("/portal-users/{user_id}")))?;
        self.json(response)
    }

    // ------------------------------------------------------------ storage quotas

    pub fn storage_quota(&self, subscription_id: &str) -> ApiResult<StorageQuota> {
        self.get(&format!("/subscriptions/{subscription_id}/quota"))
    }

    /// Sets (or with `None` lifts) a subscription's storage quota (operators only).
    pub fn set_storage_quota(&self, subscription_id: &str, quota_bytes: Option<u64>) -> ApiResult<StorageQuota> {
        self.put(&format!("/subscriptions/{subscription_id}/quota"), &SetStorageQuota { quota_bytes })
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

    /// Uploads one part of an ingested file (the datacenter's station, operators):
    /// `length` bytes at `offset` of the file `path` of `file_size` bytes, from
    /// `drive` (which must be registered with the job, with this header), streamed
    /// from `body` in the chunks it yields. A part covering the whole file is stored
    /// as the file. An error from `body` aborts the upload, and the service stores
    /// nothing of it.
    #[allow(clippy::too_many_arguments)]
    pub fn put_import_file<S>(
        &self,
        import_job_id: &str,
        drive: &SourceDrive,
        path: &str,
        offset: u64,
        file_size: u64,
        body: S,
        length: u64,
    ) -> ApiResult<()>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    {
        let setup = |reason: String| ApiError::Setup { url: self.base.clone(), reason };
        let mut url = reqwest::Url::parse(&self.api_url(&format!("/import-jobs/{import_job_id}/files")))
            .map_err(|e| setup(e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("path", path)
            .append_pair("offset", &offset.to_string())
            .append_pair("file_size", &file_size.to_string())
            .append_pair("drive_id", &drive.drive_id)
            .append_pair("fingerprint", &drive.fingerprint);
        // A bearer credential (the station's): a streamed body is not signed.
        let authorization = self.authorization(&Method::PUT, &url, &[])?;
        let request = self
            .streaming
            .put(url)
            .header(reqwest::header::AUTHORIZATION, authorization)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, length)
            // Ten minutes, and a second more for each MiB.
            .timeout(Duration::from_secs(600 + (length >> 20)))
            .body(reqwest::Body::wrap_stream(body));
        let runtime = self
            .runtime
            .get_or_init(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("offsite-upload")
                    .enable_all()
                    .build()
                    .map(|runtime| StreamingRuntime(Some(runtime)))
                    .map_err(|e| format!("cannot start the upload runtime: {e}"))
            })
            .as_ref()
            .map_err(|reason| setup(reason.clone()))?;
        let Some(runtime) = runtime.0.as_ref() else { return Err(setup("the upload runtime stopped".into())) };
        runtime.block_on(async {
            let response = request.send().await.map_err(|e| self.unreachable(&e))?;
            if response.status().is_success() {
                return Ok(());
            }
            let status = response.status().as_u16();
            Err(refusal(status, &response.text().await.unwrap_or_default()))
        })
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
        response.text().map_err(|e| self.unreachable(&e))
    }

    /// The whole files ingested into a job's container.
    pub fn import_files(&self, import_job_id: &str) -> ApiResult<Vec<ImportFile>> {
        self.get(&format!("/import-jobs/{import_job_id}/files"))
    }

    /// Registers the job's file list (`offsite_seeding::file_list` text), which the
    /// service checks against `digest` before keeping it.
    pub fn put_import_file_list(&self, import_job_id: &str, digest: &str, text: String) -> ApiResult<ImportJobView> {
        let request = self
            .request(Method::PUT, &format!("/import-jobs/{import_job_id}/file-list?digest={digest}"))
            .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(text);
        let response = self.send(request)?;
        self.json(response)
    }

    /// The files of the job's file list that its container does not hold whole:
    /// what a repair drive must bring.
    pub fn missing_import_files(&self, import_job_id: &str) -> ApiResult<Vec<ImportFile>> {
        self.get(&format!("/import-jobs/{import_job_id}/missing-files"))
    }

    /// The parts of files ingested into a job's container, not yet packaged.
    pub fn import_parts(&self, import_job_id: &str) -> ApiResult<Vec<ImportPart>> {
        self.get(&format!("/import-jobs/{import_job_id}/parts"))
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
    /// Creates the subscription's application with its first certificate, whose
    /// upload carries a proof of possession (see [`Client::certificate_challenge`]).
    pub fn create_application(&self, subscription_id: &str, upload: &UploadCertificate) -> ApiResult<Application> {
        self.post(&format!("/subscriptions/{subscription_id}/application"), upload)
    }

    /// A single-use challenge to sign with a certificate's key before uploading it.
    pub fn certificate_challenge(&self, subscription_id: &str) -> ApiResult<CertificateChallenge> {
        self.post(&format!("/subscriptions/{subscription_id}/application/challenge"), &NewCertificateChallenge {})
    }

    pub fn application(&self, subscription_id: &str) -> ApiResult<Application> {
        self.get(&format!("/subscriptions/{subscription_id}/application"))
    }

    /// Removes a certificate of the application: its key signs nothing from now on.
    pub fn remove_application_certificate(&self, subscription_id: &str, thumbprint: &str) -> ApiResult<Application> {
        let path = format!("/subscriptions/{subscription_id}/application/certificates/{thumbprint}");
        let response = self.send(self.request(Method::DELETE, &path))?;
        self.json(response)
    }

    /// Registers another certificate of the application (the manual path).
    pub fn upload_application_certificate(
        &self,
        subscription_id: &str,
        upload: &UploadCertificate,
    ) -> ApiResult<Application> {
        self.post(&format!("/subscriptions/{subscription_id}/application/certificates"), upload)
    }

    pub fn subscription(&self, subscription_id: &str) -> ApiResult<Subscription> {
        self.get(&format!("/subscriptions/{subscription_id}"))
    }
}

/// Export jobs (offline restore).
impl Client {
    /// Sizes an export without making it (PreviewExport).
    pub fn preview_export(&self, subscription_id: &str, request: &CreateExportJob) -> ApiResult<ExportSizing> {
        self.post(&format!("/subscriptions/{subscription_id}/export-jobs/preview"), request)
    }

    pub fn request_export(&self, subscription_id: &str, request: &CreateExportJob) -> ApiResult<ExportJobView> {
        self.post(&format!("/subscriptions/{subscription_id}/export-jobs"), request)
    }

    pub fn export_jobs(&self, subscription_id: &str) -> ApiResult<Vec<ExportJobView>> {
        self.get(&format!("/subscriptions/{subscription_id}/export-jobs"))
    }

    pub fn datacenter_export_jobs(&self, datacenter_id: &str) -> ApiResult<Vec<ExportJobView>> {
        self.get(&format!("/datacenters/{datacenter_id}/export-jobs"))
    }

    /// An export job by id or name.
    pub fn export_job(&self, id_or_name: &str) -> ApiResult<ExportJobView> {
        self.get(&format!("/export-jobs/{}", encode_segment(id_or_name)))
    }

    pub fn export_files(&self, export_job_id: &str) -> ApiResult<Vec<ExportFile>> {
        self.get(&format!("/export-jobs/{export_job_id}/files"))
    }

    /// One file of an export job, streamed: read it to its end.
    pub fn export_file(&self, export_job_id: &str, machine_id: &str, path: &str) -> ApiResult<Response> {
        let path = format!(
            "/export-jobs/{export_job_id}/file?machine_id={}&path={}",
            encode_segment(machine_id),
            encode_segment(path)
        );
        self.send(self.request(Method::GET, &path))
    }

    pub fn begin_export(&self, export_job_id: &str) -> ApiResult<ExportJobView> {
        self.post(&format!("/export-jobs/{export_job_id}/begin"), &ImportJobNote::default())
    }

    pub fn add_export_drive(&self, export_job_id: &str, drive: &ExportDrive) -> ApiResult<ExportJobView> {
        self.post(&format!("/export-jobs/{export_job_id}/drives"), drive)
    }

    pub fn ship_export(&self, export_job_id: &str, shipment: &ExportShipment) -> ApiResult<ExportJobView> {
        self.post(&format!("/export-jobs/{export_job_id}/ship"), shipment)
    }

    /// A customer's step: `delivered`, `complete` or `cancel`.
    pub fn export_step(&self, export_job_id: &str, step: &str, note: &ImportJobNote) -> ApiResult<ExportJobView> {
        self.post(&format!("/export-jobs/{export_job_id}/{step}"), note)
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

/// The service's answer to a request it did not carry out.
fn refusal(status: u16, text: &str) -> ApiError {
    let (code, message) = match serde_json::from_str::<ErrorBody>(text) {
        Ok(body) => (body.code, body.error),
        Err(_) => ("http_error".to_string(), format!("{} {}", status, text.chars().take(200).collect::<String>())),
    };
    ApiError::Refused { status, code, message }
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
