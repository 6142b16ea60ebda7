//! Every HTTP channel end to end through the worker, with its provider's own
//! answers: a retryable one (then success: two attempts, the first `retry`)
//! and a permanent one (`failed` at once, the provider's error text in the
//! attempt). The exact wire formats are checked in each channel's own tests;
//! this table makes sure no channel misreads its provider's refusals.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    helpers::{App, Backend, TempDir, TestDb, wait_for},
    sink::{Reply, Sink},
};

/// One channel: its config (given the sink's base URL), the provider's
/// success answer, a retryable answer, and a permanent answer with the text
/// the attempt's error must contain.
struct Case {
    kind: &'static str,
    config: fn(&str) -> Value,
    ok: Reply,
    retry: Reply,
    refusal: Reply,
    says: &'static str,
    /// Requests made before the one that sends (Jira searches first).
    before: Option<Reply>,
}

fn json_reply(status: u16, body: Value) -> Reply {
    Reply::status(status).with_header("content-type", "application/json").with_body(&body.to_string())
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            kind: "slack",
            config: |base| json!({"webhook_url": format!("{base}/services/T0/B0/x")}),
            ok: Reply::status(200).with_body("ok"),
            retry: Reply::status(429).with_header("retry-after", "1").with_body("rate_limited"),
            refusal: Reply::status(404).with_body("no_service"),
            says: "no_service",
            before: None,
        },
        Case {
            kind: "discord",
            config: |base| json!({"webhook_url": format!("{base}/api/webhooks/1/tok")}),
            ok: json_reply(200, json!({"id": "1", "channel_id": "2"})),
            retry: json_reply(
                429,
                json!({"message": "You are being rate limited.", "retry_after": 0.5, "global": false}),
            ),
            refusal: json_reply(404, json!({"message": "Unknown Webhook", "code": 10015})),
            says: "Unknown Webhook",
            before: None,
        },
        Case {
            kind: "teams",
            config: |base| json!({"webhook_url": format!("{base}/workflows/abc/triggers/manual/paths/invoke")}),
            ok: Reply::status(202),
            retry: Reply::status(503),
            refusal: json_reply(
                400,
                json!({"error": {"code": "InvalidRequestContent", "message": "The request content is not valid JSON."}}),
            ),
            says: "The request content is not valid JSON.",
            before: None,
        },
        Case {
            kind: "mattermost",
            config: |base| json!({"webhook_url": format!("{base}/hooks/key")}),
            ok: Reply::status(200).with_body("ok"),
            retry: Reply::status(503),
            refusal: json_reply(
                400,
                json!({"id": "web.incoming_webhook.invalid.app_error", "message": "Invalid webhook.", "status_code": 400}),
            ),
            says: "Invalid webhook.",
            before: None,
        },
        Case {
            kind: "google_chat",
            config: |base| json!({"webhook_url": format!("{base}/v1/spaces/AAA/messages?key=k&token=t")}),
            ok: json_reply(200, json!({"name": "spaces/AAA/messages/1"})),
            retry: json_reply(
                429,
                json!({"error": {"code": 429, "message": "Resource has been exhausted.", "status": "RESOURCE_EXHAUSTED"}}),
            ),
            refusal: json_reply(
                400,
                json!({"error": {"code": 400, "message": "Invalid JSON payload received.", "status": "INVALID_ARGUMENT"}}),
            ),
            says: "Invalid JSON payload received.",
            before: None,
        },
        Case {
            kind: "telegram",
            config: |base| json!({"bot_token": "123456:AAHsecret", "chat_id": -100123, "api_url": base}),
            ok: json_reply(200, json!({"ok": true, "result": {"message_id": 7}})),
            retry: json_reply(
                429,
                json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 1", "parameters": {"retry_after": 1}}),
            ),
            refusal: json_reply(
                400,
                json!({"ok": false, "error_code": 400, "description": "Bad Request: chat not found"}),
            ),
            says: "Bad Request: chat not found",
            before: None,
        },
        Case {
            kind: "matrix",
            config: |base| json!({"homeserver_url": base, "access_token": "syt_secret", "room_id": "!room:example.org"}),
            ok: json_reply(200, json!({"event_id": "$abc"})),
            retry: json_reply(
                429,
                json!({"errcode": "M_LIMIT_EXCEEDED", "error": "Too many requests", "retry_after_ms": 500}),
            ),
            refusal: json_reply(
                403,
                json!({"errcode": "M_FORBIDDEN", "error": "User @herald:example.org not in room !room:example.org"}),
            ),
            says: "not in room",
            before: None,
        },
        Case {
            kind: "ntfy",
            config: |base| json!({"server_url": base, "topic": "ops"}),
            ok: json_reply(200, json!({"id": "sPs9Yh2bRjK7", "time": 1700000000, "event": "message", "topic": "ops"})),
            retry: json_reply(429, json!({"code": 42901, "http": 429, "error": "limit reached: too many requests"})),
            refusal: json_reply(403, json!({"code": 40301, "http": 403, "error": "forbidden"})),
            says: "forbidden",
            before: None,
        },
        Case {
            kind: "gotify",
            config: |base| json!({"server_url": base, "app_token": "AzyoeNS.D4iJLVa"}),
            ok: json_reply(200, json!({"id": 1, "appid": 1, "message": "m", "title": "t", "priority": 4})),
            retry: Reply::status(503),
            refusal: json_reply(
                401,
                json!({"error": "Unauthorized", "errorCode": 401, "errorDescription": "you need to provide a valid access token or user credentials to access this api"}),
            ),
            says: "you need to provide a valid access token",
            before: None,
        },
        Case {
            kind: "pushover",
            config: |base| json!({"user_key": "uQiRzpo4DXghDmr9QzzfQu27cmVRsG", "app_token": "azGDORePK8gMaC0QOYAMyEEuzJnyUi", "api_url": base}),
            ok: json_reply(200, json!({"status": 1, "request": "647d2300-702c-4b38-8b2f-d56326ae460b"})),
            retry: Reply::status(500),
            refusal: json_reply(
                400,
                json!({"user": "invalid", "errors": ["user identifier is not a valid user, group, or subscribed user key"], "status": 0, "request": "5042853c"}),
            ),
            says: "user identifier is not a valid user",
            before: None,
        },
        Case {
            kind: "jira",
            config: |base| json!({"base_url": base, "email": "ops@example.com", "api_token": "secret", "project_key": "OPS", "issue_type": "Task"}),
            ok: json_reply(201, json!({"id": "10000", "key": "OPS-1", "self": "http://jira/rest/api/3/issue/10000"})),
            retry: Reply::status(429).with_header("retry-after", "1"),
            refusal: json_reply(
                400,
                json!({"errorMessages": [], "errors": {"issuetype": "valid issue type is required"}}),
            ),
            says: "issuetype: valid issue type is required",
            before: Some(json_reply(200, json!({"issues": []}))),
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_channel_retries_what_its_provider_calls_temporary_and_fails_what_it_refuses() {
    let (db, dir) = (TestDb::new(Backend::Sqlite).await, TempDir::new());
    let app = App::spawn(Backend::Sqlite, &db, &dir).await;
    let mut running = Vec::new();
    for case in cases() {
        let sink = Sink::start().await;
        let int = app.integration(case.kind, (case.config)(&sink.base())).await;
        let event_type = format!("{}.happened", case.kind);
        app.rule(&[&event_type], None, &[&int]).await;
        // First event: the retryable answer, then success.
        let mut script = Vec::new();
        script.extend(case.before.clone());
        script.push(case.retry.clone());
        script.extend(case.before.clone());
        script.push(case.ok.clone());
        sink.script(script);
        let retried = app.event_with_delivery(&event_type, json!({"title": "first"})).await;
        running.push((case, sink, retried, event_type));
    }
    for (case, sink, retried, event_type) in &running {
        let done = app.wait_for_delivery(retried, "sent").await;
        let attempts = done["attempts"].as_array().unwrap();
        let outcomes: Vec<&str> = attempts.iter().map(|a| a["outcome"].as_str().unwrap()).collect();
        assert_eq!(outcomes, ["retry", "sent"], "{}: {done}", case.kind);
        // Second event: the permanent refusal, once.
        let requests_before = sink.count();
        sink.script(case.before.clone().into_iter().chain([case.refusal.clone()]));
        let refused = app.event_with_delivery(event_type, json!({"title": "second"})).await;
        let failed = app.wait_for_delivery(&refused, "failed").await;
        let attempts = failed["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1, "{}: a refusal is not retried: {failed}", case.kind);
        let error = attempts[0]["error"].as_str().unwrap_or_default();
        assert!(error.contains(case.says), "{}: the provider's text is kept: {error}", case.kind);
        // Nothing more was sent for it later.
        let sent = sink.count() - requests_before;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(sink.count() - requests_before, sent, "{}", case.kind);
    }
    // Every sink saw exactly what was scripted: nothing sent twice.
    for (case, sink, _, _) in &running {
        let per_send = 1 + usize::from(case.before.is_some());
        wait_for(&format!("{} requests", case.kind), Duration::from_secs(5), || async {
            (sink.count() == 3 * per_send).then_some(())
        })
        .await;
    }
}
