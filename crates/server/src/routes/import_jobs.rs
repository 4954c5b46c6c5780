//! The import jobs' API: each handler takes the request apart and calls the
//! import-job service ([`crate::services::import_jobs`]), where the rules are.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};

use offsite_api::types::{
    CreateImportJob, DriveStateUpdate, ErrorBody, ImportFile, ImportJobDriveSpec, ImportJobNote, ImportJobView,
    ImportPart, ShippingDetails,
};

use super::{ApiJson, ApiQuery};
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::services::import_jobs::{self, FilePart};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_import_job, list_import_jobs))
        .routes(routes!(get_import_job))
        .routes(routes!(cancel_import_job))
        .routes(routes!(set_shipping))
        .routes(routes!(receive_import_job))
        .routes(routes!(set_drive_state))
        .routes(routes!(complete_import_job))
        .routes(routes!(find_import_job))
        .routes(routes!(add_drive))
        .routes(routes!(put_import_file, list_import_files))
        .routes(routes!(list_import_parts))
        .routes(routes!(put_file_list))
        .routes(routes!(list_missing_files))
        .routes(routes!(put_drive_log, get_drive_log))
        .routes(routes!(package_import_job))
}

/// Where an uploaded part belongs.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct FileQuery {
    /// The file's path in the staging repository, e.g. `data/3f/3f…` (relative, no `..`).
    path: String,
    /// Where the body goes in the file.
    offset: u64,
    /// The whole file's size.
    file_size: u64,
    /// The drive the bytes come from; it must be registered with the job and `transferring`.
    drive_id: String,
    /// The fingerprint of the drive's header as the station read it (64 hex
    /// digits): it must be the one diskprep registered for the drive.
    #[param(required = true)]
    fingerprint: Option<String>,
}

/// The raw bytes of a file part, for the OpenAPI document.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
struct PartBytes(Vec<u8>);

/// The upload's length, which the service needs before it stores a byte.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}

/// Where a job's file list is registered.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct FileListQuery {
    /// The list's digest as diskprep computed it from the staging location (64 hex
    /// digits): a list cut short or changed on the way does not match it.
    digest: String,
}

/// Creates an import job in state `creating` with its drives `specified`.
#[utoipa::path(post, path = "/subscriptions/{subscription_id}/import-jobs", tag = "import-jobs", security(("bearer" = [])),
    params(("subscription_id" = String, Path)), request_body = CreateImportJob,
    responses((status = 200, body = ImportJobView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn create_import_job(
    State(state): State<AppState>,
    principal: Principal,
    Path(subscription_id): Path<String>,
    ApiJson(body): ApiJson<CreateImportJob>,
) -> ApiResult<Json<ImportJobView>> {
    Ok(Json(import_jobs::create(&state, &principal, &subscription_id, body).await?))
}

/// The subscription's import jobs, oldest first (closing those past their deadline).
#[utoipa::path(get, path = "/subscriptions/{subscription_id}/import-jobs", tag = "import-jobs", security(("bearer" = [])),
    params(("subscription_id" = String, Path)),
    responses((status = 200, body = Vec<ImportJobView>), (status = 404, body = ErrorBody)))]
async fn list_import_jobs(
    State(state): State<AppState>,
    principal: Principal,
    Path(subscription_id): Path<String>,
) -> ApiResult<Json<Vec<ImportJobView>>> {
    Ok(Json(import_jobs::list(&state, &principal, &subscription_id).await?))
}

/// One import job with its drives and its whole timeline.
#[utoipa::path(get, path = "/import-jobs/{import_job_id}", tag = "import-jobs", security(("bearer" = [])),
    params(("import_job_id" = String, Path)),
    responses((status = 200, body = ImportJobView), (status = 404, body = ErrorBody)))]
async fn get_import_job(
    State(state): State<AppState>,
    principal: Principal,
    Path(import_job_id): Path<String>,
) -> ApiResult<Json<ImportJobView>> {
    Ok(Json(import_jobs::get(&state, &principal, &import_job_id).await?))
}

/// Cancels a job (→ `closed`), while the life cycle allows it.
#[utoipa::path(post, path = "/import-jobs/{import_job_id}/cancel", tag = "import-jobs", security(("bearer" = [])),
    params(("import_job_id" = String, Path)), request_body = ImportJobNote,
    responses((status = 200, body = ImportJobView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn cancel_import_job(
    State(state): State<AppState>,
    principal: Principal,
    Path(import_job_id): Path<String>,
    ApiJson(note): ApiJson<ImportJobNote>,
) -> ApiResult<Json<ImportJobView>> {
    Ok(Json(import_jobs::cancel(&state, &principal, &import_job_id, note).await?))
}

/// Records the package's shipping details (→ `shipping`); may be given again to
/// correct them while the package travels. The drives must arrive within 14 days.
#[utoipa::path(put, path = "/import-jobs/{import_job_id}/shipping", tag = "import-jobs", security(("bearer" = [])),
    params(("import_job_id" = String, Path)), request_body = ShippingDetails,
    responses((status = 200, body = ImportJobView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn set_shipping(
    State(state): State<AppState>,
    principal: Principal,
    Path(import_job_id): Path<String>,
    ApiJson(body): ApiJson<ShippingDetails>,
) -> ApiResult<Json<ImportJobView>> {
    Ok(Json(import_jobs::ship(&state, &principal, &import_job_id, body).await?))
}

/// The package arrived (the datacenter's ingest station, operators): the job becomes `received`, and so does every
/// drive still `specified`.
#[utoipa::path(post, path = "/import-jobs/{import_job_id}/receive", tag = "import-jobs", security(("bearer" = [])),
    params(("import_job_id" = String, Path)), request_body = ImportJobNote,
    responses((status = 200, body = ImportJobView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn receive_import_job(
    State(state): State<AppState>,
    principal: Principal,
    Path(import_job_id): Path<String>,
    ApiJson(note): ApiJson<ImportJobNote>,
) -> ApiResult<Json<ImportJobView>> {
    Ok(Json(import_jobs::receive(&state, &principal, &import_job_id, note).await?))
}

/// Moves one drive on (the datacenter's ingest station, operators). The first drive `transferring` moves the job
/// from `received` to `transferring`; once every drive is done the job moves on to
/// `packaging`.
#[utoipa::path(put, path = "/import-jobs/{import_job_id}/drives/{drive_id}/state", tag = "import-jobs",
    security(("bearer" = [])),
    params(("import_job_id" = String, Path), ("drive_id" = String, Path)), request_body = DriveStateUpdate,
    responses((status = 200, body = ImportJobView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn set_drive_state(
    State(state): State<AppState>,
    principal: Principal,
    Path((import_job_id, drive_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<DriveStateUpdate>,
) -> ApiResult<Json<ImportJobView>> {
    Ok(Json(import_jobs::set_drive_state(&state, &principal, &import_job_id, &drive_id, body).await?))
}

/// The drives are packed to go back (operators): `packaging` → `completed`, once
/// the container holds every file of the job's file list whole.
#[utoipa::path(post, path = "/import-jobs/{import_job_id}/complete", tag = "import-jobs", security(("bearer" = [])),
    params(("import_job_id" = String, Path)), request_body = ImportJobNote,
    responses((status = 200, body = ImportJobView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn complete_import_job(
    State(state): State<AppState>,
    principal: Principal,
    Path(import_job_id): Path<String>,
    ApiJson(note): ApiJson<ImportJobNote>,
) -> ApiResult<Json<ImportJobView>> {
    Ok(Json(import_jobs::complete(&state, &principal, &import_job_id, note).await?))
}

/// An import job by its name (names are unique across the service): for the
/// operator, the job's subscription and its offline-seeding application, the
/// machines of that subscription (whose agents wait for it), and the ingest
/// station of the datacenter it is shipped to.
#[utoipa::path(get, path = "/import-jobs/by-name/{import_job_name}", tag = "import-jobs",
    security(("bearer" = []), ("offsite_app" = [])),
    params(("import_job_name" = String, Path)),
    responses((status = 200, body = ImportJobView), (status = 404, body = ErrorBody)))]
async fn find_import_job(
    State(state): State<AppState>,
    principal: Principal,
    Path(import_job_name): Path<String>,
) -> ApiResult<Json<ImportJobView>> {
    Ok(Json(import_jobs::find(&state, &principal, &import_job_name).await?))
}

/// Adds a drive to a job, `specified` (a repair drive, which diskprep makes for
/// the files the ingest logs name). The same drive again changes nothing.
#[utoipa::path(post, path = "/import-jobs/{import_job_id}/drives", tag = "import-jobs",
    security(("bearer" = []), ("offsite_app" = [])),
    params(("import_job_id" = String, Path)), request_body = ImportJobDriveSpec,
    responses((status = 200, body = ImportJobView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn add_drive(
    State(state): State<AppState>,
    principal: Principal,
    Path(import_job_id): Path<String>,
    ApiJson(spec): ApiJson<ImportJobDriveSpec>,
) -> ApiResult<Json<ImportJobView>> {
    Ok(Json(import_jobs::add_drive(&state, &principal, &import_job_id, spec).await?))
}

/// Uploads the bytes a drive holds of one file (the datacenter's ingest station,
/// operators): all of it (stored as the file, checked against its content-hash
/// name), or a part, kept aside until the job is packaged. Only a drive registered
/// with the job brings files, with the header diskprep registered for it.
/// Streamed; nothing is visible until the upload is complete.
#[utoipa::path(put, path = "/import-jobs/{import_job_id}/files", tag = "import-jobs", security(("bearer" = [])),
    params(("import_job_id" = String, Path), FileQuery),
    request_body(content = PartBytes, content_type = "application/octet-stream"),
    responses((status = 201, description = "stored"), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 507, body = ErrorBody)))]
async fn put_import_file(
    State(state): State<AppState>,
    principal: Principal,
    Path(import_job_id): Path<String>,
    ApiQuery(query): ApiQuery<FileQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<StatusCode> {
    let part = FilePart {
        path: query.path,
        offset: query.offset,
        file_size: query.file_size,
        drive_id: query.drive_id,
        fingerprint: query.fingerprint,
    };
    let length = content_length(&headers);
    import_jobs::put_file(&state, &principal, &import_job_id, &part, length, body.into_data_stream()).await?;
    Ok(StatusCode::CREATED)
}

/// The whole files in the job's container (not parts awaiting packaging, not logs).
#[utoipa::path(get, path = "/import-jobs/{import_job_id}/files", tag = "import-jobs", security(("bearer" = [])),
    params(("import_job_id" = String, Path)),
    responses((status = 200, body = Vec<ImportFile>), (status = 404, body = ErrorBody)))]
async fn list_import_files(
    State(state): State<AppState>,
    principal: Principal,
    Path(import_job_id): Path<String>,
) -> ApiResult<Json<Vec<ImportFile>>> {
    Ok(Json(import_jobs::files(&state, &principal, &import_job_id).await?))
}

/// The parts of files in the job's container that wait for packaging: what an
/// ingest station stopped in the middle of a drive need not send again.
#[utoipa::path(get, path = "/import-jobs/{import_job_id}/parts", tag = "import-jobs", security(("bearer" = [])),
    params(("import_job_id" = String, Path)),
    responses((status = 200, body = Vec<ImportPart>), (status = 404, body = ErrorBody)))]
async fn list_import_parts(
    State(state): State<AppState>,
    principal: Principal,
    Path(import_job_id): Path<String>,
) -> ApiResult<Json<Vec<ImportPart>>> {
    Ok(Json(import_jobs::parts(&state, &principal, &import_job_id).await?))
}

/// Stores a drive's ingest log (the datacenter's ingest station, operators): `error` names what is wrong or missing,
/// `verbose` what was done. Text, at most 16 MiB; kept in the job's container.
#[utoipa::path(put, path = "/import-jobs/{import_job_id}/drives/{drive_id}/logs/{kind}", tag = "import-jobs",
    security(("bearer" = [])),
    params(("import_job_id" = String, Path), ("drive_id" = String, Path), ("kind" = String, Path, description = "error or verbose")),
    request_body(content = String, content_type = "text/plain"),
    responses((status = 201, description = "stored"), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn put_drive_log(
    State(state): State<AppState>,
    principal: Principal,
    Path((import_job_id, drive_id, kind)): Path<(String, String, String)>,
    body: Body,
) -> ApiResult<StatusCode> {
    import_jobs::put_drive_log(&state, &principal, &import_job_id, &drive_id, &kind, body).await?;
    Ok(StatusCode::CREATED)
}

/// A drive's ingest log, as text.
#[utoipa::path(get, path = "/import-jobs/{import_job_id}/drives/{drive_id}/logs/{kind}", tag = "import-jobs",
    security(("bearer" = []), ("offsite_app" = [])),
    params(("import_job_id" = String, Path), ("drive_id" = String, Path), ("kind" = String, Path, description = "error or verbose")),
    responses((status = 200, description = "the log", content_type = "text/plain"), (status = 404, body = ErrorBody)))]
async fn get_drive_log(
    State(state): State<AppState>,
    principal: Principal,
    Path((import_job_id, drive_id, kind)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let text = import_jobs::drive_log(&state, &principal, &import_job_id, &drive_id, &kind).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

/// Packages the job once every drive is done (the datacenter's ingest station, operators): parts that cover their
/// file are assembled into it. When every file is whole the job is `completed`;
/// otherwise it stays `packaging`, its timeline naming the missing byte ranges,
/// until a repair drive brings them and the job is packaged again.
#[utoipa::path(post, path = "/import-jobs/{import_job_id}/package", tag = "import-jobs", security(("bearer" = [])),
    params(("import_job_id" = String, Path)), request_body = ImportJobNote,
    responses((status = 200, body = ImportJobView, description = "completed, or packaging with the incomplete files named"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn package_import_job(
    State(state): State<AppState>,
    principal: Principal,
    Path(import_job_id): Path<String>,
    ApiJson(note): ApiJson<ImportJobNote>,
) -> ApiResult<Json<ImportJobView>> {
    Ok(Json(import_jobs::package(&state, &principal, &import_job_id, note).await?))
}

/// Registers the files the job's drive set carries (diskprep, once, before the job
/// completes): text, one line `<size> <path>` per file in path order. The job
/// completes only when its container holds every one of them whole; the same list
/// again changes nothing.
#[utoipa::path(put, path = "/import-jobs/{import_job_id}/file-list", tag = "import-jobs",
    security(("bearer" = []), ("offsite_app" = [])),
    params(("import_job_id" = String, Path), FileListQuery),
    request_body(content = String, content_type = "text/plain", description = "one line `<size> <path>` per file, in path order"),
    responses((status = 200, body = ImportJobView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn put_file_list(
    State(state): State<AppState>,
    principal: Principal,
    Path(import_job_id): Path<String>,
    ApiQuery(query): ApiQuery<FileListQuery>,
    body: Body,
) -> ApiResult<Json<ImportJobView>> {
    Ok(Json(
        import_jobs::put_file_list(&state, &principal, &import_job_id, &query.digest, body.into_data_stream()).await?,
    ))
}

/// The files of the job's file list that its container lacks (or holds at another
/// size): what a repair drive must bring. `diskprep --repair` asks for them.
#[utoipa::path(get, path = "/import-jobs/{import_job_id}/missing-files", tag = "import-jobs",
    security(("bearer" = []), ("offsite_app" = [])),
    params(("import_job_id" = String, Path)),
    responses((status = 200, body = Vec<ImportFile>), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the job has no file list")))]
async fn list_missing_files(
    State(state): State<AppState>,
    principal: Principal,
    Path(import_job_id): Path<String>,
) -> ApiResult<Json<Vec<ImportFile>>> {
    Ok(Json(import_jobs::missing_files(&state, &principal, &import_job_id).await?))
}
