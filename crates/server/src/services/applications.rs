//! The offline-seeding application identity of a subscription (the seed's Azure AD
//! application). `offsite certgen` creates it with its first certificate; more
//! certificates are uploaded by hand when certgen runs on another machine. The
//! application then authenticates by signing requests with a certificate's key
//! (see `auth.rs`); it may do what offline seeding needs and nothing else.

use offsite_api::types::{Application, ApplicationCertificate, CertificateChallenge, UploadCertificate};

use crate::certificates::{self, ParsedCertificate};
use crate::db::seeding::{ApplicationRow, CertificateRow, NewApplication};
use crate::db::time_of;
use crate::error::{ApiResult, Failure};
use crate::principal::Principal;
use crate::secrets;
use crate::services::subscriptions::managed;
use crate::state::AppState;

fn added_by(principal: &Principal) -> String {
    match principal {
        Principal::Subscription { subscription_id, .. } => subscription_id.clone(),
        _ => "operator".into(),
    }
}

/// How long a challenge can be answered: the manual path (certgen on one
/// machine, the upload from another, maybe by another person) may take a day.
const CHALLENGE_SECONDS: i64 = 24 * 3600;

const HOW_TO_PROVE: &str = "on the machine that holds the certificate's key, run `offsite certgen export-cert \
    --challenge CHALLENGE --out FILE.cer` with a challenge from `offsite admin application challenge` (or the \
    portal's application page), and upload that file";

/// Reads an upload and checks its proof of possession: the certificate's key
/// signed a challenge this subscription was given, which is then spent.
async fn parse_proven(
    state: &AppState,
    subscription_id: &str,
    body: &UploadCertificate,
) -> ApiResult<ParsedCertificate> {
    let parsed = certificates::parse_upload(&body.certificate).map_err(Failure::BadRequest)?;
    let Some(proof) = &body.possession else {
        return Err(Failure::BadRequest(format!(
            "a certificate upload needs proof that you hold its private key: {HOW_TO_PROVE}"
        )));
    };
    let signature = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &proof.signature)
        .map_err(|_| Failure::BadRequest("the possession proof's signature is not base64".into()))?;
    let message = offsite_api::possession::message(&proof.challenge, &parsed.thumbprint);
    let der = parsed.der.clone();
    let signed = tokio::task::spawn_blocking(move || certificates::verify(&der, &message, &signature))
        .await
        .map_err(|e| Failure::Internal(e.to_string()))?;
    if !signed {
        return Err(Failure::Forbidden(format!(
            "the possession proof was not made with the key of certificate {} for challenge {}: {HOW_TO_PROVE}",
            parsed.thumbprint, proof.challenge
        )));
    }
    // Spent only by a good signature: someone without the key cannot use it up.
    let now = state.now().unix_timestamp();
    if !state.db.take_certificate_challenge(&proof.challenge, subscription_id, now).await? {
        return Err(Failure::Forbidden(format!(
            "challenge {} is not one this subscription was given, was used already, or expired: get a new one \
             (offsite admin application challenge) and prove possession again",
            proof.challenge
        )));
    }
    Ok(parsed)
}

/// Gives the subscription a challenge to sign with a certificate's key before
/// uploading the certificate (single use, for a day).
pub async fn challenge(
    state: &AppState,
    principal: &Principal,
    subscription_id: &str,
) -> ApiResult<CertificateChallenge> {
    let subscription = managed(state, principal, subscription_id).await?;
    let challenge = format!("chl_{}", secrets::random_hex());
    let expires = state.now().unix_timestamp() + CHALLENGE_SECONDS;
    state.db.insert_certificate_challenge(&challenge, &subscription.id, expires).await?;
    Ok(CertificateChallenge { challenge, expires: time_of(expires) })
}

async fn view(state: &AppState, app: ApplicationRow) -> ApiResult<Application> {
    let certificates = state
        .db
        .application_certificates(&app.id)
        .await?
        .into_iter()
        .map(|c| ApplicationCertificate {
            not_after: certificates::parse_der(&c.der).ok().and_then(|p| p.not_after).map(time_of),
            thumbprint: c.thumbprint,
            added: time_of(c.added),
            expires: c.expires.map(time_of),
        })
        .collect();
    Ok(Application { id: app.id, subscription_id: app.subscription_id, created: time_of(app.created), certificates })
}

fn exists_message(subscription_id: &str) -> String {
    format!(
        "subscription {subscription_id} already has an offline-seeding application. To use it from this machine: \
         get a challenge with `offsite admin application challenge`, export the certificate with its proof of \
         possession with `offsite certgen export-cert --challenge CHALLENGE`, upload it with `offsite admin \
         application upload-cert`, record its thumbprint with `offsite certgen add-agent-entries`"
    )
}

fn certificate_taken(thumbprint: &str) -> Failure {
    Failure::Conflict(format!("the application already has certificate {thumbprint}"))
}

async fn application_of(state: &AppState, subscription_id: &str) -> ApiResult<ApplicationRow> {
    state.db.application_of(subscription_id).await?.ok_or_else(|| {
        Failure::NotFound(format!(
            "subscription {subscription_id} has no offline-seeding application yet: create it with \
             `offsite certgen create-application`"
        ))
    })
}

/// Creates the subscription's application with its first certificate (certgen).
/// A subscription has one application: a second answers 409 `application_exists`.
pub async fn create(
    state: &AppState,
    principal: &Principal,
    subscription_id: &str,
    body: UploadCertificate,
) -> ApiResult<Application> {
    let subscription = managed(state, principal, subscription_id).await?;
    let exists = || Failure::ConflictCode { code: "application_exists", message: exists_message(&subscription.id) };
    if state.db.application_of(&subscription.id).await?.is_some() {
        return Err(exists());
    }
    let parsed = parse_proven(state, &subscription.id, &body).await?;
    let now = state.now().unix_timestamp();
    let app = ApplicationRow { id: secrets::new_id("app"), subscription_id: subscription.id.clone(), created: now };
    let cert = CertificateRow {
        thumbprint: parsed.thumbprint.clone(),
        der: parsed.der,
        added: now,
        added_by: added_by(principal),
        // A certificate is a credential too: it signs no longer than its registrar works.
        expires: principal.cap_expiry(None).0,
    };
    match state.db.insert_application(&app, &cert).await? {
        NewApplication::Created => {}
        NewApplication::Exists => return Err(exists()),
    }
    tracing::info!(application = %app.id, subscription = %app.subscription_id, thumbprint = %cert.thumbprint,
        "offline-seeding application created");
    view(state, app).await
}

/// The subscription's application and its certificates.
pub async fn get(state: &AppState, principal: &Principal, subscription_id: &str) -> ApiResult<Application> {
    let subscription = managed(state, principal, subscription_id).await?;
    let app = application_of(state, &subscription.id).await?;
    view(state, app).await
}

/// Registers another certificate of the application (the manual path, when the
/// application was created on another machine).
pub async fn upload_certificate(
    state: &AppState,
    principal: &Principal,
    subscription_id: &str,
    body: UploadCertificate,
) -> ApiResult<Application> {
    let subscription = managed(state, principal, subscription_id).await?;
    let app = application_of(state, &subscription.id).await?;
    let parsed = parse_proven(state, &subscription.id, &body).await?;
    let cert = CertificateRow {
        thumbprint: parsed.thumbprint.clone(),
        der: parsed.der,
        added: state.now().unix_timestamp(),
        added_by: added_by(principal),
        expires: principal.cap_expiry(None).0,
    };
    match state.db.insert_application_certificate(&app.id, &cert).await {
        Err(crate::db::DbError::Conflict(_)) => return Err(certificate_taken(&cert.thumbprint)),
        other => other?,
    }
    tracing::info!(application = %app.id, thumbprint = %cert.thumbprint, "application certificate added");
    view(state, app).await
}

/// Removes a certificate of the application (operators and the subscription): a
/// lost or retired machine's key stops signing at once. The application itself
/// may not; removing its last certificate leaves it unable to sign until one is
/// uploaded again.
pub async fn remove_certificate(
    state: &AppState,
    principal: &Principal,
    subscription_id: &str,
    thumbprint: &str,
) -> ApiResult<Application> {
    let subscription = managed(state, principal, subscription_id).await?;
    let app = application_of(state, &subscription.id).await?;
    let thumbprint = thumbprint.to_ascii_uppercase();
    if !state.db.remove_application_certificate(&app.id, &thumbprint).await? {
        return Err(Failure::not_found(format!("certificate {thumbprint} of the offline-seeding application")));
    }
    tracing::info!(application = %app.id, thumbprint = %thumbprint, "application certificate removed");
    view(state, app).await
}
