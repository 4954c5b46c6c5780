//! Storage accounts and their containers: named places in the service's object
//! store owned by one subscription, where ingested drives land before adoption.

use offsite_api::types::{Container, CreateContainer, CreateStorageAccount, StorageAccount};

use crate::principal::Principal;
use crate::services::subscriptions::{managed, seeded};

use crate::error::{ApiResult, Failure};
use crate::secrets;
use crate::state::AppState;

/// Loads a storage account the caller manages (`read`: or may read for offline
/// seeding), or answers "not found".
async fn managed_account(state: &AppState, principal: &Principal, id: &str, read: bool) -> ApiResult<StorageAccount> {
    let missing = || Failure::not_found(format!("storage account {id}"));
    let account = state.db.storage_account(id).await?.ok_or_else(missing)?;
    let allowed =
        if read { principal.seeds(&account.subscription_id) } else { principal.manages(&account.subscription_id) };
    if !allowed {
        return Err(missing());
    }
    Ok(account)
}

pub async fn create(
    state: &AppState,
    principal: &Principal,
    subscription_id: &str,
    body: CreateStorageAccount,
) -> ApiResult<StorageAccount> {
    let subscription = managed(state, principal, subscription_id).await?;
    super::check_name("storage account", &body.name)?;
    let account = StorageAccount {
        id: secrets::new_id("sa"),
        subscription_id: subscription.id,
        name: body.name,
        created: state.now(),
    };
    state.db.insert_storage_account(&account).await?;
    Ok(account)
}

pub async fn list(state: &AppState, principal: &Principal, subscription_id: &str) -> ApiResult<Vec<StorageAccount>> {
    let subscription = seeded(state, principal, subscription_id).await?;
    Ok(state.db.storage_accounts_of(&subscription.id).await?)
}

pub async fn create_container(
    state: &AppState,
    principal: &Principal,
    storage_account_id: &str,
    body: CreateContainer,
) -> ApiResult<Container> {
    let account = managed_account(state, principal, storage_account_id, false).await?;
    super::check_name("container", &body.name)?;
    let container =
        Container { id: secrets::new_id("ctr"), storage_account_id: account.id, name: body.name, created: state.now() };
    state.db.insert_container(&container).await?;
    Ok(container)
}

pub async fn list_containers(
    state: &AppState,
    principal: &Principal,
    storage_account_id: &str,
) -> ApiResult<Vec<Container>> {
    let account = managed_account(state, principal, storage_account_id, true).await?;
    Ok(state.db.containers_of(&account.id).await?)
}
