//! The web portal, served under `/portal` by the same service as the API: what
//! customers and datacenter operators see in a browser.
//!
//! - `session`: sign-in (Argon2id passwords), the session cookie, CSRF tokens.
//! - `customer`: a subscription's pages (overview, vaults, downloads, storage,
//!   application certificates, import jobs).
//! - `operator`: datacenters, incoming packages, the ingest queue, users.
//! - `layout`, `charts`: the page shell and server-drawn SVG charts.
//!
//! Pages are server-rendered HTML (maud) without JavaScript. Each one reads and
//! changes things through the API's handlers, called with the signed-in user's
//! [`Principal`](crate::auth::Principal): same rules, same tenant checks.

mod charts;
mod customer;
mod layout;
mod operator;
mod session;

use axum::response::Redirect;
use axum::routing::{get, post};
use axum::Router;

use crate::state::AppState;

pub use session::{create_user, SignInFailures};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/portal/") }))
        .route("/portal", get(|| async { Redirect::to("/portal/") }))
        .route("/portal/", get(customer::overview))
        .route("/portal/style.css", get(layout::style_sheet))
        .route("/portal/sign-in", get(session::sign_in_form).post(session::sign_in))
        .route("/portal/sign-out", post(session::sign_out))
        .route("/portal/subscriptions/{subscription_id}", get(customer::subscription))
        .route("/portal/subscriptions/{subscription_id}/publish-settings", post(customer::publish_settings))
        .route("/portal/subscriptions/{subscription_id}/storage", get(customer::storage))
        .route("/portal/subscriptions/{subscription_id}/application", get(customer::application))
        .route("/portal/subscriptions/{subscription_id}/application/certificates", post(customer::upload_certificate))
        .route("/portal/subscriptions/{subscription_id}/import-jobs", get(customer::import_jobs))
        .route("/portal/vaults/{vault_id}", get(customer::vault))
        .route("/portal/vaults/{vault_id}/credentials", post(customer::vault_credentials))
        .route("/portal/import-jobs/{import_job_id}", get(customer::import_job))
        .route("/portal/import-jobs/{import_job_id}/drives/{drive_id}/logs/{kind}", get(customer::drive_log))
        .route("/portal/operator", get(operator::operations))
        .route("/portal/operator/import-jobs/{import_job_id}/receive", post(operator::receive))
        .route("/portal/operator/users", post(operator::create_user))
}
