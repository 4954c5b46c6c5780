//! Registered machines, what they protect, and their recovery points. Machines
//! report their own protected items and recovery points (only they can read their
//! encrypted repository); their subscription and operators read them.

use offsite_api::types::{Machine, ProtectedItem, RecoveryPoint, SoftDeleted, Undelete, Undeleted, Vault};

use crate::db::time_of;

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

/// What the machine removed that the service still keeps, and until when. The
/// machine may read it too (its status shows the space that will return).
pub async fn soft_deleted(state: &AppState, principal: &Principal, machine_id: &str) -> ApiResult<SoftDeleted> {
    let (machine, _) = machine_for(state, principal, machine_id, Access::Read).await?;
    let (files, bytes, first, last) = state.db.soft_deleted_totals(&machine.id).await?;
    Ok(SoftDeleted {
        machine_id: machine.id.clone(),
        files,
        bytes,
        next_purge: first.map(time_of),
        last_purge: last.map(time_of),
        recovery_points: state.db.soft_deleted_points(&machine.id).await?,
    })
}

/// Brings back soft-deleted recovery points (all that the machine removed, when
/// none is named). Only the subscription and operators may: the machine is the
/// one whose removals this undoes.
pub async fn undelete(
    state: &AppState,
    principal: &Principal,
    machine_id: &str,
    request: Undelete,
) -> ApiResult<Undeleted> {
    let (machine, vault) = machine_for(state, principal, machine_id, Access::Read).await?;
    if !principal.manages(&vault.subscription_id) {
        return Err(Failure::Forbidden(
            "what a machine removed is brought back by its subscription, not by the machine".into(),
        ));
    }
    if request.recovery_points.len() > MAX_ITEMS {
        return Err(Failure::BadRequest(format!("at most {MAX_ITEMS} recovery points at once")));
    }
    if !request.recovery_points.is_empty() {
        let removed = state.db.soft_deleted_points(&machine.id).await?;
        if let Some(unknown) = request.recovery_points.iter().find(|id| !removed.iter().any(|p| &p.snapshot_id == *id))
        {
            return Err(Failure::NotFound(format!(
                "machine {machine_id} has no soft-deleted recovery point {unknown}: it is live, was purged, or never \
                 existed; offsite admin machine soft-deleted {machine_id} lists those that can be brought back"
            )));
        }
    }
    let (files, bytes, recovery_points) =
        state.db.undelete_repository_files(&machine.id, &request.recovery_points).await?;
    tracing::warn!(machine = %machine.id, files, bytes, points = recovery_points.len(), "soft-deleted files brought back");
    Ok(Undeleted { machine_id: machine.id, files, bytes, recovery_points })
}
