//! The `mattermost` channel: an incoming webhook
//! (<https://developers.mattermost.com/integrate/webhooks/incoming/>) posting
//! a short severity line as `text` and one attachment coloured by severity
//! (title linking to the event, body, short fields). Mattermost answers `ok`,
//! or an error as JSON `{"id", "message", "status_code", …}` or as text.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::{
    ConfigError, Message, Outcome,
    chat::{self, Provider},
};

/// Mattermost allows 16383 characters per post; these keep well under it.
const MAX_TITLE: usize = 250;
const MAX_TEXT: usize = 4000;
const MAX_FIELD: usize = 500;
const MAX_FALLBACK: usize = 300;
/// Mattermost's Markdown: emphasis, code, headings, quotes, tables, links
/// and `~channel` links.
const MARKDOWN: &str = "\\*_~`#>|[]<";

/// The `mattermost` channel.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mattermost;

/// The config besides `webhook_url`: overrides the server may be set to ignore.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MattermostOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    icon_url: Option<String>,
}

/// Markdown-escaped, and no @-mention can fire: a zero-width space after
/// every `@` splits `@channel`, `@all` and `@name` for the server's mention
/// parser while the text reads the same.
fn escape(s: &str) -> String {
    chat::escape_with_backslash(s, MARKDOWN).replace('@', "@\u{200B}")
}

impl Provider for Mattermost {
    type Options = MattermostOptions;

    fn kind(&self) -> &'static str {
        "mattermost"
    }

    fn url_help(&self) -> &'static str {
        "The incoming webhook URL (https://<your-server>/hooks/<key>); any http or https URL is accepted."
    }

    fn options_schema(&self) -> Map<String, Value> {
        let props = json!({
            "channel": {"type": "string", "maxLength": 64, "description": "Channel name to post in instead of the webhook's (unless the webhook is locked to its channel)."},
            "username": {"type": "string", "maxLength": 64, "description": "Sender name, when the server lets webhooks override it."},
            "icon_url": {"type": "string", "format": "uri", "description": "Sender picture (http or https), when the server lets webhooks override it."}
        });
        props.as_object().cloned().unwrap_or_default()
    }

    fn check(&self, options: &MattermostOptions) -> Result<(), ConfigError> {
        chat::check_text(options.channel.as_deref(), "channel", 64)?;
        chat::check_text(options.username.as_deref(), "username", 64)?;
        if let Some(icon) = &options.icon_url {
            crate::http::parse_target_url("icon_url", icon)?;
        }
        Ok(())
    }

    fn payload(&self, options: &MattermostOptions, message: &Message<'_>) -> Value {
        let content = message.content;
        let theme = content.theme();
        let mut fallback = content.title.clone();
        if !content.body.is_empty() {
            fallback = format!("{fallback}: {}", content.body);
        }
        let mut attachment = json!({
            // Plain text for notifications and clients without formatting.
            "fallback": chat::fit(&crate::render::one_line(&fallback), MAX_FALLBACK, |s| s.replace('@', "@\u{200B}")),
            "color": theme.color,
            "title": chat::fit(&content.title, MAX_TITLE, escape),
            "fields": content.fields.iter().map(|(k, v)| {
                json!({"short": true, "title": escape(k), "value": chat::fit(v, MAX_FIELD, escape)})
            }).collect::<Vec<_>>(),
            "footer": message.timestamp,
        });
        if !content.body.is_empty() {
            attachment["text"] = json!(chat::fit(&content.body, MAX_TEXT, escape));
        }
        if let Some(link) = &content.link {
            attachment["title_link"] = json!(link);
        }
        let mut payload = json!({
            "text": format!("{} **{}** · {}", theme.emoji, theme.label, escape(message.event_type)),
            "attachments": [attachment],
        });
        for (key, value) in
            [("channel", &options.channel), ("username", &options.username), ("icon_url", &options.icon_url)]
        {
            if let Some(value) = value {
                payload[key] = json!(value);
            }
        }
        payload
    }

    fn read(&self, _: &MattermostOptions, outcome: Outcome) -> Outcome {
        let said = match chat::detail_json(&outcome) {
            Some(body) if body["message"].is_string() => {
                let message = body["message"].as_str().unwrap_or_default();
                let mut text = match body["id"].as_str() {
                    Some(id) => format!("{message} ({id})"),
                    None => message.to_owned(),
                };
                if let Some(detailed) = body["detailed_error"].as_str().filter(|d| !d.is_empty()) {
                    text.push_str(&format!(": {detailed}"));
                }
                chat::said(&text)
            }
            _ => outcome.detail().and_then(chat::said),
        };
        chat::with_provider_error(outcome, said)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{
        Channel, Severity,
        chat::Chat,
        testing::{Answer, Sample, StandIn, ctx},
    };

    const TIMEOUT: Duration = Duration::from_secs(5);

    fn sample() -> Sample {
        Sample::new(
            "job.failed",
            Severity::Critical,
            json!({"title": "Job `nightly` failed", "message": "@channel see [logs](https://evil.example)",
                   "url": "https://ci.example.com/j/1", "owner": "@alice"}),
        )
    }

    #[test]
    fn prepare_names_the_wrong_field() {
        let field = |config: Value| Chat(Mattermost).prepare(config, &ctx(false)).unwrap_err().field;
        let url = "https://chat.example.com/hooks/xxx";
        assert_eq!(field(json!({"webhook_url": url, "icon_url": "nope"})), "icon_url");
        assert_eq!(field(json!({"webhook_url": url, "channel": " "})), "channel");
        assert_eq!(field(json!({"webhook_url": url, "icon_emoji": ":x:"})), "icon_emoji");
        let ok = json!({"webhook_url": url, "channel": "town-square", "username": "herald", "icon_url": "https://example.com/i.png"});
        assert_eq!(Chat(Mattermost).prepare(ok.clone(), &ctx(false)).unwrap(), ok);
    }

    #[tokio::test]
    async fn posts_an_attachment_that_mentions_nobody() {
        let mattermost = StandIn::start(Answer::new(200, "ok")).await;
        let config = json!({"webhook_url": format!("{}/hooks/abc123", mattermost.base()), "channel": "ops"});
        let target = Chat(Mattermost).build(&config, &ctx(true)).unwrap();
        let sample = sample();
        let outcome = target.send(&sample.message(), TIMEOUT).await;
        assert_eq!(outcome, Outcome::Delivered { status_code: Some(200), detail: Some("ok".into()) });
        let seen = mattermost.one();
        assert_eq!(seen.method, "POST");
        assert_eq!(seen.uri, "/hooks/abc123");
        assert_eq!(seen.header("content-type"), Some("application/json"));
        assert_eq!(
            seen.json(),
            json!({
                "text": "🚨 **Critical** · job.failed",
                "channel": "ops",
                "attachments": [{
                    "fallback": "Job `nightly` failed: @\u{200B}channel see [logs](https://evil.example)",
                    "color": "#8E0000",
                    "title": "Job \\`nightly\\` failed",
                    "title_link": "https://ci.example.com/j/1",
                    "text": "@\u{200B}channel see \\[logs\\](https://evil.example)",
                    "fields": [{"short": true, "title": "owner", "value": "@\u{200B}alice"}],
                    "footer": "2026-01-02T03:04:05Z"
                }]
            })
        );
    }

    #[tokio::test]
    async fn mattermost_errors_are_read() {
        let mattermost = StandIn::start(Answer::new(200, "ok")).await;
        mattermost.script([
            Answer::json(
                400,
                &json!({"id": "web.incoming_webhook.invalid.app_error", "message": "Invalid webhook.",
                        "detailed_error": "", "request_id": "kx8h", "status_code": 400}),
            ),
            Answer::json(
                403,
                &json!({"id": "web.incoming_webhook.channel_locked.app_error",
                        "message": "This webhook is not permitted to post to the requested channel.",
                        "detailed_error": "", "request_id": "q1", "status_code": 403}),
            ),
            Answer::new(404, "404 page not found"),
            Answer::new(503, "upstream unavailable").header("retry-after", "5"),
        ]);
        let target = Chat(Mattermost).build(&json!({"webhook_url": mattermost.base()}), &ctx(true)).unwrap();
        let sample = sample();
        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(target.send(&sample.message(), TIMEOUT).await);
        }
        assert_eq!(got[0].label(), "failed");
        assert_eq!(
            got[0].error(),
            Some("HTTP 400 Bad Request: Invalid webhook. (web.incoming_webhook.invalid.app_error)")
        );
        assert_eq!(
            got[1].error(),
            Some(
                "HTTP 403 Forbidden: This webhook is not permitted to post to the requested channel. \
                 (web.incoming_webhook.channel_locked.app_error)"
            )
        );
        assert_eq!(got[2].error(), Some("HTTP 404 Not Found: 404 page not found"));
        let Outcome::Retry { after, error, .. } = &got[3] else { panic!("{:?}", got[3]) };
        assert_eq!(
            (*after, error.as_str()),
            (Some(Duration::from_secs(5)), "HTTP 503 Service Unavailable: upstream unavailable")
        );
    }
}
