//! Subscriptions: the service's tenants. Operators create them; each gets a
//! management credential, returned once, which its publish-settings file carries.

use axum::extract::{Path, State};
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};

use offsite_api::types::{
    CreateSubscription, ErrorBody, IssueManagementCredential, ManagementCredential, ManagementCredentialIssued,
    Subscription, SubscriptionCreated,
};

use super::ApiJson;
use crate::auth::Principal;
use crate::db::{time_of, CredentialKind, CredentialRow};
use crate::error::{ApiResult, Failure};
use crate::secrets;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_subscription, list_subscriptions))
        .routes(routes!(get_subscription))
        .routes(routes!(issue_management_credential, list_management_credentials))
        .routes(routes!(revoke_management_credential))
}

/// Ten years: the longest a management credential may be issued for.
const MAX_VALID_DAYS: u32 = 3650;

fn management_view(row: &CredentialRow) -> ManagementCredential {
    ManagementCredential {
        id: row.id.clone(),
        created: time_of(row.created),
        expires: row.expires.map(time_of),
        revoked: row.revoked.map(time_of),
    }
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
    let subscription = managed(&state, &principal, &subscription_id).await?;
    let expires = match body.valid_days {
        None => None,
        Some(days @ 1..=MAX_VALID_DAYS) => Some(state.now().unix_timestamp() + i64::from(days) * 86_400),
        Some(days) => {
            return Err(Failure::BadRequest(format!(
                "a management credential is valid for 1 to {MAX_VALID_DAYS} days, not {days}; leave valid_days out \
                 for one that works until revoked"
            )))
        }
    };
    let (token, row) = state.db.issue_credential_row(CredentialKind::Subscription, &subscription.id, expires).await?;
    tracing::info!(subscription = %subscription.id, credential = %row.id, "management credential issued");
    let issued = ManagementCredentialIssued { credential: management_view(&row), management_credential: token };
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
    let subscription = managed(&state, &principal, &subscription_id).await?;
    let rows = state.db.credentials_of(CredentialKind::Subscription, &subscription.id).await?;
    Ok(Json(rows.iter().map(management_view).collect()))
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
    let subscription = managed(&state, &principal, &subscription_id).await?;
    let missing =
        || Failure::not_found(format!("management credential {credential_id} of subscription {subscription_id}"));
    if !state.db.revoke_credential(&credential_id, CredentialKind::Subscription, &subscription.id).await? {
        return Err(missing());
    }
    let row = state.db.credential(&credential_id).await?.ok_or_else(missing)?;
    tracing::info!(subscription = %subscription.id, credential = %credential_id, "management credential revoked");
    Ok(Json(management_view(&row)))
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
    let subscription = Subscription { id: secrets::new_id("sub"), name: body.name, created: state.now() };
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
