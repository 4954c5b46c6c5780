//! The system API: handlers take the request apart and call
//! [`crate::services::system`], where the rules are.

use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};

use offsite_api::types::WhoAmI;

use crate::auth::Principal;
use crate::error::ApiResult;
use crate::services::system;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(whoami))
}

/// The caller's role and tenant.
#[utoipa::path(get, path = "/whoami", tag = "system", security(("bearer" = [])),
    responses((status = 200, body = WhoAmI), (status = 401, body = offsite_api::types::ErrorBody)))]
async fn whoami(principal: Principal) -> ApiResult<Json<WhoAmI>> {
    Ok(Json(system::whoami(&principal).await?))
}
