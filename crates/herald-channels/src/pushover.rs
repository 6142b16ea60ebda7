//! The `pushover` channel: `POST /1/messages.json`, form-encoded
//! (<https://pushover.net/api>).
//!
//! The message is HTML (`html=1`, Pushover's small subset), with every
//! event text escaped and cut to the 1024-character limit in the text,
//! never in a tag or an entity. The event's link is the supplementary URL.

use std::{fmt, sync::Arc, time::Duration};

use reqwest::header::CONTENT_TYPE;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;

use crate::{
    AddressPolicy, Channel, ConfigError, Content, Context, Message, Outcome, SendFuture, Severity, Target,
    html_text::Html,
    provider_api::{self, parse_config, required},
    render,
};

/// The public API.
pub const DEFAULT_API_URL: &str = "https://api.pushover.net";
const MAX_MESSAGE: usize = 1024;
const MAX_TITLE: usize = 250;
const MAX_URL: usize = 512;
/// How an emergency-priority message is repeated until acknowledged: every
/// minute, for an hour.
const EMERGENCY_RETRY: u32 = 60;
const EMERGENCY_EXPIRE: u32 = 3600;

/// The `pushover` channel.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pushover;

/// The config as the API accepts and stores it (no `Debug`: it holds secrets).
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct PushoverConfig {
    #[serde(default)]
    user_key: Option<String>,
    #[serde(default)]
    app_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sound: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    priority: Option<i8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    api_url: Option<String>,
}

/// A user, group or application key: 30 letters and digits.
fn is_key(value: &str) -> bool {
    value.len() == 30 && value.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Device and sound names: letters, digits, `_` and `-`.
fn is_name(value: &str, max: usize) -> bool {
    (1..=max).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The validated parts of a config.
struct Parsed {
    api: Url,
    user: String,
    token: String,
    device: Option<String>,
    sound: Option<String>,
    priority: Option<i8>,
}

fn parse(config: &Value) -> Result<(PushoverConfig, Parsed), ConfigError> {
    let raw: PushoverConfig = parse_config(config)?;
    let user = required("user_key", raw.user_key.clone())?;
    if !is_key(&user) {
        return Err(ConfigError::new("user_key", "must be a user or group key: 30 letters and digits"));
    }
    let token = required("app_token", raw.app_token.clone())?;
    if !is_key(&token) {
        return Err(ConfigError::new("app_token", "must be an application API token: 30 letters and digits"));
    }
    if let Some(device) = &raw.device
        && !device.split(',').all(|d| is_name(d, 25))
    {
        return Err(ConfigError::new(
            "device",
            "must be device names (up to 25 letters, digits, _ or -), comma-separated",
        ));
    }
    if let Some(sound) = &raw.sound
        && !is_name(sound, 20)
    {
        return Err(ConfigError::new("sound", "must be a sound name: up to 20 letters, digits, _ or -"));
    }
    if raw.priority.is_some_and(|p| !(-2..=2).contains(&p)) {
        return Err(ConfigError::new("priority", "must be -2 (lowest) to 2 (emergency)"));
    }
    let api = provider_api::parse_base_url("api_url", raw.api_url.as_deref().unwrap_or(DEFAULT_API_URL))?;
    let parsed =
        Parsed { api, user, token, device: raw.device.clone(), sound: raw.sound.clone(), priority: raw.priority };
    Ok((raw, parsed))
}

impl Channel for Pushover {
    fn reaches_people(&self) -> bool {
        true
    }

    fn kind(&self) -> &'static str {
        "pushover"
    }

    fn schema(&self) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["user_key", "app_token"],
            "properties": {
                "user_key": {
                    "type": "string",
                    "pattern": "^[A-Za-z0-9]{30}$",
                    "secret": true,
                    "description": "The user or group key messages go to."
                },
                "app_token": {
                    "type": "string",
                    "pattern": "^[A-Za-z0-9]{30}$",
                    "secret": true,
                    "description": "The API token of the Pushover application messages are sent as."
                },
                "device": {
                    "type": "string",
                    "description": "Send only to these devices of the user (names, comma-separated); all devices by default."
                },
                "sound": {
                    "type": "string",
                    "description": "A sound name (pushover, siren, none, a custom one…) instead of the user's default."
                },
                "priority": {
                    "type": "integer",
                    "minimum": -2,
                    "maximum": 2,
                    "description": "A fixed priority, -2 to 2 (2 repeats every 60 s for an hour until acknowledged); by default it follows the event's severity."
                },
                "api_url": {
                    "type": "string",
                    "format": "uri",
                    "default": DEFAULT_API_URL,
                    "description": "The Pushover API; change it only for a stand-in or a relay."
                }
            }
        })
    }

    fn secret_fields(&self) -> &'static [&'static str] {
        &["user_key", "app_token"]
    }

    fn prepare(&self, config: Value, ctx: &Context) -> Result<Value, ConfigError> {
        let (mut raw, parsed) = parse(&config)?;
        ctx.policy.check_url(&parsed.api).map_err(|e| ConfigError::new("api_url", e.to_string()))?;
        raw.api_url = raw.api_url.is_some().then(|| provider_api::stored_url(&parsed.api));
        serde_json::to_value(&raw).map_err(|e| ConfigError::new("", e.to_string()))
    }

    fn build(&self, config: &Value, ctx: &Context) -> Result<Arc<dyn Target>, ConfigError> {
        let (_, parsed) = parse(config)?;
        Ok(Arc::new(PushoverTarget {
            endpoint: provider_api::endpoint(&parsed.api, "1/messages.json"),
            user: parsed.user,
            token: parsed.token,
            device: parsed.device,
            sound: parsed.sound,
            priority: parsed.priority,
            client: ctx.http.clone(),
            policy: ctx.policy,
        }))
    }

    fn check_recipient(&self, to: &str) -> Result<(), String> {
        if is_key(to) { Ok(()) } else { Err("must be a Pushover user or group key: 30 letters and digits".into()) }
    }
}

/// A built Pushover user.
pub struct PushoverTarget {
    endpoint: Url,
    user: String,
    token: String,
    device: Option<String>,
    sound: Option<String>,
    priority: Option<i8>,
    client: reqwest::Client,
    policy: AddressPolicy,
}

impl fmt::Debug for PushoverTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushoverTarget")
            .field("endpoint", &self.endpoint.as_str())
            .field("user_key", &"[REDACTED]")
            .field("app_token", &"[REDACTED]")
            .field("device", &self.device)
            .field("priority", &self.priority)
            .finish_non_exhaustive()
    }
}

/// The priority a severity gets: a success is quiet, an error or a
/// critical event bypasses the user's quiet hours. Emergency (2) is only
/// ever chosen in the config: it repeats until someone acknowledges.
pub fn priority_of(severity: Severity) -> i8 {
    match severity {
        Severity::Success => -1,
        Severity::Info | Severity::Warning => 0,
        Severity::Error | Severity::Critical => 1,
    }
}

impl PushoverTarget {
    async fn send_once(&self, message: &Message<'_>, timeout: Duration) -> Outcome {
        if let Some(refused) = provider_api::refused(&self.policy, &self.endpoint) {
            return refused;
        }
        let user = match message.to {
            None => self.user.as_str(),
            Some(to) if is_key(to) => to,
            Some(_) => {
                return Outcome::Failed {
                    status_code: None,
                    error: "recipient: must be a Pushover user or group key".into(),
                    detail: None,
                };
            }
        };
        let body = self.form(message, user);
        let request = self
            .client
            .post(self.endpoint.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        classify(crate::http::send_and_classify(request, timeout).await)
    }

    /// The form-encoded parameters (a function of its own: the encoder is not `Send`).
    fn form(&self, message: &Message<'_>, user: &str) -> String {
        let content = message.content;
        let priority = self.priority.unwrap_or_else(|| priority_of(content.severity));
        let title = render::cut(&format!("{} {}", content.theme().emoji, content.title), MAX_TITLE);
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("token", &self.token)
            .append_pair("user", user)
            .append_pair("message", &html_message(content))
            .append_pair("title", &title)
            .append_pair("html", "1")
            .append_pair("priority", &priority.to_string());
        if priority == 2 {
            form.append_pair("retry", &EMERGENCY_RETRY.to_string())
                .append_pair("expire", &EMERGENCY_EXPIRE.to_string());
        }
        if let Some(sound) = &self.sound {
            form.append_pair("sound", sound);
        }
        if let Some(device) = &self.device {
            form.append_pair("device", device);
        }
        if let Some(link) = content.link.as_deref().filter(|l| l.len() <= MAX_URL) {
            form.append_pair("url", link).append_pair("url_title", "Open");
        }
        if let Ok(at) = chrono::DateTime::parse_from_rfc3339(message.timestamp) {
            form.append_pair("timestamp", &at.timestamp().to_string());
        }
        form.finish()
    }
}

impl Target for PushoverTarget {
    fn send<'a>(&'a self, message: &'a Message<'a>, timeout: Duration) -> SendFuture<'a> {
        Box::pin(self.send_once(message, timeout))
    }
}

/// The body and the facts (names in bold), escaped, at most 1024 units;
/// the title when there is neither (the message may not be empty).
fn html_message(content: &Content) -> String {
    let mut html = Html::new(MAX_MESSAGE);
    if !content.body.is_empty() {
        html.text(&content.body);
    }
    for (i, (key, value)) in content.fields.iter().enumerate() {
        if i > 0 {
            html.markup("\n");
        } else if !content.body.is_empty() {
            html.markup("\n\n");
        }
        html.element("<b>", &format!("{key}:"), "</b>").text(" ").text(value);
    }
    if content.body.is_empty() && content.fields.is_empty() {
        html.text(&content.title);
    }
    html.finish()
}

/// Pushover's answer: `{"status": 1, "request"}` or `{"status": 0,
/// "errors": [...], "request"}`.
#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    status: Option<i64>,
    #[serde(default)]
    errors: Vec<String>,
}

/// Refines the status table's verdict with Pushover's `errors`; a 2xx
/// whose `status` is not 1 is a failure.
fn classify(outcome: Outcome) -> Outcome {
    let Some(answer) = provider_api::answer::<Answer>(&outcome) else {
        return outcome;
    };
    let reason = (!answer.errors.is_empty()).then(|| answer.errors.join("; "));
    if matches!(outcome, Outcome::Delivered { .. }) {
        if answer.status.is_some_and(|s| s != 1) {
            let error = format!("Pushover answered status {}", answer.status.unwrap_or_default());
            return provider_api::explain(provider_api::not_taken(outcome, error), reason.as_deref(), None);
        }
        return outcome;
    }
    provider_api::explain(outcome, reason.as_deref(), None)
}

#[cfg(test)]
mod tests;
