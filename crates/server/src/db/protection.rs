//! A vault's protection (migrations/0007): its soft-delete window, immutability
//! and mass-deletion threshold on the vault's row; the requests to weaken them;
//! the alerts raised.

use sqlx::any::AnyRow;
use sqlx::Row;

use offsite_api::types::{
    Alert, AlertKind, Immutability, ProtectionChange, ProtectionRequest, ProtectionRequestState, VaultProtection,
};

use super::{enum_from, enum_text, time_of, Db, DbError, DbResult};

/// The protection settings on a vault's row, without its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtectionSettings {
    pub soft_delete_days: Option<u32>,
    pub immutability: Immutability,
    pub min_retention_days: u32,
    pub mass_deletion_percent: u32,
}

impl ProtectionSettings {
    pub fn view(self, vault_id: &str, requests: Vec<ProtectionRequest>) -> VaultProtection {
        VaultProtection {
            vault_id: vault_id.to_string(),
            soft_delete_days: self.soft_delete_days,
            immutability: self.immutability,
            min_retention_days: self.min_retention_days,
            mass_deletion_percent: self.mass_deletion_percent,
            requests,
        }
    }
}

fn request_row(row: &AnyRow) -> DbResult<ProtectionRequest> {
    let change: String = row.try_get("change")?;
    let state: String = row.try_get("state")?;
    Ok(ProtectionRequest {
        id: row.try_get("id")?,
        vault_id: row.try_get("vault_id")?,
        change: serde_json::from_str::<ProtectionChange>(&change)
            .map_err(|e| sqlx::Error::Decode(format!("a stored protection change: {e}").into()))?,
        requested: time_of(row.try_get("requested")?),
        requested_by: row.try_get("requested_by")?,
        state: enum_from(&state)?,
        decided: row.try_get::<Option<i64>, _>("decided")?.map(time_of),
        decided_by: row.try_get("decided_by")?,
        decision_note: row.try_get("decision_note")?,
    })
}

fn alert_row(row: &AnyRow) -> DbResult<Alert> {
    let kind: String = row.try_get("kind")?;
    Ok(Alert {
        id: row.try_get("id")?,
        subscription_id: row.try_get("subscription_id")?,
        vault_id: row.try_get("vault_id")?,
        machine_id: row.try_get("machine_id")?,
        kind: enum_from(&kind)?,
        raised: time_of(row.try_get("raised")?),
        message: row.try_get("message")?,
    })
}

impl Db {
    pub async fn protection_settings(&self, vault_id: &str) -> DbResult<Option<ProtectionSettings>> {
        let row = sqlx::query(
            "SELECT soft_delete_days, immutability, min_retention_days, mass_deletion_percent FROM vaults WHERE id = $1",
        )
        .bind(vault_id)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let immutability: String = row.try_get("immutability")?;
        Ok(Some(ProtectionSettings {
            soft_delete_days: row.try_get::<Option<i64>, _>("soft_delete_days")?.map(|d| d as u32),
            immutability: enum_from(&immutability)?,
            min_retention_days: row.try_get::<i64, _>("min_retention_days")? as u32,
            mass_deletion_percent: row.try_get::<i64, _>("mass_deletion_percent")? as u32,
        }))
    }

    /// Stores new settings, unless the vault's immutability was locked meanwhile
    /// (a lock is final even against a concurrent change).
    pub async fn set_protection_settings(&self, vault_id: &str, settings: ProtectionSettings) -> DbResult<bool> {
        let changed = sqlx::query(
            "UPDATE vaults SET soft_delete_days = $1, immutability = $2, min_retention_days = $3, \
             mass_deletion_percent = $4 WHERE id = $5 AND (immutability <> 'locked' OR $2 = 'locked')",
        )
        .bind(settings.soft_delete_days.map(i64::from))
        .bind(enum_text(&settings.immutability))
        .bind(i64::from(settings.min_retention_days))
        .bind(i64::from(settings.mass_deletion_percent))
        .bind(vault_id)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    pub async fn insert_protection_request(&self, request: &ProtectionRequest) -> DbResult<()> {
        let change = serde_json::to_string(&request.change).expect("a protection change serialises");
        sqlx::query(
            "INSERT INTO protection_requests (id, vault_id, change, requested, requested_by, state) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&request.id)
        .bind(&request.vault_id)
        .bind(change)
        .bind(request.requested.unix_timestamp())
        .bind(&request.requested_by)
        .bind(enum_text(&request.state))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn protection_request(&self, id: &str) -> DbResult<Option<ProtectionRequest>> {
        let row =
            sqlx::query("SELECT * FROM protection_requests WHERE id = $1").bind(id).fetch_optional(self.pool()).await?;
        row.as_ref().map(request_row).transpose()
    }

    /// A vault's requests, newest first.
    pub async fn protection_requests_of(&self, vault_id: &str) -> DbResult<Vec<ProtectionRequest>> {
        let rows = sqlx::query("SELECT * FROM protection_requests WHERE vault_id = $1 ORDER BY requested DESC, id")
            .bind(vault_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(request_row).collect()
    }

    /// Requests still waiting for an operator, oldest first; of one subscription's
    /// vaults, or of all.
    pub async fn pending_protection_requests(&self, subscription_id: Option<&str>) -> DbResult<Vec<ProtectionRequest>> {
        let select =
            "SELECT r.* FROM protection_requests r JOIN vaults v ON v.id = r.vault_id WHERE r.state = 'pending'";
        let order = "ORDER BY r.requested, r.id";
        let rows = match subscription_id {
            Some(id) => {
                let sql = format!("{select} AND v.subscription_id = $1 {order}");
                sqlx::query(&sql).bind(id).fetch_all(self.pool()).await?
            }
            None => sqlx::query(&format!("{select} {order}")).fetch_all(self.pool()).await?,
        };
        rows.iter().map(request_row).collect()
    }

    /// Records an operator's decision on a pending request; `false` if it was
    /// decided already.
    pub async fn decide_protection_request(
        &self,
        id: &str,
        state: ProtectionRequestState,
        decided_by: &str,
        note: Option<&str>,
    ) -> DbResult<bool> {
        let changed = sqlx::query(
            "UPDATE protection_requests SET state = $1, decided = $2, decided_by = $3, decision_note = $4 \
             WHERE id = $5 AND state = 'pending'",
        )
        .bind(enum_text(&state))
        .bind(self.now())
        .bind(decided_by)
        .bind(note)
        .bind(id)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    /// Raises an alert, once per machine, kind and day; `true` if it is new.
    pub async fn raise_alert(&self, alert: &Alert, day: i64) -> DbResult<bool> {
        let inserted = sqlx::query(
            "INSERT INTO alerts (id, subscription_id, vault_id, machine_id, kind, day, raised, message) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (machine_id, kind, day) DO NOTHING",
        )
        .bind(&alert.id)
        .bind(&alert.subscription_id)
        .bind(&alert.vault_id)
        .bind(&alert.machine_id)
        .bind(enum_text(&alert.kind))
        .bind(day)
        .bind(alert.raised.unix_timestamp())
        .bind(&alert.message)
        .execute(self.pool())
        .await
        .map_err(DbError::Query)?
        .rows_affected();
        Ok(inserted == 1)
    }

    /// A subscription's alerts, newest first.
    pub async fn alerts_of(&self, subscription_id: &str) -> DbResult<Vec<Alert>> {
        let rows = sqlx::query("SELECT * FROM alerts WHERE subscription_id = $1 ORDER BY raised DESC, id")
            .bind(subscription_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(alert_row).collect()
    }

    /// How many alerts of a kind were ever raised (for `/metrics`).
    pub async fn alert_count(&self, kind: AlertKind) -> DbResult<u64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM alerts WHERE kind = $1")
            .bind(enum_text(&kind))
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get::<i64, _>("n")? as u64)
    }
}
