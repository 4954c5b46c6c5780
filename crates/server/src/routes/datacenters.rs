//! Datacenters, their shipping addresses and import public keys: operators add
//! them; every authenticated caller may read them (customers ship drives there,
//! encrypted to the datacenter's import key).

use axum::extract::State;
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};

use offsite_api::types::{CreateDatacenter, Datacenter, ErrorBody};

use super::ApiJson;
use crate::auth::Principal;
use crate::error::{ApiResult, Failure};
use crate::secrets;
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
    principal.require_operator()?;
    super::check_name("datacenter", &body.name)?;
    if body.address.trim().is_empty() || body.address.len() > 1000 {
        return Err(Failure::BadRequest("the shipping address must be 1 to 1000 characters".into()));
    }
    let key = offsite_api::import_key::parse_key_hex(&body.import_public_key).map_err(|reason| {
        Failure::BadRequest(format!(
            "the import public key is not usable: {reason}. `offsite admin datacenter add --import-key-out FILE` \
             makes a key pair"
        ))
    })?;
    let datacenter = Datacenter {
        id: secrets::new_id("dc"),
        name: body.name,
        address: body.address,
        import_public_key: hex::encode(key),
    };
    state.db.insert_datacenter(&datacenter).await?;
    Ok(Json(datacenter))
}

#[utoipa::path(get, path = "/datacenters", tag = "datacenters", security(("bearer" = [])),
    responses((status = 200, body = Vec<Datacenter>), (status = 401, body = ErrorBody)))]
pub(crate) async fn list_datacenters(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<Json<Vec<Datacenter>>> {
    if matches!(principal, Principal::Registration { .. }) {
        return Err(Failure::Forbidden("vault credentials can only register a machine".into()));
    }
    Ok(Json(state.db.datacenters().await?))
}
