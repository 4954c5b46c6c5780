//! Registration: a vault credentials file becomes a machine with its own credential.

use offsite_api::types::{Machine, MachineRegistered, RegisterMachine};

use crate::db::CredentialKind;
use crate::error::{ApiResult, Failure};
use crate::principal::Principal;
use crate::secrets;
use crate::state::AppState;

/// Registers the calling machine to the vault its vault credentials name. The
/// credentials are used up: a second registration with the same file is refused.
pub async fn register(state: &AppState, principal: &Principal, body: RegisterMachine) -> ApiResult<MachineRegistered> {
    let Principal::Registration { credential_id, vault_id } = principal.clone() else {
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
    Ok(MachineRegistered { machine, machine_credential: token })
}
