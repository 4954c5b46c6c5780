//! Portal users (operators only): the people who sign in to the web portal, each a
//! subscription's user or an operator. The first operator is made here, with the
//! operator credentials; the portal's operator page makes the rest.

use offsite_api::types::{CreatePortalUser, PortalUser};

use crate::db::portal::PortalUserRow;
use crate::error::ApiResult;
use crate::principal::Principal;
use crate::secrets;
use crate::state::AppState;

/// Shorter passwords are refused when an operator creates a user.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Checks and stores a new portal user.
async fn add_user(
    state: &AppState,
    email: &str,
    password: &str,
    subscription_id: Option<String>,
) -> Result<PortalUserRow, crate::error::Failure> {
    use crate::error::Failure;
    let email = email.trim().to_lowercase();
    let plausible = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !email.contains(char::is_whitespace);
    if !plausible {
        return Err(Failure::BadRequest(format!("'{email}' is not an email address")));
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Failure::BadRequest(format!(
            "the password is too short: use at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
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
        created: time::OffsetDateTime::from_unix_timestamp(row.created).unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
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
