//! The datacenters API: handlers take the request apart and call
//! [`crate::services::datacenters`], where the rules are.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};

use offsite_api::types::{
    CreateDatacenter, Datacenter, ErrorBody, IssueStationCredential, StationCredential, StationCredentialIssued,
};

use super::ApiJson;
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::services::datacenters;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(add_datacenter, list_datacenters))
        .routes(routes!(issue_station_credential, list_station_credentials))
        .routes(routes!(revoke_station_credential))
}

/// Issues a credential for one of the datacenter's ingest stations (operators),
/// returned once, for a limited time if asked. It receives packages and ingests
/// drives of the import jobs shipped to this datacenter, and does nothing else.
#[utoipa::path(post, path = "/datacenters/{datacenter_id}/station-credentials", tag = "datacenters",
    security(("bearer" = [])), params(("datacenter_id" = String, Path)), request_body = IssueStationCredential,
    responses((status = 201, body = StationCredentialIssued), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn issue_station_credential(
    State(state): State<AppState>,
    principal: Principal,
    Path(datacenter_id): Path<String>,
    ApiJson(body): ApiJson<IssueStationCredential>,
) -> ApiResult<(StatusCode, Json<StationCredentialIssued>)> {
    let issued = datacenters::issue_station_credential(&state, &principal, &datacenter_id, body).await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

/// The datacenter's station credentials (operators), revoked ones too; never their secrets.
#[utoipa::path(get, path = "/datacenters/{datacenter_id}/station-credentials", tag = "datacenters",
    security(("bearer" = [])), params(("datacenter_id" = String, Path)),
    responses((status = 200, body = Vec<StationCredential>), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn list_station_credentials(
    State(state): State<AppState>,
    principal: Principal,
    Path(datacenter_id): Path<String>,
) -> ApiResult<Json<Vec<StationCredential>>> {
    Ok(Json(datacenters::list_station_credentials(&state, &principal, &datacenter_id).await?))
}

/// Revokes one of the datacenter's station credentials (operators): every request
/// with it is refused from now on, naming the time. Revoking it again changes nothing.
#[utoipa::path(delete, path = "/datacenters/{datacenter_id}/station-credentials/{credential_id}",
    tag = "datacenters", security(("bearer" = [])),
    params(("datacenter_id" = String, Path), ("credential_id" = String, Path)),
    responses((status = 200, body = StationCredential), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn revoke_station_credential(
    State(state): State<AppState>,
    principal: Principal,
    Path((datacenter_id, credential_id)): Path<(String, String)>,
) -> ApiResult<Json<StationCredential>> {
    Ok(Json(datacenters::revoke_station_credential(&state, &principal, &datacenter_id, &credential_id).await?))
}

#[utoipa::path(post, path = "/datacenters", tag = "datacenters", security(("bearer" = [])),
    request_body = CreateDatacenter,
    responses((status = 200, body = Datacenter), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn add_datacenter(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<CreateDatacenter>,
) -> ApiResult<Json<Datacenter>> {
    Ok(Json(datacenters::add(&state, &principal, body).await?))
}

#[utoipa::path(get, path = "/datacenters", tag = "datacenters", security(("bearer" = [])),
    responses((status = 200, body = Vec<Datacenter>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_datacenters(State(state): State<AppState>, principal: Principal) -> ApiResult<Json<Vec<Datacenter>>> {
    Ok(Json(datacenters::list(&state, &principal).await?))
}
