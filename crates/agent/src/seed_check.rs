//! The check of an adopted seed before it becomes a recovery point: the service
//! made sure every file diskprep listed reached the vault, but only the agent can
//! read the repository inside, so only it can tell that the seed is a whole
//! repository (every pack its index names is there at its size, every tree of its
//! snapshot is readable, every data blob is indexed). A staging location damaged
//! or changed before diskprep copied it passes the first check and fails this one.
//!
//! A seed that fails is taken back out of the vault's view: its snapshot and the
//! index files naming absent packs are removed, so nothing (no recovery point, no
//! later backup deduplicating against blobs that are not there) stands on it. The
//! packs that did arrive stay, unindexed, and the next backup re-indexes and
//! reuses them.

use offsite_engine::backend::FileKind;
use offsite_engine::check::{self, CheckOptions};
use offsite_engine::id::Id;
use offsite_engine::progress::Progress;
use offsite_engine::repository::Repository;

use crate::error::{AgentError, AgentResult};
use crate::home::AgentHome;

/// What an incomplete seed lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedProblems {
    pub problems: Vec<String>,
}

/// Checks the vault repository holding the seed whose snapshot is `snapshot_id`.
pub fn verify(repo: &Repository, snapshot_id: &str) -> AgentResult<Result<(), SeedProblems>> {
    let mut problems = Vec::new();
    match snapshot_id.parse::<Id>() {
        Ok(id) => {
            if let Err(err) = repo.load_snapshot(&id) {
                problems.push(format!("the seed's snapshot {}: {err}", id.short()));
            }
        }
        Err(_) => problems.push(format!("'{snapshot_id}' is not a snapshot id")),
    }
    let report = check::check(repo, CheckOptions::default(), &Progress::default())?;
    problems.extend(report.errors);
    Ok(if problems.is_empty() { Ok(()) } else { Err(SeedProblems { problems }) })
}

/// Removes the seed's snapshot and every index file that names a pack the
/// repository lacks (or holds at another size). Returns the index files removed.
pub fn withdraw(repo: &Repository, snapshot_id: &str) -> AgentResult<usize> {
    let stored = repo.stored_packs()?;
    let mut removed = 0;
    for id in repo.list_ids(FileKind::Index)? {
        let whole = match repo.load_index_file(&id) {
            Ok(file) => file.packs.iter().all(|p| stored.get(&p.id) == Some(&p.size)),
            Err(_) => false,
        };
        if !whole {
            repo.backend().remove(FileKind::Index, &id.to_hex())?;
            removed += 1;
        }
    }
    repo.backend().remove(FileKind::Snapshot, snapshot_id)?;
    tracing::warn!(snapshot = snapshot_id, index_files = removed, "an incomplete seed was withdrawn from the vault");
    Ok(removed)
}

/// The refusal for an incomplete seed, naming what it lacks and what to do.
pub fn refusal(home: &AgentHome, import_job: &str, problems: &SeedProblems) -> AgentError {
    const SHOWN: usize = 10;
    let mut named: Vec<&str> = problems.problems.iter().take(SHOWN).map(String::as_str).collect();
    let more = problems.problems.len().saturating_sub(SHOWN);
    let more_text = format!("and {more} more");
    if more > 0 {
        named.push(&more_text);
    }
    AgentError::Invalid(format!(
        "the seed of import job {import_job} is not a complete repository, so it was not adopted: {}. The staging \
         location lacked these when diskprep copied it (it was changed or damaged before). Nothing was recorded: the \
         seed's snapshot and its incomplete index were taken out of the vault again, and the packs that arrived stay \
         for the next backup to reuse. Send the first backup over the network with `{}` and then `{}`, or stage \
         a new seed for a new import job",
        named.join("; "),
        home.command("agent offline cancel"),
        home.command("agent backup --now")
    ))
}
