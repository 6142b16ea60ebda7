//! Recipient tokens: HS256 JWTs `{"sub": recipient, "tid": tenant, "iat",
//! "exp"}` signed with the tenant's signing secret. They open one
//! recipient's inbox and nothing else. The secret (32 random bytes) is made
//! on first need and stored sealed in `tenants.signing_secret`; a client app
//! may read it and mint tokens itself.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::{extract::FromRequestParts, http::request::Parts};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64URL};
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::{
    auth,
    error::{ApiError, ApiResult},
    state::AppState,
};

/// How long a verifying node trusts its copy of a tenant's secret: a
/// rotation on another node takes effect here within this time.
const CACHE_TTL: Duration = Duration::from_secs(30);
/// Clock skew tolerated on `exp` and `iat`, in seconds.
const LEEWAY_S: i64 = 30;
/// The longest lifetime (`exp - iat`) a token may have, minted here or by the app.
pub const MAX_TTL_S: i64 = 30 * 24 * 3600;
pub const MIN_TTL_S: i64 = 60;
pub const DEFAULT_TTL_S: i64 = 24 * 3600;

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

type Secret = [u8; 32];

/// The claims of a recipient token. Other claims an app adds are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The recipient (the app's own id).
    pub sub: String,
    /// The tenant.
    pub tid: String,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// Expires at, unix seconds.
    pub exp: i64,
}

/// Why a token was refused (all of them are a 401 at the edge).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a JWT")]
    Malformed,
    #[error("the algorithm is not HS256")]
    Algorithm,
    #[error("the signature does not match")]
    Signature,
    #[error("expired")]
    Expired,
    #[error("issued in the future or valid for longer than 30 days")]
    Lifetime,
}

/// Signs `claims` with `secret`.
pub fn sign(secret: &[u8], claims: &Claims) -> String {
    let payload = serde_json::to_vec(claims).expect("claims serialise");
    let input = format!("{}.{}", B64URL.encode(HEADER), B64URL.encode(payload));
    let sig = mac(secret, input.as_bytes());
    format!("{input}.{}", B64URL.encode(sig))
}

fn mac(secret: &[u8], input: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(input);
    mac.finalize().into_bytes().into()
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

/// A token split and decoded, its signature not yet checked.
pub struct Unverified<'a> {
    pub claims: Claims,
    input: &'a str,
    signature: Vec<u8>,
}

/// Splits a token and reads its header and claims.
pub fn decode(token: &str) -> Result<Unverified<'_>, TokenError> {
    let (input, sig) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let (header, payload) = input.split_once('.').ok_or(TokenError::Malformed)?;
    let header: Header = serde_json::from_slice(&B64URL.decode(header).map_err(|_| TokenError::Malformed)?)
        .map_err(|_| TokenError::Malformed)?;
    if header.alg != "HS256" {
        return Err(TokenError::Algorithm);
    }
    let claims = serde_json::from_slice(&B64URL.decode(payload).map_err(|_| TokenError::Malformed)?)
        .map_err(|_| TokenError::Malformed)?;
    let signature = B64URL.decode(sig).map_err(|_| TokenError::Malformed)?;
    Ok(Unverified { claims, input, signature })
}

impl Unverified<'_> {
    /// Checks the signature (in constant time) and the times against `now` (unix seconds).
    pub fn verify(self, secret: &[u8], now: i64) -> Result<Claims, TokenError> {
        let expected = mac(secret, self.input.as_bytes());
        if !bool::from(expected.as_slice().ct_eq(&self.signature)) {
            return Err(TokenError::Signature);
        }
        let c = self.claims;
        if c.exp + LEEWAY_S < now {
            return Err(TokenError::Expired);
        }
        if c.iat > now + LEEWAY_S || c.exp - c.iat > MAX_TTL_S {
            return Err(TokenError::Lifetime);
        }
        Ok(c)
    }
}

/// Tenants' signing secrets, opened, with the time each was read.
#[derive(Default)]
pub struct SigningKeys {
    cache: Mutex<HashMap<String, (Secret, Instant)>>,
}

fn context(tenant: &str) -> String {
    format!("tenant/{tenant}/signing_secret")
}

fn open(state: &AppState, tenant: &str, sealed: &str) -> ApiResult<Secret> {
    let text = state.key.open(sealed, &context(tenant))?;
    let bytes = B64URL.decode(text.as_bytes()).map_err(|e| anyhow::anyhow!("a stored signing secret: {e}"))?;
    bytes.try_into().map_err(|_| ApiError::Internal(anyhow::anyhow!("a stored signing secret is not 32 bytes")))
}

impl SigningKeys {
    fn remember(&self, tenant: &str, secret: Secret) {
        self.cache.lock().expect("signing key cache lock").insert(tenant.to_owned(), (secret, Instant::now()));
    }

    /// The tenant's secret as stored now, made (and stored) when it has
    /// none. Two nodes making one at once agree on the first stored.
    pub async fn current(&self, state: &AppState, tenant: &str) -> ApiResult<Secret> {
        let sealed = match state.db.tenant_signing_secret(tenant).await? {
            Some(sealed) => sealed,
            None => {
                let mine = state.key.seal(&B64URL.encode(random_secret()), &context(tenant));
                state
                    .db
                    .init_tenant_signing_secret(tenant, &mine, false)
                    .await?
                    .ok_or_else(|| ApiError::NotFound(format!("tenant `{tenant}` does not exist")))?
            }
        };
        let secret = open(state, tenant, &sealed)?;
        self.remember(tenant, secret);
        Ok(secret)
    }

    /// Replaces the tenant's secret: every token signed with the old one stops working.
    pub async fn rotate(&self, state: &AppState, tenant: &str) -> ApiResult<Secret> {
        let secret = random_secret();
        let sealed = state.key.seal(&B64URL.encode(secret), &context(tenant));
        state.db.init_tenant_signing_secret(tenant, &sealed, true).await?;
        self.remember(tenant, secret);
        Ok(secret)
    }

    /// The secret to verify a token of `tenant` with; `None` when the
    /// tenant does not exist or never made one (no token can be valid).
    async fn for_verifying(&self, state: &AppState, tenant: &str) -> ApiResult<Option<Secret>> {
        if let Some((secret, at)) = self.cache.lock().expect("signing key cache lock").get(tenant)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(Some(*secret));
        }
        let Some(sealed) = state.db.tenant_signing_secret(tenant).await? else { return Ok(None) };
        let secret = open(state, tenant, &sealed)?;
        self.remember(tenant, secret);
        Ok(Some(secret))
    }
}

fn random_secret() -> Secret {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    secret
}

/// The secret as the API shows it: base64url without padding.
pub fn encode_secret(secret: &Secret) -> String {
    B64URL.encode(secret)
}

/// A caller holding a valid recipient token: one recipient of one tenant.
/// The token comes as `Authorization: Bearer` or, for browsers' WebSocket
/// and EventSource (which cannot set headers), as `?token=`.
#[derive(Debug, Clone)]
pub struct RecipientAuth {
    pub tenant: String,
    pub recipient: String,
}

fn query_token(parts: &Parts) -> Option<String> {
    let query = parts.uri.query()?;
    url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "token").map(|(_, v)| v.into_owned())
}

impl FromRequestParts<AppState> for RecipientAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = match auth::bearer(parts) {
            Some(t) => t.to_owned(),
            None => query_token(parts).ok_or(ApiError::Unauthorized)?,
        };
        let unverified = decode(&token).map_err(|_| ApiError::Unauthorized)?;
        let tenant = unverified.claims.tid.clone();
        let secret = state.recipient_keys.for_verifying(state, &tenant).await?.ok_or(ApiError::Unauthorized)?;
        let claims = unverified.verify(&secret, chrono::Utc::now().timestamp()).map_err(|e| {
            tracing::debug!(tenant, reason = %e, "recipient token refused");
            ApiError::Unauthorized
        })?;
        if herald_channels::web_push::check_recipient_id(&claims.sub).is_err() {
            return Err(ApiError::Unauthorized);
        }
        Ok(RecipientAuth { tenant: claims.tid, recipient: claims.sub })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(iat: i64, exp: i64) -> Claims {
        Claims { sub: "ada".into(), tid: "default".into(), iat, exp }
    }

    #[test]
    fn signs_and_verifies() {
        let secret = [3u8; 32];
        let token = sign(&secret, &claims(1000, 2000));
        assert_eq!(token.split('.').count(), 3);
        assert_eq!(decode(&token).unwrap().verify(&secret, 1500).unwrap(), claims(1000, 2000));
        assert_eq!(decode(&token).unwrap().verify(&[4u8; 32], 1500).unwrap_err(), TokenError::Signature);
        assert_eq!(decode(&token).unwrap().verify(&secret, 2000 + LEEWAY_S + 1).unwrap_err(), TokenError::Expired);
        assert!(decode(&token).unwrap().verify(&secret, 2000 + LEEWAY_S).is_ok(), "within the leeway");
    }

    #[test]
    fn matches_an_independent_hs256() {
        // RFC 7515 appendix A.1's HMAC key, over our header and claims:
        // the signature is plain HMAC-SHA256 of `header.payload`.
        let key = B64URL
            .decode("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow")
            .unwrap();
        let token = sign(&key, &claims(1, 2));
        let (input, sig) = token.rsplit_once('.').unwrap();
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
        m.update(input.as_bytes());
        m.verify_slice(&B64URL.decode(sig).unwrap()).unwrap();
        assert!(input.starts_with("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."));
    }

    #[test]
    fn refuses_other_algorithms_and_garbage() {
        let secret = [3u8; 32];
        let good = sign(&secret, &claims(1000, 2000));
        let payload = good.split('.').nth(1).unwrap();
        let none = format!("{}.{payload}.", B64URL.encode(r#"{"alg":"none"}"#));
        assert_eq!(decode(&none).err(), Some(TokenError::Algorithm));
        for bad in ["", "a.b", "a.b.c", "hk_abc", "...", &good[..good.len() - 2]] {
            let refused = decode(bad).and_then(|u| u.verify(&secret, 1500));
            assert!(refused.is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn refuses_tokens_from_the_future_or_too_long() {
        let secret = [3u8; 32];
        let future = sign(&secret, &claims(5000, 6000));
        assert_eq!(decode(&future).unwrap().verify(&secret, 1000).unwrap_err(), TokenError::Lifetime);
        let long = sign(&secret, &claims(1000, 1000 + MAX_TTL_S + 1));
        assert_eq!(decode(&long).unwrap().verify(&secret, 1500).unwrap_err(), TokenError::Lifetime);
    }
}
