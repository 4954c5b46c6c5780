//! A vault's protection in the portal: its soft delete and immutability, the
//! requests to weaken them, the subscription's alerts, and each machine's
//! soft-deleted recovery points with their purge dates and an undelete button;
//! and the operator's decisions on requests.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;

use offsite_api::types::{Immutability, ProtectionDecision, ProtectionRequest, Undelete};

use super::layout::{bytes, page, when, when_opt, PortalFailure};
use super::session::SignedIn;
use crate::services::{machines, protection, vaults};
use crate::state::AppState;

type PageResult = Result<Response, PortalFailure>;

pub async fn vault_protection(
    State(state): State<AppState>,
    who: SignedIn,
    Path(vault_id): Path<String>,
) -> PageResult {
    let principal = who.principal.clone();
    let vault = vaults::get(&state, &principal, &vault_id).await?;
    let settings = protection::get(&state, &principal, &vault.id).await?;
    let alerts = protection::alerts(&state, &principal, &vault.subscription_id).await?;
    let mut removed = Vec::new();
    for machine in vaults::list_machines(&state, &principal, &vault.id).await? {
        let soft_deleted = machines::soft_deleted(&state, &principal, &machine.id).await?;
        removed.push((machine, soft_deleted));
    }
    let soft_delete = match settings.soft_delete_days {
        Some(days) => format!("on: what a machine removes is kept {days} days"),
        None => "off: what a machine removes is gone at once".into(),
    };
    Ok(page(
        &format!("{}: protection", vault.name),
        Some(&who),
        html! {
            p { a href={ "/portal/vaults/" (vault.id) } { "← vault " (vault.name) } }
            h1 { "Protection of vault " (vault.name) }
            section {
                h2 { "Settings" }
                dl {
                    dt { "Soft delete" } dd { (soft_delete) }
                    dt { "Immutability" } dd { (immutability(settings.immutability, settings.min_retention_days)) }
                    dt { "Mass-deletion alert" } dd { "above " (settings.mass_deletion_percent) "% of a machine's recovery points or bytes in a day" }
                }
                p { small { "Change them with " code { "offsite admin vault protection set " (vault.name) } "; a weakening waits for an operator's approval." } }
                @if !settings.requests.is_empty() { (requests(&settings.requests)) }
            }
            @if !alerts.is_empty() {
                section {
                    h2 { "Alerts" }
                    ul { @for a in &alerts { li.error { (when(a.raised)) ": " (a.message) } } }
                }
            }
            @for (machine, soft_deleted) in &removed {
                section id=(machine.id) {
                    h2 { "Soft-deleted: " (machine.name) }
                    @if soft_deleted.files == 0 { p { "Nothing: every file this machine stored is live." } }
                    @else {
                        p { (soft_deleted.files) " files, " (bytes(soft_deleted.bytes)) ", purged from "
                            (when_opt(soft_deleted.next_purge)) " to " (when_opt(soft_deleted.last_purge)) "." }
                        @if !soft_deleted.recovery_points.is_empty() {
                            div.scroll { table {
                                thead { tr { th scope="col" { "Time" } th scope="col" { "Size" } th scope="col" { "Removed" } th scope="col" { "Purged after" } th scope="col" { "Snapshot" } th scope="col" { "" } } }
                                tbody { @for p in &soft_deleted.recovery_points { tr {
                                    td { (when_opt(p.time)) } td { (p.size.map(bytes).unwrap_or_default()) }
                                    td { (when(p.deleted)) } td { (when(p.purge_after)) }
                                    td.mono { (p.snapshot_id.get(..16).unwrap_or(&p.snapshot_id)) }
                                    td { (undelete_button(&who, &machine.id, Some(&p.snapshot_id), "Undelete")) }
                                } } }
                            } }
                        }
                        (undelete_button(&who, &machine.id, None, "Undelete everything this machine removed"))
                    }
                }
            }
        },
    ))
}

fn immutability(state: Immutability, min_retention_days: u32) -> String {
    match state {
        Immutability::Disabled => "disabled".into(),
        Immutability::Enabled => format!("enabled: recovery points are kept at least {min_retention_days} days"),
        Immutability::Locked => {
            format!("locked for good: recovery points are kept at least {min_retention_days} days")
        }
    }
}

fn requests(list: &[ProtectionRequest]) -> Markup {
    html! {
        h3 { "Requests to weaken it" }
        div.scroll { table {
            thead { tr { th scope="col" { "Asked" } th scope="col" { "By" } th scope="col" { "Change" } th scope="col" { "State" } th scope="col" { "Decided" } } }
            tbody { @for r in list { tr {
                td { (when(r.requested)) } td { (r.requested_by) } td.mono { (change_text(r)) }
                td { (r.state) } td { (when_opt(r.decided)) " " (r.decided_by.clone().unwrap_or_default()) }
            } } }
        } }
    }
}

fn change_text(request: &ProtectionRequest) -> String {
    serde_json::to_string(&request.change).unwrap_or_default()
}

fn undelete_button(who: &SignedIn, machine_id: &str, point: Option<&str>, label: &str) -> Markup {
    html! {
        form method="post" action={ "/portal/machines/" (machine_id) "/undelete" } {
            input type="hidden" name="csrf" value=(who.csrf_token);
            @if let Some(point) = point { input type="hidden" name="point" value=(point); }
            button type="submit" { (label) }
        }
    }
}

#[derive(Deserialize)]
pub struct UndeleteForm {
    #[serde(default)]
    csrf: String,
    point: Option<String>,
}

/// Brings back one soft-deleted recovery point (with the data removed with or
/// after it), or everything the machine removed; back to the vault's page.
pub async fn undelete(
    State(state): State<AppState>,
    who: SignedIn,
    Path(machine_id): Path<String>,
    Form(form): Form<UndeleteForm>,
) -> PageResult {
    who.check_csrf(&form.csrf)?;
    let request = Undelete { recovery_points: form.point.into_iter().collect() };
    let machine = machines::get(&state, &who.principal, &machine_id).await?;
    let undeleted = machines::undelete(&state, &who.principal, &machine.id, request).await?;
    tracing::info!(machine = %machine.id, user = %who.user.id, files = undeleted.files, "undeleted from the portal");
    Ok(Redirect::to(&format!("/portal/vaults/{}/protection#{}", machine.vault_id, machine.id)).into_response())
}

/// The operator's list of pending requests, for the operations page.
pub fn pending_requests(who: &SignedIn, pending: &[ProtectionRequest]) -> Markup {
    html! {
        section {
            h2 { "Requests to weaken a vault's protection" }
            @if pending.is_empty() { p { "None waits for a decision." } }
            @else { div.scroll { table {
                thead { tr { th scope="col" { "Vault" } th scope="col" { "Asked" } th scope="col" { "By" } th scope="col" { "Change" } th scope="col" { "" } } }
                tbody { @for r in pending { tr {
                    td.mono { (r.vault_id) } td { (when(r.requested)) } td { (r.requested_by) } td.mono { (change_text(r)) }
                    td {
                        @for (verb, label) in [("approve", "Approve"), ("reject", "Reject")] {
                            form method="post" action={ "/portal/operator/protection-requests/" (r.id) "/" (verb) } {
                                input type="hidden" name="csrf" value=(who.csrf_token);
                                button type="submit" { (label) }
                            }
                        }
                    }
                } } }
            } } }
        }
    }
}

#[derive(Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    csrf: String,
}

pub async fn approve(
    state: State<AppState>,
    who: SignedIn,
    path: Path<String>,
    Form(form): Form<DecisionForm>,
) -> PageResult {
    decide(state, who, path, form, true).await
}

pub async fn reject(
    state: State<AppState>,
    who: SignedIn,
    path: Path<String>,
    Form(form): Form<DecisionForm>,
) -> PageResult {
    decide(state, who, path, form, false).await
}

async fn decide(
    State(state): State<AppState>,
    who: SignedIn,
    Path(request_id): Path<String>,
    form: DecisionForm,
    approve: bool,
) -> PageResult {
    if !who.is_operator() {
        return Err(crate::error::Failure::not_found("this page").into());
    }
    who.check_csrf(&form.csrf)?;
    let note = Some(format!("decided in the portal by {}", who.user.email));
    let decided = protection::decide(&state, &who.principal, &request_id, approve, ProtectionDecision { note }).await?;
    tracing::warn!(request = %decided.id, user = %who.user.id, state = %decided.state, "protection request decided in the portal");
    Ok(Redirect::to("/portal/operator").into_response())
}
