//! The chat channels (`slack`, `discord`, `teams`, `mattermost`,
//! `google_chat`) end to end: event → rule → the exact payload each provider
//! documents, the provider's real error and rate-limit answers, the secret
//! webhook URL masked, and test sends.

use serde_json::{Value, json};

use crate::{
    backend_test,
    helpers::{App, Backend, TempDir, TestDb},
    sink::{Reply, Sink},
};

/// A posted event and its single delivery.
struct Posted {
    delivery: String,
    /// The event's time as channels see it (RFC 3339).
    at: String,
}

async fn post(app: &App, event_type: &str, severity: &str, data: Value) -> Posted {
    let (status, body) = app.post("/v1/events", json!({"type": event_type, "severity": severity, "data": data})).await;
    assert_eq!(status, 202, "{body}");
    let event = body["id"].as_str().unwrap().to_owned();
    let deliveries = app.routed(&event).await;
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    let (_, e) = app.get(&format!("/v1/events/{event}")).await;
    Posted {
        delivery: deliveries[0]["id"].as_str().unwrap().to_owned(),
        at: e["created_at"].as_str().unwrap().to_owned(),
    }
}

async fn spawn_sqlite() -> (App, TestDb, TempDir) {
    let (db, dir) = (TestDb::new(Backend::Sqlite).await, TempDir::new());
    let app = App::spawn(Backend::Sqlite, &db, &dir).await;
    (app, db, dir)
}

fn attempts(delivery: &Value) -> Vec<Value> {
    delivery["attempts"].as_array().cloned().unwrap_or_default()
}

backend_test!(slack_gets_block_kit_retries_on_429_and_fails_on_no_service, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let mut app = App::spawn(backend, &db, &dir).await;
    let sink = Sink::start().await;
    let token = "xoxtokenT0B0Zq9secretpart";
    let webhook_url = format!("{}/services/T0/B0/{token}", sink.base());
    let int = app.integration("slack", json!({"webhook_url": webhook_url, "username": "Herald"})).await;
    let (_, got) = app.get(&format!("/v1/integrations/{int}")).await;
    assert_eq!(got["config"], json!({"webhook_url": "********", "username": "Herald"}), "the webhook URL is secret");
    app.rule(&["backup.*"], None, &[&int]).await;

    sink.script([Reply::status(200).with_body("ok")]);
    let data = json!({"title": "Backup failed", "message": "db1 <disk> full", "url": "https://ci.example.com/j/7", "host": "db1"});
    let first = post(&app, "backup.failed", "error", data).await;
    let done = app.wait_for_delivery(&first.delivery, "sent").await;
    assert_eq!(done["attempts"][0]["status_code"], json!(200));
    let got = &sink.received()[0];
    assert_eq!(got.method, "POST");
    assert_eq!(got.uri.to_string(), format!("/services/T0/B0/{token}"));
    assert_eq!(got.header("content-type"), "application/json");
    let secs = chrono::DateTime::parse_from_rfc3339(&first.at).unwrap().timestamp();
    assert_eq!(
        got.json(),
        json!({
            "text": "Backup failed\ndb1 &lt;disk&gt; full",
            "username": "Herald",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": "Backup failed", "emoji": true}},
                {"type": "section", "text": {"type": "mrkdwn", "text": "db1 &lt;disk&gt; full"}}
            ],
            "attachments": [{"color": "#C62828", "blocks": [
                {"type": "section", "fields": [{"type": "mrkdwn", "text": "*host*\ndb1"}]},
                {"type": "context", "elements": [{"type": "mrkdwn",
                    "text": format!("❌ *Error*  |  backup.failed  |  <!date^{secs}^{{date_short_pretty}} {{time}}|{}>", first.at)}]},
                {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Open"},
                    "url": "https://ci.example.com/j/7"}]}
            ]}]
        })
    );

    // Rate limited: Slack's 429 with Retry-After, then accepted.
    sink.script([
        Reply::status(429).with_header("retry-after", "1").with_body("rate_limited"),
        Reply::status(200).with_body("ok"),
    ]);
    let second = post(&app, "backup.failed", "warning", json!({"title": "Again"})).await;
    let done = app.wait_for_delivery(&second.delivery, "sent").await;
    let tries = attempts(&done);
    assert_eq!(tries.len(), 2, "{done}");
    assert_eq!((&tries[0]["outcome"], &tries[0]["status_code"]), (&json!("retry"), &json!(429)));
    assert_eq!(tries[0]["error"], json!("HTTP 429 Too Many Requests: rate_limited"));
    assert_eq!(tries[1]["outcome"], json!("sent"));

    // The webhook was removed: Slack's 404 `no_service` is final.
    sink.script([Reply::status(404).with_body("no_service")]);
    let third = post(&app, "backup.failed", "info", json!({"title": "Gone"})).await;
    let failed = app.wait_for_delivery(&third.delivery, "failed").await;
    let tries = attempts(&failed);
    assert_eq!(tries.len(), 1, "a 404 is not retried: {failed}");
    assert_eq!(tries[0]["error"], json!("HTTP 404 Not Found: no_service"));
    assert_eq!(sink.count(), 4);

    // A Slack webhook posts to its own channel: no recipient override.
    let (status, body) = app.post(&format!("/v1/integrations/{int}/test"), json!({"recipient": "#elsewhere"})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], json!("recipient"), "{body}");
    assert_eq!(sink.count(), 4, "a refused test sends nothing");

    // The token in the URL is neither logged nor stored in plain text.
    app.kill();
    let log = app.log.lock().unwrap().clone();
    assert!(!log.contains(token), "the webhook URL was logged:\n{log}");
    if backend == Backend::Sqlite {
        for entry in std::fs::read_dir(&dir.0).unwrap().flatten() {
            let bytes = std::fs::read(entry.path()).unwrap_or_default();
            assert!(!bytes.windows(token.len()).any(|w| w == token.as_bytes()), "{:?} holds the token", entry.path());
        }
    }
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_gets_an_embed_honours_retry_after_and_test_sends() {
    let (app, _db, _dir) = spawn_sqlite().await;
    let sink = Sink::start().await;
    let message = json!({"id": "1187000000000000001", "channel_id": "1187000000000000002", "type": 0, "content": ""});
    let int = app
        .integration(
            "discord",
            json!({"webhook_url": format!("{}/api/webhooks/1/tok", sink.base()), "username": "Herald"}),
        )
        .await;
    let (_, got) = app.get(&format!("/v1/integrations/{int}")).await;
    assert_eq!(got["config"]["webhook_url"], json!("********"));
    app.rule(&["deploy.*"], None, &[&int]).await;

    // Discord's 429 body says 1 s (fractional seconds), then the message is created.
    sink.script([
        Reply::status(429)
            .with_header("retry-after", "1")
            .with_header("content-type", "application/json")
            .with_body(r#"{"message": "You are being rate limited.", "retry_after": 0.8, "global": false}"#),
        Reply::status(200).with_header("content-type", "application/json").with_body(&message.to_string()),
    ]);
    let data = json!({"title": "Deployed v2", "message": "@everyone it is **live**", "url": "https://ci.example.com/d/9", "env": "prod"});
    let posted = post(&app, "deploy.done", "success", data).await;
    let done = app.wait_for_delivery(&posted.delivery, "sent").await;
    let tries = attempts(&done);
    assert_eq!(tries.len(), 2, "{done}");
    assert_eq!(tries[0]["error"], json!("HTTP 429 Too Many Requests: You are being rate limited."));
    assert_eq!(tries[1]["response"], json!(r#"{"channel_id":"1187000000000000002","id":"1187000000000000001"}"#));
    let received = sink.received();
    assert_eq!(received.len(), 2);
    for got in &received {
        assert_eq!(got.uri.to_string(), "/api/webhooks/1/tok?wait=true");
        assert_eq!(got.header("content-type"), "application/json");
    }
    assert_eq!(
        received[1].json(),
        json!({
            "username": "Herald",
            "allowed_mentions": {"parse": []},
            "embeds": [{
                "title": "Deployed v2",
                "description": "@everyone it is \\*\\*live\\*\\*",
                "url": "https://ci.example.com/d/9",
                "color": 0x2E7D32,
                "fields": [{"name": "env", "value": "prod", "inline": true}],
                "timestamp": posted.at,
                "footer": {"text": "✅ Success · deploy.done"}
            }]
        })
    );

    // A test send really posts, and Discord's unknown webhook is reported as such.
    sink.script([Reply::status(200).with_header("content-type", "application/json").with_body(&message.to_string())]);
    let (status, test) = app.post(&format!("/v1/integrations/{int}/test"), json!({})).await;
    assert_eq!(status, 200, "{test}");
    assert_eq!(test["success"], json!(true), "{test}");
    let got = &sink.received()[2];
    assert_eq!(got.json()["embeds"][0]["description"], json!("This is a test message from Herald."));
    sink.script([Reply::status(404)
        .with_header("content-type", "application/json")
        .with_body(r#"{"message": "Unknown Webhook", "code": 10015}"#)]);
    let (_, test) = app.post(&format!("/v1/integrations/{int}/test"), json!({})).await;
    assert_eq!(test["success"], json!(false), "{test}");
    assert_eq!(test["message"], json!("HTTP 404 Not Found: Unknown Webhook (code 10015)"));
    let (status, body) = app.post(&format!("/v1/integrations/{int}/test"), json!({"recipient": "1234"})).await;
    assert_eq!((status.as_u16(), &body["field"]), (400, &json!("recipient")), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_gets_an_adaptive_card_or_a_message_card_and_a_hidden_429_is_retried() {
    let (app, _db, _dir) = spawn_sqlite().await;
    let (workflow, connector) = (Sink::start().await, Sink::start().await);
    let cards = app
        .integration("teams", json!({"webhook_url": format!("{}/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01&sig=s1", workflow.base())}))
        .await;
    let legacy = app
        .integration("teams", json!({"webhook_url": format!("{}/webhookb2/g@t/IncomingWebhook/x/y", connector.base()), "format": "message_card"}))
        .await;
    let (_, got) = app.get(&format!("/v1/integrations/{cards}")).await;
    assert_eq!(got["config"], json!({"webhook_url": "********", "format": "adaptive_card"}));
    app.rule(&["disk.*"], None, &[&cards]).await;
    app.rule(&["cert.*"], None, &[&legacy]).await;

    workflow.script([Reply::status(202)]);
    let data = json!({"title": "Disk full", "message": "on db1\nnow", "url": "https://grafana.example.com/d/1", "host": "db1"});
    let posted = post(&app, "disk.full", "critical", data).await;
    let done = app.wait_for_delivery(&posted.delivery, "sent").await;
    assert_eq!(done["attempts"][0]["status_code"], json!(202));
    let got = &workflow.received()[0];
    assert_eq!(got.uri.to_string(), "/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01&sig=s1");
    assert_eq!(got.header("content-type"), "application/json");
    assert_eq!(
        got.json(),
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
                        {"type": "TextBlock", "text": "Disk full", "weight": "Bolder", "size": "Medium", "color": "Attention", "wrap": true},
                        {"type": "TextBlock", "text": format!("🚨 Critical · disk.full · {}", posted.at), "isSubtle": true,
                         "size": "Small", "spacing": "None", "wrap": true},
                        {"type": "TextBlock", "text": "on db1\n\nnow", "wrap": true},
                        {"type": "FactSet", "facts": [{"title": "host", "value": "db1"}]}
                    ],
                    "actions": [{"type": "Action.OpenUrl", "title": "Open", "url": "https://grafana.example.com/d/1"}]
                }
            }]
        })
    );

    // The legacy connector answers 200 even when Teams throttled the card.
    connector.script([
        Reply::status(200).with_body(
            "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 429 with ContextId tcid=0,server=msgapi-production-eus-azsc2-4-170,cv=deadbeef.0..",
        ),
        Reply::status(200).with_body("1"),
    ]);
    let posted =
        post(&app, "cert.expiring", "warning", json!({"title": "Cert expiring", "domain": "example.com"})).await;
    let done = app.wait_for_delivery(&posted.delivery, "sent").await;
    let tries = attempts(&done);
    assert_eq!(tries.len(), 2, "{done}");
    assert_eq!((&tries[0]["outcome"], &tries[0]["status_code"]), (&json!("retry"), &json!(200)));
    assert!(tries[0]["error"].as_str().unwrap().contains("returned HTTP error 429"), "{done}");
    let got = &connector.received()[1];
    assert_eq!(got.uri.to_string(), "/webhookb2/g@t/IncomingWebhook/x/y");
    assert_eq!(
        got.json(),
        json!({
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "themeColor": "EF6C00",
            "summary": "Cert expiring",
            "title": "Cert expiring",
            "sections": [{"activitySubtitle": format!("⚠️ Warning · cert.expiring · {}", posted.at), "markdown": true,
                          "facts": [{"name": "domain", "value": "example.com"}]}]
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mattermost_gets_an_attachment_and_its_errors_are_kept() {
    let (app, _db, _dir) = spawn_sqlite().await;
    let sink = Sink::start().await;
    let int = app
        .integration("mattermost", json!({"webhook_url": format!("{}/hooks/k3y", sink.base()), "channel": "ops"}))
        .await;
    let (_, got) = app.get(&format!("/v1/integrations/{int}")).await;
    assert_eq!(got["config"], json!({"webhook_url": "********", "channel": "ops"}));
    app.rule(&["job.*"], None, &[&int]).await;

    sink.script([Reply::status(200).with_body("ok")]);
    let posted = post(
        &app,
        "job.failed",
        "error",
        json!({"title": "Nightly failed", "message": "@channel look", "job": "nightly"}),
    )
    .await;
    app.wait_for_delivery(&posted.delivery, "sent").await;
    let got = &sink.received()[0];
    assert_eq!(got.uri.to_string(), "/hooks/k3y");
    assert_eq!(got.header("content-type"), "application/json");
    assert_eq!(
        got.json(),
        json!({
            "text": "❌ **Error** · job.failed",
            "channel": "ops",
            "attachments": [{
                "fallback": "Nightly failed: @\u{200B}channel look",
                "color": "#C62828",
                "title": "Nightly failed",
                "text": "@\u{200B}channel look",
                "fields": [{"short": true, "title": "job", "value": "nightly"}],
                "footer": posted.at
            }]
        })
    );

    sink.script([Reply::status(400).with_header("content-type", "application/json").with_body(
        r#"{"id":"web.incoming_webhook.invalid.app_error","message":"Invalid webhook.","detailed_error":"","request_id":"kx8h","status_code":400}"#,
    )]);
    let posted = post(&app, "job.failed", "error", json!({})).await;
    let failed = app.wait_for_delivery(&posted.delivery, "failed").await;
    assert_eq!(
        failed["attempts"][0]["error"],
        json!("HTTP 400 Bad Request: Invalid webhook. (web.incoming_webhook.invalid.app_error)")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_chat_gets_a_card_with_one_request_id_across_retries() {
    let (app, _db, _dir) = spawn_sqlite().await;
    let sink = Sink::start().await;
    let path = "/v1/spaces/AAAA/messages?key=k1&token=t%3D1";
    let int = app.integration("google_chat", json!({"webhook_url": format!("{}{path}", sink.base())})).await;
    let (_, got) = app.get(&format!("/v1/integrations/{int}")).await;
    assert_eq!(got["config"], json!({"webhook_url": "********"}));
    app.rule(&["cert.*"], None, &[&int]).await;

    sink.script([
        Reply::status(429).with_header("content-type", "application/json").with_body(
            r#"{"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED"}}"#,
        ),
        Reply::status(200)
            .with_header("content-type", "application/json")
            .with_body(r#"{"name": "spaces/AAAA/messages/B.B", "thread": {"name": "spaces/AAAA/threads/B"}}"#),
    ]);
    let data = json!({"title": "Cert expiring", "message": "in <3> days", "url": "https://certs.example.com/1", "domain": "example.com"});
    let posted = post(&app, "cert.expiring", "warning", data).await;
    let done = app.wait_for_delivery(&posted.delivery, "sent").await;
    let tries = attempts(&done);
    assert_eq!(tries.len(), 2, "{done}");
    assert_eq!(
        tries[0]["error"],
        json!("HTTP 429 Too Many Requests: Resource has been exhausted (e.g. check quota). (RESOURCE_EXHAUSTED)")
    );
    let received = sink.received();
    for got in &received {
        assert_eq!(got.uri.to_string(), format!("{path}&requestId={}", posted.delivery), "same request id on retry");
        assert_eq!(got.header("content-type"), "application/json");
    }
    assert_eq!(
        received[1].json(),
        json!({
            "text": "⚠️ Cert expiring",
            "cardsV2": [{"cardId": "herald", "card": {
                "header": {"title": "Cert expiring", "subtitle": format!("⚠️ Warning · cert.expiring · {}", posted.at)},
                "sections": [{"widgets": [
                    {"textParagraph": {"text": "in &lt;3&gt; days"}},
                    {"decoratedText": {"topLabel": "domain", "text": "example.com", "wrapText": true}},
                    {"buttonList": {"buttons": [{"text": "Open", "onClick": {"openLink": {"url": "https://certs.example.com/1"}}}]}}
                ]}]
            }}]
        })
    );
    // A bad config names its field; every chat channel lists its URL as secret.
    let (status, body) = app
        .post(
            "/v1/integrations",
            json!({"name": "g", "type": "google_chat", "config": {"webhook_url": "chat.googleapis.com/v1/spaces/A"}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], json!("config.webhook_url"), "{body}");
    let (_, channels) = app.get("/v1/channels").await;
    for kind in ["slack", "discord", "teams", "mattermost", "google_chat"] {
        let channel = channels["data"].as_array().unwrap().iter().find(|c| c["type"] == json!(kind)).expect(kind);
        assert_eq!(channel["secret_fields"], json!(["webhook_url"]), "{kind}");
        assert_eq!(channel["config_schema"]["properties"]["webhook_url"]["secret"], json!(true), "{kind}");
    }
}
