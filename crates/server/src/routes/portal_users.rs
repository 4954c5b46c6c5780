//! The portal users API: handlers take the request apart and call
//! [`crate::services::portal_users`], where the rules are.

use axum::extract::State;
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};

use offsite_api::types::{CreatePortalUser, ErrorBody, PortalUser};

use super::ApiJson;
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::services::portal_users;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_portal_user, list_portal_users))
}

/// Creates a portal user (operators only).
#[utoipa::path(post, path = "/portal-users", tag = "portal", security(("bearer" = [])),
    request_body = CreatePortalUser,
    responses((status = 200, body = PortalUser), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_portal_user(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<CreatePortalUser>,
) -> ApiResult<Json<PortalUser>> {
    Ok(Json(portal_users::create(&state, &principal, body).await?))
}

/// Every portal user (operators only); never their password hashes.
#[utoipa::path(get, path = "/portal-users", tag = "portal", security(("bearer" = [])),
    responses((status = 200, body = Vec<PortalUser>), (status = 403, body = ErrorBody)))]
async fn list_portal_users(State(state): State<AppState>, principal: Principal) -> ApiResult<Json<Vec<PortalUser>>> {
    Ok(Json(portal_users::list(&state, &principal).await?))
}
