//! The `google_chat` channel: a space's incoming webhook
//! (`https://chat.googleapis.com/v1/spaces/…/messages?key=…&token=…`, the
//! `spaces.messages.create` method) posting a one-line `text` and a
//! `cardsV2` card: header (title, severity and event type), the body, one
//! decorated text per fact, and a button to the link. The delivery id goes
//! as `requestId`, so a retry after a lost answer returns the message
//! already created instead of posting twice. Errors are Google's
//! `{"error": {"code", "message", "status"}}`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use url::Url;

use crate::{
    Message, Outcome,
    chat::{self, Provider},
};

/// A message is at most 32,000 bytes; these keep a card well under it.
const MAX_TITLE: usize = 250;
const MAX_TEXT: usize = 4000;
const MAX_FACT: usize = 500;

/// The `google_chat` channel.
#[derive(Debug, Clone, Copy, Default)]
pub struct GoogleChat;

/// No options besides `webhook_url`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GoogleChatOptions {}

/// Card text is a subset of HTML: entities escaped, line breaks as `<br>`.
fn html(s: &str) -> String {
    chat::escape_entities(s).replace('\n', "<br>")
}

/// Plain message text: `<users/all>` and `<url|text>` are markup there, so a
/// zero-width space after each `<` keeps event data from mentioning anyone
/// or disguising a link.
fn plain(s: &str) -> String {
    s.replace('<', "<\u{200B}")
}

impl Provider for GoogleChat {
    type Options = GoogleChatOptions;

    fn kind(&self) -> &'static str {
        "google_chat"
    }

    fn url_help(&self) -> &'static str {
        "The space's webhook URL (https://chat.googleapis.com/v1/spaces/…/messages?key=…&token=…); any http or https URL is accepted."
    }

    fn options_schema(&self) -> Map<String, Value> {
        Map::new()
    }

    fn endpoint(&self, url: &Url, message: &Message<'_>) -> Url {
        chat::with_query(url, "requestId", message.delivery_id)
    }

    fn payload(&self, _: &GoogleChatOptions, message: &Message<'_>) -> Value {
        let content = message.content;
        let theme = content.theme();
        let mut widgets = Vec::new();
        if !content.body.is_empty() {
            widgets.push(json!({"textParagraph": {"text": chat::fit(&content.body, MAX_TEXT, html)}}));
        }
        for (key, value) in &content.fields {
            widgets.push(
                json!({"decoratedText": {"topLabel": key, "text": chat::fit(value, MAX_FACT, html), "wrapText": true}}),
            );
        }
        if let Some(link) = &content.link {
            widgets
                .push(json!({"buttonList": {"buttons": [{"text": "Open", "onClick": {"openLink": {"url": link}}}]}}));
        }
        let mut card = json!({
            "header": {
                "title": chat::fit(&content.title, MAX_TITLE, str::to_owned),
                "subtitle": format!("{} {} · {} · {}", theme.emoji, theme.label, message.event_type, message.timestamp),
            },
        });
        if !widgets.is_empty() {
            card["sections"] = json!([{"widgets": widgets}]);
        }
        json!({
            "text": chat::fit(&format!("{} {}", theme.emoji, content.title), MAX_TITLE, plain),
            "cardsV2": [{"cardId": "herald", "card": card}],
        })
    }

    fn read(&self, _: &GoogleChatOptions, outcome: Outcome) -> Outcome {
        let body = chat::detail_json(&outcome);
        match (outcome, body) {
            (delivered @ Outcome::Delivered { .. }, Some(message)) if message["name"].is_string() => {
                // The created message echoes the whole card; its name is what is worth keeping.
                let kept = json!({"name": message["name"], "thread": {"name": message["thread"]["name"]}});
                chat::with_detail(delivered, Some(kept.to_string()))
            }
            (outcome, Some(body)) if body["error"]["message"].is_string() => {
                let message = body["error"]["message"].as_str().unwrap_or_default();
                let said = match body["error"]["status"].as_str() {
                    Some(status) => chat::said(&format!("{message} ({status})")),
                    None => chat::said(message),
                };
                chat::with_provider_error(outcome, said)
            }
            (outcome, _) => {
                let said = outcome.detail().and_then(chat::said);
                chat::with_provider_error(outcome, said)
            }
        }
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
            "cert.expiring",
            Severity::Warning,
            json!({"title": "Cert <users/all> expiring", "message": "a <b>bold</b> & claim\nnext line",
                   "url": "https://certs.example.com/c/1", "domain": "x<y>.example"}),
        )
    }

    #[test]
    fn prepare_accepts_only_the_url() {
        let url = "https://chat.googleapis.com/v1/spaces/AAAA/messages?key=k&token=t";
        let prepared = Chat(GoogleChat).prepare(json!({"webhook_url": url}), &ctx(false)).unwrap();
        assert_eq!(prepared, json!({"webhook_url": url}));
        let err = Chat(GoogleChat).prepare(json!({"webhook_url": url, "thread_key": "x"}), &ctx(false)).unwrap_err();
        assert_eq!(err.field, "thread_key");
        let schema = Chat(GoogleChat).schema();
        assert_eq!(schema["required"], json!(["webhook_url"]));
        assert_eq!(schema["properties"].as_object().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn posts_a_card_with_the_delivery_as_request_id() {
        let chat = StandIn::start(Answer::json(
            200,
            &json!({"name": "spaces/AAAA/messages/BBB.BBB", "sender": {"type": "BOT"}, "text": "…",
                    "thread": {"name": "spaces/AAAA/threads/BBB"}, "space": {"name": "spaces/AAAA"}}),
        ))
        .await;
        let config = json!({"webhook_url": format!("{}/v1/spaces/AAAA/messages?key=k1&token=t%3D1", chat.base())});
        let target = Chat(GoogleChat).build(&config, &ctx(true)).unwrap();
        let sample = sample();
        let outcome = target.send(&sample.message(), TIMEOUT).await;
        assert_eq!(
            outcome,
            Outcome::Delivered {
                status_code: Some(200),
                detail: Some(
                    r#"{"name":"spaces/AAAA/messages/BBB.BBB","thread":{"name":"spaces/AAAA/threads/BBB"}}"#.into()
                ),
            }
        );
        let seen = chat.one();
        assert_eq!(seen.method, "POST");
        assert_eq!(
            seen.uri,
            "/v1/spaces/AAAA/messages?key=k1&token=t%3D1&requestId=dlv_0190c6b6f3a87c2a9e1f0b1c2d3e4f50"
        );
        assert_eq!(seen.header("content-type"), Some("application/json"));
        assert_eq!(
            seen.json(),
            json!({
                "text": "⚠️ Cert <\u{200B}users/all> expiring",
                "cardsV2": [{"cardId": "herald", "card": {
                    "header": {"title": "Cert <users/all> expiring", "subtitle": "⚠️ Warning · cert.expiring · 2026-01-02T03:04:05Z"},
                    "sections": [{"widgets": [
                        {"textParagraph": {"text": "a &lt;b&gt;bold&lt;/b&gt; &amp; claim<br>next line"}},
                        {"decoratedText": {"topLabel": "domain", "text": "x&lt;y&gt;.example", "wrapText": true}},
                        {"buttonList": {"buttons": [{"text": "Open", "onClick": {"openLink": {"url": "https://certs.example.com/c/1"}}}]}}
                    ]}]
                }}]
            })
        );
    }

    #[tokio::test]
    async fn google_errors_are_read() {
        let chat = StandIn::start(Answer::new(200, "{}")).await;
        chat.script([
            Answer::json(
                400,
                &json!({"error": {"code": 400, "message": "Invalid JSON payload received. Unknown name \"cards_v3\": Cannot find field.",
                        "status": "INVALID_ARGUMENT"}}),
            ),
            Answer::json(
                429,
                &json!({"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).",
                        "status": "RESOURCE_EXHAUSTED"}}),
            ),
            Answer::json(403, &json!({"error": {"code": 403, "message": "The caller does not have permission", "status": "PERMISSION_DENIED"}})),
            Answer::json(404, &json!({"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND"}})),
        ]);
        let target = Chat(GoogleChat).build(&json!({"webhook_url": chat.base()}), &ctx(true)).unwrap();
        let sample = sample();
        let mut got = Vec::new();
        for _ in 0..5 {
            got.push(target.send(&sample.message(), TIMEOUT).await);
        }
        assert_eq!(got[0].label(), "failed");
        assert_eq!(
            got[0].error(),
            Some(
                "HTTP 400 Bad Request: Invalid JSON payload received. Unknown name \"cards_v3\": Cannot find field. (INVALID_ARGUMENT)"
            )
        );
        assert_eq!(got[1].label(), "retry");
        assert_eq!(
            got[1].error(),
            Some("HTTP 429 Too Many Requests: Resource has been exhausted (e.g. check quota). (RESOURCE_EXHAUSTED)")
        );
        assert_eq!(got[2].error(), Some("HTTP 403 Forbidden: The caller does not have permission (PERMISSION_DENIED)"));
        assert_eq!(got[3].error(), Some("HTTP 404 Not Found: Requested entity was not found. (NOT_FOUND)"));
        // An answer without a message name keeps its excerpt.
        assert_eq!(got[4], Outcome::Delivered { status_code: Some(200), detail: Some("{}".into()) });
    }
}
