//! Who am I: lets a client check its credential before doing anything else.

use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};

use offsite_api::types::WhoAmI;

use crate::auth::Principal;
use crate::error::{ApiResult, Failure};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(whoami))
}

/// The caller's role and tenant.
#[utoipa::path(get, path = "/whoami", tag = "system", security(("bearer" = [])),
    responses((status = 200, body = WhoAmI), (status = 401, body = offsite_api::types::ErrorBody)))]
async fn whoami(principal: Principal) -> ApiResult<Json<WhoAmI>> {
    Ok(Json(match principal {
        Principal::Operator => WhoAmI::Operator,
        Principal::Subscription { subscription_id } => WhoAmI::Subscription { subscription_id },
        Principal::Machine { machine_id, vault_id, subscription_id } => {
            WhoAmI::Machine { machine_id, vault_id, subscription_id }
        }
        Principal::Application { application_id, subscription_id, thumbprint } => {
            WhoAmI::Application { application_id, subscription_id, thumbprint }
        }
        Principal::Registration { .. } => {
            return Err(Failure::Forbidden("vault credentials can only register a machine".into()))
        }
    }))
}
