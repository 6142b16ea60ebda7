//! Integrations: validation, secrets masked and sealed at rest, test sends,
//! the outbound address policy.

use serde_json::json;

use crate::{
    backend_test,
    helpers::{App, Backend, TempDir, TestDb},
    sink::Sink,
};

/// Every byte of every file under `dir`, to search for a leaked secret.
fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, bytes));
        }
    }
    out
}

backend_test!(secrets_are_masked_kept_and_sealed_at_rest, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let mut app = App::spawn(backend, &db, &dir).await;
    let sink = Sink::start().await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (s, created) = app
        .post("/v1/integrations", json!({"name": "h", "type": "webhook", "config": {"url": sink.url(), "secret": secret, "headers": {"X-Team": "ops"}}}))
        .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["config"]["secret"], json!("********"), "a secret the client gave is not echoed");
    let id = created["id"].as_str().unwrap().to_owned();
    let (_, got) = app.get(&format!("/v1/integrations/{id}")).await;
    assert_eq!(got["config"]["secret"], json!("********"));
    assert_eq!(got["config"]["headers"], json!({"X-Team": "ops"}));

    // Sending the mask back keeps the stored secret: deliveries still verify under it.
    let (s, _) = app
        .request(
            reqwest::Method::PUT,
            &format!("/v1/integrations/{id}"),
            crate::helpers::ADMIN,
            Some(&json!({"name": "renamed", "config": {"url": sink.url(), "secret": "********"}})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, test) = app.post(&format!("/v1/integrations/{id}/test"), json!({})).await;
    assert_eq!(s, 200, "{test}");
    assert_eq!(test["success"], json!(true), "{test}");
    assert!(test["delivery_id"].as_str().unwrap().starts_with("dlv_"));
    let got = &sink.received()[0];
    let verifier = standardwebhooks::Webhook::new(secret).unwrap();
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, got.header(name).parse().unwrap());
    }
    verifier.verify(&got.body, &headers).expect("the kept secret signs");
    assert_eq!(got.json()["type"], json!("herald.test"));
    // A webhook has no other address to try: a `recipient` is refused, and nothing is sent.
    let (s, problem) = app.post(&format!("/v1/integrations/{id}/test"), json!({"recipient": "x@example.com"})).await;
    assert_eq!((s.as_u16(), problem["field"].as_str()), (400, Some("recipient")), "{problem}");
    assert_eq!(sink.count(), 1);
    // The test send is in the history.
    let (_, d) = app.get(&format!("/v1/deliveries/{}", test["delivery_id"].as_str().unwrap())).await;
    assert_eq!(d["status"], json!("sent"));

    // A generated secret is shown once, at creation.
    let (_, gen_int) =
        app.post("/v1/integrations", json!({"name": "g", "type": "webhook", "config": {"url": sink.url()}})).await;
    let generated = gen_int["config"]["secret"].as_str().unwrap().to_owned();
    assert!(generated.starts_with("whsec_") && generated.len() > 30);
    let gen_id = gen_int["id"].as_str().unwrap().to_owned();
    // An update that leaves the secret out keeps it (the caller never saw it)…
    let (s, put) = app
        .request(
            reqwest::Method::PUT,
            &format!("/v1/integrations/{gen_id}"),
            crate::helpers::ADMIN,
            Some(&json!({"name": "g2", "config": {"url": sink.url()}})),
        )
        .await;
    assert_eq!((s.as_u16(), &put["config"]["secret"]), (200, &json!("********")), "{put}");
    let (s, _) = app.post(&format!("/v1/integrations/{gen_id}/test"), json!({})).await;
    assert_eq!(s, 200);
    let got = sink.received().last().unwrap().clone();
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, got.header(name).parse().unwrap());
    }
    standardwebhooks::Webhook::new(&generated).unwrap().verify(&got.body, &headers).expect("the secret was kept");
    // …and `null` replaces it with a new one, shown this once.
    let (s, patched) = app
        .request(
            reqwest::Method::PATCH,
            &format!("/v1/integrations/{gen_id}"),
            crate::helpers::ADMIN,
            Some(&json!({"config": {"secret": null}})),
        )
        .await;
    assert_eq!(s, 200, "{patched}");
    let rotated = patched["config"]["secret"].as_str().unwrap();
    assert!(rotated.starts_with("whsec_") && rotated != generated, "{patched}");
    let (_, shown) = app.get(&format!("/v1/integrations/{gen_id}")).await;
    assert_eq!(shown["config"]["secret"], json!("********"));

    // Nothing Herald logged holds a secret, and no file in the data dir does
    // (SQLite file, WAL, key file…).
    app.kill();
    let log = app.log.lock().unwrap().clone();
    assert!(!log.contains(&secret[6..]) && !log.contains(&generated[6..]), "a secret was logged:\n{log}");
    for (path, bytes) in files_under(&dir.0) {
        for needle in [secret, generated.as_str(), &secret[6..], &generated[6..]] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{} holds a plaintext secret",
                path.display()
            );
        }
    }
    if backend == Backend::Postgres {
        // Nor does the PostgreSQL row.
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(app.db_url.as_ref().unwrap()).await.unwrap();
        let configs: Vec<String> =
            sqlx::query_scalar("SELECT config FROM integrations").fetch_all(&mut conn).await.unwrap();
        assert!(configs.iter().all(|c| !c.contains(&secret[6..]) && !c.contains(&generated[6..])));
    }
    app.start().await;
    let (_, again) = app.get(&format!("/v1/integrations/{id}")).await;
    assert_eq!(again["name"], json!("renamed"));
});

backend_test!(invalid_configs_name_the_field, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;
    let cases = [
        (json!({"name": "x", "type": "pager", "config": {}}), "type"),
        (json!({"name": "x", "type": "webhook", "config": {}}), "config.url"),
        (json!({"name": "x", "type": "webhook", "config": {"url": "ftp://example.com"}}), "config.url"),
        (
            json!({"name": "x", "type": "webhook", "config": {"url": "http://169.254.169.254/latest/meta-data"}}),
            "config.url",
        ),
        (json!({"name": "x", "type": "webhook", "config": {"url": "http://[::ffff:169.254.169.254]/"}}), "config.url"),
        (
            json!({"name": "x", "type": "webhook", "config": {"url": "http://example.com", "secret": "nope"}}),
            "config.secret",
        ),
        (
            json!({"name": "x", "type": "webhook", "config": {"url": "http://example.com", "headers": {"webhook-id": "x"}}}),
            "config.headers.webhook-id",
        ),
        (json!({"name": "", "type": "webhook", "config": {"url": "http://example.com"}}), "name"),
        (json!({"name": "x", "type": "webhook", "config": {"url": "http://example.com"}, "colour": 1}), "colour"),
    ];
    for (body, field) in cases {
        let (s, problem) = app.post("/v1/integrations", body.clone()).await;
        assert_eq!(s, 400, "{body} → {problem}");
        assert_eq!(problem["field"], json!(field), "{body} → {problem}");
    }
    let (_, list) = app.get("/v1/integrations").await;
    assert!(list["data"].as_array().unwrap().is_empty(), "nothing stored");
    let (s, channels) = app.get("/v1/channels").await;
    assert_eq!(s, 200);
    let webhook = channels["data"].as_array().unwrap().iter().find(|c| c["type"] == json!("webhook")).unwrap();
    assert_eq!(webhook["secret_fields"], json!(["secret"]));
    assert!(webhook["config_schema"]["properties"]["url"].is_object());
    // A condition that does not parse is refused with the parser's message.
    let (s, problem) = app.post("/v1/rules", json!({"name": "r", "event_types": ["*"], "condition": "data.x >"})).await;
    assert_eq!(s, 400);
    assert_eq!(problem["field"], json!("condition"));
    assert!(problem["detail"].as_str().unwrap().contains("syntax error"), "{problem}");
    let (s, problem) = app
        .post(
            "/v1/rules",
            json!({"name": "r", "event_types": ["*"], "integration_ids": ["int_00000000000000000000000000000000"]}),
        )
        .await;
    assert_eq!((s.as_u16(), problem["field"].as_str()), (400, Some("integration_ids[0]")));
});

backend_test!(private_addresses_follow_the_policy, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn_with(backend, &db, &dir, &[("HERALD_OUTBOUND_ALLOW_PRIVATE", "false")]).await;
    let sink = Sink::start().await;
    // An IP literal is refused at creation…
    let (s, problem) =
        app.post("/v1/integrations", json!({"name": "x", "type": "webhook", "config": {"url": sink.url()}})).await;
    assert_eq!((s.as_u16(), problem["field"].as_str()), (400, Some("config.url")), "{problem}");
    // …and a name that resolves to loopback is refused when sending, without retries.
    let url = format!("http://localhost:{}/hook", sink.addr.port());
    let (int, _) = app.webhook(&url).await;
    let (s, test) = app.post(&format!("/v1/integrations/{int}/test"), json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(test["success"], json!(false));
    assert!(test["message"].as_str().unwrap().contains("refused"), "{test}");
    assert_eq!(sink.count(), 0, "nothing may reach a refused address");
});
