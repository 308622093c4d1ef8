//! One error type for every endpoint: [`ApiError`], answered as
//!
//! ```json
//! {"error": {"code": "validation_failed", "message": "…",
//!            "details": [{"path": "$.shifts[0].end", "code": "shift_ends_before_start", "message": "…"}]}}
//! ```
//!
//! Every variant maps to one status in one `match` ([`ApiError::status`]). Bad input is
//! always a 4xx naming the field; a database error the client cannot fix is a 500 whose
//! body says nothing about the inside (the cause is logged), or a 503 when the database
//! is only busy.

use crate::server::http::auth::Role;
use crate::server::store::db;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use despacho_solver::field::validate::ValidationErrors;
use serde::Serialize;
use utoipa::ToSchema;

/// What went wrong with one part of the input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// JSON path into the request body (`$.jobs[0].windows[1].end`), or for CSV
    /// `$[row].column` (row 0 is the first line after the header).
    pub path: String,
    /// Stable, machine-readable: `invalid_type`, `missing_field`, `window_ends_before_start`…
    pub code: String,
    /// For a person: what is wrong and what to do.
    pub message: String,
}

impl ErrorDetail {
    pub fn new(
        path: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            path: path.into(),
            code: code.into(),
            message: message.into(),
        }
    }
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 401 `unauthorized`: no `Authorization: Bearer` key, or an unknown or revoked one.
    #[error("a valid API key is required: send `Authorization: Bearer <key>`")]
    Unauthorized,
    /// 401 `invalid_signature`: a signed request (the chat platform's) whose signature
    /// or timestamp does not hold; the message says which.
    #[error("{0}")]
    BadSignature(String),
    /// 403 `forbidden`: the key is valid but its role may not do this.
    #[error("the {role} role may not do this (allowed: {})", list_roles(allowed))]
    Forbidden {
        role: Role,
        allowed: &'static [Role],
    },
    /// 404 `not_found`.
    #[error("there is no {what} with id `{id}`")]
    NotFound { what: &'static str, id: String },
    /// 404 `not_found` for a path no route serves.
    #[error("no endpoint at {0}; see /docs")]
    NoRoute(String),
    /// 405 `method_not_allowed`.
    #[error("this endpoint does not accept that method; see /docs")]
    MethodNotAllowed,
    /// 400 with the given code (`malformed_json`, `invalid_query`, `malformed_csv`…).
    #[error("{message}")]
    BadRequest {
        code: &'static str,
        message: String,
        details: Vec<ErrorDetail>,
    },
    /// 422 `invalid_body`: well-formed JSON (or CSV) of the wrong shape: a wrong type,
    /// a missing or unknown field.
    #[error("{message}")]
    InvalidBody {
        message: String,
        details: Vec<ErrorDetail>,
    },
    /// 422 `validation_failed`: the right shape, but values that do not make sense
    /// (every problem listed, each with its path).
    #[error("{message}")]
    Validation {
        message: String,
        details: Vec<ErrorDetail>,
    },
    /// 409 with the given code (`already_exists`, `technician_in_use`…).
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        details: Vec<ErrorDetail>,
    },
    /// 403 `device_of_another_technician`: a sync device registered to another
    /// technician's login.
    #[error("{message}")]
    DeviceRefused { message: String },
    /// 426 `unsupported_schema_version`: a sync message of a schema version this server
    /// does not speak (the app must be updated).
    #[error("unsupported sync schema version {found}; this server speaks version {supported}: update the app")]
    UnsupportedSchemaVersion {
        found: u64,
        supported: u32,
        details: Vec<ErrorDetail>,
    },
    /// 413 `payload_too_large`.
    #[error("the request body is larger than {limit_bytes} bytes")]
    PayloadTooLarge { limit_bytes: usize },
    /// 415 `unsupported_media_type`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 408 `body_timeout`: the client did not send the whole body in time.
    #[error("the request body did not arrive within {} s; send it at once", .0.as_secs())]
    BodyTimeout(std::time::Duration),
    /// 503 `request_timeout`: the request took longer than the service allows (nothing
    /// of it was kept); retry, or send less at once.
    #[error("the request took longer than {} s and was stopped; nothing of it was kept — retry, or send less at once", .0.as_secs())]
    RequestTimeout(std::time::Duration),
    /// A database error. 503 `database_busy` when the database is only busy (lock or
    /// pool timeout), 409 `conflict` for a constraint a handler did not expect,
    /// otherwise 500 `internal` (logged).
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// 500 `internal`: a bug; the message is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

fn list_roles(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl ApiError {
    /// 422 `validation_failed` with these details.
    pub fn validation(details: Vec<ErrorDetail>) -> Self {
        let message = match details.len() {
            1 => format!("1 problem in the input: {}", details[0].message),
            n => format!("{n} problems in the input; see details"),
        };
        ApiError::Validation { message, details }
    }

    /// 409 with `code`.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Conflict {
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }

    pub fn not_found(what: &'static str, id: impl Into<String>) -> Self {
        ApiError::NotFound {
            what,
            id: id.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// The status and the stable code of this error.
    pub fn status(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::BadSignature(_) => (StatusCode::UNAUTHORIZED, "invalid_signature"),
            ApiError::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::DeviceRefused { .. } => {
                (StatusCode::FORBIDDEN, "device_of_another_technician")
            }
            ApiError::UnsupportedSchemaVersion { .. } => {
                (StatusCode::UPGRADE_REQUIRED, "unsupported_schema_version")
            }
            ApiError::NotFound { .. } | ApiError::NoRoute(_) => {
                (StatusCode::NOT_FOUND, "not_found")
            }
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            ApiError::InvalidBody { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
            ApiError::Validation { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            ApiError::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            ApiError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::BodyTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "body_timeout"),
            ApiError::RequestTimeout(_) => (StatusCode::SERVICE_UNAVAILABLE, "request_timeout"),
            ApiError::Database(e) if db::is_busy(e) || db::is_retryable(e) => {
                (StatusCode::SERVICE_UNAVAILABLE, "database_busy")
            }
            ApiError::Database(e)
                if db::is_unique_violation(e) || db::is_foreign_key_violation(e) =>
            {
                (StatusCode::CONFLICT, "conflict")
            }
            ApiError::Database(_) | ApiError::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        }
    }

    /// The message sent to the client: never a database or internal detail.
    fn public_message(&self) -> String {
        match self {
            ApiError::Database(e) if db::is_busy(e) || db::is_retryable(e) => {
                "the database is busy; retry in a moment".to_owned()
            }
            ApiError::Database(e)
                if db::is_unique_violation(e) || db::is_foreign_key_violation(e) =>
            {
                "the change conflicts with the current data; reload and retry".to_owned()
            }
            ApiError::Database(_) | ApiError::Internal(_) => {
                "internal error; it has been logged".to_owned()
            }
            other => other.to_string(),
        }
    }

    fn details(&self) -> &[ErrorDetail] {
        match self {
            ApiError::BadRequest { details, .. }
            | ApiError::InvalidBody { details, .. }
            | ApiError::Validation { details, .. }
            | ApiError::Conflict { details, .. }
            | ApiError::UnsupportedSchemaVersion { details, .. } => details,
            _ => &[],
        }
    }
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorObject,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorObject {
    /// Stable, machine-readable: `unauthorized`, `forbidden`, `not_found`,
    /// `malformed_json`, `invalid_body`, `validation_failed`, `already_exists`,
    /// `payload_too_large`, `database_busy`, `internal`…
    pub code: String,
    /// For a person.
    pub message: String,
    /// One entry per problem, each with its JSON path (empty when there is no path).
    pub details: Vec<ErrorDetail>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status();
        match &self {
            ApiError::Database(e) if status.is_server_error() => {
                tracing::error!(error = %e, debug = ?e, "database error");
            }
            ApiError::Database(e) => {
                tracing::warn!(error = %e, "database error answered as {status}")
            }
            ApiError::Internal(m) => tracing::error!(message = %m, "internal error"),
            _ => {}
        }
        let body = ErrorBody {
            error: ErrorObject {
                code: code.to_owned(),
                message: self.public_message(),
                details: self.details().to_vec(),
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED && !matches!(self, ApiError::BadSignature(_)) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(errors: ValidationErrors) -> Self {
        ApiError::validation(
            errors
                .0
                .into_iter()
                .map(|e| ErrorDetail::new(e.path, e.code, e.message))
                .collect(),
        )
    }
}

/// Handler for paths no route serves: a JSON 404.
pub async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::NoRoute(uri.path().to_owned())
}

/// Handler for a known path with the wrong method: a JSON 405.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
