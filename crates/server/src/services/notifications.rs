//! A subscription's notification channels (an e-mail address, a webhook) and
//! the messages sent to them. What is sent, and how, is in [`crate::notify`].

use offsite_api::types::{
    CreateNotificationChannel, Notification, NotificationChannel, NotificationChannelCreated, NotificationChannelKind,
};

use crate::db::notifications::ChannelRow;
use crate::error::{ApiResult, Failure};
use crate::notify::webhook;
use crate::principal::Principal;
use crate::secrets;
use crate::services::subscriptions::managed;
use crate::state::AppState;

const MAX_CHANNELS: usize = 20;
const DEFAULT_MISSED_BACKUP_DAYS: u32 = 2;
/// Messages a list shows.
const RECENT: usize = 200;

pub async fn add(
    state: &AppState,
    principal: &Principal,
    subscription_id: &str,
    body: CreateNotificationChannel,
) -> ApiResult<NotificationChannelCreated> {
    let subscription = managed(state, principal, subscription_id).await?;
    let (kind, target) = match (body.email, body.webhook_url) {
        (Some(email), None) => {
            email
                .parse::<lettre::Address>()
                .map_err(|e| Failure::BadRequest(format!("'{email}' is not an e-mail address ({e})")))?;
            if state.delivery.mailer.is_none() {
                return Err(Failure::Conflict(
                    "this service sends no e-mail: its operator has not configured an SMTP relay (offsite server \
                     run --smtp-url); use a webhook, or ask the operator"
                        .into(),
                ));
            }
            (NotificationChannelKind::Email, email)
        }
        (None, Some(url)) => {
            let private_allowed = state.delivery.webhooks.private_allowed();
            webhook::check_url(&url, private_allowed).map_err(Failure::BadRequest)?;
            (NotificationChannelKind::Webhook, url)
        }
        _ => return Err(Failure::BadRequest("give exactly one of email and webhook_url".into())),
    };
    let missed_backup_days = body.missed_backup_days.unwrap_or(DEFAULT_MISSED_BACKUP_DAYS);
    if !(1..=90).contains(&missed_backup_days) {
        return Err(Failure::BadRequest(format!("missed_backup_days is 1 to 90, not {missed_backup_days}")));
    }
    if state.db.notification_channels(&subscription.id).await?.len() >= MAX_CHANNELS {
        return Err(Failure::Conflict(format!(
            "subscription {} has {MAX_CHANNELS} notification channels, the most it may have; remove one first",
            subscription.id
        )));
    }
    let secret = (kind == NotificationChannelKind::Webhook).then(|| {
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut key);
        hex::encode(key)
    });
    let channel = NotificationChannel {
        id: secrets::new_id("nch"),
        subscription_id: subscription.id,
        kind,
        target,
        missed_backup_days,
        created: state.now(),
    };
    state.db.insert_notification_channel(&ChannelRow { channel: channel.clone(), secret: secret.clone() }).await?;
    tracing::info!(subscription = %channel.subscription_id, channel = %channel.id, kind = ?channel.kind, "notification channel added");
    Ok(NotificationChannelCreated { channel, webhook_secret: secret })
}

pub async fn list(
    state: &AppState,
    principal: &Principal,
    subscription_id: &str,
) -> ApiResult<Vec<NotificationChannel>> {
    let subscription = managed(state, principal, subscription_id).await?;
    Ok(state.db.notification_channels(&subscription.id).await?.into_iter().map(|row| row.channel).collect())
}

pub async fn remove(state: &AppState, principal: &Principal, subscription_id: &str, channel_id: &str) -> ApiResult<()> {
    let subscription = managed(state, principal, subscription_id).await?;
    if !state.db.remove_notification_channel(&subscription.id, channel_id).await? {
        return Err(Failure::not_found(format!("notification channel {channel_id}")));
    }
    Ok(())
}

/// The most recent messages, newest first, with how their delivery went.
pub async fn sent(state: &AppState, principal: &Principal, subscription_id: &str) -> ApiResult<Vec<Notification>> {
    let subscription = managed(state, principal, subscription_id).await?;
    Ok(state.db.notifications_of(&subscription.id, RECENT).await?)
}
