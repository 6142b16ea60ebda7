//! The `ntfy` channel: a message published as JSON to the server's root URL
//! (<https://docs.ntfy.sh/publish/#publish-as-json>).
//!
//! The message is plain text (no `markdown`), so event text shows as it
//! is; the severity becomes the priority (unless the config fixes one) and
//! an emoji tag, and the event's link the click action.

use std::{fmt, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;

use crate::{
    AddressPolicy, Channel, ConfigError, Context, Message, Outcome, SendFuture, Severity, Target,
    provider_api::{self, parse_config, required},
};

/// The public server.
pub const DEFAULT_SERVER_URL: &str = "https://ntfy.sh";
/// ntfy turns a longer message into an attachment; it is cut instead.
const MAX_MESSAGE_BYTES: usize = 4096;
const MAX_TAGS: usize = 10;
const MAX_TAG: usize = 64;

/// The `ntfy` channel.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ntfy;

/// The config as the API accepts and stores it (no `Debug`: it holds secrets).
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct NtfyConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    server_url: Option<String>,
    #[serde(default)]
    topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    priority: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tags: Option<Vec<String>>,
}

/// How requests authenticate.
enum Auth {
    None,
    /// An access token (`tk_…`), sent as `Authorization: Bearer`.
    Token(String),
    /// A user, sent as `Authorization: Basic`.
    Basic {
        username: String,
        password: String,
    },
}

fn check_topic(topic: &str) -> Result<(), String> {
    let valid =
        (1..=64).contains(&topic.len()) && topic.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid { Ok(()) } else { Err("must be 1 to 64 letters, digits, - or _ (an ntfy topic name)".into()) }
}

fn check_secret(field: &str, value: &str, what: &str) -> Result<(), ConfigError> {
    if value.is_empty() || value.chars().any(char::is_control) {
        return Err(ConfigError::new(field, format!("must be {what} without line breaks or control characters")));
    }
    Ok(())
}

fn parse_auth(raw: &NtfyConfig) -> Result<Auth, ConfigError> {
    match (&raw.token, &raw.username, &raw.password) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            Err(ConfigError::new("token", "give either token or username and password, not both"))
        }
        (Some(token), None, None) => {
            if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ConfigError::new("token", "must be an ntfy access token (tk_…, no spaces)"));
            }
            Ok(Auth::Token(token.clone()))
        }
        (None, Some(username), Some(password)) => {
            check_secret("username", username, "a user name")?;
            if username.contains(':') {
                return Err(ConfigError::new("username", "must not contain `:`"));
            }
            check_secret("password", password, "the user's password")?;
            Ok(Auth::Basic { username: username.clone(), password: password.clone() })
        }
        (None, Some(_), None) => Err(ConfigError::new("password", "is required with username")),
        (None, None, Some(_)) => Err(ConfigError::new("username", "is required with password")),
        (None, None, None) => Ok(Auth::None),
    }
}

fn check_tags(tags: &[String]) -> Result<(), ConfigError> {
    if tags.len() > MAX_TAGS {
        return Err(ConfigError::new("tags", format!("at most {MAX_TAGS} tags")));
    }
    for (i, tag) in tags.iter().enumerate() {
        let valid = !tag.trim().is_empty()
            && tag.chars().count() <= MAX_TAG
            && !tag.contains(',')
            && !tag.chars().any(char::is_control);
        if !valid {
            return Err(ConfigError::new(
                format!("tags[{i}]"),
                format!("must be 1 to {MAX_TAG} characters, without commas or control characters"),
            ));
        }
    }
    Ok(())
}

/// The validated parts of a config.
struct Parsed {
    /// The server's root URL, where JSON is published.
    root: Url,
    topic: String,
    auth: Auth,
    priority: Option<u8>,
    tags: Vec<String>,
}

fn parse(config: &Value) -> Result<(NtfyConfig, Parsed), ConfigError> {
    let raw: NtfyConfig = parse_config(config)?;
    let base = provider_api::parse_base_url("server_url", raw.server_url.as_deref().unwrap_or(DEFAULT_SERVER_URL))?;
    let topic = required("topic", raw.topic.clone())?;
    check_topic(&topic).map_err(|e| ConfigError::new("topic", e))?;
    let auth = parse_auth(&raw)?;
    if raw.priority.is_some_and(|p| !(1..=5).contains(&p)) {
        return Err(ConfigError::new("priority", "must be 1 (min) to 5 (max)"));
    }
    let tags = raw.tags.clone().unwrap_or_default();
    check_tags(&tags)?;
    let (root, priority) = (provider_api::endpoint(&base, ""), raw.priority);
    Ok((raw, Parsed { root, topic, auth, priority, tags }))
}

impl Channel for Ntfy {
    fn reaches_people(&self) -> bool {
        true
    }

    fn kind(&self) -> &'static str {
        "ntfy"
    }

    fn schema(&self) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["topic"],
            "properties": {
                "server_url": {
                    "type": "string",
                    "format": "uri",
                    "default": DEFAULT_SERVER_URL,
                    "description": "The ntfy server (its root URL, with the path prefix if it has one)."
                },
                "topic": {
                    "type": "string",
                    "pattern": "^[-_A-Za-z0-9]{1,64}$",
                    "description": "The topic to publish to."
                },
                "token": {
                    "type": "string",
                    "secret": true,
                    "description": "An access token (tk_…) for a protected topic; or give username and password."
                },
                "username": {
                    "type": "string",
                    "description": "A user for a protected topic (with password)."
                },
                "password": {
                    "type": "string",
                    "secret": true,
                    "description": "The user's password (with username)."
                },
                "priority": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 5,
                    "description": "A fixed priority, 1 (min) to 5 (max); by default it follows the event's severity."
                },
                "tags": {
                    "type": "array",
                    "maxItems": MAX_TAGS,
                    "items": {"type": "string", "maxLength": MAX_TAG},
                    "description": "Tags added to every message (emoji short codes show as emoji)."
                }
            }
        })
    }

    fn secret_fields(&self) -> &'static [&'static str] {
        &["token", "password"]
    }

    fn prepare(&self, config: Value, ctx: &Context) -> Result<Value, ConfigError> {
        let (mut raw, parsed) = parse(&config)?;
        ctx.policy.check_url(&parsed.root).map_err(|e| ConfigError::new("server_url", e.to_string()))?;
        raw.server_url = raw.server_url.is_some().then(|| provider_api::stored_url(&parsed.root));
        serde_json::to_value(&raw).map_err(|e| ConfigError::new("", e.to_string()))
    }

    fn build(&self, config: &Value, ctx: &Context) -> Result<Arc<dyn Target>, ConfigError> {
        let (_, parsed) = parse(config)?;
        Ok(Arc::new(NtfyTarget {
            root: parsed.root,
            topic: parsed.topic,
            auth: parsed.auth,
            priority: parsed.priority,
            tags: parsed.tags,
            client: ctx.http.clone(),
            policy: ctx.policy,
        }))
    }

    fn check_recipient(&self, to: &str) -> Result<(), String> {
        check_topic(to)
    }
}

/// A built ntfy topic.
pub struct NtfyTarget {
    root: Url,
    topic: String,
    auth: Auth,
    priority: Option<u8>,
    tags: Vec<String>,
    client: reqwest::Client,
    policy: AddressPolicy,
}

impl fmt::Debug for NtfyTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match &self.auth {
            Auth::None => "none",
            Auth::Token(_) => "token [REDACTED]",
            Auth::Basic { .. } => "basic [REDACTED]",
        };
        f.debug_struct("NtfyTarget")
            .field("root", &self.root.as_str())
            .field("topic", &self.topic)
            .field("auth", &auth)
            .finish_non_exhaustive()
    }
}

/// The JSON message ntfy takes.
#[derive(Serialize)]
struct Publish<'a> {
    topic: &'a str,
    title: &'a str,
    message: String,
    priority: u8,
    tags: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    click: Option<&'a str>,
}

/// The priority a severity gets: a success is quiet, an error buzzes, a
/// critical event is urgent.
pub fn priority_of(severity: Severity) -> u8 {
    match severity {
        Severity::Success => 2,
        Severity::Info => 3,
        Severity::Warning | Severity::Error => 4,
        Severity::Critical => 5,
    }
}

/// The emoji short code tag of a severity.
pub fn tag_of(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "information_source",
        Severity::Success => "white_check_mark",
        Severity::Warning => "warning",
        Severity::Error => "x",
        Severity::Critical => "rotating_light",
    }
}

impl NtfyTarget {
    async fn send_once(&self, message: &Message<'_>, timeout: Duration) -> Outcome {
        if let Some(refused) = provider_api::refused(&self.policy, &self.root) {
            return refused;
        }
        let topic = match message.to {
            None => self.topic.as_str(),
            Some(to) => match check_topic(to) {
                Ok(()) => to,
                Err(e) => return Outcome::Failed { status_code: None, error: format!("recipient: {e}"), detail: None },
            },
        };
        let content = message.content;
        let mut tags: Vec<&str> = self.tags.iter().map(String::as_str).collect();
        tags.push(tag_of(content.severity));
        let payload = Publish {
            topic,
            title: &content.title,
            message: crate::render::cut_bytes_marked(&content.plain_body(), MAX_MESSAGE_BYTES),
            priority: self.priority.unwrap_or_else(|| priority_of(content.severity)),
            tags,
            click: content.link.as_deref(),
        };
        let request = self.client.post(self.root.clone()).json(&payload);
        let request = match &self.auth {
            Auth::None => request,
            Auth::Token(token) => request.bearer_auth(token),
            Auth::Basic { username, password } => request.basic_auth(username, Some(password)),
        };
        classify(crate::http::send_and_classify(request, timeout).await)
    }
}

impl Target for NtfyTarget {
    fn send<'a>(&'a self, message: &'a Message<'a>, timeout: Duration) -> SendFuture<'a> {
        Box::pin(self.send_once(message, timeout))
    }
}

/// An ntfy error: `{"code", "http", "error", "link"?}`.
#[derive(Deserialize)]
struct NtfyError {
    #[serde(default)]
    code: Option<u64>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    link: Option<String>,
}

/// Refines the status table's verdict with ntfy's `error`, `code` and `link`.
fn classify(outcome: Outcome) -> Outcome {
    if matches!(outcome, Outcome::Delivered { .. }) {
        return outcome;
    }
    let Some(err) = provider_api::answer::<NtfyError>(&outcome) else {
        return outcome;
    };
    let Some(text) = err.error else {
        return outcome;
    };
    let reason = match (err.code, err.link) {
        (Some(code), Some(link)) => format!("{text} (code {code}, see {link})"),
        (Some(code), None) => format!("{text} (code {code})"),
        (None, _) => text,
    };
    provider_api::explain(outcome, Some(&reason), None)
}

#[cfg(test)]
mod tests;
