//! Secrets at rest and credentials: the master key, integration secret
//! fields sealed with XChaCha20-Poly1305, API key hashes, the admin token.

use std::{io::Write, path::Path};

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use chacha20poly1305::{
    XChaCha20Poly1305, XNonce,
    aead::{Aead, KeyInit, Payload},
};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Marks an encrypted string inside a stored config.
const SEALED_PREFIX: &str = "$herald-sealed:v1:";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("HERALD_MASTER_KEY must be the base64 encoding of exactly 32 bytes")]
    BadMasterKey,
    #[error("cannot read or create the master key file {path}")]
    KeyFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the master key does not open the secrets stored in this database (key id {key_id}); \
         start with the key the data was written with"
    )]
    WrongMasterKey { key_id: String },
    #[error("a stored secret could not be decrypted (it was sealed for another row or under another key)")]
    Unseal,
}

/// The key that seals integration secrets, and derived keys.
#[derive(Clone)]
pub struct MasterKey {
    key: [u8; 32],
    key_id: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl MasterKey {
    /// From `HERALD_MASTER_KEY` when given, else from (or into) the key file
    /// `master.key` in the data dir, created with mode 0600.
    pub fn load(configured: Option<&str>, data_dir: &Path) -> Result<Self, SecretError> {
        if let Some(text) = configured {
            return Self::from_base64(text);
        }
        let path = data_dir.join("master.key");
        let io = |source| SecretError::KeyFile { path: path.display().to_string(), source };
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_base64(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir).map_err(io)?;
                let mut key = [0u8; 32];
                rand::rng().fill_bytes(&mut key);
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                let mut file = opts.open(&path).map_err(io)?;
                file.write_all(B64.encode(key).as_bytes()).map_err(io)?;
                file.sync_all().map_err(io)?;
                Ok(Self::from_bytes(key))
            }
            Err(e) => Err(io(e)),
        }
    }

    pub fn from_base64(text: &str) -> Result<Self, SecretError> {
        let bytes = B64.decode(text.trim()).map_err(|_| SecretError::BadMasterKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| SecretError::BadMasterKey)?;
        Ok(Self::from_bytes(key))
    }

    fn from_bytes(key: [u8; 32]) -> Self {
        let key_id = hex8(&Sha256::digest(key));
        Self { key, key_id }
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Seals `plain`, bound to `context` (tenant, row and field): a sealed
    /// value copied to another row or field does not open there.
    pub fn seal(&self, plain: &str, context: &str) -> String {
        let cipher = XChaCha20Poly1305::new(&self.key.into());
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(&XNonce::from(nonce), Payload { msg: plain.as_bytes(), aad: context.as_bytes() })
            .expect("XChaCha20-Poly1305 encryption does not fail for in-memory data");
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        format!("{SEALED_PREFIX}{}:{}", self.key_id, B64.encode(blob))
    }

    /// Opens a value made by [`seal`](Self::seal) with the same context.
    pub fn open(&self, sealed: &str, context: &str) -> Result<String, SecretError> {
        let rest = sealed.strip_prefix(SEALED_PREFIX).ok_or(SecretError::Unseal)?;
        let (_, b64) = rest.split_once(':').ok_or(SecretError::Unseal)?;
        let blob = B64.decode(b64).map_err(|_| SecretError::Unseal)?;
        if blob.len() < 24 {
            return Err(SecretError::Unseal);
        }
        let (nonce, ct) = blob.split_at(24);
        let cipher = XChaCha20Poly1305::new(&self.key.into());
        let plain = cipher
            .decrypt(
                &XNonce::try_from(nonce).map_err(|_| SecretError::Unseal)?,
                Payload { msg: ct, aad: context.as_bytes() },
            )
            .map_err(|_| SecretError::Unseal)?;
        String::from_utf8(plain).map_err(|_| SecretError::Unseal)
    }

    /// The keyed hash under which an API key is stored and looked up. API
    /// keys are 256-bit random, so a keyed hash (not a slow KDF) suffices.
    pub fn api_key_hash(&self, key: &str) -> String {
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(b"herald api key v1\0");
        mac.update(key.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// A sealed known value stored once; opening it at start proves the key
    /// is the one the data was written with.
    pub fn canary(&self) -> String {
        self.seal("herald", "canary")
    }

    pub fn check_canary(&self, stored: &str) -> Result<(), SecretError> {
        match self.open(stored, "canary") {
            Ok(v) if v == "herald" => Ok(()),
            _ => Err(SecretError::WrongMasterKey { key_id: self.key_id.clone() }),
        }
    }
}

/// True when `sealed` looks like a sealed value.
pub fn is_sealed(value: &str) -> bool {
    value.starts_with(SEALED_PREFIX)
}

/// A random token: `prefix` + 43 characters of URL-safe base64 (256 bits).
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// SHA-256 of a token, hex: how the generated admin token is stored.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Constant-time equality of two strings.
pub fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn hex8(bytes: &[u8]) -> String {
    hex::encode(&bytes[..4])
}

/// Where a secret field of an integration is bound: tenant, row and field.
fn field_context(tenant: &str, integration: &str, field: &str) -> String {
    format!("{tenant}/integrations/{integration}/config/{field}")
}

/// Seals the top-level `fields` of `config` in place (plain strings only).
pub fn seal_fields(key: &MasterKey, tenant: &str, integration: &str, fields: &[&str], config: &mut serde_json::Value) {
    for field in fields {
        if let Some(v) = config.get_mut(*field)
            && let Some(plain) = v.as_str()
            && !is_sealed(plain)
        {
            *v = serde_json::Value::String(key.seal(plain, &field_context(tenant, integration, field)));
        }
    }
}

/// Opens the sealed `fields` of a stored `config` in place.
pub fn open_fields(
    key: &MasterKey,
    tenant: &str,
    integration: &str,
    fields: &[&str],
    config: &mut serde_json::Value,
) -> Result<(), SecretError> {
    for field in fields {
        if let Some(v) = config.get_mut(*field)
            && let Some(sealed) = v.as_str()
            && is_sealed(sealed)
        {
            *v = serde_json::Value::String(key.open(sealed, &field_context(tenant, integration, field))?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MasterKey {
        MasterKey::from_bytes([7u8; 32])
    }

    #[test]
    fn seal_round_trips_and_binds_context() {
        let k = key();
        let s = k.seal("hunter2", "t1/int_a/secret");
        assert!(is_sealed(&s));
        assert!(!s.contains("hunter2"));
        assert_eq!(k.open(&s, "t1/int_a/secret").unwrap(), "hunter2");
        assert!(k.open(&s, "t2/int_a/secret").is_err(), "a blob moved to another row must not open");
        let other = MasterKey::from_bytes([8u8; 32]);
        assert!(other.open(&s, "t1/int_a/secret").is_err());
    }

    #[test]
    fn canary_detects_a_wrong_key() {
        let stored = key().canary();
        assert!(key().check_canary(&stored).is_ok());
        assert!(MasterKey::from_bytes([9u8; 32]).check_canary(&stored).is_err());
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = std::env::temp_dir().join(format!("herald-key-{}", uuid::Uuid::new_v4()));
        let a = MasterKey::load(None, &dir).unwrap();
        let b = MasterKey::load(None, &dir).unwrap();
        assert_eq!(a.key_id(), b.key_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("master.key")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_configured_key_is_refused() {
        assert!(matches!(MasterKey::from_base64("c2hvcnQ="), Err(SecretError::BadMasterKey)));
    }

    #[test]
    fn tokens_and_hashes() {
        let t = random_token("hk_");
        assert!(t.starts_with("hk_") && t.len() == 46);
        assert_eq!(key().api_key_hash(&t), key().api_key_hash(&t));
        assert_ne!(key().api_key_hash(&t), key().api_key_hash("hk_other"));
        assert!(ct_eq("abc", "abc") && !ct_eq("abc", "abd") && !ct_eq("abc", "ab"));
    }
}
