//! VAPID (RFC 8292): the application server identifies itself to push
//! services with a short-lived ES256 JWT and its public key:
//! `Authorization: vapid t=<JWT>, k=<public key>`.

use std::fmt;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use p256::{
    SecretKey,
    ecdsa::{Signature, SigningKey, VerifyingKey, signature::Signer, signature::Verifier},
};
use serde::{Deserialize, Serialize};
use url::Url;

use super::crypto::{decode_b64url, random_secret_key, uncompressed};

/// How long a token is valid: RFC 8292 allows at most 24 hours.
pub const TOKEN_LIFETIME_SECS: i64 = 12 * 3600;

/// A VAPID key pair (the application server key browsers subscribe with).
#[derive(Clone)]
pub struct VapidKey {
    signing: SigningKey,
    public: String,
}

impl fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VapidKey").field("private", &"[REDACTED]").field("public", &self.public).finish()
    }
}

/// The claims Herald signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub aud: String,
    pub exp: i64,
    pub sub: String,
}

/// Why a VAPID key or token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VapidError {
    #[error("must be base64url of a 32-byte P-256 private key")]
    BadPrivateKey,
    #[error("must be base64url of a 65-byte uncompressed P-256 public key")]
    BadPublicKey,
    #[error("the token is malformed: {0}")]
    Malformed(&'static str),
    #[error("the signature does not verify")]
    BadSignature,
}

impl VapidKey {
    /// A fresh key pair.
    pub fn generate() -> VapidKey {
        Self::from_secret(random_secret_key())
    }

    /// Reads a private key: base64url of the raw 32-byte scalar.
    pub fn from_private(text: &str) -> Result<VapidKey, VapidError> {
        let bytes = decode_b64url(text).map_err(|_| VapidError::BadPrivateKey)?;
        if bytes.len() != 32 {
            return Err(VapidError::BadPrivateKey);
        }
        SecretKey::from_slice(&bytes).map(Self::from_secret).map_err(|_| VapidError::BadPrivateKey)
    }

    fn from_secret(secret: SecretKey) -> VapidKey {
        let public = URL_SAFE_NO_PAD.encode(uncompressed(&secret.public_key()));
        VapidKey { signing: SigningKey::from(secret), public }
    }

    /// The private key as stored: base64url, no padding.
    pub fn private_b64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.signing.to_bytes())
    }

    /// The public key (the browser's `applicationServerKey`): base64url of
    /// the uncompressed point, no padding.
    pub fn public_b64(&self) -> &str {
        &self.public
    }

    /// A signed JWT for `claims`.
    pub fn token(&self, claims: &Claims) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialise"));
        let signing_input = format!("{header}.{payload}");
        // JWS ES256 is the raw r || s (64 bytes), not DER.
        let signature: Signature = self.signing.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }

    /// The `Authorization` value for a push to `endpoint`: `aud` is the
    /// endpoint's origin, `exp` [`TOKEN_LIFETIME_SECS`] after `now`.
    pub fn authorization(&self, endpoint: &Url, subject: &str, now: i64) -> String {
        let claims = Claims { aud: origin(endpoint), exp: now + TOKEN_LIFETIME_SECS, sub: subject.to_owned() };
        format!("vapid t={}, k={}", self.token(&claims), self.public)
    }
}

/// `scheme://host[:port]` (the port only when it is not the default).
pub fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// Checks a VAPID JWT against a public key `k` (base64url) and returns its
/// claims. Expiry is the caller's to judge.
pub fn verify(token: &str, public_key: &str) -> Result<Claims, VapidError> {
    let key_bytes = decode_b64url(public_key).map_err(|_| VapidError::BadPublicKey)?;
    if key_bytes.len() != 65 {
        return Err(VapidError::BadPublicKey);
    }
    let key = VerifyingKey::from_sec1_bytes(&key_bytes).map_err(|_| VapidError::BadPublicKey)?;
    let (signing_input, signature) = token.rsplit_once('.').ok_or(VapidError::Malformed("no signature"))?;
    let (header, payload) = signing_input.split_once('.').ok_or(VapidError::Malformed("no payload"))?;
    let header: serde_json::Value =
        serde_json::from_slice(&decode_b64url(header).map_err(|_| VapidError::Malformed("header is not base64url"))?)
            .map_err(|_| VapidError::Malformed("header is not JSON"))?;
    if header["alg"] != "ES256" {
        return Err(VapidError::Malformed("alg is not ES256"));
    }
    let signature = decode_b64url(signature).map_err(|_| VapidError::Malformed("signature is not base64url"))?;
    let signature = Signature::from_slice(&signature).map_err(|_| VapidError::BadSignature)?;
    key.verify(signing_input.as_bytes(), &signature).map_err(|_| VapidError::BadSignature)?;
    let payload = decode_b64url(payload).map_err(|_| VapidError::Malformed("payload is not base64url"))?;
    serde_json::from_slice(&payload).map_err(|_| VapidError::Malformed("payload is not the expected claims"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8292's example token and its key.
    const TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9.eyJhdWQiOiJodHRwczovL3B1c2guZXhhbXBsZS5uZXQiLCJleHAiOjE0NTM1MjM3NjgsInN1YiI6Im1haWx0bzpwdXNoQGV4YW1wbGUuY29tIn0.i3CYb7t4xfxCDquptFOepC9GAu_HLGkMlMuCGSK2rpiUfnK9ojFwDXb1JrErtmysazNjjvW2L9OkSSHzvoD1oA";
    const KEY: &str = "BA1Hxzyi1RUM1b5wjxsn7nGxAszw2u61m164i3MrAIxHF6YK5h4SDYic-dRuU_RCPCfA5aq9ojSwk5Y2EmClBPs";

    #[test]
    fn the_rfc_example_token_verifies() {
        let claims = verify(TOKEN, KEY).unwrap();
        assert_eq!(
            claims,
            Claims { aud: "https://push.example.net".into(), exp: 1453523768, sub: "mailto:push@example.com".into() }
        );
        // Another key, or a changed payload, does not verify.
        assert_eq!(verify(TOKEN, VapidKey::generate().public_b64()), Err(VapidError::BadSignature));
        let mut parts: Vec<&str> = TOKEN.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"aud":"https://push.example.net","exp":9999999999,"sub":"x"}"#);
        parts[1] = &forged;
        assert_eq!(verify(&parts.join("."), KEY), Err(VapidError::BadSignature));
        assert!(matches!(verify("nodots", KEY), Err(VapidError::Malformed(_))));
    }

    #[test]
    fn herald_tokens_verify_under_its_public_key() {
        let key = VapidKey::generate();
        let endpoint = Url::parse("https://fcm.googleapis.com:443/fcm/send/abc?x=1").unwrap();
        let header = key.authorization(&endpoint, "mailto:ops@example.com", 1_700_000_000);
        let rest = header.strip_prefix("vapid t=").unwrap();
        let (token, k) = rest.split_once(", k=").unwrap();
        assert_eq!(k, key.public_b64());
        let claims = verify(token, k).unwrap();
        assert_eq!(claims.aud, "https://fcm.googleapis.com");
        assert_eq!(claims.sub, "mailto:ops@example.com");
        assert_eq!(claims.exp, 1_700_000_000 + 12 * 3600);
        assert!(claims.exp - 1_700_000_000 <= 24 * 3600);
        // The signature is raw r || s.
        let signature = decode_b64url(token.rsplit('.').next().unwrap()).unwrap();
        assert_eq!(signature.len(), 64);
        // A non-default port stays in the audience.
        let local = Url::parse("http://127.0.0.1:8089/push/1").unwrap();
        assert_eq!(origin(&local), "http://127.0.0.1:8089");
    }

    #[test]
    fn keys_round_trip_and_bad_ones_are_refused() {
        let key = VapidKey::generate();
        let again = VapidKey::from_private(&key.private_b64()).unwrap();
        assert_eq!(again.public_b64(), key.public_b64());
        assert_eq!(decode_b64url(key.public_b64()).unwrap().len(), 65);
        assert_eq!(decode_b64url(key.public_b64()).unwrap()[0], 4);
        assert!(format!("{key:?}").contains("[REDACTED]"));
        assert!(!format!("{key:?}").contains(&key.private_b64()));
        assert_eq!(VapidKey::from_private("short").unwrap_err(), VapidError::BadPrivateKey);
        assert_eq!(VapidKey::from_private(&URL_SAFE_NO_PAD.encode([0u8; 32])).unwrap_err(), VapidError::BadPrivateKey);
        assert_eq!(
            VapidKey::from_private(&URL_SAFE_NO_PAD.encode([0xffu8; 32])).unwrap_err(),
            VapidError::BadPrivateKey
        );
        assert_eq!(VapidKey::from_private("!!").unwrap_err(), VapidError::BadPrivateKey);
    }
}
