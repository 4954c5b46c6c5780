//! Chains of custody: an import or export job's signed, hash-chained log of
//! what happened to its drives. The rules are [`crate::services::custody`]'s and
//! `offsite_seeding::custody`'s; docs/CUSTODY.md specifies the events.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};

use offsite_api::types::{CustodyEvent, CustodyLog, ErrorBody};

use super::ApiJson;
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::services::custody;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_import_job_custody, append_import_job_custody))
        .routes(routes!(get_export_job_custody, append_export_job_custody))
}

/// The import job's custody log, in sequence order, with the public keys its
/// events name (those who may read the job). Verify it client-side
/// (`offsite diskprep --verify-custody`): the service only stores it.
#[utoipa::path(get, path = "/import-jobs/{import_job_id}/custody", tag = "import-jobs",
    security(("bearer" = []), ("offsite_app" = [])),
    params(("import_job_id" = String, Path)),
    responses((status = 200, body = CustodyLog), (status = 404, body = ErrorBody)))]
async fn get_import_job_custody(
    State(state): State<AppState>,
    principal: Principal,
    Path(import_job_id): Path<String>,
) -> ApiResult<Json<CustodyLog>> {
    Ok(Json(custody::import_log(&state, &principal, &import_job_id).await?))
}

/// Appends a signed event to the job's custody log: by the job's subscription's
/// offline-seeding application (`prepared`, `shipped`) or the ingest station of
/// its datacenter (`received`, `ingested`, `written`, `returned`, `wiped`,
/// `destroyed`), each signing with its own key. 409 when the log grew meanwhile
/// (read it again and sign the next event) or the drive's life does not allow
/// the event.
#[utoipa::path(post, path = "/import-jobs/{import_job_id}/custody", tag = "import-jobs",
    security(("bearer" = []), ("offsite_app" = [])),
    params(("import_job_id" = String, Path)), request_body = CustodyEvent,
    responses((status = 201, body = CustodyEvent), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn append_import_job_custody(
    State(state): State<AppState>,
    principal: Principal,
    Path(import_job_id): Path<String>,
    ApiJson(event): ApiJson<CustodyEvent>,
) -> ApiResult<(StatusCode, Json<CustodyEvent>)> {
    Ok((StatusCode::CREATED, Json(custody::append_import(&state, &principal, &import_job_id, event).await?)))
}

/// The export job's custody log, in sequence order, with the public keys its
/// events name (its customer, operators, the station of its datacenter).
#[utoipa::path(get, path = "/export-jobs/{export_job_id}/custody", tag = "export-jobs", security(("bearer" = [])),
    params(("export_job_id" = String, Path, description = "the job's id or name")),
    responses((status = 200, body = CustodyLog), (status = 404, body = ErrorBody)))]
async fn get_export_job_custody(
    State(state): State<AppState>,
    principal: Principal,
    Path(export_job_id): Path<String>,
) -> ApiResult<Json<CustodyLog>> {
    Ok(Json(custody::export_log(&state, &principal, &export_job_id).await?))
}

/// Appends a signed event to the export job's custody log: by the station of
/// its datacenter (`written`, `shipped`, `wiped`, `destroyed`), signing with its
/// own key. 409 when the log grew meanwhile or the drive's life does not allow
/// the event.
#[utoipa::path(post, path = "/export-jobs/{export_job_id}/custody", tag = "export-jobs", security(("bearer" = [])),
    params(("export_job_id" = String, Path, description = "the job's id or name")), request_body = CustodyEvent,
    responses((status = 201, body = CustodyEvent), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn append_export_job_custody(
    State(state): State<AppState>,
    principal: Principal,
    Path(export_job_id): Path<String>,
    ApiJson(event): ApiJson<CustodyEvent>,
) -> ApiResult<(StatusCode, Json<CustodyEvent>)> {
    Ok((StatusCode::CREATED, Json(custody::append_export(&state, &principal, &export_job_id, event).await?)))
}
