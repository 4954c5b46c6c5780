//! The service's metadata store: SQLite (the embedded default) or PostgreSQL, through
//! sqlx's `Any` driver so one set of queries and migrations serves both. Queries use
//! `$n` placeholders, which both databases accept; times are Unix seconds.
//!
//! One file per group of tables, each with its rows and queries as methods of
//! [`Db`]: [`tenants`] (subscriptions, vaults, machines, protected items, recovery
//! points), [`credentials`], [`jobs`], [`storage_accounts`] (and datacenters),
//! [`import_jobs`], [`seeding`] (applications, adoptions), [`portal`] (users,
//! sessions), [`repository_files`] (and their soft deletes), [`protection`] (a
//! vault's protection, requests to weaken it, alerts), [`notifications`] (channels
//! and the outbox). Rows are read by one function each, next to their table's
//! queries.

pub mod credentials;
pub mod custody;
pub mod exports;
pub mod import_jobs;
pub mod jobs;
pub mod notifications;
pub mod portal;
pub mod protection;
pub mod repository_files;
pub mod seeding;
pub mod storage_accounts;
pub mod tenants;

pub use credentials::{CredentialKind, CredentialRow};

use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;
use time::OffsetDateTime;

use crate::clock::Clock;

/// The schema's migrations, applied at start under sqlx's lock (a PostgreSQL
/// advisory lock: of replicas starting together one migrates, the others wait).
/// A database migrated by a newer release is accepted (`ignore_missing`): during
/// a rolling upgrade a replica of the previous release that restarts must come
/// up on the schema the first upgraded replica migrated. That holds because
/// migrations only add within a release (docs/OPERATIONS.md, "Upgrades").
static MIGRATOR: sqlx::migrate::Migrator =
    sqlx::migrate::Migrator { ignore_missing: true, ..sqlx::migrate!("./migrations") };

/// The PostgreSQL connections a replica holds at most: what a 2-core replica
/// under 16 agents at once used (BENCHMARKS.md, replicas). PostgreSQL's own
/// limit (`max_connections`, 100 by default) must exceed this times the replicas.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot open the database at {url}: {reason}")]
    Unavailable { url: String, reason: String },
    #[error("cannot bring the database schema up to date: {0}")]
    Migration(String),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
}

pub type DbResult<T> = Result<T, DbError>;

pub(crate) fn time_of(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub(crate) fn seconds(time: OffsetDateTime) -> i64 {
    time.unix_timestamp()
}

/// Whether an insert or update failed because a unique column already holds the value.
pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error().is_some_and(|db| db.is_unique_violation())
}

pub(crate) fn conflict(what: String) -> impl FnOnce(sqlx::Error) -> DbError {
    move |err| match is_unique_violation(&err) {
        true => DbError::Conflict(what),
        false => DbError::Query(err),
    }
}

/// Rows of `columns` columns one multi-row INSERT takes, so that its parameters
/// stay under SQLite's limit of 999.
pub(crate) fn rows_per_insert(columns: usize) -> usize {
    999 / columns.max(1)
}

/// `($1, $2, $3), ($4, $5, $6), …`: the VALUES of a multi-row INSERT of `rows` rows
/// of `columns` columns, bound row by row.
pub(crate) fn values_of(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|row| {
            let params: Vec<String> = (1..=columns).map(|c| format!("${}", row * columns + c)).collect();
            format!("({})", params.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// An enum as its wire spelling (`"completed_more_info"`), as stored in a text column.
pub(crate) fn enum_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// An enum from its stored wire spelling.
pub(crate) fn enum_from<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, sqlx::Error> {
    serde_json::from_value(serde_json::Value::String(text.to_string()))
        .map_err(|e| sqlx::Error::Decode(format!("unexpected value '{text}': {e}").into()))
}

#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    postgres: bool,
    /// What stamps the rows: the service's one clock.
    clock: Clock,
}

impl Db {
    /// Opens (creating if needed, for SQLite) and migrates the database at `url`;
    /// its rows are stamped by `clock`.
    pub async fn connect(url: &str, clock: Clock) -> DbResult<Db> {
        Db::connect_with(url, clock, None).await
    }

    /// [`Db::connect`] holding at most `max_connections` PostgreSQL connections
    /// ([`DEFAULT_MAX_CONNECTIONS`] if `None`; SQLite always uses 4: one writer
    /// at a time anyway).
    pub async fn connect_with(url: &str, clock: Clock, max_connections: Option<u32>) -> DbResult<Db> {
        sqlx::any::install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        let unavailable = |reason: String| DbError::Unavailable { url: redact(url), reason };
        let pool_size = if sqlite { 4 } else { max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS).max(1) };
        let mut options = AnyPoolOptions::new().max_connections(pool_size);
        if sqlite {
            // WAL lets readers run beside the one writer; the busy timeout makes a
            // second writer wait instead of failing.
            options = options.after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::query("PRAGMA journal_mode = WAL").execute(&mut *conn).await?;
                    sqlx::query("PRAGMA busy_timeout = 10000").execute(&mut *conn).await?;
                    sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await?;
                    Ok(())
                })
            });
        }
        let pool = options.connect(url).await.map_err(|e| unavailable(e.to_string()))?;
        MIGRATOR.run(&pool).await.map_err(|e| DbError::Migration(e.to_string()))?;
        Ok(Db { pool, postgres: !sqlite, clock })
    }

    /// The service's clock, which stamps the rows.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    fn now(&self) -> i64 {
        self.clock.unix()
    }

    /// The connection pool.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A transaction whose reads all see one committed state of the database:
    /// REPEATABLE READ on PostgreSQL (its default, READ COMMITTED, takes a new
    /// snapshot per statement); on SQLite every transaction reads one snapshot.
    pub(crate) async fn snapshot(&self) -> DbResult<sqlx::Transaction<'static, sqlx::Any>> {
        let mut tx = self.pool.begin().await?;
        if self.postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY").execute(&mut *tx).await?;
        }
        Ok(tx)
    }

    pub async fn ping(&self) -> DbResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// A database URL without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_row_values_number_their_parameters_row_by_row() {
        assert_eq!(values_of(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(values_of(1, 1), "($1)");
        assert_eq!(rows_per_insert(3) * 3, 999);
    }
}
