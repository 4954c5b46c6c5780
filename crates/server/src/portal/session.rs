//! Who is signed in to the portal: sign-in and sign-out, the session cookie, and
//! the CSRF token every form carries.
//!
//! A signed-in user becomes the same [`Principal`] an API credential would (a
//! subscription's user is `Principal::Subscription`, an operator
//! `Principal::Operator`), and the portal's pages call the services the API calls
//! with it: the portal cannot show or do anything the API would refuse that
//! principal.

use axum::extract::{FromRequestParts, State};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use cookie::{Cookie, SameSite};
use serde::Deserialize;

use super::layout::{page, PortalFailure};
use crate::auth::Principal;
use crate::db::portal::{PortalUserRow, SessionRow};
use crate::secrets;
use crate::sign_in_limit::Refusal;
use crate::source::ClientIp;
use crate::state::AppState;

const SESSION_COOKIE: &str = "offsite_session";
/// Set on the sign-in form and sent back with it: a forged sign-in (logging a
/// victim into the attacker's account) has no way to know it.
const SIGN_IN_COOKIE: &str = "offsite_sign_in";
const SESSION_SECONDS: i64 = 12 * 3600;

/// A request from a signed-in browser.
pub struct SignedIn {
    pub user: PortalUserRow,
    pub principal: Principal,
    pub csrf_token: String,
    session_id: String,
}

impl SignedIn {
    pub fn is_operator(&self) -> bool {
        self.principal == Principal::Operator
    }

    /// Every POST form of the portal carries the session's token; a request forged
    /// by another site cannot read it.
    pub fn check_csrf(&self, sent: &str) -> Result<(), PortalFailure> {
        if constant_time_eq(sent.as_bytes(), self.csrf_token.as_bytes()) {
            Ok(())
        } else {
            Err(PortalFailure::Forbidden(
                "this form is out of date or was not sent by the portal: reload the page and try again".into(),
            ))
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == name)
        .map(|cookie| cookie.value().to_string())
}

fn secret_hash(secret: &str) -> String {
    blake3::hash(secret.as_bytes()).to_hex().to_string()
}

fn principal_of(user: &PortalUserRow) -> Principal {
    match &user.subscription_id {
        // A person, not a credential: what they issue is limited by its own rules.
        Some(id) => Principal::Subscription { subscription_id: id.clone(), credential_expires: None },
        None => Principal::Operator,
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = PortalFailure;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = cookie_value(&parts.headers, SESSION_COOKIE).ok_or(PortalFailure::SignInNeeded)?;
        let (id, secret) = secrets::split_token(&token).ok_or(PortalFailure::SignInNeeded)?;
        let session = state.db.session(id).await?.ok_or(PortalFailure::SignInNeeded)?;
        if session.expires <= state.now().unix_timestamp()
            || !constant_time_eq(secret_hash(secret).as_bytes(), session.secret_hash.as_bytes())
        {
            return Err(PortalFailure::SignInNeeded);
        }
        let user = state.db.portal_user(&session.user_id).await?.ok_or(PortalFailure::SignInNeeded)?;
        // Disabled, or a new password since this sign-in: the session is over.
        if user.disabled.is_some() || user.session_epoch != session.session_epoch {
            return Err(PortalFailure::SignInNeeded);
        }
        Ok(SignedIn { principal: principal_of(&user), user, csrf_token: session.csrf_token, session_id: session.id })
    }
}

fn set_cookie(response: &mut Response, cookie: Cookie<'static>) {
    if let Ok(value) = cookie.to_string().parse() {
        response.headers_mut().append(SET_COOKIE, value);
    }
}

/// Cookies of the portal: only over HTTPS, never readable by scripts, sent on
/// top-level navigation from other sites (links in mail) but not on their forms.
fn portal_cookie(name: &'static str, value: String, max_age_seconds: i64) -> Cookie<'static> {
    Cookie::build((name, value))
        .path("/portal")
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Lax)
        .max_age(cookie::time::Duration::seconds(max_age_seconds))
        .build()
}

#[derive(Deserialize)]
pub struct SignInQuery {
    #[serde(default)]
    failed: bool,
}

pub async fn sign_in_form(axum::extract::Query(query): axum::extract::Query<SignInQuery>) -> Response {
    let token = secrets::random_hex();
    let markup = page(
        "Sign in",
        None,
        maud::html! {
            h1 { "Sign in to offsite" }
            @if query.failed {
                p.error role="alert" { "The email address or password is not right. Try again." }
            }
            form method="post" action="/portal/sign-in" {
                input type="hidden" name="csrf" value=(token);
                label for="email" { "Email address" }
                input #email type="email" name="email" autocomplete="username" required;
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
                button type="submit" { "Sign in" }
            }
        },
    );
    let mut response = markup.into_response();
    set_cookie(&mut response, portal_cookie(SIGN_IN_COOKIE, token, 3600));
    response
}

#[derive(Deserialize)]
pub struct SignInForm {
    email: String,
    password: String,
    /// Missing counts as wrong: refused as a forged form, not as a malformed one.
    #[serde(default)]
    csrf: String,
}

pub async fn sign_in(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Result<Response, PortalFailure> {
    let expected = cookie_value(&headers, SIGN_IN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(expected.as_bytes(), form.csrf.as_bytes()) {
        return Err(PortalFailure::Forbidden(
            "the sign-in form expired or was not sent by the portal: open the sign-in page again".into(),
        ));
    }
    let email = form.email.trim().to_lowercase();
    // Counted before the password is checked, so a burst gets no more checks than the limit.
    let now = state.now().unix_timestamp();
    let attempt = match state.sign_in_failures.begin(&state.db, &email, client, now).await? {
        Ok(attempt) => attempt,
        Err(refusal) => {
            let (minutes, whence) = match refusal {
                Refusal::FromThisSource { minutes } => (minutes, " from your network"),
                Refusal::ForTheAddress { minutes } => (minutes, ""),
            };
            tracing::warn!(email = %email, source = %client, ?refusal, "portal sign-in refused: too many failed attempts");
            return Err(PortalFailure::TooManyAttempts(format!(
                "too many failed sign-ins for this address{whence}: try again in {}",
                offsite_api::size::plural(minutes, "minute")
            )));
        }
    };
    let user = match state.db.portal_user_by_email(&email).await {
        Ok(user) => user,
        Err(err) => {
            attempt.withdraw().await?;
            return Err(err.into());
        }
    };
    // Without a user the password is still checked against a hash, so the answer
    // takes as long and says the same: addresses cannot be probed.
    let hash = user.as_ref().map(|u| u.password_hash.clone()).unwrap_or_else(|| DUMMY_HASH.with(|h| h.clone()));
    let password = form.password;
    state.sign_in_failures.password_checked();
    let source = Some(crate::source::Source::of(client));
    let ok = match secrets::verify_bounded(password, hash, source).await {
        Ok(ok) => ok,
        Err(err) => {
            attempt.withdraw().await?;
            return Err(PortalFailure::Internal(err));
        }
    };
    let Some(user) = user.filter(|_| ok) else {
        // The attempt stays counted.
        drop(attempt);
        tracing::info!(email = %email, source = %client, "portal sign-in refused");
        return Ok(Redirect::to("/portal/sign-in?failed=true").into_response());
    };
    // Said only to whoever knows the password.
    if user.disabled.is_some() {
        tracing::info!(user = %user.id, "portal sign-in refused: the user is disabled");
        return Err(PortalFailure::Forbidden(format!(
            "the portal account {} is disabled: ask the service operator to enable it \
             (offsite admin portal-user enable {})",
            user.email, user.email
        )));
    }
    let secret = secrets::random_hex();
    let session = SessionRow {
        id: secrets::new_id("ses"),
        user_id: user.id.clone(),
        secret_hash: secret_hash(&secret),
        csrf_token: secrets::random_hex(),
        expires: state.now().unix_timestamp() + SESSION_SECONDS,
        // The epoch read with the password hash: a change since then voids the session.
        session_epoch: user.session_epoch,
    };
    if let Err(err) = state.db.insert_session(&session, state.now().unix_timestamp()).await {
        attempt.withdraw().await?;
        return Err(err.into());
    }
    attempt.succeeded().await?;
    tracing::info!(user = %user.id, "portal sign-in");
    let mut response = Redirect::to("/portal/").into_response();
    set_cookie(&mut response, portal_cookie(SESSION_COOKIE, format!("{}.{secret}", session.id), SESSION_SECONDS));
    set_cookie(&mut response, portal_cookie(SIGN_IN_COOKIE, String::new(), 0));
    Ok(response)
}

thread_local! {
    static DUMMY_HASH: String = secrets::hash_password("no such user: this hash only spends the same time");
}

#[derive(Deserialize)]
pub struct CsrfForm {
    /// Missing counts as wrong: refused as a forged form, not as a malformed one.
    #[serde(default)]
    pub csrf: String,
}

pub async fn sign_out(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PortalFailure> {
    signed_in.check_csrf(&form.csrf)?;
    state.db.remove_session(&signed_in.session_id, state.now().unix_timestamp()).await?;
    let mut response = Redirect::to("/portal/sign-in").into_response();
    set_cookie(&mut response, portal_cookie(SESSION_COOKIE, String::new(), 0));
    Ok(response)
}
