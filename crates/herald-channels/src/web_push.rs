//! The `web_push` channel: browser notifications through the push service of
//! each subscription (RFC 8030), encrypted for the browser (RFC 8291,
//! `aes128gcm`) and signed by the integration's VAPID key (RFC 8292).
//!
//! Subscriptions belong to recipients (the client app's ids) and are stored
//! by the server; the worker hands them to [`Message::push`] and deletes the
//! ones a push service reports gone ([`crate::Report`]). A push endpoint URL
//! is a capability: it appears in errors, details and logs only as its origin.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::{StreamExt as _, stream};
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;

use self::{
    crypto::{CryptoError, UaKeys},
    outcome::{Sent, aggregate, refine},
    payload::{Payload, fit},
    vapid::{VapidKey, origin},
};
use crate::{
    AddressPolicy, Channel, ConfigError, Context, Message, Outcome, PushSubscription, SendFuture, Severity, Target,
};

pub mod crypto;
mod outcome;
mod payload;
pub mod vapid;

/// The type name.
pub const KIND: &str = "web_push";
/// The longest `ttl` accepted: push services keep messages at most about four weeks.
pub const MAX_TTL: u32 = 28 * 24 * 3600;
/// The longest recipient id, in characters.
pub const MAX_RECIPIENT_ID: usize = 200;
/// At most this many recipients in `to`.
const MAX_TO: usize = 100;
const MAX_SUBJECT: usize = 256;
const MAX_ENDPOINT: usize = 2048;
/// Requests in flight at once for one message.
const PARALLEL: usize = 16;

/// The `web_push` channel.
#[derive(Debug, Clone, Copy, Default)]
pub struct WebPush;

/// The config as the API accepts and stores it (no `Debug`: it holds the
/// private key).
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct WebPushConfig {
    #[serde(default)]
    subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vapid_private_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vapid_public_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ttl: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to: Option<Vec<String>>,
}

/// The validated parts of a config.
struct Parsed {
    subject: String,
    key: Option<VapidKey>,
    ttl: Option<u32>,
    to: Vec<String>,
}

fn parse(config: &Value) -> Result<(WebPushConfig, Parsed), ConfigError> {
    let raw: WebPushConfig = serde_path_to_error::deserialize(config).map_err(|e| {
        let field = match e.path().to_string() {
            root if root == "." => String::new(),
            path => path,
        };
        ConfigError::new(field, e.into_inner().to_string())
    })?;
    let subject = check_subject(raw.subject.as_deref())?;
    let key = match &raw.vapid_private_key {
        None => None,
        Some(text) => {
            Some(VapidKey::from_private(text).map_err(|e| ConfigError::new("vapid_private_key", e.to_string()))?)
        }
    };
    if let (Some(key), Some(given)) = (&key, &raw.vapid_public_key) {
        let same = crypto::decode_b64url(given).ok() == crypto::decode_b64url(key.public_b64()).ok();
        if !same {
            return Err(ConfigError::new(
                "vapid_public_key",
                "does not match vapid_private_key (it is derived from the private key; leave it out)",
            ));
        }
    }
    if let Some(ttl) = raw.ttl
        && ttl > MAX_TTL
    {
        return Err(ConfigError::new("ttl", format!("must be at most {MAX_TTL} seconds (28 days)")));
    }
    let mut to: Vec<String> = Vec::new();
    let given = raw.to.as_deref().unwrap_or_default();
    if given.len() > MAX_TO {
        return Err(ConfigError::new("to", format!("at most {MAX_TO} recipients")));
    }
    for (i, id) in given.iter().enumerate() {
        check_recipient_id(id).map_err(|message| ConfigError::new(format!("to.{i}"), message))?;
        if !to.contains(id) {
            to.push(id.clone());
        }
    }
    let ttl = raw.ttl;
    Ok((raw, Parsed { subject, key, ttl, to }))
}

/// The VAPID contact: a `mailto:` address or an `https:` URL (RFC 8292 §2.1).
fn check_subject(subject: Option<&str>) -> Result<String, ConfigError> {
    let bad = |message: &str| ConfigError::new("subject", message);
    let subject = subject.map(str::trim).ok_or_else(|| bad("is required (a mailto: address or an https: URL)"))?;
    if subject.len() > MAX_SUBJECT {
        return Err(bad(&format!("must be at most {MAX_SUBJECT} characters")));
    }
    if subject.chars().any(|c| c.is_control() || c == '"') {
        return Err(bad("must not contain control characters or quotes"));
    }
    if let Some(address) = subject.strip_prefix("mailto:") {
        let valid = address.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !address.contains(char::is_whitespace)
        });
        return if valid { Ok(subject.to_owned()) } else { Err(bad("must be mailto: followed by an email address")) };
    }
    match Url::parse(subject) {
        Ok(url) if url.scheme() == "https" && url.host().is_some() => Ok(subject.to_owned()),
        _ => Err(bad("must be a mailto: address or an https: URL")),
    }
}

/// Checks a recipient id (the client app's id of a person): 1 to 200
/// characters, no control characters.
pub fn check_recipient_id(id: &str) -> Result<(), String> {
    let len = id.chars().count();
    if len == 0 || len > MAX_RECIPIENT_ID {
        return Err(format!("a recipient id is 1 to {MAX_RECIPIENT_ID} characters"));
    }
    if id.chars().any(char::is_control) {
        return Err("a recipient id must not contain control characters".into());
    }
    Ok(())
}

/// The recipients whose subscriptions a send goes to: `to` (a test send's
/// recipient, or a person's delivery) when given, else the config's `to`.
/// Reads a stored config as is (`to` is not secret).
pub fn recipients(config: &Value, to: Option<&str>) -> Vec<String> {
    match to {
        Some(id) => vec![id.to_owned()],
        None => config
            .get("to")
            .and_then(Value::as_array)
            .map(|ids| ids.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default(),
    }
}

/// Validates a browser's subscription (`PushSubscription.toJSON()`): the
/// endpoint is an http(s) URL the address policy allows, `p256dh` a P-256
/// point, `auth` 16 bytes. The error names the field (`endpoint`,
/// `keys.p256dh`, `keys.auth`).
pub fn check_subscription(sub: &PushSubscription, policy: &AddressPolicy) -> Result<(), (&'static str, String)> {
    let endpoint = parse_endpoint(&sub.endpoint).map_err(|message| ("endpoint", message))?;
    policy.check_url(&endpoint).map_err(|e| ("endpoint", e.to_string()))?;
    crypto::parse_p256dh(&sub.p256dh).map_err(|e| ("keys.p256dh", e.to_string()))?;
    crypto::parse_auth(&sub.auth).map_err(|e| ("keys.auth", e.to_string()))?;
    Ok(())
}

fn parse_endpoint(endpoint: &str) -> Result<Url, String> {
    if endpoint.len() > MAX_ENDPOINT {
        return Err(format!("must be at most {MAX_ENDPOINT} characters"));
    }
    let url = Url::parse(endpoint).map_err(|e| format!("is not a valid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("must be an http or https URL".into());
    }
    if url.fragment().is_some() {
        return Err("must not have a #fragment".into());
    }
    Ok(url)
}

impl Channel for WebPush {
    fn reaches_people(&self) -> bool {
        true
    }

    fn kind(&self) -> &'static str {
        KIND
    }

    fn schema(&self) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["subject"],
            "properties": {
                "subject": {
                    "type": "string",
                    "maxLength": MAX_SUBJECT,
                    "description": "VAPID contact the push services can reach you at: a mailto: address or an https: URL."
                },
                "vapid_private_key": {
                    "type": "string",
                    "secret": true,
                    "description": "VAPID private key: base64url of the raw 32-byte P-256 scalar; generated when omitted."
                },
                "vapid_public_key": {
                    "type": "string",
                    "description": "VAPID public key, derived from the private key (base64url, 65-byte uncompressed point): pass it to pushManager.subscribe as applicationServerKey."
                },
                "ttl": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": MAX_TTL,
                    "description": "Seconds a push service keeps an undelivered message; by severity when omitted (1 day for info and success, 3 days for warning, 7 days for error and critical)."
                },
                "to": {
                    "type": "array",
                    "maxItems": MAX_TO,
                    "items": { "type": "string", "minLength": 1, "maxLength": MAX_RECIPIENT_ID },
                    "description": "Recipient ids whose browser subscriptions receive what rules send here."
                }
            }
        })
    }

    fn secret_fields(&self) -> &'static [&'static str] {
        &["vapid_private_key"]
    }

    fn prepare(&self, config: Value, _ctx: &Context) -> Result<Value, ConfigError> {
        let (mut raw, parsed) = parse(&config)?;
        let key = match parsed.key {
            Some(key) => key,
            None if raw.vapid_public_key.is_some() => {
                return Err(ConfigError::new(
                    "vapid_public_key",
                    "is derived from vapid_private_key: give both, or neither to have a key pair generated",
                ));
            }
            None => VapidKey::generate(),
        };
        raw.subject = Some(parsed.subject);
        raw.vapid_private_key = Some(key.private_b64());
        raw.vapid_public_key = Some(key.public_b64().to_owned());
        raw.to = (!parsed.to.is_empty()).then_some(parsed.to);
        serde_json::to_value(&raw).map_err(|e| ConfigError::new("", e.to_string()))
    }

    fn build(&self, config: &Value, ctx: &Context) -> Result<Arc<dyn Target>, ConfigError> {
        let (_, parsed) = parse(config)?;
        let key =
            parsed.key.ok_or_else(|| ConfigError::new("vapid_private_key", "is required (prepare generates one)"))?;
        Ok(Arc::new(WebPushTarget {
            key,
            subject: parsed.subject,
            ttl: parsed.ttl,
            to: parsed.to,
            client: ctx.http.clone(),
            policy: ctx.policy,
        }))
    }

    fn check_recipient(&self, to: &str) -> Result<(), String> {
        check_recipient_id(to)
    }
}

/// A built web push sender.
pub struct WebPushTarget {
    key: VapidKey,
    subject: String,
    ttl: Option<u32>,
    to: Vec<String>,
    client: reqwest::Client,
    policy: AddressPolicy,
}

impl fmt::Debug for WebPushTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebPushTarget").field("key", &self.key).field("subject", &self.subject).finish_non_exhaustive()
    }
}

/// How long a push service keeps an undelivered message, by severity.
pub fn default_ttl(severity: Severity) -> u32 {
    match severity {
        Severity::Info | Severity::Success => 24 * 3600,
        Severity::Warning => 3 * 24 * 3600,
        Severity::Error | Severity::Critical => 7 * 24 * 3600,
    }
}

/// RFC 8030 `Urgency`: `high` (delivered even on low battery) for error and
/// critical; `normal` otherwise, warnings included, so that a flood of
/// warnings does not drain a phone that is saving power.
pub fn urgency(severity: Severity) -> &'static str {
    match severity {
        Severity::Error | Severity::Critical => "high",
        Severity::Info | Severity::Success | Severity::Warning => "normal",
    }
}

/// RFC 8030 `Topic` (at most 32 base64url characters): the delivery id's 32
/// hex digits, so a retried push replaces one the service still holds.
pub fn topic(delivery_id: &str) -> Option<String> {
    let id = delivery_id.strip_prefix("dlv_").unwrap_or(delivery_id);
    let topic: String = id.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').take(32).collect();
    (!topic.is_empty()).then_some(topic)
}

impl WebPushTarget {
    async fn send_all(&self, message: &Message<'_>, timeout: Duration) -> Outcome {
        if message.push.is_empty() {
            let who = recipients_text(message.to.map_or(self.to.clone(), |to| vec![to.to_owned()]));
            return Outcome::Failed {
                status_code: None,
                error: format!("no push subscriptions for {who}"),
                detail: None,
            };
        }
        let body = match fit(Payload::of(message)) {
            Ok(body) => body,
            Err(error) => return Outcome::Failed { status_code: None, error, detail: None },
        };
        let severity = message.content.severity;
        let headers = Headers {
            ttl: self.ttl.unwrap_or_else(|| default_ttl(severity)),
            urgency: urgency(severity),
            topic: topic(message.delivery_id),
            now: chrono::Utc::now().timestamp(),
        };
        // The whole attempt, every subscription included, ends by the deadline.
        let deadline = Instant::now() + timeout;
        let sends: Vec<_> = message.push.iter().map(|sub| self.send_one(sub, &body, &headers, deadline)).collect();
        let results: Vec<Sent> = stream::iter(sends).buffered(PARALLEL).collect().await;
        for (sub, sent) in message.push.iter().zip(&results) {
            if matches!(sent.outcome.status_code(), Some(404 | 410)) {
                message.report.subscription_gone(&sub.endpoint);
            }
        }
        aggregate(results)
    }

    async fn send_one(&self, sub: &PushSubscription, body: &[u8], headers: &Headers, deadline: Instant) -> Sent {
        let failed = |origin: String, error: String| Sent {
            origin,
            outcome: Outcome::Failed { status_code: None, error, detail: None },
        };
        let endpoint = match parse_endpoint(&sub.endpoint) {
            Ok(url) => url,
            Err(message) => return failed("(invalid endpoint)".into(), format!("endpoint {message}")),
        };
        let origin = origin(&endpoint);
        // IP literals never reach the resolver, so the policy is applied here.
        if let Err(refused) = self.policy.check_url(&endpoint) {
            return failed(origin, refused.to_string());
        }
        let encrypted = match UaKeys::parse(&sub.p256dh, &sub.auth).and_then(|ua| crypto::encrypt(body, &ua)) {
            Ok(encrypted) => encrypted,
            Err(e @ (CryptoError::BadPublicKey | CryptoError::NotBase64)) => {
                return failed(origin, format!("subscription keys: {e}"));
            }
            Err(e) => return failed(origin, e.to_string()),
        };
        let mut request = self
            .client
            .post(endpoint.clone())
            .header(CONTENT_ENCODING, "aes128gcm")
            .header(CONTENT_TYPE, "application/octet-stream")
            .header("TTL", headers.ttl.to_string())
            .header("Urgency", headers.urgency)
            .header(AUTHORIZATION, self.key.authorization(&endpoint, &self.subject, headers.now))
            .body(encrypted);
        if let Some(topic) = &headers.topic {
            request = request.header("Topic", topic);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let error = "the attempt timed out before this subscription's turn".to_owned();
            return Sent { origin, outcome: Outcome::Retry { status_code: None, after: None, error, detail: None } };
        }
        let outcome = refine(crate::http::send_and_classify(request, left).await);
        Sent { origin, outcome }
    }
}

/// The per-message headers, the same for every subscription.
struct Headers {
    ttl: u32,
    urgency: &'static str,
    topic: Option<String>,
    now: i64,
}

impl Target for WebPushTarget {
    fn send<'a>(&'a self, message: &'a Message<'a>, timeout: Duration) -> SendFuture<'a> {
        Box::pin(self.send_all(message, timeout))
    }
}

fn recipients_text(ids: Vec<String>) -> String {
    match ids.as_slice() {
        [] => "no recipient (set `to` in the config, or send to a recipient)".into(),
        [one] => format!("recipient `{one}`"),
        many => format!("recipients {}", many.iter().map(|id| format!("`{id}`")).collect::<Vec<_>>().join(", ")),
    }
}

#[cfg(test)]
mod tests;
