//! The storage accounts API: handlers take the request apart and call
//! [`crate::services::storage_accounts`], where the rules are.

use axum::extract::{Path, State};
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};

use offsite_api::types::{Container, CreateContainer, CreateStorageAccount, ErrorBody, StorageAccount};

use super::ApiJson;
use crate::auth::Principal;
use crate::services::storage_accounts;

use crate::error::ApiResult;
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
    Ok(Json(storage_accounts::create(&state, &principal, &subscription_id, body).await?))
}

#[utoipa::path(get, path = "/subscriptions/{subscription_id}/storage-accounts", tag = "storage", security(("bearer" = [])),
    params(("subscription_id" = String, Path)),
    responses((status = 200, body = Vec<StorageAccount>), (status = 404, body = ErrorBody)))]
async fn list_storage_accounts(
    State(state): State<AppState>,
    principal: Principal,
    Path(subscription_id): Path<String>,
) -> ApiResult<Json<Vec<StorageAccount>>> {
    Ok(Json(storage_accounts::list(&state, &principal, &subscription_id).await?))
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
    Ok(Json(storage_accounts::create_container(&state, &principal, &storage_account_id, body).await?))
}

#[utoipa::path(get, path = "/storage-accounts/{storage_account_id}/containers", tag = "storage", security(("bearer" = [])),
    params(("storage_account_id" = String, Path)),
    responses((status = 200, body = Vec<Container>), (status = 404, body = ErrorBody)))]
async fn list_containers(
    State(state): State<AppState>,
    principal: Principal,
    Path(storage_account_id): Path<String>,
) -> ApiResult<Json<Vec<Container>>> {
    Ok(Json(storage_accounts::list_containers(&state, &principal, &storage_account_id).await?))
}
