//! Registration: a vault credentials file becomes a machine with its own credential.

use axum::extract::State;
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};

use offsite_api::types::{ErrorBody, Machine, MachineRegistered, RegisterMachine};

use super::ApiJson;
use crate::auth::Principal;
use crate::db::CredentialKind;
use crate::error::{ApiResult, Failure};
use crate::secrets;
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
    let Principal::Registration { credential_id, vault_id } = principal else {
        return Err(Failure::Forbidden("registering a machine needs vault credentials".into()));
    };
    super::check_name("machine", &body.name)?;
    if body.hostname.is_empty() || body.hostname.len() > 255 {
        return Err(Failure::BadRequest("the host name must be 1 to 255 characters".into()));
    }
    let machine = Machine {
        id: secrets::new_id("mch"),
        vault_id,
        name: body.name,
        hostname: body.hostname,
        registered: state.now(),
        removed: None,
        last_backup: None,
        next_backup: None,
    };
    // Claim the single-use credential first: of two racing registrations, one wins.
    if !state.db.use_credential(&credential_id, &machine.id).await? {
        return Err(Failure::Unauthorized(
            "these vault credentials were already used to register a machine: download new ones".into(),
        ));
    }
    state.db.insert_machine(&machine).await?;
    let token = state.db.issue_credential(CredentialKind::Machine, &machine.id, None).await?;
    tracing::info!(machine = %machine.id, vault = %machine.vault_id, "machine registered");
    Ok(Json(MachineRegistered { machine, machine_credential: token }))
}
