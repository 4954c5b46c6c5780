//! The operator's pages: datacenters and their addresses, packages on their way
//! (by tracking number) and receiving them, the ingest queue with each drive's
//! progress, jobs that missed their arrival deadline, and the portal's users.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use serde::Deserialize;

use offsite_api::types::*;

use super::customer::drive_percent;
use super::layout::{bytes, page, progress, when, PortalFailure};
use super::session::SignedIn;
use crate::auth::Principal;
use crate::services::datacenters;
use crate::services::import_jobs;
use crate::services::portal_users::{self, MIN_PASSWORD_CHARS};
use crate::state::AppState;
use offsite_seeding::import_job::Actor;

type PageResult = Result<Response, PortalFailure>;

/// Operators only; anyone else is told the page does not exist, as the API does.
fn operator_only(who: &SignedIn) -> Result<(), PortalFailure> {
    if who.is_operator() {
        Ok(())
    } else {
        Err(crate::error::Failure::not_found("this page").into())
    }
}

async fn all_import_jobs(
    state: &AppState,
    subscriptions: &[Subscription],
) -> Result<Vec<ImportJobView>, PortalFailure> {
    let mut jobs = Vec::new();
    for subscription in subscriptions {
        jobs.extend(import_jobs::list(state, &Principal::Operator, &subscription.id).await?);
    }
    Ok(jobs)
}

#[derive(Deserialize)]
pub struct OperatorQuery {
    created: Option<String>,
    /// A user just changed, and how (`disabled`, `enabled`, `password`, `removed`).
    user: Option<String>,
    change: Option<String>,
}

/// What the page says after a change to a user.
fn user_change_note(query: &OperatorQuery) -> Option<String> {
    let email = query.user.as_deref()?;
    Some(match query.change.as_deref()? {
        "disabled" => format!("User {email} disabled: their sessions ended; they cannot sign in until enabled."),
        "enabled" => format!("User {email} enabled: they may sign in again."),
        "password" => format!("User {email} has a new password: their sessions ended."),
        "removed" => format!("User {email} removed: their sessions ended."),
        _ => return None,
    })
}

pub async fn operations(
    State(state): State<AppState>,
    who: SignedIn,
    Query(query): Query<OperatorQuery>,
) -> PageResult {
    operator_only(&who)?;
    let datacenters = datacenters::list(&state, &Principal::Operator).await?;
    let subscriptions = state.db.subscriptions().await?;
    let jobs = all_import_jobs(&state, &subscriptions).await?;
    let incoming: Vec<&ImportJobView> = jobs.iter().filter(|j| j.state == ImportJobState::Shipping).collect();
    let ingesting: Vec<(&ImportJobView, &ImportJobDrive)> = jobs
        .iter()
        .filter(|j| matches!(j.state, ImportJobState::Received | ImportJobState::Transferring))
        .flat_map(|j| j.drives.iter().map(move |d| (j, d)))
        .filter(|(_, d)| matches!(d.state, ImportDriveState::Received | ImportDriveState::Transferring))
        .collect();
    let overdue: Vec<&ImportJobView> =
        jobs.iter().filter(|j| j.timeline.iter().any(|e| Actor::parse(&e.actor) == Actor::ArrivalDeadline)).collect();
    let users = state.db.portal_users().await?;
    let pending = crate::services::protection::pending(&state, &Principal::Operator).await?;
    Ok(page(
        "Operations",
        Some(&who),
        html! {
            h1 { "Operations" }
            @if let Some(email) = &query.created { p.ok role="status" { "User " (email) " created." } }
            @if let Some(note) = user_change_note(&query) { p.ok role="status" { (note) } }
            (super::protection::pending_requests(&who, &pending))
            section {
                h2 { "Datacenters" }
                @if datacenters.is_empty() { p { "None yet: " code { "offsite admin datacenter add" } "." } }
                div.scroll { table {
                    thead { tr { th scope="col" { "Datacenter" } th scope="col" { "Shipping address" } } }
                    tbody { @for d in &datacenters { tr { td { (d.name) } td { pre { (d.address) } } } } }
                } }
            }
            section #incoming {
                h2 { "Incoming packages" }
                @if incoming.is_empty() { p { "No package is on its way." } }
                @else { div.scroll { table {
                    thead { tr { th scope="col" { "Tracking number" } th scope="col" { "Carrier" } th scope="col" { "Import job" } th scope="col" { "Drives" } th scope="col" { "Arrive by" } th scope="col" { "" } } }
                    tbody { @for job in &incoming { tr {
                        @let shipping = job.shipping.as_ref();
                        td.mono { (shipping.map(|s| s.tracking_number.as_str()).unwrap_or("not given yet")) }
                        td { (shipping.map(|s| s.carrier.as_str()).unwrap_or("")) }
                        td { a href={ "/portal/import-jobs/" (job.id) } { (job.name) } }
                        td { (job.drives.len()) }
                        td { @if let Some(d) = job.arrival_deadline { (when(d)) } }
                        td { form.inline method="post" action={ "/portal/operator/import-jobs/" (job.id) "/receive" } {
                            input type="hidden" name="csrf" value=(who.csrf_token);
                            button type="submit" aria-label={ "Receive the package of " (job.name) } { "Receive package" }
                        } }
                    } } }
                } } }
            }
            section #ingest {
                h2 { "Ingest queue" }
                @if ingesting.is_empty() { p { "No drive is waiting for ingest." } }
                @else { div.scroll { table {
                    thead { tr { th scope="col" { "Import job" } th scope="col" { "Drive" } th scope="col" { "State" } th scope="col" { "Progress" } th scope="col" { "Ingested" } } }
                    tbody { @for (job, drive) in &ingesting { tr {
                        td { a href={ "/portal/import-jobs/" (job.id) } { (job.name) } }
                        td.mono { (drive.index) " · " (drive.drive_id) }
                        td.state { (drive.state.name()) }
                        td { (progress(drive_percent(drive), &format!("drive {} of {}", drive.index, job.name))) }
                        td { (bytes(drive.bytes_received)) @if let Some(total) = drive.data_bytes { " of " (bytes(total)) } }
                    } } }
                } } }
                p { "Ingest a drive at a station with " code { "offsite datacenter ingest --drive PATH" } "." }
            }
            section #overdue {
                h2 { "Past the 14-day arrival deadline" }
                @if overdue.is_empty() { p { "None." } }
                @else { ul { @for job in &overdue {
                    li { a href={ "/portal/import-jobs/" (job.id) } { (job.name) } " · closed by the deadline" }
                } } }
            }
            section #users {
                h2 { "Portal users" }
                div.scroll { table {
                    thead { tr { th scope="col" { "Email" } th scope="col" { "Role" } th scope="col" { "Created" } th scope="col" { "Status" } th scope="col" { "Change" } } }
                    tbody { @for u in &users { tr {
                        @let action = |what: &str| format!("/portal/operator/users/{}/{what}", u.id);
                        td { (u.email) }
                        td { @match &u.subscription_id { Some(id) => { "subscription " span.mono { (id) } }, None => "operator" } }
                        td { (when(time::OffsetDateTime::from_unix_timestamp(u.created).unwrap_or(time::OffsetDateTime::UNIX_EPOCH))) }
                        td.state { @match u.disabled { Some(since) => { "disabled since " (when(crate::db::time_of(since))) }, None => "active" } }
                        td {
                            @if u.disabled.is_some() {
                                form.inline method="post" action=(action("enable")) {
                                    input type="hidden" name="csrf" value=(who.csrf_token);
                                    button type="submit" aria-label={ "Enable " (u.email) } { "Enable" }
                                }
                            } @else {
                                form.inline method="post" action=(action("disable")) {
                                    input type="hidden" name="csrf" value=(who.csrf_token);
                                    button type="submit" aria-label={ "Disable " (u.email) ": their sessions end" } { "Disable" }
                                }
                            }
                            form.inline method="post" action=(action("password")) {
                                input type="hidden" name="csrf" value=(who.csrf_token);
                                label for={ "password-" (u.id) } { "New password for " (u.email) }
                                input id={ "password-" (u.id) } type="password" name="password" autocomplete="new-password" minlength=(MIN_PASSWORD_CHARS) required;
                                button type="submit" { "Set password" }
                            }
                            form.inline method="post" action=(action("remove")) {
                                input type="hidden" name="csrf" value=(who.csrf_token);
                                label { input type="checkbox" name="confirm" value="yes" required; " Remove " (u.email) " for good" }
                                button type="submit" { "Remove" }
                            }
                        }
                    } } }
                } }
                p { "Disabling a user, giving them a new password or removing them ends their sessions at once." }
                h3 { "Create a user" }
                form method="post" action="/portal/operator/users" {
                    input type="hidden" name="csrf" value=(who.csrf_token);
                    label for="new-email" { "Email address" }
                    input #new-email type="email" name="email" required;
                    label for="new-password" { "Password (at least " (MIN_PASSWORD_CHARS) " characters)" }
                    input #new-password type="password" name="password" autocomplete="new-password" minlength=(MIN_PASSWORD_CHARS) required;
                    label for="new-subscription" { "Subscription" }
                    select #new-subscription name="subscription" {
                        @for s in &subscriptions { option value=(s.id) { (s.name) } }
                        option value="" { "none: an operator" }
                    }
                    button type="submit" { "Create user" }
                }
            }
        },
    ))
}

#[derive(Deserialize)]
pub struct ReceiveForm {
    /// Missing counts as wrong: refused as a forged form, not as a malformed one.
    #[serde(default)]
    csrf: String,
}

pub async fn receive(
    State(state): State<AppState>,
    who: SignedIn,
    Path(job_id): Path<String>,
    Form(form): Form<ReceiveForm>,
) -> PageResult {
    operator_only(&who)?;
    who.check_csrf(&form.csrf)?;
    let note = ImportJobNote { message: Some(format!("received at the datacenter (portal, {})", who.user.email)) };
    import_jobs::receive(&state, &Principal::Operator, &job_id, note).await?;
    Ok(Redirect::to("/portal/operator#incoming").into_response())
}

#[derive(Deserialize)]
pub struct NewUserForm {
    /// Missing counts as wrong: refused as a forged form, not as a malformed one.
    #[serde(default)]
    csrf: String,
    email: String,
    password: String,
    /// Empty for an operator.
    subscription: String,
}

pub async fn create_user(State(state): State<AppState>, who: SignedIn, Form(form): Form<NewUserForm>) -> PageResult {
    operator_only(&who)?;
    who.check_csrf(&form.csrf)?;
    let subscription = Some(form.subscription).filter(|s| !s.is_empty());
    let new_user = CreatePortalUser { email: form.email, password: form.password, subscription_id: subscription };
    let user = portal_users::create(&state, &who.principal, new_user).await?;
    let email: String = url::form_urlencoded::byte_serialize(user.email.as_bytes()).collect();
    Ok(Redirect::to(&format!("/portal/operator?created={email}")).into_response())
}

#[derive(Deserialize)]
pub struct UserForm {
    /// Missing counts as wrong: refused as a forged form, not as a malformed one.
    #[serde(default)]
    csrf: String,
    /// The new password (the password form).
    #[serde(default)]
    password: String,
    /// `yes` when the removal was confirmed (the remove form).
    #[serde(default)]
    confirm: String,
}

fn user_changed(email: &str, change: &str) -> Response {
    let email: String = url::form_urlencoded::byte_serialize(email.as_bytes()).collect();
    Redirect::to(&format!("/portal/operator?user={email}&change={change}#users")).into_response()
}

pub async fn disable_user(
    State(state): State<AppState>,
    who: SignedIn,
    Path(user_id): Path<String>,
    Form(form): Form<UserForm>,
) -> PageResult {
    operator_only(&who)?;
    who.check_csrf(&form.csrf)?;
    let user = portal_users::disable(&state, &who.principal, &user_id).await?;
    Ok(user_changed(&user.email, "disabled"))
}

pub async fn enable_user(
    State(state): State<AppState>,
    who: SignedIn,
    Path(user_id): Path<String>,
    Form(form): Form<UserForm>,
) -> PageResult {
    operator_only(&who)?;
    who.check_csrf(&form.csrf)?;
    let user = portal_users::enable(&state, &who.principal, &user_id).await?;
    Ok(user_changed(&user.email, "enabled"))
}

pub async fn set_user_password(
    State(state): State<AppState>,
    who: SignedIn,
    Path(user_id): Path<String>,
    Form(form): Form<UserForm>,
) -> PageResult {
    operator_only(&who)?;
    who.check_csrf(&form.csrf)?;
    let body = SetPortalUserPassword { password: form.password };
    let user = portal_users::set_password(&state, &who.principal, &user_id, body).await?;
    Ok(user_changed(&user.email, "password"))
}

pub async fn remove_user(
    State(state): State<AppState>,
    who: SignedIn,
    Path(user_id): Path<String>,
    Form(form): Form<UserForm>,
) -> PageResult {
    operator_only(&who)?;
    who.check_csrf(&form.csrf)?;
    if form.confirm != "yes" {
        return Err(crate::error::Failure::BadRequest(
            "removing a user cannot be undone: tick the box beside Remove to confirm, then press Remove again".into(),
        )
        .into());
    }
    let user = portal_users::remove(&state, &who.principal, &user_id).await?;
    Ok(user_changed(&user.email, "removed"))
}
