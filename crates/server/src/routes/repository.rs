//! A machine's repository files over HTTP, streamed: handlers take the request
//! apart and call [`crate::services::repository`], where the rules are.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};

use offsite_api::types::{ErrorBody, RepositoryFile};

use crate::auth::Principal;
use crate::error::{ApiResult, Failure};
use crate::services::repository;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_files)).routes(routes!(get_file, put_file, head_file, delete_file))
}

/// The raw bytes of a repository file, for the OpenAPI document.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
struct FileBytes(Vec<u8>);

/// Parses `Range: bytes=a-b` (the one form clients send).
fn parse_range(headers: &HeaderMap) -> ApiResult<Option<std::ops::Range<u64>>> {
    let Some(value) = headers.get(header::RANGE) else { return Ok(None) };
    let bad = || Failure::BadRequest("the Range header must be 'bytes=<first>-<last>'".into());
    let text = value.to_str().map_err(|_| bad())?;
    let (first, last) = text.strip_prefix("bytes=").and_then(|r| r.split_once('-')).ok_or_else(bad)?;
    let first: u64 = first.parse().map_err(|_| bad())?;
    let last: u64 = last.parse().map_err(|_| bad())?;
    if last < first {
        return Err(bad());
    }
    Ok(Some(first..last + 1))
}

#[utoipa::path(get, path = "/machines/{machine_id}/repository/{folder}", tag = "repository", security(("bearer" = [])),
    params(("machine_id" = String, Path), ("folder" = String, Path, description = "config, keys, data, index, snapshots or locks")),
    responses((status = 200, body = Vec<RepositoryFile>), (status = 404, body = ErrorBody)))]
async fn list_files(
    State(state): State<AppState>,
    principal: Principal,
    Path((machine_id, folder)): Path<(String, String)>,
) -> ApiResult<Json<Vec<RepositoryFile>>> {
    Ok(Json(repository::list(&state, &principal, &machine_id, &folder).await?))
}

#[utoipa::path(get, path = "/machines/{machine_id}/repository/{folder}/{name}", tag = "repository", security(("bearer" = [])),
    params(("machine_id" = String, Path), ("folder" = String, Path), ("name" = String, Path)),
    responses((status = 200, description = "the file's bytes", content_type = "application/octet-stream"),
        (status = 206, description = "the asked range, cut at the end of the file; Content-Range says which bytes"),
        (status = 404, body = ErrorBody), (status = 416, body = ErrorBody)))]
async fn get_file(
    State(state): State<AppState>,
    principal: Principal,
    Path((machine_id, folder, name)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let read = repository::read(&state, &principal, &machine_id, &folder, &name, parse_range(&headers)).await?;
    // A Range header the service accepted: the answer is partial content.
    let partial = headers.contains_key(header::RANGE);
    let length = read.served.end - read.served.start;
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/octet-stream".to_string()), (header::CONTENT_LENGTH, length.to_string())],
        Body::from_stream(read.stream),
    )
        .into_response();
    if partial {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let value = format!("bytes {}-{}/{}", read.served.start, read.served.end.saturating_sub(1), read.size);
        if let Ok(value) = header::HeaderValue::from_str(&value) {
            response.headers_mut().insert(header::CONTENT_RANGE, value);
        }
    }
    Ok(response)
}

/// Stores a file. Idempotent: the name is the hash of the content. A new file
/// must fit the subscription's storage quota (else 507, nothing stored).
#[utoipa::path(put, path = "/machines/{machine_id}/repository/{folder}/{name}", tag = "repository", security(("bearer" = [])),
    params(("machine_id" = String, Path), ("folder" = String, Path), ("name" = String, Path)),
    request_body(content = FileBytes, content_type = "application/octet-stream"),
    responses((status = 201, description = "stored"), (status = 400, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 507, body = ErrorBody, description = "the service's storage is full, or the file does not fit the \
            subscription's storage quota; nothing was stored")))]
async fn put_file(
    State(state): State<AppState>,
    principal: Principal,
    Path((machine_id, folder, name)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<StatusCode> {
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    repository::store(&state, &principal, &machine_id, &folder, &name, declared, body.into_data_stream()).await?;
    Ok(StatusCode::CREATED)
}

#[utoipa::path(head, path = "/machines/{machine_id}/repository/{folder}/{name}", tag = "repository", security(("bearer" = [])),
    params(("machine_id" = String, Path), ("folder" = String, Path), ("name" = String, Path)),
    responses((status = 200, description = "exists; Content-Length is its size"), (status = 404, description = "no such file")))]
async fn head_file(
    State(state): State<AppState>,
    principal: Principal,
    Path((machine_id, folder, name)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let size = repository::size(&state, &principal, &machine_id, &folder, &name).await?;
    Ok((StatusCode::OK, [(header::CONTENT_LENGTH, size.to_string())]).into_response())
}

/// Removes a file (prune and forget do this); removing a missing file succeeds.
///
/// The config and the key files are never removed (403).
#[utoipa::path(delete, path = "/machines/{machine_id}/repository/{folder}/{name}", tag = "repository", security(("bearer" = [])),
    params(("machine_id" = String, Path), ("folder" = String, Path), ("name" = String, Path)),
    responses((status = 204, description = "removed"), (status = 404, body = ErrorBody)))]
async fn delete_file(
    State(state): State<AppState>,
    principal: Principal,
    Path((machine_id, folder, name)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    repository::remove(&state, &principal, &machine_id, &folder, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
