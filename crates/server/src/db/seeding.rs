//! The offline-seeding tables (migrations/0003): applications and their
//! certificates, and the adoptions of seeds into vault repositories.

use base64::Engine;
use sqlx::Row;

use super::{is_unique_violation, Db, DbError, DbResult};

#[derive(Debug, Clone)]
pub struct ApplicationRow {
    pub id: String,
    pub subscription_id: String,
    pub created: i64,
}

#[derive(Debug, Clone)]
pub struct CertificateRow {
    pub thumbprint: String,
    pub der: Vec<u8>,
    pub added: i64,
    pub added_by: String,
    /// When it stops signing: the expiry of the management credential that
    /// registered it; `None` for one registered by a credential without expiry.
    pub expires: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdoptionRow {
    pub adopted: i64,
    pub files: u64,
    pub bytes: u64,
}

fn application_row(row: &sqlx::any::AnyRow) -> Result<ApplicationRow, sqlx::Error> {
    Ok(ApplicationRow {
        id: row.try_get("id")?,
        subscription_id: row.try_get("subscription_id")?,
        created: row.try_get("created")?,
    })
}

async fn insert_certificate(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    application_id: &str,
    cert: &CertificateRow,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO application_certificates (thumbprint, application_id, cert_der, added, added_by, expires) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&cert.thumbprint)
    .bind(application_id)
    .bind(base64::engine::general_purpose::STANDARD.encode(&cert.der))
    .bind(cert.added)
    .bind(&cert.added_by)
    .bind(cert.expires)
    .execute(&mut **tx)
    .await
    .map_err(|err| {
        if is_unique_violation(&err) {
            DbError::Conflict(format!("certificate {}", cert.thumbprint))
        } else {
            DbError::Query(err)
        }
    })?;
    Ok(())
}

/// How creating an application can be refused.
#[derive(Debug)]
pub enum NewApplication {
    Created,
    /// The subscription has one already.
    Exists,
}

impl Db {
    /// Stores a new application with its first certificate.
    pub async fn insert_application(&self, app: &ApplicationRow, cert: &CertificateRow) -> DbResult<NewApplication> {
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query("INSERT INTO applications (id, subscription_id, created) VALUES ($1, $2, $3)")
            .bind(&app.id)
            .bind(&app.subscription_id)
            .bind(app.created)
            .execute(&mut *tx)
            .await;
        match done {
            Err(err) if is_unique_violation(&err) => return Ok(NewApplication::Exists),
            other => {
                other?;
            }
        }
        // A new application has no certificates, so this one cannot be taken.
        insert_certificate(&mut tx, &app.id, cert).await?;
        tx.commit().await?;
        Ok(NewApplication::Created)
    }

    /// Adds a certificate; one the application has already is [`DbError::Conflict`]
    /// (another application's certificates do not matter).
    pub async fn insert_application_certificate(&self, application_id: &str, cert: &CertificateRow) -> DbResult<()> {
        let mut tx = self.pool().begin().await?;
        insert_certificate(&mut tx, application_id, cert).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes one of the application's certificates; false when it has none of
    /// that thumbprint. Requests signed with its key are refused from then on.
    pub async fn remove_application_certificate(&self, application_id: &str, thumbprint: &str) -> DbResult<bool> {
        let done = sqlx::query("DELETE FROM application_certificates WHERE thumbprint = $1 AND application_id = $2")
            .bind(thumbprint)
            .bind(application_id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a signed request's nonce until `expires`; `false` if it was seen
    /// already (a replay).
    pub async fn remember_nonce(&self, application_id: &str, nonce: &str, expires: i64) -> DbResult<bool> {
        let stored = sqlx::query(
            "INSERT INTO application_nonces (application_id, nonce, expires) VALUES ($1, $2, $3) \
             ON CONFLICT (application_id, nonce) DO NOTHING",
        )
        .bind(application_id)
        .bind(nonce)
        .bind(expires)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(stored == 1)
    }

    /// Forgets nonces whose signatures can no longer be accepted anyway, and
    /// certificate challenges no one can answer any more.
    pub async fn forget_expired_nonces(&self, now: i64) -> DbResult<u64> {
        let nonces =
            sqlx::query("DELETE FROM application_nonces WHERE expires < $1").bind(now).execute(self.pool()).await?;
        let challenges =
            sqlx::query("DELETE FROM certificate_challenges WHERE expires < $1").bind(now).execute(self.pool()).await?;
        Ok(nonces.rows_affected() + challenges.rows_affected())
    }

    /// Stores a challenge for a proof of possession, answerable until `expires`.
    pub async fn insert_certificate_challenge(
        &self,
        challenge: &str,
        subscription_id: &str,
        expires: i64,
    ) -> DbResult<()> {
        sqlx::query("INSERT INTO certificate_challenges (challenge, subscription_id, expires) VALUES ($1, $2, $3)")
            .bind(challenge)
            .bind(subscription_id)
            .bind(expires)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Spends a challenge of the subscription: true once, for one that was given
    /// out and has not expired; false for any other (unknown, used, expired, or
    /// another subscription's). One statement, so two uploads cannot both spend it.
    pub async fn take_certificate_challenge(&self, challenge: &str, subscription_id: &str, now: i64) -> DbResult<bool> {
        let taken = sqlx::query(
            "DELETE FROM certificate_challenges WHERE challenge = $1 AND subscription_id = $2 AND expires > $3",
        )
        .bind(challenge)
        .bind(subscription_id)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(taken.rows_affected() == 1)
    }

    pub async fn application(&self, id: &str) -> DbResult<Option<ApplicationRow>> {
        let row = sqlx::query("SELECT * FROM applications WHERE id = $1").bind(id).fetch_optional(self.pool()).await?;
        Ok(row.as_ref().map(application_row).transpose()?)
    }

    pub async fn application_of(&self, subscription_id: &str) -> DbResult<Option<ApplicationRow>> {
        let row = sqlx::query("SELECT * FROM applications WHERE subscription_id = $1")
            .bind(subscription_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.as_ref().map(application_row).transpose()?)
    }

    /// The application's certificates, oldest first.
    pub async fn application_certificates(&self, application_id: &str) -> DbResult<Vec<CertificateRow>> {
        let rows =
            sqlx::query("SELECT * FROM application_certificates WHERE application_id = $1 ORDER BY added, thumbprint")
                .bind(application_id)
                .fetch_all(self.pool())
                .await?;
        let mut certificates = Vec::new();
        for row in rows {
            let der: String = row.try_get("cert_der")?;
            certificates.push(CertificateRow {
                thumbprint: row.try_get("thumbprint")?,
                der: base64::engine::general_purpose::STANDARD
                    .decode(der)
                    .map_err(|e| sqlx::Error::Decode(format!("a stored certificate is not base64: {e}").into()))?,
                added: row.try_get("added")?,
                added_by: row.try_get("added_by")?,
                expires: row.try_get("expires")?,
            });
        }
        Ok(certificates)
    }

    /// The DER of one of the application's certificates, and when it stops signing.
    pub async fn application_certificate(
        &self,
        application_id: &str,
        thumbprint: &str,
    ) -> DbResult<Option<(Vec<u8>, Option<i64>)>> {
        let row = sqlx::query(
            "SELECT cert_der, expires FROM application_certificates WHERE thumbprint = $1 AND application_id = $2",
        )
        .bind(thumbprint)
        .bind(application_id)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let der: String = row.try_get("cert_der")?;
        let Ok(der) = base64::engine::general_purpose::STANDARD.decode(der) else { return Ok(None) };
        Ok(Some((der, row.try_get("expires")?)))
    }

    // ---------------------------------------------------------------- adoptions

    pub async fn adoption(&self, machine_id: &str, import_job_id: &str) -> DbResult<Option<AdoptionRow>> {
        let row = sqlx::query("SELECT * FROM adoptions WHERE machine_id = $1 AND import_job_id = $2")
            .bind(machine_id)
            .bind(import_job_id)
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(AdoptionRow {
            adopted: row.try_get("adopted")?,
            files: row.try_get::<i64, _>("files")? as u64,
            bytes: row.try_get::<i64, _>("bytes")? as u64,
        }))
    }

    /// The seeds adopted into a machine's repository, oldest first.
    pub async fn adoptions_of(&self, machine_id: &str) -> DbResult<Vec<AdoptionRow>> {
        let rows = sqlx::query("SELECT * FROM adoptions WHERE machine_id = $1 ORDER BY adopted")
            .bind(machine_id)
            .fetch_all(self.pool())
            .await?;
        let mut adoptions = Vec::new();
        for row in rows {
            adoptions.push(AdoptionRow {
                adopted: row.try_get("adopted")?,
                files: row.try_get::<i64, _>("files")? as u64,
                bytes: row.try_get::<i64, _>("bytes")? as u64,
            });
        }
        Ok(adoptions)
    }

    /// The import jobs whose seeds were adopted into a machine's repository, with
    /// each adoption, oldest first.
    pub async fn adopted_jobs_of(&self, machine_id: &str) -> DbResult<Vec<(String, AdoptionRow)>> {
        let rows = sqlx::query("SELECT * FROM adoptions WHERE machine_id = $1 ORDER BY adopted")
            .bind(machine_id)
            .fetch_all(self.pool())
            .await?;
        let mut adoptions = Vec::new();
        for row in rows {
            adoptions.push((
                row.try_get("import_job_id")?,
                AdoptionRow {
                    adopted: row.try_get("adopted")?,
                    files: row.try_get::<i64, _>("files")? as u64,
                    bytes: row.try_get::<i64, _>("bytes")? as u64,
                },
            ));
        }
        Ok(adoptions)
    }

    /// Records an adoption; false when one was recorded meanwhile.
    pub async fn insert_adoption(
        &self,
        machine_id: &str,
        import_job_id: &str,
        adoption: &AdoptionRow,
    ) -> DbResult<bool> {
        let done = sqlx::query(
            "INSERT INTO adoptions (machine_id, import_job_id, adopted, files, bytes) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(machine_id)
        .bind(import_job_id)
        .bind(adoption.adopted)
        .bind(adoption.files as i64)
        .bind(adoption.bytes as i64)
        .execute(self.pool())
        .await;
        match done {
            Ok(_) => Ok(true),
            Err(err) if is_unique_violation(&err) => Ok(false),
            Err(err) => Err(err.into()),
        }
    }
}
