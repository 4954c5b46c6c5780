//! The datacenters API: handlers take the request apart and call
//! [`crate::services::datacenters`], where the rules are.

use axum::extract::State;
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};

use offsite_api::types::{CreateDatacenter, Datacenter, ErrorBody};

use super::ApiJson;
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::services::datacenters;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(add_datacenter, list_datacenters))
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
    responses((status = 200, body = Vec<Datacenter>), (status = 401, body = ErrorBody)))]
async fn list_datacenters(State(state): State<AppState>, principal: Principal) -> ApiResult<Json<Vec<Datacenter>>> {
    Ok(Json(datacenters::list(&state, &principal).await?))
}
