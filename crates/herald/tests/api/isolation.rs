//! Tenants cannot read, change or delete each other's rows; key scopes hold.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    backend_test,
    helpers::{App, Backend, TempDir, TestDb},
    sink::Sink,
};

async fn key(app: &App, tenant: &str, scope: &str) -> String {
    let res = app
        .client
        .post(app.url("/v1/api-keys"))
        .bearer_auth(crate::helpers::ADMIN)
        .header("herald-tenant", tenant)
        .json(&json!({"name": format!("{tenant}-{scope}"), "scope": scope}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert!(body["key"].as_str().unwrap().starts_with("hk_"));
    body["key"].as_str().unwrap().to_owned()
}

backend_test!(tenants_are_isolated_and_scopes_hold, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;
    let sink = Sink::start().await;
    for t in ["acme", "globex"] {
        let (s, b) = app.post("/v1/tenants", json!({"id": t, "name": t})).await;
        assert_eq!(s, 201, "{b}");
    }
    let (s, _) = app.post("/v1/tenants", json!({"id": "acme", "name": "again"})).await;
    assert_eq!(s, 409);
    let acme = key(&app, "acme", "full").await;
    let globex = key(&app, "globex", "full").await;
    let acme_send = key(&app, "acme", "send").await;

    // Acme builds an integration, a rule and an event with a delivery.
    let req = |token: &str, m: Method, path: &str, body: Option<Value>| {
        let (app, token, path) = (&app, token.to_owned(), path.to_owned());
        async move { app.request(m, &path, &token, body.as_ref()).await }
    };
    let (s, int) = req(
        &acme,
        Method::POST,
        "/v1/integrations",
        Some(json!({"name": "a", "type": "webhook", "config": {"url": sink.url()}})),
    )
    .await;
    assert_eq!(s, 201);
    let int = int["id"].as_str().unwrap().to_owned();
    let (s, rule) = req(
        &acme,
        Method::POST,
        "/v1/rules",
        Some(json!({"name": "r", "event_types": ["*"], "integration_ids": [int]})),
    )
    .await;
    assert_eq!(s, 201);
    let rule = rule["id"].as_str().unwrap().to_owned();
    let (s, ev) = req(&acme_send, Method::POST, "/v1/events", Some(json!({"type": "a"}))).await;
    assert_eq!(s, 202, "a send key may post events");
    let ev = ev["id"].as_str().unwrap().to_owned();
    let dlv = crate::helpers::wait_for("acme delivery", std::time::Duration::from_secs(10), || async {
        let (_, list) = req(&acme, Method::GET, &format!("/v1/deliveries?event_id={ev}"), None).await;
        list["data"].as_array().and_then(|d| d.first()).map(|d| d["id"].as_str().unwrap().to_owned())
    })
    .await;
    let (_, keys) = req(&acme, Method::GET, "/v1/api-keys", None).await;
    let acme_key_id = keys["data"][0]["id"].as_str().unwrap().to_owned();
    assert!(keys["data"][0].get("key").is_none(), "keys are shown only once");

    // Globex sees none of it, through every endpoint.
    for path in [
        format!("/v1/integrations/{int}"),
        format!("/v1/rules/{rule}"),
        format!("/v1/events/{ev}"),
        format!("/v1/deliveries/{dlv}"),
    ] {
        let (s, _) = req(&globex, Method::GET, &path, None).await;
        assert_eq!(s, 404, "GET {path}");
    }
    for path in ["/v1/integrations", "/v1/rules", "/v1/events", "/v1/deliveries"] {
        let (_, list) = req(&globex, Method::GET, path, None).await;
        assert!(list["data"].as_array().unwrap().is_empty(), "{path} leaks: {list}");
    }
    let (_, keys) = req(&globex, Method::GET, "/v1/api-keys", None).await;
    assert_eq!(keys["data"].as_array().unwrap().len(), 1, "only its own key");
    // …and cannot change or delete it.
    let (s, _) = req(&globex, Method::PATCH, &format!("/v1/integrations/{int}"), Some(json!({"enabled": false}))).await;
    assert_eq!(s, 404);
    let (s, _) =
        req(&globex, Method::PUT, &format!("/v1/rules/{rule}"), Some(json!({"name": "x", "event_types": ["*"]}))).await;
    assert_eq!(s, 404);
    let (s, _) = req(&globex, Method::POST, &format!("/v1/integrations/{int}/test"), None).await;
    assert_eq!(s, 404);
    let (s, _) = req(&globex, Method::POST, &format!("/v1/deliveries/{dlv}/retry"), None).await;
    assert_eq!(s, 404);
    for path in [format!("/v1/integrations/{int}"), format!("/v1/rules/{rule}"), format!("/v1/api-keys/{acme_key_id}")]
    {
        let (s, _) = req(&globex, Method::DELETE, &path, None).await;
        assert_eq!(s, 404, "DELETE {path}");
    }
    // A rule may not point at another tenant's integration.
    let (s, p) = req(
        &globex,
        Method::POST,
        "/v1/rules",
        Some(json!({"name": "r", "event_types": ["*"], "integration_ids": [int]})),
    )
    .await;
    assert_eq!((s.as_u16(), p["field"].as_str()), (400, Some("integration_ids[0]")));
    // Acme's things are intact.
    let (s, i) = req(&acme, Method::GET, &format!("/v1/integrations/{int}"), None).await;
    assert_eq!((s.as_u16(), &i["enabled"]), (200, &json!(true)));

    // Scopes: a send key posts events and nothing else; tenant keys cannot manage tenants.
    for (m, path) in [
        (Method::GET, "/v1/events"),
        (Method::GET, "/v1/integrations"),
        (Method::GET, "/v1/deliveries"),
        (Method::GET, "/v1/api-keys"),
    ] {
        let (s, _) = req(&acme_send, m, path, None).await;
        assert_eq!(s, 403, "send key on {path}");
    }
    let (s, _) = req(&acme, Method::POST, "/v1/tenants", Some(json!({"id": "evil", "name": "x"}))).await;
    assert_eq!(s, 403);
    let (s, _) = req("hk_not-a-real-key", Method::GET, "/v1/events", None).await;
    assert_eq!(s, 401);
    let (s, _) = req("wrong-admin", Method::GET, "/v1/events", None).await;
    assert_eq!(s, 401);
    // The admin picks the tenant by header; an unknown tenant is 404.
    let res = app
        .client
        .get(app.url("/v1/events"))
        .bearer_auth(crate::helpers::ADMIN)
        .header("herald-tenant", "nobody")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    // A deleted key stops working.
    let (s, _) = req(&acme, Method::DELETE, &format!("/v1/api-keys/{acme_key_id}"), None).await;
    assert_eq!(s, 204);
    let (s, _) = req(&acme, Method::GET, "/v1/events", None).await;
    assert_eq!(s, 401);
});
