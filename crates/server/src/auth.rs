//! Who is calling. Every API request but `/register`'s vault credential and the
//! public endpoints presents a bearer credential or a signed application request;
//! this module turns it into a [`Principal`] (what each may touch is said there).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::clock::format_seconds as format_time;
use crate::db::{CredentialKind, CredentialRow};
use crate::error::Failure;
pub use crate::principal::Principal;
use crate::secrets;
use crate::source::Source;
use crate::state::AppState;

fn unauthorized(message: &str) -> Failure {
    Failure::Unauthorized(message.to_string())
}

/// Checks a bearer token and resolves whom it speaks for. `source` is where the
/// request came from: its Argon2 check waits for that source's turn.
pub async fn authenticate(state: &AppState, token: &str, source: Option<Source>) -> Result<Principal, Failure> {
    let bad = || unauthorized("the credential is not valid: check the credentials file, or download a new one");
    let (id, secret) = secrets::split_token(token).ok_or_else(bad)?;
    let row: CredentialRow = state.db.credential(id).await?.ok_or_else(bad)?;
    if let Some(at) = row.revoked {
        return Err(match row.kind {
            CredentialKind::Machine => Failure::Unauthorized(format!(
                "this machine was removed from its vault at {}: its credential no longer works. \
                 Register it again with new vault credentials",
                format_time(at)
            )),
            CredentialKind::Station => Failure::Unauthorized(format!(
                "this station credential was revoked at {}: the operator issues a new one \
                 (offsite admin datacenter station-credential issue DATACENTER --output FILE)",
                format_time(at)
            )),
            _ => Failure::Unauthorized(format!("this credential was revoked at {}", format_time(at))),
        });
    }
    if let Some(expires) = row.expires {
        if state.now().unix_timestamp() >= expires {
            return Err(Failure::Unauthorized(match row.kind {
                CredentialKind::Station => format!(
                    "this station credential expired at {}: the operator issues a new one \
                     (offsite admin datacenter station-credential issue DATACENTER --output FILE)",
                    format_time(expires)
                ),
                CredentialKind::Subscription => format!(
                    "this management credential expired at {}: download new publish settings from the portal, \
                     or have an operator issue them (offsite admin subscription issue-credential --subscription {} \
                     --output new.publishsettings)",
                    format_time(expires),
                    row.subject
                ),
                _ => format!(
                    "these vault credentials expired at {}: download new ones (offsite admin vault credentials)",
                    format_time(expires)
                ),
            }));
        }
    }
    if let CredentialKind::VaultRegistration = row.kind {
        if let Some(machine) = &row.used_by {
            return Err(Failure::Unauthorized(format!(
                "these vault credentials were already used to register machine {machine}: \
                 each file registers one machine; download new ones"
            )));
        }
    }
    // Only now the secret, with Argon2: a revoked, expired or used credential is
    // refused above without it, so a flood of requests naming one cannot take the
    // Argon2 slots that live credentials need. (Its id is 128 random bits: saying
    // why it no longer works tells nothing to someone who cannot guess one.)
    if !state.verified.is_verified(token) {
        let hash = row.secret_hash.clone();
        let secret = secret.to_string();
        let ok = secrets::verify_bounded(secret, hash, source).await.map_err(Failure::Internal)?;
        if !ok {
            return Err(bad());
        }
        state.verified.remember(token);
    }
    match row.kind {
        CredentialKind::Operator => Ok(Principal::Operator),
        CredentialKind::Subscription => {
            Ok(Principal::Subscription { subscription_id: row.subject, credential_expires: row.expires })
        }
        CredentialKind::VaultRegistration => {
            Ok(Principal::Registration { credential_id: row.id, vault_id: row.subject })
        }
        CredentialKind::Station => {
            // A datacenter is never removed today; if one ever is, its stations go with it.
            let datacenter = state.db.datacenter(&row.subject).await?.ok_or_else(bad)?;
            Ok(Principal::Station { credential_id: row.id, datacenter_id: datacenter.id })
        }
        CredentialKind::Machine => {
            let machine = state.db.machine(&row.subject).await?.ok_or_else(bad)?;
            let vault = state.db.vault(&machine.vault_id).await?.ok_or_else(bad)?;
            Ok(Principal::Machine {
                machine_id: machine.id,
                vault_id: vault.id,
                subscription_id: vault.subscription_id,
            })
        }
    }
}

/// Checks a signed application request (`Authorization: OffsiteApp …`): the
/// certificate must be one of the application's and valid now, the time within
/// ±5 minutes of the service's clock, the signature over method, path and query,
/// time, nonce and body hash good, and the nonce not seen before. That the body
/// matches its hash is checked as it is read ([`crate::signed_body`]).
pub async fn authenticate_application(
    state: &AppState,
    credentials: &str,
    method: &str,
    path_and_query: &str,
) -> Result<Principal, Failure> {
    use offsite_api::application_auth::{parse_header, signed_message, MAX_SKEW_SECONDS};
    let header = parse_header(credentials).map_err(|e| unauthorized(&e))?;
    let bad = || {
        unauthorized(
            "the application signature is not valid: the application or certificate is not registered, or the \
             request was signed with another key. Check OfflineApplicationParams.xml and the application key",
        )
    };
    let now = state.now().unix_timestamp();
    if (header.unix_seconds - now).abs() > MAX_SKEW_SECONDS {
        return Err(Failure::Unauthorized(format!(
            "the signed request's time is {} seconds from the service's clock (at most {MAX_SKEW_SECONDS} are \
             accepted): set this computer's clock right",
            header.unix_seconds - now
        )));
    }
    let application = state.db.application(&header.application_id).await?.ok_or_else(bad)?;
    let (certificate, expires) =
        state.db.application_certificate(&application.id, &header.thumbprint).await?.ok_or_else(bad)?;
    if let Some((not_before, not_after)) = crate::certificates::validity(&certificate) {
        if let Some(before) = not_before.filter(|t| now < *t) {
            return Err(Failure::Unauthorized(format!(
                "certificate {} is not valid before {}: sign with a certificate valid now",
                header.thumbprint,
                format_time(before)
            )));
        }
        if let Some(after) = not_after.filter(|t| now > *t) {
            return Err(Failure::Unauthorized(format!(
                "certificate {} expired at {}: make a new one (offsite certgen) and upload it \
                 (offsite admin application upload-cert)",
                header.thumbprint,
                format_time(after)
            )));
        }
    }
    let message = signed_message(method, path_and_query, header.unix_seconds, &header.nonce, &header.body_sha256);
    let signature = header.signature;
    let ok = tokio::task::spawn_blocking(move || crate::certificates::verify(&certificate, &message, &signature))
        .await
        .map_err(|e| Failure::Internal(e.to_string()))?;
    if !ok {
        return Err(bad());
    }
    // Checked after the signature, so only the key's holder learns it.
    if let Some(expires) = expires.filter(|&expires| now >= expires) {
        return Err(Failure::Unauthorized(format!(
            "certificate {} was registered with a management credential that expired at {}, and stopped signing \
             with it: with current publish settings, remove it (offsite admin application remove-cert {}) and \
             upload it again (offsite certgen export-cert, then offsite admin application upload-cert --cert FILE)",
            header.thumbprint,
            format_time(expires),
            header.thumbprint
        )));
    }
    // Only a valid signature spends its nonce: a forger cannot burn real ones.
    // Kept for as long as the time in it is accepted, on every replica alike.
    if !state.db.remember_nonce(&application.id, &header.nonce, header.unix_seconds + MAX_SKEW_SECONDS).await? {
        return Err(unauthorized(
            "this signed request was sent before (its nonce was used): a replay is refused; sign each request anew",
        ));
    }
    Ok(Principal::Application {
        application_id: application.id,
        subscription_id: application.subscription_id,
        thumbprint: header.thumbprint,
    })
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("this request needs a credential (Authorization: Bearer …)"))?;
        let text = header.to_str().map_err(|_| unauthorized("the Authorization header is not text"))?;
        let original = parts.extensions.get::<axum::extract::OriginalUri>().map(|o| o.0.clone());
        let principal = if let Some(signed) = text.strip_prefix("OffsiteApp ") {
            let uri = original.as_ref().unwrap_or(&parts.uri);
            let path_and_query = uri.path_and_query().map(|p| p.as_str()).unwrap_or(uri.path());
            authenticate_application(state, signed, parts.method.as_str(), path_and_query).await?
        } else {
            let token = text.strip_prefix("Bearer ").ok_or_else(|| {
                unauthorized("the Authorization header must be 'Bearer <credential>' (or a signed 'OffsiteApp …')")
            })?;
            let source = crate::source::client_ip(&parts.extensions).map(Source::of);
            authenticate(state, token.trim(), source).await?
        };
        // Vault credentials do one thing; refusing them everywhere else here means
        // no handler can forget to.
        // Inside the nested /api/v1 router the URI has lost its prefix; the original keeps it.
        let path = parts.extensions.get::<axum::extract::OriginalUri>().map(|o| o.0.path()).unwrap_or(parts.uri.path());
        if matches!(principal, Principal::Registration { .. }) && path != "/api/v1/register" {
            return Err(Failure::Forbidden(
                "vault credentials can only register a machine (POST /api/v1/register)".into(),
            ));
        }
        Ok(principal)
    }
}
