//! A subscription's notification channels and messages: handlers take the
//! request apart and call [`crate::services::notifications`].

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};

use offsite_api::types::{
    CreateNotificationChannel, ErrorBody, Notification, NotificationChannel, NotificationChannelCreated,
};

use super::ApiJson;
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::services::notifications;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(add_channel, list_channels))
        .routes(routes!(remove_channel))
        .routes(routes!(list_notifications))
}

/// Adds an e-mail address or a webhook that hears of failed and missed backups,
/// import job steps, mass deletions and requests to weaken a vault's protection.
/// A webhook's signing secret is in this answer only.
#[utoipa::path(post, path = "/subscriptions/{subscription_id}/notification-channels", tag = "notifications",
    security(("bearer" = [])), params(("subscription_id" = String, Path)), request_body = CreateNotificationChannel,
    responses((status = 201, body = NotificationChannelCreated), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn add_channel(
    State(state): State<AppState>,
    principal: Principal,
    Path(subscription_id): Path<String>,
    ApiJson(body): ApiJson<CreateNotificationChannel>,
) -> ApiResult<(StatusCode, Json<NotificationChannelCreated>)> {
    Ok((StatusCode::CREATED, Json(notifications::add(&state, &principal, &subscription_id, body).await?)))
}

#[utoipa::path(get, path = "/subscriptions/{subscription_id}/notification-channels", tag = "notifications",
    security(("bearer" = [])), params(("subscription_id" = String, Path)),
    responses((status = 200, body = Vec<NotificationChannel>), (status = 404, body = ErrorBody)))]
async fn list_channels(
    State(state): State<AppState>,
    principal: Principal,
    Path(subscription_id): Path<String>,
) -> ApiResult<Json<Vec<NotificationChannel>>> {
    Ok(Json(notifications::list(&state, &principal, &subscription_id).await?))
}

/// Removes a channel and its messages.
#[utoipa::path(delete, path = "/subscriptions/{subscription_id}/notification-channels/{channel_id}",
    tag = "notifications", security(("bearer" = [])),
    params(("subscription_id" = String, Path), ("channel_id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn remove_channel(
    State(state): State<AppState>,
    principal: Principal,
    Path((subscription_id, channel_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    notifications::remove(&state, &principal, &subscription_id, &channel_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The most recent messages, newest first: sent, pending (with the last error)
/// or given up.
#[utoipa::path(get, path = "/subscriptions/{subscription_id}/notifications", tag = "notifications",
    security(("bearer" = [])), params(("subscription_id" = String, Path)),
    responses((status = 200, body = Vec<Notification>), (status = 404, body = ErrorBody)))]
async fn list_notifications(
    State(state): State<AppState>,
    principal: Principal,
    Path(subscription_id): Path<String>,
) -> ApiResult<Json<Vec<Notification>>> {
    Ok(Json(notifications::sent(&state, &principal, &subscription_id).await?))
}
