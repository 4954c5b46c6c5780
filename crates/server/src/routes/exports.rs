//! The export jobs API (offline restore): handlers take the request apart and
//! call [`crate::services::exports`], where the rules are.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};

use offsite_api::types::{
    CreateExportJob, ErrorBody, ExportDrive, ExportFile, ExportJobState, ExportJobView, ExportShipment, ExportSizing,
    ImportJobNote,
};

use super::{ApiJson, ApiQuery};
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::services::exports;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_export_jobs, request_export))
        .routes(routes!(preview_export))
        .routes(routes!(datacenter_export_jobs))
        .routes(routes!(get_export_job))
        .routes(routes!(export_files))
        .routes(routes!(export_file))
        .routes(routes!(begin_export))
        .routes(routes!(add_export_drive))
        .routes(routes!(ship_export))
        .routes(routes!(export_delivered))
        .routes(routes!(complete_export))
        .routes(routes!(cancel_export))
}

/// Asks for recovery points on drives: the machines of one vault and, for each,
/// the repository files its points need (none: its whole repository). The agent
/// selects them (`offsite agent export request`); the job starts `requested`.
#[utoipa::path(post, path = "/subscriptions/{subscription_id}/export-jobs", tag = "export-jobs",
    security(("bearer" = [])), params(("subscription_id" = String, Path)), request_body = CreateExportJob,
    responses((status = 200, body = ExportJobView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "the name is taken")))]
async fn request_export(
    State(state): State<AppState>,
    principal: Principal,
    Path(subscription_id): Path<String>,
    ApiJson(body): ApiJson<CreateExportJob>,
) -> ApiResult<Json<ExportJobView>> {
    Ok(Json(exports::create(&state, &principal, &subscription_id, body).await?))
}

/// Sizes a request without making it: files, bytes and drives needed.
#[utoipa::path(post, path = "/subscriptions/{subscription_id}/export-jobs/preview", tag = "export-jobs",
    security(("bearer" = [])), params(("subscription_id" = String, Path)), request_body = CreateExportJob,
    responses((status = 200, body = ExportSizing), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn preview_export(
    State(state): State<AppState>,
    principal: Principal,
    Path(subscription_id): Path<String>,
    ApiJson(body): ApiJson<CreateExportJob>,
) -> ApiResult<Json<ExportSizing>> {
    Ok(Json(exports::preview(&state, &principal, &subscription_id, body).await?))
}

/// The subscription's export jobs (a machine sees those carrying it).
#[utoipa::path(get, path = "/subscriptions/{subscription_id}/export-jobs", tag = "export-jobs",
    security(("bearer" = [])), params(("subscription_id" = String, Path)),
    responses((status = 200, body = Vec<ExportJobView>), (status = 404, body = ErrorBody)))]
async fn list_export_jobs(
    State(state): State<AppState>,
    principal: Principal,
    Path(subscription_id): Path<String>,
) -> ApiResult<Json<Vec<ExportJobView>>> {
    Ok(Json(exports::list(&state, &principal, &subscription_id).await?))
}

/// The export jobs of a datacenter, for its stations (recovery keys left out).
#[utoipa::path(get, path = "/datacenters/{datacenter_id}/export-jobs", tag = "export-jobs",
    security(("bearer" = [])), params(("datacenter_id" = String, Path)),
    responses((status = 200, body = Vec<ExportJobView>), (status = 404, body = ErrorBody)))]
async fn datacenter_export_jobs(
    State(state): State<AppState>,
    principal: Principal,
    Path(datacenter_id): Path<String>,
) -> ApiResult<Json<Vec<ExportJobView>>> {
    Ok(Json(exports::list_at(&state, &principal, &datacenter_id).await?))
}

/// An export job, by id or name. The drives' recovery keys show to the customer only.
#[utoipa::path(get, path = "/export-jobs/{export_job_id}", tag = "export-jobs", security(("bearer" = [])),
    params(("export_job_id" = String, Path)),
    responses((status = 200, body = ExportJobView), (status = 404, body = ErrorBody)))]
async fn get_export_job(
    State(state): State<AppState>,
    principal: Principal,
    Path(export_job_id): Path<String>,
) -> ApiResult<Json<ExportJobView>> {
    Ok(Json(exports::get(&state, &principal, &export_job_id).await?))
}

/// The files the drives carry, in order: for the job's datacenter's stations, and
/// for its customer (a machine sees its own files), who compares a delivered set
/// with it for a repair export.
#[utoipa::path(get, path = "/export-jobs/{export_job_id}/files", tag = "export-jobs", security(("bearer" = [])),
    params(("export_job_id" = String, Path)),
    responses((status = 200, body = Vec<ExportFile>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn export_files(
    State(state): State<AppState>,
    principal: Principal,
    Path(export_job_id): Path<String>,
) -> ApiResult<Json<Vec<ExportFile>>> {
    Ok(Json(exports::files(&state, &principal, &export_job_id).await?))
}

/// Which file of an export job to read.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ExportFileQuery {
    machine_id: String,
    /// Its repository path, as `…/files` lists it.
    path: String,
}

/// One file's bytes as stored (sealed with the customer's keys), for the station.
#[utoipa::path(get, path = "/export-jobs/{export_job_id}/file", tag = "export-jobs", security(("bearer" = [])),
    params(("export_job_id" = String, Path), ExportFileQuery),
    responses((status = 200, description = "the file's bytes", content_type = "application/octet-stream"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn export_file(
    State(state): State<AppState>,
    principal: Principal,
    Path(export_job_id): Path<String>,
    ApiQuery(query): ApiQuery<ExportFileQuery>,
) -> ApiResult<Response> {
    let (length, stream) =
        exports::read_file(&state, &principal, &export_job_id, &query.machine_id, &query.path).await?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/octet-stream".to_string()), (header::CONTENT_LENGTH, length.to_string())],
        Body::from_stream(stream),
    )
        .into_response())
}

/// A station begins writing the drives: `requested → preparing` (again: no change).
#[utoipa::path(post, path = "/export-jobs/{export_job_id}/begin", tag = "export-jobs", security(("bearer" = [])),
    params(("export_job_id" = String, Path)), request_body = ImportJobNote,
    responses((status = 200, body = ExportJobView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn begin_export(
    State(state): State<AppState>,
    principal: Principal,
    Path(export_job_id): Path<String>,
    ApiJson(note): ApiJson<ImportJobNote>,
) -> ApiResult<Json<ExportJobView>> {
    Ok(Json(exports::begin(&state, &principal, &export_job_id, note.message).await?))
}

/// Records a drive the station wrote, with its recovery key (for the customer).
#[utoipa::path(post, path = "/export-jobs/{export_job_id}/drives", tag = "export-jobs", security(("bearer" = [])),
    params(("export_job_id" = String, Path)), request_body = ExportDrive,
    responses((status = 200, body = ExportJobView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn add_export_drive(
    State(state): State<AppState>,
    principal: Principal,
    Path(export_job_id): Path<String>,
    ApiJson(body): ApiJson<ExportDrive>,
) -> ApiResult<Json<ExportJobView>> {
    Ok(Json(exports::add_drive(&state, &principal, &export_job_id, body).await?))
}

/// The drives leave with the return shipment: `preparing → shipping`.
#[utoipa::path(post, path = "/export-jobs/{export_job_id}/ship", tag = "export-jobs", security(("bearer" = [])),
    params(("export_job_id" = String, Path)), request_body = ExportShipment,
    responses((status = 200, body = ExportJobView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn ship_export(
    State(state): State<AppState>,
    principal: Principal,
    Path(export_job_id): Path<String>,
    ApiJson(body): ApiJson<ExportShipment>,
) -> ApiResult<Json<ExportJobView>> {
    Ok(Json(exports::ship(&state, &principal, &export_job_id, body).await?))
}

/// The customer has the drives: `shipping → delivered`.
#[utoipa::path(post, path = "/export-jobs/{export_job_id}/delivered", tag = "export-jobs", security(("bearer" = [])),
    params(("export_job_id" = String, Path)), request_body = ImportJobNote,
    responses((status = 200, body = ExportJobView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn export_delivered(
    State(state): State<AppState>,
    principal: Principal,
    Path(export_job_id): Path<String>,
    ApiJson(note): ApiJson<ImportJobNote>,
) -> ApiResult<Json<ExportJobView>> {
    Ok(Json(exports::customer_step(&state, &principal, &export_job_id, ExportJobState::Delivered, note.message).await?))
}

/// The customer restored from the drives: `delivered → completed`.
#[utoipa::path(post, path = "/export-jobs/{export_job_id}/complete", tag = "export-jobs", security(("bearer" = [])),
    params(("export_job_id" = String, Path)), request_body = ImportJobNote,
    responses((status = 200, body = ExportJobView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn complete_export(
    State(state): State<AppState>,
    principal: Principal,
    Path(export_job_id): Path<String>,
    ApiJson(note): ApiJson<ImportJobNote>,
) -> ApiResult<Json<ExportJobView>> {
    Ok(Json(exports::customer_step(&state, &principal, &export_job_id, ExportJobState::Completed, note.message).await?))
}

/// Cancels a job before its drives leave: `requested | preparing → closed`.
#[utoipa::path(post, path = "/export-jobs/{export_job_id}/cancel", tag = "export-jobs", security(("bearer" = [])),
    params(("export_job_id" = String, Path)), request_body = ImportJobNote,
    responses((status = 200, body = ExportJobView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn cancel_export(
    State(state): State<AppState>,
    principal: Principal,
    Path(export_job_id): Path<String>,
    ApiJson(note): ApiJson<ImportJobNote>,
) -> ApiResult<Json<ExportJobView>> {
    Ok(Json(exports::customer_step(&state, &principal, &export_job_id, ExportJobState::Closed, note.message).await?))
}
