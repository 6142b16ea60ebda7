//! The one error type at the HTTP edge: every failure becomes an RFC 9457
//! problem+json body, naming the offending field for validation errors.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

/// An error answered to an API client.
#[derive(Debug)]
pub enum ApiError {
    /// 400: the request is malformed; `field` names the culprit.
    Invalid {
        field: Option<String>,
        detail: String,
    },
    /// 400 for a template that does not compile or render: the template
    /// field, and `line` / `column` in its source (1-based; 0 when unknown),
    /// also answered as members of the problem.
    InvalidTemplate {
        field: String,
        detail: String,
        line: usize,
        column: usize,
    },
    Unauthorized,
    Forbidden(String),
    NotFound(String),
    Conflict(String),
    /// 422: well-formed but cannot be done (e.g. an idempotency key reused with another body).
    Unprocessable {
        field: Option<String>,
        detail: String,
    },
    PayloadTooLarge(usize),
    MethodNotAllowed,
    TooManyRequests(String),
    /// 500: logged with its source chain; the client gets no detail.
    Internal(anyhow::Error),
    Unavailable(String),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        ApiError::Invalid { field: Some(field.into()), detail: detail.into() }
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        ApiError::NotFound(format!("{what} `{id}` does not exist"))
    }
}

impl<E: Into<anyhow::Error>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError::Internal(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let position = match &self {
            ApiError::InvalidTemplate { line, column, .. } => Some((*line, *column)),
            _ => None,
        };
        let (status, slug, title, detail, field) = match self {
            ApiError::Invalid { field, detail } => {
                (StatusCode::BAD_REQUEST, "invalid-request", "Invalid request", detail, field)
            }
            ApiError::InvalidTemplate { field, detail, .. } => {
                (StatusCode::BAD_REQUEST, "invalid-request", "Invalid request", detail, Some(field))
            }
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                "a valid `Authorization: Bearer <token>` header is required".to_owned(),
                None,
            ),
            ApiError::Forbidden(d) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden", d, None),
            ApiError::NotFound(d) => (StatusCode::NOT_FOUND, "not-found", "Not found", d, None),
            ApiError::Conflict(d) => (StatusCode::CONFLICT, "conflict", "Conflict", d, None),
            ApiError::Unprocessable { field, detail } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", "Unprocessable request", detail, field)
            }
            ApiError::PayloadTooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
                format!("the request body is larger than {limit} bytes"),
                None,
            ),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                "this method is not allowed on this endpoint".to_owned(),
                None,
            ),
            ApiError::TooManyRequests(d) => {
                (StatusCode::TOO_MANY_REQUESTS, "rate-limited", "Too many requests", d, None)
            }
            ApiError::Internal(e) => {
                tracing::error!(error = ?e, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal error",
                    "the server failed; see its log".to_owned(),
                    None,
                )
            }
            ApiError::Unavailable(d) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Unavailable", d, None),
        };
        let mut body = json!({
            "type": format!("https://herald.dev/problems/{slug}"),
            "title": title,
            "status": status.as_u16(),
            "detail": detail,
        });
        if let Some(field) = field {
            body["field"] = json!(field);
        }
        if let Some((line, column)) = position {
            body["line"] = json!(line);
            body["column"] = json!(column);
        }
        let mut res = (status, body.to_string()).into_response();
        res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        res
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
