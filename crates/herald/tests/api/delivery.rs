//! Routing and delivery: signatures, globs and conditions, retries, manual retry.

use std::time::Duration;

use serde_json::json;

use crate::{
    backend_test,
    helpers::{App, Backend, TempDir, TestDb, wait_for},
    sink::{Reply, Sink},
};

backend_test!(signed_delivery_verifies_independently, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;
    let sink = Sink::start().await;
    let (int, secret) = app.webhook(&sink.url()).await;
    assert!(secret.starts_with("whsec_"));
    app.rule(&["job.*"], None, &[&int]).await;
    let event = app.event("job.failed", json!({"job": "backup", "attempts": 3})).await;
    let delivery = app.routed(&event).await;
    assert_eq!(delivery.len(), 1);
    let id = delivery[0]["id"].as_str().unwrap();
    let done = app.wait_for_delivery(id, "sent").await;
    assert_eq!(done["attempts"][0]["status_code"], json!(204));

    let got = &sink.received()[0];
    assert_eq!(got.header("webhook-id"), id, "webhook-id is the delivery id");
    // An independent Standard Webhooks implementation verifies the request.
    let verifier = standardwebhooks::Webhook::new(&secret).unwrap();
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, got.header(name).parse().unwrap());
    }
    verifier.verify(&got.body, &headers).expect("signature verifies");
    let mut tampered = got.body.to_vec();
    tampered[2] ^= 1;
    assert!(verifier.verify(&tampered, &headers).is_err(), "a changed body must not verify");
    let body = got.json();
    assert_eq!(body["type"], json!("job.failed"));
    assert_eq!(body["data"], json!({"job": "backup", "attempts": 3}));
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(body.as_object().unwrap().len(), 3);
});

backend_test!(globs_and_conditions_filter_events, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;
    let (auth_sink, all_sink) = (Sink::start().await, Sink::start().await);
    let (auth_int, _) = app.webhook(&auth_sink.url()).await;
    let (all_int, _) = app.webhook(&all_sink.url()).await;
    app.rule(&["auth.*"], None, &[&auth_int]).await;
    app.rule(&["*"], Some(r#"data.attempts > 3 and severity == "error""#), &[&all_int]).await;

    let post = |t: &'static str, sev: &'static str, attempts: i64| {
        let app = &app;
        async move {
            let (s, b) =
                app.post("/v1/events", json!({"type": t, "severity": sev, "data": {"attempts": attempts}})).await;
            assert_eq!(s, 202, "{b}");
            b["id"].as_str().unwrap().to_owned()
        }
    };
    let e1 = post("auth.failed", "info", 1).await; // auth sink only
    let e2 = post("job.failed", "error", 5).await; // all sink only
    let e3 = post("job.failed", "error", 2).await; // nobody
    let e4 = post("auth.failed", "error", 9).await; // both
    let e5 = post("oauth.failed", "info", 9).await; // nobody: glob is anchored

    let count = |deliveries: Vec<serde_json::Value>, int: &str| {
        deliveries.iter().filter(|d| d["integration_id"] == json!(int)).count()
    };
    let d1 = app.routed(&e1).await;
    assert_eq!((d1.len(), count(d1, &auth_int)), (1, 1));
    let d2 = app.routed(&e2).await;
    assert_eq!((d2.len(), count(d2, &all_int)), (1, 1));
    assert!(app.routed(&e3).await.is_empty());
    assert_eq!(app.routed(&e4).await.len(), 2);
    assert!(app.routed(&e5).await.is_empty());
    wait_for("all sends", Duration::from_secs(10), || async {
        (auth_sink.count() == 2 && all_sink.count() == 2).then_some(())
    })
    .await;
});

backend_test!(server_errors_are_retried_then_succeed, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;
    let sink = Sink::start().await;
    sink.script([Reply::status(500).with_body("boom"), Reply::status(503).with_header("retry-after", "1")]);
    let (int, _) = app.webhook(&sink.url()).await;
    app.rule(&["*"], None, &[&int]).await;
    let id = app.event_with_delivery("job.failed", json!({})).await;
    let done = app.wait_for_delivery(&id, "sent").await;
    let attempts = done["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{done}");
    assert_eq!(attempts[0]["outcome"], json!("retry"));
    assert_eq!(attempts[0]["status_code"], json!(500));
    assert_eq!(attempts[0]["response"], json!("boom"));
    assert!(attempts[0]["error"].as_str().unwrap().contains("500"));
    assert_eq!(attempts[1]["status_code"], json!(503));
    assert_eq!(attempts[2]["outcome"], json!("sent"));
    for a in attempts {
        assert!(a["at"].is_string() && a["duration_ms"].is_i64());
    }
    // Every try carried the same webhook-id.
    let ids: Vec<String> = sink.received().iter().map(|r| r.header("webhook-id")).collect();
    assert_eq!(ids, vec![id.clone(), id.clone(), id.clone()]);
});

// Standard Webhooks: a 410 means the endpoint is gone for good. The
// delivery fails, the integration is disabled with the reason shown, the
// next event's delivery is skipped, and enabling it again clears the reason.
backend_test!(a_410_disables_the_webhook_integration, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;
    let sink = Sink::start().await;
    sink.script([Reply::status(410).with_body("this endpoint was removed")]);
    let (int, _) = app.webhook(&sink.url()).await;
    app.rule(&["*"], None, &[&int]).await;
    let id = app.event_with_delivery("job.failed", json!({})).await;
    let failed = app.wait_for_delivery(&id, "failed").await;
    let attempt = &failed["attempts"][0];
    assert_eq!(attempt["error"], json!("HTTP 410 Gone; the integration is now disabled"), "{attempt}");
    assert_eq!(attempt["response"], json!("this endpoint was removed"), "{attempt}");

    let (_, integration) = app.get(&format!("/v1/integrations/{int}")).await;
    assert_eq!(integration["enabled"], json!(false), "{integration}");
    let reason = integration["disabled_reason"].as_str().unwrap();
    assert!(reason.starts_with("the endpoint answered 410 Gone at ") && reason.contains(&id), "{reason}");

    let next = app.event("job.failed", json!({})).await;
    let routed = app.routed(&next).await;
    assert_eq!(
        (&routed[0]["status"], &routed[0]["skip_reason"]),
        (&json!("skipped"), &json!("integration disabled")),
        "{routed:?}"
    );
    assert_eq!(sink.count(), 1, "nothing more was sent to the gone endpoint");
    let window = json!({"since": "2020-01-01T00:00:00Z"});
    let (status, body) = app.post(&format!("/v1/integrations/{int}/recover"), window.clone()).await;
    assert_eq!(status, 409, "a disabled integration is enabled before a recover: {body}");

    // Enabled again by an admin: the reason goes, deliveries resume.
    let enable = json!({"enabled": true});
    let (status, body) = app
        .request(reqwest::Method::PATCH, &format!("/v1/integrations/{int}"), crate::helpers::ADMIN, Some(&enable))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((&body["enabled"], body.get("disabled_reason")), (&json!(true), None), "{body}");
    let (_, stored) = app.get(&format!("/v1/integrations/{int}")).await;
    assert_eq!((&stored["enabled"], stored.get("disabled_reason")), (&json!(true), None), "{stored}");
    let again = app.event_with_delivery("job.failed", json!({})).await;
    app.wait_for_delivery(&again, "sent").await;

    // Recover: what failed and what was skipped while disabled goes out now;
    // what was sent is left alone.
    let (status, body) = app.post(&format!("/v1/integrations/{int}/recover"), window).await;
    assert_eq!((status.as_u16(), &body["requeued"], &body["more"]), (202, &json!(2), &json!(false)), "{body}");
    let skipped = routed[0]["id"].as_str().unwrap();
    app.wait_for_delivery(&id, "sent").await;
    app.wait_for_delivery(skipped, "sent").await;
    assert_eq!(sink.count(), 4);
    let (status, body) = app
        .post(
            &format!("/v1/integrations/{int}/recover"),
            json!({"since": "2020-01-01T00:00:00Z", "until": "2019-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!((status.as_u16(), &body["field"]), (400, &json!("until")), "{body}");

    // A test send that meets a 410 reports it and disables nothing: that
    // is how one checks an endpoint.
    sink.script([Reply::status(410)]);
    let (status, test) = app.post(&format!("/v1/integrations/{int}/test"), json!({})).await;
    assert_eq!(status, 200, "{test}");
    let (_, stored) = app.get(&format!("/v1/integrations/{int}")).await;
    assert_eq!(stored["enabled"], json!(true), "{test} {stored}");
    assert_eq!(sink.count(), 5, "the test send met the 410: {test}");
});

// A webhook integration whose every attempt fails for longer than
// HERALD_DISABLE_FAILING_AFTER is disabled, saying since when; its clock
// shows in the integration, and a success stops it.
backend_test!(a_webhook_failing_for_too_long_is_disabled, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let settings = [("HERALD_DISABLE_FAILING_AFTER", "2s"), ("HERALD_RETRY_SCHEDULE", "1s,1s,1s,1s,1s,1s")];
    let app = App::spawn_with(backend, &db, &dir, &settings).await;

    // A failure starts the clock (a 400: one attempt, then it stays put);
    // a success stops it.
    let flaky = Sink::start().await;
    flaky.script([Reply::status(400)]);
    let (flaky_id, _) = app.webhook(&flaky.url()).await;
    app.rule(&["flaky.*"], None, &[&flaky_id]).await;
    let id = app.event_with_delivery("flaky.one", json!({})).await;
    app.wait_for_delivery(&id, "failed").await;
    let (_, stored) = app.get(&format!("/v1/integrations/{flaky_id}")).await;
    assert!(stored["failing_since"].is_string() && stored["enabled"] == json!(true), "{stored}");
    let id = app.event_with_delivery("flaky.two", json!({})).await;
    app.wait_for_delivery(&id, "sent").await;
    let (_, stored) = app.get(&format!("/v1/integrations/{flaky_id}")).await;
    assert_eq!(stored.get("failing_since"), None, "{stored}");

    // Always 500: retried every second until two seconds of failures, then
    // disabled; the delivery's next turn is skipped.
    let down = Sink::start().await;
    down.script((0..10).map(|_| Reply::status(500)));
    let (down_id, _) = app.webhook(&down.url()).await;
    app.rule(&["down.*"], None, &[&down_id]).await;
    let id = app.event_with_delivery("down.one", json!({})).await;
    let skipped = app.wait_for_delivery(&id, "skipped").await;
    let attempts = skipped["attempts"].as_array().unwrap();
    let last = attempts.iter().rev().find(|a| a["outcome"] != json!("none")).unwrap();
    let error = last["error"].as_str().unwrap();
    assert!(error.starts_with("HTTP 500") && error.contains("the integration is now disabled"), "{skipped}");
    let (_, stored) = app.get(&format!("/v1/integrations/{down_id}")).await;
    assert_eq!(stored["enabled"], json!(false), "{stored}");
    assert!(stored["disabled_reason"].as_str().unwrap().starts_with("every attempt failed from "), "{stored}");
    assert!((2..=5).contains(&down.count()), "attempts over about two seconds: {}", down.count());
});

backend_test!(client_error_fails_at_once_and_manual_retry_succeeds, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;
    let sink = Sink::start().await;
    sink.script([Reply::status(400).with_body(r#"{"error":"bad payload"}"#)]);
    let (int, _) = app.webhook(&sink.url()).await;
    app.rule(&["*"], None, &[&int]).await;
    let id = app.event_with_delivery("job.failed", json!({})).await;
    let failed = app.wait_for_delivery(&id, "failed").await;
    assert_eq!(failed["attempts"].as_array().unwrap().len(), 1, "a 400 is not retried: {failed}");
    assert_eq!(failed["attempts"][0]["outcome"], json!("failed"));
    assert_eq!(failed["attempts"][0]["status_code"], json!(400));

    let (s, _) = app.post(&format!("/v1/deliveries/{id}/retry"), json!({})).await;
    assert_eq!(s, 202);
    let sent = app.wait_for_delivery(&id, "sent").await;
    assert_eq!(sent["attempts"].as_array().unwrap().len(), 2);
    let (s, b) = app.post(&format!("/v1/deliveries/{id}/retry"), json!({})).await;
    assert_eq!(s, 409, "a sent delivery cannot be retried: {b}");
    let (s, _) = app.get("/v1/deliveries?status=failed").await;
    assert_eq!(s, 200);
    let (_, list) = app.get("/v1/deliveries?status=sent").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
});

backend_test!(retries_run_out_then_failed, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;
    let sink = Sink::start().await;
    sink.script([Reply::status(502), Reply::status(502), Reply::status(502)]);
    let (int, _) = app.webhook(&sink.url()).await;
    app.rule(&["*"], None, &[&int]).await;
    let id = app.event_with_delivery("x", json!({})).await;
    // Schedule 1s,1s: three attempts, then failed.
    let failed = app.wait_for_delivery(&id, "failed").await;
    assert_eq!(failed["attempts"].as_array().unwrap().len(), 3, "{failed}");
    assert_eq!(sink.count(), 3);
});

backend_test!(connection_refused_is_retried, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    let (int, _) = app.webhook(&url).await;
    app.rule(&["*"], None, &[&int]).await;
    let id = app.event_with_delivery("x", json!({})).await;
    let failed = app.wait_for_delivery(&id, "failed").await;
    let attempts = failed["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3);
    for a in attempts {
        assert!(a["error"].as_str().unwrap().to_lowercase().contains("refused"), "{a}");
        assert!(a["status_code"].is_null());
    }
});

backend_test!(connections_to_an_endpoint_are_reused, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;
    let sink = Sink::start().await;
    let (int, _) = app.webhook(&sink.url()).await;
    app.rule(&["*"], None, &[&int]).await;
    // One at a time, so each send finds the previous connection idle.
    for i in 0..5 {
        let id = app.event_with_delivery("seq", json!({"i": i})).await;
        app.wait_for_delivery(&id, "sent").await;
    }
    let peers: std::collections::HashSet<_> = sink.received().iter().map(|r| r.peer).collect();
    assert_eq!(sink.count(), 5);
    assert_eq!(peers.len(), 1, "five sends should share one keep-alive connection: {peers:?}");
});

backend_test!(redirects_fail_and_slow_endpoints_time_out, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;
    let (moved, slow) = (Sink::start().await, Sink::start().await);
    moved.script([Reply::status(302).with_header("location", &slow.url())]);
    // The test attempt timeout is 2 s.
    slow.script([Reply::status(200).with_delay(Duration::from_secs(3))]);
    let (moved_int, _) = app.webhook(&moved.url()).await;
    let (slow_int, _) = app.webhook(&slow.url()).await;
    app.rule(&["moved"], None, &[&moved_int]).await;
    app.rule(&["slow"], None, &[&slow_int]).await;

    let id = app.event_with_delivery("moved", json!({})).await;
    let failed = app.wait_for_delivery(&id, "failed").await;
    assert_eq!(failed["attempts"].as_array().unwrap().len(), 1, "a 3xx is not retried: {failed}");
    assert!(failed["attempts"][0]["error"].as_str().unwrap().contains("redirect"), "{failed}");
    assert_eq!(slow.count(), 0, "the redirect is not followed");

    let id = app.event_with_delivery("slow", json!({})).await;
    let sent = app.wait_for_delivery(&id, "sent").await;
    let attempts = sent["attempts"].as_array().unwrap();
    assert_eq!(attempts[0]["outcome"], json!("retry"), "{sent}");
    assert!(attempts[0]["error"].as_str().unwrap().contains("timed out"), "{sent}");
    assert!(attempts[0]["duration_ms"].as_i64().unwrap() < 2900, "the attempt stops at its timeout: {sent}");
    assert_eq!(attempts.last().unwrap()["outcome"], json!("sent"));
});
