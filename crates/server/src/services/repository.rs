//! A machine's repository files in the vault storage. Only the machine itself may
//! touch them: they are its encrypted backups. Bodies are opaque to the service
//! except for one check: a file's name is the BLAKE3 hash of its bytes, so damaged
//! uploads are refused and a retried upload is harmless.
//!
//! A machine's credential is what ransomware on that machine holds, so what it
//! removes is only soft-deleted (kept, hidden from the machine, restorable by the
//! subscription until the vault's window has passed), an immutable vault's young
//! recovery points cannot be removed at all, and the config and keys never.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};

use offsite_api::types::{Immutability, RepositoryFile, Vault};
use offsite_engine::backend::FileKind;

use crate::db::protection::ProtectionSettings;
use crate::db::repository_files::{is_listed_kind, Revival};
use crate::error::{ApiResult, Failure};
use crate::principal::Principal;
use crate::services::machines::{machine_for, Access};
use crate::services::quotas;
use crate::state::AppState;
use crate::storage::{folder_kind, RepoFile};

/// The machine's vault id, after checking the caller is that machine.
async fn own_repository(state: &AppState, principal: &Principal, machine_id: &str) -> ApiResult<String> {
    Ok(own_vault(state, principal, machine_id).await?.id)
}

/// The machine's vault, after checking the caller is that machine.
async fn own_vault(state: &AppState, principal: &Principal, machine_id: &str) -> ApiResult<Vault> {
    let (machine, vault) = machine_for(state, principal, machine_id, Access::Read).await?;
    if !principal.is_machine(&machine.id) {
        return Err(Failure::Forbidden("only the machine itself reads and writes its repository".into()));
    }
    Ok(vault)
}

/// The files of one folder of the repository.
pub async fn list(
    state: &AppState,
    principal: &Principal,
    machine_id: &str,
    folder: &str,
) -> ApiResult<Vec<RepositoryFile>> {
    let vault_id = own_repository(state, principal, machine_id).await?;
    let kind = folder_kind(folder)?;
    let (stored, hidden) = tokio::try_join!(state.storage.list(&vault_id, machine_id, kind), async {
        Ok(state.db.soft_deleted_names(machine_id, kind).await?)
    })?;
    Ok(stored.into_iter().filter(|file| !hidden.contains(&file.name)).collect())
}

/// Answers "not found" for a file the machine removed: to the machine it is gone.
async fn refuse_if_removed(state: &AppState, machine_id: &str, file: &RepoFile) -> ApiResult<()> {
    if file.kind == FileKind::Lock {
        return Ok(());
    }
    match state.db.repository_file(machine_id, file.kind, &file.name).await? {
        Some(listed) if listed.deleted.is_some() => Err(Failure::not_found("the repository file")),
        _ => Ok(()),
    }
}

/// A file read, whole or a range of it.
pub struct FileRead<S> {
    /// The bytes served.
    pub served: Range<u64>,
    /// The whole file's size.
    pub size: u64,
    pub stream: S,
}

/// Reads a file, or `range` of it. The range comes as the caller parsed it, and a
/// malformed one is refused after the file is found (the answer a caller got
/// before the service layer existed).
pub async fn read(
    state: &AppState,
    principal: &Principal,
    machine_id: &str,
    folder: &str,
    name: &str,
    range: ApiResult<Option<Range<u64>>>,
) -> ApiResult<FileRead<impl Stream<Item = Result<Bytes, std::io::Error>>>> {
    let vault_id = own_repository(state, principal, machine_id).await?;
    let file = RepoFile::parse(folder, name)?;
    let range = range?;
    refuse_if_removed(state, machine_id, &file).await?;
    let (served, size, stream) = state.storage.get(&vault_id, machine_id, &file, range).await?;
    metrics::counter!("offsite_bytes_out_total").increment(served.end - served.start);
    Ok(FileRead { served, size, stream })
}

/// Stores a file. Idempotent: the name is the hash of the content.
///
/// A new file must fit the subscription's storage quota: `declared_size` (the
/// request's `Content-Length`) is checked before anything is read, and the bytes
/// that arrive are counted against the room left, so an upload of unknown size
/// is cut off, unstored, once it passes the quota. A file the ledger lists
/// already (live or soft-deleted) takes no more room, and locks are not kept.
pub async fn store(
    state: &AppState,
    principal: &Principal,
    machine_id: &str,
    folder: &str,
    name: &str,
    declared_size: Option<u64>,
    body: impl Stream<Item = Result<Bytes, axum::Error>> + Unpin + Send + 'static,
) -> ApiResult<()> {
    let vault = own_vault(state, principal, machine_id).await?;
    let vault_id = vault.id;
    let file = RepoFile::parse(folder, name)?;
    let mut quota = None;
    if is_listed_kind(file.kind) && state.db.repository_file(machine_id, file.kind, &file.name).await?.is_none() {
        let subscription = state
            .db
            .subscription(&vault.subscription_id)
            .await?
            .ok_or_else(|| Failure::not_found(format!("subscription {}", vault.subscription_id)))?;
        if let Some(room) = quotas::check_room(state, &subscription, declared_size.unwrap_or(0)).await? {
            quota = Some((subscription, room));
        }
    }
    // The same bytes stored again bring a removed file back, unless its purge is
    // running: then the upload waits for it, or the purge would delete it after.
    if state.db.revive_repository_file(machine_id, file.kind, &file.name).await? == Revival::BeingPurged {
        return Err(Failure::Unavailable(format!(
            "the service is purging an earlier copy of {} right now; retry in a minute",
            file.name
        )));
    }
    let stored = match &quota {
        None => state.storage.put(&vault_id, machine_id, &file, body).await?,
        Some((subscription, room)) => {
            let passed = Arc::new(AtomicBool::new(false));
            let limited = within(body, *room, passed.clone());
            match state.storage.put(&vault_id, machine_id, &file, limited).await {
                Err(_) if passed.load(Ordering::SeqCst) => {
                    let quota = state.db.storage_quota(&subscription.id).await?.flatten().unwrap_or(0);
                    let (used, soft_deleted) = state.db.storage_used(&subscription.id).await?;
                    return Err(quotas::over_quota(subscription, quota, used, soft_deleted, room.saturating_add(1)));
                }
                stored => stored?,
            }
        }
    };
    state.db.list_repository_file(machine_id, file.kind, &file.name, stored, state.now().unix_timestamp()).await?;
    metrics::counter!("offsite_bytes_in_total").increment(stored);
    Ok(())
}

/// `body`, failing once more than `room` bytes have come (and saying so in `passed`).
fn within(
    body: impl Stream<Item = Result<Bytes, axum::Error>> + Unpin + Send + 'static,
    room: u64,
    passed: Arc<AtomicBool>,
) -> impl Stream<Item = Result<Bytes, axum::Error>> + Unpin + Send + 'static {
    let mut seen = 0u64;
    body.map(move |chunk| {
        let chunk = chunk?;
        seen += chunk.len() as u64;
        if seen > room {
            passed.store(true, Ordering::SeqCst);
            return Err(axum::Error::new("the upload passed the subscription's storage quota"));
        }
        Ok(chunk)
    })
}

/// A file's size.
pub async fn size(
    state: &AppState,
    principal: &Principal,
    machine_id: &str,
    folder: &str,
    name: &str,
) -> ApiResult<u64> {
    let vault_id = own_repository(state, principal, machine_id).await?;
    let file = RepoFile::parse(folder, name)?;
    refuse_if_removed(state, machine_id, &file).await?;
    state.storage.size(&vault_id, machine_id, &file).await
}

/// Removes a file (prune and forget do this); removing a missing file succeeds.
/// Locks go at once. Other files are soft-deleted for the vault's window (and,
/// in an immutable vault, at least until their minimum retention has passed);
/// with soft delete off and nothing to keep they go at once. The config and the
/// key files are never removed: without them nothing of the repository can be
/// read.
pub async fn remove(
    state: &AppState,
    principal: &Principal,
    machine_id: &str,
    folder: &str,
    name: &str,
) -> ApiResult<()> {
    let vault_id = own_repository(state, principal, machine_id).await?;
    let file = RepoFile::parse(folder, name)?;
    if matches!(file.kind, FileKind::Config | FileKind::Key) {
        let (what, them) = if file.kind == FileKind::Config { ("config", "it") } else { ("key files", "them") };
        return Err(Failure::Forbidden(format!(
            "the repository's {what} cannot be removed through the service: without {them} none of this machine's \
             backups can be read, so no credential may remove {them}"
        )));
    }
    if file.kind == FileKind::Lock {
        return state.storage.delete(&vault_id, machine_id, &file).await;
    }
    let listed = state.db.repository_file(machine_id, file.kind, &file.name).await?;
    if listed.as_ref().is_some_and(|f| f.deleted.is_some()) {
        return Ok(());
    }
    let (size, stored) = match &listed {
        Some(listed) => (listed.size, listed.stored),
        // Stored before the ledger existed: as young as can be, to be safe.
        None => match state.storage.size(&vault_id, machine_id, &file).await {
            Ok(size) => (size, state.now().unix_timestamp()),
            Err(Failure::NotFound(_)) => return Ok(()),
            Err(err) => return Err(err),
        },
    };
    let settings = state
        .db
        .protection_settings(&vault_id)
        .await?
        .ok_or_else(|| Failure::not_found(format!("vault {vault_id}")))?;
    let now = state.now().unix_timestamp();
    let purge_after = purge_date(&settings, file.kind, &file.name, stored, now)?;
    if purge_after <= now {
        // Unlisted first: a crash between leaves a stored file unlisted, which is harmless.
        state.db.unlist_repository_file(machine_id, file.kind, &file.name).await?;
        return state.storage.delete(&vault_id, machine_id, &file).await;
    }
    state.db.soft_delete_repository_file(machine_id, (file.kind, &file.name, size), now, purge_after).await?;
    metrics::counter!("offsite_soft_deleted_bytes_total").increment(size);
    Ok(())
}

const DAY: i64 = 86_400;

/// When a file removed `now` may be purged: after the soft-delete window, and in
/// an immutable vault not before its minimum retention has passed. A recovery
/// point younger than that cannot be removed at all.
fn purge_date(settings: &ProtectionSettings, kind: FileKind, name: &str, stored: i64, now: i64) -> ApiResult<i64> {
    let mut purge_after = now + settings.soft_delete_days.map_or(0, |days| i64::from(days) * DAY);
    if settings.immutability != Immutability::Disabled {
        let kept_until = stored + i64::from(settings.min_retention_days) * DAY;
        if kind == FileKind::Snapshot && now < kept_until {
            let until = crate::clock::format_seconds(kept_until);
            return Err(Failure::Forbidden(format!(
                "the vault is immutable: recovery point {name} cannot be removed before {until} (the vault's \
                 minimum retention is {} days); keep it until then",
                settings.min_retention_days
            )));
        }
        purge_after = purge_after.max(kept_until);
    }
    Ok(purge_after)
}
