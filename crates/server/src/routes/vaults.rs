//! The vaults API: handlers take the request apart and call
//! [`crate::services::vaults`], where the rules are.

use axum::extract::{Path, State};
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};

use offsite_api::types::{CreateVault, CreateVaultCredentials, ErrorBody, Machine, Vault, VaultCredentialsIssued};

use super::ApiJson;
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::services::vaults;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_vault, list_vaults))
        .routes(routes!(get_vault))
        .routes(routes!(create_vault_credentials))
        .routes(routes!(list_machines))
}

#[utoipa::path(post, path = "/subscriptions/{subscription_id}/vaults", tag = "vaults", security(("bearer" = [])),
    params(("subscription_id" = String, Path)), request_body = CreateVault,
    responses((status = 200, body = Vault), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_vault(
    State(state): State<AppState>,
    principal: Principal,
    Path(subscription_id): Path<String>,
    ApiJson(body): ApiJson<CreateVault>,
) -> ApiResult<Json<Vault>> {
    Ok(Json(vaults::create(&state, &principal, &subscription_id, body).await?))
}

#[utoipa::path(get, path = "/subscriptions/{subscription_id}/vaults", tag = "vaults", security(("bearer" = [])),
    params(("subscription_id" = String, Path)),
    responses((status = 200, body = Vec<Vault>), (status = 404, body = ErrorBody)))]
async fn list_vaults(
    State(state): State<AppState>,
    principal: Principal,
    Path(subscription_id): Path<String>,
) -> ApiResult<Json<Vec<Vault>>> {
    Ok(Json(vaults::list(&state, &principal, &subscription_id).await?))
}

#[utoipa::path(get, path = "/vaults/{vault_id}", tag = "vaults", security(("bearer" = [])),
    params(("vault_id" = String, Path)),
    responses((status = 200, body = Vault), (status = 404, body = ErrorBody)))]
async fn get_vault(
    State(state): State<AppState>,
    principal: Principal,
    Path(vault_id): Path<String>,
) -> ApiResult<Json<Vault>> {
    Ok(Json(vaults::get(&state, &principal, &vault_id).await?))
}

/// Issues vault credentials: a secret that registers one machine, once, before it expires.
#[utoipa::path(post, path = "/vaults/{vault_id}/credentials", tag = "vaults", security(("bearer" = [])),
    params(("vault_id" = String, Path)), request_body = CreateVaultCredentials,
    responses((status = 200, body = VaultCredentialsIssued), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn create_vault_credentials(
    State(state): State<AppState>,
    principal: Principal,
    Path(vault_id): Path<String>,
    ApiJson(body): ApiJson<CreateVaultCredentials>,
) -> ApiResult<Json<VaultCredentialsIssued>> {
    Ok(Json(vaults::create_vault_credentials(&state, &principal, &vault_id, body).await?))
}

#[utoipa::path(get, path = "/vaults/{vault_id}/machines", tag = "vaults", security(("bearer" = [])),
    params(("vault_id" = String, Path)),
    responses((status = 200, body = Vec<Machine>), (status = 404, body = ErrorBody)))]
async fn list_machines(
    State(state): State<AppState>,
    principal: Principal,
    Path(vault_id): Path<String>,
) -> ApiResult<Json<Vec<Machine>>> {
    Ok(Json(vaults::list_machines(&state, &principal, &vault_id).await?))
}
