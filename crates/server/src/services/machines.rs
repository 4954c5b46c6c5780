//! Registered machines, what they protect, and their recovery points. Machines
//! report their own protected items and recovery points (only they can read their
//! encrypted repository); their subscription and operators read them.

use offsite_api::types::{Machine, ProtectedItem, RecoveryPoint, Vault};

use crate::error::{ApiResult, Failure};
use crate::principal::Principal;
use crate::state::AppState;

/// Reports are bounded so one request cannot fill the database.
const MAX_ITEMS: usize = 10_000;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The machine, its subscription, operators.
    Read,
    /// The machine itself only.
    Report,
}

/// Loads a machine the caller may access this way, or answers "not found".
pub async fn machine_for(
    state: &AppState,
    principal: &Principal,
    machine_id: &str,
    access: Access,
) -> ApiResult<(Machine, Vault)> {
    let missing = || Failure::not_found(format!("machine {machine_id}"));
    let machine = state.db.machine(machine_id).await?.ok_or_else(missing)?;
    let vault = state.db.vault(&machine.vault_id).await?.ok_or_else(missing)?;
    if !principal.may_read_machine(&machine.id, &vault.subscription_id) {
        return Err(missing());
    }
    if access == Access::Report && !principal.is_machine(&machine.id) {
        return Err(Failure::Forbidden("only the machine itself reports its backups".into()));
    }
    Ok((machine, vault))
}

pub async fn get(state: &AppState, principal: &Principal, machine_id: &str) -> ApiResult<Machine> {
    Ok(machine_for(state, principal, machine_id, Access::Read).await?.0)
}

/// Removes a machine from its vault: its credential stops working at once. Its
/// recovery points stay in the vault until the subscription deletes the vault.
pub async fn remove(state: &AppState, principal: &Principal, machine_id: &str) -> ApiResult<Machine> {
    let (machine, vault) = machine_for(state, principal, machine_id, Access::Read).await?;
    if !principal.manages(&vault.subscription_id) {
        return Err(Failure::Forbidden("a machine is removed by its subscription, not by itself".into()));
    }
    state.db.remove_machine(&machine.id).await?;
    tracing::info!(machine = %machine.id, "machine removed; its credential is revoked");
    let machine = state.db.machine(&machine.id).await?.ok_or_else(|| Failure::not_found("the machine"))?;
    Ok(machine)
}

pub async fn get_protected_items(
    state: &AppState,
    principal: &Principal,
    machine_id: &str,
) -> ApiResult<Vec<ProtectedItem>> {
    let (machine, _) = machine_for(state, principal, machine_id, Access::Read).await?;
    Ok(state.db.protected_items(&machine.id).await?)
}

/// Replaces the machine's list of protected items.
pub async fn set_protected_items(
    state: &AppState,
    principal: &Principal,
    machine_id: &str,
    items: Vec<ProtectedItem>,
) -> ApiResult<Vec<ProtectedItem>> {
    let (machine, _) = machine_for(state, principal, machine_id, Access::Report).await?;
    if items.len() > MAX_ITEMS {
        return Err(Failure::BadRequest(format!("at most {MAX_ITEMS} protected items")));
    }
    if let Some(bad) = items.iter().find(|i| i.path.is_empty() || i.path.len() > 4096 || i.excludes.len() > 1000) {
        return Err(Failure::BadRequest(format!("protected item '{}' is empty or too long", bad.path)));
    }
    state.db.replace_protected_items(&machine.id, &items).await?;
    Ok(state.db.protected_items(&machine.id).await?)
}

pub async fn get_recovery_points(
    state: &AppState,
    principal: &Principal,
    machine_id: &str,
) -> ApiResult<Vec<RecoveryPoint>> {
    let (machine, _) = machine_for(state, principal, machine_id, Access::Read).await?;
    Ok(state.db.recovery_points(&machine.id).await?)
}

/// Replaces the machine's recovery points with the list the agent read from its
/// repository (after each backup and each retention run).
pub async fn set_recovery_points(
    state: &AppState,
    principal: &Principal,
    machine_id: &str,
    points: Vec<RecoveryPoint>,
) -> ApiResult<Vec<RecoveryPoint>> {
    let (machine, _) = machine_for(state, principal, machine_id, Access::Report).await?;
    if points.len() > MAX_ITEMS {
        return Err(Failure::BadRequest(format!("at most {MAX_ITEMS} recovery points")));
    }
    if let Some(bad) =
        points.iter().find(|p| p.snapshot_id.len() != 64 || !p.snapshot_id.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(Failure::BadRequest(format!("'{}' is not a snapshot id", bad.snapshot_id)));
    }
    if points.iter().any(|p| p.size > i64::MAX as u64 || p.file_count > i64::MAX as u64) {
        return Err(Failure::BadRequest("a recovery point's size or file count is out of range".into()));
    }
    state.db.replace_recovery_points(&machine.id, &points).await?;
    Ok(state.db.recovery_points(&machine.id).await?)
}
