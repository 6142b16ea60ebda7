//! The `slack` channel: an incoming webhook
//! (<https://api.slack.com/messaging/webhooks>) posting Block Kit with a
//! fallback `text`: the title as a header, the body as a section, and in an
//! attachment coloured by severity the facts, a context line and a button to
//! the link. Slack answers `ok`, or a status with its error code as the body
//! (`invalid_payload`, `no_service`, `channel_is_archived`...), which becomes
//! the attempt's error.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::{
    ConfigError, Message, Outcome,
    chat::{self, Provider},
};

/// Block Kit limits (characters).
const MAX_HEADER: usize = 150;
const MAX_SECTION: usize = 3000;
const MAX_FIELD: usize = 2000;
const MAX_BUTTON_URL: usize = 3000;
const MAX_FIELDS: usize = 10;

/// The `slack` channel.
#[derive(Debug, Clone, Copy, Default)]
pub struct Slack;

/// The config besides `webhook_url`: legacy overrides that webhooks created
/// by a Slack app ignore.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlackOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    icon_emoji: Option<String>,
}

impl Provider for Slack {
    type Options = SlackOptions;

    fn kind(&self) -> &'static str {
        "slack"
    }

    fn url_help(&self) -> &'static str {
        "The incoming webhook URL (https://hooks.slack.com/services/T…/B…/…); any http or https URL is accepted."
    }

    fn options_schema(&self) -> Map<String, Value> {
        let props = json!({
            "channel": {"type": "string", "maxLength": 80, "description": "Channel override (#name or user id); only legacy webhooks honour it."},
            "username": {"type": "string", "maxLength": 80, "description": "Sender name override; only legacy webhooks honour it."},
            "icon_emoji": {"type": "string", "pattern": "^:[^:\\s]+:$", "description": "Sender icon override such as :bell:; only legacy webhooks honour it."}
        });
        props.as_object().cloned().unwrap_or_default()
    }

    fn check(&self, options: &SlackOptions) -> Result<(), ConfigError> {
        chat::check_text(options.channel.as_deref(), "channel", 80)?;
        chat::check_text(options.username.as_deref(), "username", 80)?;
        if let Some(icon) = &options.icon_emoji {
            let name = icon.strip_prefix(':').and_then(|s| s.strip_suffix(':')).unwrap_or_default();
            if name.is_empty() || name.contains(':') || name.chars().any(char::is_whitespace) || icon.len() > 100 {
                return Err(ConfigError::new("icon_emoji", "must be an emoji code such as :bell:"));
            }
        }
        Ok(())
    }

    fn payload(&self, options: &SlackOptions, message: &Message<'_>) -> Value {
        let content = message.content;
        let theme = content.theme();
        let esc = chat::escape_entities;
        let mut blocks = vec![json!({
            "type": "header",
            "text": {"type": "plain_text", "text": chat::fit(&content.title, MAX_HEADER, str::to_owned), "emoji": true}
        })];
        if !content.body.is_empty() {
            blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": chat::fit(&content.body, MAX_SECTION, esc)}}));
        }
        let mut details = Vec::new();
        if !content.fields.is_empty() {
            let fields: Vec<Value> = content
                .fields
                .iter()
                .take(MAX_FIELDS)
                .map(|(k, v)| {
                    let key = esc(k);
                    let value = chat::fit(v, MAX_FIELD.saturating_sub(key.chars().count() + 3), esc);
                    json!({"type": "mrkdwn", "text": format!("*{key}*\n{value}")})
                })
                .collect();
            details.push(json!({"type": "section", "fields": fields}));
        }
        let when = match chat::unix_seconds(message.timestamp) {
            // Shown in each reader's own time zone; the fallback after `|` is
            // for clients that cannot.
            Some(secs) => format!("<!date^{secs}^{{date_short_pretty}} {{time}}|{}>", esc(message.timestamp)),
            None => esc(message.timestamp),
        };
        let context = format!("{} *{}*  |  {}  |  {when}", theme.emoji, theme.label, esc(message.event_type));
        details.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]}));
        if let Some(link) = content.link.as_deref().filter(|l| l.len() <= MAX_BUTTON_URL) {
            details.push(json!({
                "type": "actions",
                "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Open"}, "url": link}]
            }));
        }
        let mut fallback = content.title.clone();
        if !content.body.is_empty() {
            fallback.push('\n');
            fallback.push_str(&content.body);
        }
        let mut payload = json!({
            "text": chat::fit(&fallback, MAX_SECTION, esc),
            "blocks": blocks,
            "attachments": [{"color": theme.color, "blocks": details}],
        });
        for (key, value) in
            [("channel", &options.channel), ("username", &options.username), ("icon_emoji", &options.icon_emoji)]
        {
            if let Some(value) = value {
                payload[key] = json!(value);
            }
        }
        payload
    }

    fn read(&self, _: &SlackOptions, outcome: Outcome) -> Outcome {
        // Slack's answer is a bare error code such as `no_service`.
        let said = outcome.detail().and_then(chat::said);
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
            "backup.failed",
            Severity::Error,
            json!({"title": "Backup <failed> & more", "message": "db1: *disk* full <!channel>",
                   "url": "https://ci.example.com/jobs/7", "host": "db<1>", "attempts": 3}),
        )
    }

    #[test]
    fn prepare_names_the_wrong_field() {
        let field = |config: Value| Chat(Slack).prepare(config, &ctx(false)).unwrap_err().field;
        let url = "https://hooks.slack.com/services/T0/B0/X";
        assert_eq!(field(json!({})), "webhook_url");
        assert_eq!(field(json!({"webhook_url": 1})), "webhook_url");
        assert_eq!(field(json!({"webhook_url": "hooks.slack.com/x"})), "webhook_url");
        assert_eq!(field(json!({"webhook_url": "http://169.254.169.254/"})), "webhook_url");
        assert_eq!(field(json!({"webhook_url": "http://127.0.0.1:9/"})), "webhook_url");
        assert_eq!(field(json!({"webhook_url": url, "chanel": "#ops"})), "chanel");
        assert_eq!(field(json!({"webhook_url": url, "channel": ""})), "channel");
        assert_eq!(field(json!({"webhook_url": url, "username": 5})), "username");
        assert_eq!(field(json!({"webhook_url": url, "icon_emoji": "bell"})), "icon_emoji");
        let prepared = Chat(Slack)
            .prepare(json!({"webhook_url": url, "icon_emoji": ":bell:", "channel": null}), &ctx(false))
            .unwrap();
        assert_eq!(prepared, json!({"webhook_url": url, "icon_emoji": ":bell:"}));
        assert_eq!(Chat(Slack).secret_fields(), ["webhook_url"]);
        assert_eq!(Chat(Slack).schema()["properties"]["webhook_url"]["secret"], true);
        assert!(Chat(Slack).check_recipient("#other").is_err());
    }

    #[tokio::test]
    async fn posts_block_kit_with_escaped_text() {
        let slack = StandIn::start(Answer::new(200, "ok")).await;
        let config = json!({"webhook_url": format!("{}/services/T0/B0/X?x=1", slack.base()), "username": "Herald"});
        let target = Chat(Slack).build(&config, &ctx(true)).unwrap();
        let sample = sample();
        let outcome = target.send(&sample.message(), TIMEOUT).await;
        assert_eq!(outcome, Outcome::Delivered { status_code: Some(200), detail: Some("ok".into()) });
        let seen = slack.one();
        assert_eq!(seen.method, "POST");
        assert_eq!(seen.uri, "/services/T0/B0/X?x=1");
        assert_eq!(seen.header("content-type"), Some("application/json"));
        assert_eq!(
            seen.json(),
            json!({
                "text": "Backup &lt;failed&gt; &amp; more\ndb1: *disk* full &lt;!channel&gt;",
                "username": "Herald",
                "blocks": [
                    {"type": "header", "text": {"type": "plain_text", "text": "Backup <failed> & more", "emoji": true}},
                    {"type": "section", "text": {"type": "mrkdwn", "text": "db1: *disk* full &lt;!channel&gt;"}}
                ],
                "attachments": [{"color": "#C62828", "blocks": [
                    {"type": "section", "fields": [
                        {"type": "mrkdwn", "text": "*attempts*\n3"},
                        {"type": "mrkdwn", "text": "*host*\ndb&lt;1&gt;"}
                    ]},
                    {"type": "context", "elements": [{"type": "mrkdwn",
                        "text": "❌ *Error*  |  backup.failed  |  <!date^1767323045^{date_short_pretty} {time}|2026-01-02T03:04:05Z>"}]},
                    {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Open"},
                        "url": "https://ci.example.com/jobs/7"}]}
                ]}]
            })
        );
    }

    #[test]
    fn long_text_stays_within_block_kit_limits() {
        let long = Sample::new("x", Severity::Info, json!({"title": "t".repeat(240), "message": "<".repeat(4000)}));
        let payload = Slack.payload(&SlackOptions::default(), &long.message());
        let header = payload["blocks"][0]["text"]["text"].as_str().unwrap();
        assert_eq!(header.chars().count(), MAX_HEADER);
        let section = payload["blocks"][1]["text"]["text"].as_str().unwrap();
        assert!(section.chars().count() <= MAX_SECTION && section.ends_with("&lt;…"), "{}", section.len());
        // No fields, no link: the details are the context line alone.
        let bare = Sample::new("x", Severity::Info, json!({}));
        let mut message = bare.message();
        message.timestamp = "not a time";
        let payload = Slack.payload(&SlackOptions::default(), &message);
        assert_eq!(payload["attachments"][0]["blocks"].as_array().unwrap().len(), 2, "context and the Herald link");
        assert_eq!(payload["attachments"][0]["blocks"][0]["elements"][0]["text"], "ℹ️ *Info*  |  x  |  not a time");
    }

    #[tokio::test]
    async fn slack_error_codes_become_the_error() {
        let slack = StandIn::start(Answer::new(200, "ok")).await;
        slack.script([
            Answer::new(404, "no_service"),
            Answer::new(400, "invalid_blocks"),
            Answer::new(403, "invalid_token"),
            Answer::new(410, "channel_is_archived"),
            Answer::new(429, "rate_limited").header("retry-after", "30"),
            Answer::new(500, "rollup_error"),
        ]);
        let target = Chat(Slack).build(&json!({"webhook_url": slack.base()}), &ctx(true)).unwrap();
        let sample = sample();
        let mut got = Vec::new();
        for _ in 0..6 {
            got.push(target.send(&sample.message(), TIMEOUT).await);
        }
        let failed = |status: u16, error: &str, body: &str| Outcome::Failed {
            status_code: Some(status),
            error: error.into(),
            detail: Some(body.into()),
        };
        assert_eq!(got[0], failed(404, "HTTP 404 Not Found: no_service", "no_service"));
        assert_eq!(got[1], failed(400, "HTTP 400 Bad Request: invalid_blocks", "invalid_blocks"));
        assert_eq!(got[2], failed(403, "HTTP 403 Forbidden: invalid_token", "invalid_token"));
        assert_eq!(got[3], failed(410, "HTTP 410 Gone: channel_is_archived", "channel_is_archived"));
        assert_eq!(
            got[4],
            Outcome::Retry {
                status_code: Some(429),
                after: Some(Duration::from_secs(30)),
                error: "HTTP 429 Too Many Requests: rate_limited".into(),
                detail: Some("rate_limited".into()),
            }
        );
        assert_eq!(got[5].label(), "retry");
        assert_eq!(got[5].error(), Some("HTTP 500 Internal Server Error: rollup_error"));
    }

    #[tokio::test]
    async fn a_redirect_repeating_the_token_does_not_leak_it() {
        let slack = StandIn::start(Answer::new(200, "ok")).await;
        let url = format!("{}/services/T0/B0/s3cr3tToken", slack.base());
        let moved = url.replace("http://", "https://");
        slack.script([Answer::new(301, &format!("<a href=\"{moved}\">Moved</a>")).header("location", &moved)]);
        let target = Chat(Slack).build(&json!({"webhook_url": url}), &ctx(true)).unwrap();
        let outcome = target.send(&sample().message(), TIMEOUT).await;
        assert_eq!(outcome.label(), "failed");
        let shown = format!("{:?} {:?}", outcome.error(), outcome.detail());
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("Location: https://127.0.0.1:"), "{shown}");
    }

    #[tokio::test]
    async fn send_rechecks_the_policy() {
        let slack = StandIn::start(Answer::new(200, "ok")).await;
        let config = json!({"webhook_url": format!("{}/services/T0/B0/SECRET", slack.base())});
        let target = Chat(Slack).build(&config, &ctx(false)).unwrap();
        let outcome = target.send(&sample().message(), TIMEOUT).await;
        assert_eq!(outcome.label(), "failed");
        assert!(outcome.error().unwrap().starts_with("127.0.0.1 is loopback"), "{outcome:?}");
        assert!(slack.seen().is_empty());
    }
}
