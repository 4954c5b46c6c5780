//! Portal users (operators only): the people who sign in to the web portal, each a
//! subscription's user or an operator. The first operator is made here, with the
//! operator credentials; the portal's operator page makes the rest. Operators
//! also disable, enable, re-password and remove them; each of those but enabling
//! ends the user's sessions at once (see `db::portal`).

use offsite_api::types::{CreatePortalUser, PortalUser, SetPortalUserPassword};

use crate::db::portal::PortalUserRow;
use crate::error::{ApiResult, Failure};
use crate::principal::Principal;
use crate::secrets;
use crate::state::AppState;

/// Shorter passwords are refused when an operator creates a user.
pub const MIN_PASSWORD_CHARS: usize = 12;

fn check_password(password: &str) -> Result<(), crate::error::Failure> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(crate::error::Failure::BadRequest(format!(
            "the password is too short: use at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

/// Checks and stores a new portal user.
async fn add_user(
    state: &AppState,
    email: &str,
    password: &str,
    subscription_id: Option<String>,
) -> Result<PortalUserRow, crate::error::Failure> {
    let email = email.trim().to_lowercase();
    let plausible = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !email.contains(char::is_whitespace);
    if !plausible {
        return Err(Failure::BadRequest(format!("'{email}' is not an email address")));
    }
    check_password(password)?;
    if let Some(id) = &subscription_id {
        if state.db.subscription(id).await?.is_none() {
            return Err(Failure::not_found(format!("subscription {id}")));
        }
    }
    let password_hash = secrets::hash_password_bounded(password.to_string()).await.map_err(Failure::Internal)?;
    let user = PortalUserRow {
        id: secrets::new_id("usr"),
        email,
        subscription_id,
        password_hash,
        created: state.now().unix_timestamp(),
        disabled: None,
        session_epoch: 0,
    };
    state.db.insert_portal_user(&user).await?;
    tracing::info!(user = %user.id, subscription = ?user.subscription_id, "portal user created");
    Ok(user)
}

fn view(row: PortalUserRow) -> PortalUser {
    PortalUser {
        id: row.id,
        email: row.email,
        subscription_id: row.subscription_id,
        created: crate::db::time_of(row.created),
        disabled: row.disabled.map(crate::db::time_of),
    }
}

/// Creates a portal user (operators only).
pub async fn create(state: &AppState, principal: &Principal, body: CreatePortalUser) -> ApiResult<PortalUser> {
    principal.require_operator()?;
    let row = add_user(state, &body.email, &body.password, body.subscription_id).await?;
    Ok(view(row))
}

/// Every portal user (operators only); never their password hashes.
pub async fn list(state: &AppState, principal: &Principal) -> ApiResult<Vec<PortalUser>> {
    principal.require_operator()?;
    Ok(state.db.portal_users().await?.into_iter().map(view).collect())
}

fn missing(user_id: &str) -> Failure {
    Failure::not_found(format!("portal user {user_id} (see `offsite admin portal-user list`)"))
}

/// The user, after the operator check; "not found" when there is none.
async fn operated(state: &AppState, principal: &Principal, user_id: &str) -> ApiResult<PortalUserRow> {
    principal.require_operator()?;
    state.db.portal_user(user_id).await?.ok_or_else(|| missing(user_id))
}

/// Reads the user back after a change; "not found" when it went in between.
async fn reread(state: &AppState, user_id: &str, changed: bool) -> ApiResult<PortalUser> {
    if !changed {
        return Err(missing(user_id));
    }
    Ok(view(state.db.portal_user(user_id).await?.ok_or_else(|| missing(user_id))?))
}

/// Disables a portal user (operators only): they cannot sign in, and their
/// sessions end at once. Disabling a disabled user changes nothing.
pub async fn disable(state: &AppState, principal: &Principal, user_id: &str) -> ApiResult<PortalUser> {
    let user = operated(state, principal, user_id).await?;
    let changed = state.db.set_portal_user_disabled(&user.id, Some(state.now().unix_timestamp())).await?;
    tracing::info!(user = %user.id, "portal user disabled; their sessions ended");
    reread(state, &user.id, changed).await
}

/// Enables a disabled portal user again (operators only): they may sign in.
pub async fn enable(state: &AppState, principal: &Principal, user_id: &str) -> ApiResult<PortalUser> {
    let user = operated(state, principal, user_id).await?;
    let changed = state.db.set_portal_user_disabled(&user.id, None).await?;
    tracing::info!(user = %user.id, "portal user enabled");
    reread(state, &user.id, changed).await
}

/// Gives a portal user a new password (operators only); their sessions end at
/// once, and the old password signs in no more.
pub async fn set_password(
    state: &AppState,
    principal: &Principal,
    user_id: &str,
    body: SetPortalUserPassword,
) -> ApiResult<PortalUser> {
    let user = operated(state, principal, user_id).await?;
    check_password(&body.password)?;
    let hash = secrets::hash_password_bounded(body.password).await.map_err(Failure::Internal)?;
    let changed = state.db.set_portal_user_password(&user.id, &hash).await?;
    tracing::info!(user = %user.id, "portal user given a new password; their sessions ended");
    reread(state, &user.id, changed).await
}

/// Removes a portal user (operators only); their sessions end at once. Answers
/// the user as they were.
pub async fn remove(state: &AppState, principal: &Principal, user_id: &str) -> ApiResult<PortalUser> {
    let user = operated(state, principal, user_id).await?;
    if !state.db.remove_portal_user(&user.id).await? {
        return Err(missing(user_id));
    }
    tracing::info!(user = %user.id, "portal user removed; their sessions ended");
    Ok(view(user))
}
