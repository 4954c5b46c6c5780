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
    if let Some(replaced) = &body.replaces {
        return take_over(state, &credential_id, &vault_id, replaced, &body.hostname).await;
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

/// Registration as the replacement of a machine of the vault (a lost or rebuilt
/// server): the new machine becomes that machine, with its repository and
/// recovery points, so its next backup goes on incrementally. The old machine's
/// credential is revoked: whoever still holds the lost machine cannot write.
async fn take_over(
    state: &AppState,
    credential_id: &str,
    vault_id: &str,
    replaced: &str,
    hostname: &str,
) -> ApiResult<MachineRegistered> {
    let machines = state.db.machines_of(vault_id).await?;
    let mut machine = machines
        .into_iter()
        .find(|m| m.removed.is_none() && (m.id == replaced || m.name == replaced))
        .ok_or_else(|| {
            Failure::NotFound(format!(
                "the vault has no machine '{replaced}' to replace: name one of its machines by id or name \
                 (offsite admin vault machines VAULT lists them)"
            ))
        })?;
    if !state.db.use_credential(credential_id, &machine.id).await? {
        return Err(Failure::Unauthorized(
            "these vault credentials were already used to register a machine: download new ones".into(),
        ));
    }
    state.db.revoke_credentials(CredentialKind::Machine, &machine.id).await?;
    state.db.set_machine_hostname(&machine.id, hostname).await?;
    machine.hostname = hostname.to_string();
    let token = state.db.issue_credential(CredentialKind::Machine, &machine.id, None).await?;
    tracing::warn!(machine = %machine.id, vault = %machine.vault_id, hostname, "machine replaced: its old credential is revoked");
    Ok(MachineRegistered { machine, machine_credential: token })
}
