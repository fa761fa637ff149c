//! The API's one error type: every failure becomes the JSON envelope
//! `{"error":{"code","message","field"}}` with a stable code and the right status. Internal causes are
//! logged, never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use itervox_protocol::api::{ErrorBody, ErrorEnvelope};

use crate::scheduler::{CommandError, Refusal, Unavailable};

/// An API failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn internal(context: &str, cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(context, error = %cause, "Internal error answering an API request");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{context} failed; see the controller log"),
        )
    }

    pub fn not_supported(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_IMPLEMENTED, "not_supported", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorEnvelope {
            error: ErrorBody {
                code: self.code.to_string(),
                message: self.message,
                field: self.field,
            },
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

impl From<Unavailable> for ApiError {
    fn from(e: Unavailable) -> Self {
        match e {
            Unavailable::Busy => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "orchestrator_busy", e.to_string()),
            Unavailable::Stopped => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", e.to_string()),
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        let message = r.to_string();
        match r {
            Refusal::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", message),
            Refusal::NotRunning(_) => ApiError::new(StatusCode::NOT_FOUND, "not_running", message),
            Refusal::NotPaused(_) => ApiError::new(StatusCode::NOT_FOUND, "not_paused", message),
            Refusal::NotInputRequired(_) => ApiError::new(StatusCode::CONFLICT, "not_input_required", message),
            Refusal::BadRequest { field, .. } => {
                let e = ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message);
                match field {
                    Some(f) => e.with_field(f),
                    None => e,
                }
            }
            Refusal::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            Refusal::NotSupported(_) => ApiError::new(StatusCode::NOT_IMPLEMENTED, "not_supported", message),
            Refusal::Internal(m) => ApiError::internal("the orchestrator", m),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Refused(r) => r.into(),
            CommandError::Unavailable(u) => u.into(),
        }
    }
}
