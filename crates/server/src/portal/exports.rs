//! The portal's export jobs (offline restore): a subscription's jobs, asking for
//! one (a machine's whole repository; the agent's `offsite agent export request`
//! selects recovery points), sized and shown before it is committed, and a job's
//! page with its drives' recovery keys, return shipment and timeline.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;

use offsite_api::types::{CreateExportJob, ExportJobState, ExportJobView, ExportMachine, ImportJobNote};

use super::layout::{bytes, page, when, PortalFailure};
use super::session::SignedIn;
use crate::services::{datacenters, exports, subscriptions, vaults};
use crate::state::AppState;

type PageResult = Result<Response, PortalFailure>;

const GB: u64 = 1_000_000_000;

#[derive(Deserialize)]
pub struct ExportForm {
    /// Missing counts as wrong: refused as a forged form, not as a malformed one.
    #[serde(default)]
    csrf: String,
    name: String,
    machine: String,
    datacenter: String,
    /// The drives' capacity in GB.
    drive_size_gb: u64,
}

impl ExportForm {
    fn request(&self) -> CreateExportJob {
        CreateExportJob {
            name: self.name.trim().to_string(),
            datacenter: self.datacenter.clone(),
            drive_size: self.drive_size_gb.saturating_mul(GB),
            export_public_key: None,
            return_address: None,
            machines: vec![ExportMachine { machine_id: self.machine.clone(), files: vec![], points: vec![] }],
        }
    }
}

fn request_form(
    who: &SignedIn,
    subscription_id: &str,
    machines: &[(String, String)],
    datacenters: &[String],
) -> Markup {
    html! {
        section {
            h2 { "Ask for an export" }
            p { "The datacenter writes a machine's recovery points onto drives and ships them to you. Here: the machine's whole repository; "
                code { "offsite agent export request --point ID --path P" } " on the machine chooses points and paths." }
            form method="post" action={ "/portal/subscriptions/" (subscription_id) "/export-jobs/preview" } {
                input type="hidden" name="csrf" value=(who.csrf_token);
                label for="export-name" { "Job name (3 to 64 letters, digits, - or _)" }
                input #export-name type="text" name="name" required pattern="[A-Za-z0-9][A-Za-z0-9_-]{2,63}";
                label for="export-machine" { "Machine" }
                select #export-machine name="machine" { @for (id, name) in machines { option value=(id) { (name) } } }
                label for="export-datacenter" { "Datacenter" }
                select #export-datacenter name="datacenter" { @for name in datacenters { option value=(name) { (name) } } }
                label for="export-drive-size" { "Drive size (GB)" }
                input #export-drive-size type="number" name="drive_size_gb" min="1" value="10000" required;
                button type="submit" { "Size it" }
            }
        }
    }
}

pub async fn export_jobs(
    State(state): State<AppState>,
    who: SignedIn,
    Path(subscription_id): Path<String>,
) -> PageResult {
    let subscription = subscriptions::managed(&state, &who.principal, &subscription_id).await?;
    let jobs = exports::list(&state, &who.principal, &subscription.id).await?;
    let mut machines = Vec::new();
    for vault in vaults::list(&state, &who.principal, &subscription.id).await? {
        for machine in vaults::list_machines(&state, &who.principal, &vault.id).await? {
            if machine.removed.is_none() {
                machines.push((machine.id, format!("{} (vault {})", machine.name, vault.name)));
            }
        }
    }
    let datacenters: Vec<String> =
        datacenters::list(&state, &who.principal).await?.into_iter().map(|d| d.name).collect();
    Ok(page(
        "Export jobs",
        Some(&who),
        html! {
            p { a href={ "/portal/subscriptions/" (subscription.id) } { "← subscription" } }
            h1 { "Export jobs of " (subscription.name) }
            @if jobs.is_empty() { p { "None yet." } }
            @else { section.scroll { table {
                thead { tr { th scope="col" { "Export job" } th scope="col" { "State" } th scope="col" { "Size" } th scope="col" { "Drives" } th scope="col" { "Asked" } } }
                tbody { @for job in &jobs { tr {
                    td { a href={ "/portal/export-jobs/" (job.id) } { (job.name) } }
                    td.state { (job.state.name()) } td { (bytes(job.sizing.bytes)) }
                    td { (job.drives.len().max(job.sizing.drives_needed as usize)) } td { (when(job.created)) }
                } } }
            } } }
            (request_form(&who, &subscription.id, &machines, &datacenters))
        },
    ))
}

/// The request sized: what it carries and the drives it needs, then "Request it".
pub async fn preview(
    State(state): State<AppState>,
    who: SignedIn,
    Path(subscription_id): Path<String>,
    Form(form): Form<ExportForm>,
) -> PageResult {
    who.check_csrf(&form.csrf)?;
    let sizing = exports::preview(&state, &who.principal, &subscription_id, form.request()).await?;
    Ok(page(
        "Export sizing",
        Some(&who),
        html! {
            p { a href={ "/portal/subscriptions/" (subscription_id) "/export-jobs" } { "← export jobs" } }
            h1 { "Export " (form.name) }
            p #export-sizing { (sizing.files) " files, " (bytes(sizing.bytes)) ", on " strong { (sizing.drives_needed) } " drive(s) of " (bytes(sizing.drive_size)) "." }
            form method="post" action={ "/portal/subscriptions/" (subscription_id) "/export-jobs" } {
                input type="hidden" name="csrf" value=(who.csrf_token);
                input type="hidden" name="name" value=(form.name);
                input type="hidden" name="machine" value=(form.machine);
                input type="hidden" name="datacenter" value=(form.datacenter);
                input type="hidden" name="drive_size_gb" value=(form.drive_size_gb);
                button type="submit" { "Request it" }
            }
        },
    ))
}

pub async fn request(
    State(state): State<AppState>,
    who: SignedIn,
    Path(subscription_id): Path<String>,
    Form(form): Form<ExportForm>,
) -> PageResult {
    who.check_csrf(&form.csrf)?;
    let job = exports::create(&state, &who.principal, &subscription_id, form.request()).await?;
    tracing::info!(job = %job.id, user = %who.user.id, "export requested from the portal");
    Ok(Redirect::to(&format!("/portal/export-jobs/{}", job.id)).into_response())
}

fn job_markup(who: &SignedIn, job: &ExportJobView) -> Markup {
    html! {
        p { a href={ "/portal/subscriptions/" (job.subscription_id) "/export-jobs" } { "← export jobs" } }
        h1 { "Export job " (job.name) }
        div.cards {
            div.card { div.figure #export-state { (job.state.name()) } div.label { "state" } }
            div.card { div.figure { (bytes(job.sizing.bytes)) } div.label { (job.sizing.files) " files" } }
            div.card { div.figure { (job.sizing.drives_needed) } div.label { "drives needed" } }
        }
        @if let (Some(carrier), Some(tracking)) = (&job.carrier, &job.tracking_number) {
            p { "Return shipment: " strong { (carrier) " " (tracking) } }
        }
        section {
            h2 { "Drives" }
            @if job.drives.is_empty() { p { "Not written yet." } }
            @else { div.scroll { table {
                thead { tr { th scope="col" { "Drive" } th scope="col" { "Id" } th scope="col" { "Holds" } th scope="col" { "Recovery key" } } }
                tbody { @for d in &job.drives { tr {
                    td { (d.index + 1) } td.mono { (d.drive_id) } td { (bytes(d.bytes)) }
                    td.mono { (d.recovery_key.as_deref().unwrap_or("(the customer's)")) }
                } } }
            } } }
            p { "Restore from them on the machine with " code { "offsite agent restore --from-drive PATH --recovery-key KEY --target FOLDER" } "." }
        }
        @for (step, label, from) in [("delivered", "The drives arrived", ExportJobState::Shipping), ("complete", "The restore is done", ExportJobState::Delivered)] {
            @if job.state == from {
                form method="post" action={ "/portal/export-jobs/" (job.id) "/" (step) } {
                    input type="hidden" name="csrf" value=(who.csrf_token);
                    button type="submit" { (label) }
                }
            }
        }
        section {
            h2 { "Timeline" }
            ul { @for e in &job.timeline {
                li { (when(e.at)) " " strong { (e.state.name()) } " by " (e.actor) @if let Some(m) = &e.message { " — " (m) } }
            } }
        }
    }
}

pub async fn export_job(State(state): State<AppState>, who: SignedIn, Path(job_id): Path<String>) -> PageResult {
    let job = exports::get(&state, &who.principal, &job_id).await?;
    let log = crate::services::custody::export_log(&state, &who.principal, &job.id).await?;
    let custody = offsite_seeding::custody::verify_log(&log);
    let body = html! { (job_markup(&who, &job)) (super::custody::section(&custody)) };
    Ok(page(&job.name, Some(&who), body))
}

#[derive(Deserialize)]
pub struct StepForm {
    #[serde(default)]
    csrf: String,
}

async fn step(state: &AppState, who: &SignedIn, job_id: &str, form: &StepForm, to: ExportJobState) -> PageResult {
    who.check_csrf(&form.csrf)?;
    let note = ImportJobNote { message: Some(format!("by portal user {}", who.user.email)) };
    let job = exports::customer_step(state, &who.principal, job_id, to, note.message).await?;
    Ok(Redirect::to(&format!("/portal/export-jobs/{}", job.id)).into_response())
}

pub async fn delivered(
    State(state): State<AppState>,
    who: SignedIn,
    Path(job_id): Path<String>,
    Form(form): Form<StepForm>,
) -> PageResult {
    step(&state, &who, &job_id, &form, ExportJobState::Delivered).await
}

pub async fn complete(
    State(state): State<AppState>,
    who: SignedIn,
    Path(job_id): Path<String>,
    Form(form): Form<StepForm>,
) -> PageResult {
    step(&state, &who, &job_id, &form, ExportJobState::Completed).await
}
