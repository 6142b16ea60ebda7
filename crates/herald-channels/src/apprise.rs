//! Apprise-style URLs (`tgram://token/chat`, `mailtos://user:pass@host`…)
//! turned into an integration `type` and `config`, so a URL that already
//! works with Apprise works with Herald.
//!
//! The syntax of each scheme follows Apprise's own parser (its plugins'
//! `parse_url`), including its query parameters. Where Apprise would quietly
//! do something Herald cannot (send to several chats from one URL, log in to
//! Matrix with a password), the URL is refused with the part named; nothing
//! in a URL is silently dropped except Apprise options about Apprise's own
//! rendering (an icon, a footer). The result is an ordinary config: the
//! channel's `prepare` still validates it, and the URL itself is not kept.

use std::fmt;

use serde_json::Value;

mod chat;
mod email;
mod push;
mod sms;
mod url;
mod webhooks;

#[cfg(test)]
mod tests;

/// The schemes Herald understands, with the integration type each makes.
pub const SCHEMES: [(&str, &str); 21] = [
    ("mailto", "email"),
    ("mailtos", "email"),
    ("slack", "slack"),
    ("discord", "discord"),
    ("msteams", "teams"),
    ("workflow", "teams"),
    ("workflows", "teams"),
    ("tgram", "telegram"),
    ("matrix", "matrix"),
    ("matrixs", "matrix"),
    ("ntfy", "ntfy"),
    ("ntfys", "ntfy"),
    ("gotify", "gotify"),
    ("gotifys", "gotify"),
    ("pover", "pushover"),
    ("json", "webhook"),
    ("jsons", "webhook"),
    ("twilio", "twilio_sms"),
    ("mmost", "mattermost"),
    ("mmosts", "mattermost"),
    ("gchat", "google_chat"),
];

/// What a URL becomes: an integration type and its config (secrets in
/// plain text, as the API receives them).
#[derive(Clone, PartialEq)]
pub struct Parsed {
    pub kind: &'static str,
    pub config: Value,
}

impl fmt::Debug for Parsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The config holds tokens and passwords.
        f.debug_struct("Parsed").field("kind", &self.kind).field("config", &"[REDACTED]").finish()
    }
}

/// A URL that cannot be used, naming the part that is wrong (`scheme`,
/// `host`, `path segment 2 (chat id)`, `query parameter \`priority\``) in
/// words a user understands. Never contains a secret from the URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{part}: {message}")]
pub struct AppriseError {
    pub part: String,
    pub message: String,
}

impl AppriseError {
    pub(crate) fn new(part: impl Into<String>, message: impl Into<String>) -> Self {
        Self { part: part.into(), message: message.into() }
    }
}

/// Turns an Apprise URL into an integration type and config.
pub fn parse(url: &str) -> Result<Parsed, AppriseError> {
    let raw = url::Raw::split(url)?;
    let (kind, config) = match raw.scheme.as_str() {
        "mailto" | "mailtos" => ("email", email::mailto(&raw)?),
        "slack" => ("slack", webhooks::slack(&raw)?),
        "discord" => ("discord", webhooks::discord(&raw)?),
        "msteams" => ("teams", webhooks::msteams(&raw)?),
        "workflow" | "workflows" => ("teams", webhooks::workflows(&raw)?),
        "mmost" | "mmosts" => ("mattermost", webhooks::mattermost(&raw)?),
        "gchat" => ("google_chat", webhooks::gchat(&raw)?),
        "json" | "jsons" => ("webhook", webhooks::json(&raw)?),
        "tgram" => ("telegram", chat::telegram(&raw)?),
        "matrix" | "matrixs" => ("matrix", chat::matrix(&raw)?),
        "ntfy" | "ntfys" => ("ntfy", push::ntfy(&raw)?),
        "gotify" | "gotifys" => ("gotify", push::gotify(&raw)?),
        "pover" => ("pushover", push::pushover(&raw)?),
        "twilio" => ("twilio_sms", sms::twilio(&raw)?),
        other => {
            let mut known: Vec<&str> = SCHEMES.iter().map(|(s, _)| *s).collect();
            known.sort_unstable();
            return Err(AppriseError::new(
                "scheme",
                format!("unknown scheme `{other}`; supported: {}", known.join(", ")),
            ));
        }
    };
    raw.query.finish(&raw.scheme)?;
    Ok(Parsed { kind, config })
}

/// `true` for `mailtos`, `ntfys`, `jsons`…: the TLS variant of a scheme
/// that has both.
fn secure(raw: &url::Raw) -> bool {
    raw.scheme.ends_with('s')
}

/// Checks that `value` is one or more characters of `allowed`.
fn token(value: &str, allowed: fn(char) -> bool) -> bool {
    !value.is_empty() && value.chars().all(allowed)
}

fn alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

fn alnum_dash(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}
