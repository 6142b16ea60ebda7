//! The `discord` channel: Execute Webhook
//! (<https://discord.com/developers/docs/resources/webhook#execute-webhook>)
//! with one embed (title, description, link, colour, inline fields, time,
//! footer), `allowed_mentions` empty so event data cannot ping anyone, and
//! `?wait=true` so Discord answers with the created message, whose id is kept.
//! A 429 carries `retry_after` (fractional seconds) in its JSON; errors carry
//! `{"message", "code"}`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use url::Url;

use crate::{
    ConfigError, Message, Outcome,
    chat::{self, Provider},
};

/// Embed limits (characters).
const MAX_TITLE: usize = 256;
const MAX_DESCRIPTION: usize = 4096;
const MAX_FIELDS: usize = 25;
const MAX_FIELD_NAME: usize = 256;
const MAX_FIELD_VALUE: usize = 1024;
const MAX_FOOTER: usize = 2048;
/// Title, description, field names and values, footer and author together.
const MAX_EMBED_TOTAL: usize = 6000;
/// Discord's Markdown: emphasis, code, spoilers, quotes, headings, lists,
/// masked links and `<@id>` mentions.
const MARKDOWN: &str = "\\*_~`|>#-[]<";

/// The `discord` channel.
#[derive(Debug, Clone, Copy, Default)]
pub struct Discord;

/// The config besides `webhook_url`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    avatar_url: Option<String>,
}

fn escape(s: &str) -> String {
    chat::escape_with_backslash(s, MARKDOWN)
}

impl Provider for Discord {
    type Options = DiscordOptions;

    fn kind(&self) -> &'static str {
        "discord"
    }

    fn url_help(&self) -> &'static str {
        "The webhook URL (https://discord.com/api/webhooks/<id>/<token>); any http or https URL is accepted."
    }

    fn options_schema(&self) -> Map<String, Value> {
        let props = json!({
            "username": {"type": "string", "minLength": 1, "maxLength": 80, "description": "Sender name instead of the webhook's own; may not contain \"clyde\" or \"discord\"."},
            "avatar_url": {"type": "string", "format": "uri", "description": "Sender avatar image (http or https) instead of the webhook's own."}
        });
        props.as_object().cloned().unwrap_or_default()
    }

    fn check(&self, options: &DiscordOptions) -> Result<(), ConfigError> {
        chat::check_text(options.username.as_deref(), "username", 80)?;
        if let Some(name) = &options.username {
            let lower = name.to_lowercase();
            if lower.contains("clyde") || lower.contains("discord") {
                return Err(ConfigError::new(
                    "username",
                    "may not contain \"clyde\" or \"discord\" (Discord refuses it)",
                ));
            }
        }
        if let Some(avatar) = &options.avatar_url {
            crate::http::parse_target_url("avatar_url", avatar)?;
        }
        Ok(())
    }

    fn endpoint(&self, url: &Url, _: &Message<'_>) -> Url {
        // `wait=true`: Discord confirms the message was saved and returns it.
        chat::with_query(url, "wait", "true")
    }

    fn payload(&self, options: &DiscordOptions, message: &Message<'_>) -> Value {
        let content = message.content;
        let theme = content.theme();
        let title = chat::fit(&content.title, MAX_TITLE, escape);
        let footer =
            chat::fit(&format!("{} {} · {}", theme.emoji, theme.label, message.event_type), MAX_FOOTER, escape);
        let fields: Vec<(String, String)> = content
            .fields
            .iter()
            .take(MAX_FIELDS)
            .map(|(k, v)| (chat::fit(k, MAX_FIELD_NAME, escape), chat::fit(v, MAX_FIELD_VALUE, escape)))
            .collect();
        let used = title.chars().count()
            + footer.chars().count()
            + fields.iter().map(|(k, v)| k.chars().count() + v.chars().count()).sum::<usize>();
        let mut embed = json!({
            "title": title,
            "color": theme.color_int,
            "fields": fields.iter().map(|(name, value)| json!({"name": name, "value": value, "inline": true})).collect::<Vec<_>>(),
            "timestamp": message.timestamp,
            "footer": {"text": footer},
        });
        let room = MAX_DESCRIPTION.min(MAX_EMBED_TOTAL.saturating_sub(used));
        let description = chat::fit(&content.body, room, escape);
        if !description.is_empty() {
            embed["description"] = json!(description);
        }
        if let Some(link) = &content.link {
            embed["url"] = json!(link);
        }
        let mut payload = json!({"embeds": [embed], "allowed_mentions": {"parse": []}});
        if let Some(name) = &options.username {
            payload["username"] = json!(name);
        }
        if let Some(avatar) = &options.avatar_url {
            payload["avatar_url"] = json!(avatar);
        }
        payload
    }

    fn read(&self, _: &DiscordOptions, outcome: Outcome) -> Outcome {
        let body = chat::detail_json(&outcome);
        match (outcome, body) {
            (delivered @ Outcome::Delivered { .. }, Some(message)) => {
                // The created message: its id is what is worth keeping.
                let kept = json!({"id": message["id"], "channel_id": message["channel_id"]});
                chat::with_detail(delivered, Some(kept.to_string()))
            }
            (Outcome::Retry { status_code: Some(429), after, error, detail }, Some(body)) => {
                // The body's `retry_after` is more precise than the header's whole seconds.
                let after = body["retry_after"]
                    .as_f64()
                    // Bounded before converting: a huge value would not fit a
                    // `Duration` (the retry policy clamps to a day anyway).
                    .and_then(|s| Duration::try_from_secs_f64(s.min(MAX_RETRY_AFTER_SECS)).ok())
                    .or(after);
                let mut said = body["message"].as_str().map(str::to_owned);
                if body["global"] == json!(true) {
                    said = said.map(|s| format!("{s} (global)"));
                }
                chat::with_provider_error(Outcome::Retry { status_code: Some(429), after, error, detail }, said)
            }
            (outcome, Some(body)) => chat::with_provider_error(outcome, error_text(&body)),
            (outcome, None) => {
                let said = outcome.detail().and_then(chat::said);
                chat::with_provider_error(outcome, said)
            }
        }
    }
}

/// "Unknown Webhook (code 10015)", with the first field error of an
/// "Invalid Form Body" (`errors.embeds.0.title._errors[0].message`).
fn error_text(body: &Value) -> Option<String> {
    let message = body["message"].as_str()?;
    let mut text = match body["code"].as_i64() {
        Some(code) if code != 0 => format!("{message} (code {code})"),
        _ => message.to_owned(),
    };
    if let Some((path, why)) = first_field_error(&body["errors"], String::new()) {
        text.push_str(&format!(": {path}: {why}"));
    }
    chat::said(&text)
}

fn first_field_error(errors: &Value, path: String) -> Option<(String, String)> {
    let Value::Object(map) = errors else { return None };
    if let Some(message) = map.get("_errors").and_then(|e| e[0]["message"].as_str()) {
        return Some((path, message.to_owned()));
    }
    map.iter().find_map(|(key, inner)| {
        let path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
        first_field_error(inner, path)
    })
}

/// The longest `retry_after` taken from a body, in seconds (a day).
const MAX_RETRY_AFTER_SECS: f64 = 86_400.0;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        Channel, Severity,
        chat::Chat,
        testing::{Answer, Sample, StandIn, ctx},
    };

    const TIMEOUT: Duration = Duration::from_secs(5);

    fn sample() -> Sample {
        Sample::new(
            "deploy.done",
            Severity::Success,
            json!({"title": "Deployed **v2**", "message": "@everyone [click](https://evil.example) <@123>",
                   "url": "https://ci.example.com/d/9", "env": "prod_eu"}),
        )
    }

    #[test]
    fn prepare_names_the_wrong_field() {
        let field = |config: Value| Chat(Discord).prepare(config, &ctx(false)).unwrap_err().field;
        let url = "https://discord.com/api/webhooks/1/tok";
        assert_eq!(field(json!({"url": url})), "webhook_url");
        assert_eq!(field(json!({"webhook_url": url, "username": "My Discord bot"})), "username");
        assert_eq!(field(json!({"webhook_url": url, "username": "x".repeat(81)})), "username");
        assert_eq!(field(json!({"webhook_url": url, "avatar_url": "file:///etc/passwd"})), "avatar_url");
        assert_eq!(field(json!({"webhook_url": url, "content": "hi"})), "content");
        let ok = json!({"webhook_url": url, "username": "Herald", "avatar_url": "https://example.com/a.png"});
        assert_eq!(Chat(Discord).prepare(ok.clone(), &ctx(false)).unwrap(), ok);
    }

    #[tokio::test]
    async fn posts_an_embed_that_pings_nobody_and_keeps_the_message_id() {
        let discord = StandIn::start(Answer::json(
            200,
            &json!({"id": "1187000000000000001", "type": 0, "channel_id": "1187000000000000002", "content": "",
                    "embeds": [{"type": "rich", "title": "Deployed"}], "webhook_id": "1"}),
        ))
        .await;
        let config = json!({"webhook_url": format!("{}/api/webhooks/1/tok?thread_id=42&wait=false", discord.base()),
                            "username": "Herald"});
        let target = Chat(Discord).build(&config, &ctx(true)).unwrap();
        let sample = sample();
        let outcome = target.send(&sample.message(), TIMEOUT).await;
        assert_eq!(
            outcome,
            Outcome::Delivered {
                status_code: Some(200),
                detail: Some(r#"{"channel_id":"1187000000000000002","id":"1187000000000000001"}"#.into()),
            }
        );
        let seen = discord.one();
        assert_eq!(seen.method, "POST");
        assert_eq!(seen.uri, "/api/webhooks/1/tok?thread_id=42&wait=true");
        assert_eq!(seen.header("content-type"), Some("application/json"));
        assert_eq!(
            seen.json(),
            json!({
                "username": "Herald",
                "allowed_mentions": {"parse": []},
                "embeds": [{
                    "title": "Deployed \\*\\*v2\\*\\*",
                    "description": "@everyone \\[click\\](https://evil.example) \\<@123\\>",
                    "url": "https://ci.example.com/d/9",
                    "color": 0x2E7D32,
                    "fields": [{"name": "env", "value": "prod\\_eu", "inline": true}],
                    "timestamp": "2026-01-02T03:04:05Z",
                    "footer": {"text": "✅ Success · deploy.done"}
                }]
            })
        );
    }

    #[test]
    fn the_embed_stays_within_discord_limits() {
        let mut data = json!({"title": "*".repeat(300), "message": "_".repeat(4000)});
        for i in 0..10 {
            data[format!("k{i}")] = json!("|".repeat(200));
        }
        let sample = Sample::new("x", Severity::Info, data);
        let payload = Discord.payload(&DiscordOptions::default(), &sample.message());
        let embed = &payload["embeds"][0];
        let len = |v: &Value| v.as_str().unwrap().chars().count();
        assert!(len(&embed["title"]) <= MAX_TITLE);
        let fields = embed["fields"].as_array().unwrap();
        let total = len(&embed["title"])
            + len(&embed["description"])
            + len(&embed["footer"]["text"])
            + fields.iter().map(|f| len(&f["name"]) + len(&f["value"])).sum::<usize>();
        assert!(total <= MAX_EMBED_TOTAL, "{total}");
        assert!(embed["description"].as_str().unwrap().ends_with("\\_…"));
    }

    #[tokio::test]
    async fn discord_errors_and_rate_limits_are_read() {
        let discord = StandIn::start(Answer::new(204, "")).await;
        discord.script([
            Answer::json(429, &json!({"message": "You are being rate limited.", "retry_after": 1.5, "global": false}))
                .header("retry-after", "2"),
            Answer::json(404, &json!({"message": "Unknown Webhook", "code": 10015})),
            Answer::json(400, &json!({"code": 50006, "message": "Cannot send an empty message"})),
            Answer::json(
                400,
                &json!({"code": 50035, "message": "Invalid Form Body", "errors": {"embeds": {"0": {"description":
                    {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 4096 or fewer in length."}]}}}}}),
            ),
            Answer::json(401, &json!({"message": "Invalid Webhook Token", "code": 50027})),
            Answer::new(502, "<html>bad gateway</html>"),
            // A hostile or broken server must not be able to overflow the wait.
            Answer::json(429, &json!({"message": "slow down", "retry_after": 1e300})),
        ]);
        let target = Chat(Discord).build(&json!({"webhook_url": discord.base()}), &ctx(true)).unwrap();
        let sample = sample();
        let mut got = Vec::new();
        for _ in 0..8 {
            got.push(target.send(&sample.message(), TIMEOUT).await);
        }
        let Outcome::Retry { status_code: Some(429), after, error, .. } = &got[0] else { panic!("{:?}", got[0]) };
        assert_eq!(*after, Some(Duration::from_millis(1500)));
        assert_eq!(error, "HTTP 429 Too Many Requests: You are being rate limited.");
        assert_eq!(got[1].label(), "failed");
        assert_eq!(got[1].error(), Some("HTTP 404 Not Found: Unknown Webhook (code 10015)"));
        assert_eq!(got[2].error(), Some("HTTP 400 Bad Request: Cannot send an empty message (code 50006)"));
        assert_eq!(
            got[3].error(),
            Some(
                "HTTP 400 Bad Request: Invalid Form Body (code 50035): embeds.0.description: Must be 4096 or fewer in length."
            )
        );
        assert_eq!(got[4].error(), Some("HTTP 401 Unauthorized: Invalid Webhook Token (code 50027)"));
        assert_eq!(got[5].label(), "retry");
        assert_eq!(got[5].error(), Some("HTTP 502 Bad Gateway: <html>bad gateway</html>"));
        // Without `?wait=true` support (a stand-in answering 204) it is still delivered.
        assert_eq!(got[7], Outcome::Delivered { status_code: Some(204), detail: None });
        let Outcome::Retry { after, .. } = &got[6] else { panic!("{:?}", got[6]) };
        assert_eq!(*after, Some(Duration::from_secs(86_400)));
    }
}
