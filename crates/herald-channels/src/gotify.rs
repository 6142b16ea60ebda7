//! The `gotify` channel: `POST /message` on a Gotify server
//! (<https://gotify.net/docs/pushmsg>, extras: <https://gotify.net/docs/msgextras>).
//!
//! The application token goes in the `X-Gotify-Key` header, never in the
//! query string, where proxies and access logs would keep it. The message
//! is Markdown (`client::display`), with every event text escaped, and the
//! event's link is the notification's click action.

use std::{fmt, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;

use crate::{
    AddressPolicy, Channel, ConfigError, Content, Context, Message, Outcome, SendFuture, Severity, Target,
    provider_api::{self, parse_config, required},
};

/// The `gotify` channel.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gotify;

/// The config as the API accepts and stores it (no `Debug`: it holds the token).
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct GotifyConfig {
    #[serde(default)]
    server_url: Option<String>,
    #[serde(default)]
    app_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    priority: Option<u8>,
}

/// The validated parts of a config.
struct Parsed {
    base: Url,
    token: String,
    priority: Option<u8>,
}

fn parse(config: &Value) -> Result<(GotifyConfig, Parsed), ConfigError> {
    let raw: GotifyConfig = parse_config(config)?;
    let base = provider_api::parse_base_url("server_url", &required("server_url", raw.server_url.clone())?)?;
    let token = required("app_token", raw.app_token.clone())?;
    // It goes into a header: visible ASCII only.
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::new("app_token", "must be an application token (no spaces)"));
    }
    if raw.priority.is_some_and(|p| p > 10) {
        return Err(ConfigError::new("priority", "must be 0 to 10"));
    }
    let priority = raw.priority;
    Ok((raw, Parsed { base, token, priority }))
}

impl Channel for Gotify {
    fn kind(&self) -> &'static str {
        "gotify"
    }

    fn schema(&self) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["server_url", "app_token"],
            "properties": {
                "server_url": {
                    "type": "string",
                    "format": "uri",
                    "description": "The Gotify server (with its path prefix if it has one)."
                },
                "app_token": {
                    "type": "string",
                    "secret": true,
                    "description": "The token of the Gotify application messages are posted as."
                },
                "priority": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": 10,
                    "description": "A fixed priority, 0 to 10; by default it follows the event's severity."
                }
            }
        })
    }

    fn secret_fields(&self) -> &'static [&'static str] {
        &["app_token"]
    }

    fn prepare(&self, config: Value, ctx: &Context) -> Result<Value, ConfigError> {
        let (mut raw, parsed) = parse(&config)?;
        ctx.policy.check_url(&parsed.base).map_err(|e| ConfigError::new("server_url", e.to_string()))?;
        raw.server_url = Some(provider_api::stored_url(&parsed.base));
        serde_json::to_value(&raw).map_err(|e| ConfigError::new("", e.to_string()))
    }

    fn build(&self, config: &Value, ctx: &Context) -> Result<Arc<dyn Target>, ConfigError> {
        let (_, parsed) = parse(config)?;
        Ok(Arc::new(GotifyTarget {
            endpoint: provider_api::endpoint(&parsed.base, "message"),
            token: parsed.token,
            priority: parsed.priority,
            client: ctx.http.clone(),
            policy: ctx.policy,
        }))
    }
}

/// A built Gotify application.
pub struct GotifyTarget {
    endpoint: Url,
    token: String,
    priority: Option<u8>,
    client: reqwest::Client,
    policy: AddressPolicy,
}

impl fmt::Debug for GotifyTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GotifyTarget")
            .field("endpoint", &self.endpoint.as_str())
            .field("app_token", &"[REDACTED]")
            .field("priority", &self.priority)
            .finish_non_exhaustive()
    }
}

/// The message Gotify takes.
#[derive(Serialize)]
struct PushMessage {
    title: String,
    message: String,
    priority: u8,
    extras: Value,
}

/// The priority a severity gets, by what the Android app does with it:
/// 1–3 silent, 4–7 with sound, 8–10 also pops up.
pub fn priority_of(severity: Severity) -> u8 {
    match severity {
        Severity::Success => 3,
        Severity::Info => 4,
        Severity::Warning => 5,
        Severity::Error => 7,
        Severity::Critical => 8,
    }
}

impl GotifyTarget {
    async fn send_once(&self, message: &Message<'_>, timeout: Duration) -> Outcome {
        if let Some(refused) = provider_api::refused(&self.policy, &self.endpoint) {
            return refused;
        }
        let content = message.content;
        let mut extras = json!({"client::display": {"contentType": "text/markdown"}});
        if let Some(link) = &content.link {
            extras["client::notification"] = json!({"click": {"url": link}});
        }
        let payload = PushMessage {
            title: format!("{} {}", content.theme().emoji, content.title),
            message: markdown(content),
            priority: self.priority.unwrap_or_else(|| priority_of(content.severity)),
            extras,
        };
        let request = self.client.post(self.endpoint.clone()).header("X-Gotify-Key", &self.token).json(&payload);
        classify(crate::http::send_and_classify(request, timeout).await)
    }
}

impl Target for GotifyTarget {
    fn send<'a>(&'a self, message: &'a Message<'a>, timeout: Duration) -> SendFuture<'a> {
        Box::pin(self.send_once(message, timeout))
    }
}

/// Text made literal in Markdown: every ASCII punctuation character is
/// backslash-escaped (CommonMark allows it for all of them), so event text
/// can open no emphasis, link, HTML or heading.
fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_punctuation() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The body with its line breaks kept (hard breaks), the facts as a list
/// with bold names, and the link; the title travels separately.
fn markdown(content: &Content) -> String {
    let mut parts = Vec::new();
    if !content.body.is_empty() {
        let lines: Vec<String> = content.body.lines().map(escape_markdown).collect();
        parts.push(lines.join("\\\n"));
    }
    if !content.fields.is_empty() {
        let facts: Vec<String> = content
            .fields
            .iter()
            .map(|(key, value)| format!("- **{}:** {}", escape_markdown(key), escape_markdown(value)))
            .collect();
        parts.push(facts.join("\n"));
    }
    if let Some(link) = &content.link {
        // An <…> destination may hold any character but <, > and line
        // breaks; a backslash would escape what follows.
        let link: String = link
            .chars()
            .filter(|c| !c.is_control())
            .map(|c| match c {
                '<' => "%3C".to_owned(),
                '>' => "%3E".to_owned(),
                '\\' => "%5C".to_owned(),
                c => c.to_string(),
            })
            .collect();
        parts.push(format!("[Open](<{link}>)"));
    }
    if parts.is_empty() {
        parts.push(escape_markdown(&content.title));
    }
    parts.join("\n\n")
}

/// A Gotify error: `{"error", "errorCode", "errorDescription"}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GotifyError {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

/// Refines the status table's verdict with Gotify's `errorDescription`.
fn classify(outcome: Outcome) -> Outcome {
    if matches!(outcome, Outcome::Delivered { .. }) {
        return outcome;
    }
    let Some(err) = provider_api::answer::<GotifyError>(&outcome) else {
        return outcome;
    };
    let reason = err.error_description.or(err.error);
    provider_api::explain(outcome, reason.as_deref(), None)
}

#[cfg(test)]
mod tests;
