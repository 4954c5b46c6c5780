//! The ledger of repository files (migrations/0005): every file the service stored
//! in a machine's repository and that no one removed through the API since. The
//! storage is the truth of what exists; this is what should exist, so
//! `offsite server check` can name a pack that vanished behind the service's back
//! before a restore meets it. Locks are not listed (they come and go).
//!
//! Order makes a crash harmless: a file is listed after its upload is committed
//! and unlisted before it is deleted, so a crash between leaves a file stored but
//! unlisted (the check is silent about it), never listed but absent.

use sqlx::Row;

use offsite_engine::backend::FileKind;

use super::{rows_per_insert, values_of, Db, DbResult};

/// A listed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFile {
    pub kind: FileKind,
    pub name: String,
    pub size: u64,
    pub stored: i64,
}

/// Whether files of `kind` are listed.
pub fn is_listed_kind(kind: FileKind) -> bool {
    !matches!(kind, FileKind::Lock)
}

/// The folder's name, `config` for the config.
fn kind_text(kind: FileKind) -> &'static str {
    match kind {
        FileKind::Config => "config",
        other => other.folder(),
    }
}

fn kind_of(text: &str) -> Option<FileKind> {
    FileKind::ALL.into_iter().find(|k| kind_text(*k) == text)
}

impl Db {
    /// Lists a stored file (again: the same name means the same bytes).
    pub async fn list_repository_file(
        &self,
        machine_id: &str,
        kind: FileKind,
        name: &str,
        size: u64,
        stored: i64,
    ) -> DbResult<()> {
        self.list_repository_files(machine_id, &[(kind, name, size)], stored).await
    }

    /// Lists stored files, many rows a statement (an adopted seed's thousands).
    /// No transaction: listing is idempotent, and files listed before a failure
    /// are stored, so a partial listing is true as far as it goes.
    pub async fn list_repository_files(
        &self,
        machine_id: &str,
        files: &[(FileKind, &str, u64)],
        stored: i64,
    ) -> DbResult<()> {
        let listed: Vec<&(FileKind, &str, u64)> = files.iter().filter(|(kind, ..)| is_listed_kind(*kind)).collect();
        for batch in listed.chunks(rows_per_insert(5)) {
            let sql = format!(
                "INSERT INTO repository_files (machine_id, kind, name, size, stored) VALUES {} \
                 ON CONFLICT (machine_id, kind, name) DO UPDATE SET size = excluded.size",
                values_of(batch.len(), 5)
            );
            let mut query = sqlx::query(&sql);
            for (kind, name, size) in batch {
                query = query.bind(machine_id).bind(kind_text(*kind)).bind(*name).bind(*size as i64).bind(stored);
            }
            query.execute(self.pool()).await?;
        }
        Ok(())
    }

    /// Unlists a file about to be removed.
    pub async fn unlist_repository_file(&self, machine_id: &str, kind: FileKind, name: &str) -> DbResult<()> {
        sqlx::query("DELETE FROM repository_files WHERE machine_id = $1 AND kind = $2 AND name = $3")
            .bind(machine_id)
            .bind(kind_text(kind))
            .bind(name)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The files listed for a machine's repository.
    pub async fn repository_files(&self, machine_id: &str) -> DbResult<Vec<ListedFile>> {
        let rows = sqlx::query("SELECT kind, name, size, stored FROM repository_files WHERE machine_id = $1")
            .bind(machine_id)
            .fetch_all(self.pool())
            .await?;
        let mut files = Vec::with_capacity(rows.len());
        for row in rows {
            let kind: String = row.try_get("kind")?;
            let Some(kind) = kind_of(&kind) else { continue };
            files.push(ListedFile {
                kind,
                name: row.try_get("name")?,
                size: row.try_get::<i64, _>("size")? as u64,
                stored: row.try_get("stored")?,
            });
        }
        files.sort_by(|a, b| (kind_text(a.kind), &a.name).cmp(&(kind_text(b.kind), &b.name)));
        Ok(files)
    }
}
