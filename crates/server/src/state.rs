//! What every request handler shares.

use std::sync::Arc;

use crate::db::Db;
use crate::sign_in_limit::SignInFailures;
use crate::storage::VaultStorage;
use crate::verified_tokens::VerifiedTokens;

#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub db: Db,
    pub storage: VaultStorage,
    pub verified: VerifiedTokens,
    /// Failed portal sign-ins by address, for the portal's attempt limit.
    pub sign_in_failures: SignInFailures,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// The URL and certificate fingerprint clients are given (in the credential
    /// files the portal hands out).
    pub endpoint: offsite_api::files::ServiceEndpoint,
    /// How notifications go out (SMTP relay, webhook client).
    pub delivery: crate::notify::Delivery,
}

impl Shared {
    /// The service's idea of the current time ([`crate::clock::Clock`], the
    /// database's, so rows and checks agree).
    pub fn now(&self) -> time::OffsetDateTime {
        self.db.clock().now()
    }
}

impl AppState {
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}
