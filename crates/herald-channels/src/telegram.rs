//! The `telegram` channel: the Bot API's `sendMessage`
//! (<https://core.telegram.org/bots/api#sendmessage>), as HTML.
//!
//! The bot token is part of the request path, so the endpoint URL is a
//! secret: it never appears in `Debug`, in an error or in a log (transport
//! errors lose their URL in `http::send_and_classify`).

use std::{fmt, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;

use crate::{
    AddressPolicy, Channel, ConfigError, Content, Context, Message, Outcome, SendFuture, Target,
    html_text::{Html, escape, units},
    provider_api::{self, parse_config, required},
};

/// The public Bot API server.
pub const DEFAULT_API_URL: &str = "https://api.telegram.org";
/// The longest message text Telegram takes.
const MAX_TEXT: usize = 4096;
/// A link whose markup is longer than this is left out rather than crowd the text.
const MAX_LINK_MARKUP: usize = 1024;

/// The `telegram` channel.
#[derive(Debug, Clone, Copy, Default)]
pub struct Telegram;

/// The config as the API accepts and stores it (no `Debug`: it holds the token).
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct TelegramConfig {
    #[serde(default)]
    bot_token: Option<String>,
    /// An integer or a string (`"-100…"`, `"@channel"`).
    #[serde(default)]
    chat_id: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    api_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message_thread_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    silent: Option<bool>,
}

/// A chat: its numeric id (negative for groups and channels) or a public
/// channel's `@username`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ChatId {
    Id(i64),
    Username(String),
}

impl ChatId {
    fn parse(value: &str) -> Result<ChatId, String> {
        let value = value.trim();
        if let Some(name) = value.strip_prefix('@') {
            let valid = (4..=32).contains(&name.len())
                && name.starts_with(|c: char| c.is_ascii_alphabetic())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            return if valid {
                Ok(ChatId::Username(value.to_owned()))
            } else {
                Err("a channel username is @ followed by 4 to 32 letters, digits or underscores".into())
            };
        }
        // `parse` would take a leading `+`, which no chat id has.
        let digits = value.strip_prefix('-').unwrap_or(value);
        match value.parse::<i64>().ok().filter(|_| digits.bytes().all(|b| b.is_ascii_digit())) {
            Some(0) | None => {
                Err("must be a chat id (an integer, negative for groups and channels) or @channelusername".into())
            }
            Some(id) => Ok(ChatId::Id(id)),
        }
    }

    fn from_config(value: &Value) -> Result<ChatId, String> {
        match value {
            Value::Number(n) => n.as_i64().map(|n| n.to_string()).map_or_else(
                || Err("must be a chat id (an integer) or @channelusername".into()),
                |text| ChatId::parse(&text),
            ),
            Value::String(s) => ChatId::parse(s),
            _ => Err("must be a chat id (an integer) or @channelusername".into()),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            ChatId::Id(id) => json!(id),
            ChatId::Username(name) => json!(name),
        }
    }
}

/// Checks the shape `123456789:AA…` without ever echoing the value.
fn check_token(token: &str) -> Result<(), ConfigError> {
    let valid = token.split_once(':').is_some_and(|(id, secret)| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_digit())
            && !secret.is_empty()
            && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    if valid {
        Ok(())
    } else {
        Err(ConfigError::new("bot_token", "must look like 123456789:AA… (the token @BotFather gives)"))
    }
}

/// The validated parts of a config.
struct Parsed {
    token: String,
    chat: ChatId,
    api: Url,
    thread: Option<i64>,
    silent: bool,
}

fn parse(config: &Value) -> Result<(TelegramConfig, Parsed), ConfigError> {
    let raw: TelegramConfig = parse_config(config)?;
    let token = required("bot_token", raw.bot_token.clone())?;
    check_token(&token)?;
    let chat = ChatId::from_config(required("chat_id", raw.chat_id.as_ref())?)
        .map_err(|message| ConfigError::new("chat_id", message))?;
    let api = provider_api::parse_base_url("api_url", raw.api_url.as_deref().unwrap_or(DEFAULT_API_URL))?;
    if raw.message_thread_id.is_some_and(|id| id < 1) {
        return Err(ConfigError::new("message_thread_id", "must be a positive integer (a forum topic's id)"));
    }
    let parsed = Parsed { token, chat, api, thread: raw.message_thread_id, silent: raw.silent.unwrap_or(false) };
    Ok((raw, parsed))
}

impl Channel for Telegram {
    fn reaches_people(&self) -> bool {
        true
    }

    fn kind(&self) -> &'static str {
        "telegram"
    }

    fn schema(&self) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["bot_token", "chat_id"],
            "properties": {
                "bot_token": {
                    "type": "string",
                    "pattern": "^[0-9]+:[A-Za-z0-9_-]+$",
                    "secret": true,
                    "description": "The bot's token, as @BotFather gives it (123456789:AA…)."
                },
                "chat_id": {
                    "type": ["integer", "string"],
                    "description": "The chat to post in: its id (negative for groups and channels) or @channelusername."
                },
                "api_url": {
                    "type": "string",
                    "format": "uri",
                    "default": DEFAULT_API_URL,
                    "description": "The Bot API server; change it only for a self-hosted Bot API server."
                },
                "message_thread_id": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "The forum topic (message thread) of the chat to post in."
                },
                "silent": {
                    "type": "boolean",
                    "default": false,
                    "description": "Deliver without sound (Telegram's disable_notification)."
                }
            }
        })
    }

    fn secret_fields(&self) -> &'static [&'static str] {
        &["bot_token"]
    }

    fn prepare(&self, config: Value, ctx: &Context) -> Result<Value, ConfigError> {
        let (mut raw, parsed) = parse(&config)?;
        ctx.policy.check_url(&parsed.api).map_err(|e| ConfigError::new("api_url", e.to_string()))?;
        raw.chat_id = Some(parsed.chat.to_json());
        raw.api_url = raw.api_url.is_some().then(|| provider_api::stored_url(&parsed.api));
        serde_json::to_value(&raw).map_err(|e| ConfigError::new("", e.to_string()))
    }

    fn build(&self, config: &Value, ctx: &Context) -> Result<Arc<dyn Target>, ConfigError> {
        let (_, parsed) = parse(config)?;
        let endpoint = provider_api::endpoint(&parsed.api, &format!("bot{}/sendMessage", parsed.token));
        Ok(Arc::new(TelegramTarget {
            api: parsed.api,
            endpoint,
            chat: parsed.chat,
            thread: parsed.thread,
            silent: parsed.silent,
            client: ctx.http.clone(),
            policy: ctx.policy,
        }))
    }

    fn check_recipient(&self, to: &str) -> Result<(), String> {
        ChatId::parse(to).map(|_| ())
    }
}

/// A built Telegram chat.
pub struct TelegramTarget {
    /// The API base, without the token (for the policy and `Debug`).
    api: Url,
    /// `…/bot<token>/sendMessage`: a secret.
    endpoint: Url,
    chat: ChatId,
    thread: Option<i64>,
    silent: bool,
    client: reqwest::Client,
    policy: AddressPolicy,
}

impl fmt::Debug for TelegramTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelegramTarget")
            .field("api", &self.api.as_str())
            .field("bot_token", &"[REDACTED]")
            .field("chat", &self.chat)
            .field("thread", &self.thread)
            .finish_non_exhaustive()
    }
}

/// The `sendMessage` parameters Herald sets.
#[derive(Serialize)]
struct SendMessage {
    chat_id: Value,
    text: String,
    parse_mode: &'static str,
    link_preview_options: LinkPreviewOptions,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_thread_id: Option<i64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    disable_notification: bool,
}

#[derive(Serialize)]
struct LinkPreviewOptions {
    is_disabled: bool,
}

impl TelegramTarget {
    async fn send_once(&self, message: &Message<'_>, timeout: Duration) -> Outcome {
        if let Some(refused) = provider_api::refused(&self.policy, &self.api) {
            return refused;
        }
        // A recipient given instead of the configured chat: the configured
        // forum topic belongs to the configured chat, so it is not used.
        let (chat, thread) = match message.to {
            None => (self.chat.clone(), self.thread),
            Some(to) => match ChatId::parse(to) {
                Ok(chat) => (chat, None),
                Err(e) => return Outcome::Failed { status_code: None, error: format!("recipient: {e}"), detail: None },
            },
        };
        let payload = SendMessage {
            chat_id: chat.to_json(),
            text: render(message.content),
            parse_mode: "HTML",
            link_preview_options: LinkPreviewOptions { is_disabled: true },
            message_thread_id: thread,
            disable_notification: self.silent,
        };
        let request = self.client.post(self.endpoint.clone()).json(&payload);
        classify(crate::http::send_and_classify(request, timeout).await)
    }
}

impl Target for TelegramTarget {
    fn send<'a>(&'a self, message: &'a Message<'a>, timeout: Duration) -> SendFuture<'a> {
        Box::pin(self.send_once(message, timeout))
    }
}

/// The message text: the title in bold behind the severity's symbol, the
/// body, the facts, and the link; at most 4096 units, cut in the text.
fn render(content: &Content) -> String {
    let link = content
        .link
        .as_deref()
        .map(|link| format!("\n\n<a href=\"{}\">Open</a>", escape(link)))
        .filter(|markup| units(markup) <= MAX_LINK_MARKUP);
    let mut html = Html::new(MAX_TEXT - link.as_deref().map_or(0, units));
    html.element("<b>", &format!("{} {}", content.theme().emoji, quiet(&content.title)), "</b>");
    if !content.body.is_empty() {
        html.markup("\n\n").text(&quiet(&content.body));
    }
    if !content.fields.is_empty() {
        html.markup("\n");
        for (key, value) in &content.fields {
            html.markup("\n").element("<b>", &format!("{}:", quiet(key)), "</b>").text(" ").text(&quiet(value));
        }
    }
    let mut text = html.finish();
    text.extend(link);
    text
}

/// Event text with a word joiner after every `@`: it reads the same, but
/// `@username` in event data mentions (and notifies) nobody.
fn quiet(text: &str) -> String {
    text.replace('@', "@\u{2060}")
}

/// The Bot API's answer: `{"ok": true, "result": …}` or `{"ok": false,
/// "error_code", "description", "parameters"?}`.
#[derive(Deserialize)]
struct Answer {
    ok: bool,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Parameters>,
}

#[derive(Deserialize)]
struct Parameters {
    #[serde(default)]
    retry_after: Option<u64>,
    #[serde(default)]
    migrate_to_chat_id: Option<i64>,
}

/// Refines the status table's verdict with the Bot API's answer: its
/// `description` in the error, `parameters.retry_after` as the wait, and a
/// group that became a supergroup reported with the chat id to use.
fn classify(outcome: Outcome) -> Outcome {
    let Some(answer) = provider_api::answer::<Answer>(&outcome) else {
        return outcome;
    };
    if answer.ok {
        return outcome;
    }
    let description = answer.description.unwrap_or_else(|| "no description".into());
    let parameters = answer.parameters.unwrap_or(Parameters { retry_after: None, migrate_to_chat_id: None });
    if let Some(new_id) = parameters.migrate_to_chat_id {
        let reason = format!("{description} (the group is now a supergroup: set chat_id to {new_id})");
        let outcome = match outcome {
            // Sending again to the old id cannot work.
            Outcome::Retry { status_code, error, detail, .. } => Outcome::Failed { status_code, error, detail },
            other => other,
        };
        return provider_api::explain(outcome, Some(&reason), None);
    }
    let reason = match outcome.status_code() {
        Some(401 | 404) => format!("{description} (check bot_token)"),
        _ => description,
    };
    let after = parameters.retry_after.map(Duration::from_secs);
    let outcome = provider_api::not_taken(outcome, "HTTP 200 OK".into());
    provider_api::explain(outcome, Some(&reason), after)
}

#[cfg(test)]
mod tests;
