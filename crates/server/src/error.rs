//! How the service says no: one enum of the answers a caller can act on, each a
//! status code, a stable `code` and a sentence naming the problem.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use offsite_api::types::ErrorBody;

use crate::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    /// A conflict with its own stable code, for callers that act on it.
    #[error("{message}")]
    ConflictCode { code: &'static str, message: String },
    #[error("{0}")]
    TooLarge(String),
    #[error("the range asked for starts beyond the end of the file ({size} bytes)")]
    RangeNotSatisfiable { size: u64 },
    #[error("{0}")]
    InsufficientStorage(String),
    #[error("{0}")]
    Unavailable(String),
    /// Details go to the log, not to the caller.
    #[error("internal error")]
    Internal(String),
}

pub type ApiResult<T> = Result<T, Failure>;

impl Failure {
    pub fn not_found(what: impl std::fmt::Display) -> Failure {
        Failure::NotFound(format!("{what} does not exist, or you may not see it"))
    }
}

impl Failure {
    /// The HTTP status and stable code this failure is answered with.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Failure::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Failure::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Failure::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Failure::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Failure::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Failure::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Failure::ConflictCode { code, .. } => (StatusCode::CONFLICT, *code),
            Failure::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            Failure::RangeNotSatisfiable { .. } => (StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable"),
            Failure::InsufficientStorage(_) => (StatusCode::INSUFFICIENT_STORAGE, "storage_full"),
            Failure::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Failure::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// The sentence told to the caller; an internal failure's details go to the log.
    pub fn public_message(&self) -> String {
        match self {
            Failure::Internal(detail) => {
                tracing::error!(%detail, "request failed");
                "the service failed inside; its log has the details. Try again later".to_string()
            }
            other => other.to_string(),
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let error = self.public_message();
        let mut response = (status, Json(ErrorBody { error, code: code.into() })).into_response();
        if let Failure::RangeNotSatisfiable { size } = self {
            if let Ok(value) = axum::http::HeaderValue::from_str(&format!("bytes */{size}")) {
                response.headers_mut().insert(axum::http::header::CONTENT_RANGE, value);
            }
        }
        response
    }
}

impl From<axum::extract::rejection::JsonRejection> for Failure {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Failure {
        let text = rejection.body_text();
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            return Failure::TooLarge(format!("the request body is too large: {text}"));
        }
        Failure::BadRequest(format!("the request body is not what this endpoint takes: {text}"))
    }
}

impl From<axum::extract::rejection::QueryRejection> for Failure {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Failure {
        Failure::BadRequest(format!("the query parameters are not what this endpoint takes: {}", rejection.body_text()))
    }
}

impl From<DbError> for Failure {
    fn from(err: DbError) -> Failure {
        match err {
            DbError::Conflict(what) => Failure::Conflict(format!("{what} already exists")),
            DbError::Unavailable { .. } => Failure::Unavailable(err.to_string()),
            DbError::Query(ref e) if database_full(e) => {
                tracing::error!(error = %e, "the database is full");
                Failure::InsufficientStorage(
                    "the service's database is full: nothing was changed; retry after the operator frees space \
                     where the service keeps its database (its data folder)"
                        .into(),
                )
            }
            other => Failure::Internal(other.to_string()),
        }
    }
}

/// SQLite's SQLITE_FULL (13) or PostgreSQL's disk_full (53100).
fn database_full(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(e) => {
            matches!(e.code().as_deref(), Some("13") | Some("53100")) || e.message().contains("disk is full")
        }
        sqlx::Error::Io(e) => crate::retrying_store::is_disk_full(e),
        _ => false,
    }
}
