//! Recipient tokens and the inbox API: a token opens one recipient's inbox
//! and nothing else; read, unread, archive, delete and read-all keep the
//! unread count right; another recipient's items are a 404.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64URL};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::{
    backend_test,
    helpers::{ADMIN, App, Backend, TempDir, TestDb},
};

/// Mints a recipient token with the admin token (acting on `tenant`).
pub async fn token_in(app: &App, tenant: &str, recipient: &str) -> String {
    let res = app
        .client
        .post(app.url(&format!("/v1/recipients/{recipient}/tokens")))
        .bearer_auth(ADMIN)
        .header("herald-tenant", tenant)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let body: Value = res.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

pub async fn token(app: &App, recipient: &str) -> String {
    token_in(app, "default", recipient).await
}

/// Posts a `task_due` event for `recipient` (the default `in_app` channel
/// makes an inbox item); returns the event id.
pub async fn notify(app: &App, recipient: &str, title: &str) -> String {
    let (status, body) =
        app.post("/v1/events", json!({"type": "task_due", "data": {"title": title}, "recipients": [recipient]})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

pub async fn inbox(app: &App, token: &str, query: &str) -> (StatusCode, Value) {
    app.request(Method::GET, &format!("/v1/inbox{query}"), token, None).await
}

/// A recipient's items, newest first (all pages, archived included).
pub async fn item_ids(app: &App, token: &str) -> Vec<String> {
    let (status, body) = inbox(app, token, "?archived=true&limit=500").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect()
}

fn jwt(secret: &[u8], header: Value, claims: Value) -> String {
    let input = format!("{}.{}", B64URL.encode(header.to_string()), B64URL.encode(claims.to_string()));
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", B64URL.encode(mac.finalize().into_bytes()))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn signing_secret(app: &App, tenant: &str, rotate: bool) -> Vec<u8> {
    let path =
        if rotate { "/v1/recipient-tokens/signing-secret/rotate" } else { "/v1/recipient-tokens/signing-secret" };
    let req = if rotate { app.client.post(app.url(path)) } else { app.client.get(app.url(path)) };
    let res = req.bearer_auth(ADMIN).header("herald-tenant", tenant).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["algorithm"], json!("HS256"));
    B64URL.decode(body["secret"].as_str().unwrap()).unwrap()
}

async fn api_key(app: &App, scope: &str) -> String {
    let (status, body) = app.post("/v1/api-keys", json!({"name": scope, "scope": scope})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["key"].as_str().unwrap().to_owned()
}

backend_test!(recipient_tokens_open_one_inbox_only, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;

    // Minted by the app's backend: 201, a JWT, and when it expires.
    let (status, minted) = app.post("/v1/recipients/ada/tokens", json!({"ttl_seconds": 600})).await;
    assert_eq!(status, StatusCode::CREATED, "{minted}");
    let ada = minted["token"].as_str().unwrap().to_owned();
    assert_eq!(ada.split('.').count(), 3);
    let expires = chrono::DateTime::parse_from_rfc3339(minted["expires_at"].as_str().unwrap()).unwrap();
    assert!((expires.timestamp() - now() - 600).abs() <= 5, "{minted}");
    let (status, body) = inbox(&app, &ada, "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"data": [], "unread_count": 0, "next_cursor": null}));
    // The token may come as `?token=` (browsers' WebSocket and EventSource).
    let res = app.client.get(app.url(&format!("/v1/inbox?token={ada}"))).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // Bounds on the lifetime; a send key may not mint.
    for (ttl, ok) in [(59, false), (60, true), (2_592_000, true), (2_592_001, false)] {
        let (status, body) = app.post("/v1/recipients/ada/tokens", json!({"ttl_seconds": ttl})).await;
        assert_eq!(status.is_success(), ok, "ttl {ttl}: {body}");
        if !ok {
            assert_eq!(body["field"], json!("ttl_seconds"));
        }
    }
    let (status, body) = app.post("/v1/recipients/ada/tokens", json!({"ttl": 60})).await;
    assert_eq!((status, &body["field"]), (StatusCode::BAD_REQUEST, &json!("ttl")));
    let send_key = api_key(&app, "send").await;
    let (status, _) = app.request(Method::POST, "/v1/recipients/ada/tokens", &send_key, Some(&json!({}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Nothing but a recipient token opens the inbox.
    let full_key = api_key(&app, "full").await;
    for bad in [ADMIN, full_key.as_str(), send_key.as_str(), "garbage", "a.b.c", ""] {
        let (status, body) = inbox(&app, bad, "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{bad:?}: {body}");
    }
    let res = app.client.get(app.url("/v1/inbox")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // ...and a recipient token opens nothing but the inbox.
    let (status, _) = app.request(Method::GET, "/v1/events", &ada, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The app can mint tokens itself with the tenant's signing secret.
    let secret = signing_secret(&app, "default", false).await;
    assert_eq!(secret.len(), 32);
    let hs256 = json!({"alg": "HS256", "typ": "JWT"});
    let own = jwt(&secret, hs256.clone(), json!({"sub": "ada", "tid": "default", "iat": now(), "exp": now() + 60}));
    assert_eq!(inbox(&app, &own, "").await.0, StatusCode::OK);
    let expired =
        jwt(&secret, hs256.clone(), json!({"sub": "ada", "tid": "default", "iat": now() - 600, "exp": now() - 300}));
    assert_eq!(inbox(&app, &expired, "").await.0, StatusCode::UNAUTHORIZED);
    let alg_none =
        jwt(&secret, json!({"alg": "none"}), json!({"sub": "ada", "tid": "default", "iat": now(), "exp": now() + 60}));
    assert_eq!(inbox(&app, &alg_none, "").await.0, StatusCode::UNAUTHORIZED);
    let tampered = {
        let parts: Vec<&str> = own.split('.').collect();
        let claims = json!({"sub": "bob", "tid": "default", "iat": now(), "exp": now() + 60});
        format!("{}.{}.{}", parts[0], B64URL.encode(claims.to_string()), parts[2])
    };
    assert_eq!(inbox(&app, &tampered, "").await.0, StatusCode::UNAUTHORIZED);

    // Another tenant's secret does not sign for this tenant.
    let (status, _) = app.post("/v1/tenants", json!({"id": "acme", "name": "Acme"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let acme_secret = signing_secret(&app, "acme", false).await;
    assert_ne!(acme_secret, secret);
    let forged =
        jwt(&acme_secret, hs256.clone(), json!({"sub": "ada", "tid": "default", "iat": now(), "exp": now() + 60}));
    assert_eq!(inbox(&app, &forged, "").await.0, StatusCode::UNAUTHORIZED);
    let unknown_tenant =
        jwt(&secret, hs256.clone(), json!({"sub": "ada", "tid": "nope", "iat": now(), "exp": now() + 60}));
    assert_eq!(inbox(&app, &unknown_tenant, "").await.0, StatusCode::UNAUTHORIZED);
    let acme_ada = token_in(&app, "acme", "ada").await;
    assert_eq!(inbox(&app, &acme_ada, "").await.0, StatusCode::OK);

    // Rotation: tokens signed with the old secret stop working.
    let rotated = signing_secret(&app, "default", true).await;
    assert_ne!(rotated, secret);
    assert_eq!(inbox(&app, &ada, "").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(inbox(&app, &own, "").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(signing_secret(&app, "default", false).await, rotated);
    let fresh = token(&app, "ada").await;
    assert_eq!(inbox(&app, &fresh, "").await.0, StatusCode::OK);
    assert_eq!(inbox(&app, &acme_ada, "").await.0, StatusCode::OK, "another tenant's tokens are untouched");
});

async fn change(app: &App, token: &str, id: &str, what: &str) -> (StatusCode, Value) {
    app.request(Method::POST, &format!("/v1/inbox/{id}/{what}"), token, None).await
}

backend_test!(inbox_lists_and_changes_keep_the_unread_count, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;
    let (ada, bob) = (token(&app, "ada").await, token(&app, "bob").await);
    for title in ["one", "two", "three"] {
        notify(&app, "ada", title).await;
    }
    notify(&app, "bob", "bob's").await;

    // Newest first, with the unread count; an item's shape.
    let (status, page) = inbox(&app, &ada, "").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["unread_count"], json!(3));
    let items = page["data"].as_array().unwrap();
    let titles: Vec<&str> = items.iter().map(|i| i["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["three", "two", "one"], "{page}");
    let item = &items[0];
    assert!(item["id"].as_str().unwrap().starts_with("ntf_"), "{item}");
    assert_eq!((&item["type"], &item["read"], &item["archived"]), (&json!("task_due"), &json!(false), &json!(false)));
    assert_eq!(item["data"], json!({"title": "three"}));
    assert_eq!(item["read_at"], Value::Null);
    assert!(item["severity"].is_string() && item["body"].is_string(), "{item}");
    chrono::DateTime::parse_from_rfc3339(item["created_at"].as_str().unwrap()).unwrap();
    let ids: Vec<String> = items.iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect();

    // Cursor pagination.
    let (_, first) = inbox(&app, &ada, "?limit=2").await;
    assert_eq!(first["data"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let (_, second) = inbox(&app, &ada, &format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(second["data"][0]["id"], json!(ids[2]));
    assert_eq!(second["next_cursor"], Value::Null);
    let (status, body) = inbox(&app, &ada, "?bogus=1").await;
    assert_eq!((status, &body["field"]), (StatusCode::BAD_REQUEST, &json!("bogus")));
    let (status, _) = inbox(&app, &ada, "?unread=yes").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Read and unread.
    let (status, body) = change(&app, &ada, &ids[0], "read").await;
    assert_eq!((status, &body), (StatusCode::OK, &json!({"unread_count": 2})));
    assert_eq!(change(&app, &ada, &ids[0], "read").await.1, json!({"unread_count": 2}), "reading twice is a no-op");
    let (_, unread) = inbox(&app, &ada, "?unread=true").await;
    assert_eq!(unread["data"].as_array().unwrap().len(), 2);
    let (_, all) = inbox(&app, &ada, "").await;
    assert_eq!(all["data"][0]["read"], json!(true));
    assert!(all["data"][0]["read_at"].is_string());
    assert_eq!(change(&app, &ada, &ids[0], "unread").await.1, json!({"unread_count": 3}));

    // Archive: out of the default list and the count; `archived=true` shows it.
    assert_eq!(change(&app, &ada, &ids[1], "archive").await.1, json!({"unread_count": 2}));
    let (_, listed) = inbox(&app, &ada, "").await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);
    let (_, with_archived) = inbox(&app, &ada, "?archived=true").await;
    let archived: Vec<&Value> =
        with_archived["data"].as_array().unwrap().iter().filter(|i| i["archived"] == json!(true)).collect();
    assert_eq!(archived.len(), 1);
    assert_eq!(archived[0]["id"], json!(ids[1]));

    // Another recipient sees nothing of ada's, and her ids are 404 to him.
    let (_, bobs) = inbox(&app, &bob, "?archived=true").await;
    assert_eq!(bobs["data"].as_array().unwrap().len(), 1);
    assert_eq!(bobs["data"][0]["title"], json!("bob's"));
    assert_eq!(bobs["unread_count"], json!(1));
    for what in ["read", "unread", "archive"] {
        let (status, body) = change(&app, &bob, &ids[2], what).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{what}: {body}");
    }
    let (status, _) = app.request(Method::DELETE, &format!("/v1/inbox/{}", ids[2]), &bob, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = change(&app, &bob, "ntf_00000000000000000000000000000000", "read").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(item_ids(&app, &ada).await.len(), 3, "ada's items are untouched");
    // Read-all is his alone too.
    assert_eq!(app.request(Method::POST, "/v1/inbox/read-all", &bob, None).await.1, json!({"unread_count": 0}));
    assert_eq!(inbox(&app, &ada, "").await.1["unread_count"], json!(2));

    // Delete, then read-all.
    let (status, _) = app.request(Method::DELETE, &format!("/v1/inbox/{}", ids[0]), &ada, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(inbox(&app, &ada, "").await.1["unread_count"], json!(1));
    let (status, _) = app.request(Method::DELETE, &format!("/v1/inbox/{}", ids[0]), &ada, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = app.request(Method::POST, "/v1/inbox/read-all", &ada, None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"unread_count": 0})));
    let (_, unread) = inbox(&app, &ada, "?unread=true").await;
    assert_eq!(unread["data"], json!([]));
    assert_eq!(item_ids(&app, &ada).await, [ids[1].clone(), ids[2].clone()]);
});
