//! Storage accounts and their containers: named places in the service's object
//! store owned by one subscription, where ingested drives land before adoption.

use axum::extract::{Path, State};
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};

use offsite_api::types::{Container, CreateContainer, CreateStorageAccount, ErrorBody, StorageAccount};

use super::subscriptions::{managed, seeded};
use super::ApiJson;
use crate::auth::Principal;

use crate::error::{ApiResult, Failure};
use crate::secrets;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_storage_account, list_storage_accounts))
        .routes(routes!(create_container, list_containers))
}

#[utoipa::path(post, path = "/subscriptions/{subscription_id}/storage-accounts", tag = "storage", security(("bearer" = [])),
    params(("subscription_id" = String, Path)), request_body = CreateStorageAccount,
    responses((status = 200, body = StorageAccount), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_storage_account(
    State(state): State<AppState>,
    principal: Principal,
    Path(subscription_id): Path<String>,
    ApiJson(body): ApiJson<CreateStorageAccount>,
) -> ApiResult<Json<StorageAccount>> {
    let subscription = managed(&state, &principal, &subscription_id).await?;
    super::check_name("storage account", &body.name)?;
    let account = StorageAccount {
        id: secrets::new_id("sa"),
        subscription_id: subscription.id,
        name: body.name,
        created: state.now(),
    };
    state.db.insert_storage_account(&account).await?;
    Ok(Json(account))
}

#[utoipa::path(get, path = "/subscriptions/{subscription_id}/storage-accounts", tag = "storage", security(("bearer" = [])),
    params(("subscription_id" = String, Path)),
    responses((status = 200, body = Vec<StorageAccount>), (status = 404, body = ErrorBody)))]
pub(crate) async fn list_storage_accounts(
    State(state): State<AppState>,
    principal: Principal,
    Path(subscription_id): Path<String>,
) -> ApiResult<Json<Vec<StorageAccount>>> {
    let subscription = seeded(&state, &principal, &subscription_id).await?;
    Ok(Json(state.db.storage_accounts_of(&subscription.id).await?))
}

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

#[utoipa::path(post, path = "/storage-accounts/{storage_account_id}/containers", tag = "storage", security(("bearer" = [])),
    params(("storage_account_id" = String, Path)), request_body = CreateContainer,
    responses((status = 200, body = Container), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_container(
    State(state): State<AppState>,
    principal: Principal,
    Path(storage_account_id): Path<String>,
    ApiJson(body): ApiJson<CreateContainer>,
) -> ApiResult<Json<Container>> {
    let account = managed_account(&state, &principal, &storage_account_id, false).await?;
    super::check_name("container", &body.name)?;
    let container =
        Container { id: secrets::new_id("ctr"), storage_account_id: account.id, name: body.name, created: state.now() };
    state.db.insert_container(&container).await?;
    Ok(Json(container))
}

#[utoipa::path(get, path = "/storage-accounts/{storage_account_id}/containers", tag = "storage", security(("bearer" = [])),
    params(("storage_account_id" = String, Path)),
    responses((status = 200, body = Vec<Container>), (status = 404, body = ErrorBody)))]
pub(crate) async fn list_containers(
    State(state): State<AppState>,
    principal: Principal,
    Path(storage_account_id): Path<String>,
) -> ApiResult<Json<Vec<Container>>> {
    let account = managed_account(&state, &principal, &storage_account_id, true).await?;
    Ok(Json(state.db.containers_of(&account.id).await?))
}
