//! The adoption API: handlers take the request apart and call
//! [`crate::services::adoption`], where the rules are.

use axum::extract::{Path, State};
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};

use offsite_api::types::{AdoptSeed, Adoption, ErrorBody};

use super::ApiJson;
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::services::adoption;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(adopt_seed))
}

/// Copies the seed of a completed import job of the machine's subscription into
/// the machine's vault repository (the machine itself).
#[utoipa::path(post, path = "/machines/{machine_id}/adopt", tag = "machines", security(("bearer" = [])),
    params(("machine_id" = String, Path)), request_body = AdoptSeed,
    responses((status = 200, body = Adoption), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the job is not completed, or its seed is of another repository"),
        (status = 507, body = ErrorBody)))]
async fn adopt_seed(
    State(state): State<AppState>,
    principal: Principal,
    Path(machine_id): Path<String>,
    ApiJson(body): ApiJson<AdoptSeed>,
) -> ApiResult<Json<Adoption>> {
    Ok(Json(adoption::adopt_seed(&state, &principal, &machine_id, body).await?))
}
