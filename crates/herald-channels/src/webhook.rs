//! The `webhook` channel: a signed JSON POST per Standard Webhooks
//! (<https://www.standardwebhooks.com/>).

use std::{collections::BTreeMap, fmt, sync::Arc, time::Duration};

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;

pub use self::signature::{SecretError, decode_secret, generate_secret, sign};
use crate::{AddressPolicy, Channel, ConfigError, Context, Message, Outcome, SendFuture, Target};

mod signature;

use crate::http::MAX_URL_LEN;
const MAX_HEADERS: usize = 20;
/// Headers Herald sets itself (plus every `webhook-*`): a custom one would
/// break the signature contract or the HTTP framing.
const RESERVED_HEADERS: [&str; 6] =
    ["content-type", "content-length", "host", "connection", "transfer-encoding", "user-agent"];

/// The `webhook` channel.
#[derive(Debug, Clone, Copy, Default)]
pub struct Webhook;

/// The config as the API accepts and stores it.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct WebhookConfig {
    // Optional here so that a missing URL is reported on the `url` field.
    #[serde(default)]
    url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    headers: BTreeMap<String, String>,
}

/// The validated parts of a config.
struct Parsed {
    url: Url,
    key: Option<Vec<u8>>,
    headers: HeaderMap,
}

fn parse(config: &Value) -> Result<(WebhookConfig, Parsed), ConfigError> {
    let raw: WebhookConfig = serde_path_to_error::deserialize(config).map_err(|e| {
        let field = match e.path().to_string() {
            root if root == "." => String::new(),
            path => path,
        };
        ConfigError::new(field, e.into_inner().to_string())
    })?;
    let url = parse_url(raw.url.as_deref())?;
    let headers = parse_headers(&raw.headers)?;
    let key = match &raw.secret {
        None => None,
        Some(s) => Some(decode_secret(s).map_err(|e| ConfigError::new("secret", e.to_string()))?),
    };
    Ok((raw, Parsed { url, key, headers }))
}

fn parse_url(url: Option<&str>) -> Result<Url, ConfigError> {
    let url = url.ok_or_else(|| ConfigError::new("url", "is required"))?;
    crate::http::parse_target_url("url", url)
}

fn parse_headers(headers: &BTreeMap<String, String>) -> Result<HeaderMap, ConfigError> {
    if headers.len() > MAX_HEADERS {
        return Err(ConfigError::new("headers", format!("at most {MAX_HEADERS} headers")));
    }
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let bad = |message: &str| ConfigError::new(format!("headers.{name}"), message);
        let parsed = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad("is not a valid HTTP header name"))?;
        let lower = parsed.as_str();
        if RESERVED_HEADERS.contains(&lower) || lower.starts_with("webhook-") {
            return Err(bad("is set by Herald and cannot be overridden"));
        }
        if map.contains_key(&parsed) {
            return Err(bad("is given twice (header names are case-insensitive)"));
        }
        // `from_str` refuses CR, LF and other control characters, so a value
        // cannot smuggle in another header.
        let value = HeaderValue::from_str(value).map_err(|_| bad("is not a valid HTTP header value"))?;
        map.insert(parsed, value);
    }
    Ok(map)
}

impl Channel for Webhook {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn schema(&self) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["url"],
            "properties": {
                "url": {
                    "type": "string",
                    "format": "uri",
                    "maxLength": MAX_URL_LEN,
                    "description": "The http or https endpoint the signed POST goes to."
                },
                "secret": {
                    "type": "string",
                    "pattern": "^whsec_[A-Za-z0-9+/]+={0,2}$",
                    "secret": true,
                    "description": "Standard Webhooks signing secret: whsec_ + base64 of 24 to 64 bytes; generated when omitted."
                },
                "headers": {
                    "type": "object",
                    "maxProperties": MAX_HEADERS,
                    "additionalProperties": { "type": "string" },
                    "description": "Extra request headers; content-type, host, user-agent and webhook-* are reserved."
                }
            }
        })
    }

    fn secret_fields(&self) -> &'static [&'static str] {
        &["secret"]
    }

    fn renders(&self) -> bool {
        // The receiver gets the event itself, not a message for people.
        false
    }

    fn prepare(&self, config: Value, ctx: &Context) -> Result<Value, ConfigError> {
        let (mut raw, parsed) = parse(&config)?;
        ctx.policy.check_url(&parsed.url).map_err(|e| ConfigError::new("url", e.to_string()))?;
        raw.url = Some(parsed.url.to_string());
        raw.secret.get_or_insert_with(generate_secret);
        serde_json::to_value(&raw).map_err(|e| ConfigError::new("", e.to_string()))
    }

    fn build(&self, config: &Value, ctx: &Context) -> Result<Arc<dyn Target>, ConfigError> {
        // The policy is not checked here but on every send, so a target built
        // before the policy tightened still cannot reach a refused address.
        let (_, parsed) = parse(config)?;
        let key = parsed.key.ok_or_else(|| ConfigError::new("secret", "is required (prepare generates one)"))?;
        Ok(Arc::new(WebhookTarget {
            url: parsed.url,
            key,
            headers: parsed.headers,
            client: ctx.http.clone(),
            policy: ctx.policy,
        }))
    }
}

/// A built webhook endpoint.
pub struct WebhookTarget {
    url: Url,
    key: Vec<u8>,
    headers: HeaderMap,
    client: reqwest::Client,
    policy: AddressPolicy,
}

impl fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Custom headers often carry credentials; the key always does.
        f.debug_struct("WebhookTarget")
            .field("url", &self.url.as_str())
            .field("key", &"[REDACTED]")
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The JSON body: exactly these keys, in this order.
#[derive(Serialize)]
struct Payload<'a> {
    #[serde(rename = "type")]
    event_type: &'a str,
    timestamp: &'a str,
    data: &'a Value,
}

impl WebhookTarget {
    async fn send_once(&self, message: &Message<'_>, timeout: Duration) -> Outcome {
        // IP literals never reach the resolver, so the policy is applied here.
        if let Err(refused) = self.policy.check_url(&self.url) {
            return Outcome::Failed { status_code: None, error: refused.to_string(), detail: None };
        }
        let payload = Payload { event_type: message.event_type, timestamp: message.timestamp, data: message.data };
        let body = match serde_json::to_vec(&payload) {
            Ok(body) => body,
            Err(e) => {
                return Outcome::Failed { status_code: None, error: format!("payload: {e}"), detail: None };
            }
        };
        // New on each attempt, as the spec asks: receivers reject stale timestamps.
        let timestamp = chrono::Utc::now().timestamp();
        let signature = sign(&self.key, message.delivery_id, timestamp, &body);
        let request = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .header("webhook-id", message.delivery_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body);
        let outcome = crate::http::send_and_classify(request, timeout).await;
        if outcome.status_code() == Some(410) {
            message.report.destination_gone();
        }
        outcome
    }
}

impl Target for WebhookTarget {
    fn send<'a>(&'a self, message: &'a Message<'a>, timeout: Duration) -> SendFuture<'a> {
        Box::pin(self.send_once(message, timeout))
    }
}

#[cfg(test)]
mod tests {
    use std::{net::SocketAddr, sync::Mutex};

    use axum::{Router, body::Bytes, http::HeaderMap as AxumHeaders, routing::post};

    use base64::{Engine as _, engine::general_purpose::STANDARD};
    use hmac::{Hmac, KeyInit, Mac};
    use sha2::Sha256;

    use super::*;
    use crate::{
        Severity,
        testing::{Sample, ctx},
    };

    fn prepare_err(config: Value) -> ConfigError {
        Webhook.prepare(config, &ctx(false)).unwrap_err()
    }

    #[test]
    fn prepare_names_the_wrong_field() {
        let field = |config: Value| prepare_err(config).field;
        assert_eq!(field(json!({})), "url");
        assert_eq!(field(json!({"url": 5})), "url");
        assert_eq!(field(json!({"url": "not a url"})), "url");
        assert_eq!(field(json!({"url": "ftp://example.com/"})), "url");
        assert_eq!(field(json!({"url": "https://example.com/#frag"})), "url");
        assert_eq!(field(json!({"url": format!("https://example.com/{}", "a".repeat(2048))})), "url");
        assert_eq!(field(json!({"url": "http://169.254.169.254/latest/meta-data"})), "url");
        assert_eq!(field(json!({"url": "http://[::ffff:127.0.0.1]/"})), "url");
        assert_eq!(field(json!({"url": "https://example.com", "extra": 1})), "extra");
        assert_eq!(field(json!({"url": "https://example.com", "secret": "nope"})), "secret");
        assert_eq!(field(json!({"url": "https://example.com", "secret": "whsec_c2hvcnQ="})), "secret");
        let with_header =
            |name: &str, value: &str| field(json!({"url": "https://example.com", "headers": {name: value}}));
        assert_eq!(with_header("Bad Name", "x"), "headers.Bad Name");
        assert_eq!(with_header("X-Ok", "line\r\nX-Evil: 1"), "headers.X-Ok");
        for reserved in ["Content-Type", "HOST", "user-agent", "Webhook-Signature", "webhook-id", "Transfer-Encoding"] {
            assert_eq!(with_header(reserved, "x"), format!("headers.{reserved}"));
        }
        assert_eq!(field(json!({"url": "https://example.com", "headers": {"X-A": 1}})), "headers.X-A");
        let many: BTreeMap<String, String> = (0..21).map(|i| (format!("x-h{i}"), "v".to_owned())).collect();
        assert_eq!(field(json!({"url": "https://example.com", "headers": many})), "headers");
        let twice = field(json!({"url": "https://example.com", "headers": {"X-A": "1", "x-a": "2"}}));
        assert!(twice == "headers.x-a" || twice == "headers.X-A", "{twice}");
        assert_eq!(prepare_err(json!("https://example.com")).field, "");
    }

    #[test]
    fn prepare_normalises_and_generates_a_secret() {
        let prepared = Webhook
            .prepare(json!({"url": "HTTPS://Example.COM/hook", "headers": {"X-Team": "ops"}}), &ctx(false))
            .unwrap();
        assert_eq!(prepared["url"], "https://example.com/hook");
        assert_eq!(prepared["headers"], json!({"X-Team": "ops"}));
        let secret = prepared["secret"].as_str().unwrap();
        assert_eq!(decode_secret(secret).unwrap().len(), 32);
        // A given secret is kept, and preparing again changes nothing.
        assert_eq!(Webhook.prepare(prepared.clone(), &ctx(false)).unwrap(), prepared);
        // Private addresses follow the policy.
        assert!(Webhook.prepare(json!({"url": "http://127.0.0.1:9/"}), &ctx(true)).is_ok());
        assert!(Webhook.build(&prepared, &ctx(false)).is_ok());
        assert_eq!(Webhook.build(&json!({"url": "https://example.com"}), &ctx(false)).err().unwrap().field, "secret");
    }

    #[test]
    fn schema_marks_the_secret() {
        let schema = Webhook.schema();
        assert_eq!(schema["properties"]["secret"]["secret"], true);
        assert_eq!(Webhook.secret_fields(), ["secret"]);
        assert_eq!(Webhook.kind(), "webhook");
    }

    /// What the local receiver saw: headers and exact body bytes.
    type Seen = Arc<Mutex<Vec<(AxumHeaders, Bytes)>>>;

    async fn receiver() -> (SocketAddr, Seen) {
        let seen = Seen::default();
        let store = seen.clone();
        let router = Router::new().route(
            "/hook",
            post(move |headers: AxumHeaders, body: Bytes| async move {
                store.lock().unwrap().push((headers, body));
                "thanks"
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        (addr, seen)
    }

    #[tokio::test]
    async fn sends_a_signed_standard_webhook() {
        let (addr, seen) = receiver().await;
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let ctx = ctx(true);
        let config = json!({"url": format!("http://{addr}/hook"), "secret": secret, "headers": {"X-Team": "ops"}});
        let target = Webhook.build(&Webhook.prepare(config, &ctx).unwrap(), &ctx).unwrap();
        let sample = Sample::new("disk.full", Severity::Critical, json!({"disk": "/", "used": 0.97}));
        let message = Message { delivery_id: "dlv_01J0TEST", ..sample.message() };
        let before = chrono::Utc::now().timestamp();
        let outcome = target.send(&message, Duration::from_secs(5)).await;
        assert_eq!(outcome, Outcome::Delivered { status_code: Some(200), detail: Some("thanks".into()) });

        let (headers, body) = seen.lock().unwrap().pop().expect("one request");
        let header = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_owned();
        assert_eq!(
            body.as_ref(),
            br#"{"type":"disk.full","timestamp":"2026-01-02T03:04:05Z","data":{"disk":"/","used":0.97}}"#
        );
        assert_eq!(header("content-type"), "application/json");
        assert_eq!(header("webhook-id"), "dlv_01J0TEST");
        assert_eq!(header("x-team"), "ops");
        let ts: i64 = header("webhook-timestamp").parse().unwrap();
        assert!((before..=chrono::Utc::now().timestamp()).contains(&ts));

        // Recomputed from the spec, not with `sign`.
        let key = STANDARD.decode(&secret["whsec_".len()..]).unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("dlv_01J0TEST.{ts}.").as_bytes());
        mac.update(&body);
        let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
        assert_eq!(header("webhook-signature"), expected);
    }

    #[tokio::test]
    async fn send_rechecks_the_policy() {
        let (addr, seen) = receiver().await;
        let config = json!({"url": format!("http://{addr}/hook"), "secret": generate_secret()});
        // Prepared while private addresses were allowed, sent after they no longer are.
        let target = Webhook.build(&config, &ctx(false)).unwrap();
        let sample = Sample::new("t", Severity::Info, json!(null));
        let outcome = target.send(&sample.message(), Duration::from_secs(5)).await;
        assert_eq!(outcome.label(), "failed");
        assert!(outcome.error().unwrap().starts_with("127.0.0.1 is loopback"), "{outcome:?}");
        assert!(seen.lock().unwrap().is_empty());
    }
}
