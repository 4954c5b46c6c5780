//! Registered machines, what they protect, and their recovery points. Machines
//! report their own protected items and recovery points (only they can read their
//! encrypted repository); their subscription and operators read them.

use axum::extract::{Path, State};
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};

use offsite_api::types::{ErrorBody, Machine, ProtectedItem, RecoveryPoint, Vault};

use super::ApiJson;
use crate::auth::Principal;
use crate::error::{ApiResult, Failure};
use crate::state::AppState;

/// Reports are bounded so one request cannot fill the database.
const MAX_ITEMS: usize = 10_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_machine, remove_machine))
        .routes(routes!(get_protected_items, set_protected_items))
        .routes(routes!(get_recovery_points, set_recovery_points))
}

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

#[utoipa::path(get, path = "/machines/{machine_id}", tag = "machines", security(("bearer" = [])),
    params(("machine_id" = String, Path)),
    responses((status = 200, body = Machine), (status = 404, body = ErrorBody)))]
async fn get_machine(
    State(state): State<AppState>,
    principal: Principal,
    Path(machine_id): Path<String>,
) -> ApiResult<Json<Machine>> {
    Ok(Json(machine_for(&state, &principal, &machine_id, Access::Read).await?.0))
}

/// Removes a machine from its vault: its credential stops working at once. Its
/// recovery points stay in the vault until the subscription deletes the vault.
#[utoipa::path(delete, path = "/machines/{machine_id}", tag = "machines", security(("bearer" = [])),
    params(("machine_id" = String, Path)),
    responses((status = 200, body = Machine), (status = 404, body = ErrorBody)))]
async fn remove_machine(
    State(state): State<AppState>,
    principal: Principal,
    Path(machine_id): Path<String>,
) -> ApiResult<Json<Machine>> {
    let (machine, vault) = machine_for(&state, &principal, &machine_id, Access::Read).await?;
    if !principal.manages(&vault.subscription_id) {
        return Err(Failure::Forbidden("a machine is removed by its subscription, not by itself".into()));
    }
    state.db.remove_machine(&machine.id).await?;
    tracing::info!(machine = %machine.id, "machine removed; its credential is revoked");
    let machine = state.db.machine(&machine.id).await?.ok_or_else(|| Failure::not_found("the machine"))?;
    Ok(Json(machine))
}

#[utoipa::path(get, path = "/machines/{machine_id}/protected-items", tag = "machines", security(("bearer" = [])),
    params(("machine_id" = String, Path)),
    responses((status = 200, body = Vec<ProtectedItem>), (status = 404, body = ErrorBody)))]
async fn get_protected_items(
    State(state): State<AppState>,
    principal: Principal,
    Path(machine_id): Path<String>,
) -> ApiResult<Json<Vec<ProtectedItem>>> {
    let (machine, _) = machine_for(&state, &principal, &machine_id, Access::Read).await?;
    Ok(Json(state.db.protected_items(&machine.id).await?))
}

/// Replaces the machine's list of protected items.
#[utoipa::path(put, path = "/machines/{machine_id}/protected-items", tag = "machines", security(("bearer" = [])),
    params(("machine_id" = String, Path)), request_body = Vec<ProtectedItem>,
    responses((status = 200, body = Vec<ProtectedItem>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn set_protected_items(
    State(state): State<AppState>,
    principal: Principal,
    Path(machine_id): Path<String>,
    ApiJson(items): ApiJson<Vec<ProtectedItem>>,
) -> ApiResult<Json<Vec<ProtectedItem>>> {
    let (machine, _) = machine_for(&state, &principal, &machine_id, Access::Report).await?;
    if items.len() > MAX_ITEMS {
        return Err(Failure::BadRequest(format!("at most {MAX_ITEMS} protected items")));
    }
    if let Some(bad) = items.iter().find(|i| i.path.is_empty() || i.path.len() > 4096 || i.excludes.len() > 1000) {
        return Err(Failure::BadRequest(format!("protected item '{}' is empty or too long", bad.path)));
    }
    state.db.replace_protected_items(&machine.id, &items).await?;
    Ok(Json(state.db.protected_items(&machine.id).await?))
}

#[utoipa::path(get, path = "/machines/{machine_id}/recovery-points", tag = "machines", security(("bearer" = [])),
    params(("machine_id" = String, Path)),
    responses((status = 200, body = Vec<RecoveryPoint>), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_recovery_points(
    State(state): State<AppState>,
    principal: Principal,
    Path(machine_id): Path<String>,
) -> ApiResult<Json<Vec<RecoveryPoint>>> {
    let (machine, _) = machine_for(&state, &principal, &machine_id, Access::Read).await?;
    Ok(Json(state.db.recovery_points(&machine.id).await?))
}

/// Replaces the machine's recovery points with the list the agent read from its
/// repository (after each backup and each retention run).
#[utoipa::path(put, path = "/machines/{machine_id}/recovery-points", tag = "machines", security(("bearer" = [])),
    params(("machine_id" = String, Path)), request_body = Vec<RecoveryPoint>,
    responses((status = 200, body = Vec<RecoveryPoint>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn set_recovery_points(
    State(state): State<AppState>,
    principal: Principal,
    Path(machine_id): Path<String>,
    ApiJson(points): ApiJson<Vec<RecoveryPoint>>,
) -> ApiResult<Json<Vec<RecoveryPoint>>> {
    let (machine, _) = machine_for(&state, &principal, &machine_id, Access::Report).await?;
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
    Ok(Json(state.db.recovery_points(&machine.id).await?))
}
