//! The `teams` channel, in two formats. `adaptive_card` (the default) posts
//! an Adaptive Card 1.4 in a `message` envelope, which Teams Workflows (Power
//! Automate "When a Teams webhook request is received") accepts with
//! `202 Accepted`. `message_card` posts a legacy MessageCard to an Office 365
//! connector URL, which answers `200` with the body `1`, and also `200` when
//! Teams refused the card: then the body says "Webhook message delivery
//! failed with error: Microsoft Teams endpoint returned HTTP error 429 …",
//! and that inner status decides.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::{
    Message, Outcome, Severity,
    chat::{self, Provider},
    render,
};

/// Teams rejects messages over 28 KB; these bounds keep a card well under it.
const MAX_TITLE: usize = 250;
const MAX_TEXT: usize = 4000;
const MAX_FACT: usize = 500;
/// The Markdown subset of Teams cards: emphasis and links.
const MARKDOWN: &str = "\\*_[]";

/// The `teams` channel.
#[derive(Debug, Clone, Copy, Default)]
pub struct Teams;

/// Which card Teams gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// An Adaptive Card, for Workflows webhooks.
    #[default]
    AdaptiveCard,
    /// A MessageCard, for legacy Office 365 connector webhooks.
    MessageCard,
}

/// The config besides `webhook_url`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TeamsOptions {
    #[serde(default)]
    format: Format,
}

/// Markdown-escaped, with each line break a paragraph break (a single one
/// is dropped by Teams' Markdown).
fn markdown(s: &str) -> String {
    chat::escape_with_backslash(s, MARKDOWN).replace('\n', "\n\n")
}

/// For MessageCards, which also render a subset of HTML: entities first, so
/// `<a href>` in event data shows as text rather than a link.
fn card_markdown(s: &str) -> String {
    markdown(&chat::escape_entities(s))
}

fn context_line(message: &Message<'_>) -> String {
    let theme = message.content.theme();
    markdown(&format!("{} {} · {} · {}", theme.emoji, theme.label, message.event_type, message.timestamp))
}

fn adaptive_card(message: &Message<'_>) -> Value {
    let content = message.content;
    let color = match content.severity {
        Severity::Info => "Accent",
        Severity::Success => "Good",
        Severity::Warning => "Warning",
        Severity::Error | Severity::Critical => "Attention",
    };
    let mut body = vec![
        json!({"type": "TextBlock", "text": chat::fit(&content.title, MAX_TITLE, markdown), "weight": "Bolder",
               "size": "Medium", "color": color, "wrap": true}),
        json!({"type": "TextBlock", "text": context_line(message), "isSubtle": true, "size": "Small",
               "spacing": "None", "wrap": true}),
    ];
    if !content.body.is_empty() {
        body.push(json!({"type": "TextBlock", "text": chat::fit(&content.body, MAX_TEXT, markdown), "wrap": true}));
    }
    if !content.fields.is_empty() {
        let facts: Vec<Value> = content
            .fields
            .iter()
            .map(|(k, v)| json!({"title": markdown(k), "value": chat::fit(v, MAX_FACT, markdown)}))
            .collect();
        body.push(json!({"type": "FactSet", "facts": facts}));
    }
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
        "msteams": {"width": "Full"},
    });
    if let Some(link) = &content.link {
        card["actions"] = json!([{"type": "Action.OpenUrl", "title": "Open", "url": link}]);
    }
    json!({
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": card}],
    })
}

fn message_card(message: &Message<'_>) -> Value {
    let content = message.content;
    let theme = content.theme();
    let mut section = json!({"activitySubtitle": context_line(message), "markdown": true});
    if !content.fields.is_empty() {
        section["facts"] = content
            .fields
            .iter()
            .map(|(k, v)| json!({"name": card_markdown(k), "value": chat::fit(v, MAX_FACT, card_markdown)}))
            .collect();
    }
    let mut card = json!({
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "themeColor": theme.color.trim_start_matches('#'),
        // Plain text, for notifications; the connector requires it or `text`.
        "summary": render::cut(&content.title, MAX_TITLE),
        "title": chat::fit(&content.title, MAX_TITLE, card_markdown),
        "sections": [section],
    });
    if !content.body.is_empty() {
        card["text"] = json!(chat::fit(&content.body, MAX_TEXT, card_markdown));
    }
    if let Some(link) = &content.link {
        card["potentialAction"] =
            json!([{"@type": "OpenUri", "name": "Open", "targets": [{"os": "default", "uri": link}]}]);
    }
    card
}

impl Provider for Teams {
    type Options = TeamsOptions;

    fn kind(&self) -> &'static str {
        "teams"
    }

    fn url_help(&self) -> &'static str {
        "The Workflows webhook URL (adaptive_card) or the legacy connector URL (message_card); any http or https URL is accepted."
    }

    fn options_schema(&self) -> Map<String, Value> {
        let props = json!({
            "format": {"type": "string", "enum": ["adaptive_card", "message_card"], "default": "adaptive_card",
                       "description": "adaptive_card for a Teams Workflows webhook, message_card for a legacy Office 365 connector."}
        });
        props.as_object().cloned().unwrap_or_default()
    }

    fn payload(&self, options: &TeamsOptions, message: &Message<'_>) -> Value {
        match options.format {
            Format::AdaptiveCard => adaptive_card(message),
            Format::MessageCard => message_card(message),
        }
    }

    fn read(&self, _: &TeamsOptions, outcome: Outcome) -> Outcome {
        if let Outcome::Delivered { status_code: Some(200), detail: Some(body) } = &outcome
            && let Some(failure) = failure_in_200(body)
        {
            return failure;
        }
        let said = match chat::detail_json(&outcome) {
            // Power Automate: {"error": {"code": "...", "message": "..."}}.
            Some(body) if body["error"]["message"].is_string() => {
                let message = body["error"]["message"].as_str().unwrap_or_default();
                match body["error"]["code"].as_str() {
                    Some(code) => chat::said(&format!("{message} ({code})")),
                    None => chat::said(message),
                }
            }
            _ => outcome.detail().and_then(chat::said),
        };
        chat::with_provider_error(outcome, said)
    }
}

/// The connector's 200 that reports a refusal: classified by the status it names.
fn failure_in_200(body: &str) -> Option<Outcome> {
    const MARK: &str = "returned HTTP error ";
    if !body.contains("delivery failed") && !body.contains(MARK) {
        return None;
    }
    let inner: Option<u16> = body
        .split_once(MARK)
        .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok());
    let error = format!("HTTP 200 OK: {}", chat::said(body).unwrap_or_default());
    let detail = Some(body.to_owned());
    let status_code = Some(200);
    Some(match inner {
        Some(408 | 429) | Some(500..=599) => Outcome::Retry { status_code, after: None, error, detail },
        _ => Outcome::Failed { status_code, error, detail },
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{
        Channel,
        chat::Chat,
        testing::{Answer, Sample, StandIn, ctx},
    };

    const TIMEOUT: Duration = Duration::from_secs(5);

    fn sample() -> Sample {
        Sample::new(
            "disk.full",
            Severity::Warning,
            json!({"title": "Disk *almost* full", "message": "Line one\nsee [here](https://evil.example) <a href=\"https://x\">x</a>",
                   "url": "https://grafana.example.com/d/1", "host": "db_1"}),
        )
    }

    #[test]
    fn prepare_checks_the_format() {
        let url = "https://prod-00.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?sig=x";
        let err = Chat(Teams).prepare(json!({"webhook_url": url, "format": "card"}), &ctx(false)).unwrap_err();
        assert_eq!(err.field, "format");
        assert!(err.message.contains("adaptive_card"), "{err:?}");
        let prepared = Chat(Teams).prepare(json!({"webhook_url": url}), &ctx(false)).unwrap();
        assert_eq!(prepared, json!({"webhook_url": url, "format": "adaptive_card"}));
        assert_eq!(Chat(Teams).schema()["properties"]["format"]["enum"], json!(["adaptive_card", "message_card"]));
    }

    #[tokio::test]
    async fn posts_an_adaptive_card_to_a_workflow() {
        let teams = StandIn::start(Answer::new(202, "")).await;
        let config = json!({"webhook_url": format!("{}/workflows/abc/triggers/manual/paths/invoke?api-version=1&sig=s", teams.base())});
        let target = Chat(Teams).build(&config, &ctx(true)).unwrap();
        let sample = sample();
        let outcome = target.send(&sample.message(), TIMEOUT).await;
        assert_eq!(outcome, Outcome::Delivered { status_code: Some(202), detail: None });
        let seen = teams.one();
        assert_eq!(seen.method, "POST");
        assert_eq!(seen.uri, "/workflows/abc/triggers/manual/paths/invoke?api-version=1&sig=s");
        assert_eq!(seen.header("content-type"), Some("application/json"));
        assert_eq!(
            seen.json(),
            json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": null,
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "msteams": {"width": "Full"},
                        "body": [
                            {"type": "TextBlock", "text": "Disk \\*almost\\* full", "weight": "Bolder", "size": "Medium",
                             "color": "Warning", "wrap": true},
                            {"type": "TextBlock", "text": "⚠️ Warning · disk.full · 2026-01-02T03:04:05Z", "isSubtle": true,
                             "size": "Small", "spacing": "None", "wrap": true},
                            {"type": "TextBlock", "text": "Line one\n\nsee \\[here\\](https://evil.example) <a href=\"https://x\">x</a>", "wrap": true},
                            {"type": "FactSet", "facts": [{"title": "host", "value": "db\\_1"}]}
                        ],
                        "actions": [{"type": "Action.OpenUrl", "title": "Open", "url": "https://grafana.example.com/d/1"}]
                    }
                }]
            })
        );
    }

    #[tokio::test]
    async fn posts_a_message_card_to_a_connector() {
        let teams = StandIn::start(Answer::new(200, "1")).await;
        let config = json!({"webhook_url": format!("{}/webhookb2/a@b/IncomingWebhook/c/d", teams.base()), "format": "message_card"});
        let target = Chat(Teams).build(&config, &ctx(true)).unwrap();
        let sample = sample();
        let outcome = target.send(&sample.message(), TIMEOUT).await;
        assert_eq!(outcome, Outcome::Delivered { status_code: Some(200), detail: Some("1".into()) });
        let seen = teams.one();
        assert_eq!(seen.uri, "/webhookb2/a@b/IncomingWebhook/c/d");
        assert_eq!(
            seen.json(),
            json!({
                "@type": "MessageCard",
                "@context": "https://schema.org/extensions",
                "themeColor": "EF6C00",
                "summary": "Disk *almost* full",
                "title": "Disk \\*almost\\* full",
                "text": "Line one\n\nsee \\[here\\](https://evil.example) &lt;a href=\"https://x\"&gt;x&lt;/a&gt;",
                "sections": [{"activitySubtitle": "⚠️ Warning · disk.full · 2026-01-02T03:04:05Z", "markdown": true,
                              "facts": [{"name": "host", "value": "db\\_1"}]}],
                "potentialAction": [{"@type": "OpenUri", "name": "Open",
                                     "targets": [{"os": "default", "uri": "https://grafana.example.com/d/1"}]}]
            })
        );
    }

    #[tokio::test]
    async fn failures_hidden_in_a_200_and_workflow_errors_are_read() {
        let teams = StandIn::start(Answer::new(200, "1")).await;
        let throttled = "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 429 \
                         with ContextId tcid=0,server=msgapi-production-eus-azsc2-4-170,cv=deadbeef.0..";
        let too_big = "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 413 \
                       with ContextId tcid=622824298674363899,server=DB5PEPF00003FC8,cv=AszFFaeXdEGdFrJhai0eUw.1.0..";
        teams.script([
            Answer::new(200, throttled),
            Answer::new(200, too_big),
            Answer::new(400, "Summary or Text is required."),
            Answer::json(
                400,
                &json!({"error": {"code": "TriggerInputSchemaMismatch",
                        "message": "The input body for trigger 'manual' of type 'Request' did not match its schema definition."}}),
            ),
            Answer::json(429, &json!({"error": {"code": "WorkflowTriggerIsThrottled", "message": "Rate limit is exceeded."}}))
                .header("retry-after", "12"),
        ]);
        let target = Chat(Teams).build(&json!({"webhook_url": teams.base()}), &ctx(true)).unwrap();
        let sample = sample();
        let mut got = Vec::new();
        for _ in 0..5 {
            got.push(target.send(&sample.message(), TIMEOUT).await);
        }
        assert_eq!(
            got[0],
            Outcome::Retry {
                status_code: Some(200),
                after: None,
                error: format!("HTTP 200 OK: {throttled}"),
                detail: Some(throttled.into())
            }
        );
        assert_eq!(got[1].label(), "failed");
        assert!(got[1].error().unwrap().contains("returned HTTP error 413"), "{:?}", got[1]);
        assert_eq!(got[2].error(), Some("HTTP 400 Bad Request: Summary or Text is required."));
        assert_eq!(
            got[3].error(),
            Some(
                "HTTP 400 Bad Request: The input body for trigger 'manual' of type 'Request' did not match its schema \
                 definition. (TriggerInputSchemaMismatch)"
            )
        );
        let Outcome::Retry { after, error, .. } = &got[4] else { panic!("{:?}", got[4]) };
        assert_eq!(*after, Some(Duration::from_secs(12)));
        assert_eq!(error, "HTTP 429 Too Many Requests: Rate limit is exceeded. (WorkflowTriggerIsThrottled)");
        // A connector's JSON acknowledgement is a delivery too.
        let ack = r#"{"version":"1.1","statusCode":200,"reasonPhrase":"OK","isSuccessStatusCode":true}"#;
        assert_eq!(failure_in_200(ack), None);
    }
}
