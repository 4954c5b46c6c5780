//! The ledger of repository files (migrations/0005): every file the service stored
//! in a machine's repository and that no one removed through the API since. The
//! storage is the truth of what exists; this is what should exist, so
//! `offsite server check` can name a pack that vanished behind the service's back
//! before a restore meets it. Locks are not listed (they come and go).
//!
//! Order makes a crash harmless: a file is listed after its upload is committed
//! and unlisted before it is deleted, so a crash between leaves a file stored but
//! unlisted (the check is silent about it), never listed but absent.
//!
//! A machine's removal is a soft delete (migrations/0007): the row gets `deleted`
//! and `purge_after`, the file stays stored and is hidden from the machine. The
//! purge claims a row, deletes the file, then the row; reviving a row (an
//! undelete, or the same file uploaded again) needs it unclaimed, so a purge never
//! deletes a file someone has just brought back.

use sqlx::Row;

use offsite_engine::backend::FileKind;

use super::{rows_per_insert, values_of, Db, DbResult};

/// How long a purge may hold its claim on a file before another replica takes
/// the purge over (the first one died).
const PURGE_CLAIM_SECONDS: i64 = 600;

/// A listed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFile {
    pub kind: FileKind,
    pub name: String,
    pub size: u64,
    pub stored: i64,
    /// When a machine removed it; `None` while it is live.
    pub deleted: Option<i64>,
    pub purge_after: Option<i64>,
}

/// A soft-deleted file whose purge a replica has claimed.
#[derive(Debug, Clone)]
pub struct PurgeClaim {
    pub vault_id: String,
    pub machine_id: String,
    pub kind: FileKind,
    pub name: String,
    pub size: u64,
    pub claimed: i64,
}

/// Whether a file can be stored again: live or absent, brought back from soft
/// delete, or being purged right now (store it after the purge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revival {
    Live,
    Revived,
    BeingPurged,
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

pub(crate) fn kind_of(text: &str) -> Option<FileKind> {
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
                 ON CONFLICT (machine_id, kind, name) DO UPDATE SET size = excluded.size, \
                 deleted = NULL, purge_after = NULL",
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
        let rows = sqlx::query(
            "SELECT kind, name, size, stored, deleted, purge_after FROM repository_files WHERE machine_id = $1",
        )
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
                deleted: row.try_get("deleted")?,
                purge_after: row.try_get("purge_after")?,
            });
        }
        files.sort_by(|a, b| (kind_text(a.kind), &a.name).cmp(&(kind_text(b.kind), &b.name)));
        Ok(files)
    }

    /// The listed file, live or soft-deleted.
    pub async fn repository_file(&self, machine_id: &str, kind: FileKind, name: &str) -> DbResult<Option<ListedFile>> {
        let row = sqlx::query(
            "SELECT size, stored, deleted, purge_after FROM repository_files \
             WHERE machine_id = $1 AND kind = $2 AND name = $3",
        )
        .bind(machine_id)
        .bind(kind_text(kind))
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(ListedFile {
            kind,
            name: name.to_string(),
            size: row.try_get::<i64, _>("size")? as u64,
            stored: row.try_get("stored")?,
            deleted: row.try_get("deleted")?,
            purge_after: row.try_get("purge_after")?,
        }))
    }

    /// The names of a folder's soft-deleted files, which the machine must not see.
    pub async fn soft_deleted_names(
        &self,
        machine_id: &str,
        kind: FileKind,
    ) -> DbResult<std::collections::HashSet<String>> {
        let rows = sqlx::query(
            "SELECT name FROM repository_files WHERE machine_id = $1 AND kind = $2 AND deleted IS NOT NULL",
        )
        .bind(machine_id)
        .bind(kind_text(kind))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|row| row.try_get::<String, _>("name").map_err(Into::into)).collect()
    }

    /// Soft-deletes a file: kept until `purge_after`, hidden until then. A file
    /// the ledger does not list (stored before it existed) is listed as removed,
    /// with `size`. Removing a removed file again changes nothing.
    pub async fn soft_delete_repository_file(
        &self,
        machine_id: &str,
        file: (FileKind, &str, u64),
        deleted: i64,
        purge_after: i64,
    ) -> DbResult<()> {
        let (kind, name, size) = file;
        sqlx::query(
            "INSERT INTO repository_files (machine_id, kind, name, size, stored, deleted, purge_after) \
             VALUES ($1, $2, $3, $4, $5, $5, $6) \
             ON CONFLICT (machine_id, kind, name) DO UPDATE SET deleted = excluded.deleted, \
             purge_after = excluded.purge_after WHERE repository_files.deleted IS NULL",
        )
        .bind(machine_id)
        .bind(kind_text(kind))
        .bind(name)
        .bind(size as i64)
        .bind(deleted)
        .bind(purge_after)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Makes a file about to be stored again live: a soft-deleted one is brought
    /// back, unless a purge holds it.
    pub async fn revive_repository_file(&self, machine_id: &str, kind: FileKind, name: &str) -> DbResult<Revival> {
        let revived = sqlx::query(
            "UPDATE repository_files SET deleted = NULL, purge_after = NULL \
             WHERE machine_id = $1 AND kind = $2 AND name = $3 AND deleted IS NOT NULL AND purge_claimed IS NULL",
        )
        .bind(machine_id)
        .bind(kind_text(kind))
        .bind(name)
        .execute(self.pool())
        .await?
        .rows_affected();
        if revived > 0 {
            return Ok(Revival::Revived);
        }
        let claimed = sqlx::query(
            "SELECT 1 FROM repository_files WHERE machine_id = $1 AND kind = $2 AND name = $3 \
             AND purge_claimed IS NOT NULL",
        )
        .bind(machine_id)
        .bind(kind_text(kind))
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        Ok(if claimed.is_some() { Revival::BeingPurged } else { Revival::Live })
    }

    /// Brings back a machine's soft-deleted files, unless a purge holds them:
    /// everything, or the named recovery points' snapshots with every other file
    /// removed at or after the first of them (a superset of the data they need:
    /// while a snapshot was live, prune kept what it used). Returns the files and
    /// bytes brought back, and the snapshots among them.
    pub async fn undelete_repository_files(
        &self,
        machine_id: &str,
        points: &[String],
    ) -> DbResult<(u64, u64, Vec<String>)> {
        // No transaction: each revival is one conditional update, so a second
        // undelete finishes what a failed one began (and SQLite refuses a
        // transaction that reads, then writes after another connection wrote).
        let removed = sqlx::query(
            "SELECT kind, name, size, deleted FROM repository_files \
             WHERE machine_id = $1 AND deleted IS NOT NULL AND purge_claimed IS NULL",
        )
        .bind(machine_id)
        .fetch_all(self.pool())
        .await?;
        let mut files = Vec::with_capacity(removed.len());
        for row in &removed {
            let kind: String = row.try_get("kind")?;
            let name: String = row.try_get("name")?;
            let size = row.try_get::<i64, _>("size")? as u64;
            let deleted: i64 = row.try_get("deleted")?;
            files.push((kind, name, size, deleted));
        }
        let snapshots = kind_text(FileKind::Snapshot);
        let chosen: Vec<&(String, String, u64, i64)> = if points.is_empty() {
            files.iter().collect()
        } else {
            let since = files.iter().filter(|f| f.0 == snapshots && points.contains(&f.1)).map(|f| f.3).min();
            match since {
                None => Vec::new(),
                Some(since) => files
                    .iter()
                    .filter(|f| if f.0 == snapshots { points.contains(&f.1) } else { f.3 >= since })
                    .collect(),
            }
        };
        let mut revived = Vec::with_capacity(chosen.len());
        for file in chosen {
            let (kind, name, ..) = file;
            let affected = sqlx::query(
                "UPDATE repository_files SET deleted = NULL, purge_after = NULL \
                 WHERE machine_id = $1 AND kind = $2 AND name = $3 AND purge_claimed IS NULL",
            )
            .bind(machine_id)
            .bind(kind)
            .bind(name)
            .execute(self.pool())
            .await?
            .rows_affected();
            // A purge that claimed it meanwhile wins: it is past its date.
            if affected > 0 {
                revived.push(file);
            }
        }
        let bytes = revived.iter().map(|f| f.2).sum();
        let points = revived.iter().filter(|f| f.0 == snapshots).map(|f| f.1.clone()).collect();
        Ok((revived.len() as u64, bytes, points))
    }

    /// Claims up to `limit` soft-deleted files whose purge date has passed (and
    /// files whose purge another replica claimed long ago and did not finish).
    pub async fn claim_purges(&self, now: i64, limit: usize) -> DbResult<Vec<PurgeClaim>> {
        let stale = now - PURGE_CLAIM_SECONDS;
        let candidates = sqlx::query(
            "SELECT f.machine_id, f.kind, f.name, f.size, f.purge_claimed, m.vault_id \
             FROM repository_files f JOIN machines m ON m.id = f.machine_id \
             WHERE f.deleted IS NOT NULL AND f.purge_after <= $1 \
             AND (f.purge_claimed IS NULL OR f.purge_claimed < $2) \
             ORDER BY f.purge_after LIMIT $3",
        )
        .bind(now)
        .bind(stale)
        .bind(limit as i64)
        .fetch_all(self.pool())
        .await?;
        let mut claims = Vec::new();
        for row in candidates {
            let machine_id: String = row.try_get("machine_id")?;
            let kind_name: String = row.try_get("kind")?;
            let name: String = row.try_get("name")?;
            let previous: Option<i64> = row.try_get("purge_claimed")?;
            // The claim is this conditional update: of replicas racing for a row,
            // exactly one sees it change.
            let won = sqlx::query(
                "UPDATE repository_files SET purge_claimed = $1 \
                 WHERE machine_id = $2 AND kind = $3 AND name = $4 AND deleted IS NOT NULL \
                 AND purge_claimed IS NOT DISTINCT FROM $5",
            )
            .bind(now)
            .bind(&machine_id)
            .bind(&kind_name)
            .bind(&name)
            .bind(previous)
            .execute(self.pool())
            .await?
            .rows_affected();
            let Some(kind) = kind_of(&kind_name) else { continue };
            if won == 1 {
                claims.push(PurgeClaim {
                    vault_id: row.try_get("vault_id")?,
                    machine_id,
                    kind,
                    name,
                    size: row.try_get::<i64, _>("size")? as u64,
                    claimed: now,
                });
            }
        }
        Ok(claims)
    }

    /// Forgets a purged file (and its recovery point, for a snapshot), if the
    /// claim is still this purge's.
    pub async fn finish_purge(&self, claim: &PurgeClaim) -> DbResult<()> {
        let mut tx = self.pool().begin().await?;
        let gone = sqlx::query(
            "DELETE FROM repository_files WHERE machine_id = $1 AND kind = $2 AND name = $3 AND purge_claimed = $4",
        )
        .bind(&claim.machine_id)
        .bind(kind_text(claim.kind))
        .bind(&claim.name)
        .bind(claim.claimed)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if gone > 0 && claim.kind == FileKind::Snapshot {
            sqlx::query("DELETE FROM recovery_points WHERE machine_id = $1 AND snapshot_id = $2")
                .bind(&claim.machine_id)
                .bind(&claim.name)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A machine's soft-deleted files: how many, their bytes, and the first and
    /// last purge dates.
    pub async fn soft_deleted_totals(&self, machine_id: &str) -> DbResult<(u64, u64, Option<i64>, Option<i64>)> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS files, CAST(COALESCE(SUM(size), 0) AS BIGINT) AS bytes, MIN(purge_after) AS first, \
             MAX(purge_after) AS last FROM repository_files WHERE machine_id = $1 AND deleted IS NOT NULL",
        )
        .bind(machine_id)
        .fetch_one(self.pool())
        .await?;
        Ok((
            row.try_get::<i64, _>("files")? as u64,
            row.try_get::<i64, _>("bytes")? as u64,
            row.try_get("first")?,
            row.try_get("last")?,
        ))
    }

    /// Machines that removed files since `since`.
    pub async fn machines_removing_since(&self, since: i64) -> DbResult<Vec<String>> {
        let rows = sqlx::query("SELECT DISTINCT machine_id FROM repository_files WHERE deleted >= $1")
            .bind(since)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|row| row.try_get::<String, _>("machine_id").map_err(Into::into)).collect()
    }

    /// Bytes soft-deleted across the service.
    pub async fn soft_deleted_bytes(&self) -> DbResult<u64> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) AS bytes FROM repository_files WHERE deleted IS NOT NULL",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get::<i64, _>("bytes")? as u64)
    }

    /// What a machine removed since `since`, and what it holds: recovery points
    /// removed and live, bytes removed and live (for the mass-deletion alert).
    pub async fn removals_since(&self, machine_id: &str, since: i64) -> DbResult<Removals> {
        let row = sqlx::query(
            "SELECT \
             CAST(COALESCE(SUM(CASE WHEN kind = 'snapshots' AND deleted >= $2 THEN 1 ELSE 0 END), 0) AS BIGINT) AS points_removed, \
             CAST(COALESCE(SUM(CASE WHEN kind = 'snapshots' AND deleted IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT) AS points_live, \
             CAST(COALESCE(SUM(CASE WHEN deleted >= $2 THEN size ELSE 0 END), 0) AS BIGINT) AS bytes_removed, \
             CAST(COALESCE(SUM(CASE WHEN deleted IS NULL THEN size ELSE 0 END), 0) AS BIGINT) AS bytes_live \
             FROM repository_files WHERE machine_id = $1",
        )
        .bind(machine_id)
        .bind(since)
        .fetch_one(self.pool())
        .await?;
        Ok(Removals {
            points_removed: row.try_get::<i64, _>("points_removed")? as u64,
            points_live: row.try_get::<i64, _>("points_live")? as u64,
            bytes_removed: row.try_get::<i64, _>("bytes_removed")? as u64,
            bytes_live: row.try_get::<i64, _>("bytes_live")? as u64,
        })
    }
}

/// What a machine removed within a period, beside what it still holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Removals {
    pub points_removed: u64,
    pub points_live: u64,
    pub bytes_removed: u64,
    pub bytes_live: u64,
}

impl Removals {
    /// Whether the removals exceed `percent` of what there was at the start.
    pub fn exceed(&self, percent: u32) -> bool {
        let share = |removed: u64, live: u64| {
            let before = removed + live;
            before > 0 && removed * 100 > before * u64::from(percent)
        };
        share(self.points_removed, self.points_live) || share(self.bytes_removed, self.bytes_live)
    }
}
