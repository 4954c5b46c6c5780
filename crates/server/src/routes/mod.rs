//! The REST API under `/api/v1`, one module per resource. Each handler is annotated
//! for the OpenAPI document (utoipa), and registered through `utoipa_axum::routes!`,
//! so a route cannot exist without its documentation.

pub(crate) mod adoption;
pub(crate) mod applications;
mod custody;
pub(crate) mod datacenters;
mod exports;
pub(crate) mod import_jobs;
pub(crate) mod jobs;
pub(crate) mod machines;
mod notifications;
mod portal_users;
mod protection;
pub(crate) mod registration;
pub(crate) mod repository;
pub(crate) mod storage_accounts;
pub(crate) mod subscriptions;
pub(crate) mod system;
pub(crate) mod vaults;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "offsite service API", description = "Vaults, machines, recovery points and jobs of the offsite backup service."),
    modifiers(&BearerAuth),
    tags(
        (name = "system", description = "Health and identity"),
        (name = "subscriptions", description = "Tenants of the service"),
        (name = "vaults", description = "Vaults and their registration credentials"),
        (name = "machines", description = "Registered machines, protected items, recovery points"),
        (name = "jobs", description = "Backup and restore jobs reported by agents"),
        (name = "repository", description = "A machine's repository files (opaque, encrypted, content-addressed)"),
        (name = "storage", description = "Storage accounts and containers"),
        (name = "datacenters", description = "Datacenters and their shipping addresses"),
        (name = "import-jobs", description = "Import jobs: drives shipped to a datacenter for the first backup"),
        (name = "export-jobs", description = "Export jobs: recovery points written to drives at a datacenter and shipped back (offline restore)"),
        (name = "applications", description = "A subscription's offline-seeding application and its certificates"),
        (name = "notifications", description = "E-mail and webhook notifications of a subscription"),
        (name = "protection", description = "Soft delete, immutability and alerts: what a compromised machine cannot undo"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // `Authorization: OffsiteApp <application id>:<thumbprint>:<unix seconds>:<signature>`,
        // see docs/SERVICE.md: operations an offline-seeding application may call list it.
        components.add_security_scheme(
            "offsite_app",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Header(
                utoipa::openapi::security::ApiKeyValue::with_description(
                    "Authorization",
                    "OffsiteApp <application id>:<certificate thumbprint>:<unix seconds>:<base64 signature>",
                ),
            )),
        );
    }
}

/// Answers every operation can give, documented once here instead of on each
/// handler: 401 (no or a bad credential), 403 (a principal of the wrong kind), and,
/// where the request names a resource or carries a body, 404 and 400.
fn document_common_answers(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::Operation;
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let error = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
                )
                .build(),
        )
    };
    let add = |operation: &mut Operation, path: &str| {
        let responses = &mut operation.responses.responses;
        let mut put = |code: &str, description: &str| {
            responses.entry(code.to_string()).or_insert_with(|| error(description));
        };
        put("401", "no credential, or one that is unknown, expired, used or revoked");
        put("403", "the credential's role may not do this");
        if path.contains('{') {
            put("404", "no such resource, or one of another tenant");
            put("400", "a malformed path parameter");
        }
        if operation.request_body.is_some() {
            put("400", "a malformed request body");
        }
    };
    for (path, item) in openapi.paths.paths.iter_mut() {
        for operation in
            [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.head].into_iter().flatten()
        {
            add(operation, path);
        }
    }
}

/// The API router and its OpenAPI document.
pub fn api() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    let v1 = OpenApiRouter::new()
        .merge(system::router())
        .merge(subscriptions::router())
        .merge(vaults::router())
        .merge(registration::router())
        .merge(machines::router())
        .merge(jobs::router())
        .merge(repository::router())
        .merge(storage_accounts::router())
        .merge(datacenters::router())
        .merge(import_jobs::router())
        .merge(exports::router())
        .merge(custody::router())
        .merge(applications::router())
        .merge(adoption::router())
        .merge(portal_users::router())
        .merge(protection::router())
        .merge(notifications::router());
    let (router, mut openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi()).nest("/api/v1", v1).split_for_parts();
    // After the routes are in: modifiers run before them.
    document_common_answers(&mut openapi);
    (router, openapi)
}

/// A JSON request body whose rejection (malformed JSON, wrong types, missing
/// fields, wrong content type) is answered like every other error: a JSON
/// [`ErrorBody`](offsite_api::types::ErrorBody) naming the problem.
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(crate::error::Failure))]
pub struct ApiJson<T>(pub T);

/// Query parameters whose rejection is answered like every other error.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(crate::error::Failure))]
pub struct ApiQuery<T>(pub T);
