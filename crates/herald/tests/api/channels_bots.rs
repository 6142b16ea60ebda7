//! Telegram, Matrix, ntfy, Gotify and Pushover end to end: an event, a rule,
//! and the exact request a local stand-in for the provider received; the
//! provider's rate limits retried and its refusals recorded in its own words.

use herald_channels::{Severity, Theme};
use serde_json::{Value, json};

use crate::{
    backend_test,
    helpers::{App, Backend, TempDir, TestDb},
    sink::{Reply, Sink},
};

/// Posts an event with a severity that makes exactly one delivery; returns its id.
async fn deliver(app: &App, event_type: &str, severity: &str, data: Value) -> String {
    let (status, body) = app.post("/v1/events", json!({"type": event_type, "severity": severity, "data": data})).await;
    assert_eq!(status, 202, "{body}");
    let deliveries = app.routed(body["id"].as_str().unwrap()).await;
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    deliveries[0]["id"].as_str().unwrap().to_owned()
}

/// The masked config of an integration, as `GET` shows it.
async fn shown_config(app: &App, id: &str) -> Value {
    let (status, body) = app.get(&format!("/v1/integrations/{id}")).await;
    assert_eq!(status, 200, "{body}");
    body["config"].clone()
}

fn json_reply(status: u16, body: &str) -> Reply {
    Reply::status(status).with_header("content-type", "application/json").with_body(body)
}

const TG_TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
const TG_SENT: &str = r#"{"ok":true,"result":{"message_id":42,"chat":{"id":-1001234567890,"type":"supergroup"},"date":1767322800,"text":"x"}}"#;

backend_test!(telegram_delivers_retries_a_flood_wait_and_reports_refusals, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let mut app = App::spawn(backend, &db, &dir).await;
    let sink = Sink::start().await;
    let config = json!({"bot_token": TG_TOKEN, "chat_id": "-1001234567890", "api_url": sink.base(), "silent": true});
    let int = app.integration("telegram", config).await;
    let shown = shown_config(&app, &int).await;
    assert_eq!(shown["bot_token"], json!("********"));
    assert_eq!(shown["chat_id"], json!(-1001234567890_i64), "a numeric chat id is stored as a number");
    app.rule(&["deploy.*"], None, &[&int]).await;

    // A flood wait: 429 with parameters.retry_after and no Retry-After header, then the message goes.
    let flood = r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 1","parameters":{"retry_after":1}}"#;
    sink.script([json_reply(429, flood), json_reply(200, TG_SENT)]);
    let data = json!({"title": "Deploy <api> finished", "message": "Version 1.2 & counting", "url": "https://ci.example.com/d/7", "env": "prod"});
    let id = deliver(&app, "deploy.finished", "success", data).await;
    let sent = app.wait_for_delivery(&id, "sent").await;
    let attempts = sent["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{sent}");
    assert_eq!(attempts[0]["outcome"], json!("retry"));
    assert_eq!(attempts[0]["status_code"], json!(429));
    assert_eq!(attempts[0]["error"], json!("HTTP 429 Too Many Requests: Too Many Requests: retry after 1"));
    assert_eq!(attempts[1]["outcome"], json!("sent"));
    assert!(attempts[1]["response"].as_str().unwrap().contains(r#""message_id":42"#), "{sent}");

    let got = sink.received();
    assert_eq!(got.len(), 2);
    let expected = json!({
        "chat_id": -1001234567890_i64,
        "text": "<b>✅ Deploy &lt;api&gt; finished</b>\n\nVersion 1.2 &amp; counting\n\n<b>env:</b> prod\n\n\
                 <a href=\"https://ci.example.com/d/7\">Open</a>",
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": true},
        "disable_notification": true
    });
    for request in &got {
        assert_eq!(request.method, "POST");
        assert_eq!(request.uri.to_string(), format!("/bot{TG_TOKEN}/sendMessage"));
        assert_eq!(request.header("content-type"), "application/json");
        assert_eq!(request.json(), expected);
    }

    // A permanent refusal: failed at once, with the Bot API's description.
    sink.script([json_reply(400, r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#)]);
    let id = deliver(&app, "deploy.failed", "error", json!({})).await;
    let failed = app.wait_for_delivery(&id, "failed").await;
    assert_eq!(failed["attempts"].as_array().unwrap().len(), 1, "{failed}");
    assert_eq!(failed["attempts"][0]["error"], json!("HTTP 400 Bad Request: Bad Request: chat not found"));

    // A test send to another chat goes to that chat.
    sink.script([json_reply(200, TG_SENT)]);
    let (status, test) = app.post(&format!("/v1/integrations/{int}/test"), json!({"recipient": "-100999"})).await;
    assert_eq!(status, 200, "{test}");
    assert_eq!(test["success"], json!(true), "{test}");
    let request = sink.received().pop().unwrap();
    assert_eq!(request.json()["chat_id"], json!(-100999));
    assert!(request.json()["text"].as_str().unwrap().contains("This is a test message from Herald."));
    let (status, problem) = app.post(&format!("/v1/integrations/{int}/test"), json!({"recipient": "not a chat"})).await;
    assert_eq!((status.as_u16(), problem["field"].as_str()), (400, Some("recipient")), "{problem}");
    assert_eq!(sink.count(), 4, "a refused recipient sends nothing");

    app.kill();
    let log = app.log.lock().unwrap().clone();
    assert!(!log.contains(&TG_TOKEN[10..]), "the bot token was logged:\n{log}");
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_retries_a_rate_limit_with_the_same_transaction_id() {
    let (db, dir) = (TestDb::new(Backend::Sqlite).await, TempDir::new());
    let app = App::spawn(Backend::Sqlite, &db, &dir).await;
    let sink = Sink::start().await;
    let token = "syt_aGVyYWxk_kXyBzYqAhZpWuNdPjJwE_0abcde";
    let config = json!({"homeserver_url": sink.base(), "access_token": token, "room_id": "!ops:example.org"});
    let int = app.integration("matrix", config).await;
    assert_eq!(shown_config(&app, &int).await["access_token"], json!("********"));
    app.rule(&["*"], None, &[&int]).await;

    let limited = r#"{"errcode":"M_LIMIT_EXCEEDED","error":"Too many requests","retry_after_ms":1000}"#;
    sink.script([json_reply(429, limited), json_reply(200, r#"{"event_id":"$YUwRidLecu:example.org"}"#)]);
    let id = deliver(&app, "backup.failed", "error", json!({"title": "Backup failed", "host": "db1"})).await;
    let sent = app.wait_for_delivery(&id, "sent").await;
    let attempts = sent["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{sent}");
    assert_eq!(attempts[0]["outcome"], json!("retry"));
    assert_eq!(attempts[0]["error"], json!("HTTP 429 Too Many Requests: M_LIMIT_EXCEEDED: Too many requests"));
    assert_eq!(attempts[1]["response"], json!(r#"{"event_id":"$YUwRidLecu:example.org"}"#));

    let got = sink.received();
    assert_eq!(got.len(), 2);
    for request in &got {
        assert_eq!(request.method, "PUT");
        // The transaction id is the delivery id, on the retry too: the homeserver deduplicates.
        assert_eq!(
            request.uri.to_string(),
            format!("/_matrix/client/v3/rooms/%21ops%3Aexample.org/send/m.room.message/{id}")
        );
        assert_eq!(request.header("authorization"), format!("Bearer {token}"));
        assert_eq!(
            request.json(),
            json!({
                "msgtype": "m.text",
                "body": "❌ Backup failed\n\nhost: db1",
                "format": "org.matrix.custom.html",
                "formatted_body": "<p><strong>❌ Backup failed</strong></p><ul><li><strong>host:</strong> db1</li></ul>",
                "m.mentions": {}
            })
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ntfy_publishes_json_with_a_token() {
    let (db, dir) = (TestDb::new(Backend::Sqlite).await, TempDir::new());
    let app = App::spawn(Backend::Sqlite, &db, &dir).await;
    let sink = Sink::start().await;
    let config = json!({"server_url": sink.base(), "topic": "ops-alerts", "token": "tk_AgQdq7mVBoFD37zQVN29RhuMzNIz2", "tags": ["prod"]});
    let int = app.integration("ntfy", config).await;
    assert_eq!(shown_config(&app, &int).await["token"], json!("********"));
    app.rule(&["*"], None, &[&int]).await;

    let published = r#"{"id":"sPs71M8A2T","time":1767322800,"event":"message","topic":"ops-alerts","message":"x"}"#;
    sink.script([json_reply(200, published)]);
    let data = json!({"title": "Disk full", "message": "/ at 97%", "url": "https://grafana.example.com/d/disk"});
    let id = deliver(&app, "disk.full", "critical", data).await;
    let sent = app.wait_for_delivery(&id, "sent").await;
    assert_eq!(sent["attempts"][0]["response"], json!(published));
    let request = &sink.received()[0];
    assert_eq!((request.method.as_str(), request.uri.to_string().as_str()), ("POST", "/"));
    assert_eq!(request.header("authorization"), "Bearer tk_AgQdq7mVBoFD37zQVN29RhuMzNIz2");
    assert_eq!(
        request.json(),
        json!({
            "topic": "ops-alerts", "title": "Disk full", "message": "/ at 97%", "priority": 5,
            "tags": ["prod", "rotating_light"], "click": "https://grafana.example.com/d/disk"
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gotify_posts_with_the_key_header_and_reports_a_bad_token() {
    let (db, dir) = (TestDb::new(Backend::Sqlite).await, TempDir::new());
    let app = App::spawn(Backend::Sqlite, &db, &dir).await;
    let sink = Sink::start().await;
    let int = app.integration("gotify", json!({"server_url": sink.base(), "app_token": "AzyoeNS.D4iJLVa"})).await;
    assert_eq!(shown_config(&app, &int).await["app_token"], json!("********"));
    app.rule(&["*"], None, &[&int]).await;

    sink.script([json_reply(200, r#"{"id":25,"appid":5,"message":"x","title":"x","priority":4}"#)]);
    let data =
        json!({"title": "Login from a new device", "message": "user *ann*", "url": "https://app.example.com/s/1"});
    let id = deliver(&app, "auth.login", "info", data).await;
    app.wait_for_delivery(&id, "sent").await;
    let request = &sink.received()[0];
    assert_eq!((request.method.as_str(), request.uri.to_string().as_str()), ("POST", "/message"));
    assert_eq!(request.header("x-gotify-key"), "AzyoeNS.D4iJLVa");
    assert_eq!(
        request.json(),
        json!({
            "title": format!("{} Login from a new device", Theme::of(Severity::Info).emoji),
            "message": "user \\*ann\\*\n\n[Open](<https://app.example.com/s/1>)",
            "priority": 4,
            "extras": {
                "client::display": {"contentType": "text/markdown"},
                "client::notification": {"click": {"url": "https://app.example.com/s/1"}}
            }
        })
    );

    let unauthorized = r#"{"error":"Unauthorized","errorCode":401,"errorDescription":"you need to provide a valid access token or user credentials to access this api"}"#;
    sink.script([json_reply(401, unauthorized)]);
    let id = deliver(&app, "auth.login", "info", json!({})).await;
    let failed = app.wait_for_delivery(&id, "failed").await;
    assert_eq!(failed["attempts"].as_array().unwrap().len(), 1, "{failed}");
    assert_eq!(
        failed["attempts"][0]["error"],
        json!("HTTP 401 Unauthorized: you need to provide a valid access token or user credentials to access this api")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushover_posts_the_form() {
    let (db, dir) = (TestDb::new(Backend::Sqlite).await, TempDir::new());
    let app = App::spawn(Backend::Sqlite, &db, &dir).await;
    let sink = Sink::start().await;
    let (user, token) = ("uQiRzpo4DXghDmr9QzzfQu27cmVRsG", "azGDORePK8gMaC0QOYAMyEEuzJnyUi");
    let config = json!({"user_key": user, "app_token": token, "sound": "siren", "api_url": sink.base()});
    let int = app.integration("pushover", config).await;
    let shown = shown_config(&app, &int).await;
    assert_eq!((shown["user_key"].clone(), shown["app_token"].clone()), (json!("********"), json!("********")));
    app.rule(&["*"], None, &[&int]).await;

    sink.script([json_reply(200, r#"{"status":1,"request":"647d2300-702c-4b38-8b2f-d56326ae460b"}"#)]);
    let before = chrono::Utc::now().timestamp();
    let data = json!({"title": "Job failed", "message": "exit 2 <stderr>", "url": "https://ci.example.com/j/9"});
    let id = deliver(&app, "job.failed", "error", data).await;
    app.wait_for_delivery(&id, "sent").await;
    let request = &sink.received()[0];
    assert_eq!((request.method.as_str(), request.uri.to_string().as_str()), ("POST", "/1/messages.json"));
    assert_eq!(request.header("content-type"), "application/x-www-form-urlencoded");
    let mut form = request.form();
    let (name, timestamp) = form.pop().unwrap();
    assert_eq!(name, "timestamp");
    let timestamp: i64 = timestamp.parse().unwrap();
    assert!((before - 1..=chrono::Utc::now().timestamp()).contains(&timestamp), "the event's time");
    let expected: Vec<(String, String)> = [
        ("token", token),
        ("user", user),
        ("message", "exit 2 &lt;stderr&gt;"),
        ("title", "❌ Job failed"),
        ("html", "1"),
        ("priority", "1"),
        ("sound", "siren"),
        ("url", "https://ci.example.com/j/9"),
        ("url_title", "Open"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(form, expected);
}
