//! Recipient tokens for the inbox: minted by the app's backend
//! (`POST /v1/recipients/{id}/tokens`), or by the app itself with the
//! tenant's signing secret (`GET /v1/recipient-tokens/signing-secret`).

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{
    auth::TenantAuth,
    error::{ApiError, ApiResult},
    extract::{JsonBytes, parse_json},
    recipient_token::{self, Claims, DEFAULT_TTL_S, MAX_TTL_S, MIN_TTL_S},
    state::{AppState, rfc3339},
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/recipients/{id}/tokens", post(mint))
        .route("/v1/recipient-tokens/signing-secret", get(signing_secret))
        .route("/v1/recipient-tokens/signing-secret/rotate", post(rotate))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MintIn {
    ttl_seconds: Option<i64>,
}

#[derive(Debug, Serialize)]
struct TokenOut {
    token: String,
    expires_at: String,
}

/// Mints a token for recipient `id`. The recipient need not be stored:
/// inbox items are keyed by the app's own recipient id.
async fn mint(
    State(state): State<AppState>,
    TenantAuth(caller): TenantAuth,
    Path(recipient): Path<String>,
    JsonBytes(body): JsonBytes,
) -> ApiResult<(StatusCode, Json<TokenOut>)> {
    herald_channels::web_push::check_recipient_id(&recipient).map_err(|m| ApiError::invalid("recipient_id", m))?;
    // No body at all is the same as `{}`.
    let input: MintIn = if body.iter().all(u8::is_ascii_whitespace) { MintIn::default() } else { parse_json(&body)? };
    let ttl = input.ttl_seconds.unwrap_or(DEFAULT_TTL_S);
    if !(MIN_TTL_S..=MAX_TTL_S).contains(&ttl) {
        return Err(ApiError::invalid("ttl_seconds", format!("must be from {MIN_TTL_S} to {MAX_TTL_S} seconds")));
    }
    let secret = state.recipient_keys.current(&state, &caller.tenant).await?;
    let iat = chrono::Utc::now().timestamp();
    let claims = Claims { sub: recipient, tid: caller.tenant, iat, exp: iat + ttl };
    let token = recipient_token::sign(&secret, &claims);
    Ok((StatusCode::CREATED, Json(TokenOut { token, expires_at: rfc3339(claims.exp * 1000) })))
}

fn secret_out(secret: &[u8; 32]) -> Json<Value> {
    Json(json!({
        "secret": recipient_token::encode_secret(secret),
        "encoding": "base64url",
        "algorithm": "HS256",
        "claims": {
            "sub": "the recipient id (the app's own id)",
            "tid": "the tenant id",
            "iat": "issued at, unix seconds",
            "exp": format!("expires at, unix seconds; at most {MAX_TTL_S} seconds after iat"),
        },
    }))
}

/// The tenant's signing secret (made on first read), for apps that mint
/// recipient tokens themselves.
async fn signing_secret(State(state): State<AppState>, TenantAuth(caller): TenantAuth) -> ApiResult<Json<Value>> {
    Ok(secret_out(&state.recipient_keys.current(&state, &caller.tenant).await?))
}

/// A new signing secret: every token signed with the old one stops working
/// (on other nodes within half a minute).
async fn rotate(State(state): State<AppState>, TenantAuth(caller): TenantAuth) -> ApiResult<Json<Value>> {
    Ok(secret_out(&state.recipient_keys.rotate(&state, &caller.tenant).await?))
}
