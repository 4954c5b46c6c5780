//! Vaults and the vault credentials that let a machine register to one.

use axum::extract::{Path, State};
use axum::Json;
use time::OffsetDateTime;
use utoipa_axum::{router::OpenApiRouter, routes};

use offsite_api::types::{CreateVault, CreateVaultCredentials, ErrorBody, Machine, Vault, VaultCredentialsIssued};

use super::subscriptions::managed;
use super::ApiJson;
use crate::auth::Principal;
use crate::db::CredentialKind;
use crate::error::{ApiResult, Failure};
use crate::secrets;
use crate::state::AppState;

/// Vault credentials are short-lived: a copied file stops working soon.
const DEFAULT_VALID_HOURS: u32 = 48;
const MAX_VALID_HOURS: u32 = 240;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_vault, list_vaults))
        .routes(routes!(get_vault))
        .routes(routes!(create_vault_credentials))
        .routes(routes!(list_machines))
}

/// Loads a vault the caller manages, or answers "not found".
pub async fn managed_vault(state: &AppState, principal: &Principal, vault_id: &str) -> ApiResult<Vault> {
    let missing = || Failure::not_found(format!("vault {vault_id}"));
    let vault = state.db.vault(vault_id).await?.ok_or_else(missing)?;
    if !principal.manages(&vault.subscription_id) {
        return Err(missing());
    }
    Ok(vault)
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
    let subscription = managed(&state, &principal, &subscription_id).await?;
    super::check_name("vault", &body.name)?;
    let vault =
        Vault { id: secrets::new_id("vlt"), subscription_id: subscription.id, name: body.name, created: state.now() };
    state.db.insert_vault(&vault).await?;
    tracing::info!(vault = %vault.id, subscription = %vault.subscription_id, "vault created");
    Ok(Json(vault))
}

#[utoipa::path(get, path = "/subscriptions/{subscription_id}/vaults", tag = "vaults", security(("bearer" = [])),
    params(("subscription_id" = String, Path)),
    responses((status = 200, body = Vec<Vault>), (status = 404, body = ErrorBody)))]
pub(crate) async fn list_vaults(
    State(state): State<AppState>,
    principal: Principal,
    Path(subscription_id): Path<String>,
) -> ApiResult<Json<Vec<Vault>>> {
    let subscription = managed(&state, &principal, &subscription_id).await?;
    Ok(Json(state.db.vaults_of(&subscription.id).await?))
}

#[utoipa::path(get, path = "/vaults/{vault_id}", tag = "vaults", security(("bearer" = [])),
    params(("vault_id" = String, Path)),
    responses((status = 200, body = Vault), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_vault(
    State(state): State<AppState>,
    principal: Principal,
    Path(vault_id): Path<String>,
) -> ApiResult<Json<Vault>> {
    Ok(Json(managed_vault(&state, &principal, &vault_id).await?))
}

/// Issues vault credentials: a secret that registers one machine, once, before it expires.
#[utoipa::path(post, path = "/vaults/{vault_id}/credentials", tag = "vaults", security(("bearer" = [])),
    params(("vault_id" = String, Path)), request_body = CreateVaultCredentials,
    responses((status = 200, body = VaultCredentialsIssued), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn create_vault_credentials(
    State(state): State<AppState>,
    principal: Principal,
    Path(vault_id): Path<String>,
    ApiJson(body): ApiJson<CreateVaultCredentials>,
) -> ApiResult<Json<VaultCredentialsIssued>> {
    let vault = managed_vault(&state, &principal, &vault_id).await?;
    let hours = body.valid_hours.unwrap_or(DEFAULT_VALID_HOURS);
    if hours == 0 || hours > MAX_VALID_HOURS {
        return Err(Failure::BadRequest(format!(
            "vault credentials are valid for 1 to {MAX_VALID_HOURS} hours, not {hours}"
        )));
    }
    let expires = state.now().unix_timestamp() + i64::from(hours) * 3600;
    let token = state.db.issue_credential(CredentialKind::VaultRegistration, &vault.id, Some(expires)).await?;
    Ok(Json(VaultCredentialsIssued {
        vault_id: vault.id,
        vault_name: vault.name,
        subscription_id: vault.subscription_id,
        expires: OffsetDateTime::from_unix_timestamp(expires).unwrap_or(OffsetDateTime::UNIX_EPOCH),
        registration_secret: token,
    }))
}

#[utoipa::path(get, path = "/vaults/{vault_id}/machines", tag = "vaults", security(("bearer" = [])),
    params(("vault_id" = String, Path)),
    responses((status = 200, body = Vec<Machine>), (status = 404, body = ErrorBody)))]
pub(crate) async fn list_machines(
    State(state): State<AppState>,
    principal: Principal,
    Path(vault_id): Path<String>,
) -> ApiResult<Json<Vec<Machine>>> {
    let vault = managed_vault(&state, &principal, &vault_id).await?;
    Ok(Json(state.db.machines_of(&vault.id).await?))
}
