//! Backup and restore jobs as agents report them.

use sqlx::any::AnyRow;
use sqlx::Row;

use offsite_api::types::{Job, JobReport};

use super::{enum_from, enum_text, seconds, time_of, Db, DbResult};

fn job_row(row: &AnyRow) -> Result<Job, sqlx::Error> {
    let kind: String = row.try_get("kind")?;
    let state: String = row.try_get("state")?;
    let errors: String = row.try_get("errors")?;
    Ok(Job {
        id: row.try_get("id")?,
        machine_id: row.try_get("machine_id")?,
        report: JobReport {
            kind: enum_from(&kind)?,
            state: enum_from(&state)?,
            started: time_of(row.try_get("started")?),
            finished: row.try_get::<Option<i64>, _>("finished")?.map(time_of),
            bytes_processed: row.try_get::<i64, _>("bytes_processed")? as u64,
            bytes_uploaded: row.try_get::<i64, _>("bytes_uploaded")? as u64,
            bytes_stored: row.try_get::<i64, _>("bytes_stored")? as u64,
            file_count: row.try_get::<i64, _>("file_count")? as u64,
            message: row.try_get("message")?,
            errors: serde_json::from_str(&errors).unwrap_or_default(),
            next_backup: None,
        },
    })
}

impl Db {
    pub async fn insert_job(&self, job: &Job) -> DbResult<()> {
        let r = &job.report;
        sqlx::query(
            "INSERT INTO jobs (id, machine_id, kind, state, started, finished, bytes_processed, bytes_uploaded, \
             file_count, message, errors, bytes_stored) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&job.id)
        .bind(&job.machine_id)
        .bind(enum_text(&r.kind))
        .bind(enum_text(&r.state))
        .bind(seconds(r.started))
        .bind(r.finished.map(seconds))
        .bind(r.bytes_processed as i64)
        .bind(r.bytes_uploaded as i64)
        .bind(r.file_count as i64)
        .bind(&r.message)
        .bind(serde_json::to_string(&r.errors).unwrap_or_else(|_| "[]".into()))
        .bind(r.bytes_stored as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn update_job(&self, job: &Job) -> DbResult<()> {
        let r = &job.report;
        sqlx::query(
            "UPDATE jobs SET state = $1, finished = $2, bytes_processed = $3, bytes_uploaded = $4, file_count = $5, \
             message = $6, errors = $7, bytes_stored = $10 WHERE id = $8 AND machine_id = $9",
        )
        .bind(enum_text(&r.state))
        .bind(r.finished.map(seconds))
        .bind(r.bytes_processed as i64)
        .bind(r.bytes_uploaded as i64)
        .bind(r.file_count as i64)
        .bind(&r.message)
        .bind(serde_json::to_string(&r.errors).unwrap_or_else(|_| "[]".into()))
        .bind(&job.id)
        .bind(&job.machine_id)
        .bind(r.bytes_stored as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn job(&self, id: &str) -> DbResult<Option<Job>> {
        let row = sqlx::query("SELECT * FROM jobs WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(job_row).transpose()?)
    }

    /// The newest jobs of a machine, newest first.
    pub async fn jobs_of(&self, machine_id: &str, limit: i64) -> DbResult<Vec<Job>> {
        let rows = sqlx::query("SELECT * FROM jobs WHERE machine_id = $1 ORDER BY started DESC, id DESC LIMIT $2")
            .bind(machine_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(job_row).collect::<Result<_, _>>()?)
    }
}
