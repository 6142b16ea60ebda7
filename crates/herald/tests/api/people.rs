//! Routing to people: who an event reaches (its own recipients, rule
//! audiences, subscribers through preferences), each once; on which
//! channels (types, preferences, required types); through which
//! integration and to which address; and why a delivery was skipped.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    backend_test,
    helpers::{ADMIN, App, Backend, TempDir, TestDb},
    smtp::{Options, SmtpServer},
};

async fn put(app: &App, path: &str, body: Value) -> Value {
    let (status, out) = app.request(Method::PUT, path, ADMIN, Some(&body)).await;
    assert!(status.is_success(), "PUT {path}: {status} {out}");
    out
}

async fn person(app: &App, id: &str, body: Value) {
    put(app, &format!("/v1/recipients/{id}"), body).await;
}

async fn post_event(app: &App, body: Value) -> String {
    let (status, out) = app.post("/v1/events", body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{out}");
    out["id"].as_str().unwrap().to_owned()
}

/// recipient → channel → (status, skip reason, address) of an event's
/// deliveries to people.
async fn by_person(
    app: &App,
    event: &str,
) -> BTreeMap<String, BTreeMap<String, (String, Option<String>, Option<String>)>> {
    let mut out: BTreeMap<String, BTreeMap<String, _>> = BTreeMap::new();
    for d in app.routed(event).await {
        let Some(who) = d["recipient"].as_str() else { continue };
        let entry = (
            d["status"].as_str().unwrap().to_owned(),
            d["skip_reason"].as_str().map(str::to_owned),
            d["address"].as_str().map(str::to_owned),
        );
        let previous = out.entry(who.to_owned()).or_default().insert(d["channel"].as_str().unwrap().to_owned(), entry);
        assert!(previous.is_none(), "two deliveries to {who} on one channel: {d}");
    }
    out
}

fn channels(map: &BTreeMap<String, (String, Option<String>, Option<String>)>) -> Vec<&str> {
    map.keys().map(String::as_str).collect()
}

backend_test!(an_event_reaches_its_recipients_audiences_and_subscribers_once, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;
    person(&app, "ada", json!({"name": "Ada", "attributes": {"role": "admin"}})).await;
    person(&app, "cy", json!({"name": "Cy", "attributes": {"role": ["ops", "admin"]}})).await;
    person(&app, "bob", json!({"name": "Bob", "attributes": {"role": "viewer"}})).await;
    person(&app, "dan", json!({"name": "Dan", "attributes": {"role": "viewer"}})).await;
    put(&app, "/v1/recipients/dan/preferences", json!({"types": {"job_failed": {"enabled": true}}})).await;
    let (status, rule) = app
        .post(
            "/v1/rules",
            json!({"name": "admins hear of failures", "event_types": ["job_*"], "condition": "severity == 'error'",
                   "audience": {"attributes": {"role": "admin"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    assert_eq!(rule["audience"], json!({"attributes": {"role": "admin"}}));

    // Ada is named twice and is an admin: she still gets one message.
    let event = post_event(
        &app,
        json!({"type": "job_failed", "severity": "error", "recipients": ["ada", "bob", "ada"], "data": {"title": "Backup failed"}}),
    )
    .await;
    let got = by_person(&app, &event).await;
    assert_eq!(got.keys().collect::<Vec<_>>(), vec!["ada", "bob", "cy", "dan"], "{got:?}");
    for (who, chans) in &got {
        assert_eq!(channels(chans), vec!["in_app"], "{who}");
        assert_eq!(chans["in_app"].0, "sent", "{who}: the inbox item is written with the event");
    }
    let (_, e) = app.get(&format!("/v1/events/{event}")).await;
    assert_eq!(e["recipients"], json!(["ada", "bob"]));
    let audience_delivery =
        app.routed(&event).await.into_iter().find(|d| d["recipient"] == json!("cy")).expect("cy's delivery");
    assert_eq!(audience_delivery["rule_id"], rule["id"], "the rule that brought Cy is on record");

    // Not an error: the audience rule does not match; Dan's subscription does.
    let event = post_event(&app, json!({"type": "job_failed", "severity": "info", "data": {}})).await;
    assert_eq!(by_person(&app, &event).await.keys().collect::<Vec<_>>(), vec!["dan"]);
    // Nobody named, no audience, no subscription: no deliveries at all.
    let event = post_event(&app, json!({"type": "job_done", "data": {}})).await;
    assert!(app.routed(&event).await.is_empty());
});

#[tokio::test]
async fn preferences_decide_the_channels_and_say_why_not() {
    let (db, dir) = (TestDb::new(Backend::Sqlite).await, TempDir::new());
    let app = App::spawn(Backend::Sqlite, &db, &dir).await;
    let server = SmtpServer::start(Options::default()).await;
    let email = json!({"host": "127.0.0.1", "port": server.port(), "tls": "none", "from_email": "herald@example.com"});
    app.integration("email", email).await;
    put(
        &app,
        "/v1/notification-types/task_due",
        json!({"label": "Task due soon", "channels": ["in_app", "email"], "default_enabled": true}),
    )
    .await;
    put(
        &app,
        "/v1/notification-types/security_alert",
        json!({"label": "Security alert", "channels": ["email"], "required": true}),
    )
    .await;
    person(&app, "ada", json!({"email": "ada@example.com"})).await;
    person(&app, "bob", json!({"email": "bob@example.com"})).await;
    person(&app, "cy", json!({})).await;
    person(&app, "dee", json!({"email": "dee@example.com"})).await;
    put(&app, "/v1/recipients/bob/preferences", json!({"channels": {"email": false}})).await;
    put(
        &app,
        "/v1/recipients/dee/preferences",
        json!({"types": {"task_due": {"channels": ["email"], "condition": "data.project in ['apollo']", "email": "dee+tasks@example.com"}}}),
    )
    .await;

    let recipients = json!(["ada", "bob", "cy", "dee"]);
    let event =
        post_event(&app, json!({"type": "task_due", "recipients": recipients, "data": {"project": "apollo"}})).await;
    let got = by_person(&app, &event).await;
    assert_eq!(got["ada"]["in_app"].0, "sent");
    assert_eq!(got["ada"]["email"].0, "pending");
    assert_eq!(got["ada"]["email"].2.as_deref(), Some("ada@example.com"));
    assert_eq!(got["bob"]["email"].0, "skipped");
    assert_eq!(got["bob"]["email"].1.as_deref(), Some("preference: the email channel is switched off"));
    assert_eq!(got["bob"]["in_app"].0, "sent");
    assert_eq!(got["cy"]["email"], ("skipped".into(), Some("no address".into()), None));
    assert_eq!(channels(&got["dee"]), vec!["email"], "per-type channels replace the type's");
    assert_eq!(got["dee"]["email"].2.as_deref(), Some("dee+tasks@example.com"), "address override");

    let other = post_event(&app, json!({"type": "task_due", "recipients": ["dee"], "data": {"project": "zeus"}})).await;
    let got = by_person(&app, &other).await;
    assert_eq!(got["dee"]["email"].1.as_deref(), Some("preference: the condition does not hold"));

    // A required type ignores Bob's switch.
    let alert =
        post_event(&app, json!({"type": "security_alert", "recipients": ["bob"], "data": {"title": "New login"}}))
            .await;
    let got = by_person(&app, &alert).await;
    assert_eq!(got["bob"]["email"].0, "pending");

    // Mail reaches the person's own address over a real SMTP session.
    crate::helpers::wait_for("three mails", std::time::Duration::from_secs(20), || async {
        (server.delivered().len() >= 3).then_some(())
    })
    .await;
    let mut rcpts: Vec<String> = server.delivered().iter().flat_map(|t| t.rcpt_to.clone()).collect();
    rcpts.sort();
    assert_eq!(rcpts, vec!["ada@example.com", "bob@example.com", "dee+tasks@example.com"]);
}

#[tokio::test]
async fn people_channels_need_an_integration_and_an_address() {
    let (db, dir) = (TestDb::new(Backend::Sqlite).await, TempDir::new());
    let app = App::spawn(Backend::Sqlite, &db, &dir).await;
    put(
        &app,
        "/v1/notification-types/deploy",
        json!({"label": "Deploy", "channels": ["in_app", "email", "telegram", "ntfy", "gotify"]}),
    )
    .await;
    let ntfy = json!({"server_url": "http://127.0.0.1:9", "topic": "ops"});
    app.integration("ntfy", ntfy.clone()).await;
    app.integration("ntfy", ntfy).await;
    let tg = json!({"bot_token": "123:abc", "chat_id": "1"});
    app.integration("telegram", tg).await;
    app.integration("gotify", json!({"server_url": "http://127.0.0.1:9", "app_token": "AbCdEf123456789"})).await;
    person(&app, "ada", json!({"addresses": {"telegram": "4242"}})).await;

    let event = post_event(&app, json!({"type": "deploy", "recipients": ["ada", "ghost"], "data": {}})).await;
    let got = by_person(&app, &event).await;
    let ada = &got["ada"];
    assert_eq!(ada["email"].1.as_deref(), Some("no email integration"));
    assert_eq!(ada["ntfy"].1.as_deref(), Some("several ntfy integrations and none is marked default"));
    assert_eq!(ada["telegram"].0, "pending");
    assert_eq!(ada["telegram"].2.as_deref(), Some("4242"));
    assert_eq!(
        ada["gotify"].1.as_deref(),
        Some("a gotify integration sends to its configured destination, not to a person"),
        "posting one app's feed once per person would repeat it"
    );
    // Someone the app never registered still has an inbox.
    assert_eq!(got["ghost"]["in_app"].0, "sent");
    assert_eq!(got["ghost"]["telegram"].1.as_deref(), Some("no address"));
}

#[tokio::test]
async fn a_scheduled_inbox_item_is_written_when_due() {
    let (db, dir) = (TestDb::new(Backend::Sqlite).await, TempDir::new());
    let app = App::spawn(Backend::Sqlite, &db, &dir).await;
    let at = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let event = post_event(
        &app,
        json!({"type": "reminder", "recipients": ["ada"], "deliver_at": at, "data": {"title": "Stand-up"}}),
    )
    .await;
    let deliveries = app.routed(&event).await;
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0]["status"], json!("pending"));
    let done = app.wait_for_delivery(deliveries[0]["id"].as_str().unwrap(), "sent").await;
    assert!(done["attempts"][0]["response"].as_str().unwrap_or_default().starts_with("inbox item ntf_"), "{done}");
}
