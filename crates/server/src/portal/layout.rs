//! The portal's page shell (header, navigation, style sheet), how it says no, and
//! the few formatters every page uses.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup, DOCTYPE};
use time::OffsetDateTime;

use super::session::SignedIn;
use crate::db::DbError;
use crate::error::Failure;

/// What a portal page answers instead of itself.
#[derive(Debug)]
pub enum PortalFailure {
    /// No session, or an expired one: to the sign-in page.
    SignInNeeded,
    Forbidden(String),
    /// Sign-in attempts for an address used up for now.
    TooManyAttempts(String),
    /// The API's own refusal (not found, bad request, conflict…), shown as a page.
    Api(Failure),
    Internal(String),
}

impl From<Failure> for PortalFailure {
    fn from(failure: Failure) -> Self {
        PortalFailure::Api(failure)
    }
}

impl From<DbError> for PortalFailure {
    fn from(err: DbError) -> Self {
        PortalFailure::Api(err.into())
    }
}

impl IntoResponse for PortalFailure {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            PortalFailure::SignInNeeded => return Redirect::to("/portal/sign-in").into_response(),
            PortalFailure::Forbidden(message) => (StatusCode::FORBIDDEN, message),
            PortalFailure::TooManyAttempts(message) => (StatusCode::TOO_MANY_REQUESTS, message),
            // The API's status and sentence, as a page: it names the problem.
            PortalFailure::Api(failure) => (failure.status_and_code().0, failure.public_message()),
            PortalFailure::Internal(detail) => {
                tracing::error!(%detail, "portal page failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "the service failed inside; try again later".into())
            }
        };
        let title = status.canonical_reason().unwrap_or("Refused");
        let mut response = page(title, None, html! { h1 { (title) } p.error role="alert" { (message) } });
        *response.status_mut() = status;
        response
    }
}

/// The page shell. `who` is the signed-in user, for the navigation.
pub fn page(title: &str, who: Option<&SignedIn>, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · offsite" }
                link rel="stylesheet" href="/portal/style.css";
            }
            body {
                header {
                    a.brand href="/portal/" { "offsite" }
                    @if let Some(who) = who {
                        nav aria-label="Main" {
                            a href="/portal/" { "Overview" }
                            @if who.is_operator() { a href="/portal/operator" { "Operations" } }
                            span.who { (who.user.email) }
                            form.inline method="post" action="/portal/sign-out" {
                                input type="hidden" name="csrf" value=(who.csrf_token);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    };
    let mut response = markup.into_response();
    let headers = response.headers_mut();
    // Pages are only markup and one style sheet: nothing else may load or run.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub async fn style_sheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], STYLE)
        .into_response()
}

/// Readable on a phone: one column, tables scroll sideways inside their box.
const STYLE: &str = r#"
:root { --ink: #1d2733; --muted: #5b6875; --line: #d8dee4; --accent: #0b62a4; --bad: #b42318; --good: #1a7f37; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.45 system-ui, sans-serif; color: var(--ink); background: #f6f8fa; }
header { display: flex; flex-wrap: wrap; gap: .75rem; align-items: center; padding: .6rem 1rem; background: #fff; border-bottom: 1px solid var(--line); }
.brand { font-weight: 700; font-size: 1.2rem; color: var(--accent); text-decoration: none; margin-right: auto; }
nav { display: flex; flex-wrap: wrap; gap: .75rem; align-items: center; }
.who { color: var(--muted); }
main { max-width: 72rem; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.5rem; margin: .5rem 0 1rem; }
h2 { font-size: 1.15rem; margin: 1.5rem 0 .5rem; }
section > h2:first-child { margin-top: 0; }
section, .card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 1rem; margin-bottom: 1rem; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(10rem, 1fr)); gap: .75rem; margin-bottom: 1rem; }
.card .figure { font-size: 1.6rem; font-weight: 600; }
.card .label { color: var(--muted); }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
a { color: var(--accent); }
form { display: grid; gap: .4rem; max-width: 28rem; }
form.inline { display: inline; }
label { font-weight: 600; }
input, select, textarea, button { font: inherit; padding: .4rem .5rem; }
button { background: var(--accent); color: #fff; border: 0; border-radius: 4px; cursor: pointer; justify-self: start; }
.error { color: var(--bad); }
.ok { color: var(--good); }
.state { font-weight: 600; }
progress { width: 10rem; max-width: 60%; height: 1rem; accent-color: var(--accent); }
.chart { width: 100%; height: auto; max-width: 40rem; }
pre { margin: 0; font: inherit; white-space: pre-wrap; }
.mono { font-family: ui-monospace, monospace; word-break: break-all; }
"#;

pub fn when(time: OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time.format(&format).unwrap_or_else(|_| time.to_string())
}

pub fn when_opt(time: Option<OffsetDateTime>) -> String {
    time.map(when).unwrap_or_else(|| "never".into())
}

/// Binary units, as the CLI prints them.
pub fn bytes(count: u64) -> String {
    offsite_api::size::ByteSize(count).to_string()
}

/// A progress bar (the native element: accessible, and no inline style, which the
/// page's content security policy forbids), with its figure as text beside it.
pub fn progress(percent: u32, label: &str) -> Markup {
    let percent = percent.min(100);
    html! {
        progress value=(percent) max="100" aria-label=(label) { (percent) " %" }
        " " small { (percent) " %" }
    }
}
