//! Request extractors: JSON bodies that say which field is wrong, bounded
//! bodies, typed query strings, prefixed ids in paths.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request},
    http::request::Parts,
};
use serde::de::DeserializeOwned;

use crate::{error::ApiError, state::AppState};

/// A JSON body: bounded by `max_body_bytes` (413), parsed with unknown
/// fields refused (400 naming the field).
pub struct ApiJson<T>(pub T);

/// The raw, bounded body, for handlers that also hash it.
pub struct JsonBytes(pub Bytes);

impl FromRequest<AppState> for JsonBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        // Bodies are JSON whatever the Content-Type says: `curl -d` sends a
        // form type by default, and refusing it helps nobody.
        let limit = state.config.max_body_bytes;
        let body = axum::body::to_bytes(req.into_body(), limit).await.map_err(|_| ApiError::PayloadTooLarge(limit))?;
        Ok(JsonBytes(body))
    }
}

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let JsonBytes(body) = JsonBytes::from_request(req, state).await?;
        parse_json(&body).map(ApiJson)
    }
}

/// Parses JSON, turning serde's message into a 400 that names the field.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // The fast path; the path-tracking parser runs again only to explain a failure.
    if let Ok(value) = serde_json::from_slice(body) {
        return Ok(value);
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = inner.to_string();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::Invalid { field: None, detail: format!("the body is not valid JSON: {message}") };
        }
        // serde reports a missing field at its parent's path: name the field itself.
        let missing = message.strip_prefix("missing field `").and_then(|m| m.split('`').next());
        let field = match (missing, path.as_str()) {
            (Some(name), "." | "") => name.to_owned(),
            (Some(name), parent) => format!("{parent}.{name}"),
            (None, ".") => String::new(),
            (None, p) => p.to_owned(),
        };
        let detail = match message.split(" at line ").next() {
            Some(m) => m.to_owned(),
            None => message.clone(),
        };
        ApiError::Invalid {
            field: Some(field).filter(|f| !f.is_empty()),
            detail: if detail.is_empty() { message } else { detail },
        }
    })
}

/// A query string with unknown parameters refused (400 naming the parameter).
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned> FromRequestParts<AppState> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded_de(query);
        de.map(ApiQuery)
    }
}

fn serde_urlencoded_de<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    // Query values arrive as strings; go through a JSON object of strings so
    // the same path-aware errors apply, and numbers are parsed by the handler.
    let map: serde_json::Map<String, serde_json::Value> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), serde_json::Value::String(v.into_owned())))
        .collect();
    parse_json(serde_json::to_vec(&map).expect("a map of strings serialises").as_slice()).map_err(|e| match e {
        ApiError::Invalid { field, detail } => ApiError::Invalid { field, detail: format!("query string: {detail}") },
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        n: u32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        #[serde(rename = "type")]
        kind: String,
        inner: Option<Inner>,
    }

    fn field_of(body: &str) -> Option<String> {
        match parse_json::<Outer>(body.as_bytes()) {
            Err(ApiError::Invalid { field, .. }) => field,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(field_of(r#"{"type": "x", "bogus": 1}"#).as_deref(), Some("bogus"));
        assert_eq!(field_of(r#"{}"#).as_deref(), Some("type"));
        assert_eq!(field_of(r#"{"type": 5}"#).as_deref(), Some("type"));
        assert_eq!(field_of(r#"{"type": "x", "inner": {"n": -1}}"#).as_deref(), Some("inner.n"));
        assert_eq!(field_of(r#"{"type": "x", "inner": {"m": 1}}"#).as_deref(), Some("inner.m"));
        assert_eq!(field_of(r#"{"type": "#), None);
    }
}
