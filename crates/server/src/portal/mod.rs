//! The web portal, served under `/portal` by the same service as the API: what
//! customers and datacenter operators see in a browser.
//!
//! - `session`: sign-in (Argon2id passwords), the session cookie, CSRF tokens.
//! - `customer`: a subscription's pages (overview, vaults, downloads, storage,
//!   application certificates, import jobs).
//! - `operator`: datacenters, incoming packages, the ingest queue, users (made,
//!   disabled, enabled, re-passworded, removed).
//! - `protection`: a vault's soft delete and immutability, soft-deleted recovery
//!   points and their undelete, alerts; the operator's decisions on requests.
//! - `layout`, `charts`: the page shell and server-drawn SVG charts.
//!
//! Pages are server-rendered HTML (maud) without JavaScript. Each one reads and
//! changes things through the service layer ([`crate::services`]), called with the
//! signed-in user's [`Principal`](crate::principal::Principal): the API's rules
//! and tenant checks, not a copy of them.

mod charts;
mod custody;
mod customer;
mod exports;
mod layout;
mod operator;
mod protection;
mod session;

use axum::response::Redirect;
use axum::routing::{get, post};
use axum::Router;

use crate::state::AppState;

/// Who may open a portal route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortalAccess {
    /// Anyone: the sign-in page, the style sheet, redirects to them.
    Public,
    /// A signed-in user; the API's tenant rules decide what they see.
    SignedIn,
    /// A signed-in operator; anyone else is told the page does not exist.
    Operator,
}

/// One route of the portal, as the router serves it.
#[derive(Debug, Clone, Copy)]
pub struct PortalRoute {
    /// `GET` or `POST` (every `POST` is a form that carries a CSRF token).
    pub method: &'static str,
    /// axum's path template, `{name}` for a path parameter.
    pub path: &'static str,
    pub access: PortalAccess,
}

/// Builds both the router and [`ROUTES`] from one list, so a page cannot be served
/// without being listed (the security tests walk the list).
macro_rules! portal_routes {
    ($($method:ident $path:literal $access:ident => $handler:expr;)*) => {
        /// Every route the portal serves.
        pub const ROUTES: &[PortalRoute] = &[$(PortalRoute {
            method: portal_routes!(@upper $method),
            path: $path,
            access: PortalAccess::$access,
        }),*];

        pub fn router() -> Router<AppState> {
            Router::new()$(.route($path, $method($handler)))*
        }
    };
    (@upper get) => { "GET" };
    (@upper post) => { "POST" };
}

portal_routes! {
    get "/" Public => || async { Redirect::to("/portal/") };
    get "/portal" Public => || async { Redirect::to("/portal/") };
    get "/portal/" SignedIn => customer::overview;
    get "/portal/style.css" Public => layout::style_sheet;
    get "/portal/sign-in" Public => session::sign_in_form;
    post "/portal/sign-in" Public => session::sign_in;
    post "/portal/sign-out" SignedIn => session::sign_out;
    get "/portal/subscriptions/{subscription_id}" SignedIn => customer::subscription;
    post "/portal/subscriptions/{subscription_id}/publish-settings" SignedIn => customer::publish_settings;
    get "/portal/subscriptions/{subscription_id}/storage" SignedIn => customer::storage;
    get "/portal/subscriptions/{subscription_id}/application" SignedIn => customer::application;
    post "/portal/subscriptions/{subscription_id}/application/certificates" SignedIn => customer::upload_certificate;
    get "/portal/subscriptions/{subscription_id}/import-jobs" SignedIn => customer::import_jobs;
    get "/portal/vaults/{vault_id}" SignedIn => customer::vault;
    post "/portal/vaults/{vault_id}/credentials" SignedIn => customer::vault_credentials;
    get "/portal/vaults/{vault_id}/protection" SignedIn => protection::vault_protection;
    post "/portal/machines/{machine_id}/undelete" SignedIn => protection::undelete;
    get "/portal/import-jobs/{import_job_id}" SignedIn => customer::import_job;
    get "/portal/subscriptions/{subscription_id}/export-jobs" SignedIn => exports::export_jobs;
    post "/portal/subscriptions/{subscription_id}/export-jobs/preview" SignedIn => exports::preview;
    post "/portal/subscriptions/{subscription_id}/export-jobs" SignedIn => exports::request;
    get "/portal/export-jobs/{export_job_id}" SignedIn => exports::export_job;
    post "/portal/export-jobs/{export_job_id}/delivered" SignedIn => exports::delivered;
    post "/portal/export-jobs/{export_job_id}/complete" SignedIn => exports::complete;
    get "/portal/import-jobs/{import_job_id}/drives/{drive_id}/logs/{kind}" SignedIn => customer::drive_log;
    get "/portal/operator" Operator => operator::operations;
    post "/portal/operator/import-jobs/{import_job_id}/receive" Operator => operator::receive;
    post "/portal/operator/users" Operator => operator::create_user;
    post "/portal/operator/users/{user_id}/disable" Operator => operator::disable_user;
    post "/portal/operator/users/{user_id}/enable" Operator => operator::enable_user;
    post "/portal/operator/users/{user_id}/password" Operator => operator::set_user_password;
    post "/portal/operator/users/{user_id}/remove" Operator => operator::remove_user;
    post "/portal/operator/protection-requests/{request_id}/approve" Operator => protection::approve;
    post "/portal/operator/protection-requests/{request_id}/reject" Operator => protection::reject;
}
