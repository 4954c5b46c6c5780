//! The tenants' tables: subscriptions, their vaults, the machines registered to
//! them, and each machine's protected items and recovery points.

use sqlx::any::AnyRow;
use sqlx::Row;
use time::OffsetDateTime;

use offsite_api::types::{Machine, ProtectedItem, RecoveryPoint, SoftDeletedPoint, Subscription, Vault};

use super::{conflict, enum_from, enum_text, seconds, time_of, CredentialKind, Db, DbResult};

fn subscription_row(row: &AnyRow) -> Result<Subscription, sqlx::Error> {
    Ok(Subscription { id: row.try_get("id")?, name: row.try_get("name")?, created: time_of(row.try_get("created")?) })
}

fn vault_row(row: &AnyRow) -> Result<Vault, sqlx::Error> {
    Ok(Vault {
        id: row.try_get("id")?,
        subscription_id: row.try_get("subscription_id")?,
        name: row.try_get("name")?,
        created: time_of(row.try_get("created")?),
    })
}

fn recovery_point_row(row: &AnyRow) -> DbResult<RecoveryPoint> {
    let source: String = row.try_get("source")?;
    Ok(RecoveryPoint {
        snapshot_id: row.try_get("snapshot_id")?,
        time: time_of(row.try_get("time")?),
        size: row.try_get::<i64, _>("size")? as u64,
        file_count: row.try_get::<i64, _>("file_count")? as u64,
        source: enum_from(&source)?,
    })
}

fn machine_row(row: &AnyRow) -> Result<Machine, sqlx::Error> {
    Ok(Machine {
        id: row.try_get("id")?,
        vault_id: row.try_get("vault_id")?,
        name: row.try_get("name")?,
        hostname: row.try_get("hostname")?,
        registered: time_of(row.try_get("registered")?),
        removed: row.try_get::<Option<i64>, _>("removed")?.map(time_of),
        last_backup: row.try_get::<Option<i64>, _>("last_backup")?.map(time_of),
        next_backup: row.try_get::<Option<i64>, _>("next_backup")?.map(time_of),
    })
}

impl Db {
    pub async fn insert_subscription(&self, s: &Subscription) -> DbResult<()> {
        sqlx::query("INSERT INTO subscriptions (id, name, created) VALUES ($1, $2, $3)")
            .bind(&s.id)
            .bind(&s.name)
            .bind(seconds(s.created))
            .execute(&self.pool)
            .await
            .map_err(conflict(format!("a subscription named '{}'", s.name)))?;
        Ok(())
    }

    pub async fn subscription(&self, id: &str) -> DbResult<Option<Subscription>> {
        let row = sqlx::query("SELECT * FROM subscriptions WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(subscription_row).transpose()?)
    }

    pub async fn subscriptions(&self) -> DbResult<Vec<Subscription>> {
        let rows = sqlx::query("SELECT * FROM subscriptions ORDER BY created, id").fetch_all(&self.pool).await?;
        Ok(rows.iter().map(subscription_row).collect::<Result<_, _>>()?)
    }

    /// The subscription's storage quota in bytes: `None` when there is no such
    /// subscription, `Some(None)` when it has no quota.
    pub async fn storage_quota(&self, subscription_id: &str) -> DbResult<Option<Option<u64>>> {
        let row = sqlx::query("SELECT quota_bytes FROM subscriptions WHERE id = $1")
            .bind(subscription_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(row.try_get::<Option<i64>, _>("quota_bytes")?.map(|q| q.max(0) as u64)))
    }

    /// Sets (or with `None` lifts) the subscription's storage quota; false when
    /// there is no such subscription.
    pub async fn set_storage_quota(&self, subscription_id: &str, quota: Option<u64>) -> DbResult<bool> {
        let quota = quota.map(|q| i64::try_from(q).unwrap_or(i64::MAX));
        let done = sqlx::query("UPDATE subscriptions SET quota_bytes = $1 WHERE id = $2")
            .bind(quota)
            .bind(subscription_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The bytes the subscription's machines' repositories hold, as the ledger
    /// lists them, and of those the soft-deleted ones (kept until purged).
    pub async fn storage_used(&self, subscription_id: &str) -> DbResult<(u64, u64)> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(f.size), 0) AS BIGINT) AS used, \
             CAST(COALESCE(SUM(CASE WHEN f.deleted IS NOT NULL THEN f.size ELSE 0 END), 0) AS BIGINT) AS soft_deleted \
             FROM repository_files f JOIN machines m ON m.id = f.machine_id JOIN vaults v ON v.id = m.vault_id \
             WHERE v.subscription_id = $1",
        )
        .bind(subscription_id)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get::<i64, _>("used")? as u64, row.try_get::<i64, _>("soft_deleted")? as u64))
    }

    pub async fn insert_vault(&self, v: &Vault) -> DbResult<()> {
        sqlx::query("INSERT INTO vaults (id, subscription_id, name, created) VALUES ($1, $2, $3, $4)")
            .bind(&v.id)
            .bind(&v.subscription_id)
            .bind(&v.name)
            .bind(seconds(v.created))
            .execute(&self.pool)
            .await
            .map_err(conflict(format!("a vault named '{}' in this subscription", v.name)))?;
        Ok(())
    }

    pub async fn vault(&self, id: &str) -> DbResult<Option<Vault>> {
        let row = sqlx::query("SELECT * FROM vaults WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(vault_row).transpose()?)
    }

    pub async fn vaults_of(&self, subscription_id: &str) -> DbResult<Vec<Vault>> {
        let rows = sqlx::query("SELECT * FROM vaults WHERE subscription_id = $1 ORDER BY name")
            .bind(subscription_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(vault_row).collect::<Result<_, _>>()?)
    }

    // ---------------------------------------------------------------- machines

    pub async fn insert_machine(&self, m: &Machine) -> DbResult<()> {
        sqlx::query("INSERT INTO machines (id, vault_id, name, hostname, registered) VALUES ($1, $2, $3, $4, $5)")
            .bind(&m.id)
            .bind(&m.vault_id)
            .bind(&m.name)
            .bind(&m.hostname)
            .bind(seconds(m.registered))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn machine(&self, id: &str) -> DbResult<Option<Machine>> {
        let row = sqlx::query("SELECT * FROM machines WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(machine_row).transpose()?)
    }

    pub async fn machines_of(&self, vault_id: &str) -> DbResult<Vec<Machine>> {
        let rows = sqlx::query("SELECT * FROM machines WHERE vault_id = $1 ORDER BY registered, id")
            .bind(vault_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(machine_row).collect::<Result<_, _>>()?)
    }

    /// Records when the machine's agent runs its next scheduled backup.
    pub async fn set_next_backup(&self, machine_id: &str, next: OffsetDateTime) -> DbResult<()> {
        sqlx::query("UPDATE machines SET next_backup = $1 WHERE id = $2")
            .bind(seconds(next))
            .bind(machine_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A replacement machine's host name (registration with `replaces`).
    pub async fn set_machine_hostname(&self, machine_id: &str, hostname: &str) -> DbResult<()> {
        sqlx::query("UPDATE machines SET hostname = $1 WHERE id = $2")
            .bind(hostname)
            .bind(machine_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn remove_machine(&self, id: &str) -> DbResult<()> {
        sqlx::query("UPDATE machines SET removed = $1 WHERE id = $2 AND removed IS NULL")
            .bind(self.now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.revoke_credentials(CredentialKind::Machine, id).await?;
        Ok(())
    }

    // ---------------------------------------------------------------- protected items

    pub async fn replace_protected_items(&self, machine_id: &str, items: &[ProtectedItem]) -> DbResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM protected_items WHERE machine_id = $1").bind(machine_id).execute(&mut *tx).await?;
        for item in items {
            sqlx::query("INSERT INTO protected_items (machine_id, path, excludes) VALUES ($1, $2, $3)")
                .bind(machine_id)
                .bind(&item.path)
                .bind(serde_json::to_string(&item.excludes).unwrap_or_else(|_| "[]".into()))
                .execute(&mut *tx)
                .await
                .map_err(conflict(format!("protected item '{}'", item.path)))?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn protected_items(&self, machine_id: &str) -> DbResult<Vec<ProtectedItem>> {
        let rows = sqlx::query("SELECT path, excludes FROM protected_items WHERE machine_id = $1 ORDER BY path")
            .bind(machine_id)
            .fetch_all(&self.pool)
            .await?;
        let mut items = Vec::new();
        for row in rows {
            let excludes: String = row.try_get("excludes")?;
            items.push(ProtectedItem {
                path: row.try_get("path")?,
                excludes: serde_json::from_str(&excludes).unwrap_or_default(),
            });
        }
        Ok(items)
    }

    // ---------------------------------------------------------------- recovery points

    pub async fn replace_recovery_points(&self, machine_id: &str, points: &[RecoveryPoint]) -> DbResult<()> {
        let mut tx = self.pool.begin().await?;
        // The points of soft-deleted snapshots stay: they describe what an
        // undelete would bring back, and come back with it.
        sqlx::query(
            "DELETE FROM recovery_points WHERE machine_id = $1 AND snapshot_id NOT IN \
             (SELECT name FROM repository_files WHERE machine_id = $1 AND kind = 'snapshots' AND deleted IS NOT NULL)",
        )
        .bind(machine_id)
        .execute(&mut *tx)
        .await?;
        for p in points {
            sqlx::query(
                "INSERT INTO recovery_points (machine_id, snapshot_id, time, size, file_count, source) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (machine_id, snapshot_id) DO UPDATE SET \
                 time = excluded.time, size = excluded.size, file_count = excluded.file_count, source = excluded.source",
            )
            .bind(machine_id)
            .bind(&p.snapshot_id)
            .bind(seconds(p.time))
            .bind(p.size as i64)
            .bind(p.file_count as i64)
            .bind(enum_text(&p.source))
            .execute(&mut *tx)
            .await
            .map_err(conflict(format!("recovery point {}", p.snapshot_id)))?;
        }
        let latest = points.iter().map(|p| seconds(p.time)).max();
        if let Some(latest) = latest {
            sqlx::query("UPDATE machines SET last_backup = $1 WHERE id = $2")
                .bind(latest)
                .bind(machine_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The machine's recovery points, without the soft-deleted ones.
    pub async fn recovery_points(&self, machine_id: &str) -> DbResult<Vec<RecoveryPoint>> {
        let rows = sqlx::query(
            "SELECT * FROM recovery_points p WHERE machine_id = $1 AND NOT EXISTS \
             (SELECT 1 FROM repository_files f WHERE f.machine_id = p.machine_id AND f.kind = 'snapshots' \
             AND f.name = p.snapshot_id AND f.deleted IS NOT NULL) ORDER BY time, snapshot_id",
        )
        .bind(machine_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(recovery_point_row).collect()
    }

    /// The machine's soft-deleted recovery points, oldest first.
    pub async fn soft_deleted_points(&self, machine_id: &str) -> DbResult<Vec<SoftDeletedPoint>> {
        let rows = sqlx::query(
            "SELECT f.name, f.deleted, f.purge_after, p.time, p.size, p.file_count \
             FROM repository_files f LEFT JOIN recovery_points p \
             ON p.machine_id = f.machine_id AND p.snapshot_id = f.name \
             WHERE f.machine_id = $1 AND f.kind = 'snapshots' AND f.deleted IS NOT NULL \
             ORDER BY p.time, f.name",
        )
        .bind(machine_id)
        .fetch_all(&self.pool)
        .await?;
        let mut points = Vec::with_capacity(rows.len());
        for row in rows {
            points.push(SoftDeletedPoint {
                snapshot_id: row.try_get("name")?,
                time: row.try_get::<Option<i64>, _>("time")?.map(time_of),
                size: row.try_get::<Option<i64>, _>("size")?.map(|n| n as u64),
                file_count: row.try_get::<Option<i64>, _>("file_count")?.map(|n| n as u64),
                deleted: time_of(row.try_get("deleted")?),
                purge_after: time_of(row.try_get("purge_after")?),
            });
        }
        Ok(points)
    }
}
