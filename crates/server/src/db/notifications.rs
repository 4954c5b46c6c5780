//! Notification channels and the outbox (migrations/0011): a message is stored
//! once per channel and event key, claimed by one replica's delivery round at a
//! time, and retried with backoff until sent or given up.

use sqlx::any::AnyRow;
use sqlx::Row;

use offsite_api::types::{Notification, NotificationChannel, NotificationKind, NotificationState};

use super::{enum_from, enum_text, time_of, Db, DbResult};

/// How long a delivery may hold its claim before another replica retries it.
const CLAIM_SECONDS: i64 = 300;

/// A channel with what delivery needs and the API does not show.
#[derive(Debug, Clone)]
pub struct ChannelRow {
    pub channel: NotificationChannel,
    pub secret: Option<String>,
}

/// A message claimed for delivery.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub channel: ChannelRow,
    pub event_key: String,
    pub kind: NotificationKind,
    pub subject: String,
    pub body: String,
    pub attempts: u32,
    pub claimed: i64,
}

fn channel_row(row: &AnyRow) -> DbResult<ChannelRow> {
    let kind: String = row.try_get("kind")?;
    Ok(ChannelRow {
        channel: NotificationChannel {
            id: row.try_get("id")?,
            subscription_id: row.try_get("subscription_id")?,
            kind: enum_from(&kind)?,
            target: row.try_get("target")?,
            missed_backup_days: row.try_get::<i64, _>("missed_backup_days")? as u32,
            created: time_of(row.try_get("created")?),
        },
        secret: row.try_get("secret")?,
    })
}

fn notification_row(row: &AnyRow) -> DbResult<Notification> {
    let (kind, state, body): (String, String, String) =
        (row.try_get("kind")?, row.try_get("state")?, row.try_get("body")?);
    Ok(Notification {
        channel_id: row.try_get("channel_id")?,
        event_key: row.try_get("event_key")?,
        kind: enum_from(&kind)?,
        subject: row.try_get("subject")?,
        details: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
        created: time_of(row.try_get("created")?),
        state: enum_from(&state)?,
        attempts: row.try_get::<i64, _>("attempts")? as u32,
        last_error: row.try_get("last_error")?,
        sent: row.try_get::<Option<i64>, _>("sent")?.map(time_of),
    })
}

impl Db {
    pub async fn insert_notification_channel(&self, row: &ChannelRow) -> DbResult<()> {
        let c = &row.channel;
        sqlx::query(
            "INSERT INTO notification_channels (id, subscription_id, kind, target, secret, missed_backup_days, created) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&c.id)
        .bind(&c.subscription_id)
        .bind(enum_text(&c.kind))
        .bind(&c.target)
        .bind(&row.secret)
        .bind(i64::from(c.missed_backup_days))
        .bind(c.created.unix_timestamp())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A subscription's channels, oldest first.
    pub async fn notification_channels(&self, subscription_id: &str) -> DbResult<Vec<ChannelRow>> {
        let rows = sqlx::query("SELECT * FROM notification_channels WHERE subscription_id = $1 ORDER BY created, id")
            .bind(subscription_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(channel_row).collect()
    }

    /// Every channel (for the missed-backup watch).
    pub async fn all_notification_channels(&self) -> DbResult<Vec<ChannelRow>> {
        let rows =
            sqlx::query("SELECT * FROM notification_channels ORDER BY created, id").fetch_all(self.pool()).await?;
        rows.iter().map(channel_row).collect()
    }

    /// Removes a channel and its messages; `false` if it was not the subscription's.
    pub async fn remove_notification_channel(&self, subscription_id: &str, id: &str) -> DbResult<bool> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM notifications WHERE channel_id = $1 AND subscription_id = $2")
            .bind(id)
            .bind(subscription_id)
            .execute(&mut *tx)
            .await?;
        let gone = sqlx::query("DELETE FROM notification_channels WHERE id = $1 AND subscription_id = $2")
            .bind(id)
            .bind(subscription_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(gone == 1)
    }

    /// Stores a message for a channel, once per event key.
    pub async fn enqueue_notification(
        &self,
        channel: &NotificationChannel,
        event_key: &str,
        kind: NotificationKind,
        subject: &str,
        body: &str,
        now: i64,
    ) -> DbResult<u64> {
        let stored = sqlx::query(
            "INSERT INTO notifications (channel_id, event_key, subscription_id, kind, subject, body, created, state, \
             next_attempt) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $7) \
             ON CONFLICT (channel_id, event_key) DO NOTHING",
        )
        .bind(&channel.id)
        .bind(event_key)
        .bind(&channel.subscription_id)
        .bind(enum_text(&kind))
        .bind(subject)
        .bind(body)
        .bind(now)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(stored)
    }

    /// Claims up to `limit` messages due for an attempt (or whose claim is old).
    pub async fn claim_notifications(&self, now: i64, limit: usize) -> DbResult<Vec<Outgoing>> {
        let rows = sqlx::query(
            "SELECT n.channel_id, n.event_key, n.kind, n.subject, n.body, n.attempts, n.claimed, \
             c.id, c.subscription_id, c.kind AS channel_kind, c.target, c.secret, c.missed_backup_days, c.created \
             FROM notifications n JOIN notification_channels c ON c.id = n.channel_id \
             WHERE n.state = 'pending' AND n.next_attempt <= $1 AND (n.claimed IS NULL OR n.claimed < $2) \
             ORDER BY n.next_attempt LIMIT $3",
        )
        .bind(now)
        .bind(now - CLAIM_SECONDS)
        .bind(limit as i64)
        .fetch_all(self.pool())
        .await?;
        let mut claimed = Vec::new();
        for row in rows {
            let (channel_id, event_key): (String, String) = (row.try_get("channel_id")?, row.try_get("event_key")?);
            let previous: Option<i64> = row.try_get("claimed")?;
            let won = sqlx::query(
                "UPDATE notifications SET claimed = $1 WHERE channel_id = $2 AND event_key = $3 \
                 AND state = 'pending' AND claimed IS NOT DISTINCT FROM $4",
            )
            .bind(now)
            .bind(&channel_id)
            .bind(&event_key)
            .bind(previous)
            .execute(self.pool())
            .await?
            .rows_affected();
            if won != 1 {
                continue;
            }
            let (kind, channel_kind): (String, String) = (row.try_get("kind")?, row.try_get("channel_kind")?);
            claimed.push(Outgoing {
                channel: ChannelRow {
                    channel: NotificationChannel {
                        id: channel_id,
                        subscription_id: row.try_get("subscription_id")?,
                        kind: enum_from(&channel_kind)?,
                        target: row.try_get("target")?,
                        missed_backup_days: row.try_get::<i64, _>("missed_backup_days")? as u32,
                        created: time_of(row.try_get("created")?),
                    },
                    secret: row.try_get("secret")?,
                },
                event_key,
                kind: enum_from(&kind)?,
                subject: row.try_get("subject")?,
                body: row.try_get("body")?,
                attempts: row.try_get::<i64, _>("attempts")? as u32,
                claimed: now,
            });
        }
        Ok(claimed)
    }

    /// Records an attempt: sent, or failed with the next attempt's time (`None`:
    /// given up).
    pub async fn record_delivery(
        &self,
        message: &Outgoing,
        outcome: Result<i64, (String, Option<i64>)>,
    ) -> DbResult<()> {
        let (state, sent, error, next) = match &outcome {
            Ok(at) => (NotificationState::Sent, Some(*at), None, *at),
            Err((error, Some(next))) => (NotificationState::Pending, None, Some(error.as_str()), *next),
            Err((error, None)) => (NotificationState::Failed, None, Some(error.as_str()), message.claimed),
        };
        sqlx::query(
            "UPDATE notifications SET state = $1, sent = $2, last_error = $3, next_attempt = $4, \
             attempts = attempts + 1, claimed = NULL WHERE channel_id = $5 AND event_key = $6 AND claimed = $7",
        )
        .bind(enum_text(&state))
        .bind(sent)
        .bind(error)
        .bind(next)
        .bind(&message.channel.channel.id)
        .bind(&message.event_key)
        .bind(message.claimed)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A subscription's most recent messages, newest first.
    pub async fn notifications_of(&self, subscription_id: &str, limit: usize) -> DbResult<Vec<Notification>> {
        let rows = sqlx::query(
            "SELECT * FROM notifications WHERE subscription_id = $1 ORDER BY created DESC, event_key LIMIT $2",
        )
        .bind(subscription_id)
        .bind(limit as i64)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(notification_row).collect()
    }

    /// Registered machines of a subscription whose last recovery point (or, with
    /// none, whose registration) is older than `before`: (id, name, last backup).
    pub async fn machines_without_backup_since(
        &self,
        subscription_id: &str,
        before: i64,
    ) -> DbResult<Vec<(String, String, Option<i64>)>> {
        let rows = sqlx::query(
            "SELECT m.id, m.name, m.last_backup FROM machines m JOIN vaults v ON v.id = m.vault_id \
             WHERE v.subscription_id = $1 AND m.removed IS NULL AND COALESCE(m.last_backup, m.registered) < $2",
        )
        .bind(subscription_id)
        .bind(before)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|row| Ok((row.try_get("id")?, row.try_get("name")?, row.try_get("last_backup")?))).collect()
    }

    /// Import jobs on their way since before `shipped_before`: (id, name,
    /// subscription, shipped at).
    pub async fn import_jobs_shipped_before(
        &self,
        shipped_before: i64,
    ) -> DbResult<Vec<(String, String, String, i64)>> {
        let rows = sqlx::query(
            "SELECT id, name, subscription_id, shipped_at FROM import_jobs \
             WHERE state = 'shipping' AND shipped_at IS NOT NULL AND shipped_at < $1",
        )
        .bind(shipped_before)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("id")?,
                    row.try_get("name")?,
                    row.try_get("subscription_id")?,
                    row.try_get("shipped_at")?,
                ))
            })
            .collect()
    }
}
