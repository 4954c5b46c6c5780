//! Vaults and the vault credentials that let a machine register to one.

use time::OffsetDateTime;

use offsite_api::types::{CreateVault, CreateVaultCredentials, Machine, Vault, VaultCredentialsIssued};

use crate::db::CredentialKind;
use crate::error::{ApiResult, Failure};
use crate::principal::Principal;
use crate::secrets;
use crate::services::subscriptions::managed;
use crate::state::AppState;

/// Vault credentials are short-lived: a copied file stops working soon.
const DEFAULT_VALID_HOURS: u32 = 48;
const MAX_VALID_HOURS: u32 = 240;

/// Loads a vault the caller manages, or answers "not found".
pub async fn managed_vault(state: &AppState, principal: &Principal, vault_id: &str) -> ApiResult<Vault> {
    let missing = || Failure::not_found(format!("vault {vault_id}"));
    let vault = state.db.vault(vault_id).await?.ok_or_else(missing)?;
    if !principal.manages(&vault.subscription_id) {
        return Err(missing());
    }
    Ok(vault)
}

pub async fn create(
    state: &AppState,
    principal: &Principal,
    subscription_id: &str,
    body: CreateVault,
) -> ApiResult<Vault> {
    let subscription = managed(state, principal, subscription_id).await?;
    super::check_name("vault", &body.name)?;
    let vault =
        Vault { id: secrets::new_id("vlt"), subscription_id: subscription.id, name: body.name, created: state.now() };
    state.db.insert_vault(&vault).await?;
    tracing::info!(vault = %vault.id, subscription = %vault.subscription_id, "vault created");
    Ok(vault)
}

pub async fn list(state: &AppState, principal: &Principal, subscription_id: &str) -> ApiResult<Vec<Vault>> {
    let subscription = managed(state, principal, subscription_id).await?;
    Ok(state.db.vaults_of(&subscription.id).await?)
}

pub async fn get(state: &AppState, principal: &Principal, vault_id: &str) -> ApiResult<Vault> {
    managed_vault(state, principal, vault_id).await
}

/// Issues vault credentials: a secret that registers one machine, once, before it
/// expires, and no later than the credential that asks for them.
pub async fn create_vault_credentials(
    state: &AppState,
    principal: &Principal,
    vault_id: &str,
    body: CreateVaultCredentials,
) -> ApiResult<VaultCredentialsIssued> {
    let vault = managed_vault(state, principal, vault_id).await?;
    let hours = body.valid_hours.unwrap_or(DEFAULT_VALID_HOURS);
    if hours == 0 || hours > MAX_VALID_HOURS {
        return Err(Failure::BadRequest(format!(
            "vault credentials are valid for 1 to {MAX_VALID_HOURS} hours, not {hours}"
        )));
    }
    let asked = state.now().unix_timestamp() + i64::from(hours) * 3600;
    let (expires, expires_with_issuer) = principal.cap_expiry(Some(asked));
    let expires = expires.unwrap_or(asked);
    let token = state.db.issue_credential(CredentialKind::VaultRegistration, &vault.id, Some(expires)).await?;
    Ok(VaultCredentialsIssued {
        vault_id: vault.id,
        vault_name: vault.name,
        subscription_id: vault.subscription_id,
        expires: OffsetDateTime::from_unix_timestamp(expires).unwrap_or(OffsetDateTime::UNIX_EPOCH),
        registration_secret: token,
        expires_with_issuer,
    })
}

pub async fn list_machines(state: &AppState, principal: &Principal, vault_id: &str) -> ApiResult<Vec<Machine>> {
    let vault = managed_vault(state, principal, vault_id).await?;
    Ok(state.db.machines_of(&vault.id).await?)
}
