//! Where a subscription hears of what needs a person, and what it was told.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// A new channel: an e-mail address or a webhook URL, exactly one.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNotificationChannel {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "backup-team@example.com")]
    pub email: Option<String>,
    /// Receives each event as a JSON POST signed with the channel's secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// Report a machine without a successful backup for this many days (1–90,
    /// default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed_backup_days: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NotificationChannel {
    pub id: String,
    pub subscription_id: String,
    pub kind: NotificationChannelKind,
    /// The address or the URL.
    pub target: String,
    pub missed_backup_days: u32,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotificationChannelKind {
    Email,
    Webhook,
}

/// Returned once, when a channel is made: a webhook's signing secret is not
/// shown again.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NotificationChannelCreated {
    pub channel: NotificationChannel,
    /// Hex key of the HMAC-SHA256 in a webhook request's
    /// `X-Offsite-Signature: t=<unix seconds>,v1=<hex>` header, over
    /// `<unix seconds>.<body>`.
    pub webhook_secret: Option<String>,
}

/// What a subscription is told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    BackupFailed,
    BackupMissed,
    ImportJobShipped,
    ImportJobReceived,
    ImportDriveNeedsAttention,
    ImportJobDeadlineNear,
    /// The arrival deadline passed without the drives: the job is closed.
    ImportJobExpired,
    MassDeletion,
    ProtectionChangeRequested,
}

/// One message to one channel, and how its delivery went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Notification {
    pub channel_id: String,
    /// What the message is about, once per channel: a retried event is not sent twice.
    pub event_key: String,
    pub kind: NotificationKind,
    pub subject: String,
    /// The event's details, as a webhook receives them.
    pub details: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created: OffsetDateTime,
    pub state: NotificationState,
    pub attempts: u32,
    pub last_error: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub sent: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotificationState {
    Pending,
    Sent,
    /// Given up after its last attempt.
    Failed,
}
