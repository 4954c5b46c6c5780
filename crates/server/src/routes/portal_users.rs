//! Portal users (operators only): the people who sign in to the web portal, each a
//! subscription's user or an operator. The first operator is made here, with the
//! operator credentials; the portal's operator page makes the rest.

use axum::extract::State;
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};

use offsite_api::types::{CreatePortalUser, ErrorBody, PortalUser};

use super::ApiJson;
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::portal_db::PortalUserRow;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_portal_user, list_portal_users))
}

fn view(row: PortalUserRow) -> PortalUser {
    PortalUser {
        id: row.id,
        email: row.email,
        subscription_id: row.subscription_id,
        created: time::OffsetDateTime::from_unix_timestamp(row.created).unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
    }
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
    principal.require_operator()?;
    let row = crate::portal::create_user(&state, &body.email, &body.password, body.subscription_id).await?;
    Ok(Json(view(row)))
}

/// Every portal user (operators only); never their password hashes.
#[utoipa::path(get, path = "/portal-users", tag = "portal", security(("bearer" = [])),
    responses((status = 200, body = Vec<PortalUser>), (status = 403, body = ErrorBody)))]
async fn list_portal_users(State(state): State<AppState>, principal: Principal) -> ApiResult<Json<Vec<PortalUser>>> {
    principal.require_operator()?;
    Ok(Json(state.db.portal_users().await?.into_iter().map(view).collect()))
}
