//! The machines API: handlers take the request apart and call
//! [`crate::services::machines`], where the rules are.

use axum::extract::{Path, State};
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};

use offsite_api::types::{ErrorBody, Machine, ProtectedItem, RecoveryPoint, SoftDeleted, Undelete, Undeleted};

use super::ApiJson;
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::services::machines;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_machine, remove_machine))
        .routes(routes!(get_protected_items, set_protected_items))
        .routes(routes!(get_recovery_points, set_recovery_points))
        .routes(routes!(get_soft_deleted))
        .routes(routes!(undelete))
}

#[utoipa::path(get, path = "/machines/{machine_id}", tag = "machines", security(("bearer" = [])),
    params(("machine_id" = String, Path)),
    responses((status = 200, body = Machine), (status = 404, body = ErrorBody)))]
async fn get_machine(
    State(state): State<AppState>,
    principal: Principal,
    Path(machine_id): Path<String>,
) -> ApiResult<Json<Machine>> {
    Ok(Json(machines::get(&state, &principal, &machine_id).await?))
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
    Ok(Json(machines::remove(&state, &principal, &machine_id).await?))
}

#[utoipa::path(get, path = "/machines/{machine_id}/protected-items", tag = "machines", security(("bearer" = [])),
    params(("machine_id" = String, Path)),
    responses((status = 200, body = Vec<ProtectedItem>), (status = 404, body = ErrorBody)))]
async fn get_protected_items(
    State(state): State<AppState>,
    principal: Principal,
    Path(machine_id): Path<String>,
) -> ApiResult<Json<Vec<ProtectedItem>>> {
    Ok(Json(machines::get_protected_items(&state, &principal, &machine_id).await?))
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
    Ok(Json(machines::set_protected_items(&state, &principal, &machine_id, items).await?))
}

#[utoipa::path(get, path = "/machines/{machine_id}/recovery-points", tag = "machines", security(("bearer" = [])),
    params(("machine_id" = String, Path)),
    responses((status = 200, body = Vec<RecoveryPoint>), (status = 404, body = ErrorBody)))]
async fn get_recovery_points(
    State(state): State<AppState>,
    principal: Principal,
    Path(machine_id): Path<String>,
) -> ApiResult<Json<Vec<RecoveryPoint>>> {
    Ok(Json(machines::get_recovery_points(&state, &principal, &machine_id).await?))
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
    Ok(Json(machines::set_recovery_points(&state, &principal, &machine_id, points).await?))
}

/// What the machine removed that the service still keeps (invisible to the
/// machine's repository), with each recovery point's purge date.
#[utoipa::path(get, path = "/machines/{machine_id}/soft-deleted", tag = "protection", security(("bearer" = [])),
    params(("machine_id" = String, Path)),
    responses((status = 200, body = SoftDeleted), (status = 404, body = ErrorBody)))]
async fn get_soft_deleted(
    State(state): State<AppState>,
    principal: Principal,
    Path(machine_id): Path<String>,
) -> ApiResult<Json<SoftDeleted>> {
    Ok(Json(machines::soft_deleted(&state, &principal, &machine_id).await?))
}

/// Brings back soft-deleted recovery points and the data they need (every
/// removed file, when none is named). The subscription's and operators' only.
#[utoipa::path(post, path = "/machines/{machine_id}/undelete", tag = "protection", security(("bearer" = [])),
    params(("machine_id" = String, Path)), request_body = Undelete,
    responses((status = 200, body = Undeleted), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn undelete(
    State(state): State<AppState>,
    principal: Principal,
    Path(machine_id): Path<String>,
    ApiJson(request): ApiJson<Undelete>,
) -> ApiResult<Json<Undeleted>> {
    Ok(Json(machines::undelete(&state, &principal, &machine_id, request).await?))
}
