//! Telling a subscription what needs a person: a failed or missed backup, an
//! import job's steps and approaching deadline, a mass deletion, a request to
//! weaken a vault's protection. Events are stored in an outbox (one message per
//! channel and event key, so an event noticed twice, or by two replicas, is sent
//! once) and delivered by the maintenance round: [`email`] over SMTP, [`webhook`]
//! as a signed JSON POST. A failed delivery is retried with backoff, then given up
//! and shown as failed on the subscription's list.

pub mod email;
pub mod webhook;

use std::time::Duration;

use serde_json::json;

use offsite_api::types::{NotificationChannelKind, NotificationKind};

use crate::db::notifications::Outgoing;
use crate::state::AppState;

/// Attempts before a message is given up.
const MAX_ATTEMPTS: u32 = 8;
/// Messages one round claims at a time.
const BATCH: usize = 50;

/// Something a subscription should hear about.
#[derive(Debug, Clone)]
pub struct Event {
    /// Names the event, so it is sent once per channel (e.g. `backup_failed:<job>`).
    pub key: String,
    pub kind: NotificationKind,
    pub subject: String,
    pub details: serde_json::Value,
}

impl Event {
    pub fn new(key: String, kind: NotificationKind, subject: String, details: serde_json::Value) -> Event {
        Event { key, kind, subject, details }
    }

    /// The body a webhook receives, and an e-mail details.
    fn body(&self, subscription_id: &str, now: time::OffsetDateTime) -> String {
        json!({
            "event": self.key,
            "kind": self.kind,
            "subscription_id": subscription_id,
            "subject": self.subject,
            "at": crate::clock::format_time(now),
            "details": self.details,
        })
        .to_string()
    }
}

/// Stores an event for every channel of the subscription. Never fails its
/// caller: a request that caused an event succeeded whatever becomes of the
/// message (a failure to store it is logged).
pub async fn publish(state: &AppState, subscription_id: &str, event: Event) {
    let queued = async {
        let mut messages = 0;
        for channel in state.db.notification_channels(subscription_id).await? {
            messages += queue(state, &channel.channel, &event).await?;
        }
        Ok::<u64, crate::db::DbError>(messages)
    };
    match queued.await {
        Ok(0) => {}
        Ok(messages) => {
            tracing::info!(subscription = %subscription_id, event = %event.key, messages, "notification queued")
        }
        Err(err) => {
            tracing::warn!(subscription = %subscription_id, event = %event.key, "cannot queue a notification: {err}")
        }
    }
}

/// Stores the event's message for one channel (nothing if it is there already).
async fn queue(
    state: &AppState,
    channel: &offsite_api::types::NotificationChannel,
    event: &Event,
) -> Result<u64, crate::db::DbError> {
    let now = state.now();
    let body = event.body(&channel.subscription_id, now);
    state.db.enqueue_notification(channel, &event.key, event.kind, &event.subject, &body, now.unix_timestamp()).await
}

/// How deliveries go out: the SMTP relay the operator configured, if any, and
/// the HTTP client of webhooks.
pub struct Delivery {
    pub mailer: Option<email::Mailer>,
    pub webhooks: webhook::Sender,
}

/// Delivers what is due; returns (sent, failed attempts).
pub async fn deliver_due(state: &AppState) -> Result<(u64, u64), String> {
    let (mut sent, mut failed) = (0, 0);
    loop {
        let now = state.now().unix_timestamp();
        let claimed = state.db.claim_notifications(now, BATCH).await.map_err(|e| e.to_string())?;
        if claimed.is_empty() {
            return Ok((sent, failed));
        }
        for message in &claimed {
            let outcome = deliver(state, message).await;
            let now = state.now().unix_timestamp();
            let recorded = match outcome {
                Ok(()) => {
                    sent += 1;
                    metrics::counter!("offsite_notifications_total", "outcome" => "sent").increment(1);
                    Ok(now)
                }
                Err(error) => {
                    failed += 1;
                    metrics::counter!("offsite_notifications_total", "outcome" => "failed").increment(1);
                    let attempt = message.attempts + 1;
                    let next = (attempt < MAX_ATTEMPTS).then(|| now + backoff(attempt).as_secs() as i64);
                    tracing::warn!(channel = %message.channel.channel.id, event = %message.event_key, attempt,
                        "a notification was not delivered{}: {error}",
                        if next.is_some() { " (retried later)" } else { "; given up" });
                    Err((error, next))
                }
            };
            state.db.record_delivery(message, recorded).await.map_err(|e| e.to_string())?;
        }
    }
}

/// 30 s, 1 min, 2 min … up to an hour between attempts.
fn backoff(attempt: u32) -> Duration {
    Duration::from_secs((30u64 << attempt.saturating_sub(1).min(7)).min(3600))
}

async fn deliver(state: &AppState, message: &Outgoing) -> Result<(), String> {
    let channel = &message.channel.channel;
    match channel.kind {
        NotificationChannelKind::Email => match &state.delivery.mailer {
            Some(mailer) => mailer.send(&channel.target, &message.subject, &message.body).await,
            None => Err("the service has no SMTP relay configured (offsite server run --smtp-url)".into()),
        },
        NotificationChannelKind::Webhook => {
            let secret = message.channel.secret.as_deref().unwrap_or_default();
            state.delivery.webhooks.post(&channel.target, secret, &message.body, state.now()).await
        }
    }
}

const DAY: i64 = 86_400;
/// How long before an import job's arrival deadline its subscription is reminded.
const DEADLINE_NOTICE: i64 = 3 * DAY;

/// Events noticed by watching rather than by a request: machines without a
/// backup for their channel's days, import jobs whose drives must arrive within
/// three days. Keys carry the day, so each is sent once a day at most.
pub async fn watch(state: &AppState) -> Result<(), String> {
    let now = state.now().unix_timestamp();
    let db = &state.db;
    for channel in db.all_notification_channels().await.map_err(|e| e.to_string())? {
        let channel = channel.channel;
        let before = now - i64::from(channel.missed_backup_days) * DAY;
        let stale =
            db.machines_without_backup_since(&channel.subscription_id, before).await.map_err(|e| e.to_string())?;
        for (machine_id, name, last) in stale {
            let last_text = last.map(crate::clock::format_seconds).unwrap_or_else(|| "never".into());
            let event = Event::new(
                format!("backup_missed:{machine_id}:{}", now / DAY),
                NotificationKind::BackupMissed,
                format!("No backup of {name} for {} days", channel.missed_backup_days),
                json!({ "machine_id": machine_id, "machine": name, "last_backup": last_text }),
            );
            queue(state, &channel, &event).await.map_err(|e| e.to_string())?;
        }
    }
    let deadline = offsite_seeding::import_job::ARRIVAL_DEADLINE.whole_seconds();
    for (job_id, name, subscription_id, shipped) in
        db.import_jobs_shipped_before(now - (deadline - DEADLINE_NOTICE)).await.map_err(|e| e.to_string())?
    {
        let due = crate::clock::format_seconds(shipped + deadline);
        let event = Event::new(
            format!("import_deadline:{job_id}"),
            NotificationKind::ImportJobDeadlineNear,
            format!("The drives of import job {name} must reach the datacenter by {due}"),
            json!({ "import_job_id": job_id, "import_job": name, "arrival_deadline": due }),
        );
        publish(state, &subscription_id, event).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_an_hour() {
        assert_eq!(backoff(1), Duration::from_secs(30));
        assert_eq!(backoff(2), Duration::from_secs(60));
        assert_eq!(backoff(7), Duration::from_secs(1920));
        assert_eq!(backoff(8), Duration::from_secs(3600));
        assert_eq!(backoff(40), Duration::from_secs(3600));
    }
}
