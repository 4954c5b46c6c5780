//! Credentials: the hashes of the bearer tokens the service issued, who each
//! speaks for, and when it expires, was used or was revoked.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Db, DbError, DbResult};

/// A stored credential: who it speaks for and what limits it.
#[derive(Debug, Clone)]
pub struct CredentialRow {
    pub id: String,
    pub kind: CredentialKind,
    /// The subscription, vault, machine or datacenter (a station's) the credential speaks for.
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
    /// A datacenter's ingest station; the subject is the datacenter's id.
    Station,
}

impl CredentialKind {
    fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Operator => "operator",
            CredentialKind::Subscription => "subscription",
            CredentialKind::VaultRegistration => "vault_registration",
            CredentialKind::Machine => "machine",
            CredentialKind::Station => "station",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "operator" => CredentialKind::Operator,
            "subscription" => CredentialKind::Subscription,
            "vault_registration" => CredentialKind::VaultRegistration,
            "machine" => CredentialKind::Machine,
            "station" => CredentialKind::Station,
            _ => return None,
        })
    }
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

impl Db {
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
        credential_row(&row)
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
            credentials.extend(credential_row(row)?);
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
            CredentialKind::Station => "stn",
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
}
