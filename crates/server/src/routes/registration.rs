//! The registration API: handlers take the request apart and call
//! [`crate::services::registration`], where the rules are.

use axum::extract::State;
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};

use offsite_api::types::{ErrorBody, MachineRegistered, RegisterMachine};

use super::ApiJson;
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::services::registration;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(register))
}

/// Registers the calling machine to the vault its vault credentials name. The
/// credentials are used up: a second registration with the same file is refused.
#[utoipa::path(post, path = "/register", tag = "machines", security(("bearer" = [])),
    request_body = RegisterMachine,
    responses((status = 200, body = MachineRegistered), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn register(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<RegisterMachine>,
) -> ApiResult<Json<MachineRegistered>> {
    Ok(Json(registration::register(&state, &principal, body).await?))
}
