//! A machine's repository files in the vault storage. Only the machine itself may
//! touch them: they are its encrypted backups. Bodies are opaque to the service
//! except for one check: a file's name is the BLAKE3 hash of its bytes, so damaged
//! uploads are refused and a retried upload is harmless.

use std::ops::Range;

use bytes::Bytes;
use futures::Stream;

use offsite_api::types::RepositoryFile;
use offsite_engine::backend::FileKind;

use crate::error::{ApiResult, Failure};
use crate::principal::Principal;
use crate::services::machines::{machine_for, Access};
use crate::state::AppState;
use crate::storage::{folder_kind, RepoFile};

/// The machine's vault id, after checking the caller is that machine.
async fn own_repository(state: &AppState, principal: &Principal, machine_id: &str) -> ApiResult<String> {
    let (machine, vault) = machine_for(state, principal, machine_id, Access::Read).await?;
    if !principal.is_machine(&machine.id) {
        return Err(Failure::Forbidden("only the machine itself reads and writes its repository".into()));
    }
    Ok(vault.id)
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
    state.storage.list(&vault_id, machine_id, kind).await
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
    let (served, size, stream) = state.storage.get(&vault_id, machine_id, &file, range).await?;
    metrics::counter!("offsite_bytes_out_total").increment(served.end - served.start);
    Ok(FileRead { served, size, stream })
}

/// Stores a file. Idempotent: the name is the hash of the content.
pub async fn store(
    state: &AppState,
    principal: &Principal,
    machine_id: &str,
    folder: &str,
    name: &str,
    body: impl Stream<Item = Result<Bytes, axum::Error>> + Unpin + Send + 'static,
) -> ApiResult<()> {
    let vault_id = own_repository(state, principal, machine_id).await?;
    let file = RepoFile::parse(folder, name)?;
    let stored = state.storage.put(&vault_id, machine_id, &file, body).await?;
    state.db.list_repository_file(machine_id, file.kind, &file.name, stored, state.now().unix_timestamp()).await?;
    metrics::counter!("offsite_bytes_in_total").increment(stored);
    Ok(())
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
    state.storage.size(&vault_id, machine_id, &file).await
}

/// Removes a file (prune and forget do this); removing a missing file succeeds.
/// The config and the key files are never removed: without them nothing of the
/// repository can be read, and a machine's credential is what ransomware on that
/// machine holds.
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
    // Unlisted first: a crash between leaves a stored file unlisted, which is harmless.
    state.db.unlist_repository_file(machine_id, file.kind, &file.name).await?;
    state.storage.delete(&vault_id, machine_id, &file).await
}
