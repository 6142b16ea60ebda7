//! Recipients and their preferences: upsert, read, list with attribute
//! filters and a cursor, bulk all-or-nothing, delete; validation errors that
//! name the field; preferences for the app, for the person, per role; and
//! another tenant sees none of it.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    backend_test,
    helpers::{ADMIN, App, Backend, TempDir, TestDb},
};

pub async fn put(app: &App, path: &str, body: Value) -> (StatusCode, Value) {
    app.request(Method::PUT, path, ADMIN, Some(&body)).await
}

pub async fn delete(app: &App, path: &str) -> StatusCode {
    app.request(Method::DELETE, path, ADMIN, None).await.0
}

/// The `field` of a 400, after asserting it is one.
pub fn field_of((status, body): (StatusCode, Value)) -> String {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["status"], 400, "{body}");
    body["field"].as_str().unwrap_or_else(|| panic!("no field in {body}")).to_owned()
}

fn ids(page: &Value) -> Vec<&str> {
    page["data"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect()
}

backend_test!(recipients_are_upserted_listed_filtered_and_deleted, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;
    let ada = json!({
        "email": "ada@example.com", "phone": "+4915112345678", "name": "Ada", "locale": "de-AT",
        "timezone": "Europe/Vienna", "attributes": {"role": "admin", "tier": "gold"},
        "addresses": {"telegram": "4242", "ntfy": "ada-alerts"}
    });
    let (status, created) = put(&app, "/v1/recipients/ada", ada.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    for key in ["email", "phone", "name", "locale", "timezone", "attributes", "addresses"] {
        assert_eq!(created[key], ada[key], "{key}");
    }
    assert_eq!(created["id"], "ada");
    assert!(created["created_at"].as_str().unwrap().ends_with('Z'));

    // A second PUT replaces every field (absent ones become null) and keeps the creation time.
    let (status, replaced) =
        put(&app, "/v1/recipients/ada", json!({"name": "Ada L.", "attributes": {"role": "admin"}})).await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["created_at"], created["created_at"]);
    assert_eq!(replaced["email"], Value::Null);
    assert_eq!(replaced["addresses"], json!({}));
    let (status, got) = app.get("/v1/recipients/ada").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, replaced);

    for (id, body) in [
        ("bob", json!({"attributes": {"role": "admin", "level": 3}})),
        ("cy", json!({"attributes": {"role": ["ops", "admin"]}})),
        ("dan", json!({"email": "dan@example.com", "attributes": {"role": "viewer", "level": "3"}})),
    ] {
        assert_eq!(put(&app, &format!("/v1/recipients/{id}"), body).await.0, StatusCode::CREATED);
    }
    let list = |q: &str| {
        let path = format!("/v1/recipients{q}");
        let app = &app;
        async move {
            let (status, page) = app.get(&path).await;
            assert_eq!(status, StatusCode::OK, "{path}: {page}");
            page
        }
    };
    assert_eq!(ids(&list("?attributes.role=admin").await), ["ada", "bob", "cy"]);
    // A number matches a number, not the string "3"; quotes ask for the string.
    assert_eq!(ids(&list("?attributes.role=admin&attributes.level=3").await), ["bob"]);
    assert_eq!(ids(&list("?attributes.level=%223%22").await), ["dan"]);
    assert_eq!(ids(&list("?email=dan@example.com").await), ["dan"]);
    let first = list("?limit=3").await;
    assert_eq!(ids(&first), ["ada", "bob", "cy"]);
    let rest = list(&format!("?limit=3&cursor={}", first["next_cursor"].as_str().unwrap())).await;
    assert_eq!(ids(&rest), ["dan"]);
    assert_eq!(rest["next_cursor"], Value::Null);
    assert_eq!(field_of(app.get("/v1/recipients?role=admin").await), "role");
    assert_eq!(field_of(app.get("/v1/recipients?limit=0").await), "limit");

    assert_eq!(delete(&app, "/v1/recipients/ada").await, StatusCode::NO_CONTENT);
    assert_eq!(app.get("/v1/recipients/ada").await.0, StatusCode::NOT_FOUND);
    assert_eq!(delete(&app, "/v1/recipients/ada").await, StatusCode::NOT_FOUND);
    assert_eq!(ids(&list("?attributes.role=admin").await), ["bob", "cy"]);

    // `bulk` is an id like any other, with its preferences and tokens.
    assert_eq!(put(&app, "/v1/recipients/bulk", json!({"name": "Bulk"})).await.0, StatusCode::CREATED);
    assert_eq!(app.get("/v1/recipients/bulk").await.1["name"], "Bulk");
    assert_eq!(app.get("/v1/recipients/bulk/preferences").await.0, StatusCode::OK);
    assert_eq!(delete(&app, "/v1/recipients/bulk").await, StatusCode::NO_CONTENT);
});

backend_test!(a_bulk_upsert_stores_everything_or_nothing, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;
    let people: Vec<Value> =
        (0..3).map(|i| json!({"id": format!("p{i}"), "email": format!("p{i}@example.com")})).collect();
    let (status, out) = app.post("/v1/recipients/bulk", json!({"recipients": people})).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out, json!({"created": 3, "updated": 0}));

    // The third item is bad: nothing of the request is stored, not even the
    // change to p0 before it.
    let bad = json!({"recipients": [
        {"id": "p0", "name": "changed"}, {"id": "p9"}, {"id": "p10", "email": "not an address"}, {"id": "p11"}
    ]});
    assert_eq!(field_of(app.post("/v1/recipients/bulk", bad).await), "recipients[2].email");
    assert_eq!(app.get("/v1/recipients/p9").await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.get("/v1/recipients/p0").await.1["name"], Value::Null);
    let (_, all) = app.get("/v1/recipients").await;
    assert_eq!(ids(&all), ["p0", "p1", "p2"]);

    let dup = json!({"recipients": [{"id": "a"}, {"id": "a"}]});
    assert_eq!(field_of(app.post("/v1/recipients/bulk", dup).await), "recipients[1].id");
    assert_eq!(
        field_of(app.post("/v1/recipients/bulk", json!({"recipients": [{"name": "x"}]})).await),
        "recipients[0].id"
    );
    assert_eq!(
        field_of(app.post("/v1/recipients/bulk", json!({"recipients": [{"id": "a", "colour": 1}]})).await),
        "recipients[0].colour"
    );
    assert_eq!(field_of(app.post("/v1/recipients/bulk", json!({"recipients": []})).await), "recipients");
    let many: Vec<Value> = (0..1001).map(|i| json!({"id": format!("m{i}")})).collect();
    assert_eq!(field_of(app.post("/v1/recipients/bulk", json!({"recipients": many})).await), "recipients");

    let mixed = json!({"recipients": [{"id": "p1", "name": "One"}, {"id": "p3"}, {"id": "p2", "name": "Two"}]});
    assert_eq!(app.post("/v1/recipients/bulk", mixed).await.1, json!({"created": 1, "updated": 2}));
    assert_eq!(app.get("/v1/recipients/p2").await.1["name"], "Two");
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipient_errors_name_the_field() {
    let (db, dir) = (TestDb::new(Backend::Sqlite).await, TempDir::new());
    let app = App::spawn(Backend::Sqlite, &db, &dir).await;
    let many: serde_json::Map<String, Value> = (0..51).map(|i| (format!("a{i}"), json!(i))).collect();
    for (body, field) in [
        (json!({"email": "ada"}), "email"),
        (json!({"email": "ada@example.com\r\nBcc: x@example.com"}), "email"),
        (json!({"phone": "0151 1234"}), "phone"),
        (json!({"phone": "+0123"}), "phone"),
        (json!({"timezone": "Mars/Olympus"}), "timezone"),
        (json!({"locale": "german"}), "locale"),
        (json!({"name": ""}), "name"),
        (json!({"attributes": many}), "attributes"),
        (json!({"attributes": {"blob": "x".repeat(9000)}}), "attributes"),
        (json!({"attributes": ["admin"]}), "attributes"),
        (json!({"addresses": {"fax": "123"}}), "addresses.fax"),
        (json!({"addresses": {"email": "ada@example.com"}}), "addresses.email"),
        (json!({"addresses": {"telegram": ""}}), "addresses.telegram"),
        (json!({"addresses": {"telegram": 4242}}), "addresses.telegram"),
        (json!({"colour": "blue"}), "colour"),
        (json!({"id": "someone-else"}), "id"),
    ] {
        assert_eq!(field_of(put(&app, "/v1/recipients/ada", body.clone()).await), field, "{body}");
    }
    assert_eq!(field_of(put(&app, "/v1/recipients/a%2Fb", json!({})).await), "id");
    assert_eq!(field_of(put(&app, &format!("/v1/recipients/{}", "x".repeat(201)), json!({})).await), "id");
    assert_eq!(app.get("/v1/recipients/ada").await.0, StatusCode::NOT_FOUND, "nothing was stored");
}

backend_test!(preferences_round_trip_for_the_app_the_person_and_roles, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;
    let doc = json!({
        "channels": {"email": false, "in_app": true},
        "types": {"job_failed": {"enabled": true, "channels": ["telegram"], "condition": "data.job_type in ['backup']",
                                 "email": "ops@example.com", "phone": "+15005550006"}}
    });
    assert_eq!(app.get("/v1/recipients/ada/preferences").await.0, StatusCode::NOT_FOUND);
    assert_eq!(put(&app, "/v1/recipients/ada/preferences", doc.clone()).await.0, StatusCode::NOT_FOUND);
    put(&app, "/v1/recipients/ada", json!({"name": "Ada"})).await;
    assert_eq!(app.get("/v1/recipients/ada/preferences").await.1, json!({"channels": {}, "types": {}}));
    let (status, stored) = put(&app, "/v1/recipients/ada/preferences", doc.clone()).await;
    assert_eq!((status, &stored), (StatusCode::OK, &doc));
    assert_eq!(app.get("/v1/recipients/ada/preferences").await.1, doc);
    // Upserting the recipient keeps their preferences.
    put(&app, "/v1/recipients/ada", json!({"name": "Ada L."})).await;
    assert_eq!(app.get("/v1/recipients/ada/preferences").await.1, doc);

    for (body, field) in [
        (json!({"types": {"job_failed": {"condition": "data.x >"}}}), "types.job_failed.condition"),
        (json!({"types": {"job_failed": {"channels": ["fax"]}}}), "types.job_failed.channels[0]"),
        (json!({"types": {"job_failed": {"email": "nope"}}}), "types.job_failed.email"),
        (json!({"types": {"job_failed": {"phone": "12"}}}), "types.job_failed.phone"),
        (json!({"types": {"job_failed": {"colour": "red"}}}), "types.job_failed.colour"),
        (json!({"types": {"bad type": {"enabled": true}}}), "types.bad type"),
        (json!({"channels": {"pigeon": true}}), "channels.pigeon"),
        (json!({"quiet": {}}), "quiet"),
    ] {
        assert_eq!(field_of(put(&app, "/v1/recipients/ada/preferences", body.clone()).await), field, "{body}");
    }
    let too_many: serde_json::Map<String, Value> = (0..501).map(|i| (format!("t{i}"), json!({}))).collect();
    assert_eq!(field_of(put(&app, "/v1/recipients/ada/preferences", json!({"types": too_many})).await), "types");
    assert_eq!(app.get("/v1/recipients/ada/preferences").await.1, doc, "refused writes change nothing");

    // The person's own view, with a recipient token.
    let token = crate::inbox::token(&app, "ada").await;
    let (status, own) = app.request(Method::GET, "/v1/inbox/preferences", &token, None).await;
    assert_eq!((status, &own), (StatusCode::OK, &doc));
    let mine = json!({"channels": {}, "types": {"job_failed": {"enabled": false}}});
    let (status, out) = app.request(Method::PUT, "/v1/inbox/preferences", &token, Some(&mine)).await;
    assert_eq!((status, &out), (StatusCode::OK, &mine), "{out}");
    assert_eq!(app.get("/v1/recipients/ada/preferences").await.1, mine);
    let (status, body) = app.request(Method::PUT, "/v1/inbox/preferences", &token, Some(&json!({"x": 1}))).await;
    assert_eq!(field_of((status, body)), "x");
    // A person the app has not registered yet may set preferences: the
    // recipient is created bare.
    let zed = crate::inbox::token(&app, "zed").await;
    assert_eq!(
        app.request(Method::GET, "/v1/inbox/preferences", &zed, None).await.1,
        json!({"channels": {}, "types": {}})
    );
    assert_eq!(app.request(Method::PUT, "/v1/inbox/preferences", &zed, Some(&mine)).await.0, StatusCode::OK);
    assert_eq!(app.get("/v1/recipients/zed").await.0, StatusCode::OK);
    // A recipient token opens nothing else.
    assert_eq!(
        app.request(Method::GET, "/v1/recipients/ada/preferences", &token, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.request(Method::GET, "/v1/inbox/preferences", ADMIN, None).await.0, StatusCode::UNAUTHORIZED);

    // Role defaults.
    let admins =
        json!({"channels": {"email": true}, "types": {"job_failed": {"enabled": true, "channels": ["email"]}}});
    assert_eq!(put(&app, "/v1/role-preferences/admin", admins.clone()).await.0, StatusCode::CREATED);
    let (status, again) = put(&app, "/v1/role-preferences/admin", admins.clone()).await;
    assert_eq!((status, &again), (StatusCode::OK, &admins));
    put(&app, "/v1/role-preferences/viewer", json!({"channels": {"email": false}})).await;
    let (_, list) = app.get("/v1/role-preferences").await;
    let roles: Vec<&str> = list["data"].as_array().unwrap().iter().map(|r| r["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["admin", "viewer"]);
    assert_eq!(list["data"][0]["preferences"], admins);
    assert_eq!(app.get("/v1/role-preferences/viewer").await.1, json!({"channels": {"email": false}, "types": {}}));
    let bad = json!({"types": {"job_failed": {"condition": "(("}}});
    assert_eq!(field_of(put(&app, "/v1/role-preferences/admin", bad).await), "types.job_failed.condition");
    assert_eq!(delete(&app, "/v1/role-preferences/viewer").await, StatusCode::NO_CONTENT);
    assert_eq!(delete(&app, "/v1/role-preferences/viewer").await, StatusCode::NOT_FOUND);
    assert_eq!(app.get("/v1/role-preferences/viewer").await.0, StatusCode::NOT_FOUND);
});

backend_test!(another_tenant_sees_none_of_a_tenants_people, |backend: Backend| async move {
    let (db, dir) = (TestDb::new(backend).await, TempDir::new());
    let app = App::spawn(backend, &db, &dir).await;
    put(&app, "/v1/recipients/ada", json!({"email": "ada@example.com", "attributes": {"role": "admin"}})).await;
    put(&app, "/v1/recipients/ada/preferences", json!({"channels": {"email": false}})).await;
    put(&app, "/v1/role-preferences/admin", json!({"channels": {"email": false}})).await;
    assert_eq!(app.post("/v1/tenants", json!({"id": "globex", "name": "Globex"})).await.0, StatusCode::CREATED);
    let as_globex = |method: Method, path: &str, body: Option<Value>| {
        let req = app.client.request(method, app.url(path)).bearer_auth(ADMIN).header("herald-tenant", "globex");
        let req = match body {
            Some(b) => req.json(&b),
            None => req,
        };
        async move {
            let res = req.send().await.unwrap();
            let status = res.status();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    assert_eq!(as_globex(Method::GET, "/v1/recipients/ada", None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(as_globex(Method::GET, "/v1/recipients/ada/preferences", None).await.0, StatusCode::NOT_FOUND);
    let prefs = Some(json!({"channels": {}}));
    assert_eq!(as_globex(Method::PUT, "/v1/recipients/ada/preferences", prefs).await.0, StatusCode::NOT_FOUND);
    assert_eq!(as_globex(Method::DELETE, "/v1/recipients/ada", None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(as_globex(Method::GET, "/v1/recipients?attributes.role=admin", None).await.1["data"], json!([]));
    assert_eq!(as_globex(Method::GET, "/v1/role-preferences", None).await.1["data"], json!([]));
    // Globex's own `ada` is another person.
    let (status, theirs) = as_globex(Method::PUT, "/v1/recipients/ada", Some(json!({"name": "Other Ada"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{theirs}");
    let (_, ours) = app.get("/v1/recipients/ada").await;
    assert_eq!((ours["email"].as_str(), ours["name"].as_str()), (Some("ada@example.com"), None));
    assert_eq!(app.get("/v1/recipients/ada/preferences").await.1["channels"], json!({"email": false}));
});
