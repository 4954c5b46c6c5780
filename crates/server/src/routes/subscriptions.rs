//! Subscriptions: the service's tenants. Operators create them; each gets a
//! management credential, returned once, which its publish-settings file carries.

use axum::extract::{Path, State};
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};

use offsite_api::types::{CreateSubscription, ErrorBody, Subscription, SubscriptionCreated};

use super::ApiJson;
use crate::auth::Principal;
use crate::db::{now, CredentialKind};
use crate::error::{ApiResult, Failure};
use crate::secrets;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_subscription, list_subscriptions)).routes(routes!(get_subscription))
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
    principal.require_operator()?;
    super::check_name("subscription", &body.name)?;
    let subscription = Subscription {
        id: secrets::new_id("sub"),
        name: body.name,
        created: time::OffsetDateTime::from_unix_timestamp(now()).unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
    };
    state.db.insert_subscription(&subscription).await?;
    let token = state.db.issue_credential(CredentialKind::Subscription, &subscription.id, None).await?;
    tracing::info!(subscription = %subscription.id, name = %subscription.name, "subscription created");
    Ok(Json(SubscriptionCreated { subscription, management_credential: token }))
}

/// The subscriptions the caller may see: all for operators, its own for a subscription.
#[utoipa::path(get, path = "/subscriptions", tag = "subscriptions", security(("bearer" = [])),
    responses((status = 200, body = Vec<Subscription>), (status = 401, body = ErrorBody)))]
pub(crate) async fn list_subscriptions(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<Json<Vec<Subscription>>> {
    let all = state.db.subscriptions().await?;
    Ok(Json(all.into_iter().filter(|s| principal.seeds(&s.id)).collect()))
}

#[utoipa::path(get, path = "/subscriptions/{subscription_id}", tag = "subscriptions", security(("bearer" = [])),
    params(("subscription_id" = String, Path)),
    responses((status = 200, body = Subscription), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_subscription(
    State(state): State<AppState>,
    principal: Principal,
    Path(subscription_id): Path<String>,
) -> ApiResult<Json<Subscription>> {
    if !principal.seeds(&subscription_id) {
        return Err(Failure::not_found(format!("subscription {subscription_id}")));
    }
    let subscription = state
        .db
        .subscription(&subscription_id)
        .await?
        .ok_or_else(|| Failure::not_found(format!("subscription {subscription_id}")))?;
    Ok(Json(subscription))
}

/// Loads a subscription for what offline seeding does in it (its managers and
/// its offline-seeding application), or answers "not found".
pub async fn seeded(state: &AppState, principal: &Principal, subscription_id: &str) -> ApiResult<Subscription> {
    let missing = || Failure::not_found(format!("subscription {subscription_id}"));
    if !principal.seeds(subscription_id) {
        return Err(missing());
    }
    state.db.subscription(subscription_id).await?.ok_or_else(missing)
}

/// Loads a subscription the caller manages, or answers "not found".
pub async fn managed(state: &AppState, principal: &Principal, subscription_id: &str) -> ApiResult<Subscription> {
    let missing = || Failure::not_found(format!("subscription {subscription_id}"));
    if !principal.manages(subscription_id) {
        return Err(missing());
    }
    state.db.subscription(subscription_id).await?.ok_or_else(missing)
}
