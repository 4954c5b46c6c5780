//! Adoption: a machine takes the seed of its completed import job into its vault
//! repository. The seed has the vault repository's identity (the agent staged it
//! with the vault's config and keys), so adoption is a server-side copy of files
//! from the container into `vaults/<vault>/<machine>/`, then a check of every
//! copied file against its content-hash name: the service verifies what it will
//! serve. Repeating it answers the recorded result.
//!
//! One import job may carry several machines' staging locations (one folder
//! each): a machine adopts the folder whose config is its repository's, and
//! nothing of the others.

use futures::{StreamExt, TryStreamExt};

use offsite_api::types::{AdoptSeed, Adoption, ImportFile, ImportJobState};

use crate::container_storage::seed_roots;
use crate::db::seeding::AdoptionRow;
use crate::error::{ApiResult, Failure};
use crate::principal::Principal;
use crate::services::import_jobs::files_missing;
use crate::services::machines::{machine_for, Access};
use crate::services::quotas;
use crate::state::AppState;
use crate::storage::RepoFile;

/// Files copied or verified at once.
const PARALLEL: usize = 8;

fn state_name(state: ImportJobState) -> String {
    crate::db::enum_text(&state)
}

/// Copies the seed of a completed import job of the machine's subscription into
/// the machine's vault repository (the machine itself).
pub async fn adopt_seed(
    state: &AppState,
    principal: &Principal,
    machine_id: &str,
    body: AdoptSeed,
) -> ApiResult<Adoption> {
    let (machine, vault) = machine_for(state, principal, machine_id, Access::Read).await?;
    if !principal.is_machine(&machine.id) {
        return Err(Failure::Forbidden("only the machine itself adopts a seed into its repository".into()));
    }
    let name = body.import_job;
    let missing = || Failure::not_found(format!("import job '{name}'"));
    let job = state.db.import_job_named(&name).await?.ok_or_else(missing)?;
    if job.subscription_id != vault.subscription_id {
        return Err(missing());
    }
    if let Some(done) = state.db.adoption(&machine.id, &job.id).await? {
        return Ok(Adoption { import_job: name, files: done.files, bytes: done.bytes, already_adopted: true });
    }
    if job.state != ImportJobState::Completed {
        return Err(Failure::Conflict(format!(
            "import job {name} is {}: wait for it to complete",
            state_name(job.state)
        )));
    }
    let folder = job.folder();
    let vault_config = state.storage.vault_config(&vault.id, &machine.id).await?.ok_or_else(|| {
        Failure::Conflict(format!(
            "this machine's vault repository has no config yet, so the seed in import job {name} cannot be matched \
             to it: run `offsite agent offline configure` first"
        ))
    })?;
    let all = state.storage.import_files(&folder).await?;
    // The job carries one repository, or one per machine folder (one drive set
    // for several machines): the seed is the one whose config is the machine's.
    let roots = seed_roots(&all);
    if roots.is_empty() {
        return Err(Failure::Conflict(format!(
            "the seed in import job {name} has no repository config: its drives did not carry a staging repository"
        )));
    }
    let mut root = None;
    for candidate in &roots {
        if state.storage.seed_config(&folder, candidate).await?.as_ref() == Some(&vault_config) {
            root = Some(candidate.clone());
            break;
        }
    }
    let Some(root) = root else {
        return Err(Failure::Conflict(match roots.as_slice() {
            [_] => format!("the seed in import job {name} belongs to another repository"),
            several => format!(
                "none of the {} seeds in import job {name} ({}) belongs to this machine's repository",
                several.len(),
                several.join(", ")
            ),
        }));
    };
    let under = |path: &str| match root.as_str() {
        "" => Some(path.to_string()),
        root => path.strip_prefix(root).and_then(|p| p.strip_prefix('/')).map(str::to_string),
    };

    // A job completes only with every file of its list; check again, since the
    // container may have lost one since (jobs made before file lists have none).
    // Only this machine's files count: another machine's loss is not its own.
    if let Some(missing) = files_missing(state, &job).await? {
        let missing: Vec<_> = missing.into_iter().filter(|f| under(&f.path).is_some()).collect();
        if !missing.is_empty() {
            tracing::error!(job = %job.id, missing = missing.len(), "a completed import job lacks files of its seed");
            let names: Vec<&str> = missing.iter().take(5).map(|f| f.path.as_str()).collect();
            return Err(Failure::Conflict(format!(
                "the seed in import job {name} is not whole: its container lacks {} of its files ({}{}); nothing was \
                 adopted. The operator must check the storage (`offsite server check`); a repair drive can bring \
                 them again",
                missing.len(),
                names.join(", "),
                if missing.len() > 5 { ", …" } else { "" }
            )));
        }
    }
    let files: Vec<ImportFile> =
        all.into_iter().filter_map(|f| Some(ImportFile { path: under(&f.path)?, size: f.size })).collect();
    let (count, bytes) = (files.len() as u64, files.iter().map(|f| f.size).sum::<u64>());
    // The seed joins the subscription's stored bytes: a quota it would pass
    // refuses it before anything is copied, as it refuses an upload.
    let subscription = state
        .db
        .subscription(&vault.subscription_id)
        .await?
        .ok_or_else(|| Failure::not_found(format!("subscription {}", vault.subscription_id)))?;
    quotas::check_room(state, &subscription, bytes).await?;
    // Owned values in each task: the futures must be Send for any lifetime.
    let task = |file: ImportFile| {
        (state.storage.clone(), (folder.clone(), root.clone()), vault.id.clone(), machine.id.clone(), file)
    };
    let copied: Vec<bool> = futures::stream::iter(files.clone().into_iter().map(task))
        .map(|(storage, (folder, root), vault_id, machine_id, file)| async move {
            storage.adopt_file(&folder, &root, &vault_id, &machine_id, &file).await
        })
        .buffer_unordered(PARALLEL)
        .try_collect()
        .await?;
    let copied = copied.into_iter().filter(|c| *c).count();
    // Every file of the seed, copied now or before (an interrupted adoption).
    let checked = files.clone().into_iter().filter(|f| f.path != "config").map(task);
    let problems: Vec<Result<(), String>> = futures::stream::iter(checked)
        .map(|(storage, _, vault_id, machine_id, file)| async move {
            storage.verify_vault_file(&vault_id, &machine_id, &file.path).await
        })
        .buffer_unordered(PARALLEL)
        .try_collect()
        .await?;
    let damaged: Vec<String> = problems.into_iter().filter_map(Result::err).collect();
    if !damaged.is_empty() {
        tracing::error!(job = %job.id, machine = %machine.id, damaged = damaged.len(), "adopted seed files are damaged");
        return Err(Failure::Conflict(format!(
            "{} of the seed in import job {name} {} damaged in the service's storage ({}{}): the seed was not \
             adopted; the operator must check the storage",
            offsite_api::size::plural(damaged.len(), "file"),
            if damaged.len() == 1 { "is" } else { "are" },
            damaged.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
            if damaged.len() > 5 { ", …" } else { "" }
        )));
    }
    // The seed's files are the repository's now: `server check` expects them there.
    let now = state.now().unix_timestamp();
    let seed: Vec<(RepoFile, u64)> =
        files.iter().filter_map(|f| Some((RepoFile::from_path(&f.path)?, f.size))).collect();
    let listed: Vec<_> = seed.iter().map(|(file, size)| (file.kind, file.name.as_str(), *size)).collect();
    state.db.list_repository_files(&machine.id, &listed, now).await?;
    let row = AdoptionRow { adopted: now, files: count, bytes };
    if !state.db.insert_adoption(&machine.id, &job.id, &row).await? {
        let done = state.db.adoption(&machine.id, &job.id).await?.unwrap_or(row);
        return Ok(Adoption { import_job: name, files: done.files, bytes: done.bytes, already_adopted: true });
    }
    tracing::info!(job = %job.id, machine = %machine.id, folder = %root, files = count, copied, bytes, "seed adopted");
    Ok(Adoption { import_job: name, files: count, bytes, already_adopted: false })
}
