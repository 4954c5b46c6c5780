//! A machine's repository files, streamed to and from the vault storage. Only the
//! machine itself may touch them: they are its encrypted backups. Bodies are
//! opaque to the service except for one check: a file's name is the BLAKE3 hash of
//! its bytes, so damaged uploads are refused and a retried upload is harmless.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};

use offsite_api::types::{ErrorBody, RepositoryFile};

use super::machines::{machine_for, Access};
use crate::auth::Principal;
use crate::error::{ApiResult, Failure};
use crate::state::AppState;
use crate::storage::{folder_kind, RepoFile};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_files)).routes(routes!(get_file, put_file, head_file, delete_file))
}

/// The raw bytes of a repository file, for the OpenAPI document.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
struct FileBytes(Vec<u8>);

/// The machine's vault id, after checking the caller is that machine.
async fn own_repository(state: &AppState, principal: &Principal, machine_id: &str) -> ApiResult<String> {
    let (machine, vault) = machine_for(state, principal, machine_id, Access::Read).await?;
    if !principal.is_machine(&machine.id) {
        return Err(Failure::Forbidden("only the machine itself reads and writes its repository".into()));
    }
    Ok(vault.id)
}

#[utoipa::path(get, path = "/machines/{machine_id}/repository/{folder}", tag = "repository", security(("bearer" = [])),
    params(("machine_id" = String, Path), ("folder" = String, Path, description = "config, keys, data, index, snapshots or locks")),
    responses((status = 200, body = Vec<RepositoryFile>), (status = 404, body = ErrorBody)))]
async fn list_files(
    State(state): State<AppState>,
    principal: Principal,
    Path((machine_id, folder)): Path<(String, String)>,
) -> ApiResult<Json<Vec<RepositoryFile>>> {
    let vault_id = own_repository(&state, &principal, &machine_id).await?;
    let kind = folder_kind(&folder)?;
    Ok(Json(state.storage.list(&vault_id, &machine_id, kind).await?))
}

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
    let vault_id = own_repository(&state, &principal, &machine_id).await?;
    let file = RepoFile::parse(&folder, &name)?;
    let range = parse_range(&headers)?;
    let partial = range.is_some();
    let (served, size, stream) = state.storage.get(&vault_id, &machine_id, &file, range).await?;
    let length = served.end - served.start;
    metrics::counter!("offsite_bytes_out_total").increment(length);
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/octet-stream".to_string()), (header::CONTENT_LENGTH, length.to_string())],
        Body::from_stream(stream),
    )
        .into_response();
    if partial {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let value = format!("bytes {}-{}/{size}", served.start, served.end.saturating_sub(1));
        if let Ok(value) = header::HeaderValue::from_str(&value) {
            response.headers_mut().insert(header::CONTENT_RANGE, value);
        }
    }
    Ok(response)
}

/// Stores a file. Idempotent: the name is the hash of the content.
#[utoipa::path(put, path = "/machines/{machine_id}/repository/{folder}/{name}", tag = "repository", security(("bearer" = [])),
    params(("machine_id" = String, Path), ("folder" = String, Path), ("name" = String, Path)),
    request_body(content = FileBytes, content_type = "application/octet-stream"),
    responses((status = 201, description = "stored"), (status = 400, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 507, body = ErrorBody)))]
async fn put_file(
    State(state): State<AppState>,
    principal: Principal,
    Path((machine_id, folder, name)): Path<(String, String, String)>,
    body: Body,
) -> ApiResult<StatusCode> {
    let vault_id = own_repository(&state, &principal, &machine_id).await?;
    let file = RepoFile::parse(&folder, &name)?;
    let stored = state.storage.put(&vault_id, &machine_id, &file, body.into_data_stream()).await?;
    state.db.list_repository_file(&machine_id, file.kind, &file.name, stored, state.now().unix_timestamp()).await?;
    metrics::counter!("offsite_bytes_in_total").increment(stored);
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
    let vault_id = own_repository(&state, &principal, &machine_id).await?;
    let file = RepoFile::parse(&folder, &name)?;
    let size = state.storage.size(&vault_id, &machine_id, &file).await?;
    Ok((StatusCode::OK, [(header::CONTENT_LENGTH, size.to_string())]).into_response())
}

/// Removes a file (prune and forget do this); removing a missing file succeeds.
#[utoipa::path(delete, path = "/machines/{machine_id}/repository/{folder}/{name}", tag = "repository", security(("bearer" = [])),
    params(("machine_id" = String, Path), ("folder" = String, Path), ("name" = String, Path)),
    responses((status = 204, description = "removed"), (status = 404, body = ErrorBody)))]
async fn delete_file(
    State(state): State<AppState>,
    principal: Principal,
    Path((machine_id, folder, name)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let vault_id = own_repository(&state, &principal, &machine_id).await?;
    let file = RepoFile::parse(&folder, &name)?;
    // Unlisted first: a crash between leaves a stored file unlisted, which is harmless.
    state.db.unlist_repository_file(&machine_id, file.kind, &file.name).await?;
    state.storage.delete(&vault_id, &machine_id, &file).await?;
    Ok(StatusCode::NO_CONTENT)
}
