//! Subscriptions: the service's tenants. Operators create them; each gets a
//! management credential, returned once, which its publish-settings file carries.

use offsite_api::types::{
    CreateSubscription, IssueManagementCredential, ManagementCredential, ManagementCredentialIssued, Subscription,
    SubscriptionCreated,
};

use crate::db::{time_of, CredentialKind, CredentialRow};
use crate::error::{ApiResult, Failure};
use crate::principal::Principal;
use crate::secrets;
use crate::state::AppState;

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

/// Issues another management credential of the subscription (operators and the
/// subscription): a new publish-settings file, for rotating one or for a second
/// administrator, for a limited time if asked. Returned once; earlier ones keep
/// working until revoked. A credential that expires issues none that outlive it.
pub async fn issue_management_credential(
    state: &AppState,
    principal: &Principal,
    subscription_id: &str,
    body: IssueManagementCredential,
) -> ApiResult<ManagementCredentialIssued> {
    let subscription = managed(state, principal, subscription_id).await?;
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
    let (expires, expires_with_issuer) = principal.cap_expiry(expires);
    let (token, row) = state.db.issue_credential_row(CredentialKind::Subscription, &subscription.id, expires).await?;
    tracing::info!(subscription = %subscription.id, credential = %row.id, expires_with_issuer, "management credential issued");
    let issued = ManagementCredentialIssued {
        credential: management_view(&row),
        management_credential: token,
        expires_with_issuer,
    };
    Ok(issued)
}

/// The subscription's management credentials, revoked ones too; never their secrets.
pub async fn list_management_credentials(
    state: &AppState,
    principal: &Principal,
    subscription_id: &str,
) -> ApiResult<Vec<ManagementCredential>> {
    let subscription = managed(state, principal, subscription_id).await?;
    let rows = state.db.credentials_of(CredentialKind::Subscription, &subscription.id).await?;
    Ok(rows.iter().map(management_view).collect())
}

/// Revokes one of the subscription's management credentials (operators and the
/// subscription): every request with it is refused from now on, naming the time.
/// Revoking it again changes nothing.
pub async fn revoke_management_credential(
    state: &AppState,
    principal: &Principal,
    subscription_id: &str,
    credential_id: &str,
) -> ApiResult<ManagementCredential> {
    let subscription = managed(state, principal, subscription_id).await?;
    let missing =
        || Failure::not_found(format!("management credential {credential_id} of subscription {subscription_id}"));
    if !state.db.revoke_credential(credential_id, CredentialKind::Subscription, &subscription.id).await? {
        return Err(missing());
    }
    let row = state.db.credential(credential_id).await?.ok_or_else(missing)?;
    tracing::info!(subscription = %subscription.id, credential = %credential_id, "management credential revoked");
    Ok(management_view(&row))
}

/// Creates a subscription and its management credential (operators only).
pub async fn create(
    state: &AppState,
    principal: &Principal,
    body: CreateSubscription,
) -> ApiResult<SubscriptionCreated> {
    principal.require_operator()?;
    super::check_name("subscription", &body.name)?;
    let subscription = Subscription { id: secrets::new_id("sub"), name: body.name, created: state.now() };
    state.db.insert_subscription(&subscription).await?;
    let token = state.db.issue_credential(CredentialKind::Subscription, &subscription.id, None).await?;
    tracing::info!(subscription = %subscription.id, name = %subscription.name, "subscription created");
    Ok(SubscriptionCreated { subscription, management_credential: token })
}

/// The subscriptions the caller may see: all for operators, its own for a
/// subscription; a station credential is refused.
pub async fn list(state: &AppState, principal: &Principal) -> ApiResult<Vec<Subscription>> {
    // A station sees import jobs, never who the tenants are.
    if principal.is_station() {
        return Err(super::datacenters::station_refused());
    }
    let all = state.db.subscriptions().await?;
    Ok(all.into_iter().filter(|s| principal.seeds(&s.id)).collect())
}

pub async fn get(state: &AppState, principal: &Principal, subscription_id: &str) -> ApiResult<Subscription> {
    if !principal.seeds(subscription_id) {
        return Err(Failure::not_found(format!("subscription {subscription_id}")));
    }
    let subscription = state
        .db
        .subscription(subscription_id)
        .await?
        .ok_or_else(|| Failure::not_found(format!("subscription {subscription_id}")))?;
    Ok(subscription)
}
