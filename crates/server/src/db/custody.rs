//! Custody logs (migrations/0014_custody): the signed, hash-chained events of a
//! job's drives, and the public keys they are signed with. The service checks an
//! event with `offsite_seeding::custody` before it stores it here; the primary
//! key (job kind, job id, sequence number) lets only one of two racing appends
//! of the same number in.

use sqlx::any::AnyRow;
use sqlx::Row;

use offsite_api::types::{CustodyEvent, CustodyEventKind, CustodyKey};

use super::{is_unique_violation, time_of, Db, DbResult};

fn event_row(row: &AnyRow) -> Result<CustodyEvent, sqlx::Error> {
    let kind: String = row.try_get("kind")?;
    let seq: i64 = row.try_get("seq")?;
    Ok(CustodyEvent {
        job_kind: row.try_get("job_kind")?,
        job_id: row.try_get("job_id")?,
        seq: seq.max(0) as u64,
        drive_id: row.try_get("drive_id")?,
        kind: CustodyEventKind::parse(&kind)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown custody event kind '{kind}'").into()))?,
        at: time_of(row.try_get("at")?),
        actor: row.try_get("actor")?,
        details: row.try_get("details")?,
        prev: row.try_get("prev")?,
        hash: row.try_get("hash")?,
        signature: row.try_get("signature")?,
    })
}

fn key_row(row: &AnyRow) -> Result<CustodyKey, sqlx::Error> {
    Ok(CustodyKey {
        actor: row.try_get("actor")?,
        algorithm: row.try_get("algorithm")?,
        public_key: row.try_get("public_key")?,
        description: row.try_get("description")?,
        registered: time_of(row.try_get("registered")?),
    })
}

impl Db {
    /// A job's custody events in the order of their sequence numbers.
    pub async fn custody_events(&self, job_kind: &str, job_id: &str) -> DbResult<Vec<CustodyEvent>> {
        let rows = sqlx::query("SELECT * FROM custody_events WHERE job_kind = $1 AND job_id = $2 ORDER BY seq")
            .bind(job_kind)
            .bind(job_id)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(event_row).collect::<Result<_, _>>()?)
    }

    /// Stores an event; false when an event of its sequence number is there
    /// already (another appender won the race).
    pub async fn insert_custody_event(&self, event: &CustodyEvent) -> DbResult<bool> {
        let stored = sqlx::query(
            "INSERT INTO custody_events (job_kind, job_id, seq, drive_id, kind, at, actor, details, prev, hash, \
             signature, recorded) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&event.job_kind)
        .bind(&event.job_id)
        .bind(event.seq as i64)
        .bind(event.drive_id.clone())
        .bind(event.kind.name())
        .bind(event.at.unix_timestamp())
        .bind(&event.actor)
        .bind(&event.details)
        .bind(&event.prev)
        .bind(&event.hash)
        .bind(&event.signature)
        .bind(self.now())
        .execute(self.pool())
        .await;
        match stored {
            Ok(_) => Ok(true),
            Err(err) if is_unique_violation(&err) => Ok(false),
            Err(err) => Err(err.into()),
        }
    }

    /// The key an actor signs custody events with.
    pub async fn custody_key(&self, actor: &str) -> DbResult<Option<CustodyKey>> {
        let row =
            sqlx::query("SELECT * FROM custody_keys WHERE actor = $1").bind(actor).fetch_optional(self.pool()).await?;
        Ok(row.as_ref().map(key_row).transpose()?)
    }

    /// Registers an actor's key; an actor keeps its first key (false when one
    /// was there already).
    pub async fn insert_custody_key(&self, key: &CustodyKey) -> DbResult<bool> {
        let stored = sqlx::query(
            "INSERT INTO custody_keys (actor, algorithm, public_key, description, registered) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (actor) DO NOTHING",
        )
        .bind(&key.actor)
        .bind(&key.algorithm)
        .bind(&key.public_key)
        .bind(&key.description)
        .bind(key.registered.unix_timestamp())
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(stored == 1)
    }
}
