//! The offsite service: REST API, metadata database, vault storage.
//!
//! - [`db`]: subscriptions, vaults, machines, credentials, jobs (SQLite or PostgreSQL);
//! - [`storage`]: each machine's repository in the object store, streamed;
//! - `auth`: bearer credentials → principals, and who may touch what;
//! - `routes`: one module per API resource, documented with OpenAPI;
//! - [`tls`]: the service certificate clients pin.
//!
//! [`Server::start`] brings it all up; `offsite server run` is a thin wrapper.

#![forbid(unsafe_code)]

mod argon2_slots;
mod auth;
mod certificates;
pub mod clock;
pub mod consistency;
mod container_storage;
pub mod db;
mod error;
pub mod maintenance;
pub mod notify;
mod operator;
mod portal;
mod principal;
mod proxy_protocol;
mod retrying_store;
pub(crate) mod routes;
mod scrape;
mod secrets;
mod services;
mod sign_in_limit;
mod signed_body;
mod source;
mod state;
pub mod storage;
pub mod tls;
mod unread_body;
mod verified_tokens;

/// The portal's routes, for tests that must cover every page.
pub use portal::{PortalAccess, PortalRoute, ROUTES as PORTAL_ROUTES};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use object_store::ObjectStore;

use crate::state::{AppState, Shared};

/// How to run the service. Every field has an embedded default under `data_dir`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; default: SQLite at `data_dir/offsite.db`.
    pub database_url: Option<String>,
    /// PostgreSQL connections this replica holds at most [default: 16].
    pub database_max_connections: Option<u32>,
    /// Object store URL (`s3://`, `az://`, `gs://`, or a folder); default `data_dir/storage`.
    pub storage: Option<String>,
    pub storage_options: Vec<(String, String)>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// The URL clients use, when it differs from the listening address.
    pub public_url: Option<String>,
    /// Seconds added to the system clock where deadlines are judged (import job
    /// expiry); 0 but in tests.
    pub clock_offset_seconds: i64,
    /// Wraps the object store the service opens for vaults and containers, below
    /// the service's own retries (tests inject faults with it); `None` but in tests.
    pub wrap_storage: Option<StorageWrapper>,
    /// How often background work runs (purging soft-deleted files past their
    /// window, mass-deletion alerts); `None`: never (one-shot tools).
    pub maintenance_interval: Option<std::time::Duration>,
    /// The SMTP relay notifications by e-mail go through (`smtp://…`, `smtps://…`);
    /// none: e-mail channels cannot be added.
    pub smtp_url: Option<String>,
    /// The sender of notification e-mails.
    pub smtp_from: String,
    /// Let webhooks call addresses of private networks (loopback, RFC 1918,
    /// link-local); off by default so a subscription cannot aim the service at
    /// its own network.
    pub webhooks_to_private_addresses: bool,
    /// A second listener, plain HTTP, serving only `/metrics` without a credential:
    /// for a scraper on a private network. Without it `/metrics` is served on the
    /// main listener to the operator credential only.
    pub metrics_listen: Option<SocketAddr>,
    /// Every connection starts with a PROXY protocol header (a TCP balancer's
    /// `send-proxy`/`send-proxy-v2`), whose client address the per-source bounds
    /// count. Only behind such a balancer: a client could otherwise claim any
    /// address, and a connection without the header is refused.
    pub proxy_protocol: bool,
}

/// How often a service runs its background work by default.
pub const DEFAULT_MAINTENANCE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// A function from the opened object store to the one the service uses.
#[derive(Clone)]
pub struct StorageWrapper(pub Arc<WrapStore>);

/// What a [`StorageWrapper`] holds.
pub type WrapStore = dyn Fn(Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore> + Send + Sync;

impl std::fmt::Debug for StorageWrapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StorageWrapper")
    }
}

impl ServerConfig {
    pub fn new(data_dir: PathBuf) -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            data_dir,
            database_url: None,
            database_max_connections: None,
            storage: None,
            storage_options: Vec::new(),
            tls_cert: None,
            tls_key: None,
            public_url: None,
            clock_offset_seconds: 0,
            wrap_storage: None,
            maintenance_interval: Some(DEFAULT_MAINTENANCE_INTERVAL),
            smtp_url: None,
            smtp_from: "offsite@localhost".into(),
            webhooks_to_private_addresses: false,
            metrics_listen: None,
            proxy_protocol: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot create the data folder {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Database(#[from] db::DbError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot open the storage: {0}")]
    Storage(String),
    #[error("cannot listen on {addr}: {source}. Is another server running there? Choose another --listen address")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("cannot listen for /metrics on {addr}: {source}. Is another program using it? Choose another --metrics-listen address")]
    MetricsListen { addr: SocketAddr, source: std::io::Error },
    #[error("cannot write the operator credentials: {0}")]
    Operator(String),
    #[error("--tls-cert and --tls-key go together: give both or neither")]
    TlsPair,
    #[error("{0}")]
    Notifications(String),
    #[error(
        "the public URL {0} is not https://: clients speak to the service only over HTTPS with its certificate \
         pinned, and refuse credential files that name another URL; give the https:// URL clients use \
         (--public-url https://HOST:PORT)"
    )]
    PublicUrlNotHttps(String),
}

/// A running service.
pub struct Server {
    pub url: String,
    pub fingerprint: String,
    pub operator_credentials: PathBuf,
    pub database: String,
    pub storage: String,
    /// `http://ADDR/metrics` of the metrics listener, when there is one.
    pub metrics_url: Option<String>,
    handle: axum_server::Handle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    maintenance: Option<tokio::task::JoinHandle<()>>,
    metrics_task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // A second service in the same process (tests) shares the first recorder.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The folder vaults are stored in, when the storage is a local folder.
fn local_storage_folder(config: &ServerConfig) -> Option<PathBuf> {
    match &config.storage {
        Some(url) if url.contains("://") && !url.starts_with("file://") => None,
        Some(path) => Some(PathBuf::from(path.trim_start_matches("file://"))),
        None => Some(config.data_dir.join("storage")),
    }
}

/// The configured store, wrapped as the config says, under the service's retries.
async fn open_storage(config: &ServerConfig) -> Result<storage::VaultStorage, ServerError> {
    let (store, prefix, location) = open_store(config)?;
    let store = match &config.wrap_storage {
        Some(wrap) => (wrap.0)(store),
        None => store,
    };
    Ok(storage::VaultStorage::new(Arc::new(retrying_store::RetryingStore::new(store)), prefix, location))
}

/// The store the config names: a cloud URL or a local folder; with its prefix and
/// a description of where it is.
fn open_store(config: &ServerConfig) -> Result<(Arc<dyn ObjectStore>, String, String), ServerError> {
    match local_storage_folder(config) {
        None => {
            let url = config.storage.clone().unwrap_or_default();
            let (store, prefix) = offsite_engine::backend::open_object_store(&url, &config.storage_options)
                .map_err(|e| ServerError::Storage(e.to_string()))?;
            Ok((store, prefix, url))
        }
        Some(folder) => {
            std::fs::create_dir_all(&folder).map_err(|source| ServerError::DataDir { path: folder.clone(), source })?;
            let store = object_store::local::LocalFileSystem::new_with_prefix(&folder)
                .map_err(|e| ServerError::Storage(e.to_string()))?;
            Ok((Arc::new(store), String::new(), folder.display().to_string()))
        }
    }
}

/// The database of `config`, migrated.
async fn open_database(config: &ServerConfig) -> Result<db::Db, ServerError> {
    let database_url = database_url(config);
    let clock = clock::Clock::new(config.clock_offset_seconds);
    Ok(db::Db::connect_with(&database_url, clock, config.database_max_connections).await?)
}

fn database_url(config: &ServerConfig) -> String {
    config
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", config.data_dir.join("offsite.db").display()))
}

/// Removes the uploads a killed service left staged in its local storage folder:
/// object_store writes `<name>#<n>` and renames it when the upload completes, and
/// nothing else ever removes one. A local folder has one service, and this one is
/// not serving yet, so every staged file is a dead upload.
fn remove_dead_uploads(config: &ServerConfig) -> Result<(), ServerError> {
    let Some(folder) = local_storage_folder(config) else { return Ok(()) };
    let staged = consistency::staged_uploads(&folder).map_err(|e| ServerError::Storage(e.to_string()))?;
    for (path, bytes) in staged {
        match std::fs::remove_file(&path) {
            Ok(()) => {
                tracing::info!(path = %path.display(), bytes, "removed an upload a stopped service left unfinished")
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(ServerError::Storage(format!("cannot remove {}: {err}", path.display()))),
        }
    }
    Ok(())
}

impl Server {
    /// Opens the database (migrating it), the storage and the TLS identity, binds
    /// the listening socket and starts serving.
    pub async fn start(config: ServerConfig) -> Result<Server, ServerError> {
        if config.tls_cert.is_some() != config.tls_key.is_some() {
            return Err(ServerError::TlsPair);
        }
        // Every credential file the service hands out carries this URL.
        if let Some(url) = config.public_url.as_ref().filter(|url| !url.starts_with("https://")) {
            return Err(ServerError::PublicUrlNotHttps(url.clone()));
        }
        let data_dir = &config.data_dir;
        std::fs::create_dir_all(data_dir).map_err(|source| ServerError::DataDir { path: data_dir.clone(), source })?;
        let database_url = database_url(&config);
        let db = open_database(&config).await?;
        let storage = open_storage(&config).await?;
        remove_dead_uploads(&config)?;
        let given = config.tls_cert.as_deref().zip(config.tls_key.as_deref());
        let identity = tls::load_or_generate(data_dir, given)?;

        let listener = std::net::TcpListener::bind(config.listen)
            .map_err(|source| ServerError::Listen { addr: config.listen, source })?;
        listener.set_nonblocking(true).map_err(|source| ServerError::Listen { addr: config.listen, source })?;
        let local = listener.local_addr().map_err(|source| ServerError::Listen { addr: config.listen, source })?;
        let metrics_listener = match config.metrics_listen {
            Some(addr) => Some(bind_metrics(addr)?),
            None => None,
        };
        let url = config.public_url.clone().unwrap_or_else(|| {
            let host = if local.ip().is_unspecified() { "127.0.0.1".to_string() } else { local.ip().to_string() };
            let host = if host.contains(':') { format!("[{host}]") } else { host };
            format!("https://{host}:{}", local.port())
        });

        let operator_credentials = data_dir.join("operator.credentials");
        operator::ensure(&db, &operator_credentials, &url, &identity.fingerprint)
            .await
            .map_err(ServerError::Operator)?;

        let delivery = notify::Delivery {
            mailer: match &config.smtp_url {
                Some(url) => {
                    Some(notify::email::Mailer::new(url, &config.smtp_from).map_err(ServerError::Notifications)?)
                }
                None => None,
            },
            webhooks: notify::webhook::Sender::new(config.webhooks_to_private_addresses)
                .map_err(ServerError::Notifications)?,
        };
        let state = AppState::new(Shared {
            db,
            storage: storage.clone(),
            verified: Default::default(),
            sign_in_failures: Default::default(),
            metrics: metrics_handle(),
            endpoint: offsite_api::files::ServiceEndpoint {
                url: url.clone(),
                fingerprint: identity.fingerprint.clone(),
            },
            delivery,
        });
        let maintenance = config.maintenance_interval.map(|every| maintenance::spawn(state.clone(), every));
        let app = router(state.clone());
        let handle = axum_server::Handle::new();
        let rustls = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(identity.config));
        // Without TCP_NODELAY, Nagle's algorithm and the client's delayed ACK hold
        // each small response ~40 ms: an incremental backup, thousands of small
        // ranged reads of trees, went 100 times slower over loopback.
        let before_tls = proxy_protocol::ProxyHeaderAcceptor::new(
            axum_server::accept::NoDelayAcceptor::new(),
            config.proxy_protocol,
        );
        let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(rustls).acceptor(before_tls);
        let mut server = axum_server::from_tcp(listener).acceptor(acceptor).handle(handle.clone());
        // HTTP/2 (agents ask for it): receive windows as the client's, so that one
        // connection carries uploads at the rate of a long, fat link.
        server
            .http_builder()
            .http2()
            .initial_stream_window_size(offsite_api::client::H2_STREAM_WINDOW)
            .initial_connection_window_size(offsite_api::client::H2_CONNECTION_WINDOW)
            .max_frame_size(offsite_api::client::H2_MAX_FRAME);
        // With the peer's address: the portal's sign-in limit counts per source.
        let task =
            tokio::spawn(async move { server.serve(app.into_make_service_with_connect_info::<SocketAddr>()).await });
        tracing::info!(%url, "offsite service listening");
        let (metrics_url, metrics_task) = match metrics_listener {
            Some((listener, addr)) => {
                let app = metrics_router(state);
                let task = tokio::spawn(async move { axum::serve(listener, app).await });
                tracing::info!(%addr, "metrics listening (plain HTTP, /metrics only)");
                (Some(format!("http://{addr}/metrics")), Some(task))
            }
            None => (None, None),
        };
        Ok(Server {
            url,
            metrics_url,
            metrics_task,
            fingerprint: identity.fingerprint,
            operator_credentials,
            database: db::redact(&database_url),
            storage: storage.location().to_string(),
            handle,
            task,
            maintenance,
        })
    }

    /// Stops accepting requests and lets running ones finish (for up to 30 s).
    pub fn shutdown(&self) {
        if let Some(maintenance) = &self.maintenance {
            maintenance.abort();
        }
        self.handle.graceful_shutdown(Some(std::time::Duration::from_secs(30)));
        // A scrape is short and can be repeated: the metrics listener just stops.
        if let Some(task) = &self.metrics_task {
            task.abort();
        }
    }

    /// Waits until the service stops.
    pub async fn wait(self) -> std::io::Result<()> {
        match self.task.await {
            Ok(result) => result,
            Err(err) => Err(std::io::Error::other(err)),
        }
    }
}

/// The whole HTTP surface: the API, its OpenAPI document, health and metrics.
fn router(state: AppState) -> Router {
    let (api, openapi) = routes::api();
    let openapi = Arc::new(openapi);
    api.merge(portal::router())
        .route("/api/v1/openapi.json", get(move || async move { Json(openapi.as_ref().clone()) }))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_for_operator))
        .fallback(|| async { error::Failure::NotFound("no such endpoint; see /api/v1/openapi.json".into()) })
        .method_not_allowed_fallback(|| async {
            error::Failure::MethodNotAllowed("this endpoint does not take that method; see /api/v1/openapi.json".into())
        })
        // JSON bodies are small; repository uploads stream and are bounded by the storage layer.
        .layer(DefaultBodyLimit::max(1024 * 1024))
        .layer(axum::middleware::from_fn(signed_body::verify))
        .layer(axum::middleware::from_fn(unread_body::close_if_body_unread))
        .layer(axum::middleware::from_fn(count_requests))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Ready when the database answers.
async fn healthz(State(state): State<AppState>) -> Response {
    match state.db.ping().await {
        Ok(()) => (axum::http::StatusCode::OK, "ok\n").into_response(),
        Err(err) => {
            (axum::http::StatusCode::SERVICE_UNAVAILABLE, format!("database unavailable: {err}\n")).into_response()
        }
    }
}

/// The metrics listener's socket, bound before anything is served so that a
/// taken address stops the start.
fn bind_metrics(addr: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), ServerError> {
    let failed = |source| ServerError::MetricsListen { addr, source };
    let listener = std::net::TcpListener::bind(addr).map_err(failed)?;
    listener.set_nonblocking(true).map_err(failed)?;
    let local = listener.local_addr().map_err(failed)?;
    Ok((tokio::net::TcpListener::from_std(listener).map_err(failed)?, local))
}

/// The metrics listener: `/metrics` without a credential, nothing else.
fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .fallback(|| async {
            (
                axum::http::StatusCode::NOT_FOUND,
                "this listener serves only /metrics; the API is on the service's address\n",
            )
        })
        .with_state(state)
}

/// `/metrics` on the service's address: the series name routes, import job states
/// and sign-in activity, so only the operator's credential reads them there.
async fn metrics_for_operator(
    principal: auth::Principal,
    State(state): State<AppState>,
) -> Result<String, error::Failure> {
    if principal != auth::Principal::Operator {
        return Err(error::Failure::Forbidden(
            "/metrics is served to the operator credential only (Authorization: Bearer with the token of \
             operator.credentials); for a scraper without it, run the service with --metrics-listen ADDR"
                .into(),
        ));
    }
    Ok(scrape::render(&state).await)
}

async fn metrics_text(State(state): State<AppState>) -> String {
    scrape::render(&state).await
}

async fn count_requests(request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    // The route template (`/api/v1/vaults/{vault_id}`), not the path: ids would make a series per resource.
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("offsite_http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("offsite_http_request_seconds", "route" => route).record(started.elapsed().as_secs_f64());
    response
}
