//! The portal users API: handlers take the request apart and call
//! [`crate::services::portal_users`], where the rules are.

use axum::extract::{Path, State};
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};

use offsite_api::types::{CreatePortalUser, ErrorBody, PortalUser, SetPortalUserDisabled, SetPortalUserPassword};

use super::ApiJson;
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::services::portal_users;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_portal_user, list_portal_users))
        .routes(routes!(remove_portal_user))
        .routes(routes!(set_portal_user_disabled))
        .routes(routes!(set_portal_user_password))
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

/// Disables (`{"disabled": true}`) or enables a portal user (operators only). A
/// disabled user cannot sign in, and their sessions end at once; disabling a
/// disabled user changes nothing.
#[utoipa::path(put, path = "/portal-users/{user_id}/disabled", tag = "portal", security(("bearer" = [])),
    params(("user_id" = String, Path)), request_body = SetPortalUserDisabled,
    responses((status = 200, body = PortalUser), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn set_portal_user_disabled(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
    ApiJson(body): ApiJson<SetPortalUserDisabled>,
) -> ApiResult<Json<PortalUser>> {
    let user = if body.disabled {
        portal_users::disable(&state, &principal, &user_id).await?
    } else {
        portal_users::enable(&state, &principal, &user_id).await?
    };
    Ok(Json(user))
}

/// Gives a portal user a new password (operators only); their sessions end at once.
#[utoipa::path(put, path = "/portal-users/{user_id}/password", tag = "portal", security(("bearer" = [])),
    params(("user_id" = String, Path)), request_body = SetPortalUserPassword,
    responses((status = 200, body = PortalUser), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn set_portal_user_password(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
    ApiJson(body): ApiJson<SetPortalUserPassword>,
) -> ApiResult<Json<PortalUser>> {
    Ok(Json(portal_users::set_password(&state, &principal, &user_id, body).await?))
}

/// Removes a portal user (operators only); their sessions end at once.
#[utoipa::path(delete, path = "/portal-users/{user_id}", tag = "portal", security(("bearer" = [])),
    params(("user_id" = String, Path)),
    responses((status = 200, body = PortalUser), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn remove_portal_user(
    State(state): State<AppState>,
    principal: Principal,
    Path(user_id): Path<String>,
) -> ApiResult<Json<PortalUser>> {
    Ok(Json(portal_users::remove(&state, &principal, &user_id).await?))
}
