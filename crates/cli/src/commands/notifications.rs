//! `offsite admin notification …`: where a subscription hears of failed and
//! missed backups, import job steps, mass deletions and requests to weaken a
//! vault's protection, and what it was told.

use anyhow::Result;
use clap::Subcommand;

use offsite_api::types::{CreateNotificationChannel, NotificationChannel};

use super::admin::Session;
use crate::display::when;

#[derive(Subcommand)]
pub(super) enum NotificationCommand {
    /// Add an e-mail address or a webhook URL (one of them).
    Add {
        #[arg(long, conflicts_with = "webhook", required_unless_present = "webhook")]
        email: Option<String>,
        /// Receives each event as a signed JSON POST (the secret is shown once).
        #[arg(long)]
        webhook: Option<String>,
        /// Report a machine without a successful backup for this many days (1–90).
        #[arg(long, default_value_t = 2)]
        missed_backup_days: u32,
    },
    /// The subscription's channels.
    List,
    /// Remove a channel and its messages.
    Remove { id: String },
    /// The most recent messages and how their delivery went.
    Sent,
}

fn describe(c: &NotificationChannel) -> String {
    format!("{}  {:?} {}  (missed backup after {} days)", c.id, c.kind, c.target, c.missed_backup_days)
}

pub(super) fn run(session: &Session, command: &NotificationCommand) -> Result<()> {
    let subscription = session.subscription_id();
    match command {
        NotificationCommand::Add { email, webhook, missed_backup_days } => {
            let body = CreateNotificationChannel {
                email: email.clone(),
                webhook_url: webhook.clone(),
                missed_backup_days: Some(*missed_backup_days),
            };
            let created = session.client.add_notification_channel(subscription, &body)?;
            session.show(&created, |c| {
                println!("notification channel added: {}", describe(&c.channel));
                if let Some(secret) = &c.webhook_secret {
                    println!("webhook signing secret (shown only now; keep it with the receiver): {secret}");
                    println!(
                        "each POST carries X-Offsite-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of \
                         \"<t>.<body>\" under this secret>"
                    );
                }
            })
        }
        NotificationCommand::List => session.show(&session.client.notification_channels(subscription)?, |list| {
            if list.is_empty() {
                println!("no notification channels: add one with offsite admin notification add --email ADDRESS");
            }
            for c in list {
                println!("{}", describe(c));
            }
        }),
        NotificationCommand::Remove { id } => {
            session.client.remove_notification_channel(subscription, id)?;
            session.show(&serde_json::json!({ "removed": id }), |_| println!("notification channel {id} removed"))
        }
        NotificationCommand::Sent => session.show(&session.client.notifications(subscription)?, |list| {
            for n in list {
                let error = n.last_error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default();
                println!(
                    "{}  {:?}  {:?} after {} attempts{error}  {}",
                    when(n.created),
                    n.state,
                    n.kind,
                    n.attempts,
                    n.subject
                );
            }
        }),
    }
}
