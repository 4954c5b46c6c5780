//! Storage quotas: the most a subscription's machines' repositories may hold,
//! set by the operator. What counts is every file the ledger lists
//! (`db::repository_files`), soft-deleted ones too: they occupy the storage until
//! the purge removes them. An upload that would go over is refused (507) before
//! anything is stored, and only that subscription's uploads are.

use offsite_api::size::ByteSize;
use offsite_api::types::{SetStorageQuota, StorageQuota, Subscription};

use crate::error::{ApiResult, Failure};
use crate::principal::Principal;
use crate::services::subscriptions::managed;
use crate::state::AppState;

async fn view(state: &AppState, subscription_id: &str) -> ApiResult<StorageQuota> {
    let missing = || Failure::not_found(format!("subscription {subscription_id}"));
    let quota_bytes = state.db.storage_quota(subscription_id).await?.ok_or_else(missing)?;
    let (used_bytes, soft_deleted_bytes) = state.db.storage_used(subscription_id).await?;
    Ok(StorageQuota { subscription_id: subscription_id.to_string(), quota_bytes, used_bytes, soft_deleted_bytes })
}

/// The subscription's quota and what counts against it (its managers).
pub async fn get(state: &AppState, principal: &Principal, subscription_id: &str) -> ApiResult<StorageQuota> {
    let subscription = managed(state, principal, subscription_id).await?;
    view(state, &subscription.id).await
}

/// Sets or lifts the subscription's quota (operators only). A quota below what
/// is stored already is accepted: nothing is removed, uploads are refused until
/// enough is freed.
pub async fn set(
    state: &AppState,
    principal: &Principal,
    subscription_id: &str,
    body: SetStorageQuota,
) -> ApiResult<StorageQuota> {
    principal.require_operator()?;
    let subscription = managed(state, principal, subscription_id).await?;
    if !state.db.set_storage_quota(&subscription.id, body.quota_bytes).await? {
        return Err(Failure::not_found(format!("subscription {subscription_id}")));
    }
    tracing::info!(subscription = %subscription.id, quota_bytes = ?body.quota_bytes, "storage quota set");
    view(state, &subscription.id).await
}

/// Refuses adding `bytes` to the subscription's repositories if that would pass
/// its quota. Returns how many bytes may still be added (`None`: no quota), for
/// an upload whose size is not known in advance.
pub async fn check_room(state: &AppState, subscription: &Subscription, bytes: u64) -> ApiResult<Option<u64>> {
    let Some(Some(quota)) = state.db.storage_quota(&subscription.id).await? else { return Ok(None) };
    let (used, soft_deleted) = state.db.storage_used(&subscription.id).await?;
    if used.saturating_add(bytes) > quota {
        tracing::warn!(subscription = %subscription.id, quota, used, bytes, "upload refused: storage quota reached");
        return Err(over_quota(subscription, quota, used, soft_deleted, bytes));
    }
    Ok(Some(quota - used))
}

/// The refusal: whose quota, how full, and what to do.
pub fn over_quota(subscription: &Subscription, quota: u64, used: u64, soft_deleted: u64, bytes: u64) -> Failure {
    Failure::InsufficientStorage(format!(
        "subscription {} ({}) has reached its storage quota of {} ({quota} bytes): {} is stored, {} of it \
         soft-deleted and counted until purged, and {} more does not fit; nothing was stored. Free space by \
         forgetting and pruning old recovery points (it returns once the vault's soft-delete window has passed), \
         or ask the service operator to raise the quota (offsite admin subscription set-quota {} BYTES)",
        subscription.name,
        subscription.id,
        ByteSize(quota),
        ByteSize(used),
        ByteSize(soft_deleted),
        ByteSize(bytes),
        subscription.id
    ))
}
