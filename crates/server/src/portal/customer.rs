//! The pages of a subscription: its overview, vaults, credential downloads,
//! storage accounts, offline-seeding application and import jobs.
//!
//! Every page loads what it shows through the services the API calls, with the
//! signed-in user's principal, so a page shows exactly what the API would answer
//! that user.

use axum::extract::{Multipart, Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use time::OffsetDateTime;

use offsite_api::files::{PublishSettings, VaultCredentials, XmlCredentialFile};
use offsite_api::types::*;
use offsite_seeding::plan::{self, Plan, PlanInputs};

use super::charts::{bar_chart, line_chart, Point};
use super::layout::{bytes, page, progress, when, when_opt, PortalFailure};
use super::session::{CsrfForm, SignedIn};
use crate::auth::Principal;
use crate::error::Failure;
use crate::services::{applications, import_jobs, jobs, machines, storage_accounts, subscriptions, vaults};
use crate::state::AppState;

type PageResult = Result<Response, PortalFailure>;

/// How long publish settings downloaded from the portal work: a file left in a
/// download folder stops being a key to the subscription.
const PUBLISH_SETTINGS_DAYS: u32 = 90;

/// A subscription's user goes straight to their subscription; an operator gets
/// the list of subscriptions.
pub async fn overview(State(state): State<AppState>, who: SignedIn) -> PageResult {
    if let Principal::Subscription { subscription_id, .. } = &who.principal {
        return Ok(Redirect::to(&format!("/portal/subscriptions/{subscription_id}")).into_response());
    }
    let subscriptions = subscriptions::list(&state, &who.principal).await?;
    Ok(page(
        "Subscriptions",
        Some(&who),
        html! {
            h1 { "Subscriptions" }
            p { a href="/portal/operator" { "Operations: datacenters, packages, ingest, users" } }
            section.scroll {
                table {
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Id" } th scope="col" { "Created" } } }
                    tbody {
                        @for s in &subscriptions {
                            tr {
                                td { a href={ "/portal/subscriptions/" (s.id) } { (s.name) } }
                                td.mono { (s.id) }
                                td { (when(s.created)) }
                            }
                        }
                    }
                }
            }
        },
    ))
}

/// What the portal shows of one machine, gathered once per page.
struct MachineSummary {
    machine: Machine,
    jobs: Vec<Job>,
    recovery_points: Vec<RecoveryPoint>,
    /// Seeds adopted into its repository: (when, bytes).
    adopted: Vec<(OffsetDateTime, u64)>,
}

impl MachineSummary {
    async fn load(state: &AppState, principal: &Principal, machine: Machine) -> Result<Self, PortalFailure> {
        let id = machine.id.clone();
        let mut jobs = jobs::list(state, principal, &id).await?;
        jobs.sort_by_key(|j| j.report.started);
        let recovery_points = machines::get_recovery_points(state, principal, &id).await?;
        let adopted = state
            .db
            .adoptions_of(&id)
            .await?
            .into_iter()
            .map(|a| (OffsetDateTime::from_unix_timestamp(a.adopted).unwrap_or(OffsetDateTime::UNIX_EPOCH), a.bytes))
            .collect();
        Ok(MachineSummary { machine, jobs, recovery_points, adopted })
    }

    /// Bytes this machine put into its repository: what its backups uploaded and
    /// the seeds adopted (the service cannot see inside the encrypted repository,
    /// and prune's deletions are not reported to it).
    fn stored(&self) -> u64 {
        self.jobs.iter().map(|j| j.report.bytes_uploaded).sum::<u64>() + self.adopted.iter().map(|a| a.1).sum::<u64>()
    }

    /// The last job, as the machine's status.
    fn status(&self) -> Markup {
        match self.jobs.last() {
            None => html! { "no backup yet" },
            Some(job) => html! {
                span.state { (job_state(job.report.state)) }
                @if let Some(message) = &job.report.message { " · " (message) }
            },
        }
    }
}

fn job_state(state: JobState) -> &'static str {
    match state {
        JobState::Running => "running",
        JobState::Completed => "completed",
        JobState::CompletedWithWarnings => "completed with warnings",
        JobState::Failed => "failed",
        JobState::Waiting => "waiting",
    }
}

fn day(time: OffsetDateTime) -> String {
    let format = time::macros::format_description!("[month]-[day] [hour]:[minute]");
    time.format(&format).unwrap_or_default()
}

/// Storage used over time: every upload and adoption added up, in time order.
fn storage_points(machines: &[MachineSummary]) -> Vec<Point> {
    // (when, 0 for an adoption or 1 for a backup, bytes): a seed is adopted at the
    // start of the backup that then finishes in the same second.
    let mut additions: Vec<(OffsetDateTime, u8, u64)> = machines
        .iter()
        .flat_map(|m| {
            m.jobs
                .iter()
                .filter(|j| j.report.bytes_uploaded > 0)
                .map(|j| (j.report.finished.unwrap_or(j.report.started), 1, j.report.bytes_uploaded))
                .chain(m.adopted.iter().map(|&(at, bytes)| (at, 0, bytes)))
        })
        .collect();
    additions.sort_by_key(|a| (a.0, a.1));
    let mut total = 0;
    additions
        .into_iter()
        .map(|(at, _, added)| {
            total += added;
            Point { label: day(at), value: total }
        })
        .collect()
}

/// Bytes sent by each of the last 30 backups.
fn backup_points(machines: &[MachineSummary]) -> Vec<Point> {
    let mut backups: Vec<&Job> =
        machines.iter().flat_map(|m| &m.jobs).filter(|j| j.report.kind == JobKind::Backup).collect();
    backups.sort_by_key(|j| j.report.started);
    let skip = backups.len().saturating_sub(30);
    backups
        .into_iter()
        .skip(skip)
        .map(|j| Point { label: day(j.report.started), value: j.report.bytes_uploaded })
        .collect()
}

fn in_flight(job: &ImportJobView) -> bool {
    !matches!(job.state, ImportJobState::Completed | ImportJobState::Closed)
}

/// How far a drive is: by the bytes ingested while it transfers (when diskprep
/// said how many it holds), by its state otherwise.
pub fn drive_percent(drive: &ImportJobDrive) -> u32 {
    match drive.state {
        ImportDriveState::Completed | ImportDriveState::CompletedMoreInfo => 100,
        ImportDriveState::Transferring => match drive.data_bytes {
            Some(total) if total > 0 => (drive.bytes_received.min(total) * 100 / total).min(99) as u32,
            _ => 0,
        },
        _ => 0,
    }
}

/// The job's progress: the mean of its drives'.
fn job_percent(job: &ImportJobView) -> u32 {
    if job.state == ImportJobState::Completed {
        return 100;
    }
    if job.drives.is_empty() {
        return 0;
    }
    job.drives.iter().map(drive_percent).sum::<u32>() / job.drives.len() as u32
}

pub async fn subscription(
    State(state): State<AppState>,
    who: SignedIn,
    Path(subscription_id): Path<String>,
) -> PageResult {
    let principal = who.principal.clone();
    let subscription = subscriptions::get(&state, &principal, &subscription_id).await?;
    // The subscription route also answers its offline-seeding application; the
    // portal is for its managers only.
    if !principal.manages(&subscription.id) {
        return Err(Failure::not_found(format!("subscription {subscription_id}")).into());
    }
    let vaults = vaults::list(&state, &principal, &subscription.id).await?;
    let mut per_vault = Vec::new();
    let mut all = Vec::new();
    for vault in vaults {
        let machines = vaults::list_machines(&state, &principal, &vault.id).await?;
        let mut summaries = Vec::new();
        for machine in machines {
            summaries.push(MachineSummary::load(&state, &principal, machine).await?);
        }
        per_vault.push((
            vault,
            summaries.len(),
            summaries.iter().map(MachineSummary::stored).sum::<u64>(),
            summaries.iter().filter_map(|m| m.machine.last_backup).max(),
        ));
        all.extend(summaries);
    }
    let import_jobs = import_jobs::list(&state, &principal, &subscription.id).await?;
    let flying: Vec<&ImportJobView> = import_jobs.iter().filter(|j| in_flight(j)).collect();
    let stored: u64 = all.iter().map(MachineSummary::stored).sum();
    let id = &subscription.id;
    Ok(page(
        &subscription.name,
        Some(&who),
        html! {
            h1 { "Subscription " (subscription.name) }
            div.cards {
                div.card { div.figure { (per_vault.len()) } div.label { "vaults" } }
                div.card { div.figure { (all.len()) } div.label { "machines" } }
                div.card { div.figure { (bytes(stored)) } div.label { "storage used" } }
                div.card { div.figure { (flying.len()) } div.label { "import jobs in flight" } }
            }
            section {
                h2 { "Vaults" }
                div.scroll { table {
                    thead { tr { th scope="col" { "Vault" } th scope="col" { "Machines" } th scope="col" { "Last backup" } th scope="col" { "Storage used" } } }
                    tbody { @for (vault, machines, used, last) in &per_vault { tr {
                        td { a href={ "/portal/vaults/" (vault.id) } { (vault.name) } }
                        td { (machines) } td { (when_opt(*last)) } td { (bytes(*used)) }
                    } } }
                } }
            }
            section {
                h2 { "Machines" }
                div.scroll { table {
                    thead { tr { th scope="col" { "Machine" } th scope="col" { "Last backup" } th scope="col" { "Status" } } }
                    tbody { @for m in &all { tr {
                        td { a href={ "/portal/vaults/" (m.machine.vault_id) "#" (m.machine.id) } { (m.machine.name) } }
                        td { (when_opt(m.machine.last_backup)) } td { (m.status()) }
                    } } }
                } }
            }
            section {
                h2 { "Import jobs in flight" }
                @if flying.is_empty() { p { "None." } }
                @else { div.scroll { table {
                    thead { tr { th scope="col" { "Import job" } th scope="col" { "State" } th scope="col" { "Progress" } } }
                    tbody { @for job in &flying { tr {
                        td { a href={ "/portal/import-jobs/" (job.id) } { (job.name) } }
                        td.state { (job.state.name()) }
                        td { (progress(job_percent(job), &format!("import job {}", job.name))) }
                    } } }
                } } }
                p { a href={ "/portal/subscriptions/" (id) "/import-jobs" } { "All import jobs" } }
                p { a href={ "/portal/subscriptions/" (id) "/export-jobs" } { "Export jobs: recovery points back on drives" } }
            }
            section {
                h2 { "Storage and credentials" }
                ul {
                    li { a href={ "/portal/subscriptions/" (id) "/storage" } { "Storage accounts and containers" } }
                    li { a href={ "/portal/subscriptions/" (id) "/application" } { "Offline-seeding application and its certificates" } }
                }
                form method="post" action={ "/portal/subscriptions/" (id) "/publish-settings" } {
                    input type="hidden" name="csrf" value=(who.csrf_token);
                    button type="submit" { "Download publish settings (valid for " (PUBLISH_SETTINGS_DAYS) " days)" }
                    small {
                        "A new management credential for this subscription, in the file diskprep and certgen read. \
                         It is valid for " (PUBLISH_SETTINGS_DAYS) " days, until "
                        (when(state.now() + time::Duration::days(i64::from(PUBLISH_SETTINGS_DAYS))))
                        "; the file's Expires attribute says when. Download another before then."
                    }
                }
            }
            section {
                h2 { "Charts" }
                (line_chart("Storage used over time", &storage_points(&all), bytes))
                (bar_chart("Bytes sent per backup", &backup_points(&all), bytes))
            }
        },
    ))
}

pub async fn vault(State(state): State<AppState>, who: SignedIn, Path(vault_id): Path<String>) -> PageResult {
    let principal = who.principal.clone();
    let vault = vaults::get(&state, &principal, &vault_id).await?;
    let machines = vaults::list_machines(&state, &principal, &vault.id).await?;
    let mut summaries = Vec::new();
    for machine in machines {
        summaries.push(MachineSummary::load(&state, &principal, machine).await?);
    }
    Ok(page(
        &vault.name,
        Some(&who),
        html! {
            p { a href={ "/portal/subscriptions/" (vault.subscription_id) } { "← subscription" } }
            h1 { "Vault " (vault.name) }
            section {
                h2 { "Register a machine" }
                form method="post" action={ "/portal/vaults/" (vault.id) "/credentials" } {
                    input type="hidden" name="csrf" value=(who.csrf_token);
                    button type="submit" { "Download vault credentials" }
                    small { "Registers one machine with " code { "offsite agent register" } ", within 48 hours." }
                }
            }
            p { a href={ "/portal/vaults/" (vault.id) "/protection" } { "Protection: soft delete, immutability, soft-deleted recovery points →" } }
            section {
                h2 { "Machines" }
                div.scroll { table {
                    thead { tr { th scope="col" { "Machine" } th scope="col" { "Host" } th scope="col" { "Last backup" } th scope="col" { "Next backup" } th scope="col" { "Status" } th scope="col" { "Storage used" } } }
                    tbody { @for m in &summaries { tr {
                        td { a href={ "#" (m.machine.id) } { (m.machine.name) } } td { (m.machine.hostname) }
                        td { (when_opt(m.machine.last_backup)) }
                        td.next-backup { @match m.machine.next_backup { Some(next) => (when(next)), None => "no schedule" } }
                        td { (m.status()) } td { (bytes(m.stored())) }
                    } } }
                } }
            }
            (bar_chart("Bytes sent per backup", &backup_points(&summaries), bytes))
            @for m in &summaries {
                section id=(m.machine.id) {
                    h2 { (m.machine.name) }
                    h3 { "Recovery points" }
                    @if m.recovery_points.is_empty() { p { "None yet." } }
                    @else { div.scroll { table {
                        thead { tr { th scope="col" { "Time" } th scope="col" { "Source" } th scope="col" { "Size" } th scope="col" { "Files" } th scope="col" { "Snapshot" } } }
                        tbody { @for p in m.recovery_points.iter().rev() { tr {
                            td { (when(p.time)) } td { (source(p.source)) } td { (bytes(p.size)) } td { (p.file_count) }
                            td.mono { (p.snapshot_id.get(..16).unwrap_or(&p.snapshot_id)) }
                        } } }
                    } } }
                    h3 { "Job history" }
                    @if m.jobs.is_empty() { p { "None yet." } }
                    @else { div.scroll { table {
                        thead { tr { th scope="col" { "Started" } th scope="col" { "Kind" } th scope="col" { "State" } th scope="col" { "Sent" } th scope="col" { "Files" } th scope="col" { "Message and errors" } } }
                        tbody { @for j in m.jobs.iter().rev() { tr {
                            td { (when(j.report.started)) }
                            td { @match j.report.kind { JobKind::Backup => "backup", JobKind::Restore => "restore" } }
                            td.state { (job_state(j.report.state)) }
                            td { (bytes(j.report.bytes_uploaded)) } td { (j.report.file_count) }
                            td {
                                @if let Some(message) = &j.report.message { (message) }
                                @for error in &j.report.errors { div.error { (error) } }
                            }
                        } } }
                    } } }
                }
            }
        },
    ))
}

fn source(source: RecoveryPointSource) -> &'static str {
    match source {
        RecoveryPointSource::Online => "online",
        RecoveryPointSource::OfflineSeed => "offline seed",
    }
}

fn download(file_name: &str, content_type: &'static str, body: String) -> Response {
    let disposition = format!("attachment; filename=\"{file_name}\"");
    ([(header::CONTENT_TYPE, content_type.to_string()), (header::CONTENT_DISPOSITION, disposition)], body)
        .into_response()
}

/// Only letters, digits, `-`, `_` and `.` in a file name we suggest.
fn file_name_part(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect()
}

pub async fn vault_credentials(
    State(state): State<AppState>,
    who: SignedIn,
    Path(vault_id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    who.check_csrf(&form.csrf)?;
    let issued = vaults::create_vault_credentials(
        &state,
        &who.principal,
        &vault_id,
        CreateVaultCredentials { valid_hours: None },
    )
    .await?;
    let name = format!("{}.VaultCredentials", file_name_part(&issued.vault_name));
    let file = VaultCredentials::issued(state.endpoint.clone(), issued);
    Ok(download(&name, "application/xml", file.to_xml()))
}

pub async fn publish_settings(
    State(state): State<AppState>,
    who: SignedIn,
    Path(subscription_id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    who.check_csrf(&form.csrf)?;
    let subscription = subscriptions::managed(&state, &who.principal, &subscription_id).await?;
    let valid = IssueManagementCredential { valid_days: Some(PUBLISH_SETTINGS_DAYS) };
    let issued = subscriptions::issue_management_credential(&state, &who.principal, &subscription.id, valid).await?;
    tracing::info!(subscription = %subscription.id, user = %who.user.id, credential = %issued.credential.id,
        "publish settings downloaded from the portal");
    let file = PublishSettings {
        service: state.endpoint.clone(),
        subscription_id: subscription.id,
        subscription_name: subscription.name.clone(),
        management_credential: issued.management_credential,
        expires: issued.credential.expires,
    };
    let name = format!("{}.publishsettings", file_name_part(&subscription.name));
    Ok(download(&name, "application/xml", file.to_xml()))
}

pub async fn storage(State(state): State<AppState>, who: SignedIn, Path(subscription_id): Path<String>) -> PageResult {
    let principal = who.principal.clone();
    let subscription = subscriptions::managed(&state, &principal, &subscription_id).await?;
    let accounts = storage_accounts::list(&state, &principal, &subscription.id).await?;
    let mut rows = Vec::new();
    for account in accounts {
        let containers = storage_accounts::list_containers(&state, &principal, &account.id).await?;
        rows.push((account, containers));
    }
    Ok(page(
        "Storage accounts",
        Some(&who),
        html! {
            p { a href={ "/portal/subscriptions/" (subscription.id) } { "← subscription" } }
            h1 { "Storage accounts of " (subscription.name) }
            @if rows.is_empty() { p { "None yet: create one with " code { "offsite admin storage-account create" } "." } }
            @for (account, containers) in &rows {
                section {
                    h2 { (account.name) }
                    p { "Created " (when(account.created)) }
                    @if containers.is_empty() { p { "No containers." } }
                    @else { ul { @for c in containers { li { (c.name) " · created " (when(c.created)) } } } }
                }
            }
        },
    ))
}

#[derive(Deserialize)]
pub struct ApplicationQuery {
    added: Option<String>,
}

pub async fn application(
    State(state): State<AppState>,
    who: SignedIn,
    Path(subscription_id): Path<String>,
    Query(query): Query<ApplicationQuery>,
) -> PageResult {
    let subscription = subscriptions::managed(&state, &who.principal, &subscription_id).await?;
    let found = applications::get(&state, &who.principal, &subscription.id).await;
    let application = match found {
        Ok(found) => Some(found),
        Err(Failure::NotFound(_)) => None,
        Err(other) => return Err(other.into()),
    };
    // A fresh challenge per visit: the upload below needs one signed (single use).
    let challenge = applications::challenge(&state, &who.principal, &subscription.id).await?;
    Ok(page(
        "Offline-seeding application",
        Some(&who),
        html! {
            p { a href={ "/portal/subscriptions/" (subscription.id) } { "← subscription" } }
            h1 { "Offline-seeding application" }
            @if let Some(thumbprint) = &query.added {
                p.ok role="status" { "Certificate added. Its thumbprint: " span.mono #added-thumbprint { (thumbprint) } }
            }
            @match &application {
                None => p { "This subscription has no offline-seeding application yet. Create it on the source machine with "
                    code { "offsite certgen create-application" } "." },
                Some(app) => {
                    section {
                        p { "Application " span.mono { (app.id) } ", created " (when(app.created)) "." }
                        h2 { "Certificates" }
                        div.scroll { table {
                            thead { tr { th scope="col" { "Thumbprint" } th scope="col" { "Added" } th scope="col" { "Valid until" } } }
                            tbody { @for c in &app.certificates { tr {
                                td.mono { (c.thumbprint) } td { (when(c.added)) } td { (when_opt(c.not_after)) }
                            } } }
                        } }
                    }
                    section {
                        h2 { "Upload a certificate" }
                        p { "The manual path: on the machine that holds the certificate's key, export the public certificate with a proof that you hold the key, signed over this page's challenge:" }
                        pre.mono #export-cert { "offsite certgen export-cert --challenge " (challenge.challenge) " --out offsite-app.cer" }
                        p { "Upload that file here (the challenge works once, until " (when(challenge.expires)) "). Then record its thumbprint on that machine with "
                            code { "offsite certgen add-agent-entries" } "." }
                        form method="post" enctype="multipart/form-data" action={ "/portal/subscriptions/" (subscription.id) "/application/certificates" } {
                            input type="hidden" name="csrf" value=(who.csrf_token);
                            label for="certificate" { "Certificate file (.cer: DER or PEM, public part only)" }
                            input #certificate type="file" name="certificate" accept=".cer,.pem,.crt" required;
                            button type="submit" { "Upload certificate" }
                        }
                    }
                }
            }
        },
    ))
}

/// Certificates are small; anything bigger is not one.
const MAX_CERTIFICATE_BYTES: usize = 64 * 1024;

/// The certificate form has two parts (its token and the file); a few more are
/// tolerated, thousands are not read.
const MAX_UPLOAD_PARTS: usize = 8;

pub async fn upload_certificate(
    State(state): State<AppState>,
    who: SignedIn,
    Path(subscription_id): Path<String>,
    mut multipart: Multipart,
) -> PageResult {
    let bad = |message: String| PortalFailure::Api(Failure::BadRequest(message));
    // Over the service's body limit is "too large", not "malformed".
    let unreadable = |what: &str, e: axum::extract::multipart::MultipartError| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            PortalFailure::Api(Failure::TooLarge(format!(
                "the upload is too large: a certificate file has a few hundred bytes ({e})"
            )))
        } else {
            bad(format!("{what}: {e}"))
        }
    };
    let mut csrf = None;
    let mut certificate = None;
    let mut parts = 0;
    while let Some(field) = multipart.next_field().await.map_err(|e| unreadable("the upload is malformed", e))? {
        parts += 1;
        if parts > MAX_UPLOAD_PARTS {
            return Err(bad(format!(
                "the upload has more than {MAX_UPLOAD_PARTS} parts: send the form as the page has it"
            )));
        }
        match field.name() {
            Some("csrf") => csrf = Some(field.text().await.map_err(|e| unreadable("the form is malformed", e))?),
            Some("certificate") => {
                let data = field.bytes().await.map_err(|e| unreadable("the certificate did not arrive whole", e))?;
                if data.len() > MAX_CERTIFICATE_BYTES {
                    return Err(bad(format!("the file has {} bytes: a certificate has a few hundred", data.len())));
                }
                certificate = Some(data);
            }
            _ => {}
        }
    }
    who.check_csrf(csrf.as_deref().unwrap_or(""))?;
    let data =
        certificate.filter(|d| !d.is_empty()).ok_or_else(|| bad("choose a certificate file to upload".into()))?;
    // The API takes PEM text or base64 DER.
    let text = match std::str::from_utf8(&data) {
        Ok(text) if text.contains("-----BEGIN") => text.to_string(),
        _ => base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &data),
    };
    let added = crate::certificates::parse_upload(&text).map(|parsed| parsed.thumbprint).unwrap_or_default();
    // The proof of possession travels in the file, after the certificate.
    let possession = offsite_api::possession::find_block(&text).map_err(bad)?;
    // The service checks the certificate and the proof (and refuses what parse_upload refuses).
    let _application = applications::upload_certificate(
        &state,
        &who.principal,
        &subscription_id,
        UploadCertificate { certificate: text, possession },
    )
    .await?;
    Ok(Redirect::to(&format!("/portal/subscriptions/{subscription_id}/application?added={added}")).into_response())
}

/// The planner form's fields, as typed (`offsite plan`'s options).
#[derive(Debug, Default, Deserialize)]
pub struct PlanQuery {
    size: Option<String>,
    uplink: Option<String>,
    downlink: Option<String>,
    change_rate: Option<String>,
    drive_size: Option<String>,
    shipping_days: Option<String>,
}

impl PlanQuery {
    /// The plan for the fields, the refusals naming their field, or `None` before
    /// the form was sent. Rates of diskprep, ingest and export are the planner's
    /// defaults: the service has not measured the customer's machines.
    fn plan(&self) -> Option<Result<Plan, Vec<String>>> {
        fn given(field: &Option<String>) -> Option<&str> {
            field.as_deref().map(str::trim).filter(|t| !t.is_empty())
        }
        if given(&self.size).is_none() && given(&self.uplink).is_none() {
            return None;
        }
        let mut errors = Vec::new();
        let mut read =
            |label: &str, field: &Option<String>, required: bool, parse: &dyn Fn(&str) -> Result<(), String>| {
                match given(field) {
                    None if required => errors.push(format!("{label}: required, e.g. {}", example(label))),
                    None => {}
                    Some(text) => {
                        if let Err(e) = parse(text) {
                            errors.push(format!("{label}: {e}"))
                        }
                    }
                }
            };
        let check = |r: Result<(), plan::PlanInputError>| r.map_err(|e| e.to_string());
        read("Size", &self.size, true, &|t| check(plan::parse_size(t).map(drop)));
        read("Uplink", &self.uplink, true, &|t| check(plan::parse_rate(t).map(drop)));
        read("Downlink", &self.downlink, false, &|t| check(plan::parse_rate(t).map(drop)));
        read("Change rate", &self.change_rate, false, &|t| check(plan::parse_change_rate(t).map(drop)));
        read("Drive size", &self.drive_size, false, &|t| check(plan::parse_size(t).map(drop)));
        read("Shipping days", &self.shipping_days, false, &|t| check(plan::parse_days(t).map(drop)));
        if !errors.is_empty() {
            return Some(Err(errors));
        }
        // Every field parsed above.
        let size = plan::parse_size(given(&self.size)?).ok()?;
        let uplink = plan::parse_rate(given(&self.uplink)?).ok()?;
        let mut inputs = PlanInputs::new(size, uplink);
        if let Some(rate) = given(&self.downlink).and_then(|t| plan::parse_rate(t).ok()) {
            inputs.downlink = rate;
        }
        if let Some(rate) = given(&self.change_rate).and_then(|t| plan::parse_change_rate(t).ok()) {
            inputs.change_rate = rate;
        }
        if let Some(bytes) = given(&self.drive_size).and_then(|t| plan::parse_size(t).ok()) {
            inputs.drive_size = bytes;
        }
        if let Some(days) = given(&self.shipping_days).and_then(|t| plan::parse_days(t).ok()) {
            inputs.shipping_days = days;
        }
        Some(Ok(plan::plan(&inputs)))
    }
}

fn example(label: &str) -> &'static str {
    match label {
        "Size" => "12TiB",
        _ => "50Mbit/s",
    }
}

/// The planner on the offline-backup page: a GET form, and the estimate for it.
fn planner_markup(subscription_id: &str, query: &PlanQuery) -> Markup {
    let value = |field: &Option<String>| field.clone().unwrap_or_default();
    let field = |id: &str, label: &str, current: String, placeholder: &str| {
        html! {
            label for=(id) { (label) }
            input #(id) type="text" name=(id) value=(current) placeholder=(placeholder);
        }
    };
    html! {
        section #planner {
            h2 { "Ship or upload? Plan the first backup" }
            p { "How long the first full backup, and a full restore, take over the network and on drives, and whether the daily incremental fits the uplink. "
                code { "offsite agent offline estimate" } " on the source machine measures the size (compressed and deduplicated); "
                code { "offsite plan" } " there uses the rates that machine measured." }
            form method="get" action={ "/portal/subscriptions/" (subscription_id) "/import-jobs" } {
                (field("size", "Size of the backup", value(&query.size), "e.g. 12TiB"))
                (field("uplink", "Uplink", value(&query.uplink), "e.g. 50Mbit/s"))
                (field("downlink", "Downlink (default: the uplink)", value(&query.downlink), "e.g. 200Mbit/s"))
                (field("change_rate", "Change rate (default 1%/day)", value(&query.change_rate), "1%/day"))
                (field("drive_size", "Drive size (default 10TB)", value(&query.drive_size), "10TB"))
                (field("shipping_days", "Shipping days (default 3)", value(&query.shipping_days), "3"))
                button type="submit" { "Estimate" }
            }
            @match query.plan() {
                None => {},
                Some(Err(errors)) => div.error role="alert" #plan-errors { @for e in &errors { p { (e) } } },
                Some(Ok(plan)) => (plan_markup(&plan)),
            }
        }
    }
}

fn plan_markup(plan: &Plan) -> Markup {
    let i = &plan.inputs;
    let transfer = |title: &str, id: &str, t: &plan::TransferPlan| {
        html! {
            h3 { (title) }
            div.scroll { table #(id) {
                thead { tr { th scope="col" { "Route" } th scope="col" { "Days" } th scope="col" { "How" } } }
                tbody {
                    tr { td { "Over the network" } td { (plan::duration(t.network_days)) }
                         td { "at " (t.link.bits()) ", " (format!("{:.0}", i.network_efficiency * 100.0)) "% of it" } }
                    tr { td { "On drives" } td { (plan::duration(t.drive_days)) }
                         td { (offsite_api::size::plural(t.drives_needed, "drive")) ": "
                              @for (n, step) in t.drive_steps.iter().enumerate() {
                                  @if n > 0 { ", " }
                                  (step.name) " " (plan::duration(step.days))
                                  @if let Some(rate) = step.rate { " at " (rate.bytes()) }
                              } } }
                }
            } }
            p.recommendation { strong { "Recommended: " (t.recommended) "." } " " (capitalised(&t.reason)) }
        }
    };
    let d = &plan.daily_incremental;
    html! {
        div #plan {
            (transfer("First backup", "plan-initial", &plan.initial_backup))
            (transfer("Full restore", "plan-restore", &plan.full_restore))
            h3 { "Daily incremental" }
            @if d.fits {
                p.ok #plan-incremental { (bytes(d.bytes_per_day)) " a day fits the uplink: it is busy "
                    (format!("{:.0}", d.share_of_day * 100.0)) "% of the day sending it." }
            } @else {
                p.error #plan-incremental { (bytes(d.bytes_per_day)) " a day does not fit the uplink: sending it takes "
                    (plan::duration(d.share_of_day)) " a day. The uplink would need at least " (d.uplink_needed.bits()) "." }
            }
            p { "Rates assumed here: staging backup " (i.backup_rate.bytes()) ", diskprep " (i.prep_rate.bytes())
                ", ingest " (i.ingest_rate.bytes()) ", export " (i.export_rate.bytes())
                ". " code { "offsite plan" } " on the source machine uses the rates it measured." }
        }
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

pub async fn import_jobs(
    State(state): State<AppState>,
    who: SignedIn,
    Path(subscription_id): Path<String>,
    Query(query): Query<PlanQuery>,
) -> PageResult {
    let subscription = subscriptions::managed(&state, &who.principal, &subscription_id).await?;
    let jobs = import_jobs::list(&state, &who.principal, &subscription.id).await?;
    Ok(page(
        "Import jobs",
        Some(&who),
        html! {
            p { a href={ "/portal/subscriptions/" (subscription.id) } { "← subscription" } }
            h1 { "Import jobs of " (subscription.name) }
            @if jobs.is_empty() { p { "None yet: " code { "offsite diskprep" } " creates one when the drives are ready." } }
            @else { section.scroll { table {
                thead { tr { th scope="col" { "Import job" } th scope="col" { "State" } th scope="col" { "Drives" } th scope="col" { "Created" } th scope="col" { "Progress" } } }
                tbody { @for job in &jobs { tr {
                    td { a href={ "/portal/import-jobs/" (job.id) } { (job.name) } }
                    td.state { (job.state.name()) } td { (job.drives.len()) } td { (when(job.created)) }
                    td { (progress(job_percent(job), &format!("import job {}", job.name))) }
                } } }
            } } }
            (planner_markup(&subscription.id, &query))
        },
    ))
}

pub async fn import_job(State(state): State<AppState>, who: SignedIn, Path(job_id): Path<String>) -> PageResult {
    let job = import_jobs::get(&state, &who.principal, &job_id).await?;
    let (_, custody) = crate::services::custody::import_report(&state, &who.principal, &job.id).await?;
    let body = html! { (import_job_markup(&job)) (super::custody::section(&custody)) };
    Ok(page(&job.name, Some(&who), body))
}

fn import_job_markup(job: &ImportJobView) -> Markup {
    html! {
        p { a href={ "/portal/subscriptions/" (job.subscription_id) "/import-jobs" } { "← import jobs" } }
        h1 { "Import job " (job.name) }
        div.cards {
            div.card { div.figure #job-state { (job.state.name()) } div.label { "state" } }
            div.card { div.figure { (job.drives.len()) } div.label { "drives" } }
            div.card { div.figure { (job_percent(job)) " %" } div.label { "ingested" } }
        }
        section {
            h2 { "Where the data goes" }
            p { "Storage account " strong { (job.storage_account) } ", container " strong { (job.container) } "." }
            h2 { "Ship the drives to" }
            p { strong { (job.datacenter.name) } }
            pre { (job.datacenter.address) }
            h2 { "Shipping details" }
            @match &job.shipping {
                None => p { "Not given yet: " code { "offsite diskprep --update-shipping" } "." },
                Some(s) => dl {
                    dt { "Carrier" } dd { (s.carrier) }
                    dt { "Tracking number" } dd.mono { (s.tracking_number) }
                    dt { "Drives in the package" } dd { (s.drive_count) }
                    dt { "Ship date" } dd { (s.ship_date) }
                    dt { "Return address" } dd { pre { (s.return_address) } }
                    dt { "Contact" } dd { (s.contact) }
                },
            }
            @if let Some(deadline) = job.arrival_deadline {
                p { "The drives must arrive by " strong { (when(deadline)) } ", or the job closes." }
            }
        }
        section {
            h2 { "Drives" }
            div.scroll { table {
                thead { tr { th scope="col" { "#" } th scope="col" { "Drive" } th scope="col" { "State" } th scope="col" { "Progress" } th scope="col" { "Ingested" } th scope="col" { "Logs" } } }
                tbody { @for d in &job.drives { tr {
                    td { (d.index) } td.mono { (d.drive_id) } td.state { (d.state.name()) }
                    td { (progress(drive_percent(d), &format!("drive {}", d.index))) }
                    td { (bytes(d.bytes_received)) @if let Some(total) = d.data_bytes { " of " (bytes(total)) } }
                    td { @for kind in &d.logs {
                        a href={ "/portal/import-jobs/" (job.id) "/drives/" (d.drive_id) "/logs/" (kind) } { (kind) " log" } " "
                    } }
                } } }
            } }
        }
        section {
            h2 { "Timeline" }
            div.scroll { table {
                thead { tr { th scope="col" { "When" } th scope="col" { "What" } th scope="col" { "State" } th scope="col" { "Who" } th scope="col" { "Note" } } }
                tbody { @for e in &job.timeline { tr {
                    td { (when(e.at)) }
                    td { @match &e.drive_id { Some(id) => { "drive " span.mono { (id.get(..8).unwrap_or(id)) } }, None => "job" } }
                    td.state { (e.state) } td { (e.actor) } td { (e.message.as_deref().unwrap_or("")) }
                } } }
            } }
        }
    }
}

pub async fn drive_log(
    State(state): State<AppState>,
    who: SignedIn,
    Path((job_id, drive_id, kind)): Path<(String, String, String)>,
) -> PageResult {
    let text = import_jobs::drive_log(&state, &who.principal, &job_id, &drive_id, &kind).await?;
    Ok(([(axum::http::header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}
