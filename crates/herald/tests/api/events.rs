//! Ingest: idempotency, validation (nothing stored on bad input), listing.

use serde_json::{Value, json};

use crate::{
    backend_test,
    helpers::{ADMIN, App, Backend, TempDir, TestDb},
};

async fn event_count(app: &App) -> usize {
    let (_, list) = app.get("/v1/events?limit=500").await;
    list["data"].as_array().unwrap().len()
}

backend_test!(idempotent_replay, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;
    let send = |key: &'static str, body: Value| {
        let app = &app;
        async move {
            let res = app
                .client
                .post(app.url("/v1/events"))
                .bearer_auth(ADMIN)
                .header("idempotency-key", key)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let replayed = res.headers().contains_key("idempotent-replayed");
            (status, res.json::<Value>().await.unwrap(), replayed)
        }
    };
    let (s1, b1, r1) = send("k-1", json!({"type": "a", "data": {"x": 1, "y": 2}})).await;
    assert_eq!((s1, r1), (202, false));
    // Same key and body (keys reordered): the first id, nothing new.
    let (s2, b2, r2) = send("k-1", json!({"data": {"y": 2, "x": 1}, "type": "a"})).await;
    assert_eq!((s2, r2), (202, true));
    assert_eq!(b1["id"], b2["id"]);
    // Same key, different body: 422 naming the key.
    let (s3, b3, _) = send("k-1", json!({"type": "a", "data": {"x": 2}})).await;
    assert_eq!(s3, 422, "{b3}");
    assert_eq!(b3["field"], json!("idempotency_key"));
    // The key may also come in the body.
    let (s4, b4) =
        app.post("/v1/events", json!({"type": "a", "data": {"x": 1, "y": 2}, "idempotency_key": "k-1"})).await;
    assert_eq!(s4, 202);
    assert_eq!(b4["id"], b1["id"]);
    assert_eq!(event_count(&app).await, 1);

    // Twenty concurrent identical requests make exactly one event.
    let futures = (0..20).map(|_| send("k-burst", json!({"type": "burst"})));
    let results = futures::future::join_all(futures).await;
    let ids: std::collections::HashSet<String> = results
        .iter()
        .map(|(s, b, _)| {
            assert_eq!(*s, 202);
            b["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(event_count(&app).await, 2);

    // Keys are per tenant: another tenant may use the same key.
    let (s, _) = app.post("/v1/tenants", json!({"id": "other", "name": "Other"})).await;
    assert_eq!(s, 201);
    let res = app
        .client
        .post(app.url("/v1/events"))
        .bearer_auth(ADMIN)
        .header("herald-tenant", "other")
        .header("idempotency-key", "k-1")
        .json(&json!({"type": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let other: Value = res.json().await.unwrap();
    assert_ne!(other["id"], b1["id"]);
});

backend_test!(bad_input_is_refused_and_nothing_stored, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn_with(backend, &db, &dir, &[("HERALD_MAX_BODY_BYTES", "4096")]).await;
    let cases = [
        (json!({"type": "a", "bogus": 1}), Some("bogus")),
        (json!({"data": {}}), Some("type")),
        (json!({"type": "has space"}), Some("type")),
        (json!({"type": ""}), Some("type")),
        (json!({"type": 42}), Some("type")),
        (json!({"type": "a", "data": [1, 2]}), Some("data")),
        (json!({"type": "a", "severity": "apocalyptic"}), Some("severity")),
        (json!({"type": "a", "deliver_at": "tomorrow"}), Some("deliver_at")),
        (json!({"type": "a", "idempotency_key": ""}), Some("idempotency_key")),
    ];
    for (body, field) in cases {
        let (status, problem) = app.post("/v1/events", body.clone()).await;
        assert_eq!(status, 400, "{body} → {problem}");
        assert_eq!(problem["field"].as_str(), field, "{body} → {problem}");
        assert_eq!(problem["status"], json!(400));
        assert!(problem["title"].is_string() && problem["detail"].is_string() && problem["type"].is_string());
    }
    // Invalid JSON, with the problem+json content type.
    let res = app.client.post(app.url("/v1/events")).bearer_auth(ADMIN).body("{\"type\": ").send().await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    // Over the body bound: 413.
    let big = json!({"type": "a", "data": {"blob": "x".repeat(5000)}});
    let (status, problem) = app.post("/v1/events", big).await;
    assert_eq!(status, 413, "{problem}");
    // A batch with one bad item stores nothing and names the item.
    let (status, problem) =
        app.post("/v1/events/batch", json!({"events": [{"type": "ok"}, {"type": "ok", "nope": true}]})).await;
    assert_eq!(status, 400);
    assert_eq!(problem["field"], json!("events[1].nope"));
    // Without a token: 401.
    let res = app.client.post(app.url("/v1/events")).json(&json!({"type": "a"})).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(event_count(&app).await, 0, "nothing may be stored by refused requests");
});

backend_test!(batch_and_listing, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;
    let events: Vec<Value> =
        (0..7).map(|i| json!({"type": if i % 2 == 0 { "even" } else { "odd" }, "data": {"i": i}})).collect();
    let (status, body) = app.post("/v1/events/batch", json!({"events": events})).await;
    assert_eq!(status, 202, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 7);
    assert!(results.iter().all(|r| r["status"] == json!("accepted")));

    // Cursor pagination walks every event once, newest first.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/events?limit=3&cursor={c}"),
            None => "/v1/events?limit=3".to_owned(),
        };
        let (_, page) = app.get(&path).await;
        for e in page["data"].as_array().unwrap() {
            seen.push(e["data"]["i"].as_i64().unwrap());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, vec![6, 5, 4, 3, 2, 1, 0]);
    let (_, odd) = app.get("/v1/events?type=odd").await;
    assert_eq!(odd["data"].as_array().unwrap().len(), 3);
    let id = results[0]["id"].as_str().unwrap();
    let (status, one) = app.get(&format!("/v1/events/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(one["type"], json!("even"));
    assert!(one["deliveries"].is_array());
    let (status, _) = app.get("/v1/events/evt_00000000000000000000000000000000").await;
    assert_eq!(status, 404);
    let (status, problem) = app.get("/v1/events?limit=0").await;
    assert_eq!((status.as_u16(), problem["field"].as_str()), (400, Some("limit")));
    let (status, problem) = app.get("/v1/events?colour=red").await;
    assert_eq!((status.as_u16(), problem["field"].as_str()), (400, Some("colour")));
});
