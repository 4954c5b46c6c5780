//! The subscriptions API: handlers take the request apart and call
//! [`crate::services::subscriptions`], where the rules are.

use axum::extract::{Path, State};
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};

use offsite_api::types::{
    CreateSubscription, ErrorBody, IssueManagementCredential, ManagementCredential, ManagementCredentialIssued,
    SetStorageQuota, StorageQuota, Subscription, SubscriptionCreated,
};

use super::ApiJson;
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::services::{quotas, subscriptions};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_subscription, list_subscriptions))
        .routes(routes!(get_subscription))
        .routes(routes!(issue_management_credential, list_management_credentials))
        .routes(routes!(revoke_management_credential))
        .routes(routes!(get_storage_quota, set_storage_quota))
}

/// The subscription's storage quota and what counts against it: every file of
/// its machines' repositories, soft-deleted ones too until they are purged.
#[utoipa::path(get, path = "/subscriptions/{subscription_id}/quota", tag = "subscriptions",
    security(("bearer" = [])), params(("subscription_id" = String, Path)),
    responses((status = 200, body = StorageQuota), (status = 404, body = ErrorBody)))]
async fn get_storage_quota(
    State(state): State<AppState>,
    principal: Principal,
    Path(subscription_id): Path<String>,
) -> ApiResult<Json<StorageQuota>> {
    Ok(Json(quotas::get(&state, &principal, &subscription_id).await?))
}

/// Sets or lifts (`null`) the subscription's storage quota in bytes (operators
/// only). Uploads that would pass it are refused with 507; nothing stored is removed.
#[utoipa::path(put, path = "/subscriptions/{subscription_id}/quota", tag = "subscriptions",
    security(("bearer" = [])), params(("subscription_id" = String, Path)), request_body = SetStorageQuota,
    responses((status = 200, body = StorageQuota), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn set_storage_quota(
    State(state): State<AppState>,
    principal: Principal,
    Path(subscription_id): Path<String>,
    ApiJson(body): ApiJson<SetStorageQuota>,
) -> ApiResult<Json<StorageQuota>> {
    Ok(Json(quotas::set(&state, &principal, &subscription_id, body).await?))
}

/// Issues another management credential of the subscription (operators and the
/// subscription): a new publish-settings file, for rotating one or for a second
/// administrator, for a limited time if asked. Returned once; earlier ones keep
/// working until revoked.
#[utoipa::path(post, path = "/subscriptions/{subscription_id}/management-credentials", tag = "subscriptions",
    security(("bearer" = [])), params(("subscription_id" = String, Path)), request_body = IssueManagementCredential,
    responses((status = 201, body = ManagementCredentialIssued), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn issue_management_credential(
    State(state): State<AppState>,
    principal: Principal,
    Path(subscription_id): Path<String>,
    ApiJson(body): ApiJson<IssueManagementCredential>,
) -> ApiResult<(axum::http::StatusCode, Json<ManagementCredentialIssued>)> {
    let issued = subscriptions::issue_management_credential(&state, &principal, &subscription_id, body).await?;
    Ok((axum::http::StatusCode::CREATED, Json(issued)))
}

/// The subscription's management credentials, revoked ones too; never their secrets.
#[utoipa::path(get, path = "/subscriptions/{subscription_id}/management-credentials", tag = "subscriptions",
    security(("bearer" = [])), params(("subscription_id" = String, Path)),
    responses((status = 200, body = Vec<ManagementCredential>), (status = 404, body = ErrorBody)))]
async fn list_management_credentials(
    State(state): State<AppState>,
    principal: Principal,
    Path(subscription_id): Path<String>,
) -> ApiResult<Json<Vec<ManagementCredential>>> {
    Ok(Json(subscriptions::list_management_credentials(&state, &principal, &subscription_id).await?))
}

/// Revokes one of the subscription's management credentials (operators and the
/// subscription): every request with it is refused from now on, naming the time.
/// Revoking it again changes nothing.
#[utoipa::path(delete, path = "/subscriptions/{subscription_id}/management-credentials/{credential_id}",
    tag = "subscriptions", security(("bearer" = [])),
    params(("subscription_id" = String, Path), ("credential_id" = String, Path)),
    responses((status = 200, body = ManagementCredential), (status = 404, body = ErrorBody)))]
async fn revoke_management_credential(
    State(state): State<AppState>,
    principal: Principal,
    Path((subscription_id, credential_id)): Path<(String, String)>,
) -> ApiResult<Json<ManagementCredential>> {
    Ok(Json(subscriptions::revoke_management_credential(&state, &principal, &subscription_id, &credential_id).await?))
}

/// Creates a subscription and its management credential (operators only).
#[utoipa::path(post, path = "/subscriptions", tag = "subscriptions", security(("bearer" = [])),
    request_body = CreateSubscription,
    responses((status = 200, body = SubscriptionCreated), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_subscription(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<CreateSubscription>,
) -> ApiResult<Json<SubscriptionCreated>> {
    Ok(Json(subscriptions::create(&state, &principal, body).await?))
}

/// The subscriptions the caller may see: all for operators, its own for a
/// subscription; a station credential is refused (403).
#[utoipa::path(get, path = "/subscriptions", tag = "subscriptions", security(("bearer" = [])),
    responses((status = 200, body = Vec<Subscription>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_subscriptions(State(state): State<AppState>, principal: Principal) -> ApiResult<Json<Vec<Subscription>>> {
    Ok(Json(subscriptions::list(&state, &principal).await?))
}

#[utoipa::path(get, path = "/subscriptions/{subscription_id}", tag = "subscriptions", security(("bearer" = [])),
    params(("subscription_id" = String, Path)),
    responses((status = 200, body = Subscription), (status = 404, body = ErrorBody)))]
async fn get_subscription(
    State(state): State<AppState>,
    principal: Principal,
    Path(subscription_id): Path<String>,
) -> ApiResult<Json<Subscription>> {
    Ok(Json(subscriptions::get(&state, &principal, &subscription_id).await?))
}
