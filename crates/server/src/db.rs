//! The service's metadata store: SQLite (the embedded default) or PostgreSQL, through
//! sqlx's `Any` driver so one set of queries and migrations serves both. Queries use
//! `$n` placeholders, which both databases accept; times are Unix seconds.

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use time::OffsetDateTime;

use crate::clock::Clock;

use offsite_api::types::*;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

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

/// A stored credential: who it speaks for and what limits it.
#[derive(Debug, Clone)]
pub struct CredentialRow {
    pub id: String,
    pub kind: CredentialKind,
    /// The subscription, vault or machine the credential speaks for.
    pub subject: String,
    pub secret_hash: String,
    pub created: i64,
    pub expires: Option<i64>,
    pub used: Option<i64>,
    pub used_by: Option<String>,
    pub revoked: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    Operator,
    Subscription,
    VaultRegistration,
    Machine,
}

impl CredentialKind {
    fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Operator => "operator",
            CredentialKind::Subscription => "subscription",
            CredentialKind::VaultRegistration => "vault_registration",
            CredentialKind::Machine => "machine",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "operator" => CredentialKind::Operator,
            "subscription" => CredentialKind::Subscription,
            "vault_registration" => CredentialKind::VaultRegistration,
            "machine" => CredentialKind::Machine,
            _ => return None,
        })
    }
}

pub(crate) fn time_of(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn seconds(time: OffsetDateTime) -> i64 {
    time.unix_timestamp()
}

pub(crate) fn conflict(what: String) -> impl FnOnce(sqlx::Error) -> DbError {
    move |err| match err.as_database_error() {
        Some(db) if db.is_unique_violation() => DbError::Conflict(what),
        _ => DbError::Query(err),
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

fn enum_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

fn enum_from<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, sqlx::Error> {
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
        sqlx::any::install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        let unavailable = |reason: String| DbError::Unavailable { url: redact(url), reason };
        let mut options = AnyPoolOptions::new().max_connections(if sqlite { 4 } else { 16 });
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

    /// The connection pool, for queries kept beside their feature (`import_jobs_db`).
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

    // ---------------------------------------------------------------- subscriptions

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

    fn subscription_row(row: &AnyRow) -> Result<Subscription, sqlx::Error> {
        Ok(Subscription {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            created: time_of(row.try_get("created")?),
        })
    }

    pub async fn subscription(&self, id: &str) -> DbResult<Option<Subscription>> {
        let row = sqlx::query("SELECT * FROM subscriptions WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(Self::subscription_row).transpose()?)
    }

    pub async fn subscriptions(&self) -> DbResult<Vec<Subscription>> {
        let rows = sqlx::query("SELECT * FROM subscriptions ORDER BY created, id").fetch_all(&self.pool).await?;
        Ok(rows.iter().map(Self::subscription_row).collect::<Result<_, _>>()?)
    }

    // ---------------------------------------------------------------- credentials

    pub async fn insert_credential(&self, c: &CredentialRow) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO credentials (id, kind, subject, secret_hash, created, expires, used, used_by, revoked) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&c.id)
        .bind(c.kind.as_str())
        .bind(&c.subject)
        .bind(&c.secret_hash)
        .bind(c.created)
        .bind(c.expires)
        .bind(c.used)
        .bind(&c.used_by)
        .bind(c.revoked)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn credential(&self, id: &str) -> DbResult<Option<CredentialRow>> {
        let Some(row) =
            sqlx::query("SELECT * FROM credentials WHERE id = $1").bind(id).fetch_optional(&self.pool).await?
        else {
            return Ok(None);
        };
        Self::credential_row(&row)
    }

    /// A stored credential; `None` for a kind this version does not know.
    fn credential_row(row: &AnyRow) -> DbResult<Option<CredentialRow>> {
        let kind: String = row.try_get("kind")?;
        let Some(kind) = CredentialKind::parse(&kind) else { return Ok(None) };
        Ok(Some(CredentialRow {
            id: row.try_get("id")?,
            kind,
            subject: row.try_get("subject")?,
            secret_hash: row.try_get("secret_hash")?,
            created: row.try_get("created")?,
            expires: row.try_get("expires")?,
            used: row.try_get("used")?,
            used_by: row.try_get("used_by")?,
            revoked: row.try_get("revoked")?,
        }))
    }

    /// The credentials of `kind` that speak for `subject`, oldest first.
    pub async fn credentials_of(&self, kind: CredentialKind, subject: &str) -> DbResult<Vec<CredentialRow>> {
        let rows = sqlx::query("SELECT * FROM credentials WHERE kind = $1 AND subject = $2 ORDER BY created, id")
            .bind(kind.as_str())
            .bind(subject)
            .fetch_all(&self.pool)
            .await?;
        let mut credentials = Vec::new();
        for row in &rows {
            credentials.extend(Self::credential_row(row)?);
        }
        Ok(credentials)
    }

    /// Revokes one credential of `kind` for `subject` (at once: the next request
    /// with it is refused); false when there is no such credential. Revoking a
    /// revoked credential keeps its first time.
    pub async fn revoke_credential(&self, id: &str, kind: CredentialKind, subject: &str) -> DbResult<bool> {
        let done = sqlx::query(
            "UPDATE credentials SET revoked = COALESCE(revoked, $1) WHERE id = $2 AND kind = $3 AND subject = $4",
        )
        .bind(self.now())
        .bind(id)
        .bind(kind.as_str())
        .bind(subject)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Issues a new credential of `kind` for `subject`: stores its hash, returns the
    /// token (`<id>.<secret>`), which exists nowhere else.
    pub async fn issue_credential(
        &self,
        kind: CredentialKind,
        subject: &str,
        expires: Option<i64>,
    ) -> DbResult<String> {
        Ok(self.issue_credential_row(kind, subject, expires).await?.0)
    }

    /// Like [`Db::issue_credential`], with the row it stored.
    pub async fn issue_credential_row(
        &self,
        kind: CredentialKind,
        subject: &str,
        expires: Option<i64>,
    ) -> DbResult<(String, CredentialRow)> {
        let prefix = match kind {
            CredentialKind::Operator => "op",
            CredentialKind::Subscription => "cred",
            CredentialKind::VaultRegistration => "reg",
            CredentialKind::Machine => "mcred",
        };
        let issued =
            crate::secrets::issue_bounded(prefix).await.map_err(|e| DbError::Query(sqlx::Error::Protocol(e)))?;
        let row = CredentialRow {
            id: issued.id,
            kind,
            subject: subject.to_string(),
            secret_hash: issued.hash,
            created: self.now(),
            expires,
            used: None,
            used_by: None,
            revoked: None,
        };
        self.insert_credential(&row).await?;
        Ok((issued.token, row))
    }

    /// Marks a single-use credential used; false when someone else used it first.
    pub async fn use_credential(&self, id: &str, used_by: &str) -> DbResult<bool> {
        let done = sqlx::query("UPDATE credentials SET used = $1, used_by = $2 WHERE id = $3 AND used IS NULL")
            .bind(self.now())
            .bind(used_by)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn revoke_credentials(&self, kind: CredentialKind, subject: &str) -> DbResult<u64> {
        let done =
            sqlx::query("UPDATE credentials SET revoked = $1 WHERE kind = $2 AND subject = $3 AND revoked IS NULL")
                .bind(self.now())
                .bind(kind.as_str())
                .bind(subject)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected())
    }

    // ---------------------------------------------------------------- vaults

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

    fn vault_row(row: &AnyRow) -> Result<Vault, sqlx::Error> {
        Ok(Vault {
            id: row.try_get("id")?,
            subscription_id: row.try_get("subscription_id")?,
            name: row.try_get("name")?,
            created: time_of(row.try_get("created")?),
        })
    }

    pub async fn vault(&self, id: &str) -> DbResult<Option<Vault>> {
        let row = sqlx::query("SELECT * FROM vaults WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(Self::vault_row).transpose()?)
    }

    pub async fn vaults_of(&self, subscription_id: &str) -> DbResult<Vec<Vault>> {
        let rows = sqlx::query("SELECT * FROM vaults WHERE subscription_id = $1 ORDER BY name")
            .bind(subscription_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(Self::vault_row).collect::<Result<_, _>>()?)
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

    pub async fn machine(&self, id: &str) -> DbResult<Option<Machine>> {
        let row = sqlx::query("SELECT * FROM machines WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(Self::machine_row).transpose()?)
    }

    pub async fn machines_of(&self, vault_id: &str) -> DbResult<Vec<Machine>> {
        let rows = sqlx::query("SELECT * FROM machines WHERE vault_id = $1 ORDER BY registered, id")
            .bind(vault_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(Self::machine_row).collect::<Result<_, _>>()?)
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
        sqlx::query("DELETE FROM recovery_points WHERE machine_id = $1").bind(machine_id).execute(&mut *tx).await?;
        for p in points {
            sqlx::query(
                "INSERT INTO recovery_points (machine_id, snapshot_id, time, size, file_count, source) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
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

    pub async fn recovery_points(&self, machine_id: &str) -> DbResult<Vec<RecoveryPoint>> {
        let rows = sqlx::query("SELECT * FROM recovery_points WHERE machine_id = $1 ORDER BY time, snapshot_id")
            .bind(machine_id)
            .fetch_all(&self.pool)
            .await?;
        let mut points = Vec::new();
        for row in rows {
            let source: String = row.try_get("source")?;
            points.push(RecoveryPoint {
                snapshot_id: row.try_get("snapshot_id")?,
                time: time_of(row.try_get("time")?),
                size: row.try_get::<i64, _>("size")? as u64,
                file_count: row.try_get::<i64, _>("file_count")? as u64,
                source: enum_from(&source)?,
            });
        }
        Ok(points)
    }

    // ---------------------------------------------------------------- jobs

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

    pub async fn job(&self, id: &str) -> DbResult<Option<Job>> {
        let row = sqlx::query("SELECT * FROM jobs WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(Self::job_row).transpose()?)
    }

    /// The newest jobs of a machine, newest first.
    pub async fn jobs_of(&self, machine_id: &str, limit: i64) -> DbResult<Vec<Job>> {
        let rows = sqlx::query("SELECT * FROM jobs WHERE machine_id = $1 ORDER BY started DESC, id DESC LIMIT $2")
            .bind(machine_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(Self::job_row).collect::<Result<_, _>>()?)
    }

    // ---------------------------------------------------------------- storage accounts

    pub async fn insert_storage_account(&self, a: &StorageAccount) -> DbResult<()> {
        sqlx::query("INSERT INTO storage_accounts (id, subscription_id, name, created) VALUES ($1, $2, $3, $4)")
            .bind(&a.id)
            .bind(&a.subscription_id)
            .bind(&a.name)
            .bind(seconds(a.created))
            .execute(&self.pool)
            .await
            .map_err(conflict(format!("a storage account named '{}' (names are unique across the service)", a.name)))?;
        Ok(())
    }

    fn storage_account_row(row: &AnyRow) -> Result<StorageAccount, sqlx::Error> {
        Ok(StorageAccount {
            id: row.try_get("id")?,
            subscription_id: row.try_get("subscription_id")?,
            name: row.try_get("name")?,
            created: time_of(row.try_get("created")?),
        })
    }

    pub async fn storage_account(&self, id: &str) -> DbResult<Option<StorageAccount>> {
        let row =
            sqlx::query("SELECT * FROM storage_accounts WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(Self::storage_account_row).transpose()?)
    }

    pub async fn storage_accounts_of(&self, subscription_id: &str) -> DbResult<Vec<StorageAccount>> {
        let rows = sqlx::query("SELECT * FROM storage_accounts WHERE subscription_id = $1 ORDER BY name")
            .bind(subscription_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(Self::storage_account_row).collect::<Result<_, _>>()?)
    }

    pub async fn insert_container(&self, c: &Container) -> DbResult<()> {
        sqlx::query("INSERT INTO containers (id, storage_account_id, name, created) VALUES ($1, $2, $3, $4)")
            .bind(&c.id)
            .bind(&c.storage_account_id)
            .bind(&c.name)
            .bind(seconds(c.created))
            .execute(&self.pool)
            .await
            .map_err(conflict(format!("a container named '{}' in this storage account", c.name)))?;
        Ok(())
    }

    pub async fn containers_of(&self, storage_account_id: &str) -> DbResult<Vec<Container>> {
        let rows = sqlx::query("SELECT * FROM containers WHERE storage_account_id = $1 ORDER BY name")
            .bind(storage_account_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Container {
                    id: row.try_get("id")?,
                    storage_account_id: row.try_get("storage_account_id")?,
                    name: row.try_get("name")?,
                    created: time_of(row.try_get("created")?),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DbError::from)
    }

    // ---------------------------------------------------------------- datacenters

    pub async fn insert_datacenter(&self, d: &Datacenter) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO datacenters (id, name, address, created, import_public_key) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&d.id)
        .bind(&d.name)
        .bind(&d.address)
        .bind(self.now())
        .bind(&d.import_public_key)
        .execute(&self.pool)
        .await
        .map_err(conflict(format!("a datacenter named '{}'", d.name)))?;
        Ok(())
    }

    pub async fn datacenters(&self) -> DbResult<Vec<Datacenter>> {
        let rows = sqlx::query("SELECT * FROM datacenters ORDER BY name").fetch_all(&self.pool).await?;
        rows.iter().map(datacenter_row).collect::<Result<_, sqlx::Error>>().map_err(DbError::from)
    }
}

pub(crate) fn datacenter_row(row: &AnyRow) -> Result<Datacenter, sqlx::Error> {
    Ok(Datacenter {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        address: row.try_get("address")?,
        import_public_key: row.try_get::<Option<String>, _>("import_public_key")?.unwrap_or_default(),
    })
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
