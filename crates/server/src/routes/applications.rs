//! The applications API: handlers take the request apart and call
//! [`crate::services::applications`], where the rules are.

use axum::extract::{Path, State};
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};

use offsite_api::types::{Application, CertificateChallenge, ErrorBody, NewCertificateChallenge, UploadCertificate};

use super::ApiJson;
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::services::applications;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_application, get_application))
        .routes(routes!(certificate_challenge))
        .routes(routes!(upload_certificate))
        .routes(routes!(remove_certificate))
}

/// Creates the subscription's application with its first certificate (certgen).
/// A subscription has one application: a second answers 409 `application_exists`.
#[utoipa::path(post, path = "/subscriptions/{subscription_id}/application", tag = "applications",
    security(("bearer" = [])), params(("subscription_id" = String, Path)), request_body = UploadCertificate,
    responses((status = 200, body = Application), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "the proof of possession does not hold"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "`application_exists`")))]
async fn create_application(
    State(state): State<AppState>,
    principal: Principal,
    Path(subscription_id): Path<String>,
    ApiJson(body): ApiJson<UploadCertificate>,
) -> ApiResult<Json<Application>> {
    Ok(Json(applications::create(&state, &principal, &subscription_id, body).await?))
}

/// The subscription's application and its certificates.
#[utoipa::path(get, path = "/subscriptions/{subscription_id}/application", tag = "applications",
    security(("bearer" = [])), params(("subscription_id" = String, Path)),
    responses((status = 200, body = Application), (status = 404, body = ErrorBody)))]
async fn get_application(
    State(state): State<AppState>,
    principal: Principal,
    Path(subscription_id): Path<String>,
) -> ApiResult<Json<Application>> {
    Ok(Json(applications::get(&state, &principal, &subscription_id).await?))
}

/// A challenge to sign with a certificate's key: every certificate upload carries
/// such a proof of possession. Single use, for this subscription, for a day.
#[utoipa::path(post, path = "/subscriptions/{subscription_id}/application/challenge", tag = "applications",
    security(("bearer" = [])), params(("subscription_id" = String, Path)), request_body = NewCertificateChallenge,
    responses((status = 200, body = CertificateChallenge), (status = 404, body = ErrorBody)))]
async fn certificate_challenge(
    State(state): State<AppState>,
    principal: Principal,
    Path(subscription_id): Path<String>,
    ApiJson(_body): ApiJson<NewCertificateChallenge>,
) -> ApiResult<Json<CertificateChallenge>> {
    Ok(Json(applications::challenge(&state, &principal, &subscription_id).await?))
}

/// Registers another certificate of the application (the manual path, when the
/// application was created on another machine).
#[utoipa::path(post, path = "/subscriptions/{subscription_id}/application/certificates", tag = "applications",
    security(("bearer" = [])), params(("subscription_id" = String, Path)), request_body = UploadCertificate,
    responses((status = 200, body = Application), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "the proof of possession does not hold"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "the application has it")))]
async fn upload_certificate(
    State(state): State<AppState>,
    principal: Principal,
    Path(subscription_id): Path<String>,
    ApiJson(body): ApiJson<UploadCertificate>,
) -> ApiResult<Json<Application>> {
    Ok(Json(applications::upload_certificate(&state, &principal, &subscription_id, body).await?))
}

/// Removes a certificate of the application (operators and the subscription): a
/// lost or retired machine's key stops signing at once. The application itself
/// may not; removing its last certificate leaves it unable to sign until one is
/// uploaded again.
#[utoipa::path(delete, path = "/subscriptions/{subscription_id}/application/certificates/{thumbprint}",
    tag = "applications", security(("bearer" = [])),
    params(("subscription_id" = String, Path), ("thumbprint" = String, Path)),
    responses((status = 200, body = Application), (status = 404, body = ErrorBody)))]
async fn remove_certificate(
    State(state): State<AppState>,
    principal: Principal,
    Path((subscription_id, thumbprint)): Path<(String, String)>,
) -> ApiResult<Json<Application>> {
    Ok(Json(applications::remove_certificate(&state, &principal, &subscription_id, &thumbprint).await?))
}
