//! Changing and removing integrations and rules, scheduled events, history
//! filters, and settings read from herald.toml.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::{
    backend_test,
    helpers::{ADMIN, App, Backend, TempDir, TestDb, wait_for},
    sink::Sink,
};

backend_test!(disabled_and_deleted_integrations, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;
    let sink = Sink::start().await;
    let (int, _) = app.webhook(&sink.url()).await;
    let rule = app.rule(&["*"], None, &[&int]).await;

    // Disabled: the delivery is recorded as skipped, with the reason.
    let (s, patched) =
        app.request(Method::PATCH, &format!("/v1/integrations/{int}"), ADMIN, Some(&json!({"enabled": false}))).await;
    assert_eq!(s, 200, "{patched}");
    assert_eq!(patched["enabled"], json!(false));
    assert_eq!(patched["config"]["secret"], json!("********"), "PATCH keeps the secret");
    let e1 = app.event("a", json!({})).await;
    let d1 = app.routed(&e1).await;
    assert_eq!(d1[0]["status"], json!("skipped"));
    assert_eq!(d1[0]["skip_reason"], json!("integration disabled"));

    // Enabled again, with a changed URL through PATCH.
    let other = Sink::start().await;
    let (s, _) = app
        .request(
            Method::PATCH,
            &format!("/v1/integrations/{int}"),
            ADMIN,
            Some(&json!({"enabled": true, "config": {"url": other.url()}})),
        )
        .await;
    assert_eq!(s, 200);
    let e2 = app.event("a", json!({})).await;
    let d2 = app.routed(&e2).await;
    app.wait_for_delivery(d2[0]["id"].as_str().unwrap(), "sent").await;
    assert_eq!((sink.count(), other.count()), (0, 1));

    // Deleted: gone, and removed from the rule that named it.
    let (s, _) = app.request(Method::DELETE, &format!("/v1/integrations/{int}"), ADMIN, None).await;
    assert_eq!(s, 204);
    let (s, _) = app.get(&format!("/v1/integrations/{int}")).await;
    assert_eq!(s, 404);
    let (_, r) = app.get(&format!("/v1/rules/{rule}")).await;
    assert_eq!(r["integration_ids"], json!([]));
    let e3 = app.event("a", json!({})).await;
    assert!(app.routed(&e3).await.is_empty());
});

backend_test!(rules_are_replaced_patched_and_deleted, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;
    let sink = Sink::start().await;
    let (int, _) = app.webhook(&sink.url()).await;
    let rule = app.rule(&["billing.*"], Some("data.amount > 100"), &[&int]).await;
    let e1 = app.event("billing.paid", json!({"amount": 50})).await;
    assert!(app.routed(&e1).await.is_empty());

    // PATCH: drop the condition with null.
    let (s, r) =
        app.request(Method::PATCH, &format!("/v1/rules/{rule}"), ADMIN, Some(&json!({"condition": null}))).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["condition"], json!(null));
    assert_eq!(r["event_types"], json!(["billing.*"]));
    let e2 = app.event("billing.paid", json!({"amount": 50})).await;
    assert_eq!(app.routed(&e2).await.len(), 1);

    // PUT replaces the whole rule; a bad glob names its index.
    let (s, p) = app
        .request(
            Method::PUT,
            &format!("/v1/rules/{rule}"),
            ADMIN,
            Some(&json!({"name": "r", "event_types": ["ok", "bad glob"]})),
        )
        .await;
    assert_eq!((s.as_u16(), p["field"].as_str()), (400, Some("event_types[1]")));
    let (s, r) = app
        .request(
            Method::PUT,
            &format!("/v1/rules/{rule}"),
            ADMIN,
            Some(&json!({"name": "r2", "event_types": ["auth.*"], "enabled": false, "integration_ids": [int]})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!((r["name"].as_str(), r["enabled"].as_bool()), (Some("r2"), Some(false)));
    let e3 = app.event("auth.failed", json!({})).await;
    assert!(app.routed(&e3).await.is_empty(), "a disabled rule routes nothing");

    let (_, list) = app.get("/v1/rules").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let (s, _) = app.request(Method::DELETE, &format!("/v1/rules/{rule}"), ADMIN, None).await;
    assert_eq!(s, 204);
    let (s, _) = app.request(Method::DELETE, &format!("/v1/rules/{rule}"), ADMIN, None).await;
    assert_eq!(s, 404);
});

backend_test!(scheduled_events_wait_for_deliver_at, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;
    let sink = Sink::start().await;
    let (int, _) = app.webhook(&sink.url()).await;
    app.rule(&["*"], None, &[&int]).await;
    let at = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let (s, b) = app.post("/v1/events", json!({"type": "later", "deliver_at": at.to_rfc3339()})).await;
    assert_eq!(s, 202, "{b}");
    let d = app.routed(b["id"].as_str().unwrap()).await;
    assert_eq!(d[0]["status"], json!("pending"));
    let next = chrono::DateTime::parse_from_rfc3339(d[0]["next_attempt_at"].as_str().unwrap()).unwrap();
    assert!((next.timestamp_millis() - at.timestamp_millis()).abs() < 5, "due at deliver_at: {next} vs {at}");
    assert_eq!(sink.count(), 0, "not sent before deliver_at");
    let sent = app.wait_for_delivery(d[0]["id"].as_str().unwrap(), "sent").await;
    let sent_at = chrono::DateTime::parse_from_rfc3339(sent["sent_at"].as_str().unwrap()).unwrap();
    assert!(sent_at >= at, "sent at {sent_at}, scheduled for {at}");
});

backend_test!(history_filters, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;
    let (a, b) = (Sink::start().await, Sink::start().await);
    let (ia, _) = app.webhook(&a.url()).await;
    let (ib, _) = app.webhook(&b.url()).await;
    app.rule(&["x.*"], None, &[&ia]).await;
    app.rule(&["y.*"], None, &[&ia, &ib]).await;
    let before = chrono::Utc::now();
    let ex = app.event("x.1", json!({})).await;
    let ey = app.event("y.1", json!({})).await;
    app.routed(&ex).await;
    app.routed(&ey).await;
    wait_for("sends", Duration::from_secs(10), || async { (a.count() + b.count() == 3).then_some(()) }).await;
    let count = |q: String| {
        let app = &app;
        async move {
            let (s, list) = app.get(&format!("/v1/deliveries?{q}")).await;
            assert_eq!(s, 200, "{q}: {list}");
            list["data"].as_array().unwrap().len()
        }
    };
    assert_eq!(count(format!("integration_id={ia}")).await, 2);
    assert_eq!(count(format!("integration_id={ib}")).await, 1);
    assert_eq!(count("event_type=y.1".into()).await, 2);
    assert_eq!(count("channel=webhook".into()).await, 3);
    assert_eq!(count("channel=email".into()).await, 0);
    let since = before.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    assert_eq!(count(format!("since={since}")).await, 3);
    assert_eq!(count(format!("until={since}")).await, 0);
    assert_eq!(count("limit=2".into()).await, 2);
    let (s, p) = app.get("/v1/deliveries?status=lost").await;
    assert_eq!((s.as_u16(), p["field"].as_str()), (400, Some("status")));
    let (s, p) = app.get("/v1/deliveries?since=yesterday").await;
    assert_eq!((s.as_u16(), p["field"].as_str()), (400, Some("since")));
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_come_from_herald_toml_and_variables_win() {
    let (db, dir) = (TestDb::new(Backend::Sqlite).await, TempDir::new());
    // The harness runs Herald in the data dir, where it looks for herald.toml.
    std::fs::write(dir.0.join("herald.toml"), "max_body_bytes = 64\nretry_schedule = \"1s\"\n").unwrap();
    let app = App::spawn(Backend::Sqlite, &db, &dir).await;
    let (s, _) = app.post("/v1/events", json!({"type": "a", "data": {"text": "x".repeat(100)}})).await;
    assert_eq!(s, 413, "max_body_bytes from the file applies");
    drop(app);
    let app = App::spawn_with(Backend::Sqlite, &db, &dir, &[("HERALD_MAX_BODY_BYTES", "4096")]).await;
    let (s, _) = app.post("/v1/events", json!({"type": "a", "data": {"text": "x".repeat(100)}})).await;
    assert_eq!(s, 202, "the variable wins over the file");
}
