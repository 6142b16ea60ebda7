//! Message encryption for Web Push (RFC 8291): an ECDH agreement between a
//! fresh sender key and the browser's `p256dh` key, mixed with the browser's
//! `auth` secret, keys one `aes128gcm` record (RFC 8188).
//!
//! Implemented on the RustCrypto primitives rather than through a web-push
//! crate: the one pure-Rust option writes a record size of `len + 17` instead
//! of the customary 4096, signs VAPID without the port in `aud`, and keeps its
//! deterministic encryption private, so the RFC's test vector could not be
//! reproduced byte for byte.

use aes_gcm::{
    Aes128Gcm, KeyInit,
    aead::{Aead, Payload},
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD_INDIFFERENT};
use hkdf::Hkdf;
use p256::{PublicKey, SecretKey, elliptic_curve::sec1::ToSec1Point};
use rand::RngCore;
use sha2::Sha256;

/// The record size written in the header: the common choice of browsers'
/// push libraries, and the one in RFC 8291's example.
pub const RECORD_SIZE: u32 = 4096;
/// salt (16) | rs (4) | idlen (1) | keyid (65, the sender's public key).
pub const HEADER_LEN: usize = 16 + 4 + 1 + 65;
/// The AES-GCM tag that ends every record.
const TAG_LEN: usize = 16;
/// Push services must accept 4096 bytes of body (RFC 8030 §7.2); one record
/// of header, plaintext, the 0x02 delimiter and the tag fits in that.
pub const MAX_PLAINTEXT: usize = 4096 - HEADER_LEN - 1 - TAG_LEN;

/// A browser's keys from its `PushSubscription`: the P-256 public key
/// (`p256dh`) and the 16-byte authentication secret (`auth`).
#[derive(Clone)]
pub struct UaKeys {
    pub public: PublicKey,
    pub auth: [u8; 16],
}

impl std::fmt::Debug for UaKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UaKeys").field("auth", &"[REDACTED]").finish_non_exhaustive()
    }
}

/// Why a key or a body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("must be base64url")]
    NotBase64,
    #[error("must be a 65-byte uncompressed P-256 point (0x04 | x | y) on the curve")]
    BadPublicKey,
    #[error("must be 16 bytes")]
    BadAuth,
    #[error("the plaintext is longer than {MAX_PLAINTEXT} bytes")]
    TooLong,
    #[error("the body is not a valid aes128gcm message: {0}")]
    BadBody(&'static str),
}

/// Decodes base64url, with or without padding.
pub fn decode_b64url(text: &str) -> Result<Vec<u8>, CryptoError> {
    URL_SAFE_NO_PAD_INDIFFERENT.decode(text.trim()).map_err(|_| CryptoError::NotBase64)
}

/// Parses a `p256dh` key: base64url of an uncompressed point on P-256.
pub fn parse_p256dh(text: &str) -> Result<PublicKey, CryptoError> {
    let bytes = decode_b64url(text)?;
    if bytes.len() != 65 || bytes[0] != 0x04 {
        return Err(CryptoError::BadPublicKey);
    }
    PublicKey::from_sec1_bytes(&bytes).map_err(|_| CryptoError::BadPublicKey)
}

/// Parses an `auth` secret: base64url of 16 bytes.
pub fn parse_auth(text: &str) -> Result<[u8; 16], CryptoError> {
    decode_b64url(text)?.try_into().map_err(|_| CryptoError::BadAuth)
}

impl UaKeys {
    /// Parses the two keys of a subscription (base64url).
    pub fn parse(p256dh: &str, auth: &str) -> Result<UaKeys, CryptoError> {
        Ok(UaKeys { public: parse_p256dh(p256dh)?, auth: parse_auth(auth)? })
    }
}

/// The uncompressed SEC1 encoding of a public key (65 bytes, 0x04 first).
pub fn uncompressed(key: &PublicKey) -> [u8; 65] {
    key.to_sec1_point(false).as_bytes().try_into().expect("an uncompressed P-256 point is 65 bytes")
}

/// A fresh random P-256 secret key.
pub fn random_secret_key() -> SecretKey {
    let mut rng = rand::rng();
    loop {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        // Fails only for zero or a value above the group order (about 2^-32).
        if let Ok(key) = SecretKey::from_slice(&bytes) {
            return key;
        }
    }
}

/// The key schedule of RFC 8291 §3.3–3.4 and RFC 8188 §2.2, one step per
/// function so tests can compare each with the RFC's intermediate values.
pub(crate) mod schedule {
    use super::*;

    /// `ecdh_secret`: the x coordinate of the shared point.
    pub fn ecdh_secret(secret: &SecretKey, peer: &PublicKey) -> [u8; 32] {
        secret.diffie_hellman(peer).raw_secret_bytes().as_slice().try_into().expect("32 bytes")
    }

    /// `PRK_key = HKDF-Extract(salt = auth_secret, IKM = ecdh_secret)`.
    pub fn prk_key(auth: &[u8; 16], ecdh_secret: &[u8; 32]) -> [u8; 32] {
        Hkdf::<Sha256>::extract(Some(auth), ecdh_secret).0.as_slice().try_into().expect("32 bytes")
    }

    /// `IKM = HKDF-Expand(PRK_key, "WebPush: info" 0x00 ua_public as_public, 32)`.
    pub fn ikm(prk_key: &[u8; 32], ua_public: &[u8; 65], as_public: &[u8; 65]) -> [u8; 32] {
        let mut info = Vec::with_capacity(14 + 130);
        info.extend_from_slice(b"WebPush: info\0");
        info.extend_from_slice(ua_public);
        info.extend_from_slice(as_public);
        expand(prk_key, &info)
    }

    /// `PRK = HKDF-Extract(salt, IKM)`.
    pub fn prk(salt: &[u8; 16], ikm: &[u8; 32]) -> [u8; 32] {
        Hkdf::<Sha256>::extract(Some(salt), ikm).0.as_slice().try_into().expect("32 bytes")
    }

    /// `CEK = HKDF-Expand(PRK, "Content-Encoding: aes128gcm" 0x00, 16)`.
    pub fn cek(prk: &[u8; 32]) -> [u8; 16] {
        expand(prk, b"Content-Encoding: aes128gcm\0")
    }

    /// `NONCE = HKDF-Expand(PRK, "Content-Encoding: nonce" 0x00, 12)`.
    pub fn nonce(prk: &[u8; 32]) -> [u8; 12] {
        expand(prk, b"Content-Encoding: nonce\0")
    }

    fn expand<const N: usize>(prk: &[u8; 32], info: &[u8]) -> [u8; N] {
        let mut out = [0u8; N];
        Hkdf::<Sha256>::from_prk(prk).expect("a 32-byte PRK").expand(info, &mut out).expect("N <= 255 * 32");
        out
    }

    /// CEK and nonce for one message.
    pub fn keys(
        ecdh_secret: &[u8; 32],
        auth: &[u8; 16],
        ua_public: &[u8; 65],
        as_public: &[u8; 65],
        salt: &[u8; 16],
    ) -> ([u8; 16], [u8; 12]) {
        let prk = prk(salt, &ikm(&prk_key(auth, ecdh_secret), ua_public, as_public));
        (cek(&prk), nonce(&prk))
    }
}

/// Encrypts `plaintext` for a browser: one `aes128gcm` record with a fresh
/// salt and sender key. Refuses more than [`MAX_PLAINTEXT`] bytes (the caller
/// shortens its content instead of splitting it).
pub fn encrypt(plaintext: &[u8], ua: &UaKeys) -> Result<Vec<u8>, CryptoError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    encrypt_with(plaintext, ua, &salt, &random_secret_key(), RECORD_SIZE)
}

/// [`encrypt`] with a given salt, sender key and record size (for tests
/// against the RFC's example).
pub(crate) fn encrypt_with(
    plaintext: &[u8],
    ua: &UaKeys,
    salt: &[u8; 16],
    as_secret: &SecretKey,
    record_size: u32,
) -> Result<Vec<u8>, CryptoError> {
    if plaintext.len() > MAX_PLAINTEXT || plaintext.len() + 1 + TAG_LEN > record_size as usize {
        return Err(CryptoError::TooLong);
    }
    let as_public = uncompressed(&as_secret.public_key());
    let ecdh = schedule::ecdh_secret(as_secret, &ua.public);
    let (cek, nonce) = schedule::keys(&ecdh, &ua.auth, &uncompressed(&ua.public), &as_public, salt);
    let mut record = Vec::with_capacity(plaintext.len() + 1);
    record.extend_from_slice(plaintext);
    // The last (and only) record ends with 0x02 and no padding.
    record.push(0x02);
    let sealed = Aes128Gcm::new(&cek.into())
        .encrypt(&nonce.into(), Payload { msg: &record, aad: b"" })
        .map_err(|_| CryptoError::BadBody("encryption failed"))?;
    let mut body = Vec::with_capacity(HEADER_LEN + sealed.len());
    body.extend_from_slice(salt);
    body.extend_from_slice(&record_size.to_be_bytes());
    body.push(65);
    body.extend_from_slice(&as_public);
    body.extend_from_slice(&sealed);
    Ok(body)
}

/// Decrypts an `aes128gcm` Web Push body with the browser's private key and
/// auth secret (what a browser does; Herald uses it in tests).
pub fn decrypt(body: &[u8], ua_secret: &SecretKey, auth: &[u8; 16]) -> Result<Vec<u8>, CryptoError> {
    let bad = CryptoError::BadBody;
    if body.len() < 21 {
        return Err(bad("shorter than its header"));
    }
    let salt: [u8; 16] = body[..16].try_into().expect("16 bytes");
    let record_size = u32::from_be_bytes(body[16..20].try_into().expect("4 bytes")) as usize;
    let idlen = usize::from(body[20]);
    if idlen != 65 || body.len() < 21 + idlen {
        return Err(bad("the key id is not a 65-byte P-256 key"));
    }
    let as_public_bytes: [u8; 65] = body[21..86].try_into().expect("65 bytes");
    let as_public = PublicKey::from_sec1_bytes(&as_public_bytes).map_err(|_| bad("the key id is not on P-256"))?;
    if record_size <= TAG_LEN + 1 {
        return Err(bad("the record size is too small"));
    }
    let ecdh = schedule::ecdh_secret(ua_secret, &as_public);
    let ua_public = uncompressed(&ua_secret.public_key());
    let (cek, nonce) = schedule::keys(&ecdh, auth, &ua_public, &as_public_bytes, &salt);
    let cipher = Aes128Gcm::new(&cek.into());
    let records: Vec<&[u8]> = body[HEADER_LEN..].chunks(record_size).collect();
    if records.is_empty() {
        return Err(bad("no record"));
    }
    let mut plaintext = Vec::new();
    for (seq, record) in records.iter().enumerate() {
        let mut iv = nonce;
        for (i, b) in (seq as u64).to_be_bytes().iter().enumerate() {
            iv[4 + i] ^= b;
        }
        let mut open = cipher
            .decrypt(&iv.into(), Payload { msg: record, aad: b"" })
            .map_err(|_| bad("a record does not decrypt (wrong keys or altered body)"))?;
        // Padding is zeros after the delimiter: 0x02 ends the last record, 0x01 the others.
        let end = open.iter().rposition(|b| *b != 0).ok_or(bad("a record has no delimiter"))?;
        let last = seq + 1 == records.len();
        if open[end] != if last { 0x02 } else { 0x01 } {
            return Err(bad("a record has the wrong delimiter"));
        }
        open.truncate(end);
        plaintext.extend_from_slice(&open);
    }
    Ok(plaintext)
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    /// RFC 8291 appendix A.
    const PLAINTEXT: &str = "V2hlbiBJIGdyb3cgdXAsIEkgd2FudCB0byBiZSBhIHdhdGVybWVsb24";
    const AS_PUBLIC: &str = "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
    const AS_PRIVATE: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
    const UA_PUBLIC: &str = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const UA_PRIVATE: &str = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";
    const SALT: &str = "DGv6ra1nlYgDCS1FRnbzlw";
    const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
    const ECDH_SECRET: &str = "kyrL1jIIOHEzg3sM2ZWRHDRB62YACZhhSlknJ672kSs";
    const PRK_KEY: &str = "Snr3JMxaHVDXHWJn5wdC52WjpCtd2EIEGBykDcZW32k";
    const IKM: &str = "S4lYMb_L0FxCeq0WhDx813KgSYqU26kOyzWUdsXYyrg";
    const PRK: &str = "09_eUZGrsvxChDCGRCdkLiDXrReGOEVeSCdCcPBSJSc";
    const CEK: &str = "oIhVW04MRdy2XN9CiKLxTg";
    const NONCE: &str = "4h_95klXJ5E_qnoN";
    const BODY: &str = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN";

    fn b64(text: &str) -> Vec<u8> {
        decode_b64url(text).unwrap()
    }

    fn arr<const N: usize>(text: &str) -> [u8; N] {
        b64(text).try_into().unwrap()
    }

    fn secret(text: &str) -> SecretKey {
        SecretKey::from_slice(&b64(text)).unwrap()
    }

    #[test]
    fn the_rfc_body_decrypts_to_its_plaintext() {
        let plaintext = decrypt(&b64(BODY), &secret(UA_PRIVATE), &arr(AUTH)).unwrap();
        assert_eq!(plaintext, b64(PLAINTEXT));
        assert_eq!(plaintext, b"When I grow up, I want to be a watermelon");
        // The wrong auth secret or an altered byte fails.
        assert!(decrypt(&b64(BODY), &secret(UA_PRIVATE), &[0; 16]).is_err());
        let mut altered = b64(BODY);
        *altered.last_mut().unwrap() ^= 1;
        assert!(decrypt(&altered, &secret(UA_PRIVATE), &arr(AUTH)).is_err());
        assert!(decrypt(&altered[..20], &secret(UA_PRIVATE), &arr(AUTH)).is_err());
    }

    #[test]
    fn the_key_schedule_reproduces_the_rfc_intermediate_values() {
        let (as_secret, ua_secret) = (secret(AS_PRIVATE), secret(UA_PRIVATE));
        assert_eq!(uncompressed(&as_secret.public_key()), arr::<65>(AS_PUBLIC));
        assert_eq!(uncompressed(&ua_secret.public_key()), arr::<65>(UA_PUBLIC));
        let ecdh = schedule::ecdh_secret(&as_secret, &ua_secret.public_key());
        assert_eq!(ecdh, arr::<32>(ECDH_SECRET));
        // Both sides agree.
        assert_eq!(schedule::ecdh_secret(&ua_secret, &as_secret.public_key()), ecdh);
        let prk_key = schedule::prk_key(&arr(AUTH), &ecdh);
        assert_eq!(prk_key, arr::<32>(PRK_KEY));
        let ikm = schedule::ikm(&prk_key, &arr(UA_PUBLIC), &arr(AS_PUBLIC));
        assert_eq!(ikm, arr::<32>(IKM));
        let prk = schedule::prk(&arr(SALT), &ikm);
        assert_eq!(prk, arr::<32>(PRK));
        assert_eq!(schedule::cek(&prk), arr::<16>(CEK));
        assert_eq!(schedule::nonce(&prk), arr::<12>(NONCE));
    }

    #[test]
    fn deterministic_encryption_reproduces_the_rfc_body() {
        let ua = UaKeys::parse(UA_PUBLIC, AUTH).unwrap();
        let body = encrypt_with(&b64(PLAINTEXT), &ua, &arr(SALT), &secret(AS_PRIVATE), RECORD_SIZE).unwrap();
        assert_eq!(URL_SAFE_NO_PAD.encode(&body), BODY);
    }

    #[test]
    fn a_round_trip_has_the_documented_layout() {
        let ua_secret = random_secret_key();
        let auth: [u8; 16] = rand::random();
        let ua = UaKeys { public: ua_secret.public_key(), auth };
        let message = br#"{"title":"Disk full"}"#;
        let body = encrypt(message, &ua).unwrap();
        assert_eq!(decrypt(&body, &ua_secret, &auth).unwrap(), message);
        // salt 16 | rs 4 (4096) | idlen 65 | 0x04 key | one record: plaintext + 0x02 + tag.
        assert_eq!(&body[16..20], &4096u32.to_be_bytes());
        assert_eq!(body[20], 65);
        assert_eq!(body[21], 0x04);
        let sender = PublicKey::from_sec1_bytes(&body[21..86]).expect("the key id is the sender's public key");
        assert_ne!(uncompressed(&sender), uncompressed(&ua.public));
        assert_eq!(body.len(), HEADER_LEN + message.len() + 1 + 16);
        // A fresh salt and sender key every time.
        let again = encrypt(message, &ua).unwrap();
        assert_ne!(body[..16], again[..16]);
        assert_ne!(body[21..86], again[21..86]);
    }

    #[test]
    fn one_record_holds_at_most_3993_bytes() {
        assert_eq!(MAX_PLAINTEXT, 3993);
        let ua_secret = random_secret_key();
        let ua = UaKeys { public: ua_secret.public_key(), auth: [7; 16] };
        let full = vec![b'x'; MAX_PLAINTEXT];
        let body = encrypt(&full, &ua).unwrap();
        assert_eq!(body.len(), 4096);
        assert_eq!(decrypt(&body, &ua_secret, &[7; 16]).unwrap(), full);
        assert_eq!(encrypt(&vec![b'x'; MAX_PLAINTEXT + 1], &ua), Err(CryptoError::TooLong));
    }

    #[test]
    fn subscription_keys_are_checked() {
        assert!(UaKeys::parse(UA_PUBLIC, AUTH).is_ok());
        assert_eq!(parse_p256dh("not base64!").unwrap_err(), CryptoError::NotBase64);
        // Compressed form, wrong length, and a point off the curve.
        let compressed = URL_SAFE_NO_PAD.encode(secret(UA_PRIVATE).public_key().to_sec1_point(true).as_bytes());
        assert_eq!(parse_p256dh(&compressed).unwrap_err(), CryptoError::BadPublicKey);
        assert_eq!(parse_p256dh(AUTH).unwrap_err(), CryptoError::BadPublicKey);
        let mut off = b64(UA_PUBLIC);
        off[64] ^= 1;
        assert_eq!(parse_p256dh(&URL_SAFE_NO_PAD.encode(&off)).unwrap_err(), CryptoError::BadPublicKey);
        assert_eq!(parse_auth(SALT).unwrap(), arr::<16>(SALT));
        assert_eq!(parse_auth(AS_PRIVATE).unwrap_err(), CryptoError::BadAuth);
        // Padding is tolerated.
        assert!(parse_auth(&format!("{AUTH}==")).is_ok());
    }
}
