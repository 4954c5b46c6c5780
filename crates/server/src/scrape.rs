//! What `/metrics` shows: the recorder's counters and histograms (requests, bytes,
//! jobs, ingest), followed by gauges counted from the database at scrape time
//! (import jobs and drives by state, alerts, soft-deleted bytes). The gauges are
//! rendered here rather than kept in the global recorder, so several replicas, or
//! several services in one test process, each report their own database's truth.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use offsite_api::types::{AlertKind, ImportDriveState, ImportJobState};

use crate::db::enum_text;
use crate::state::AppState;

const JOB_STATES: [ImportJobState; 7] = [
    ImportJobState::Creating,
    ImportJobState::Shipping,
    ImportJobState::Received,
    ImportJobState::Transferring,
    ImportJobState::Packaging,
    ImportJobState::Completed,
    ImportJobState::Closed,
];

const DRIVE_STATES: [ImportDriveState; 7] = [
    ImportDriveState::Specified,
    ImportDriveState::Received,
    ImportDriveState::Transferring,
    ImportDriveState::Completed,
    ImportDriveState::CompletedMoreInfo,
    ImportDriveState::NeverReceived,
    ImportDriveState::ShippedBack,
];

/// The Prometheus text of the whole service.
pub async fn render(state: &AppState) -> String {
    let mut text = state.metrics.render();
    match state.db.import_state_counts().await {
        Ok(counts) => {
            gauge(&mut text, "offsite_import_jobs", "Import jobs by state.", &JOB_STATES, &counts.jobs);
            gauge(&mut text, "offsite_import_drives", "Drives of import jobs by state.", &DRIVE_STATES, &counts.drives);
        }
        // The recorder's series are still worth serving; the missing gauges say the rest.
        Err(err) => tracing::warn!(%err, "cannot count import jobs for /metrics"),
    }
    match tokio::try_join!(state.db.alert_count(AlertKind::MassDeletion), state.db.soft_deleted_bytes()) {
        Ok((alerts, soft_deleted)) => {
            plain_gauge(&mut text, "offsite_mass_deletion_alerts", "Mass-deletion alerts ever raised.", alerts);
            plain_gauge(
                &mut text,
                "offsite_soft_deleted_bytes",
                "Bytes machines removed that wait for their purge date.",
                soft_deleted,
            );
        }
        Err(err) => tracing::warn!(%err, "cannot count alerts and soft-deleted bytes for /metrics"),
    }
    let _ = writeln!(
        text,
        "# HELP offsite_portal_password_checks_total Portal sign-in passwords checked (Argon2) by this replica.\n\
         # TYPE offsite_portal_password_checks_total counter\n\
         offsite_portal_password_checks_total {}",
        state.sign_in_failures.password_checks()
    );
    text
}

/// One gauge without labels.
fn plain_gauge(text: &mut String, name: &str, help: &str, value: u64) {
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
}

/// One gauge family with a `state` label; every known state is listed, 0 when absent,
/// so a state that empties shows 0 instead of vanishing.
fn gauge<T: serde::Serialize>(text: &mut String, name: &str, help: &str, known: &[T], counts: &[(String, i64)]) {
    let mut by_state: BTreeMap<String, i64> = known.iter().map(|s| (enum_text(s), 0)).collect();
    for (state, n) in counts {
        by_state.insert(state.clone(), *n);
    }
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} gauge");
    for (state, n) in by_state {
        let _ = writeln!(text, "{name}{{state=\"{state}\"}} {n}");
    }
}
