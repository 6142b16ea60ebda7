//! The `twilio_sms` channel: a text message per number through Twilio's
//! Messages API (`POST /2010-04-01/Accounts/{AccountSid}/Messages.json`,
//! form-encoded, Basic auth with the Account SID and Auth Token).

use std::{fmt, sync::Arc};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;

use crate::{AddressPolicy, Channel, ConfigError, Context, Target};

mod answer;
mod send;

/// Twilio's own address, used when `api_url` is not given.
pub const DEFAULT_API_URL: &str = "https://api.twilio.com";
/// At most this many configured numbers (one request each).
pub const MAX_TO: usize = 20;

/// The `twilio_sms` channel.
#[derive(Debug, Clone, Copy, Default)]
pub struct TwilioSms;

/// The config as the API accepts and stores it.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct TwilioConfig {
    // Required fields are optional here so that a missing one is reported on its own field.
    #[serde(default)]
    account_sid: Option<String>,
    #[serde(default)]
    auth_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    messaging_service_sid: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    to: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    api_url: Option<String>,
}

/// Who the message is from: a number (or sender id), or a Messaging
/// Service that picks one from its pool.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sender {
    From(String),
    Service(String),
}

/// The validated config.
struct Parsed {
    messages_url: Url,
    account_sid: String,
    auth_token: String,
    sender: Sender,
    to: Vec<String>,
}

fn parse(config: &Value) -> Result<(TwilioConfig, Parsed), ConfigError> {
    let raw: TwilioConfig = serde_path_to_error::deserialize(config).map_err(|e| {
        let field = match e.path().to_string() {
            root if root == "." => String::new(),
            path => path,
        };
        ConfigError::new(field, e.into_inner().to_string())
    })?;
    let account_sid = raw.account_sid.as_deref().ok_or_else(|| ConfigError::new("account_sid", "is required"))?;
    if !is_sid(account_sid, "AC") {
        return Err(ConfigError::new("account_sid", "must be a Twilio Account SID: AC and 32 hexadecimal digits"));
    }
    let auth_token = raw.auth_token.as_deref().unwrap_or_default();
    if auth_token.trim().is_empty() {
        return Err(ConfigError::new("auth_token", "is required"));
    }
    if auth_token.chars().any(char::is_control) {
        return Err(ConfigError::new("auth_token", "must not contain control characters"));
    }
    let sender = match (&raw.from, &raw.messaging_service_sid) {
        (Some(from), None) => {
            if !is_sender(from) {
                return Err(ConfigError::new(
                    "from",
                    "must be a phone number in E.164 form (such as +15005550006), a short code, or an alphanumeric sender id of at most 11 letters, digits and spaces",
                ));
            }
            Sender::From(from.clone())
        }
        (None, Some(sid)) => {
            if !is_sid(sid, "MG") {
                return Err(ConfigError::new(
                    "messaging_service_sid",
                    "must be a Messaging Service SID: MG and 32 hexadecimal digits",
                ));
            }
            Sender::Service(sid.clone())
        }
        (None, None) => return Err(ConfigError::new("from", "give either from or messaging_service_sid")),
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                "messaging_service_sid",
                "give either from or messaging_service_sid, not both",
            ));
        }
    };
    if raw.to.len() > MAX_TO {
        return Err(ConfigError::new("to", format!("at most {MAX_TO} numbers")));
    }
    for (i, number) in raw.to.iter().enumerate() {
        if !is_e164(number) {
            return Err(ConfigError::new(
                format!("to[{i}]"),
                "must be a phone number in E.164 form, such as +15005550006",
            ));
        }
        if raw.to[..i].contains(number) {
            return Err(ConfigError::new(format!("to[{i}]"), "is listed twice"));
        }
    }
    let base = parse_api_url(raw.api_url.as_deref().unwrap_or(DEFAULT_API_URL))?;
    let messages_url = Url::parse(&format!("{base}/2010-04-01/Accounts/{account_sid}/Messages.json"))
        .map_err(|e| ConfigError::new("api_url", format!("is not a valid URL: {e}")))?;
    let parsed = Parsed {
        messages_url,
        account_sid: account_sid.to_owned(),
        auth_token: auth_token.to_owned(),
        sender,
        to: raw.to.clone(),
    };
    Ok((raw, parsed))
}

/// The API's base, without a trailing slash.
fn parse_api_url(url: &str) -> Result<String, ConfigError> {
    crate::provider_api::parse_base_url("api_url", url).map(|u| crate::provider_api::stored_url(&u))
}

/// `prefix` and 32 hexadecimal digits.
fn is_sid(sid: &str, prefix: &str) -> bool {
    sid.strip_prefix(prefix).is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// E.164: `+`, a first digit 1-9, then 1 to 14 more digits.
pub fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|digits| {
        (2..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
    })
}

/// A sender Twilio accepts in `From` for SMS: an E.164 number, a short code
/// (5 or 6 digits), or an alphanumeric sender id (1-11 letters, digits and
/// spaces, at least one letter).
fn is_sender(from: &str) -> bool {
    let short_code = (5..=6).contains(&from.len()) && from.bytes().all(|b| b.is_ascii_digit());
    let alphanumeric = (1..=11).contains(&from.len())
        && from.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
        && from.bytes().any(|b| b.is_ascii_alphabetic())
        && from.trim() == from;
    is_e164(from) || short_code || alphanumeric
}

impl Channel for TwilioSms {
    fn reaches_people(&self) -> bool {
        true
    }

    fn kind(&self) -> &'static str {
        "twilio_sms"
    }

    fn schema(&self) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["account_sid", "auth_token"],
            "oneOf": [{"required": ["from"]}, {"required": ["messaging_service_sid"]}],
            "properties": {
                "account_sid": {
                    "type": "string",
                    "pattern": "^AC[0-9a-fA-F]{32}$",
                    "description": "The Twilio Account SID (AC…), the Basic auth user."
                },
                "auth_token": {
                    "type": "string",
                    "secret": true,
                    "description": "The account's Auth Token, the Basic auth password."
                },
                "from": {
                    "type": "string",
                    "description": "The sending number in E.164 form (+15005550006), a short code, or an alphanumeric sender id. Give this or messaging_service_sid."
                },
                "messaging_service_sid": {
                    "type": "string",
                    "pattern": "^MG[0-9a-fA-F]{32}$",
                    "description": "A Messaging Service SID (MG…) whose pool picks the sender. Give this or from."
                },
                "to": {
                    "type": "array",
                    "maxItems": MAX_TO,
                    "uniqueItems": true,
                    "items": { "type": "string", "pattern": "^\\+[1-9][0-9]{1,14}$" },
                    "description": "Numbers in E.164 form that rules send to; one message each, in order."
                },
                "api_url": {
                    "type": "string",
                    "format": "uri",
                    "default": DEFAULT_API_URL,
                    "description": "The API's base address, for a proxy or a local stand-in."
                }
            }
        })
    }

    fn secret_fields(&self) -> &'static [&'static str] {
        &["auth_token"]
    }

    fn prepare(&self, config: Value, ctx: &Context) -> Result<Value, ConfigError> {
        let (mut raw, parsed) = parse(&config)?;
        ctx.policy.check_url(&parsed.messages_url).map_err(|e| ConfigError::new("api_url", e.to_string()))?;
        if let Some(url) = &raw.api_url {
            raw.api_url = Some(parse_api_url(url)?);
        }
        serde_json::to_value(&raw).map_err(|e| ConfigError::new("", e.to_string()))
    }

    fn build(&self, config: &Value, ctx: &Context) -> Result<Arc<dyn Target>, ConfigError> {
        // The policy is checked on every send, not here: a target built
        // before the policy tightened still cannot reach a refused address.
        let (_, parsed) = parse(config)?;
        Ok(Arc::new(TwilioTarget { config: parsed, client: ctx.http.clone(), policy: ctx.policy }))
    }

    fn check_recipient(&self, to: &str) -> Result<(), String> {
        if is_e164(to) { Ok(()) } else { Err("must be a phone number in E.164 form, such as +15005550006".into()) }
    }
}

/// A built Twilio sender.
pub struct TwilioTarget {
    config: Parsed,
    client: reqwest::Client,
    policy: AddressPolicy,
}

impl fmt::Debug for TwilioTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioTarget")
            .field("messages_url", &self.config.messages_url.as_str())
            .field("account_sid", &self.config.account_sid)
            .field("auth_token", &"[REDACTED]")
            .field("sender", &self.config.sender)
            .field("to", &self.config.to.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
