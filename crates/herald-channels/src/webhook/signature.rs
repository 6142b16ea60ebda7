//! Standard Webhooks symmetric signing: `whsec_` secrets and `v1,` signatures.

use base64::{
    Engine as _,
    engine::general_purpose::{STANDARD, STANDARD_PAD_INDIFFERENT},
};
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::Sha256;

const SECRET_PREFIX: &str = "whsec_";
/// Bytes of a generated signing secret.
const GENERATED_SECRET_LEN: usize = 32;

/// Why a `whsec_` signing secret is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("must start with `whsec_`")]
    Prefix,
    #[error("is not valid base64 after `whsec_`: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("must decode to 24 to 64 bytes, not {0}")]
    Length(usize),
}

/// Decodes a `whsec_<base64>` secret to the HMAC key (24 to 64 bytes).
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, SecretError> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).ok_or(SecretError::Prefix)?;
    // Padding is optional: secrets pasted from other tools often drop it.
    let key = STANDARD_PAD_INDIFFERENT.decode(encoded)?;
    if !(24..=64).contains(&key.len()) {
        return Err(SecretError::Length(key.len()));
    }
    Ok(key)
}

/// A fresh `whsec_` secret of 32 random bytes.
pub fn generate_secret() -> String {
    let mut key = [0u8; GENERATED_SECRET_LEN];
    // ThreadRng is a CSPRNG seeded from the OS.
    rand::rng().fill_bytes(&mut key);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// The `webhook-signature` value: `v1,` + base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`.
pub fn sign(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer_vectors() {
        let key = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        let key = decode_secret("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        assert_eq!(
            sign(
                &key,
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                br#"{"email":"test@example.com","username":"test_user"}"#
            ),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn secrets_are_checked() {
        assert_eq!(decode_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), Err(SecretError::Prefix));
        assert!(matches!(decode_secret("whsec_not*base64"), Err(SecretError::Base64(_))));
        assert_eq!(decode_secret("whsec_c2hvcnQ="), Err(SecretError::Length(5)));
        assert_eq!(decode_secret(&format!("whsec_{}", STANDARD.encode([7u8; 65]))), Err(SecretError::Length(65)));
        // Padding is optional.
        let padded = format!("whsec_{}", STANDARD.encode([1u8; 32]));
        assert_eq!(decode_secret(padded.trim_end_matches('=')).unwrap(), vec![1u8; 32]);
    }

    #[test]
    fn generated_secrets_decode_to_32_fresh_bytes() {
        let (a, b) = (generate_secret(), generate_secret());
        assert_eq!(decode_secret(&a).unwrap().len(), 32);
        assert_ne!(a, b);
    }
}
