//! The import jobs' tables (migrations/0002): jobs, their drives and the timeline
//! of every state change. The import-job service (`services::import_jobs`) decides transitions with the seeding crate's
//! state machine; this module stores them, each change in one transaction whose
//! updates only apply if the states are still the ones the decision started from.

use sqlx::any::AnyRow;
use sqlx::Row;

use offsite_api::types::{
    Container, Datacenter, ImportDriveState, ImportFile, ImportFileListSummary, ImportJobState, ShippingDetails,
    StorageAccount,
};

use super::{enum_from, enum_text, is_unique_violation, rows_per_insert, values_of, Db, DbError, DbResult};
use crate::container_storage::JobFolder;

/// How long a packaging claim holds without being renewed (its holder renews it
/// every [`PACKAGING_RENEW_SECONDS`]): after that its replica is taken for dead
/// and another request may package the job.
pub const PACKAGING_CLAIM_SECONDS: i64 = 30;
pub const PACKAGING_RENEW_SECONDS: u64 = 5;

/// How a packaging claim was had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackagingClaimed {
    /// No request was packaging the job.
    Free,
    /// The request that was had stopped renewing its claim (its replica died).
    TakenOver,
}

/// A stored import job, with the names of what it points at.
#[derive(Debug, Clone)]
pub struct ImportJobRow {
    pub id: String,
    pub subscription_id: String,
    pub name: String,
    pub storage_account_id: String,
    pub storage_account: String,
    pub container_id: String,
    pub container: String,
    pub datacenter_id: String,
    pub datacenter: String,
    pub datacenter_address: String,
    pub state: ImportJobState,
    pub created: i64,
    pub shipped_at: Option<i64>,
    pub shipping: Option<ShippingDetails>,
    /// The registered file list's summary (migrations/0005_seed_completeness), if any.
    pub file_list: Option<ImportFileListSummary>,
}

impl ImportJobRow {
    /// Where the job's files are in the object store.
    pub fn folder(&self) -> JobFolder {
        JobFolder {
            storage_account_id: self.storage_account_id.clone(),
            container_id: self.container_id.clone(),
            job_name: self.name.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DriveRow {
    pub drive_id: String,
    pub index: u32,
    pub state: ImportDriveState,
    /// The drive header fingerprint diskprep registered, lowercase hex.
    pub fingerprint: Option<String>,
    /// The bytes of the set's stream diskprep put on the drive, when it said.
    pub data_bytes: Option<u64>,
    /// What the ingest station has stored from the drive so far.
    pub bytes_received: u64,
}

/// One line of the timeline; `state` is the snake_case name of a job state
/// (`drive_id` None) or of a drive state.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub drive_id: Option<String>,
    pub state: String,
    pub at: i64,
    pub actor: String,
    pub message: Option<String>,
}

/// New shipping details; `shipped_at` is kept if the job has one already.
/// A job as one committed state of the database shows it.
#[derive(Debug, Clone)]
pub struct JobSnapshot {
    pub row: ImportJobRow,
    pub drives: Vec<DriveRow>,
    pub events: Vec<EventRow>,
}

#[derive(Debug, Clone)]
pub struct ShippingUpdate {
    pub details: ShippingDetails,
    pub shipped_at: i64,
}

/// What one request changes: states (from what they were when the decision was
/// made, to what they become), shipping details, and the events to append.
#[derive(Debug, Clone, Default)]
pub struct ImportJobChange {
    pub job_state: Option<(ImportJobState, ImportJobState)>,
    pub drives: Vec<(String, ImportDriveState, ImportDriveState)>,
    pub shipping: Option<ShippingUpdate>,
    /// Drives added to the job (repair drives), `specified`.
    pub new_drives: Vec<DriveRow>,
    pub events: Vec<EventRow>,
}

impl ImportJobChange {
    pub fn is_empty(&self) -> bool {
        self.job_state.is_none()
            && self.drives.is_empty()
            && self.shipping.is_none()
            && self.new_drives.is_empty()
            && self.events.is_empty()
    }
}

/// (state, count) of import jobs and of their drives.
#[derive(Debug, Clone, Default)]
pub struct StateCounts {
    pub jobs: Vec<(String, i64)>,
    pub drives: Vec<(String, i64)>,
}

/// How storing a change can fail besides the database.
#[derive(Debug)]
pub enum ChangeOutcome {
    Stored,
    /// Someone changed the job meanwhile: nothing was stored.
    Raced,
    /// The tracking number is another job's.
    TrackingNumberTaken,
    /// A new drive's id or index is taken in the job.
    DriveTaken,
}

/// The snake_case name of an API enum, as stored.
const JOB_SELECT: &str = "SELECT j.*, sa.name AS storage_account_name, c.name AS container_name, \
     d.name AS datacenter_name, d.address AS datacenter_address FROM import_jobs j \
     JOIN storage_accounts sa ON sa.id = j.storage_account_id \
     JOIN containers c ON c.id = j.container_id \
     JOIN datacenters d ON d.id = j.datacenter_id";

fn job_row(row: &AnyRow) -> Result<ImportJobRow, sqlx::Error> {
    let state: String = row.try_get("state")?;
    let tracking_number: Option<String> = row.try_get("tracking_number")?;
    let shipping = match tracking_number {
        Some(tracking_number) => Some(ShippingDetails {
            carrier: row.try_get::<Option<String>, _>("carrier")?.unwrap_or_default(),
            tracking_number,
            drive_count: row.try_get::<Option<i64>, _>("drive_count")?.unwrap_or(0) as u32,
            ship_date: row.try_get::<Option<String>, _>("ship_date")?.unwrap_or_default(),
            return_address: row.try_get::<Option<String>, _>("return_address")?.unwrap_or_default(),
            contact: row.try_get::<Option<String>, _>("contact")?.unwrap_or_default(),
        }),
        None => None,
    };
    let file_list = match row.try_get::<Option<String>, _>("file_list_digest")? {
        Some(digest) => Some(ImportFileListSummary {
            files: row.try_get::<Option<i64>, _>("file_list_files")?.unwrap_or(0) as u64,
            bytes: row.try_get::<Option<i64>, _>("file_list_bytes")?.unwrap_or(0) as u64,
            digest,
        }),
        None => None,
    };
    Ok(ImportJobRow {
        id: row.try_get("id")?,
        subscription_id: row.try_get("subscription_id")?,
        name: row.try_get("name")?,
        storage_account_id: row.try_get("storage_account_id")?,
        storage_account: row.try_get("storage_account_name")?,
        container_id: row.try_get("container_id")?,
        container: row.try_get("container_name")?,
        datacenter_id: row.try_get("datacenter_id")?,
        datacenter: row.try_get("datacenter_name")?,
        datacenter_address: row.try_get("datacenter_address")?,
        state: enum_from(&state)?,
        created: row.try_get("created")?,
        shipped_at: row.try_get("shipped_at")?,
        shipping,
        file_list,
    })
}

impl Db {
    // ---------------------------------------------------------------- lookups by name

    pub async fn storage_account_named(&self, name: &str) -> DbResult<Option<StorageAccount>> {
        let row = sqlx::query("SELECT * FROM storage_accounts WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(StorageAccount {
            id: row.try_get("id")?,
            subscription_id: row.try_get("subscription_id")?,
            name: row.try_get("name")?,
            created: time::OffsetDateTime::from_unix_timestamp(row.try_get("created")?)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
        }))
    }

    pub async fn container_named(&self, storage_account_id: &str, name: &str) -> DbResult<Option<Container>> {
        let row = sqlx::query("SELECT * FROM containers WHERE storage_account_id = $1 AND name = $2")
            .bind(storage_account_id)
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Container {
            id: row.try_get("id")?,
            storage_account_id: row.try_get("storage_account_id")?,
            name: row.try_get("name")?,
            created: time::OffsetDateTime::from_unix_timestamp(row.try_get("created")?)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
        }))
    }

    pub async fn datacenter_named(&self, name: &str) -> DbResult<Option<Datacenter>> {
        let row =
            sqlx::query("SELECT * FROM datacenters WHERE name = $1").bind(name).fetch_optional(self.pool()).await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(super::storage_accounts::datacenter_row(&row)?))
    }

    // ---------------------------------------------------------------- import jobs

    pub async fn import_job_named(&self, name: &str) -> DbResult<Option<ImportJobRow>> {
        let row =
            sqlx::query(&format!("{JOB_SELECT} WHERE j.name = $1")).bind(name).fetch_optional(self.pool()).await?;
        Ok(row.as_ref().map(job_row).transpose()?)
    }

    pub async fn import_job_name_taken(&self, name: &str) -> DbResult<bool> {
        let row =
            sqlx::query("SELECT id FROM import_jobs WHERE name = $1").bind(name).fetch_optional(self.pool()).await?;
        Ok(row.is_some())
    }

    /// Whether another job than `job_id` has this tracking number.
    pub async fn tracking_number_taken(&self, tracking_number: &str, job_id: &str) -> DbResult<bool> {
        let row = sqlx::query("SELECT id FROM import_jobs WHERE tracking_number = $1 AND id <> $2")
            .bind(tracking_number)
            .bind(job_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.is_some())
    }

    /// Stores a new job in state Creating with its drives Specified, and their
    /// first events. A taken name is [`DbError::Conflict`].
    pub async fn insert_import_job(
        &self,
        job: &ImportJobRow,
        drives: &[DriveRow],
        events: &[EventRow],
    ) -> DbResult<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO import_jobs (id, subscription_id, name, storage_account_id, container_id, datacenter_id, \
             state, created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&job.id)
        .bind(&job.subscription_id)
        .bind(&job.name)
        .bind(&job.storage_account_id)
        .bind(&job.container_id)
        .bind(&job.datacenter_id)
        .bind(enum_text(&job.state))
        .bind(job.created)
        .execute(&mut *tx)
        .await
        .map_err(|err| {
            if is_unique_violation(&err) {
                DbError::Conflict(format!("import job name '{}'", job.name))
            } else {
                DbError::Query(err)
            }
        })?;
        for drive in drives {
            insert_drive(&mut tx, &job.id, drive).await?;
        }
        for (seq, event) in events.iter().enumerate() {
            insert_event(&mut tx, &job.id, seq as i64 + 1, event).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Claims the packaging of a job for `claim` (a fresh id): when no claim
    /// holds it, or when the one that does was not renewed within
    /// [`PACKAGING_CLAIM_SECONDS`] (taken over). `None` while another holds it.
    pub async fn claim_packaging(&self, job_id: &str, claim: &str) -> DbResult<Option<PackagingClaimed>> {
        let now = self.now();
        let free = sqlx::query(
            "UPDATE import_jobs SET packaging_claim = $1, packaging_claimed = $2 \
             WHERE id = $3 AND packaging_claim IS NULL",
        )
        .bind(claim)
        .bind(now)
        .bind(job_id)
        .execute(self.pool())
        .await?;
        if free.rows_affected() == 1 {
            return Ok(Some(PackagingClaimed::Free));
        }
        let lapsed = sqlx::query(
            "UPDATE import_jobs SET packaging_claim = $1, packaging_claimed = $2 \
             WHERE id = $3 AND packaging_claimed < $4",
        )
        .bind(claim)
        .bind(now)
        .bind(job_id)
        .bind(now - PACKAGING_CLAIM_SECONDS)
        .execute(self.pool())
        .await?;
        Ok((lapsed.rows_affected() == 1).then_some(PackagingClaimed::TakenOver))
    }

    /// Renews a packaging claim; false when it is no longer this one's.
    pub async fn renew_packaging(&self, job_id: &str, claim: &str) -> DbResult<bool> {
        let renewed =
            sqlx::query("UPDATE import_jobs SET packaging_claimed = $1 WHERE id = $2 AND packaging_claim = $3")
                .bind(self.now())
                .bind(job_id)
                .bind(claim)
                .execute(self.pool())
                .await?;
        Ok(renewed.rows_affected() == 1)
    }

    /// Gives a packaging claim up (nothing when another took it over).
    pub async fn release_packaging(&self, job_id: &str, claim: &str) -> DbResult<()> {
        sqlx::query(
            "UPDATE import_jobs SET packaging_claim = NULL, packaging_claimed = NULL \
             WHERE id = $1 AND packaging_claim = $2",
        )
        .bind(job_id)
        .bind(claim)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Stores a job's file list with its summary, in one transaction, unless the
    /// job has one already. Returns false when it had one (nothing is changed).
    pub async fn insert_import_file_list(
        &self,
        job_id: &str,
        summary: &ImportFileListSummary,
        files: &[ImportFile],
    ) -> DbResult<bool> {
        let mut tx = self.pool().begin().await?;
        let claimed = sqlx::query(
            "UPDATE import_jobs SET file_list_files = $1, file_list_bytes = $2, file_list_digest = $3 \
             WHERE id = $4 AND file_list_digest IS NULL",
        )
        .bind(summary.files as i64)
        .bind(summary.bytes as i64)
        .bind(&summary.digest)
        .bind(job_id)
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() != 1 {
            return Ok(false);
        }
        for batch in files.chunks(rows_per_insert(3)) {
            let sql = format!("INSERT INTO import_job_files (job_id, path, size) VALUES {}", values_of(batch.len(), 3));
            let mut query = sqlx::query(&sql);
            for file in batch {
                query = query.bind(job_id).bind(&file.path).bind(file.size as i64);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// A job's file list, in path order (byte order, whatever the database's collation).
    pub async fn import_file_list(&self, job_id: &str) -> DbResult<Vec<ImportFile>> {
        let rows = sqlx::query("SELECT path, size FROM import_job_files WHERE job_id = $1")
            .bind(job_id)
            .fetch_all(self.pool())
            .await?;
        let mut files = rows
            .iter()
            .map(|row| Ok(ImportFile { path: row.try_get("path")?, size: row.try_get::<i64, _>("size")? as u64 }))
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    pub async fn import_job(&self, id: &str) -> DbResult<Option<ImportJobRow>> {
        job_of(self.pool(), id).await
    }

    pub async fn import_jobs_of(&self, subscription_id: &str) -> DbResult<Vec<ImportJobRow>> {
        let rows = sqlx::query(&format!("{JOB_SELECT} WHERE j.subscription_id = $1 ORDER BY j.created, j.name"))
            .bind(subscription_id)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(job_row).collect::<Result<_, _>>()?)
    }

    pub async fn import_job_drives(&self, job_id: &str) -> DbResult<Vec<DriveRow>> {
        drives_of(self.pool(), job_id).await
    }

    /// Counts bytes an ingest station stored from a drive (its progress).
    pub async fn add_bytes_received(&self, job_id: &str, drive_id: &str, bytes: u64) -> DbResult<()> {
        sqlx::query(
            "UPDATE import_job_drives SET bytes_received = bytes_received + $1 WHERE job_id = $2 AND drive_id = $3",
        )
        .bind(bytes as i64)
        .bind(job_id)
        .bind(drive_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A job's row, drives and timeline as one committed state shows them: a
    /// change committed while they are read (ingest moving a drive on) is either
    /// wholly in it or not at all.
    pub async fn import_job_snapshot(&self, id: &str) -> DbResult<Option<JobSnapshot>> {
        let mut tx = self.snapshot().await?;
        let Some(row) = job_of(&mut *tx, id).await? else {
            return Ok(None);
        };
        let drives = drives_of(&mut *tx, id).await?;
        let events = events_of(&mut *tx, id).await?;
        tx.commit().await?;
        Ok(Some(JobSnapshot { row, drives, events }))
    }

    /// How many import jobs are in each stored state, and how many of their drives
    /// (`/metrics`). States are the stored snake_case names; absent ones are 0.
    pub async fn import_state_counts(&self) -> DbResult<StateCounts> {
        let count = |sql: &'static str| async move {
            let rows = sqlx::query(sql).fetch_all(self.pool()).await?;
            rows.iter()
                .map(|row| Ok((row.try_get::<String, _>("state")?, row.try_get::<i64, _>("n")?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()
        };
        Ok(StateCounts {
            jobs: count("SELECT state, COUNT(*) AS n FROM import_jobs GROUP BY state").await?,
            drives: count("SELECT state, COUNT(*) AS n FROM import_job_drives GROUP BY state").await?,
        })
    }

    /// Stores `change` whole or not at all: every state must still be its `from`.
    pub async fn apply_import_job_change(&self, job_id: &str, change: &ImportJobChange) -> DbResult<ChangeOutcome> {
        let mut tx = self.pool().begin().await?;
        if let Some((from, to)) = change.job_state {
            let done = sqlx::query("UPDATE import_jobs SET state = $1 WHERE id = $2 AND state = $3")
                .bind(enum_text(&to))
                .bind(job_id)
                .bind(enum_text(&from))
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() != 1 {
                return Ok(ChangeOutcome::Raced);
            }
        }
        for (drive_id, from, to) in &change.drives {
            let done = sqlx::query(
                "UPDATE import_job_drives SET state = $1 WHERE job_id = $2 AND drive_id = $3 AND state = $4",
            )
            .bind(enum_text(to))
            .bind(job_id)
            .bind(drive_id)
            .bind(enum_text(from))
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                return Ok(ChangeOutcome::Raced);
            }
        }
        if let Some(shipping) = &change.shipping {
            let d = &shipping.details;
            let done = sqlx::query(
                "UPDATE import_jobs SET carrier = $1, tracking_number = $2, ship_date = $3, return_address = $4, \
                 contact = $5, drive_count = $6, shipped_at = COALESCE(shipped_at, $7) WHERE id = $8",
            )
            .bind(&d.carrier)
            .bind(&d.tracking_number)
            .bind(&d.ship_date)
            .bind(&d.return_address)
            .bind(&d.contact)
            .bind(i64::from(d.drive_count))
            .bind(shipping.shipped_at)
            .bind(job_id)
            .execute(&mut *tx)
            .await;
            match done {
                Err(err) if is_unique_violation(&err) => return Ok(ChangeOutcome::TrackingNumberTaken),
                other => {
                    other?;
                }
            }
        }
        for drive in &change.new_drives {
            match insert_drive(&mut tx, job_id, drive).await {
                Err(err) if is_unique_violation(&err) => return Ok(ChangeOutcome::DriveTaken),
                other => other?,
            };
        }
        if !change.events.is_empty() {
            let last: i64 =
                sqlx::query("SELECT COALESCE(MAX(seq), 0) AS last FROM import_job_events WHERE job_id = $1")
                    .bind(job_id)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("last")?;
            for (n, event) in change.events.iter().enumerate() {
                match insert_event(&mut tx, job_id, last + 1 + n as i64, event).await {
                    Err(DbError::Query(err)) if is_unique_violation(&err) => return Ok(ChangeOutcome::Raced),
                    other => other?,
                }
            }
        }
        tx.commit().await?;
        Ok(ChangeOutcome::Stored)
    }
}

async fn insert_drive(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    job_id: &str,
    drive: &DriveRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO import_job_drives (job_id, drive_id, drive_index, state, fingerprint, data_bytes) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(job_id)
    .bind(&drive.drive_id)
    .bind(i64::from(drive.index))
    .bind(enum_text(&drive.state))
    .bind(&drive.fingerprint)
    .bind(drive.data_bytes.map(|b| b as i64))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    job_id: &str,
    seq: i64,
    event: &EventRow,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO import_job_events (job_id, seq, drive_id, state, at, actor, message) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(job_id)
    .bind(seq)
    .bind(&event.drive_id)
    .bind(&event.state)
    .bind(event.at)
    .bind(&event.actor)
    .bind(&event.message)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A job's row by id.
async fn job_of<'e>(db: impl sqlx::Executor<'e, Database = sqlx::Any>, id: &str) -> DbResult<Option<ImportJobRow>> {
    let row = sqlx::query(&format!("{JOB_SELECT} WHERE j.id = $1")).bind(id).fetch_optional(db).await?;
    Ok(row.as_ref().map(job_row).transpose()?)
}

/// A job's drives in drive order.
async fn drives_of<'e>(db: impl sqlx::Executor<'e, Database = sqlx::Any>, job_id: &str) -> DbResult<Vec<DriveRow>> {
    let rows = sqlx::query("SELECT * FROM import_job_drives WHERE job_id = $1 ORDER BY drive_index")
        .bind(job_id)
        .fetch_all(db)
        .await?;
    let mut drives = Vec::new();
    for row in rows {
        let state: String = row.try_get("state")?;
        drives.push(DriveRow {
            drive_id: row.try_get("drive_id")?,
            index: row.try_get::<i64, _>("drive_index")? as u32,
            state: enum_from(&state)?,
            fingerprint: row.try_get("fingerprint")?,
            data_bytes: row.try_get::<Option<i64>, _>("data_bytes")?.map(|b| b.max(0) as u64),
            bytes_received: row.try_get::<i64, _>("bytes_received")?.max(0) as u64,
        });
    }
    Ok(drives)
}

/// A job's timeline, oldest first.
async fn events_of<'e>(db: impl sqlx::Executor<'e, Database = sqlx::Any>, job_id: &str) -> DbResult<Vec<EventRow>> {
    let rows = sqlx::query("SELECT * FROM import_job_events WHERE job_id = $1 ORDER BY seq")
        .bind(job_id)
        .fetch_all(db)
        .await?;
    let mut events = Vec::new();
    for row in rows {
        events.push(EventRow {
            drive_id: row.try_get("drive_id")?,
            state: row.try_get("state")?,
            at: row.try_get("at")?,
            actor: row.try_get("actor")?,
            message: row.try_get("message")?,
        });
    }
    Ok(events)
}
