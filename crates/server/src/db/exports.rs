//! The export job tables (migrations/0015): jobs, the files and recovery points
//! each machine's part carries, the drives written, and the timeline.

use sqlx::Row;

use offsite_api::types::{ExportDrive, ExportJobState};

use super::{enum_from, enum_text, rows_per_insert, values_of, Db, DbError, DbResult};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportJobRow {
    pub id: String,
    pub name: String,
    pub subscription_id: String,
    pub vault_id: String,
    pub datacenter_id: String,
    pub state: ExportJobState,
    pub created: i64,
    pub drive_size: u64,
    pub export_public_key: Option<String>,
    pub return_address: Option<String>,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
}

/// One file of a machine's part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportFileRow {
    pub machine_id: String,
    pub path: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportEventRow {
    pub state: ExportJobState,
    pub at: i64,
    pub actor: String,
    pub message: Option<String>,
}

/// A state change to make, if the job is still in `from`.
#[derive(Debug, Clone)]
pub struct ExportTransition {
    pub from: ExportJobState,
    pub event: ExportEventRow,
    /// The return shipment, set with the move to `Shipping`.
    pub shipment: Option<(String, String)>,
}

fn job_row(row: &sqlx::any::AnyRow) -> Result<ExportJobRow, sqlx::Error> {
    Ok(ExportJobRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        subscription_id: row.try_get("subscription_id")?,
        vault_id: row.try_get("vault_id")?,
        datacenter_id: row.try_get("datacenter_id")?,
        state: enum_from(&row.try_get::<String, _>("state")?)?,
        created: row.try_get("created")?,
        drive_size: row.try_get::<i64, _>("drive_size")? as u64,
        export_public_key: row.try_get("export_public_key")?,
        return_address: row.try_get("return_address")?,
        carrier: row.try_get("carrier")?,
        tracking_number: row.try_get("tracking_number")?,
    })
}

async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    job_id: &str,
    event: &ExportEventRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO export_job_events (job_id, seq, state, at, actor, message) VALUES ($1, \
         (SELECT COALESCE(MAX(seq), 0) + 1 FROM export_job_events WHERE job_id = $2), $3, $4, $5, $6)",
    )
    .bind(job_id)
    .bind(job_id)
    .bind(enum_text(&event.state))
    .bind(event.at)
    .bind(&event.actor)
    .bind(&event.message)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Db {
    /// Stores a new job with its files, points and first event; a name in use is
    /// [`DbError::Conflict`].
    pub async fn insert_export_job(
        &self,
        job: &ExportJobRow,
        files: &[ExportFileRow],
        points: &[(String, String)],
        event: &ExportEventRow,
    ) -> DbResult<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO export_jobs (id, name, subscription_id, vault_id, datacenter_id, state, created, drive_size, \
             export_public_key, return_address) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&job.id)
        .bind(&job.name)
        .bind(&job.subscription_id)
        .bind(&job.vault_id)
        .bind(&job.datacenter_id)
        .bind(enum_text(&job.state))
        .bind(job.created)
        .bind(job.drive_size as i64)
        .bind(&job.export_public_key)
        .bind(&job.return_address)
        .execute(&mut *tx)
        .await
        .map_err(super::conflict(format!("export job '{}'", job.name)))?;
        for chunk in files.chunks(rows_per_insert(4)) {
            let sql = format!(
                "INSERT INTO export_job_files (job_id, machine_id, path, size) VALUES {}",
                values_of(chunk.len(), 4)
            );
            let mut query = sqlx::query(&sql);
            for file in chunk {
                query = query.bind(&job.id).bind(&file.machine_id).bind(&file.path).bind(file.size as i64);
            }
            query.execute(&mut *tx).await?;
        }
        for chunk in points.chunks(rows_per_insert(3)) {
            let sql = format!(
                "INSERT INTO export_job_points (job_id, machine_id, snapshot_id) VALUES {}",
                values_of(chunk.len(), 3)
            );
            let mut query = sqlx::query(&sql);
            for (machine, snapshot) in chunk {
                query = query.bind(&job.id).bind(machine).bind(snapshot);
            }
            query.execute(&mut *tx).await?;
        }
        insert_event(&mut tx, &job.id, event).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn export_job(&self, id: &str) -> DbResult<Option<ExportJobRow>> {
        let row = sqlx::query("SELECT * FROM export_jobs WHERE id = $1").bind(id).fetch_optional(self.pool()).await?;
        Ok(row.as_ref().map(job_row).transpose()?)
    }

    pub async fn export_job_named(&self, name: &str) -> DbResult<Option<ExportJobRow>> {
        let row =
            sqlx::query("SELECT * FROM export_jobs WHERE name = $1").bind(name).fetch_optional(self.pool()).await?;
        Ok(row.as_ref().map(job_row).transpose()?)
    }

    /// A subscription's jobs, or (with `None`) every job, newest first.
    pub async fn export_jobs(&self, subscription_id: Option<&str>) -> DbResult<Vec<ExportJobRow>> {
        let rows = match subscription_id {
            Some(id) => {
                sqlx::query("SELECT * FROM export_jobs WHERE subscription_id = $1 ORDER BY created DESC, name")
                    .bind(id)
                    .fetch_all(self.pool())
                    .await?
            }
            None => sqlx::query("SELECT * FROM export_jobs ORDER BY created DESC, name").fetch_all(self.pool()).await?,
        };
        Ok(rows.iter().map(job_row).collect::<Result<_, _>>()?)
    }

    pub async fn export_job_files(&self, job_id: &str) -> DbResult<Vec<ExportFileRow>> {
        let rows = sqlx::query(
            "SELECT machine_id, path, size FROM export_job_files WHERE job_id = $1 ORDER BY machine_id, path",
        )
        .bind(job_id)
        .fetch_all(self.pool())
        .await?;
        let mut files = Vec::with_capacity(rows.len());
        for row in rows {
            files.push(ExportFileRow {
                machine_id: row.try_get("machine_id")?,
                path: row.try_get("path")?,
                size: row.try_get::<i64, _>("size")? as u64,
            });
        }
        Ok(files)
    }

    /// (machine, snapshot) of each recovery point the job restores.
    pub async fn export_job_points(&self, job_id: &str) -> DbResult<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT machine_id, snapshot_id FROM export_job_points WHERE job_id = $1 ORDER BY machine_id, snapshot_id",
        )
        .bind(job_id)
        .fetch_all(self.pool())
        .await?;
        let mut points = Vec::with_capacity(rows.len());
        for row in rows {
            points.push((row.try_get("machine_id")?, row.try_get("snapshot_id")?));
        }
        Ok(points)
    }

    /// The drives written, by their place in the set, with their recovery keys.
    pub async fn export_job_drives(&self, job_id: &str) -> DbResult<Vec<ExportDrive>> {
        let rows = sqlx::query("SELECT * FROM export_job_drives WHERE job_id = $1 ORDER BY drive_index, drive_id")
            .bind(job_id)
            .fetch_all(self.pool())
            .await?;
        let mut drives = Vec::with_capacity(rows.len());
        for row in rows {
            drives.push(ExportDrive {
                drive_id: row.try_get("drive_id")?,
                index: row.try_get::<i64, _>("drive_index")? as u32,
                fingerprint: row.try_get("fingerprint")?,
                bytes: row.try_get::<i64, _>("bytes")? as u64,
                recovery_key: Some(row.try_get("recovery_key")?),
            });
        }
        Ok(drives)
    }

    /// Records a drive written; the same drive again is a no-op (a retried
    /// request), another drive at a place already taken is a conflict.
    pub async fn insert_export_drive(&self, job_id: &str, drive: &ExportDrive, recovery_key: &str) -> DbResult<()> {
        let stored = sqlx::query(
            "INSERT INTO export_job_drives (job_id, drive_id, drive_index, fingerprint, bytes, recovery_key) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (job_id, drive_id) DO NOTHING",
        )
        .bind(job_id)
        .bind(&drive.drive_id)
        .bind(i64::from(drive.index))
        .bind(&drive.fingerprint)
        .bind(drive.bytes as i64)
        .bind(recovery_key)
        .execute(self.pool())
        .await?
        .rows_affected();
        if stored == 0 {
            let same =
                self.export_job_drives(job_id).await?.into_iter().any(|d| {
                    d.drive_id == drive.drive_id && d.fingerprint == drive.fingerprint && d.index == drive.index
                });
            if !same {
                return Err(DbError::Conflict(format!("drive {} of export job {job_id}", drive.drive_id)));
            }
        }
        Ok(())
    }

    pub async fn export_job_events(&self, job_id: &str) -> DbResult<Vec<ExportEventRow>> {
        let rows = sqlx::query("SELECT * FROM export_job_events WHERE job_id = $1 ORDER BY seq")
            .bind(job_id)
            .fetch_all(self.pool())
            .await?;
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            events.push(ExportEventRow {
                state: enum_from(&row.try_get::<String, _>("state")?)?,
                at: row.try_get("at")?,
                actor: row.try_get("actor")?,
                message: row.try_get("message")?,
            });
        }
        Ok(events)
    }

    /// Moves the job to the event's state if it is still in `transition.from`, and
    /// records the event; false when another request moved it first. Written before
    /// anything is read, so two replicas cannot both pass.
    pub async fn transition_export_job(&self, job_id: &str, transition: &ExportTransition) -> DbResult<bool> {
        let mut tx = self.pool().begin().await?;
        let (carrier, tracking) = match &transition.shipment {
            Some((carrier, tracking)) => (Some(carrier.as_str()), Some(tracking.as_str())),
            None => (None, None),
        };
        let moved = sqlx::query(
            "UPDATE export_jobs SET state = $1, carrier = COALESCE($2, carrier), \
             tracking_number = COALESCE($3, tracking_number) WHERE id = $4 AND state = $5",
        )
        .bind(enum_text(&transition.event.state))
        .bind(carrier)
        .bind(tracking)
        .bind(job_id)
        .bind(enum_text(&transition.from))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved != 1 {
            return Ok(false);
        }
        insert_event(&mut tx, job_id, &transition.event).await?;
        tx.commit().await?;
        Ok(true)
    }
}
