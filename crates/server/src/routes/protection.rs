//! A vault's protection, the requests to weaken it and the alerts: handlers take
//! the request apart and call [`crate::services::protection`], where the rules are.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};

use offsite_api::types::{
    Alert, ErrorBody, ProtectionChange, ProtectionChangeOutcome, ProtectionDecision, ProtectionRequest, VaultProtection,
};

use super::ApiJson;
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::services::protection;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_protection, change_protection))
        .routes(routes!(list_protection_requests))
        .routes(routes!(approve_protection_request))
        .routes(routes!(reject_protection_request))
        .routes(routes!(list_alerts))
}

#[utoipa::path(get, path = "/vaults/{vault_id}/protection", tag = "protection", security(("bearer" = [])),
    params(("vault_id" = String, Path)),
    responses((status = 200, body = VaultProtection), (status = 404, body = ErrorBody)))]
async fn get_protection(
    State(state): State<AppState>,
    principal: Principal,
    Path(vault_id): Path<String>,
) -> ApiResult<Json<VaultProtection>> {
    Ok(Json(protection::get(&state, &principal, &vault_id).await?))
}

/// Changes a vault's protection. A change that strengthens it applies at once
/// (200). One that weakens it (soft delete off or shorter, immutability off, a
/// shorter minimum retention) becomes a request an operator approves (202); an
/// operator cannot make one. Locking immutability needs `confirm_lock` and is
/// final (409 for any change a lock forbids).
#[utoipa::path(put, path = "/vaults/{vault_id}/protection", tag = "protection", security(("bearer" = [])),
    params(("vault_id" = String, Path)), request_body = ProtectionChange,
    responses((status = 200, body = ProtectionChangeOutcome), (status = 202, body = ProtectionChangeOutcome),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn change_protection(
    State(state): State<AppState>,
    principal: Principal,
    Path(vault_id): Path<String>,
    ApiJson(change): ApiJson<ProtectionChange>,
) -> ApiResult<(StatusCode, Json<ProtectionChangeOutcome>)> {
    let outcome = protection::change(&state, &principal, &vault_id, change).await?;
    let status = if outcome.request.is_some() { StatusCode::ACCEPTED } else { StatusCode::OK };
    Ok((status, Json(outcome)))
}

/// Pending requests to weaken a vault's protection: all of them for an
/// operator, the subscription's own for a subscription.
#[utoipa::path(get, path = "/protection-requests", tag = "protection", security(("bearer" = [])),
    responses((status = 200, body = Vec<ProtectionRequest>), (status = 403, body = ErrorBody)))]
async fn list_protection_requests(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<Json<Vec<ProtectionRequest>>> {
    Ok(Json(protection::pending(&state, &principal).await?))
}

/// An operator approves a pending request: its change applies to the vault.
#[utoipa::path(post, path = "/protection-requests/{request_id}/approve", tag = "protection", security(("bearer" = [])),
    params(("request_id" = String, Path)), request_body = ProtectionDecision,
    responses((status = 200, body = ProtectionRequest), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn approve_protection_request(
    State(state): State<AppState>,
    principal: Principal,
    Path(request_id): Path<String>,
    ApiJson(decision): ApiJson<ProtectionDecision>,
) -> ApiResult<Json<ProtectionRequest>> {
    Ok(Json(protection::decide(&state, &principal, &request_id, true, decision).await?))
}

/// An operator rejects a pending request: the vault keeps its protection.
#[utoipa::path(post, path = "/protection-requests/{request_id}/reject", tag = "protection", security(("bearer" = [])),
    params(("request_id" = String, Path)), request_body = ProtectionDecision,
    responses((status = 200, body = ProtectionRequest), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn reject_protection_request(
    State(state): State<AppState>,
    principal: Principal,
    Path(request_id): Path<String>,
    ApiJson(decision): ApiJson<ProtectionDecision>,
) -> ApiResult<Json<ProtectionRequest>> {
    Ok(Json(protection::decide(&state, &principal, &request_id, false, decision).await?))
}

/// A subscription's alerts (mass deletions by a machine), newest first.
#[utoipa::path(get, path = "/subscriptions/{subscription_id}/alerts", tag = "protection", security(("bearer" = [])),
    params(("subscription_id" = String, Path)),
    responses((status = 200, body = Vec<Alert>), (status = 404, body = ErrorBody)))]
async fn list_alerts(
    State(state): State<AppState>,
    principal: Principal,
    Path(subscription_id): Path<String>,
) -> ApiResult<Json<Vec<Alert>>> {
    Ok(Json(protection::alerts(&state, &principal, &subscription_id).await?))
}
