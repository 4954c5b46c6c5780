//! The service's background work, on every replica: purging soft-deleted files
//! whose window has passed, closing import jobs past their arrival deadline,
//! raising mass-deletion alerts, watching for missed backups and near deadlines,
//! delivering notifications. Each step is safe to run on several replicas at once
//! and again after a crash: a purge or a delivery claims its row first (one
//! replica wins each), a job's closing is a conditional change one replica
//! stores, and alerts and notifications are stored once per event key. A replica
//! that dies holding a claim holds it no longer than the claim's age limit.

use std::time::Duration;

use offsite_api::types::{Alert, AlertKind, NotificationKind};

use crate::db::repository_files::PurgeClaim;
use crate::notify;
use crate::secrets;
use crate::state::AppState;
use crate::storage::RepoFile;

/// Files one purge round claims at a time.
const PURGE_BATCH: usize = 500;

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub purged_files: u64,
    pub purged_bytes: u64,
    pub import_jobs_expired: u64,
    pub alerts: u64,
    pub notifications_sent: u64,
    pub notifications_failed: u64,
}

/// Runs a round every `interval` until the process ends.
pub fn spawn(state: AppState, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match run_round(&state).await {
                Ok(round) if round != Round::default() => tracing::info!(?round, "maintenance round"),
                Ok(_) => {}
                Err(err) => tracing::warn!("maintenance round failed (retried next round): {err}"),
            }
        }
    })
}

/// One round: purge what is due, close overdue import jobs, look for mass
/// deletions, then notify.
pub async fn run_round(state: &AppState) -> Result<Round, String> {
    let mut round = Round::default();
    loop {
        let claims =
            state.db.claim_purges(state.now().unix_timestamp(), PURGE_BATCH).await.map_err(|e| e.to_string())?;
        if claims.is_empty() {
            break;
        }
        for claim in &claims {
            purge(state, claim).await?;
            round.purged_files += 1;
            round.purged_bytes += claim.size;
        }
    }
    round.import_jobs_expired = crate::services::import_jobs::expire_overdue(state).await.map_err(|e| e.to_string())?;
    round.alerts = raise_mass_deletion_alerts(state).await?;
    state.db.forget_expired_nonces(state.now().unix_timestamp()).await.map_err(|e| e.to_string())?;
    let window = crate::sign_in_limit::FAILURE_WINDOW.as_secs() as i64;
    state.db.sweep_sign_in_tallies(state.now().unix_timestamp() - window).await.map_err(|e| e.to_string())?;
    notify::watch(state).await?;
    (round.notifications_sent, round.notifications_failed) = notify::deliver_due(state).await?;
    Ok(round)
}

/// Deletes a claimed file from the storage, then forgets it.
async fn purge(state: &AppState, claim: &PurgeClaim) -> Result<(), String> {
    let file = RepoFile { kind: claim.kind, name: claim.name.clone() };
    state.storage.delete(&claim.vault_id, &claim.machine_id, &file).await.map_err(|e| e.to_string())?;
    state.db.finish_purge(claim).await.map_err(|e| e.to_string())?;
    metrics::counter!("offsite_purged_bytes_total").increment(claim.size);
    tracing::info!(machine = %claim.machine_id, kind = ?claim.kind, name = %claim.name, bytes = claim.size,
        "purged a soft-deleted file whose window had passed");
    Ok(())
}

const DAY: i64 = 86_400;

/// Raises an alert for each machine that removed more than its vault's share of
/// recovery points or bytes in the last day.
async fn raise_mass_deletion_alerts(state: &AppState) -> Result<u64, String> {
    let now = state.now().unix_timestamp();
    let since = now - DAY;
    let db = &state.db;
    let mut raised = 0;
    for machine_id in db.machines_removing_since(since).await.map_err(|e| e.to_string())? {
        let Some(machine) = db.machine(&machine_id).await.map_err(|e| e.to_string())? else { continue };
        let Some(vault) = db.vault(&machine.vault_id).await.map_err(|e| e.to_string())? else { continue };
        let Some(settings) = db.protection_settings(&vault.id).await.map_err(|e| e.to_string())? else { continue };
        let removals = db.removals_since(&machine_id, since).await.map_err(|e| e.to_string())?;
        if !removals.exceed(settings.mass_deletion_percent) {
            continue;
        }
        let message = format!(
            "machine {} ({}) removed {} of its {} recovery points and {} of its {} bytes within a day, more than the \
             vault's threshold of {}%. If no one there meant to, the machine may be compromised: what it removed is \
             kept until its purge date; see offsite admin machine soft-deleted {}",
            machine.name,
            machine.id,
            removals.points_removed,
            removals.points_removed + removals.points_live,
            removals.bytes_removed,
            removals.bytes_removed + removals.bytes_live,
            settings.mass_deletion_percent,
            machine.id
        );
        let alert = Alert {
            id: secrets::new_id("alr"),
            subscription_id: vault.subscription_id.clone(),
            vault_id: vault.id.clone(),
            machine_id: Some(machine.id.clone()),
            kind: AlertKind::MassDeletion,
            raised: state.now(),
            message,
        };
        if db.raise_alert(&alert, now / DAY).await.map_err(|e| e.to_string())? {
            metrics::counter!("offsite_alerts_total", "kind" => "mass_deletion").increment(1);
            tracing::warn!(machine = %machine.id, "{}", alert.message);
            let event = notify::Event::new(
                format!("mass_deletion:{}:{}", machine.id, now / DAY),
                NotificationKind::MassDeletion,
                format!("Machine {} removed most of its backups within a day", machine.name),
                serde_json::json!({ "machine_id": machine.id, "vault_id": vault.id, "message": alert.message }),
            );
            notify::publish(state, &vault.subscription_id, event).await;
            raised += 1;
        }
    }
    Ok(raised)
}
